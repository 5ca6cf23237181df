"""The coordinator's durable state in SQLite (WAL): nodes and their certificates, jobs, role assignments,
approvals, events and the relay's mailbox.

Every change is one transaction, so a crash never leaves a half-written job; a restarted coordinator reads
everything back (#13). The relay's payloads are files next to the database (``<database>.relay/<job>/<message>``),
written before their row is committed, so SQLite only holds small rows (a payload is written once, not into the
WAL and again into the database, and marking it delivered does not rewrite it).

After :meth:`Store.close` every call raises :class:`~fedcredit.runtime.errors.TransportError` (``UNAVAILABLE``:
the coordinator is stopping), never sqlite's "Cannot operate on a closed database".
A disk error (read-only, full, I/O, cannot open) is a :class:`~fedcredit.runtime.errors.StorageError` (``STORAGE``)
naming the database's path and SQLite's reason; what leaves the coordinator names neither.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import StorageError, TransportError, storage_error
from ..node.results import merge_views

__all__ = ["Store", "JobRow", "RoleRow", "ACTIVE_STATES", "FINAL_STATES"]

ACTIVE_STATES = ("pending", "running")
FINAL_STATES = ("succeeded", "failed", "rejected", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
  name TEXT PRIMARY KEY,
  seal_cert_pem BLOB,
  sign_cert_pem BLOB,
  software_version TEXT,
  datasets TEXT,
  registered_ms INTEGER,
  last_seen_ms INTEGER
);
CREATE TABLE IF NOT EXISTS jobs (
  job_id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  spec_json TEXT NOT NULL,
  spec_sha256 TEXT NOT NULL,
  state TEXT NOT NULL,
  stage TEXT NOT NULL DEFAULT '',
  psi_salt TEXT NOT NULL,
  progress_json TEXT NOT NULL DEFAULT '{}',
  result_json TEXT NOT NULL DEFAULT '{}',
  error TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS job_roles (
  job_id TEXT NOT NULL REFERENCES jobs(job_id),
  role TEXT NOT NULL,
  node TEXT NOT NULL,
  dataset TEXT NOT NULL DEFAULT '',
  claimed_ms INTEGER,
  finished_ms INTEGER,
  ok INTEGER,
  result_json TEXT NOT NULL DEFAULT '{}',
  PRIMARY KEY (job_id, role)
);
CREATE TABLE IF NOT EXISTS job_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  ts_ms INTEGER NOT NULL,
  node TEXT NOT NULL,
  kind TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events(job_id);
CREATE TABLE IF NOT EXISTS relay_messages (
  job_id TEXT NOT NULL,
  receiver TEXT NOT NULL,
  sender TEXT NOT NULL,
  step TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  envelope BLOB NOT NULL,
  payload BLOB NOT NULL,
  delivered INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, receiver, sender, step, sequence)
);
CREATE TABLE IF NOT EXISTS job_approvals (
  job_id TEXT NOT NULL REFERENCES jobs(job_id),
  node TEXT NOT NULL,
  approved INTEGER NOT NULL,
  by TEXT NOT NULL,
  reason TEXT NOT NULL,
  spec_sha256 TEXT NOT NULL,
  signature BLOB NOT NULL,
  unix_ms INTEGER NOT NULL,
  PRIMARY KEY (job_id, node)
);
"""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class RoleRow:
    job_id: str
    role: str
    node: str
    dataset: str
    claimed_ms: int | None
    finished_ms: int | None
    ok: bool | None
    result: dict[str, Any]


@dataclass
class JobRow:
    job_id: str
    kind: str
    name: str
    spec_json: str
    spec_sha256: str
    state: str
    stage: str
    psi_salt: str
    progress: dict[str, Any]
    result: dict[str, Any]
    error: str
    created_ms: int
    updated_ms: int
    roles: list[RoleRow] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def purpose(self) -> str:
        return str(json.loads(self.spec_json).get("purpose", ""))


RelayKey = tuple[str, str, str, str, int]  # job, receiver, sender, step, sequence


class _ClosedDb:
    """Stands in for the connection after :meth:`Store.close`: a late handler gets UNAVAILABLE, not a traceback."""

    def __getattr__(self, name: str) -> Any:
        raise TransportError("the coordinator is shutting down")


#: SQLite's primary result codes for a disk that cannot be written or read (``sqlite_errorname`` prefixes).
_DISK_ERRORS = ("SQLITE_READONLY", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_PERM")
_PUBLIC_STORAGE = "the coordinator cannot write its state (disk full, read-only or not permitted); its log names the path"


def sqlite_storage_error(exc: sqlite3.Error, path: Path, action: str = "write") -> StorageError | None:
    """The :class:`StorageError` naming ``path`` for a disk error of SQLite; None for any other SQLite error."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc)
    disk_words = ("readonly", "read-only", "disk", "unable to open", "full")
    if not name.startswith(_DISK_ERRORS) and not (not name and any(w in text.lower() for w in disk_words)):
        return None
    return StorageError(f"cannot {action} {path}: {text}" + (f" [{name}]" if name else ""), public=_PUBLIC_STORAGE,
                        path=str(path))


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, path.parent, "create") from None
        self._lock = threading.RLock()
        with self._use("open"):
            self._db: Any = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = {r["name"] for r in self._db.execute("PRAGMA table_info(nodes)")}
            if "instance_id" not in columns:  # a database from before #13
                self._db.execute("ALTER TABLE nodes ADD COLUMN instance_id TEXT NOT NULL DEFAULT ''")
            columns = {r["name"] for r in self._db.execute("PRAGMA table_info(relay_messages)")}
            if "payload_size" not in columns:  # payloads in the row (before they were files): -1
                self._db.execute("ALTER TABLE relay_messages ADD COLUMN payload_size INTEGER NOT NULL DEFAULT -1")
        self._blobs = path.with_name(path.name + ".relay")

    @contextmanager
    def _use(self, action: str = "read") -> Iterator[None]:
        """Hold the lock; a disk error of SQLite becomes a StorageError naming the database."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                mapped = sqlite_storage_error(exc, self.path, action)
                if mapped is None:
                    raise
                raise mapped from None

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self._use("write"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the transaction is gone already (a disk error can end it): report the first error
                raise
            self._db.execute("COMMIT")

    @property
    def closed(self) -> bool:
        return isinstance(self._db, _ClosedDb)

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self._db.close()
                self._db = _ClosedDb()

    # -- nodes
    def upsert_node(self, name: str, seal_cert_pem: bytes, sign_cert_pem: bytes, version: str, datasets: list[str],
                    instance_id: str = "") -> None:
        t = now_ms()
        with self.tx() as db:
            db.execute(
                "INSERT INTO nodes(name, seal_cert_pem, sign_cert_pem, software_version, datasets, registered_ms, last_seen_ms, "
                "instance_id) VALUES(?,?,?,?,?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET seal_cert_pem=excluded.seal_cert_pem, sign_cert_pem=excluded.sign_cert_pem, "
                "software_version=excluded.software_version, datasets=excluded.datasets, registered_ms=excluded.registered_ms, "
                "last_seen_ms=excluded.last_seen_ms, instance_id=excluded.instance_id",
                (name, seal_cert_pem, sign_cert_pem, version, json.dumps(datasets), t, t, instance_id),
            )

    def touch_node(self, name: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE nodes SET last_seen_ms=? WHERE name=?", (now_ms(), name))

    def last_seen(self) -> dict[str, int]:
        """When each registered node was last heard from (ms)."""
        with self._use():
            return {r["name"]: int(r["last_seen_ms"] or 0) for r in self._db.execute("SELECT name, last_seen_ms FROM nodes")}

    # -- the relay's mailbox (fedcredit.runtime.coordinator.relay.Mailbox writes through)
    def _blob(self, key: RelayKey) -> Path:
        job = hashlib.sha256(key[0].encode()).hexdigest()[:32]
        name = hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:40]
        return self._blobs / job / name

    def relay_put(self, key: RelayKey, envelope: bytes, payload: bytes, *, redeliver: bool = False) -> None:
        """Keep a message: its payload in a file (outside the database's lock), then its row. A message already
        kept is left as it is, unless ``redeliver`` (it is pending again)."""
        blob = self._blob(key)
        tmp = blob.with_name(blob.name + f".{threading.get_ident()}.tmp")
        try:
            blob.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:  # no fsync: like the WAL's synchronous=NORMAL, it survives a killed process
                f.write(payload)
            os.replace(tmp, blob)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            err = storage_error(exc, blob)
            raise StorageError(err.message, public=_PUBLIC_STORAGE, path=err.path, errno=err.errno) from None
        with self.tx() as db:
            if redeliver:
                db.execute("DELETE FROM relay_messages WHERE job_id=? AND receiver=? AND sender=? AND step=? AND sequence=?", key)
            db.execute("INSERT OR IGNORE INTO relay_messages(job_id, receiver, sender, step, sequence, envelope, payload, delivered, "
                       "payload_size) VALUES(?,?,?,?,?,?,zeroblob(0),0,?)", (*key, envelope, len(payload)))

    def relay_delivered(self, key: RelayKey) -> None:
        with self.tx() as db:
            db.execute("UPDATE relay_messages SET delivered=1 WHERE job_id=? AND receiver=? AND sender=? AND step=? AND sequence=?", key)

    def relay_forget(self, key: RelayKey) -> None:
        """Drop a delivered message's payload; its key stays, so a restarted relay still knows it is no longer kept."""
        with self.tx() as db:
            db.execute("UPDATE relay_messages SET payload=zeroblob(0), delivered=2 "
                       "WHERE job_id=? AND receiver=? AND sender=? AND step=? AND sequence=?", key)
        self._blob(key).unlink(missing_ok=True)

    def relay_discard(self, key: RelayKey) -> None:
        """Forget a message that was written but refused (it was never relayed)."""
        with self.tx() as db:
            db.execute("DELETE FROM relay_messages WHERE job_id=? AND receiver=? AND sender=? AND step=? AND sequence=?", key)
        self._blob(key).unlink(missing_ok=True)

    def relay_drop_job(self, job_id: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM relay_messages WHERE job_id=?", (job_id,))
        shutil.rmtree(self._blob((job_id, "", "", "", 0)).parent, ignore_errors=True)

    def relay_load(self) -> list[tuple[RelayKey, bytes, bytes, bool | None]]:
        """Every kept message, oldest first: (key, envelope, payload, delivered); delivered is None for a message
        delivered and no longer kept (its payload is empty)."""
        with self._use():
            rows = self._db.execute("SELECT * FROM relay_messages ORDER BY rowid").fetchall()
        out: list[tuple[RelayKey, bytes, bytes, bool | None]] = []
        for r in rows:
            key: RelayKey = (r["job_id"], r["receiver"], r["sender"], r["step"], int(r["sequence"]))
            delivered = None if r["delivered"] == 2 else bool(r["delivered"])
            payload = bytes(r["payload"])
            if delivered is not None and r["payload_size"] >= 0:
                try:
                    payload = self._blob(key).read_bytes()
                except FileNotFoundError:
                    payload = b""
                if len(payload) != r["payload_size"]:  # lost with the machine (not with the process): no longer kept
                    delivered, payload = None, b""
            out.append((key, bytes(r["envelope"]), payload, delivered))
        return out

    def get_node(self, name: str) -> sqlite3.Row | None:
        with self._use():
            return self._db.execute("SELECT * FROM nodes WHERE name=?", (name,)).fetchone()

    # -- jobs
    def insert_job(self, job: JobRow) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO jobs(job_id, kind, name, spec_json, spec_sha256, state, stage, psi_salt, progress_json, result_json, "
                "error, created_ms, updated_ms) "
                "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (job.job_id, job.kind, job.name, job.spec_json, job.spec_sha256, job.state, job.stage, job.psi_salt,
                 json.dumps(job.progress), json.dumps(job.result), job.error, job.created_ms, job.updated_ms),
            )
            for r in job.roles:
                db.execute("INSERT INTO job_roles(job_id, role, node, dataset) VALUES(?,?,?,?)", (job.job_id, r.role, r.node, r.dataset))
            db.execute("INSERT INTO job_events(job_id, ts_ms, node, kind, detail) VALUES(?,?,?,?,?)", (job.job_id, now_ms(), "", "submitted", job.spec_sha256))

    def _job_from_row(self, row: sqlite3.Row) -> JobRow:
        roles = [
            RoleRow(r["job_id"], r["role"], r["node"], r["dataset"], r["claimed_ms"], r["finished_ms"],
                    None if r["ok"] is None else bool(r["ok"]), json.loads(r["result_json"]))
            for r in self._db.execute("SELECT * FROM job_roles WHERE job_id=? ORDER BY role", (row["job_id"],))
        ]
        approvals = [dict(a) for a in self._db.execute("SELECT * FROM job_approvals WHERE job_id=? ORDER BY unix_ms", (row["job_id"],))]
        return JobRow(row["job_id"], row["kind"], row["name"], row["spec_json"], row["spec_sha256"], row["state"], row["stage"],
                      row["psi_salt"], json.loads(row["progress_json"]), json.loads(row["result_json"]), row["error"],
                      row["created_ms"], row["updated_ms"], roles, approvals)

    def get_job(self, job_id: str) -> JobRow | None:
        with self._use():
            row = self._db.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
            return self._job_from_row(row) if row else None

    def list_jobs(self, limit: int = 50) -> list[JobRow]:
        with self._use():
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created_ms DESC LIMIT ?", (limit,)).fetchall()
            return [self._job_from_row(r) for r in rows]

    def jobs_in_state(self, *states: str) -> list[JobRow]:
        with self._use():
            q = f"SELECT * FROM jobs WHERE state IN ({','.join('?' * len(states))}) ORDER BY created_ms"
            return [self._job_from_row(r) for r in self._db.execute(q, states).fetchall()]

    def set_state(self, job_id: str, state: str, *, error: str | None = None, only_from: tuple[str, ...] = ACTIVE_STATES) -> bool:
        """Move a job to ``state`` if it is in one of ``only_from``. Returns whether it moved."""
        with self.tx() as db:
            row = db.execute("SELECT state FROM jobs WHERE job_id=?", (job_id,)).fetchone()
            if row is None or row["state"] not in only_from:
                return False
            db.execute("UPDATE jobs SET state=?, error=COALESCE(?, error), updated_ms=? WHERE job_id=?", (state, error, now_ms(), job_id))
            db.execute("INSERT INTO job_events(job_id, ts_ms, node, kind, detail) VALUES(?,?,?,?,?)", (job_id, now_ms(), "", state, error or ""))
            return True

    def add_approval(self, job_id: str, node: str, approved: bool, by: str, reason: str, spec_sha256: str, signature: bytes, unix_ms: int) -> None:
        """Record a node's decision once; a second decision by the same node is refused by the primary key."""
        with self.tx() as db:
            db.execute("INSERT INTO job_approvals(job_id, node, approved, by, reason, spec_sha256, signature, unix_ms) VALUES(?,?,?,?,?,?,?,?)",
                       (job_id, node, int(approved), by, reason, spec_sha256, signature, unix_ms))
            db.execute("INSERT INTO job_events(job_id, ts_ms, node, kind, detail) VALUES(?,?,?,?,?)",
                       (job_id, now_ms(), node, "approved" if approved else "rejected", f"{by}: {reason}"))

    def unclaim_role(self, job_id: str, role: str, node: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE job_roles SET claimed_ms=NULL WHERE job_id=? AND role=? AND finished_ms IS NULL", (job_id, role))
            db.execute("INSERT INTO job_events(job_id, ts_ms, node, kind, detail) VALUES(?,?,?,?,?)",
                       (job_id, now_ms(), node, "resuming", f"{node} restarted; its {role} role resumes from its checkpoint"))

    def claim_role(self, job_id: str, role: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE job_roles SET claimed_ms=? WHERE job_id=? AND role=? AND claimed_ms IS NULL", (now_ms(), job_id, role))

    def add_event(self, job_id: str, node: str, kind: str, detail: str = "") -> None:
        with self.tx() as db:
            db.execute("INSERT INTO job_events(job_id, ts_ms, node, kind, detail) VALUES(?,?,?,?,?)", (job_id, now_ms(), node, kind, detail))

    def update_progress(self, job_id: str, node: str, stage: str, entry: dict[str, Any]) -> None:
        with self.tx() as db:
            row = db.execute("SELECT progress_json FROM jobs WHERE job_id=?", (job_id,)).fetchone()
            if row is None:
                return
            progress = json.loads(row["progress_json"])
            progress[node] = entry
            db.execute("UPDATE jobs SET progress_json=?, stage=?, updated_ms=? WHERE job_id=?", (json.dumps(progress), stage, now_ms(), job_id))

    def finish_role(self, job_id: str, role: str, ok: bool, result: dict[str, Any], error: str = "") -> None:
        with self.tx() as db:
            db.execute("UPDATE job_roles SET finished_ms=?, ok=?, result_json=? WHERE job_id=? AND role=?",
                       (now_ms(), int(ok), json.dumps(result), job_id, role))
            db.execute("INSERT INTO job_events(job_id, ts_ms, node, kind, detail) VALUES(?,?,?,?,?)",
                       (job_id, now_ms(), role, "role_ok" if ok else "role_failed", error))

    def merge_result(self, job_id: str, result: dict[str, Any]) -> None:
        with self.tx() as db:
            row = db.execute("SELECT result_json FROM jobs WHERE job_id=?", (job_id,)).fetchone()
            merged = merge_views(json.loads(row["result_json"]), result)  # each party's public part, keyed by its name
            db.execute("UPDATE jobs SET result_json=?, updated_ms=? WHERE job_id=?", (json.dumps(merged), now_ms(), job_id))

    def events(self, job_id: str) -> list[sqlite3.Row]:
        with self._use():
            return self._db.execute("SELECT * FROM job_events WHERE job_id=? ORDER BY id", (job_id,)).fetchall()
