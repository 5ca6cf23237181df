"""Where a party node's heavy kernels run: its own process pool, or the bank's Dask cluster.

A kernel is a pure, module-level function of plain data (bytes, ints, tuples): PSI's hashing and scalar
multiplications (:func:`fedcredit.protocols.psi.ecdh.hash_blind_worker` and its siblings), Paillier's
encryption randomness, scoring's batches. The protocols already split their work into chunks and call a
``map_fn`` (:data:`fedcredit.protocols.core.MapFn`); an :class:`Executor` is what supplies it.

* ``local`` (:class:`LocalExecutor`, the default): :class:`~fedcredit.runtime.node.workers.NodeProcessPool`,
  spawned worker processes that die with the node. Behaviour is what it always was.
* ``dask`` (:class:`DaskExecutor`): a Dask distributed scheduler inside the bank's network
  (``dask scheduler`` and ``dask worker`` processes on its own machines), reached at ``address``, with
  mutual TLS when the config names certificates. It needs the ``cluster`` extra (``pip install
  'fedcredit[cluster]'``), and every worker needs fedcredit installed: kernels travel by reference.

What a kernel receives is what it needs and nothing more: a chunk of ids or points and, for blinding, the
job's secret scalar. So that scalar does reach the bank's own workers, over the cluster's transport, inside
its network; it never reaches anything outside it. Only the node talks to the coordinator: workers open no
connection to the federation, hold no certificate of it and see no message of it.

Owns: choosing and running the executor. May import: the standard library, :mod:`.workers`,
:mod:`fedcredit.runtime.config` and :mod:`fedcredit.runtime.errors`; ``distributed`` lazily.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

from ..config import ExecutorConfig
from ..errors import ConfigError

__all__ = ["Executor", "TaskHandle", "LocalExecutor", "DaskExecutor", "make_executor", "DEFAULT_MIN_ITEMS"]

#: Work over fewer items than this runs in the node's own thread (the protocols' own default threshold).
DEFAULT_MIN_ITEMS = 20_000


@runtime_checkable
class TaskHandle(Protocol):
    """One submitted task: ``result()`` blocks until it is done and returns its value (or raises its error)."""

    def result(self) -> Any: ...


@runtime_checkable
class Executor(Protocol):
    """Runs pure kernels over chunks of a party's work.

    Attributes:
        kind: ``local`` or ``dask``.
    """

    kind: str

    def workers(self) -> int:
        """How many tasks it runs at once (its worker processes or threads)."""
        ...

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Submit ``fn(task)`` for every task now; yield the results in order (a :data:`MapFn`)."""
        ...

    def submit(self, fn: Callable[..., Any], *args: Any) -> TaskHandle:
        """Submit one ``fn(*args)``."""
        ...

    def gather(self, handles: Iterable[TaskHandle]) -> list[Any]:
        """The results of submitted tasks, in the order given."""
        ...

    def close(self) -> None:
        """Stop using it: its own workers stop; a shared cluster keeps running."""
        ...


class LocalExecutor:
    """The node's own process pool (:class:`~fedcredit.runtime.node.workers.NodeProcessPool`), started on first use.

    Args:
        max_workers: worker processes (default: the number of cores).
    """

    kind = "local"

    def __init__(self, max_workers: int | None = None) -> None:
        self._max_workers = max_workers or os.cpu_count() or 1
        self._pool: Any = None
        self._lock = threading.Lock()

    def _started(self) -> Any:
        with self._lock:
            if self._pool is None:
                from .workers import NodeProcessPool

                self._pool = NodeProcessPool(self._max_workers)  # its workers die with this node, even after kill -9
            return self._pool

    def workers(self) -> int:
        return self._max_workers

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        return self._started().map(fn, tasks)

    def submit(self, fn: Callable[..., Any], *args: Any) -> TaskHandle:
        return self._started().submit(fn, *args)

    def gather(self, handles: Iterable[TaskHandle]) -> list[Any]:
        return [h.result() for h in handles]

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None


class DaskExecutor:
    """Kernels as tasks of a Dask distributed cluster (``tcp://`` or ``tls://`` scheduler address).

    Tasks are submitted with ``pure=False`` (two chunks with equal bytes are still two tasks: nothing is cached
    by content on the scheduler) and each result is released as soon as it is read.

    Args:
        address: the scheduler, e.g. ``tls://scheduler.bank.internal:8786``.
        security: a ``distributed.Security`` (mutual TLS), or None for plain ``tcp://``.
        timeout_s: how long to wait for the scheduler when connecting.

    Raises:
        ConfigError: ``distributed`` is not installed, or the scheduler cannot be reached.
    """

    kind = "dask"

    def __init__(self, address: str, *, security: Any = None, timeout_s: float = 30.0) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise ConfigError("executor kind 'dask' needs Dask distributed: pip install 'fedcredit[cluster]'") from None
        try:
            self._client = Client(address, security=security, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"executor: cannot reach the Dask scheduler at {address}: {type(exc).__name__}") from None
        self.address = address

    def workers(self) -> int:
        info = self._client.scheduler_info()
        return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        futures = self._client.map(fn, list(tasks), pure=False)  # all queued now: the caller works while they run
        return self._in_order(futures)

    @staticmethod
    def _in_order(futures: list[Any]) -> Iterator[Any]:
        try:
            for i, f in enumerate(futures):
                yield f.result()
                futures[i] = None  # release it on the cluster
        finally:
            for f in futures:
                if f is not None:
                    f.cancel()

    def submit(self, fn: Callable[..., Any], *args: Any) -> TaskHandle:
        handle: TaskHandle = self._client.submit(fn, *args, pure=False)
        return handle

    def gather(self, handles: Iterable[TaskHandle]) -> list[Any]:
        return list(self._client.gather(list(handles)))

    def close(self) -> None:
        self._client.close()


def make_executor(cfg: ExecutorConfig) -> Executor:
    """The executor a party's config names (``executor: {kind: local}`` by default)."""
    if cfg.kind == "local":
        return LocalExecutor(cfg.workers)
    security = None
    if cfg.tls is not None:
        try:
            from distributed import Security
        except ImportError:
            raise ConfigError("executor kind 'dask' needs Dask distributed: pip install 'fedcredit[cluster]'") from None
        security = Security(tls_ca_file=str(cfg.tls.ca), tls_client_cert=str(cfg.tls.cert), tls_client_key=str(cfg.tls.key),
                            require_encryption=True)
    assert cfg.address is not None  # the config's validator requires it for dask
    return DaskExecutor(cfg.address, security=security, timeout_s=cfg.connect_timeout_s)
