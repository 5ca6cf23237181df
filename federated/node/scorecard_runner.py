"""A party's scorecard job (#15): binning, the secure per-bin counts, WOE/IV, selection, the two-party LR on the WOE
columns, and its own scorecard.

:func:`run_scorecard` runs, on this party's rows of the intersection, the job's split (the same as a ``train`` job's,
from the ids and the seed) and then:

1. its own bins of its own features, fitted on its training rows (:func:`fedcredit.protocols.binning.fit_features`,
   bins under ``min_bin_rows`` merged);
2. the per-bin counts: the bank counts its own bins from its labels; the platform gets the bads of each of its bins
   from the secure protocol (:mod:`fedcredit.protocols.binning.protocol`: the bank's labels under a Paillier key of
   the bank's own, drawn for this job, summed per bin and masked), and both merge bins under ``min_bin_events`` and
   compute WOE and IV of their own features; IV goes to the other party only where the job shares it;
3. its selection of its own features: IV threshold, top-k, then correlation on its WOE columns (at least one
   feature is kept, the highest-IV one);
4. the two-party LR (:mod:`fedcredit.protocols.hetero_lr.two_party`, the job's ``training`` section, weights revealed
   to their owner) on the WOE columns, unstandardized: WOE is already on a log-odds scale;
5. its scorecard: its points per bin of its own features, and the bank the intercept's base points
   (:func:`fedcredit.protocols.binning.scorecard_points`). A score is the sum of both parties' partial points.

It writes ``model.json`` (its IV per feature, its selection, its LR weights and its scorecard;
:mod:`fedcredit.runtime.node.model_package` makes its part of the model package from it). The bank gets the test
metrics of the scorecard's total points.

Owns: the scorecard job's order of steps. May import: ``protocols``, :mod:`fedcredit.runtime.plan`,
:mod:`fedcredit.runtime.driver`, :mod:`fedcredit.runtime.node.workdir`, :mod:`fedcredit.runtime.node.results`,
:mod:`fedcredit.runtime.node.train_runner` and :mod:`fedcredit.runtime.node.data`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from fedcredit.protocols.binning import (WoeTable, drop_correlated, fit_features, guest_program, host_program,
                                         own_tables, scorecard_points, select_by_iv, woe_transform)
from fedcredit.protocols.core import Progress, Role
from fedcredit.protocols.hetero_lr import ks_statistic, roc_auc, split_train_test
from fedcredit.protocols.hetero_lr import two_party
from fedcredit.protocols.paillier import generate_keypair

from .data import LocalDataset
from ..driver import RoleRun
from ..plan import ScorecardPlan, TrainPlan
from .results import Metrics, TrainingSummary
from .train_runner import TrainRun
from .workdir import JobFiles

__all__ = ["ScorecardRun", "run_scorecard", "select_features"]

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScorecardRun(TrainRun):
    """:class:`TrainRun`, and for the guest the scorecard's own test metrics (its total points)."""

    scorecard_metrics: Metrics | None = None


def select_features(tables: Sequence[WoeTable], x_train: np.ndarray, plan: ScorecardPlan) -> list[WoeTable]:
    """One party's selection of its own features (its WOE tables, its raw training columns in the tables' order):
    IV at least ``iv_threshold``, the ``top_k`` highest, then of every pair whose WOE columns correlate above
    ``max_correlation`` the lower-IV one dropped. At least one feature stays (the highest IV). Highest IV first."""
    iv = {t.name: t.iv for t in tables}
    by_name = {t.name: j for j, t in enumerate(tables)}
    names = select_by_iv(iv, plan.iv_threshold, plan.top_k) or select_by_iv(iv, None, 1)
    chosen = [tables[by_name[n]] for n in names]
    woe = woe_transform(chosen, x_train[:, [by_name[n] for n in names]])
    kept = drop_correlated(woe, names, iv, plan.max_correlation)
    return [tables[by_name[n]] for n in kept]


def run_scorecard(run: RoleRun, plan: ScorecardPlan, train: TrainPlan, data: LocalDataset, rows: np.ndarray,
                  aligned: list[str], *, job_id: str, files: JobFiles) -> ScorecardRun:
    """Run this party's side of the scorecard job on its ``rows`` of the intersection (ids ``aligned``) and write
    its ``model.json``.

    Raises:
        BinsTooSmall: a bin under the bank's ``min_bin_rows`` (the bank refuses before it encrypts a label).
        DataError: a feature whose training rows are all good or all bad.
    """
    t0 = time.monotonic()
    run.endpoint.progress(Progress("scorecard", 0, 0, {"phase": "binning"}))
    train_pos, test_pos = split_train_test(aligned, train.seed, train.test_fraction)
    x = data.features[rows]
    x_train, x_test = x[train_pos], x[test_pos]
    names = list(data.feature_names)
    bins = fit_features(x_train, names, plan.method, plan.n_bins, min_rows=plan.binning.min_bin_rows)
    pool = run.map_fn(len(train_pos), minimum=2048)
    peer_iv: dict[str, float] | None
    if run.role is Role.GUEST:
        y = np.asarray(data.labels)[rows]
        tables = own_tables(x_train, y[train_pos], bins, plan.binning)
        own_iv = {t.name: t.iv for t in tables}
        keypair = generate_keypair(plan.key_bits, run.rng)
        view = run.drive(guest_program(y[train_pos], keypair, plan.binning, run.rng, own_iv=own_iv, map_fn=pool))
        peer_iv = view.host_iv
    else:
        result = run.drive(host_program(x_train, bins, plan.binning, run.rng, map_fn=pool))
        tables, peer_iv = result.tables, result.bank_iv
    iv = {t.name: t.iv for t in tables}
    chosen = select_features(tables, x_train, plan)
    cols = [names.index(t.name) for t in chosen]
    _LOG.info("job %s: %d of %d own features selected by IV and correlation", job_id, len(chosen), len(tables))
    w_train, w_test = woe_transform(chosen, x_train[:, cols]), woe_transform(chosen, x_test[:, cols])
    run.endpoint.progress(Progress("scorecard", 1, 2, {"phase": "train"}))
    params = train.lr
    summary = metrics = card_metrics = None
    extra: dict[str, Any] = {}
    if run.role is Role.GUEST:
        y_train, y_test = y[train_pos], y[test_pos]
        model = run.drive(two_party.guest_program(w_train, y_train, w_test, y_test, params, run.rng, map_fn=pool))
        card = scorecard_points(chosen, model.weights, plan.points, intercept=model.intercept)
        # the total points of the test rows: the bank's own points plus the platform's, -factor * its test scores u_H
        host_u = np.asarray(model.test_scores) - (w_test @ model.weights + model.intercept)
        points = card.partial_scores(x_test[:, cols]) - plan.points.factor * host_u
        card_metrics = Metrics(auc=float(roc_auc(y_test, -points)), ks=float(ks_statistic(y_test, -points)), n_test=int(len(y_test)))
        metrics = Metrics(auc=model.metrics.auc, ks=model.metrics.ks, n_test=model.metrics.n_test)
        summary = TrainingSummary(n_train=int(len(train_pos)), n_test=int(len(test_pos)), engine=train.engine, topology=train.topology,
                                  reveal_weights=train.reveal_weights, epochs=model.epochs, losses=tuple(model.losses),
                                  key_bits=params.key_bits if params.he_scheme == "paillier" else None,
                                  rlwe_degree=params.rlwe_degree if params.he_scheme != "paillier" else None)
        extra = {"intercept": float(model.intercept), "metrics": {"joint": metrics.to_dict(), "scorecard": card_metrics.to_dict()}}
    else:
        model = run.drive(two_party.host_program(w_train, w_test, params, run.rng, map_fn=pool))
        card = scorecard_points(chosen, model.weights, plan.points)
    run.endpoint.progress(Progress("scorecard", 2, 2, {"phase": "points"}))
    files.write_model({"job_id": job_id, "role": run.role.value, "kind": "scorecard",
                       "features": {t.name: float(w) for t, w in zip(chosen, card.weights)},
                       "iv": iv, "peer_iv": peer_iv, "selected": [t.name for t in chosen],
                       "scorecard": card.to_dict(), "points": {"base_score": plan.points.base_score, "pdo": plan.points.pdo,
                                                               "base_odds": plan.points.base_odds},
                       "epochs": model.epochs, "losses": list(model.losses), **extra})
    return ScorecardRun(seconds=time.monotonic() - t0, summary=summary, metrics=metrics, scorecard_metrics=card_metrics)

