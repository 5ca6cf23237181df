"""The ``map_fn`` contract: how the engine is run on several cores without owning any.

The engine never starts a thread or a process. Functions that can use several
cores accept an optional ``map_fn`` instead, a callable with the signature of
the builtin :func:`map` restricted to one iterable::

    map_fn(worker, tasks) -> iterable of results, in the order of ``tasks``

Anything of that shape works: the builtin ``map`` (serial, in process),
``concurrent.futures.ProcessPoolExecutor(k).map`` (``k`` cores) or
``ThreadPoolExecutor.map`` (no speed-up: gmpy2 holds the GIL). The runtime owns
the executor and its lifetime; the engine only calls ``map_fn`` and consumes
the results before returning.

Every ``worker`` passed to ``map_fn`` is a module-level function taking one
tuple of plain ``int`` / ``tuple`` values and returning a ``list[int]`` (or an
``int``), so tasks and results pickle cheaply and identically under every
start method. Workers are deterministic: all randomness is drawn by the caller
in the parent, from its ``rng``, before the tasks are built, so a parallel run
returns exactly what the serial run with the same seed returns.

With ``map_fn=None`` the serial in-process code path runs (no task tuples, no
conversions).
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from ..core import MapFn  # one declaration for every protocol

__all__ = ["MapFn", "chunked", "run_tasks"]

T = TypeVar("T")
R = TypeVar("R")



def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of ``size`` elements (the last may be shorter).

    Raises:
        ValueError: if ``size < 1``.
    """
    size = operator.index(size)
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_tasks(map_fn: MapFn | None, worker: Callable[[Any], R], tasks: Iterable[Any]) -> list[R]:
    """Run ``worker`` over ``tasks`` with ``map_fn`` (builtin ``map`` if ``None``).

    Returns:
        The results as a list, in task order.
    """
    return list((map if map_fn is None else map_fn)(worker, tasks))
