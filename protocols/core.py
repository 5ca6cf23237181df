"""Protocol building blocks: roles, classified message types, steps and a pure driver.

A protocol is written once, for all its roles, in one module. Each role is a
generator that *yields actions* -- :class:`Send`, :class:`Recv`,
:class:`Progress` -- and receives the answer to each :class:`Recv`. The
generator never touches a network: the runtime (``federated``) routes the
actions over gRPC, and tests route them in memory with :func:`run_local`.

Every step of a protocol is declared in a :class:`ProtocolStep` enum whose
values are :class:`StepSpec` rows: wire name, who may send it, who receives it,
and the payload type. The driver checks every send and receive against that
table, so an out-of-order or mistyped message is rejected rather than silently
used (the failure mode of string-keyed put/get).

Payload types subclass exactly one classification base (:class:`Ciphertext`,
:class:`Masked`, :class:`Public`, :class:`Aggregate`, :class:`Plaintext`), so a
transcript can say what kind of information each message disclosed from its
type alone.

The shared toolkit every role program draws on, declared once here:
:class:`RandomSource` and :data:`MapFn` (the randomness and the pool a program
is given), :func:`recv_typed` (receive a step's message, checked and typed),
:func:`n_batches` / :func:`batch_bounds` / :func:`batches` (a list streamed as
one message per batch), and the seeded permutations :func:`seeded_permutation`
(labelled, SHAKE-256) and :func:`prg_permutation` (AES-CTR), with
:func:`permuted_records` to send a buffer of fixed-width records in a
permuted order.
"""

from __future__ import annotations

import enum
import hashlib
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Generator, Iterable, Iterator, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import ProtocolError

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "RandomSource",
    "MapFn",
    "check_unique_ids",
    "Role",
    "Classification",
    "Message",
    "Ciphertext",
    "key_owner_of",
    "Masked",
    "Public",
    "Aggregate",
    "Plaintext",
    "StepSpec",
    "ProtocolStep",
    "Send",
    "Recv",
    "Progress",
    "Checkpoint",
    "Action",
    "RoleProgram",
    "check_send",
    "check_recv",
    "check_payload",
    "recv_typed",
    "run_local",
    "tap",
    "n_batches",
    "batch_bounds",
    "batches",
    "seeded_permutation",
    "prg_permutation",
    "permuted_records",
]


@runtime_checkable
class RandomSource(Protocol):
    """Where every protocol draws its randomness: anything with ``getrandbits``.

    ``random.Random(seed)`` in tests (reproducible), ``secrets.SystemRandom()``
    in production. Protocols never create their own.
    """

    def getrandbits(self, k: int, /) -> int: ...


#: The largest payload the runtime relays (one message). A protocol whose plan needs a larger message
#: refuses the job before any work (BudgetError) instead of failing at the relay halfway through.
MAX_PAYLOAD_BYTES = 64 << 20

#: ``map_fn(worker, tasks)``: the builtin ``map`` or an executor's ``map``. Workers are
#: module-level functions and tasks plain data (bytes, ints, tuples), so a process pool
#: can pickle both.
MapFn = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]


def check_unique_ids(ids: Any, role: "Role") -> None:
    """Refuse a PSI input with repeated ids (they would match ambiguously)."""
    from .errors import DataError

    if len(set(ids)) != len(ids):
        raise DataError(f"PSI {role} ids contain duplicates; normalize them with prepare_ids first")


class Role(str, enum.Enum):
    """Protocol roles. ``bank``/``platform`` are deployment names, not roles."""

    GUEST = "guest"  # holds labels (the bank)
    HOST = "host"  # holds extra features (the platform)
    COORDINATOR = "coordinator"  # relays; holds the HE secret key in coordinated mode

    def __str__(self) -> str:
        return self.value


class Classification(str, enum.Enum):
    """What a message discloses to its receiver (and to the relay, if not sealed)."""

    CIPHERTEXT = "ciphertext"  # encrypted under a key the receiver does not hold
    MASKED = "masked"  # statistically or computationally hidden by fresh randomness
    PUBLIC = "public"  # public parameters (keys, salts, sizes fixed by the job)
    AGGREGATE = "aggregate"  # an aggregate the job lists as agreed (loss, AUC, counts)
    PLAINTEXT = "plaintext"  # per-sample or raw values in the clear (must be declared)

    def __str__(self) -> str:
        return self.value


class Message:
    """Base of all protocol payloads. Subclass exactly one classification base."""

    classification: ClassVar[Classification]

    def disclosed(self) -> dict[str, Any] | None:
        """What the receiver learns in the clear, summarized for the audit transcript.

        Public parameters and agreed aggregates return their (small) values;
        ciphertexts and masked values return None; plaintext messages return
        a summary and the reason they are sent.
        """
        return None


class Ciphertext(Message):
    """Encrypted payload. ``key_owner`` names the role that can decrypt it."""

    classification = Classification.CIPHERTEXT
    key_owner: ClassVar[Role] = Role.COORDINATOR
    #: True where the ciphertext is under the *sender's* own key (two-party mode):
    #: then the key owner is whoever sent it, see :func:`key_owner_of`.
    key_of_sender: ClassVar[bool] = False


def key_owner_of(message_type: type, sender: Role) -> Role | None:
    """The role that can decrypt a ciphertext message of ``message_type`` sent by ``sender``; None if not a ciphertext."""
    if not (isinstance(message_type, type) and issubclass(message_type, Ciphertext)):
        return None
    return sender if message_type.key_of_sender else message_type.key_owner


class Masked(Message):
    classification = Classification.MASKED


class Public(Message):
    classification = Classification.PUBLIC


class Aggregate(Message):
    classification = Classification.AGGREGATE


class Plaintext(Message):
    classification = Classification.PLAINTEXT


@dataclass(frozen=True)
class StepSpec:
    """One row of a protocol's message table."""

    wire: str  # stable wire name, e.g. "psi.guest_blinded"
    senders: tuple[Role, ...]
    receivers: tuple[Role, ...]
    payload: type[Message]
    doc: str = ""


class ProtocolStep(enum.Enum):
    """Base for a protocol's step enum. Members' values are :class:`StepSpec`."""

    @property
    def spec(self) -> StepSpec:
        spec: StepSpec = self.value
        return spec

    @property
    def wire(self) -> str:
        return self.spec.wire


@dataclass(frozen=True)
class Send:
    step: ProtocolStep
    payload: Message
    to: Role | None = None  # required when the step has several receivers


@dataclass(frozen=True)
class Recv:
    step: ProtocolStep
    frm: Role | None = None  # required when the step has several senders


@dataclass(frozen=True)
class Progress:
    """Progress report; the runtime forwards it to the coordinator's job status."""

    stage: str
    done: int
    total: int
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """State a role must persist before it continues, secrets included (e.g. PSI's scalar).

    A separate action from :class:`Progress`, so a secret can never ride along
    with a report that leaves the node: the runtime writes ``state`` to the
    party's own disk (readable by it only) before resuming the program, and
    sends it nowhere.
    """

    stage: str
    state: Mapping[str, Any] = field(repr=False)


Action = Send | Recv | Progress | Checkpoint
RoleProgram = Generator[Action, Any, Any]


def _peer(named: Role | None, peers: tuple[Role, ...], not_a_peer: str, ambiguous: str) -> Role:
    """The role at the other end of a step: ``named`` (one of ``peers``), or else the step's only peer."""
    if named is not None:
        if named not in peers:
            raise ProtocolError(not_a_peer)
        return named
    if len(peers) != 1:
        raise ProtocolError(ambiguous)
    return peers[0]


def check_send(role: Role, action: Send) -> Role:
    """Validate a send against the step table; return the receiving role."""
    spec = action.step.spec
    if role not in spec.senders:
        raise ProtocolError(f"role {role} may not send step {spec.wire}")
    if not isinstance(action.payload, spec.payload):
        raise ProtocolError(
            f"step {spec.wire} carries {spec.payload.__name__}, got {type(action.payload).__name__}"
        )
    return _peer(action.to, spec.receivers, f"step {spec.wire} cannot go to {action.to}",
                 f"step {spec.wire} has several receivers; name one with to=")


def check_recv(role: Role, action: Recv) -> Role:
    """Validate a receive against the step table; return the sending role."""
    spec = action.step.spec
    if role not in spec.receivers:
        raise ProtocolError(f"role {role} does not receive step {spec.wire}")
    return _peer(action.frm, spec.senders, f"step {spec.wire} is not sent by {action.frm}",
                 f"step {spec.wire} has several senders; name one with frm=")


def check_payload(step: ProtocolStep, payload: object) -> Message:
    """Check that a received payload has the type its step declares."""
    if not isinstance(payload, step.spec.payload):
        raise ProtocolError(
            f"step {step.wire} expects {step.spec.payload.__name__}, got {type(payload).__name__}"
        )
    return payload


_M = TypeVar("_M", bound=Message)


def recv_typed(step: ProtocolStep, payload_type: type[_M], frm: Role | None = None) -> Generator[Recv, object, _M]:
    """Receive one message of ``step`` and return its payload as ``payload_type``.

    The drivers (:func:`run_local`, the runtime) check every payload against
    the step table already; this check keeps a role program safe under any
    driver, and gives it the payload with its type. ``payload_type`` is the
    step's payload type (or a base of it).

    Raises:
        ProtocolError: naming the step, if the payload is not of the step's type.
    """
    payload = check_payload(step, (yield Recv(step, frm)))
    if not isinstance(payload, payload_type):
        raise ProtocolError(f"step {step.wire} expects {payload_type.__name__}, got {type(payload).__name__}")
    return payload


def tap(
    program: RoleProgram,
    on_action: Callable[[Action], None],
    on_reply: Callable[[Recv, Any], None] | None = None,
) -> RoleProgram:
    """Run ``program`` unchanged, showing each action it yields to ``on_action`` and,
    with ``on_reply``, each received payload with the ``Recv`` it answers.

    For tests and benchmarks that record or count messages without touching the
    protocol: ``run_local({role: tap(program, log.append)})``. Returns what
    ``program`` returns.
    """
    reply: Any = None
    while True:
        try:
            action = program.send(reply)
        except StopIteration as stop:
            return stop.value
        on_action(action)
        reply = yield action
        if on_reply is not None and isinstance(action, Recv):
            on_reply(action, reply)


def run_local(programs: Mapping[Role, RoleProgram], max_rounds: int = 10_000_000) -> dict[Role, Any]:
    """Run role programs to completion in memory, with no network and no threads.

    Messages are queued per ``(step, sender, receiver)`` in FIFO order, which is
    exactly the ordering the gRPC runtime provides with sequence numbers.
    Progress and Checkpoint actions are ignored.

    Returns each role's return value. Raises :class:`ProtocolError` on deadlock.
    """
    queues: dict[tuple[str, Role, Role], deque[Message]] = {}
    pending: dict[Role, Recv | None] = {r: None for r in programs}
    results: dict[Role, Any] = {}
    live = dict(programs)
    inbox_value: dict[Role, Any] = {r: None for r in programs}
    started: set[Role] = set()

    def advance(role: Role) -> bool:
        """Run ``role`` until it blocks or finishes. Return True if it made progress."""
        gen = live[role]
        progressed = False
        while True:
            want = pending[role]
            if want is not None:
                frm = check_recv(role, want)
                q = queues.get((want.step.wire, frm, role))
                if not q:
                    return progressed
                inbox_value[role] = check_payload(want.step, q.popleft())
                pending[role] = None
            try:
                if role not in started:
                    started.add(role)
                    action = next(gen)
                else:
                    action = gen.send(inbox_value[role])
                inbox_value[role] = None
            except StopIteration as stop:
                results[role] = stop.value
                del live[role]
                return True
            progressed = True
            if isinstance(action, Send):
                to = check_send(role, action)
                queues.setdefault((action.step.wire, role, to), deque()).append(action.payload)
            elif isinstance(action, Recv):
                pending[role] = action
            elif isinstance(action, (Progress, Checkpoint)):
                pass
            else:
                raise ProtocolError(f"role {role} yielded {action!r}, not an action")

    for _ in range(max_rounds):
        if not live:
            return results
        moved = False
        for role in list(live):
            moved |= advance(role)
        if not moved:
            waiting = {str(r): w.step.wire for r in live if (w := pending[r]) is not None}
            raise ProtocolError(f"protocol deadlock; roles waiting on: {waiting}")
    raise ProtocolError("protocol did not finish within max_rounds")


# --------------------------------------------------------------------------- batches


def n_batches(n: int, batch_size: int) -> int:
    """How many batches (messages, chunks) a list of ``n`` takes; every batch but the last is full."""
    return -(-n // batch_size)


def batch_bounds(k: int, n: int, batch_size: int) -> tuple[int, int]:
    """Positions ``[lo, hi)`` of batch ``k`` of a list of ``n``."""
    lo = k * batch_size
    return lo, min(n, lo + batch_size)


def batches(n: int, batch_size: int, start: int = 0) -> Iterator[tuple[int, int, int]]:
    """``(k, lo, hi)`` for each batch ``k`` of a list of ``n``, from batch ``start`` on: its positions ``[lo, hi)``."""
    for k in range(start, n_batches(n, batch_size)):
        lo, hi = batch_bounds(k, n, batch_size)
        yield k, lo, hi


# --------------------------------------------------------------------------- seeded permutations


def seeded_permutation(n: int, seed: bytes, label: bytes) -> array[int]:
    """A uniformly random permutation of range(n), drawn deterministically from ``seed``.

    Each position gets a 128-bit key from SHAKE-256(tag ‖ label ‖ seed), and
    the permutation is the order that sorts the keys: uniform as long as no
    two keys tie, i.e. within statistical distance n²·2^-129 of uniform
    (2^-89 at n = 2^20); ties, should one happen, keep index order. A resumed
    role re-creates the same shuffle from its checkpointed seed; distinct
    labels give independent permutations from one seed. Vectorized (numpy),
    ~0.3 s at 2^20; kept as an ``array('q')``: 8 bytes per element. (The tag
    is the one the ECDH-PSI first drew its shuffles with; it stays, so every
    permutation stays the same.)
    """
    perm = array("q")
    if n == 0:
        return perm
    stream = hashlib.shake_256(
        b"fedcredit/v1/psi-shuffle" + len(label).to_bytes(2, "big") + label + seed
    ).digest(16 * n)
    keys = np.frombuffer(stream, dtype="<u8").reshape(n, 2)
    order = np.lexsort((keys[:, 1], keys[:, 0]))  # sorts by keys[:, 0], then keys[:, 1]
    perm.frombytes(order.astype(np.int64).tobytes())
    return perm


def prg_permutation(n: int, seed: bytes) -> np.ndarray:
    """A uniform permutation of range(n) (int64 array), drawn from a 32-byte secret ``seed`` by AES-CTR.

    Sorts n 64-bit AES-CTR keys; if two keys tie (probability ≤ n²·2^-65),
    all keys are redrawn, so the result is exactly uniform given the PRG.
    (The OT-PSI's shuffle; :func:`seeded_permutation` is the labelled one.)
    """
    for attempt in range(64):
        nonce = attempt.to_bytes(16, "big")
        stream = Cipher(algorithms.AES(seed), modes.CTR(nonce)).encryptor().update(bytes(8 * n))
        keys = np.frombuffer(stream, dtype="<u8")
        order = np.argsort(keys).astype(np.int64)
        if n < 2 or not np.any(keys[order[1:]] == keys[order[:-1]]):
            return order
    raise ProtocolError("could not draw a permutation")  # probability < 2^-1000


def permuted_records(packed: bytes | bytearray, width: int, perm: Sequence[int], lo: int, hi: int) -> tuple[bytes, ...]:
    """Positions ``[lo, hi)`` of a stream of ``width``-byte records sent in ``perm`` order.

    ``packed`` holds the records back to back; stream position p carries record
    ``perm[p]``. One batch at a time, so no permuted copy of the whole buffer is made.
    """
    return tuple(bytes(packed[width * perm[i] : width * (perm[i] + 1)]) for i in range(lo, hi))
