"""Hazmat layer of the ECDH-PSI: hashing ids to Curve25519 points and blinding.

These are raw primitives with no protocol checks; use
:mod:`protocols.psi.protocol` unless you are building a protocol.

Why X25519 works for commutative blinding
-----------------------------------------
X25519 (RFC 7748) is the x-only Montgomery ladder on Curve25519,
v² = u³ + 486662·u² + u over GF(p), p = 2^255 - 19. It accepts any 32-byte
string as a u-coordinate (bit 255 is masked; non-canonical values are reduced
mod p), and every u is the x-coordinate of a point either on the curve (group
order 8·ℓ, ℓ ≈ 2^252 prime) or on its quadratic twist (order 4·ℓ', ℓ' ≈ 2^253
prime). The ladder computes x([k]P) correctly in either group, and X25519's
clamping makes every scalar a multiple of 8, which clears both cofactors. Hence
for any u and clamped scalars a, b:

    X25519(a, X25519(b, u)) = x([a·b]P) = X25519(b, X25519(a, u)),

and the result lies in the prime-order subgroup of the group u came from.

Why ids are hashed onto the curve proper, never the twist
---------------------------------------------------------
Whether u lies on the curve or on the twist is public -- it is the Legendre
symbol of u³ + 486662·u² + u mod p -- and scalar multiplication preserves it. A
plain hash of an id to 32 bytes lands on the twist about half the time, so
every blinded point would show its receiver one bit of h(id): a salted 1-bit
hash of the id, testable against guessed ids since the salt is public within
the job. :func:`hash_to_point` therefore uses try-and-increment and returns
only u-coordinates of points on the curve proper (see its docstring); every
honest point, blinded or not, then has the same curve/twist bit and the bit
carries no information. :func:`is_on_curve` checks the property.

With every hashed point on the curve, the semi-honest argument needs DDH only
in the order-ℓ subgroup of Curve25519: modelling :func:`hash_to_point` as a
random oracle onto the curve, a·h(x) for an unknown clamped scalar a is
indistinguishable from a random element of that subgroup (Meadows 1986;
Huberman-Franklin-Hogg 1999).

Low-order points
----------------
The curve's points of order dividing 8 have u ∈ {0, 1} and two order-8 values
(the twist adds u = p - 1). Clamping sends them to the identity, X25519 outputs
all zeros, ``cryptography`` refuses that, and :func:`blind` raises
:class:`~protocols.errors.CryptoError` instead of producing a value that would
match everything. :func:`hash_to_point` never returns one of them (u = 0 fails
the nonzero-square test; the other three are skipped explicitly), and an
effective clamped scalar 2^251 ≤ k/8 < 2^252 < ℓ is never a multiple of ℓ, so
blinding an honest point -- once or twice -- never fails. A point received from
a peer is not checked for curve membership: a peer deviating from the protocol
is outside the semi-honest model (and X25519 is twist-secure regardless).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any, Protocol, Sequence

import gmpy2
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ..errors import CryptoError

__all__ = ["POINT_BYTES", "RandomSource", "hash_to_point", "is_on_curve", "random_scalar", "blind"]

#: Size of an X25519 u-coordinate and of a scalar.
POINT_BYTES = 32

#: Domain-separation tag of :func:`hash_to_point`.
_H2C_TAG = b"fedcredit/v1/psi-h2c"
_P = 2**255 - 19
_P_MPZ = gmpy2.mpz(_P)
_A = 486662
_U_MASK = (1 << 255) - 1
#: u-coordinates of the low-order points on the curve proper (orders 4 and 8)
#: that pass the nonzero-square test; u = 0 (order 2) already fails it.
_LOW_ORDER_ON_CURVE = frozenset(
    {
        1,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
    }
)
_MAX_TRIES = 1 << 32  # the counter is 4 bytes; each try fails with probability ~1/2


class RandomSource(Protocol):
    """What the PSI needs from an RNG: ``random.Random`` or ``secrets.SystemRandom``."""

    def getrandbits(self, k: int, /) -> int: ...


def _curve_rhs(u: Any) -> Any:
    """u³ + 486662·u² + u mod p (v² on the curve), for an int or a gmpy2.mpz u."""
    return u * (u * (u + _A) + 1) % _P


def _decode_u(u: bytes) -> int:
    """RFC 7748 decoding of a u-coordinate: little-endian, bit 255 masked, mod p."""
    return (int.from_bytes(u, "little") & _U_MASK) % _P


def is_on_curve(u: bytes) -> bool:
    """Whether ``u`` is the u-coordinate of a point on Curve25519 proper.

    True iff u³ + 486662·u² + u (u decoded as X25519 does: little-endian, bit
    255 masked, reduced mod p) is a nonzero square mod p. False for twist
    points, for u = 0 (the order-2 point, which both groups share) and for
    anything that is not 32 bytes. Low-order curve points (u = 1 and the two
    order-8 points) do count as on the curve.

    Meant for assertions and tests; it costs one Legendre symbol.
    """
    if not isinstance(u, bytes) or len(u) != POINT_BYTES:
        return False
    return gmpy2.legendre(_curve_rhs(gmpy2.mpz(_decode_u(u))), _P_MPZ) == 1


@lru_cache(maxsize=16)
def _salted_prefix(salt: bytes) -> "hashlib._Hash":
    """SHA-512 state after tag ‖ len(salt) ‖ salt; callers must ``copy()`` it."""
    digest = hashlib.sha512(_H2C_TAG)
    digest.update(len(salt).to_bytes(8, "big"))
    digest.update(salt)
    return digest


def hash_to_point(salt: bytes, normalized_id: str) -> bytes:
    """Hash a normalized id to the u-coordinate of a point on Curve25519 proper.

    Try-and-increment: for counter = 0, 1, 2, ...

        u = SHA-512(b"fedcredit/v1/psi-h2c" ‖ len(salt) as 8 bytes big-endian
                    ‖ salt ‖ counter as 4 bytes big-endian ‖ utf-8(id))[:32],

    read little-endian with bit 255 cleared and reduced mod p = 2^255 - 19; the
    first u for which u³ + 486662·u² + u is a nonzero square mod p (and that is
    not one of the three low-order curve points, an event of probability about
    2^-253) is returned as 32 bytes little-endian, a canonical encoding (< p).
    The length prefix makes the salt/id boundary unambiguous.

    Why not just take the hash as u: about half of all u lie on the quadratic
    twist, curve-vs-twist membership is public and survives blinding, so each
    blinded point would leak one salted-hash bit of its id (module docstring).

    Cost: each try succeeds with probability ~1/2, so the expected cost is ~2
    SHA-512 evaluations and ~2 Legendre symbols. The number of tries depends on
    (salt, id); the salt is public within the job, so this count is a salted
    function of the id, but it is never sent. It shows only in the running time
    of this function for that one id, which only a local observer of the
    hashing party's own machine can measure; a peer sees at most the total time
    of a whole batch, dominated by the scalar multiplications.

    Deterministic: the same (salt, id) always gives the same point.

    Args:
        salt: the per-job salt (public within the job).
        normalized_id: an id already passed through
            :func:`protocols.psi.ids.normalize_id`.

    Returns:
        32 bytes, to be blinded with :func:`blind`. Never send it unblinded.
    """
    prefix = _salted_prefix(salt)
    data = normalized_id.encode("utf-8")
    for counter in range(_MAX_TRIES):
        digest = prefix.copy()
        digest.update(counter.to_bytes(4, "big"))
        digest.update(data)
        u = (int.from_bytes(digest.digest()[:POINT_BYTES], "little") & _U_MASK) % _P
        if gmpy2.legendre(_curve_rhs(gmpy2.mpz(u)), _P_MPZ) == 1 and u not in _LOW_ORDER_ON_CURVE:
            return u.to_bytes(POINT_BYTES, "little")
    raise CryptoError("hash_to_point found no curve point in 2^32 tries")  # probability 2^-(2^32)


def random_scalar(rng: RandomSource) -> bytes:
    """Draw a fresh 32-byte X25519 scalar from ``rng``.

    The bytes are uniform; X25519 clamps them (clears the 3 low bits and bit
    255, sets bit 254), leaving 2^251 possible effective scalars.
    """
    return rng.getrandbits(8 * POINT_BYTES).to_bytes(POINT_BYTES, "little")


def blind(scalar: bytes, points: Sequence[bytes]) -> list[bytes]:
    """Multiply each point by ``scalar``: X25519(scalar, u) for each u.

    Args:
        scalar: 32 bytes from :func:`random_scalar`.
        points: 32-byte u-coordinates (hashed ids or a peer's blinded points).

    Returns:
        The blinded u-coordinates, in the same order.

    Raises:
        CryptoError: if the scalar or a point is not 32 bytes, or a point is of
            low order (the shared value would be all zeros). Never for points
            from :func:`hash_to_point` or blinded ones derived from them.
    """
    try:
        key = X25519PrivateKey.from_private_bytes(scalar)
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"bad X25519 scalar: {exc}") from None
    out: list[bytes] = []
    for i, u in enumerate(points):
        try:
            out.append(key.exchange(X25519PublicKey.from_public_bytes(u)))
        except (ValueError, TypeError):
            raise CryptoError(f"point {i} was rejected by X25519 (wrong size or low order)") from None
    return out
