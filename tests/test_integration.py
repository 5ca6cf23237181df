"""End to end: a coordinator and two party nodes as separate processes over mTLS gRPC."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pandas as pd
import pytest

from fedcredit.proto.v1 import job_pb2, job_pb2_grpc, node_pb2, node_pb2_grpc, relay_pb2, relay_pb2_grpc, envelope_pb2
from fedcredit.runtime.security.certs import init_certs
from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config
from fedcredit.runtime.cli.demo import Cluster, reference_models
from fedcredit.runtime.errors import NotFoundError, PermissionDeniedError, from_rpc_error
from fedcredit.runtime.transcript import read_transcript
from fedcredit.runtime.security.transport import create_channel
from fedcredit.runtime.security.certs import load_tls
from helpers import read_breast

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def split_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, set[str]]:
    """Breast data where each side has ids the other lacks, and the host's rows are in another order."""
    d = tmp_path_factory.mktemp("data")
    g, h = read_breast()
    g = g.iloc[25:].copy()  # the guest lacks the first 25 ids
    h = h.drop(h.index[100:140]).sample(frac=1.0, random_state=7)  # the host lacks 40 others, shuffled
    extra = h.iloc[:5].copy()
    extra["id"] = ["h-only-" + str(i) for i in range(5)]
    h = pd.concat([h, extra])
    gp, hp = d / "guest.csv", d / "host.csv"
    g.to_csv(gp, index=False)
    h.to_csv(hp, index=False)
    return gp, hp, set(g["id"]) & set(h["id"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, split_files: tuple[Path, Path, set[str]]) -> Cluster:
    gp, hp, _ = split_files
    work = tmp_path_factory.mktemp("cluster")
    bad = work / "guest_bad.csv"  # one cell of the bank's data is a company name: a private value
    frame = pd.read_csv(gp, dtype=str)
    frame.loc[frame.index[6], "x3"] = "ACME Ltd 91110000X"
    frame.to_csv(bad, index=False)
    c = Cluster(work, {
        "bank": {"breast": DatasetConfig(path=gp, id_column="id", label_column="y"),
                 "breast_bad": DatasetConfig(path=bad, id_column="id", label_column="y")},
        "platform": {"breast": DatasetConfig(path=hp, id_column="id")},
    })
    with c:
        yield c


def _assert_private_outputs(cluster: Cluster, job_id: str, expect: set[str]) -> None:
    """#12: every file a party wrote for the job is readable by its owner only."""
    outputs = [p for party in ("bank", "platform") for p in (cluster.workdir / party / "jobs" / job_id).iterdir() if p.is_file()]
    assert expect <= {p.name for p in outputs}, outputs
    assert all(p.stat().st_mode & 0o077 == 0 for p in outputs), [(p.name, oct(p.stat().st_mode)) for p in outputs]


def _spec(**overrides: object) -> JobSpec:
    base = {"kind": "train", "name": "it", "purpose": "financing.credit_risk_model", "guest": {"party": "bank", "dataset": "breast"},
            "host": {"party": "platform", "dataset": "breast"},
            "training": {"key_bits": 1024, "max_epochs": 5}, "seed": 7}
    base.update(overrides)
    return parse_config(JobSpec, base, source="test job")


def test_train_job_over_mtls_matches_centralized(cluster: Cluster, split_files: tuple[Path, Path, set[str]]) -> None:
    gp, hp, common = split_files
    with OperatorClient(cluster.client_config()) as client:
        info = client.submit(_spec())
        info = client.wait(info.job_id, timeout_s=300)
    assert info.state == "succeeded", info.error
    result = cluster.party_result("bank", info.job_id)  # the bank's own result, on its own node
    assert result["psi"]["intersection_size"] == len(common)
    # #12: the job status the coordinator, the operator and the platform read carries run metadata only:
    # no metric, loss, size or path of the bank's; and each node's entries come from that node alone
    public = json.loads(info.result_json)
    assert set(public) <= {"seconds", "bytes", "peak_rss_mb"} and set(public["seconds"]) == {"bank", "platform"}, public
    assert "auc" not in info.result_json and "losses" not in info.result_json and "intersection_size" not in info.result_json
    with OperatorClient(cluster.client_config()) as client:  # the CLI's `job status --json` view, the same
        assert json.loads(client.get(info.job_id).result_json) == public
    _assert_private_outputs(cluster, info.job_id, expect={"intersection.csv", "model.json", "result.json"})
    ref = reference_models(DatasetConfig(path=gp, label_column="y"), DatasetConfig(path=hp), 7, 0.2)
    assert ref["intersection_size"] == len(common)
    joint = result["metrics"]["joint"]["auc"]
    assert abs(joint - ref["centralized"]["auc"]) <= 0.01, (joint, ref)
    # Each party keeps its own model; the intersection it wrote is exactly the common ids.
    for party in ("bank", "platform"):
        out = cluster.workdir / party / "jobs" / info.job_id
        ids = pd.read_csv(out / "intersection.csv", dtype=str)["id"]
        assert set(ids) == common
        model = json.loads((out / "model.json").read_text())
        assert model["role"] == ("guest" if party == "bank" else "host")
    bank_ids = list(pd.read_csv(cluster.workdir / "bank" / "jobs" / info.job_id / "intersection.csv", dtype=str)["id"])
    plat_ids = list(pd.read_csv(cluster.workdir / "platform" / "jobs" / info.job_id / "intersection.csv", dtype=str)["id"])
    assert bank_ids == plat_ids  # the same aligned order on both sides
    bank_model = json.loads((cluster.workdir / "bank" / "jobs" / info.job_id / "model.json").read_text())
    plat_model = json.loads((cluster.workdir / "platform" / "jobs" / info.job_id / "model.json").read_text())
    assert set(bank_model["features"]).isdisjoint({"x10", "x19"}) and "x19" in plat_model["features"]


def test_train_job_with_shared_weights_keeps_them_shared(cluster: Cluster) -> None:
    with OperatorClient(cluster.client_config()) as client:
        owner = client.wait(client.submit(_spec()).job_id, timeout_s=300)
        shared = client.wait(client.submit(_spec(training={"key_bits": 1024, "max_epochs": 5, "reveal_weights": "shared"})).job_id,
                             timeout_s=300)
    assert owner.state == shared.state == "succeeded", (owner.error, shared.error)
    r_owner, r_shared = cluster.party_result("bank", owner.job_id), cluster.party_result("bank", shared.job_id)
    assert r_shared["training"]["topology"] == "two_party" and r_shared["training"]["reveal_weights"] == "shared"
    # the same model, evaluated from shares: the same AUC
    assert abs(r_shared["metrics"]["joint"]["auc"] - r_owner["metrics"]["joint"]["auc"]) < 1e-6
    for party in ("bank", "platform"):
        model = json.loads((cluster.workdir / party / "jobs" / shared.job_id / "model.json").read_text())
        assert "weight_shares" in model and "intercept" not in model
        assert isinstance(model["features"], list)  # names only: no weight in the clear
        assert len(model["weight_shares"]["own"]) == len(model["features"]) + (party == "bank")
    # the bank received joint score shares, never the platform's partial scores
    bank_t = read_transcript(next(p for p in cluster.transcripts(shared.job_id) if ".bank." in p.name))
    steps = {r["body"]["envelope"]["step"] for r in bank_t if r["kind"] == "message" and r["body"]["direction"] == "received"}
    assert "lr2.test_score_shares" in steps and "lr2.host_test_scores" not in steps and "lr2.weight_share" not in steps


def test_psi_job_revealed_to_guest_only(cluster: Cluster, split_files: tuple[Path, Path, set[str]]) -> None:
    _, _, common = split_files
    with OperatorClient(cluster.client_config()) as client:
        info = client.submit(_spec(kind="psi", psi={"reveal": "guest"}))
        info = client.wait(info.job_id, timeout_s=120)
    assert info.state == "succeeded", info.error
    assert cluster.party_result("bank", info.job_id)["psi"]["intersection_size"] == len(common)
    assert "intersection_size" not in cluster.party_result("platform", info.job_id).get("psi", {})  # reveal: guest
    assert set(pd.read_csv(cluster.workdir / "bank" / "jobs" / info.job_id / "intersection.csv", dtype=str)["id"]) == common
    assert not (cluster.workdir / "platform" / "jobs" / info.job_id / "intersection.csv").exists()
    _assert_private_outputs(cluster, info.job_id, expect={"intersection.csv", "result.json"})


def test_a_bad_cell_fails_the_job_without_its_value_or_path_leaving_the_node(cluster: Cluster) -> None:
    """#12: what the coordinator, the operator and the peer read names the column and line, not the value."""
    with OperatorClient(cluster.client_config()) as client:
        info = client.wait(client.submit(_spec(guest={"party": "bank", "dataset": "breast_bad"})).job_id, timeout_s=120)
    assert info.state == "failed"
    assert "column 'x3'" in info.error and "line 8" in info.error, info.error  # header is line 1: row 6 is line 8
    assert "ACME" not in info.error and "91110000X" not in info.error and "guest_bad" not in info.error, info.error
    assert "ACME Ltd 91110000X" not in info.result_json
    log = (cluster.workdir / "logs" / "bank.log").read_text(encoding="utf-8")
    assert "ACME Ltd 91110000X" in log and "guest_bad.csv" in log  # the party's own log keeps the detail
    cluster.check_alive()


def test_failure_is_reported_and_nobody_hangs(cluster: Cluster) -> None:
    with OperatorClient(cluster.client_config()) as client:
        info = client.submit(_spec(host={"party": "platform", "dataset": "no-such-dataset"}))
        info = client.wait(info.job_id, timeout_s=120)
    assert info.state == "rejected"  # the platform's policy check refuses it before touching any data
    assert "no-such-dataset" in info.error and "platform" in info.error
    cluster.check_alive()  # the nodes survive a failed job


def test_cli_submit_wait_status_list(cluster: Cluster, tmp_path: Path) -> None:
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        "kind: psi\nname: cli\npurpose: financing.credit_risk_model\n"
        "guest: {party: bank, dataset: breast}\nhost: {party: platform, dataset: breast}\n", encoding="utf-8"
    )
    cli = [sys.executable, "-m", "fedcredit.runtime.cli"]
    cc = ["--client-config", str(cluster.workdir / "client.yaml")]
    out = subprocess.run([*cli, "job", "submit", str(job_file), "--wait", "--json", *cc], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert job["state"] == "succeeded"
    status = subprocess.run([*cli, "job", "status", job["job_id"], "--json", *cc], capture_output=True, text=True, timeout=60)
    assert json.loads(status.stdout)["job_id"] == job["job_id"]
    listing = subprocess.run([*cli, "job", "list", *cc], capture_output=True, text=True, timeout=60)
    assert job["job_id"] in listing.stdout
    bad = subprocess.run([*cli, "job", "status", "job-nope", *cc], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "NOT_FOUND" in bad.stderr and "Traceback" not in bad.stderr


def test_certificate_from_another_ca_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    rogue = init_certs(tmp_path / "rogue", ["bank"])
    mat = load_tls(cluster.certs / "ca.crt", rogue.node("bank").tls_cert, rogue.node("bank").tls_key)
    channel = create_channel(f"127.0.0.1:{cluster.port}", mat, server_name="coordinator")
    with pytest.raises(grpc.RpcError) as err:
        node_pb2_grpc.NodeServiceStub(channel).Register(node_pb2.RegisterRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()


def _channel(cluster: Cluster, name: str) -> grpc.Channel:
    d = cluster.certs / name
    return create_channel(f"127.0.0.1:{cluster.port}", load_tls(cluster.certs / "ca.crt", d / "tls.crt", d / "tls.key"), server_name="coordinator")


def test_roles_are_enforced(cluster: Cluster) -> None:
    op = _channel(cluster, "operator")
    with pytest.raises(grpc.RpcError) as err:
        node_pb2_grpc.NodeServiceStub(op).Register(node_pb2.RegisterRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    bank = _channel(cluster, "bank")
    with pytest.raises(grpc.RpcError) as err:
        job_pb2_grpc.JobServiceStub(bank).SubmitJob(job_pb2.SubmitJobRequest(spec_json=_spec().canonical_json()), timeout=10)
    assert isinstance(from_rpc_error(err.value), PermissionDeniedError)
    # A party cannot send as another party.
    env = envelope_pb2.Envelope(job_id="x", sender="platform", receiver="bank", step="psi.guest_blinded")
    with pytest.raises(grpc.RpcError) as err:
        relay_pb2_grpc.RelayServiceStub(bank).Send(iter([relay_pb2.SendRequest(envelope=env)]), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as err:
        job_pb2_grpc.JobServiceStub(op).GetJob(job_pb2.GetJobRequest(job_id="job-nope"), timeout=10)
    assert isinstance(from_rpc_error(err.value), NotFoundError)
    op.close()
    bank.close()


@pytest.mark.parametrize("protocol", ["ot", "ecdh"])
def test_demo_psi_cli_selects_the_protocol(protocol: str, split_files: tuple[Path, Path, set[str]], tmp_path: Path) -> None:
    """`fedcredit demo psi --protocol ot|ecdh`: three processes, the named protocol, the exact intersection."""
    gp, hp, common = split_files
    out = tmp_path / "psi.json"
    run = subprocess.run([sys.executable, "-m", "fedcredit.runtime.cli", "demo", "psi", "--left", str(gp), "--right", str(hp),
                          "--id-column", "id", "--protocol", protocol, "--workdir", str(tmp_path / "w"), "--json", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["protocol"] == protocol and r["reveal"] == "both"
    assert r["intersection_size"] == len(common)
    assert set(pd.read_csv(r["intersection_csv"], dtype=str)["id"]) == common
    assert 0 < r["seconds"]["job"] <= r["seconds"]["job_polled"] + 0.5 and r["seconds"]["job"] < r["seconds"]["total"]
    assert set(r["peak_rss_mb"]) == {"bank", "platform"}
    # the transcripts name the protocol's steps: OT's corrections, or ECDH's blinded points
    step = "psi_ot.corrections" if protocol == "ot" else "psi.guest_blinded"
    transcripts = list((tmp_path / "w").rglob("*.bank.jsonl"))
    assert transcripts and step in transcripts[0].read_text(encoding="utf-8")


def test_demo_psi_cli_refuses_an_unknown_protocol(split_files: tuple[Path, Path, set[str]], tmp_path: Path) -> None:
    gp, hp, _ = split_files
    run = subprocess.run([sys.executable, "-m", "fedcredit.runtime.cli", "demo", "psi", "--left", str(gp), "--right", str(hp),
                          "--protocol", "rr22", "--workdir", str(tmp_path / "w")], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "rr22" in (run.stdout + run.stderr) and "choose: auto, ecdh, ot" in (run.stdout + run.stderr)


def test_an_intersection_below_a_nodes_minimum_fails_before_anything_is_written(tmp_path: Path,
                                                                                split_files: tuple[Path, Path, set[str]]) -> None:
    gp, hp, common = split_files
    policy = {"auto_approve": True, "allowed_purposes": ["financing.credit_risk_model"], "min_key_bits": 1024}
    c = Cluster(tmp_path / "cluster", {
        "bank": {"breast": DatasetConfig(path=gp, id_column="id", label_column="y")},
        "platform": {"breast": DatasetConfig(path=hp, id_column="id")},
    }, policies={"bank": {**policy, "min_intersection": 10}, "platform": {**policy, "min_intersection": len(common) + 1}})
    with c:
        with OperatorClient(c.client_config()) as client:
            info = client.wait(client.submit(_spec(kind="psi")).job_id, timeout_s=120)
        assert info.state == "failed" and "minimum" in info.error, info.error
        assert not (c.workdir / "platform" / "jobs" / info.job_id / "intersection.csv").exists()


def test_a_dataset_smaller_than_the_minimum_is_refused_before_any_message(tmp_path: Path,
                                                                          split_files: tuple[Path, Path, set[str]]) -> None:
    """#12: a node whose usable rows cannot reach its min_intersection stops before PSI reveals anything."""
    gp, hp, _ = split_files
    n_host = len(pd.read_csv(hp, dtype=str))
    policy = {"auto_approve": True, "allowed_purposes": ["financing.credit_risk_model"], "min_key_bits": 1024}
    c = Cluster(tmp_path / "cluster", {
        "bank": {"breast": DatasetConfig(path=gp, id_column="id", label_column="y")},
        "platform": {"breast": DatasetConfig(path=hp, id_column="id")},
    }, policies={"bank": {**policy, "min_intersection": 10}, "platform": {**policy, "min_intersection": n_host + 1}})
    with c:
        with OperatorClient(c.client_config()) as client:
            info = client.wait(client.submit(_spec()).job_id, timeout_s=120)
        assert info.state == "failed" and "min_intersection" in info.error, info.error
        assert str(hp) not in info.error and str(n_host) not in info.error.replace(str(n_host + 1), "")
        transcript = next((c.workdir / "platform").rglob(f"{info.job_id}.platform.jsonl")).read_text(encoding="utf-8")
        assert '"psi.' not in transcript and '"psi_ot.' not in transcript  # not one PSI message was sent or received
