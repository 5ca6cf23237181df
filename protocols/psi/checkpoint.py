"""Checkpoints of the balanced ECDH-PSI: what a role persists to resume after a crash, and its tracker.

A role run with ``checkpoint=True`` (implied by ``resume``) yields, before
every ``Progress``, a :class:`~fedcredit.protocols.core.Checkpoint` action whose
``state`` is a :class:`PsiCheckpoint` as a plain dict -- **with the role's
secret scalar and shuffle seed**, which is why it is an action of its own and
never rides in a progress report. :class:`Tracker` holds a role's secrets and
message counters and makes both actions; the flow is in
:mod:`fedcredit.protocols.psi.protocol`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generator, Mapping, Sequence

from ..core import Checkpoint, Progress, ProtocolStep, RandomSource, Recv, Role, Send, recv_typed
from ..errors import ProtocolError
from .ecdh import POINT_BYTES, random_scalar
from .messages import MAX_SET_SIZE, PsiParams, SetSize

__all__ = ["PsiCheckpoint", "Tracker"]

_CHECKPOINT_TAG = b"fedcredit/v1/psi-checkpoint"
_CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class PsiCheckpoint:
    """Where a role stands after its last completed batch, enough to resume it.

    Yielded as a :class:`~fedcredit.protocols.core.Checkpoint` action's ``state`` (as :meth:`to_dict`) when a
    role runs with ``checkpoint=True``; pass :meth:`from_dict` of the last one
    back as ``resume=`` to continue. A resumed role is deterministic: with the
    same ids and params it re-creates exactly the messages it sent before.

    Attributes:
        role: the role it belongs to.
        job: SHA-256 binding the checkpoint to the role, the params (salt,
            mode, batch size) and the id list; resuming with anything else
            raises :class:`~fedcredit.protocols.errors.ProtocolError`.
        scalar: **secret** -- the role's blinding scalar.
        shuffle_seed: **secret** -- seeds the role's permutations (σ/π, τ).
        peer_size: the peer's announced size, -1 until received.
        sent: wire name -> messages of that step already sent. The resumed
            role sends message number ``sent[wire]`` next.
        recv_from: wire name -> the sequence number the resumed role asks for
            first. It can be lower than the number already received: the
            guest keeps its lookup table in memory and rebuilds it by reading
            its receive steps again from 0.

    The runtime's part:

    * Persist every checkpoint synchronously, before the program continues
      (the first one comes before any message is sent, so the secret scalar
      is on disk before anything derived from it leaves), and only in the
      party's own storage (mode 0600): ``scalar`` and ``shuffle_seed`` are as
      secret as the ids themselves; the coordinator must never see them.
    * On resume set the endpoint's send counter of each step to ``sent`` and
      its receive counter to ``recv_from``.
    * A crash between a send and the next checkpoint makes the resumed role
      send that message again, byte for byte (its payload is a deterministic
      function of ids, params and checkpoint). Skip a send whose sequence was
      already delivered (ideally after checking the payload digest matches).
    * Keep every received message with a sequence number ≥ ``recv_from`` of
      its step (a local spool, written before the payload is handed to the
      program): the relay drops a message once delivered, and the resumed
      role will ask for it again.
    """

    role: Role
    job: bytes
    scalar: bytes
    shuffle_seed: bytes
    peer_size: int = -1
    sent: Mapping[str, int] = field(default_factory=dict)
    recv_from: Mapping[str, int] = field(default_factory=dict)

    version: ClassVar[int] = _CHECKPOINT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (bytes as hex). Contains the secrets under ``"secret"``."""
        return {
            "version": _CHECKPOINT_VERSION,
            "protocol": "psi.ecdh",
            "role": self.role.value,
            "job": self.job.hex(),
            "secret": {"scalar": self.scalar.hex(), "shuffle_seed": self.shuffle_seed.hex()},
            "peer_size": self.peer_size,
            "sent": {k: int(v) for k, v in sorted(self.sent.items())},
            "recv_from": {k: int(v) for k, v in sorted(self.recv_from.items())},
        }

    def public_view(self) -> dict[str, Any]:
        """:meth:`to_dict` without the secrets (safe for logs and job status)."""
        d = self.to_dict()
        del d["secret"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PsiCheckpoint":
        """Parse :meth:`to_dict` output. Raises ProtocolError if malformed."""
        try:
            if d["version"] != _CHECKPOINT_VERSION or d["protocol"] != "psi.ecdh":
                raise ProtocolError(f"unsupported PSI checkpoint version {d.get('version')!r}")
            secret = d["secret"]
            cp = cls(
                role=Role(d["role"]),
                job=bytes.fromhex(d["job"]),
                scalar=bytes.fromhex(secret["scalar"]),
                shuffle_seed=bytes.fromhex(secret["shuffle_seed"]),
                peer_size=d["peer_size"],
                sent=dict(d["sent"]),
                recv_from=dict(d["recv_from"]),
            )
        except ProtocolError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolError(f"malformed PSI checkpoint: {type(exc).__name__}: {exc}") from None
        cp._validate()
        return cp

    def _validate(self) -> None:
        if len(self.job) != 32 or len(self.scalar) != POINT_BYTES or len(self.shuffle_seed) != 32:
            raise ProtocolError("malformed PSI checkpoint: wrong digest, scalar or seed length")
        if type(self.peer_size) is not int or not -1 <= self.peer_size <= MAX_SET_SIZE:
            raise ProtocolError("malformed PSI checkpoint: bad peer_size")
        for name, counts in (("sent", self.sent), ("recv_from", self.recv_from)):
            for k, v in counts.items():
                if not isinstance(k, str) or type(v) is not int or v < 0:
                    raise ProtocolError(f"malformed PSI checkpoint: bad {name} entry")


def _ids_digest(ids: Sequence[str]) -> bytes:
    h = hashlib.sha256(b"fedcredit/v1/psi-ids")
    for x in ids:
        data = x.encode("utf-8")
        h.update(len(data).to_bytes(4, "big"))
        h.update(data)
    return h.digest()


def _job_digest(role: Role, ids: Sequence[str], params: PsiParams) -> bytes:
    h = hashlib.sha256(_CHECKPOINT_TAG)
    parts = [role.value.encode(), params.salt, params.reveal.value.encode(), str(params.batch_size).encode()]
    if params.count_first:
        parts.append(b"count-first")
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    h.update(_ids_digest(ids))
    return h.digest()


class Tracker:
    """A role's secrets and message counters; makes its Progress reports and checkpoints."""

    def __init__(
        self,
        role: Role,
        ids: Sequence[str],
        params: PsiParams,
        rng: RandomSource,
        resume: PsiCheckpoint | None,
        checkpoint: bool,
    ) -> None:
        self.role = role
        self.enabled = checkpoint or resume is not None
        self.job = _job_digest(role, ids, params) if self.enabled else b""
        if resume is None:
            self.scalar = random_scalar(rng)
            self.seed = rng.getrandbits(256).to_bytes(32, "little")
            self.peer_size = -1
            self.sent: dict[str, int] = {}
            self.recv_from: dict[str, int] = {}
        else:
            if not isinstance(resume, PsiCheckpoint):
                raise ProtocolError(f"resume must be a PsiCheckpoint, got {type(resume).__name__}")
            resume._validate()
            if resume.role is not role:
                raise ProtocolError(f"checkpoint is for the {resume.role}, not the {role}")
            if resume.job != self.job:
                raise ProtocolError("checkpoint is for other ids or other PSI params; cannot resume")
            self.scalar = resume.scalar
            self.seed = resume.shuffle_seed
            self.peer_size = resume.peer_size
            self.sent = dict(resume.sent)
            self.recv_from = dict(resume.recv_from)

    def snapshot(self) -> PsiCheckpoint:
        return PsiCheckpoint(self.role, self.job, self.scalar, self.seed, self.peer_size,
                             dict(self.sent), dict(self.recv_from))

    def progress(self, done: int, total: int, phase: str) -> Generator[Checkpoint | Progress, Any, None]:
        """A :class:`Checkpoint` (with the secrets; the runtime persists it before the program goes on),
        then the :class:`Progress` report, which never carries a secret."""
        if self.enabled:
            yield Checkpoint("psi", self.snapshot().to_dict())
        yield Progress(stage="psi", done=done, total=total, detail={"phase": phase})

    def sent_count(self, step: ProtocolStep) -> int:
        return self.sent.get(step.wire, 0)

    def count_sent(self, step: ProtocolStep) -> None:
        self.sent[step.wire] = self.sent.get(step.wire, 0) + 1

    def send_once(self, step: ProtocolStep, payload: Any) -> Generator[Send, Any, None]:
        """Send a step's only message, unless a resumed role already did."""
        if self.sent_count(step) == 0:
            yield Send(step, payload)
            self.count_sent(step)

    def recv_size(self, step: ProtocolStep) -> Generator[Recv, object, int]:
        """The peer's announced size (read once; a resumed role has it in its checkpoint)."""
        if self.peer_size < 0:
            msg = yield from recv_typed(step, SetSize)
            self.peer_size = msg.count
            self.recv_from[step.wire] = 1
        return self.peer_size
