"""Coordinated vertical logistic regression on CKKS (TenSEAL)-encrypted, masked gradients.

The same protocol as :mod:`.protocol` (the Paillier mode) -- same roles, Taylor
loss, batches, batch-size check, epoch decision, test scores and metrics, and
the same result types -- with CKKS vectors in place of Paillier ciphertexts.
All three roles are in this module.

Per mini-batch B (``P`` = ``|B|`` rounded up to a power of two; a batch is one
ciphertext of ``N/2`` slots holding ``N/2 / P`` copies of the batch)::

    host  -> guest  lr_ckks.host_scores     [[u_H/4]] (block layout), [[sum u_H^2 / 8]]     (sealed)
    guest -> host   lr_ckks.residuals       [[d]] = [[u_H/4]] + Enc(u_G/4 - y/2), fresh     (sealed)
    guest -> coord  lr_ckks.masked_gradient [[X_G^T d / |B| + noise]] + Enc(0) + M_G        (masked)
    host  -> coord  lr_ckks.masked_gradient [[X_H^T d / |B| + noise]] + Enc(0) + M_H        (masked)
    coord -> guest  lr_ckks.decrypted_masked_gradient   requested slots of (g_G + M_G)
    coord -> host   lr_ckks.decrypted_masked_gradient   requested slots of (g_H + M_H)

Per epoch::

    guest -> coord  lr_ckks.masked_loss      [[Taylor-loss pieces, mean over rows]] + Enc(0) + M
    coord -> guest  lr_ckks.decrypted_masked_loss
    guest -> coord  lr_ckks.epoch_loss       mean Taylor loss              (an agreed aggregate)
    coord -> both   lr_ckks.epoch_decision   mean loss, stop or continue

After training::

    host  -> guest  lr_ckks.host_test_scores  u_H on the test rows   (sealed; the scoring leak)
    guest -> coord  lr_ckks.metrics           AUC, KS                 (agreed aggregates)

Each party computes its gradient with its own plaintext features: one
ciphertext-times-plaintext product per ``N/2 / P`` features (feature ``k`` in
block ``k``, divided by ``|B|``), then ``log2 P`` rotate-and-add steps; slot
``k * P`` holds the mean gradient of feature ``k`` (:mod:`protocols.ckks.ops`).

Security: why the guarantees of the Paillier mode hold.

1. **Only a public context leaves the key holder.** The coordinator creates
   the only secret context; ``lr_ckks.public_context`` carries
   ``serialize(save_secret_key=False)``, and
   :func:`protocols.ckks.load_public_context` refuses a context with a secret
   key. Guest and host can encrypt and rotate, never decrypt.
2. **Fresh encryption for [[d]].** The guest adds a *fresh* encryption of
   ``u_G/4 - y/2``, not a plaintext. With ``ct + pt`` the host could subtract
   its own ``[[u_H/4]]`` and get a ciphertext whose second component is zero:
   the plaintext, labels included, in the clear. Fresh CKKS encryption makes
   ``[[d]] - [[u_H/4]]`` an RLWE ciphertext the host cannot open.
3. **Masks and noise flooding before anything reaches the key holder.** The
   key holder can decrypt every slot of what it receives, and a CKKS
   decryption also shows the noise, which depends on the parties' data (the
   Li--Micciancio observation). Each party therefore adds a fresh encryption of
   zero (new randomness, as the Paillier mode rerandomizes) and a polynomial
   whose ``N`` coefficients are uniform in ``[-2^b, 2^b)``, drawn from ``rng``,
   with ``b`` chosen by :meth:`protocols.ckks.CkksParams.validate` so that the
   whole decrypted polynomial -- requested slots, partial sums in the other
   slots, padding, real and imaginary noise -- is within statistical distance
   ``2^-mask_security_bits`` (>= 40) of a distribution independent of the
   data. This floods the CKKS error by ``>= 2^40`` times, and the value by as
   much. The party subtracts its mask exactly (both sides evaluate slots with
   the same integer table, :mod:`protocols.ckks.rns`).
4. **The key holder releases only the requested slots,** which it derives from
   public sizes (rows, block, number of values) and checks like
   :func:`check_batch_size`, as exact fixed-point numbers. A party never sees
   the noise polynomial, which would let it solve for the secret key.
5. **The batch-size check and tail merging** are those of the Paillier mode: a
   party learns its own mean gradient, and a batch with fewer than twice as
   many rows as weights would let it solve for the per-row residuals.

What each role learns: the guest learns its gradients, the epoch losses,
``u_H`` on the test rows (the declared scoring leak) and the metrics; the host
learns its gradients and the epoch losses; the coordinator learns the epoch
losses, the metrics and the sizes (rows per batch, features per party) --
never a gradient, a residual, a score or a label. One residual: CKKS
encryption and key generation draw from SEAL's own CSPRNG, not from ``rng``.

Parameters (:class:`protocols.ckks.CkksParams`): ``N = 8192`` (4096 slots),
primes ``(60, 58, 40, 60)`` = 218 bits, the 128-bit bound at ``N = 8192``;
fresh scale ``2^40``; the 40-bit prime is rescaled away after the product, the
remaining 118 bits hold a masked value (about ``40 + 12 + 60`` bits); the 60-bit
special prime serves key switching. Partial scores are bounded by
``max_abs_score`` (``2^10``), and every slot bound derives from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import tenseal as ts

from ..ckks import (
    FRAC_BITS,
    CkksBudget,
    CkksKeyHolder,
    CkksParams,
    CkksSession,
    RawCiphertext,
    block_size,
    block_targets,
    context_fingerprint,
    load_public_context,
    make_secret_context,
    public_context_bytes,
    replicate_blocks,
    unmask_values,
    vector_from_bytes,
    vector_to_bytes,
)
from ..core import Aggregate, Ciphertext, Masked, Progress, ProtocolStep, Public, Recv, Role, RoleProgram, Send, StepSpec
from ..errors import BudgetError, KeyMismatchError, ProtocolError
from .metrics import ks_statistic, roc_auc
from .optim import apply_gradient, init_optimizer
from .params import HeteroLRParams
from .preprocess import epoch_batches
from .protocol import (
    decide_epoch,
    CoordinatorSummary,
    EpochDecision,
    EvaluationMetrics,
    GuestModel,
    HostModel,
    HostTestScores,
    MaskedGradient,
    TrainingPlan,
    check_batch_size,
)

__all__ = [
    "CkksLRStep",
    "CkksPublicContext",
    "CkksEncryptedScores",
    "CkksEncryptedResiduals",
    "CkksMaskedCiphertexts",
    "CkksEpochLoss",
    "guest_program",
    "host_program",
    "coordinator_program",
    "open_public_context",
    "plan_guest_budgets",
    "plan_host_budget",
    "host_encrypt_scores",
    "load_scores",
    "guest_residuals",
    "masked_gradient",
    "decrypt_masked",
    "unmask_gradient",
    "accumulate_loss",
    "mask_epoch_loss",
]

G, H, C = Role.GUEST, Role.HOST, Role.COORDINATOR
LOG2 = math.log(2.0)


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class CkksPublicContext(Public):
    """The key holder's TenSEAL context *without* its secret key: public key and Galois keys."""

    context: bytes

    def disclosed(self) -> dict[str, Any]:
        return {"ckks_context_bytes": len(self.context), "contains_secret_key": False}


@dataclass(frozen=True)
class CkksEncryptedScores(Ciphertext):
    """``[[u_H/4]]`` in the block layout (``N/2`` slots) and ``[[sum u_H^2 / 8]]`` (one slot).

    Both are serialized TenSEAL CKKS vectors under the coordinator's key.
    """

    key_fingerprint: bytes
    quarter_scores: bytes
    eighth_square_sum: bytes


@dataclass(frozen=True)
class CkksEncryptedResiduals(Ciphertext):
    """``[[d]]`` in the block layout, a serialized TenSEAL CKKS vector, freshly encrypted by the guest."""

    key_fingerprint: bytes
    residuals: bytes


@dataclass(frozen=True)
class CkksMaskedCiphertexts(Masked):
    """Rerandomized, mask-flooded ciphertexts for the key holder (raw RNS format, :class:`RawCiphertext`).

    ``rows``, ``block`` and ``n_values`` are public sizes from which the key
    holder derives the only slots it will release (``k * block`` in ciphertext
    ``g``, for value ``g * (N/2 / block) + k``).
    """

    key_fingerprint: bytes
    rows: int
    block: int
    n_values: int
    ciphertexts: tuple[bytes, ...]


@dataclass(frozen=True)
class CkksEpochLoss(Aggregate):
    """The epoch's mean Taylor loss over the training rows (an agreed aggregate)."""

    loss: float

    def disclosed(self) -> dict[str, Any]:
        return {"mean_training_loss": self.loss}


class CkksLRStep(ProtocolStep):
    PUBLIC_CONTEXT = StepSpec("lr_ckks.public_context", (C,), (G, H), CkksPublicContext, "public CKKS context (no secret key)")
    PLAN = StepSpec("lr_ckks.training_plan", (G,), (C,), TrainingPlan, "batch count the coordinator serves")
    HOST_SCORES = StepSpec("lr_ckks.host_scores", (H,), (G,), CkksEncryptedScores)
    RESIDUALS = StepSpec("lr_ckks.residuals", (G,), (H,), CkksEncryptedResiduals)
    MASKED_GRADIENT = StepSpec("lr_ckks.masked_gradient", (G, H), (C,), CkksMaskedCiphertexts)
    DECRYPTED = StepSpec("lr_ckks.decrypted_masked_gradient", (C,), (G, H), MaskedGradient)
    MASKED_LOSS = StepSpec("lr_ckks.masked_loss", (G,), (C,), CkksMaskedCiphertexts)
    DECRYPTED_LOSS = StepSpec("lr_ckks.decrypted_masked_loss", (C,), (G,), MaskedGradient)
    EPOCH_LOSS = StepSpec("lr_ckks.epoch_loss", (G,), (C,), CkksEpochLoss)
    EPOCH_DECISION = StepSpec("lr_ckks.epoch_decision", (C,), (G, H), EpochDecision)
    TEST_SCORES = StepSpec("lr_ckks.host_test_scores", (H,), (G,), HostTestScores)
    METRICS = StepSpec("lr_ckks.metrics", (G,), (C,), EvaluationMetrics)


# --------------------------------------------------------------------------- budgets


def _max_batch_rows(n_train: int, params: HeteroLRParams) -> tuple[int, int]:
    """(batches per epoch, largest batch): sizes are the same every epoch."""
    batches = epoch_batches(n_train, params.batch_size_for(n_train), params.seed, 0)
    return len(batches), max(len(b) for b in batches)


def _max_abs_residual(ckks: CkksParams) -> float:
    # |d| = |z/4 - y/2| with |z| <= |u_G| + |u_H| <= 2 * max_abs_score
    return ckks.max_abs_score / 2 + 0.5


def plan_guest_budgets(n_train: int, n_weights: int, max_abs_feature: float, params: HeteroLRParams, ckks: CkksParams) -> tuple[CkksBudget, CkksBudget]:
    """The guest's (gradient, loss) budgets; raise :class:`BudgetError` before any work if either cannot fit.

    Every slot of the gradient ciphertext is a partial sum of ``d_i x_ik / |B|``
    (at most ``max|x| * max|d|``); every slot of the loss ciphertext is the mean
    over rows of ``(u_G - 2y) u_H / 4 + u_H^2 / 8``.
    """
    _, rows = _max_batch_rows(n_train, params)
    s = ckks.max_abs_score
    grad = ckks.validate(rows, n_weights, max(max_abs_feature, 1.0) * _max_abs_residual(ckks), ckks.mask_security_bits)
    loss = ckks.validate(rows, 1, (s + 2) * s / 4 + s * s / 8, ckks.mask_security_bits)
    return grad, loss


def plan_host_budget(n_train: int, n_weights: int, max_abs_feature: float, params: HeteroLRParams, ckks: CkksParams) -> CkksBudget:
    """The host's gradient budget (see :func:`plan_guest_budgets`)."""
    _, rows = _max_batch_rows(n_train, params)
    return ckks.validate(rows, max(n_weights, 1), max(max_abs_feature, 1e-12) * _max_abs_residual(ckks), ckks.mask_security_bits)


def _check_scores(u: np.ndarray, ckks: CkksParams) -> None:
    if u.size and float(np.max(np.abs(u))) > ckks.max_abs_score:
        raise BudgetError(
            f"a partial score reached {float(np.max(np.abs(u))):.3g}, above the CKKS plan's bound "
            f"{ckks.max_abs_score:g}; the model diverged (lower learning_rate) or raise max_abs_score"
        )


# --------------------------------------------------------------------------- pure steps


def open_public_context(msg: CkksPublicContext, ckks: CkksParams) -> tuple[CkksSession, bytes]:
    """A party's session on the coordinator's public context, and the context's fingerprint."""
    ctx = load_public_context(msg.context)
    return CkksSession(ctx, ckks), context_fingerprint(msg.context)


def _check_fingerprint(got: bytes, expected: bytes) -> None:
    if got != expected:
        raise KeyMismatchError("ciphertexts were encrypted under a different CKKS context")


def host_encrypt_scores(session: CkksSession, fingerprint: bytes, u_host: np.ndarray, ckks: CkksParams) -> CkksEncryptedScores:
    """Host step: encrypt ``u_H/4`` in the block layout and ``sum u_H^2 / 8``."""
    u_host = np.asarray(u_host, dtype=float)
    _check_scores(u_host, ckks)
    block = block_size(len(u_host))
    quarter = session.encrypt(replicate_blocks(0.25 * u_host, block, session.slots))
    square = session.encrypt_scalar(float(np.sum(u_host * u_host)) / 8.0)
    return CkksEncryptedScores(fingerprint, vector_to_bytes(quarter), vector_to_bytes(square))


def load_scores(session: CkksSession, fingerprint: bytes, scores: CkksEncryptedScores) -> tuple[ts.CKKSVector, ts.CKKSVector]:
    """The host's two vectors, checked for key and size."""
    _check_fingerprint(scores.key_fingerprint, fingerprint)
    quarter = vector_from_bytes(session.ctx, scores.quarter_scores, size=session.slots)
    square = vector_from_bytes(session.ctx, scores.eighth_square_sum, size=1)
    return quarter, square


def guest_residuals(
    session: CkksSession,
    fingerprint: bytes,
    scores: CkksEncryptedScores,
    u_guest: np.ndarray,
    y_pm: np.ndarray,
    ckks: CkksParams,
) -> CkksEncryptedResiduals:
    """Guest step: ``[[d]] = [[u_H/4]] + Enc(u_G/4 - y/2)`` with a *fresh* encryption (never ``ct + pt``)."""
    quarter, _ = load_scores(session, fingerprint, scores)
    u_guest = np.asarray(u_guest, dtype=float)
    _check_scores(u_guest, ckks)
    own = session.encrypt(replicate_blocks(0.25 * u_guest - 0.5 * np.asarray(y_pm, dtype=float), block_size(len(u_guest)), session.slots))
    return CkksEncryptedResiduals(fingerprint, vector_to_bytes(quarter + own))


def masked_gradient(
    session: CkksSession,
    fingerprint: bytes,
    residuals: CkksEncryptedResiduals,
    x_rows: np.ndarray,
    budget: CkksBudget,
    rng: Any,
) -> tuple[CkksMaskedCiphertexts, list[int]]:
    """``[[X^T d / |B|]]`` by block sums, rerandomized and mask-flooded for the key holder.

    Returns the payload and the masks' fixed-point values at the released slots.
    """
    _check_fingerprint(residuals.key_fingerprint, fingerprint)
    x_rows = np.asarray(x_rows, dtype=float)
    rows, n_values = x_rows.shape
    d = vector_from_bytes(session.ctx, residuals.residuals, size=session.slots)
    block = block_size(rows)
    cts = session.block_sums(d, x_rows / rows, rows)
    payload, masks = [], []
    for ct, targets in zip(cts, block_targets(n_values, block, session.slots)):
        raw, mask = session.mask(ct, targets, budget.mask_coeff_bits, rng)
        payload.append(raw.to_bytes())
        masks.extend(mask)
    return CkksMaskedCiphertexts(fingerprint, rows, block, n_values, tuple(payload)), masks


def _released_slots(msg: CkksMaskedCiphertexts, slots: int, *, loss_rows: int | None) -> list[list[int]]:
    """The slots the key holder releases, derived from public sizes only."""
    if loss_rows is not None:
        if msg.rows != loss_rows or msg.block != slots or msg.n_values != 1:
            raise ProtocolError("the masked loss must be one full-slot sum over the training rows")
    else:
        if msg.rows < 1 or msg.block != block_size(msg.rows) or msg.block > slots:
            raise ProtocolError("masked gradient block does not match its batch size")
        check_batch_size(msg.rows, msg.n_values)
    targets = block_targets(msg.n_values, msg.block, slots)
    if len(targets) != len(msg.ciphertexts):
        raise ProtocolError(f"expected {len(targets)} masked ciphertexts, got {len(msg.ciphertexts)}")
    return targets


def decrypt_masked(holder: CkksKeyHolder, fingerprint: bytes, msg: CkksMaskedCiphertexts, *, loss_rows: int | None = None) -> MaskedGradient:
    """Key-holder step: decrypt masked ciphertexts and release only the result slots, as fixed point."""
    _check_fingerprint(msg.key_fingerprint, fingerprint)
    values: list[int] = []
    for data, targets in zip(msg.ciphertexts, _released_slots(msg, holder.session.slots, loss_rows=loss_rows)):
        values.extend(holder.decrypt_slots(RawCiphertext.from_bytes(data), targets, FRAC_BITS))
    return MaskedGradient(tuple(values), FRAC_BITS)


def unmask_gradient(msg: MaskedGradient, masks: Sequence[int]) -> np.ndarray:
    """Remove the masks exactly. The result is already the mean over the batch (``x / |B|`` was encoded)."""
    if msg.exponent != FRAC_BITS:
        raise ProtocolError(f"decrypted values use 2^{msg.exponent}, the masks 2^{FRAC_BITS}")
    return unmask_values(msg.values, masks, FRAC_BITS)


def accumulate_loss(
    session: CkksSession,
    acc: Any,
    scores: tuple[ts.CKKSVector, ts.CKKSVector],
    coeff: np.ndarray,
    n_train: int,
) -> Any:
    """Add one batch's encrypted loss pieces, ``sum_i coeff_i u_H,i / 4 + sum u_H^2 / 8``, over ``n_train``.

    ``coeff = u_G - 2y``. No rotation yet: products of all batches are summed
    first and rotated once per epoch (:func:`mask_epoch_loss`).
    """
    quarter, square = scores
    coeff = np.asarray(coeff, dtype=float)
    cross_plain = np.zeros(session.slots)
    cross_plain[: len(coeff)] = coeff / n_train
    square_plain = np.zeros(session.slots)
    square_plain[0] = 1.0 / n_train
    piece = session.add(
        session.multiply_plain(quarter.ciphertext()[0], cross_plain),
        session.multiply_plain(square.ciphertext()[0], square_plain),
    )
    return piece if acc is None else session.add(acc, piece)


def mask_epoch_loss(
    session: CkksSession, fingerprint: bytes, acc: Any, n_train: int, budget: CkksBudget, rng: Any
) -> tuple[CkksMaskedCiphertexts, list[int]]:
    """Sum the epoch's loss pieces over all slots (every slot then holds the total) and mask for the key holder."""
    if acc is None:
        raise ProtocolError("no loss pieces to send")
    total = session.rotate_and_sum(acc, session.slots)
    raw, mask = session.mask(total, [0], budget.mask_coeff_bits, rng)
    return CkksMaskedCiphertexts(fingerprint, n_train, session.slots, 1, (raw.to_bytes(),)), mask


# --------------------------------------------------------------------------- role programs


def guest_program(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    params: HeteroLRParams,
    ckks: CkksParams,
    rng: Any,
) -> RoleProgram:
    """The guest (label holder). ``x_*`` are standardized; ``y`` in {0, 1}. Returns :class:`GuestModel`."""
    n_train, m = x_train.shape
    if n_train < 1:
        raise ProtocolError("nothing to train: the aligned training set is empty")
    xb = np.hstack([x_train, np.ones((n_train, 1))])  # intercept last
    penalized = np.r_[np.ones(m), 0.0]
    y_pm = 2.0 * np.asarray(y_train, dtype=float) - 1.0
    grad_budget, loss_budget = plan_guest_budgets(n_train, m + 1, float(np.max(np.abs(xb))), params, ckks)
    n_batches, _ = _max_batch_rows(n_train, params)

    session, fp = open_public_context((yield Recv(CkksLRStep.PUBLIC_CONTEXT)), ckks)
    yield Send(CkksLRStep.PLAN, TrainingPlan(n_train, len(y_test), n_batches))

    opt = init_optimizer(params.optimizer, m + 1)
    losses: list[float] = []
    epoch = 0
    for epoch in range(params.max_epochs):
        lr = params.learning_rate_at(epoch)
        loss_acc = None
        own_loss = 0.0
        for b, rows in enumerate(epoch_batches(n_train, params.batch_size_for(n_train), params.seed, epoch)):
            check_batch_size(len(rows), m + 1)
            scores: CkksEncryptedScores = yield Recv(CkksLRStep.HOST_SCORES)
            u_g = xb[rows] @ opt.weights
            yb = y_pm[rows]
            resid = guest_residuals(session, fp, scores, u_g, yb, ckks)
            yield Send(CkksLRStep.RESIDUALS, resid)

            masked, masks = masked_gradient(session, fp, resid, xb[rows], grad_budget, rng)
            yield Send(CkksLRStep.MASKED_GRADIENT, masked)

            # Taylor loss pieces while the coordinator decrypts:
            # mean(log2 - y u_G/2 + u_G^2/8) + mean((u_G - 2y) u_H/4) + mean(u_H^2/8)
            loss_acc = accumulate_loss(session, loss_acc, load_scores(session, fp, scores), u_g - 2.0 * yb, n_train)
            own_loss += float(np.sum(LOG2 - 0.5 * yb * u_g + u_g * u_g / 8.0))

            grad = unmask_gradient((yield Recv(CkksLRStep.DECRYPTED, frm=C)), masks)
            opt = apply_gradient(opt, grad, learning_rate=lr, l2=params.l2, penalized=penalized, momentum=params.momentum)
            yield Progress("train", epoch * n_batches + b + 1, params.max_epochs * n_batches, {"epoch": epoch + 1})
        masked_loss, loss_masks = mask_epoch_loss(session, fp, loss_acc, n_train, loss_budget, rng)
        yield Send(CkksLRStep.MASKED_LOSS, masked_loss)
        encrypted_part = float(unmask_gradient((yield Recv(CkksLRStep.DECRYPTED_LOSS)), loss_masks)[0])
        yield Send(CkksLRStep.EPOCH_LOSS, CkksEpochLoss(encrypted_part + own_loss / n_train))
        decision: EpochDecision = yield Recv(CkksLRStep.EPOCH_DECISION, frm=C)
        losses.append(decision.loss)
        if decision.stop:
            break

    test: HostTestScores = yield Recv(CkksLRStep.TEST_SCORES)
    if len(test.scores) != len(y_test):
        raise ProtocolError("host test scores do not match the test rows")
    z = x_test @ opt.weights[:m] + opt.weights[m] + np.asarray(test.scores, dtype=float)
    yt = np.asarray(y_test)
    metrics = EvaluationMetrics(roc_auc(yt, z), ks_statistic(yt, z), int(len(yt)), int(np.sum(yt)))
    yield Send(CkksLRStep.METRICS, metrics)
    return GuestModel(opt.weights[:m].copy(), float(opt.weights[m]), epoch + 1, tuple(losses), metrics, z)


def host_program(x_train: np.ndarray, x_test: np.ndarray, params: HeteroLRParams, ckks: CkksParams, rng: Any) -> RoleProgram:
    """The host (feature holder, no labels). ``x_*`` are standardized. Returns :class:`HostModel`."""
    n_train, m = x_train.shape
    if n_train < 1:
        raise ProtocolError("nothing to train: the aligned training set is empty")
    budget = plan_host_budget(n_train, m, float(np.max(np.abs(x_train))) if x_train.size else 1.0, params, ckks)
    n_batches, _ = _max_batch_rows(n_train, params)

    session, fp = open_public_context((yield Recv(CkksLRStep.PUBLIC_CONTEXT)), ckks)
    opt = init_optimizer(params.optimizer, m)
    losses: list[float] = []
    epoch = 0
    for epoch in range(params.max_epochs):
        lr = params.learning_rate_at(epoch)
        for b, rows in enumerate(epoch_batches(n_train, params.batch_size_for(n_train), params.seed, epoch)):
            check_batch_size(len(rows), m)
            u_h = x_train[rows] @ opt.weights
            yield Send(CkksLRStep.HOST_SCORES, host_encrypt_scores(session, fp, u_h, ckks))
            resid: CkksEncryptedResiduals = yield Recv(CkksLRStep.RESIDUALS)
            masked, masks = masked_gradient(session, fp, resid, x_train[rows], budget, rng)
            yield Send(CkksLRStep.MASKED_GRADIENT, masked)
            grad = unmask_gradient((yield Recv(CkksLRStep.DECRYPTED, frm=C)), masks)
            opt = apply_gradient(opt, grad, learning_rate=lr, l2=params.l2, momentum=params.momentum)
            yield Progress("train", epoch * n_batches + b + 1, params.max_epochs * n_batches, {"epoch": epoch + 1})
        decision: EpochDecision = yield Recv(CkksLRStep.EPOCH_DECISION, frm=C)
        losses.append(decision.loss)
        if decision.stop:
            break
    yield Send(CkksLRStep.TEST_SCORES, HostTestScores(tuple(float(v) for v in x_test @ opt.weights)))
    return HostModel(opt.weights.copy(), epoch + 1, tuple(losses))


def coordinator_program(
    params: HeteroLRParams,
    ckks: CkksParams,
    rng: Any,
    context: ts.Context | None = None,
) -> RoleProgram:
    """The coordinator: sole holder of the secret context; decrypts masked values only.

    ``rng`` is unused: CKKS key generation draws from SEAL's CSPRNG (it is kept
    for the same signature as the other roles). ``context`` lets a test reuse a
    secret context made by :func:`protocols.ckks.make_secret_context`.
    """
    del rng
    ctx = context if context is not None else make_secret_context(ckks)
    holder = CkksKeyHolder(ctx, ckks)
    public = CkksPublicContext(public_context_bytes(ctx))
    fp = context_fingerprint(public.context)
    yield Send(CkksLRStep.PUBLIC_CONTEXT, public, to=G)
    yield Send(CkksLRStep.PUBLIC_CONTEXT, public, to=H)
    plan: TrainingPlan = yield Recv(CkksLRStep.PLAN)
    if plan.batches_per_epoch < 1 or plan.n_train < 1:
        raise ProtocolError("nothing to train: the aligned training set is empty")
    losses: list[float] = []
    epoch = 0
    for epoch in range(params.max_epochs):
        for _ in range(plan.batches_per_epoch):
            for role in (G, H):
                masked: CkksMaskedCiphertexts = yield Recv(CkksLRStep.MASKED_GRADIENT, frm=role)
                yield Send(CkksLRStep.DECRYPTED, decrypt_masked(holder, fp, masked), to=role)
        masked_loss: CkksMaskedCiphertexts = yield Recv(CkksLRStep.MASKED_LOSS)
        yield Send(CkksLRStep.DECRYPTED_LOSS, decrypt_masked(holder, fp, masked_loss, loss_rows=plan.n_train))
        loss = float((yield Recv(CkksLRStep.EPOCH_LOSS)).loss)
        decision = decide_epoch(losses, loss, epoch, params)
        losses.append(loss)
        stop = decision.stop
        yield Send(CkksLRStep.EPOCH_DECISION, decision, to=G)
        yield Send(CkksLRStep.EPOCH_DECISION, decision, to=H)
        yield Progress("train", epoch + 1, params.max_epochs, {"epoch": epoch + 1, "loss": loss})
        if stop:
            break
    metrics: EvaluationMetrics = yield Recv(CkksLRStep.METRICS)
    return CoordinatorSummary(epoch + 1, tuple(losses), metrics, ckks.total_modulus_bits)
