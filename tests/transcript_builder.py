"""A builder of realistic transcripts, shared by tests/test_transcript*.py and tests/test_audit_report.py.

``build_job`` writes the three transcripts of one realistic job (bank = guest,
platform = host, coordinator) with keys from a dev CA: the spec and approvals,
the peers' signing certificates, PSI and two LR epochs of messages (each
envelope signed by its sender and recorded identically by sender, relay and
receiver), the platform's consent counts and the end of the job. Tampering
tests edit copies of those files like an attacker with a text editor would,
with the helpers at the end.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedcredit.proto.v1 import envelope_pb2
from fedcredit.runtime.node.approval import make_approval
from fedcredit.runtime.audit import Problem, VerificationResult, verify_transcripts
from fedcredit.runtime.security.certs import CertLayout
from fedcredit.runtime.security.signing import SigningIdentity, canonical_json, envelope_digest, envelope_fields, sign_digest
from fedcredit.runtime.transcript import TranscriptWriter, record_hash, transcript_name
from helpers import signer

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
    ids = {n: signer(layout, n) for n in NODES}
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
