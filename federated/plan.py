"""The job plan: what each role of an approved job runs, decided once, from its spec.

:func:`plan_job` turns a :class:`~fedcredit.runtime.config.JobSpec` into a :class:`JobPlan`:

* what each role reads: its party, peer, dataset and columns, and whether it needs labels and features;
* which PSI program the parties run (ECDH, OT-extension or unbalanced) with which parameters, whether
  it runs count-first, and whether a node restarted in the middle of it (or of training) picks it up again;
* for a ``train`` job, the two-party LR parameters and the preprocessing both parties apply;
* for a ``scorecard`` job, the same LR parameters and the binning, selection and points (:class:`ScorecardPlan`);
* which protocol steps the relay carries for the job.

The party node runs what its plan says (:mod:`fedcredit.runtime.node.party`, :mod:`fedcredit.runtime.node.psi_runner`,
:mod:`fedcredit.runtime.node.train_runner`); the coordinator reads the same plan for the relay's step tables and
for what it does when a node restarts. Nothing else turns a spec into protocol parameters.

Owns: the choice of protocols and their parameters, and resumability.
May import: ``protocols``, :mod:`fedcredit.runtime.config` (the spec) and :mod:`fedcredit.runtime.security.sealing` (the
``seal.hello`` step every job carries). No I/O, no clock, no gRPC: frozen dataclasses only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from fedcredit.protocols.binning import BinningStep, ScorecardParams, SecureBinningParams
from fedcredit.protocols.core import ProtocolStep, Role
from fedcredit.protocols.hetero_lr import HeteroLRParams
from fedcredit.protocols.hetero_lr.two_party import TwoPartyStep
from fedcredit.protocols.psi import PsiParams, PsiStep, Reveal, UnbalancedParams, UnbalancedStep
from fedcredit.protocols.psi.ot import OtPsiParams, OtPsiStep
from fedcredit.protocols.scoring import ScoreStep, ScoringParams

from .config import JobSpec, RoleSpec
from .security.sealing import SealStep

__all__ = ["PsiProgram", "PsiPlan", "TrainPlan", "ScorePlan", "ScorecardPlan", "RolePlan", "JobPlan", "plan_job"]

StepTable = type[ProtocolStep]


class PsiProgram(str, enum.Enum):
    """Which PSI role programs the parties run."""

    ECDH = "ecdh"  # fedcredit.protocols.psi guest_program/host_program: every mode, count-first, checkpoints per batch
    OT = "ot"  # fedcredit.protocols.psi.ot: OT-extension (KKRT16), the fastest for reveal both/guest; resumes by replay from a seed
    UNBALANCED = "unbalanced"  # fedcredit.protocols.psi unbalanced_*: the host answers from its cached, long-lived-key set


@dataclass(frozen=True)
class PsiPlan:
    """The job's PSI.

    Attributes:
        program: the role programs.
        reveal: who learns what (``both``, ``guest`` or ``cardinality``).
        count_first: the job reveals ids, so each party's ``min_intersection`` is checked on the count
            before any id is revealed; otherwise a party's minimum does not apply (the count is all it learns).
        resumable: a node restarted mid-PSI resumes (ECDH from its last batch; OT runs again from its seed).
        validate_uscc: the job asks both parties to check 统一社会信用代码 check digits.
    """

    program: PsiProgram
    reveal: Reveal
    count_first: bool
    resumable: bool
    validate_uscc: bool

    @property
    def protocol(self) -> Literal["ecdh", "ot"]:
        """The exchange underneath, as a result reports it: unbalanced PSI is ECDH with a cached host set."""
        return "ot" if self.program is PsiProgram.OT else "ecdh"

    @property
    def steps(self) -> tuple[StepTable, ...]:
        if self.program is PsiProgram.OT:
            return (OtPsiStep,)  # with its own copies of the ECDH steps for its count-first fallback
        if self.program is PsiProgram.UNBALANCED:
            return (PsiStep, UnbalancedStep)
        return (PsiStep,)

    def minimum(self, policy_minimum: int) -> int:
        """The minimum intersection a party with ``policy_minimum`` enforces in this job."""
        return policy_minimum if self.count_first else 0

    def ecdh_params(self, salt: bytes) -> PsiParams:
        return PsiParams(salt=salt, reveal=self.reveal, count_first=self.count_first)

    def ot_params(self, salt: bytes) -> OtPsiParams:
        # OT cannot reveal the count alone: a positive minimum on either side makes its programs fall back to
        # count-first ECDH under the OT table's own steps.
        return OtPsiParams(salt=salt, mode=self.reveal)

    def unbalanced_params(self) -> UnbalancedParams:
        return UnbalancedParams(mode=self.reveal, count_first=self.count_first)  # its salt comes with the host's cache


@dataclass(frozen=True)
class TrainPlan:
    """The job's two-party vertical LR and the preprocessing both parties apply to their aligned rows.

    Attributes:
        lr: the protocol's parameters (engine, key size, optimizer, budgets), the same for both roles.
        seed: the split and the batches derive from it.
        test_fraction: the share of aligned rows held out for evaluation.
        clip: each party winsorizes its standardized features at ±clip (None: no clipping).
        validation_fraction: early stopping's validation rows, carved from the training rows with the seed.
        cv_folds: k-fold cross-validation over the aligned rows (k trainings), then the final fit.
        engine, topology, reveal_weights: the job's choices, as a result reports them.
    """

    lr: HeteroLRParams
    seed: int
    test_fraction: float
    clip: float | None
    engine: str
    topology: str
    reveal_weights: str
    validation_fraction: float = 0.0  # early stopping: the share of the training rows it monitors
    cv_folds: int | None = None  # k-fold cross-validation before the final fit

    @property
    def resumable(self) -> bool:
        """Training checkpoints at every epoch boundary, except with early stopping (its best epoch's shares are
        not in the checkpoint yet) or cross-validation (several runs)."""
        return self.validation_fraction == 0 and self.cv_folds is None

    @property
    def steps(self) -> tuple[StepTable, ...]:
        return (TwoPartyStep,)


@dataclass(frozen=True)
class ScorePlan:
    """A ``score`` job: which model, and the scoring protocol's parameters (no PSI runs).

    Attributes:
        model_id: the model (its training job's id); each party reads its own part of it.
        params: private (default) or plain, the query cap.
    """

    model_id: str
    params: ScoringParams
    online: bool = False  # a session: the bank serves ScoreApplicant until session_seconds pass
    session_seconds: float = 600.0
    idle_seconds: float | None = None  # the session also ends after this long without a request

    @property
    def steps(self) -> tuple[StepTable, ...]:
        return (ScoreStep,)


@dataclass(frozen=True)
class ScorecardPlan:
    """A ``scorecard`` job's binning, selection and points (its LR is the job's :class:`TrainPlan`).

    Attributes:
        binning: the secure per-bin counts' parameters, the same for both roles (IV sharing included).
        method, n_bins: each party's initial bins of its own features (on its training rows).
        iv_threshold, top_k, max_correlation: each party's selection of its own features.
        points: base score, PDO and base odds.
        key_bits: the bank's Paillier key for its labels (the job's ``training.key_bits``).
    """

    binning: SecureBinningParams
    method: str
    n_bins: int
    iv_threshold: float | None
    top_k: int | None
    max_correlation: float
    points: ScorecardParams
    key_bits: int

    @property
    def steps(self) -> tuple[StepTable, ...]:
        return (BinningStep,)


@dataclass(frozen=True)
class RolePlan:
    """What one role reads for the job, and whom it works with."""

    role: Role
    party: str
    peer: str
    dataset: str
    peer_dataset: str
    columns: tuple[str, ...] | None  # the feature columns the job uses; None: all the dataset offers
    needs_labels: bool
    needs_features: bool


@dataclass(frozen=True)
class JobPlan:
    """What each role of a job runs. Built by :func:`plan_job`; read by the party nodes and the coordinator."""

    kind: Literal["train", "psi", "score", "scorecard"]
    purpose: str
    guest: RolePlan
    host: RolePlan
    psi: PsiPlan  # not run by a score job
    train: TrainPlan | None  # None for a psi job
    score: ScorePlan | None = None  # a score job only
    scorecard: ScorecardPlan | None = None  # a scorecard job only (its LR: ``train``)

    def role(self, role: Role) -> RolePlan:
        if role is Role.GUEST:
            return self.guest
        if role is Role.HOST:
            return self.host
        raise ValueError(f"the coordinator runs no role in a job (asked for {role})")

    def parties(self, coordinator: str) -> dict[Role, str]:
        """Every role's node, the relaying coordinator's included."""
        return {Role.GUEST: self.guest.party, Role.HOST: self.host.party, Role.COORDINATOR: coordinator}

    @property
    def steps(self) -> tuple[StepTable, ...]:
        """The step tables the relay carries for the job: its PSI, its LR, and the parties' ``seal.hello``; a score
        job: its scoring and ``seal.hello``."""
        if self.score is not None:
            return self.score.steps + (SealStep,)
        card = self.scorecard.steps if self.scorecard else ()
        return self.psi.steps + card + (self.train.steps if self.train else ()) + (SealStep,)

    def can_resume(self, stage: str | None) -> bool:
        """Whether a node restarted at ``stage`` (its last progress report; None: none yet) picks its role up
        again. PSI checkpoints after every batch where it is resumable (OT and unbalanced PSI: a secret seed, replayed);
        training checkpoints after batches and epochs, after the node recorded PSI's result, so a node restarted in
        training resumes whatever the PSI (not with early stopping or cross-validation: :attr:`TrainPlan.resumable`).
        A score job keeps no checkpoint."""
        if self.score is not None:
            return False
        if self.scorecard is not None and stage not in (None, "psi", "psi_ot"):
            return False  # binning and its LR keep no checkpoint: a scorecard job restarted after PSI fails
        if stage == "train":
            return self.train is not None and self.train.resumable
        return self.psi.resumable and stage in (None, "psi", "psi_ot")


def plan_job(spec: JobSpec) -> JobPlan:
    """The plan of a job: every role program and its parameters, decided from the spec alone.

    The LR parameters are the spec's own :meth:`~fedcredit.runtime.config.JobSpec.lr_params`: a job file
    whose training section they refuse does not load, so a spec that loaded can always be planned.
    """
    is_train = spec.kind in ("train", "scorecard")  # a scorecard job's LR is the train job's
    train = None
    if is_train:
        t = spec.training
        train = TrainPlan(lr=spec.lr_params(), seed=spec.seed, test_fraction=spec.evaluation.test_fraction, clip=t.clip,
                          engine=t.engine, topology=t.topology, reveal_weights=t.reveal_weights,
                          validation_fraction=t.validation_fraction, cv_folds=t.cv_folds)
    score = None
    if spec.kind == "score":
        sc = spec.scoring
        assert sc.model is not None  # the spec's validator requires it
        score = ScorePlan(model_id=sc.model, params=ScoringParams(mode=sc.mode, max_queries=sc.max_queries), online=sc.online,
                          session_seconds=sc.session_seconds, idle_seconds=sc.idle_seconds)
    scorecard = _plan_scorecard(spec) if spec.kind == "scorecard" else None
    features = is_train or score is not None
    return JobPlan(
        kind=spec.kind,
        purpose=spec.purpose,
        guest=_role(Role.GUEST, spec.guest, spec.host, needs_labels=is_train, needs_features=features),
        host=_role(Role.HOST, spec.host, spec.guest, needs_labels=False, needs_features=features),
        psi=_plan_psi(spec),
        train=train,
        score=score,
        scorecard=scorecard,
    )


def _plan_scorecard(spec: JobSpec) -> ScorecardPlan:
    c = spec.scorecard
    binning = SecureBinningParams(min_bin_rows=c.min_bin_rows, min_bin_events=c.min_bin_events, mask_bits=c.mask_bits,
                                  share_iv=c.share_iv, share_bank_iv=c.share_bank_iv, smoothing=c.smoothing, merge=c.merge,
                                  max_bins=c.max_bins)
    return ScorecardPlan(binning=binning, method=c.method, n_bins=c.n_bins, iv_threshold=c.iv_threshold, top_k=c.top_k,
                         max_correlation=c.max_correlation, points=ScorecardParams(c.base_score, c.pdo, c.base_odds),
                         key_bits=spec.training.key_bits)


def _plan_psi(spec: JobSpec) -> PsiPlan:
    p = spec.psi
    if p.unbalanced:
        program = PsiProgram.UNBALANCED
    elif p.protocol == "ot" or (p.protocol == "auto" and p.reveal != "cardinality"):
        program = PsiProgram.OT  # auto: the fastest that serves the job
    else:
        program = PsiProgram.ECDH
    # Where the job reveals rows (training; PSI with reveal both or guest), each party's minimum is checked on the
    # count, before anything locates the intersection (#12). Both parties learn the count then.
    count_first = spec.kind in ("train", "scorecard") or p.reveal in ("both", "guest")
    return PsiPlan(program=program, reveal=Reveal(p.reveal), count_first=count_first,
                   resumable=True, validate_uscc=p.validate_uscc)


def _role(role: Role, mine: RoleSpec, peer: RoleSpec, *, needs_labels: bool, needs_features: bool) -> RolePlan:
    return RolePlan(role=role, party=mine.party, peer=peer.party, dataset=mine.dataset, peer_dataset=peer.dataset,
                    columns=tuple(mine.columns) if mine.columns is not None else None,
                    needs_labels=needs_labels, needs_features=needs_features)
