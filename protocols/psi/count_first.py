"""The count-first exchange, shared by the balanced and the unbalanced ECDH-PSI.

The host shuffles its whole reply by a permutation τ drawn from a 32-byte
key; the guest counts its matches on the shuffled reply and sends the count
with its verdict (:func:`guest_count_exchange`); the host checks the count
against its own minimum and only then releases τ's key
(:func:`host_count_exchange`). Either refusal raises
:class:`IntersectionTooSmall` before anything locates the intersection. Why
and at what cost: the ``Count-first`` section of :mod:`fedcredit.protocols.psi.protocol`.
"""

from __future__ import annotations

import hashlib
from array import array
from typing import Any, Generator

from ..core import Message, ProtocolStep, Role, Send, recv_typed, seeded_permutation
from ..errors import ProtocolError
from .checkpoint import Tracker
from .messages import IntersectionCount, UnshuffleKey

__all__ = [
    "IntersectionTooSmall",
    "reply_key",
    "reply_order",
    "check_minimum",
    "too_few",
    "guest_count_exchange",
    "host_count_exchange",
]


class IntersectionTooSmall(ProtocolError):
    """Count-first PSI stopped at the count: |X ∩ Y| is below a party's ``min_intersection``.

    Raised by the party whose minimum is not met, and by its peer once told so.
    When it is raised nothing has located the intersection: the guest holds the
    shuffled reply only, the host blinded points only. Its message (local log)
    has the count; its :attr:`~fedcredit.protocols.errors.FedCreditError.public_message`
    (what leaves the node) names the policy and the minimum only, never a count
    or an id.
    """

    code = "MIN_INTERSECTION"


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


def check_minimum(minimum: object, count_first: bool, params: str = "PsiParams") -> None:
    """Refuse a ``min_intersection`` that is not a non-negative int, or a positive one without count-first.

    ``params`` names the parameter class whose ``count_first`` the message points to.
    """
    if type(minimum) is not int or minimum < 0:
        raise ProtocolError(f"min_intersection must be a non-negative int, got {minimum!r}")
    if minimum > 0 and not count_first:
        raise ProtocolError("a min_intersection can be checked before the intersection is revealed only by a "
                            f"count-first run ({params}.count_first=True)")


def _below(role: Role, minimum: int | None, count: int | None) -> IntersectionTooSmall:
    """The error of a count-first run stopped by ``role``'s minimum (None: the peer's value, not known here)."""
    policy = f"min_intersection {minimum}" if minimum is not None else "its min_intersection policy"
    found = "" if count is None else f" ({count} ids)"
    return IntersectionTooSmall(
        f"count-first PSI stopped: the intersection{found} is below the {role}'s minimum ({policy}); "
        "nothing has located the intersection",
        public=f"count-first PSI stopped: the intersection is below the {role}'s minimum ({policy}); "
               "no ids were revealed to either party")


def too_few(small: Role, checker: Role, size: int, minimum: int, *, queries: bool = False) -> IntersectionTooSmall:
    """A count-first run stopped before the count: ``small``'s whole set cannot reach ``checker``'s minimum.

    ``queries``: ``size`` counts the guest's queries (unbalanced mode) rather than a set's ids.
    """
    held = f"{small} asks {size} queries" if queries else f"{small}'s set has {size} ids"
    return IntersectionTooSmall(
        f"count-first PSI stopped before the count: the {held}, fewer than the {checker}'s "
        f"min_intersection of {minimum}",
        public=f"count-first PSI stopped: the {small}'s set is smaller than the {checker}'s minimum "
               f"(min_intersection {minimum}); no ids were revealed to either party")


def _send(step: ProtocolStep, payload: Message, tracker: Tracker | None) -> Generator[Send, Any, None]:
    """Send ``payload``; through ``tracker`` where there is one, which skips a send a resumed role already made."""
    if tracker is not None:
        yield from tracker.send_once(step, payload)
    else:
        yield Send(step, payload)


def guest_count_exchange(
    count_step: ProtocolStep, unshuffle_step: ProtocolStep, count: int, minimum: int, tracker: Tracker | None = None
) -> Generator[Any, Any, bytes]:
    """The guest's side of the count exchange: send the count and its verdict, then read the host's.

    Returns the key of τ once both minimums are met. ``tracker`` (the balanced
    mode's) skips a send a resumed role already made. Raises
    :class:`IntersectionTooSmall` otherwise -- right after sending its own
    refusal, so the host stops too.
    """
    meets = count >= minimum
    yield from _send(count_step, IntersectionCount(count, meets), tracker)
    if not meets:
        raise _below(Role.GUEST, minimum, count)
    reply = yield from recv_typed(unshuffle_step, UnshuffleKey)
    if not reply.meets_minimum:
        raise _below(Role.HOST, None, count)
    return reply.key


def host_count_exchange(
    count_step: ProtocolStep, unshuffle_step: ProtocolStep, key: bytes, minimum: int, most: int,
    tracker: Tracker | None = None,
) -> Generator[Any, Any, int]:
    """The host's side of the count exchange: read the guest's count, check it, release τ's key or refuse.

    ``most`` bounds an honest count (the smaller set's size). Returns the count.
    A resumed host reads the count again (its checkpoint keeps none). Raises
    :class:`IntersectionTooSmall` if either minimum is not met, after telling
    the guest when the refusal is its own.
    """
    msg = yield from recv_typed(count_step, IntersectionCount)
    if msg.count > most:
        raise ProtocolError(f"{count_step.wire} announces {msg.count} matches, more than either set holds")
    if not msg.meets_minimum:
        raise _below(Role.GUEST, None, msg.count)
    meets = msg.count >= minimum
    yield from _send(unshuffle_step, UnshuffleKey(meets, key if meets else b""), tracker)
    if not meets:
        raise _below(Role.HOST, minimum, msg.count)
    return msg.count

