"""Plaintext references for the federated LR: the pipeline's own preprocessing on pooled data.

Only a demo or a benchmark can build these (in reality nobody holds both
parties' rows). They exist so that the AUC gap between the federated model
and a centralized one measures the protocol alone, not a difference in
preprocessing:

* :func:`federated_preprocess` applies exactly what ``federated/node/train_runner.py``
  ``run_training`` does: the same aligned rows (guest file order, as PSI returns
  them), the same train/test split (:func:`split_train_test` on the aligned
  ids with the job seed and test fraction), and each party's own
  :class:`Standardizer` fitted on that party's training rows with the job's
  ``clip`` (mean imputation of missing values is inside
  :meth:`Standardizer.transform`). The guest's intercept is a column of ones
  appended *after* standardization, never clipped and never penalized.
* :func:`plain_preprocess`: what a data scientist would do by default
  (mean imputation, ``StandardScaler``, no clipping), on the same split.
* :func:`reference_metrics`: ``guest_only`` and ``centralized`` (the
  federated preprocessing and the job's L2 strength) and ``plain_sklearn``
  (plain preprocessing, sklearn's defaults).
* :func:`centralized_scorecard` (#15): one holder of every column and the labels builds the scorecard job's
  scorecard with the same bins (each party's, fitted on its own training rows), counting bads and goods per bin
  with plain pandas instead of the secure protocol, then the same merging, WOE, selection and sklearn's LR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from fedcredit.protocols.hetero_lr import Standardizer, ks_statistic, roc_auc, split_train_test

__all__ = [
    "PreparedSplit",
    "align_ids",
    "federated_preprocess",
    "plain_preprocess",
    "sklearn_c_for_l2",
    "fit_sklearn_lr",
    "reference_metrics",
    "centralized_scorecard",
]

DEFAULT_CLIP = 3.0
DEFAULT_L2 = 1e-3


@dataclass(frozen=True)
class PreparedSplit:
    """Both parties' preprocessed rows of one split; positions index the aligned ids."""

    train: np.ndarray
    test: np.ndarray
    guest_train: np.ndarray
    guest_test: np.ndarray
    host_train: np.ndarray
    host_test: np.ndarray
    y_train: np.ndarray  # {0, 1}
    y_test: np.ndarray

    @property
    def pooled_train(self) -> np.ndarray:
        return np.hstack([self.guest_train, self.host_train])

    @property
    def pooled_test(self) -> np.ndarray:
        return np.hstack([self.guest_test, self.host_test])

    @property
    def n_train(self) -> int:
        return int(len(self.train))


def align_ids(guest_ids: Sequence[str | None], host_ids: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows of the ids both sides hold, in the guest's file order (the order PSI returns).

    ``None`` in ``host_ids`` marks a row the host may not use (e.g. no consent).
    Returns ``(guest_rows, host_rows, aligned_ids)``.
    """
    h_index = {i: k for k, i in enumerate(host_ids) if i is not None}
    g_rows = [k for k, i in enumerate(guest_ids) if i is not None and i in h_index]
    h_rows = [h_index[guest_ids[k]] for k in g_rows]
    return np.asarray(g_rows, dtype=np.int64), np.asarray(h_rows, dtype=np.int64), [str(guest_ids[k]) for k in g_rows]


def _split(aligned_ids: Sequence[str], seed: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    return split_train_test(list(aligned_ids), seed, test_fraction)


def federated_preprocess(guest_x: np.ndarray, host_x: np.ndarray, y: np.ndarray, aligned_ids: Sequence[str],
                         seed: int, test_fraction: float, clip: float | None = DEFAULT_CLIP) -> PreparedSplit:
    """Exactly the federated pipeline's preprocessing (``federated/node/train_runner.py`` ``run_training``).

    ``guest_x``, ``host_x`` and ``y`` are already aligned: row ``k`` of each is ``aligned_ids[k]``.
    Each party fits its own ``Standardizer(clip=clip)`` on its training rows only.
    """
    guest_x, host_x, y = np.asarray(guest_x, dtype=float), np.asarray(host_x, dtype=float), np.asarray(y)
    if not (len(guest_x) == len(host_x) == len(y) == len(aligned_ids)):
        raise ValueError("guest_x, host_x, y and aligned_ids must have one row per aligned id")
    tr, te = _split(aligned_ids, seed, test_fraction)
    parts = []
    for x in (guest_x, host_x):
        std = Standardizer.fit(x[tr], clip=clip)
        parts += [std.transform(x[tr]), std.transform(x[te])]
    return PreparedSplit(tr, te, parts[0], parts[1], parts[2], parts[3], y[tr], y[te])


def plain_preprocess(guest_x: np.ndarray, host_x: np.ndarray, y: np.ndarray, aligned_ids: Sequence[str],
                     seed: int, test_fraction: float) -> PreparedSplit:
    """The same split with ordinary preprocessing: mean imputation and ``StandardScaler``, no clipping."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    guest_x, host_x, y = np.asarray(guest_x, dtype=float), np.asarray(host_x, dtype=float), np.asarray(y)
    tr, te = _split(aligned_ids, seed, test_fraction)
    parts = []
    for x in (guest_x, host_x):
        pipe = make_pipeline(SimpleImputer(strategy="mean", keep_empty_features=True), StandardScaler()).fit(x[tr])
        parts += [pipe.transform(x[tr]), pipe.transform(x[te])]
    return PreparedSplit(tr, te, parts[0], parts[1], parts[2], parts[3], y[tr], y[te])


def sklearn_c_for_l2(l2: float, n_train: int) -> float:
    """sklearn's ``C`` for the protocol's L2 strength.

    The protocol minimizes ``mean_i loss_i + l2/2 * ||w||^2`` (its gradient step
    adds ``l2 * w``); sklearn minimizes ``C * sum_i loss_i + 1/2 * ||w||^2``.
    Dividing the first by ``l2`` gives the second with ``C = 1 / (l2 * n_train)``.
    """
    if l2 <= 0:
        return float("inf")
    return 1.0 / (l2 * max(int(n_train), 1))


def fit_sklearn_lr(x_train: np.ndarray, y_train: np.ndarray, *, l2: float | None) -> Any:
    """sklearn LR with the protocol's L2 strength (``l2=None``: sklearn's defaults, C=1).

    lbfgs with ``fit_intercept=True`` does not penalize the intercept, like the
    protocol's guest intercept (liblinear would penalize it). ``l2 <= 0``: no penalty.
    """
    from sklearn.linear_model import LogisticRegression

    if l2 is None:
        return LogisticRegression(max_iter=5000).fit(x_train, y_train)
    c = sklearn_c_for_l2(l2, len(x_train))
    if not np.isfinite(c):
        return LogisticRegression(penalty=None, solver="lbfgs", max_iter=5000, tol=1e-8).fit(x_train, y_train)
    return LogisticRegression(C=c, solver="lbfgs", max_iter=5000, tol=1e-8).fit(x_train, y_train)


def _scores(y_test: np.ndarray, score: np.ndarray) -> dict[str, float]:
    return {"auc": roc_auc(y_test, score), "ks": ks_statistic(y_test, score)}


def reference_metrics(guest_x: np.ndarray, host_x: np.ndarray, y: np.ndarray, aligned_ids: Sequence[str], *,
                      seed: int, test_fraction: float, clip: float | None = DEFAULT_CLIP,
                      l2: float = DEFAULT_L2) -> dict[str, Any]:
    """``guest_only``, ``centralized`` (both: federated preprocessing, the job's L2) and ``plain_sklearn``.

    ``centralized`` is the reference the federated model should match: the
    gap to it measures the protocol only. ``plain_sklearn`` (mean imputation,
    ``StandardScaler`` without clipping, sklearn's default C=1) shows what the
    preprocessing itself costs or gains.
    """
    fed = federated_preprocess(guest_x, host_x, y, aligned_ids, seed, test_fraction, clip)
    out: dict[str, Any] = {"intersection_size": len(aligned_ids), "n_train": fed.n_train, "n_test": int(len(fed.test))}
    guest = fit_sklearn_lr(fed.guest_train, fed.y_train, l2=l2)
    out["guest_only"] = _scores(fed.y_test, guest.decision_function(fed.guest_test))
    central = fit_sklearn_lr(fed.pooled_train, fed.y_train, l2=l2)
    out["centralized"] = _scores(fed.y_test, central.decision_function(fed.pooled_test))
    plain = plain_preprocess(guest_x, host_x, y, aligned_ids, seed, test_fraction)
    model = fit_sklearn_lr(plain.pooled_train, plain.y_train, l2=None)
    out["plain_sklearn"] = _scores(plain.y_test, model.decision_function(plain.pooled_test))
    c = sklearn_c_for_l2(l2, fed.n_train)
    out["settings"] = {"clip": clip, "l2": l2, "sklearn_C": c if np.isfinite(c) else None,
                       "plain_sklearn": "mean imputation + StandardScaler, no clipping, sklearn defaults (C=1)"}
    return out


def _pandas_counts(bins: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """Rows and bads per bin of ``bins`` with pandas: ``pd.cut`` on right-closed intervals, missing values where
    the bins put them (their own last bin, a numeric bin, or nowhere)."""
    import pandas as pd

    from fedcredit.protocols.binning import MISSING, BinCounts

    k = pd.cut(pd.Series(x, dtype=float), [-np.inf, *bins.cuts, np.inf], right=True, labels=False)
    if bins.missing == MISSING:
        k = k.fillna(len(bins.cuts) + 1)
    elif bins.missing is not None:
        k = k.fillna(int(bins.missing))
    frame = pd.DataFrame({"k": k, "y": np.asarray(y, dtype=np.int64)}).dropna()
    agg = frame.groupby("k")["y"].agg(["size", "sum"]).reindex(range(bins.n_bins), fill_value=0)
    return BinCounts(agg["size"].to_numpy(np.int64), agg["sum"].to_numpy(np.int64))


def centralized_scorecard(guest_x: np.ndarray, guest_names: Sequence[str], host_x: np.ndarray, host_names: Sequence[str],
                          y: np.ndarray, aligned_ids: Sequence[str], *, seed: int, test_fraction: float, params: Any,
                          method: str = "quantile", n_bins: int = 10, iv_threshold: float | None = 0.02, top_k: int | None = None,
                          max_correlation: float = 0.7, points: Any = None, l2: float | None = DEFAULT_L2) -> dict[str, Any]:
    """The scorecard a holder of both parties' rows would build with the scorecard job's bins (demo and benchmark only).

    ``params``: the job's :class:`fedcredit.protocols.binning.SecureBinningParams` (minimums, merging, smoothing);
    ``points``: its :class:`fedcredit.protocols.binning.ScorecardParams`. Returns the test ``auc``/``ks`` of the
    total points (their negative: points rise with safety), each party's ``iv`` and ``selected`` features, and
    ``n_test``.
    """
    from fedcredit.protocols.binning import (ScorecardParams, drop_correlated, finish_bins, fit_features, scorecard_points,
                                             select_by_iv, woe_transform)

    points = points or ScorecardParams()
    y = np.asarray(y, dtype=np.int64)
    tr, te = _split(aligned_ids, seed, test_fraction)
    woe_tr, woe_te, out_iv, out_sel, cards = [], [], {}, {}, []
    for who, x, names in (("guest", np.asarray(guest_x, dtype=float), list(guest_names)),
                          ("host", np.asarray(host_x, dtype=float), list(host_names))):
        bins = fit_features(x[tr], names, method, n_bins, min_rows=params.min_bin_rows)
        tables = [finish_bins(b, _pandas_counts(b, x[tr, j], y[tr]), params) for j, b in enumerate(bins)]
        iv = {t.name: t.iv for t in tables}
        ranked = select_by_iv(iv, iv_threshold, top_k) or select_by_iv(iv, None, 1)
        pos = {t.name: j for j, t in enumerate(tables)}
        cand = [tables[pos[n]] for n in ranked]
        kept = drop_correlated(woe_transform(cand, x[tr][:, [pos[n] for n in ranked]]), ranked, iv, max_correlation)
        chosen = [tables[pos[n]] for n in kept]
        cols = [pos[n] for n in kept]
        woe_tr.append(woe_transform(chosen, x[tr][:, cols]))
        woe_te.append(woe_transform(chosen, x[te][:, cols]))
        out_iv[who], out_sel[who] = iv, kept
        cards.append((chosen, x[te][:, cols]))
    model = fit_sklearn_lr(np.hstack(woe_tr), y[tr], l2=l2)
    w = model.coef_[0]
    n_g = woe_tr[0].shape[1]
    bank = scorecard_points(cards[0][0], w[:n_g], points, intercept=float(model.intercept_[0]))
    platform = scorecard_points(cards[1][0], w[n_g:], points)
    total = bank.partial_scores(cards[0][1]) + platform.partial_scores(cards[1][1])
    return {**_scores(y[te], -total), "n_test": int(len(te)), "iv": out_iv, "selected": out_sel}
