"""Two-party ECDH-PSI over X25519, both roles in one module.

The exchange
------------
Both parties hold normalized, duplicate-free ids (:func:`protocols.psi.ids.prepare_ids`)
and agree on :class:`PsiParams` (a per-job salt, who learns the result). Each
draws a fresh scalar -- the guest ``a``, the host ``b`` -- and hashes its ids to
X25519 u-coordinates h(·) (:func:`protocols.psi.ecdh.hash_to_point`). Scalar
multiplication here commutes: a·(b·h) = b·(a·h).

==========================  ===========  =====================================================
step                        direction    payload
==========================  ===========  =====================================================
``HOST_BLINDED``            host→guest   b·h(y) for every host id y, shuffled by a permutation
                                         π the host draws from its rng (sent first: it does not
                                         depend on the guest, so both sides blind in parallel)
``GUEST_BLINDED``           guest→host   a·h(x) for every guest id x, shuffled by a permutation
                                         σ the guest draws from its rng
``HOST_DOUBLE_BLINDED``     host→guest   b·(a·h(x)), in the same order as received
``GUEST_MATCHES``           guest→host   only when ``reveal`` is BOTH: for each intersection
                                         element, its position in the shuffled HOST_BLINDED list
==========================  ===========  =====================================================

The guest computes a·(b·h(y)) for the host's list and matches it against
b·(a·h(x)), mapping each reply position back through σ to its own row: guest
row i is in the intersection iff its double-blinded value appears at some
shuffled host position j. The agreed order of the intersection is increasing
guest row index. With reveal BOTH the guest sends the positions j in that order
and the host maps them back through π to its own row indices, so
``guest_result.rows[k]`` and ``host_result.rows[k]`` are the same entity.

Blinding is done in batches of ``params.batch_size`` points; each role yields a
``Progress(stage="psi", ...)`` after every batch, where ``done``/``total`` count
that role's scalar multiplications (``total`` grows once the peer's set size is
known). Each message carries a whole list; chunking for transport is the
runtime's concern.

What each side learns (semi-honest)
-----------------------------------
* Guest: the intersection (as its own rows) and |host set|; nothing about which
  host row a match came from (π).
* Host: |guest set|. With reveal BOTH, also the intersection as its own rows,
  listed in the agreed order -- which, being increasing guest row index, tells
  it the relative guest order of the shared entities, and nothing about guest
  rows outside the intersection. The positions of GUEST_BLINDED carry no guest
  row information (σ). With reveal GUEST the host's result is
  ``PsiResult(rows=(), size=-1)``: it learns only that the protocol ran.

Security argument: model h as a random oracle onto Curve25519 and assume DDH in
its prime-order subgroup (see :mod:`protocols.psi.ecdh`). The host sees a·h(x)
for a uniformly random a unknown to it, in an order fixed by σ: jointly
pseudorandom, so its view is simulatable from |X| (plus, with reveal BOTH, the
output). The guest sees b·h(y) (shuffled by π) and b·a·h(x); for x in the
intersection the latter equals a·(b·h(y)) for the matching y, and every other
value is pseudorandom under DDH, so its view is simulatable from the
intersection and |Y|. Each shuffle hides the sender's row order from its
receiver; without reveal BOTH the host never learns which of its rows matched.
Every hashed id lies on the curve proper, never on the twist, so the public
curve/twist bit of a blinded point is the same for all ids and leaks nothing.
Malicious parties (e.g. a guest blinding guessed ids, or a host answering with
other points) are out of scope; σ does mean a host tampering with one position
of its reply learns about a random guest row rather than a row of its choice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Generator, Iterable, Sequence

from ..core import (
    Aggregate,
    Masked,
    Progress,
    ProtocolStep,
    Recv,
    Role,
    RoleProgram,
    Send,
    StepSpec,
)
from ..errors import DataError, ProtocolError
from .ecdh import POINT_BYTES, RandomSource, blind, hash_to_point, random_scalar

__all__ = [
    "BlindedPoints",
    "MatchedPositions",
    "PsiStep",
    "Reveal",
    "PsiParams",
    "PsiResult",
    "guest_program",
    "host_program",
]

_MIN_SALT_BYTES = 16


@dataclass(frozen=True)
class BlindedPoints(Masked):
    """A list of X25519 u-coordinates, each blinded by a sender's secret scalar.

    Classified :class:`~protocols.core.Masked`: every point is h(id) times a
    fresh scalar the receiver does not know, which hides the id computationally
    (DDH). The receiver does learn the list's length (the sender's set size).
    Every honest point lies on Curve25519 proper, so its public curve/twist
    bit is constant (see :mod:`protocols.psi.ecdh`); the order is a
    permutation the sender drew, unrelated to its row order.
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
    """The intersection, as positions in the host's shuffled ``HOST_BLINDED`` list.

    ``positions[k]`` is where the k-th intersection element (in increasing
    guest row order) sits in that list. Classified
    :class:`~protocols.core.Aggregate`: it is the PSI's own output, sent only
    when the job lists the intersection as revealed to both parties
    (``Reveal.BOTH``). It discloses to the host which of its rows are shared
    and the guest's agreed order, nothing about guest rows outside the
    intersection.
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


class PsiStep(ProtocolStep):
    """The PSI message table (see the module docstring for the flow)."""

    GUEST_BLINDED = StepSpec(
        "psi.guest_blinded", (Role.GUEST,), (Role.HOST,), BlindedPoints,
        "a·h(x) for the guest's ids, shuffled",
    )
    HOST_DOUBLE_BLINDED = StepSpec(
        "psi.host_double_blinded", (Role.HOST,), (Role.GUEST,), BlindedPoints,
        "b·a·h(x), in the order of GUEST_BLINDED",
    )
    HOST_BLINDED = StepSpec(
        "psi.host_blinded", (Role.HOST,), (Role.GUEST,), BlindedPoints,
        "b·h(y) for the host's ids, shuffled",
    )
    GUEST_MATCHES = StepSpec(
        "psi.guest_matches", (Role.GUEST,), (Role.HOST,), MatchedPositions,
        "positions of the intersection in HOST_BLINDED (reveal BOTH only)",
    )


class Reveal(str, enum.Enum):
    """Who learns the intersection."""

    BOTH = "both"  # guest and host
    GUEST = "guest"  # guest only; the host learns just |guest set|

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class PsiParams:
    """Job parameters both roles must agree on.

    Attributes:
        salt: per-job salt, at least 16 bytes; public within the job. A fresh
            salt per job keeps blinded values from different jobs unlinkable
            even if a scalar were reused.
        reveal: who learns the intersection.
        batch_size: points blinded between two ``Progress`` reports.

    Raises:
        ProtocolError: on a short or non-bytes salt, an unknown ``reveal`` or a
            non-positive ``batch_size``.
    """

    salt: bytes
    reveal: Reveal = Reveal.BOTH
    batch_size: int = 8192

    def __post_init__(self) -> None:
        if not isinstance(self.salt, bytes) or len(self.salt) < _MIN_SALT_BYTES:
            raise ProtocolError(f"PSI salt must be at least {_MIN_SALT_BYTES} bytes")
        try:
            object.__setattr__(self, "reveal", Reveal(self.reveal))
        except ValueError:
            raise ProtocolError(f"unknown PSI reveal mode {self.reveal!r}") from None
        if type(self.batch_size) is not int or self.batch_size < 1:
            raise ProtocolError(f"PSI batch_size must be a positive int, got {self.batch_size!r}")


@dataclass(frozen=True)
class PsiResult:
    """One party's PSI output.

    Attributes:
        rows: indices into this party's own input list, in the agreed order
            (increasing guest row index), so ``guest.rows[k]`` and
            ``host.rows[k]`` refer to the same entity.
        size: the intersection size. For the host with ``Reveal.GUEST`` the
            result is ``rows=()`` and ``size=-1``: the host learns nothing
            about the intersection, not even its size.
    """

    rows: tuple[int, ...]
    size: int


def _check_unique(ids: Sequence[str], role: Role) -> None:
    if len(set(ids)) != len(ids):
        raise DataError(f"PSI {role} ids contain duplicates; normalize them with prepare_ids first")


def _blind_batched(
    scalar: bytes,
    points: Iterable[bytes],
    count: int,
    batch_size: int,
    done: int,
    total: int,
    phase: str,
) -> Generator[Progress, None, list[bytes]]:
    """Blind ``count`` points in batches, yielding one Progress per batch."""
    it = iter(points)
    out: list[bytes] = []
    while len(out) < count:
        batch = [next(it) for _ in range(min(batch_size, count - len(out)))]
        out.extend(blind(scalar, batch))
        yield Progress(stage="psi", done=done + len(out), total=total, detail={"phase": phase})
    return out


def _random_permutation(n: int, rng: RandomSource) -> list[int]:
    """Fisher-Yates shuffle of range(n), using only ``rng.getrandbits``."""
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = _randbelow(i + 1, rng)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def _randbelow(n: int, rng: RandomSource) -> int:
    """Uniform integer in [0, n) by rejection sampling (no modulo bias)."""
    k = n.bit_length()
    while True:
        r = rng.getrandbits(k)
        if r < n:
            return r


def _recv(step: PsiStep) -> Generator[Recv, object, object]:
    """Receive one message of ``step`` and check its payload type."""
    payload = yield Recv(step)
    if not isinstance(payload, step.spec.payload):
        raise ProtocolError(
            f"step {step.wire} expects {step.spec.payload.__name__}, got {type(payload).__name__}"
        )
    return payload


def _recv_points(step: PsiStep, expected: int | None = None) -> Generator[Recv, object, tuple[bytes, ...]]:
    """Receive a :class:`BlindedPoints` message, optionally of a known length."""
    payload = yield from _recv(step)
    assert isinstance(payload, BlindedPoints)  # guaranteed by _recv; narrows the type
    if expected is not None and len(payload.points) != expected:
        raise ProtocolError(f"{step.wire} carries {len(payload.points)} points, expected {expected}")
    return payload.points


def guest_program(ids: Sequence[str], params: PsiParams, rng: RandomSource) -> RoleProgram:
    """The guest's side of the PSI.

    Args:
        ids: normalized, duplicate-free ids; row i is ``ids[i]``.
        params: the job's PSI parameters (same as the host's).
        rng: source of the guest's secret scalar and shuffle.

    Returns (as the generator's return value):
        :class:`PsiResult` with the guest's intersecting rows in increasing order.

    Raises:
        DataError: on duplicate ids.
        ProtocolError: if a reply has the wrong length or repeats a point.
        CryptoError: if the host sends a low-order point.
    """
    _check_unique(ids, Role.GUEST)
    a = random_scalar(rng)
    n_guest = len(ids)
    perm = _random_permutation(n_guest, rng)  # sent position k holds guest row perm[k]

    hashed = (hash_to_point(params.salt, ids[r]) for r in perm)
    mine = yield from _blind_batched(a, hashed, n_guest, params.batch_size, 0, n_guest, "guest_blind")
    yield Send(PsiStep.GUEST_BLINDED, BlindedPoints(tuple(mine)))
    del mine

    double = yield from _recv_points(PsiStep.HOST_DOUBLE_BLINDED, n_guest)
    host_points = yield from _recv_points(PsiStep.HOST_BLINDED)
    n_host = len(host_points)

    theirs = yield from _blind_batched(
        a, host_points, n_host, params.batch_size, n_guest, n_guest + n_host, "guest_reblind"
    )
    position = {p: j for j, p in enumerate(theirs)}
    if len(position) != n_host:
        raise ProtocolError(f"{PsiStep.HOST_BLINDED.wire} repeats a point (host ids not unique)")

    # (guest row, host position) per match, then into increasing guest row order.
    matched = sorted((perm[k], j) for k, d in enumerate(double) if (j := position.get(d)) is not None)
    rows = [i for i, _ in matched]
    positions = [j for _, j in matched]

    if params.reveal is Reveal.BOTH:
        yield Send(PsiStep.GUEST_MATCHES, MatchedPositions(tuple(positions)))
    return PsiResult(rows=tuple(rows), size=len(rows))


def host_program(ids: Sequence[str], params: PsiParams, rng: RandomSource) -> RoleProgram:
    """The host's side of the PSI.

    Args:
        ids: normalized, duplicate-free ids; row i is ``ids[i]``.
        params: the job's PSI parameters (same as the guest's).
        rng: source of the host's secret scalar and shuffle.

    Returns (as the generator's return value):
        :class:`PsiResult` with the host's rows aligned to the guest's order
        (reveal BOTH), or ``PsiResult(rows=(), size=-1)`` (reveal GUEST).

    Raises:
        DataError: on duplicate ids.
        ProtocolError: if the guest's matches are out of range or repeated.
        CryptoError: if the guest sends a low-order point.
    """
    _check_unique(ids, Role.HOST)
    b = random_scalar(rng)
    n_host = len(ids)
    perm = _random_permutation(n_host, rng)  # shuffled position j holds host row perm[j]

    hashed = (hash_to_point(params.salt, ids[r]) for r in perm)
    mine = yield from _blind_batched(b, hashed, n_host, params.batch_size, 0, n_host, "host_blind")
    yield Send(PsiStep.HOST_BLINDED, BlindedPoints(tuple(mine)))
    del mine

    guest_points = yield from _recv_points(PsiStep.GUEST_BLINDED)
    n_guest = len(guest_points)
    double = yield from _blind_batched(
        b, guest_points, n_guest, params.batch_size, n_host, n_host + n_guest, "host_reblind"
    )
    yield Send(PsiStep.HOST_DOUBLE_BLINDED, BlindedPoints(tuple(double)))
    del double

    if params.reveal is not Reveal.BOTH:
        return PsiResult(rows=(), size=-1)

    matches = yield from _recv(PsiStep.GUEST_MATCHES)
    assert isinstance(matches, MatchedPositions)  # guaranteed by _recv; narrows the type
    positions = matches.positions
    if len(positions) > min(n_guest, n_host):
        raise ProtocolError(f"{PsiStep.GUEST_MATCHES.wire} lists more matches than either set holds")
    if len(set(positions)) != len(positions):
        raise ProtocolError(f"{PsiStep.GUEST_MATCHES.wire} repeats a position")
    if any(j >= n_host for j in positions):
        raise ProtocolError(f"{PsiStep.GUEST_MATCHES.wire} has a position beyond {n_host} host points")
    rows = tuple(perm[j] for j in positions)
    return PsiResult(rows=rows, size=len(rows))
