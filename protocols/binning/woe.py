"""WOE and IV from per-bin counts, feature selection by IV and correlation, and scorecard points.

Conventions (Siddiqi's): *bad* is label 1 (a default), *good* label 0, and

    WOE_k = ln( (goods_k / G) / (bads_k / B) )        IV = Σ_k (goods_k / G − bads_k / B) · WOE_k

with ``G``, ``B`` the feature's totals. A bin with no bads or no goods would
make WOE infinite; the usual smoothing adds ``smoothing`` (0.5 by default) to
both of that bin's counts. A higher WOE means a safer bin.

Each party computes these for its own features only: the bank from its labels,
the platform from the per-bin counts of :mod:`.protocol`.

Scorecard points. The LR on WOE features models the log-odds of *bad*,
``z = b0 + Σ_j b_j · WOE_j``. With ``factor = PDO / ln 2`` and
``offset = base_score − factor · ln(base_odds)`` (base odds of good to bad),

    score = offset + factor · ln(odds of good) = offset − factor · z
          = (offset − factor · b0)  +  Σ_j ( − factor · b_j · WOE_j,k(j) )

so each party's partial points per bin are ``−factor · b_j · WOE_jk`` for its
own features, the intercept's points ``offset − factor · b0`` go to the bank,
and an applicant's score is the sum of both parties' partial points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DataError
from .bins import BinCounts, FeatureBins

__all__ = [
    "WoeTable",
    "woe_table",
    "woe_transform",
    "select_by_iv",
    "drop_correlated",
    "ScorecardParams",
    "Scorecard",
    "scorecard_points",
    "score",
    "render_scorecard",
    "render_iv",
]


@dataclass(frozen=True)
class WoeTable:
    """One feature's bins with their counts, WOE and IV contributions, and the feature's IV."""

    bins: FeatureBins
    rows: tuple[int, ...]
    bads: tuple[int, ...]
    woe: tuple[float, ...]
    iv_parts: tuple[float, ...]

    @property
    def name(self) -> str:
        return self.bins.name

    @property
    def iv(self) -> float:
        return float(sum(self.iv_parts))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """WOE of each value's bin (0.0, neutral, for a value in no bin)."""
        idx = self.bins.assign(x)
        woe = np.asarray(self.woe + (0.0,), dtype=float)
        return woe[np.where(idx < 0, len(self.woe), idx)]


def woe_table(bins: FeatureBins, counts: BinCounts, smoothing: float = 0.5) -> WoeTable:
    """WOE per bin and IV of one feature from its counts (see the module docstring for the formulas).

    Raises:
        DataError: no bads per bin, counts of the wrong length, or a feature whose rows are all good or all bad.
    """
    if counts.bads is None:
        raise DataError(f"feature {bins.name}: WOE needs bads per bin")
    if len(counts.rows) != bins.n_bins:
        raise DataError(f"feature {bins.name}: {len(counts.rows)} counts for {bins.n_bins} bins")
    rows = counts.rows.astype(np.int64)
    bads = counts.bads.astype(np.int64)
    goods = rows - bads
    if (bads < 0).any() or (goods < 0).any():
        raise DataError(f"feature {bins.name}: inconsistent counts")
    total_b, total_g = int(bads.sum()), int(goods.sum())
    if total_b == 0 or total_g == 0:
        raise DataError(f"feature {bins.name}: WOE needs both goods and bads")
    woe: list[float] = []
    parts: list[float] = []
    for b, g in zip(bads.tolist(), goods.tolist()):
        if b + g == 0:  # an empty bin (e.g. no missing values after all) carries no information
            woe.append(0.0)
            parts.append(0.0)
            continue
        if b == 0 or g == 0:
            b, g = b + smoothing, g + smoothing
        pg, pb = g / total_g, b / total_b
        w = math.log(pg / pb)
        woe.append(w)
        parts.append((pg - pb) * w)
    return WoeTable(bins, tuple(int(v) for v in rows), tuple(int(v) for v in bads), tuple(woe), tuple(parts))


def woe_transform(tables: Sequence[WoeTable], x: np.ndarray) -> np.ndarray:
    """The WOE matrix of ``x`` (one column per table, in order)."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(tables):
        raise DataError(f"{x.shape[1] if x.ndim == 2 else '?'} columns for {len(tables)} WOE tables")
    return np.column_stack([t.transform(x[:, j]) for j, t in enumerate(tables)]) if tables else np.zeros((len(x), 0))


def select_by_iv(iv: Mapping[str, float], threshold: float | None = 0.02, top_k: int | None = None) -> list[str]:
    """Feature names with IV at least ``threshold`` (None: no threshold), the ``top_k`` highest if given,
    highest IV first (ties by name)."""
    if top_k is not None and top_k < 0:
        raise DataError("top_k must be >= 0")
    ranked = sorted(iv, key=lambda n: (-iv[n], n))
    if threshold is not None:
        ranked = [n for n in ranked if iv[n] >= threshold]
    return ranked if top_k is None else ranked[:top_k]


def drop_correlated(x: np.ndarray, names: Sequence[str], iv: Mapping[str, float], threshold: float = 0.7) -> list[str]:
    """Within one party: of every pair of columns whose |Pearson r| exceeds ``threshold``, drop the lower-IV one.

    Greedy by IV (highest first): a feature is kept unless it is too correlated
    with a feature already kept. Usually run on the WOE matrix. Returns the
    kept names, highest IV first.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(names):
        raise DataError("one column per name")
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(x, rowvar=False) if x.shape[1] > 1 else np.ones((1, 1))
    corr = np.nan_to_num(np.atleast_2d(corr), nan=0.0)
    pos = {n: j for j, n in enumerate(names)}
    kept: list[str] = []
    for n in sorted(names, key=lambda n: (-iv[n], n)):
        if all(abs(corr[pos[n], pos[k]]) <= threshold for k in kept):
            kept.append(n)
    return kept


@dataclass(frozen=True)
class ScorecardParams:
    """Points scaling: ``base_score`` points at odds ``base_odds`` (good:bad), ``pdo`` points to double the odds."""

    base_score: float = 600.0
    pdo: float = 20.0
    base_odds: float = 50.0

    def __post_init__(self) -> None:
        if not (self.pdo > 0 and self.base_odds > 0):
            raise DataError("pdo and base_odds must be positive")

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        return self.base_score - self.factor * math.log(self.base_odds)


@dataclass(frozen=True)
class Scorecard:
    """One party's part of a scorecard: points per bin of each of its features, and (the bank) the intercept's."""

    tables: tuple[WoeTable, ...]
    points: tuple[tuple[float, ...], ...]  # points[j][k]: feature j, bin k
    weights: tuple[float, ...]
    base_points: float  # the intercept's points: the bank's part; 0.0 for the platform

    def to_dict(self) -> dict[str, Any]:
        """The party's scorecard as plain JSON data (its part of the model package): per feature its bins
        (cut points, where missing values go), counts, WOE and points, and the base points."""
        return {"base_points": self.base_points, "features": [
            {"name": t.name, "cuts": list(t.bins.cuts), "missing": t.bins.missing, "rows": list(t.rows), "bads": list(t.bads),
             "woe": list(t.woe), "iv_parts": list(t.iv_parts), "weight": w, "points": list(p)}
            for t, w, p in zip(self.tables, self.weights, self.points)]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Scorecard":
        """The inverse of :meth:`to_dict`.

        Raises:
            DataError: a malformed package (a missing key, lengths that do not match the bins).
        """
        try:
            tables, points, weights = [], [], []
            for f in d["features"]:
                bins = FeatureBins(str(f["name"]), tuple(float(c) for c in f["cuts"]), f["missing"])
                t = WoeTable(bins, tuple(int(v) for v in f["rows"]), tuple(int(v) for v in f["bads"]),
                             tuple(float(v) for v in f["woe"]), tuple(float(v) for v in f["iv_parts"]))
                pts = tuple(float(v) for v in f["points"])
                if not len(t.rows) == len(t.bads) == len(t.woe) == len(pts) == bins.n_bins:
                    raise DataError(f"scorecard feature {bins.name}: lengths do not match its {bins.n_bins} bins")
                tables.append(t)
                points.append(pts)
                weights.append(float(f["weight"]))
            return cls(tuple(tables), tuple(points), tuple(weights), float(d["base_points"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed scorecard: {exc}") from None

    def partial_scores(self, x: np.ndarray) -> np.ndarray:
        """This party's points for each row of its own features ``x`` (one column per table)."""
        x = np.asarray(x, dtype=float)
        out = np.full(len(x), self.base_points, dtype=float)
        for j, (t, pts) in enumerate(zip(self.tables, self.points)):
            idx = t.bins.assign(x[:, j])
            p = np.asarray(pts + (0.0,), dtype=float)
            out = out + p[np.where(idx < 0, len(pts), idx)]
        return out


def scorecard_points(tables: Sequence[WoeTable], weights: Sequence[float], params: ScorecardParams = ScorecardParams(),
                     intercept: float | None = None) -> Scorecard:
    """A party's scorecard from its WOE tables and its LR weights on those WOE features.

    Pass ``intercept`` for the bank (its points, ``offset − factor · b0``, are
    the bank's); leave it None for the platform (base points 0).
    """
    if len(tables) != len(weights):
        raise DataError(f"{len(weights)} weights for {len(tables)} features")
    f = params.factor
    points = tuple(tuple(-f * float(w) * v for v in t.woe) for t, w in zip(tables, weights))
    base = 0.0 if intercept is None else params.offset - f * float(intercept)
    return Scorecard(tuple(tables), points, tuple(float(w) for w in weights), base)


def score(cards: Sequence[tuple[Scorecard, np.ndarray]]) -> np.ndarray:
    """Total score per applicant: the sum of each party's partial scores on its own features."""
    if not cards:
        raise DataError("no scorecard")
    total = cards[0][0].partial_scores(cards[0][1])
    for card, x in cards[1:]:
        total = total + card.partial_scores(x)
    return total


def render_scorecard(card: Scorecard, party: str = "", decimals: int = 1) -> str:
    """The scorecard table of one party as Markdown: feature, bin, rows, bad rate, WOE, points."""
    lines = ["| party | feature | bin | rows | bad rate | WOE | points |", "|---|---|---|---:|---:|---:|---:|"]
    if card.base_points:
        lines.append(f"| {party} | (base points) | | | | | {card.base_points:.{decimals}f} |")
    for t, pts in zip(card.tables, card.points):
        for label, n, b, w, p in zip(t.bins.labels(), t.rows, t.bads, t.woe, pts):
            rate = f"{b / n:.3f}" if n else "-"
            lines.append(f"| {party} | {t.name} | {label} | {n} | {rate} | {w:+.3f} | {p:.{decimals}f} |")
    return "\n".join(lines)


def render_iv(iv: Mapping[str, float], party: str = "") -> str:
    """An IV table as Markdown, highest first, with the usual strength bands."""
    def band(v: float) -> str:
        return "useless" if v < 0.02 else "weak" if v < 0.1 else "medium" if v < 0.3 else "strong" if v < 0.5 else "suspicious"
    lines = ["| party | feature | IV | strength |", "|---|---|---:|---|"]
    for n in sorted(iv, key=lambda n: (-iv[n], n)):
        lines.append(f"| {party} | {n} | {iv[n]:.4f} | {band(iv[n])} |")
    return "\n".join(lines)
