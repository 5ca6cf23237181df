"""The relay's store and its limits: the mailbox, per-job quotas and per-party rate limits.

The coordinator's :class:`~fedcredit.runtime.coordinator.service.RelayServicer` charges every
message to its job before reading the payload (:meth:`Mailbox.admit`: bytes and
messages per job), holds it until the receiver takes it (:meth:`Mailbox.put`:
undelivered bytes per job), and takes a token from the sender's bucket
(:class:`RateLimiter`: messages per second per party). Every refusal is a
:class:`~fedcredit.runtime.errors.QuotaError` (``RESOURCE_EXHAUSTED``) naming the limit
and its setting in the coordinator config's ``relay`` section, never a value
from a payload. The settings are :class:`fedcredit.runtime.config.RelayLimits`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fedcredit.proto.v1 import envelope_pb2

from ..config import RelayLimits
from .store import Store
from ..errors import MessageNotKeptError, QuotaError, RateLimitedError

__all__ = ["Mailbox", "RateLimiter"]

Key = tuple[str, str, str, str, int]


class Mailbox:
    """Relayed messages waiting for their receiver, keyed by (job, receiver, sender, step, sequence).

    Delivery is exactly-once per key: a message with a key already seen in the
    job (a replay, or a resumed sender sending a batch again) is not delivered
    a second time. Delivered messages are kept, within ``retain_bytes`` per job
    (``relay.retain_bytes``, oldest dropped first), so a receiver that restarts from a checkpoint can fetch them
    again; asking for one no longer kept raises :class:`~fedcredit.runtime.errors.MessageNotKeptError` at once.
    ``limits`` bounds each job's relayed messages and bytes and what it may hold undelivered.
    """

    def __init__(self, retain_bytes: int | None = None, limits: RelayLimits | None = None, store: Store | None = None) -> None:
        self._items: dict[Key, tuple[envelope_pb2.Envelope, bytes]] = {}
        self._seen: dict[str, set[Key]] = {}
        self._delivered: dict[str, dict[Key, tuple[envelope_pb2.Envelope, bytes]]] = {}
        self._delivered_bytes: dict[str, int] = {}
        self._limits = limits or RelayLimits()
        self._retain = retain_bytes if retain_bytes is not None else self._limits.retain_bytes
        self._pending: dict[str, int] = {}  # job -> bytes put and not yet taken
        self._charged: dict[str, tuple[int, int]] = {}  # job -> (messages, bytes) admitted
        self._cond = threading.Condition()
        self._store = store
        if store is not None:
            self._load(store)

    def _load(self, store: Store) -> None:
        """A restarted coordinator's mailbox: what was relayed and kept before it stopped."""
        for key, env_bytes, data, delivered in store.relay_load():
            env = envelope_pb2.Envelope.FromString(env_bytes)
            job = key[0]
            self._seen.setdefault(job, set()).add(key)
            messages, total = self._charged.get(job, (0, 0))
            self._charged[job] = (messages + 1, total + env.payload_size)
            if delivered is None:  # delivered and no longer kept: only its key is
                continue
            if delivered:
                self._delivered.setdefault(job, {})[key] = (env, data)
                self._delivered_bytes[job] = self._delivered_bytes.get(job, 0) + len(data)
            else:
                self._items[key] = (env, data)
                self._pending[job] = self._pending.get(job, 0) + len(data)

    def jobs(self) -> set[str]:
        """The jobs the mailbox holds anything of."""
        with self._cond:
            return {k[0] for k in self._items} | set(self._delivered)

    def seen(self, env: envelope_pb2.Envelope) -> bool:
        """Whether the message's key was already relayed in its job (a retried or repeated Send)."""
        key = (env.job_id, env.receiver, env.sender, env.step, env.sequence)
        with self._cond:
            return key in self._seen.get(env.job_id, ())

    def admit(self, job_id: str, size: int) -> None:
        """Charge one message of ``size`` bytes to its job, before its payload is read.

        Raises:
            QuotaError: the job would pass ``relay.job_max_messages`` or ``relay.job_max_bytes``; nothing is charged.
        """
        lim = self._limits
        with self._cond:
            messages, total = self._charged.get(job_id, (0, 0))
            messages, total = messages + 1, total + size
            if messages > lim.job_max_messages:
                raise QuotaError(f"job {job_id} reached its relay quota of {lim.job_max_messages} messages (relay.job_max_messages)")
            if total > lim.job_max_bytes:
                raise QuotaError(f"job {job_id} reached its relay quota of {lim.job_max_bytes} bytes (relay.job_max_bytes)")
            self._charged[job_id] = (messages, total)

    def charged(self, job_id: str) -> tuple[int, int]:
        """(messages, bytes) admitted for the job so far."""
        with self._cond:
            return self._charged.get(job_id, (0, 0))

    def put(self, env: envelope_pb2.Envelope, data: bytes, *, redeliver: bool = False) -> bool:
        """Store a message; False if its key was already seen in this job (it is then dropped).

        Raises:
            QuotaError: the job would hold more than ``relay.job_max_pending_bytes`` undelivered (a message put
                back after a broken delivery, ``redeliver``, is never refused).
        """
        key = (env.job_id, env.receiver, env.sender, env.step, env.sequence)
        for stage in ("check", "keep"):
            with self._cond:
                seen = self._seen.setdefault(env.job_id, set())
                if key in self._items or (key in seen and not redeliver):
                    return False
                pending = self._pending.get(env.job_id, 0) + len(data)
                limit = self._limits.job_max_pending_bytes
                if pending > limit and not redeliver:
                    if stage == "keep" and self._store is not None:  # filled up meanwhile: what was written goes
                        self._store.relay_discard(key)
                    raise QuotaError(f"job {env.job_id} would hold more than {limit} undelivered bytes at the relay "
                                     "(relay.job_max_pending_bytes)")
                if stage == "keep" or self._store is None:
                    seen.add(key)
                    self._items[key] = (env, data)
                    self._pending[env.job_id] = pending
                    self._cond.notify_all()
                    return True
            # kept on disk before the sender hears it was relayed, and outside the mailbox's lock: the other
            # handlers (every job's) go on meanwhile; the checks above are made again after it
            self._store.relay_put(key, env.SerializeToString(), data, redeliver=redeliver)
        raise AssertionError("unreachable")

    def _retain_delivered(self, key: Key, item: tuple[envelope_pb2.Envelope, bytes]) -> None:
        job = key[0]
        kept = self._delivered.setdefault(job, {})
        previous = kept.pop(key, None)  # delivered again after a broken stream: counted once, kept as the newest
        total = self._delivered_bytes.get(job, 0) + len(item[1]) - (len(previous[1]) if previous is not None else 0)
        kept[key] = item
        while total > self._retain and kept:
            oldest = next(iter(kept))
            total -= len(kept.pop(oldest)[1])
            if self._store is not None:
                self._store.relay_forget(oldest)
        self._delivered_bytes[job] = total

    def take(self, job_id: str, receiver: str, sender: str, step: str, seq: int, wait_s: float) -> tuple[envelope_pb2.Envelope, bytes] | None:
        key = (job_id, receiver, sender, step, seq)
        deadline = time.monotonic() + wait_s
        with self._cond:
            while key not in self._items:
                again = self._delivered.get(job_id, {}).get(key)
                if again is not None:  # the receiver restarted from a checkpoint
                    return again
                if key in self._seen.get(job_id, ()):  # relayed, taken, and dropped from the retention since
                    raise MessageNotKeptError(
                        f"job {job_id}: {receiver} asked again for {step}#{seq} from {sender}, which the relay delivered and "
                        f"no longer keeps (it keeps {self._retain} bytes of delivered messages per job, relay.retain_bytes): "
                        "the receiver restarted from a checkpoint older than that")
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            item = self._items.pop(key)
            self._pending[job_id] = self._pending.get(job_id, 0) - len(item[1])
            if self._store is not None:
                self._store.relay_delivered(key)
            self._retain_delivered(key, item)
            return item

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def drop_job(self, job_id: str) -> int:
        with self._cond:
            keys = [k for k in self._items if k[0] == job_id]
            for k in keys:
                del self._items[k]
            for per_job in (self._seen, self._delivered, self._delivered_bytes, self._pending, self._charged):
                per_job.pop(job_id, None)
            if self._store is not None:
                self._store.relay_drop_job(job_id)
            self._cond.notify_all()
            return len(keys)

    def pending_bytes(self) -> int:
        with self._cond:
            return sum(self._pending.values())


class RateLimiter:
    """A token bucket per party: ``rate`` messages per second on average, ``burst`` at once, over all its jobs.

    ``clock`` is a parameter so tests can drive time.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, got {rate} and {burst}")
        self.rate, self.burst = rate, burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # party -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, party: str) -> None:
        """Spend one of ``party``'s tokens.

        Raises:
            RateLimitedError: the bucket is empty; the call is refused and nothing else changes (the sender may retry).
        """
        with self._lock:
            now = self._clock()
            tokens, then = self._buckets.get(party, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - then) * self.rate)
            if tokens < 1.0:
                self._buckets[party] = (tokens, now)
                raise RateLimitedError(f"{party} exceeded the relay's rate limit of {self.rate:g} messages per second, "
                                 f"bursts of {self.burst} (relay.party_messages_per_s, relay.party_burst)")
            self._buckets[party] = (tokens - 1.0, now)
