"""The unbalanced PSI's payloads, message table, parameters and results.

The flow, the offline cache and both role programs are in
:mod:`fedcredit.protocols.psi.unbalanced`. The query and reply travel as the balanced
protocol's :class:`~fedcredit.protocols.psi.messages.SetSize` and
:class:`~fedcredit.protocols.psi.messages.BlindedPoints`, and the count-first exchange
as its :class:`~fedcredit.protocols.psi.messages.IntersectionCount` and
:class:`~fedcredit.protocols.psi.messages.UnshuffleKey`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable

from ..core import Masked, ProtocolStep, Public, Role, StepSpec
from ..errors import ProtocolError
from .ecdh import DIGEST_BYTES
from .messages import MIN_SALT_BYTES, BlindedPoints, IntersectionCount, PsiResult, Reveal, SetSize, UnshuffleKey, check_positive_ints, offered_mode

__all__ = [
    "CacheDigest",
    "CacheStatus",
    "CachedDigests",
    "UnbalancedStep",
    "UnbalancedParams",
    "UnbalancedCache",
    "UnbalancedResult",
]

_DIGEST_TAG = b"fedcredit/v1/psi-ub-cache"


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

    Classified :class:`~fedcredit.protocols.core.Public`. ``digest`` (a property) is
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
        if not isinstance(self.salt, bytes) or not MIN_SALT_BYTES <= len(self.salt) <= 255:
            raise ProtocolError(f"CacheDigest.salt must be {MIN_SALT_BYTES} to 255 bytes")

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

    Classified :class:`~fedcredit.protocols.core.Masked`: each value is a pseudorandom
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
        mode = offered_mode(self.mode, Reveal.BOTH, "unbalanced PSI reveals to the guest only: mode must be guest or cardinality")
        object.__setattr__(self, "mode", mode)
        check_positive_ints(self, ("batch_size", "cache_batch_size"))
        if self.max_queries is not None and (type(self.max_queries) is not int or self.max_queries < 0):
            raise ProtocolError(f"max_queries must be a non-negative int or None, got {self.max_queries!r}")
        if type(self.count_first) is not bool:
            raise ProtocolError(f"count_first must be a bool, got {self.count_first!r}")
        if self.count_first and mode is Reveal.CARDINALITY:
            raise ProtocolError("count_first applies to reveal guest; cardinality reveals only the count already")


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

