"""The additively homomorphic engine the two-party LR is written over.

:mod:`.two_party` never touches a Paillier integer directly: it calls the five
operations of :class:`PublicEngine` (encrypt, add a plaintext, ciphertext ×
plaintext matrix, dot product, add) on the *peer's* public key, and
:class:`SecretEngine` (decrypt) on its own key. Plaintexts are non-negative
Python ints below :attr:`PublicEngine.plaintext_bits` bits; the protocol keeps
them there by construction (offsets instead of negative values), and checks the
bit budget before it starts (:func:`fedcredit.protocols.hetero_lr.two_party.plan_two_party`).

Implementations:

* :class:`PaillierPublic` / :class:`PaillierSecret` over
  :mod:`fedcredit.protocols.paillier` -- the fast engine (DJN fixed-base encryption,
  Pippenger multi-exponentiation, CRT decryption), or python-paillier's
  arithmetic (``paillier_engine: phe``) for the benchmark's baseline column.

The CKKS engine of the two-party LR does not go through this interface: its
ciphertexts hold hundreds of values each, so it implements the exchanges
themselves (:class:`fedcredit.protocols.hetero_lr.share_engine.RlweShareEngine`).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from ..errors import KeyMismatchError
from ..paillier import PaillierPrivateKey, PaillierPublicKey, canonical_base
from ..paillier import ops
from ..paillier.crt import SecretEncryptor
from ..paillier.parallel import MapFn
from .engines import make_engine

__all__ = ["PublicEngine", "SecretEngine", "PaillierPublic", "PaillierSecret"]


class PublicEngine(Protocol):
    """Operations anyone holding the public key can do. Ciphertexts are opaque values."""

    plaintext_bits: int  # plaintexts must stay below 2**plaintext_bits (< n/3 for Paillier)

    def fingerprint(self) -> bytes: ...

    def check(self, fingerprint: bytes) -> None:
        """Raise :class:`KeyMismatchError` unless ciphertexts named ``fingerprint`` are under this key."""

    def encrypt_many(self, ms: Sequence[int]) -> list[Any]:
        """Fresh encryptions of non-negative ints, for a receiver that does not hold the key (semantic security)."""

    def encrypt_blinding_many(self, ms: Sequence[int]) -> list[Any]:
        """Encryptions whose randomness is statistically uniform on the key's randomness group.

        Add one to every ciphertext that goes back to its key holder: the key
        holder can recover a ciphertext's randomness, so it must be independent
        of everything else that went into the ciphertext, not just hard to compute.
        """

    def add_plain_many(self, cs: Sequence[Any], ms: Sequence[int]) -> list[Any]:
        """``[[c_i + m_i]]`` (not rerandomized)."""

    def add(self, a: Any, b: Any) -> Any: ...

    def mul_plain(self, c: Any, k: int) -> Any: ...

    def dot(self, cs: Sequence[Any], xs: Sequence[int]) -> Any:
        """``[[Σ x_i m_i]]`` for signed int scalars (not rerandomized)."""

    def matvec_t(self, cs: Sequence[Any], x: np.ndarray) -> list[Any]:
        """``[[X^T m]]`` for an integer matrix with one row per ciphertext (not rerandomized)."""

    def dot_many(self, cs: Sequence[Any], rows: Sequence[Sequence[int]]) -> list[Any]:
        """``[dot(cs, row) for row in rows]``, sharing work across the rows (not rerandomized)."""


class SecretEngine(Protocol):
    @property
    def public(self) -> PublicEngine: ...

    def encrypt_many(self, ms: Sequence[int]) -> list[Any]:
        """Fresh encryptions under the party's own key: the same ciphertexts as ``public.encrypt_many``
        would make, computed with the private key where that is faster."""

    def decrypt_many(self, cs: Sequence[Any]) -> list[int]:
        """Raw plaintexts in ``[0, n)``."""


class PaillierPublic:
    """:class:`PublicEngine` over a Paillier public key (fast engine or phe's arithmetic).

    The fast engine encrypts with the key's :func:`canonical_base`, which every
    party uses for this key, so all ciphertexts under it carry randomness from
    one subgroup ``<h>``. :meth:`encrypt_many` uses ``|n|/2``-bit exponents (DJN);
    :meth:`encrypt_blinding_many` uses ``|n| + blind_bits``-bit ones, so its
    randomness is within ``2^-blind_bits`` of uniform on ``<h>`` and hides the
    randomness of anything it is added to, even from the key holder.
    """

    def __init__(self, pk: PaillierPublicKey, rng: Any, engine: str = "fast", map_fn: MapFn | None = None,
                 blind_bits: int = 80) -> None:
        self.pk = pk
        self.plaintext_bits = pk.bits - 2  # below 2^(|n|-2) < n/2: no sum wraps around n
        base = canonical_base(pk)
        self._engine = make_engine(engine, pk, rng, map_fn, base=base)
        self._blind_args = (engine, pk, rng, map_fn, base, pk.bits + blind_bits)
        self._engine_name = engine
        self._blind: Any = None

    def fingerprint(self) -> bytes:
        return self.pk.fingerprint()

    def check(self, fingerprint: bytes) -> None:
        if fingerprint != self.pk.fingerprint():
            raise KeyMismatchError("ciphertexts were encrypted under a different public key")

    def encrypt_many(self, ms: Sequence[int]) -> list[Any]:
        return list(self._engine.encrypt_raw_many([int(m) for m in ms]))

    def encrypt_blinding_many(self, ms: Sequence[int]) -> list[Any]:
        if self._blind is None:  # its table (|n| + 80-bit exponents) is built on first use
            engine, pk, rng, map_fn, base, bits = self._blind_args
            self._blind = make_engine(engine, pk, rng, map_fn, base=base, exponent_bits=bits)
        return list(self._blind.encrypt_raw_many([int(m) for m in ms]))

    def add_plain_many(self, cs: Sequence[Any], ms: Sequence[int]) -> list[Any]:
        return ops.add_plain_many(self.pk, cs, [int(m) for m in ms])

    def add(self, a: Any, b: Any) -> Any:
        return ops.add(self.pk, a, b)

    def mul_plain(self, c: Any, k: int) -> Any:
        return ops.mul_plain(self.pk, c, int(k))

    def dot(self, cs: Sequence[Any], xs: Sequence[int]) -> Any:
        return self._engine.dot(cs, [int(x) for x in xs])

    def matvec_t(self, cs: Sequence[Any], x: np.ndarray) -> list[Any]:
        return list(self._engine.matvec_t(cs, x))

    def dot_many(self, cs: Sequence[Any], rows: Sequence[Sequence[int]]) -> list[Any]:
        if self._engine_name == "fast":  # Straus: one table per ciphertext, shared by all rows
            return ops.dot_many(self.pk, cs, rows)
        return [self.dot(cs, r) for r in rows]  # phe's arithmetic: one powmod per product


class PaillierSecret:
    """:class:`SecretEngine` over a Paillier key pair: CRT encryption and decryption.

    With the fast engine, :meth:`encrypt_many` computes the DJN obfuscators mod
    ``p²`` and ``q²`` (:class:`fedcredit.protocols.paillier.crt.SecretEncryptor`), from the
    key's canonical base and the same exponents, so the ciphertexts are exactly
    those :meth:`PaillierPublic.encrypt_many` would make. With ``map_fn`` large
    batches of encryptions and decryptions run on the party's own pool (the
    tasks carry ``p`` and ``q``: the pool must be the key holder's processes).
    """

    #: Below this many values a call stays serial (a task costs about a millisecond of IPC).
    MIN_PARALLEL = 128

    def __init__(self, sk: PaillierPrivateKey, rng: Any, engine: str = "fast", map_fn: MapFn | None = None,
                 blind_bits: int = 80) -> None:
        self.sk = sk
        self.public = PaillierPublic(sk.public_key, rng, engine, map_fn, blind_bits)
        self._map_fn = map_fn
        self._rng, self._engine = rng, engine
        self._crt: SecretEncryptor | None = None  # its two tables are built on the first encryption

    def _pool(self, count: int) -> MapFn | None:
        return self._map_fn if self._map_fn is not None and count >= self.MIN_PARALLEL else None

    def encrypt_many(self, ms: Sequence[int]) -> list[Any]:
        if self._engine != "fast":
            return self.public.encrypt_many(ms)
        if self._crt is None:
            self._crt = SecretEncryptor(self.sk, self._rng, base=canonical_base(self.sk.public_key))
        pool = self._pool(len(ms))
        chunk = max(1, -(-len(ms) // 4))  # a batch of 512 values: 4 tasks of 128
        return self._crt.encrypt_raw_many([int(m) for m in ms], map_fn=pool, chunk_size=chunk)

    def decrypt_many(self, cs: Sequence[Any]) -> list[int]:
        pool = self._pool(len(cs))
        if pool is None:
            return self.sk.decrypt_raw_many(cs)
        return self.sk.decrypt_raw_many(cs, map_fn=pool, chunk_size=max(1, -(-len(cs) // 4)))
