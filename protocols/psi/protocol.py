"""Two-party ECDH-PSI over X25519, streamed in batches, both roles in one module.

The exchange
------------
Both parties hold normalized, duplicate-free ids (:func:`protocols.psi.ids.prepare_ids`)
and agree on :class:`PsiParams` (a per-job salt, the mode, the batch size).
Each draws a fresh scalar -- the guest ``a``, the host ``b`` -- and a shuffle
seed, and hashes its ids to X25519 u-coordinates h(·)
(:func:`protocols.psi.ecdh.hash_to_point`). Scalar multiplication here
commutes: a·(b·h) = b·(a·h).

Every list travels as one message per batch of ``params.batch_size`` points;
the k-th message of a step is batch k (the runtime numbers them), and every
batch but the last of a step is full, so each side knows every batch's length
from the announced set sizes.

==========================  ===========  ==========  =========================================
step                        direction    payload     content
==========================  ===========  ==========  =========================================
``GUEST_SIZE``              guest→host   SetSize     |X|; the guest's first message
``HOST_SIZE``               host→guest   SetSize     |Y|; the host's first message
``GUEST_BLINDED``           guest→host   Blinded…    per batch: a·h(x) in the order of a
                                                     permutation σ of the guest's rows
``HOST_BLINDED``            host→guest   Blinded…    per batch: b·h(y) in the order of a
                                                     permutation π of the host's rows
``HOST_DOUBLE_BLINDED``     host→guest   Blinded…    per batch: b·(a·h(x)); BOTH/GUEST: batch k
                                                     answers GUEST_BLINDED batch k, same order;
                                                     CARDINALITY and count-first: all of them,
                                                     shuffled by a permutation τ the host draws,
                                                     sent only once the host has them all
``GUEST_COUNT``             guest→host   Intersec…   count-first only: |X ∩ Y|, counted on the
                                                     shuffled reply, and whether it meets the
                                                     guest's minimum
``HOST_UNSHUFFLE``          host→guest   Unshuff…    count-first only: whether the count meets
                                                     the host's minimum and, if both minimums
                                                     are met, the 32-byte key τ was drawn from
``GUEST_MATCHES``           guest→host   Matched…    BOTH only: for each intersection element,
                                                     in increasing guest row order, its position
                                                     in the HOST_BLINDED stream
==========================  ===========  ==========  =========================================

Both roles first send their size and all their own blinded batches, before
receiving anything: the two first rounds run in parallel. The host then
double-blinds each GUEST_BLINDED batch as it arrives. The guest re-blinds each
HOST_BLINDED batch into a·b·h(y), keeps it in a lookup table, and then streams
HOST_DOUBLE_BLINDED through that table: guest row σ(k) is in the intersection
iff b·a·h(x) at stream position k is in the table. With reveal BOTH the guest
sends the matching table positions j in increasing guest row order and the
host maps them back through π to its own rows, so ``guest.rows[k]`` and
``host.rows[k]`` are the same entity (the aligned output used for training).

Modes (:class:`Reveal`, ``PsiParams.mode``)
-------------------------------------------
* ``BOTH``: both learn the intersection, aligned; required for training.
* ``GUEST``: only the guest learns it; the host's result is
  ``PsiResult(rows=(), size=-1)``.
* ``CARDINALITY``: only the guest learns |X ∩ Y|, as ``PsiResult(rows=(),
  size=n)``; the host's result is ``PsiResult(rows=(), size=-1)``. The host
  shuffles the whole double-blinded reply (τ) so the guest cannot link a
  reply value to the row it blinded, and the guest sends nothing back.

Count-first (``PsiParams.count_first``; BOTH and GUEST)
-------------------------------------------------------
Each party's policy may refuse an intersection below its own minimum
(``min_intersection``, passed to its role program; the peer never learns the
value). Checked on the revealed rows, it would come too late: the guest would
already know which of its ids are shared. With ``count_first`` the host
answers exactly as in CARDINALITY mode -- the whole double-blinded reply,
shuffled by τ -- so the guest can count its matches but not tell which of its
rows they are. Then:

0. each party stops at once if the other's announced set is smaller than
   its own minimum (the count could not reach it, and for a tiny set the
   count would say which few ids are shared): the host before it replies,
   the guest before it counts;
1. the guest sends GUEST_COUNT: the count c and whether c meets its own
   minimum; if not, it stops (:class:`IntersectionTooSmall`);
2. the host stops if the guest refused or if c is below its own minimum, and
   says which in HOST_UNSHUFFLE; otherwise HOST_UNSHUFFLE carries the 32-byte
   key τ was drawn from (:func:`reply_order`);
3. the guest re-creates τ, maps each match back to its stream position and
   row, and the exchange ends as in its mode (BOTH: GUEST_MATCHES, whose
   length the host checks against c).

Who learns what: both parties learn c before either checks it, and each
learns whether the other's minimum was met; in GUEST mode that gives the host
the count, which it would not learn otherwise. When a check fails, the guest
holds only the shuffled reply and the host only blinded points: neither learns
which ids are shared, and nothing locates them later (τ's key is never sent).
The count itself is disclosed even then: a party that pads a few real ids
with made-up ones can still learn how many of those few are shared. That is
a choice of input, which no PSI prevents; step 0 only keeps an honest small
set from turning the count into a membership answer.

Cost: one round trip of two small messages (GUEST_COUNT 11 bytes,
HOST_UNSHUFFLE 36 bytes before sealing) and not one extra scalar
multiplication: τ travels as a key, and re-creating it costs the guest one
:func:`seeded_permutation` (~0.3 s at 2^20). One message cannot do: the host
needs c before it may release τ, and the guest has c only after the whole
reply. As in CARDINALITY mode, the host holds all |X| double-blinded points
(32 bytes each) before it replies instead of answering batch by batch.

Memory (per role, beyond its id list)
-------------------------------------
Both roles hold O(batch) points in flight, a row permutation (8 bytes per own
row) and:

* guest: a lookup table of the host's a·b·h(y), truncated to 16 bytes
  (:func:`protocols.psi.ecdh.truncate`: a false match among |X|·|Y| pairs has
  probability at most |X|·|Y|·2^-128, below 2^-88 at 2^20 × 2^20). BOTH/GUEST
  map each value to its host position (about 150 bytes per host id in CPython,
  ~150 MB at 2^20); CARDINALITY keeps a set. Plus one 8-byte slot per own row
  for the matched position.
* host: nothing else in BOTH/GUEST. In CARDINALITY and count-first it must
  hold all |X| double-blinded points before shuffling them (32 bytes each,
  32 MB at 2^20):
  any reply sent before it has seen the last guest batch would tell the guest
  which batch -- hence which of its rows -- a value answers.

The receiving runtime may hold queued messages (e.g. HOST_DOUBLE_BLINDED while
the guest is still building its table); they are at the relay, not in the
role's memory.

Parallelism
-----------
``map_fn`` (e.g. ``ProcessPoolExecutor(cores).map``) runs the hashing and the
scalar multiplications of each batch on all cores: the role programs pass it
to :func:`~protocols.psi.ecdh.hash_and_blind` and
:func:`~protocols.psi.ecdh.blind`, which call module-level workers with plain
bytes. Without it everything runs in the calling process. The result never
depends on it. Overlapping network and compute (e.g. sending batch k while
batch k+1 is blinded) is the runtime's job.

Progress and resume
-------------------
Each role yields ``Progress(stage="psi", done, total, detail)`` after every
batch it blinds or re-blinds: ``done``/``total`` count ids through a scalar
multiplication (own set, then the peer's; ``total`` grows once the peer's size
is known) and ``detail["phase"]`` names the phase.

With ``checkpoint=True`` (implied by ``resume``) every Progress -- including a
first one yielded before any message is sent -- is preceded by a
:class:`~protocols.core.Checkpoint` action whose ``state`` is a
:class:`PsiCheckpoint` as a plain dict. **It holds the role's secret scalar and
shuffle seed**: it is a separate action so that it can never ride along with
a progress report; the runtime writes it only to the party's own checkpoint
file (0600), before the program continues. Passing it back as ``resume=`` (with the same ids
and params) continues the role after its last completed batch; see
:class:`PsiCheckpoint` for what the runtime must provide (skip re-sending what
was delivered, re-deliver received messages from ``recv_from`` on).

What each side learns (semi-honest)
-----------------------------------
* Guest: |Y|; in BOTH/GUEST the intersection as its own rows; in CARDINALITY
  only |X ∩ Y|. Never which host row a value came from (π). With count-first,
  |X ∩ Y| and the host's verdict first, and the rows only if both minimums
  are met.
* Host: |X|. With reveal BOTH, also the intersection as its own rows, listed
  in the agreed order -- which, being increasing guest row index, tells it the
  relative guest order of the shared entities, and nothing about guest rows
  outside the intersection. In GUEST and CARDINALITY modes nothing else --
  except that count-first tells it |X ∩ Y| and the guest's verdict.

Security argument: model h as a random oracle onto Curve25519 and assume DDH in
its prime-order subgroup (see :mod:`protocols.psi.ecdh`). The host sees a·h(x)
for a uniformly random a unknown to it, in an order fixed by σ: jointly
pseudorandom, so its view is simulatable from |X| (plus, with reveal BOTH, the
output). The guest sees b·h(y) (in π order) and b·a·h(x); for x in the
intersection the latter equals a·(b·h(y)) for the matching y, and every other
value is pseudorandom under DDH, so its view is simulatable from the
intersection and |Y|. In CARDINALITY mode the double-blinded values arrive as a
uniformly shuffled multiset, so the view is simulatable from |X ∩ Y|, |X| and
|Y| alone; so is a count-first guest's view until HOST_UNSHUFFLE carries τ's
key (an independent uniform seed: it reveals nothing about the host's other
secrets, see :func:`reply_key`), and a refused run never gets further. Every hashed id lies on the curve proper, never on the twist, so the
public curve/twist bit of a blinded point is the same for all ids and leaks
nothing. Malicious parties (a guest blinding guessed ids, a host answering with
other points) are out of scope; σ does mean a host tampering with one position
of its reply learns about a random guest row rather than a row of its choice.
"""

from __future__ import annotations

import enum
import hashlib
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Generator, Iterator, Mapping, Sequence, TypeVar

import numpy as np

from ..core import (
    Aggregate,
    Checkpoint,
    check_unique_ids,
    Masked,
    Progress,
    ProtocolStep,
    Public,
    Recv,
    Role,
    RoleProgram,
    Send,
    StepSpec,
)
from ..errors import ProtocolError
from .ecdh import (
    DIGEST_BYTES,
    POINT_BYTES,
    MapFn,
    Pending,
    RandomSource,
    blind_async,
    hash_and_blind_async,
    random_scalar,
)

__all__ = [
    "SetSize",
    "BlindedPoints",
    "MatchedPositions",
    "IntersectionCount",
    "UnshuffleKey",
    "IntersectionTooSmall",
    "PsiStep",
    "EcdhSteps",
    "ECDH_STEPS",
    "ecdh_step_copy",
    "Reveal",
    "Mode",
    "PsiParams",
    "PsiResult",
    "PsiCheckpoint",
    "reply_key",
    "reply_order",
    "guest_program",
    "host_program",
]

_MIN_SALT_BYTES = 16
#: Largest set size a peer may announce (the wire carries a uint64; 2^32 ids is far beyond any job).
MAX_SET_SIZE = 1 << 32


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class SetSize(Public):
    """A party's set size, announced first so the peer knows how many batches follow.

    Classified :class:`~protocols.core.Public`: the size is disclosed by the
    number of blinded points anyway; announcing it first only lets the peer
    plan its batches and report progress.
    """

    count: int

    def __post_init__(self) -> None:
        if type(self.count) is not int or not 0 <= self.count <= MAX_SET_SIZE:
            raise ProtocolError(f"SetSize.count must be an int in [0, 2^32], got {self.count!r}")

    def disclosed(self) -> dict[str, Any]:
        return {"set_size": self.count}


@dataclass(frozen=True)
class BlindedPoints(Masked):
    """A list of X25519 u-coordinates, each blinded by a sender's secret scalar.

    Classified :class:`~protocols.core.Masked`: every point is h(id) times a
    fresh scalar the receiver does not know, which hides the id computationally
    (DDH). The receiver does learn the list's length. Every honest point lies
    on Curve25519 proper, so its public curve/twist bit is constant (see
    :mod:`protocols.psi.ecdh`); the order is a permutation the sender drew,
    unrelated to its row order.
    """

    points: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.points, tuple):
            raise ProtocolError(f"BlindedPoints.points must be a tuple, got {type(self.points).__name__}")
        for i, p in enumerate(self.points):
            if not isinstance(p, bytes) or len(p) != POINT_BYTES:
                raise ProtocolError(f"BlindedPoints.points[{i}] is not {POINT_BYTES} bytes")


@dataclass(frozen=True)
class MatchedPositions(Aggregate):
    """The intersection, as positions in the host's ``HOST_BLINDED`` stream.

    ``positions[k]`` is where the k-th intersection element (in increasing
    guest row order) sits in that stream (batch ``j // batch_size``, index
    ``j % batch_size``). Classified :class:`~protocols.core.Aggregate`: it is
    the PSI's own output, sent only when the job lists the intersection as
    revealed to both parties (``Reveal.BOTH``). It discloses to the host which
    of its rows are shared and the guest's agreed order, nothing about guest
    rows outside the intersection.
    """

    positions: tuple[int, ...]

    def disclosed(self) -> dict[str, Any]:
        return {"intersection_size": len(self.positions)}

    def __post_init__(self) -> None:
        if not isinstance(self.positions, tuple):
            raise ProtocolError(
                f"MatchedPositions.positions must be a tuple, got {type(self.positions).__name__}"
            )
        for i, p in enumerate(self.positions):
            if type(p) is not int or p < 0:
                raise ProtocolError(f"MatchedPositions.positions[{i}] is not a non-negative int")


_KEY_BYTES = 32


class IntersectionTooSmall(ProtocolError):
    """Count-first PSI stopped at the count: |X ∩ Y| is below a party's ``min_intersection``.

    Raised by the party whose minimum is not met, and by its peer once told so.
    When it is raised nothing has located the intersection: the guest holds the
    shuffled reply only, the host blinded points only. Its message (local log)
    has the count; its :attr:`~protocols.errors.FedCreditError.public_message`
    (what leaves the node) names the policy and the minimum only, never a count
    or an id.
    """

    code = "MIN_INTERSECTION"


@dataclass(frozen=True)
class IntersectionCount(Aggregate):
    """Count-first: |X ∩ Y| as the guest counted it on the shuffled reply, and its verdict.

    Attributes:
        count: matches between the shuffled HOST_DOUBLE_BLINDED reply and the
            guest's table of the host's points.
        meets_minimum: whether ``count`` reaches the guest's ``min_intersection``;
            when False the guest stops right after sending this.

    Classified :class:`~protocols.core.Aggregate`: the cardinality, which a
    count-first run discloses to both parties by design, before either checks it.
    Fixed width on the wire (the size does not depend on the count).
    """

    count: int
    meets_minimum: bool

    def __post_init__(self) -> None:
        if type(self.count) is not int or not 0 <= self.count <= MAX_SET_SIZE:
            raise ProtocolError(f"IntersectionCount.count must be an int in [0, 2^32], got {self.count!r}")
        if type(self.meets_minimum) is not bool:
            raise ProtocolError("IntersectionCount.meets_minimum must be a bool")

    def disclosed(self) -> dict[str, Any]:
        return {"intersection_size": self.count, "meets_minimum": self.meets_minimum}


@dataclass(frozen=True)
class UnshuffleKey(Aggregate):
    """Count-first: the host's verdict on the count and, if both minimums are met, the key of τ.

    Attributes:
        meets_minimum: False when the guest refused or the count is below the
            host's ``min_intersection``; the host then stops.
        key: the 32-byte seed of the reply's shuffle τ (:func:`reply_order`)
            when ``meets_minimum``; empty otherwise.

    Classified :class:`~protocols.core.Aggregate`: the key is uniform and
    independent of every id and of the host's other secrets (:func:`reply_key`),
    but with the reply the guest already holds it releases the PSI's output
    (the guest's rows in the intersection). It is sent only once both parties'
    minimums are met.
    """

    meets_minimum: bool
    key: bytes

    def __post_init__(self) -> None:
        if type(self.meets_minimum) is not bool:
            raise ProtocolError("UnshuffleKey.meets_minimum must be a bool")
        if not isinstance(self.key, bytes) or len(self.key) != (_KEY_BYTES if self.meets_minimum else 0):
            raise ProtocolError(f"UnshuffleKey.key must be {_KEY_BYTES} bytes when the minimum is met, empty otherwise")

    def disclosed(self) -> dict[str, Any]:
        return {"meets_minimum": self.meets_minimum}


class PsiStep(ProtocolStep):
    """The PSI message table (see the module docstring for the flow)."""

    GUEST_SIZE = StepSpec(
        "psi.guest_size", (Role.GUEST,), (Role.HOST,), SetSize,
        "|X|, the guest's first message",
    )
    HOST_SIZE = StepSpec(
        "psi.host_size", (Role.HOST,), (Role.GUEST,), SetSize,
        "|Y|, the host's first message",
    )
    GUEST_BLINDED = StepSpec(
        "psi.guest_blinded", (Role.GUEST,), (Role.HOST,), BlindedPoints,
        "one message per batch: a·h(x) for the guest's ids, shuffled (σ)",
    )
    HOST_DOUBLE_BLINDED = StepSpec(
        "psi.host_double_blinded", (Role.HOST,), (Role.GUEST,), BlindedPoints,
        "one message per batch: b·a·h(x), in GUEST_BLINDED order (CARDINALITY: shuffled by τ)",
    )
    HOST_BLINDED = StepSpec(
        "psi.host_blinded", (Role.HOST,), (Role.GUEST,), BlindedPoints,
        "one message per batch: b·h(y) for the host's ids, shuffled (π)",
    )
    GUEST_COUNT = StepSpec(
        "psi.guest_count", (Role.GUEST,), (Role.HOST,), IntersectionCount,
        "count-first only: |X ∩ Y| counted on the shuffled reply, and whether it meets the guest's minimum",
    )
    HOST_UNSHUFFLE = StepSpec(
        "psi.host_unshuffle", (Role.HOST,), (Role.GUEST,), UnshuffleKey,
        "count-first only: whether the count meets the host's minimum and, if both are met, the key of τ",
    )
    GUEST_MATCHES = StepSpec(
        "psi.guest_matches", (Role.GUEST,), (Role.HOST,), MatchedPositions,
        "positions of the intersection in the HOST_BLINDED stream (reveal BOTH only)",
    )


@dataclass(frozen=True)
class EcdhSteps:
    """The steps one ECDH-PSI run travels under; :data:`ECDH_STEPS` (:class:`PsiStep`'s own) by default.

    The OT mode runs this exchange as its count-first fallback under copies in
    its own table (``psi_ot.ecdh_*``, see :mod:`protocols.psi.ot.protocol`),
    because the relay admits a job's own protocol's steps only. Each copy must
    have the same senders, receivers and payload type as the step it stands for.

    Raises:
        ProtocolError: if a field's step differs from its :class:`PsiStep`
            counterpart in anything but its wire name.
    """

    guest_size: ProtocolStep
    host_size: ProtocolStep
    guest_blinded: ProtocolStep
    host_blinded: ProtocolStep
    host_double_blinded: ProtocolStep
    guest_count: ProtocolStep
    host_unshuffle: ProtocolStep
    guest_matches: ProtocolStep

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            mine, model = getattr(self, name).spec, PsiStep[name.upper()].spec
            if (mine.senders, mine.receivers, mine.payload) != (model.senders, model.receivers, model.payload):
                raise ProtocolError(f"EcdhSteps.{name}: {mine.wire} does not match {model.wire}")


def ecdh_step_copy(step: PsiStep, prefix: str) -> StepSpec:
    """``step``'s row under another wire name: ``prefix`` + its name after ``psi.`` (for :class:`EcdhSteps`)."""
    spec = step.spec
    return StepSpec(prefix + spec.wire.removeprefix("psi."), spec.senders, spec.receivers, spec.payload, spec.doc)


#: The balanced ECDH-PSI's own steps.
ECDH_STEPS = EcdhSteps(
    PsiStep.GUEST_SIZE, PsiStep.HOST_SIZE, PsiStep.GUEST_BLINDED, PsiStep.HOST_BLINDED,
    PsiStep.HOST_DOUBLE_BLINDED, PsiStep.GUEST_COUNT, PsiStep.HOST_UNSHUFFLE, PsiStep.GUEST_MATCHES,
)


class Reveal(str, enum.Enum):
    """The PSI mode: who learns what."""

    BOTH = "both"  # guest and host learn the intersection, aligned (training)
    GUEST = "guest"  # only the guest learns the intersection; the host learns |X|
    CARDINALITY = "cardinality"  # only the guest learns |X ∩ Y|; the host learns |X|

    def __str__(self) -> str:
        return self.value


#: The name used by ``PsiParams.mode``; the same enum as :class:`Reveal`.
Mode = Reveal


@dataclass(frozen=True)
class PsiParams:
    """Job parameters both roles must agree on.

    Attributes:
        salt: per-job salt, at least 16 bytes; public within the job. A fresh
            salt per job keeps blinded values from different jobs unlinkable
            even if a scalar were reused.
        reveal: the mode (kept under its first name; see ``mode``).
        batch_size: points per message, and per ``Progress`` report.
        mode: the mode, :class:`Reveal` (alias :data:`Mode`): BOTH, GUEST or
            CARDINALITY. ``mode`` and ``reveal`` are one setting: pass either;
            after construction both hold the same value. Passing both with
            different values is an error (unless ``reveal`` is left at its
            default).
        count_first: run the count-first exchange (module docstring): the
            parties learn |X ∩ Y| and check it against their own
            ``min_intersection`` before anything locates the intersection.
            BOTH and GUEST only (CARDINALITY reveals the count alone anyway).
            A role program refuses a positive ``min_intersection`` without it.

    Raises:
        ProtocolError: on a short or non-bytes salt, an unknown mode, a
            non-positive ``batch_size``, or ``count_first`` with CARDINALITY.
    """

    salt: bytes
    reveal: Reveal = Reveal.BOTH
    batch_size: int = 8192
    mode: Reveal | None = None
    count_first: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.salt, bytes) or len(self.salt) < _MIN_SALT_BYTES:
            raise ProtocolError(f"PSI salt must be at least {_MIN_SALT_BYTES} bytes")
        try:
            reveal = Reveal(self.reveal)
            mode = reveal if self.mode is None else Reveal(self.mode)
        except ValueError:
            raise ProtocolError(f"unknown PSI mode {self.mode if self.mode is not None else self.reveal!r}") from None
        if reveal is not Reveal.BOTH and reveal is not mode:
            raise ProtocolError(f"PSI reveal={reveal} and mode={mode} disagree; pass one of them")
        object.__setattr__(self, "reveal", mode)
        object.__setattr__(self, "mode", mode)
        if type(self.batch_size) is not int or self.batch_size < 1:
            raise ProtocolError(f"PSI batch_size must be a positive int, got {self.batch_size!r}")
        if type(self.count_first) is not bool:
            raise ProtocolError(f"PSI count_first must be a bool, got {self.count_first!r}")
        if self.count_first and mode is Reveal.CARDINALITY:
            raise ProtocolError("PSI count_first applies to modes that reveal rows (both, guest); "
                                "cardinality reveals only the count already")


@dataclass(frozen=True)
class PsiResult:
    """One party's PSI output.

    Attributes:
        rows: indices into this party's own input list, in the agreed order
            (increasing guest row index), so ``guest.rows[k]`` and
            ``host.rows[k]`` refer to the same entity. Empty in CARDINALITY
            mode, and for the host unless the mode is BOTH.
        size: the intersection size; ``-1`` for the host unless the mode is
            BOTH (it learns nothing about the intersection, not even its size
            -- unless the run was count-first, whose count its transcript
            records as received).
    """

    rows: tuple[int, ...]
    size: int


# --------------------------------------------------------------------------- checkpoints


_CHECKPOINT_TAG = b"fedcredit/v1/psi-checkpoint"
_CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class PsiCheckpoint:
    """Where a role stands after its last completed batch, enough to resume it.

    Yielded as a :class:`~protocols.core.Checkpoint` action's ``state`` (as :meth:`to_dict`) when a
    role runs with ``checkpoint=True``; pass :meth:`from_dict` of the last one
    back as ``resume=`` to continue. A resumed role is deterministic: with the
    same ids and params it re-creates exactly the messages it sent before.

    Attributes:
        role: the role it belongs to.
        job: SHA-256 binding the checkpoint to the role, the params (salt,
            mode, batch size) and the id list; resuming with anything else
            raises :class:`~protocols.errors.ProtocolError`.
        scalar: **secret** -- the role's blinding scalar.
        shuffle_seed: **secret** -- seeds the role's permutations (σ/π, τ).
        peer_size: the peer's announced size, -1 until received.
        sent: wire name -> messages of that step already sent. The resumed
            role sends message number ``sent[wire]`` next.
        recv_from: wire name -> the sequence number the resumed role asks for
            first. It can be lower than the number already received: the
            guest keeps its lookup table in memory and rebuilds it by reading
            its receive steps again from 0.

    The runtime's part:

    * Persist every checkpoint synchronously, before the program continues
      (the first one comes before any message is sent, so the secret scalar
      is on disk before anything derived from it leaves), and only in the
      party's own storage (mode 0600): ``scalar`` and ``shuffle_seed`` are as
      secret as the ids themselves; the coordinator must never see them.
    * On resume set the endpoint's send counter of each step to ``sent`` and
      its receive counter to ``recv_from``.
    * A crash between a send and the next checkpoint makes the resumed role
      send that message again, byte for byte (its payload is a deterministic
      function of ids, params and checkpoint). Skip a send whose sequence was
      already delivered (ideally after checking the payload digest matches).
    * Keep every received message with a sequence number ≥ ``recv_from`` of
      its step (a local spool, written before the payload is handed to the
      program): the relay drops a message once delivered, and the resumed
      role will ask for it again.
    """

    role: Role
    job: bytes
    scalar: bytes
    shuffle_seed: bytes
    peer_size: int = -1
    sent: Mapping[str, int] = field(default_factory=dict)
    recv_from: Mapping[str, int] = field(default_factory=dict)

    version: ClassVar[int] = _CHECKPOINT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (bytes as hex). Contains the secrets under ``"secret"``."""
        return {
            "version": _CHECKPOINT_VERSION,
            "protocol": "psi.ecdh",
            "role": self.role.value,
            "job": self.job.hex(),
            "secret": {"scalar": self.scalar.hex(), "shuffle_seed": self.shuffle_seed.hex()},
            "peer_size": self.peer_size,
            "sent": {k: int(v) for k, v in sorted(self.sent.items())},
            "recv_from": {k: int(v) for k, v in sorted(self.recv_from.items())},
        }

    def public_view(self) -> dict[str, Any]:
        """:meth:`to_dict` without the secrets (safe for logs and job status)."""
        d = self.to_dict()
        del d["secret"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PsiCheckpoint":
        """Parse :meth:`to_dict` output. Raises ProtocolError if malformed."""
        try:
            if d["version"] != _CHECKPOINT_VERSION or d["protocol"] != "psi.ecdh":
                raise ProtocolError(f"unsupported PSI checkpoint version {d.get('version')!r}")
            secret = d["secret"]
            cp = cls(
                role=Role(d["role"]),
                job=bytes.fromhex(d["job"]),
                scalar=bytes.fromhex(secret["scalar"]),
                shuffle_seed=bytes.fromhex(secret["shuffle_seed"]),
                peer_size=d["peer_size"],
                sent=dict(d["sent"]),
                recv_from=dict(d["recv_from"]),
            )
        except ProtocolError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolError(f"malformed PSI checkpoint: {type(exc).__name__}: {exc}") from None
        cp._validate()
        return cp

    def _validate(self) -> None:
        if len(self.job) != 32 or len(self.scalar) != POINT_BYTES or len(self.shuffle_seed) != 32:
            raise ProtocolError("malformed PSI checkpoint: wrong digest, scalar or seed length")
        if type(self.peer_size) is not int or not -1 <= self.peer_size <= MAX_SET_SIZE:
            raise ProtocolError("malformed PSI checkpoint: bad peer_size")
        for name, counts in (("sent", self.sent), ("recv_from", self.recv_from)):
            for k, v in counts.items():
                if not isinstance(k, str) or type(v) is not int or v < 0:
                    raise ProtocolError(f"malformed PSI checkpoint: bad {name} entry")


def _ids_digest(ids: Sequence[str]) -> bytes:
    h = hashlib.sha256(b"fedcredit/v1/psi-ids")
    for x in ids:
        data = x.encode("utf-8")
        h.update(len(data).to_bytes(4, "big"))
        h.update(data)
    return h.digest()


def _job_digest(role: Role, ids: Sequence[str], params: PsiParams) -> bytes:
    h = hashlib.sha256(_CHECKPOINT_TAG)
    parts = [role.value.encode(), params.salt, params.reveal.value.encode(), str(params.batch_size).encode()]
    if params.count_first:
        parts.append(b"count-first")
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    h.update(_ids_digest(ids))
    return h.digest()


class _Tracker:
    """A role's secrets and message counters; makes its Progress reports and checkpoints."""

    def __init__(
        self,
        role: Role,
        ids: Sequence[str],
        params: PsiParams,
        rng: RandomSource,
        resume: PsiCheckpoint | None,
        checkpoint: bool,
    ) -> None:
        self.role = role
        self.enabled = checkpoint or resume is not None
        self.job = _job_digest(role, ids, params) if self.enabled else b""
        if resume is None:
            self.scalar = random_scalar(rng)
            self.seed = rng.getrandbits(256).to_bytes(32, "little")
            self.peer_size = -1
            self.sent: dict[str, int] = {}
            self.recv_from: dict[str, int] = {}
        else:
            if not isinstance(resume, PsiCheckpoint):
                raise ProtocolError(f"resume must be a PsiCheckpoint, got {type(resume).__name__}")
            resume._validate()
            if resume.role is not role:
                raise ProtocolError(f"checkpoint is for the {resume.role}, not the {role}")
            if resume.job != self.job:
                raise ProtocolError("checkpoint is for other ids or other PSI params; cannot resume")
            self.scalar = resume.scalar
            self.seed = resume.shuffle_seed
            self.peer_size = resume.peer_size
            self.sent = dict(resume.sent)
            self.recv_from = dict(resume.recv_from)

    def snapshot(self) -> PsiCheckpoint:
        return PsiCheckpoint(self.role, self.job, self.scalar, self.seed, self.peer_size,
                             dict(self.sent), dict(self.recv_from))

    def progress(self, done: int, total: int, phase: str) -> Generator[Checkpoint | Progress, Any, None]:
        """A :class:`Checkpoint` (with the secrets; the runtime persists it before the program goes on),
        then the :class:`Progress` report, which never carries a secret."""
        if self.enabled:
            yield Checkpoint("psi", self.snapshot().to_dict())
        yield Progress(stage="psi", done=done, total=total, detail={"phase": phase})

    def sent_count(self, step: ProtocolStep) -> int:
        return self.sent.get(step.wire, 0)

    def count_sent(self, step: ProtocolStep) -> None:
        self.sent[step.wire] = self.sent.get(step.wire, 0) + 1

    def send_once(self, step: ProtocolStep, payload: Any) -> Generator[Send, Any, None]:
        """Send a step's only message, unless a resumed role already did."""
        if self.sent_count(step) == 0:
            yield Send(step, payload)
            self.count_sent(step)

    def recv_size(self, step: ProtocolStep) -> Generator[Recv, object, int]:
        """The peer's announced size (read once; a resumed role has it in its checkpoint)."""
        if self.peer_size < 0:
            msg = yield from recv_checked(step)
            assert isinstance(msg, SetSize)  # guaranteed by recv_checked
            self.peer_size = msg.count
            self.recv_from[step.wire] = 1
        return self.peer_size


# --------------------------------------------------------------------------- helpers


def n_batches(n: int, batch_size: int) -> int:
    """How many messages a list of ``n`` points takes."""
    return -(-n // batch_size)


def batch_bounds(k: int, n: int, batch_size: int) -> tuple[int, int]:
    """Positions ``[lo, hi)`` of batch ``k`` of a list of ``n``."""
    lo = k * batch_size
    return lo, min(n, lo + batch_size)


def seeded_permutation(n: int, seed: bytes, label: bytes) -> array[int]:
    """A uniformly random permutation of range(n), drawn deterministically from ``seed``.

    Each position gets a 128-bit key from SHAKE-256(tag ‖ label ‖ seed), and
    the permutation is the order that sorts the keys: uniform as long as no
    two keys tie, i.e. within statistical distance n²·2^-129 of uniform
    (2^-89 at n = 2^20); ties, should one happen, keep index order. A resumed
    role re-creates the same shuffle from its checkpointed seed; distinct
    labels give independent permutations from one seed. Vectorized (numpy),
    ~0.3 s at 2^20; kept as an ``array('q')``: 8 bytes per element.
    """
    perm = array("q")
    if n == 0:
        return perm
    stream = hashlib.shake_256(
        b"fedcredit/v1/psi-shuffle" + len(label).to_bytes(2, "big") + label + seed
    ).digest(16 * n)
    keys = np.frombuffer(stream, dtype="<u8").reshape(n, 2)
    order = np.lexsort((keys[:, 1], keys[:, 0]))  # sorts by keys[:, 0], then keys[:, 1]
    perm.frombytes(order.astype(np.int64).tobytes())
    return perm


_T = TypeVar("_T")


def one_ahead(items: Sequence[_T], submit: Callable[[_T], Pending]) -> Iterator[tuple[_T, list[bytes]]]:
    """Yield ``(item, submit(item).result())`` in order, submitting each item one step early.

    With a pool ``map_fn`` the pool computes item k+1 while the caller sends
    item k (or, under :func:`~protocols.core.run_local`, while the peer runs).
    """
    pending: Pending | None = None
    previous: _T | None = None
    for item in items:
        nxt = submit(item)
        if pending is not None:
            yield previous, pending.result()  # type: ignore[misc]
        pending, previous = nxt, item
    if pending is not None:
        yield previous, pending.result()  # type: ignore[misc]


def recv_checked(step: ProtocolStep) -> Generator[Recv, object, object]:
    """Receive one message of ``step`` and check its payload type."""
    payload = yield Recv(step)
    if not isinstance(payload, step.spec.payload):
        raise ProtocolError(
            f"step {step.wire} expects {step.spec.payload.__name__}, got {type(payload).__name__}"
        )
    return payload


def recv_batch(step: ProtocolStep, k: int, expected: int) -> Generator[Recv, object, tuple[bytes, ...]]:
    """Receive batch ``k`` of a :class:`BlindedPoints` stream and check its length."""
    payload = yield from recv_checked(step)
    assert isinstance(payload, BlindedPoints)  # guaranteed by recv_checked
    if len(payload.points) != expected:
        raise ProtocolError(
            f"{step.wire} batch {k} carries {len(payload.points)} points, expected {expected}"
        )
    return payload.points


def _blind_rows(
    salt: bytes, scalar: bytes, ids: Sequence[str], perm: array[int], k: int, size: int, map_fn: MapFn | None
) -> Pending:
    """Start hashing and blinding batch ``k`` of the shuffled rows."""
    lo, hi = batch_bounds(k, len(ids), size)
    return hash_and_blind_async(salt, scalar, [ids[perm[i]] for i in range(lo, hi)], map_fn)


_REPLY_KEY_TAG = b"fedcredit/v1/psi-reply-key"


def reply_key(shuffle_seed: bytes) -> bytes:
    """The host's key of τ, derived from its secret shuffle seed: SHA-256(tag ‖ seed).

    A one-way derivation, so revealing it (count-first, HOST_UNSHUFFLE) says
    nothing about the seed and hence nothing about π, which the same seed draws.
    A resumed host re-derives the same key from its checkpoint.
    """
    return hashlib.sha256(_REPLY_KEY_TAG + shuffle_seed).digest()


def reply_order(n: int, key: bytes) -> array[int]:
    """τ: position p of the shuffled HOST_DOUBLE_BLINDED stream holds the reply to GUEST_BLINDED position τ[p]."""
    return seeded_permutation(n, key, b"host-reply")


def _check_minimum(minimum: int, count_first: bool) -> None:
    if type(minimum) is not int or minimum < 0:
        raise ProtocolError(f"min_intersection must be a non-negative int, got {minimum!r}")
    if minimum > 0 and not count_first:
        raise ProtocolError("a min_intersection can be checked before the intersection is revealed only by a "
                            "count-first run (PsiParams.count_first=True)")


def _below(role: Role, minimum: int | None, count: int | None) -> IntersectionTooSmall:
    """The error of a count-first run stopped by ``role``'s minimum (None: the peer's value, not known here)."""
    policy = f"min_intersection {minimum}" if minimum is not None else "its min_intersection policy"
    found = "" if count is None else f" ({count} ids)"
    return IntersectionTooSmall(
        f"count-first PSI stopped: the intersection{found} is below the {role}'s minimum ({policy}); "
        "nothing has located the intersection",
        public=f"count-first PSI stopped: the intersection is below the {role}'s minimum ({policy}); "
               "no ids were revealed to either party")


def _too_few(small: Role, checker: Role, size: int, minimum: int) -> IntersectionTooSmall:
    """A count-first run stopped before the count: ``small``'s whole set cannot reach ``checker``'s minimum."""
    return IntersectionTooSmall(
        f"count-first PSI stopped before the count: the {small}'s set has {size} ids, fewer than the {checker}'s "
        f"min_intersection of {minimum}",
        public=f"count-first PSI stopped: the {small}'s set is smaller than the {checker}'s minimum "
               f"(min_intersection {minimum}); no ids were revealed to either party")


def guest_count_exchange(
    count_step: ProtocolStep, unshuffle_step: ProtocolStep, count: int, minimum: int, tracker: "_Tracker | None" = None
) -> Generator[Any, Any, bytes]:
    """The guest's side of the count exchange: send the count and its verdict, then read the host's.

    Returns the key of τ once both minimums are met. ``tracker`` (the balanced
    mode's) skips a send a resumed role already made. Raises
    :class:`IntersectionTooSmall` otherwise -- right after sending its own
    refusal, so the host stops too.
    """
    meets = count >= minimum
    if tracker is not None:
        yield from tracker.send_once(count_step, IntersectionCount(count, meets))
    else:
        yield Send(count_step, IntersectionCount(count, meets))
    if not meets:
        raise _below(Role.GUEST, minimum, count)
    reply = yield from recv_checked(unshuffle_step)
    assert isinstance(reply, UnshuffleKey)  # guaranteed by recv_checked
    if not reply.meets_minimum:
        raise _below(Role.HOST, None, count)
    return reply.key


def host_count_exchange(
    count_step: ProtocolStep, unshuffle_step: ProtocolStep, key: bytes, minimum: int, most: int,
    tracker: "_Tracker | None" = None,
) -> Generator[Any, Any, int]:
    """The host's side of the count exchange: read the guest's count, check it, release τ's key or refuse.

    ``most`` bounds an honest count (the smaller set's size). Returns the count.
    A resumed host reads the count again (its checkpoint keeps none). Raises
    :class:`IntersectionTooSmall` if either minimum is not met, after telling
    the guest when the refusal is its own.
    """
    msg = yield from recv_checked(count_step)
    assert isinstance(msg, IntersectionCount)  # guaranteed by recv_checked
    if msg.count > most:
        raise ProtocolError(f"{count_step.wire} announces {msg.count} matches, more than either set holds")
    if not msg.meets_minimum:
        raise _below(Role.GUEST, None, msg.count)
    meets = msg.count >= minimum
    verdict = UnshuffleKey(meets, key if meets else b"")
    if tracker is not None:
        yield from tracker.send_once(unshuffle_step, verdict)
    else:
        yield Send(unshuffle_step, verdict)
    if not meets:
        raise _below(Role.HOST, minimum, msg.count)
    return msg.count


# --------------------------------------------------------------------------- roles


def guest_program(
    ids: Sequence[str],
    params: PsiParams,
    rng: RandomSource,
    *,
    map_fn: MapFn | None = None,
    resume: PsiCheckpoint | None = None,
    checkpoint: bool = False,
    min_intersection: int = 0,
    steps: EcdhSteps = ECDH_STEPS,
) -> RoleProgram:
    """The guest's side of the PSI.

    Args:
        ids: normalized, duplicate-free ids; row i is ``ids[i]``.
        params: the job's PSI parameters (same as the host's).
        rng: source of the guest's secret scalar and shuffle seed (unused when
            resuming).
        map_fn: runs the hashing and scalar multiplications, e.g.
            ``ProcessPoolExecutor(cores).map``; in this process when None.
        resume: the last checkpoint of an interrupted run of this role.
        checkpoint: yield a :class:`~protocols.core.Checkpoint` (a :class:`PsiCheckpoint`, with the
            secrets) before every ``Progress``; implied by ``resume``.
        min_intersection: the guest's own minimum, checked on the count before
            anything locates the intersection; needs ``params.count_first``.
        steps: the step names to use (:class:`EcdhSteps`; the OT mode's fallback passes its own).

    Returns (as the generator's return value):
        :class:`PsiResult`: the guest's intersecting rows in increasing order
        (BOTH, GUEST), or ``rows=()`` and the intersection size (CARDINALITY).

    Raises:
        DataError: on duplicate ids.
        IntersectionTooSmall: count-first, when the count is below either
            party's minimum (the guest then holds no row of the intersection).
        ProtocolError: if a batch has the wrong length, the host's points
            repeat, ``resume`` does not belong to these ids and params, or a
            minimum is given without ``count_first``.
        CryptoError: if the host sends a low-order point.
    """
    check_unique_ids(ids, Role.GUEST)
    _check_minimum(min_intersection, params.count_first)
    t = _Tracker(Role.GUEST, ids, params, rng, resume, checkpoint)
    a, size, mode, gated = t.scalar, params.batch_size, params.reveal, params.count_first
    n = len(ids)
    perm = seeded_permutation(n, t.seed, b"guest-rows")  # stream position k holds guest row perm[k]
    if t.enabled:
        yield from t.progress(0, n, "start")  # the secrets reach the checkpoint before any message leaves

    # Round 1: announce |X|, then stream a·h(x) in σ order, without waiting for the host.
    yield from t.send_once(steps.guest_size, SetSize(n))
    own = range(t.sent_count(steps.guest_blinded), n_batches(n, size))
    for k, points in one_ahead(own, lambda k: _blind_rows(params.salt, a, ids, perm, k, size, map_fn)):
        yield Send(steps.guest_blinded, BlindedPoints(tuple(points)))
        t.count_sent(steps.guest_blinded)
        yield from t.progress(batch_bounds(k, n, size)[1], n, "guest_blind")

    n_host = yield from t.recv_size(steps.host_size)
    total = n + n_host
    if gated and n_host < min_intersection:
        # The count could not reach the minimum, and it would tell the host how many of its few ids are ours
        # (one id: whether it is): stop before it exists.
        raise _too_few(Role.HOST, Role.GUEST, n_host, min_intersection)

    # Round 2: the lookup table a·b·h(y) -> host stream position. It lives in
    # memory only, so a resumed guest reads both receive steps again from 0
    # (and, count-first, HOST_UNSHUFFLE, which it never marks as read).
    t.recv_from[steps.host_blinded.wire] = 0
    t.recv_from[steps.host_double_blinded.wire] = 0
    table: dict[bytes, int] = {}
    seen: set[bytes] = set()

    def absorb(lo: int, hi: int, again: list[bytes]) -> Generator[Checkpoint | Progress, Any, None]:
        if mode is Reveal.CARDINALITY:
            seen.update(p[:DIGEST_BYTES] for p in again)
            filled = len(seen)
        else:
            table.update((p[:DIGEST_BYTES], lo + i) for i, p in enumerate(again))
            filled = len(table)
        if filled != hi:
            raise ProtocolError(f"{steps.host_blinded.wire} repeats a point (host ids not unique)")
        yield from t.progress(n + hi, total, "guest_reblind")

    # One batch ahead: batch k is re-blinded by the pool while batch k+1 is awaited.
    previous: tuple[int, int, Pending] | None = None
    for k in range(n_batches(n_host, size)):
        lo, hi = batch_bounds(k, n_host, size)
        theirs = yield from recv_batch(steps.host_blinded, k, hi - lo)
        current = (lo, hi, blind_async(a, theirs, map_fn))
        if previous is not None:
            yield from absorb(previous[0], previous[1], previous[2].result())
        previous = current
    if previous is not None:
        yield from absorb(previous[0], previous[1], previous[2].result())

    # Round 3: stream b·a·h(x) through the table. Count-first, the stream is
    # shuffled by τ: record each hit by its reply position p, which says
    # nothing about the row until τ is known.
    count = 0
    matched = array("q", [-1]) * n  # guest row -> host stream position, -1 if none
    hits = array("q", [-1]) * (n if gated else 0)  # count-first: reply position -> host stream position
    for k in range(n_batches(n, size)):
        lo, hi = batch_bounds(k, n, size)
        double = yield from recv_batch(steps.host_double_blinded, k, hi - lo)
        if mode is Reveal.CARDINALITY:
            count += sum(1 for d in double if d[:DIGEST_BYTES] in seen)
        elif gated:
            for i, d in enumerate(double):
                j = table.get(d[:DIGEST_BYTES])
                if j is not None:
                    hits[lo + i] = j
                    count += 1
        else:
            for i, d in enumerate(double):
                j = table.get(d[:DIGEST_BYTES])
                if j is not None:
                    matched[perm[lo + i]] = j
    table.clear()  # free the table before building the result
    seen.clear()

    if mode is Reveal.CARDINALITY:
        yield from t.progress(total, total, "done")
        return PsiResult(rows=(), size=count)
    if gated:
        key = yield from guest_count_exchange(steps.guest_count, steps.host_unshuffle, count, min_intersection, t)
        tau = reply_order(n, key)  # reply position p answers guest stream position tau[p]
        for p in range(n):
            if hits[p] >= 0:
                matched[perm[tau[p]]] = hits[p]
        del hits, tau
        yield from t.progress(total, total, "guest_unshuffle")
    rows = tuple(i for i in range(n) if matched[i] >= 0)
    if mode is Reveal.BOTH:
        yield from t.send_once(steps.guest_matches, MatchedPositions(tuple(matched[i] for i in rows)))
    yield from t.progress(total, total, "done")
    return PsiResult(rows=rows, size=len(rows))


def host_program(
    ids: Sequence[str],
    params: PsiParams,
    rng: RandomSource,
    *,
    map_fn: MapFn | None = None,
    resume: PsiCheckpoint | None = None,
    checkpoint: bool = False,
    min_intersection: int = 0,
    steps: EcdhSteps = ECDH_STEPS,
) -> RoleProgram:
    """The host's side of the PSI.

    Args:
        ids: normalized, duplicate-free ids; row i is ``ids[i]``.
        params: the job's PSI parameters (same as the guest's).
        rng: source of the host's secret scalar and shuffle seed (unused when
            resuming).
        map_fn, resume, checkpoint, steps: as for :func:`guest_program`.
        min_intersection: the host's own minimum, checked on the guest's count
            before τ's key is released; needs ``params.count_first``.

    Returns (as the generator's return value):
        :class:`PsiResult` with the host's rows aligned to the guest's order
        (BOTH), or ``PsiResult(rows=(), size=-1)`` (GUEST, CARDINALITY).

    Raises:
        DataError: on duplicate ids.
        IntersectionTooSmall: count-first, when the count is below either
            party's minimum (τ's key is then never sent).
        ProtocolError: if a batch has the wrong length, the guest's count or
            matches are out of range, repeated or disagree, ``resume`` does
            not fit, or a minimum is given without ``count_first``.
        CryptoError: if the guest sends a low-order point.
    """
    check_unique_ids(ids, Role.HOST)
    _check_minimum(min_intersection, params.count_first)
    t = _Tracker(Role.HOST, ids, params, rng, resume, checkpoint)
    b, size, mode, gated = t.scalar, params.batch_size, params.reveal, params.count_first
    n = len(ids)
    perm = seeded_permutation(n, t.seed, b"host-rows")  # stream position j holds host row perm[j]
    if t.enabled:
        yield from t.progress(0, n, "start")

    # Round 1: announce |Y|, then stream b·h(y) in π order, without waiting for the guest.
    yield from t.send_once(steps.host_size, SetSize(n))
    own = range(t.sent_count(steps.host_blinded), n_batches(n, size))
    for k, points in one_ahead(own, lambda k: _blind_rows(params.salt, b, ids, perm, k, size, map_fn)):
        yield Send(steps.host_blinded, BlindedPoints(tuple(points)))
        t.count_sent(steps.host_blinded)
        yield from t.progress(batch_bounds(k, n, size)[1], n, "host_blind")

    n_guest = yield from t.recv_size(steps.guest_size)
    total = n + n_guest
    if gated and n_guest < min_intersection:
        # The count could not reach the minimum, and it would tell the guest how many of its few ids are ours: do
        # not answer at all.
        raise _too_few(Role.GUEST, Role.HOST, n_guest, min_intersection)
    guest_batches = n_batches(n_guest, size)
    start = t.sent_count(steps.host_double_blinded)
    key = reply_key(t.seed)

    if mode is not Reveal.CARDINALITY and not gated:
        # Round 2: double-blind each guest batch as it arrives; nothing is kept.
        # One batch ahead: reply k is computed by the pool while batch k+1 is
        # awaited, then sent (the guest sends all its batches before it
        # waits for any reply, so this cannot deadlock).
        t.recv_from[steps.guest_blinded.wire] = start
        previous: tuple[int, int, Pending] | None = None
        for k in range(start, guest_batches + 1):
            current = None
            if k < guest_batches:
                lo, hi = batch_bounds(k, n_guest, size)
                theirs = yield from recv_batch(steps.guest_blinded, k, hi - lo)
                current = (k, hi, blind_async(b, theirs, map_fn))
            if previous is not None:
                yield Send(steps.host_double_blinded, BlindedPoints(tuple(previous[2].result())))
                t.count_sent(steps.host_double_blinded)
                t.recv_from[steps.guest_blinded.wire] = previous[0] + 1
                yield from t.progress(n + previous[1], total, "host_reblind")
            previous = current
    elif start < guest_batches:
        # Round 2, cardinality and count-first: all of b·a·h(x) first, then one
        # shuffle τ over the whole list, so no reply can be traced to a guest
        # batch or row.
        t.recv_from[steps.guest_blinded.wire] = 0
        double = bytearray()
        pending: tuple[int, Pending] | None = None
        for k in range(guest_batches + 1):
            upcoming: tuple[int, Pending] | None = None
            if k < guest_batches:
                lo, hi = batch_bounds(k, n_guest, size)
                theirs = yield from recv_batch(steps.guest_blinded, k, hi - lo)
                upcoming = (hi, blind_async(b, theirs, map_fn))
            if pending is not None:
                double += b"".join(pending[1].result())
                yield from t.progress(n + pending[0], total, "host_reblind")
            pending = upcoming
        tau = reply_order(n_guest, key)
        for k in range(start, guest_batches):
            lo, hi = batch_bounds(k, n_guest, size)
            out = tuple(bytes(double[POINT_BYTES * tau[i] : POINT_BYTES * (tau[i] + 1)]) for i in range(lo, hi))
            yield Send(steps.host_double_blinded, BlindedPoints(out))
            t.count_sent(steps.host_double_blinded)
            yield from t.progress(total, total, "host_reply")
        del double
    t.recv_from[steps.guest_blinded.wire] = guest_batches

    count = -1
    if gated:
        count = yield from host_count_exchange(steps.guest_count, steps.host_unshuffle, key, min_intersection,
                                                min(n_guest, n), t)
        yield from t.progress(total, total, "host_unshuffle")
    if mode is not Reveal.BOTH:
        yield from t.progress(total, total, "done")
        return PsiResult(rows=(), size=-1)

    matches = yield from recv_checked(steps.guest_matches)
    assert isinstance(matches, MatchedPositions)  # guaranteed by recv_checked
    positions = matches.positions
    if len(positions) > min(n_guest, n):
        raise ProtocolError(f"{steps.guest_matches.wire} lists more matches than either set holds")
    if gated and len(positions) != count:
        raise ProtocolError(f"{steps.guest_matches.wire} lists {len(positions)} matches, but the guest counted {count}")
    if len(set(positions)) != len(positions):
        raise ProtocolError(f"{steps.guest_matches.wire} repeats a position")
    if any(j >= n for j in positions):
        raise ProtocolError(f"{steps.guest_matches.wire} has a position beyond {n} host points")
    rows = tuple(perm[j] for j in positions)
    return PsiResult(rows=rows, size=len(rows))
