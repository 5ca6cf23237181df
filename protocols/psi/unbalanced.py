"""Unbalanced PSI: a large platform set cached under a long-lived key, small bank queries online.

The platform (host) holds a large set P that changes slowly; a bank (guest)
brings a small set Q per job. Balanced ECDH-PSI costs 2·(|P| + |Q|) scalar
multiplications per job; here the host pays |P| once per key (offline), and a
job costs 2·|Q| multiplications at the guest and |Q| at the host.

Group and the inverse
---------------------
Everything stays in Curve25519's prime-order subgroup (order ℓ), with the same
hash-to-curve (:func:`~protocols.psi.ecdh.hash_to_point`) and the same DDH
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
    r until it does (:func:`~protocols.psi.ecdh.invertible_scalar`).

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
balanced protocol (:mod:`protocols.psi.protocol`): the host shuffles its reply
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
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..core import MapFn, Masked, ProtocolStep, Progress, Public, RandomSource, Role, RoleProgram, Send, StepSpec, check_unique_ids
from ..errors import ProtocolError
from .ecdh import (
    DIGEST_BYTES,
    POINT_BYTES,
    Pending,
    blind_async,
    hash_and_blind,
    hash_and_blind_async,
    invertible_scalar,
    random_scalar,
)
from .protocol import (
    BlindedPoints,
    IntersectionCount,
    IntersectionTooSmall,
    PsiResult,
    Reveal,
    SetSize,
    UnshuffleKey,
    batch_bounds,
    guest_count_exchange,
    host_count_exchange,
    n_batches,
    one_ahead,
    recv_batch,
    recv_checked,
    seeded_permutation,
)

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
_DIGEST_TAG = b"fedcredit/v1/psi-ub-cache"
_MIN_SALT_BYTES = 16


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class CacheDigest(Public):
    """Names one version of the host's cache F: key, set, size and salt.

    Attributes:
        key_id: SHA-256 of a tag and the key (:func:`unbalanced_key_id`);
            identifies the key without revealing it.
        set_digest: HMAC-SHA256 over the sorted ids under a key derived from
            k (:func:`unbalanced_cache_digest`): changes with any id, tells the
            guest nothing else (it cannot test guessed sets against it).
        count: |P|, the number of entries of F.
        salt: the hash salt fixed for the key's life (public).

    Classified :class:`~protocols.core.Public`. ``digest`` (a property) is
    SHA-256 over all four: the value the runtime stores next to F and compares.
    """

    key_id: bytes
    set_digest: bytes
    count: int
    salt: bytes

    def __post_init__(self) -> None:
        for name in ("key_id", "set_digest"):
            v = getattr(self, name)
            if not isinstance(v, bytes) or len(v) != 32:
                raise ProtocolError(f"CacheDigest.{name} must be 32 bytes")
        if type(self.count) is not int or self.count < 0:
            raise ProtocolError("CacheDigest.count must be a non-negative int")
        if not isinstance(self.salt, bytes) or not _MIN_SALT_BYTES <= len(self.salt) <= 255:
            raise ProtocolError(f"CacheDigest.salt must be {_MIN_SALT_BYTES} to 255 bytes")

    @property
    def digest(self) -> bytes:
        h = hashlib.sha256(_DIGEST_TAG)
        h.update(self.key_id)
        h.update(self.set_digest)
        h.update(self.count.to_bytes(8, "big"))
        h.update(len(self.salt).to_bytes(1, "big"))
        h.update(self.salt)
        return h.digest()

    def disclosed(self) -> dict[str, Any]:
        return {"cache_size": self.count, "cache_digest": self.digest.hex()}


@dataclass(frozen=True)
class CacheStatus(Public):
    """Whether the guest holds F with exactly the announced digest. Public."""

    have: bool

    def __post_init__(self) -> None:
        if type(self.have) is not bool:
            raise ProtocolError("CacheStatus.have must be a bool")

    def disclosed(self) -> dict[str, Any]:
        return {"cache_current": self.have}


@dataclass(frozen=True)
class CachedDigests(Masked):
    """A batch of F: truncated k·h(p), 16 bytes each, in sorted order.

    Classified :class:`~protocols.core.Masked`: each value is a pseudorandom
    function of a platform id under the host's key (DDH, random oracle); the
    receiver learns |P| and nothing it could test an id against offline.
    """

    values: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.values, tuple):
            raise ProtocolError(f"CachedDigests.values must be a tuple, got {type(self.values).__name__}")
        for i, v in enumerate(self.values):
            if not isinstance(v, bytes) or len(v) != DIGEST_BYTES:
                raise ProtocolError(f"CachedDigests.values[{i}] is not {DIGEST_BYTES} bytes")


class UnbalancedStep(ProtocolStep):
    """The unbalanced PSI message table (see the module docstring)."""

    DIGEST = StepSpec(
        "psi.ub_cache_digest", (Role.HOST,), (Role.GUEST,), CacheDigest,
        "the current cache's key id, set digest, size and salt",
    )
    CACHE_STATUS = StepSpec(
        "psi.ub_cache_status", (Role.GUEST,), (Role.HOST,), CacheStatus,
        "whether the guest already holds that cache",
    )
    CACHE = StepSpec(
        "psi.ub_cache", (Role.HOST,), (Role.GUEST,), CachedDigests,
        "one message per cache batch: sorted trunc(k·h(p)); only if the guest's cache is stale",
    )
    QUERY_SIZE = StepSpec(
        "psi.ub_query_size", (Role.GUEST,), (Role.HOST,), SetSize,
        "|Q|",
    )
    QUERY = StepSpec(
        "psi.ub_query", (Role.GUEST,), (Role.HOST,), BlindedPoints,
        "one message per batch: r·h(q)",
    )
    REPLY = StepSpec(
        "psi.ub_reply", (Role.HOST,), (Role.GUEST,), BlindedPoints,
        "one message per batch: k·r·h(q), in QUERY order (CARDINALITY and count-first: shuffled)",
    )
    COUNT = StepSpec(
        "psi.ub_count", (Role.GUEST,), (Role.HOST,), IntersectionCount,
        "count-first only: the count of hits, and whether it meets the guest's minimum",
    )
    UNSHUFFLE = StepSpec(
        "psi.ub_unshuffle", (Role.HOST,), (Role.GUEST,), UnshuffleKey,
        "count-first only: whether the count meets the host's minimum and, if both are met, τ's key",
    )


@dataclass(frozen=True)
class UnbalancedParams:
    """Per-job parameters of the unbalanced mode (the salt comes with the cache).

    Attributes:
        mode: ``Reveal.GUEST`` or ``Reveal.CARDINALITY``.
        batch_size: query points per message.
        cache_batch_size: F entries per message (16 bytes each; 65536 = 1 MiB).
        max_queries: the host refuses a job announcing more queries (None: no cap).
        count_first: GUEST mode only: check both parties' ``min_intersection``
            on the count before the guest can locate its hits (module docstring).
    """

    mode: Reveal = Reveal.GUEST
    batch_size: int = 8192
    cache_batch_size: int = 1 << 16
    max_queries: int | None = None
    count_first: bool = False

    def __post_init__(self) -> None:
        try:
            mode = Reveal(self.mode)
        except ValueError:
            raise ProtocolError(f"unknown PSI mode {self.mode!r}") from None
        if mode is Reveal.BOTH:
            raise ProtocolError("unbalanced PSI reveals to the guest only: mode must be guest or cardinality")
        object.__setattr__(self, "mode", mode)
        for name in ("batch_size", "cache_batch_size"):
            v = getattr(self, name)
            if type(v) is not int or v < 1:
                raise ProtocolError(f"{name} must be a positive int, got {v!r}")
        if self.max_queries is not None and (type(self.max_queries) is not int or self.max_queries < 0):
            raise ProtocolError(f"max_queries must be a non-negative int or None, got {self.max_queries!r}")
        if type(self.count_first) is not bool:
            raise ProtocolError(f"count_first must be a bool, got {self.count_first!r}")
        if self.count_first and mode is Reveal.CARDINALITY:
            raise ProtocolError("count_first applies to reveal guest; cardinality reveals only the count already")


def _check_minimum(minimum: int, params: UnbalancedParams) -> None:
    if type(minimum) is not int or minimum < 0:
        raise ProtocolError(f"min_intersection must be a non-negative int, got {minimum!r}")
    if minimum > 0 and not params.count_first:
        raise ProtocolError("a min_intersection can be checked before the intersection is revealed only by a "
                            "count-first run (UnbalancedParams.count_first=True)")


@dataclass(frozen=True)
class UnbalancedCache:
    """The guest's copy of F: the digest it was announced under and its values."""

    digest: CacheDigest
    values: frozenset[bytes]

    def __post_init__(self) -> None:
        if not isinstance(self.values, frozenset):
            object.__setattr__(self, "values", frozenset(self.values))
        if len(self.values) != self.digest.count:
            raise ProtocolError(
                f"cache holds {len(self.values)} distinct values but its digest announces {self.digest.count}"
            )

    @classmethod
    def from_values(cls, digest: CacheDigest, values: Iterable[bytes]) -> "UnbalancedCache":
        return cls(digest, frozenset(values))


@dataclass(frozen=True)
class UnbalancedResult:
    """The guest's output: the PSI result and the cache it used.

    ``cache_updated`` is True when F was (re)received in this job; the runtime
    then replaces its stored copy with ``cache``.
    """

    result: PsiResult
    cache: UnbalancedCache
    cache_updated: bool


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
    if not isinstance(salt, bytes) or not _MIN_SALT_BYTES <= len(salt) <= 255:
        raise ProtocolError(f"unbalanced salt must be {_MIN_SALT_BYTES} to 255 bytes")
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
        map_fn: runs the scalar multiplications (see :func:`~protocols.psi.ecdh.blind`).
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
    _check_minimum(min_intersection, params)
    if unbalanced_key_id(key) != digest.key_id:
        raise ProtocolError("the cache digest names another key")
    if len(cache) != digest.count:
        raise ProtocolError(f"the cache has {len(cache)} entries but its digest announces {digest.count}")
    size, mode = params.batch_size, params.mode
    shuffled = mode is Reveal.CARDINALITY or params.count_first

    yield Send(UnbalancedStep.DIGEST, digest)
    status = yield from recv_checked(UnbalancedStep.CACHE_STATUS)
    assert isinstance(status, CacheStatus)  # guaranteed by recv_checked
    if not status.have:
        for k in range(n_batches(len(cache), params.cache_batch_size)):
            lo, hi = batch_bounds(k, len(cache), params.cache_batch_size)
            yield Send(UnbalancedStep.CACHE, CachedDigests(tuple(cache[lo:hi])))
            yield Progress(stage="psi", done=hi, total=len(cache), detail={"phase": "ub_send_cache"})

    announced = yield from recv_checked(UnbalancedStep.QUERY_SIZE)
    assert isinstance(announced, SetSize)
    n = announced.count
    if params.count_first and n < min_intersection:  # the count could not reach it: do not answer at all
        raise IntersectionTooSmall(
            f"count-first PSI stopped before the count: the guest asks {n} queries, fewer than the host's "
            f"min_intersection of {min_intersection}",
            public=f"count-first PSI stopped: the guest's set is smaller than the host's minimum "
                   f"(min_intersection {min_intersection}); no ids were revealed to either party")
    if params.max_queries is not None and n > params.max_queries:
        raise ProtocolError(f"the guest asks {n} queries, above this job's cap of {params.max_queries}")
    answers = bytearray()
    previous: tuple[int, Pending] | None = None
    batches = n_batches(n, size)
    for k in range(batches + 1):  # one batch ahead, as in the balanced host
        current = None
        if k < batches:
            lo, hi = batch_bounds(k, n, size)
            query = yield from recv_batch(UnbalancedStep.QUERY, k, hi - lo)
            current = (hi, blind_async(key, query, map_fn))
        if previous is not None:
            answer = previous[1].result()
            if not shuffled:
                yield Send(UnbalancedStep.REPLY, BlindedPoints(tuple(answer)))
            else:
                answers += b"".join(answer)
            yield Progress(stage="psi", done=previous[0], total=n, detail={"phase": "ub_answer"})
        previous = current
    if shuffled:
        tau_key = rng.getrandbits(256).to_bytes(32, "little")  # drawn for τ alone: revealing it reveals τ only
        tau = seeded_permutation(n, tau_key, b"ub-reply")
        for k in range(n_batches(n, size)):
            lo, hi = batch_bounds(k, n, size)
            out = tuple(bytes(answers[POINT_BYTES * tau[i] : POINT_BYTES * (tau[i] + 1)]) for i in range(lo, hi))
            yield Send(UnbalancedStep.REPLY, BlindedPoints(out))
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
    _check_minimum(min_intersection, params)
    size, mode = params.batch_size, params.mode
    n = len(ids)

    digest = yield from recv_checked(UnbalancedStep.DIGEST)
    assert isinstance(digest, CacheDigest)
    if params.count_first and digest.count < min_intersection:  # the count could not reach it: ask nothing
        raise IntersectionTooSmall(
            f"count-first PSI stopped before the count: the host's set has {digest.count} ids, fewer than the guest's "
            f"min_intersection of {min_intersection}",
            public=f"count-first PSI stopped: the host's set is smaller than the guest's minimum "
                   f"(min_intersection {min_intersection}); no ids were revealed to either party")
    have = cache is not None and cache.digest == digest
    yield Send(UnbalancedStep.CACHE_STATUS, CacheStatus(have))

    r, r_inv = invertible_scalar(rng)
    yield Send(UnbalancedStep.QUERY_SIZE, SetSize(n))
    def submit(k: int) -> Pending:
        lo, hi = batch_bounds(k, n, size)
        return hash_and_blind_async(digest.salt, r, ids[lo:hi], map_fn)

    for k, points in one_ahead(range(n_batches(n, size)), submit):
        yield Send(UnbalancedStep.QUERY, BlindedPoints(tuple(points)))
        yield Progress(stage="psi", done=batch_bounds(k, n, size)[1], total=2 * n, detail={"phase": "ub_query"})

    if not have:
        values: set[bytes] = set()
        for k in range(n_batches(digest.count, params.cache_batch_size)):
            lo, hi = batch_bounds(k, digest.count, params.cache_batch_size)
            got = yield from recv_checked(UnbalancedStep.CACHE)
            assert isinstance(got, CachedDigests)
            if len(got.values) != hi - lo:
                raise ProtocolError(f"{UnbalancedStep.CACHE.wire} batch {k} carries {len(got.values)} values, expected {hi - lo}")
            values.update(got.values)
        cache = UnbalancedCache(digest, frozenset(values))
        del values
    assert cache is not None
    table = cache.values

    rows: list[int] = []  # GUEST: query rows; count-first: reply positions, until τ is known
    count = 0
    previous: tuple[int, int, Pending] | None = None
    batches = n_batches(n, size)
    for k in range(batches + 1):  # one batch ahead: unblind k while awaiting k+1
        current = None
        if k < batches:
            lo, hi = batch_bounds(k, n, size)
            reply = yield from recv_batch(UnbalancedStep.REPLY, k, hi - lo)
            current = (lo, hi, blind_async(r_inv, reply, map_fn))
        if previous is not None:
            for i, p in enumerate(previous[2].result()):
                if p[:DIGEST_BYTES] in table:
                    count += 1
                    if mode is Reveal.GUEST:
                        rows.append(previous[0] + i)  # count-first: a position in the shuffled reply
            yield Progress(stage="psi", done=n + previous[1], total=2 * n, detail={"phase": "ub_lookup"})
        previous = current

    if params.count_first:
        tau_key = yield from guest_count_exchange(UnbalancedStep.COUNT, UnbalancedStep.UNSHUFFLE, count, min_intersection)
        tau = seeded_permutation(n, tau_key, b"ub-reply")  # reply position p answers query row tau[p]
        rows = sorted(tau[p] for p in rows)
    result = PsiResult(rows=(), size=count) if mode is Reveal.CARDINALITY else PsiResult(rows=tuple(rows), size=count)
    return UnbalancedResult(result=result, cache=cache, cache_updated=not have)
