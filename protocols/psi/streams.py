"""Streams of blinded points, one message per batch, with the pool one batch ahead.

Shared by the balanced and the unbalanced ECDH-PSI. Sending, :func:`one_ahead`
starts batch k+1's hashing and blinding before batch k is sent; receiving,
:func:`recv_one_ahead` starts the work on batch k+1 as soon as it arrives and
only then hands over batch k's result. With a pool ``map_fn`` the pool
computes while the role sends, receives or (under
:func:`~fedcredit.protocols.core.run_local`) while the peer runs; without one the work
happens when a result is collected. The messages never depend on it.
"""

from __future__ import annotations

from typing import Any, Callable, Generator, Iterator, Sequence, TypeVar

from ..core import ProtocolStep, Recv, batches, recv_typed
from ..errors import ProtocolError
from .ecdh import Pending
from .messages import BlindedPoints

__all__ = ["recv_batch", "one_ahead", "recv_one_ahead"]

_T = TypeVar("_T")

#: What :func:`recv_one_ahead` hands each result to: ``consume(k, lo, hi, points)``, batch k's
#: positions ``[lo, hi)`` in the stream and the computed points; it may yield actions.
Consumer = Callable[[int, int, int, list[bytes]], Generator[Any, Any, None]]


def recv_batch(step: ProtocolStep, k: int, expected: int) -> Generator[Recv, object, tuple[bytes, ...]]:
    """Receive batch ``k`` of a :class:`~fedcredit.protocols.psi.messages.BlindedPoints` stream and check its length."""
    payload = yield from recv_typed(step, BlindedPoints)
    if len(payload.points) != expected:
        raise ProtocolError(
            f"{step.wire} batch {k} carries {len(payload.points)} points, expected {expected}"
        )
    return payload.points


def one_ahead(items: Sequence[_T], submit: Callable[[_T], Pending]) -> Iterator[tuple[_T, list[bytes]]]:
    """Yield ``(item, submit(item).result())`` in order, submitting each item one step early.

    With a pool ``map_fn`` the pool computes item k+1 while the caller sends
    item k (or, under :func:`~fedcredit.protocols.core.run_local`, while the peer runs).
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


def recv_one_ahead(
    step: ProtocolStep,
    n: int,
    batch_size: int,
    work: Callable[[tuple[bytes, ...]], Pending],
    consume: Consumer,
    start: int = 0,
) -> Generator[Any, Any, None]:
    """Receive batches ``start``, ``start + 1``, ... of a stream of ``n`` points and pass each through ``work``.

    Batch k's ``work`` starts when it arrives; its result goes to ``consume``
    once batch k+1 has arrived and its work has started (the last batch's right
    after it), so the pool computes batch k+1 while ``consume`` handles batch k.
    Every batch but the last must hold ``batch_size`` points.
    """
    held: tuple[int, int, int, Pending] | None = None
    for k, lo, hi in batches(n, batch_size, start):
        theirs = yield from recv_batch(step, k, hi - lo)
        current = (k, lo, hi, work(theirs))
        if held is not None:
            yield from consume(held[0], held[1], held[2], held[3].result())
        held = current
    if held is not None:
        yield from consume(held[0], held[1], held[2], held[3].result())
