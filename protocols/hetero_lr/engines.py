"""Paillier back ends for the vertical-LR protocol: the fast engine, and phe as written.

The protocol calls the same five operations whichever back end runs: encrypt
many values, rerandomize, and Σ cᵢ^{xᵢ} per feature column (``matvec_t``) or
per vector (``dot``). ``FastEngine`` is :mod:`fedcredit.protocols.paillier` (DJN
fixed-base encryption, Pippenger multi-exponentiation). ``PheEngine`` does
what python-paillier does: ``(1 + m n) · r^n`` with a fresh full-size ``r`` per
encryption, and one ``powmod`` per ciphertext-times-scalar. It exists so the
benchmark can measure the straightforward protocol side by side; the wire
format and the privacy properties are the same.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import gmpy2
import numpy as np

from ..errors import CryptoError
from ..paillier import Encryptor, PaillierPublicKey
from ..paillier import ops
from ..paillier.parallel import MapFn

__all__ = ["Engine", "FastEngine", "PheEngine", "make_engine", "ENGINES"]

ENGINES = ("fast", "phe")


class Engine(Protocol):
    def encrypt_raw_many(self, ms: Sequence[int]) -> list[Any]: ...

    def rerandomize(self, c: Any) -> Any: ...

    def matvec_t(self, cs: Sequence[Any], x: np.ndarray) -> list[Any]: ...

    def dot(self, cs: Sequence[Any], xs: Sequence[int]) -> Any: ...


class FastEngine:
    """The fast engine. With ``map_fn`` (see :mod:`fedcredit.protocols.paillier.parallel`) the
    obfuscators of :meth:`encrypt_raw_many` are computed on the caller's pool,
    ``tasks_per_call`` tasks per call; the ciphertexts equal the serial ones for the same ``rng``."""

    #: Below this many values one call stays serial (a task costs about a millisecond of IPC).
    MIN_PARALLEL = 128

    def __init__(self, pk: PaillierPublicKey, rng: Any, map_fn: MapFn | None = None, tasks_per_call: int = 4, *,
                 base: Any = None, exponent_bits: int | None = None) -> None:
        self.pk = pk
        # rng None: multi-exponentiation only. base/exponent_bits: see fedcredit.protocols.paillier.canonical_base.
        # With a given base the encryptor draws nothing from rng when it is built, so its table
        # (about 16 MB, 0.2 s) is built on first use: an engine that only multiplies never pays for it.
        self._rng, self._base, self._exponent_bits = rng, base, exponent_bits
        self._enc = Encryptor(pk, rng, base=base, exponent_bits=exponent_bits) if rng is not None and base is None else None
        self._map_fn = map_fn
        self._tasks = tasks_per_call

    def _encryptor(self) -> Encryptor:
        if self._enc is None:
            if self._rng is None:
                raise CryptoError("this engine was made without an rng: it multiplies, it does not encrypt")
            self._enc = Encryptor(self.pk, self._rng, base=self._base, exponent_bits=self._exponent_bits)
        return self._enc

    def encrypt_raw_many(self, ms: Sequence[int]) -> list[Any]:
        if self._map_fn is not None and len(ms) >= self.MIN_PARALLEL:
            chunk = -(-len(ms) // self._tasks)  # a batch of 512 values: 4 tasks of 128
            return self._encryptor().encrypt_raw_many(ms, map_fn=self._map_fn, chunk_size=chunk)
        return self._encryptor().encrypt_raw_many(ms)

    def rerandomize(self, c: Any) -> Any:
        return self._encryptor().rerandomize(c)

    def matvec_t(self, cs: Sequence[Any], x: np.ndarray) -> list[Any]:
        return ops.matvec_t(self.pk, list(cs), x)

    def dot(self, cs: Sequence[Any], xs: Sequence[int]) -> Any:
        return ops.dot(self.pk, list(cs), list(xs))


class PheEngine:
    """python-paillier's arithmetic: r^n per encryption, one powmod per product."""

    def __init__(self, pk: PaillierPublicKey, rng: Any) -> None:
        self.pk = pk
        self._rng = rng
        self._n, self._n2 = gmpy2.mpz(pk.n), gmpy2.mpz(pk.nsquare)

    def _r_n(self) -> Any:
        while True:
            r = gmpy2.mpz(self._rng.getrandbits(self.pk.bits)) % self._n
            if r > 1 and gmpy2.gcd(r, self._n) == 1:
                return gmpy2.powmod(r, self._n, self._n2)

    def encrypt_raw_many(self, ms: Sequence[int]) -> list[Any]:
        n, n2 = self._n, self._n2
        return [((1 + (gmpy2.mpz(m) % n) * n) % n2) * self._r_n() % n2 for m in ms]

    def rerandomize(self, c: Any) -> Any:
        return gmpy2.mpz(c) * self._r_n() % self._n2

    def _mul(self, c: Any, k: int) -> Any:
        if k >= 0:
            return gmpy2.powmod(c, k, self._n2)
        return gmpy2.powmod(gmpy2.invert(c, self._n2), -k, self._n2)

    def dot(self, cs: Sequence[Any], xs: Sequence[int]) -> Any:
        acc = gmpy2.mpz(1)
        for c, k in zip(cs, xs):
            if k:
                acc = acc * self._mul(c, int(k)) % self._n2
        return acc

    def matvec_t(self, cs: Sequence[Any], x: np.ndarray) -> list[Any]:
        return [self.dot(cs, [int(v) for v in x[:, j]]) for j in range(x.shape[1])]


def make_engine(name: str, pk: PaillierPublicKey, rng: Any, map_fn: MapFn | None = None, *,
                base: Any = None, exponent_bits: int | None = None) -> Engine:
    """The named engine. ``map_fn`` spreads the fast engine's encryptions over a pool; the
    phe engine ignores it (it stands for the straightforward protocol, one core). ``base`` and
    ``exponent_bits`` choose the fast engine's DJN base and exponent length; phe's ``r^n`` with
    a uniform ``r`` needs neither (it is uniform over the n-th residues already)."""
    if name == "fast":
        return FastEngine(pk, rng, map_fn, base=base, exponent_bits=exponent_bits)
    if name == "phe":
        return PheEngine(pk, rng)
    raise ValueError(f"unknown Paillier engine {name!r} (choose from {ENGINES})")
