"""A party's files: where each lives, the one way they are written, and how they are read back.

The layout under the party config's ``workdir``::

    jobs/<job>/approved_data.json       the digest of the data the node approved the job on (#12)
    jobs/<job>/psi.checkpoint.json      PSI's state after its last batch, secrets included; gone when PSI ends
    jobs/<job>/psi.done.json            a train job's PSI result (its rows, ids and outcome): training resumes without PSI
    jobs/<job>/train.checkpoint.json    training's state at its last checkpoint (batch or epoch), secrets included
    jobs/<job>/outbox.bin               the last message this node sent in the job, as sent (sealed, signed envelope)

The four are the job's checkpoints: 0600, and deleted when the job ends, whether it succeeds or fails
(:meth:`JobFiles.drop_checkpoints`; a node that was down when its job ended deletes them when it starts).
    jobs/<job>/intersection.csv         the aligned ids, in the order both parties agreed
    jobs/<job>/model.json               this party's model: its weights (or its shares of them) and its standardizer
    jobs/<job>/result.json              this party's result (:class:`fedcredit.runtime.node.results.JobResult`)
    transcripts/<job>.<node>.jsonl      this node's signed transcript of the job (``transcripts.directory``)
    unbalanced/<dataset>/key.json       the unbalanced host's long-lived key and salt (``unbalanced.directory``)
    unbalanced/<dataset>/cache.bin      ... its blinded set, 16 bytes an entry, and cache.digest, the set's digest
    unbalanced/peer-<peer>-<dataset>/   the unbalanced guest's copy of a host's cache: cache.bin and digest.json
    models/<model>/spec.json            a trained model's joint spec, the same at both parties (model = training job id)
    models/<model>/part.json            ... this party's part of it (:mod:`fedcredit.runtime.node.model_package`)
    models/<model>/scoring_key.json     ... the platform's OPRF key and salt for its scoring tables
    models/<model>/table.bin, .json     ... the platform's sealed table of partial scores, and its digest
    models/<model>/peer_table.bin, .json ... the bank's copy of the platform's table
    models/<model>/queries.json         ... applicants the platform answered for the model, by UTC day (its rate limit)

Everything here holds private data, so every file is written by :func:`fedcredit.runtime.files.atomic_write`: readable by
its owner only (0600, in a 0700 folder), complete or not at all (temporary file, fsync, rename). The
transcript writer (:mod:`fedcredit.runtime.transcript`) appends to its own file.

Owns: the paths and formats of a party's files. May import: the standard library, ``fedcredit.proto.v1`` (the
outbox's envelope), ``fedcredit.protocols.psi``
(the unbalanced cache types) and :mod:`fedcredit.runtime.node.results`. It decides nothing about a job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from google.protobuf.message import DecodeError

from fedcredit.proto.v1 import envelope_pb2
from fedcredit.protocols.errors import ProtocolError
from fedcredit.protocols.psi import CacheDigest, UnbalancedCache
from fedcredit.protocols.scoring import ENTRY_BYTES, ScoreTable, TableDigest

from ..files import atomic_write
from ..transcript import transcript_name
from .results import JobResult

__all__ = ["NodeStore", "JobFiles", "ApprovedData", "UnbalancedKey",
           "UnbalancedHostFiles", "UnbalancedGuestFiles", "ModelFiles"]

CACHE_ENTRY_BYTES = 16


def _write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj).encode("utf-8"))


def _read_object(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    state = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a checkpoint")
    return state


def _entries(data: bytes) -> list[bytes]:
    return [data[i : i + CACHE_ENTRY_BYTES] for i in range(0, len(data), CACHE_ENTRY_BYTES)]


@dataclass(frozen=True)
class ApprovedData:
    """What a node approved a job on: the spec's digest and its data's (:func:`fedcredit.runtime.node.approval.dataset_digest`)."""

    spec_sha256: str
    dataset_sha256: str


@dataclass(frozen=True)
class JobFiles:
    """One job's folder on a party's node."""

    folder: Path

    @property
    def approved_data(self) -> Path:
        return self.folder / "approved_data.json"

    @property
    def checkpoint(self) -> Path:
        return self.folder / "psi.checkpoint.json"

    @property
    def train_checkpoint(self) -> Path:
        return self.folder / "train.checkpoint.json"

    @property
    def psi_done(self) -> Path:
        return self.folder / "psi.done.json"

    @property
    def checkpoints(self) -> tuple[Path, ...]:
        """Every file that lets the job resume (secrets included): deleted when the job ends."""
        return (self.checkpoint, self.psi_done, self.train_checkpoint, self.outbox)

    @property
    def outbox(self) -> Path:
        return self.folder / "outbox.bin"

    # -- the last message sent, as it left: a restarted node hands it to the relay again (it may have been cut off)
    def save_outbox(self, envelope: envelope_pb2.Envelope, wire: bytes) -> None:
        head = envelope.SerializeToString()
        # not fsynced (one per message sent): it guards against a killed process, whose writes the kernel keeps;
        # after a power cut a lost or stale outbox is only not handed to the relay (checked against the transcript)
        atomic_write(self.outbox, len(head).to_bytes(4, "big") + head + wire, durable=False)

    def load_outbox(self) -> tuple[envelope_pb2.Envelope, bytes] | None:
        """The last message sent (its envelope and its payload as sent), or None if there is none or it is unreadable."""
        try:
            raw = self.outbox.read_bytes()
            n = int.from_bytes(raw[:4], "big")
            env = envelope_pb2.Envelope.FromString(raw[4:4 + n])
        except (OSError, ValueError, DecodeError):
            return None
        data = raw[4 + n:]
        ok = len(data) == env.payload_size and hashlib.sha256(data).digest() == env.payload_sha256
        return (env, data) if ok else None

    @property
    def intersection(self) -> Path:
        return self.folder / "intersection.csv"

    @property
    def model(self) -> Path:
        return self.folder / "model.json"

    @property
    def result(self) -> Path:
        """This party's own result of the job (metrics, sizes, artifacts): local, 0600, never sent."""
        return self.folder / "result.json"

    # -- approval
    def record_approved(self, approved: ApprovedData) -> None:
        _write_json(self.approved_data, {"spec_sha256": approved.spec_sha256, "dataset_sha256": approved.dataset_sha256})

    def approved(self) -> ApprovedData | None:
        """The record written at approval; None when there is none or it cannot be read."""
        try:
            d = json.loads(self.approved_data.read_text(encoding="utf-8"))
            return ApprovedData(str(d.get("spec_sha256")), str(d.get("dataset_sha256")))
        except (OSError, ValueError, AttributeError):
            return None

    # -- the PSI checkpoint: it holds secrets, so it stays here and goes nowhere
    def has_checkpoint(self) -> bool:
        return self.checkpoint.exists()

    def save_checkpoint(self, state: Mapping[str, Any]) -> None:
        _write_json(self.checkpoint, dict(state))

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint's state, or None when there is none.

        Raises:
            ValueError: the file is not a JSON object (a resumed job then fails, as it cannot resume)."""
        if not self.checkpoint.exists():
            return None
        state = json.loads(self.checkpoint.read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            raise ValueError(f"{self.checkpoint} does not hold a checkpoint")
        return state

    def drop_checkpoint(self) -> None:
        self.checkpoint.unlink(missing_ok=True)

    # -- training's resume: the PSI result it trains on, and its checkpoint (secrets: seed, weight shares)
    def has_psi_done(self) -> bool:
        return self.psi_done.exists()

    def save_psi_done(self, state: Mapping[str, Any]) -> None:
        _write_json(self.psi_done, dict(state))

    def load_psi_done(self) -> dict[str, Any] | None:
        return _read_object(self.psi_done)

    def save_train_checkpoint(self, state: Mapping[str, Any]) -> None:
        _write_json(self.train_checkpoint, dict(state))

    def load_train_checkpoint(self) -> dict[str, Any] | None:
        """The last training checkpoint's state, or None. Raises ValueError if it is not a JSON object."""
        return _read_object(self.train_checkpoint)

    def has_any_checkpoint(self) -> bool:
        return any(p.exists() for p in self.checkpoints)

    def drop_checkpoints(self) -> None:
        """The job ended: delete everything it kept to resume (the secret scalar, seed and shares among it)."""
        for p in self.checkpoints:
            p.unlink(missing_ok=True)

    # -- artifacts
    def write_intersection(self, ids: Iterable[str]) -> None:
        atomic_write(self.intersection, ("id\n" + "".join(f"{i}\n" for i in ids)).encode("utf-8"))

    def write_model(self, model: Mapping[str, Any]) -> None:
        atomic_write(self.model, json.dumps(model, indent=2).encode("utf-8"))

    def write_result(self, result: JobResult) -> None:
        atomic_write(self.result, result.to_json().encode("utf-8"))


@dataclass(frozen=True)
class UnbalancedKey:
    """The unbalanced host's long-lived key for one dataset, and the salt its cache was built with."""

    key: bytes
    salt: bytes
    created_unix: float

    def age_days(self, now_unix: float) -> float:
        return (now_unix - self.created_unix) / 86400.0


@dataclass(frozen=True)
class UnbalancedHostFiles:
    """The unbalanced host's key and cache for one of its datasets; the key is replaced after ``rotation_days``."""

    folder: Path
    rotation_days: float

    def key(self) -> UnbalancedKey | None:
        path = self.folder / "key.json"
        if not path.exists():
            return None
        saved = json.loads(path.read_text(encoding="utf-8"))
        return UnbalancedKey(bytes.fromhex(saved["key"]), bytes.fromhex(saved["salt"]), float(saved["created_unix"]))

    def save_key(self, key: UnbalancedKey) -> None:
        _write_json(self.folder / "key.json", {"key": key.key.hex(), "salt": key.salt.hex(), "created_unix": key.created_unix})

    def cache(self, digest: bytes) -> list[bytes] | None:
        """The cached blinded set, if it was built from the set and key ``digest`` describes; else None."""
        cache_file, digest_file = self.folder / "cache.bin", self.folder / "cache.digest"
        if digest_file.exists() and digest_file.read_bytes() == digest and cache_file.exists():
            return _entries(cache_file.read_bytes())
        return None

    def save_cache(self, values: Iterable[bytes], digest: bytes) -> None:
        atomic_write(self.folder / "cache.bin", b"".join(values))
        atomic_write(self.folder / "cache.digest", digest)


@dataclass(frozen=True)
class UnbalancedGuestFiles:
    """The unbalanced guest's copy of one host dataset's cache."""

    folder: Path

    def cache(self) -> UnbalancedCache | None:
        cache_file, digest_file = self.folder / "cache.bin", self.folder / "digest.json"
        if not (cache_file.exists() and digest_file.exists()):
            return None
        d = json.loads(digest_file.read_text(encoding="utf-8"))
        digest = CacheDigest(bytes.fromhex(d["key_id"]), bytes.fromhex(d["set_digest"]), int(d["count"]), bytes.fromhex(d["salt"]))
        return UnbalancedCache.from_values(digest, _entries(cache_file.read_bytes()))

    def save_cache(self, cache: UnbalancedCache) -> None:
        d = cache.digest
        atomic_write(self.folder / "cache.bin", b"".join(sorted(cache.values)))
        _write_json(self.folder / "digest.json", {"key_id": d.key_id.hex(), "set_digest": d.set_digest.hex(),
                                                  "count": d.count, "salt": d.salt.hex()})


@dataclass(frozen=True)
class ModelFiles:
    """One trained model's folder on a party's node: its package and its scoring state."""

    folder: Path

    @property
    def spec(self) -> Path:
        return self.folder / "spec.json"

    @property
    def part(self) -> Path:
        return self.folder / "part.json"

    @property
    def scoring_key(self) -> Path:
        return self.folder / "scoring_key.json"

    def write_json(self, path: Path, obj: Any) -> None:
        atomic_write(path, json.dumps(obj, indent=2, sort_keys=True).encode("utf-8"))

    def read_json(self, path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))

    def save_table(self, table: ScoreTable, source: str, *, peer: bool) -> None:
        """A sealed scoring table: the platform's own (``peer=False``, with the digest of what it was built
        from) or the bank's copy of the platform's."""
        name = "peer_table" if peer else "table"
        d = table.digest
        atomic_write(self.folder / f"{name}.bin", b"".join(table.entries))
        self.write_json(self.folder / f"{name}.json", {"key_id": d.key_id.hex(), "table_id": d.table_id.hex(), "count": d.count,
                                                       "salt": d.salt.hex(), "source": source})

    def table(self, *, peer: bool) -> tuple[ScoreTable, str] | None:
        """The table saved by :meth:`save_table` and its source digest; None if there is none or it is damaged."""
        name = "peer_table" if peer else "table"
        try:
            meta = self.read_json(self.folder / f"{name}.json")
            data = (self.folder / f"{name}.bin").read_bytes()
            digest = TableDigest(bytes.fromhex(meta["key_id"]), bytes.fromhex(meta["table_id"]), int(meta["count"]),
                                 bytes.fromhex(meta["salt"]))
            entries = tuple(data[i : i + ENTRY_BYTES] for i in range(0, len(data), ENTRY_BYTES))
            return ScoreTable(digest, entries), str(meta.get("source", ""))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ProtocolError):
            return None


class NodeStore:
    """A party's workdir: every file it keeps, by job, transcript and unbalanced-PSI dataset.

    Args:
        workdir: the party config's ``workdir``.
        transcripts: where transcripts go (default ``<workdir>/transcripts``).
        unbalanced: where unbalanced-PSI keys and caches go (default ``<workdir>/unbalanced``).
        key_rotation_days: the age at which the unbalanced host's long-lived key is replaced.
    """

    def __init__(self, workdir: Path, *, transcripts: Path | None = None, unbalanced: Path | None = None,
                 key_rotation_days: float = 30.0) -> None:
        self.workdir = workdir
        self.transcripts = transcripts or workdir / "transcripts"
        self.unbalanced = unbalanced or workdir / "unbalanced"
        self.key_rotation_days = key_rotation_days

    def job(self, job_id: str) -> JobFiles:
        return JobFiles(self.workdir / "jobs" / job_id)

    def transcript(self, job_id: str, node: str) -> Path:
        return self.transcripts / transcript_name(job_id, node)

    def unbalanced_host(self, dataset: str) -> UnbalancedHostFiles:
        return UnbalancedHostFiles(self.unbalanced / dataset, self.key_rotation_days)

    def unbalanced_guest(self, peer: str, dataset: str) -> UnbalancedGuestFiles:
        return UnbalancedGuestFiles(self.unbalanced / f"peer-{peer}-{dataset}")

    @property
    def models(self) -> Path:
        return self.workdir / "models"

    def model(self, model_id: str) -> ModelFiles:
        return ModelFiles(self.models / model_id)

    def jobs_with_checkpoints(self) -> list[str]:
        """The jobs whose folder still holds a checkpoint (to resume, or to delete if the job has ended)."""
        root = self.workdir / "jobs"
        if not root.is_dir():
            return []
        return sorted(d.name for d in root.iterdir() if d.is_dir() and JobFiles(d).has_any_checkpoint())
