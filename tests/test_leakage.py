"""What each role receives, checked on the signed transcripts of real jobs over mTLS gRPC.

The README's leakage table says what each role learns; these tests hold the
runtime to it. A second run with permuted labels must look identical to the
platform: the same message types, in the same order, with the same sizes.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedcredit.runtime.audit import verify_transcripts
from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config
from fedcredit.runtime.cli.demo import Cluster
from fedcredit.runtime.security.sealing import SEAL_PHASES
from fedcredit.runtime.transcript import read_transcript
from helpers import BREAST_GUEST, BREAST_HOST, read_breast

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[dict]]]:
    d = tmp_path_factory.mktemp("leakage")
    g, _ = read_breast()
    permuted = g.copy()
    permuted["y"] = np.random.default_rng(5).permutation(g["y"].to_numpy())
    assert (permuted["y"] != g["y"]).any()
    permuted.to_csv(d / "guest_permuted.csv", index=False)
    cluster = Cluster(d / "cluster", {
        "bank": {"breast": DatasetConfig(path=BREAST_GUEST, label_column="y"),
                 "breast_permuted": DatasetConfig(path=d / "guest_permuted.csv", label_column="y")},
        "platform": {"breast": DatasetConfig(path=BREAST_HOST)},
    })
    out: dict[str, dict[str, list[dict]]] = {}
    with cluster:
        with OperatorClient(cluster.client_config()) as client:
            for name, dataset in (("true", "breast"), ("permuted", "breast_permuted")):
                spec = parse_config(JobSpec, {
                    "kind": "train", "purpose": "financing.credit_risk_model",
                    "guest": {"party": "bank", "dataset": dataset}, "host": {"party": "platform", "dataset": "breast"},
                    "training": {"key_bits": 1024, "max_epochs": 2, "tol": 0.0}, "seed": 11,
                }, source="leakage test")
                info = client.wait(client.submit(spec).job_id, timeout_s=300)
                assert info.state == "succeeded", info.error
                paths = cluster.transcripts(info.job_id)
                assert len(paths) == 3
                result = verify_transcripts(paths, ca_cert_pem=(cluster.certs / "ca.crt").read_bytes())
                assert result.ok, [p.message for p in result.problems]
                out[name] = {p.name.split(".")[1]: read_transcript(p) for p in paths}
    return out


def _messages(records: list[dict], direction: str) -> list[dict]:
    return [r["body"] for r in records if r["kind"] == "message" and r["body"]["direction"] == direction]


def test_platform_receives_only_ciphertexts_masked_public_and_aggregates(runs) -> None:
    received = _messages(runs["true"]["platform"], "received")
    assert received
    kinds = {m["envelope"]["classification"] for m in received}
    assert kinds <= {"ciphertext", "masked", "public", "aggregate"}, kinds
    for m in received:
        if m["envelope"]["classification"] == "ciphertext":
            assert m["key_owner"] == "guest"  # under the bank's own key: never one the platform (or the coordinator) holds
    # No plaintext and nothing label-derived in the clear: the only aggregates are agreed ones.
    disclosed_keys = {k for m in received if m["disclosed"] for k in m["disclosed"]}
    # (count-first PSI, #12: the intersection size and the bank's verdict on its minimum; OT's setup says whether the
    # bank's minimum calls for it)
    assert disclosed_keys <= {"set_size", "bins", "intersection_size", "meets_minimum", "count_first", "paillier_key_bits",
                              "key_fingerprint", "n_features",
                              "training_rows", "test_rows", "epoch", "mean_training_loss", "stop", "what", "weights",
                              "seal_phase", "ephemeral_x25519"}, disclosed_keys  # the last two: seal.hello's public key
    steps = {m["envelope"]["step"] for m in received}
    assert {"lr2.conversion", "lr2.gradient", "lr2.residual", "lr2.shares", "lr2.loss_reply", "lr2.weight_share"} <= steps


def test_coordinator_holds_no_key_and_sees_only_sealed_envelopes(runs) -> None:
    coord = runs["true"]["coordinator"]
    # Two-party training: the coordinator runs no role, so it is sent nothing it could open...
    assert _messages(coord, "received") == [] and _messages(coord, "sent") == []
    relayed = _messages(coord, "relayed")
    assert len(relayed) > 20
    # ...and everything it passed between the parties was sealed end to end: it saw envelopes only, and the parties'
    # signed ephemeral public keys (seal.hello, one per party and phase: PSI, then training) that the seals' keys come from.
    hellos = [m for m in relayed if m["envelope"]["step"] == "seal.hello"]
    phases = {p: sorted(m["envelope"]["sequence"] for m in hellos if m["envelope"]["sender"] == p) for p in ("bank", "platform")}
    assert phases["bank"] == phases["platform"] and SEAL_PHASES.index("lr2") in phases["bank"] and len(phases["bank"]) >= 2, phases
    assert all(m["envelope"]["classification"] == "public" and m["envelope"]["payload_size"] < 200 for m in hellos)
    assert all(m["envelope"]["sealed"] for m in relayed if m not in hellos)
    assert {m["envelope"]["receiver"] for m in relayed} == {"bank", "platform"}
    assert all(m["disclosed"] is None and m["key_owner"] is None for m in relayed)


def test_bank_receives_plaintext_only_the_declared_scoring_message(runs) -> None:
    received = _messages(runs["true"]["bank"], "received")
    plain = [m for m in received if m["envelope"]["classification"] == "plaintext"]
    assert [m["envelope"]["step"] for m in plain] == ["lr2.host_test_scores"]
    assert "why" in plain[0]["disclosed"]
    for m in received:
        if m["envelope"]["classification"] == "ciphertext":
            assert m["key_owner"] == "host"


def test_permuted_labels_leave_the_platforms_view_unchanged(runs) -> None:
    def view(run: str) -> list[tuple]:
        return [(m["envelope"]["step"], m["envelope"]["sequence"], m["envelope"]["payload_type"], m["envelope"]["payload_size"],
                 m["envelope"]["classification"]) for m in _messages(runs[run]["platform"], "received")]

    a, b = view("true"), view("permuted")
    assert len(a) > 20
    assert a == b


def test_transcripts_record_every_message_on_both_ends(runs) -> None:
    t = runs["true"]
    sent = {(m["envelope"]["step"], m["envelope"]["sequence"], m["envelope"]["receiver"]) for m in _messages(t["platform"], "sent")}
    got = {(m["envelope"]["step"], m["envelope"]["sequence"], m["envelope"]["receiver"])
           for m in _messages(t["bank"], "received") + _messages(t["coordinator"], "received") if m["envelope"]["sender"] == "platform"}
    assert sent == got
    approvals = [r["body"] for r in t["platform"] if r["kind"] == "event" and r["body"]["event"] == "approved"]
    specs = [r["body"] for name in t for r in t[name] if r["kind"] == "event" and r["body"]["event"] == "job_spec"]
    assert len({s["spec_sha256"] for s in specs}) == 1 and approvals[0]["spec_sha256"] == specs[0]["spec_sha256"]
