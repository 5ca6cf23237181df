"""Read one transcript file for the auditor: every line checked, every flaw a problem, nothing raised.

The lines come from :func:`fedcredit.runtime.transcript.iter_lines`, the runtime's one
transcript parser. Here each record is checked on its own and against the
record before it (layout, index, hash chain, hash, signature, one job and node
per file); the header's signing certificate is checked against the CA; message
records are checked for the envelope's layout and direction. What is read is
kept in a :class:`TranscriptFile` for the cross-file checks in
:mod:`fedcredit.runtime.audit.verify`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import FedCreditError
from ..security.signing import ENVELOPE_FIELDS, cert_fingerprint, signing_public_key, verify_digest, verify_signing_cert
from ..transcript import DIRECTIONS, FORMAT, KINDS, ROLES, ZERO_HASH, iter_lines, record_hash

from .result import Findings

__all__ = ["Msg", "Event", "TranscriptFile", "read_file", "read_peer_certs", "ts_dt", "ts_text"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_PAYLOAD_FILE = re.compile(r"[^/\\]+\.payloads/[0-9a-f]{64}\.bin")
_ENV_TYPES: dict[str, type] = {
    "job_id": str, "message_id": str, "sender": str, "receiver": str, "step": str,
    "sequence": int, "payload_type": str, "payload_size": int, "payload_sha256": str,
    "sealed": bool, "classification": str,
}


@dataclass
class Msg:
    """One message record of one transcript."""

    file: "TranscriptFile"
    index: int
    line: int
    ts_ms: int
    direction: str
    envelope: dict[str, Any]
    signature: str
    key_owner: str | None
    disclosed: dict[str, Any] | None
    payload_file: str | None

    @property
    def key(self) -> tuple[Any, ...]:
        """(job, sender, receiver, step, sequence): the same for every node's record of one message."""
        e = self.envelope
        return (e["job_id"], e["sender"], e["receiver"], e["step"], e["sequence"])

    def where(self) -> str:
        return f"{self.file.who} (file {self.file.label}, record {self.index})"


@dataclass
class Event:
    """One event record (``job_spec``, ``approved``, ``finished``, ...)."""

    index: int
    line: int
    ts_ms: int
    body: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.body.get("event"))


@dataclass
class TranscriptFile:
    """What was read from one transcript file."""

    path: Path
    label: str
    job_id: str | None = None
    node: str | None = None
    role: str | None = None
    header_ts: int | None = None
    cert_pem: str | None = None
    ca_fingerprint: str | None = None
    keep_payloads: bool = False
    key: Ed25519PublicKey | None = None  # checks this file's record signatures
    trusted: bool = False  # key is usable for envelope signatures (CA-checked if a CA was given)
    ca_verified: bool = False  # the signing certificate verified under the CA given to the auditor
    records: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    messages: list[Msg] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    peer_keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    bad_records: set[int] = field(default_factory=set)  # indexes whose hash or signature failed
    readable: bool = False

    @property
    def who(self) -> str:
        return f"{self.node}'s transcript" if self.node else f"transcript {self.label}"

    def events_named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def ts_dt(ts_ms: int | None) -> _dt.datetime | None:
    if ts_ms is None:
        return None
    try:
        return _dt.datetime.fromtimestamp(ts_ms / 1000.0, tz=_dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def ts_text(ts_ms: int | None) -> str:
    dt = ts_dt(ts_ms)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else "unknown time"


def _record_shape_error(rec: dict[str, Any]) -> str | None:
    for name in ("index", "ts_ms"):
        if not is_int(rec.get(name)) or rec[name] < 0:
            return f"'{name}' is missing or not a non-negative whole number"
    if rec.get("kind") not in KINDS:
        return f"'kind' must be one of {', '.join(KINDS)}"
    for name in ("job_id", "node"):
        if not isinstance(rec.get(name), str) or not rec[name]:
            return f"'{name}' is missing"
    for name in ("prev_hash", "hash"):
        if not isinstance(rec.get(name), str) or not _HEX64.fullmatch(rec[name]):
            return f"'{name}' is not a SHA-256 hex digest"
    if not isinstance(rec.get("signature"), str) or not _HEX128.fullmatch(rec["signature"]):
        return "'signature' is not an Ed25519 signature in hex"
    if not isinstance(rec.get("body"), dict):
        return "'body' is not an object"
    return None


def _envelope_shape_error(env: Any) -> str | None:
    if not isinstance(env, dict):
        return "the envelope is not an object"
    if set(env) != set(ENVELOPE_FIELDS):
        missing = sorted(set(ENVELOPE_FIELDS) - set(env))
        extra = sorted(set(env) - set(ENVELOPE_FIELDS))
        return f"the envelope fields are wrong (missing {missing}, unexpected {extra})"
    for name, typ in _ENV_TYPES.items():
        v = env[name]
        ok = isinstance(v, bool) if typ is bool else (is_int(v) and v >= 0) if typ is int else isinstance(v, typ)
        if not ok:
            return f"envelope field '{name}' has the wrong type"
    if not _HEX64.fullmatch(env["payload_sha256"]):
        return "envelope field 'payload_sha256' is not a SHA-256 hex digest"
    return None


def read_file(path: Path, f: Findings, ca_pem: bytes | None, counts: Counter[str]) -> TranscriptFile:
    """Read and check one transcript file; every flaw goes into ``f``."""
    label = str(path)
    tf = TranscriptFile(path=path, label=label)
    try:
        data = path.read_bytes()
    except OSError as exc:
        f.problem("UNREADABLE", f"the file could not be opened ({exc.strerror or exc})", file=label)
        return tf
    tf.readable = True
    lines = list(iter_lines(data))
    if not lines:
        f.problem("FORMAT", "the file is empty: it has no header and no records", file=label)
        return tf

    prev: dict[str, Any] | None = None  # the record on the previous line, if it was readable
    prev_index = -1
    for number, rec, error in lines:
        if error is not None:
            f.problem("BAD_JSON", f"line {number} cannot be read: it is cut off or was edited so that it is "
                      "no longer a complete record", file=label, line=number)
            prev = None
            continue
        if not isinstance(rec, dict):
            f.problem("BAD_JSON", f"line {number} is not a transcript record", file=label, line=number)
            prev = None
            continue
        shape = _record_shape_error(rec)
        if shape is not None:
            f.problem("FORMAT", f"line {number} is not a valid transcript record: {shape}", file=label,
                      record=rec.get("index") if is_int(rec.get("index")) else None, line=number)
            prev = None
            continue
        idx = rec["index"]
        counts["records"] += 1
        tf.records += 1
        tf.first_ts = rec["ts_ms"] if tf.first_ts is None else tf.first_ts
        tf.last_ts = rec["ts_ms"]

        # -- header
        if number == 1:
            _read_header(tf, rec, f, ca_pem)
        elif rec["kind"] == "header":
            f.problem("FORMAT", f"record {idx} is a second header; only the first record may be one",
                      file=label, record=idx, line=number)
        if tf.job_id is None:
            tf.job_id, tf.node = rec["job_id"], rec["node"]

        # -- order and chain
        expected = prev_index + 1
        if idx != expected:
            if idx > expected:
                gap = f"record {expected}" if idx == expected + 1 else f"records {expected} to {idx - 1}"
                f.problem("INDEX", f"{gap} should come before record {idx} but {'is' if idx == expected + 1 else 'are'} "
                          "not there: records were deleted or moved", file=label, record=idx, line=number)
            else:
                f.problem("INDEX", f"record {idx} comes after record {prev_index}: records were moved, "
                          "repeated or inserted here", file=label, record=idx, line=number)
        if number == 1:
            if rec["prev_hash"] != ZERO_HASH:
                f.problem("CHAIN", f"record {idx} is first but does not start the chain", file=label,
                          record=idx, line=number)
        elif prev is not None and rec["prev_hash"] != prev["hash"]:
            f.problem("CHAIN", f"record {idx} does not link to the record before it (record {prev['index']}, "
                      f"line {number - 1}): a record was removed, inserted or moved here", file=label,
                      record=idx, line=number)
        prev_index = idx

        # -- hash and signature
        hash_ok = record_hash(rec) == rec["hash"]
        if not hash_ok:
            tf.bad_records.add(idx)
            f.problem("HASH", f"record {idx} was changed after it was written: its content no longer "
                      "matches its fingerprint (hash)", file=label, record=idx, line=number)
        if tf.key is not None:
            try:
                verify_digest(tf.key, bytes.fromhex(rec["hash"]), bytes.fromhex(rec["signature"]))
            except FedCreditError:
                tf.bad_records.add(idx)
                f.problem("SIGNATURE", f"record {idx} does not carry {tf.node}'s signature: it was forged, "
                          "or changed and re-hashed by someone without the node's key", file=label,
                          record=idx, line=number)
        else:
            tf.bad_records.add(idx)  # nothing vouches for it
        prev = rec

        # -- job and node
        if tf.job_id is not None and (rec["job_id"] != tf.job_id or rec["node"] != tf.node):
            f.problem("JOB_MISMATCH", f"record {idx} belongs to job {rec['job_id']!r} of node {rec['node']!r}, "
                      f"but this transcript is job {tf.job_id!r} of node {tf.node!r}", file=label,
                      record=idx, line=number)
            continue

        # -- bodies
        body = rec["body"]
        if rec["kind"] == "event":
            if not isinstance(body.get("event"), str) or not body["event"]:
                f.problem("FORMAT", f"event record {idx} has no event name", file=label, record=idx, line=number)
            else:
                tf.events.append(Event(idx, number, rec["ts_ms"], body))
        elif rec["kind"] == "message":
            _read_message(tf, rec, number, f)

    if tf.role is None and tf.records and not any(p.file == label and p.line == 1 for p in f.problems):
        f.problem("FORMAT", "the first record is not a transcript header, so nothing in this file can be "
                  "attributed to a signer", file=label, line=1)
    return tf


def _read_header(tf: TranscriptFile, rec: dict[str, Any], f: Findings, ca_pem: bytes | None) -> None:
    body = rec["body"]
    label = tf.label
    if rec["kind"] != "header" or body.get("format") != FORMAT:
        f.problem("FORMAT", f"the first record is not a {FORMAT} header", file=label, record=rec["index"], line=1)
        return
    if body.get("role") not in ROLES:
        f.problem("FORMAT", f"the header names an unknown role {body.get('role')!r}", file=label, record=0, line=1)
        return
    tf.job_id, tf.node, tf.role = rec["job_id"], rec["node"], body["role"]
    tf.header_ts = rec["ts_ms"]
    tf.keep_payloads = body.get("keep_payloads") is True
    tf.ca_fingerprint = body.get("ca_fingerprint") if isinstance(body.get("ca_fingerprint"), str) else None
    pem = body.get("signing_cert_pem")
    if not isinstance(pem, str):
        f.problem("CERT", "the header has no signing certificate, so no signature in this file can be checked",
                  file=label, record=0, line=1)
        return
    tf.cert_pem = pem
    try:
        tf.key = signing_public_key(pem.encode("utf-8"), tf.node)
    except FedCreditError as exc:
        f.problem("CERT", f"the header's signing certificate is unusable ({exc.message}), so no signature in "
                  "this file can be checked", file=label, record=0, line=1)
        return
    if ca_pem is None:
        tf.trusted = True
        return
    try:
        verify_signing_cert(pem.encode("utf-8"), ca_pem, tf.node or "", now=ts_dt(tf.header_ts))
    except FedCreditError as exc:
        f.problem("CERT", f"{tf.node}'s signing certificate is not valid under the given CA: {exc.message}",
                  file=label, record=0, line=1)
        return
    tf.trusted = tf.ca_verified = True
    try:
        ca_fp = cert_fingerprint(ca_pem)
    except FedCreditError:
        return
    if tf.ca_fingerprint is not None and tf.ca_fingerprint != ca_fp:
        f.warn("CERT", "the header names a different CA fingerprint than the CA given to the auditor, "
               "although the certificate verifies under the given CA", file=label, record=0, line=1)


def _read_message(tf: TranscriptFile, rec: dict[str, Any], number: int, f: Findings) -> None:
    body, idx, label = rec["body"], rec["index"], tf.label
    direction = body.get("direction")
    env = body.get("envelope")
    problem = None
    if direction not in DIRECTIONS:
        problem = f"direction must be one of {', '.join(DIRECTIONS)}"
    else:
        problem = _envelope_shape_error(env)
    sig = body.get("envelope_signature")
    if problem is None and (not isinstance(sig, str) or not _HEX128.fullmatch(sig)):
        problem = "the sender's envelope signature is missing or not hex"
    key_owner, disclosed, payload_file = body.get("key_owner"), body.get("disclosed"), body.get("payload_file")
    if problem is None and not (key_owner is None or isinstance(key_owner, str)):
        problem = "'key_owner' must be text or null"
    if problem is None and not (disclosed is None or isinstance(disclosed, dict)):
        problem = "'disclosed' must be an object or null"
    if problem is None and not (payload_file is None or (isinstance(payload_file, str) and _PAYLOAD_FILE.fullmatch(payload_file))):
        problem = "'payload_file' must be null or '<name>.payloads/<sha256>.bin'"
    if problem is not None:
        f.problem("FORMAT", f"message record {idx}: {problem}", file=label, record=idx, line=number)
        return
    msg = Msg(tf, idx, number, rec["ts_ms"], direction, env, sig, key_owner, disclosed, payload_file)
    node = tf.node
    if env["job_id"] != rec["job_id"]:
        f.problem("JOB_MISMATCH", f"message record {idx} carries an envelope of job {env['job_id']!r} in the "
                  f"transcript of job {rec['job_id']!r}", file=label, record=idx, line=number)
        return
    wrong = (
        (direction == "sent" and env["sender"] != node)
        or (direction == "received" and env["receiver"] != node)
        or (direction == "relayed" and node in (env["sender"], env["receiver"]))
    )
    if wrong:
        f.problem("MISMATCH", f"message record {idx} says {node} {direction} a message from {env['sender']} to "
                  f"{env['receiver']}, which {node} cannot have {direction}", file=label, record=idx, line=number)
        return
    if payload_file is not None:
        _check_payload_file(tf, msg, f)
    tf.messages.append(msg)


def _check_payload_file(tf: TranscriptFile, msg: Msg, f: Findings) -> None:
    assert msg.payload_file is not None
    target = tf.path.parent / msg.payload_file
    try:
        data = target.read_bytes()
    except OSError:
        f.warn("MISSING", f"the kept payload of record {msg.index} ({msg.payload_file}) is not next to the "
               "transcript; only its digest can be checked", file=tf.label, record=msg.index, line=msg.line)
        return
    if hashlib.sha256(data).hexdigest() != msg.envelope["payload_sha256"] or len(data) != msg.envelope["payload_size"]:
        f.problem("HASH", f"the kept payload of record {msg.index} ({msg.payload_file}) does not match the digest "
                  "the sender signed: the payload file was changed", file=tf.label, record=msg.index, line=msg.line)


def read_peer_certs(tf: TranscriptFile, f: Findings, ca_pem: bytes | None) -> None:
    """Collect the signing keys ``tf``'s node recorded for its peers (``peer_certs`` events), CA-checked if given."""
    for ev in tf.events_named("peer_certs"):
        certs = ev.body.get("certs")
        if not isinstance(certs, dict):
            f.problem("FORMAT", f"peer_certs record {ev.index} has no 'certs' object", file=tf.label,
                      record=ev.index, line=ev.line)
            continue
        for name, pem in certs.items():
            if not isinstance(pem, str):
                f.problem("CERT", f"peer_certs record {ev.index}: the certificate for {name!r} is not text",
                          file=tf.label, record=ev.index, line=ev.line)
                continue
            try:
                if ca_pem is not None:
                    key = verify_signing_cert(pem.encode("utf-8"), ca_pem, str(name), now=ts_dt(ev.ts_ms))
                else:
                    key = signing_public_key(pem.encode("utf-8"), str(name))
            except FedCreditError as exc:
                f.problem("CERT", f"the signing certificate {tf.node} recorded for {name!r} is not valid: "
                          f"{exc.message}", file=tf.label, record=ev.index, line=ev.line)
                continue
            tf.peer_keys.setdefault(str(name), key)
