"""End to end (#14): train, then score applicants through a ``score`` job -- processes over mTLS gRPC."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from fedcredit.protocols.hetero_lr import roc_auc, split_train_test
from fedcredit.protocols.scoring import sigmoid
from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.cli.demo import Cluster
from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config
from fedcredit.runtime.node.model_package import load_package
from fedcredit.runtime.transcript import read_transcript
from helpers import read_breast

pytestmark = pytest.mark.integration
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
    policy = {"auto_approve": True, "min_intersection": 10, "allowed_purposes": ["financing.credit_risk_model"], "min_key_bits": 1024}
    c = Cluster(work, {"bank": {"breast": DatasetConfig(path=gp, id_column="id", label_column="y")},
                       "platform": {"breast": DatasetConfig(path=hp, id_column="id")}},
                policies={"bank": policy, "platform": {**policy, "max_scoring_queries_per_day": DAILY_LIMIT}})
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
