"""Exact secret-shared matrix products over RLWE (CKKS ciphertexts in coefficient encoding).

The two-party LR needs one operation from its homomorphic engine: the *owner*
of a key holds a vector ``v`` of ring shares (integers mod ``2^ℓ``); the *peer*
holds a plaintext integer matrix ``A``; at the end the owner and the peer hold
additive shares of ``A v (mod 2^ℓ)`` and neither learns anything else. This
module does it with the ring-LWE ciphertexts CKKS uses (``R_Q = Z_Q[x]/(x^N+1)``,
``c0 + c1 s = Δ m + e``), with values packed in *coefficients* rather than CKKS
slots, so that decryption is exact (as Cheetah does for its matrix products):

1. **Limbs.** ``v`` is split into ``J = ⌈ℓ/β⌉`` limbs of ``β`` bits, so every
   encrypted value is small (``< 2^β``) while ``v`` keeps all ``ℓ`` bits.
2. **Operand** (owner): ``V(x) = Σ_{k,j} limb_j(v_k) x^(j·n_b + k)`` for an
   inner block of ``n_b`` entries, encrypted under the owner's *secret* key:
   ``(−a s + e + Δ V, a)`` with ``a`` expanded from a 32-byte seed (half the bytes).
3. **Product** (peer): ``P(x) = Σ_{r,k} A[r,k] x^(r·n_b·J + n_b − 1 − k)``. In
   ``V·P`` the coefficient ``r·n_b·J + j·n_b + n_b − 1`` is exactly
   ``Σ_k A[r,k] limb_j(v_k)`` (no other pair of terms lands there, and no
   term wraps past ``x^N``). Products of several inner blocks are added.
4. **Mask** (peer): add ``Enc_pk(0) + M`` where ``Enc_pk(0)`` is a fresh
   public-key encryption of zero under the owner's key (it makes ``c1``
   pseudorandom, so ``c1`` no longer reveals ``P``), and ``M`` is a
   coefficient polynomial: at each target ``Δ R + F``, with ``R`` uniform in
   ``[0, 2^mask_bits)`` (hides the value, ``2^-σ`` statistically) and ``F``
   uniform in ``[−2^flood_bits, 2^flood_bits)`` (floods the noise ``e·P``, which
   the owner could otherwise solve for ``P`` from, knowing its own ``e``); at
   every other coefficient a uniform residue mod ``Q`` (the partial products
   there would reveal ``A`` given ``v``).
5. **Open** (owner): decrypt, lift the targets exactly (CRT), and round
   ``x / Δ``: that is ``value + R`` exactly, because ``|F + noise| < Δ/2``.
   The owner's share of row ``r`` is ``Σ_j 2^(βj) (value_rj + R_rj) mod 2^ℓ``;
   the peer's is ``−Σ_j 2^(βj) R_rj mod 2^ℓ``.

The owner's view of one masked ciphertext is simulatable: ``c1`` is ``a·P``
plus an RLWE sample under the peer's fresh secret ``u`` (pseudorandom even to
the owner), and the decrypted polynomial is uniform off the targets and within
``2^-σ`` of ``Δ·uniform + flood`` on them. The peer sees only RLWE
encryptions under the owner's key. :func:`plan_rlwe` sizes ``Q`` for all of
this and checks it against the HomomorphicEncryption.org bound for 128-bit
security before any work.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import BudgetError, KeyMismatchError, ProtocolError
from .ring import CBD_ETA, PRIME_BITS, RingContext, ntt_primes

__all__ = [
    "HE_STANDARD_128",
    "RlweParams",
    "plan_rlwe",
    "RlwePublicKey",
    "RlweSecretKey",
    "keygen",
    "RlweCiphertexts",
    "Layout",
    "plan_layout",
    "row_block",
    "context",
    "encrypt_operand",
    "ProductAccumulator",
    "multiply",
    "mask",
    "open_masked",
]

# HomomorphicEncryption.org standard (2018), 128-bit classical security, ternary secret: max log2 Q per degree.
HE_STANDARD_128: dict[int, int] = {2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}
_LOG2_ETA = math.log2(CBD_ETA)


@dataclass(frozen=True)
class RlweParams:
    """One party's RLWE parameters; every size derives from public job parameters (:func:`plan_rlwe`)."""

    degree: int
    n_primes: int
    delta_bits: int  # Δ = 2^delta_bits
    mask_bits: int  # R uniform in [0, 2^mask_bits)
    flood_bits: int  # F uniform in [-2^flood_bits, 2^flood_bits)
    limb_bits: int  # β
    ring_bits: int  # ℓ

    @property
    def limbs(self) -> int:
        return -(-self.ring_bits // self.limb_bits)

    @property
    def primes(self) -> tuple[int, ...]:
        return ntt_primes(self.degree, self.n_primes)

    @property
    def log_q(self) -> float:
        return sum(math.log2(q) for q in self.primes)

    def check(self) -> None:
        limit = HE_STANDARD_128.get(self.degree)
        if limit is None:
            raise BudgetError(f"RLWE degree {self.degree} is not one of {sorted(HE_STANDARD_128)}")
        if self.log_q > limit:
            raise BudgetError(f"log2 Q = {self.log_q:.0f} exceeds {limit}, the 128-bit security bound at degree {self.degree}")
        if self.delta_bits + self.mask_bits + 2 > self.log_q - 1:
            raise BudgetError("Q cannot hold a masked value at scale Δ")
        if not (4 <= self.limb_bits <= 32 and self.limbs * self.limb_bits >= self.ring_bits):
            raise BudgetError("limb_bits must be in [4, 32]")


def plan_rlwe(*, ring_bits: int, sigma: int, max_value_bits: int, plain_bits: int, max_products: int,
              degree: int = 16384, limb_bits: int = 32) -> RlweParams:
    """Size ``Q`` for one party's masked products.

    Args:
        max_value_bits: every target ``Σ_k A[r,k] limb_j(v_k)`` (summed over all products and batches that
            go into one masked ciphertext) is below ``2^max_value_bits`` in absolute value.
        plain_bits: every plaintext entry ``|A[r,k]| < 2^plain_bits``.
        max_products: how many ciphertext × plaintext products are added into one masked ciphertext.
    """
    log_n = degree.bit_length() - 1
    # each noise coefficient of one product is Σ e_i p_j over at most N terms: |e| <= η, |p| < 2^plain_bits
    leak_bits = _LOG2_ETA + log_n + plain_bits + math.log2(max(max_products, 1))
    flood = math.ceil(leak_bits) + sigma + log_n + 1  # 2^-σ over all N coefficients
    fresh_bits = _LOG2_ETA + log_n + 2  # the peer's Enc(0): e_pk u + e0 + e1 s, |.| <= η (2N + 1)
    delta = max(flood, math.ceil(fresh_bits)) + 3  # |F + noise| < Δ/4
    mask_bits = max_value_bits + sigma + log_n + 1
    need = delta + mask_bits + 3
    n_primes = math.ceil(need / (PRIME_BITS - 1))
    params = RlweParams(degree, n_primes, delta, mask_bits, flood, limb_bits, ring_bits)
    while params.delta_bits + params.mask_bits + 2 > params.log_q - 1:
        params = RlweParams(degree, params.n_primes + 1, delta, mask_bits, flood, limb_bits, ring_bits)
    params.check()
    return params


_CONTEXTS: dict[tuple[int, int], RingContext] = {}


def context(params: RlweParams) -> RingContext:
    """The (cached, process-wide) ring tables for ``params``."""
    key = (params.degree, params.n_primes)
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = _CONTEXTS[key] = RingContext(params.degree, params.primes)
    return ctx


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True, eq=False)
class RlwePublicKey:
    """``(b, a) = (−a s + e, a)`` in NTT form; ``a`` travels as its seed."""

    params: RlweParams
    seed: bytes
    b: np.ndarray  # (P, N) uint64, NTT form

    def fingerprint(self) -> bytes:
        p = self.params
        head = f"rlwe1|{p.degree}|{p.n_primes}|{p.delta_bits}|{p.mask_bits}|{p.flood_bits}|{p.limb_bits}|{p.ring_bits}|".encode()
        return hashlib.sha256(head + self.seed + np.ascontiguousarray(self.b, dtype="<u4").tobytes()).digest()[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RlwePublicKey) and other.fingerprint() == self.fingerprint()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    @property
    def bits(self) -> int:
        """log2 Q, rounded down (what a policy's ``min_key_bits`` cannot compare: RLWE is judged by its degree)."""
        return int(self.params.log_q)

    def check(self) -> None:
        self.params.check()
        if self.b.shape != (self.params.n_primes, self.params.degree) or len(self.seed) != 32:
            raise ProtocolError("RLWE public key has the wrong shape")
        if np.any(self.b >= context(self.params).qs[:, None]):
            raise ProtocolError("RLWE public key has residues outside their primes")


@dataclass(frozen=True, eq=False)
class RlweSecretKey:
    public: RlwePublicKey
    s: np.ndarray = field(repr=False)  # (P, N) uint64, NTT form of a ternary polynomial


def keygen(params: RlweParams, rng: Any) -> RlweSecretKey:
    """A ternary secret ``s`` and the public key ``(−a s + e, a)``; all randomness from ``rng``."""
    params.check()
    ctx = context(params)
    s = ctx.ntt(ctx.from_small(ctx.ternary(rng)))
    seed = int(rng.getrandbits(256)).to_bytes(32, "little")
    a = ctx.uniform_from_seed(seed)
    b = ctx.add(ctx.neg(ctx.mul(a, s)), ctx.ntt(ctx.from_small(ctx.cbd(rng))))
    return RlweSecretKey(RlwePublicKey(params, seed, b), s)


# --------------------------------------------------------------------------- ciphertexts


@dataclass(frozen=True, eq=False)
class RlweCiphertexts:
    """``count`` ciphertexts under the key ``key_fingerprint``.

    Seeded (the owner's fresh encryptions): ``c0`` in NTT form, ``(count, P, N)``; ``c1`` is expanded from ``seeds``.
    Masked (the peer's masked products): ``c1`` in NTT form, ``(count, P, N)``, is carried, and ``c0`` only at the
    layout's target coefficients, in coefficient order, ``(count, P, T)`` with ``T = row_block * limbs``: the
    owner decrypts only the targets, so nothing else of ``c0`` needs to travel (as Cheetah sends its products).
    """

    key_fingerprint: bytes
    degree: int
    n_primes: int
    c0: np.ndarray  # seeded: (count, P, N) uint64, NTT form; masked: (count, P, T), coefficient order, targets only
    seeds: tuple[bytes, ...] = ()
    c1: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.c0.shape[0])

    def check(self, params: RlweParams, fingerprint: bytes, *, seeded: bool) -> None:
        if self.key_fingerprint != fingerprint:
            raise KeyMismatchError("RLWE ciphertexts were encrypted under a different key")
        shape = (params.n_primes, params.degree)
        if (self.degree, self.n_primes) != shape[::-1] or self.c0.ndim != 3 or self.c0.shape[1] != params.n_primes:
            raise ProtocolError("RLWE ciphertexts do not match the key's parameters")
        if seeded != (self.c1 is None) or (seeded and len(self.seeds) != len(self)):
            raise ProtocolError("RLWE ciphertexts are not in the expected (seeded/masked) form")
        if seeded and self.c0.shape[2] != params.degree:
            raise ProtocolError("RLWE ciphertexts do not match the key's parameters")
        if self.c1 is not None and (self.c1.shape != (len(self), *shape) or not 1 <= self.c0.shape[2] <= params.degree):
            raise ProtocolError("RLWE ciphertexts: c0 and c1 do not match")
        qs = context(params).qs[None, :, None]
        if np.any(self.c0 >= qs) or (self.c1 is not None and np.any(self.c1 >= qs)):
            raise ProtocolError("RLWE ciphertexts have residues outside their primes")


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """Coefficient packing of ``A (rows × inner) · V (inner × limbs)`` in degree-``N`` products."""

    rows: int
    inner: int
    limbs: int
    degree: int
    inner_block: int  # n_b
    row_block: int  # r_b

    @property
    def inner_blocks(self) -> int:
        return -(-self.inner // self.inner_block)

    @property
    def row_blocks(self) -> int:
        return -(-self.rows // self.row_block)

    def targets(self) -> np.ndarray:
        """Coefficient index of output ``(r, j)`` within a row block, shape ``(row_block, limbs)``."""
        nb, J = self.inner_block, self.limbs
        r = np.arange(self.row_block)[:, None]
        j = np.arange(J)[None, :]
        return r * nb * J + j * nb + nb - 1


def row_block(n_b: int, limbs: int, degree: int) -> int:
    """Rows one product holds with inner blocks of ``n_b``: no target collides and no term wraps past ``x^N``."""
    return (degree - n_b + 1) // (n_b * limbs)


def plan_layout(rows: int, inner: int, limbs: int, degree: int) -> Layout:
    """The packing with the least work, in NTT-equivalents measured on this project's machine: an operand
    ciphertext is one NTT and one polynomial of traffic (3.4), a plaintext one NTT (1), a masked output
    four NTTs, its ``c1`` and the ``r_b J`` target coefficients of its ``c0``; a megabyte through the sealed
    relay costs about three NTTs."""
    if rows < 1 or inner < 1:
        raise BudgetError("an RLWE product needs at least one row and one column")
    best: tuple[float, int] | None = None
    for n_b in range(1, min(inner, degree // limbs) + 1):
        r_b = row_block(n_b, limbs, degree)
        if r_b < 1:
            break
        nblk, rblk = -(-inner // n_b), -(-rows // min(r_b, rows))
        cost = 3.4 * nblk + nblk * rblk + (4.0 + 2.4 * (1 + min(r_b, rows) * limbs / degree)) * rblk
        if best is None or cost < best[0]:
            best = (cost, n_b)
    if best is None:
        raise BudgetError(f"a degree-{degree} ring cannot hold one {limbs}-limb product")
    n_b = best[1]
    return Layout(rows, inner, limbs, degree, n_b, min(row_block(n_b, limbs, degree), rows))


# --------------------------------------------------------------------------- owner: encrypt


def _limbs(values: Sequence[int], params: RlweParams) -> np.ndarray:
    """``(len, J)`` int64 limbs of ring elements (``0 <= v < 2^ℓ``)."""
    beta, J = params.limb_bits, params.limbs
    mask = (1 << beta) - 1
    out = np.empty((len(values), J), dtype=np.int64)
    for i, v in enumerate(values):
        v = int(v)
        if v < 0 or v >> params.ring_bits:
            raise ProtocolError("an RLWE operand value is outside [0, 2^ring_bits)")
        for j in range(J):
            out[i, j] = (v >> (beta * j)) & mask
    return out


def _delta_residues(ctx: RingContext, params: RlweParams) -> np.ndarray:
    return np.array([pow(2, params.delta_bits, q) for q in ctx.primes], dtype=np.int64)[:, None]


def encrypt_operand(sk: RlweSecretKey, values: Sequence[int], layout: Layout, rng: Any) -> RlweCiphertexts:
    """The owner's fresh encryptions of ``values`` (padded with zeros to ``layout.inner``), one per inner block."""
    params = sk.public.params
    ctx = context(params)
    if len(values) > layout.inner or layout.limbs != params.limbs:
        raise ProtocolError("RLWE operand does not fit its layout")
    limbs = np.zeros((layout.inner_blocks * layout.inner_block, params.limbs), dtype=np.int64)
    limbs[: len(values)] = _limbs(values, params)
    dres = _delta_residues(ctx, params)
    n_b, J = layout.inner_block, params.limbs
    c0s, seeds = [], []
    for kb in range(layout.inner_blocks):
        m = np.zeros(params.degree, dtype=np.int64)
        blk = limbs[kb * n_b : (kb + 1) * n_b]  # (n_b, J)
        m[(np.arange(J)[None, :] * n_b + np.arange(n_b)[:, None]).ravel()] = blk.ravel()
        q = ctx.qs.astype(np.int64)[:, None]
        dm = (m[None, :] % q) * dres % q  # Δ m mod q_i: both factors below 2^31
        e = ctx.from_small(ctx.cbd(rng)).astype(np.int64)
        body = ctx.ntt(((dm + e) % q).astype(np.uint64))
        seed = int(rng.getrandbits(256)).to_bytes(32, "little")
        a = ctx.uniform_from_seed(seed)
        c0s.append(ctx.add(body, ctx.neg(ctx.mul(a, sk.s))))
        seeds.append(seed)
    return RlweCiphertexts(sk.public.fingerprint(), params.degree, params.n_primes, np.stack(c0s), tuple(seeds))


# --------------------------------------------------------------------------- peer: multiply and mask


@dataclass
class ProductAccumulator:
    """Unmasked products, one ``(c0, c1)`` pair per row block; products of later batches may be added."""

    layout: Layout
    c0: np.ndarray  # (row_blocks, P, N)
    c1: np.ndarray


def multiply(pk: RlwePublicKey, operand: RlweCiphertexts, a_matrix: np.ndarray, layout: Layout,
             acc: ProductAccumulator | None = None) -> ProductAccumulator:
    """``[[A V]]`` (not masked) for ``A`` of shape ``(rows, inner)`` with ``|A| < 2^62``; added to ``acc`` if given.

    ``A`` may be narrower or shorter than the layout (zero padding).
    """
    params = pk.params
    ctx = context(params)
    operand.check(params, pk.fingerprint(), seeded=True)
    if len(operand) != layout.inner_blocks or layout.limbs != params.limbs:
        raise ProtocolError("RLWE operand does not match its layout")
    a_matrix = np.asarray(a_matrix, dtype=np.int64)
    if a_matrix.ndim != 2 or a_matrix.shape[0] > layout.rows or a_matrix.shape[1] > layout.inner:
        raise ProtocolError("plaintext matrix does not fit the RLWE layout")
    n_b, r_b, J = layout.inner_block, layout.row_block, layout.limbs
    padded = np.zeros((layout.row_blocks * r_b, layout.inner_blocks * n_b), dtype=np.int64)
    padded[: a_matrix.shape[0], : a_matrix.shape[1]] = a_matrix
    if acc is None:
        shape = (layout.row_blocks, params.n_primes, params.degree)
        acc = ProductAccumulator(layout, np.zeros(shape, dtype=np.uint64), np.zeros(shape, dtype=np.uint64))
    elif acc.layout != layout:
        raise ProtocolError("cannot add RLWE products of different layouts")
    idx = (np.arange(r_b)[:, None] * n_b * J + (n_b - 1 - np.arange(n_b))[None, :]).ravel()
    c1s = [ctx.uniform_from_seed(s) for s in operand.seeds]
    for rb in range(layout.row_blocks):
        for kb in range(layout.inner_blocks):
            blk = padded[rb * r_b : (rb + 1) * r_b, kb * n_b : (kb + 1) * n_b]
            if not blk.any():
                continue
            p = np.zeros(params.degree, dtype=np.int64)
            p[idx] = blk.ravel()
            pn = ctx.ntt(ctx.from_small(p))
            ctx.mul_add(acc.c0[rb], operand.c0[kb], pn)
            ctx.mul_add(acc.c1[rb], c1s[kb], pn)
    return acc


def _public_a(params: RlweParams, seed: bytes) -> np.ndarray:
    """The public key's ``a`` (read-only), expanded once per key and process rather than once per use."""
    key = (params.degree, params.n_primes, seed)
    a = _PUBLIC_A.get(key)
    if a is None:
        if len(_PUBLIC_A) >= 16:
            _PUBLIC_A.pop(next(iter(_PUBLIC_A)))
        a = context(params).uniform_from_seed(seed)
        a.setflags(write=False)
        _PUBLIC_A[key] = a
    return a


_PUBLIC_A: dict[tuple[int, int, bytes], np.ndarray] = {}


def _uniform_ints(rng: Any, bits: int, count: int) -> list[int]:
    """``count`` integers uniform in ``[0, 2^bits)`` from one draw of ``rng`` (one call, not ``count``)."""
    width = -(-bits // 8)
    raw = int(rng.getrandbits(8 * width * count)).to_bytes(width * count, "little")
    top = (1 << bits) - 1
    return [int.from_bytes(raw[i : i + width], "little") & top for i in range(0, width * count, width)]


def mask(pk: RlwePublicKey, acc: ProductAccumulator, rng: Any) -> tuple[RlweCiphertexts, list[int]]:
    """Rerandomize and mask every product for the owner; return them and the peer's shares of each row.

    The peer adds a fresh encryption of zero under the owner's public key, ``(b u + e0, a u + e1)``, and
    ``Δ R + F`` at every target coefficient. It sends ``c1`` in full and ``c0`` at the targets only, in
    coefficient order: the other coefficients of ``c0`` hold partial products of ``A`` and never leave.
    The peer's share of row ``r`` is ``−Σ_j 2^(βj) R_rj mod 2^ℓ``.
    """
    params = pk.params
    ctx = context(params)
    layout = acc.layout
    a = _public_a(params, pk.seed)
    pos = layout.targets().ravel()  # every target of a row block, padded rows included (their A rows are zero)
    delta, beta, L = 1 << params.delta_bits, params.limb_bits, params.ring_bits
    ring = (1 << L) - 1
    own: list[int] = []
    c0s, c1s = [], []
    for rb in range(layout.row_blocks):
        rows_here = min(layout.row_block, layout.rows - rb * layout.row_block)
        masks = _uniform_ints(rng, params.mask_bits, pos.size)
        floods = [f - (1 << params.flood_bits) for f in _uniform_ints(rng, params.flood_bits + 1, pos.size)]
        vals = np.array([delta * r + f for r, f in zip(masks, floods)], dtype=object)
        m = np.stack([(vals % q).astype(np.uint64) for q in ctx.primes])  # (P, T)
        u = ctx.ntt(ctx.from_small(ctx.ternary(rng)))
        e0 = ctx.from_small(ctx.cbd(rng))[:, pos]
        e1 = ctx.ntt(ctx.from_small(ctx.cbd(rng)))
        c0 = ctx.intt(ctx.add(acc.c0[rb], ctx.mul(pk.b, u)))[:, pos]
        c0 = ctx.add(c0, ctx.add(m, e0))
        c1 = ctx.add(acc.c1[rb], ctx.add(ctx.mul(a, u), e1))
        c0s.append(c0)
        c1s.append(c1)
        for r in range(rows_here):
            own.append((-sum(masks[r * layout.limbs + j] << (beta * j) for j in range(layout.limbs))) & ring)
    return RlweCiphertexts(pk.fingerprint(), params.degree, params.n_primes, np.stack(c0s), (), np.stack(c1s)), own


def open_masked(sk: RlweSecretKey, msg: RlweCiphertexts, layout: Layout) -> list[int]:
    """The owner's shares of ``A v`` (one per row): decrypt, lift the targets exactly, divide by Δ."""
    params = sk.public.params
    ctx = context(params)
    msg.check(params, sk.public.fingerprint(), seeded=False)
    tgt = layout.targets()
    if len(msg) != layout.row_blocks or msg.c0.shape[2] != tgt.size:
        raise ProtocolError("masked RLWE product does not match its layout")
    delta_bits, beta, L = params.delta_bits, params.limb_bits, params.ring_bits
    half = 1 << (delta_bits - 1)
    ring = (1 << L) - 1
    bound = 1 << (params.mask_bits + 1)
    out: list[int] = []
    assert msg.c1 is not None
    for rb in range(layout.row_blocks):
        rows_here = min(layout.row_block, layout.rows - rb * layout.row_block)
        d = ctx.add(ctx.intt(ctx.mul(msg.c1[rb], sk.s))[:, tgt.ravel()], msg.c0[rb])  # c0 + c1 s at the targets
        lifted = ctx.crt(d, np.arange(rows_here * layout.limbs))
        vals = [(x + half) >> delta_bits for x in lifted]
        if any(abs(v) >= bound for v in vals):
            raise ProtocolError("a masked RLWE value is out of range: the peer did not follow the protocol")
        for r in range(rows_here):
            out.append(sum(vals[r * layout.limbs + j] << (beta * j) for j in range(layout.limbs)) & ring)
    return out
