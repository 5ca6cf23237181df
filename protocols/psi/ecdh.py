"""Hazmat layer of the ECDH-PSI: hashing ids to Curve25519 points and blinding.

These are raw primitives with no protocol checks; use
:mod:`fedcredit.protocols.psi.protocol` unless you are building a protocol.

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
:class:`~fedcredit.protocols.errors.CryptoError` instead of producing a value that would
match everything. :func:`hash_to_point` never returns one of them (u = 0 fails
the nonzero-square test; the other three are skipped explicitly), and an
effective clamped scalar 2^251 ≤ k/8 < 2^252 < ℓ is never a multiple of ℓ, so
blinding an honest point -- once or twice -- never fails. A point received from
a peer is not checked for curve membership: a peer deviating from the protocol
is outside the semi-honest model (and X25519 is twist-secure regardless).

Inverting a blinding (unbalanced PSI)
-------------------------------------
On the order-ℓ subgroup only a scalar's class mod ℓ matters, so a clamped
scalar s with s ≡ r⁻¹ (mod ℓ) undoes r. Clamping restricts s to 2^254 + 8·t,
which covers about half of all classes; :func:`invertible_scalar` draws r until
its inverse is among them.

Parallelism
-----------
:func:`blind`, :func:`hash_points` and :func:`hash_and_blind` split their input
into chunks and run a module-level worker (:func:`blind_worker`,
:func:`hash_worker`, :func:`hash_blind_worker`) over them with ``map_fn`` --
builtin ``map`` by default, or a process pool's ``Executor.map``. Tasks and
results are plain bytes, so they pickle; the output never depends on
``map_fn`` or the chunk size. The ``*_async`` variants return a
:class:`Pending` so a caller can queue the next batch before collecting this
one. Nothing here starts processes or threads.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

import gmpy2
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ..core import MapFn, RandomSource, batches
from ..errors import CryptoError

__all__ = [
    "POINT_BYTES",
    "DIGEST_BYTES",
    "SUBGROUP_ORDER",
    "DEFAULT_CHUNK",
    "MapFn",
    "RandomSource",
    "hash_to_point",
    "hash_points",
    "hash_and_blind",
    "is_on_curve",
    "random_scalar",
    "clamp_scalar",
    "invertible_scalar",
    "blind",
    "blind_async",
    "hash_and_blind_async",
    "Pending",
    "truncate",
    "blind_worker",
    "hash_worker",
    "hash_blind_worker",
]

#: Size of an X25519 u-coordinate and of a scalar.
POINT_BYTES = 32
#: Size of a stored (truncated) double-blinded value; see :func:`truncate`.
DIGEST_BYTES = 16
#: ℓ, the order of Curve25519's prime-order subgroup (RFC 7748).
SUBGROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
#: Points per task handed to ``map_fn`` by :func:`blind` and friends. A task
#: of 1024 X25519 multiplications takes ~40 ms, far above a process pool's
#: per-task overhead (~0.1 ms), and a batch of 8192 still splits into 8 tasks.
DEFAULT_CHUNK = 1024


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
            :func:`fedcredit.protocols.psi.ids.normalize_id`.

    Returns:
        32 bytes, to be blinded with :func:`blind`. Never send it unblinded.
    """
    return _hash_bytes_to_point(salt, normalized_id.encode("utf-8"))


def _hash_bytes_to_point(salt: bytes, data: bytes) -> bytes:
    """:func:`hash_to_point` of an id already encoded as UTF-8."""
    prefix = _salted_prefix(salt)
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




def clamp_scalar(scalar: bytes) -> int:
    """The integer X25519 multiplies by for ``scalar`` (RFC 7748 clamping).

    Clears the three low bits and bit 255 and sets bit 254, so the result is
    2^254 + 8·t with 0 ≤ t < 2^251: always a multiple of the cofactor 8.
    """
    if not isinstance(scalar, bytes) or len(scalar) != POINT_BYTES:
        raise CryptoError(f"bad X25519 scalar: expected {POINT_BYTES} bytes")
    k = int.from_bytes(scalar, "little")
    return (k & ~7 & ((1 << 255) - 1)) | (1 << 254)


def _clamped_representative(residue: int) -> int | None:
    """The clamped scalar s ≡ ``residue`` (mod ℓ), if one exists (it is then unique).

    Clamped scalars are s = 2^254 + 8·t, i.e. s in [2^254, 2^255) with
    8 | s. That interval holds about four integers ≡ residue (mod ℓ), which are
    consecutive in the class s = residue + m·ℓ; since ℓ is odd, 8 | s fixes m
    mod 8, so at most one of them qualifies, and one does for about half of all
    residues.
    """
    lo, hi = 1 << 254, 1 << 255
    m = -(-(lo - residue) // SUBGROUP_ORDER)  # smallest m with residue + m·ℓ ≥ 2^254
    s = residue + m * SUBGROUP_ORDER
    while s < hi:
        if s % 8 == 0:
            return s
        s += SUBGROUP_ORDER
    return None


def invertible_scalar(rng: RandomSource) -> tuple[bytes, bytes]:
    """Draw a scalar r whose inverse mod ℓ is also an X25519 scalar: ``(r, r_inv)``.

    For every point P of the prime-order subgroup (every point a clamped
    scalar has multiplied at least once -- the cofactor is cleared by the
    clamping),

        X25519(r_inv, X25519(k, X25519(r, P)))  ==  X25519(k, P)

    because clamp(r_inv)·clamp(r) ≡ 1 (mod ℓ). This is what unbalanced PSI
    needs to strip its blinding off the server's answer. X25519 cannot take
    r⁻¹ mod ℓ directly, because a scalar is always clamped to 2^254 + 8·t; but
    on the subgroup only the class mod ℓ matters, and about half of all r have
    a clamped representative of r⁻¹ mod ℓ (see :func:`_clamped_representative`).
    So r is drawn like :func:`random_scalar` and redrawn until it qualifies
    (two draws on average). The conditioning leaves about 2^250 possible
    scalars, and is independent of any id, so it reveals nothing about P.

    ``clamp_scalar(r) % ℓ`` is never 0: no clamped integer is a multiple of ℓ
    (ℓ ≡ 5 mod 8 and 8·ℓ > 2^255), so the inverse always exists.
    """
    for _ in range(1 << 16):  # each try succeeds with probability ~1/2
        r = random_scalar(rng)
        inv = pow(clamp_scalar(r), -1, SUBGROUP_ORDER)
        s = _clamped_representative(inv)
        if s is not None:
            return r, s.to_bytes(POINT_BYTES, "little")
    raise CryptoError("no invertible X25519 scalar in 2^16 draws")  # probability 2^-(2^16)


def truncate(point: bytes) -> bytes:
    """The first :data:`DIGEST_BYTES` (16) bytes of a blinded point, for lookup tables.

    A blinded point is a pseudorandom element of the order-ℓ subgroup (DDH),
    and the low 128 bits of its u-coordinate (little-endian) are modelled as
    uniform -- the same random-oracle-style heuristic every truncated-hash
    PSI uses. Two different ids then collide after truncation with
    probability 2^-128 per pair, so a lookup of |X| values against a table of |Y| values
    reports a false match with probability at most |X|·|Y|·2^-128 -- below
    2^-88 for 2^20 × 2^20 -- and a table of |Y| values has an internal
    collision with probability below |Y|²·2^-129. Halves the memory of every
    table of double-blinded values (and of the unbalanced cache) against the
    full 32 bytes, with no observable loss of correctness.
    """
    return point[:DIGEST_BYTES]


# --------------------------------------------------------------------------- workers
#
# Module-level functions with plain-bytes tasks, so that a process pool's
# ``map`` can pickle them. They are the only place scalar multiplications and
# hashes happen; everything above chunks the input and joins the results.


def _x25519_key(scalar: bytes) -> X25519PrivateKey:
    try:
        return X25519PrivateKey.from_private_bytes(scalar)
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"bad X25519 scalar: {exc}") from None


def _blind_packed(key: X25519PrivateKey, packed: bytes, offset: int) -> bytes:
    """X25519 of each 32-byte u in ``packed``; raises naming the global index."""
    out = bytearray()
    for i in range(0, len(packed), POINT_BYTES):
        try:
            out += key.exchange(X25519PublicKey.from_public_bytes(packed[i : i + POINT_BYTES]))
        except (ValueError, TypeError):
            raise CryptoError(
                f"point {offset + i // POINT_BYTES} was rejected by X25519 (wrong size or low order)"
            ) from None
    return bytes(out)


def blind_worker(task: tuple[bytes, bytes, int]) -> bytes:
    """Worker: ``(scalar, concatenated 32-byte points, index of the first)`` -> concatenated results."""
    scalar, packed, offset = task
    return _blind_packed(_x25519_key(scalar), packed, offset)


def hash_worker(task: tuple[bytes, tuple[bytes, ...]]) -> bytes:
    """Worker: ``(salt, UTF-8 ids)`` -> concatenated :func:`hash_to_point` results."""
    salt, ids = task
    return b"".join(_hash_bytes_to_point(salt, x) for x in ids)


def hash_blind_worker(task: tuple[bytes, bytes, tuple[bytes, ...]]) -> bytes:
    """Worker: ``(salt, scalar, UTF-8 ids)`` -> concatenated scalar·h(id).

    Hashing and blinding in one task saves sending the hashed points back and
    forth; the unblinded hash never leaves the worker.
    """
    salt, scalar, ids = task
    key = _x25519_key(scalar)
    return _blind_packed(key, b"".join(_hash_bytes_to_point(salt, x) for x in ids), 0)


def _split(packed: bytes, width: int) -> list[bytes]:
    return [packed[i : i + width] for i in range(0, len(packed), width)]


class Pending:
    """Work handed to ``map_fn``, collected by :meth:`result`.

    With ``Executor.map`` the tasks are already queued when this is created, so
    a role can start batch k+1 and then send batch k while the pool computes.
    With builtin ``map`` (or none) the work happens inside :meth:`result`.
    """

    def __init__(self, results: Iterable[bytes]) -> None:
        self._results: Iterable[bytes] | None = results

    def result(self) -> list[bytes]:
        """The 32-byte outputs, in input order (call once)."""
        if self._results is None:
            raise RuntimeError("Pending.result() was already called")
        out: list[bytes] = []
        for packed in self._results:
            out.extend(_split(packed, POINT_BYTES))
        self._results = None
        return out


def _submit(worker: Callable[[Any], bytes], tasks: list[Any], map_fn: MapFn | None) -> Pending:
    if map_fn is None or not tasks:
        return Pending(map(worker, tasks))
    return Pending(map_fn(worker, tasks))


#: With a ``map_fn``, inputs are split into at least this many tasks (chunks
#: of at least :data:`_MIN_CHUNK`), so that a small batch still spreads over
#: the pool's processes.
_MIN_TASKS = 8
_MIN_CHUNK = 64


def _task_chunk(n: int, chunk_size: int, map_fn: MapFn | None) -> int:
    if map_fn is None:
        return max(n, 1)  # one task, run here: no point splitting
    return min(chunk_size, max(_MIN_CHUNK, -(-n // _MIN_TASKS)))


def _check_chunk(chunk_size: int) -> None:
    if type(chunk_size) is not int or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")


def blind(
    scalar: bytes,
    points: Sequence[bytes],
    map_fn: MapFn | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> list[bytes]:
    """Multiply each point by ``scalar``: X25519(scalar, u) for each u.

    Args:
        scalar: 32 bytes from :func:`random_scalar`.
        points: 32-byte u-coordinates (hashed ids or a peer's blinded points).
        map_fn: runs :func:`blind_worker` over chunks of the points, e.g.
            ``ProcessPoolExecutor(cores).map``; when None, everything runs
            here in one task. The result does not depend on it.
        chunk_size: at most this many points per task (with ``map_fn``,
            smaller inputs are split into 8 tasks of at least 64 points).

    Returns:
        The blinded u-coordinates, in the same order.

    Raises:
        CryptoError: if the scalar or a point is not 32 bytes, or a point is of
            low order (the shared value would be all zeros). Never for points
            from :func:`hash_to_point` or blinded ones derived from them.
    """
    return blind_async(scalar, points, map_fn, chunk_size=chunk_size).result()


def blind_async(
    scalar: bytes,
    points: Sequence[bytes],
    map_fn: MapFn | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> Pending:
    """:func:`blind`, started now and collected by ``.result()`` (see :class:`Pending`)."""
    _check_chunk(chunk_size)
    _x25519_key(scalar)  # fail early, in this process, on a bad scalar
    for i, u in enumerate(points):
        if not isinstance(u, bytes) or len(u) != POINT_BYTES:
            raise CryptoError(f"point {i} was rejected by X25519 (wrong size or low order)")
    chunk = _task_chunk(len(points), chunk_size, map_fn)
    tasks = [(scalar, b"".join(points[lo:hi]), lo) for _, lo, hi in batches(len(points), chunk)]
    return _submit(blind_worker, tasks, map_fn)


def _encode_ids(ids: Sequence[str]) -> list[bytes]:
    return [x.encode("utf-8") for x in ids]


def hash_points(
    salt: bytes,
    ids: Sequence[str],
    map_fn: MapFn | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> list[bytes]:
    """:func:`hash_to_point` of each id, in order, optionally in parallel (see :func:`blind`)."""
    _check_chunk(chunk_size)
    raw = _encode_ids(ids)
    chunk = _task_chunk(len(raw), chunk_size, map_fn)
    tasks = [(salt, tuple(raw[lo:hi])) for _, lo, hi in batches(len(raw), chunk)]
    return _submit(hash_worker, tasks, map_fn).result()


def hash_and_blind(
    salt: bytes,
    scalar: bytes,
    ids: Sequence[str],
    map_fn: MapFn | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> list[bytes]:
    """``blind(scalar, hash_points(salt, ids))`` in one pass per chunk (same result, less IPC)."""
    return hash_and_blind_async(salt, scalar, ids, map_fn, chunk_size=chunk_size).result()


def hash_and_blind_async(
    salt: bytes,
    scalar: bytes,
    ids: Sequence[str],
    map_fn: MapFn | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> Pending:
    """:func:`hash_and_blind`, started now and collected by ``.result()``."""
    _check_chunk(chunk_size)
    _x25519_key(scalar)
    raw = _encode_ids(ids)
    chunk = _task_chunk(len(raw), chunk_size, map_fn)
    tasks = [(salt, scalar, tuple(raw[lo:hi])) for _, lo, hi in batches(len(raw), chunk)]
    return _submit(hash_blind_worker, tasks, map_fn)
