"""The demo's evaluation report: the joint model and the bank's features alone, on the job's own test rows.

Only a demo (or a benchmark) holding both parties' files can build this the way it is built here: it applies
each party's ``model.json`` (its standardizer and its revealed weights) to that party's rows of the job's
intersection, in the job's train/test split, and adds the two partial scores. The bank computed the same joint
scores on the test rows during the job (its AUC is ``metrics.joint.auc``); the report says whether they agree.
The training-row scores give the PSI; in production the bank would get them from a scoring job.

The bank-only model is the demo's reference of :func:`fedcredit.runtime.reference.reference_metrics`
(``guest_only``): sklearn on the bank's standardized training rows with the job's L2 strength.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedcredit.protocols.hetero_lr import Standardizer, split_train_test
from ..audit.evaluation import Evaluation, build_evaluation
from ..config import DatasetConfig
from ..errors import DataError
from ..node.data import load_dataset
from ..reference import fit_sklearn_lr

__all__ = ["PartyModel", "party_scores", "demo_evaluation", "sigmoid"]


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))  # = 1 / (1 + e^-z), without overflow


@dataclass(frozen=True)
class PartyModel:
    """One party's part of a trained model, as its ``model.json`` holds it (revealed weights only)."""

    features: tuple[str, ...]
    weights: np.ndarray
    standardizer: Standardizer
    intercept: float = 0.0

    @classmethod
    def from_json(cls, model: Mapping[str, Any]) -> "PartyModel":
        """Raises ``DataError`` when the weights stay secret-shared (``reveal_weights: shared``) or the file is incomplete."""
        if "weight_shares" in model:
            raise DataError("the model's weights stay secret-shared (reveal_weights: shared); no party's file holds them")
        try:
            feats = model["features"]
            names = tuple(str(n) for n in feats)
            std = model["standardizer"]
            clips = {std[n].get("clip") for n in names}
            clip = clips.pop() if len(clips) == 1 else None
            return cls(names, np.array([float(feats[n]) for n in names]),
                       Standardizer(np.array([float(std[n]["mean"]) for n in names]), np.array([float(std[n]["scale"]) for n in names]),
                                    None if clip is None else float(clip)),
                       float(model.get("intercept") or 0.0))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DataError("the model file is incomplete: it needs features with weights and a standardizer per feature") from None

    def partial_score(self, x: np.ndarray) -> np.ndarray:
        """This party's share of the linear score on its raw feature rows (columns in ``features`` order)."""
        return self.standardizer.transform(np.asarray(x, dtype=float)) @ self.weights + self.intercept


def party_scores(model: PartyModel, x: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """``model``'s partial score on rows ``x`` whose columns are ``names`` (reordered to the model's features)."""
    index = {n: k for k, n in enumerate(names)}
    missing = [n for n in model.features if n not in index]
    if missing:
        raise DataError(f"the data lacks {len(missing)} of the model's features")
    return model.partial_score(np.asarray(x, dtype=float)[:, [index[n] for n in model.features]])


def _rows(ids: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    index = {i: k for k, i in enumerate(ids)}
    try:
        return np.array([index[i] for i in wanted], dtype=np.int64)
    except KeyError:
        raise DataError("an id of the intersection is not in the dataset file") from None


def demo_evaluation(*, guest_model: Path, host_model: Path, intersection: Path, guest_ds: DatasetConfig, host_ds: DatasetConfig,
                    seed: int, test_fraction: float, clip: float | None, l2: float, job_id: str, guest: str, host: str,
                    joint_auc: float | None = None) -> Evaluation:
    """Build the evaluation of a finished demo job from the parties' files (see the module docstring)."""
    from ..audit.evaluation import roc_curve

    g_model = PartyModel.from_json(json.loads(guest_model.read_text(encoding="utf-8")))
    h_model = PartyModel.from_json(json.loads(host_model.read_text(encoding="utf-8")))
    aligned = [line.strip() for line in intersection.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    g = load_dataset(guest_ds, require_label=True)
    h = load_dataset(host_ds, require_label=False)
    gx, hx = g.features[_rows(g.ids, aligned)], h.features[_rows(h.ids, aligned)]
    assert g.labels is not None
    y = g.labels[_rows(g.ids, aligned)].astype(np.int64)
    tr, te = split_train_test(aligned, seed, test_fraction)
    z = party_scores(g_model, gx, g.feature_names) + party_scores(h_model, hx, h.feature_names)
    std = Standardizer.fit(gx[tr], clip=clip)
    bank_only = fit_sklearn_lr(std.transform(gx[tr]), y[tr], l2=l2).predict_proba(std.transform(gx[te]))[:, 1]
    notes = [f"Evaluated on the job's {len(te)} held-out test rows of its {len(aligned)}-row intersection; the training rows "
             f"({len(tr)}) give the PSI. Demo only: the joint scores come from applying both parties' model files to their rows."]
    auc = roc_curve(y[te], z[te]).auc
    if joint_auc is not None:
        agree = "equal to" if abs(auc - joint_auc) < 1e-6 else "DIFFERENT from"
        notes.append(f"The joint model's test AUC here, {auc:.6f}, is {agree} the AUC {guest} computed in the job ({joint_auc:.6f}).")
    return build_evaluation(
        y[te], {f"joint federated ({guest} + {host})": sigmoid(z[te]), f"{guest} only (its own features)": bank_only},
        train_scores=sigmoid(z[tr]), title="fedcredit model evaluation", subject=job_id,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        features={guest: g_model.features, host: h_model.features}, notes=notes)


def write_demo_evaluation(out: Path, *, guest_files: Any, host_files: Any, guest_ds: DatasetConfig, host_ds: DatasetConfig,
                          spec: Any, job_id: str, guest: str, host: str, joint_auc: float | None) -> Path | str:
    """Write the demo job's evaluation report to ``out``; returns ``out``, or why it was not written.

    ``guest_files``/``host_files``: the parties' :class:`fedcredit.runtime.node.workdir.JobFiles`; ``spec``: the job's
    :class:`fedcredit.runtime.config.JobSpec` (its seed, test fraction, clip and L2)."""
    from ..audit.evaluation import render_evaluation

    try:
        ev = demo_evaluation(guest_model=guest_files.model, host_model=host_files.model, intersection=guest_files.intersection,
                             guest_ds=guest_ds, host_ds=host_ds, seed=spec.seed, test_fraction=spec.evaluation.test_fraction,
                             clip=spec.training.clip, l2=spec.training.l2, job_id=job_id, guest=guest, host=host, joint_auc=joint_auc)
    except (DataError, OSError, ValueError) as exc:
        return f"not written: {exc}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_evaluation(ev), encoding="utf-8")
    return out
