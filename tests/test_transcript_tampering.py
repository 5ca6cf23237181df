"""Signed, hash-chained transcripts: every kind of tampering inside one file.

Each test edits a fresh copy of the valid job's transcripts (``job``, tests/conftest.py) like an attacker with a
text editor would. Tampering across files is in test_transcript.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fedcredit.runtime.security.certs import CertLayout
from fedcredit.runtime.transcript import read_transcript, record_hash
from helpers import signer
from transcript_builder import JOB, copy_job, dump, find_message, problems, read_lines, resign, verify, write_lines


@pytest.fixture
def copy(job: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    return copy_job(job, tmp_path / "copy")


# --------------------------------------------------------------------------
# tampering inside one file
# --------------------------------------------------------------------------
def test_edited_field_is_detected_at_that_record(copy: dict[str, Path], ca: bytes) -> None:
    lines = read_lines(copy["bank"])
    k = find_message(copy["bank"], "lr.residuals", "sent")
    rec = json.loads(lines[k])
    rec["body"]["envelope"]["payload_size"] += 1
    lines[k] = dump(rec)
    write_lines(copy["bank"], lines)
    result = verify(copy, ca)
    assert not result.ok
    hashes = problems(result, "HASH", copy["bank"])
    assert [(p.record, p.line) for p in hashes] == [(k, k + 1)]
    assert f"record {k}" in hashes[0].message
    # nothing else in the file's chain is blamed
    assert not problems(result, "CHAIN") and not problems(result, "INDEX") and not problems(result, "SIGNATURE")


def test_deleted_record_is_detected_naming_the_record(copy: dict[str, Path], ca: bytes) -> None:
    lines = read_lines(copy["platform"])
    k = find_message(copy["platform"], "lr.residuals", "received", 1)
    del lines[k]
    write_lines(copy["platform"], lines)
    result = verify(copy, ca)
    assert not result.ok
    found = problems(result, "INDEX", copy["platform"]) + problems(result, "CHAIN", copy["platform"])
    assert found and {p.record for p in found} == {k + 1}
    assert any(f"record {k} should come before record {k + 1}" in p.message for p in found)
    # and the other side still has it: the deleted receive shows up as missing
    assert problems(result, "MISSING", copy["bank"])


def test_swapped_records_are_detected(copy: dict[str, Path], ca: bytes) -> None:
    lines = read_lines(copy["coordinator"])
    k = find_message(copy["coordinator"], "lr.masked_gradient", "received")
    lines[k], lines[k + 1] = lines[k + 1], lines[k]
    write_lines(copy["coordinator"], lines)
    result = verify(copy, ca)
    assert not result.ok
    found = problems(result, "INDEX", copy["coordinator"]) + problems(result, "CHAIN", copy["coordinator"])
    assert {p.record for p in found} >= {k, k + 1}
    assert not problems(result, "HASH") and not problems(result, "SIGNATURE")


def test_inserted_forged_record_is_detected(copy: dict[str, Path], ca: bytes, other_layout: CertLayout) -> None:
    forger = signer(other_layout, "bank")  # same name, key from another CA
    lines = read_lines(copy["bank"])
    k = find_message(copy["bank"], "lr.metrics", "sent")
    prev = json.loads(lines[k - 1])
    forged = resign({"index": k, "kind": "event", "job_id": JOB, "node": "bank", "ts_ms": prev["ts_ms"] + 1,
                     "prev_hash": prev["hash"], "body": {"event": "approved", "spec_sha256": "0" * 64,
                                                         "by": "operator", "checks": []}}, forger)
    write_lines(copy["bank"], lines[:k] + [dump(forged)] + lines[k:])
    result = verify(copy, ca)
    sigs = problems(result, "SIGNATURE", copy["bank"])
    assert [p.record for p in sigs] == [k]
    # the original record k now follows a record with the same index
    assert {p.record for p in problems(result, "INDEX", copy["bank"]) + problems(result, "CHAIN", copy["bank"])} == {k}


def test_inserted_record_with_a_rebuilt_chain_fails_on_signatures(copy: dict[str, Path], ca: bytes,
                                                                  other_layout: CertLayout) -> None:
    forger = signer(other_layout, "bank")
    records = read_transcript(copy["bank"])
    k = find_message(copy["bank"], "lr.metrics", "sent")
    new = records[:k]
    forged = {"index": k, "kind": "event", "job_id": JOB, "node": "bank", "ts_ms": records[k]["ts_ms"],
              "prev_hash": records[k - 1]["hash"], "body": {"event": "note", "text": "nothing to see"}}
    new.append(resign(forged, forger))
    for rec in records[k:]:  # re-index and re-chain everything after it, as well as the forger can
        rec = dict(rec, index=rec["index"] + 1, prev_hash=new[-1]["hash"])
        new.append(resign(rec, forger))
    write_lines(copy["bank"], [dump(r) for r in new])
    result = verify(copy, ca)
    assert not result.ok
    assert not problems(result, "INDEX") and not problems(result, "CHAIN") and not problems(result, "HASH")
    sigs = problems(result, "SIGNATURE", copy["bank"])
    assert sigs[0].record == k and {p.record for p in sigs} == set(range(k, len(new)))


def test_rehash_after_edit_without_the_key_fails_the_signature(copy: dict[str, Path], ca: bytes) -> None:
    lines = read_lines(copy["platform"])
    k = [i for i, line in enumerate(lines) if '"event":"consent"' in line][0]
    rec = json.loads(lines[k])
    rec["body"]["excluded"] = 0  # hide the exclusions
    rec["hash"] = record_hash(rec)  # recomputed, but the signature cannot be
    lines[k] = dump(rec)
    prev_hash = rec["hash"]
    for i in range(k + 1, len(lines)):  # re-chain the rest, again without the key
        nxt = json.loads(lines[i])
        nxt["prev_hash"] = prev_hash
        nxt["hash"] = prev_hash = record_hash(nxt)
        lines[i] = dump(nxt)
    write_lines(copy["platform"], lines)
    result = verify(copy, ca)
    assert not result.ok
    assert {p.record for p in problems(result, "SIGNATURE", copy["platform"])} == set(range(k, len(lines)))
    assert not problems(result, "HASH") and not problems(result, "CHAIN")


def test_truncated_last_line_is_reported_not_raised(copy: dict[str, Path], ca: bytes) -> None:
    lines = read_lines(copy["coordinator"])
    last = lines[-1]
    copy["coordinator"].write_text("\n".join(lines[:-1]) + "\n" + last[: len(last) // 2], encoding="utf-8")
    result = verify(copy, ca)
    assert not result.ok
    bad = problems(result, "BAD_JSON", copy["coordinator"])
    assert [p.line for p in bad] == [len(lines)]
    assert f"line {len(lines)}" in bad[0].message


def test_record_of_another_job_is_reported(copy: dict[str, Path], ca: bytes, layout: CertLayout) -> None:
    lines = read_lines(copy["bank"])
    k = 2
    rec = json.loads(lines[k])
    rec["job_id"] = "job-other"
    lines[k] = dump(resign(rec, signer(layout, "bank")))
    nxt = json.loads(lines[k + 1])
    nxt["prev_hash"] = json.loads(lines[k])["hash"]
    lines[k + 1] = dump(resign(nxt, signer(layout, "bank")))
    write_lines(copy["bank"], lines)
    result = verify(copy, ca)
    assert [p.record for p in problems(result, "JOB_MISMATCH", copy["bank"])] == [k]


def test_unreadable_and_foreign_files_are_problems(job: dict[str, Path], ca: bytes, tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("this is not a transcript\n", encoding="utf-8")
    result = verify([job["bank"], tmp_path / "absent.jsonl", junk], ca)
    assert not result.ok
    assert problems(result, "UNREADABLE", tmp_path / "absent.jsonl")
    assert [p.line for p in problems(result, "BAD_JSON", junk)] == [1]


def test_two_transcripts_for_one_node_are_flagged(job: dict[str, Path], ca: bytes, tmp_path: Path) -> None:
    twin = Path(shutil.copy2(job["bank"], tmp_path / "bank-copy.jsonl"))
    result = verify([*job.values(), twin], ca)
    assert [p.file for p in result.problems] == [str(twin)] and result.problems[0].code == "DUPLICATE"
