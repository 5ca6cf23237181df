"""Running protocol role programs over the relay: the driver and the endpoints.

:func:`drive` executes a role program from :mod:`protocols` (a generator of
Send/Recv/Progress actions) against an endpoint. Endpoints wrap every message
in one :class:`fedcredit.v1.Envelope` -- job, message id, sender, receiver,
step, sequence, payload type, classification, size and digest -- so there is
exactly one place where messages are built and checked.

* :class:`RelayEndpoint` is a party's: it streams messages to the coordinator
  and long-polls for its own. Payloads to the other party are sealed end to
  end, so the coordinator relays them without being able to read them. The
  keys are agreed per protocol phase from fresh ephemeral X25519 keys
  (:class:`fedcredit.runtime.security.sealing.SealSession`): before a phase's first payload to
  or from the peer, the endpoint sends its signed ``seal.hello`` and waits for
  the peer's (see :meth:`Endpoint.establish_sealing`).

* :class:`RoleRun` is one role of a job on a party node: its endpoint, its
  randomness and its process pool, which the node's PSI and training runners
  (:mod:`fedcredit.runtime.node.psi_runner`, :mod:`fedcredit.runtime.node.train_runner`) drive programs with.

The coordinator runs no role: it holds no key and only relays.
"""

from __future__ import annotations

import hashlib
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import grpc

from fedcredit.proto.v1 import envelope_pb2, relay_pb2, relay_pb2_grpc
from fedcredit.protocols.core import (Checkpoint, MapFn, Message, Progress, ProtocolStep, RandomSource, Recv, Role, RoleProgram, Send,
                            check_recv, check_send)
from fedcredit.protocols.errors import ProtocolError

from .codec import decode_payload, encode_payload
from .errors import CryptoError, DeadlineError, FedCreditError, RateLimitedError, TransportError, from_rpc_error
from .security.sealing import SEAL_CHECKPOINT_KEY, SealHello, SealSession, SealStep, Sealer, seal_phase, seal_sequence
from .security.signing import SigningIdentity, envelope_digest, envelope_fields, sign_digest, verify_digest
from .security.transport import STREAM_DEADLINE_S, chunk_bytes

__all__ = ["drive", "Endpoint", "RelayEndpoint", "RoleRun", "envelope_aad"]

_LOG = logging.getLogger(__name__)
RECEIVE_WAIT_MS = 10_000


def envelope_aad(env: envelope_pb2.Envelope) -> bytes:
    """Associated data binding a sealed payload to its envelope header."""
    fields = [env.job_id, env.message_id, env.sender, env.receiver, env.step, str(env.sequence), env.payload_type]
    return "\x1f".join(fields).encode("utf-8")


def message_id(job_id: str, sender: str, receiver: str, step: str, sequence: int) -> str:
    """A message's idempotent id: the same message (sent again after a retry or a restart) has the same id."""
    return hashlib.sha256("\x1f".join((job_id, sender, receiver, step, str(sequence))).encode("utf-8")).hexdigest()[:32]


def drive(role: Role, program: RoleProgram, endpoint: "Endpoint") -> Any:
    """Run ``program`` (one role of a protocol) to completion and return its result."""
    value: Any = None
    started = False
    while True:
        try:
            action = program.send(value) if started else next(program)
        except StopIteration as stop:
            return stop.value
        started = True
        value = None
        if isinstance(action, Send):
            endpoint.send(action.step, check_send(role, action), action.payload)
        elif isinstance(action, Recv):
            value = endpoint.recv(action.step, check_recv(role, action))
        elif isinstance(action, Progress):
            endpoint.progress(action)
        elif isinstance(action, Checkpoint):
            endpoint.checkpoint(action)
        else:
            raise ProtocolError(f"role {role} yielded {action!r}, not an action")


Recorder = Callable[[str, envelope_pb2.Envelope, Message, bytes], None]


class Endpoint(ABC):
    """Builds, signs and checks envelopes; subclasses move them.

    Every envelope is signed by its sender (Ed25519 over the envelope digest,
    which covers job, step, sequence and payload digest) and verified by its
    receiver before anything else is trusted. ``recorder`` is the transcript
    hook: it sees every message sent or received, with its decoded payload.

    ``sealers`` maps a peer party's name to the job's :class:`SealSession` with
    it: every payload to or from that peer is sealed, under the keys of its
    step's phase, agreed by one ``seal.hello`` exchange per phase.
    """

    def __init__(
        self,
        job_id: str,
        me: Role,
        names: Mapping[Role, str],
        *,
        signer: SigningIdentity,
        verify_keys: Mapping[str, Any],
        sealers: Mapping[str, SealSession] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.job_id = job_id
        self.me = me
        self.names = dict(names)
        self.name = self.names[me]
        self.signer = signer
        self.verify_keys = dict(verify_keys)
        self.sealers = dict(sealers or {})
        self._on_progress = on_progress
        self._on_checkpoint = on_checkpoint
        self._recorder = recorder
        self._send_seq: dict[tuple[str, str], int] = {}
        self._recv_seq: dict[tuple[str, str], int] = {}
        # After a restart: (step, peer, sequence) already sent / recorded as received before the crash.
        self.already_sent: set[tuple[str, str, int]] = set()
        self.already_received: set[tuple[str, str, int]] = set()
        self.bytes_sent = 0
        self.bytes_received = 0
        self._offered: set[tuple[str, str]] = set()  # (peer, phase) whose seal.hello this endpoint sent
        self._last_checkpoint: Checkpoint | None = None

    # -- to implement
    @abstractmethod
    def _deliver(self, env: envelope_pb2.Envelope, data: bytes) -> None: ...

    @abstractmethod
    def _fetch(self, sender: str, step: str, seq: int) -> tuple[envelope_pb2.Envelope, bytes]: ...

    # -- the one place messages are built and checked
    def send(self, step: ProtocolStep, to: Role, payload: Message) -> None:
        receiver = self.names[to]
        sealer = self._sealer(receiver, step)  # the phase's keys first: agreeing them sends and receives seal.hello
        key = (step.wire, receiver)
        seq = self._send_seq.get(key, 0)
        self._send_seq[key] = seq + 1
        if (step.wire, receiver, seq) in self.already_sent:
            return  # sent before a restart; the relay has it (and would drop a second copy)
        payload_type, data = encode_payload(payload)
        env = envelope_pb2.Envelope(
            job_id=self.job_id,
            message_id=message_id(self.job_id, self.name, receiver, step.wire, seq),
            sender=self.name,
            receiver=receiver,
            step=step.wire,
            sequence=seq,
            payload_type=payload_type,
            classification=type(payload).classification.value,
            sent_unix_ms=int(time.time() * 1000),
        )
        if sealer is not None:
            data = sealer.seal(envelope_aad(env), data)
            env.sealed = True
        env.payload_size = len(data)
        env.payload_sha256 = hashlib.sha256(data).digest()
        env.signature = sign_digest(self.signer, envelope_digest(envelope_fields(env)))
        if self._recorder:
            self._recorder("sent", env, payload, data)  # recorded before it leaves: nothing sent goes unrecorded
        self._deliver(env, data)
        self.bytes_sent += len(data)

    def recv(self, step: ProtocolStep, frm: Role) -> Message:
        sender = self.names[frm]
        sealer = self._sealer(sender, step)  # keys first: the peer may be waiting for this party's seal.hello
        seq = self._recv_seq.get((step.wire, sender), 0)
        env, data = self._fetch(sender, step.wire, seq)
        if (env.job_id, env.sender, env.receiver, env.step, env.sequence) != (self.job_id, sender, self.name, step.wire, seq):
            raise ProtocolError(f"relay returned the wrong message for {step.wire}#{seq} from {sender}")
        key = self.verify_keys.get(sender)
        if key is None:
            raise CryptoError(f"no verified signing key for {sender}: cannot accept its messages")
        try:
            verify_digest(key, envelope_digest(envelope_fields(env)), env.signature)
        except CryptoError:
            raise CryptoError(f"{step.wire}#{seq}: the envelope is not signed by {sender} (altered, replayed or forged)") from None
        if len(data) != env.payload_size or hashlib.sha256(data).digest() != env.payload_sha256:
            raise ProtocolError(f"payload of {step.wire}#{seq} from {sender} does not match its digest")
        wire = data  # as sent and digested; the transcript keeps these bytes
        if sealer is not None:
            if not env.sealed:
                raise ProtocolError(f"{step.wire} from {sender} must be sealed end to end but was not")
            data = sealer.open(envelope_aad(env), data)
        elif env.sealed:
            raise ProtocolError(f"{step.wire} from {sender} is sealed but no seal key is shared with {sender} for it")
        msg = decode_payload(env.payload_type, data, expected=step.spec.payload)
        if type(msg).classification.value != env.classification:
            raise ProtocolError(f"{step.wire}: envelope classification {env.classification!r} does not match the payload type")
        self._recv_seq[(step.wire, sender)] = seq + 1
        self.bytes_received += env.payload_size
        if self._recorder and (step.wire, sender, seq) not in self.already_received:
            self._recorder("received", env, msg, wire)
        return msg

    def progress(self, p: Progress) -> None:
        if self._on_progress:
            self._on_progress(p)

    def checkpoint(self, c: Checkpoint) -> None:
        """Persist a role's state before it continues. Without a handler the job cannot resume, and that is all.

        A checkpoint also keeps the sealing keys of its own phase (its ``stage`` names the phase, as its steps'
        wire names do), under :data:`~fedcredit.runtime.security.sealing.SEAL_CHECKPOINT_KEY`: a restarted party must open what
        the peer sealed before the crash. No other phase's keys, and no ephemeral private key, are ever written."""
        self._last_checkpoint = c
        self._persist_checkpoint()

    def _persist_checkpoint(self) -> None:
        c = self._last_checkpoint
        if c is None or self._on_checkpoint is None:
            return
        keys = {peer: s.export(c.stage) for peer, s in self.sealers.items() if s.sealer(c.stage) is not None}
        self._on_checkpoint(Checkpoint(c.stage, {**c.state, SEAL_CHECKPOINT_KEY: keys}) if keys else c)

    # -- sealing: one ephemeral key exchange per phase and peer
    def _role_of(self, node: str) -> Role:
        for role, name in self.names.items():
            if name == node:
                return role
        raise ProtocolError(f"{node!r} has no role in job {self.job_id}")

    def _sealer(self, peer: str, step: ProtocolStep) -> Sealer | None:
        """The sealer for a payload of ``step`` to or from ``peer``; None when the payload is not sealed
        (no session with ``peer``, or the hello itself). Agrees the phase's keys first if needed."""
        session = self.sealers.get(peer)
        if session is None or step is SealStep.HELLO:
            return None
        phase = seal_phase(step.wire)
        return session.sealer(phase) or self.establish_sealing(peer, phase)

    def offer_sealing(self, peer: str, phase: str) -> None:
        """Send ``peer`` this party's signed ephemeral key for ``phase`` (the first half of the exchange), once.

        Raises:
            CryptoError: this node restarted after sending its key for the phase and kept no keys for it
                (a checkpoint without them): the peer's payloads of that phase can no longer be opened.
        """
        session = self.sealers[peer]
        if session.sealer(phase) is not None or (peer, phase) in self._offered:
            return
        seq = seal_sequence(phase)
        wire = SealStep.HELLO.wire
        if (wire, peer, seq) in self.already_sent:
            raise CryptoError(f"cannot resume job {self.job_id}: this node sent {peer} its ephemeral sealing key for phase "
                              f"{phase!r} before it restarted, and kept no keys for that phase: run the job again")
        self._send_seq[(wire, peer)] = seq
        self.send(SealStep.HELLO, self._role_of(peer), session.hello(phase))
        self._offered.add((peer, phase))

    def establish_sealing(self, peer: str, phase: str) -> Sealer:
        """The keys of ``phase`` with ``peer``: send this party's ephemeral key (if not yet), receive the peer's,
        check its signature and derive. Blocks until the peer's ``seal.hello`` arrives.

        Raises:
            CryptoError: the peer's hello is refused (not signed by the peer for this job, phase and keys:
                substituted or replayed by the relay) or its envelope fails its checks.
        """
        session = self.sealers[peer]
        existing = session.sealer(phase)
        if existing is not None:
            return existing
        self.offer_sealing(peer, phase)
        self._recv_seq[(SealStep.HELLO.wire, peer)] = seal_sequence(phase)
        try:
            hello = self.recv(SealStep.HELLO, self._role_of(peer))
            if not isinstance(hello, SealHello):
                raise ProtocolError(f"seal.hello carried {type(hello).__name__}")
            sealer = session.accept(phase, hello)
        except (CryptoError, ProtocolError) as exc:
            raise CryptoError(f"refusing to seal phase {phase!r} of job {self.job_id} with {peer}: its ephemeral key exchange "
                              f"failed: {exc}") from None
        if self._last_checkpoint is not None and self._last_checkpoint.stage == phase:
            self._persist_checkpoint()  # the phase's first checkpoint came before its keys: keep them before going on
        return sealer

    def redeliver(self, env: envelope_pb2.Envelope, data: bytes) -> None:
        """After a restart: hand the relay again, as it was, a message this node recorded sending just before it
        stopped (it may have been cut off). The relay drops it if it has it already."""
        self._deliver(env, data)

    def restore_counters(self, steps: Any, sent: Mapping[str, int], recv_from: Mapping[str, int]) -> None:
        """After a restart: continue each step's sequence numbers where the checkpoint says."""
        by_wire = {s.wire: s.spec for s in steps}
        for wire, n in sent.items():
            spec = by_wire[wire]
            for to in spec.receivers:
                self._send_seq[(wire, self.names[to])] = int(n)
        for wire, n in recv_from.items():
            spec = by_wire[wire]
            for frm in spec.senders:
                self._recv_seq[(wire, self.names[frm])] = int(n)


class RelayEndpoint(Endpoint):
    """A party's endpoint: messages go through the coordinator's RelayService."""

    def __init__(self, channel: grpc.Channel, *args: Any, timeout_s: float = 900.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stub = relay_pb2_grpc.RelayServiceStub(channel)
        self._timeout_s = timeout_s

    def _deliver(self, env: envelope_pb2.Envelope, data: bytes) -> None:
        def requests() -> Iterator[relay_pb2.SendRequest]:
            yield relay_pb2.SendRequest(envelope=env)
            for chunk in chunk_bytes(data):
                yield relay_pb2.SendRequest(chunk=chunk)

        # Sent again, with backoff, within the endpoint's timeout, when the relay refused it for the party's rate
        # (nothing changed at the relay) or could not be reached (a dropped connection, a restarting coordinator):
        # the relay keeps one copy per message key and acknowledges a second copy without relaying it, so a
        # retry after a lost reply is harmless. Every other error, a job quota included, is final.
        deadline = time.monotonic() + self._timeout_s
        backoff = 0.05
        while True:
            try:
                self._stub.Send(requests(), timeout=STREAM_DEADLINE_S)
                return
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
                if not isinstance(err, (RateLimitedError, TransportError, DeadlineError)) or time.monotonic() + backoff > deadline:
                    raise err from None
                _LOG.info("could not send %s#%d (%s); retrying in %.2fs", env.step, env.sequence, err.code, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _fetch(self, sender: str, step: str, seq: int) -> tuple[envelope_pb2.Envelope, bytes]:
        deadline = time.monotonic() + self._timeout_s
        request = relay_pb2.ReceiveRequest(job_id=self.job_id, sender=sender, step=step, sequence=seq, wait_ms=RECEIVE_WAIT_MS)
        backoff = 0.2
        while True:
            try:
                env = None
                parts: list[bytes] = []
                for resp in self._stub.Receive(request, timeout=STREAM_DEADLINE_S):
                    if resp.HasField("envelope"):
                        env = resp.envelope
                    else:
                        parts.append(resp.chunk)
                if env is not None:
                    return env, b"".join(parts)
                backoff = 0.2
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
                if not isinstance(err, (TransportError, DeadlineError)):
                    raise err from None
                _LOG.warning("relay unavailable while waiting for %s#%d from %s: %s; retrying", step, seq, sender, err)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            if time.monotonic() > deadline:
                raise DeadlineError(f"no {step}#{seq} from {sender} within {self._timeout_s:.0f}s")


@dataclass(frozen=True)
class RoleRun:
    """One role of a job on a party node: where its programs send and receive, with what randomness, on which pool.

    ``pool(n_items, minimum)`` is the node's process pool's ``map`` for work over ``n_items`` items, or None
    below ``minimum`` items (or on one core)."""

    role: Role
    endpoint: Endpoint
    rng: RandomSource
    pool: Callable[[int, int], MapFn | None]

    def drive(self, program: RoleProgram) -> Any:
        """Run one of this role's programs to completion and return its result."""
        return drive(self.role, program, self.endpoint)

    def map_fn(self, n_items: int, minimum: int = 20_000) -> MapFn | None:
        return self.pool(n_items, minimum)


def describe_error(exc: BaseException, *, public: bool = False) -> tuple[str, str]:
    """(code, message) for reporting a failure without a stack trace.

    ``public``: the text that may leave the node (:attr:`FedCreditError.public_message`); an
    unexpected exception leaves only its type, since its text may hold anything."""
    if isinstance(exc, FedCreditError):
        return exc.code, exc.public_message if public else exc.message
    return "INTERNAL", type(exc).__name__ if public else f"{type(exc).__name__}: {exc}"
