"""Unbalanced PSI: a large platform set cached under a long-lived key, small bank queries online.

The platform (host) holds a large set P that changes slowly; a bank (guest)
brings a small set Q per job. Balanced ECDH-PSI costs 2·(|P| + |Q|) scalar
multiplications per job; here the host pays |P| once per key (offline), and a
job costs 2·|Q| multiplications at the guest and |Q| at the host.

Group and the inverse
---------------------
Everything stays in Curve25519's prime-order subgroup (order ℓ), with the same
hash-to-curve (:func:`~fedcredit.protocols.psi.ecdh.hash_to_point`) and the same DDH
assumption as the balanced protocol. The guest must strip its blinding r off
the host's answer k·r·h(q), i.e. multiply by r⁻¹ mod ℓ -- which X25519 cannot
take directly, since it clamps every scalar to 2^254 + 8·t. Two ways out were
considered:

(a) NIST P-256 through ``cryptography``: scalars invert mod the prime group
    order, and an x-only protocol works (ECDH ``exchange`` returns only x; a
    received x decompresses to either ±P and k·(±P) has the same x). But it
    needs its own hash-to-curve, and decompressing every received point makes
    it slow: ~11k multiplications per second per core here, against ~27k for
    X25519.
(b) X25519 with an r whose inverse has a clamped representative: on the
    subgroup only a scalar's class mod ℓ matters, every clamped scalar is a
    multiple of 8 (so the first multiplication already lands in the subgroup),
    and about half of all r have a clamped s ≡ r⁻¹ (mod ℓ); the guest redraws
    r until it does (:func:`~fedcredit.protocols.psi.ecdh.invertible_scalar`).

(b) is used: one group, one hash, one assumption for every PSI mode, and 2.5×
the speed of (a).

The exchange
------------
Offline, per key: F = sort({trunc(k·h(p)) : p in P}) (:func:`unbalanced_build_cache`),
with h salted by a salt fixed for the key's life, and a :class:`CacheDigest`
naming the key, the set and the salt (:func:`unbalanced_cache_digest`).

==========================  ===========  =============  ==================================
step                        direction    payload        content
==========================  ===========  =============  ==================================
``DIGEST``                  host→guest   CacheDigest    the current key id, set digest,
                                                        |P| and salt
``CACHE_STATUS``            guest→host   CacheStatus    whether the guest's cached F has
                                                        exactly that digest
``CACHE``                   host→guest   CachedDigests  F in batches -- only if it had not
``QUERY_SIZE``              guest→host   SetSize        |Q|
``QUERY``                   guest→host   BlindedPoints  per batch: r·h(q) for fresh r
``REPLY``                   host→guest   BlindedPoints  per batch: k·r·h(q), same order
                                                        (CARDINALITY and count-first: all
                                                        of them, shuffled by τ)
``COUNT``                   guest→host   Intersection…  count-first only: the count and
                                                        whether it meets the guest's minimum
``UNSHUFFLE``               host→guest   UnshuffleKey   count-first only: the host's verdict
                                                        and, if both minimums are met, τ's key
==========================  ===========  =============  ==================================

The guest computes r⁻¹·(k·r·h(q)) = k·h(q), truncates it and looks it up in F.
Truncation to 16 bytes halves F (16 MB for 2^20 ids) at a false-match
probability of at most |Q|·|P|·2^-128.

Modes: ``Reveal.GUEST`` (the guest learns which of its rows are in P) and
``Reveal.CARDINALITY`` (it learns only how many: the host shuffles the whole
reply, so the guest, which unblinds every answer with the same r⁻¹, cannot tell
which query an answer belongs to). ``Reveal.BOTH`` is not offered: the host
holds no per-job state to align.

Count-first (``UnbalancedParams.count_first``, GUEST mode) works as in the
balanced protocol (:mod:`fedcredit.protocols.psi.protocol`): the host shuffles its reply
as in CARDINALITY mode, the guest counts its hits and sends the count and its
verdict (COUNT), and only if both parties' ``min_intersection`` are met does
the host send the 32-byte key its shuffle τ was drawn from (UNSHUFFLE), which
lets the guest put each hit back on its query row. Both learn the count before
either checks it; a refused run leaves the guest with the count only. Cost: two
small messages and one permutation, no scalar multiplication.

What each side learns (semi-honest)
-----------------------------------
* Host: |Q| per job (and when jobs run). r is fresh per job, so r·h(q) is
  pseudorandom under DDH: nothing about which ids were asked. Count-first:
  also the count and the guest's verdict.
* Guest: the result, |P| -- and F: a pseudorandom function of every platform
  id under k (the Diffie-Hellman OPRF x ↦ k·h(x), pseudorandom in the random
  oracle model under DDH). The guest cannot evaluate that function itself:
  testing any id -- one it sees later, or a guessed one -- against F takes an
  online query that the host answers and sees (it can count, meter and refuse
  them: ``UnbalancedParams.max_queries``). So F enables no offline dictionary
  attack on the platform's set, even though USCCs are guessable.
* Across cache versions under one key, F values are stable: a guest that
  received F twice learns how many entries were added or removed (as opaque
  values) and, by querying an id online, whether it was among them.

Why a long-lived k is acceptable, and rotation
----------------------------------------------
k never leaves the host, and everything the guest keeps (F, its unblinded
answers) is useless without online access to k. What a long life adds is
linkability within the key's period (the churn above) and a larger blast
radius if k leaks: k together with any copy of F lets its holder test
candidate ids offline against that F. Rotating k (with a fresh salt) bounds
both to one period: a new key gives a new, unlinkable F, the digest changes,
every guest re-downloads F, and an old F is worthless against the new key. The
runtime rotates on the schedule in its config (and at once on suspected
compromise), builds the new F offline, and guests delete an F whose digest the
host no longer announces.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Generator, Sequence

from ..core import (
    Progress,
    RandomSource,
    Role,
    RoleProgram,
    Send,
    batch_bounds,
    batches,
    check_unique_ids,
    n_batches,
    permuted_records,
    recv_typed,
    seeded_permutation,
)
from ..errors import ProtocolError
from .count_first import check_minimum, guest_count_exchange, host_count_exchange, too_few
from .ecdh import DIGEST_BYTES, POINT_BYTES, MapFn, Pending, blind_async, hash_and_blind, hash_and_blind_async, invertible_scalar, random_scalar
from .messages import MIN_SALT_BYTES, BlindedPoints, PsiResult, Reveal, SetSize
from .streams import one_ahead, recv_one_ahead
from .unbalanced_messages import (
    CacheDigest,
    CachedDigests,
    CacheStatus,
    UnbalancedCache,
    UnbalancedParams,
    UnbalancedResult,
    UnbalancedStep,
)

# The payloads, the step table, the parameters and the results live in .unbalanced_messages; they are
# listed here too, so this module stays the protocol's one entry.
__all__ = [
    "CacheDigest",
    "CacheStatus",
    "CachedDigests",
    "UnbalancedStep",
    "UnbalancedParams",
    "UnbalancedCache",
    "UnbalancedResult",
    "unbalanced_new_key",
    "unbalanced_key_id",
    "unbalanced_build_cache",
    "unbalanced_cache_digest",
    "unbalanced_host_program",
    "unbalanced_guest_program",
]

_KEY_ID_TAG = b"fedcredit/v1/psi-ub-key-id"
_SET_TAG = b"fedcredit/v1/psi-ub-set"


# --------------------------------------------------------------------------- offline


def unbalanced_new_key(rng: RandomSource) -> bytes:
    """A fresh long-lived host key k (32 bytes; keep it with the party's secrets)."""
    return random_scalar(rng)


def unbalanced_key_id(key: bytes) -> bytes:
    """SHA-256(tag ‖ k): names the key in a :class:`CacheDigest` without revealing it."""
    if not isinstance(key, bytes) or len(key) != POINT_BYTES:
        raise ProtocolError(f"unbalanced key must be {POINT_BYTES} bytes")
    return hashlib.sha256(_KEY_ID_TAG + key).digest()


def unbalanced_build_cache(
    ids: Sequence[str], key: bytes, salt: bytes, map_fn: MapFn | None = None
) -> list[bytes]:
    """The host's offline cache F: sorted trunc(k·h(p)) for every id p.

    Sorting hides the platform's row order (F is a set). Costs |P| hashes and
    scalar multiplications, on all cores with ``map_fn``.

    Raises:
        DataError: on duplicate ids.
        ProtocolError: on a bad key or salt.
    """
    unbalanced_key_id(key)
    if not isinstance(salt, bytes) or not MIN_SALT_BYTES <= len(salt) <= 255:
        raise ProtocolError(f"unbalanced salt must be {MIN_SALT_BYTES} to 255 bytes")
    check_unique_ids(ids, Role.HOST)
    return sorted(p[:DIGEST_BYTES] for p in hash_and_blind(salt, key, ids, map_fn))


def unbalanced_cache_digest(ids: Sequence[str], key: bytes, salt: bytes) -> CacheDigest:
    """The :class:`CacheDigest` of the cache :func:`unbalanced_build_cache` makes from the same input.

    Cheap (one sort and one HMAC pass, no curve arithmetic), so the runtime can
    recompute it at every job start and rebuild F only when it changed.
    """
    key_id = unbalanced_key_id(key)
    mac = hmac.new(hashlib.sha256(_SET_TAG + key).digest(), digestmod=hashlib.sha256)
    for x in sorted(ids):
        data = x.encode("utf-8")
        mac.update(len(data).to_bytes(4, "big"))
        mac.update(data)
    return CacheDigest(key_id=key_id, set_digest=mac.digest(), count=len(ids), salt=salt)


# --------------------------------------------------------------------------- roles


def unbalanced_host_program(
    key: bytes,
    cache: Sequence[bytes],
    digest: CacheDigest,
    params: UnbalancedParams,
    rng: RandomSource,
    *,
    map_fn: MapFn | None = None,
    min_intersection: int = 0,
) -> RoleProgram:
    """The host's online side: announce the cache, ship it if stale, answer queries.

    Args:
        key: the long-lived key k the cache was built with.
        cache: F from :func:`unbalanced_build_cache`.
        digest: its :class:`CacheDigest`.
        params: the job's parameters (same as the guest's).
        rng: draws the reply shuffle (CARDINALITY and count-first only).
        map_fn: runs the scalar multiplications (see :func:`~fedcredit.protocols.psi.ecdh.blind`).
        min_intersection: the host's own minimum, checked on the guest's count
            before τ's key is released; needs ``params.count_first``.

    Returns (as the generator's return value):
        ``PsiResult(rows=(), size=-1)``: the host learns |Q| only (and, count-first, the count).

    Raises:
        IntersectionTooSmall: count-first, when the count is below either
            party's minimum (τ's key is then never sent).
        ProtocolError: if key, cache and digest disagree, a batch has the
            wrong length, the guest asks more than ``params.max_queries`` or
            announces an impossible count.
        CryptoError: if the guest sends a low-order point.
    """
    check_minimum(min_intersection, params.count_first, "UnbalancedParams")
    if unbalanced_key_id(key) != digest.key_id:
        raise ProtocolError("the cache digest names another key")
    if len(cache) != digest.count:
        raise ProtocolError(f"the cache has {len(cache)} entries but its digest announces {digest.count}")
    size, mode = params.batch_size, params.mode
    shuffled = mode is Reveal.CARDINALITY or params.count_first

    yield Send(UnbalancedStep.DIGEST, digest)
    status = yield from recv_typed(UnbalancedStep.CACHE_STATUS, CacheStatus)
    if not status.have:
        for _, lo, hi in batches(len(cache), params.cache_batch_size):
            yield Send(UnbalancedStep.CACHE, CachedDigests(tuple(cache[lo:hi])))
            yield Progress(stage="psi", done=hi, total=len(cache), detail={"phase": "ub_send_cache"})

    announced = yield from recv_typed(UnbalancedStep.QUERY_SIZE, SetSize)
    n = announced.count
    if params.count_first and n < min_intersection:  # the count could not reach it: do not answer at all
        raise too_few(Role.GUEST, Role.HOST, n, min_intersection, queries=True)
    if params.max_queries is not None and n > params.max_queries:
        raise ProtocolError(f"the guest asks {n} queries, above this job's cap of {params.max_queries}")
    answers = bytearray()

    def blind_query(points: tuple[bytes, ...]) -> Pending:
        return blind_async(key, points, map_fn)

    def answer(k: int, lo: int, hi: int, points: list[bytes]) -> Generator[Any, Any, None]:
        if not shuffled:
            yield Send(UnbalancedStep.REPLY, BlindedPoints(tuple(points)))
        else:
            answers.extend(b"".join(points))
        yield Progress(stage="psi", done=hi, total=n, detail={"phase": "ub_answer"})

    yield from recv_one_ahead(UnbalancedStep.QUERY, n, size, blind_query, answer)  # one batch ahead, as in the balanced host
    if shuffled:
        tau_key = rng.getrandbits(256).to_bytes(32, "little")  # drawn for τ alone: revealing it reveals τ only
        tau = seeded_permutation(n, tau_key, b"ub-reply")
        for _, lo, hi in batches(n, size):
            yield Send(UnbalancedStep.REPLY, BlindedPoints(permuted_records(answers, POINT_BYTES, tau, lo, hi)))
        del answers
        if params.count_first:
            yield from host_count_exchange(UnbalancedStep.COUNT, UnbalancedStep.UNSHUFFLE, tau_key, min_intersection,
                                           min(n, digest.count))
    return PsiResult(rows=(), size=-1)


def unbalanced_guest_program(
    ids: Sequence[str],
    params: UnbalancedParams,
    rng: RandomSource,
    *,
    cache: UnbalancedCache | None = None,
    map_fn: MapFn | None = None,
    min_intersection: int = 0,
) -> RoleProgram:
    """The guest's online side: blind with r, unblind with r⁻¹, look up in F.

    Args:
        ids: normalized, duplicate-free ids; row i is ``ids[i]``.
        params: the job's parameters (same as the host's).
        rng: draws r.
        cache: the guest's stored copy of F, if any; used when its digest is
            the one the host announces, otherwise F is received again.
        map_fn: runs the hashing and scalar multiplications.
        min_intersection: the guest's own minimum, checked on the count before
            it can locate its hits; needs ``params.count_first``.

    Returns (as the generator's return value):
        :class:`UnbalancedResult`: ``result`` holds the guest's rows in P in
        increasing order (GUEST) or ``rows=()`` and the count (CARDINALITY);
        ``cache``/``cache_updated`` tell the runtime whether to store a new F.

    Raises:
        DataError: on duplicate ids.
        IntersectionTooSmall: count-first, when the count is below either
            party's minimum (the guest then holds no row of the intersection).
        ProtocolError: on a short batch or a cache that does not match its digest.
        CryptoError: if the host sends a low-order point.
    """
    check_unique_ids(ids, Role.GUEST)
    check_minimum(min_intersection, params.count_first, "UnbalancedParams")
    size, mode = params.batch_size, params.mode
    n = len(ids)

    digest = yield from recv_typed(UnbalancedStep.DIGEST, CacheDigest)
    if params.count_first and digest.count < min_intersection:  # the count could not reach it: ask nothing
        raise too_few(Role.HOST, Role.GUEST, digest.count, min_intersection)
    have = cache is not None and cache.digest == digest
    yield Send(UnbalancedStep.CACHE_STATUS, CacheStatus(have))

    r, r_inv = invertible_scalar(rng)
    yield Send(UnbalancedStep.QUERY_SIZE, SetSize(n))

    def blind_queries(k: int) -> Pending:
        lo, hi = batch_bounds(k, n, size)
        return hash_and_blind_async(digest.salt, r, ids[lo:hi], map_fn)

    for k, points in one_ahead(range(n_batches(n, size)), blind_queries):
        yield Send(UnbalancedStep.QUERY, BlindedPoints(tuple(points)))
        yield Progress(stage="psi", done=batch_bounds(k, n, size)[1], total=2 * n, detail={"phase": "ub_query"})

    if not have:
        values: set[bytes] = set()
        for k, lo, hi in batches(digest.count, params.cache_batch_size):
            got = yield from recv_typed(UnbalancedStep.CACHE, CachedDigests)
            if len(got.values) != hi - lo:
                raise ProtocolError(f"{UnbalancedStep.CACHE.wire} batch {k} carries {len(got.values)} values, expected {hi - lo}")
            values.update(got.values)
        cache = UnbalancedCache(digest, frozenset(values))
        del values
    assert cache is not None
    table = cache.values

    rows: list[int] = []  # GUEST: query rows; count-first: reply positions, until τ is known
    count = 0

    def unblind(points: tuple[bytes, ...]) -> Pending:
        return blind_async(r_inv, points, map_fn)

    def look_up(k: int, lo: int, hi: int, points: list[bytes]) -> Generator[Any, Any, None]:
        nonlocal count
        for i, p in enumerate(points):
            if p[:DIGEST_BYTES] in table:
                count += 1
                if mode is Reveal.GUEST:
                    rows.append(lo + i)  # count-first: a position in the shuffled reply
        yield Progress(stage="psi", done=n + hi, total=2 * n, detail={"phase": "ub_lookup"})

    yield from recv_one_ahead(UnbalancedStep.REPLY, n, size, unblind, look_up)  # one batch ahead: unblind k while awaiting k+1

    if params.count_first:
        tau_key = yield from guest_count_exchange(UnbalancedStep.COUNT, UnbalancedStep.UNSHUFFLE, count, min_intersection)
        tau = seeded_permutation(n, tau_key, b"ub-reply")  # reply position p answers query row tau[p]
        rows = sorted(tau[p] for p in rows)
    result = PsiResult(rows=(), size=count) if mode is Reveal.CARDINALITY else PsiResult(rows=tuple(rows), size=count)
    return UnbalancedResult(result=result, cache=cache, cache_updated=not have)
