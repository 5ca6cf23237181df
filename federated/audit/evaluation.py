"""The evaluation report of a trained credit model: one self-contained HTML page with inline SVG charts.

:func:`build_evaluation` turns numpy arrays (labels, and one or more score vectors on the same rows) into a
typed :class:`Evaluation`; :func:`render_evaluation` renders it through the autoescaped Jinja2 template
``templates/evaluation.html.j2``. Every metric is computed here with numpy (the tests check them against
scikit-learn and hand examples):

* ROC curve and AUC (ties count one half, as in ``sklearn.metrics.roc_auc_score``), Gini = 2 AUC - 1;
* KS: the largest gap between the cumulative share of bads and of goods at or above a score cut-off, and
  that cut-off;
* cumulative gain and lift, over the population sorted by score, and a decile table;
* the score distribution of goods and bads;
* a confusion table at several probability cut-offs (flagged bad when ``score >= cut-off``);
* the population stability index (PSI) of the score between training and test rows;
* calibration: a reliability curve over ten equal-width probability bins (as
  ``sklearn.calibration.calibration_curve``) and the Brier score.

Conventions: label 1 is a *bad* (a default), 0 a *good*; a score is the model's probability of bad, so a
higher score is riskier. The first score vector given is the model under evaluation (the joint model); the
others (e.g. the bank's features alone) are compared with it on the same rows.

Figures are drawn with matplotlib's object-oriented API (``matplotlib.figure.Figure``, no pyplot and no
global backend switch) and saved as SVG with text as paths: no fonts, scripts, images or links to fetch.
Every value shown in the page is escaped by the template; the SVG itself is produced here from numbers and
carries a ``<title>`` that is escaped before it is inserted.
"""

from __future__ import annotations

import functools
import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_CUTOFFS",
    "RocCurve",
    "KsCurve",
    "GainCurve",
    "DecileRow",
    "CutoffRow",
    "ScoreDistribution",
    "PsiBin",
    "Psi",
    "CalibrationBin",
    "Calibration",
    "ModelEvaluation",
    "FeatureGroup",
    "Evaluation",
    "roc_curve",
    "ks_curve",
    "gain_curve",
    "decile_table",
    "confusion_at",
    "score_distribution",
    "population_stability",
    "calibration",
    "brier_score",
    "evaluate_model",
    "build_evaluation",
    "render_evaluation",
    "load_scores_csv",
    "psi_verdict",
]

DEFAULT_CUTOFFS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
PSI_FLOOR = 1e-4  # a bin's share is floored here before the logarithm, so an empty bin gives a large but finite term


# --------------------------------------------------------------------------- the typed model


@dataclass(frozen=True)
class RocCurve:
    """One point per distinct score, highest first; ``thresholds[0]`` is +inf (nothing flagged)."""

    fpr: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)
    thresholds: np.ndarray = field(repr=False)
    auc: float


@dataclass(frozen=True)
class KsCurve:
    """Cumulative shares of bads and goods with ``score >= threshold``, and their largest gap."""

    thresholds: np.ndarray = field(repr=False)
    cum_bad: np.ndarray = field(repr=False)
    cum_good: np.ndarray = field(repr=False)
    ks: float
    cutoff: float  # the score at which the gap is largest: flag bad when score >= cutoff
    flagged_share: float  # the share of the population at or above the cut-off


@dataclass(frozen=True)
class GainCurve:
    """Share of the population targeted (highest scores first) against the share of all bads it captures."""

    population: np.ndarray = field(repr=False)  # starts at 0
    captured: np.ndarray = field(repr=False)  # starts at 0

    @property
    def lift(self) -> np.ndarray:
        """Cumulative lift at each point but the first: captured share / population share."""
        return self.captured[1:] / self.population[1:]


@dataclass(frozen=True)
class DecileRow:
    decile: int  # 1: the highest scores
    n: int
    bads: int
    min_score: float
    max_score: float
    bad_rate: float
    lift: float  # this decile's bad rate / the overall bad rate
    cum_captured: float  # share of all bads in deciles 1..decile (the gain)
    cum_lift: float


@dataclass(frozen=True)
class CutoffRow:
    """The confusion table at one cut-off: flagged bad (declined) when ``score >= cutoff``."""

    cutoff: float
    tp: int  # bads flagged
    fp: int  # goods flagged
    tn: int  # goods passed
    fn: int  # bads passed
    flagged_share: float
    precision: float  # bad rate among the flagged (nan when none is flagged)
    recall: float  # share of bads flagged (true positive rate)
    fpr: float  # share of goods flagged
    accuracy: float
    passed_bad_rate: float  # bad rate among the passed (nan when all are flagged)


@dataclass(frozen=True)
class ScoreDistribution:
    """Histogram of the score for goods and bads over the same bins."""

    edges: np.ndarray = field(repr=False)
    goods: np.ndarray = field(repr=False)  # counts
    bads: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class PsiBin:
    low: float  # -inf for the first bin
    high: float  # +inf for the last
    expected_n: int
    actual_n: int
    expected_share: float
    actual_share: float
    term: float  # (actual - expected) * ln(actual / expected), shares floored at PSI_FLOOR


@dataclass(frozen=True)
class Psi:
    """Population stability index: ``sum((a - e) * ln(a / e))`` over bins cut at the expected scores' quantiles."""

    value: float
    bins: tuple[PsiBin, ...]
    expected_name: str = "training"
    actual_name: str = "test"

    @property
    def verdict(self) -> str:
        return psi_verdict(self.value)


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    n: int
    mean_score: float
    observed_rate: float


@dataclass(frozen=True)
class Calibration:
    """Reliability curve over equal-width probability bins (empty bins left out) and the Brier score."""

    bins: tuple[CalibrationBin, ...]
    brier: float
    brier_base_rate: float  # the Brier score of always predicting the bad rate: bad_rate * (1 - bad_rate)

    @property
    def brier_skill(self) -> float:
        """1 - brier / brier_base_rate: 0 is no better than the bad rate, 1 is perfect."""
        return 1.0 - self.brier / self.brier_base_rate if self.brier_base_rate > 0 else float("nan")


@dataclass(frozen=True)
class ModelEvaluation:
    """Every metric and curve of one model's scores on the evaluation rows."""

    name: str
    n: int
    n_bad: int
    roc: RocCurve
    ks: KsCurve
    gain: GainCurve
    deciles: tuple[DecileRow, ...]
    cutoffs: tuple[CutoffRow, ...]
    distribution: ScoreDistribution
    calibration: Calibration

    @property
    def bad_rate(self) -> float:
        return self.n_bad / self.n

    @property
    def auc(self) -> float:
        return self.roc.auc

    @property
    def gini(self) -> float:
        return 2.0 * self.roc.auc - 1.0

    @property
    def brier(self) -> float:
        return self.calibration.brier

    def captured_at(self, share: float) -> float:
        """The share of bads among the ``share`` of the population with the highest scores (interpolated)."""
        return float(np.interp(share, self.gain.population, self.gain.captured))


@dataclass(frozen=True)
class FeatureGroup:
    """One party's features, by name (the names are shown, escaped; no data value is)."""

    party: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Evaluation:
    """The whole report: the model under evaluation first, then the models it is compared with."""

    title: str
    subject: str  # e.g. the job id
    created: str
    models: tuple[ModelEvaluation, ...]
    psi: Psi | None = None
    features: tuple[FeatureGroup, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def primary(self) -> ModelEvaluation:
        return self.models[0]

    @property
    def compared(self) -> tuple[ModelEvaluation, ...]:
        return self.models[1:]


# --------------------------------------------------------------------------- metrics (numpy)


def _labels_scores(y: Any, s: Any, *, need_both: bool = True) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    s = np.asarray(s, dtype=float)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise ValueError(f"labels and scores must be two 1-D arrays of one length (got shapes {y.shape} and {s.shape})")
    if len(y) == 0:
        raise ValueError("no rows to evaluate")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError("labels must be 0 (good) or 1 (bad)")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite numbers")
    yi = y.astype(np.int64)
    if need_both and (yi.sum() == 0 or yi.sum() == len(yi)):
        raise ValueError("the evaluation rows need both goods and bads")
    return yi, s


def _cumulative(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted by score, highest first: (distinct thresholds, bads at or above each, rows at or above each)."""
    order = np.argsort(-s, kind="mergesort")
    ss, yy = s[order], y[order]
    last = np.r_[np.flatnonzero(ss[1:] != ss[:-1]), len(ss) - 1]  # the last row of each run of equal scores
    return ss[last], np.cumsum(yy)[last], last + 1


def roc_curve(y: Any, s: Any) -> RocCurve:
    """ROC over the distinct scores; AUC by the trapezoid rule (equal to the Mann-Whitney AUC, ties counting one half)."""
    y, s = _labels_scores(y, s)
    thr, bads, rows = _cumulative(y, s)
    n_bad, n_good = int(y.sum()), int(len(y) - y.sum())
    tpr = np.r_[0.0, bads / n_bad]
    fpr = np.r_[0.0, (rows - bads) / n_good]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    return RocCurve(fpr, tpr, np.r_[np.inf, thr], auc)


def ks_curve(y: Any, s: Any) -> KsCurve:
    """KS = max over cut-offs t of |share of bads with score >= t - share of goods with score >= t|."""
    y, s = _labels_scores(y, s)
    thr, bads, rows = _cumulative(y, s)
    n_bad, n_good = int(y.sum()), int(len(y) - y.sum())
    cum_bad, cum_good = bads / n_bad, (rows - bads) / n_good
    # the gap times n_bad * n_good, in integers: equal gaps compare equal, so the first (highest) cut-off wins
    scaled = np.abs(bads * n_good - (rows - bads) * n_bad)
    k = int(np.argmax(scaled))
    return KsCurve(thr, cum_bad, cum_good, float(abs(cum_bad[k] - cum_good[k])), float(thr[k]), float(rows[k] / len(y)))


def gain_curve(y: Any, s: Any) -> GainCurve:
    """Cumulative gain at each distinct score: (share of rows with score >= t, share of bads with score >= t)."""
    y, s = _labels_scores(y, s)
    _, bads, rows = _cumulative(y, s)
    return GainCurve(np.r_[0.0, rows / len(y)], np.r_[0.0, bads / int(y.sum())])


def decile_table(y: Any, s: Any, groups: int = 10) -> tuple[DecileRow, ...]:
    """Rows sorted by score, highest first (ties in row order), cut into ``groups`` groups of near-equal size."""
    y, s = _labels_scores(y, s)
    if groups < 1:
        raise ValueError("groups must be at least 1")
    order = np.argsort(-s, kind="mergesort")
    n_bad, rate = int(y.sum()), float(y.mean())
    out: list[DecileRow] = []
    seen_rows = seen_bads = 0
    for k, idx in enumerate(np.array_split(order, min(groups, len(y))), start=1):
        bads = int(y[idx].sum())
        seen_rows += len(idx)
        seen_bads += bads
        captured = seen_bads / n_bad
        out.append(DecileRow(k, len(idx), bads, float(s[idx].min()), float(s[idx].max()), bads / len(idx),
                             (bads / len(idx)) / rate, captured, captured / (seen_rows / len(y))))
    return tuple(out)


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def confusion_at(y: Any, s: Any, cutoffs: Sequence[float] = DEFAULT_CUTOFFS) -> tuple[CutoffRow, ...]:
    """The confusion table at each cut-off: a row is flagged bad when its score is at or above the cut-off."""
    y, s = _labels_scores(y, s, need_both=False)
    bad = y == 1
    out = []
    for c in cutoffs:
        flag = s >= c
        tp, fp = int(np.sum(flag & bad)), int(np.sum(flag & ~bad))
        fn, tn = int(np.sum(~flag & bad)), int(np.sum(~flag & ~bad))
        out.append(CutoffRow(float(c), tp, fp, tn, fn, (tp + fp) / len(y), _ratio(tp, tp + fp), _ratio(tp, tp + fn),
                             _ratio(fp, fp + tn), (tp + tn) / len(y), _ratio(fn, fn + tn)))
    return tuple(out)


def score_distribution(y: Any, s: Any, bins: int = 20, range_: tuple[float, float] | None = None) -> ScoreDistribution:
    """Histogram counts of goods' and bads' scores over ``bins`` equal-width bins (default: the scores' range)."""
    y, s = _labels_scores(y, s, need_both=False)
    lo, hi = range_ if range_ is not None else (float(s.min()), float(s.max()))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    goods, _ = np.histogram(s[y == 0], edges)
    bads, _ = np.histogram(s[y == 1], edges)
    return ScoreDistribution(edges, goods, bads)


def population_stability(expected: Any, actual: Any, bins: int = 10, edges: Sequence[float] | None = None,
                         expected_name: str = "training", actual_name: str = "test") -> Psi:
    """PSI of ``actual`` against ``expected`` scores.

    Bins are cut at the ``expected`` scores' quantiles (``1/bins, 2/bins, ...``; repeated cut points merged)
    unless ``edges`` (the inner cut points) are given; a score equal to a cut point falls in the bin above it.
    Each share is floored at :data:`PSI_FLOOR` before ``(a - e) * ln(a / e)`` is summed.
    """
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.ndim != 1 or a.ndim != 1 or len(e) == 0 or len(a) == 0:
        raise ValueError("PSI needs two non-empty 1-D score arrays")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(a))):
        raise ValueError("scores must be finite numbers")
    if edges is None:
        if bins < 1:
            raise ValueError("bins must be at least 1")
        cuts = np.unique(np.quantile(e, np.arange(1, bins) / bins))
    else:
        cuts = np.asarray(sorted(float(v) for v in edges), dtype=float)
    e_n = np.bincount(np.searchsorted(cuts, e, side="right"), minlength=len(cuts) + 1)
    a_n = np.bincount(np.searchsorted(cuts, a, side="right"), minlength=len(cuts) + 1)
    e_sh, a_sh = e_n / len(e), a_n / len(a)
    terms = (np.maximum(a_sh, PSI_FLOOR) - np.maximum(e_sh, PSI_FLOOR)) * np.log(np.maximum(a_sh, PSI_FLOOR) / np.maximum(e_sh, PSI_FLOOR))
    bounds = np.r_[-np.inf, cuts, np.inf]
    rows = tuple(PsiBin(float(bounds[k]), float(bounds[k + 1]), int(e_n[k]), int(a_n[k]), float(e_sh[k]), float(a_sh[k]),
                        float(terms[k])) for k in range(len(cuts) + 1))
    return Psi(float(terms.sum()), rows, expected_name, actual_name)


def psi_verdict(value: float) -> str:
    """The usual reading of a PSI: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a significant shift."""
    if value < 0.1:
        return "stable"
    if value < 0.25:
        return "moderate shift"
    return "significant shift"


def brier_score(y: Any, p: Any) -> float:
    """Mean squared difference between the probability of bad and the label."""
    y, p = _labels_scores(y, p, need_both=False)
    return float(np.mean((p - y) ** 2))


def calibration(y: Any, p: Any, bins: int = 10) -> Calibration:
    """Reliability curve over ``bins`` equal-width bins of [0, 1] (binned as ``sklearn.calibration.calibration_curve``)."""
    y, p = _labels_scores(y, p, need_both=False)
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError("calibration needs probabilities in [0, 1]")
    edges = np.linspace(0.0, 1.0, bins + 1)
    ids = np.searchsorted(edges[1:-1], p)
    out = []
    for k in range(bins):
        m = ids == k
        if m.any():
            out.append(CalibrationBin(float(edges[k]), float(edges[k + 1]), int(m.sum()), float(p[m].mean()), float(y[m].mean())))
    rate = float(y.mean())
    return Calibration(tuple(out), brier_score(y, p), rate * (1.0 - rate))


def evaluate_model(name: str, y: Any, p: Any, cutoffs: Sequence[float] = DEFAULT_CUTOFFS) -> ModelEvaluation:
    """Every metric of one model: ``p`` is its probability of bad on the rows labelled ``y``."""
    y, p = _labels_scores(y, p)
    return ModelEvaluation(name=name, n=len(y), n_bad=int(y.sum()), roc=roc_curve(y, p), ks=ks_curve(y, p), gain=gain_curve(y, p),
                           deciles=decile_table(y, p), cutoffs=confusion_at(y, p, cutoffs),
                           distribution=score_distribution(y, p, range_=(0.0, 1.0)), calibration=calibration(y, p))


def build_evaluation(y_test: Any, scores: Mapping[str, Any], *, train_scores: Any = None, title: str = "Model evaluation",
                     subject: str = "", created: str = "", features: Mapping[str, Sequence[str]] | None = None,
                     notes: Sequence[str] = (), cutoffs: Sequence[float] = DEFAULT_CUTOFFS) -> Evaluation:
    """The evaluation of the first model in ``scores`` (name -> probability of bad on the rows ``y_test``), compared
    with the others on the same rows; ``train_scores`` (the first model's scores on its training rows) gives the PSI."""
    if not scores:
        raise ValueError("no model scores to evaluate")
    models = tuple(evaluate_model(name, y_test, p, cutoffs) for name, p in scores.items())
    first = next(iter(scores.values()))
    psi = None if train_scores is None else population_stability(train_scores, first)
    groups = tuple(FeatureGroup(str(party), tuple(str(n) for n in names)) for party, names in (features or {}).items())
    return Evaluation(title=title, subject=subject, created=created, models=models, psi=psi, features=groups, notes=tuple(notes))


def load_scores_csv(path: Path, *, label_column: str = "label", score_columns: Sequence[str] = ("score",),
                    split_column: str = "split") -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """Read a scores file: a label column, one probability column per model, and optionally a split column.

    When ``split_column`` is present, rows marked ``train`` give the first model's training scores (for the
    PSI) and rows marked ``test`` are evaluated; otherwise every row is evaluated and there is no PSI.
    Returns ``(labels, {column: scores}, train_scores or None)``.

    Raises:
        DataError: the file cannot be read or lacks a column; messages name columns and line counts, never a value.
    """
    import pandas as pd

    from ..errors import DataError

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the scores file ({type(exc).__name__})") from None
    missing = [c for c in (label_column, *score_columns) if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    train = None
    if split_column in df.columns:
        split = df[split_column].astype(str).str.strip().str.lower()
        unknown = int((~split.isin(["train", "test"])).sum())
        if unknown:
            raise DataError(f"{path}: {unknown} row(s) have a {split_column} other than train or test")
        train = pd.to_numeric(df.loc[split == "train", score_columns[0]], errors="coerce").to_numpy(dtype=float)
        df = df.loc[split == "test"]
        if len(train) == 0:
            train = None
    y = pd.to_numeric(df[label_column], errors="coerce").to_numpy(dtype=float)
    if len(y) == 0:
        raise DataError(f"{path}: no rows to evaluate" + (f" (no {split_column} = test row)" if train is not None else ""))
    if np.any(~np.isin(y, (0.0, 1.0))):
        raise DataError(f"{path}: the {label_column} column must hold 0 (good) or 1 (bad) on every evaluated row")
    scores = {c: pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float) for c in score_columns}
    for c, v in {**scores, **({} if train is None else {"train " + score_columns[0]: train})}.items():
        bad = int(np.sum(~np.isfinite(v) | (v < 0) | (v > 1)))
        if bad:
            raise DataError(f"{path}: {bad} row(s) of {c} are not probabilities in [0, 1]")
    return y.astype(np.int64), scores, train


# --------------------------------------------------------------------------- figures (inline SVG)

_COLORS = ("#1f5fae", "#d2691e", "#2e8b57", "#8e44ad")
_GOOD, _BAD = "#2e8b57", "#c5221f"


def _label(text: str) -> str:
    """A user-given name as matplotlib text: ``$`` would start mathtext, a leading ``_`` hides a legend entry."""
    text = text.replace("$", r"\$")
    return "\u200b" + text if text.startswith("_") else text


@functools.cache
def _rc() -> dict[str, Any]:
    return {"svg.fonttype": "path", "svg.hashsalt": "fedcredit-evaluation", "font.family": "DejaVu Sans", "font.size": 9.5,
            "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}


def _svg(fig: Any, key: str, title: str) -> str:
    """The figure as an inline ``<svg>``: no XML prolog or metadata, ids unique to this figure, an escaped ``<title>``."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None}, bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    prefix = f"ev-{key}-"
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = re.sub(r'(xlink:href|href)="#([^"]+)"', lambda m: f'{m.group(1)}="#{prefix}{m.group(2)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", text)
    head_end = text.index(">") + 1
    head = text[:head_end].replace("<svg ", f'<svg class="chart" role="img" aria-label="{html.escape(title, quote=True)}" ', 1)
    return head + f"\n <title>{html.escape(title, quote=False)}</title>" + text[head_end:]


def _thin(n: int, points: int = 800) -> np.ndarray:
    """At most ``points`` indices of a curve of ``n`` points, evenly spread, first and last kept (for drawing only:
    at a chart's size the thinned curve looks the same, and the page stays small; every metric uses all points)."""
    return np.arange(n) if n <= points else np.unique(np.linspace(0, n - 1, points).round().astype(np.int64))


def _figure(width: float = 6.0, height: float = 4.2) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _fig_roc(ev: Evaluation) -> str:
    fig = _figure(5.6, 4.6)
    ax = fig.add_subplot()
    for k, m in enumerate(ev.models):
        t = _thin(len(m.roc.fpr))
        ax.plot(m.roc.fpr[t], m.roc.tpr[t], color=_COLORS[k % len(_COLORS)], lw=2 if k == 0 else 1.5,
                label=_label(f"{m.name} (AUC {m.auc:.4f})"))
    ax.plot([0, 1], [0, 1], color="#888888", lw=1, ls="--", label="random (AUC 0.5)")
    ax.set_xlabel("false positive rate (share of goods flagged)")
    ax.set_ylabel("true positive rate (share of bads flagged)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=8.5)
    ax.set_title("ROC curve")
    return _svg(fig, "roc", "ROC curve")


def _fig_ks(ev: Evaluation) -> str:
    m = ev.primary
    fig = _figure(6.2, 4.2)
    ax = fig.add_subplot()
    share = np.r_[0.0, (m.ks.cum_bad * m.n_bad + m.ks.cum_good * (m.n - m.n_bad)) / m.n]
    t = _thin(len(share))
    ax.plot(share[t], np.r_[0.0, m.ks.cum_bad][t], color=_BAD, lw=2, label="bads at or above the cut-off")
    ax.plot(share[t], np.r_[0.0, m.ks.cum_good][t], color=_GOOD, lw=2, label="goods at or above the cut-off")
    k = int(np.flatnonzero(m.ks.thresholds == m.ks.cutoff)[0])
    ax.vlines(share[k + 1], m.ks.cum_good[k], m.ks.cum_bad[k], color="#1d2430", lw=1.5, ls=":",
              label=f"KS {m.ks.ks:.4f} at score {m.ks.cutoff:.4f}")
    ax.set_xlabel("share of the population flagged (highest scores first)")
    ax.set_ylabel("cumulative share")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=8.5)
    ax.set_title(_label(f"KS curve: {m.name}"))
    return _svg(fig, "ks", "KS curve")


def _fig_gain_lift(ev: Evaluation) -> str:
    fig = _figure(9.6, 4.0)
    gain, lift = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for k, m in enumerate(ev.models):
        c = _COLORS[k % len(_COLORS)]
        t = _thin(len(m.gain.population))
        gain.plot(m.gain.population[t], m.gain.captured[t], color=c, lw=2 if k == 0 else 1.5, label=_label(m.name))
        x = np.array([r.n for r in m.deciles]).cumsum() / m.n
        lift.plot(x, [r.cum_lift for r in m.deciles], color=c, marker="o", ms=3.5, lw=2 if k == 0 else 1.5, label=_label(m.name))
    gain.plot([0, 1], [0, 1], color="#888888", lw=1, ls="--", label="random")
    gain.set_xlabel("share of the population targeted (highest scores first)")
    gain.set_ylabel("share of all bads captured")
    gain.set_xlim(0, 1)
    gain.set_ylim(0, 1.01)
    gain.set_title("Cumulative gain")
    gain.legend(loc="lower right", fontsize=8.5)
    lift.axhline(1.0, color="#888888", lw=1, ls="--")
    lift.set_xlabel("share of the population targeted (by decile)")
    lift.set_ylabel("cumulative lift")
    lift.set_xlim(0, 1.02)
    lift.set_ylim(bottom=0)
    lift.set_title("Cumulative lift")
    lift.legend(loc="upper right", fontsize=8.5)
    fig.subplots_adjust(wspace=0.3)
    return _svg(fig, "gain", "Cumulative gain and lift")


def _fig_distribution(ev: Evaluation) -> str:
    m = ev.primary
    d = m.distribution
    fig = _figure(6.2, 4.0)
    ax = fig.add_subplot()
    width = np.diff(d.edges)
    for counts, color, name in ((d.goods, _GOOD, "goods"), (d.bads, _BAD, "bads")):
        total = max(int(counts.sum()), 1)
        ax.bar(d.edges[:-1], counts / total, width=width, align="edge", color=color, alpha=0.5, edgecolor=color,
               label=f"{name} ({int(counts.sum())})")
    ax.set_xlabel("score (probability of bad)")
    ax.set_ylabel("share of the class in the bin")
    ax.set_xlim(float(d.edges[0]), float(d.edges[-1]))
    ax.legend(loc="upper right", fontsize=8.5)
    ax.set_title(_label(f"Score distribution: {m.name}"))
    return _svg(fig, "dist", "Score distribution of goods and bads")


def _fig_calibration(ev: Evaluation) -> str:
    fig = _figure(5.6, 4.6)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#888888", lw=1, ls="--", label="perfectly calibrated")
    for k, m in enumerate(ev.models):
        b = m.calibration.bins
        ax.plot([x.mean_score for x in b], [x.observed_rate for x in b], color=_COLORS[k % len(_COLORS)], marker="o", ms=4,
                lw=2 if k == 0 else 1.5, label=_label(f"{m.name} (Brier {m.brier:.4f})"))
    ax.set_xlabel("mean predicted probability of bad (per bin)")
    ax.set_ylabel("observed bad rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="upper left", fontsize=8.5)
    ax.set_title("Calibration (reliability curve)")
    return _svg(fig, "cal", "Calibration (reliability curve)")


def _fig_psi(psi: Psi) -> str:
    fig = _figure(6.2, 3.8)
    ax = fig.add_subplot()
    x = np.arange(len(psi.bins))
    ax.bar(x - 0.2, [b.expected_share for b in psi.bins], width=0.4, color="#7f8fa6", label=_label(psi.expected_name))
    ax.bar(x + 0.2, [b.actual_share for b in psi.bins], width=0.4, color=_COLORS[0], label=_label(psi.actual_name))
    ax.set_xticks(x, [str(k + 1) for k in x])
    ax.set_xlabel(_label(f"score bin (cut at the {psi.expected_name} scores' quantiles)"))
    ax.set_ylabel("share of rows")
    ax.legend(loc="upper right", fontsize=8.5)
    ax.set_title(f"Population stability: PSI {psi.value:.4f} ({psi.verdict})")
    return _svg(fig, "psi", "Population stability of the score")


def figures(ev: Evaluation) -> dict[str, str]:
    """Every chart of the report as inline SVG markup, by key."""
    import matplotlib

    with matplotlib.rc_context(_rc()):
        out = {"roc": _fig_roc(ev), "ks": _fig_ks(ev), "gain": _fig_gain_lift(ev), "dist": _fig_distribution(ev),
               "cal": _fig_calibration(ev)}
        if ev.psi is not None:
            out["psi"] = _fig_psi(ev.psi)
    return out


# --------------------------------------------------------------------------- rendering


def _num(v: Any, digits: int = 4) -> str:
    """A number for a table cell: ``-`` for none or nan, ``inf`` and ``-inf`` spelled out."""
    if v is None:
        return "-"
    v = float(v)
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "+inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


def _pct(v: Any, digits: int = 1) -> str:
    if v is None or math.isnan(float(v)):
        return "-"
    return f"{100.0 * float(v):.{digits}f}%"


@functools.cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("fedcredit.runtime.audit", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters.update(num=_num, pct=_pct)
    return env


def render_evaluation(ev: Evaluation) -> str:
    """The report as one self-contained HTML page: inline CSS and SVG, no scripts, no external resources."""
    from markupsafe import Markup

    svgs = {k: Markup(v) for k, v in figures(ev).items()}  # built here from numbers; their titles are escaped in _svg
    text = _environment().get_template("evaluation.html.j2").render(ev=ev, m=ev.primary, figs=svgs)
    return text.encode("utf-8", "replace").decode("utf-8")
