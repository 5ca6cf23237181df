"""Checkpoints of the two-party LR: what a role persists at each batch and epoch boundary to resume after a crash.

A role of :mod:`.two_party` run with ``checkpoint=True`` (implied by ``resume``) yields a
:class:`~fedcredit.protocols.core.Checkpoint` action (stage ``lr2``) whose ``state`` is a :class:`TrainCheckpoint` as a
plain dict -- **with the role's secret seed and its shares of every weight**, which is why it is an action of
its own and never rides in a progress report. It comes:

* once before the role's first message (the seed its key pair and every mask derive from is on disk before
  anything derived from it leaves);
* once after the ``lr2.setup`` exchange (with the peer's public key, so a resumed role never needs it again);
* after every ``checkpoint_every``-th batch but an epoch's last (the weight shares, their velocities, the epoch's partial loss terms -- the host's
  accumulator is a ciphertext under the guest's key -- and the batches done);
* after every epoch's decision (the weight shares, their velocities, the losses so far, the next epoch).

Checkpointing within epochs bounds what a resumed role must fetch again to ``checkpoint_every`` batches' messages:
the relay keeps delivered messages only within ``retain_bytes`` per job (far below a CKKS epoch at ``default_credit`` size).

**Determinism is what makes a resume exact.** Every random draw of a role comes from :class:`EpochPrg`:
AES-CTR keyed by SHA-256 of the secret seed and a label -- ``keygen`` for the key pair, ``epoch <e>`` for the
masks and encryption randomness of batch ``b`` of epoch ``e`` (``epoch <e> batch <b>``), ``epoch <e> loss`` for
the epoch's loss exchange, ``final`` after the epochs. A role resumed from the checkpoint
taken before a batch therefore computes, and sends, exactly what it computed and sent the first time: the
runtime skips the sends the relay already holds, fetches again what the peer sent (the relay keeps delivered
messages), and the job ends with bit-identical weights and metrics. The peer, which did not crash, never
notices: it only waits longer for the next message. So both parties always "agree" on the boundary: only the
restarted one goes back, to its own last checkpoint, and it re-creates its past byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..core import Role
from ..errors import ProtocolError
from ..paillier import PaillierPublicKey
from ..rlwe.scheme import RlweParams, RlwePublicKey

__all__ = ["TrainCheckpoint", "EpochPrg", "train_job_digest", "key_to_dict", "key_from_dict", "CHECKPOINT_STAGE"]

#: The Checkpoint action's stage: the LR phase's name, so the runtime keeps that phase's sealing keys with it.
CHECKPOINT_STAGE = "lr2"
_VERSION = 2  # 2: per-batch checkpoints and PRG streams (a version-1 checkpoint cannot resume exactly)
_PRG_TAG = b"fedcredit/v1/lr2-prg"
_JOB_TAG = b"fedcredit/v1/lr2-checkpoint"
_CHUNK = 1 << 16


class EpochPrg:
    """A role's randomness: AES-256-CTR keyed by ``SHA-256(tag || seed || label)``, re-keyed at every boundary.

    Has ``getrandbits`` (a :class:`~fedcredit.protocols.core.RandomSource`). The engines keep a reference
    to it, so :meth:`reseed` switches every later draw to the new label's stream.
    """

    def __init__(self, seed: bytes, label: str = "keygen") -> None:
        if len(seed) != 32:
            raise ProtocolError("the LR PRG seed must be 32 bytes")
        self._seed = seed
        self.reseed(label)

    def reseed(self, label: str) -> None:
        key = hashlib.sha256(_PRG_TAG + self._seed + label.encode()).digest()
        self._enc = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).encryptor()
        self._buf = b""
        self._pos = 0

    def _bytes(self, n: int) -> bytes:
        if self._pos + n > len(self._buf):
            rest = self._buf[self._pos:]
            self._buf = rest + self._enc.update(b"\0" * max(_CHUNK, n))
            self._pos = 0
        out = self._buf[self._pos:self._pos + n]
        self._pos += n
        return out

    def getrandbits(self, k: int, /) -> int:
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        if k == 0:
            return 0
        nbytes = (k + 7) // 8
        return int.from_bytes(self._bytes(nbytes), "little") >> (8 * nbytes - k)


def _hash_array(h: Any, a: np.ndarray | None) -> None:
    if a is None:
        h.update(b"none")
        return
    arr = np.ascontiguousarray(a)
    h.update(f"{arr.dtype.str}|{arr.shape}|".encode())
    h.update(arr.tobytes())


def train_job_digest(role: Role, params: Any, x_train: np.ndarray, y_train: np.ndarray | None, x_test: np.ndarray,
                     n_test: int) -> bytes:
    """SHA-256 binding a checkpoint to its role, the LR params and the exact data it trains on."""
    h = hashlib.sha256(_JOB_TAG)
    for part in (role.value, repr(params), str(n_test)):
        data = part.encode()
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    for arr in (x_train, y_train, x_test):
        _hash_array(h, arr)
    return h.digest()


def key_to_dict(key: Any) -> dict[str, Any]:
    """A peer's public key (Paillier or RLWE) as JSON-ready data."""
    if isinstance(key, PaillierPublicKey):
        return {"kind": "paillier", "n": format(int(key.n), "x")}
    if isinstance(key, RlwePublicKey):
        b = np.ascontiguousarray(key.b, dtype="<u8")
        return {"kind": "rlwe", "seed": key.seed.hex(), "shape": list(b.shape), "b": base64.b64encode(b.tobytes()).decode()}
    raise ProtocolError(f"cannot checkpoint a {type(key).__name__}")


def key_from_dict(d: Mapping[str, Any], rlwe: RlweParams | None) -> Any:
    """The inverse of :func:`key_to_dict`; an RLWE key takes the job's RLWE parameters (which the peer's had to equal)."""
    try:
        if d["kind"] == "paillier":
            return PaillierPublicKey(int(d["n"], 16))
        if d["kind"] == "rlwe" and rlwe is not None:
            b = np.frombuffer(base64.b64decode(d["b"]), dtype="<u8").reshape(tuple(d["shape"])).astype(np.uint64)
            key = RlwePublicKey(rlwe, bytes.fromhex(d["seed"]), b)
            key.check()
            return key
    except ProtocolError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed LR checkpoint: the peer's key: {type(exc).__name__}") from None
    raise ProtocolError("malformed LR checkpoint: the peer's key is of an unknown kind")


def _ints(values: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class TrainCheckpoint:
    """Where a two-party LR role stands at a boundary, enough to resume it exactly.

    Attributes:
        role: the role it belongs to.
        job: :func:`train_job_digest` of the role, params and data; resuming with anything else raises ProtocolError.
        seed: **secret** -- every random draw of the role (its key pair, masks, encryption randomness) derives from it.
        epoch: epochs completed; the resumed role starts (or continues) epoch ``epoch`` (0-based).
        batch: batches of epoch ``epoch`` completed; the resumed role starts with batch number ``batch``.
        done: the epochs are over (the last one ran, or the loss converged); the resumed role goes to the output phase.
        peer: the peer's ``lr2.setup`` (``n_features`` and ``key``), None before it was received.
        a, va: **secret** -- this role's shares of its own weights and of their velocity.
        b, vb: **secret** -- this role's shares of the peer's weights and of their velocity.
        losses: the epoch losses so far (an agreed aggregate).
        sq: **secret** -- this role's running ``Σ (D^own)²`` over the batches of epoch ``epoch`` done so far.
        loss_acc: the host's running ``[[Σ 2 D^H D^G]]_G`` (a ciphertext under the guest's key, as the engine dumps
            it), None before the epoch's first batch and for the guest.
        sent: wire name -> messages of that step already sent; the resumed role sends number ``sent[wire]`` next.
        recv_from: wire name -> the sequence number the resumed role receives next.
    """

    role: Role
    job: bytes
    seed: bytes
    epoch: int = 0
    done: bool = False
    peer: Mapping[str, Any] | None = None
    a: tuple[int, ...] = ()
    va: tuple[int, ...] = ()
    b: tuple[int, ...] = ()
    vb: tuple[int, ...] = ()
    losses: tuple[float, ...] = ()
    sent: Mapping[str, int] = field(default_factory=dict)
    recv_from: Mapping[str, int] = field(default_factory=dict)
    batch: int = 0
    sq: int = 0
    loss_acc: Any = None

    version: ClassVar[int] = _VERSION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; the secrets are under ``"secret"``."""
        return {
            "version": _VERSION,
            "protocol": "lr2",
            "role": self.role.value,
            "job": self.job.hex(),
            "epoch": self.epoch,
            "batch": self.batch,
            "done": self.done,
            "peer": dict(self.peer) if self.peer is not None else None,
            "losses": [float(v) for v in self.losses],
            "secret": {"seed": self.seed.hex(), "a": [str(v) for v in self.a], "va": [str(v) for v in self.va],
                       "b": [str(v) for v in self.b], "vb": [str(v) for v in self.vb], "sq": str(self.sq),
                       "loss_acc": self.loss_acc},
            "sent": {k: int(v) for k, v in sorted(self.sent.items())},
            "recv_from": {k: int(v) for k, v in sorted(self.recv_from.items())},
        }

    def public_view(self) -> dict[str, Any]:
        """:meth:`to_dict` without the secrets (safe for logs)."""
        d = self.to_dict()
        del d["secret"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainCheckpoint":
        """Parse :meth:`to_dict` output (other keys, such as the runtime's sealing keys, are ignored).

        Raises ProtocolError if malformed."""
        try:
            if d["version"] != _VERSION or d["protocol"] != "lr2":
                raise ProtocolError(f"unsupported LR checkpoint version {d.get('version')!r}")
            s = d["secret"]
            cp = cls(role=Role(d["role"]), job=bytes.fromhex(d["job"]), seed=bytes.fromhex(s["seed"]), epoch=d["epoch"],
                     done=d["done"], peer=d["peer"], a=_ints(s["a"]), va=_ints(s["va"]), b=_ints(s["b"]), vb=_ints(s["vb"]),
                     losses=tuple(float(v) for v in d["losses"]), sent=dict(d["sent"]), recv_from=dict(d["recv_from"]),
                     batch=d["batch"], sq=int(s["sq"]), loss_acc=s["loss_acc"])
        except ProtocolError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolError(f"malformed LR checkpoint: {type(exc).__name__}: {exc}") from None
        cp.validate()
        return cp

    def validate(self) -> None:
        if len(self.job) != 32 or len(self.seed) != 32:
            raise ProtocolError("malformed LR checkpoint: wrong digest or seed length")
        if type(self.epoch) is not int or self.epoch < 0 or type(self.done) is not bool:
            raise ProtocolError("malformed LR checkpoint: bad epoch")
        if type(self.batch) is not int or self.batch < 0 or (self.batch and self.done) or type(self.sq) is not int:
            raise ProtocolError("malformed LR checkpoint: bad batch")
        if len(self.a) != len(self.va) or len(self.b) != len(self.vb) or len(self.losses) != self.epoch:
            raise ProtocolError("malformed LR checkpoint: shares or losses do not match")
        if self.peer is not None and not isinstance(self.peer, Mapping):
            raise ProtocolError("malformed LR checkpoint: bad peer")
        for name, counts in (("sent", self.sent), ("recv_from", self.recv_from)):
            for k, v in counts.items():
                if not isinstance(k, str) or type(v) is not int or v < 0:
                    raise ProtocolError(f"malformed LR checkpoint: bad {name} entry")
