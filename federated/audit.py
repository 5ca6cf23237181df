"""Verify transcripts and write an audit report a compliance officer can read.

:func:`verify_transcripts` checks a set of transcript files (see
:mod:`federated.transcript`), alone and against each other:

* per file: a header first, contiguous indexes, the hash chain, every record's
  hash and Ed25519 signature, the signing certificate (against the CA when one
  is given), one job and one node per file;
* per message: the sender's envelope signature, with the sender's key from
  its own transcript or from a ``peer_certs`` event;
* across files: the sender's ``sent``, the receiver's ``received`` and the
  coordinator's ``relayed`` record of each message agree, and none is missing;
* the job spec: every ``job_spec``/``approved``/``rejected`` event names the
  same spec hash, and that hash is the hash of the recorded spec.

It never raises for bad input: every unreadable file, line or field becomes a
:class:`Problem` with a stable ``code`` and a plain-words ``message``.
:func:`render_report` turns the same material into HTML, Markdown or JSON.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import html
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from federated.errors import FedCreditError
from federated.signing import (
    ENVELOPE_FIELDS,
    canonical_json,
    cert_fingerprint,
    envelope_digest,
    signing_public_key,
    verify_digest,
    verify_signing_cert,
)
from federated.transcript import DIRECTIONS, FORMAT, KINDS, ROLES, ZERO_HASH, record_hash

__all__ = [
    "PROBLEM_CODES",
    "Problem",
    "VerificationResult",
    "verify_transcripts",
    "render_report",
    "report_data",
    "CLASSIFICATION_LABELS",
]

#: Every problem code, with what it means in plain words.
PROBLEM_CODES: dict[str, str] = {
    "UNREADABLE": "a transcript file could not be opened",
    "BAD_JSON": "a line of a transcript is cut off or is not a readable record",
    "FORMAT": "a record does not have the layout of a fedcredit transcript record",
    "INDEX": "records are missing, repeated or out of order",
    "CHAIN": "a record does not link to the record before it (removed, inserted or moved records)",
    "HASH": "a record was changed after it was written",
    "SIGNATURE": "a record is not signed by the node whose transcript it is in",
    "CERT": "a signing certificate is not valid for the node that used it",
    "ENVELOPE_SIGNATURE": "a message's details do not carry a valid signature of its sender",
    "MISMATCH": "two transcripts describe the same message differently",
    "MISSING": "a message recorded by one side is not recorded by the other",
    "SPEC_MISMATCH": "the nodes did not record and approve the same job specification",
    "APPROVAL_SIGNATURE": "a recorded approval or rejection is not signed by the party it names",
    "JOB_MISMATCH": "a transcript mixes records of different jobs or nodes",
    "DUPLICATE": "two transcripts claim to be the same node's record of the same job",
    "INTERNAL": "the report could not be completed",
}

CLASSIFICATION_LABELS: dict[str, str] = {
    "ciphertext": "encrypted",
    "masked": "masked (hidden by random numbers)",
    "public": "public parameter",
    "aggregate": "agreed result",
    "plaintext": "PLAIN VALUES",
}
_CLASS_ORDER = ("plaintext", "aggregate", "public", "masked", "ciphertext")

_NO_CA = ("no CA certificate was given (--ca, or $FEDCREDIT_CA): without a trust anchor, transcripts re-signed "
          "with fresh keys, with records removed or results changed, would verify; nothing is verified")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_PAYLOAD_FILE = re.compile(r"[^/\\]+\.payloads/[0-9a-f]{64}\.bin")
_ENV_TYPES: dict[str, type] = {
    "job_id": str, "message_id": str, "sender": str, "receiver": str, "step": str,
    "sequence": int, "payload_type": str, "payload_size": int, "payload_sha256": str,
    "sealed": bool, "classification": str,
}


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One finding.

    ``record`` is the record's index when the record could be read, ``line``
    its 1-based line in the file. ``other_file``/``other_record`` name the
    second transcript of a cross-file finding.
    """

    code: str
    message: str
    file: str | None = None
    record: int | None = None
    line: int | None = None
    other_file: str | None = None
    other_record: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["meaning"] = PROBLEM_CODES.get(self.code, "")
        return d

    def __str__(self) -> str:
        where = self.file or ""
        if self.record is not None:
            where += f" record {self.record}"
        elif self.line is not None:
            where += f" line {self.line}"
        return f"[{self.code}] {where.strip()}: {self.message}" if where.strip() else f"[{self.code}] {self.message}"


@dataclass
class VerificationResult:
    """``ok`` is true when there is no problem (warnings do not count)."""

    ok: bool
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    jobs: list[str] = field(default_factory=list)

    def codes(self) -> set[str]:
        return {p.code for p in self.problems}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": "Verified" if self.ok else "NOT verified",
            "jobs": list(self.jobs),
            "checked": dict(self.checked),
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [w.to_dict() for w in self.warnings],
        }


# --------------------------------------------------------------------------
# Parsed material
# --------------------------------------------------------------------------
@dataclass
class _Msg:
    file: "_File"
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
        e = self.envelope
        return (e["job_id"], e["sender"], e["receiver"], e["step"], e["sequence"])

    def where(self) -> str:
        return f"{self.file.who} (file {self.file.label}, record {self.index})"


@dataclass
class _Event:
    index: int
    line: int
    ts_ms: int
    body: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.body.get("event"))


@dataclass
class _File:
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
    records: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    messages: list[_Msg] = field(default_factory=list)
    events: list[_Event] = field(default_factory=list)
    peer_keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    readable: bool = False

    @property
    def who(self) -> str:
        return f"{self.node}'s transcript" if self.node else f"transcript {self.label}"

    def events_named(self, name: str) -> list[_Event]:
        return [e for e in self.events if e.name == name]


class _Findings:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def problem(self, code: str, message: str, **where: Any) -> None:
        self.problems.append(Problem(code, message, **where))

    def warn(self, code: str, message: str, **where: Any) -> None:
        self.warnings.append(Problem(code, message, **where))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _ts_dt(ts_ms: int | None) -> _dt.datetime | None:
    if ts_ms is None:
        return None
    try:
        return _dt.datetime.fromtimestamp(ts_ms / 1000.0, tz=_dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _ts_text(ts_ms: int | None) -> str:
    dt = _ts_dt(ts_ms)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else "unknown time"


def _record_shape_error(rec: dict[str, Any]) -> str | None:
    for name in ("index", "ts_ms"):
        if not _is_int(rec.get(name)) or rec[name] < 0:
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
        ok = isinstance(v, bool) if typ is bool else (_is_int(v) and v >= 0) if typ is int else isinstance(v, typ)
        if not ok:
            return f"envelope field '{name}' has the wrong type"
    if not _HEX64.fullmatch(env["payload_sha256"]):
        return "envelope field 'payload_sha256' is not a SHA-256 hex digest"
    return None


# --------------------------------------------------------------------------
# Per file
# --------------------------------------------------------------------------
def _read_file(path: Path, f: _Findings, ca_pem: bytes | None, counts: Counter[str]) -> _File:
    label = str(path)
    tf = _File(path=path, label=label)
    try:
        data = path.read_bytes()
    except OSError as exc:
        f.problem("UNREADABLE", f"the file could not be opened ({exc.strerror or exc})", file=label)
        return tf
    tf.readable = True
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        f.problem("FORMAT", "the file is empty: it has no header and no records", file=label)
        return tf

    prev: dict[str, Any] | None = None  # the record on the previous line, if it was readable
    prev_index = -1
    for number, raw in enumerate(lines, start=1):
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
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
                      record=rec.get("index") if _is_int(rec.get("index")) else None, line=number)
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
            f.problem("HASH", f"record {idx} was changed after it was written: its content no longer "
                      "matches its fingerprint (hash)", file=label, record=idx, line=number)
        if tf.key is not None:
            try:
                verify_digest(tf.key, bytes.fromhex(rec["hash"]), bytes.fromhex(rec["signature"]))
            except FedCreditError:
                f.problem("SIGNATURE", f"record {idx} does not carry {tf.node}'s signature: it was forged, "
                          "or changed and re-hashed by someone without the node's key", file=label,
                          record=idx, line=number)
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
                tf.events.append(_Event(idx, number, rec["ts_ms"], body))
        elif rec["kind"] == "message":
            _read_message(tf, rec, number, f)

    if tf.role is None and tf.records and not any(p.file == label and p.line == 1 for p in f.problems):
        f.problem("FORMAT", "the first record is not a transcript header, so nothing in this file can be "
                  "attributed to a signer", file=label, line=1)
    return tf


def _read_header(tf: _File, rec: dict[str, Any], f: _Findings, ca_pem: bytes | None) -> None:
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
        verify_signing_cert(pem.encode("utf-8"), ca_pem, tf.node or "", now=_ts_dt(tf.header_ts))
    except FedCreditError as exc:
        f.problem("CERT", f"{tf.node}'s signing certificate is not valid under the given CA: {exc.message}",
                  file=label, record=0, line=1)
        return
    tf.trusted = True
    try:
        ca_fp = cert_fingerprint(ca_pem)
    except FedCreditError:
        return
    if tf.ca_fingerprint is not None and tf.ca_fingerprint != ca_fp:
        f.warn("CERT", "the header names a different CA fingerprint than the CA given to the auditor, "
               "although the certificate verifies under the given CA", file=label, record=0, line=1)


def _read_message(tf: _File, rec: dict[str, Any], number: int, f: _Findings) -> None:
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
    msg = _Msg(tf, idx, number, rec["ts_ms"], direction, env, sig, key_owner, disclosed, payload_file)
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


def _check_payload_file(tf: _File, msg: _Msg, f: _Findings) -> None:
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


def _read_peer_certs(tf: _File, f: _Findings, ca_pem: bytes | None) -> None:
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
                    key = verify_signing_cert(pem.encode("utf-8"), ca_pem, str(name), now=_ts_dt(ev.ts_ms))
                else:
                    key = signing_public_key(pem.encode("utf-8"), str(name))
            except FedCreditError as exc:
                f.problem("CERT", f"the signing certificate {tf.node} recorded for {name!r} is not valid: "
                          f"{exc.message}", file=tf.label, record=ev.index, line=ev.line)
                continue
            tf.peer_keys.setdefault(str(name), key)


# --------------------------------------------------------------------------
# Across files
# --------------------------------------------------------------------------
def _job_failed(files: list[_File]) -> bool:
    return any(ev.body.get("ok") is False for tf in files for ev in tf.events_named("finished"))


def _check_envelope_signatures(files: list[_File], by_node: dict[str, _File], f: _Findings,
                               counts: Counter[str]) -> None:
    for tf in files:
        unverifiable: Counter[str] = Counter()
        for m in tf.messages:
            sender = m.envelope["sender"]
            own = by_node.get(sender)
            key: Ed25519PublicKey | None = None
            if own is not None and own.trusted and own.key is not None:
                key = own.key
            elif sender == tf.node and tf.trusted:
                key = tf.key
            else:
                key = tf.peer_keys.get(sender)
            if key is None:
                unverifiable[sender] += 1
                counts["envelope_signatures_unverifiable"] += 1
                continue
            try:
                verify_digest(key, envelope_digest(m.envelope), bytes.fromhex(m.signature))
            except FedCreditError:
                f.problem("ENVELOPE_SIGNATURE", f"{sender}'s signature on message {m.envelope['step']} "
                          f"#{m.envelope['sequence']} to {m.envelope['receiver']} does not match the message "
                          f"details recorded in record {m.index}: they were altered after {sender} signed them, "
                          "or the signature is forged", file=tf.label, record=m.index, line=m.line)
                continue
            counts["envelope_signatures_verified"] += 1
        for sender, n in sorted(unverifiable.items()):
            f.warn("ENVELOPE_SIGNATURE", f"{n} message(s) from {sender} could not have their sender signature "
                   f"checked: no trusted signing certificate for {sender} (add {sender}'s transcript, "
                   "or a valid peer_certs record)", file=tf.label)


def _diff_fields(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [k for k in ENVELOPE_FIELDS if a.get(k) != b.get(k)]


def _check_cross(files: list[_File], by_node: dict[str, _File], f: _Findings, counts: Counter[str]) -> None:
    failed = _job_failed(files)
    groups: dict[tuple[Any, ...], list[_Msg]] = {}
    for tf in files:
        if by_node.get(tf.node or "") is not tf:
            continue  # a duplicate transcript: reported, not cross-checked
        for m in tf.messages:
            groups.setdefault(m.key, []).append(m)
    coordinators = [tf for tf in files if tf.role == "coordinator" and by_node.get(tf.node or "") is tf]

    def missing(message: str, m: _Msg, other: _File | None) -> None:
        where = {"file": m.file.label, "record": m.index, "line": m.line,
                 "other_file": other.label if other else None}
        if failed:
            f.warn("MISSING", message + " (the job failed, so the other side may have stopped first)", **where)
        else:
            f.problem("MISSING", message, **where)

    for key, msgs in groups.items():
        job, sender, receiver, step, seq = key
        what = f"message {step} #{seq} from {sender} to {receiver}"
        by_dir: dict[str, list[_Msg]] = {}
        for m in msgs:
            by_dir.setdefault(m.direction, []).append(m)
        for direction, ms in by_dir.items():
            per_file = Counter(m.file.label for m in ms)
            for label, n in per_file.items():
                if n > 1:
                    first = next(m for m in ms if m.file.label == label)
                    f.problem("MISMATCH", f"{what} is recorded as {direction} {n} times in the same transcript",
                              file=label, record=first.index, line=first.line)
        ref = (by_dir.get("sent") or by_dir.get("received") or by_dir.get("relayed") or msgs)[0]
        if len({m.file.label for m in msgs}) > 1:
            counts["messages_cross_checked"] += 1
        for m in msgs:
            if m is ref or m.file is ref.file:
                continue
            diff = _diff_fields(ref.envelope, m.envelope)
            if diff or m.signature != ref.signature:
                detail = ", ".join(diff) + (" differ" if len(diff) > 1 else " differs") if diff else "the sender signatures differ"
                f.problem("MISMATCH", f"{ref.where()} and {m.where()} disagree about {what}: {detail}",
                          file=m.file.label, record=m.index, line=m.line, other_file=ref.file.label,
                          other_record=ref.index)

        s_file, r_file = by_node.get(sender), by_node.get(receiver)
        sent, received, relayed = by_dir.get("sent", []), by_dir.get("received", []), by_dir.get("relayed", [])
        if s_file is not None and r_file is not None:
            if sent and not received:
                missing(f"{sent[0].where()} records sending {what}, but {r_file.who} ({r_file.label}) has no "
                        "record of receiving it", sent[0], r_file)
            if received and not sent:
                missing(f"{received[0].where()} records receiving {what}, but {s_file.who} ({s_file.label}) has "
                        "no record of sending it", received[0], s_file)
        if s_file is not None and relayed and not sent:
            missing(f"{relayed[0].where()} records relaying {what}, but {s_file.who} ({s_file.label}) has no "
                    "record of sending it", relayed[0], s_file)
        for coord in coordinators:
            if coord.node not in (sender, receiver) and (sent or received) and not relayed:
                m = (sent or received)[0]
                f.warn("MISSING", f"{what} is in {m.where()} but the coordinator's transcript ({coord.label}) has "
                       "no record of relaying it", file=m.file.label, record=m.index, line=m.line,
                       other_file=coord.label)


def _check_spec(files: list[_File], f: _Findings) -> None:
    seen: list[tuple[_File, _Event, str]] = []
    for tf in files:
        for ev in tf.events:
            if ev.name not in ("job_spec", "approved", "rejected"):
                continue
            sha = ev.body.get("spec_sha256")
            if not isinstance(sha, str):
                f.problem("SPEC_MISMATCH", f"the {ev.name} record {ev.index} names no specification hash",
                          file=tf.label, record=ev.index, line=ev.line)
                continue
            if ev.name == "job_spec":
                spec = ev.body.get("spec")
                try:
                    actual = hashlib.sha256(canonical_json(spec)).hexdigest()
                except (TypeError, ValueError):
                    actual = None
                if actual != sha:
                    f.problem("SPEC_MISMATCH", f"the job specification recorded in record {ev.index} does not match "
                              "the hash recorded with it: the specification text was changed",
                              file=tf.label, record=ev.index, line=ev.line)
                purpose = ev.body.get("purpose")
                if isinstance(spec, dict) and "purpose" in spec and purpose is not None and spec["purpose"] != purpose:
                    f.problem("SPEC_MISMATCH", f"record {ev.index} states the purpose {purpose!r}, but the "
                              f"specification says {spec['purpose']!r}", file=tf.label, record=ev.index, line=ev.line)
            seen.append((tf, ev, sha))
        if tf.role in ("guest", "host") and not (tf.events_named("approved") or tf.events_named("rejected")):
            f.warn("SPEC_MISMATCH", f"{tf.who} has no record of approving the job specification", file=tf.label)
    if not seen:
        return
    ref_tf, ref_ev, ref_sha = seen[0]
    for tf, ev, sha in seen[1:]:
        if sha != ref_sha:
            f.problem("SPEC_MISMATCH", f"{tf.who} record {ev.index} ({ev.name}) names job specification "
                      f"{sha[:16]}..., but {ref_tf.who} record {ref_ev.index} ({ref_ev.name}) names "
                      f"{ref_sha[:16]}...: the nodes did not agree to the same job",
                      file=tf.label, record=ev.index, line=ev.line, other_file=ref_tf.label,
                      other_record=ref_ev.index)


@dataclass
class _Audit:
    result: VerificationResult
    files: list[_File]
    jobs: dict[str, list[_File]]
    by_job_node: dict[str, dict[str, _File]]


def _check_approval_signatures(files: list[_File], by_node: dict[str, _File], f: _Findings, counts: Counter[str]) -> None:
    """Every recorded approval/rejection must carry the named party's own signature over exactly that decision.

    This is what stops a coordinator from recording an approval a party never gave.
    """
    from .approval import approval_digest

    for tf in files:
        for ev in tf.events_named("approved") + tf.events_named("rejected"):
            b = ev.body
            node = b.get("node", tf.node)
            sig = b.get("signature")
            if not isinstance(sig, str) or node is None or "by" not in b or "spec_sha256" not in b:
                continue
            own = by_node.get(node)
            key = own.key if own is not None and own.trusted and own.key is not None else tf.peer_keys.get(node)
            if key is None and node == tf.node and tf.trusted:
                key = tf.key
            if key is None:
                f.warn("APPROVAL_SIGNATURE", f"the {ev.name} decision of {node} in record {ev.index} could not be checked: "
                       f"no trusted signing certificate for {node}", file=tf.label, record=ev.index)
                continue
            digest = approval_digest(tf.job_id or "", str(b["spec_sha256"]), node, ev.name == "approved", str(b["by"]),
                                     str(b.get("reason", "")))
            try:
                verify_digest(key, digest, bytes.fromhex(sig))
            except (FedCreditError, ValueError):
                f.problem("APPROVAL_SIGNATURE", f"record {ev.index} says {node} {ev.name} the job "
                          f"(spec {str(b['spec_sha256'])[:16]}…), but the decision is not signed by {node}",
                          file=tf.label, record=ev.index, line=ev.line)
                continue
            counts["approval_signatures_verified"] += 1


def _audit(paths: Sequence[Path], ca_cert_pem: bytes | None) -> _Audit:
    f = _Findings()
    counts: Counter[str] = Counter()
    files: list[_File] = []
    seen_paths: set[Path] = set()
    for p in paths:
        path = Path(p)
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):
            resolved = path
        if resolved in seen_paths:
            continue
        seen_paths.add(resolved)
        counts["files"] += 1
        files.append(_read_file(path, f, ca_cert_pem, counts))
    if not files:
        f.problem("MISSING", "no transcript files were given")
    if ca_cert_pem is None and files:
        f.problem("NO_CA", _NO_CA)  # #12: a signature proves nothing without the CA that says whose key it is

    jobs: dict[str, list[_File]] = {}
    for tf in files:
        if tf.job_id is not None:
            jobs.setdefault(tf.job_id, []).append(tf)
    by_job_node: dict[str, dict[str, _File]] = {}
    for job, jf in jobs.items():
        by_node: dict[str, _File] = {}
        for tf in jf:
            if tf.node is None:
                continue
            if tf.node in by_node:
                first = by_node[tf.node]
                f.problem("DUPLICATE", f"both {first.label} and {tf.label} claim to be {tf.node}'s transcript of job "
                          f"{job}; only the first is compared with the other nodes", file=tf.label,
                          other_file=first.label)
                continue
            by_node[tf.node] = tf
        by_job_node[job] = by_node
        for tf in jf:
            _read_peer_certs(tf, f, ca_cert_pem)
            if tf.role is not None and not tf.events_named("finished"):
                f.warn("MISSING", f"{tf.who} ends without a 'finished' record: the node stopped early, the job is "
                       "still running, or the end of the file was cut off", file=tf.label)
        _check_envelope_signatures(jf, by_node, f, counts)
        _check_approval_signatures(jf, by_node, f, counts)
        _check_cross(jf, by_node, f, counts)
        _check_spec(jf, f)

    checked = {k: counts.get(k, 0) for k in ("files", "records", "messages_cross_checked",
                                              "envelope_signatures_verified", "envelope_signatures_unverifiable",
                                              "approval_signatures_verified")}
    result = VerificationResult(ok=not f.problems, problems=f.problems, warnings=f.warnings,
                                checked=checked, jobs=sorted(jobs))
    return _Audit(result, files, jobs, by_job_node)


def verify_transcripts(paths: Sequence[Path], *, ca_cert_pem: bytes | None = None) -> VerificationResult:
    """Verify transcripts alone and against each other.

    Args:
        paths: transcript files, of one or several jobs and nodes.
        ca_cert_pem: the job's CA certificate, the trust anchor. Without it
            nothing verifies (problem ``NO_CA``): anyone can re-sign a
            transcript with a fresh key of the same name.

    Returns:
        A :class:`VerificationResult`; ``ok`` is false if there is any
        problem. Never raises for unreadable or tampered files.
    """
    return _audit(paths, ca_cert_pem).result


# --------------------------------------------------------------------------
# Report data
# --------------------------------------------------------------------------
_WORDS = {
    "auc": "AUC", "ks": "KS", "test_auc": "AUC on the test rows", "test_ks": "KS on the test rows",
    "test_rows": "test rows", "test_positives": "positive labels among the test rows",
    "training_rows": "training rows", "batches_per_epoch": "batches per epoch",
    "mean_training_loss": "mean training loss", "loss": "loss", "epoch": "epoch",
    "intersection_size": "intersection size", "paillier_key_bits": "encryption key size (bits)",
    "key_fingerprint": "key fingerprint", "stop": "training stops",
    "set_size": "number of ids the other party put into the matching",
    "bins": "size of the bank's hash table (follows from its set size)",
    "cache_size": "size of the platform's cached id set",
    "cache_digest": "fingerprint of the platform's cached id set", "cache_current": "the bank's copy of the cache is current",
    "ckks_context_bytes": "size of the public encryption context (bytes)", "contains_secret_key": "contains a secret key",
}
_EXPLAIN_KEYS = ("explanation", "why", "reason")


def _words(key: str) -> str:
    return _WORDS.get(key, key.replace("_", " "))


def _value_text(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    return str(v)


def _label(classification: str, key_owner: str | None, role_nodes: dict[str, str]) -> str:
    if classification == "ciphertext":
        if not key_owner:
            return "encrypted (the key holder is not recorded)"
        node = role_nodes.get(key_owner)
        who = key_owner if node in (None, key_owner) else f"{key_owner} ({node})"
        return f"encrypted (only the {who}'s key can open it)"
    return CLASSIFICATION_LABELS.get(classification, f"unknown kind {classification!r}")


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def _job_data(job: str, jf: list[_File], by_node: dict[str, _File], result: VerificationResult) -> dict[str, Any]:
    labels = {tf.label for tf in jf}
    role_nodes = {tf.role: tf.node for tf in by_node.values() if tf.role and tf.node}

    # -- unique messages (prefer the sender's record)
    order = {"sent": 0, "received": 1, "relayed": 2}
    unique: dict[tuple[Any, ...], list[_Msg]] = {}
    for tf in by_node.values():
        for m in tf.messages:
            unique.setdefault(m.key, []).append(m)
    for ms in unique.values():
        ms.sort(key=lambda m: order[m.direction])

    nodes = set(by_node)
    for key in unique:
        nodes.update((key[1], key[2]))
    parties = []
    for n in sorted(nodes, key=lambda n: (ROLES.index(by_node[n].role) if n in by_node and by_node[n].role in ROLES else 9, n)):
        tf = by_node.get(n)
        parties.append({
            "node": n,
            "role": tf.role if tf else None,
            "transcript": tf.label if tf else None,
            "records": tf.records if tf else 0,
            "signing_cert_fingerprint": _safe_fp(tf.cert_pem) if tf else None,
        })

    # -- spec and approvals
    spec = purpose = spec_sha = None
    spec_key: str | None = None
    other_specs: list[dict[str, Any]] = []
    approvals: list[dict[str, Any]] = []
    approvals_by: dict[tuple[Any, ...], dict[str, Any]] = {}
    for tf in by_node.values():
        for ev in tf.events:
            if ev.name == "job_spec":
                try:
                    key = canonical_json([ev.body.get("spec"), ev.body.get("spec_sha256"), ev.body.get("purpose")]).decode()
                except (TypeError, ValueError):
                    key = repr(ev.body)
                if spec_key is None:
                    spec_key = key
                    spec, purpose, spec_sha = ev.body.get("spec"), ev.body.get("purpose"), ev.body.get("spec_sha256")
                elif key != spec_key:
                    other_specs.append({"node": tf.node, "record": ev.index, "spec": _json_safe(ev.body.get("spec")),
                                        "purpose": ev.body.get("purpose"), "spec_sha256": ev.body.get("spec_sha256")})
            elif ev.name in ("approved", "rejected"):
                # A party records its own decision; the coordinator records each party's
                # decision with ``node`` set to that party. Merge the copies.
                by, checks, reason = ev.body.get("by"), ev.body.get("checks"), ev.body.get("reason")
                decider = ev.body.get("node") if isinstance(ev.body.get("node"), str) else tf.node
                ident = (decider, ev.name, ev.body.get("spec_sha256"), str(by))
                row = approvals_by.get(ident)
                if row is None:
                    row = approvals_by[ident] = {
                        "node": decider, "decision": ev.name, "by": str(by) if by is not None else None,
                        "by_text": {"policy": "automatically, by the node's local policy",
                                    "operator": "by an operator, explicitly"}.get(str(by), f"by {by}"),
                        "checks": [], "reason": str(reason) if reason else "",
                        "spec_sha256": ev.body.get("spec_sha256"), "time": _ts_text(ev.ts_ms), "recorded_by": [],
                    }
                    approvals.append(row)
                if isinstance(checks, list) and not row["checks"]:
                    row["checks"] = [str(c) for c in checks]
                if reason and not row["reason"]:
                    row["reason"] = str(reason)
                if tf.node not in row["recorded_by"]:
                    row["recorded_by"].append(tf.node)
    if purpose is None and isinstance(spec, dict):
        purpose = spec.get("purpose")

    # -- flows
    flows: dict[tuple[str, str, str, str | None], dict[str, Any]] = {}
    totals: dict[str, dict[str, Any]] = {}
    disclosed, plaintext = [], []
    for key in sorted(unique, key=lambda k: (min(m.ts_ms for m in unique[k]), k[3], k[4])):
        ms = unique[key]
        ref = ms[0]
        env = ref.envelope
        cls = env["classification"]
        key_owner = next((m.key_owner for m in ms if m.key_owner), None)
        label = _label(cls, key_owner, role_nodes)
        fk = (env["sender"], env["receiver"], cls, key_owner if cls == "ciphertext" else None)
        row = flows.setdefault(fk, {"from": env["sender"], "to": env["receiver"], "classification": cls,
                                    "key_owner": fk[3], "label": label, "messages": 0, "bytes": 0,
                                    "sealed_messages": 0, "steps": []})
        row["messages"] += 1
        row["bytes"] += env["payload_size"]
        row["sealed_messages"] += int(env["sealed"])
        if env["step"] not in row["steps"]:
            row["steps"].append(env["step"])
        tot = totals.setdefault(cls, {"classification": cls, "label": CLASSIFICATION_LABELS.get(cls, cls),
                                      "messages": 0, "bytes": 0})
        tot["messages"] += 1
        tot["bytes"] += env["payload_size"]
        values = next((m.disclosed for m in ms if m.disclosed), None)
        base = {"from": env["sender"], "to": env["receiver"], "step": env["step"], "sequence": env["sequence"],
                "classification": cls, "time": _ts_text(ref.ts_ms)}
        if cls == "plaintext":
            v = dict(values or {})
            explanation = next((str(v[k]) for k in _EXPLAIN_KEYS if k in v), None)
            plaintext.append({**base, "bytes": env["payload_size"], "sealed": env["sealed"],
                              "payload_type": env["payload_type"], "what": str(v["what"]) if "what" in v else None,
                              "explanation": explanation, "disclosed": _json_safe(v),
                              "recorded_in": [m.where() for m in ms]})
        elif values and cls in ("aggregate", "public"):
            text = ", ".join(f"{_words(str(k))} = {_value_text(x)}" for k, x in values.items())
            disclosed.append({**base, "values": _json_safe(values), "text": text})

    flow_rows = sorted(flows.values(), key=lambda r: (r["from"], r["to"], _CLASS_ORDER.index(r["classification"])
                                                      if r["classification"] in _CLASS_ORDER else 9))
    consent = []
    finished = []
    for tf in by_node.values():
        for ev in tf.events_named("consent"):
            consent.append({"node": tf.node, "purpose": ev.body.get("purpose"),
                            "included": ev.body.get("included"), "excluded": ev.body.get("excluded"),
                            "time": _ts_text(ev.ts_ms),
                            "note": f"Only {tf.node} sees these counts: they are recorded in its own transcript "
                                    "and are not sent to any other node."})
        for ev in tf.events_named("finished"):
            finished.append({"node": tf.node, "ok": ev.body.get("ok") is True,
                             "error": str(ev.body.get("error") or ""), "time": _ts_text(ev.ts_ms)})

    problems = [p.to_dict() for p in result.problems if p.file in labels or p.other_file in labels]
    first = min((tf.first_ts for tf in jf if tf.first_ts is not None), default=None)
    last = max((tf.last_ts for tf in jf if tf.last_ts is not None), default=None)
    return {
        "job_id": job,
        "verified": not problems,
        "problems": problems,
        "started": _ts_text(first),
        "ended": _ts_text(last),
        "parties": parties,
        "purpose": purpose,
        "spec": _json_safe(spec),
        "spec_sha256": spec_sha,
        "spec_recorded_by": next((tf.node for tf in by_node.values() if tf.events_named("job_spec")), None),
        "other_specs": other_specs,
        "approvals": approvals,
        "flows": flow_rows,
        "totals_by_classification": sorted(totals.values(), key=lambda r: _CLASS_ORDER.index(r["classification"])
                                           if r["classification"] in _CLASS_ORDER else 9),
        "messages": len(unique),
        "disclosed": disclosed,
        "plaintext": plaintext,
        "consent": consent,
        "finished": finished,
    }


def _safe_fp(pem: str | None) -> str | None:
    if pem is None:
        return None
    try:
        return cert_fingerprint(pem.encode("utf-8"))
    except (FedCreditError, UnicodeError):
        return None


def report_data(paths: Sequence[Path], *, ca_cert_pem: bytes | None = None) -> dict[str, Any]:
    """The report's content as a JSON-ready dict (what ``fmt="json"`` prints). Never raises for bad files."""
    try:
        audit = _audit(paths, ca_cert_pem)
        result = audit.result
        jobs = [_job_data(job, jf, audit.by_job_node[job], result) for job, jf in sorted(audit.jobs.items())]
        files = [{"file": tf.label, "job_id": tf.job_id, "node": tf.node, "role": tf.role, "records": tf.records}
                 for tf in audit.files]
    except Exception as exc:  # noqa: BLE001 - the report must never show a stack trace
        result = VerificationResult(ok=False, problems=[Problem(
            "INTERNAL", f"the transcripts could not be fully checked ({type(exc).__name__}: {exc}); "
            "treat them as not verified")])
        jobs, files = [], [{"file": str(p)} for p in paths]
    return {
        "format": "fedcredit-audit-report/1",
        "verification": result.to_dict(),
        "jobs": jobs,
        "files": files,
        "problem_codes": dict(PROBLEM_CODES),
    }


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------
def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _bytes_text(n: int) -> str:
    """``512 B``, ``1.5 KiB (1,536 bytes)``, ``11.1 MiB (11,639,000 bytes)``."""
    if n < 1024:
        return f"{n} B"
    scaled = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "TiB":
            return f"{scaled:.1f} {unit} ({n:,} bytes)"
    raise AssertionError("unreachable")


def _where(p: dict[str, Any]) -> str:
    parts = []
    if p.get("file"):
        parts.append(str(p["file"]))
    if p.get("record") is not None:
        parts.append(f"record {p['record']}")
    elif p.get("line") is not None:
        parts.append(f"line {p['line']}")
    return ", ".join(parts)


_CSS = """
body{font-family:"DejaVu Sans",Arial,Helvetica,sans-serif;margin:2em auto;max-width:1100px;color:#1d2430;line-height:1.45;padding:0 1em}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #d5dae3;padding-bottom:.2em;margin-top:1.8em}
h3{margin-top:1.4em}
.banner{border-radius:8px;padding:1em 1.3em;margin:1em 0 1.5em 0;font-size:1.05em}
.banner .status{font-size:1.6em;font-weight:bold;display:block;margin-bottom:.3em}
.verified{background:#e6f6ea;border:3px solid #1e8e3e;color:#0d5223}
.not-verified{background:#fdecea;border:3px solid #c5221f;color:#8a1512}
table{border-collapse:collapse;width:100%;margin:.6em 0 1.2em 0;font-size:.93em}
th,td{border:1px solid #cfd6e0;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#eef1f6}td.num{text-align:right;white-space:nowrap}
tr.cls-plaintext td{background:#fde2e0;font-weight:bold;color:#8a1512}
pre{background:#f5f7fa;border:1px solid #d5dae3;border-radius:6px;padding:.8em;overflow-x:auto;font-size:.88em;white-space:pre-wrap;word-break:break-all}
code{font-size:.92em;word-break:break-all}
.plaintext{border:3px solid #c5221f;background:#fdecea;border-radius:8px;padding:.8em 1.1em;margin:.8em 0}
.plaintext strong.warn{color:#a50e0e;font-size:1.1em}
.note{color:#4a5565;font-size:.92em}
.warnings li{color:#6b4e00}
ul.problems li{margin:.3em 0}
.code{font-family:monospace;background:#fff;border:1px solid #e0b4b4;border-radius:4px;padding:0 .3em;font-size:.85em}
"""


def _h(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _render_html(d: dict[str, Any]) -> str:
    v = d["verification"]
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>fedcredit audit report: {_h(', '.join(v['jobs']) or 'no job')}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>fedcredit audit report</h1>",
        f"<p class=\"note\">Jobs: {_h(', '.join(v['jobs']) or 'none')}. Transcripts examined: "
        f"{v['checked'].get('files', 0)}.</p>",
    ]
    cls = "verified" if v["ok"] else "not-verified"
    out.append(f'<div class="banner {cls}" id="verification"><span class="status">'
               f"{'&#10004; Verified' if v['ok'] else '&#10008; NOT verified'}</span>")
    c = v["checked"]
    out.append(
        f"{_plural(c.get('records', 0), 'record')} in {_plural(c.get('files', 0), 'transcript')} checked; "
        f"{_plural(c.get('envelope_signatures_verified', 0), 'sender signature')} verified; "
        f"{_plural(c.get('messages_cross_checked', 0), 'message')} compared between the transcripts of "
        "sender, receiver and relay.")
    if v["ok"]:
        out.append("<br>No record was changed, removed, inserted or reordered, and all sides agree on every "
                   "message they both recorded.")
    out.append("</div>")
    if v["problems"]:
        out.append(f"<h2>Problems found ({len(v['problems'])})</h2><ul class=\"problems\">")
        for p in v["problems"]:
            out.append(f"<li><span class=\"code\">{_h(p['code'])}</span> <strong>{_h(p['meaning'])}</strong>"
                       f"<br>{_h(p['message'])}<br><span class=\"note\">Where: {_h(_where(p)) or 'all files'}"
                       + (f"; compared with {_h(p['other_file'])}" if p.get("other_file") else "")
                       + "</span></li>")
        out.append("</ul>")
    if v["warnings"]:
        out.append(f"<h3>Notes ({len(v['warnings'])})</h3><ul class=\"warnings\">")
        for w in v["warnings"]:
            where = _where(w)
            out.append(f"<li>{_h(w['message'])}" + (f" <span class=\"note\">({_h(where)})</span>" if where else "")
                       + "</li>")
        out.append("</ul>")

    for job in d["jobs"]:
        out.append(f"<h2>Job <code>{_h(job['job_id'])}</code></h2>")
        out.append(f"<p>Result for this job: <strong>{'Verified' if job['verified'] else 'NOT verified'}</strong>. "
                   f"Records from {_h(job['started'])} to {_h(job['ended'])}; {_plural(job['messages'], 'message')}.</p>")
        out.append("<h3>Parties</h3><table><tr><th>Node</th><th>Role</th><th>Transcript</th><th>Records</th></tr>")
        for p in job["parties"]:
            role = p["role"] or "unknown (no transcript given)"
            out.append(f"<tr><td>{_h(p['node'])}</td><td>{_h(role)}</td><td><code>{_h(p['transcript'] or '-')}</code></td>"
                       f"<td class=\"num\">{p['records']}</td></tr>")
        out.append("</table>")
        out.append("<h3>Purpose and approved specification</h3>")
        out.append(f"<p>Purpose: <strong>{_h(job['purpose'] or 'not recorded')}</strong></p>")
        out.append(f"<p>Specification fingerprint (SHA-256): <code>{_h(job['spec_sha256'] or 'not recorded')}</code></p>")
        if job["approvals"]:
            out.append("<table><tr><th>Node</th><th>Decision</th><th>Checks passed</th><th>When</th>"
                       "<th>Recorded in the transcript of</th></tr>")
            for a in job["approvals"]:
                decision = (f"approved {a['by_text']}" if a["decision"] == "approved"
                            else f"REJECTED {a['by_text']}" + (f": {a['reason']}" if a["reason"] else ""))
                out.append(f"<tr><td>{_h(a['node'])}</td><td>{_h(decision)}</td><td>{_h(', '.join(a['checks']) or '-')}</td>"
                           f"<td>{_h(a['time'])}</td><td>{_h(', '.join(a['recorded_by']))}</td></tr>")
            out.append("</table>")
        else:
            out.append("<p><strong>No approval is recorded.</strong></p>")
        if job["spec"] is not None:
            out.append(f"<p class=\"note\">The specification as recorded by {_h(job['spec_recorded_by'])}:</p>")
            out.append(f"<pre>{_h(json.dumps(job['spec'], indent=2, sort_keys=True, ensure_ascii=False))}</pre>")
        for o in job["other_specs"]:
            out.append(f"<div class=\"plaintext\"><strong class=\"warn\">&#9888; {_h(o['node'])} recorded a DIFFERENT "
                       f"specification (record {_h(o['record'])})</strong>, purpose {_h(o['purpose'])}, fingerprint "
                       f"<code>{_h(o['spec_sha256'])}</code>:<pre>"
                       f"{_h(json.dumps(o['spec'], indent=2, sort_keys=True, ensure_ascii=False))}</pre></div>")

        out.append("<h3>What each node sent to whom</h3>")
        out.append("<table><tr><th>From</th><th>To</th><th>Kind of information</th><th>Messages</th><th>Bytes</th>"
                   "<th>Sealed end to end</th><th>Protocol steps</th></tr>")
        for r in job["flows"]:
            out.append(f"<tr class=\"cls-{_h(r['classification'])}\"><td>{_h(r['from'])}</td><td>{_h(r['to'])}</td>"
                       f"<td>{_h(r['label'])}</td><td class=\"num\">{r['messages']}</td>"
                       f"<td class=\"num\">{_h(_bytes_text(r['bytes']))}</td><td class=\"num\">{r['sealed_messages']}</td>"
                       f"<td>{_h(', '.join(r['steps']))}</td></tr>")
        out.append("</table><p class=\"note\">Totals by kind: " + "; ".join(
            f"{_h(t['label'])}: {_plural(t['messages'], 'message')}, {_h(_bytes_text(t['bytes']))}"
            for t in job["totals_by_classification"]) + ". \"Sealed end to end\" messages cannot be read by the "
            "coordinator that relays them.</p>")

        out.append("<h3>Plain values sent</h3>")
        if job["plaintext"]:
            for p in job["plaintext"]:
                out.append(f"<div class=\"plaintext\"><strong class=\"warn\">&#9888; PLAIN VALUES: {_h(p['from'])} sent "
                           f"{_h(p['step'])} #{p['sequence']} to {_h(p['to'])}</strong> ({_h(_bytes_text(p['bytes']))}"
                           f"{', sealed so the relay cannot read it' if p['sealed'] else ', NOT sealed'}) at {_h(p['time'])}.")
                if p["what"]:
                    out.append(f"<br>What it contains: {_h(p['what'])}")
                out.append(f"<br>Why: {_h(p['explanation'] or 'no explanation was recorded')}</div>")
        else:
            out.append("<p>No message carried plain values.</p>")

        out.append("<h3>Results disclosed to the receiving node</h3>")
        if job["disclosed"]:
            out.append("<table><tr><th>Step</th><th>From</th><th>To</th><th>Kind</th><th>What it disclosed</th></tr>")
            for x in job["disclosed"]:
                out.append(f"<tr><td>{_h(x['step'])} #{x['sequence']}</td><td>{_h(x['from'])}</td><td>{_h(x['to'])}</td>"
                           f"<td>{_h(CLASSIFICATION_LABELS.get(x['classification'], x['classification']))}</td>"
                           f"<td>{_h(x['text'])}</td></tr>")
            out.append("</table>")
        else:
            out.append("<p>No disclosed results were recorded.</p>")

        out.append("<h3>Consent</h3>")
        if job["consent"]:
            for cns in job["consent"]:
                out.append(f"<p>{_h(cns['node'])} applied its consent registry for purpose "
                           f"<strong>{_h(cns['purpose'])}</strong>: {_h(cns['included'])} enterprises included, "
                           f"{_h(cns['excluded'])} excluded. <span class=\"note\">{_h(cns['note'])}</span></p>")
        else:
            out.append("<p>No consent check is recorded in the transcripts given.</p>")
        out.append("<h3>Outcome</h3><ul>")
        for fin in job["finished"]:
            out.append(f"<li>{_h(fin['node'])}: {'finished successfully' if fin['ok'] else 'FAILED: ' + _h(fin['error'])}"
                       f" ({_h(fin['time'])})</li>")
        if not job["finished"]:
            out.append("<li>No node recorded the end of the job.</li>")
        out.append("</ul>")

    out.append("<h2>Transcript files</h2><table><tr><th>File</th><th>Job</th><th>Node</th><th>Role</th><th>Records</th></tr>")
    for fl in d["files"]:
        out.append(f"<tr><td><code>{_h(fl.get('file'))}</code></td><td>{_h(fl.get('job_id') or '-')}</td>"
                   f"<td>{_h(fl.get('node') or '-')}</td><td>{_h(fl.get('role') or '-')}</td>"
                   f"<td class=\"num\">{_h(fl.get('records', '-'))}</td></tr>")
    out.append("</table><p class=\"note\">Produced by fedcredit audit. Every record is hash-chained and signed with "
               "Ed25519 by the node that wrote it; every message also carries its sender's signature.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _md(v: Any) -> str:
    return ("" if v is None else str(v)).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _render_md(d: dict[str, Any]) -> str:
    v = d["verification"]
    c = v["checked"]
    out = ["# fedcredit audit report", ""]
    out.append("## ✅ Verified" if v["ok"] else "## ❌ NOT verified")
    out.append("")
    out.append(f"{_plural(c.get('records', 0), 'record')} in {_plural(c.get('files', 0), 'transcript')} checked; "
               f"{_plural(c.get('envelope_signatures_verified', 0), 'sender signature')} verified; "
               f"{_plural(c.get('messages_cross_checked', 0), 'message')} compared between sender, receiver and relay.")
    out.append("")
    if v["problems"]:
        out.append(f"### Problems found ({len(v['problems'])})")
        out.append("")
        for p in v["problems"]:
            out.append(f"- **{_md(p['meaning'])}** (`{p['code']}`, {_md(_where(p)) or 'all files'}): {_md(p['message'])}")
        out.append("")
    if v["warnings"]:
        out.append(f"### Notes ({len(v['warnings'])})")
        out.append("")
        for w in v["warnings"]:
            where = _where(w)
            out.append(f"- {_md(w['message'])}" + (f" ({_md(where)})" if where else ""))
        out.append("")
    for job in d["jobs"]:
        out += [f"## Job `{_md(job['job_id'])}`", "",
                f"Result for this job: **{'Verified' if job['verified'] else 'NOT verified'}**. "
                f"Records from {job['started']} to {job['ended']}; {_plural(job['messages'], 'message')}.", "",
                "### Parties", "", "| Node | Role | Transcript | Records |", "|---|---|---|---|"]
        for p in job["parties"]:
            out.append(f"| {_md(p['node'])} | {_md(p['role'] or 'unknown (no transcript given)')} | "
                       f"`{_md(p['transcript'] or '-')}` | {p['records']} |")
        out += ["", "### Purpose and approved specification", "",
                f"- Purpose: **{_md(job['purpose'] or 'not recorded')}**",
                f"- Specification fingerprint (SHA-256): `{_md(job['spec_sha256'] or 'not recorded')}`"]
        for a in job["approvals"]:
            decision = (f"approved {_md(a['by_text'])}" if a["decision"] == "approved"
                        else f"**REJECTED** {_md(a['by_text'])}" + (f": {_md(a['reason'])}" if a["reason"] else ""))
            out.append(f"- {_md(a['node'])}: {decision}, at {a['time']}"
                       + (f"; checks passed: {_md(', '.join(a['checks']))}" if a["checks"] else "")
                       + f" (recorded by {_md(', '.join(a['recorded_by']))})")
        if not job["approvals"]:
            out.append("- **No approval is recorded.**")
        if job["spec"] is not None:
            out += ["", f"The specification as recorded by {_md(job['spec_recorded_by'])}:", "",
                    "```json", json.dumps(job["spec"], indent=2, sort_keys=True, ensure_ascii=False), "```"]
        for o in job["other_specs"]:
            out += ["", f"**⚠ {_md(o['node'])} recorded a DIFFERENT specification (record {o['record']})**, purpose "
                    f"{_md(o['purpose'])}, fingerprint `{_md(o['spec_sha256'])}`:", "",
                    "```json", json.dumps(o["spec"], indent=2, sort_keys=True, ensure_ascii=False), "```"]
        out += ["", "### What each node sent to whom", "",
                "| From | To | Kind of information | Messages | Bytes | Sealed end to end | Protocol steps |",
                "|---|---|---|---:|---:|---:|---|"]
        for r in job["flows"]:
            lab = f"**⚠ {_md(r['label'])}**" if r["classification"] == "plaintext" else _md(r["label"])
            out.append(f"| {_md(r['from'])} | {_md(r['to'])} | {lab} | {r['messages']} | {_bytes_text(r['bytes'])} | "
                       f"{r['sealed_messages']} | {_md(', '.join(r['steps']))} |")
        out += ["", "Totals by kind: " + "; ".join(
            f"{t['label']}: {_plural(t['messages'], 'message')}, {_bytes_text(t['bytes'])}"
            for t in job["totals_by_classification"]) + ".", "", "### Plain values sent", ""]
        for p in job["plaintext"]:
            out.append(f"> **⚠ PLAIN VALUES: {_md(p['from'])} sent {_md(p['step'])} #{p['sequence']} to {_md(p['to'])}** "
                       f"({_bytes_text(p['bytes'])}, {'sealed so the relay cannot read it' if p['sealed'] else 'NOT sealed'}) "
                       f"at {p['time']}." + (f" What it contains: {_md(p['what'])}." if p["what"] else "")
                       + f" Why: {_md(p['explanation'] or 'no explanation was recorded')}")
            out.append("")
        if not job["plaintext"]:
            out += ["No message carried plain values.", ""]
        out += ["### Results disclosed to the receiving node", ""]
        if job["disclosed"]:
            out += ["| Step | From | To | Kind | What it disclosed |", "|---|---|---|---|---|"]
            for x in job["disclosed"]:
                out.append(f"| {_md(x['step'])} #{x['sequence']} | {_md(x['from'])} | {_md(x['to'])} | "
                           f"{_md(CLASSIFICATION_LABELS.get(x['classification'], x['classification']))} | {_md(x['text'])} |")
        else:
            out.append("No disclosed results were recorded.")
        out += ["", "### Consent", ""]
        for cns in job["consent"]:
            out.append(f"- {_md(cns['node'])} applied its consent registry for purpose **{_md(cns['purpose'])}**: "
                       f"{_md(cns['included'])} enterprises included, {_md(cns['excluded'])} excluded. {_md(cns['note'])}")
        if not job["consent"]:
            out.append("No consent check is recorded in the transcripts given.")
        out += ["", "### Outcome", ""]
        for fin in job["finished"]:
            out.append(f"- {_md(fin['node'])}: {'finished successfully' if fin['ok'] else 'FAILED: ' + _md(fin['error'])} ({fin['time']})")
        if not job["finished"]:
            out.append("- No node recorded the end of the job.")
        out.append("")
    out += ["## Transcript files", "", "| File | Job | Node | Role | Records |", "|---|---|---|---|---:|"]
    for fl in d["files"]:
        out.append(f"| `{_md(fl.get('file'))}` | {_md(fl.get('job_id') or '-')} | {_md(fl.get('node') or '-')} | "
                   f"{_md(fl.get('role') or '-')} | {_md(fl.get('records', '-'))} |")
    return "\n".join(out) + "\n"


def render_report(paths: Sequence[Path], *, ca_cert_pem: bytes | None = None, fmt: str = "html") -> str:
    """Verify ``paths`` and render the audit report.

    Args:
        paths: transcript files.
        ca_cert_pem: the job's CA certificate (recommended).
        fmt: ``html`` (one self-contained file: inline CSS, no scripts, no
            external resources), ``md`` or ``json``.

    Returns:
        The report text (valid UTF-8 when encoded). Unreadable or tampered
        files become problems in the report; this function does not raise
        for them.

    Raises:
        ValueError: unknown ``fmt``.
    """
    if fmt not in ("html", "md", "json"):
        raise ValueError(f"report format must be html, md or json, got {fmt!r}")
    data = report_data(paths, ca_cert_pem=ca_cert_pem)
    try:
        if fmt == "json":
            text = json.dumps(_json_safe(data), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        elif fmt == "md":
            text = _render_md(data)
        else:
            text = _render_html(data)
    except Exception as exc:  # noqa: BLE001 - never a stack trace in a report
        msg = f"NOT verified: the report could not be rendered ({type(exc).__name__}: {exc})"
        text = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>fedcredit audit report</title></head>"
                f"<body><h1>fedcredit audit report</h1><p>{_h(msg)}</p></body></html>\n" if fmt == "html"
                else json.dumps({"verification": {"ok": False, "status": "NOT verified", "problems": [msg]}}) + "\n"
                if fmt == "json" else f"# fedcredit audit report\n\n{msg}\n")
    # Lone surrogates from hand-edited JSON cannot be encoded; never emit invalid UTF-8.
    return text.encode("utf-8", "replace").decode("utf-8")
