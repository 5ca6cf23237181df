"""End to end (#14): train, then score applicants through a ``score`` job -- processes over mTLS gRPC."""

from __future__ import annotations


import json

import numpy as np
import pandas as pd
import pytest

from fedcredit.protocols.hetero_lr import roc_auc, split_train_test
from fedcredit.protocols.scoring import sigmoid
from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.cli.demo import Cluster
from fedcredit.runtime.cli.scoring import ScoringClient, dev_scoring_pki
from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config
from fedcredit.runtime.node.model_package import load_package
from fedcredit.runtime.transcript import read_transcript
from helpers import read_breast

pytestmark = pytest.mark.integration
SERVER_TLS = CLIENT_TLS = None  # the bank's internal PKI for its ScoreApplicant endpoint (made by the fixture)
DAILY_LIMIT = 5 * 569 + 100  # the platform's rate limit: the five score jobs below fit, a sixth does not


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("data")
    g, h = read_breast()
    h = h.drop(h.index[:30])  # the platform lacks 30 of the bank's ids
    gp, hp = d / "guest.csv", d / "host.csv"
    g.to_csv(gp, index=False)
    h.to_csv(hp, index=False)
    work = tmp_path_factory.mktemp("cluster")
    global SERVER_TLS, CLIENT_TLS
    SERVER_TLS, CLIENT_TLS = dev_scoring_pki(tmp_path_factory.mktemp("bank-internal-pki"))
    policy = {"auto_approve": True, "min_intersection": 10, "allowed_purposes": ["financing.credit_risk_model"], "min_key_bits": 1024,
              "scoring_modes": ["private", "plain"]}
    c = Cluster(work, {"bank": {"breast": DatasetConfig(path=gp, id_column="id", label_column="y")},
                       "platform": {"breast": DatasetConfig(path=hp, id_column="id")}},
                policies={"bank": policy, "platform": {**policy, "max_scoring_queries_per_day": DAILY_LIMIT}},
                party_settings={"bank": {"scoring_service": {"port_file": str(work / "bank.scoring.port"),
                                                             "tls": json.loads(SERVER_TLS.model_dump_json())}}})
    with c:
        with OperatorClient(c.client_config()) as client:
            info = client.wait(client.submit(_spec("train", training={"key_bits": 1024, "max_epochs": 3})).job_id, timeout_s=300)
        assert info.state == "succeeded", info.error
        yield c, info.job_id, g, h, d


def _spec(kind: str, guest_dataset: str = "breast", **fields: object) -> JobSpec:
    return parse_config(JobSpec, {"kind": kind, "name": "it", "purpose": "financing.credit_risk_model",
                                  "guest": {"party": "bank", "dataset": guest_dataset}, "host": {"party": "platform", "dataset": "breast"},
                                  "seed": 7, **fields}, source="test job")


def _score(c: Cluster, model: str, **scoring: object) -> tuple[object, dict]:
    with OperatorClient(c.client_config()) as client:
        info = client.wait(client.submit(_spec("score", scoring={"model": model, **scoring})).job_id, timeout_s=120)
    return info, c.party_result("bank", info.job_id)


def test_both_parties_keep_a_package_of_one_version(world):
    c, model, *_ = world
    jb, pb = load_package(c.party_store("bank"), model)
    jp, pp = load_package(c.party_store("platform"), model)
    assert jb.version == jp.version and (pb.role, pp.role) == ("guest", "host")


@pytest.mark.parametrize("mode", ["private", "plain"])
def test_score_job_matches_the_central_model_and_reports_not_found(world, mode):
    c, model, g, h, _ = world
    info, result = _score(c, model, mode=mode)
    assert info.state == "succeeded", info.error
    s = result["scoring"]
    assert s["mode"] == mode and s["queries"] == len(g) and s["rows_scored"] == len(g) - 30 and s["not_found"] == 30
    scores = pd.read_csv(s["scores_file"], dtype=str).set_index("id")["probability"]
    _, pb = load_package(c.party_store("bank"), model)
    _, pp = load_package(c.party_store("platform"), model)
    both = sorted(set(g["id"].astype(str)) & set(h["id"].astype(str)))  # the pooled rows: each party's own columns
    gi, hi = g.assign(id=g["id"].astype(str)).set_index("id").loc[both], h.assign(id=h["id"].astype(str)).set_index("id").loc[both]
    central = pb.partial(gi[list(pb.features)].to_numpy(float)) + pp.partial(hi[list(pp.features)].to_numpy(float))
    got = scores.loc[both].astype(float).to_numpy()
    assert np.max(np.abs(got - [sigmoid(v) for v in central])) < 1e-6
    missing = set(g["id"].astype(str)) - set(h["id"].astype(str))
    assert (scores.loc[sorted(missing)] == "not_found").all()
    # the platform's transcript records the query count; its result holds nothing of the bank's
    plat = c.party_result("platform", info.job_id)["scoring"]
    assert plat["queries"] == len(g) and "rows_scored" not in plat
    events = [r["body"] for p in c.transcripts(info.job_id) if "platform" in p.name for r in read_transcript(p) if r.get("kind") == "event"]
    (ev,) = [e for e in events if e.get("event") == "scoring"]
    assert ev["queries"] == len(g) and ev["mode"] == mode and "found" not in ev


def test_scoring_auc_equals_the_training_evaluation_on_the_test_rows(world):
    c, model, g, h, d = world
    aligned = list(pd.read_csv(c.party_store("bank").job(model).intersection, dtype=str)["id"])
    _, test = split_train_test(aligned, 7, 0.2)
    rows = g[g["id"].astype(str).isin({aligned[i] for i in test})]
    trained_auc = c.party_result("bank", model)["metrics"]["joint"]["auc"]
    assert trained_auc > 0.9
    info, result = _score(c, model)  # every applicant; the training's test rows among them
    s = result["scoring"]
    scores = pd.read_csv(s["scores_file"], dtype=str).set_index("id")["probability"]
    p = scores.loc[rows["id"].astype(str)].astype(float).to_numpy()
    assert abs(roc_auc(rows["y"].to_numpy(), p) - trained_auc) < 1e-9


def test_a_second_job_reuses_the_table_and_its_transcripts_verify(world):
    from fedcredit.runtime.audit.verify import verify_transcripts

    c, model, *_ = world
    _, first = _score(c, model)
    info, second = _score(c, model)
    assert info.state == "succeeded" and second["scoring"]["table_transferred"] is False
    res = verify_transcripts(c.transcripts(info.job_id), ca_cert_pem=(c.certs / "ca.crt").read_bytes())
    assert res.ok, [p.message for p in res.problems]


def test_an_unknown_model_fails_cleanly(world):
    c, *_ = world
    info, _ = _score(c, "no-such-model")
    assert info.state == "failed" and "no model" in info.error


def test_the_platforms_daily_limit_refuses_one_job_too_many(world):
    c, model, g, *_ = world  # runs last: the jobs above used 5 * 569 of the day's limit
    info, _ = _score(c, model)
    assert info.state == "failed" and "cap of 100" in info.error
    info, _ = _score(c, model, max_queries=10)
    assert info.state == "failed" and "cap of 10 " in info.error


def test_online_scoring_equals_the_batch_scores(world):
    """Runs after the daily limit test: 100 queries remain today, the session uses fewer."""
    import threading
    import time

    from fedcredit.runtime.errors import NotFoundError, PermissionDeniedError

    c, model, g, h, _ = world
    with OperatorClient(c.client_config()) as client:
        job = client.submit(_spec("score", scoring={"model": model, "online": True, "session_seconds": 120, "idle_seconds": 3})).job_id
        port_file = c.workdir / "bank.scoring.port"
        deadline = time.monotonic() + 60
        while not port_file.exists():
            assert time.monotonic() < deadline, "the bank's ScoreApplicant did not start"
            time.sleep(0.1)
        sc = ScoringClient(f"127.0.0.1:{port_file.read_text()}", CLIENT_TLS)
        known = [str(i) for i in h["id"][:20]]
        unknown_at_platform = sorted(set(g["id"].astype(str)) - set(h["id"].astype(str)))[:3]
        one = sc.score(known[:1])
        assert one.model_id == model and one.scores[0].found
        many = sc.score(known + unknown_at_platform)
        got = {s.id: (s.found, s.probability) for s in many.scores}
        results: list = []
        threads = [threading.Thread(target=lambda i=i: results.append(sc.score([i]).scores[0])) for i in known[:8]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with pytest.raises(NotFoundError):
            sc.score(["not-a-bank-applicant"])
        sc.close()
        # a certificate of the same CA whose name is not in allowed_clients is refused
        pki = CLIENT_TLS.ca.parent
        other = ScoringClient(f"127.0.0.1:{port_file.read_text()}", type(CLIENT_TLS)(ca=CLIENT_TLS.ca, cert=pki / "unused" / "tls.crt",
                                                                                    key=pki / "unused" / "tls.key"))
        with pytest.raises(PermissionDeniedError):
            other.score(known[:1])
        other.close()
        # `fedcredit score` for people
        from typer.testing import CliRunner

        from fedcredit.runtime.cli.main import app

        cli = CliRunner().invoke(app, ["score", known[0], "--address", f"127.0.0.1:{port_file.read_text()}", "--ca", str(CLIENT_TLS.ca),
                                       "--cert", str(CLIENT_TLS.cert), "--key", str(CLIENT_TLS.key), "--json"])
        assert cli.exit_code == 0, cli.output
        assert json.loads(cli.output)["scores"][0]["id"] == known[0]
        info = client.wait(job, timeout_s=60)  # three idle seconds end the session
    assert info.state == "succeeded", info.error
    # the online scores are the batch job's scores
    prev = [r for r in c.workdir.joinpath("bank", "jobs").glob("*/scores.csv")]
    table = pd.read_csv(prev[0], dtype=str).set_index("id")["probability"]
    for i in known:
        assert got[i][0] and abs(got[i][1] - float(table[i])) < 1e-9
    assert all(not got[i][0] for i in unknown_at_platform)
    assert len(results) == 8 and all(abs(r.probability - float(table[r.id])) < 1e-9 for r in results)
    s = c.party_result("platform", info.job_id)["scoring"]
    assert s["mode"] == "online" and s["queries"] == 1 + 23 + 8 + 1
    assert abs(json.loads(cli.output)["scores"][0]["probability"] - float(table[known[0]])) < 1e-9
