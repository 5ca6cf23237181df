"""Two-party vertical logistic regression: secret-shared weights, one key per party, no key at the coordinator.

The whole exchange, for both roles, is in this module. The coordinator has no
role program here: it relays sealed payloads and records transcripts, and holds
no secret key, so it learns nothing even together with either party.

Notation. ``[[v]]_P`` is ``v`` encrypted under party P's own key (P can
decrypt it; the other party cannot). Every weight vector is additively shared
modulo ``2^ℓ`` (``ℓ = params.ring_bits``, default 160) for the whole training:

* ``w_G = a_G + b_G``: the guest holds ``a_G``, the host holds ``b_G``;
* ``w_H = a_H + b_H``: the host holds ``a_H``, the guest holds ``b_H``.

Fixed point: features ``X`` at scale ``2^fx`` (``feature_frac_bits``), weights
at ``2^fw`` (``share_frac_bits``); ``D = z − 2y = 4·d`` (the Taylor residual
times four, ``y ∈ {−1, 1}``) at ``2^(fx+fw)``. Shares are Python ints in
``[0, 2^ℓ)``.

Per mini-batch B, both parties run the same steps at the same time (P is
either party, Q the other; every step is sent in both directions)::

    P -> Q  lr2.shares      [[b_Q · 2^(kS)]]_P, k < K           Q's weights' share held by P, under P's key
    P -> Q  lr2.conversion  [[Σ_k (X_P b_P + c + s) 2^(kS)]]_Q  K rows per ciphertext, fresh s, fresh randomness
            Q decrypts: its share of X_P b_P is the slot mod 2^ℓ; P keeps −(c + s).
    P -> Q  lr2.residual    [[D^P]]_P, per row                   P's share of D, under P's key
    P -> Q  lr2.gradient    [[X_P^T (D^P + D^Q) + c' + r]]_Q     fresh r, fresh randomness
            Q decrypts: its share of g_P; P keeps −(c' + r).
    each    updates both of its weight shares locally (SGD is linear in the gradient),
            truncating its own share of ``lr · g`` (SecureML local truncation).

Per epoch (the Taylor loss is ``log 2 − 1/2 + D²/8`` per row, so the epoch
loss is determined by ``Σ D²``)::

    host -> guest   lr2.masked_loss   [[2 Σ D^G D^H + Σ (D^H)² + ρ]]_G   fresh ρ
    guest -> host   lr2.loss_reply    (that + Σ (D^G)²) mod 2^ℓ          = Σ D² + ρ (mod 2^ℓ)
    host -> guest   lr2.epoch_decision  mean loss, stop or continue      (an agreed aggregate)

The host does the loss's cross term (one multi-exponentiation per batch with
``ℓ``-bit exponents) because the guest has the intercept and usually more
features: it balances the two parties' work per batch.

After training, ``reveal_weights: owner`` (the default)::

    P -> Q  lr2.weight_share   b_Q: Q learns its own weights w_Q     (the agreed output)
    host -> guest  lr2.host_test_scores  u_H on the test rows        (the declared scoring leak)

or ``reveal_weights: shared`` (the weights are never reconstructed; a model is
two parts, and neither can score alone)::

    P -> Q  lr2.shares, lr2.conversion   over the test rows, as in a batch
    host -> guest  lr2.test_score_shares  the host's shares of z     (masked: uniform mod 2^ℓ)

so the guest learns ``z`` of the test rows, not ``u_H`` (it does not know its
own weights either, so it cannot subtract ``u_G``).

What a party sees. Its own data and shares; ciphertexts under the other's key
(``lr2.shares``, ``lr2.residual``); values it decrypts that are masked by the
other's fresh randomness, uniform and ``mask_security_bits`` (≥ 40, 80 by
default) wider than the value (``lr2.conversion``, ``lr2.gradient``,
``lr2.masked_loss``, each slot reduced mod ``2^ℓ`` to a uniform share); the
epoch losses; its own final weights; and, the guest only, ``u_H`` on the test
rows (``z`` only, with ``reveal_weights: shared``). Never a gradient, a
residual, a score of a training row, an intermediate weight, or a label. Why each detail matters:

1. **Blinding randomness on everything that goes to the key holder.** The
   key holder can recover the randomness ``r`` of what it decrypts, and a
   ciphertext computed from its own ciphertexts carries ``Π r_j^{x_ij}`` with
   ``r_j`` it knows: a fresh DJN encryption on a base of the sender's choosing
   still leaves Legendre symbols (and other characters) of ``r`` readable,
   hence parities of ``x``. So every party encrypts under a key with that
   key's canonical base (:func:`protocols.paillier.canonical_base`), and the
   mask added to such a ciphertext is encrypted with an exponent ``|n| + σ``
   bits long (:meth:`PublicEngine.encrypt_blinding_many`): its randomness is
   within ``2^-σ`` of uniform on the one subgroup all randomness lives in
   (``tests/attacks/test_ciphertext_randomness.py``).
2. **Masks wider than the value, then reduction mod 2^ℓ.** ``s``, ``r`` and
   ``ρ`` are uniform in ``[0, 2^(bound + σ))``: the decrypted integer is
   within statistical distance ``2^-σ`` of the mask alone, and its residue mod
   ``2^ℓ`` is a uniform share.
3. **Packing the conversion.** The key holder decrypts ``|B|/K`` ciphertexts
   per batch instead of ``|B|``: the sender multiplies ``K`` shifted copies of
   each share, ``[[b_j · 2^(kS)]]``, by the rows' features in one
   multi-exponentiation per ciphertext, and masks all ``K`` slots with one
   fresh encryption. A CRT decryption costs about four encryptions, so this
   cuts the per-batch cost of the conversion several times.
4. **No plaintext gradient anywhere**, so the first-batch subset-sum attack on
   the coordinated mode (``d = −y/2`` at zero weights) has nothing to work on:
   what the host decrypts in the first batch is uniform whatever the labels.

Rounding: local truncation makes the sum of the truncated shares off by at
most one unit of ``2^-fw``, and wrong with probability below ``2^-40`` per
truncation; :func:`plan_two_party` checks ``ℓ`` for that before any work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..core import Aggregate, Ciphertext, Masked, Plaintext, Progress, ProtocolStep, Public, Recv, Role, RoleProgram, Send, StepSpec
from ..errors import BudgetError, ProtocolError
from ..paillier import PaillierPrivateKey, PaillierPublicKey, generate_keypair
from ..paillier.parallel import MapFn
from .he import PaillierPublic, PaillierSecret, PublicEngine, SecretEngine
from .metrics import ks_statistic, roc_auc
from .params import HeteroLRParams
from .preprocess import epoch_batches
from .protocol import EncryptedVector, EpochDecision, EvaluationMetrics, GuestModel, HostModel, HostTestScores, decide_epoch, quantize

__all__ = [
    "TwoPartyStep",
    "PartySetup",
    "EncryptedShares",
    "MaskedConversion",
    "EncryptedResidualShare",
    "MaskedGradientShare",
    "MaskedLoss",
    "MaskedLossReply",
    "WeightShare",
    "ScoreShares",
    "WeightShares",
    "TwoPartyPlan",
    "plan_two_party",
    "guest_program",
    "host_program",
    "truncate_share",
    "update_shares",
    "StepConstants",
    "to_signed",
]

G, H = Role.GUEST, Role.HOST
LOG2 = math.log(2.0)


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class PartySetup(Public):
    """A party's own Paillier public key and the public sizes both sides must agree on."""

    public_key: PaillierPublicKey
    n_features: int  # weights of the sender (the guest counts its intercept)
    n_train: int
    n_test: int

    def disclosed(self) -> dict[str, Any]:
        return {"paillier_key_bits": self.public_key.bits, "key_fingerprint": self.public_key.fingerprint().hex(),
                "n_features": self.n_features, "training_rows": self.n_train, "test_rows": self.n_test}


@dataclass(frozen=True)
class EncryptedShares(Ciphertext):
    """``[[b · 2^(kS)]]`` under the *sender's* key: its share of the receiver's weights, K shifted copies."""

    key_of_sender = True
    values: EncryptedVector  # K blocks of m values, block k shifted by k * slot_bits


@dataclass(frozen=True)
class MaskedConversion(Masked):
    """The sender's rows times the receiver's weight share, K rows packed per ciphertext, masked.

    Under the receiver's key; each slot is ``X_i b + c + s_i`` with a fresh mask.
    """

    values: EncryptedVector
    rows: int
    slot_bits: int
    slots: int


@dataclass(frozen=True)
class EncryptedResidualShare(Ciphertext):
    """``[[D^P]]`` per row under the *sender's* key: its share of the residual."""

    key_of_sender = True
    values: EncryptedVector


@dataclass(frozen=True)
class MaskedGradientShare(Masked):
    """``[[X_P^T D + c' + r]]`` under the receiver's key, fresh mask per component."""

    values: EncryptedVector


@dataclass(frozen=True)
class MaskedLoss(Masked):
    """``[[A + ρ]]`` under the guest's key, where ``A`` is the host's part of ``Σ D²`` over the epoch."""

    values: EncryptedVector


@dataclass(frozen=True)
class MaskedLossReply(Aggregate):
    """``(A + ρ + Σ (D^G)²) mod 2^ℓ``. The host made ``ρ``: removing it gives ``Σ D²`` of the epoch,
    that is the epoch's Taylor loss (an agreed aggregate), and nothing more."""

    value: int
    ring_bits: int

    def disclosed(self) -> dict[str, Any]:
        return {"what": "the epoch's sum of squared residuals plus the receiver's own mask: the epoch loss"}


@dataclass(frozen=True)
class ScoreShares(Plaintext):
    """``reveal_weights: shared``: the host's shares of the joint scores ``z`` of the test rows.

    Uniform on their own, but the guest adds its shares: it learns ``z`` of every
    test row (not ``u_H``), which evaluation needs. Declared, as the scoring leak is."""

    values: tuple[int, ...]
    ring_bits: int

    def disclosed(self) -> dict[str, Any]:
        return {"rows": len(self.values), "what": "the joint scores z of the held-out rows (reveal_weights: shared)",
                "why": "the guest needs z to compute AUC and KS; it learns z, not the host's partial scores"}


@dataclass(frozen=True)
class WeightShares:
    """A party's part of a model whose weights stay secret-shared (``reveal_weights: shared``).

    ``own`` is its share of its own weights (the guest's intercept last), ``peer``
    its share of the other party's; both mod ``2^ring_bits`` at scale ``2^frac_bits``.
    Neither part alone says anything about the weights.
    """

    own: tuple[int, ...]
    peer: tuple[int, ...]
    ring_bits: int
    frac_bits: int


@dataclass(frozen=True)
class WeightShare(Aggregate):
    """The sender's share of the receiver's weights (``reveal_weights: owner``): the agreed output."""

    values: tuple[int, ...]
    ring_bits: int

    def disclosed(self) -> dict[str, Any]:
        return {"what": "the sender's additive share of the receiver's own final weights", "weights": len(self.values)}


class TwoPartyStep(ProtocolStep):
    SETUP = StepSpec("lr2.setup", (G, H), (G, H), PartySetup, "each party's own public key and the public sizes")
    SHARES = StepSpec("lr2.shares", (G, H), (G, H), EncryptedShares, "sender's share of the receiver's weights, under the sender's key")
    CONVERSION = StepSpec("lr2.conversion", (G, H), (G, H), MaskedConversion, "X_P b_P, masked, under the receiver's key")
    RESIDUAL = StepSpec("lr2.residual", (G, H), (G, H), EncryptedResidualShare, "sender's share of D, under the sender's key")
    GRADIENT = StepSpec("lr2.gradient", (G, H), (G, H), MaskedGradientShare, "X_P^T D, masked, under the receiver's key")
    MASKED_LOSS = StepSpec("lr2.masked_loss", (H,), (G,), MaskedLoss, "host's part of the epoch's sum of D^2, masked")
    LOSS_REPLY = StepSpec("lr2.loss_reply", (G,), (H,), MaskedLossReply, "the epoch's sum of D^2 plus the host's mask")
    EPOCH_DECISION = StepSpec("lr2.epoch_decision", (H,), (G,), EpochDecision, "mean Taylor loss, stop or continue")
    WEIGHT_SHARE = StepSpec("lr2.weight_share", (G, H), (G, H), WeightShare, "reveal_weights: owner")
    TEST_SCORES = StepSpec("lr2.host_test_scores", (H,), (G,), HostTestScores, "u_H on the test rows (the scoring leak)")
    TEST_SCORE_SHARES = StepSpec("lr2.test_score_shares", (H,), (G,), ScoreShares,
                                 "reveal_weights: shared -- the host's shares of z on the test rows")


# --------------------------------------------------------------------------- ring arithmetic


def to_signed(v: int, ring_bits: int) -> int:
    """The residue ``v mod 2^ℓ`` as a signed int in ``[-2^(ℓ-1), 2^(ℓ-1))``."""
    v &= (1 << ring_bits) - 1
    return v - (1 << ring_bits) if v >> (ring_bits - 1) else v


def truncate_share(v: int, bits: int, ring_bits: int, first: bool) -> int:
    """One party's share of ``x / 2^bits`` from its share ``v`` of ``x`` (SecureML local truncation).

    The guest (``first``) floors its share; the host floors the negation of its
    own. If ``|x| < 2^k`` the two results add up to ``⌊x / 2^bits⌋`` or one more,
    except with probability ``2^(k + 1 - ℓ)``.
    """
    mask = (1 << ring_bits) - 1
    if first:
        return (v & mask) >> bits
    return (-((-v & mask) >> bits)) & mask


def _ring_matvec(xq: np.ndarray, w: Sequence[int], ring_bits: int) -> list[int]:
    """``X w mod 2^ℓ`` for int64 features and ring-share weights (exact, Python ints)."""
    mask = (1 << ring_bits) - 1
    if xq.shape[1] == 0:
        return [0] * xq.shape[0]
    out = xq.astype(object) @ np.asarray(list(w), dtype=object)
    return [int(v) & mask for v in out]


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class TwoPartyPlan:
    """Bit budget of one party's conversion and gradient, derived from public sizes only."""

    ring_bits: int
    slot_bits: int  # S: bits per packed conversion slot
    slots: int  # K: rows per conversion ciphertext
    conversion_offset: int  # c: makes every slot non-negative
    gradient_offset: int  # c'
    gradient_mask_bits: int
    loss_mask_bits: int


def _bits(v: int) -> int:
    return max(int(v).bit_length(), 1)


def plan_two_party(params: HeteroLRParams, *, n_own: int, n_train: int, batch_rows: int, key_bits: int) -> TwoPartyPlan:
    """The budget of the party with ``n_own`` weights whose conversions go under a ``key_bits`` key.

    Checks before any work that (1) the ring holds every truncated value with
    40 bits to spare, (2) a packed slot holds a masked product, (3) a masked
    gradient and the masked loss stay below ``n/3``. Raises :class:`BudgetError`.
    """
    L, fx, fw, fe, sigma = params.ring_bits, params.feature_frac_bits, params.share_frac_bits, params.update_frac_bits, params.mask_security_bits
    xi = params.feature_int_bits
    ms = params.max_abs_score
    # (1) truncation: |lr (g + l2 w)| at scale 2^(2fx + fw + fe); |g| <= 2^xi (ms/2 + 1), |w| <= ms
    # (1) Local truncation of x = x0 + x1 fails only if the guest's share x0 falls in [0, |x|) (mod 2^L),
    # so each stage needs |x| <= 2^-40 * (the spread of x0). Before the first truncation x0 is uniform mod
    # 2^L; after it, the guest's gradient share is uniform below 2^G and every later stage's x0 is at least
    # that share times a public constant, which bounds P(x0 < |x|) by |x| / (constant * 2^G).
    lr, mu = params.learning_rate, params.momentum if params.optimizer == "nesterov" else 0.0
    grad = 2**xi * (ms / 2 + 1) + params.l2 * ms + 1  # |X^T D / (4|B|) + l2 w| in real units
    vel = grad / (1 - mu)  # |v| for Nesterov
    G = L - 2 * fx - fe
    lg = lambda v: math.log2(max(v, 2.0**-60))  # noqa: E731
    stages = [("gradient", lg(grad) + 2 * fx + fw + fe, L)]  # (name, log2 |x|, log2 spread of x0)
    if mu:
        stages.append(("velocity", lg(mu * vel) + fw + fe, G + fe + lg(mu)))
        stages.append(("step", lg(lr * (grad + mu * vel)) + fw + 2 * fe, min(L, G + 2 * fe + lg(lr))))
    else:
        stages.append(("step", lg(lr * grad) + fw + fe, min(L, G + fe + lg(lr))))
    d_bits = math.ceil(math.log2(2 * ms + 2)) + fx + fw + 1
    loss_bits = math.ceil(math.log2(max(n_train, 1))) + 2 * d_bits
    for name, value_bits, spread_bits in stages:
        if value_bits + 40 > spread_bits:
            raise BudgetError(f"ring_bits {L} is too small for the {name} truncation (2^{value_bits - spread_bits:.0f} "
                              "failure probability, above 2^-40): raise ring_bits or lower update_frac_bits/share_frac_bits")
    if loss_bits >= L:  # the epoch's Σ D² must not wrap
        raise BudgetError(f"ring_bits {L} is too small: the epoch loss needs {loss_bits + 1} bits")
    limit = key_bits - 2
    # (2) conversion slot: |X_i b| < n_own 2^(fx + xi + L); offset c makes it non-negative; mask sigma bits wider
    c = n_own << (fx + xi + L)
    slot_bits = _bits(2 * c) + sigma + 2  # value + c < 2c, mask < 2^(bits(2c) + sigma): the sum stays below 2^(S-1)
    slots = limit // slot_bits
    if slots < 1:
        raise BudgetError(f"a {key_bits}-bit key cannot hold a {slot_bits}-bit conversion slot")
    # (3) gradient: |Σ_i x_ij (D^P_i + D^Q_i)| < rows 2^(fx + xi) 2^(L + 1)
    c2 = batch_rows << (fx + xi + L + 1)
    g_mask = _bits(2 * c2) + sigma
    loss_mask = 2 * L + _bits(max(n_train, 1)) + 3 + sigma
    if max(g_mask, loss_mask) + 2 >= limit:
        raise BudgetError(f"a {key_bits}-bit key cannot hold the masked gradient or loss ({max(g_mask, loss_mask) + 2} bits)")
    return TwoPartyPlan(L, slot_bits, slots, c, c2, g_mask, loss_mask)


# --------------------------------------------------------------------------- pure steps


def _randbits(rng: Any, bits: int, count: int) -> list[int]:
    return [int(rng.getrandbits(bits)) for _ in range(count)]


def encrypt_shares(own: PublicEngine, share: Sequence[int], plan: TwoPartyPlan) -> EncryptedShares:
    """``[[b · 2^(kS)]]`` for k < K under the sender's own key (fresh encryptions)."""
    vals = [int(b) << (k * plan.slot_bits) for k in range(plan.slots) for b in share]
    return EncryptedShares(EncryptedVector(own.fingerprint(), 0, tuple(own.encrypt_many(vals))))


def convert(peer: PublicEngine, shares: EncryptedShares, xq: np.ndarray, plan: TwoPartyPlan, rng: Any
            ) -> tuple[MaskedConversion, list[int]]:
    """Sender: ``X b`` for the receiver's weight share ``b``, K rows per ciphertext, masked and rerandomized.

    Returns the message and the sender's own shares of ``X b`` (``−(c + s_i) mod 2^ℓ``).
    """
    rows, m = xq.shape
    v = shares.values
    peer.check(v.key_fingerprint)
    if len(v) != plan.slots * m:
        raise ProtocolError("lr2.shares: wrong number of encrypted shares")
    K, S, L = plan.slots, plan.slot_bits, plan.ring_bits
    masks = _randbits(rng, S - 2, rows)  # X_i b + c + s < 2^(S-1): a slot never carries into the next
    groups = [list(range(g, min(g + K, rows))) for g in range(0, rows, K)]
    # one exponent row per group over all K*m shifted shares; a short last group pads with zeros
    exps = [[int(e) for i in grp for e in xq[i]] + [0] * ((K - len(grp)) * m) for grp in groups]
    products = peer.dot_many(list(v.values), exps)
    offsets = [sum((plan.conversion_offset + masks[i]) << (k * S) for k, i in enumerate(grp)) for grp in groups]
    fresh = peer.encrypt_blinding_many(offsets)  # uniform randomness: the receiver can recover it
    out = tuple(peer.add(p, f) for p, f in zip(products, fresh))
    mine = [(-(plan.conversion_offset + s)) & ((1 << L) - 1) for s in masks]
    return MaskedConversion(EncryptedVector(peer.fingerprint(), 0, out), rows, S, K), mine


def open_conversion(own: SecretEngine, msg: MaskedConversion, rows: int, plan_bits: tuple[int, int], ring_bits: int) -> list[int]:
    """Receiver: decrypt and unpack the slots; each slot mod ``2^ℓ`` is its share of the sender's ``X b``."""
    S, K = plan_bits
    own.public.check(msg.values.key_fingerprint)
    if (msg.rows, msg.slot_bits, msg.slots) != (rows, S, K) or len(msg.values) != -(-rows // K):
        raise ProtocolError("lr2.conversion does not match the batch (rows or layout)")
    slot_mask, ring_mask = (1 << S) - 1, (1 << ring_bits) - 1
    out: list[int] = []
    for p in own.decrypt_many(msg.values.values):
        for _ in range(min(K, rows - len(out))):
            out.append((p & slot_mask) & ring_mask)
            p >>= S
        if p:
            raise ProtocolError("lr2.conversion: a decrypted slot overflowed its layout")
    return out


def mask_gradient(peer: PublicEngine, residual: EncryptedResidualShare, own_share: Sequence[int], xq: np.ndarray,
                  plan: TwoPartyPlan, rng: Any) -> tuple[MaskedGradientShare, list[int]]:
    """Sender: ``[[X^T (D^Q + D^P) + c' + r]]`` under the receiver's key; returns it and ``−(c' + r) mod 2^ℓ``."""
    v = residual.values
    peer.check(v.key_fingerprint)
    if len(v) != xq.shape[0]:
        raise ProtocolError("lr2.residual does not match the batch length")
    full = peer.add_plain_many(v.values, own_share)  # [[D^Q + D^P]] (not reduced mod 2^ℓ; the sum is < 2^(ℓ+1))
    grad = peer.matvec_t(full, xq)
    masks = _randbits(rng, plan.gradient_mask_bits, xq.shape[1])
    fresh = peer.encrypt_blinding_many([plan.gradient_offset + r for r in masks])
    out = tuple(peer.add(g, f) for g, f in zip(grad, fresh))
    L = plan.ring_bits
    return MaskedGradientShare(EncryptedVector(peer.fingerprint(), 0, out)), [(-(plan.gradient_offset + r)) & ((1 << L) - 1) for r in masks]


def open_gradient(own: SecretEngine, msg: MaskedGradientShare, n_weights: int, ring_bits: int) -> list[int]:
    """Receiver: its share of the sender's gradient, ``(decrypted) mod 2^ℓ``."""
    own.public.check(msg.values.key_fingerprint)
    if len(msg.values) != n_weights:
        raise ProtocolError("lr2.gradient has the wrong number of components")
    mask = (1 << ring_bits) - 1
    return [p & mask for p in own.decrypt_many(msg.values.values)]


@dataclass(frozen=True)
class StepConstants:
    """Public fixed-point constants of one batch's update (every party computes the same ones)."""

    grad: int  # round(2^fe / (4|B|)): X^T D at scale 2^(2fx+fw) -> mean gradient
    l2: int  # round(l2 * 2^fe) * 2^(2fx): the L2 term at the same scale
    lr: int  # round(lr * 2^fe)
    momentum: int  # round(μ * 2^fe); 0 for plain SGD
    fx: int
    fe: int

    @classmethod
    def for_batch(cls, params: HeteroLRParams, rows: int, learning_rate: float) -> "StepConstants":
        fx, fe = params.feature_frac_bits, params.update_frac_bits
        mu = params.momentum if params.optimizer == "nesterov" else 0.0
        return cls(round(2**fe / (4 * rows)), round(params.l2 * 2**fe) << (2 * fx), round(learning_rate * 2**fe),
                   round(mu * 2**fe), fx, fe)


def update_shares(w: Sequence[int], v: Sequence[int], g: Sequence[int], penalized: Sequence[int], k: StepConstants,
                  ring_bits: int, first: bool) -> tuple[list[int], list[int]]:
    """One SGD (or Nesterov) step on one party's shares of a weight vector ``w`` and its velocity ``v``.

    ``g`` is the party's share of ``X^T D`` (scale ``2^(2fx+fw)``). In fixed point at scale ``2^fw``:
    ``grad = X^T D / (4|B|) + l2 w``; plain SGD: ``w ← w − lr·grad``; Nesterov:
    ``v ← μ v + grad``, ``w ← w − lr (grad + μ v)``. Every product by a public
    constant is followed by this party's half of a local truncation.
    """
    mask = (1 << ring_bits) - 1

    def trunc(x: int, bits: int) -> int:
        return truncate_share(x & mask, bits, ring_bits, first)

    new_w, new_v = [], []
    for wi, vi, gi, pen in zip(w, v, g, penalized):
        grad = trunc(k.grad * gi + (k.l2 * wi if pen else 0), 2 * k.fx + k.fe)
        if k.momentum:
            vi = (trunc(k.momentum * vi, k.fe) + grad) & mask
            step = trunc((k.lr * grad << k.fe) + k.lr * k.momentum * vi, 2 * k.fe)
        else:
            step = trunc(k.lr * grad, k.fe)
        new_w.append((wi - step) & mask)
        new_v.append(vi)
    return new_w, new_v


# --------------------------------------------------------------------------- role programs


def _keys(params: HeteroLRParams, rng: Any, keypair: tuple[PaillierPublicKey, PaillierPrivateKey] | None
          ) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    pk, sk = keypair if keypair is not None else generate_keypair(params.key_bits, rng)
    if pk.bits < params.key_bits:
        raise BudgetError(f"key of {pk.bits} bits is below the job's {params.key_bits}")
    return pk, sk


def quantize_checked(x: np.ndarray, params: HeteroLRParams) -> np.ndarray:
    """Features to int64 fixed point, refusing values outside the public bound ``±2^feature_int_bits``."""
    limit = 2.0**params.feature_int_bits
    if x.size and not np.all(np.abs(x) < limit):
        raise BudgetError(f"a standardized feature reaches |x| >= {limit:g}; enable training.clip "
                          f"or raise feature_int_bits")
    return quantize(x, params.feature_frac_bits)


def _party(role: Role, x_train: np.ndarray, y_train: np.ndarray | None, x_test: np.ndarray, n_test: int,
           params: HeteroLRParams, rng: Any, keypair: Any, map_fn: MapFn | None) -> RoleProgram:
    """The one program both parties run; the guest additionally holds labels, the intercept and the loss."""
    guest = role is G
    peer_role = H if guest else G
    n_train, m = x_train.shape
    if n_train < 1:
        raise ProtocolError("nothing to train: the aligned training set is empty")
    L, fx, fw, fe = params.ring_bits, params.feature_frac_bits, params.share_frac_bits, params.update_frac_bits
    ring = (1 << L) - 1
    xq = quantize_checked(x_train, params)
    penalized = [1] * m
    if guest:
        xq = np.hstack([xq, np.full((n_train, 1), 1 << fx, dtype=np.int64)])  # intercept last, unpenalized
        penalized = penalized + [0]
        m += 1
        y_pm = 2 * np.asarray(y_train, dtype=np.int64) - 1
    batch_size = params.batch_size_for(n_train)
    layout = epoch_batches(n_train, batch_size, params.seed, 0)  # the sizes are the same every epoch
    n_batches, max_rows = len(layout), max(len(b) for b in layout)

    pk, sk = _keys(params, rng, keypair)
    own = PaillierSecret(sk, rng, params.paillier_engine, map_fn, params.mask_security_bits)
    yield Send(TwoPartyStep.SETUP, PartySetup(pk, m, n_train, n_test), to=peer_role)
    setup: PartySetup = yield Recv(TwoPartyStep.SETUP, frm=peer_role)
    if (setup.n_train, setup.n_test) != (n_train, n_test):
        raise ProtocolError("the parties disagree on the aligned training/test sizes")
    if setup.public_key.bits < params.key_bits:
        raise ProtocolError(f"the peer's key has {setup.public_key.bits} bits, the job requires {params.key_bits}")
    if setup.public_key == pk:
        raise ProtocolError("the peer presented this party's own public key")
    m_peer = setup.n_features
    peer = PaillierPublic(setup.public_key, rng, params.paillier_engine, map_fn, params.mask_security_bits)
    my_plan = plan_two_party(params, n_own=m, n_train=n_train, batch_rows=max_rows, key_bits=setup.public_key.bits)
    peer_plan = plan_two_party(params, n_own=m_peer, n_train=n_train, batch_rows=max_rows, key_bits=pk.bits)

    a, va = [0] * m, [0] * m  # own share of own weights (and of their Nesterov velocity)
    b, vb = [0] * m_peer, [0] * m_peer  # own share of the peer's weights (and velocity)
    peer_pen = [1] * m_peer if guest else [1] * (m_peer - 1) + [0]  # the guest's intercept takes no L2
    losses: list[float] = []
    epoch = 0
    for epoch in range(params.max_epochs):
        lr = params.learning_rate_at(epoch)
        loss_ct = None
        sq_own = 0
        for bi, rows in enumerate(epoch_batches(n_train, batch_size, params.seed, epoch)):
            xb = xq[rows]
            # 1. shares of the scores
            yield Send(TwoPartyStep.SHARES, encrypt_shares(own.public, b, peer_plan), to=peer_role)
            peer_shares: EncryptedShares = yield Recv(TwoPartyStep.SHARES, frm=peer_role)
            conv, own_part = convert(peer, peer_shares, xb, my_plan, rng)
            yield Send(TwoPartyStep.CONVERSION, conv, to=peer_role)
            peer_conv: MaskedConversion = yield Recv(TwoPartyStep.CONVERSION, frm=peer_role)
            peer_part = open_conversion(own, peer_conv, len(rows), (peer_plan.slot_bits, peer_plan.slots), L)
            # 2. shares of D = z - 2y (scale 2^(fx+fw)); the guest subtracts its labels
            local = _ring_matvec(xb, a, L)
            d_own = [(u + c + p) & ring for u, c, p in zip(local, own_part, peer_part)]
            if guest:
                two_y = 2 << (fx + fw)
                d_own = [(d - two_y * int(yv)) & ring for d, yv in zip(d_own, y_pm[rows])]
            yield Send(TwoPartyStep.RESIDUAL, EncryptedResidualShare(
                EncryptedVector(pk.fingerprint(), 0, tuple(own.public.encrypt_many(d_own)))), to=peer_role)
            peer_resid: EncryptedResidualShare = yield Recv(TwoPartyStep.RESIDUAL, frm=peer_role)
            # 3. shares of the gradients
            gmsg, g_own = mask_gradient(peer, peer_resid, d_own, xb, my_plan, rng)
            yield Send(TwoPartyStep.GRADIENT, gmsg, to=peer_role)
            if not guest:  # the loss's cross term, while the guest works on its larger gradient: [[Σ D^G D^H]]_G
                cross = peer.dot(peer_resid.values.values, d_own)
                loss_ct = cross if loss_ct is None else peer.add(loss_ct, cross)
            sq_own = (sq_own + sum(d * d for d in d_own)) & ring
            g_peer = open_gradient(own, (yield Recv(TwoPartyStep.GRADIENT, frm=peer_role)), m_peer, L)
            # 4. local updates of both shares: w -= lr/(4|B|) g + lr l2 w
            k = StepConstants.for_batch(params, len(rows), lr)
            a, va = update_shares(a, va, g_own, penalized, k, L, guest)
            b, vb = update_shares(b, vb, g_peer, peer_pen, k, L, guest)
            yield Progress("train", epoch * n_batches + bi + 1, params.max_epochs * n_batches, {"epoch": epoch + 1})
        # epoch loss: Σ D² = Σ (D^G)² + 2 Σ D^G D^H + Σ (D^H)²  (mod 2^ℓ; the true sum is smaller)
        if not guest:
            rho = int(rng.getrandbits(my_plan.loss_mask_bits))
            masked = peer.add(peer.mul_plain(loss_ct, 2), peer.encrypt_blinding_many([sq_own + rho])[0])
            yield Send(TwoPartyStep.MASKED_LOSS, MaskedLoss(EncryptedVector(peer.fingerprint(), 0, (masked,))))
            reply: MaskedLossReply = yield Recv(TwoPartyStep.LOSS_REPLY)
            if reply.ring_bits != L:
                raise ProtocolError("lr2.loss_reply uses another ring")
            sum_d2 = (reply.value - rho) & ring
            mean_d2 = sum_d2 / 2.0 ** (2 * (fx + fw)) / n_train
            decision = decide_epoch(losses, LOG2 - 0.5 + mean_d2 / 8.0, epoch, params)
            yield Send(TwoPartyStep.EPOCH_DECISION, decision)
        else:
            mloss: MaskedLoss = yield Recv(TwoPartyStep.MASKED_LOSS)
            own.public.check(mloss.values.key_fingerprint)
            if len(mloss.values) != 1:
                raise ProtocolError("lr2.masked_loss carries one value")
            value = own.decrypt_many(mloss.values.values)[0]
            yield Send(TwoPartyStep.LOSS_REPLY, MaskedLossReply((value + sq_own) & ring, L))
            decision = yield Recv(TwoPartyStep.EPOCH_DECISION)
        losses.append(decision.loss)
        if decision.stop:
            break

    if params.reveal_weights == "shared":
        # The weights stay shared. Shares of z on the test rows, by one more conversion each way.
        xt = quantize_checked(x_test, params)
        if guest:
            xt = np.hstack([xt, np.full((xt.shape[0], 1), 1 << fx, dtype=np.int64)])
        yield Send(TwoPartyStep.SHARES, encrypt_shares(own.public, b, peer_plan), to=peer_role)
        peer_shares = yield Recv(TwoPartyStep.SHARES, frm=peer_role)
        conv, own_part = convert(peer, peer_shares, xt, my_plan, rng)
        yield Send(TwoPartyStep.CONVERSION, conv, to=peer_role)
        peer_part = open_conversion(own, (yield Recv(TwoPartyStep.CONVERSION, frm=peer_role)), xt.shape[0],
                                    (peer_plan.slot_bits, peer_plan.slots), L)
        z_share = [(u + c + p) & ring for u, c, p in zip(_ring_matvec(xt, a, L), own_part, peer_part)]
        return WeightShares(tuple(a), tuple(b), L, fw), z_share, epoch + 1, tuple(losses)
    # reveal_weights: owner -- each learns its own weights, nothing else
    yield Send(TwoPartyStep.WEIGHT_SHARE, WeightShare(tuple(b), L), to=peer_role)
    other: WeightShare = yield Recv(TwoPartyStep.WEIGHT_SHARE, frm=peer_role)
    if other.ring_bits != L or len(other.values) != m:
        raise ProtocolError("lr2.weight_share does not match this party's weights")
    weights = np.array([to_signed(ai + bi_, L) / 2.0**fw for ai, bi_ in zip(a, other.values)])
    return weights, None, epoch + 1, tuple(losses)


def guest_program(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    params: HeteroLRParams,
    rng: Any,
    *,
    keypair: tuple[PaillierPublicKey, PaillierPrivateKey] | None = None,
    map_fn: MapFn | None = None,
) -> RoleProgram:
    """The guest (label holder). ``x_*`` standardized, ``y`` in {0, 1}. Returns :class:`GuestModel`.

    ``keypair``: the guest's own Paillier key pair (generated from ``rng`` if
    omitted). ``map_fn`` spreads encryption over the caller's pool."""
    m = x_train.shape[1]
    model, z_share, epochs, losses = yield from _party(G, x_train, y_train, x_test, len(y_test), params, rng, keypair, map_fn)
    yt = np.asarray(y_test)
    if isinstance(model, WeightShares):
        other: ScoreShares = yield Recv(TwoPartyStep.TEST_SCORE_SHARES)
        if other.ring_bits != model.ring_bits or len(other.values) != len(y_test):
            raise ProtocolError("lr2.test_score_shares do not match the test rows")
        scale = 2.0 ** (params.feature_frac_bits + model.frac_bits)
        z = np.array([to_signed(a + b, model.ring_bits) / scale for a, b in zip(z_share, other.values)])
        metrics = EvaluationMetrics(roc_auc(yt, z), ks_statistic(yt, z), int(len(yt)), int(np.sum(yt)))
        return GuestModel(None, None, epochs, losses, metrics, z, shares=model)
    weights = model
    test: HostTestScores = yield Recv(TwoPartyStep.TEST_SCORES)
    if len(test.scores) != len(y_test):
        raise ProtocolError("host test scores do not match the test rows")
    z = x_test @ weights[:m] + weights[m] + np.asarray(test.scores, dtype=float)
    metrics = EvaluationMetrics(roc_auc(yt, z), ks_statistic(yt, z), int(len(yt)), int(np.sum(yt)))
    return GuestModel(weights[:m].copy(), float(weights[m]), epochs, losses, metrics, z)


def host_program(
    x_train: np.ndarray,
    x_test: np.ndarray,
    params: HeteroLRParams,
    rng: Any,
    *,
    keypair: tuple[PaillierPublicKey, PaillierPrivateKey] | None = None,
    map_fn: MapFn | None = None,
) -> RoleProgram:
    """The host (feature holder, no labels). Returns :class:`HostModel`."""
    model, z_share, epochs, losses = yield from _party(H, x_train, None, x_test, x_test.shape[0], params, rng, keypair, map_fn)
    if isinstance(model, WeightShares):
        yield Send(TwoPartyStep.TEST_SCORE_SHARES, ScoreShares(tuple(z_share), model.ring_bits))
        return HostModel(None, epochs, losses, shares=model)
    yield Send(TwoPartyStep.TEST_SCORES, HostTestScores(tuple(float(v) for v in x_test @ model)))
    return HostModel(model.copy(), epochs, losses)
