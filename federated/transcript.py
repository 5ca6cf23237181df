"""Signed, hash-chained, append-only transcripts: one JSON Lines file per (job, node).

Each line is one record, canonical JSON (see :func:`fedcredit.runtime.security.signing.canonical_json`)::

    {"index": i, "kind": "header" | "event" | "message", "job_id": J, "node": N,
     "ts_ms": int, "prev_hash": hex (64 zeros for index 0), "body": {...},
     "hash": hex SHA-256(canonical_json({index, kind, job_id, node, ts_ms, prev_hash, body})),
     "signature": hex Ed25519(node's signing key, bytes.fromhex(hash))}

* ``header`` (always index 0): ``{"format": "fedcredit-transcript/1", "role":
  "guest" | "host" | "coordinator", "signing_cert_pem": str, "ca_fingerprint":
  hex, "keep_payloads": bool}``.
* ``event``: ``{"event": name, ...fields}``. The runtime uses ``job_spec``
  ``{spec, spec_sha256, purpose}``, ``approved`` ``{spec_sha256, by, checks}``,
  ``peer_certs`` ``{certs: {name: pem}}``, ``consent`` ``{purpose, included,
  excluded}`` and ``finished`` ``{ok, error}``; any name is accepted.
* ``message``: ``{"direction": "sent" | "received" | "relayed", "envelope":
  {ENVELOPE_FIELDS}, "envelope_signature": hex (the SENDER's signature over
  envelope_digest(envelope)), "key_owner": str | null, "disclosed": dict |
  null, "payload_file": str | null}``.

Payload bodies are kept only when the writer's policy says so
(``keep_payloads``), as ``<stem>.payloads/<sha256>.bin`` beside the
transcript; the digest and size are always in the envelope.

A record is written with a single ``write`` of one full line, then
``flush`` + ``fsync``; if the write fails the file is cut back to the last
complete record. :mod:`fedcredit.runtime.audit` verifies transcripts.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterator

from .security.certs import NAME_PATTERN
from .errors import ConflictError, DataError, storage_error
from .files import atomic_write
from .security.signing import (
    verify_digest,
    ENVELOPE_FIELDS,
    SigningIdentity,
    canonical_json,
    cert_fingerprint,
    sign_digest,
    verify_signing_cert,
)

__all__ = [
    "FORMAT",
    "ZERO_HASH",
    "ROLES",
    "KINDS",
    "DIRECTIONS",
    "HASHED_FIELDS",
    "TranscriptWriter",
    "record_hash",
    "iter_lines",
    "read_transcript",
    "transcript_name",
]

FORMAT = "fedcredit-transcript/1"
ZERO_HASH = "0" * 64
ROLES = ("guest", "host", "coordinator")
KINDS = ("header", "event", "message")
DIRECTIONS = ("sent", "received", "relayed")
#: The record fields covered by ``hash`` (everything but ``hash`` and ``signature``).
HASHED_FIELDS = ("index", "kind", "job_id", "node", "ts_ms", "prev_hash", "body")


def record_hash(record: dict[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of the record's :data:`HASHED_FIELDS`.

    Raises:
        KeyError: a hashed field is missing.
    """
    return hashlib.sha256(canonical_json({k: record[k] for k in HASHED_FIELDS})).hexdigest()


def transcript_name(job_id: str, node: str) -> str:
    """A transcript's file name, ``<job>.<node>.jsonl``: the one spelling coordinator, nodes and demo use."""
    return f"{job_id}.{node}.jsonl"


class TranscriptWriter:
    """Append signed, hash-chained records to one job's transcript for one node.

    Args:
        path: the ``.jsonl`` file to create. Refused if it exists and is not
            empty: a transcript belongs to exactly one job run.
        job_id: the job.
        identity: this node's signing identity (``sign.crt``/``sign.key``).
        role: ``guest``, ``host`` or ``coordinator``.
        ca_cert_pem: the job's CA; the writer checks its own certificate
            against it and records the CA's fingerprint in the header.
        keep_payloads: keep payload bodies in a sidecar folder (digests are
            always kept).
        clock: seconds since the epoch; records carry ``int(clock() * 1000)``.

    Raises:
        ConflictError: ``path`` already holds records.
        ConfigError / CryptoError: bad node name, role or job id, or the
            signing certificate does not verify against ``ca_cert_pem``.
        StorageError: the file cannot be created or written (read-only or full disk); the message
            names the transcript's path and the errno, never a record's content.

    Thread-safe: records from several threads are serialised by a lock.
    """

    def __init__(
        self,
        path: Path,
        *,
        job_id: str,
        identity: SigningIdentity,
        role: str,
        ca_cert_pem: bytes,
        keep_payloads: bool = False,
        clock: Callable[[], float] = time.time,
        resume: bool = False,
    ) -> None:
        if not isinstance(job_id, str) or not job_id:
            raise ValueError("a transcript needs a non-empty job id")
        if NAME_PATTERN.fullmatch(identity.name) is None:
            raise ValueError(f"invalid node name {identity.name!r} for a transcript")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        # Fails early (CryptoError) rather than writing a transcript nobody can verify.
        verify_signing_cert(identity.cert_pem, ca_cert_pem, identity.name)

        self.path = Path(path)
        self.job_id = job_id
        self.node = identity.name
        self.role = role
        self.keep_payloads = bool(keep_payloads)
        self._identity = identity
        self._clock = clock
        self._lock = threading.Lock()
        self._index = 0
        self._prev_hash = ZERO_HASH
        self._fd: int | None = None

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if resume and self.path.exists() and self.path.stat().st_size > 0:
                self._resume_existing()
                return
            self._fd = self._open_new(self.path)
        except OSError as exc:
            self.close()
            raise storage_error(exc, exc.filename if exc.filename is not None else self.path) from None
        try:
            self._append(
                "header",
                {
                    "format": FORMAT,
                    "role": role,
                    "signing_cert_pem": identity.cert_pem.decode("ascii"),
                    "ca_fingerprint": cert_fingerprint(ca_cert_pem),
                    "keep_payloads": self.keep_payloads,
                },
            )
        except BaseException:
            self.close()
            raise

    def _resume_existing(self) -> None:
        """Continue this node's own chain after a restart (the record before continues to verify).

        A record half-written when the process was killed is cut off first; every
        remaining record must chain, hash and carry this node's signature.
        """
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1] if b"\n" in data else b""
        key = self._identity.private_key.public_key()
        prev = ZERO_HASH
        records = [json.loads(line) for line in complete.splitlines() if line.strip()]
        for i, rec in enumerate(records):
            if rec.get("index") != i or rec.get("prev_hash") != prev or rec.get("node") != self.node or rec.get("job_id") != self.job_id:
                raise ConflictError(f"transcript {self.path} record {i} does not continue this node's chain; not resuming")
            if record_hash(rec) != rec.get("hash"):
                raise ConflictError(f"transcript {self.path} record {i} fails its hash; not resuming")
            verify_digest(key, bytes.fromhex(rec["hash"]), bytes.fromhex(rec["signature"]))
            prev = rec["hash"]
        if not records:
            raise ConflictError(f"transcript {self.path} has no complete record to resume from")
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self.path, flags)
        if len(complete) != len(data):
            os.ftruncate(self._fd, len(complete))
        self._index = len(records)
        self._prev_hash = prev
        self._append("event", {"event": "resumed", "after_record": len(records) - 1,
                               "cut_bytes": len(data) - len(complete)})

    @staticmethod
    def _open_new(path: Path) -> int:
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        fd = os.open(path, flags)
        if os.fstat(fd).st_size > 0:
            os.close(fd)
            raise ConflictError(
                f"transcript {path} already has records; a transcript belongs to one job run "
                "and is never overwritten or appended to by another writer"
            )
        return fd

    # -- properties
    @property
    def next_index(self) -> int:
        return self._index

    @property
    def last_hash(self) -> str:
        return self._prev_hash

    @property
    def payload_dir(self) -> Path:
        """Where kept payloads go: ``<transcript stem>.payloads`` beside the transcript."""
        return self.path.parent / f"{self.path.stem}.payloads"

    # -- writing
    def _append(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._fd is None:
                raise ValueError(f"transcript {self.path} is closed")
            record: dict[str, Any] = {
                "index": self._index,
                "kind": kind,
                "job_id": self.job_id,
                "node": self.node,
                "ts_ms": int(self._clock() * 1000),
                "prev_hash": self._prev_hash,
                "body": body,
            }
            try:
                digest_hex = record_hash(record)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"transcript record is not JSON-serialisable: {exc}") from None
            record["hash"] = digest_hex
            record["signature"] = sign_digest(self._identity, bytes.fromhex(digest_hex)).hex()
            line = canonical_json(record) + b"\n"
            self._write_line(line)
            self._index += 1
            self._prev_hash = digest_hex
            return record

    def _write_line(self, line: bytes) -> None:
        assert self._fd is not None
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            view = memoryview(line)
            while view:  # one call for a regular file; the loop only guards short writes
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except BaseException as exc:
            try:  # never leave half a record behind
                os.ftruncate(self._fd, start)
            except OSError:
                pass
            if isinstance(exc, OSError):  # a full or read-only disk: named with the path, never the record
                raise storage_error(exc, self.path) from None
            raise

    def event(self, name: str, **fields: Any) -> dict[str, Any]:
        """Append an event record ``{"event": name, **fields}`` and return it."""
        if not isinstance(name, str) or not name:
            raise ValueError("an event needs a non-empty name")
        return self._append("event", {"event": name, **fields})

    def message(
        self,
        direction: str,
        envelope: dict[str, Any],
        envelope_signature: bytes,
        *,
        key_owner: str | None = None,
        disclosed: dict[str, Any] | None = None,
        payload: bytes | None = None,
    ) -> dict[str, Any]:
        """Append a message record and return it.

        Args:
            direction: ``sent``, ``received`` or ``relayed``.
            envelope: the :func:`~fedcredit.runtime.security.signing.envelope_fields` dict.
            envelope_signature: the sender's signature over its digest.
            key_owner: for ciphertexts, the role whose key decrypts it.
            disclosed: small summary of what a public/aggregate/plaintext
                payload reveals (e.g. ``{"auc": 0.72}``).
            payload: the payload bytes as sent; kept only with ``keep_payloads``
                (it must match ``envelope["payload_sha256"]``).
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        if not isinstance(envelope, dict) or set(envelope) != set(ENVELOPE_FIELDS):
            got = sorted(envelope) if isinstance(envelope, dict) else type(envelope).__name__
            raise ValueError(f"envelope must have exactly the fields {list(ENVELOPE_FIELDS)}, got {got}")
        if disclosed is not None and not isinstance(disclosed, dict):
            raise ValueError("disclosed must be a dict or None")
        payload_file = None
        if self.keep_payloads and payload is not None:
            payload_file = self._keep_payload(bytes(payload), str(envelope["payload_sha256"]))
        body = {
            "direction": direction,
            "envelope": {k: envelope[k] for k in ENVELOPE_FIELDS},
            "envelope_signature": bytes(envelope_signature).hex(),
            "key_owner": key_owner,
            "disclosed": disclosed,
            "payload_file": payload_file,
        }
        return self._append("message", body)

    def _keep_payload(self, payload: bytes, expected_sha256: str) -> str:
        digest = hashlib.sha256(payload).hexdigest()
        if digest != expected_sha256:
            raise ValueError("payload does not match the envelope's payload_sha256")
        folder = self.payload_dir
        target = folder / f"{digest}.bin"
        if not target.exists():
            try:
                atomic_write(target, payload)
            except OSError as exc:
                raise storage_error(exc) from None
        return f"{folder.name}/{target.name}"

    # -- lifecycle
    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> TranscriptWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TranscriptWriter({str(self.path)!r}, job={self.job_id!r}, node={self.node!r}, next={self._index})"


def iter_lines(data: bytes) -> Iterator[tuple[int, Any, str | None]]:
    """Split a transcript's bytes into lines and decode each: the one transcript parser.

    Lines are split on ``\\n`` only (record JSON escapes newlines; other Unicode
    line separators may appear raw inside strings); a final empty line is not a
    line. Nothing is verified here: :func:`read_transcript` and the auditor
    (:mod:`fedcredit.runtime.audit`) both read through this function.

    Yields:
        ``(number, value, error)`` per line: the 1-based line number, the decoded
        JSON value (any JSON type; ``None`` if the line could not be decoded) and
        ``None``, or ``error`` saying why the line is not a complete JSON value.
    """
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            yield number, None, "not a complete JSON record (cut off or edited)"
            continue
        yield number, value, None


def read_transcript(path: Path) -> list[dict[str, Any]]:
    """Parse a transcript file into its records (no verification), through :func:`iter_lines`.

    Raises:
        DataError: the file cannot be read, or a line is not a JSON object;
            the message names the file and the 1-based line number.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read transcript {path}: {exc.strerror or exc}") from None
    records: list[dict[str, Any]] = []
    for number, value, error in iter_lines(data):
        if error is not None:
            raise DataError(f"{path} line {number}: {error}")
        if not isinstance(value, dict):
            raise DataError(f"{path} line {number}: not a transcript record (expected a JSON object)")
        records.append(value)
    return records
