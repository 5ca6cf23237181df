"""Purpose binding, approval and consent with real processes over mTLS.

The bank's node waits for an operator's explicit approval; the platform's node
approves by policy and admits only enterprises with a valid consent.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import grpc
import pandas as pd
import pytest

from fedcredit.proto.v1 import job_pb2, job_pb2_grpc
from fedcredit.runtime.node.approval import make_approval
from fedcredit.runtime.security.certs import load_tls
from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config
from fedcredit.runtime.cli.demo import Cluster
from fedcredit.runtime.errors import ConflictError, PermissionDeniedError, from_rpc_error
from fedcredit.runtime.security.signing import load_signing_identity
from fedcredit.runtime.security.transport import create_channel
from helpers import BREAST_GUEST, BREAST_HOST, read_breast

pytestmark = pytest.mark.integration
PURPOSE = "financing.credit_risk_model"
CLI = [sys.executable, "-m", "fedcredit.runtime.cli"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("compliance")
    g, h = read_breast()
    ids = list(h["id"])
    consent = d / "consent.csv"
    rows = ["enterprise_id,purpose,valid_from,valid_to,revoked"]
    rows += [f"{i},financing.*,2020-01-01,," for i in ids[:500]]                  # valid
    rows += [f"{i},financing.*,2020-01-01,2021-01-01," for i in ids[500:520]]     # expired
    rows += [f"{i},marketing.campaigns,2020-01-01,," for i in ids[520:540]]       # other purpose
    # ids[540:] have no consent at all
    consent.write_text("\n".join(rows) + "\n", encoding="utf-8")
    cluster = Cluster(
        d / "cluster",
        {"bank": {"breast": DatasetConfig(path=BREAST_GUEST, label_column="y")},
         "platform": {"breast": DatasetConfig(path=BREAST_HOST, consent_registry=consent)}},
        policies={
            "bank": {"auto_approve": False, "allowed_purposes": [PURPOSE], "allowed_peers": ["platform"], "min_intersection": 10},
            "platform": {"auto_approve": True, "allowed_purposes": [PURPOSE], "min_intersection": 10,
                         "allowed_columns": {"breast": [f"x{i}" for i in range(20)]}},
        },
    )
    with cluster:
        yield cluster, consent, ids, set(g["id"])


def _spec(**kw: object) -> JobSpec:
    base = {"kind": "psi", "name": "c", "purpose": PURPOSE, "guest": {"party": "bank", "dataset": "breast"},
            "host": {"party": "platform", "dataset": "breast", "columns": ["x0", "x1"]}}
    base.update(kw)
    return parse_config(JobSpec, base, source="test")


def _wait_state(client: OperatorClient, job_id: str, states: set[str], timeout: float = 60) -> job_pb2.JobInfo:
    deadline = time.monotonic() + timeout
    while True:
        info = client.get(job_id)
        if info.state in states or time.monotonic() > deadline:
            return info
        time.sleep(0.3)


def test_job_waits_for_operator_approval_then_runs_on_consented_ids(setup) -> None:
    cluster, consent, ids, guest_ids = setup
    with OperatorClient(cluster.client_config()) as client:
        info = client.submit(_spec())
        deadline = time.monotonic() + 60  # the platform approves by policy once it has polled; under load that takes seconds
        while not client.get(info.job_id).approvals and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # and the bank, which does not auto-approve, has had time to act wrongly
        info = client.get(info.job_id)
        assert info.state == "pending"
        assert [a.node for a in info.approvals] == ["platform"]  # platform approved by policy; the bank has not
        assert not (cluster.workdir / "bank" / "jobs" / info.job_id).exists()  # nothing touched before approval
        out = subprocess.run([*CLI, "job", "approve", info.job_id, "--config", str(cluster.party_config_path("bank"))],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        info = client.wait(info.job_id, timeout_s=120)
    assert info.state == "succeeded", info.error
    expected = set(ids[:500]) & guest_ids  # only enterprises with a valid consent for the purpose
    got = set(pd.read_csv(cluster.workdir / "bank" / "jobs" / info.job_id / "intersection.csv", dtype=str)["id"])
    assert got == expected
    assert cluster.party_result("bank", info.job_id)["psi"]["intersection_size"] == len(expected)
    # Only the platform learns how many it excluded: it is in its own transcript, not in the job's result.
    assert "excluded" not in info.result_json
    platform_t = cluster.workdir / "platform" / "transcripts" / f"{info.job_id}.platform.jsonl"
    events = [json.loads(line)["body"] for line in platform_t.read_text().splitlines() if '"consent"' in line]
    assert events and events[0]["excluded"] == len(ids) - 500 and events[0]["included"] == 500
    bank_t = (cluster.workdir / "bank" / "transcripts" / f"{info.job_id}.bank.jsonl").read_text()
    assert '"consent"' not in bank_t
    approved = [json.loads(line)["body"] for line in bank_t.splitlines() if '"approved"' in line][0]
    assert approved["by"] == "operator" and approved["spec_sha256"] == info.spec_sha256


def test_revocation_applies_from_the_next_job(setup) -> None:
    cluster, consent, ids, guest_ids = setup
    original = consent.read_text()
    try:
        lines = original.splitlines()
        # Revoke the first 50 valid consents.
        lines[1:51] = [f"{i},financing.*,2020-01-01,,2020-06-01" for i in ids[:50]]
        consent.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with OperatorClient(cluster.client_config()) as client:
            info = client.submit(_spec())
            _wait_state(client, info.job_id, {"pending"})
            subprocess.run([*CLI, "job", "approve", info.job_id, "--config", str(cluster.party_config_path("bank"))],
                           check=True, capture_output=True, timeout=60)
            info = client.wait(info.job_id, timeout_s=120)
        assert info.state == "succeeded", info.error
        assert cluster.party_result("bank", info.job_id)["psi"]["intersection_size"] == len(set(ids[50:500]) & guest_ids)
    finally:
        consent.write_text(original, encoding="utf-8")


def test_operator_rejection_and_policy_rejection(setup) -> None:
    cluster, *_ = setup
    with OperatorClient(cluster.client_config()) as client:
        info = client.submit(_spec())
        _wait_state(client, info.job_id, {"pending"})
        out = subprocess.run([*CLI, "job", "reject", info.job_id, "--config", str(cluster.party_config_path("bank")), "--reason", "not this quarter"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        info = client.get(info.job_id)
        assert info.state == "rejected" and "not this quarter" in info.error and "bank" in info.error
        # A purpose outside the platform's policy is rejected by its node before any data is read.
        info = client.submit(_spec(purpose="marketing.campaigns"))
        info = _wait_state(client, info.job_id, {"rejected"})
        # Both parties' policies forbid it; whichever node decides first is named.
        assert info.state == "rejected" and "marketing.campaigns" in info.error
        assert "platform" in info.error or "bank" in info.error
        # Columns the platform does not allow.
        info = client.submit(_spec(host={"party": "platform", "dataset": "breast", "columns": ["x0", "secret_col"]}))
        info = _wait_state(client, info.job_id, {"rejected"})
        assert info.state == "rejected" and "secret_col" in info.error
    # The operator CLI refuses to approve what the bank's own policy forbids.
    with OperatorClient(cluster.client_config()) as client:
        info = client.submit(_spec(host={"party": "platform", "dataset": "breast"}, guest={"party": "bank", "dataset": "nope"}))
        time.sleep(1)
    out = subprocess.run([*CLI, "job", "approve", info.job_id, "--config", str(cluster.party_config_path("bank"))],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "nope" in out.stderr and "Traceback" not in out.stderr


def test_nobody_can_approve_for_another_party(setup) -> None:
    cluster, *_ = setup
    with OperatorClient(cluster.client_config()) as client:
        info = client.submit(_spec())
        info = _wait_state(client, info.job_id, {"pending"})

    def channel(name: str) -> grpc.Channel:
        d = cluster.certs / name
        return create_channel(f"127.0.0.1:{cluster.port}", load_tls(cluster.certs / "ca.crt", d / "tls.crt", d / "tls.key"), server_name="coordinator")

    bank_id = load_signing_identity(cluster.certs / "bank" / "sign.crt", cluster.certs / "bank" / "sign.key")
    platform_id = load_signing_identity(cluster.certs / "platform" / "sign.crt", cluster.certs / "platform" / "sign.key")
    ch = channel("platform")
    stub = job_pb2_grpc.JobServiceStub(ch)
    # The platform cannot approve in the bank's name, even with a correctly signed bank approval.
    forged = make_approval(bank_id, info.job_id, info.spec_sha256, True, "operator")
    with pytest.raises(grpc.RpcError) as err:
        stub.ApproveJob(job_pb2.ApproveJobRequest(job_id=info.job_id, approval=forged), timeout=10)
    assert isinstance(from_rpc_error(err.value), PermissionDeniedError)
    ch.close()
    # The bank's approval must be signed with the bank's key and name the job's exact spec.
    ch = channel("bank")
    stub = job_pb2_grpc.JobServiceStub(ch)
    wrong_key = make_approval(platform_id, info.job_id, info.spec_sha256, True, "operator")
    wrong_key.node = "bank"
    with pytest.raises(grpc.RpcError) as err:
        stub.ApproveJob(job_pb2.ApproveJobRequest(job_id=info.job_id, approval=wrong_key), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # signature check failed
    wrong_spec = make_approval(bank_id, info.job_id, "0" * 64, True, "operator")
    with pytest.raises(grpc.RpcError) as err:
        stub.ApproveJob(job_pb2.ApproveJobRequest(job_id=info.job_id, approval=wrong_spec), timeout=10)
    assert isinstance(from_rpc_error(err.value), ConflictError)
    # The operator (the coordinator's side) cannot approve for a party at all.
    op = channel("operator")
    with pytest.raises(grpc.RpcError) as err:
        job_pb2_grpc.JobServiceStub(op).ApproveJob(job_pb2.ApproveJobRequest(job_id=info.job_id, approval=forged), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    ch.close()
    op.close()
    with OperatorClient(cluster.client_config()) as client:
        assert client.get(info.job_id).state == "pending"
        client.cancel(info.job_id, "test over")


def test_a_job_runs_only_on_the_data_it_was_approved_on(setup) -> None:
    """#12: a file changed between approval and run was used silently. Now each node records the digest of its
    dataset, consent registry and selected columns when it approves, and refuses to run on anything else."""
    cluster, consent, ids, _ = setup
    original = consent.read_text()
    try:
        with OperatorClient(cluster.client_config()) as client:
            info = client.submit(_spec())
            _wait_state(client, info.job_id, {"pending"})
            record = cluster.workdir / "platform" / "jobs" / info.job_id / "approved_data.json"
            deadline = time.monotonic() + 30
            while not record.exists() and time.monotonic() < deadline:  # the platform approves on its own policy
                time.sleep(0.1)
            assert record.exists() and record.stat().st_mode & 0o077 == 0
            consent.write_text(original.replace("financing.*,2020-01-01,,", "financing.*,2020-01-01,,2020-06-01", 5),
                               encoding="utf-8")  # the platform's data changes after its approval
            subprocess.run([*CLI, "job", "approve", info.job_id, "--config", str(cluster.party_config_path("bank"))],
                           check=True, capture_output=True, timeout=60)
            info = client.wait(info.job_id, timeout_s=120)
        assert info.state == "failed" and "changed since it approved" in info.error, info.error
        assert not (cluster.workdir / "bank" / "jobs" / info.job_id / "intersection.csv").exists()
        cluster.check_alive()
    finally:
        consent.write_text(original, encoding="utf-8")
