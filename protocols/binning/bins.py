"""Binning of one party's own features: pure numpy, no labels leave anywhere.

A :class:`FeatureBins` is a list of interior cut points plus where missing
values go. Numeric bin ``k`` holds the values ``v`` with
``cuts[k-1] < v <= cuts[k]`` (``cuts[-1] = -inf``, ``cuts[len] = +inf``):
right-closed intervals, as pandas' ``cut`` makes them. Missing values (NaN)
get a bin of their own, the last one, when the fitting data had any; a
missing bin that is too small is merged into a numeric bin
(:attr:`FeatureBins.missing` then names that bin).

Initial bins: :func:`quantile_bins` (the default; cut points are data values,
so discrete features keep whole values together) and :func:`equal_width_bins`.
Merging works on counts alone -- rows per bin and, when known, bads per bin --
so the label holder can merge its own bins from its labels, and the platform
can merge its bins from the per-bin counts the secure protocol
(:mod:`.protocol`) gives it:

* :func:`merge_small`: bins under ``min_rows`` rows, or under ``min_events``
  bads or goods, merged into a neighbour, smallest first (always run first);
* :func:`chi_merge`: ChiMerge (Kerber 1992), the adjacent pair with the
  smallest chi-square merged until every pair differs at the threshold and
  there are at most ``max_bins`` bins;
* :func:`monotonic_merge`: adjacent bins merged until the bad rate is
  monotone in the bin order (pool-adjacent-violators), in the direction of the
  overall trend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Sequence

import numpy as np

from ..errors import DataError

__all__ = [
    "MISSING",
    "FeatureBins",
    "BinCounts",
    "quantile_bins",
    "equal_width_bins",
    "fit_bins",
    "fit_features",
    "count_bins",
    "merge_small",
    "chi_merge",
    "monotonic_merge",
    "CHI2_95",
]

#: :attr:`FeatureBins.missing` when missing values have a bin of their own (the last one).
MISSING: Literal["separate"] = "separate"
#: Chi-square with one degree of freedom at 95 %: ChiMerge's default threshold.
CHI2_95 = 3.841458820694124


@dataclass(frozen=True)
class FeatureBins:
    """The bins of one feature.

    Attributes:
        name: the feature's column name.
        cuts: sorted interior cut points; ``len(cuts) + 1`` numeric bins.
        missing: ``None`` (no missing values were seen: a missing value at
            transform time falls in no bin, index -1), :data:`MISSING` (a bin of
            their own, the last one) or a numeric bin's index (merged into it).
    """

    name: str
    cuts: tuple[float, ...]
    missing: int | Literal["separate"] | None = None

    def __post_init__(self) -> None:
        if any(not b > a for a, b in zip(self.cuts, self.cuts[1:])):
            raise DataError(f"feature {self.name}: cut points must increase strictly")
        if isinstance(self.missing, int) and not 0 <= self.missing <= len(self.cuts):
            raise DataError(f"feature {self.name}: missing values merged into a bin that does not exist")

    @property
    def n_numeric(self) -> int:
        return len(self.cuts) + 1

    @property
    def n_bins(self) -> int:
        return self.n_numeric + (1 if self.missing == MISSING else 0)

    def assign(self, x: np.ndarray) -> np.ndarray:
        """The bin index of each value (int64); a missing value without a bin gets -1."""
        x = np.asarray(x, dtype=float)
        out = np.searchsorted(np.asarray(self.cuts, dtype=float), x, side="left").astype(np.int64)
        nan = np.isnan(x)
        if nan.any():
            out[nan] = self.n_numeric if self.missing == MISSING else (-1 if self.missing is None else int(self.missing))
        return out

    def labels(self) -> list[str]:
        """A readable label per bin: ``(-inf, 0.5]``, ``(0.5, 2]``, ..., ``missing``."""
        edges = [-math.inf, *self.cuts, math.inf]
        out = [f"({_fmt(lo)}, {_fmt(hi)}]" if hi != math.inf else f"({_fmt(lo)}, inf)" for lo, hi in zip(edges, edges[1:])]
        if isinstance(self.missing, int) and not isinstance(self.missing, bool):
            out[self.missing] += " or missing"
        if self.missing == MISSING:
            out.append("missing")
        return out

    def without_cut(self, k: int) -> "FeatureBins":
        """Numeric bins ``k`` and ``k + 1`` merged (cut ``k`` removed)."""
        if not 0 <= k < len(self.cuts):
            raise DataError(f"feature {self.name}: no cut {k} to remove")
        missing = self.missing
        if isinstance(missing, int) and missing > k:
            missing -= 1
        return replace(self, cuts=self.cuts[:k] + self.cuts[k + 1:], missing=missing)


def _fmt(v: float) -> str:
    return "-inf" if v == -math.inf else f"{v:.6g}"


@dataclass(frozen=True)
class BinCounts:
    """Rows per bin and, when known, bads (label 1) per bin, in :class:`FeatureBins` order."""

    rows: np.ndarray
    bads: np.ndarray | None = None

    @property
    def goods(self) -> np.ndarray | None:
        return None if self.bads is None else self.rows - self.bads

    def merged(self, a: int, b: int) -> "BinCounts":
        """Bin ``b`` added into bin ``a`` and removed (indices of the bins after ``b`` shift down)."""
        def fold(v: np.ndarray) -> np.ndarray:
            v = v.copy()
            v[a] += v[b]
            return np.delete(v, b)
        return BinCounts(fold(self.rows), None if self.bads is None else fold(self.bads))


def count_bins(bins: FeatureBins, x: np.ndarray, y: np.ndarray | None = None) -> BinCounts:
    """Rows (and bads, given 0/1 labels ``y``) per bin of ``x``, in plaintext: for the label holder's own features."""
    idx = bins.assign(x)
    if (idx < 0).any():
        raise DataError(f"feature {bins.name}: missing values but no bin for them")
    rows = np.bincount(idx, minlength=bins.n_bins).astype(np.int64)
    bads = None if y is None else np.bincount(idx, weights=np.asarray(y, dtype=float), minlength=bins.n_bins).round().astype(np.int64)
    return BinCounts(rows, bads)


def _finite(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if np.isinf(x).any():
        raise DataError(f"feature {name}: infinite values cannot be binned")
    return x[~np.isnan(x)]


def _with_missing(name: str, cuts: Sequence[float], x: np.ndarray) -> FeatureBins:
    has_nan = bool(np.isnan(np.asarray(x, dtype=float)).any())
    return FeatureBins(name, tuple(float(c) for c in cuts), MISSING if has_nan else None)


def quantile_bins(x: np.ndarray, n_bins: int = 10, name: str = "x") -> FeatureBins:
    """Bins with about equal counts: cut points are the data's ``i / n_bins`` quantiles (lower data value).

    Repeated quantiles (discrete features) collapse, and a cut at the maximum
    is dropped, so there may be fewer than ``n_bins`` bins but none is empty.
    """
    if n_bins < 1:
        raise DataError("n_bins must be >= 1")
    v = _finite(x, name)
    if v.size == 0:
        return _with_missing(name, (), x)
    q = np.quantile(v, np.arange(1, n_bins) / n_bins, method="lower")
    cuts = sorted(set(float(c) for c in q if c < v.max()))
    return _with_missing(name, cuts, x)


def equal_width_bins(x: np.ndarray, n_bins: int = 10, name: str = "x") -> FeatureBins:
    """``n_bins`` intervals of equal width between the minimum and the maximum (some may be empty:
    :func:`merge_small` merges them)."""
    if n_bins < 1:
        raise DataError("n_bins must be >= 1")
    v = _finite(x, name)
    if v.size == 0 or v.min() == v.max():
        return _with_missing(name, (), x)
    lo, hi = float(v.min()), float(v.max())
    cuts = sorted(set(lo + (hi - lo) * i / n_bins for i in range(1, n_bins)))
    return _with_missing(name, cuts, x)


def fit_bins(x: np.ndarray, method: str = "quantile", n_bins: int = 10, name: str = "x") -> FeatureBins:
    """:func:`quantile_bins` or :func:`equal_width_bins` by name."""
    if method == "quantile":
        return quantile_bins(x, n_bins, name)
    if method == "equal_width":
        return equal_width_bins(x, n_bins, name)
    raise DataError(f"unknown binning method {method!r}; use quantile or equal_width")


def fit_features(x: np.ndarray, names: Sequence[str], method: str = "quantile", n_bins: int = 10,
                 min_rows: int = 1) -> list[FeatureBins]:
    """Bins of each column of ``x`` (:func:`fit_bins`), then bins under ``min_rows`` rows merged
    (:func:`merge_small` on row counts: no labels needed, so the platform can run it before the protocol)."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise DataError("one name per column")
    out = []
    for j, name in enumerate(names):
        b = fit_bins(x[:, j], method, n_bins, name)
        b, _ = merge_small(b, count_bins(b, x[:, j]), min_rows)
        out.append(b)
    return out


def _short(counts: BinCounts, k: int, min_rows: int, min_events: int) -> bool:
    if counts.rows[k] < min_rows:
        return True
    if counts.bads is not None and min_events > 0:
        return bool(counts.bads[k] < min_events or counts.rows[k] - counts.bads[k] < min_events)
    return False


def _rate(counts: BinCounts, k: int) -> float:
    assert counts.bads is not None
    return float(counts.bads[k]) / max(1, int(counts.rows[k]))


def merge_small(bins: FeatureBins, counts: BinCounts, min_rows: int = 1, min_events: int = 0) -> tuple[FeatureBins, BinCounts]:
    """Merge every bin with fewer than ``min_rows`` rows, or fewer than ``min_events`` bads or goods
    (when bads are known), into a neighbour, until none is left or one bin remains.

    The numeric bin that falls shortest (fewest rows) goes first, into its
    adjacent bin with fewer rows (ties: the left one). A short missing bin goes
    into the numeric bin with the nearest bad rate when bads are known, else
    into the numeric bin with most rows.
    """
    if len(counts.rows) != bins.n_bins:
        raise DataError(f"feature {bins.name}: {len(counts.rows)} counts for {bins.n_bins} bins")
    while bins.n_numeric > 1:
        short = [k for k in range(bins.n_numeric) if _short(counts, k, min_rows, min_events)]
        if not short:
            break
        k = min(short, key=lambda i: (int(counts.rows[i]), i))
        if k == 0:
            j = 0
        elif k == bins.n_numeric - 1:
            j = k - 1
        else:
            j = k - 1 if counts.rows[k - 1] <= counts.rows[k + 1] else k
        bins, counts = bins.without_cut(j), counts.merged(j, j + 1)
    if bins.missing == MISSING and _short(counts, bins.n_numeric, min_rows, min_events):
        m = bins.n_numeric
        if counts.bads is not None and counts.rows[m] > 0:
            target = min(range(m), key=lambda i: (abs(_rate(counts, i) - _rate(counts, m)), i))
        else:
            target = max(range(m), key=lambda i: (int(counts.rows[i]), -i))
        bins, counts = replace(bins, missing=target), counts.merged(target, m)
    return bins, counts


def _chi2(counts: BinCounts, a: int, b: int) -> float:
    """Pearson's chi-square of the 2x2 table (bins a, b) x (bad, good)."""
    assert counts.bads is not None
    obs = np.array([[counts.bads[a], counts.rows[a] - counts.bads[a]],
                    [counts.bads[b], counts.rows[b] - counts.bads[b]]], dtype=float)
    total = obs.sum()
    if total == 0:
        return 0.0
    exp = obs.sum(axis=1, keepdims=True) * obs.sum(axis=0, keepdims=True) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(exp > 0, (obs - exp) ** 2 / exp, 0.0)
    return float(terms.sum())


def chi_merge(bins: FeatureBins, counts: BinCounts, max_bins: int = 6, threshold: float = CHI2_95,
              min_bins: int = 2) -> tuple[FeatureBins, BinCounts]:
    """ChiMerge: merge the adjacent numeric pair with the smallest chi-square while there are more than
    ``max_bins`` numeric bins, or some pair's chi-square is below ``threshold`` (and more than ``min_bins`` remain)."""
    if counts.bads is None:
        raise DataError(f"feature {bins.name}: chi-merge needs bads per bin")
    while bins.n_numeric > 1:
        chis = [_chi2(counts, k, k + 1) for k in range(bins.n_numeric - 1)]
        k = int(np.argmin(chis))
        if bins.n_numeric <= max_bins and (chis[k] >= threshold or bins.n_numeric <= min_bins):
            break
        bins, counts = bins.without_cut(k), counts.merged(k, k + 1)
    return bins, counts


def monotonic_merge(bins: FeatureBins, counts: BinCounts) -> tuple[FeatureBins, BinCounts]:
    """Merge adjacent numeric bins until the bad rate is monotone over them (pool adjacent violators).

    The direction is that of the overall trend: the sign of the row-weighted
    correlation of bin order and bad rate (increasing on a tie). The missing
    bin, if separate, is left as it is.
    """
    if counts.bads is None:
        raise DataError(f"feature {bins.name}: monotonic merging needs bads per bin")
    m = bins.n_numeric
    rows = counts.rows[:m].astype(float)
    if rows.sum() > 0:
        rates = counts.bads[:m] / np.maximum(rows, 1)
        order = np.arange(m, dtype=float)
        mo, mr = np.average(order, weights=rows), np.average(rates, weights=rows)
        increasing = float(np.sum(rows * (order - mo) * (rates - mr))) >= 0
    else:
        increasing = True
    while bins.n_numeric > 1:
        rates_now = [_rate(counts, k) for k in range(bins.n_numeric)]
        bad = [k for k in range(bins.n_numeric - 1)
               if (rates_now[k] > rates_now[k + 1] if increasing else rates_now[k] < rates_now[k + 1])]
        if not bad:
            break
        k = bad[0]
        bins, counts = bins.without_cut(k), counts.merged(k, k + 1)
    return bins, counts
