"""End to end (#15): a ``scorecard`` job and a ``score`` job on its model -- processes over mTLS gRPC.

The job's bins, WOE and IV must be exactly those of a party holding both the features and the labels (the platform's
counts come from the secure protocol); its AUC must match a centralized scorecard on the same WOE columns; the
platform's IV reaches the bank only because the job shares it, the bank's never reaches the platform; and scoring the
model gives exactly the sum of both parties' points on the pooled rows.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from fedcredit.protocols.binning import Scorecard, ScorecardParams, SecureBinningParams, fit_features, own_tables, score, woe_transform
from fedcredit.protocols.hetero_lr import roc_auc, split_train_test
from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.cli.demo import Cluster
from fedcredit.runtime.cli.scoring import ScoringClient, dev_scoring_pki
from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config
from fedcredit.runtime.errors import ConfigError
from fedcredit.runtime.node.model_package import load_package
from fedcredit.runtime.plan import plan_job
from fedcredit.runtime.transcript import read_transcript
from helpers import read_breast

pytestmark = pytest.mark.integration
CLIENT_TLS = None  # the bank's internal PKI for its ScoreApplicant endpoint (made by the fixture)
CARD = {"n_bins": 5, "min_bin_rows": 30, "min_bin_events": 2, "share_iv": True, "iv_threshold": 0.02, "max_correlation": 0.9}


def _spec(kind: str, guest_dataset: str = "breast", **fields: object) -> JobSpec:
    return parse_config(JobSpec, {"kind": kind, "name": "it", "purpose": "financing.credit_risk_model",
                                  "guest": {"party": "bank", "dataset": guest_dataset}, "host": {"party": "platform", "dataset": "breast"},
                                  "seed": 7, **fields}, source="test job")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("data")
    g, h = read_breast()
    h = h.drop(h.index[:30])  # the platform lacks 30 of the bank's ids
    gp, hp, pp = d / "guest.csv", d / "host.csv", d / "guest_permuted.csv"
    g.to_csv(gp, index=False)
    h.to_csv(hp, index=False)
    g.assign(y=np.random.default_rng(5).permutation(g["y"].to_numpy())).to_csv(pp, index=False)
    global CLIENT_TLS
    server_tls, CLIENT_TLS = dev_scoring_pki(tmp_path_factory.mktemp("bank-internal-pki"))
    work = tmp_path_factory.mktemp("cluster")
    policy = {"auto_approve": True, "min_intersection": 10, "allowed_purposes": ["financing.credit_risk_model"], "min_key_bits": 1024,
              "scoring_modes": ["private", "plain"]}
    c = Cluster(work, {"bank": {"breast": DatasetConfig(path=gp, id_column="id", label_column="y"),
                                                             "permuted": DatasetConfig(path=pp, id_column="id", label_column="y")},
                                                    "platform": {"breast": DatasetConfig(path=hp, id_column="id")}},
                policies={"bank": policy, "platform": policy},
                party_settings={"bank": {"scoring_service": {"port_file": str(work / "bank.scoring.port"),
                                                             "tls": json.loads(server_tls.model_dump_json())}}})
    with c:
        with OperatorClient(c.client_config()) as client:
            info = client.wait(client.submit(_spec("scorecard", training={"key_bits": 1024, "max_epochs": 5}, scorecard=CARD)).job_id,
                               timeout_s=300)
        assert info.state == "succeeded", info.error
        yield c, info, g, h


def _pooled(g: pd.DataFrame, h: pd.DataFrame) -> pd.DataFrame:
    """The rows both parties hold, every column (``_g``/``_h`` where both name one), by id."""
    return g.astype({"id": str}).merge(h.astype({"id": str}), on="id", suffixes=("_g", "_h")).set_index("id")


def _model(c: Cluster, party: str, job_id: str) -> dict:
    return json.loads(c.party_store(party).job(job_id).model.read_text(encoding="utf-8"))


def test_spec_and_plan() -> None:
    plan = plan_job(_spec("scorecard", scorecard={"share_iv": True, "pdo": 40, "top_k": 3}))
    assert plan.scorecard is not None and plan.train is not None and plan.guest.needs_labels and not plan.host.needs_labels
    assert plan.scorecard.binning.share_iv and not plan.scorecard.binning.share_bank_iv
    assert plan.scorecard.points.pdo == 40 and plan.scorecard.top_k == 3 and plan.psi.count_first
    assert {"bin.labels", "bin.masked_sums", "lr2.setup"} <= {s.wire for t in plan.steps for s in t}
    assert plan.can_resume("psi") and not plan.can_resume("scorecard") and not plan.can_resume("train")
    with pytest.raises(ConfigError, match="reveal_weights"):
        _spec("scorecard", training={"reveal_weights": "shared"})
    with pytest.raises(ConfigError, match="psi.reveal"):
        _spec("scorecard", psi={"reveal": "guest"})


def test_scorecard_job_equals_the_centralized_scorecard(world) -> None:
    c, info, g, h = world
    bank, plat = _model(c, "bank", info.job_id), _model(c, "platform", info.job_id)
    # the centralized reference: one party with every column and the labels, the job's split and bins
    aligned = list(pd.read_csv(c.party_store("bank").job(info.job_id).folder / "intersection.csv", dtype=str)["id"])
    j = _pooled(g, h).loc[aligned]
    gcols = [c_ for c_ in g.columns if c_ not in ("id", "y")]
    hcols = [c_ for c_ in h.columns if c_ != "id"]
    xg = j[[f"{n}_g" if n in hcols else n for n in gcols]].to_numpy(float)
    xh = j[[f"{n}_h" if n in gcols else n for n in hcols]].to_numpy(float)
    y = j["y"].to_numpy(int)
    train, test = split_train_test(aligned, 7, 0.2)
    params = SecureBinningParams(min_bin_rows=30, min_bin_events=2)
    refs = [{t.name: t for t in own_tables(x[train], y[train], fit_features(x[train], names, "quantile", 5, min_rows=30), params)}
            for x, names in ((xg, gcols), (xh, hcols))]  # both datasets name their columns x0, x1, ...: one dict per party
    # each party's released bins, counts and WOE are the centralized ones (the platform's through the secure counts)
    for model, ref in zip((bank, plat), refs):
        card = Scorecard.from_dict(model["scorecard"])
        for t in card.tables:
            assert (t.bins, t.rows, t.bads) == (ref[t.name].bins, ref[t.name].rows, ref[t.name].bads)
            np.testing.assert_allclose(t.woe, ref[t.name].woe, rtol=0, atol=1e-12)
        assert model["iv"] == pytest.approx({n: ref[n].iv for n in model["iv"]}, abs=1e-12)
        assert set(model["selected"]) <= set(model["iv"]) and model["selected"]
    # IV: the platform's went to the bank (share_iv), the bank's stayed at the bank
    assert bank["peer_iv"] == pytest.approx(plat["iv"]) and plat["peer_iv"] is None
    assert Scorecard.from_dict(plat["scorecard"]).base_points == 0.0 and Scorecard.from_dict(bank["scorecard"]).base_points != 0.0
    # the centralized LR on the same WOE columns: the same test AUC within 0.01
    kg, kh = [refs[0][n] for n in bank["selected"]], [refs[1][n] for n in plat["selected"]]
    wg = woe_transform(kg, xg[:, [gcols.index(t.name) for t in kg]])
    wh = woe_transform(kh, xh[:, [hcols.index(t.name) for t in kh]])
    w = np.hstack([wg, wh])
    central = roc_auc(y[test], LogisticRegression(max_iter=5000).fit(w[train], y[train]).decision_function(w[test]))
    result = c.party_result("bank", info.job_id)
    fed = result["metrics"]["scorecard"]["auc"]
    assert abs(fed - central) <= 0.01, (fed, central)
    assert fed == pytest.approx(result["metrics"]["joint"]["auc"], abs=1e-9)  # points are the LR's log-odds, rescaled
    # the coordinator's view carries run metadata only: no IV, no metric
    public = json.loads(info.result_json)
    assert set(public) <= {"seconds", "bytes", "peak_rss_mb"} and '"iv"' not in info.result_json and "auc" not in info.result_json


def test_transcripts_record_the_binning_steps_and_their_classes(world) -> None:
    c, info, *_ = world
    plat = read_transcript(next(p for p in c.transcripts(info.job_id) if ".platform." in p.name))
    msgs = [r["body"] for r in plat if r["kind"] == "message"]
    got = {(m["direction"], m["envelope"]["step"]) for m in msgs}
    assert {("received", "bin.setup"), ("sent", "bin.layout"), ("received", "bin.labels"), ("sent", "bin.masked_sums"),
            ("received", "bin.reply"), ("sent", "bin.iv")} <= got
    assert ("received", "bin.bank_iv") not in got  # share_bank_iv is off
    labels = [m for m in msgs if m["envelope"]["step"] == "bin.labels"]
    assert labels and all(m["envelope"]["classification"] == "ciphertext" and m["key_owner"] == "guest" for m in labels)


def test_both_parties_keep_their_scorecard_table(world) -> None:
    c, info, *_ = world
    jb, pb = load_package(c.party_store("bank"), info.job_id)
    jp, pp = load_package(c.party_store("platform"), info.job_id)
    assert jb.version == jp.version and jb.link == "scorecard"
    assert pb.scorecard is not None and pp.scorecard is not None and pp.intercept is None
    assert [f["name"] for f in pp.scorecard["features"]] == list(pp.features)
    from typer.testing import CliRunner

    from fedcredit.runtime.cli.main import app

    shown = CliRunner().invoke(app, ["model", "show", info.job_id, "--config", str(c.workdir / "bank.yaml"), "--table"])
    assert shown.exit_code == 0, shown.output
    assert "| bank | (base points) |" in shown.output and f"| bank | {pb.features[0]} |" in shown.output


@pytest.mark.parametrize("mode", ["private", "plain"])
def test_scoring_a_scorecard_gives_the_total_points(world, mode) -> None:
    c, info, g, h = world
    with OperatorClient(c.client_config()) as client:
        sinfo = client.wait(client.submit(_spec("score", scoring={"model": info.job_id, "mode": mode})).job_id, timeout_s=120)
    assert sinfo.state == "succeeded", sinfo.error
    s = c.party_result("bank", sinfo.job_id)["scoring"]
    assert s["rows_scored"] == len(g) - 30 and s["not_found"] == 30
    table = pd.read_csv(s["scores_file"], dtype=str).set_index("id")
    got = table["score"]
    # the centralized scorecard on the pooled rows: both parties' tables applied to each row's own columns
    _, pb = load_package(c.party_store("bank"), info.job_id)
    _, pp = load_package(c.party_store("platform"), info.job_id)
    j = _pooled(g, h)
    gcols, hcols = [n for n in g.columns if n not in ("id", "y")], [n for n in h.columns if n != "id"]
    xg = j[[f"{n}_g" if n in hcols else n for n in pb.features]].to_numpy(float)
    xh = j[[f"{n}_h" if n in gcols else n for n in pp.features]].to_numpy(float)
    want = score([(Scorecard.from_dict(pb.scorecard), xg), (Scorecard.from_dict(pp.scorecard), xh)])
    np.testing.assert_allclose(got.loc[list(j.index)].astype(float).to_numpy(), want, rtol=0, atol=1e-6)
    assert (got.drop(list(j.index)) == "not_found").all()
    # the probability of default the points stand for: sigmoid((offset - points) / factor), 600 points at 50:1
    pd_ = table["probability"].loc[list(j.index)].astype(float).to_numpy()
    np.testing.assert_allclose(pd_, 1 / (1 + np.exp(-(ScorecardParams().offset - want) / ScorecardParams().factor)), rtol=1e-12)
    assert s["auc"] > 0.9  # breast: points rise with safety, the AUC is of their negative


def test_permuted_labels_change_nothing_the_platform_sees_but_its_counts(world) -> None:
    """The platform learns its bins' counts (the intended disclosure) and nothing else of the labels: with every
    feature kept (so the LR's shape does not follow the labels), a run on permuted labels gives it the same messages,
    in the same order, of the same types, sizes and classes; only the values of its counts and IVs differ."""
    c, *_ = world
    keep_all = {**CARD, "iv_threshold": None, "max_correlation": 1.0}
    views = []
    for dataset in ("breast", "permuted"):
        with OperatorClient(c.client_config()) as client:
            info = client.wait(client.submit(_spec("scorecard", dataset, training={"key_bits": 1024, "max_epochs": 2, "tol": 0.0},
                                                   scorecard=keep_all)).job_id, timeout_s=300)
        assert info.state == "succeeded", info.error
        t = read_transcript(next(p for p in c.transcripts(info.job_id) if ".platform." in p.name))
        views.append([(m["envelope"]["step"], m["envelope"]["sequence"], m["envelope"]["payload_type"], m["envelope"]["payload_size"],
                       m["envelope"]["classification"]) for m in (r["body"] for r in t if r["kind"] == "message")
                      if m["direction"] == "received"])
        plat = _model(c, "platform", info.job_id)
        assert plat["peer_iv"] is None and len(plat["selected"]) == len(plat["iv"])
    assert len(views[0]) > 20 and any(v[0] == "bin.reply" for v in views[0])
    assert views[0] == views[1]
    assert {v[4] for v in views[0]} <= {"ciphertext", "masked", "public", "aggregate"}


def test_online_scoring_of_a_scorecard_answers_points(world) -> None:
    import time

    c, info, g, h = world
    batch = [p for p in c.workdir.joinpath("bank", "jobs").glob("*/scores.csv")]
    assert batch, "runs after the batch scoring test"
    table = pd.read_csv(batch[0], dtype=str).set_index("id")
    with OperatorClient(c.client_config()) as client:
        job = client.submit(_spec("score", scoring={"model": info.job_id, "online": True, "session_seconds": 60, "idle_seconds": 2})).job_id
        port_file = c.workdir / "bank.scoring.port"
        deadline = time.monotonic() + 60
        while not port_file.exists():
            assert time.monotonic() < deadline, "the bank's ScoreApplicant did not start"
            time.sleep(0.1)
        rpc = ScoringClient(f"127.0.0.1:{port_file.read_text()}", CLIENT_TLS)
        known = [str(i) for i in h["id"][:10]]
        lost = str(g["id"].iloc[0])  # the platform lacks the bank's first 30 ids
        resp = rpc.score(known + [lost])
        rpc.close()
        assert client.wait(job, timeout_s=60).state == "succeeded"
    got = {s.id: s for s in resp.scores}
    for i in known:
        assert got[i].found and got[i].HasField("points")
        assert abs(got[i].points - float(table.loc[i, "score"])) < 1e-9 and abs(got[i].probability - float(table.loc[i, "probability"])) < 1e-12
    assert not got[lost].found and not got[lost].HasField("points")
