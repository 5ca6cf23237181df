"""The balanced ECDH-PSI's payloads, message table, modes and parameters.

The flow they make, both role programs and what each side learns are in
:mod:`fedcredit.protocols.psi.protocol`; the count-first exchange's helpers in
:mod:`fedcredit.protocols.psi.count_first`. :class:`EcdhSteps` lets another protocol's
table carry this exchange under its own wire names (the OT mode's fallback).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from ..core import Aggregate, Masked, ProtocolStep, Public, Role, StepSpec
from ..errors import ProtocolError
from .ecdh import POINT_BYTES

__all__ = [
    "MIN_SALT_BYTES",
    "MAX_SET_SIZE",
    "SetSize",
    "BlindedPoints",
    "MatchedPositions",
    "IntersectionCount",
    "UnshuffleKey",
    "PsiStep",
    "EcdhSteps",
    "ECDH_STEPS",
    "ecdh_step_copy",
    "Reveal",
    "Mode",
    "offered_mode",
    "check_salt",
    "check_positive_ints",
    "PsiParams",
    "PsiResult",
]

#: The shortest salt a job (or an unbalanced cache) may hash ids with.
MIN_SALT_BYTES = 16
#: Largest set size a peer may announce (the wire carries a uint64; 2^32 ids is far beyond any job).
MAX_SET_SIZE = 1 << 32


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class SetSize(Public):
    """A party's set size, announced first so the peer knows how many batches follow.

    Classified :class:`~fedcredit.protocols.core.Public`: the size is disclosed by the
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

    Classified :class:`~fedcredit.protocols.core.Masked`: every point is h(id) times a
    fresh scalar the receiver does not know, which hides the id computationally
    (DDH). The receiver does learn the list's length. Every honest point lies
    on Curve25519 proper, so its public curve/twist bit is constant (see
    :mod:`fedcredit.protocols.psi.ecdh`); the order is a permutation the sender drew,
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
    ``j % batch_size``). Classified :class:`~fedcredit.protocols.core.Aggregate`: it is
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


#: Bytes of the key τ is drawn from (count-first, :class:`UnshuffleKey`).
_KEY_BYTES = 32


@dataclass(frozen=True)
class IntersectionCount(Aggregate):
    """Count-first: |X ∩ Y| as the guest counted it on the shuffled reply, and its verdict.

    Attributes:
        count: matches between the shuffled HOST_DOUBLE_BLINDED reply and the
            guest's table of the host's points.
        meets_minimum: whether ``count`` reaches the guest's ``min_intersection``;
            when False the guest stops right after sending this.

    Classified :class:`~fedcredit.protocols.core.Aggregate`: the cardinality, which a
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

    Classified :class:`~fedcredit.protocols.core.Aggregate`: the key is uniform and
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
    its own table (``psi_ot.ecdh_*``, see :mod:`fedcredit.protocols.psi.ot.protocol`),
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


def offered_mode(value: object, refused: Reveal, why: str) -> Reveal:
    """``value`` as a :class:`Reveal`, for a protocol that offers every mode but ``refused``.

    Raises:
        ProtocolError: on an unknown mode, or with ``why`` on the refused one.
    """
    try:
        mode = Reveal(value)
    except ValueError:
        raise ProtocolError(f"unknown PSI mode {value!r}") from None
    if mode is refused:
        raise ProtocolError(why)
    return mode


def check_salt(salt: object) -> None:
    """Refuse a job salt that is not bytes or shorter than :data:`MIN_SALT_BYTES`."""
    if not isinstance(salt, bytes) or len(salt) < MIN_SALT_BYTES:
        raise ProtocolError(f"PSI salt must be at least {MIN_SALT_BYTES} bytes")


def check_positive_ints(params: object, names: tuple[str, ...], prefix: str = "") -> None:
    """Refuse a parameter among ``names`` that is not a positive int; the message names it after ``prefix``."""
    for name in names:
        v = getattr(params, name)
        if type(v) is not int or v < 1:
            raise ProtocolError(f"{prefix}{name} must be a positive int, got {v!r}")


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
        check_salt(self.salt)
        try:
            reveal = Reveal(self.reveal)
            mode = reveal if self.mode is None else Reveal(self.mode)
        except ValueError:
            raise ProtocolError(f"unknown PSI mode {self.mode if self.mode is not None else self.reveal!r}") from None
        if reveal is not Reveal.BOTH and reveal is not mode:
            raise ProtocolError(f"PSI reveal={reveal} and mode={mode} disagree; pass one of them")
        object.__setattr__(self, "reveal", mode)
        object.__setattr__(self, "mode", mode)
        check_positive_ints(self, ("batch_size",), "PSI ")
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
