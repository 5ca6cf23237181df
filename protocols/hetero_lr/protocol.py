"""Coordinated vertical logistic regression on Paillier-encrypted, masked gradients.

The whole exchange, for all three roles, is in this module. Roles:

* **guest** (the bank): labels ``y`` and features ``X_G`` (plus the intercept);
* **host** (the platform): features ``X_H``;
* **coordinator**: generates the Paillier key pair and decrypts *masked* values only.

Loss: the second-order Taylor expansion ``log(1 + e^{-yz}) ~ log 2 - yz/2 + z^2/8``
with ``y`` in {-1, 1} and ``z = u_G + u_H``, ``u_G = X_G w_G``, ``u_H = X_H w_H``.
Its derivative in ``z`` is the residual ``d = z/4 - y/2``.

Per mini-batch B (batches derive from the job seed, see :mod:`.preprocess`)::

    host  -> guest   lr.host_scores      [[u_H/4]] per row, [[sum u_H^2 / 8]]   (sealed)
    guest -> host    lr.residuals        [[d]] = [[u_H/4]] + Enc(u_G/4 - y/2)   (sealed, fresh randomness)
    guest -> coord   lr.masked_gradient  [[X_G^T d + r_G]]
    host  -> coord   lr.masked_gradient  [[X_H^T d + r_H]]
    coord -> guest   lr.decrypted_masked_gradient   X_G^T d + r_G
    coord -> host    lr.decrypted_masked_gradient   X_H^T d + r_H

Per epoch::

    guest -> coord   lr.epoch_loss       [[sum of the Taylor loss]]  (an agreed aggregate)
    coord -> both    lr.epoch_decision   mean loss, stop or continue

After training::

    host  -> guest   lr.host_test_scores  u_H on the test rows   (sealed; the scoring leak)
    guest -> coord   lr.metrics           AUC, KS                 (agreed aggregates)

Two details beyond the textbook flow, both needed for the privacy claims:

1. The guest adds ``Enc(u_G/4 - y/2)`` with *fresh* randomness rather than the
   cheap ``c * (1 + m n)``. The host made ``[[u_H/4]]`` and knows its
   randomness: without rerandomization it could divide it out of ``[[d]]`` and
   read ``u_G/4 - y/2``, hence the labels.
2. Every batch is larger than twice the number of weights of either party
   (:func:`check_batch_size`). A party learns its own gradient ``X^T d``; with
   fewer rows than weights that linear system could be solved for ``d``.

Masks are uniform in ``[0, 2^mask_bits)`` with ``mask_bits`` = the gradient's
bound plus ``mask_security_bits``, so ``g + r`` is within statistical distance
``2^-mask_security_bits`` of ``r`` alone: the coordinator sees no gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..core import Aggregate, Ciphertext, Masked, Plaintext, Progress, ProtocolStep, Public, Recv, Role, RoleProgram, Send, StepSpec
from ..errors import BudgetError, KeyMismatchError, ProtocolError
from ..paillier import FixedPoint, PaillierPrivateKey, PaillierPublicKey, from_residue, generate_keypair, to_residue
from ..paillier import ops
from ..paillier.parallel import MapFn
from .metrics import ks_statistic, roc_auc
from .optim import apply_gradient, init_optimizer
from .engines import Engine, FastEngine, make_engine
from .params import BudgetPlan, HeteroLRParams, plan_budget
from .preprocess import epoch_batches

__all__ = [
    "LRStep",
    "EncryptedVector",
    "PublicKeyMessage",
    "TrainingPlan",
    "EncryptedScores",
    "EncryptedResiduals",
    "EncryptedMaskedGradient",
    "MaskedGradient",
    "EncryptedLoss",
    "EpochDecision",
    "HostTestScores",
    "EvaluationMetrics",
    "GuestModel",
    "HostModel",
    "CoordinatorSummary",
    "guest_program",
    "host_program",
    "coordinator_program",
    "quantize",
    "check_batch_size",
    "host_encrypt_scores",
    "guest_residuals",
    "encrypted_gradient",
    "mask_gradient",
    "decrypt_masked",
    "unmask_gradient",
]

G, H, C = Role.GUEST, Role.HOST, Role.COORDINATOR
LOG2 = math.log(2.0)


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class EncryptedVector:
    """Paillier ciphertexts (integers mod n^2) of fixed-point values with scale 2^exponent."""

    key_fingerprint: bytes
    exponent: int
    values: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.values)

    def check_key(self, public_key: PaillierPublicKey) -> "EncryptedVector":
        if self.key_fingerprint != public_key.fingerprint():
            raise KeyMismatchError("ciphertexts were encrypted under a different public key")
        return self


@dataclass(frozen=True)
class PublicKeyMessage(Public):
    """The coordinator's Paillier public key for this job."""

    public_key: PaillierPublicKey

    def disclosed(self) -> dict[str, Any]:
        return {"paillier_key_bits": self.public_key.bits, "key_fingerprint": self.public_key.fingerprint().hex()}


@dataclass(frozen=True)
class TrainingPlan(Public):
    """Sizes fixed by the aligned intersection and the job: what the coordinator must serve."""

    n_train: int
    n_test: int
    batches_per_epoch: int

    def disclosed(self) -> dict[str, Any]:
        return {"training_rows": self.n_train, "test_rows": self.n_test, "batches_per_epoch": self.batches_per_epoch}


@dataclass(frozen=True)
class EncryptedScores(Ciphertext):
    """``[[u_H/4]]`` per row and ``[[sum u_H^2/8]]``, under the coordinator's key."""

    quarter_scores: EncryptedVector
    eighth_square_sum: EncryptedVector


@dataclass(frozen=True)
class EncryptedResiduals(Ciphertext):
    """``[[d]]`` per row, under the coordinator's key, rerandomized by the guest."""

    residuals: EncryptedVector


@dataclass(frozen=True)
class EncryptedMaskedGradient(Masked):
    """``[[g + r]]``: the receiver holds the key, so what it can learn is a masked value."""

    values: EncryptedVector


@dataclass(frozen=True)
class MaskedGradient(Masked):
    """``g + r`` as signed integers at scale ``2^exponent``."""

    values: tuple[int, ...]
    exponent: int


@dataclass(frozen=True)
class EncryptedLoss(Aggregate):
    """``[[epoch loss sum]]``; the coordinator decrypts it: the loss is an agreed aggregate."""

    value: EncryptedVector


@dataclass(frozen=True)
class EpochDecision(Aggregate):
    epoch: int
    loss: float
    stop: bool
    reason: str = ""

    def disclosed(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "mean_training_loss": self.loss, "stop": self.stop}


@dataclass(frozen=True)
class HostTestScores(Plaintext):
    """``u_H`` on the test rows. The guest must have ``z`` to score, so it learns ``u_H`` there.

    Every vertical-LR product has this leak; the job declares it, and the relay
    cannot read it because party-to-party payloads are sealed.
    """

    scores: tuple[float, ...]

    def disclosed(self) -> dict[str, Any]:
        return {"rows": len(self.scores), "what": "the host's partial scores u_H on the held-out rows",
                "why": "the guest needs z = u_G + u_H to score its held-out rows; every vertical LR has this leak"}


@dataclass(frozen=True)
class EvaluationMetrics(Aggregate):
    auc: float
    ks: float
    n_test: int
    positives: int

    def disclosed(self) -> dict[str, Any]:
        return {"test_auc": self.auc, "test_ks": self.ks, "test_rows": self.n_test, "test_positives": self.positives}


class LRStep(ProtocolStep):
    PUBLIC_KEY = StepSpec("lr.public_key", (C,), (G, H), PublicKeyMessage, "coordinator's public key")
    PLAN = StepSpec("lr.training_plan", (G,), (C,), TrainingPlan, "batch count the coordinator serves")
    HOST_SCORES = StepSpec("lr.host_scores", (H,), (G,), EncryptedScores)
    RESIDUALS = StepSpec("lr.residuals", (G,), (H,), EncryptedResiduals)
    MASKED_GRADIENT = StepSpec("lr.masked_gradient", (G, H), (C,), EncryptedMaskedGradient)
    DECRYPTED = StepSpec("lr.decrypted_masked_gradient", (C,), (G, H), MaskedGradient)
    EPOCH_LOSS = StepSpec("lr.epoch_loss", (G,), (C,), EncryptedLoss)
    EPOCH_DECISION = StepSpec("lr.epoch_decision", (C,), (G, H), EpochDecision)
    TEST_SCORES = StepSpec("lr.host_test_scores", (H,), (G,), HostTestScores)
    METRICS = StepSpec("lr.metrics", (G,), (C,), EvaluationMetrics)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class GuestModel:
    weights: np.ndarray | None  # one per guest feature; None when the weights stay secret-shared
    intercept: float | None
    epochs: int
    losses: tuple[float, ...]
    metrics: EvaluationMetrics
    test_scores: np.ndarray = field(repr=False)  # z on the test rows
    shares: Any = None  # two-party ``reveal_weights: shared``: :class:`fedcredit.protocols.hetero_lr.two_party.WeightShares`
    # two-party early stopping: the validation metric after each epoch, and the epoch whose weights were kept
    validation: tuple[float, ...] = ()
    best_epoch: int | None = None


@dataclass(frozen=True)
class HostModel:
    weights: np.ndarray | None
    epochs: int
    losses: tuple[float, ...]
    shares: Any = None
    best_epoch: int | None = None  # two-party early stopping: the epoch whose weights were kept


@dataclass(frozen=True)
class CoordinatorSummary:
    epochs: int
    losses: tuple[float, ...]
    metrics: EvaluationMetrics
    key_bits: int


# --------------------------------------------------------------------------- pure steps


def quantize(x: np.ndarray, frac_bits: int) -> np.ndarray:
    """Features to int64 fixed point (the multi-exponentiation exponents)."""
    return np.rint(np.asarray(x, dtype=float) * float(2**frac_bits)).astype(np.int64)


def check_batch_size(rows: int, n_weights: int) -> None:
    """Refuse a batch whose gradient could be solved for the per-row residuals."""
    if rows <= 2 * n_weights:
        raise ProtocolError(
            f"a batch of {rows} rows with {n_weights} weights would let the gradient reveal "
            f"per-row residuals; use batch_size > {2 * n_weights} and more aligned rows"
        )


def _check_scores(u: np.ndarray, params: HeteroLRParams) -> None:
    if u.size and float(np.max(np.abs(u))) > params.max_abs_score:
        raise BudgetError(
            f"a partial score reached {float(np.max(np.abs(u))):.3g}, above the planned bound "
            f"{params.max_abs_score:g}; the model diverged (lower learning_rate)"
        )


def _encrypt_ints(pk: PaillierPublicKey, encryptor: Engine, ints: Sequence[int]) -> tuple[Any, ...]:
    return tuple(encryptor.encrypt_raw_many([to_residue(pk, int(v)) for v in ints]))


def host_encrypt_scores(
    pk: PaillierPublicKey, encryptor: Engine, u_host: np.ndarray, params: HeteroLRParams
) -> EncryptedScores:
    """Host step: encrypt ``u_H/4`` per row and ``sum u_H^2 / 8`` at the gradient scale."""
    _check_scores(u_host, params)
    fr, fx = params.residual_frac_bits, params.feature_frac_bits
    quarter = FixedPoint(fr).encode(0.25 * u_host)
    sq = FixedPoint(fr + fx).encode(np.array([float(np.sum(u_host * u_host)) / 8.0]))
    fp = pk.fingerprint()
    return EncryptedScores(
        EncryptedVector(fp, fr, _encrypt_ints(pk, encryptor, quarter)),
        EncryptedVector(fp, fr + fx, _encrypt_ints(pk, encryptor, sq)),
    )


def guest_residuals(
    pk: PaillierPublicKey,
    encryptor: Engine,
    scores: EncryptedScores,
    u_guest: np.ndarray,
    y_pm: np.ndarray,
    params: HeteroLRParams,
) -> EncryptedResiduals:
    """Guest step: ``[[d]] = [[u_H/4]] + Enc(u_G/4 - y/2)`` with fresh encryption randomness."""
    q = scores.quarter_scores.check_key(pk)
    if len(q) != len(u_guest) or q.exponent != params.residual_frac_bits:
        raise ProtocolError("host scores do not match the batch (length or scale)")
    _check_scores(u_guest, params)
    own = _encrypt_ints(pk, encryptor, FixedPoint(params.residual_frac_bits).encode(0.25 * u_guest - 0.5 * y_pm))
    return EncryptedResiduals(EncryptedVector(pk.fingerprint(), q.exponent, tuple(ops.add_many(pk, q.values, own))))


def encrypted_gradient(
    pk: PaillierPublicKey, residuals: EncryptedResiduals, xq: np.ndarray, feature_frac_bits: int, engine: Engine | None = None
) -> EncryptedVector:
    """``[[X^T d]]`` by one multi-exponentiation per feature column (scale fr + fx)."""
    r = residuals.residuals.check_key(pk)
    if len(r) != xq.shape[0]:
        raise ProtocolError("residuals do not match the batch length")
    engine = engine if engine is not None else FastEngine(pk, None)
    return EncryptedVector(pk.fingerprint(), r.exponent + feature_frac_bits, tuple(engine.matvec_t(r.values, xq)))


def mask_gradient(
    pk: PaillierPublicKey, encryptor: Engine, grad: EncryptedVector, plan: BudgetPlan, rng: Any
) -> tuple[EncryptedMaskedGradient, tuple[int, ...]]:
    """Add a fresh uniform mask of ``plan.mask_bits`` bits to every component, then rerandomize.

    The key holder can strip a ciphertext down to its randomness; rerandomizing
    makes that randomness fresh, so the ciphertext tells it nothing beyond ``g + r``.
    """
    masks = tuple(int(rng.getrandbits(plan.mask_bits)) for _ in grad.values)
    masked = tuple(encryptor.rerandomize(ops.add_plain(pk, c, r)) for c, r in zip(grad.values, masks))
    return EncryptedMaskedGradient(EncryptedVector(grad.key_fingerprint, grad.exponent, masked)), masks


def decrypt_masked(sk: PaillierPrivateKey, msg: EncryptedMaskedGradient) -> MaskedGradient:
    """Coordinator step: decrypt masked values (it never sees an unmasked gradient)."""
    pk = sk.public_key
    v = msg.values.check_key(pk)
    return MaskedGradient(tuple(from_residue(pk, sk.decrypt_raw(c)) for c in v.values), v.exponent)


def unmask_gradient(msg: MaskedGradient, masks: Sequence[int], batch_rows: int) -> np.ndarray:
    """Remove the masks exactly (integer arithmetic) and return the mean gradient."""
    if len(msg.values) != len(masks):
        raise ProtocolError("decrypted gradient has the wrong length")
    return FixedPoint(0).decode([v - r for v, r in zip(msg.values, masks)], msg.exponent) / batch_rows


def _decrypt_scalar(sk: PaillierPrivateKey, v: EncryptedVector) -> float:
    pk = sk.public_key
    v.check_key(pk)
    if len(v) != 1:
        raise ProtocolError("expected one ciphertext")
    return float(FixedPoint(0).decode([from_residue(pk, sk.decrypt_raw(v.values[0]))], v.exponent)[0])


def decide_epoch(previous_losses: Sequence[float], loss: float, epoch: int, params: HeteroLRParams) -> EpochDecision:
    """The coordinator's stop rule (both engines): stop when the mean loss changes by less than tol, or at max_epochs."""
    if not math.isfinite(loss):
        raise BudgetError("the training loss is not finite")
    change = abs(previous_losses[-1] - loss) if previous_losses else math.inf
    if change < params.tol:
        return EpochDecision(epoch + 1, loss, True, f"loss changed by {change:.2e} < tol {params.tol:g}")
    if epoch + 1 >= params.max_epochs:
        return EpochDecision(epoch + 1, loss, True, "max_epochs reached")
    return EpochDecision(epoch + 1, loss, False, "")


def _receive_key(msg: PublicKeyMessage, params: HeteroLRParams) -> PaillierPublicKey:
    pk = msg.public_key
    if pk.bits < params.key_bits:
        raise ProtocolError(f"coordinator key has {pk.bits} bits, the job requires {params.key_bits}")
    return pk


# --------------------------------------------------------------------------- role programs


def guest_program(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    params: HeteroLRParams,
    rng: Any,
    *,
    map_fn: MapFn | None = None,
) -> RoleProgram:
    """The guest (label holder). ``x_*`` are standardized; ``y`` in {0, 1}. Returns :class:`GuestModel`.

    ``map_fn`` (optional, see :mod:`fedcredit.protocols.paillier.parallel`) computes encryption
    randomness on the caller's pool; the messages do not depend on it."""
    n_train, m = x_train.shape
    if n_train < 1:
        raise ProtocolError("nothing to train: the aligned training set is empty")
    xb = np.hstack([x_train, np.ones((n_train, 1))])  # intercept last
    penalized = np.r_[np.ones(m), 0.0]
    y_pm = 2.0 * np.asarray(y_train, dtype=float) - 1.0
    fr, fx = params.residual_frac_bits, params.feature_frac_bits
    plan = plan_budget(params, n_train=n_train, max_abs_feature=float(np.max(np.abs(xb))) if xb.size else 1.0)
    xq = quantize(xb, fx)
    n_batches = len(epoch_batches(n_train, params.batch_size_for(n_train), params.seed, 0))

    pk = _receive_key((yield Recv(LRStep.PUBLIC_KEY)), params)
    encryptor = make_engine(params.paillier_engine, pk, rng, map_fn)
    yield Send(LRStep.PLAN, TrainingPlan(n_train, len(y_test), n_batches))

    opt = init_optimizer(params.optimizer, m + 1)
    losses: list[float] = []
    epoch = 0
    for epoch in range(params.max_epochs):
        lr = params.learning_rate_at(epoch)
        loss_ct = None
        for b, rows in enumerate(epoch_batches(n_train, params.batch_size_for(n_train), params.seed, epoch)):
            check_batch_size(len(rows), m + 1)
            scores: EncryptedScores = yield Recv(LRStep.HOST_SCORES)
            u_g = xb[rows] @ opt.weights
            yb = y_pm[rows]
            resid = guest_residuals(pk, encryptor, scores, u_g, yb, params)
            yield Send(LRStep.RESIDUALS, resid)

            masked, masks = mask_gradient(pk, encryptor, encrypted_gradient(pk, resid, xq[rows], fx, encryptor), plan, rng)
            yield Send(LRStep.MASKED_GRADIENT, masked)

            # Taylor loss of the batch at scale fr+fx, while the coordinator decrypts:
            # sum(log2 - y u_G/2 + u_G^2/8) + sum((u_G - 2y) * u_H/4) + sum(u_H^2/8)
            cross = encryptor.dot(scores.quarter_scores.values, [int(v) for v in quantize(u_g - 2.0 * yb, fx)])
            own = float(np.sum(LOG2 - 0.5 * yb * u_g + u_g * u_g / 8.0))
            sq = scores.eighth_square_sum.check_key(pk)
            if sq.exponent != fr + fx or len(sq) != 1:
                raise ProtocolError("host square sum has the wrong scale")
            batch_loss = ops.add_plain(pk, ops.add(pk, cross, sq.values[0]), to_residue(pk, FixedPoint(fr + fx).encode([own])[0]))
            loss_ct = batch_loss if loss_ct is None else ops.add(pk, loss_ct, batch_loss)

            grad = unmask_gradient((yield Recv(LRStep.DECRYPTED, frm=C)), masks, len(rows))
            opt = apply_gradient(opt, grad, learning_rate=lr, l2=params.l2, l1=params.l1, penalized=penalized,
                                 momentum=params.momentum)
            yield Progress("train", epoch * n_batches + b + 1, params.max_epochs * n_batches, {"epoch": epoch + 1})
        yield Send(LRStep.EPOCH_LOSS, EncryptedLoss(EncryptedVector(pk.fingerprint(), fr + fx, (encryptor.rerandomize(loss_ct),))))
        decision: EpochDecision = yield Recv(LRStep.EPOCH_DECISION, frm=C)
        losses.append(decision.loss)
        if decision.stop:
            break

    test: HostTestScores = yield Recv(LRStep.TEST_SCORES)
    if len(test.scores) != len(y_test):
        raise ProtocolError("host test scores do not match the test rows")
    z = x_test @ opt.weights[:m] + opt.weights[m] + np.asarray(test.scores, dtype=float)
    yt = np.asarray(y_test)
    metrics = EvaluationMetrics(roc_auc(yt, z), ks_statistic(yt, z), int(len(yt)), int(np.sum(yt)))
    yield Send(LRStep.METRICS, metrics)
    return GuestModel(opt.weights[:m].copy(), float(opt.weights[m]), epoch + 1, tuple(losses), metrics, z)


def host_program(x_train: np.ndarray, x_test: np.ndarray, params: HeteroLRParams, rng: Any, *,
                 map_fn: MapFn | None = None) -> RoleProgram:
    """The host (feature holder, no labels). ``x_*`` are standardized. Returns :class:`HostModel`.

    ``map_fn`` as for :func:`guest_program`."""
    n_train, m = x_train.shape
    if n_train < 1:
        raise ProtocolError("nothing to train: the aligned training set is empty")
    fx = params.feature_frac_bits
    plan = plan_budget(params, n_train=n_train, max_abs_feature=float(np.max(np.abs(x_train))) if x_train.size else 1.0)
    xq = quantize(x_train, fx)
    n_batches = len(epoch_batches(n_train, params.batch_size_for(n_train), params.seed, 0))

    pk = _receive_key((yield Recv(LRStep.PUBLIC_KEY)), params)
    encryptor = make_engine(params.paillier_engine, pk, rng, map_fn)
    opt = init_optimizer(params.optimizer, m)
    losses: list[float] = []
    epoch = 0
    for epoch in range(params.max_epochs):
        lr = params.learning_rate_at(epoch)
        for b, rows in enumerate(epoch_batches(n_train, params.batch_size_for(n_train), params.seed, epoch)):
            check_batch_size(len(rows), m)
            u_h = x_train[rows] @ opt.weights
            yield Send(LRStep.HOST_SCORES, host_encrypt_scores(pk, encryptor, u_h, params))
            resid: EncryptedResiduals = yield Recv(LRStep.RESIDUALS)
            masked, masks = mask_gradient(pk, encryptor, encrypted_gradient(pk, resid, xq[rows], fx, encryptor), plan, rng)
            yield Send(LRStep.MASKED_GRADIENT, masked)
            grad = unmask_gradient((yield Recv(LRStep.DECRYPTED, frm=C)), masks, len(rows))
            opt = apply_gradient(opt, grad, learning_rate=lr, l2=params.l2, l1=params.l1, momentum=params.momentum)
            yield Progress("train", epoch * n_batches + b + 1, params.max_epochs * n_batches, {"epoch": epoch + 1})
        decision: EpochDecision = yield Recv(LRStep.EPOCH_DECISION, frm=C)
        losses.append(decision.loss)
        if decision.stop:
            break
    yield Send(LRStep.TEST_SCORES, HostTestScores(tuple(float(v) for v in x_test @ opt.weights)))
    return HostModel(opt.weights.copy(), epoch + 1, tuple(losses))


def coordinator_program(
    params: HeteroLRParams,
    rng: Any,
    keypair: tuple[PaillierPublicKey, PaillierPrivateKey] | None = None,
) -> RoleProgram:
    """The coordinator: key holder that only ever decrypts masked values and agreed aggregates."""
    pk, sk = keypair if keypair is not None else generate_keypair(params.key_bits, rng)
    if pk.bits < params.key_bits:
        raise BudgetError(f"key of {pk.bits} bits is below the job's {params.key_bits}")
    yield Send(LRStep.PUBLIC_KEY, PublicKeyMessage(pk), to=G)
    yield Send(LRStep.PUBLIC_KEY, PublicKeyMessage(pk), to=H)
    plan: TrainingPlan = yield Recv(LRStep.PLAN)
    if plan.batches_per_epoch < 1 or plan.n_train < 1:
        raise ProtocolError("nothing to train: the aligned training set is empty")
    losses: list[float] = []
    epoch = 0
    for epoch in range(params.max_epochs):
        for _ in range(plan.batches_per_epoch):
            for role in (G, H):
                masked: EncryptedMaskedGradient = yield Recv(LRStep.MASKED_GRADIENT, frm=role)
                yield Send(LRStep.DECRYPTED, decrypt_masked(sk, masked), to=role)
        loss_msg: EncryptedLoss = yield Recv(LRStep.EPOCH_LOSS)
        loss = _decrypt_scalar(sk, loss_msg.value) / plan.n_train
        decision = decide_epoch(losses, loss, epoch, params)
        losses.append(loss)
        stop = decision.stop
        yield Send(LRStep.EPOCH_DECISION, decision, to=G)
        yield Send(LRStep.EPOCH_DECISION, decision, to=H)
        yield Progress("train", epoch + 1, params.max_epochs, {"epoch": epoch + 1, "loss": loss})
        if stop:
            break
    metrics: EvaluationMetrics = yield Recv(LRStep.METRICS)
    return CoordinatorSummary(epoch + 1, tuple(losses), metrics, pk.bits)
