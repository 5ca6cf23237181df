"""The ring ``R_Q = Z_Q[x] / (x^N + 1)`` in RNS form: NTT-friendly primes, NTTs, sampling.

A polynomial is a ``uint64`` array of shape ``(P, N)``: its residues modulo
each of the ``P`` primes ``q_i < 2^31`` (``q_i = 1 mod 2N``). Products of two
residues stay below ``2^62``, so every kernel is plain 64-bit integer
arithmetic. The NTT is the negacyclic one with merged twiddles
(Longa--Naehrig), Shoup multiplication for the twiddles; its output is in
bit-reversed order, which only products and the inverse transform read.

The kernels (:mod:`.kernels`) are compiled with numba, the ``ckks`` extra, imported when the first ring is built.
Everything is deterministic; randomness comes from the ``rng`` the caller
passes (``getrandbits``), as everywhere in :mod:`protocols`.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import BudgetError, EngineUnavailableError

__all__ = ["PRIME_BITS", "ntt_primes", "RingContext", "CBD_ETA"]

PRIME_BITS = 31  # every prime is below 2^31: residue products fit in 64 bits
CBD_ETA = 21  # centered binomial errors, |e| <= 21, standard deviation sqrt(21/2) ~ 3.24 (SEAL's 3.2)

_SMALL_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def _is_prime(n: int) -> bool:
    """Deterministic Miller--Rabin for ``n < 3.3e24`` (the first 12 primes as bases)."""
    if n < 2:
        return False
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _SMALL_PRIMES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


@functools.lru_cache(maxsize=16)
def ntt_primes(degree: int, count: int, bits: int = PRIME_BITS) -> tuple[int, ...]:
    """The ``count`` largest primes below ``2^bits`` with ``q = 1 (mod 2N)``, largest first (deterministic)."""
    step = 2 * degree
    k = ((1 << bits) - 2) // step
    out: list[int] = []
    while len(out) < count:
        if k <= 0:
            raise BudgetError(f"not enough {bits}-bit NTT primes for degree {degree}")
        q = k * step + 1
        if _is_prime(q):
            out.append(q)
        k -= 1
    return tuple(out)


def _primitive_root_2n(q: int, degree: int) -> int:
    """The smallest-generator primitive ``2N``-th root of unity modulo ``q``."""
    for g in range(2, q):
        psi = pow(g, (q - 1) // (2 * degree), q)
        if pow(psi, degree, q) == q - 1:
            return psi
    raise BudgetError(f"no primitive {2 * degree}-th root modulo {q}")  # unreachable for q = 1 mod 2N


def _bitrev(k: int, bits: int) -> int:
    return int(format(k, f"0{bits}b")[::-1], 2) if bits else 0


# --------------------------------------------------------------------------- kernels


@functools.lru_cache(maxsize=1)
def _kernels() -> Any:
    """The numba kernels (:mod:`.kernels`), imported on first use: numba is the ``ckks`` extra."""
    try:
        from . import kernels
    except ImportError as e:  # numba missing, or built for another numpy
        raise EngineUnavailableError(
            f"the ckks engine needs numba ({e}): install the extra with pip install 'fedcredit[ckks]'",
            public="the ckks engine is not installed on this node (the ckks extra: numba)") from e
    return kernels


# --------------------------------------------------------------------------- context


class RingContext:
    """Precomputed tables for ``R_Q`` with ``N = degree`` and the given primes."""

    def __init__(self, degree: int, primes: tuple[int, ...]) -> None:
        if degree < 8 or degree & (degree - 1):
            raise BudgetError("the ring degree must be a power of two >= 8")
        for q in primes:
            if q >= 1 << PRIME_BITS or (q - 1) % (2 * degree) or not _is_prime(q):
                raise BudgetError(f"{q} is not a {PRIME_BITS}-bit NTT prime for degree {degree}")
        if len(set(primes)) != len(primes):
            raise BudgetError("the RNS primes must be distinct")
        _kernels()  # fail here, before any table is built, when the ckks extra is missing
        self.degree = degree
        self.primes = tuple(int(q) for q in primes)
        self.modulus = functools.reduce(lambda a, b: a * b, self.primes, 1)
        self.qs = np.array(self.primes, dtype=np.uint64)
        self._min_q = min(self.primes)
        logn = degree.bit_length() - 1
        n_p = len(self.primes)
        psi = np.empty((n_p, degree), dtype=np.uint64)
        ipsi = np.empty_like(psi)
        rev = [_bitrev(k, logn) for k in range(degree)]
        for p, q in enumerate(self.primes):
            root = _primitive_root_2n(q, degree)
            iroot = pow(root, -1, q)
            pw, ipw = [1] * degree, [1] * degree
            for k in range(1, degree):
                pw[k] = pw[k - 1] * root % q
                ipw[k] = ipw[k - 1] * iroot % q
            psi[p] = [pw[rev[k]] for k in range(degree)]
            ipsi[p] = [ipw[rev[k]] for k in range(degree)]
        self._psi, self._ipsi = psi, ipsi
        self._psi_s = self._shoup(psi)
        self._ipsi_s = self._shoup(ipsi)
        self._ninv = np.array([pow(degree, -1, q) for q in self.primes], dtype=np.uint64)
        self._ninv_s = self._shoup(self._ninv[:, None])[:, 0]

    def _shoup(self, w: np.ndarray) -> np.ndarray:
        out = np.empty_like(w)
        for p, q in enumerate(self.primes):
            out[p] = [(int(v) << 32) // q for v in w[p]]
        return out

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.primes), self.degree)

    # ------------------------------------------------------------------ arithmetic

    def ntt(self, coeffs: np.ndarray) -> np.ndarray:
        """Residues (coefficient order) -> NTT form; returns a new array."""
        x = np.array(coeffs, dtype=np.uint64, copy=True, order="C")
        _kernels().ntt_forward(x, self.qs, self._psi, self._psi_s)
        return x

    def intt(self, values: np.ndarray) -> np.ndarray:
        """NTT form -> residues in coefficient order; returns a new array."""
        x = np.array(values, dtype=np.uint64, copy=True, order="C")
        _kernels().ntt_inverse(x, self.qs, self._ipsi, self._ipsi_s, self._ninv, self._ninv_s)
        return x

    def mul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Pointwise product (both in NTT form)."""
        return _kernels().mul(a, b, self.qs)

    def mul_add(self, acc: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        """``acc += a * b`` in place (all in NTT form)."""
        _kernels().mul_add(acc, a, b, self.qs)

    # ``min(x, x - q)`` on uint64 is the conditional subtraction (``x - q`` wraps above ``x`` when ``x < q``).
    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        s = a + b
        return np.minimum(s, s - self.qs[:, None])

    def neg(self, a: np.ndarray) -> np.ndarray:
        d = self.qs[:, None] - a  # q for a = 0, reduced to 0 below
        return np.minimum(d, d - self.qs[:, None])

    def from_small(self, coeffs: np.ndarray) -> np.ndarray:
        """Signed int64 coefficients (``|c| < 2^62``) -> residues, coefficient order."""
        c = np.asarray(coeffs, dtype=np.int64)
        q = self.qs.astype(np.int64)[:, None]
        if c.size and int(np.abs(c).max()) < self._min_q:  # errors, ternaries, plaintexts: one add, no division
            return (c[None, :] + np.where(c < 0, q, 0)).astype(np.uint64)
        return np.mod(c[None, :], q).astype(np.uint64)

    def crt(self, residues: np.ndarray, positions: np.ndarray) -> list[int]:
        """Exact centered lifts in ``(-Q/2, Q/2]`` of the coefficients at ``positions`` (Garner)."""
        cols = residues[:, positions]
        x = cols[0].astype(object)
        modulus = self.primes[0]
        for p in range(1, len(self.primes)):
            q = self.primes[p]
            inv = pow(modulus % q, -1, q)
            t = ((cols[p].astype(object) - x) * inv) % q
            x = x + modulus * t
            modulus *= q
        half = modulus // 2
        return [int(v) - modulus if v > half else int(v) for v in x]

    # ------------------------------------------------------------------ sampling

    def uniform(self, rng: Any) -> np.ndarray:
        """A polynomial uniform on ``R_Q`` (each residue uniform mod its prime), any domain."""
        return self.uniform_from_seed(_seed(rng))

    def uniform_from_seed(self, seed: bytes) -> np.ndarray:
        """The uniform polynomial expanded from a 32-byte seed: anyone with the seed gets the same one.

        The expansion is AES-256 in counter mode keyed by the seed (a PRG, as in Kyber-90s), AES-NI where
        the CPU has it: about 10x faster here than the SHAKE-256 it replaced. 32-bit words are rejection-
        sampled below the largest multiple of each prime, so every residue is exactly uniform given a
        uniform stream.
        """
        if len(seed) != 32:
            raise BudgetError("a ring seed is 32 bytes")
        n = self.degree * len(self.primes)
        draw = n + n // 4 + 256
        while True:
            stream = Cipher(algorithms.AES(seed), modes.CTR(_UNIFORM_NONCE)).encryptor().update(bytes(4 * draw))
            words = np.frombuffer(stream, dtype="<u4").astype(np.uint64)
            out = _kernels().uniform_from_words(words, self.qs, self.degree)
            if out.shape[0]:
                return out
            draw *= 2  # the same stream, longer: still a function of the seed alone

    def ternary(self, rng: Any) -> np.ndarray:
        """Signed coefficients uniform on {-1, 0, 1} (int64, coefficient order)."""
        out = np.empty(0, dtype=np.int64)
        while out.size < self.degree:
            raw = np.frombuffer(_bytes(rng, self.degree + 64), dtype=np.uint8)
            kept = raw[raw < 255]  # 255 = 3 * 85: unbiased mod 3
            out = np.concatenate([out, (kept % 3).astype(np.int64) - 1])
        return out[: self.degree]

    def cbd(self, rng: Any, eta: int = CBD_ETA) -> np.ndarray:
        """Centered binomial errors ``sum(eta bits) - sum(eta bits)`` (int64, coefficient order)."""
        flat = np.unpackbits(np.frombuffer(_bytes(rng, (2 * eta * self.degree + 7) // 8), dtype=np.uint8))
        halves = flat[: 2 * eta * self.degree].reshape(self.degree, 2, eta).sum(axis=2, dtype=np.int16)
        return (halves[:, 0] - halves[:, 1]).astype(np.int64)


_UNIFORM_NONCE = hashlib.sha256(b"fedcredit.rlwe.uniform").digest()[:16]  # domain separation of the AES-CTR stream


def _seed(rng: Any) -> bytes:
    return int(rng.getrandbits(256)).to_bytes(32, "little")


def _bytes(rng: Any, n: int) -> bytes:
    """``n`` pseudorandom bytes: a 256-bit seed from ``rng`` expanded by SHAKE-256 (a XOF used as a PRG)."""
    return hashlib.shake_256(b"fedcredit.rlwe.bytes" + _seed(rng)).digest(n)
