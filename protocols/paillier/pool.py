"""An offline pool of precomputed encryption randomness.

A DJN obfuscator ``hs^α`` (see :mod:`.encrypt`) does not depend on the
plaintext, so it can be computed before the plaintext exists: between batches,
while waiting for the network, or on other cores. With a filled pool, online
encryption is one product per value (:func:`~.encrypt.encrypt_with_factors`)
instead of ``|n|/(2w)`` of them.

The pool itself is pure: it computes nothing unless :meth:`RandomnessPool.fill`
is called, and it never starts a thread or a process. The runtime decides where
filling happens, e.g.::

    # in a background thread, the work done on other cores:
    pool.fill(4096, map_fn=process_executor.map)
    # or: tasks built here, run anywhere, results handed back
    for factors in executor.map(compute_factors_task, pool.tasks(4096)):
        pool.add(factors)

:meth:`fill`, :meth:`add`, :meth:`take` and :attr:`available` may be called
from different threads at once: the factors live in a :class:`collections.deque`
whose ``extend`` and ``popleft`` are atomic in CPython, so a factor is handed
out **at most once** (reusing an obfuscator would link two ciphertexts).
"""

from __future__ import annotations

import operator
from collections import deque
from typing import Any, Iterable

from gmpy2 import mpz

from .encrypt import DEFAULT_FACTOR_CHUNK, Encryptor
from .keys import PaillierPublicKey
from .parallel import MapFn

__all__ = ["RandomnessPool"]


class RandomnessPool:
    """Precomputed obfuscators ``hs^α`` for one :class:`~.encrypt.Encryptor`.

    Args:
        encryptor: whose key, fixed base and table compute the factors; its rng
            draws the exponents.
        capacity: optional bound on the number of factors held (each is one
            ciphertext in memory, 512 bytes at 2048 bits); ``fill()`` with no
            count tops the pool up to it.

    Raises:
        ValueError: if ``capacity`` is not positive.
    """

    __slots__ = ("encryptor", "capacity", "_factors")

    def __init__(self, encryptor: Encryptor, *, capacity: int | None = None) -> None:
        if capacity is not None:
            capacity = operator.index(capacity)
            if capacity < 1:
                raise ValueError("capacity must be >= 1")
        self.encryptor = encryptor
        self.capacity = capacity
        self._factors: deque[mpz] = deque()

    @property
    def public_key(self) -> PaillierPublicKey:
        """The key the factors encrypt 0 under."""
        return self.encryptor.public_key

    @property
    def available(self) -> int:
        """Factors ready to be taken now."""
        return len(self._factors)

    def _room(self, count: int | None) -> int:
        if count is None:
            if self.capacity is None:
                raise ValueError("fill() needs a count when the pool has no capacity")
            return max(0, self.capacity - self.available)
        count = operator.index(count)
        if count < 0:
            raise ValueError("count must be >= 0")
        if self.capacity is not None:
            count = min(count, max(0, self.capacity - self.available))
        return count

    def tasks(self, count: int | None = None, chunk_size: int = DEFAULT_FACTOR_CHUNK) -> list[tuple[int, int, int, int, tuple[int, ...]]]:
        """Draw exponents for ``count`` factors and return picklable tasks, computing nothing.

        Run them with :func:`~.encrypt.compute_factors_task` anywhere and hand
        each result to :meth:`add`.

        Args:
            count: factors wanted (``None``: up to ``capacity``).
            chunk_size: exponents per task.
        """
        return self.encryptor.factor_tasks(self._room(count), chunk_size)

    def fill(
        self,
        count: int | None = None,
        *,
        map_fn: MapFn | None = None,
        chunk_size: int = DEFAULT_FACTOR_CHUNK,
    ) -> int:
        """Compute ``count`` factors (through ``map_fn`` if given) and add them.

        Deterministic given the encryptor's rng state. The new factors become
        available together, when the computation is done.

        Args:
            count: how many (``None``: up to ``capacity``); clipped to the free capacity.
            map_fn: ``map``-like callable (see :mod:`.parallel`); ``None`` = serial.
            chunk_size: exponents per task when ``map_fn`` is given.

        Returns:
            The number of factors added.
        """
        count = self._room(count)
        if count == 0:
            return 0
        factors = self.encryptor.random_factors(count, map_fn=map_fn, chunk_size=chunk_size)
        self._factors.extend(factors)
        return len(factors)

    def add(self, factors: Iterable[Any]) -> None:
        """Add factors computed elsewhere (e.g. by :func:`~.encrypt.compute_factors_task`).

        They must be fresh ``hs^α`` values for this pool's key, each used once.

        Raises:
            ValueError: if a factor is not in ``(0, n²)``.
        """
        nsq = self.public_key.nsquare
        checked = []
        for f in factors:
            f = f if type(f) is mpz else mpz(operator.index(f))
            if not 0 < f < nsq:
                raise ValueError("an obfuscating factor is out of range (0, n^2)")
            checked.append(f)
        self._factors.extend(checked)

    def take(self, k: int) -> list[mpz]:
        """Remove and return **up to** ``k`` factors (fewer if the pool runs dry).

        Callers compute whatever is missing themselves, as
        :meth:`Encryptor.encrypt_raw_many` does.

        Raises:
            ValueError: if ``k < 0``.
        """
        k = operator.index(k)
        if k < 0:
            raise ValueError("k must be >= 0")
        out: list[mpz] = []
        popleft = self._factors.popleft
        try:
            for _ in range(k):
                out.append(popleft())
        except IndexError:
            pass
        return out

    def clear(self) -> int:
        """Discard every factor held (e.g. when the key is retired). Returns how many."""
        dropped = 0
        popleft = self._factors.popleft
        try:
            while True:
                popleft()
                dropped += 1
        except IndexError:
            return dropped

    def __repr__(self) -> str:
        return f"RandomnessPool({self.public_key!r}, available={self.available}, capacity={self.capacity})"
