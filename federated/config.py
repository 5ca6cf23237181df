"""Typed, validated configuration: coordinator, party node, client and job files.

Files are YAML (JSON is valid YAML). Relative paths are resolved against the
folder of the file that names them. Any problem raises :class:`ConfigError`
with one message naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fedcredit.protocols.hetero_lr import HeteroLRParams
from fedcredit.protocols.errors import BudgetError

from .errors import ConfigError
from .security.revocation import parse_entry

__all__ = [
    "TlsConfig",
    "RelayLimits",
    "CoordinatorConfig",
    "DatasetConfig",
    "PartyConfig",
    "ExecutorConfig",
    "ClientConfig",
    "JobSpec",
    "ScoringSpec",
    "ScorecardSpec",
    "ScoringServiceConfig",
    "load_config",
    "load_job_spec",
    "spec_digest",
]

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(v: str) -> str:
    if not NAME_RE.match(v):
        raise ValueError(f"{v!r} is not a valid node name (lower-case letters, digits, - and _)")
    return v


class TlsConfig(_Model):
    ca: Path
    cert: Path
    key: Path


class SealConfig(_Model):
    cert: Path
    key: Path


class SignConfig(_Model):
    """The node's Ed25519 signing certificate: envelopes, approvals and transcripts."""

    cert: Path
    key: Path


PURPOSE_RE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,79}$")


def _check_purpose(v: str) -> str:
    if not PURPOSE_RE.match(v):
        raise ValueError(f"{v!r} is not a valid purpose (lower-case words joined by . : _ -), e.g. financing.credit_risk_model")
    return v


class RelayLimits(_Model):
    """The relay's quotas per job and rate limit per party; each refusal is RESOURCE_EXHAUSTED naming its setting.

    Sized from real default_credit jobs (1,433 messages; 127 MB with Paillier, 2.8 GB with CKKS; at most 43
    messages in any second from one party) with a wide margin (README, Configuration).
    """

    job_max_bytes: int = Field(16 << 30, ge=1)  # payload bytes relayed for one job, all senders
    job_max_messages: int = Field(100_000, ge=1)  # messages relayed for one job, all senders
    job_max_pending_bytes: int = Field(1 << 30, ge=1)  # bytes of one job held for receivers that have not taken them
    party_messages_per_s: float = Field(100.0, gt=0)  # token bucket: refill rate per party, all its jobs
    party_burst: int = Field(400, ge=1)  # token bucket: capacity
    # delivered messages kept per job for a receiver that restarts from a checkpoint (oldest dropped first); a
    # receiver asking for one no longer kept fails its job (MESSAGE_NOT_KEPT). Training checkpoints every batch, so a
    # restart asks for at most one batch's messages (CKKS at default_credit size: 612 MB per epoch, 47 batches: ~13 MB).
    retain_bytes: int = Field(512 << 20, ge=0)


class CoordinatorConfig(_Model):
    name: str = "coordinator"
    listen: str = "127.0.0.1:50051"
    port_file: Path | None = None  # written with the bound port (useful with port 0)
    database: Path = Path("coordinator.sqlite")
    tls: TlsConfig
    sign: SignConfig
    transcripts: Path = Path("transcripts")  # the coordinator's transcript of what it relayed, per job
    parties: list[str] = Field(min_length=1)
    operators: list[str] = ["operator"]
    relay: RelayLimits = RelayLimits()
    # Liveness (#13): parties heartbeat every heartbeat_s; one not heard from for party_grace_s fails its running
    # jobs, naming it. A second process with a party's identity is refused while the first was heard from within
    # 3 heartbeats. Every job state ends: pending jobs after pending_timeout_s, running ones after running_timeout_s.
    heartbeat_s: float = Field(2.0, gt=0)
    party_grace_s: float = Field(30.0, gt=0)
    pending_timeout_s: float = Field(7 * 86400.0, gt=0)
    running_timeout_s: float = Field(86400.0, gt=0)
    # Revoked certificates, refused on every call and at registration: 'sha256:<fingerprint>' or 'serial:<hex>'
    # (federated/security/revocation.py). Read at start: restart the coordinator after a change.
    revoked: list[str] = []

    _names = field_validator("name")(_check_name)

    @field_validator("revoked")
    @classmethod
    def _revoked_ok(cls, v: list[str]) -> list[str]:
        for entry in v:
            try:
                parse_entry(entry)
            except ConfigError as exc:
                raise ValueError(exc.message) from None
        return v

    @field_validator("parties", "operators")
    @classmethod
    def _names_ok(cls, v: list[str]) -> list[str]:
        for n in v:
            _check_name(n)
        return v


class DatasetConfig(_Model):
    path: Path
    id_column: str = "id"
    label_column: str | None = None
    feature_columns: list[str] | None = None  # default: every other column
    missing_values: Literal["impute_mean", "error"] = "impute_mean"
    validate_uscc: bool = False
    duplicates: Literal["reject", "dedupe"] = "reject"  # dedupe: keep the first row of each id and report the count
    # CSV of enterprise_id, purpose, valid_from, valid_to, revoked: only ids with valid
    # consent for the job's purpose enter PSI and training (see federated/node/consent.py).
    consent_registry: Path | None = None


class PartyPolicy(_Model):
    """What this node agrees to. Checked on every job before it touches any data."""

    allowed_purposes: list[str] = ["financing.credit_risk_model"]
    allowed_peers: list[str] | None = None  # None: any party the coordinator knows
    allowed_columns: dict[str, list[str]] | None = None  # dataset -> columns a job may use; None: all
    allowed_roles: list[Literal["guest", "host"]] = ["guest", "host"]
    min_intersection: int = Field(100, ge=0)
    # Checked before approval. Evaluation reveals the host's partial scores on the test rows to the
    # guest, so a node bounds how many; a short Paillier key is refused.
    max_test_fraction: float = Field(0.25, ge=0.0, lt=1.0)
    min_key_bits: int = Field(2048, ge=1024)
    # The platform's rate limit on scoring (#14): applicants it answers per model and UTC day, over all score
    # jobs (None: no limit). A score job asking more than what remains fails; the count is in the transcripts.
    max_scoring_queries_per_day: int | None = Field(None, ge=0)
    # The score jobs this node approves: plain mode shows the bank's applicant ids to the platform.
    scoring_modes: list[Literal["private", "plain"]] = ["private"]
    auto_approve: bool = False  # False: wait for `fedcredit job approve ID --config THIS_FILE`

    @field_validator("allowed_purposes")
    @classmethod
    def _purposes(cls, v: list[str]) -> list[str]:
        for p in v:
            _check_purpose(p)
        return v


class UnbalancedConfig(_Model):
    """The host's long-lived unbalanced-PSI key: where it is kept and how often it rotates."""

    key_rotation_days: float = Field(30.0, gt=0)
    directory: Path | None = None  # default: <workdir>/unbalanced


class TranscriptPolicy(_Model):
    directory: Path | None = None  # default: <workdir>/transcripts
    keep_payloads: bool = False  # digests are always kept


class ScoringServiceConfig(_Model):
    """The bank's online scoring endpoint (``ScoreApplicant``, #14): served over mTLS only while an online
    score job runs (``scoring.online``), for the bank's own services."""

    listen: str = "127.0.0.1:0"
    port_file: Path | None = None  # where the bound port is written (listen port 0 picks a free one)
    # The endpoint's own server identity and the CA of its callers: the bank's internal PKI. (The node's
    # federation certificate is a client certificate: the node opens no port to the federation.)
    tls: TlsConfig | None = None
    allowed_clients: list[str] = ["risk-service"]  # certificate names (signed by tls.ca) that may call it
    request_timeout_s: float = Field(10.0, gt=0)


class ExecutorConfig(_Model):
    """Where the node's kernels run (PSI hashing and blinding, Paillier batches, scoring): ``local``, its own
    process pool (the default), or ``dask``, the bank's Dask distributed cluster at ``address``."""

    kind: Literal["local", "dask"] = "local"
    address: str | None = None  # dask: the scheduler, tcp://host:8786 or tls://host:8786
    tls: TlsConfig | None = None  # dask: the bank's internal mTLS for the cluster (its CA, this node's client cert and key)
    workers: int | None = Field(None, ge=1)  # local: worker processes (default: the number of cores)
    # Work over at least this many items goes to the executor; below it, it runs in the node's thread
    # (None: each runner's own threshold, 20 000 ids for PSI, 2 048 rows for Paillier batches).
    min_items: int | None = Field(None, ge=0)
    connect_timeout_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _address(self) -> "ExecutorConfig":
        if self.kind == "dask":
            if not self.address:
                raise ValueError("executor kind 'dask' needs an address (tcp://host:8786 or tls://host:8786)")
            if self.address.startswith("tls://") != (self.tls is not None):
                raise ValueError("a tls:// scheduler address needs executor.tls, and executor.tls needs a tls:// address")
        elif self.address is not None or self.tls is not None:
            raise ValueError("executor kind 'local' takes no address or tls")
        return self


class PartyConfig(_Model):
    name: str
    coordinator: str  # host:port; the party only dials out
    coordinator_name: str = "coordinator"
    tls: TlsConfig
    seal: SealConfig
    sign: SignConfig
    workdir: Path = Path("work")
    datasets: dict[str, DatasetConfig] = Field(min_length=1)
    policy: PartyPolicy = PartyPolicy()
    transcripts: TranscriptPolicy = TranscriptPolicy()
    unbalanced: UnbalancedConfig = UnbalancedConfig()
    scoring_service: ScoringServiceConfig = ScoringServiceConfig()
    message_timeout_s: float = 900.0
    executor: ExecutorConfig = ExecutorConfig()

    _names = field_validator("name", "coordinator_name")(_check_name)


class ClientConfig(_Model):
    coordinator: str
    coordinator_name: str = "coordinator"
    tls: TlsConfig


class RoleSpec(_Model):
    party: str
    dataset: str
    columns: list[str] | None = None  # feature columns this job uses; None: all the dataset offers

    _names = field_validator("party")(_check_name)


class PsiSpec(_Model):
    reveal: Literal["both", "guest", "cardinality"] = "both"  # cardinality: only the count, only to the guest
    # Unbalanced: the host answers from its cached, long-lived-key blinding of its whole set
    # (psi jobs only, reveal guest or cardinality). See protocols/psi/unbalanced.py.
    unbalanced: bool = False
    # ot: OT-extension PSI (KKRT16), the fastest for both/guest; ecdh: X25519, needed for cardinality
    # and unbalanced, and the only one that resumes after a restart. auto: the fastest that serves the job
    # (federated/plan.py decides).
    protocol: Literal["auto", "ecdh", "ot"] = "auto"
    validate_uscc: bool = False


class CkksSpec(_Model):
    """The CKKS engine (engine: ckks): ring-LWE keys, one per party; the modulus is sized from the job (protocols/rlwe)."""

    rlwe_degree: Literal[16384, 32768] = 16384


class TrainingSpec(_Model):
    # two_party (the only one): each party holds its own key, weights stay secret-shared, the coordinator holds
    # no key. The coordinated topology (the coordinator held the key; each party saw its own gradient) was removed.
    topology: Literal["two_party"] = "two_party"
    # owner: each party learns its own final weights; shared: they stay secret-shared (two-party only), each
    # party keeps its part in its model.json, and evaluation reveals the joint scores z, not u_H, to the guest.
    reveal_weights: Literal["owner", "shared"] = "owner"
    engine: Literal["paillier", "ckks"] = "paillier"
    paillier_engine: Literal["fast", "phe"] = "fast"  # phe: python-paillier's arithmetic (benchmark baseline)
    ckks: CkksSpec = CkksSpec()
    key_bits: int = 2048
    # Nesterov momentum with a fast-decaying step: within 0.01 AUC of sklearn on default_credit, the raw-UCI
    # pair and the imbalanced UCI split after 4 epochs (benchmarks/accuracy_study.py); plain SGD needs >30 epochs
    # on the imbalanced one.
    optimizer: Literal["sgd", "nesterov", "adam"] = "nesterov"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    learning_rate: float = 0.1
    lr_decay: float = 3.0
    batch_size: Annotated[int, Field(strict=True, ge=1)] | Literal["auto"] = "auto"
    max_epochs: int = 4
    tol: float = 1e-4
    l2: float = 1e-3
    clip: float | None = Field(3.0, gt=0)  # winsorize standardized features at ±clip (local; null: off)
    residual_frac_bits: int = 32
    feature_frac_bits: int = 16
    mask_security_bits: int = 80
    # Modeling options (#14). class_weight: null, balanced (n / (2 n_k)) or {0: w0, 1: w1}; the guest weights each
    # row's residual before anything derived from it leaves (Paillier engine only).
    class_weight: Literal["balanced"] | dict[int, float] | None = None
    # L1: refused while any value but 0 -- the weights stay secret-shared during training, so no party holds its
    # block to soft-threshold it (see _l1).
    l1: float = 0.0
    # Early stopping: validation_fraction of the training rows (from the seed, disjoint from the test rows) are
    # scored by the guest after every epoch; training stops once validation_metric has not improved for
    # patience epochs, and the model is the best epoch's. Both 0: off.
    validation_fraction: float = Field(0.0, ge=0.0, lt=0.5)
    patience: int = Field(0, ge=0)
    validation_metric: Literal["loss", "auc"] = "loss"
    # k-fold cross-validation over the aligned rows: k trainings, each evaluated on its held-out fold (mean ± std
    # AUC/KS in the result), then the final fit on the train/test split (the job's model). null: off.
    cv_folds: int | None = Field(None, ge=2, le=20)

    @model_validator(mode="after")
    def _early_stopping(self) -> "TrainingSpec":
        if self.validation_fraction > 0 and self.patience < 1:
            raise ValueError("training.validation_fraction needs training.patience >= 1 (epochs without improvement "
                             "before stopping)")
        if self.patience > 0 and self.validation_fraction <= 0:
            raise ValueError("training.patience needs training.validation_fraction > 0 (the rows it monitors)")
        return self

    @field_validator("class_weight", mode="before")
    @classmethod
    def _class_weight(cls, v: Any) -> Any:
        if v is None or v == "balanced":
            return v
        if not isinstance(v, dict) or {str(k) for k in v} != {"0", "1"}:
            raise ValueError("class_weight must be null, balanced, or a mapping {0: w0, 1: w1} with both classes")
        out: dict[int, float] = {}
        for k, w in v.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w <= 256:
                raise ValueError(f"class_weight of class {k} must be a number in (0, 256]")
            out[int(k)] = float(w)
        return out

    @field_validator("l1")
    @classmethod
    def _l1(cls, v: float) -> float:
        if v < 0:
            raise ValueError("l1 must be >= 0")
        if v > 0:
            raise ValueError("l1 is not available in the two_party topology: every weight stays secret-shared during "
                             "training, so no party holds its own block to apply the soft-threshold step, and revealing "
                             "the weights after each update would hand each party its gradient; use l2")
        return v

    @field_validator("topology", mode="before")
    @classmethod
    def _topology(cls, v: Any) -> Any:
        if v == "coordinated":
            raise ValueError("the coordinated topology was removed: its key holder decrypted each party's gradient, "
                             "and the platform's operator runs it (README, threat model); use two_party")
        return v

    @field_validator("key_bits")
    @classmethod
    def _bits(cls, v: int) -> int:
        if v not in (1024, 2048, 3072):
            raise ValueError("key_bits must be 2048 (default), 3072, or 1024 for tests only")
        return v


class EvaluationSpec(_Model):
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)


class ScoringSpec(_Model):
    """A ``score`` job: the bank scores its applicants with a model trained with the platform (#14)."""

    model: str | None = None  # the model id: its training job's id (`fedcredit model list`)
    # private: the platform learns how many applicants are scored, not which (protocols/scoring); plain: the ids too
    mode: Literal["private", "plain"] = "private"
    max_queries: int | None = Field(None, ge=0)  # the platform refuses a job scoring more applicants
    # online: a session -- the bank's node serves ScoreApplicant (its scoring_service) and asks the platform for
    # each request's partial scores through the relay, blinded, until session_seconds pass (private mode only)
    online: bool = False
    # below the platform node's message_timeout_s (900 s by default), which bounds how long it waits for a request
    session_seconds: float = Field(600.0, gt=0)
    idle_seconds: float | None = Field(None, gt=0)  # the session also ends after this long without a request

    @field_validator("model")
    @classmethod
    def _model_id(cls, v: str | None) -> str | None:
        if v is not None and (not v or v.startswith(".") or any(not (c.isalnum() or c in "._-") for c in v)):
            raise ValueError("scoring.model must be a model id (letters, digits, '.', '_', '-')")
        return v


class ScorecardSpec(_Model):
    """A ``scorecard`` job (#15): each party bins its own features, the platform's per-bin label counts come from the
    secure protocol (protocols/binning), then WOE/IV, selection, the two-party LR on the WOE columns, and points."""

    method: Literal["quantile", "equal_width"] = "quantile"
    n_bins: int = Field(10, ge=2, le=100)
    # both parties refuse a bin under min_bin_rows rows (the bank before it encrypts a label); bins with fewer
    # than min_bin_events bads or goods are merged before anything is released
    min_bin_rows: int = Field(100, ge=1)
    min_bin_events: int = Field(5, ge=0)
    merge: Literal["none", "chimerge", "monotonic"] = "none"
    max_bins: int = Field(6, ge=2)  # chimerge's largest number of bins
    smoothing: float = Field(0.5, gt=0)
    mask_bits: int = Field(80, ge=40)
    # IV per feature goes to its owner only; share_iv: the platform's IV goes to the bank too; share_bank_iv: the
    # bank's to the platform
    share_iv: bool = False
    share_bank_iv: bool = False
    # selection, each party on its own features: IV at least iv_threshold (null: none), the top_k highest (null:
    # all), then of every pair with |r| > max_correlation on the WOE columns the lower-IV one dropped
    iv_threshold: float | None = Field(0.02, ge=0)
    top_k: int | None = Field(None, ge=1)
    max_correlation: float = Field(0.7, gt=0, le=1)
    # points: base_score at odds base_odds (good:bad), pdo points to double the odds
    base_score: float = 600.0
    pdo: float = Field(20.0, gt=0)
    base_odds: float = Field(50.0, gt=0)


class JobSpec(_Model):
    """A job file. ``train`` runs PSI, then vertical LR, then evaluation; ``psi`` runs PSI only; ``score``
    scores the guest's applicants with a trained model (no PSI); ``scorecard`` runs PSI, then binning, WOE/IV,
    selection, the LR on the WOE columns and scorecard points (the ``scorecard`` section)."""

    kind: Literal["train", "psi", "score", "scorecard"] = "train"
    name: str = "job"
    purpose: str  # what the data may be used for; checked against each party's policy and consents
    guest: RoleSpec
    host: RoleSpec
    psi: PsiSpec = PsiSpec()
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    scoring: ScoringSpec = ScoringSpec()
    scorecard: ScorecardSpec = ScorecardSpec()
    seed: int = 42

    _purpose = field_validator("purpose")(_check_purpose)

    @model_validator(mode="after")
    def _consistent(self) -> "JobSpec":
        if self.guest.party == self.host.party:
            raise ValueError("guest and host must be different parties")
        if self.kind == "score" and not self.scoring.model:
            raise ValueError("a score job names its model: scoring.model (the training job's id)")
        if self.scoring.online and self.scoring.mode != "private":
            raise ValueError("online scoring runs in private mode only")
        if self.kind == "train" and self.psi.reveal != "both":
            raise ValueError("a train job needs psi.reveal: both (the host must know its aligned rows)")
        if self.kind == "scorecard":
            self._scorecard_consistent()
        if self.psi.unbalanced and (self.kind != "psi" or self.psi.reveal == "both"):
            raise ValueError("psi.unbalanced needs kind: psi and psi.reveal: guest or cardinality")
        if self.psi.protocol == "ot" and (self.psi.unbalanced or self.psi.reveal == "cardinality"):
            raise ValueError("psi.protocol: ot serves reveal both or guest; cardinality and unbalanced jobs use ecdh")
        if self.training.class_weight is not None and self.training.engine != "paillier":
            raise ValueError("training.class_weight needs training.engine: paillier (the CKKS engine packs rows into "
                             "coefficients and has no per-row product)")
        self.lr_params()  # validates ranges
        if self.training.optimizer == "adam":
            raise ValueError("the weights stay secret-shared during training, which needs a linear update: "
                             "use training.optimizer: nesterov (default) or sgd")
        return self

    def _scorecard_consistent(self) -> None:
        if self.psi.reveal != "both":
            raise ValueError("a scorecard job needs psi.reveal: both (the host must know its aligned rows)")
        if self.training.reveal_weights != "owner":
            raise ValueError("a scorecard job needs training.reveal_weights: owner (each party turns its own weights into points)")

    def lr_params(self) -> HeteroLRParams:
        """The training section as the two-party LR's parameters; a spec whose training they refuse is invalid.

        The job plan (:func:`fedcredit.runtime.plan.plan_job`) carries them to the roles."""
        t = self.training
        try:
            return HeteroLRParams(
                learning_rate=t.learning_rate,
                lr_decay=t.lr_decay,
                batch_size=0 if t.batch_size == "auto" else t.batch_size,
                max_epochs=t.max_epochs,
                tol=t.tol,
                l2=t.l2,
                optimizer=t.optimizer,
                momentum=t.momentum,
                reveal_weights=t.reveal_weights,
                key_bits=t.key_bits,
                residual_frac_bits=t.residual_frac_bits,
                feature_frac_bits=t.feature_frac_bits,
                mask_security_bits=t.mask_security_bits,
                seed=self.seed,
                paillier_engine=t.paillier_engine,
                he_scheme=t.engine,  # ckks: ring-LWE keys with values in coefficients (protocols/rlwe)
                rlwe_degree=t.ckks.rlwe_degree,
                class_weight=_class_weight_param(t.class_weight),
                patience=t.patience,
                validation_metric=t.validation_metric,
            )
        except BudgetError as exc:
            raise ValueError(str(exc)) from None

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def _class_weight_param(v: Literal["balanced"] | dict[int, float] | None) -> Literal["balanced"] | tuple[float, float] | None:
    return (v[0], v[1]) if isinstance(v, dict) else v


def spec_digest(spec: JobSpec) -> str:
    return hashlib.sha256(spec.canonical_json().encode()).hexdigest()


M = TypeVar("M", bound=BaseModel)


def _format_validation(source: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"field '{loc}': {msg}")
    return f"{source}: " + "; ".join(parts)


def _resolve_paths(obj: Any, base: Path) -> Any:
    if isinstance(obj, BaseModel):
        updates = {}
        for name in type(obj).model_fields:
            value = getattr(obj, name)
            new = _resolve_paths(value, base)
            if new is not value:
                updates[name] = new
        return obj.model_copy(update=updates) if updates else obj
    if isinstance(obj, Path):
        return obj if obj.is_absolute() else (base / obj).resolve()
    if isinstance(obj, dict):
        return {k: _resolve_paths(v, base) for k, v in obj.items()}
    return obj


def parse_config(model: type[M], data: Any, *, source: str, base: Path | None = None) -> M:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
    try:
        cfg = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(source, exc)) from None
    return _resolve_paths(cfg, base) if base is not None else cfg


def load_config(model: type[M], path: Path | str) -> M:
    """Load and validate a YAML config file into ``model``; relative paths resolve next to the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(model, data, source=str(path), base=path.resolve().parent)


def load_job_spec(path: Path | str) -> JobSpec:
    return load_config(JobSpec, path)
