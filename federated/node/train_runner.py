"""A party's training: its rows of the intersection, split and standardized, through its two-party LR role.

:func:`run_training` splits the aligned rows into training and test rows (from the ids and the job's seed,
so both parties agree without a message), standardizes this party's features on its training rows, runs
its role of the two-party LR (``fedcredit.protocols.hetero_lr.two_party``) and writes its ``model.json``: its
weights, or its shares of them when they stay shared, and its standardizer.

Training checkpoints after every batch (CKKS: every 4th) and every epoch (``train.checkpoint.json``, 0600: the
role's secret seed, its weight shares and the epoch's partial loss terms). A node restarted mid-training resumes its role from its last
checkpoint: it re-creates what it sent since then byte for byte (the relay has it; it is not sent again) and
fetches again what the peer sent in those batches (the relay keeps delivered messages within ``retain_bytes`` per
job), so the job ends with the model and metrics it would have had without the crash.

Owns: the model artifact's format. May import: ``protocols``, :mod:`fedcredit.runtime.plan`,
:mod:`fedcredit.runtime.driver`, :mod:`fedcredit.runtime.node.workdir`, :mod:`fedcredit.runtime.node.results` and :mod:`fedcredit.runtime.node.data`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fedcredit.protocols.core import Progress, Role
from fedcredit.protocols.hetero_lr import HeteroLRParams, Standardizer, kfold_assign, split_train_test
from fedcredit.protocols.hetero_lr import two_party
from fedcredit.protocols.hetero_lr.two_party import TrainCheckpoint, TwoPartyStep

from .data import LocalDataset
from ..plan import TrainPlan
from .results import Metrics, TrainingSummary
from ..driver import RoleRun
from .psi_runner import restore_endpoint
from .workdir import JobFiles
from ..transcript import TranscriptWriter

__all__ = ["TrainRun", "run_training"]

_LOG = logging.getLogger(__name__)

#: Batches between a CKKS role's mid-epoch checkpoints (Paillier: every batch).
CKKS_CHECKPOINT_BATCHES = 4


@dataclass(frozen=True)
class TrainRun:
    """What training gave this party: its wall time and, for the guest, the summary and the test metrics."""

    seconds: float
    summary: TrainingSummary | None = None
    metrics: Metrics | None = None


def run_training(run: RoleRun, plan: TrainPlan, data: LocalDataset, rows: np.ndarray, aligned: list[str], *,
                 job_id: str, files: JobFiles, transcript: TranscriptWriter | None = None) -> TrainRun:
    """Run this party's LR role on its ``rows`` of the intersection (ids ``aligned``) and write its model.

    With ``transcript`` (the node's), the role checkpoints after every batch (CKKS: every 4th) and epoch and resumes
    from ``files``' training checkpoint if there is one (not with early stopping or cross-validation: ``plan.resumable``).
    With ``plan.cv_folds``, ``k`` trainings over the folds of the aligned rows come first (the guest reports
    their held-out AUC and KS); the model is always the final fit on the train/test split."""
    t0 = time.monotonic()
    resume = None
    checkpoint = transcript is not None and plan.resumable
    state = files.load_train_checkpoint() if checkpoint else None
    if state is not None and transcript is not None:
        resume = TrainCheckpoint.from_dict(state)
        restore_endpoint(run, TwoPartyStep, resume.sent, resume.recv_from, transcript, files)
        transcript.event("resumed_training", epoch=resume.epoch, batch=resume.batch, sent=dict(resume.sent), recv_from=dict(resume.recv_from))
        _LOG.warning("job %s: resuming training from its checkpoint: epoch %d, batch %d", job_id, resume.epoch, resume.batch)
    # A CKKS host's checkpoint holds its loss accumulator (~3 MB at default_credit's size; ~10 MB relayed per batch):
    # every 4th batch bounds what a restart fetches again to ~42 MB, far below relay.retain_bytes, at a quarter of the
    # writes. A Paillier checkpoint is a few KB: every batch.
    every = 1 if plan.lr.he_scheme == "paillier" else CKKS_CHECKPOINT_BATCHES
    # the coordinator now sees this node in training (where a restart resumes), before the first batch ends;
    # 0 of 0 is never held back by the progress reporter's rate limit
    run.endpoint.progress(Progress("train", 0, 0, {"phase": "setup"}))
    x = data.features[rows]
    y = data.labels[rows] if run.role is Role.GUEST else None
    cv = _cross_validate(run, plan, x, y, aligned) if plan.cv_folds else None
    train_pos, test_pos = split_train_test(aligned, plan.seed, plan.test_fraction)
    fit = _fit(run, plan, x, y, aligned, train_pos, test_pos, checkpoint=checkpoint, resume=resume, checkpoint_every=every)
    model, std = fit.model, fit.std
    params = plan.lr
    summary = metrics = None
    extra: dict[str, Any] = {}
    if run.role is Role.GUEST:
        early = _early_stopping(plan, fit)
        metrics = Metrics(auc=model.metrics.auc, ks=model.metrics.ks, n_test=model.metrics.n_test,
                          best_epoch=model.best_epoch, stopped_epoch=model.epochs if early else None, cv=cv)
        # the guest learns the epoch losses (the coordinator runs no role)
        summary = TrainingSummary(n_train=fit.n_train, n_test=int(len(test_pos)), engine=plan.engine, topology=plan.topology,
                                  reveal_weights=plan.reveal_weights, epochs=model.epochs, losses=tuple(model.losses),
                                  key_bits=params.key_bits if params.he_scheme == "paillier" else None,
                                  rlwe_degree=params.rlwe_degree if params.he_scheme != "paillier" else None,
                                  class_weight=_class_weight_json(params), early_stopping=early)
        extra = {"metrics": metrics.to_dict()}
    if model.best_epoch is not None:
        extra["best_epoch"] = model.best_epoch
    files.write_model({"job_id": job_id, "role": run.role.value, **_weights_json(data, model, params),
                       "standardizer": _std_json(data, std), "epochs": model.epochs, "losses": list(model.losses), **extra})
    return TrainRun(seconds=time.monotonic() - t0, summary=summary, metrics=metrics)


@dataclass(frozen=True)
class _Fit:
    model: Any  # GuestModel or HostModel
    std: Standardizer
    n_train: int
    n_validation: int


def _fit(run: RoleRun, plan: TrainPlan, x: np.ndarray, y: np.ndarray | None, aligned: list[str], train_pos: np.ndarray,
         test_pos: np.ndarray, *, checkpoint: bool = False, resume: TrainCheckpoint | None = None,
         checkpoint_every: int = 1) -> _Fit:
    """One run of this party's role: early stopping's validation rows carved from ``train_pos`` (with the seed),
    the standardizer fitted on the remaining training rows, then the two-party LR."""
    val_pos = np.zeros(0, dtype=np.int64)
    if plan.validation_fraction > 0:
        sub_tr, sub_val = split_train_test([aligned[i] for i in train_pos], plan.seed, plan.validation_fraction,
                                           purpose="validation")
        train_pos, val_pos = train_pos[sub_tr], train_pos[sub_val]
    std = Standardizer.fit(x[train_pos], clip=plan.clip)
    x_train, x_test = std.transform(x[train_pos]), std.transform(x[test_pos])
    x_val = std.transform(x[val_pos]) if len(val_pos) else None
    pool = run.map_fn(len(train_pos), minimum=2048)
    if y is not None:
        model = run.drive(two_party.guest_program(x_train, y[train_pos], x_test, y[test_pos], plan.lr, run.rng, map_fn=pool,
                                                  checkpoint=checkpoint, resume=resume, checkpoint_every=checkpoint_every,
                                                  x_val=x_val, y_val=y[val_pos] if x_val is not None else None))
    else:
        model = run.drive(two_party.host_program(x_train, x_test, plan.lr, run.rng, map_fn=pool, checkpoint=checkpoint,
                                                 resume=resume, checkpoint_every=checkpoint_every, x_val=x_val))
    return _Fit(model, std, int(len(train_pos)), int(len(val_pos)))


def _cross_validate(run: RoleRun, plan: TrainPlan, x: np.ndarray, y: np.ndarray | None, aligned: list[str]
                    ) -> dict[str, Any] | None:
    """``k`` runs of the role, fold ``f`` held out in run ``f`` (folds from the ids and the seed, as both parties
    derive them). The guest returns each fold's AUC and KS on its held-out rows, and their mean and standard
    deviation; the host, which learns no metric, None."""
    assert plan.cv_folds is not None
    fold = kfold_assign(aligned, plan.seed, plan.cv_folds)
    # The folds' weights stay secret-shared: the held-out folds cover every aligned row, so with revealed
    # weights the guest would learn the host's partial scores u_H on all of them (max_test_fraction bounds
    # that for the test rows). With shared weights it learns each row's joint score z of one fold model.
    folds_plan = replace(plan, lr=replace(plan.lr, reveal_weights="shared"))
    per_fold = []
    for f in range(plan.cv_folds):
        fit = _fit(run, folds_plan, x, y, aligned, np.flatnonzero(fold != f), np.flatnonzero(fold == f))
        if y is not None:
            m = fit.model.metrics
            per_fold.append({"fold": f, "auc": m.auc, "ks": m.ks, "n_train": fit.n_train, "n_test": m.n_test,
                             "epochs": fit.model.epochs})
    if y is None:
        return None
    aucs, kss = np.array([r["auc"] for r in per_fold]), np.array([r["ks"] for r in per_fold])
    return {"folds": plan.cv_folds, "per_fold": per_fold, "auc_mean": float(aucs.mean()), "auc_std": float(aucs.std()),
            "ks_mean": float(kss.mean()), "ks_std": float(kss.std())}


def _early_stopping(plan: TrainPlan, fit: _Fit) -> dict[str, Any] | None:
    if not fit.n_validation:
        return None
    m = fit.model
    return {"validation_fraction": plan.validation_fraction, "n_validation": fit.n_validation,
            "metric": plan.lr.validation_metric, "patience": plan.lr.patience, "best_epoch": m.best_epoch,
            "stopped_epoch": m.epochs, "history": list(m.validation)}


def _class_weight_json(params: HeteroLRParams) -> Any:
    cw = params.class_weight
    return {"0": cw[0], "1": cw[1]} if isinstance(cw, tuple) else cw


def _weights_json(data: LocalDataset, model: Any, params: HeteroLRParams) -> dict[str, Any]:
    """The model's weights by feature name, or, when they stay secret-shared, this party's part of them."""
    if model.shares is None:
        out: dict[str, Any] = {"features": {n: float(w) for n, w in zip(data.feature_names, model.weights)}}
        if getattr(model, "intercept", None) is not None:
            out["intercept"] = model.intercept
        return out
    sh = model.shares
    own = dict(zip(data.feature_names, (str(v) for v in sh.own)))
    if len(sh.own) == len(data.feature_names) + 1:
        own["(intercept)"] = str(sh.own[-1])
    return {"features": list(data.feature_names),
            "weight_shares": {"what": "this party's additive shares mod 2^ring_bits at scale 2^frac_bits; "
                                      "neither party's part alone reveals any weight",
                              "ring_bits": sh.ring_bits, "frac_bits": sh.frac_bits,
                              "feature_frac_bits": params.feature_frac_bits,
                              "own": own, "peer": [str(v) for v in sh.peer]}}


def _std_json(data: LocalDataset, std: Standardizer) -> dict[str, Any]:
    return {n: {"mean": float(m), "scale": float(s), "clip": std.clip} for n, m, s in zip(data.feature_names, std.mean, std.scale)}
