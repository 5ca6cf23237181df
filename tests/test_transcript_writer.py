"""Signed, hash-chained transcripts: the writer and the reader.

Verification of a valid job and tampering across files are in test_transcript.py, tampering inside one file in
test_transcript_tampering.py; the fixtures (``layout``, ``other_layout``, ``ca``, ``job``) are in tests/conftest.py.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from fedcredit.runtime.security.certs import CertLayout
from fedcredit.runtime.errors import ConflictError, CryptoError, DataError
from fedcredit.runtime.security.signing import canonical_json, envelope_digest
from fedcredit.runtime.transcript import FORMAT, ZERO_HASH, TranscriptWriter, read_transcript, record_hash
from helpers import signer
from transcript_builder import JOB, PURPOSE, build_job, dump, find_message, problems, read_lines, spec_sha, verify


# --------------------------------------------------------------------------
# the writer and the reader
# --------------------------------------------------------------------------
def test_records_have_the_documented_format(job: dict[str, Path], layout: CertLayout) -> None:
    bank = signer(layout, "bank")
    records = read_transcript(job["bank"])
    header = records[0]
    assert header["kind"] == "header" and header["index"] == 0 and header["prev_hash"] == ZERO_HASH
    assert header["body"]["format"] == FORMAT
    assert header["body"]["role"] == "guest"
    assert header["body"]["signing_cert_pem"] == bank.cert_pem.decode()
    assert header["body"]["keep_payloads"] is False
    assert len(header["body"]["ca_fingerprint"]) == 64
    prev = ZERO_HASH
    for i, rec in enumerate(records):
        assert set(rec) == {"index", "kind", "job_id", "node", "ts_ms", "prev_hash", "body", "hash", "signature"}
        assert rec["index"] == i and rec["job_id"] == JOB and rec["node"] == "bank"
        assert rec["prev_hash"] == prev
        hashed = {k: rec[k] for k in ("index", "kind", "job_id", "node", "ts_ms", "prev_hash", "body")}
        assert rec["hash"] == hashlib.sha256(canonical_json(hashed)).hexdigest() == record_hash(rec)
        bank.private_key.public_key().verify(bytes.fromhex(rec["signature"]), bytes.fromhex(rec["hash"]))
        prev = rec["hash"]
    events = [r["body"]["event"] for r in records if r["kind"] == "event"]
    assert events == ["job_spec", "approved", "peer_certs", "finished"]
    spec_event = records[1]["body"]
    assert spec_event["spec_sha256"] == spec_sha(spec_event["spec"]) and spec_event["purpose"] == PURPOSE

    msg = records[find_message(job["bank"], "lr.residuals", "sent")]["body"]
    assert msg["direction"] == "sent" and msg["key_owner"] == "coordinator" and msg["payload_file"] is None
    assert msg["envelope"]["sender"] == "bank" and msg["envelope"]["classification"] == "ciphertext"
    digest = envelope_digest(msg["envelope"])
    bank.private_key.public_key().verify(bytes.fromhex(msg["envelope_signature"]), digest)
    # one line per record, each the canonical JSON of the record
    for line, rec in zip(read_lines(job["bank"]), records):
        assert line == dump(rec)


def test_the_same_message_is_recorded_identically_by_all_three(job: dict[str, Path]) -> None:
    bodies = [read_transcript(job[n])[find_message(job[n], "lr.residuals", d, 1)]["body"]
              for n, d in (("bank", "sent"), ("coordinator", "relayed"), ("platform", "received"))]
    assert bodies[0]["envelope"] == bodies[1]["envelope"] == bodies[2]["envelope"]
    assert bodies[0]["envelope_signature"] == bodies[1]["envelope_signature"] == bodies[2]["envelope_signature"]


def test_writer_refuses_to_overwrite_but_accepts_an_empty_file(layout: CertLayout, ca: bytes, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"")
    with TranscriptWriter(path, job_id="j", identity=signer(layout, "bank"), role="guest", ca_cert_pem=ca) as w:
        w.event("note", text="hello")
    before = path.read_bytes()
    with pytest.raises(ConflictError, match="already has records"):
        TranscriptWriter(path, job_id="j", identity=signer(layout, "bank"), role="guest", ca_cert_pem=ca)
    assert path.read_bytes() == before
    assert w.closed
    with pytest.raises(ValueError, match="closed"):
        w.event("late")


def test_writer_checks_its_inputs(layout: CertLayout, other_layout: CertLayout, ca: bytes, tmp_path: Path) -> None:
    bank = signer(layout, "bank")
    with pytest.raises(ValueError, match="role"):
        TranscriptWriter(tmp_path / "a.jsonl", job_id="j", identity=bank, role="bank", ca_cert_pem=ca)
    with pytest.raises(ValueError, match="job id"):
        TranscriptWriter(tmp_path / "b.jsonl", job_id="", identity=bank, role="guest", ca_cert_pem=ca)
    with pytest.raises(CryptoError, match="not signed by the job's CA"):
        TranscriptWriter(tmp_path / "c.jsonl", job_id="j", identity=signer(other_layout, "bank"), role="guest",
                         ca_cert_pem=ca)
    with TranscriptWriter(tmp_path / "d.jsonl", job_id="j", identity=bank, role="guest", ca_cert_pem=ca) as w:
        with pytest.raises(ValueError, match="direction"):
            w.message("forwarded", {}, b"")
        with pytest.raises(ValueError, match="exactly the fields"):
            w.message("sent", {"job_id": "j"}, b"")
        with pytest.raises(TypeError, match="JSON"):
            w.event("bad", value=object())
        n = w.next_index
    assert len(read_transcript(tmp_path / "d.jsonl")) == n == 1  # nothing half-written by the failures


def test_keep_payloads_writes_sidecars(layout: CertLayout, tmp_path: Path, ca: bytes) -> None:
    paths = build_job(layout, tmp_path, keep_payloads=True)
    records = read_transcript(paths["bank"])
    assert records[0]["body"]["keep_payloads"] is True
    msgs = [r["body"] for r in records if r["kind"] == "message"]
    assert msgs and all(b["payload_file"] for b in msgs)
    for b in msgs:
        data = (paths["bank"].parent / b["payload_file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == b["envelope"]["payload_sha256"]
        assert b["payload_file"].startswith(paths["bank"].stem + ".payloads/")
    assert verify(paths, ca).ok
    # a changed kept payload is detected
    victim = paths["bank"].parent / msgs[0]["payload_file"]
    victim.write_bytes(b"x" + victim.read_bytes()[1:])
    result = verify(paths, ca)
    assert not result.ok and problems(result, "HASH")


def test_writer_is_thread_safe(layout: CertLayout, ca: bytes, tmp_path: Path) -> None:
    path = tmp_path / "threads.jsonl"
    w = TranscriptWriter(path, job_id="j", identity=signer(layout, "coordinator"), role="coordinator", ca_cert_pem=ca)

    def work(t: int) -> None:
        for i in range(40):
            w.event("tick", thread=t, i=i)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.event("finished", ok=True, error="")
    w.close()
    records = read_transcript(path)
    assert [r["index"] for r in records] == list(range(1 + 160 + 1))
    result = verify([path], ca)
    assert result.ok, result.problems


def test_read_transcript_names_file_and_line(job: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    lines = read_lines(job["bank"])
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2], encoding="utf-8")
    with pytest.raises(DataError, match=r"cut\.jsonl line 4"):
        read_transcript(path)
    with pytest.raises(DataError, match="cannot read"):
        read_transcript(tmp_path / "absent.jsonl")
