"""Paillier keys: generation, CRT decryption and conversion to/from python-paillier.

This is the *raw* layer: plaintexts are integers in ``[0, n)`` and ciphertexts
are :class:`gmpy2.mpz` values in ``[1, n²)``. Signed and fixed-point encodings
live in :mod:`fedcredit.protocols.paillier.encoding`.

The generator ``g`` is always ``n + 1`` so that ``g^m = 1 + m·n (mod n²)``.

Nothing here reads a clock, a file or a global RNG: key generation draws all of
its randomness from the ``rng`` argument (any object with ``getrandbits``).
"""

from __future__ import annotations

import hashlib
import operator
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import gmpy2
from gmpy2 import mpz

from ..core import RandomSource
from ..errors import CryptoError
from .parallel import MapFn, chunked, run_tasks

__all__ = [
    "RandomSource",
    "PaillierPublicKey",
    "PaillierPrivateKey",
    "generate_keypair",
    "check_ciphertext",
    "SUPPORTED_KEY_BITS",
    "MIN_INSECURE_KEY_BITS",
    "decrypt_task",
]

#: Modulus sizes accepted without the ``insecure_allow_small`` flag.
#: 1024 is accepted for tests only; 2048 is the default; 3072 for long-lived keys.
SUPPORTED_KEY_BITS: tuple[int, ...] = (1024, 2048, 3072)

#: Smallest modulus accepted even with ``insecure_allow_small=True``.
MIN_INSECURE_KEY_BITS = 256

#: Default ciphertexts per task for a parallel :meth:`PaillierPrivateKey.decrypt_raw_many`.
DEFAULT_DECRYPT_CHUNK = 64

# Miller-Rabin rounds on top of gmpy2.next_prime's own test (belt and braces).
_EXTRA_PRIME_ROUNDS = 25


def _as_mpz(x: Any, what: str) -> mpz:
    """Convert an int-like (int, mpz, numpy integer) to mpz; refuse floats."""
    if isinstance(x, mpz):
        return x
    try:
        return mpz(operator.index(x))
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {type(x).__name__}") from None


def _random_unit(n: mpz, rng: RandomSource) -> mpz:
    """Draw r uniformly from Z_n* by rejection sampling (acceptance ≥ 1/2)."""
    bits = n.bit_length()
    while True:
        r = mpz(rng.getrandbits(bits))
        if 0 < r < n and gmpy2.gcd(r, n) == 1:
            return r


@dataclass(frozen=True, eq=False, slots=True)
class PaillierPublicKey:
    """A Paillier public key with ``g = n + 1``.

    Args:
        n: the modulus ``p·q`` (odd, at least :data:`MIN_INSECURE_KEY_BITS` bits).

    Attributes:
        n: the modulus.
        nsquare: ``n²``; ciphertexts live in ``[1, n²)``.
        bits: ``n.bit_length()``.
        max_int: ``n // 3``, the largest magnitude a signed plaintext may have.
            Decoded values in ``(n//3, n - n//3)`` are treated as overflow.

    Raises:
        ValueError: if ``n`` is even or too small.
    """

    n: mpz
    nsquare: mpz = field(init=False, repr=False)
    bits: int = field(init=False)
    max_int: mpz = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = _as_mpz(self.n, "n")
        if n.bit_length() < MIN_INSECURE_KEY_BITS or not n & 1:
            raise ValueError(
                f"a Paillier modulus must be odd and have at least {MIN_INSECURE_KEY_BITS} bits"
            )
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "nsquare", n * n)
        object.__setattr__(self, "bits", int(n.bit_length()))
        object.__setattr__(self, "max_int", n // 3)

    @property
    def g(self) -> mpz:
        """The generator, always ``n + 1``."""
        return self.n + 1

    @property
    def ciphertext_bytes(self) -> int:
        """Fixed serialization width of one ciphertext, in bytes: ``(2·bits + 7) // 8``."""
        return (2 * self.bits + 7) // 8

    def fingerprint(self) -> bytes:
        """SHA-256 of ``n`` as big-endian bytes (32 bytes); names the key in messages.

        Returns:
            The 32-byte digest.
        """
        return hashlib.sha256(int(self.n).to_bytes((self.bits + 7) // 8, "big")).digest()

    def to_phe(self) -> Any:
        """Return the equivalent :class:`phe.paillier.PaillierPublicKey`."""
        from phe import paillier as phe_paillier

        return phe_paillier.PaillierPublicKey(int(self.n))

    @classmethod
    def from_phe(cls, pk: Any) -> "PaillierPublicKey":
        """Import a :class:`phe.paillier.PaillierPublicKey` (anything with ``.n``).

        Raises:
            ValueError: if the key's ``g`` is not ``n + 1``.
        """
        n = mpz(int(pk.n))
        g = getattr(pk, "g", n + 1)
        if g != n + 1:
            raise ValueError("only keys with g = n + 1 are supported")
        return cls(n)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PaillierPublicKey):
            return NotImplemented
        return self.n == other.n

    def __hash__(self) -> int:
        return hash(self.n)

    def __repr__(self) -> str:
        return f"PaillierPublicKey(bits={self.bits}, fingerprint={self.fingerprint().hex()[:16]})"


def check_ciphertext(public_key: PaillierPublicKey, c: Any) -> mpz:
    """Check that ``c`` is a well-formed ciphertext for ``public_key``.

    Args:
        public_key: the key ``c`` claims to be under.
        c: an int or mpz.

    Returns:
        ``c`` as an mpz.

    Raises:
        CryptoError: if ``c`` is not an integer in ``[1, n²)`` coprime to ``n``.
    """
    try:
        c = _as_mpz(c, "ciphertext")
    except TypeError as exc:
        raise CryptoError(str(exc)) from None
    if not 0 < c < public_key.nsquare:
        raise CryptoError("ciphertext out of range [1, n^2)")
    if gmpy2.gcd(c, public_key.n) != 1:
        raise CryptoError("ciphertext is not a unit mod n^2")
    return c


def _h(prime: mpz, prime_square: mpz, g: mpz) -> mpz:
    """``L_p(g^(p-1) mod p²)^-1 mod p``, with ``L_p(x) = (x - 1) / p``."""
    lp = (gmpy2.powmod(g, prime - 1, prime_square) - 1) // prime
    return gmpy2.invert(lp, prime)


@dataclass(frozen=True, eq=False, slots=True)
class PaillierPrivateKey:
    """A Paillier private key with CRT decryption.

    ``p`` and ``q`` are stored with ``p < q`` whatever order they were given in.

    Args:
        public_key: the matching public key.
        p: one prime factor of ``n``.
        q: the other.

    Raises:
        ValueError: if ``p·q != n`` or ``p == q``.
    """

    public_key: PaillierPublicKey
    p: mpz = field(repr=False)
    q: mpz = field(repr=False)
    psquare: mpz = field(init=False, repr=False)
    qsquare: mpz = field(init=False, repr=False)
    hp: mpz = field(init=False, repr=False)
    hq: mpz = field(init=False, repr=False)
    q_inverse: mpz = field(init=False, repr=False)  # q^-1 mod p

    def __post_init__(self) -> None:
        p = _as_mpz(self.p, "p")
        q = _as_mpz(self.q, "q")
        if p == q:
            raise ValueError("p and q must differ")
        if p * q != self.public_key.n:
            raise ValueError("p * q does not equal the public key's n")
        if q < p:
            p, q = q, p
        g = self.public_key.g
        set_ = object.__setattr__
        set_(self, "p", p)
        set_(self, "q", q)
        set_(self, "psquare", p * p)
        set_(self, "qsquare", q * q)
        set_(self, "hp", _h(p, p * p, g))
        set_(self, "hq", _h(q, q * q, g))
        set_(self, "q_inverse", gmpy2.invert(q, p))

    def decrypt_raw(self, c: Any) -> int:
        """Decrypt one ciphertext to its raw plaintext, with CRT over p² and q².

        Args:
            c: a ciphertext (int or mpz) in ``[1, n²)``.

        Returns:
            The plaintext ``m`` in ``[0, n)`` as a Python int.

        Raises:
            CryptoError: if ``c`` is not a well-formed ciphertext for this key.
        """
        c = check_ciphertext(self.public_key, c)
        p, q = self.p, self.q
        mp = ((gmpy2.powmod(c, p - 1, self.psquare) - 1) // p) * self.hp % p
        mq = ((gmpy2.powmod(c, q - 1, self.qsquare) - 1) // q) * self.hq % q
        # Garner: m = mq + q·((mp - mq)·q⁻¹ mod p), which lies in [0, n).
        return int(mq + q * ((mp - mq) * self.q_inverse % p))

    def decrypt_raw_many(
        self,
        cs: Iterable[Any],
        *,
        map_fn: MapFn | None = None,
        chunk_size: int = DEFAULT_DECRYPT_CHUNK,
    ) -> list[int]:
        """Decrypt each ciphertext of ``cs`` (see :meth:`decrypt_raw`).

        With ``map_fn`` (see :mod:`.parallel`) the work is split into tasks
        ``(p, q, chunk)`` for :func:`decrypt_task`. **The tasks carry the
        private factors**: pass only a ``map_fn`` whose workers run inside the
        key holder's trust boundary (its own processes).

        Args:
            cs: ciphertexts.
            map_fn: ``map``-like callable; ``None`` = serial in this process.
            chunk_size: ciphertexts per task when ``map_fn`` is given.

        Raises:
            CryptoError: if any ciphertext is malformed.
        """
        if map_fn is None:
            return [self.decrypt_raw(c) for c in cs]
        p, q = int(self.p), int(self.q)
        items = [int(check_ciphertext(self.public_key, c)) for c in cs]
        tasks = [(p, q, tuple(chunk)) for chunk in chunked(items, chunk_size)]
        return [m for part in run_tasks(map_fn, decrypt_task, tasks) for m in part]

    def to_phe(self) -> Any:
        """Return the equivalent :class:`phe.paillier.PaillierPrivateKey`."""
        from phe import paillier as phe_paillier

        return phe_paillier.PaillierPrivateKey(self.public_key.to_phe(), int(self.p), int(self.q))

    @classmethod
    def from_phe(cls, sk: Any) -> "PaillierPrivateKey":
        """Import a :class:`phe.paillier.PaillierPrivateKey`.

        Raises:
            ValueError: if the key is inconsistent.
        """
        return cls(PaillierPublicKey.from_phe(sk.public_key), mpz(int(sk.p)), mpz(int(sk.q)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PaillierPrivateKey):
            return NotImplemented
        return self.public_key == other.public_key and self.p == other.p

    def __hash__(self) -> int:
        return hash((self.public_key, self.p))

    def __repr__(self) -> str:
        return f"PaillierPrivateKey(public_key={self.public_key!r})"


def decrypt_task(task: tuple[int, int, Sequence[int]]) -> list[int]:
    """Worker for a parallel :meth:`PaillierPrivateKey.decrypt_raw_many`: ``(p, q, cs) -> plaintexts``.

    Plain ints in and out. Holds private key material: run it only in the key
    holder's own processes.
    """
    p, q, cs = task
    p_, q_ = mpz(p), mpz(q)
    sk = PaillierPrivateKey(PaillierPublicKey(p_ * q_), p_, q_)
    return [sk.decrypt_raw(c) for c in cs]


def _random_prime(bits: int, rng: RandomSource) -> mpz:
    """A prime of exactly ``bits`` bits whose two top bits are set."""
    top = mpz(3) << (bits - 2)
    while True:
        candidate = mpz(rng.getrandbits(bits)) | top | 1
        prime = gmpy2.next_prime(candidate)
        if prime.bit_length() == bits and gmpy2.is_prime(prime, _EXTRA_PRIME_ROUNDS):
            return prime


def generate_keypair(
    n_bits: int = 2048,
    rng: RandomSource | None = None,
    *,
    insecure_allow_small: bool = False,
) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """Generate a Paillier key pair whose modulus has exactly ``n_bits`` bits.

    ``p`` and ``q`` are distinct ``n_bits/2``-bit primes with their two top bits
    set, so ``n = p·q`` has exactly ``n_bits`` bits, and
    ``gcd(pq, (p-1)(q-1)) = 1``. The result is a deterministic function of the
    random bits drawn from ``rng``.

    Args:
        n_bits: modulus size: 1024 (tests only), 2048 (default) or 3072. Smaller
            even sizes down to :data:`MIN_INSECURE_KEY_BITS` need
            ``insecure_allow_small=True``.
        rng: the randomness source (required; there is no hidden default). Use
            ``secrets.SystemRandom()`` for real keys.
        insecure_allow_small: allow toy sizes below 1024 bits, for fast tests.

    Returns:
        ``(public_key, private_key)``.

    Raises:
        TypeError: if ``rng`` is missing.
        ValueError: if ``n_bits`` is not an allowed size.
    """
    if rng is None:
        raise TypeError("generate_keypair needs an explicit rng, e.g. secrets.SystemRandom()")
    n_bits = operator.index(n_bits)
    if n_bits not in SUPPORTED_KEY_BITS:
        small_ok = (
            insecure_allow_small
            and MIN_INSECURE_KEY_BITS <= n_bits < SUPPORTED_KEY_BITS[0]
            and n_bits % 2 == 0
        )
        if not small_ok:
            if n_bits < SUPPORTED_KEY_BITS[0] and not insecure_allow_small:
                raise ValueError(
                    f"{n_bits}-bit Paillier keys are insecure; pass insecure_allow_small=True "
                    "(tests only)"
                )
            raise ValueError(
                f"unsupported key size {n_bits}; use one of {SUPPORTED_KEY_BITS} "
                f"(or an even size >= {MIN_INSECURE_KEY_BITS} with insecure_allow_small=True)"
            )
    half = n_bits // 2
    while True:
        p = _random_prime(half, rng)
        q = _random_prime(half, rng)
        if p == q:
            continue
        n = p * q
        if n.bit_length() != n_bits:  # cannot happen with two top bits set; kept as a guard
            continue
        if gmpy2.gcd(n, (p - 1) * (q - 1)) != 1:
            continue
        public_key = PaillierPublicKey(n)
        return public_key, PaillierPrivateKey(public_key, p, q)
