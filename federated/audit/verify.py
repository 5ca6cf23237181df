"""Verify transcripts alone and against each other.

:func:`verify_transcripts` checks a set of transcript files (see
:mod:`fedcredit.runtime.transcript`; each is read by :mod:`fedcredit.runtime.audit.reader`):

* per file: a header first, contiguous indexes, the hash chain, every record's
  hash and Ed25519 signature, the signing certificate (against the CA), one job
  and one node per file;
* per message: the sender's envelope signature, with the sender's key from
  its own transcript or from a ``peer_certs`` event;
* across files: the sender's ``sent``, the receiver's ``received`` and the
  coordinator's ``relayed`` record of each message agree, and none is missing;
* the job spec: every ``job_spec``/``approved``/``rejected`` event names the
  same spec hash, that hash is the hash of the recorded spec, and every
  recorded decision carries the deciding party's signature.

Without a CA certificate nothing verifies (``NO_CA``): anyone can re-sign a
transcript under a fresh key of the same name.

When a missing record is excused
--------------------------------
A record one node should have of a message that another node recorded is
missing: a ``MISSING`` problem. It is only a warning when **all** of this holds:

1. **The coordinator's own transcript records that the job failed.** It is
   the job's only transcript with the coordinator role, its signing
   certificate verifies under the CA, and its last ``finished`` record, with
   an intact hash and signature, says ``ok: false``. A party's ``finished``
   record excuses nothing: a party can rewrite its own file at will.
2. **The missing record is a receive, at a party.** A missing record of
   *sending* is never excused: every node records a message before it leaves
   (:meth:`fedcredit.runtime.driver.Endpoint.send`), so a message the relay or the
   receiver has always has its sender's record. Nor does the coordinator
   excuse gaps in its own transcript.
3. **The message comes from the receiver's failure point on.** In the
   coordinator's transcript, no message *from* the receiver comes after the
   coordinator's record of this message (the relay's ``relayed`` record, or
   the coordinator's own ``sent``), or the coordinator has no record of the
   message at all (it never reached the relay, so it cannot have been
   delivered). A receiver that went on sending after the message was waiting
   for it is not excused for having no record of it.

So a party that deletes its record of a message it received and rewrites its
own ``finished`` record to ``ok: false`` fails verification: the coordinator's
transcript says the job succeeded (1), or the party kept sending through the
relay after the message reached it (3). What remains unprovable is the tail:
the coordinator records what it relays, not what each party fetches, so the
last messages relayed to a party that then stopped for good, or made the job
fail, are excused whether it fetched them or not. The rule is strict in the
other direction: in a genuinely failed job, a party that sent a message
through the relay and then stopped before fetching one that had already
reached the relay leaves a ``MISSING`` problem (a narrow race).

It never raises for bad input: every unreadable file, line or field becomes a
:class:`~fedcredit.runtime.audit.result.Problem` with a stable ``code`` and a
plain-words ``message``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import FedCreditError
from ..security.signing import ENVELOPE_FIELDS, canonical_json, envelope_digest, verify_digest

from .reader import Event, Msg, TranscriptFile, read_file, read_peer_certs
from .result import Findings, VerificationResult

__all__ = ["Audit", "audit", "verify_transcripts"]

_NO_CA = ("no CA certificate was given (--ca, or $FEDCREDIT_CA): without a trust anchor, transcripts re-signed "
          "with fresh keys, with records removed or results changed, would verify; nothing is verified")


# --------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------
def _check_envelope_signatures(files: list[TranscriptFile], by_node: dict[str, TranscriptFile], f: Findings,
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


def _check_approval_signatures(files: list[TranscriptFile], by_node: dict[str, TranscriptFile], f: Findings,
                               counts: Counter[str]) -> None:
    """Every recorded approval/rejection must carry the named party's own signature over exactly that decision.

    This is what stops a coordinator from recording an approval a party never gave.
    """
    from ..node.approval import approval_digest  # imports the config models: only when there is something to check

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


# --------------------------------------------------------------------------
# Across files: the failure witness and missing records
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class _FailureWitness:
    """The coordinator's signed record that the job failed, and where each node stopped as the relay saw it."""

    coordinator: TranscriptFile
    finished: Event
    position: dict[tuple[Any, ...], int]  # message key -> index of the coordinator's first record of it
    last_from: dict[str, int]  # node -> index of the coordinator's last record of a message sent by that node


def _failure_witness(by_node: dict[str, TranscriptFile]) -> _FailureWitness | str:
    """Condition 1 of the module docstring: the coordinator's own, CA-verified record that the job failed.

    Returns the witness, or why there is none.
    """
    coordinators = [tf for tf in by_node.values() if tf.role == "coordinator"]
    if not coordinators:
        return "no coordinator transcript was given"
    if len(coordinators) > 1:
        return f"{len(coordinators)} transcripts claim the coordinator's role"
    coord = coordinators[0]
    finished = coord.events_named("finished")
    if not coord.ca_verified:
        return "the coordinator's transcript is not signed under the CA"
    if not finished:
        return "the coordinator's transcript has no 'finished' record"
    last = finished[-1]
    if last.index in coord.bad_records:
        return "the coordinator's 'finished' record does not verify"
    if last.body.get("ok") is not False:
        return f"the coordinator's transcript records that the job succeeded (record {last.index})"
    position: dict[tuple[Any, ...], int] = {}
    last_from: dict[str, int] = {}
    for m in coord.messages:
        position.setdefault(m.key, m.index)
        sender = m.envelope["sender"]
        last_from[sender] = max(last_from.get(sender, -1), m.index)
    return _FailureWitness(coord, last, position, last_from)


def _party_claims_failure(files: list[TranscriptFile]) -> bool:
    return any(ev.body.get("ok") is False for tf in files for ev in tf.events_named("finished"))


def _diff_fields(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [k for k in ENVELOPE_FIELDS if a.get(k) != b.get(k)]


class _MissingRecords:
    """Decides, for each missing record, problem or excused warning (see the module docstring)."""

    def __init__(self, files: list[TranscriptFile], by_node: dict[str, TranscriptFile], f: Findings) -> None:
        self.f = f
        found = _failure_witness(by_node)
        self.witness = found if isinstance(found, _FailureWitness) else None
        self.no_witness = found if isinstance(found, str) else ""
        self.claimed = _party_claims_failure(files)

    def _why_not_excused(self, key: tuple[Any, ...], receive: bool) -> str | None:
        """None when the missing record is excused; otherwise why not (for a job someone says failed)."""
        receiver = key[2]
        w = self.witness
        if w is None:
            return (f"a transcript records that the job failed, but {self.no_witness}; only the coordinator's own "
                    "signed record of a failure excuses a missing record")
        if not receive:
            return ("a record of sending is never excused: every node records a message before it leaves, "
                    "even when the job fails")
        if receiver == w.coordinator.node:
            return "the coordinator's own transcript should have it; the coordinator does not excuse itself"
        pos = w.position.get(key)
        if pos is not None and w.last_from.get(receiver, -1) > pos:
            later = next(m for m in w.coordinator.messages if m.index == w.last_from[receiver])
            return (f"the job failed, but {receiver} went on to send {later.envelope['step']} "
                    f"#{later.envelope['sequence']} through the relay (coordinator record {later.index}) after this "
                    f"message had reached the relay (coordinator record {pos})")
        return None

    def report(self, message: str, m: Msg, other: TranscriptFile | None, *, receive: bool) -> None:
        where = {"file": m.file.label, "record": m.index, "line": m.line,
                 "other_file": other.label if other else None}
        if self.witness is None and not self.claimed:
            self.f.problem("MISSING", message, **where)
            return
        why = self._why_not_excused(m.key, receive)
        if why is None:
            assert self.witness is not None
            receiver = m.envelope["receiver"]
            after = ("the message never reached the relay" if m.key not in self.witness.position else
                     f"{receiver} sent nothing through the relay after this message reached it")
            self.f.warn("MISSING", f"{message} (the coordinator's transcript records that the job failed, in record "
                        f"{self.witness.finished.index}, and {after}: {receiver} may have stopped first)", **where)
        else:
            self.f.problem("MISSING", f"{message} (not excused: {why})", **where)


def _check_cross(files: list[TranscriptFile], by_node: dict[str, TranscriptFile], f: Findings,
                 counts: Counter[str]) -> None:
    groups: dict[tuple[Any, ...], list[Msg]] = {}
    for tf in files:
        if by_node.get(tf.node or "") is not tf:
            continue  # a duplicate transcript: reported, not cross-checked
        for m in tf.messages:
            groups.setdefault(m.key, []).append(m)
    coordinators = [tf for tf in files if tf.role == "coordinator" and by_node.get(tf.node or "") is tf]
    missing = _MissingRecords(files, by_node, f)

    for key, msgs in groups.items():
        job, sender, receiver, step, seq = key
        what = f"message {step} #{seq} from {sender} to {receiver}"
        by_dir: dict[str, list[Msg]] = {}
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
                missing.report(f"{sent[0].where()} records sending {what}, but {r_file.who} ({r_file.label}) has no "
                               "record of receiving it", sent[0], r_file, receive=True)
            if received and not sent:
                missing.report(f"{received[0].where()} records receiving {what}, but {s_file.who} ({s_file.label}) has "
                               "no record of sending it", received[0], s_file, receive=False)
        if s_file is not None and relayed and not sent:
            missing.report(f"{relayed[0].where()} records relaying {what}, but {s_file.who} ({s_file.label}) has no "
                           "record of sending it", relayed[0], s_file, receive=False)
        for coord in coordinators:
            if coord.node not in (sender, receiver) and (sent or received) and not relayed:
                m = (sent or received)[0]
                f.warn("MISSING", f"{what} is in {m.where()} but the coordinator's transcript ({coord.label}) has "
                       "no record of relaying it", file=m.file.label, record=m.index, line=m.line,
                       other_file=coord.label)


def _check_spec(files: list[TranscriptFile], f: Findings) -> None:
    seen: list[tuple[TranscriptFile, Event, str]] = []
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


# --------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------
@dataclass
class Audit:
    """Everything verification read and found; :mod:`fedcredit.runtime.audit.model` builds the report from it."""

    result: VerificationResult
    files: list[TranscriptFile]
    jobs: dict[str, list[TranscriptFile]]
    by_job_node: dict[str, dict[str, TranscriptFile]]


def audit(paths: Sequence[Path], ca_cert_pem: bytes | None) -> Audit:
    """Read and check ``paths``; never raises for bad input (see :func:`verify_transcripts`)."""
    f = Findings()
    counts: Counter[str] = Counter()
    files: list[TranscriptFile] = []
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
        files.append(read_file(path, f, ca_cert_pem, counts))
    if not files:
        f.problem("MISSING", "no transcript files were given")
    if ca_cert_pem is None and files:
        f.problem("NO_CA", _NO_CA)  # #12: a signature proves nothing without the CA that says whose key it is

    jobs: dict[str, list[TranscriptFile]] = {}
    for tf in files:
        if tf.job_id is not None:
            jobs.setdefault(tf.job_id, []).append(tf)
    by_job_node: dict[str, dict[str, TranscriptFile]] = {}
    for job, jf in jobs.items():
        by_node: dict[str, TranscriptFile] = {}
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
            read_peer_certs(tf, f, ca_cert_pem)
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
    return Audit(result, files, jobs, by_job_node)


def verify_transcripts(paths: Sequence[Path], *, ca_cert_pem: bytes | None = None) -> VerificationResult:
    """Verify transcripts alone and against each other.

    Args:
        paths: transcript files, of one or several jobs and nodes.
        ca_cert_pem: the job's CA certificate, the trust anchor. Without it
            nothing verifies (problem ``NO_CA``): anyone can re-sign a
            transcript with a fresh key of the same name.

    Returns:
        A :class:`~fedcredit.runtime.audit.result.VerificationResult`; ``ok`` is false
        if there is any problem. Never raises for unreadable or tampered files.
    """
    return audit(paths, ca_cert_pem).result
