"""A party's own result of a job: one typed record per party, and the part of it that is public.

A party writes its :class:`JobResult` to ``jobs/<job>/result.json`` in its workdir (0600,
:mod:`fedcredit.runtime.node.workdir`), and sends the coordinator only its :meth:`JobResult.public` part:
the run metadata named by :data:`PUBLIC_RESULT_KEYS`, which the coordinator could time or count
itself. Metrics, losses, sizes and paths stay on the party's node: the platform's operator runs
the coordinator, so what the coordinator stores the platform may read.

The JSON form keys what only this party can say by its node name (``{"seconds": {"bank": ...}}``),
so a simulation holding every node's files (:class:`fedcredit.runtime.cli.demo.Cluster`) can merge the
parties' records into one view without one overwriting the other.

Owns: the result types and their JSON form. May import: the standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["PUBLIC_RESULT_KEYS", "Traffic", "Metrics", "PsiOutcome", "TrainingSummary", "ScoringSummary", "JobResult", "merge_views"]

#: The parts of a party's result that go to the coordinator, each keyed by the party's own name: run metadata
#: the coordinator could time or count itself. The coordinator keeps nothing else a party reports.
PUBLIC_RESULT_KEYS = ("seconds", "bytes", "peak_rss_mb")

_CKKS_KEYS = "rlwe (CKKS ciphertexts, coefficient encoding)"


def _s(seconds: float) -> float:
    return round(seconds, 3)


@dataclass(frozen=True)
class Traffic:
    """Payload bytes this party sent and received through the relay."""

    sent: int
    received: int

    def to_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "received": self.received}


@dataclass(frozen=True)
class Metrics:
    """The joint model on the held-out rows, as the guest evaluates it."""

    auc: float
    ks: float
    n_test: int
    best_epoch: int | None = None  # early stopping: the epoch whose weights the model keeps
    stopped_epoch: int | None = None  # early stopping: the last epoch trained
    cv: dict[str, Any] | None = None  # k-fold cross-validation: per fold and mean ± std AUC/KS (not in "joint")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"auc": self.auc, "ks": self.ks, "n_test": self.n_test}
        if self.stopped_epoch is not None:
            out.update(best_epoch=self.best_epoch, stopped_epoch=self.stopped_epoch)
        return out


@dataclass(frozen=True)
class PsiOutcome:
    """What this party's PSI gave it.

    Attributes:
        protocol: balanced PSI: ``ecdh`` or ``ot``; None for unbalanced PSI.
        seconds: balanced PSI: its wall time.
        online_seconds, offline_seconds: unbalanced PSI: the exchange, and (the host) reading or rebuilding its cache.
        intersection_size: None where this party does not learn it.
        duplicates_removed: rows this party's ``duplicates: dedupe`` dropped before PSI (balanced PSI).
        cache_rebuilt: the unbalanced host: whether it blinded its whole set again.
        cache_received: the unbalanced guest: whether the host shipped it a new cache.
    """

    protocol: str | None = None
    seconds: float | None = None
    online_seconds: float | None = None
    offline_seconds: float | None = None
    intersection_size: int | None = None
    duplicates_removed: int = 0
    cache_rebuilt: bool | None = None
    cache_received: bool | None = None

    @property
    def unbalanced(self) -> bool:
        return self.protocol is None

    def to_dict(self, node: str) -> dict[str, Any]:
        out: dict[str, Any]
        if self.unbalanced:
            times = {"offline": _s(self.offline_seconds)} if self.offline_seconds is not None else {}
            out = {"unbalanced": True, "seconds": {node: {**times, "online": _s(self.online_seconds or 0.0)}}}
            if self.cache_rebuilt is not None:
                out["cache_rebuilt"] = {node: self.cache_rebuilt}
            if self.cache_received is not None:
                out["cache_received"] = self.cache_received
        else:
            out = {"seconds": {node: _s(self.seconds or 0.0)}, "protocol": self.protocol}
            if self.duplicates_removed:
                out["duplicates_removed"] = {node: self.duplicates_removed}
        if self.intersection_size is not None:
            out["intersection_size"] = self.intersection_size
        return out


@dataclass(frozen=True)
class TrainingSummary:
    """The guest's account of a training run: sizes, the job's choices, and the agreed epoch losses."""

    n_train: int
    n_test: int
    engine: str
    topology: str
    reveal_weights: str
    epochs: int
    losses: tuple[float, ...]
    key_bits: int | None = None  # Paillier
    rlwe_degree: int | None = None  # CKKS
    class_weight: Any = None  # None, "balanced" or {"0": w0, "1": w1}
    early_stopping: dict[str, Any] | None = None  # validation rows, metric, patience, best and stopped epoch, history

    def to_dict(self) -> dict[str, Any]:
        keys: dict[str, Any] = {"key_bits": self.key_bits} if self.engine == "paillier" else \
            {"he_scheme": _CKKS_KEYS, "rlwe_degree": self.rlwe_degree}
        out = {"n_train": self.n_train, "n_test": self.n_test, "engine": self.engine, "topology": self.topology,
               "reveal_weights": self.reveal_weights, "epochs": self.epochs, "losses": list(self.losses), **keys}
        if self.class_weight is not None:
            out["class_weight"] = self.class_weight
        if self.early_stopping is not None:
            out["early_stopping"] = self.early_stopping
        return out


@dataclass(frozen=True)
class ScoringSummary:
    """A party's account of a score job (#14). The platform's: the model, the mode and the query count (all it
    learns in private mode). The bank's adds how many applicants were found, where it wrote the scores, and,
    when its applicants carry labels, the AUC and KS of the scored rows."""

    model_id: str
    version: str
    mode: str
    queries: int
    seconds: float
    rows_scored: int | None = None
    not_found: int | None = None
    scores_file: str | None = None
    auc: float | None = None
    ks: float | None = None
    table_transferred: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model_id": self.model_id, "model_version": self.version, "mode": self.mode, "queries": self.queries}
        for k in ("rows_scored", "not_found", "scores_file", "auc", "ks", "table_transferred"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        return out


@dataclass(frozen=True)
class JobResult:
    """One party's result of one job.

    Attributes:
        node: the party's name, which keys its own entries in the JSON form.
        psi: what PSI gave this party.
        traffic: the bytes it moved through the relay.
        train_seconds: a ``train`` job: the training's wall time.
        training, metrics: the guest of a ``train`` job: its training summary and the joint model's test metrics.
        transcript: the path of this party's transcript of the job.
        peak_rss_mb: this process's peak resident memory when the job ended.
    """

    node: str
    psi: PsiOutcome
    traffic: Traffic
    train_seconds: float | None = None
    training: TrainingSummary | None = None
    metrics: Metrics | None = None
    transcript: str | None = None
    peak_rss_mb: float | None = None
    scoring: ScoringSummary | None = None  # a score job (which runs no PSI)
    scorecard_metrics: Metrics | None = None  # the guest of a scorecard job: its total points on the test rows

    def to_dict(self) -> dict[str, Any]:
        me = self.node
        out: dict[str, Any] = {"psi": self.psi.to_dict(me)} if self.scoring is None else \
            {"scoring": self.scoring.to_dict(), "seconds": {me: {"score": _s(self.scoring.seconds)}}}
        if self.metrics is not None:
            out["metrics"] = {"joint": self.metrics.to_dict()}
            if self.metrics.cv is not None:
                out["metrics"]["cv"] = self.metrics.cv
        if self.scorecard_metrics is not None:
            out.setdefault("metrics", {})["scorecard"] = self.scorecard_metrics.to_dict()
        if self.training is not None:
            out["training"] = self.training.to_dict()
        if self.train_seconds is not None:
            out["seconds"] = {me: {"psi": _s(self.psi.seconds or 0.0), "train": _s(self.train_seconds)}}
        out["bytes"] = {me: self.traffic.to_dict()}
        if self.transcript is not None:
            out["artifacts"] = {me: {"transcript": self.transcript}}
        if self.peak_rss_mb is not None:
            out["peak_rss_mb"] = {me: round(self.peak_rss_mb, 1)}
        return out

    def to_json(self) -> str:
        """The content of ``result.json``."""
        return json.dumps(self.to_dict(), indent=2)

    def public(self) -> dict[str, Any]:
        """What goes to the coordinator: :data:`PUBLIC_RESULT_KEYS`, this node's entries only."""
        d = self.to_dict()
        return {k: {self.node: d[k][self.node]} for k in PUBLIC_RESULT_KEYS if k in d}

def merge_views(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two results' JSON forms (or their public parts) as one view: a deep merge.

    Each party keys what only it can say by its own name, so neither party's entries overwrite the other's."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge_views(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
