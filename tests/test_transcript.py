"""Signed, hash-chained transcripts: writing, reading, verifying, and every kind of tampering.

``build_job`` writes the three transcripts of one realistic job (bank = guest,
platform = host, coordinator) with keys from a dev CA: the spec and approvals,
the peers' signing certificates, PSI and two LR epochs of messages (each
envelope signed by its sender and recorded identically by sender, relay and
receiver), the platform's consent counts and the end of the job. Tampering
tests edit copies of those files like an attacker with a text editor would.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fedcredit.v1 import envelope_pb2
from federated.audit import Problem, VerificationResult, verify_transcripts
from federated.certs import CertLayout, init_certs
from federated.errors import ConflictError, CryptoError, DataError
from federated.signing import (
    SigningIdentity,
    canonical_json,
    envelope_digest,
    envelope_fields,
    load_signing_identity,
    sign_digest,
)
from federated.approval import make_approval
from federated.transcript import (
    FORMAT,
    ZERO_HASH,
    TranscriptWriter,
    read_transcript,
    record_hash,
    transcript_name,
)

JOB = "job-2024-0001"
NODES = ("bank", "platform", "coordinator")
ROLE_OF = {"bank": "guest", "platform": "host", "coordinator": "coordinator"}
PURPOSE = "financing-credit-scoring"
SPEC: dict[str, Any] = {
    "purpose": PURPOSE,
    "protocol": "psi+hetero_lr",
    "parties": {"guest": "bank", "host": "platform"},
    "datasets": {"bank": "loans_2024q1", "platform": "tax_invoices_2024q1"},
    "columns": {"bank": ["label", "loan_amount", "tenure_months"], "platform": ["invoice_total", "tax_paid", "employees"]},
    "min_intersection": 100,
    "params": {"epochs": 2, "batch_size": 64, "learning_rate": 0.15, "key_bits": 2048},
}
AUC = 0.7234
PLAINTEXT_WHY = "the guest needs z = u_G + u_H to score its held-out rows; every vertical LR has this leak"


def spec_sha(spec: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(spec)).hexdigest()


@dataclass(frozen=True)
class M:
    sender: str
    receiver: str
    step: str
    payload_type: str
    classification: str
    size: int
    sealed: bool = False
    key_owner: str | None = None
    disclosed: dict[str, Any] | None = None


def _messages() -> list[M]:
    ms = [
        M("bank", "platform", "psi.guest_blinded", "fedcredit.v1.BlindedPoints", "masked", 16_000, True),
        M("platform", "bank", "psi.host_double_blinded", "fedcredit.v1.BlindedPoints", "masked", 16_000, True),
        M("platform", "bank", "psi.host_blinded", "fedcredit.v1.BlindedPoints", "masked", 14_400, True),
        M("bank", "platform", "psi.guest_matches", "fedcredit.v1.MatchedPositions", "aggregate", 1_700, True,
          disclosed={"intersection_size": 412}),
        M("coordinator", "bank", "lr.public_key", "fedcredit.v1.PublicKeyMessage", "public", 300,
          disclosed={"paillier_key_bits": 2048, "key_fingerprint": "9f" * 8}),
        M("coordinator", "platform", "lr.public_key", "fedcredit.v1.PublicKeyMessage", "public", 300,
          disclosed={"paillier_key_bits": 2048, "key_fingerprint": "9f" * 8}),
        M("bank", "coordinator", "lr.training_plan", "fedcredit.v1.TrainingPlan", "public", 40,
          disclosed={"training_rows": 330, "test_rows": 82, "batches_per_epoch": 5}),
    ]
    for epoch in range(2):
        loss = round(0.61 - 0.05 * epoch, 4)
        ms += [
            M("platform", "bank", "lr.host_scores", "fedcredit.v1.EncryptedScores", "ciphertext", 42_000, True, "coordinator"),
            M("bank", "platform", "lr.residuals", "fedcredit.v1.EncryptedResiduals", "ciphertext", 41_000, True, "coordinator"),
            M("bank", "coordinator", "lr.masked_gradient", "fedcredit.v1.EncryptedMaskedGradient", "masked", 1_600),
            M("platform", "coordinator", "lr.masked_gradient", "fedcredit.v1.EncryptedMaskedGradient", "masked", 1_600),
            M("coordinator", "bank", "lr.decrypted_masked_gradient", "fedcredit.v1.MaskedGradient", "masked", 400),
            M("coordinator", "platform", "lr.decrypted_masked_gradient", "fedcredit.v1.MaskedGradient", "masked", 400),
            M("bank", "coordinator", "lr.epoch_loss", "fedcredit.v1.EncryptedLoss", "aggregate", 520),
            M("coordinator", "bank", "lr.epoch_decision", "fedcredit.v1.EpochDecision", "aggregate", 30,
              disclosed={"epoch": epoch, "mean_training_loss": loss, "stop": epoch == 1}),
            M("coordinator", "platform", "lr.epoch_decision", "fedcredit.v1.EpochDecision", "aggregate", 30,
              disclosed={"epoch": epoch, "mean_training_loss": loss, "stop": epoch == 1}),
        ]
    ms += [
        M("platform", "bank", "lr.host_test_scores", "fedcredit.v1.HostTestScores", "plaintext", 700, True,
          disclosed={"rows": 82, "what": "the host's partial scores u_H on the held-out rows", "why": PLAINTEXT_WHY}),
        M("bank", "coordinator", "lr.metrics", "fedcredit.v1.EvaluationMetrics", "aggregate", 35,
          disclosed={"test_auc": AUC, "test_ks": 0.3817, "test_rows": 82, "test_positives": 19}),
    ]
    return ms


MESSAGES = _messages()
N_PARTY_TO_PARTY = sum(1 for m in MESSAGES if "coordinator" not in (m.sender, m.receiver))
#: message records across the three transcripts: sent + received, plus relayed party-to-party ones
N_MESSAGE_RECORDS = 2 * len(MESSAGES) + N_PARTY_TO_PARTY

Tweak = Callable[[str, str, M, int, dict[str, Any], bytes], "tuple[dict[str, Any], bytes] | None"]


class FakeClock:
    """Deterministic steps from a start near now (certificates are checked at record time)."""

    def __init__(self, start: float | None = None) -> None:
        self.t = float(int(time.time())) if start is None else start

    def __call__(self) -> float:
        self.t += 0.013
        return self.t


def identity(layout: CertLayout, name: str) -> SigningIdentity:
    files = layout.node(name)
    assert files.sign_cert is not None and files.sign_key is not None
    return load_signing_identity(files.sign_cert, files.sign_key)


def payload_bytes(step: str, seq: int, size: int) -> bytes:
    seed = hashlib.sha256(f"{step}#{seq}".encode()).digest()
    return (seed * (size // 32 + 1))[:size]


def build_job(
    layout: CertLayout,
    out: Path,
    *,
    job_id: str = JOB,
    identities: dict[str, SigningIdentity] | None = None,
    cas: dict[str, bytes] | None = None,
    tweak: Tweak | None = None,
    approved_spec: dict[str, dict[str, Any]] | None = None,
    recorded_spec: dict[str, dict[str, Any]] | None = None,
    failed: bool = False,
    keep_payloads: bool = False,
    nodes: tuple[str, ...] = NODES,
    stop_at: tuple[str, int] | None = None,
) -> dict[str, Path]:
    """Write the transcripts of one job; return {node: path}.

    ``tweak(node, direction, message, sequence, envelope, signature)`` may
    change what a node records for a message (return the new pair) or drop
    the record (return None). ``stop_at=(step, sequence)`` breaks the job at
    that message, as a real failure does: its sender sends it and the relay
    relays it, but its receiver never records it and nothing after it happens
    (use with ``failed=True``).
    """
    ids = {n: identity(layout, n) for n in NODES}
    ids.update(identities or {})
    ca = layout.ca_cert.read_bytes()
    clock = FakeClock()
    writers = {
        n: TranscriptWriter(out / transcript_name(job_id, n), job_id=job_id, identity=ids[n], role=ROLE_OF[n],
                            ca_cert_pem=(cas or {}).get(n, ca), keep_payloads=keep_payloads, clock=clock)
        for n in nodes
    }
    for n, w in writers.items():
        spec = (recorded_spec or {}).get(n, SPEC)
        w.event("job_spec", spec=spec, spec_sha256=spec_sha(SPEC), purpose=PURPOSE)
        if n != "coordinator":
            approved = (approved_spec or {}).get(n, SPEC)
            by = "operator" if n == "bank" else "policy"
            sig = make_approval(ids[n], job_id, spec_sha(approved), True, by).signature.hex()
            w.event("approved", spec_sha256=spec_sha(approved), by=by, reason="", signature=sig,
                    checks=["purpose allowed", "peer allowed", "columns allowed", "min intersection"])
        w.event("peer_certs", certs={p: ids[p].cert_pem.decode() for p in NODES if p != n})
    if "coordinator" in writers:  # as the runtime does: the coordinator records each party's signed decision
        for party in ("bank", "platform"):
            approved = (approved_spec or {}).get(party, SPEC)
            if approved == SPEC:  # the real coordinator refuses a decision on another spec
                by = "operator" if party == "bank" else "policy"
                writers["coordinator"].event("approved", node=party, spec_sha256=spec_sha(approved), by=by, reason="",
                                             signature=make_approval(ids[party], job_id, spec_sha(approved), True, by).signature.hex())
    if "platform" in writers:
        writers["platform"].event("consent", purpose=PURPOSE, included=449, excluded=37)

    seqs: Counter[tuple[str, str, str]] = Counter()
    stopped = False
    for m in MESSAGES:
        if stopped:
            break
        seq = seqs[(m.step, m.sender, m.receiver)]
        seqs[(m.step, m.sender, m.receiver)] += 1
        stopped = (m.step, seq) == stop_at
        data = payload_bytes(m.step, seq, m.size)
        env = envelope_pb2.Envelope(
            job_id=job_id, message_id=hashlib.sha256(f"{job_id}/{m.step}/{m.sender}/{seq}".encode()).hexdigest()[:32],
            sender=m.sender, receiver=m.receiver, step=m.step, sequence=seq, payload_type=m.payload_type,
            payload_size=len(data), payload_sha256=hashlib.sha256(data).digest(), sealed=m.sealed,
            classification=m.classification, sent_unix_ms=int(clock() * 1000),
        )
        fields = envelope_fields(env)
        signature = sign_digest(ids[m.sender], envelope_digest(fields))
        order = [(m.sender, "sent")]
        if "coordinator" not in (m.sender, m.receiver):
            order.append(("coordinator", "relayed"))
        order.append((m.receiver, "received"))
        for node, direction in order:
            if node not in writers or (stopped and direction == "received"):
                continue
            e, s = dict(fields), signature
            if tweak is not None:
                got = tweak(node, direction, m, seq, e, s)
                if got is None:
                    continue
                e, s = got
            writers[node].message(direction, e, s, key_owner=m.key_owner, disclosed=m.disclosed, payload=data)
    for w in writers.values():
        w.event("finished", ok=not failed, error="platform went away during lr.residuals" if failed else "")
        w.close()
    return {n: w.path for n, w in writers.items()}


# --------------------------------------------------------------------------
# helpers for tampering
# --------------------------------------------------------------------------
def read_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text[:-1].split("\n")


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def dump(record: dict[str, Any]) -> str:
    return canonical_json(record).decode("utf-8")


def copy_job(paths: dict[str, Path], dst: Path) -> dict[str, Path]:
    dst.mkdir(parents=True, exist_ok=True)
    return {n: Path(shutil.copy2(p, dst / p.name)) for n, p in paths.items()}


def find_message(path: Path, step: str, direction: str, sequence: int = 0) -> int:
    for i, line in enumerate(read_lines(path)):
        rec = json.loads(line)
        if rec["kind"] == "message":
            b = rec["body"]
            if b["direction"] == direction and b["envelope"]["step"] == step and b["envelope"]["sequence"] == sequence:
                return i
    raise AssertionError(f"no {direction} {step}#{sequence} in {path}")


def resign(record: dict[str, Any], ident: SigningIdentity) -> dict[str, Any]:
    record = dict(record)
    record["hash"] = record_hash(record)
    record["signature"] = sign_digest(ident, bytes.fromhex(record["hash"])).hex()
    return record


def problems(result: VerificationResult, code: str, path: Path | None = None) -> list[Problem]:
    return [p for p in result.problems if p.code == code and (path is None or p.file == str(path))]


def verify(paths: dict[str, Path] | list[Path], ca: bytes | None) -> VerificationResult:
    files = list(paths.values()) if isinstance(paths, dict) else paths
    return verify_transcripts(files, ca_cert_pem=ca)


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> CertLayout:
    return init_certs(tmp_path_factory.mktemp("pki"), ["bank", "platform"])


@pytest.fixture(scope="module")
def other_layout(tmp_path_factory: pytest.TempPathFactory) -> CertLayout:
    return init_certs(tmp_path_factory.mktemp("other-pki"), ["bank", "platform"])


@pytest.fixture(scope="module")
def ca(layout: CertLayout) -> bytes:
    return layout.ca_cert.read_bytes()


@pytest.fixture(scope="module")
def job(layout: CertLayout, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_job(layout, tmp_path_factory.mktemp("job"))


@pytest.fixture
def copy(job: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    return copy_job(job, tmp_path / "copy")


# --------------------------------------------------------------------------
# the writer and the reader
# --------------------------------------------------------------------------
def test_records_have_the_documented_format(job: dict[str, Path], layout: CertLayout) -> None:
    bank = identity(layout, "bank")
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
    with TranscriptWriter(path, job_id="j", identity=identity(layout, "bank"), role="guest", ca_cert_pem=ca) as w:
        w.event("note", text="hello")
    before = path.read_bytes()
    with pytest.raises(ConflictError, match="already has records"):
        TranscriptWriter(path, job_id="j", identity=identity(layout, "bank"), role="guest", ca_cert_pem=ca)
    assert path.read_bytes() == before
    assert w.closed
    with pytest.raises(ValueError, match="closed"):
        w.event("late")


def test_writer_checks_its_inputs(layout: CertLayout, other_layout: CertLayout, ca: bytes, tmp_path: Path) -> None:
    bank = identity(layout, "bank")
    with pytest.raises(ValueError, match="role"):
        TranscriptWriter(tmp_path / "a.jsonl", job_id="j", identity=bank, role="bank", ca_cert_pem=ca)
    with pytest.raises(ValueError, match="job id"):
        TranscriptWriter(tmp_path / "b.jsonl", job_id="", identity=bank, role="guest", ca_cert_pem=ca)
    with pytest.raises(CryptoError, match="not signed by the job's CA"):
        TranscriptWriter(tmp_path / "c.jsonl", job_id="j", identity=identity(other_layout, "bank"), role="guest",
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
    w = TranscriptWriter(path, job_id="j", identity=identity(layout, "coordinator"), role="coordinator", ca_cert_pem=ca)

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
    forger = identity(other_layout, "bank")  # same name, key from another CA
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
    forger = identity(other_layout, "bank")
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
    lines[k] = dump(resign(rec, identity(layout, "bank")))
    nxt = json.loads(lines[k + 1])
    nxt["prev_hash"] = json.loads(lines[k])["hash"]
    lines[k + 1] = dump(resign(nxt, identity(layout, "bank")))
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
    bank = identity(layout, "bank")
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
    platform = identity(layout, "platform")

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
    paths = build_job(layout, tmp_path, identities={"bank": identity(other_layout, "bank")},
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
    coord = identity(layout, "coordinator")
    forged = tmp_path / "forged"
    forged.mkdir()
    w = TranscriptWriter(forged / transcript_name(JOB, "coordinator"), job_id=JOB, identity=coord, role="coordinator", ca_cert_pem=ca)
    w.event("job_spec", spec=SPEC, spec_sha256=spec_sha(SPEC), purpose=PURPOSE)
    fake = make_approval(coord, JOB, spec_sha(SPEC), True, "operator")  # signed by the coordinator, not the bank
    w.event("approved", node="bank", spec_sha256=spec_sha(SPEC), by="operator", reason="", signature=fake.signature.hex())
    w.event("peer_certs", certs={p: identity(layout, p).cert_pem.decode() for p in ("bank", "platform")})
    w.event("finished", ok=True, error="")
    w.close()
    result = verify_transcripts([paths["bank"], paths["platform"], forged / transcript_name(JOB, "coordinator")], ca_cert_pem=ca)
    assert "APPROVAL_SIGNATURE" in result.codes()
    honest = verify_transcripts(list(paths.values()), ca_cert_pem=ca)
    assert honest.ok and honest.checked["approval_signatures_verified"] >= 4
