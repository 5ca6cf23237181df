"""A trained model as each party keeps it: a joint spec both parties share, and this party's part.

After a ``train`` job, each party writes ``models/<job>/`` (:class:`~fedcredit.runtime.node.workdir.ModelFiles`):

* ``spec.json`` -- the :class:`JointSpec`: the model id (the training job's id), the digest of the job spec
  both parties signed, each role's party, dataset and columns, which party holds the intercept, the engine,
  ``reveal_weights``, clipping and link, and ``version``: SHA-256 over all of it. Both parties derive it from
  the same signed job spec, so both compute the same version without a message; a scoring job checks it.
* ``part.json`` -- the :class:`ModelPart`: this party's feature list, standardizer (mean, scale, clip) and
  weights -- its own weights (``reveal_weights: owner``; the intercept at the bank) or its additive shares
  (``shared``).

Neither part alone scores: the bank's part has no weight for any platform feature, the platform's has no
intercept and none of the bank's features; with ``shared``, each part's shares are uniform on their own.
A score needs both partials (:mod:`fedcredit.protocols.scoring`).

A ``scorecard`` job's package (#15) has ``link: scorecard`` in its joint spec, and each party's part holds its
scorecard table (``scorecard``: per selected feature its bins, counts, WOE and points; the bank's base points) beside
its LR weights on the WOE columns. Its partial score is then its points (:meth:`ModelPart.partial`), and a score is
the sum of both parties' partial points: the scorecard's total.

Owns: the package's format. May import: ``protocols``, :mod:`fedcredit.runtime.plan` and
:mod:`fedcredit.runtime.node.workdir`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedcredit.protocols.binning import Scorecard, ScorecardParams
from fedcredit.protocols.scoring import partial_scores

from ..errors import ConfigError, DataError, NotFoundError
from .workdir import JobFiles, ModelFiles, NodeStore
from ..plan import JobPlan

__all__ = ["SPEC_FORMAT", "PART_FORMAT", "JointSpec", "ModelPart", "joint_spec", "write_package", "load_package", "list_packages"]

SPEC_FORMAT = "fedcredit.model-spec/1"
PART_FORMAT = "fedcredit.model-part/1"


@dataclass(frozen=True)
class JointSpec:
    """What both parts of a model share (module docstring). ``version`` hashes everything else."""

    model_id: str
    job_spec_sha256: str
    roles: dict[str, dict[str, Any]]  # guest/host -> party, dataset, columns (None: all the dataset's features)
    engine: str
    reveal_weights: str
    clip: float | None
    intercept: str = "guest"
    link: str = "logistic"
    format: str = SPEC_FORMAT

    def body(self) -> dict[str, Any]:
        return {"format": self.format, "model_id": self.model_id, "job_spec_sha256": self.job_spec_sha256, "roles": self.roles,
                "engine": self.engine, "reveal_weights": self.reveal_weights, "clip": self.clip, "intercept": self.intercept,
                "link": self.link}

    @property
    def version(self) -> str:
        return hashlib.sha256(json.dumps(self.body(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "version": self.version}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JointSpec":
        spec = cls(str(d["model_id"]), str(d["job_spec_sha256"]), dict(d["roles"]), str(d["engine"]), str(d["reveal_weights"]),
                   None if d.get("clip") is None else float(d["clip"]), str(d.get("intercept", "guest")), str(d.get("link", "logistic")),
                   str(d.get("format", SPEC_FORMAT)))
        if "version" in d and d["version"] != spec.version:
            raise DataError("the model spec's version does not hash its content: the file was changed")
        return spec


@dataclass(frozen=True)
class ModelPart:
    """One party's part of a model."""

    model_id: str
    version: str
    role: str
    party: str
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    clip: float | None
    weights: np.ndarray | None  # owner: this party's own weights, in ``features`` order
    intercept: float | None = None  # owner, bank only
    weight_shares: dict[str, Any] | None = field(default=None)  # shared: this party's shares (train_runner's form)
    scorecard: dict[str, Any] | None = field(default=None)  # a scorecard model: this party's table (Scorecard.to_dict)

    def partial(self, x: np.ndarray) -> np.ndarray:
        """This party's partial scores of rows ``x`` (its raw features in ``features`` order): standardized and
        clipped as in training, times its weights, plus the intercept where it holds it; for a scorecard, its
        points per row (its points of each feature's bin, and the bank its base points).

        Raises:
            ConfigError: the part holds weight shares, which do not score on their own."""
        if self.scorecard is not None:
            return Scorecard.from_dict(self.scorecard).partial_scores(x)
        if self.weights is None:
            raise ConfigError(f"model {self.model_id}: this party holds shares of the weights (reveal_weights: shared); "
                              "scoring a shared model needs a secure conversion that is not built yet")
        return partial_scores(x, self.mean, self.scale, self.clip, self.weights, self.intercept or 0.0)

    def probability(self, total: np.ndarray) -> np.ndarray:
        """The probability of default of a total score: ``sigmoid(z)``; for a scorecard, of its total points
        (``z = (offset − points) / factor``, from the card's base score, PDO and base odds)."""
        z = np.asarray(total, dtype=float)
        if self.scorecard is not None:
            s = ScorecardParams(**self.scorecard["scaling"])
            z = (s.offset - z) / s.factor
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": PART_FORMAT, "model_id": self.model_id, "version": self.version, "role": self.role,
                               "party": self.party, "features": list(self.features),
                               "standardizer": {"mean": [float(v) for v in self.mean], "scale": [float(v) for v in self.scale],
                                                "clip": self.clip}}
        if self.weights is not None:
            out["weights"] = {n: float(w) for n, w in zip(self.features, self.weights)}
        if self.intercept is not None:
            out["intercept"] = self.intercept
        if self.weight_shares is not None:
            out["weight_shares"] = self.weight_shares
        if self.scorecard is not None:
            out["scorecard"] = self.scorecard
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelPart":
        feats = tuple(str(f) for f in d["features"])
        std = d["standardizer"]
        w = d.get("weights")
        return cls(str(d["model_id"]), str(d["version"]), str(d["role"]), str(d["party"]), feats,
                   np.asarray(std["mean"], dtype=float), np.asarray(std["scale"], dtype=float),
                   None if std.get("clip") is None else float(std["clip"]),
                   None if w is None else np.asarray([float(w[f]) for f in feats]),
                   None if d.get("intercept") is None else float(d["intercept"]), d.get("weight_shares"), d.get("scorecard"))


def joint_spec(plan: JobPlan, model_id: str, job_spec_sha256: str) -> JointSpec:
    """The joint spec of the model a ``train`` job with this plan leaves (both parties compute the same)."""
    if plan.train is None:
        raise ConfigError("only a train job leaves a model")
    roles = {r.role.value: {"party": r.party, "dataset": r.dataset, "columns": None if r.columns is None else list(r.columns)}
             for r in (plan.guest, plan.host)}
    t = plan.train
    if plan.scorecard is not None:  # points per bin: no standardizer, no clipping
        return JointSpec(model_id, job_spec_sha256, roles, t.engine, t.reveal_weights, None, link="scorecard")
    return JointSpec(model_id, job_spec_sha256, roles, t.engine, t.reveal_weights, t.clip)


def _part(model: dict[str, Any], joint: JointSpec, party: str) -> ModelPart:
    """This party's part, from train_runner's (or scorecard_runner's) ``model.json``."""
    if model.get("kind") == "scorecard":
        card = Scorecard.from_dict(model["scorecard"])  # checks the table before it is kept
        feats = tuple(t.name for t in card.tables)
        n = len(feats)
        table = {**card.to_dict(), "scaling": dict(model["points"])}  # base_score, pdo, base_odds: points -> probability
        return ModelPart(joint.model_id, joint.version, str(model["role"]), party, feats, np.zeros(n), np.ones(n), None,
                         np.asarray(card.weights, dtype=float), None if model.get("intercept") is None else float(model["intercept"]),
                         None, table)
    std = model["standardizer"]
    if "weight_shares" in model:
        feats = tuple(model["features"])
        weights, intercept, shares = None, None, model["weight_shares"]
    else:
        feats = tuple(model["features"])
        weights = np.asarray([float(model["features"][f]) for f in feats])
        intercept, shares = model.get("intercept"), None
    return ModelPart(joint.model_id, joint.version, str(model["role"]), party, feats,
                     np.asarray([std[f]["mean"] for f in feats], dtype=float), np.asarray([std[f]["scale"] for f in feats], dtype=float),
                     joint.clip, weights, None if intercept is None else float(intercept), shares)


def write_package(store: NodeStore, files: JobFiles, plan: JobPlan, model_id: str, job_spec_sha256: str, party: str) -> ModelFiles:
    """Write ``models/<model_id>/`` from the job's ``model.json``: the joint spec and this party's part."""
    joint = joint_spec(plan, model_id, job_spec_sha256)
    part = _part(json.loads(files.model.read_text(encoding="utf-8")), joint, party)
    out = store.model(model_id)
    out.write_json(out.spec, joint.to_dict())
    out.write_json(out.part, part.to_dict())
    return out


def load_package(store: NodeStore, model_id: str) -> tuple[JointSpec, ModelPart]:
    """The joint spec and this party's part of ``model_id``.

    Raises:
        NotFoundError: this node has no such model.
        DataError: the files are damaged, or the part is not of this spec's version."""
    files = store.model(model_id)
    if not files.part.exists() or not files.spec.exists():
        raise NotFoundError(f"this node has no model {model_id!r} (looked in {files.folder})", public=f"the party has no model {model_id!r}")
    try:
        joint = JointSpec.from_dict(files.read_json(files.spec))
        part = ModelPart.from_dict(files.read_json(files.part))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{files.folder}: the model package cannot be read ({exc})", public="the party's model package cannot be read") from None
    if part.version != joint.version:
        raise DataError(f"{files.folder}: the part belongs to version {part.version[:16]}…, the spec is {joint.version[:16]}…",
                        public="the party's model part does not match its spec")
    return joint, part


def list_packages(store: NodeStore) -> list[tuple[JointSpec, ModelPart]]:
    """Every model this node keeps, by id."""
    if not store.models.exists():
        return []
    return [load_package(store, d.name) for d in sorted(store.models.iterdir()) if (d / "part.json").exists()]
