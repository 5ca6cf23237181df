"""The homomorphic engines of the two-party LR: its three exchanges, for Paillier and for RLWE (CKKS).

Every exchange has the same shape. The *owner* encrypts a vector of ring shares
under its own key; the *peer* multiplies it by a plaintext integer matrix it
holds, adds a fresh mask and sends it back; the owner decrypts. Afterwards the
two hold additive shares mod ``2^ℓ`` of the product and nothing else:

* **conversion** -- ``X_P b``: the owner's share ``b`` of the peer's weights,
  times the peer's rows (``lr2.shares`` → ``lr2.conversion``);
* **gradient** -- ``X_P^T D^Q``: the owner's share of the residual, times the
  peer's columns (``lr2.residual`` → ``lr2.gradient``);
* **loss** -- ``Σ 2 D^H D^G`` over the epoch: the guest's residual shares times
  the host's (``lr2.residual`` → ``lr2.masked_loss``), added up under the
  guest's key before one mask.

:class:`ShareEngine` is that interface; :mod:`.two_party` is written over it
once. :class:`PaillierShareEngine` packs ``K`` conversion rows per ciphertext
(a 2048-bit key, DJN encryption, Straus multi-exponentiation);
:class:`RlweShareEngine` uses ring-LWE (CKKS) ciphertexts with values in
coefficients (:mod:`fedcredit.protocols.rlwe.scheme`): one ciphertext × plaintext product
covers hundreds of rows, which is why it is the faster one.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import gmpy2
import numpy as np

from ..core import MAX_PAYLOAD_BYTES
from ..errors import BudgetError, ProtocolError
from ..paillier import PaillierPrivateKey, PaillierPublicKey, generate_keypair
from ..paillier.parallel import MapFn
from ..rlwe import scheme as rl
from .he import PaillierPublic, PaillierSecret, PublicEngine, SecretEngine
from .params import CLASS_WEIGHT_FRAC_BITS, MAX_CLASS_WEIGHT, HeteroLRParams
from .protocol import EncryptedVector
from .two_party_messages import (EncryptedResidualShare, EncryptedShares, MaskedConversion, MaskedGradientShare,
                                 MaskedLoss, MaskedWeightedResidual, PublicKey)

__all__ = [
    "ShareEngine",
    "TwoPartyPlan",
    "plan_two_party",
    "check_ring_budget",
    "PaillierShareEngine",
    "RlweShareEngine",
    "make_share_engine",
    "MAX_FEATURES",
]

MAX_FEATURES = 4096  # per party: a public bound the RLWE budget is sized for
RLWE_LIMB_BITS = 32  # an encrypted ring share is 5 limbs of 32 bits
LOSS_LIMB_BITS = 20  # the host's residual shares, as the loss product's plaintext rows: 8 limbs of 20 bits


class ShareEngine(Protocol):
    """One party's engine: its own key pair and, after :meth:`bind`, the peer's public key."""

    public_key: PublicKey

    def bind(self, peer_key: PublicKey, *, m_own: int, m_peer: int) -> None:
        """Check the peer's key and plan every exchange from public sizes; raise before any work."""

    # conversion: the owner's share b of the peer's weights -> shares of X_peer b
    def encrypt_weight_share(self, b: Sequence[int]) -> EncryptedShares: ...
    def convert(self, msg: EncryptedShares, xq: np.ndarray) -> tuple[MaskedConversion, list[int]]: ...
    def open_conversion(self, msg: MaskedConversion, rows: int) -> list[int]: ...

    # gradient: the owner's residual share D -> shares of X_peer^T D
    def encrypt_residual(self, d: Sequence[int]) -> EncryptedResidualShare: ...
    def masked_gradient(self, msg: EncryptedResidualShare, xq: np.ndarray) -> tuple[MaskedGradientShare, list[int]]: ...
    def open_gradient(self, msg: MaskedGradientShare) -> list[int]: ...

    # loss (host): Σ over the epoch of row · D^G under the guest's key, then one mask
    def loss_accumulate(self, acc: Any, msg: EncryptedResidualShare, row: Sequence[int]) -> Any: ...
    def loss_mask(self, acc: Any) -> tuple[MaskedLoss, int]: ...
    def open_loss(self, msg: MaskedLoss) -> int: ...

    # the loss accumulator in a checkpoint (taken between batches): JSON-ready data and back
    def dump_loss(self, acc: Any) -> Any: ...
    def load_loss(self, data: Any) -> Any: ...

    # class_weight (guest -> host): the host's residual share times each row's weight, and the loss cross term
    def reweight(self, msg: EncryptedResidualShare, weights: Sequence[int], loss_row: Sequence[int]
                 ) -> tuple[MaskedWeightedResidual, list[int], int]: ...
    def open_reweight(self, msg: MaskedWeightedResidual, rows: int) -> tuple[list[int], int]: ...


def row_weight_bits(params: HeteroLRParams) -> int:
    """Bits a quantized class weight adds to a gradient exponent (0 without class weights)."""
    return 0 if params.class_weight is None else CLASS_WEIGHT_FRAC_BITS + math.ceil(math.log2(MAX_CLASS_WEIGHT)) + 1


# --------------------------------------------------------------------------- Paillier: plan and steps


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


def check_ring_budget(params: HeteroLRParams, n_train: int) -> None:
    """The engine-independent budget: the ring holds every truncated value (with 40 bits to spare) and the loss.

    Raises :class:`BudgetError`.
    """
    L, fx, fw, fe = params.ring_bits, params.feature_frac_bits, params.share_frac_bits, params.update_frac_bits
    xi, ms = params.feature_int_bits, params.max_abs_score
    # truncation: |lr (g + l2 w)| at scale 2^(2fx + fw + fe); |g| <= 2^xi (ms/2 + 1), |w| <= ms.
    # Local truncation of x = x0 + x1 fails only if the guest's share x0 falls in [0, |x|) (mod 2^L),
    # so each stage needs |x| <= 2^-40 * (the spread of x0). Before the first truncation x0 is uniform mod
    # 2^L; after it, the guest's gradient share is uniform below 2^G and every later stage's x0 is at least
    # that share times a public constant, which bounds P(x0 < |x|) by |x| / (constant * 2^G).
    lr, mu = params.learning_rate, params.momentum if params.optimizer == "nesterov" else 0.0
    grad = 2**xi * (ms / 2 + 1) + params.l2 * ms + 1  # |X^T D / (4|B|) + l2 w| in real units
    vel = grad / (1 - mu)  # |v| for Nesterov
    G = L - 2 * fx - fe

    def lg(v: float) -> float:
        return math.log2(max(v, 2.0**-60))

    stages: list[tuple[str, float, float]] = [("gradient", lg(grad) + 2 * fx + fw + fe, L)]  # (name, log2 |x|, log2 spread of x0)
    if mu:
        stages.append(("velocity", lg(mu * vel) + fw + fe, G + fe + lg(mu)))
        stages.append(("step", lg(lr * (grad + mu * vel)) + fw + 2 * fe, min(L, G + 2 * fe + lg(lr))))
    else:
        stages.append(("step", lg(lr * grad) + fw + fe, min(L, G + fe + lg(lr))))
    d_bits = math.ceil(math.log2(2 * ms + 2)) + fx + fw + 1
    loss_bits = math.ceil(math.log2(max(n_train, 1))) + 2 * d_bits
    if params.class_weight is not None:
        # the gradient shares carry the weights at 2^fc until each party truncates them; so does the loss
        wb = row_weight_bits(params)
        stages.insert(0, ("weighted gradient", lg(grad) + 2 * fx + fw + wb, L))
        loss_bits += wb
    for name, value_bits, spread_bits in stages:
        if value_bits + 40 > spread_bits:
            raise BudgetError(f"ring_bits {L} is too small for the {name} truncation (2^{value_bits - spread_bits:.0f} "
                              "failure probability, above 2^-40): raise ring_bits or lower update_frac_bits/share_frac_bits")
    if loss_bits >= L:  # the epoch's Σ D² must not wrap
        raise BudgetError(f"ring_bits {L} is too small: the epoch loss needs {loss_bits + 1} bits")


def plan_two_party(params: HeteroLRParams, *, n_own: int, n_train: int, batch_rows: int, key_bits: int) -> TwoPartyPlan:
    """The Paillier budget of the party with ``n_own`` weights whose conversions go under a ``key_bits`` key.

    Checks before any work that (1) the ring holds every truncated value with
    40 bits to spare (:func:`check_ring_budget`), (2) a packed slot holds a
    masked product, (3) a masked gradient and the masked loss stay below ``n/3``.
    Raises :class:`BudgetError`.
    """
    check_ring_budget(params, n_train)
    L, fx, sigma, xi = params.ring_bits, params.feature_frac_bits, params.mask_security_bits, params.feature_int_bits
    limit = key_bits - 2
    # (2) conversion slot: |X_i b| < n_own 2^(fx + xi + L); offset c makes it non-negative; mask sigma bits wider
    c = n_own << (fx + xi + L)
    slot_bits = _bits(2 * c) + sigma + 2  # value + c < 2c, mask < 2^(bits(2c) + sigma): the sum stays below 2^(S-1)
    slots = limit // slot_bits
    if slots < 1:
        raise BudgetError(f"a {key_bits}-bit key cannot hold a {slot_bits}-bit conversion slot")
    # (3) gradient: |Σ_i x_ij (D^P_i + D^Q_i)| < rows 2^(fx + xi) 2^(L + 1)
    # (with class weights the guest's rows are scaled by their quantized weight: row_weight_bits more)
    c2 = batch_rows << (fx + xi + L + 1 + row_weight_bits(params))
    g_mask = _bits(2 * c2) + sigma
    loss_mask = 2 * L + _bits(max(n_train, 1)) + 3 + sigma
    if max(g_mask, loss_mask) + 2 >= limit:
        raise BudgetError(f"a {key_bits}-bit key cannot hold the masked gradient or loss ({max(g_mask, loss_mask) + 2} bits)")
    return TwoPartyPlan(L, slot_bits, slots, c, c2, g_mask, loss_mask)


def _paillier(values: Any) -> EncryptedVector:
    if not isinstance(values, EncryptedVector):
        raise ProtocolError("expected Paillier ciphertexts; the job's he_scheme is paillier")
    return values


def _randbits(rng: Any, bits: int, count: int) -> list[int]:
    return [int(rng.getrandbits(bits)) for _ in range(count)]


def encrypt_shares(own: SecretEngine, share: Sequence[int], plan: TwoPartyPlan) -> EncryptedShares:
    """``[[b · 2^(kS)]]`` for k < K under the sender's own key (fresh encryptions)."""
    vals = [int(b) << (k * plan.slot_bits) for k in range(plan.slots) for b in share]
    return EncryptedShares(EncryptedVector(own.public.fingerprint(), 0, tuple(own.encrypt_many(vals))))


def convert(peer: PublicEngine, shares: EncryptedShares, xq: np.ndarray, plan: TwoPartyPlan, rng: Any
            ) -> tuple[MaskedConversion, list[int]]:
    """Sender: ``X b`` for the receiver's weight share ``b``, K rows per ciphertext, masked and rerandomized.

    Returns the message and the sender's own shares of ``X b`` (``−(c + s_i) mod 2^ℓ``).
    """
    rows, m = xq.shape
    v = _paillier(shares.values)
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
    vec = _paillier(msg.values)
    own.public.check(vec.key_fingerprint)
    if (msg.rows, msg.slot_bits, msg.slots) != (rows, S, K) or len(vec) != -(-rows // K):
        raise ProtocolError("lr2.conversion does not match the batch (rows or layout)")
    slot_mask, ring_mask = (1 << S) - 1, (1 << ring_bits) - 1
    out: list[int] = []
    for p in own.decrypt_many(vec.values):
        for _ in range(min(K, rows - len(out))):
            out.append((p & slot_mask) & ring_mask)
            p >>= S
        if p:
            raise ProtocolError("lr2.conversion: a decrypted slot overflowed its layout")
    return out


def mask_gradient(peer: PublicEngine, residual: EncryptedResidualShare, xq: np.ndarray, plan: TwoPartyPlan, rng: Any
                  ) -> tuple[MaskedGradientShare, list[int]]:
    """Sender: ``[[X^T D^Q + c' + r]]`` under the receiver Q's key; returns it and ``−(c' + r) mod 2^ℓ``."""
    v = _paillier(residual.values)
    peer.check(v.key_fingerprint)
    if len(v) != xq.shape[0]:
        raise ProtocolError("lr2.residual does not match the batch length")
    grad = peer.matvec_t(list(v.values), xq)
    masks = _randbits(rng, plan.gradient_mask_bits, xq.shape[1])
    fresh = peer.encrypt_blinding_many([plan.gradient_offset + r for r in masks])
    out = tuple(peer.add(g, f) for g, f in zip(grad, fresh))
    L = plan.ring_bits
    return MaskedGradientShare(EncryptedVector(peer.fingerprint(), 0, out)), [(-(plan.gradient_offset + r)) & ((1 << L) - 1) for r in masks]


def open_gradient(own: SecretEngine, msg: MaskedGradientShare, n_weights: int, ring_bits: int) -> list[int]:
    """Receiver: its share of the sender's gradient, ``(decrypted) mod 2^ℓ``."""
    vec = _paillier(msg.values)
    own.public.check(vec.key_fingerprint)
    if len(vec) != n_weights:
        raise ProtocolError("lr2.gradient has the wrong number of components")
    mask = (1 << ring_bits) - 1
    return [p & mask for p in own.decrypt_many(vec.values)]


class PaillierShareEngine:
    """:class:`ShareEngine` over one Paillier key pair per party."""

    def __init__(self, params: HeteroLRParams, rng: Any, *, n_train: int, max_rows: int,
                 keypair: tuple[PaillierPublicKey, PaillierPrivateKey] | None = None, map_fn: MapFn | None = None) -> None:
        pk, sk = keypair if keypair is not None else generate_keypair(params.key_bits, rng)
        if pk.bits < params.key_bits:
            raise BudgetError(f"key of {pk.bits} bits is below the job's {params.key_bits}")
        self.params, self.rng, self.map_fn = params, rng, map_fn
        self.n_train, self.max_rows = n_train, max_rows
        self.public_key: PublicKey = pk
        self.own = PaillierSecret(sk, rng, params.paillier_engine, map_fn, params.mask_security_bits)

    def bind(self, peer_key: PublicKey, *, m_own: int, m_peer: int) -> None:
        p = self.params
        if not isinstance(peer_key, PaillierPublicKey):
            raise ProtocolError("the peer's key is not a Paillier key; the job's he_scheme is paillier")
        if peer_key.bits < p.key_bits:
            raise ProtocolError(f"the peer's key has {peer_key.bits} bits, the job requires {p.key_bits}")
        self.peer = PaillierPublic(peer_key, self.rng, p.paillier_engine, self.map_fn, p.mask_security_bits)
        own_bits = self.own.sk.public_key.bits
        self.my_plan = plan_two_party(p, n_own=m_own, n_train=self.n_train, batch_rows=self.max_rows, key_bits=peer_key.bits)
        self.peer_plan = plan_two_party(p, n_own=m_peer, n_train=self.n_train, batch_rows=self.max_rows, key_bits=own_bits)
        self.m_peer = m_peer

    def encrypt_weight_share(self, b: Sequence[int]) -> EncryptedShares:
        return encrypt_shares(self.own, b, self.peer_plan)

    def convert(self, msg: EncryptedShares, xq: np.ndarray) -> tuple[MaskedConversion, list[int]]:
        return convert(self.peer, msg, xq, self.my_plan, self.rng)

    def open_conversion(self, msg: MaskedConversion, rows: int) -> list[int]:
        return open_conversion(self.own, msg, rows, (self.peer_plan.slot_bits, self.peer_plan.slots), self.params.ring_bits)

    def encrypt_residual(self, d: Sequence[int]) -> EncryptedResidualShare:
        return EncryptedResidualShare(EncryptedVector(self.own.public.fingerprint(), 0, tuple(self.own.encrypt_many(d))))

    def masked_gradient(self, msg: EncryptedResidualShare, xq: np.ndarray) -> tuple[MaskedGradientShare, list[int]]:
        return mask_gradient(self.peer, msg, xq, self.my_plan, self.rng)

    def open_gradient(self, msg: MaskedGradientShare) -> list[int]:
        return open_gradient(self.own, msg, self.m_peer, self.params.ring_bits)

    def loss_accumulate(self, acc: Any, msg: EncryptedResidualShare, row: Sequence[int]) -> Any:
        vec = _paillier(msg.values)
        self.peer.check(vec.key_fingerprint)
        cross = self.peer.dot(vec.values, [int(v) for v in row])
        return cross if acc is None else self.peer.add(acc, cross)

    def loss_mask(self, acc: Any) -> tuple[MaskedLoss, int]:
        rho = int(self.rng.getrandbits(self.my_plan.loss_mask_bits))
        masked = self.peer.add(acc, self.peer.encrypt_blinding_many([rho])[0])
        mine = (-rho) & ((1 << self.params.ring_bits) - 1)
        return MaskedLoss(EncryptedVector(self.peer.fingerprint(), 0, (masked,))), mine

    def open_loss(self, msg: MaskedLoss) -> int:
        vec = _paillier(msg.values)
        self.own.public.check(vec.key_fingerprint)
        if len(vec) != 1:
            raise ProtocolError("lr2.masked_loss carries one value")
        return self.own.decrypt_many(vec.values)[0] & ((1 << self.params.ring_bits) - 1)

    def dump_loss(self, acc: Any) -> Any:
        return None if acc is None else format(int(acc), "x")

    def load_loss(self, data: Any) -> Any:
        if data is None:
            return None
        try:
            value = gmpy2.mpz(int(data, 16))
        except (TypeError, ValueError):
            raise ProtocolError("malformed LR checkpoint: the loss accumulator") from None
        if not 0 < value < self.peer.pk.nsquare:
            raise ProtocolError("malformed LR checkpoint: the loss accumulator is not a ciphertext of the peer's key")
        return value

    def reweight(self, msg: EncryptedResidualShare, weights: Sequence[int], loss_row: Sequence[int]
                 ) -> tuple[MaskedWeightedResidual, list[int], int]:
        """Guest: ``[[c_i D^H_i + r_i]]`` per row and ``[[Σ loss_row_i D^H_i + ρ]]`` under the host's key.

        Returns the message, the guest's shares ``−r_i mod 2^ℓ`` and ``−ρ mod 2^ℓ``. The masks are
        ``σ`` bits wider than the values (``c_i D^H_i < 2^(ℓ + row_weight_bits)``, the sum below
        ``rows 2^(2ℓ)``), and are encrypted with blinding randomness: the host, who can recover the
        randomness of what it decrypts, reads a uniform share and nothing else."""
        v = _paillier(msg.values)
        self.peer.check(v.key_fingerprint)
        rows = len(weights)
        if len(v) != rows or len(loss_row) != rows:
            raise ProtocolError("lr2.residual does not match the batch length")
        L, sigma = self.params.ring_bits, self.params.mask_security_bits
        products = [self.peer.mul_plain(c, int(w)) for c, w in zip(v.values, weights)]
        cross = self.peer.dot(v.values, [int(x) for x in loss_row])
        masks = _randbits(self.rng, L + row_weight_bits(self.params) + sigma, rows)
        rho = int(self.rng.getrandbits(2 * L + _bits(rows) + sigma))
        fresh = self.peer.encrypt_blinding_many(masks + [rho])
        out = tuple(self.peer.add(p, f) for p, f in zip(products + [cross], fresh))
        ring = (1 << L) - 1
        return (MaskedWeightedResidual(EncryptedVector(self.peer.fingerprint(), 0, out)),
                [(-r) & ring for r in masks], (-rho) & ring)

    def open_reweight(self, msg: MaskedWeightedResidual, rows: int) -> tuple[list[int], int]:
        """Host: its shares of ``c ∘ D^H`` (per row) and of the loss cross term, each mod ``2^ℓ``."""
        vec = _paillier(msg.values)
        self.own.public.check(vec.key_fingerprint)
        if len(vec) != rows + 1:
            raise ProtocolError("lr2.reweight does not match the batch length")
        ring = (1 << self.params.ring_bits) - 1
        opened = [p & ring for p in self.own.decrypt_many(vec.values)]
        return opened[:rows], opened[rows]


# --------------------------------------------------------------------------- RLWE (CKKS)


def plan_rlwe_for(params: HeteroLRParams, *, n_train: int, max_rows: int, n_batches: int) -> rl.RlweParams:
    """The RLWE parameters both parties derive from the job's public sizes (they must agree exactly).

    Bounds: a plaintext entry (a feature, or a 20-bit limb of the host's residual share in the loss
    product) is below ``2^max(fx + xi, 20)``; an encrypted limb below ``2^32``; a target sums at most
    ``max(n_train, MAX_FEATURES)`` products (the epoch's loss cross term is the longest sum); at most
    ``max(n_batches · max_rows, MAX_FEATURES)`` ciphertext products go into one masked ciphertext.
    """
    beta = RLWE_LIMB_BITS
    alpha = max(params.feature_frac_bits + params.feature_int_bits, LOSS_LIMB_BITS)  # plaintext entries: features, loss limbs
    terms = max(n_train, max_rows, MAX_FEATURES)
    return rl.plan_rlwe(ring_bits=params.ring_bits, sigma=params.mask_security_bits,
                        max_value_bits=math.ceil(math.log2(terms)) + alpha + beta, plain_bits=alpha,
                        max_products=max(n_batches * max_rows, MAX_FEATURES), degree=params.rlwe_degree, limb_bits=beta)


class RlweShareEngine:
    """:class:`ShareEngine` over one ring-LWE key per party (CKKS ciphertexts, coefficient encoding)."""

    def __init__(self, params: HeteroLRParams, rng: Any, *, n_train: int, max_rows: int, n_batches: int,
                 keypair: rl.RlweSecretKey | None = None) -> None:
        self.params, self.rng = params, rng
        self.max_rows = max_rows
        self.rlwe = plan_rlwe_for(params, n_train=n_train, max_rows=max_rows, n_batches=n_batches)
        self.sk = keypair if keypair is not None else rl.keygen(self.rlwe, rng)
        if self.sk.public.params != self.rlwe:
            raise BudgetError("the RLWE key pair was made for other parameters")
        self.public_key: PublicKey = self.sk.public
        self._ring = (1 << params.ring_bits) - 1

    def bind(self, peer_key: PublicKey, *, m_own: int, m_peer: int) -> None:
        if not isinstance(peer_key, rl.RlwePublicKey):
            raise ProtocolError("the peer's key is not an RLWE key; the job's he_scheme is ckks")
        if peer_key.params != self.rlwe:  # the masks this party adds are sized by them: they must not be smaller
            raise ProtocolError("the peer's RLWE parameters differ from the ones the job's sizes give")
        peer_key.check()
        if max(m_own, m_peer) > MAX_FEATURES:
            raise BudgetError(f"the two-party CKKS engine is sized for at most {MAX_FEATURES} weights per party")
        self.peer = peer_key
        J, N, R = self.rlwe.limbs, self.rlwe.degree, self.max_rows
        self.conv_mine = rl.plan_layout(R, m_own, J, N)  # my rows times my weights' share held by the peer
        self.conv_peer = rl.plan_layout(R, m_peer, J, N)
        self.grad_mine = rl.plan_layout(m_own, R, J, N)  # my columns times the peer's residual share
        self.grad_peer = rl.plan_layout(m_peer, R, J, N)
        self.m_peer = m_peer
        residue = 4 * self.rlwe.n_primes * N  # bytes of one polynomial on the wire
        largest = max(max(lay.inner_blocks * (residue + 32), lay.row_blocks * 2 * residue)
                      for lay in (self.conv_mine, self.conv_peer, self.grad_mine, self.grad_peer))
        if largest > MAX_PAYLOAD_BYTES:
            raise BudgetError(f"a CKKS message of this job would be {largest / 2**20:.0f} MiB, above the relay's "
                              f"{MAX_PAYLOAD_BYTES >> 20} MiB: use a smaller batch_size or fewer features")

    def _loss_layout(self, grad: rl.Layout) -> rl.Layout:
        """The loss product reads the guest's residual operand, so it keeps the gradient's inner blocks.

        Its plaintext rows are the 20-bit limbs of the host's ``2 D^H``."""
        rows = -(-self.params.ring_bits // LOSS_LIMB_BITS)
        r_b = rl.row_block(grad.inner_block, grad.limbs, grad.degree)
        return rl.Layout(rows, grad.inner, grad.limbs, grad.degree, grad.inner_block, min(r_b, rows))

    def encrypt_weight_share(self, b: Sequence[int]) -> EncryptedShares:
        return EncryptedShares(rl.encrypt_operand(self.sk, b, self.conv_peer, self.rng))

    def convert(self, msg: EncryptedShares, xq: np.ndarray) -> tuple[MaskedConversion, list[int]]:
        rows = xq.shape[0]
        acc = rl.multiply(self.peer, _rlwe(msg.values), xq, self.conv_mine)
        masked, mine = rl.mask(self.peer, acc, self.rng)
        return MaskedConversion(masked, rows, 0, 0), mine[:rows]

    def open_conversion(self, msg: MaskedConversion, rows: int) -> list[int]:
        if msg.rows != rows or (msg.slot_bits, msg.slots) != (0, 0) or rows > self.conv_peer.rows:
            raise ProtocolError("lr2.conversion does not match the batch (rows or layout)")
        return rl.open_masked(self.sk, _rlwe(msg.values), self.conv_peer)[:rows]

    def encrypt_residual(self, d: Sequence[int]) -> EncryptedResidualShare:
        return EncryptedResidualShare(rl.encrypt_operand(self.sk, d, self.grad_peer, self.rng))

    def masked_gradient(self, msg: EncryptedResidualShare, xq: np.ndarray) -> tuple[MaskedGradientShare, list[int]]:
        acc = rl.multiply(self.peer, _rlwe(msg.values), np.ascontiguousarray(xq.T), self.grad_mine)
        masked, mine = rl.mask(self.peer, acc, self.rng)
        return MaskedGradientShare(masked), mine

    def open_gradient(self, msg: MaskedGradientShare) -> list[int]:
        return rl.open_masked(self.sk, _rlwe(msg.values), self.grad_peer)

    def loss_accumulate(self, acc: Any, msg: EncryptedResidualShare, row: Sequence[int]) -> Any:
        layout = self._loss_layout(self.grad_mine)
        mask = (1 << LOSS_LIMB_BITS) - 1
        limbs = np.array([[(int(v) >> (LOSS_LIMB_BITS * i)) & mask for v in row] for i in range(layout.rows)], dtype=np.int64)
        return rl.multiply(self.peer, _rlwe(msg.values), limbs, layout, acc)

    def loss_mask(self, acc: Any) -> tuple[MaskedLoss, int]:
        masked, mine = rl.mask(self.peer, acc, self.rng)
        return MaskedLoss(masked), sum(v << (LOSS_LIMB_BITS * i) for i, v in enumerate(mine)) & self._ring

    def open_loss(self, msg: MaskedLoss) -> int:
        vals = rl.open_masked(self.sk, _rlwe(msg.values), self._loss_layout(self.grad_peer))
        return sum(v << (LOSS_LIMB_BITS * i) for i, v in enumerate(vals)) & self._ring

    def dump_loss(self, acc: Any) -> Any:
        if acc is None:
            return None
        return {"shape": list(acc.c0.shape), "c0": _b64(acc.c0), "c1": _b64(acc.c1)}

    def load_loss(self, data: Any) -> Any:
        if data is None:
            return None
        layout = self._loss_layout(self.grad_mine)
        shape = (layout.row_blocks, self.rlwe.n_primes, self.rlwe.degree)
        try:
            if tuple(data["shape"]) != shape:
                raise ValueError("shape")
            c0, c1 = (np.frombuffer(base64.b64decode(data[k]), dtype="<u8").reshape(shape).astype(np.uint64)
                      for k in ("c0", "c1"))
        except (KeyError, TypeError, ValueError):
            raise ProtocolError("malformed LR checkpoint: the loss accumulator") from None
        return rl.ProductAccumulator(layout, c0, c1)


    def reweight(self, msg: EncryptedResidualShare, weights: Sequence[int], loss_row: Sequence[int]
                 ) -> tuple[MaskedWeightedResidual, list[int], int]:
        raise BudgetError("class_weight needs he_scheme paillier")  # refused before any work (make_share_engine)

    def open_reweight(self, msg: MaskedWeightedResidual, rows: int) -> tuple[list[int], int]:
        raise BudgetError("class_weight needs he_scheme paillier")


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<u8").tobytes()).decode()


def _rlwe(values: Any) -> rl.RlweCiphertexts:
    if not isinstance(values, rl.RlweCiphertexts):
        raise ProtocolError("expected RLWE ciphertexts; the job's he_scheme is ckks")
    return values


def make_share_engine(params: HeteroLRParams, rng: Any, *, n_train: int, max_rows: int, n_batches: int,
                      keypair: Any = None, map_fn: MapFn | None = None) -> ShareEngine:
    """The engine the job's ``he_scheme`` names, with this party's own key pair (generated if not given)."""
    if params.he_scheme == "ckks":
        if params.class_weight is not None:
            raise BudgetError("class_weight needs he_scheme paillier: the CKKS engine packs rows into coefficients "
                              "and has no per-row product")
        return RlweShareEngine(params, rng, n_train=n_train, max_rows=max_rows, n_batches=n_batches, keypair=keypair)
    return PaillierShareEngine(params, rng, n_train=n_train, max_rows=max_rows, keypair=keypair, map_fn=map_fn)
