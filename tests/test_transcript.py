"""Signed, hash-chained transcripts: verifying a valid job, and tampering across files.

The transcripts are written by :func:`transcript_builder.build_job` (one realistic job: bank = guest, platform =
host, coordinator); the fixtures ``layout``, ``other_layout``, ``ca`` and ``job`` are in tests/conftest.py. The
writer and reader are tested in test_transcript_writer.py, tampering inside one file in test_transcript_tampering.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from fedcredit.runtime.node.approval import make_approval
from fedcredit.runtime.audit import verify_transcripts
from fedcredit.runtime.security.certs import CertLayout
from fedcredit.runtime.security.signing import envelope_digest, sign_digest
from fedcredit.runtime.transcript import TranscriptWriter, read_transcript, transcript_name
from helpers import signer
from transcript_builder import (
    JOB,
    MESSAGES,
    N_MESSAGE_RECORDS,
    PURPOSE,
    SPEC,
    M,
    Tweak,
    build_job,
    copy_job,
    dump,
    find_message,
    problems,
    resign,
    spec_sha,
    verify,
    write_lines,
)


# --------------------------------------------------------------------------
# verification: the valid job
# --------------------------------------------------------------------------
def test_valid_transcripts_verify(job: dict[str, Path], ca: bytes) -> None:
    result = verify(job, ca)
    assert result.ok, [str(p) for p in result.problems]
    assert result.problems == [] and result.warnings == []
    assert result.jobs == [JOB]
    total = sum(len(read_transcript(p)) for p in job.values())
    assert result.checked["files"] == 3
    assert result.checked["records"] == total
    assert result.checked["messages_cross_checked"] == len(MESSAGES)
    assert result.checked["envelope_signatures_verified"] == N_MESSAGE_RECORDS
    assert result.checked["envelope_signatures_unverifiable"] == 0


def test_without_a_ca_nothing_verifies(job: dict[str, Path], ca: bytes) -> None:
    """#12: a signature proves nothing without the CA that says whose key it is. Without a trust anchor,
    transcripts re-signed under fresh keys of the same names verified; now nothing verifies without one."""
    result = verify(job, None)
    assert not result.ok and problems(result, "NO_CA") and "--ca" in problems(result, "NO_CA")[0].message
    assert verify(job, ca).ok  # the same files with the job's CA


def test_party_transcripts_alone_use_peer_certs(job: dict[str, Path], ca: bytes) -> None:
    result = verify([job["bank"]], ca)
    assert result.ok, result.problems
    bank_msgs = sum(1 for r in read_transcript(job["bank"]) if r["kind"] == "message")
    assert result.checked["envelope_signatures_verified"] == bank_msgs  # coordinator's and platform's via peer_certs
    assert verify([job["bank"], job["platform"]], ca).ok


def test_the_same_path_twice_is_read_once(job: dict[str, Path], ca: bytes) -> None:
    result = verify([job["bank"], job["bank"], job["platform"]], ca)
    assert result.ok and result.checked["files"] == 2


# --------------------------------------------------------------------------
# across files
# --------------------------------------------------------------------------
def test_receiver_record_differing_from_the_sender_is_a_mismatch(layout: CertLayout, ca: bytes, tmp_path: Path) -> None:
    def tweak(node: str, direction: str, m: M, seq: int, env: dict[str, Any], sig: bytes):
        if node == "platform" and m.step == "lr.residuals" and seq == 0:
            env = dict(env, payload_sha256=hashlib.sha256(b"something else").hexdigest())
        return env, sig

    paths = build_job(layout, tmp_path, tweak=tweak)
    result = verify(paths, ca)
    assert not result.ok
    # the platform's own chain is intact: it signed what it recorded
    assert not {"HASH", "SIGNATURE", "CHAIN", "INDEX"} & result.codes()
    k = find_message(paths["platform"], "lr.residuals", "received")
    mism = problems(result, "MISMATCH", paths["platform"])
    assert len(mism) == 1 and mism[0].record == k
    assert mism[0].other_file == str(paths["bank"])
    assert str(paths["bank"]) in mism[0].message and str(paths["platform"]) in mism[0].message
    assert "payload_sha256 differs" in mism[0].message
    # and the sender's signature does not cover what the platform recorded
    assert [p.record for p in problems(result, "ENVELOPE_SIGNATURE", paths["platform"])] == [k]


def test_sent_message_missing_on_the_receiver_side(layout: CertLayout, ca: bytes, tmp_path: Path) -> None:
    def drop(node: str, direction: str, m: M, seq: int, env: dict[str, Any], sig: bytes):
        if node == "platform" and m.step == "lr.residuals" and seq == 1:
            return None
        return env, sig

    paths = build_job(layout, tmp_path / "ok-job", tweak=drop)
    result = verify(paths, ca)
    assert result.codes() == {"MISSING"}
    [p] = result.problems
    assert p.file == str(paths["bank"]) and p.record == find_message(paths["bank"], "lr.residuals", "sent", 1)
    assert p.other_file == str(paths["platform"])
    assert "no record of receiving it" in p.message

    # while a job failed, a missing counterpart is a warning, not a problem: here the job broke at that
    # message (the coordinator records the failure, and nothing happened after it; see the next tests for
    # what is no longer excused since #12)
    failed = build_job(layout, tmp_path / "failed-job", failed=True, stop_at=("lr.residuals", 1))
    result = verify(failed, ca)
    assert result.ok, result.problems
    assert any(w.code == "MISSING" and "job failed" in w.message for w in result.warnings)


def _drop_received(step: str, seq: int, at: str = "platform") -> Tweak:
    def drop(node: str, direction: str, m: M, s: int, env: dict[str, Any], sig: bytes):
        if node == at and direction == "received" and m.step == step and s == seq:
            return None
        return env, sig
    return drop


def test_a_failed_job_excuses_only_the_receives_from_the_failure_point_on(layout: CertLayout, ca: bytes,
                                                                          tmp_path: Path) -> None:
    """#12: the coordinator's signed transcript records the failure; only the message the platform never got is excused."""
    paths = build_job(layout, tmp_path / "failed", failed=True, stop_at=("lr.residuals", 1))
    coordinator_end = read_transcript(paths["coordinator"])[-1]["body"]
    assert coordinator_end["event"] == "finished" and coordinator_end["ok"] is False
    result = verify(paths, ca)
    assert result.ok and result.problems == [], [str(p) for p in result.problems]
    # warnings only for the record after the failure point: the platform's receive of lr.residuals #1
    assert [(w.code, w.file, w.record, w.other_file) for w in result.warnings] == [
        ("MISSING", str(paths["bank"]), find_message(paths["bank"], "lr.residuals", "sent", 1), str(paths["platform"]))]
    assert "the coordinator's transcript records that the job failed" in result.warnings[0].message

    # the same failed job, but the platform also has no record of an earlier message, lr.residuals #0, after
    # which it went on sending: not excused
    holed = build_job(layout, tmp_path / "holed", failed=True, stop_at=("lr.residuals", 1),
                      tweak=_drop_received("lr.residuals", 0))
    result = verify(holed, ca)
    assert result.codes() == {"MISSING"}
    [p] = result.problems
    assert p.file == str(holed["bank"]) and p.record == find_message(holed["bank"], "lr.residuals", "sent", 0)
    assert "not excused" in p.message and "platform went on to send lr.host_scores #1" in p.message
    assert [w.record for w in result.warnings if w.code == "MISSING"] == [
        find_message(holed["bank"], "lr.residuals", "sent", 1)]

    # before #12 every node's failed 'finished' record excused any hole, mid-job ones too: not any more
    old_case = build_job(layout, tmp_path / "old-case", failed=True, tweak=_drop_received("lr.residuals", 1))
    result = verify(old_case, ca)
    assert not result.ok and result.codes() == {"MISSING"}
    assert "platform went on to send" in result.problems[0].message


def test_a_party_cannot_excuse_a_deleted_receive_by_rewriting_its_finished_record(
        job: dict[str, Path], ca: bytes, layout: CertLayout, tmp_path: Path) -> None:
    """#12 item 1: the bank, with its own key, deletes its record of receiving the platform's test scores and
    rewrites its 'finished' record to ok=false. Its own file stays valid (re-chained, re-signed).

    Before #12 this verified: ``_job_failed`` took a failed 'finished' record from ANY transcript, so the
    missing receive became a warning. Now only the coordinator's signed record of a failure excuses anything,
    and the coordinator's says the job succeeded.
    """
    bank = signer(layout, "bank")
    copy = copy_job(job, tmp_path / "attack")
    records = read_transcript(copy["bank"])
    k = find_message(copy["bank"], "lr.host_test_scores", "received")
    forged = records[:k]
    for rec in records[k + 1:]:
        rec = dict(rec, index=rec["index"] - 1, prev_hash=forged[-1]["hash"])
        if rec["body"].get("event") == "finished":
            rec["body"] = {"event": "finished", "ok": False, "error": "platform went away during lr.host_test_scores"}
        forged.append(resign(rec, bank))
    write_lines(copy["bank"], [dump(r) for r in forged])
    assert [r["body"]["ok"] for p in copy.values() for r in read_transcript(p) if r["body"].get("event") == "finished"] == [
        False, True, True]  # the bank's claim; the platform and the coordinator recorded success

    result = verify(copy, ca)
    assert not result.ok
    assert not {"HASH", "SIGNATURE", "CHAIN", "INDEX", "CERT"} & result.codes()  # the bank's own file verifies
    assert result.codes() == {"MISSING"}
    [p] = result.problems
    assert p.file == str(copy["platform"]) and p.other_file == str(copy["bank"])
    assert p.record == find_message(copy["platform"], "lr.host_test_scores", "sent")
    assert "no record of receiving it" in p.message
    assert "not excused" in p.message and "the coordinator's transcript records that the job succeeded" in p.message
    assert not [w for w in result.warnings if w.code == "MISSING"]

    # without the coordinator's transcript nothing can excuse it either
    result = verify([copy["bank"], copy["platform"]], ca)
    assert result.codes() == {"MISSING"} and "no coordinator transcript was given" in result.problems[0].message


def test_relayed_message_the_sender_never_sent(layout: CertLayout, ca: bytes, tmp_path: Path) -> None:
    def drop(node: str, direction: str, m: M, seq: int, env: dict[str, Any], sig: bytes):
        if node == "bank" and direction == "sent" and m.step == "psi.guest_matches":
            return None
        return env, sig

    paths = build_job(layout, tmp_path, tweak=drop)
    result = verify(paths, ca)
    missing = problems(result, "MISSING")
    assert {p.file for p in missing} == {str(paths["platform"]), str(paths["coordinator"])}
    assert any("no record of sending it" in p.message for p in missing)


def test_different_approved_specs(layout: CertLayout, ca: bytes, tmp_path: Path) -> None:
    wider = {**SPEC, "columns": {**SPEC["columns"], "platform": SPEC["columns"]["platform"] + ["owner_id_number"]}}
    paths = build_job(layout, tmp_path, approved_spec={"platform": wider})
    result = verify(paths, ca)
    assert result.codes() == {"SPEC_MISMATCH"}
    [p] = result.problems
    assert p.file == str(paths["platform"]) and p.other_file is not None
    assert spec_sha(wider)[:16] in p.message


def test_spec_text_not_matching_its_hash(layout: CertLayout, ca: bytes, tmp_path: Path) -> None:
    changed = {**SPEC, "purpose": "marketing"}
    paths = build_job(layout, tmp_path, recorded_spec={"coordinator": changed})
    result = verify(paths, ca)
    spec_problems = problems(result, "SPEC_MISMATCH", paths["coordinator"])
    assert spec_problems and all(p.record == 1 for p in spec_problems)
    assert result.codes() == {"SPEC_MISMATCH"}


def test_forged_envelope_signature(layout: CertLayout, ca: bytes, tmp_path: Path) -> None:
    platform = signer(layout, "platform")

    def forge(node: str, direction: str, m: M, seq: int, env: dict[str, Any], sig: bytes):
        if m.step == "lr.metrics":  # "from bank", but signed by someone else, and recorded so by everyone
            sig = sign_digest(platform, envelope_digest(env))
        return env, sig

    paths = build_job(layout, tmp_path, tweak=forge)
    result = verify(paths, ca)
    assert result.codes() == {"ENVELOPE_SIGNATURE"}
    assert {(p.file, p.record) for p in result.problems} == {
        (str(paths["bank"]), find_message(paths["bank"], "lr.metrics", "sent")),
        (str(paths["coordinator"]), find_message(paths["coordinator"], "lr.metrics", "received")),
    }
    assert all("bank's signature" in p.message for p in result.problems)


def test_header_cert_from_another_ca(layout: CertLayout, other_layout: CertLayout, ca: bytes, tmp_path: Path) -> None:
    paths = build_job(layout, tmp_path, identities={"bank": signer(other_layout, "bank")},
                      cas={"bank": other_layout.ca_cert.read_bytes()})
    result = verify(paths, ca)
    certs = problems(result, "CERT", paths["bank"])
    assert [p.record for p in certs] == [0]
    assert "not signed by the job's CA" in certs[0].message
    # the platform recorded the same foreign certificate for the bank in peer_certs: flagged too,
    # and nothing the bank signed counts as verified
    peer = [i for i, r in enumerate(read_transcript(paths["platform"])) if r["body"].get("event") == "peer_certs"]
    assert [p.record for p in problems(result, "CERT", paths["platform"])] == peer
    assert any(w.code == "ENVELOPE_SIGNATURE" and "from bank" in w.message for w in result.warnings)
    assert result.checked["envelope_signatures_unverifiable"] > 0
    # with the other CA, the bank's file is fine and the others' are not
    assert problems(verify(paths, other_layout.ca_cert.read_bytes()), "CERT", paths["platform"])


def test_coordinator_cannot_record_an_approval_the_party_never_gave(layout: CertLayout, ca: bytes, tmp_path: Path) -> None:
    """A coordinator's transcript claiming the bank approved, signed by anyone but the bank, fails verification."""
    paths = build_job(layout, tmp_path)
    coord = signer(layout, "coordinator")
    forged = tmp_path / "forged"
    forged.mkdir()
    w = TranscriptWriter(forged / transcript_name(JOB, "coordinator"), job_id=JOB, identity=coord, role="coordinator", ca_cert_pem=ca)
    w.event("job_spec", spec=SPEC, spec_sha256=spec_sha(SPEC), purpose=PURPOSE)
    fake = make_approval(coord, JOB, spec_sha(SPEC), True, "operator")  # signed by the coordinator, not the bank
    w.event("approved", node="bank", spec_sha256=spec_sha(SPEC), by="operator", reason="", signature=fake.signature.hex())
    w.event("peer_certs", certs={p: signer(layout, p).cert_pem.decode() for p in ("bank", "platform")})
    w.event("finished", ok=True, error="")
    w.close()
    result = verify_transcripts([paths["bank"], paths["platform"], forged / transcript_name(JOB, "coordinator")], ca_cert_pem=ca)
    assert "APPROVAL_SIGNATURE" in result.codes()
    honest = verify_transcripts(list(paths.values()), ca_cert_pem=ca)
    assert honest.ok and honest.checked["approval_signatures_verified"] >= 4
