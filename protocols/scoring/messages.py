"""Scoring's payloads, message table, parameters and results (the flow is in :mod:`.protocol`)."""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import dataclass
from typing import Any

from ..core import Masked, Plaintext, ProtocolStep, Public, Role, StepSpec
from ..errors import ProtocolError
from ..psi.messages import MIN_SALT_BYTES, BlindedPoints, SetSize

__all__ = [
    "VERSION_BYTES",
    "TAG_BYTES",
    "ENTRY_BYTES",
    "ScoringMode",
    "ModelVersion",
    "TableDigest",
    "TableStatus",
    "SealedEntries",
    "PlainIds",
    "PlainPartials",
    "ScoreStep",
    "ScoringParams",
    "ScoreTable",
    "ScoreResult",
    "HostScoringResult",
]

VERSION_BYTES = 32
TAG_BYTES = 16  # the lookup tag of an entry: a PRF of the OPRF value, truncated
SEALED_BYTES = 8 + 16  # a float64, AES-GCM-sealed: ciphertext and authentication tag
ENTRY_BYTES = TAG_BYTES + SEALED_BYTES

_DIGEST_TAG = b"fedcredit/v1/score-table"


class ScoringMode(str, enum.Enum):
    """``private`` (default): the platform learns how many applicants are scored, not which.
    ``plain``: the bank sends the ids in the clear and the platform answers each."""

    PRIVATE = "private"
    PLAIN = "plain"

    def __str__(self) -> str:
        return self.value


def _check_bytes(owner: str, name: str, v: object, n: int) -> None:
    if not isinstance(v, bytes) or len(v) != n:
        raise ProtocolError(f"{owner}.{name} must be {n} bytes")


@dataclass(frozen=True)
class ModelVersion(Public):
    """The version hash of the joint model spec the sender's part belongs to. Public."""

    version: bytes

    def __post_init__(self) -> None:
        _check_bytes("ModelVersion", "version", self.version, VERSION_BYTES)

    def disclosed(self) -> dict[str, Any]:
        return {"model_version": self.version.hex()}


@dataclass(frozen=True)
class TableDigest(Public):
    """Names one build of the platform's sealed table of partial scores.

    Attributes:
        key_id: SHA-256 of a tag and the platform's OPRF key (names it without revealing it).
        table_id: 32 random bytes drawn when the table was built; every entry's key derives from it, so no
            AES-GCM key is ever used twice, and two builds' entries are unlinkable.
        count: the number of entries (the platform's number of enterprises).
        salt: the hash-to-curve salt, fixed for the key's life.
    """

    key_id: bytes
    table_id: bytes
    count: int
    salt: bytes

    def __post_init__(self) -> None:
        _check_bytes("TableDigest", "key_id", self.key_id, 32)
        _check_bytes("TableDigest", "table_id", self.table_id, 32)
        if type(self.count) is not int or self.count < 0:
            raise ProtocolError("TableDigest.count must be a non-negative int")
        if not isinstance(self.salt, bytes) or not MIN_SALT_BYTES <= len(self.salt) <= 255:
            raise ProtocolError(f"TableDigest.salt must be {MIN_SALT_BYTES} to 255 bytes")

    @property
    def digest(self) -> bytes:
        h = hashlib.sha256(_DIGEST_TAG)
        for part in (self.key_id, self.table_id, self.count.to_bytes(8, "big"), len(self.salt).to_bytes(1, "big"), self.salt):
            h.update(part)
        return h.digest()

    def disclosed(self) -> dict[str, Any]:
        return {"table_size": self.count, "table_digest": self.digest.hex()}


@dataclass(frozen=True)
class TableStatus(Public):
    """Whether the bank already holds the announced table. Public."""

    have: bool

    def __post_init__(self) -> None:
        if type(self.have) is not bool:
            raise ProtocolError("TableStatus.have must be a bool")

    def disclosed(self) -> dict[str, Any]:
        return {"table_current": self.have}


@dataclass(frozen=True)
class SealedEntries(Masked):
    """A batch of the sealed table: ``tag ‖ AES-GCM(key, u_H)`` per platform enterprise, sorted by tag.

    Classified :class:`~fedcredit.protocols.core.Masked`: tag and key are pseudorandom functions of the
    enterprise's OPRF value under the platform's key; without an online query for an id, the bank can
    neither find nor open its entry."""

    entries: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.entries, tuple):
            raise ProtocolError("SealedEntries.entries must be a tuple")
        for i, e in enumerate(self.entries):
            if not isinstance(e, bytes) or len(e) != ENTRY_BYTES:
                raise ProtocolError(f"SealedEntries.entries[{i}] is not {ENTRY_BYTES} bytes")


@dataclass(frozen=True)
class PlainIds(Plaintext):
    """Plain mode: a batch of the applicants' ids, in the clear (the platform learns which are scored)."""

    ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.ids, tuple) or not all(isinstance(i, str) for i in self.ids):
            raise ProtocolError("PlainIds.ids must be a tuple of str")

    def disclosed(self) -> dict[str, Any]:
        return {"applicant_ids_in_clear": len(self.ids)}


@dataclass(frozen=True)
class PlainPartials(Plaintext):
    """Plain mode: the platform's partial score ``u_H`` of each id of the batch, or not found."""

    found: tuple[bool, ...]
    values: tuple[float, ...]  # 0.0 where not found

    def __post_init__(self) -> None:
        if not isinstance(self.found, tuple) or not isinstance(self.values, tuple) or len(self.found) != len(self.values):
            raise ProtocolError("PlainPartials: found and values must be tuples of one length")
        if not all(type(f) is bool for f in self.found) or not all(isinstance(v, float) and math.isfinite(v) for v in self.values):
            raise ProtocolError("PlainPartials: found must be bools and values finite floats")

    def disclosed(self) -> dict[str, Any]:
        return {"partial_scores": sum(self.found), "not_found": len(self.found) - sum(self.found)}


G, H = Role.GUEST, Role.HOST


class ScoreStep(ProtocolStep):
    """The scoring message table (see :mod:`.protocol`)."""

    VERSION = StepSpec("score.version", (H,), (G,), ModelVersion, "the version hash of the platform's model part")
    TABLE_DIGEST = StepSpec("score.table_digest", (H,), (G,), TableDigest, "private: the sealed table's key id, id, size and salt")
    TABLE_STATUS = StepSpec("score.table_status", (G,), (H,), TableStatus, "private: whether the bank holds that table")
    TABLE = StepSpec("score.table", (H,), (G,), SealedEntries, "private: one message per table batch; only if the bank's copy is stale")
    QUERY_SIZE = StepSpec("score.query_size", (G,), (H,), SetSize, "how many applicants the bank scores")
    QUERY = StepSpec("score.query", (G,), (H,), BlindedPoints, "private: one message per batch: r·h(id)")
    REPLY = StepSpec("score.reply", (H,), (G,), BlindedPoints, "private: one message per batch: k·r·h(id), same order")
    PLAIN_QUERY = StepSpec("score.plain_query", (G,), (H,), PlainIds, "plain: one message per batch: the ids")
    PLAIN_REPLY = StepSpec("score.plain_reply", (H,), (G,), PlainPartials, "plain: one message per batch: u_H or not found")
    SESSION_QUERY = StepSpec("score.session_query", (G,), (H,), BlindedPoints,
                             "online: one message per request batch: r·h(id), fresh r per batch; no point: the session ends")
    SESSION_REPLY = StepSpec("score.session_reply", (H,), (G,), BlindedPoints, "online: k·r·h(id), same order")


@dataclass(frozen=True)
class ScoringParams:
    """Per-job parameters, the same for both roles.

    Attributes:
        mode: private (default) or plain.
        batch_size: applicants per query message.
        table_batch_size: table entries per message (40 bytes each).
        max_queries: the platform refuses a job announcing more applicants (None: no cap).
    """

    mode: ScoringMode = ScoringMode.PRIVATE
    batch_size: int = 4096
    table_batch_size: int = 1 << 16
    max_queries: int | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "mode", ScoringMode(self.mode))
        except ValueError:
            raise ProtocolError(f"scoring mode must be private or plain, not {self.mode!r}") from None
        for name in ("batch_size", "table_batch_size"):
            v = getattr(self, name)
            if type(v) is not int or v < 1:
                raise ProtocolError(f"ScoringParams.{name} must be a positive int")
        if self.max_queries is not None and (type(self.max_queries) is not int or self.max_queries < 0):
            raise ProtocolError("ScoringParams.max_queries must be a non-negative int or None")


@dataclass(frozen=True)
class ScoreTable:
    """A sealed table: its digest and its entries (sorted by tag). The platform builds it
    (:func:`~fedcredit.protocols.scoring.build_table`); the bank keeps a copy between jobs."""

    digest: TableDigest
    entries: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if len(self.entries) != self.digest.count:
            raise ProtocolError(f"the table holds {len(self.entries)} entries but its digest announces {self.digest.count}")

    def index(self) -> dict[bytes, bytes]:
        return {e[:TAG_BYTES]: e[TAG_BYTES:] for e in self.entries}


@dataclass(frozen=True)
class ScoreResult:
    """The bank's output, one entry per applicant row.

    Attributes:
        found: whether the platform knows the applicant.
        z: the joint linear score ``u_G + u_H`` (None where not found).
        probability: ``sigmoid(z)`` (None where not found).
        table: private mode: the table used (the runtime keeps it when ``table_updated``).
    """

    found: tuple[bool, ...]
    z: tuple[float | None, ...]
    probability: tuple[float | None, ...]
    table: ScoreTable | None = None
    table_updated: bool = False

    @property
    def n_found(self) -> int:
        return sum(self.found)


@dataclass(frozen=True)
class HostScoringResult:
    """The platform's output: how many applicants it answered (all it learns in private mode)."""

    queries: int
    table_sent: bool
