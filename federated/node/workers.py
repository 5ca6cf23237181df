"""The party node's process pool: worker processes that die with their node.

A node's heavy loops (PSI's scalar multiplications, Paillier encryption randomness) run on every core
through a :class:`concurrent.futures.ProcessPoolExecutor` (spawned, never forked: gRPC is threaded).
A worker must never outlive its node: after ``kill -9`` of the node, orphans would keep the node's
memory (and key material they were handed) alive. Two guards, set by the worker's initializer:

* Linux's ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker the moment its parent dies.
  The signal follows the *thread* that spawned the worker, not the process, and the executor spawns
  workers lazily from the thread that submits; so :class:`NodeProcessPool` submits every task from one
  thread of its own that lives as long as the pool (a job's thread ends with its job).
* A watchdog thread in the worker that checks ``os.getppid()`` every :data:`WATCHDOG_INTERVAL_S` and
  exits the worker when the parent is gone (re-parented): the fallback where ``prctl`` is missing.

Owns: the node's worker processes. May import: the standard library only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

__all__ = ["NodeProcessPool", "WATCHDOG_INTERVAL_S", "die_with_parent"]

#: How often a worker checks that its parent is alive (the fallback to ``PR_SET_PDEATHSIG``).
WATCHDOG_INTERVAL_S = 1.0
_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux); False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int, interval_s: float) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)  # the node is gone: nothing here is worth finishing
        time.sleep(interval_s)


def die_with_parent(parent_pid: int, interval_s: float = WATCHDOG_INTERVAL_S) -> None:
    """A worker's initializer: die when ``parent_pid`` (the node) dies, by ``prctl`` and by a watchdog thread.

    Exits at once if the parent is already gone (it died before ``prctl`` took effect)."""
    _set_parent_death_signal()
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid, interval_s), name="fedcredit-parent-watchdog", daemon=True).start()


class NodeProcessPool:
    """A spawned process pool whose workers die with this process (see the module docstring).

    ``map`` has the builtin's shape (the :data:`fedcredit.protocols.core.MapFn` contract): the tasks are
    submitted from the pool's own long-lived thread, and the results are consumed in the caller's thread.

    Args:
        max_workers: worker processes (default: the number of cores).
        watchdog_interval_s: how often each worker checks its parent.
    """

    def __init__(self, max_workers: int | None = None, *, watchdog_interval_s: float = WATCHDOG_INTERVAL_S) -> None:
        self._executor = ProcessPoolExecutor(max_workers=max_workers or os.cpu_count() or 1,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=die_with_parent, initargs=(os.getpid(), watchdog_interval_s))
        # the one thread that submits, so that the workers' parent-death signal is tied to a thread that lives as long as the pool
        self._submitter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fedcredit-pool-submit")

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], chunksize: int = 1) -> Iterator[Any]:
        """Like :meth:`ProcessPoolExecutor.map`; every task is submitted (and any worker spawned) by the pool's thread."""
        return self._submitter.submit(self._executor.map, fn, *iterables, chunksize=chunksize).result()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Like :meth:`ProcessPoolExecutor.submit`, submitted by the pool's thread."""
        return self._submitter.submit(self._executor.submit, fn, *args).result()

    def worker_pids(self) -> list[int]:
        """The pids of the workers started so far (for diagnostics and tests)."""
        return sorted((getattr(self._executor, "_processes", None) or {}).keys())

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers (``cancel_futures``: drop the tasks not yet started) and the submitting thread."""
        self._executor.shutdown(wait=wait, cancel_futures=cancel_futures)
        self._submitter.shutdown(wait=wait)

    def __enter__(self) -> NodeProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(cancel_futures=True)
