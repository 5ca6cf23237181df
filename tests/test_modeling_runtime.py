"""Modeling options over the real runtime (#14 item 6): a coordinator and two party nodes as processes over mTLS.

k-fold cross-validation runs k trainings through the relay before the final fit; its mean AUC must be close
to a centralized k-fold with the same folds and preprocessing. Class weights and early stopping reach the
protocol from the job file and are reported in the bank's result.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fedcredit.protocols.hetero_lr import Standardizer, kfold_assign, roc_auc
from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.cli.demo import Cluster
from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config
from fedcredit.runtime.transcript import read_transcript
from helpers import BREAST_GUEST, BREAST_HOST, breast_arrays

pytestmark = pytest.mark.integration

SEED = 7


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    c = Cluster(tmp_path_factory.mktemp("cluster"), {
        "bank": {"breast": DatasetConfig(path=Path(BREAST_GUEST), id_column="id", label_column="y")},
        "platform": {"breast": DatasetConfig(path=Path(BREAST_HOST), id_column="id")},
    })
    with c:
        yield c


def _spec(**training: object) -> JobSpec:
    return parse_config(JobSpec, {
        "kind": "train", "name": "modeling", "purpose": "financing.credit_risk_model",
        "guest": {"party": "bank", "dataset": "breast"}, "host": {"party": "platform", "dataset": "breast"},
        "training": {"key_bits": 1024, "max_epochs": 4, **training}, "seed": SEED}, source="test job")


def _run(cluster: Cluster, spec: JobSpec) -> tuple[str, dict]:
    with OperatorClient(cluster.client_config()) as client:
        info = client.wait(client.submit(spec).job_id, timeout_s=600)
    assert info.state == "succeeded", info.error
    public = json.loads(info.result_json)
    assert set(public) <= {"seconds", "bytes", "peak_rss_mb"}  # nothing of the options' results leaves the bank
    return info.job_id, cluster.party_result("bank", info.job_id)


def test_kfold_cross_validation_over_the_runtime_matches_a_centralized_kfold(cluster: Cluster) -> None:
    job_id, result = _run(cluster, _spec(cv_folds=3))
    cv = result["metrics"]["cv"]
    assert cv["folds"] == 3 and [f["fold"] for f in cv["per_fold"]] == [0, 1, 2]
    ids, xg, xh, y = breast_arrays()
    assert sum(f["n_test"] for f in cv["per_fold"]) == len(ids)  # the folds cover the aligned rows once
    # centralized: the same folds (from the ids and the seed), each party's standardizer with clip 3 fitted on
    # the fold's training rows, scikit-learn with the job's L2 (C = 1 / (l2 n_train))
    fold = kfold_assign(list(ids), SEED, 3)
    central = []
    for f in range(3):
        tr, te = fold != f, fold == f
        parts = [Standardizer.fit(x[tr], clip=3.0) for x in (xg, xh)]
        xtr = np.hstack([s.transform(x[tr]) for s, x in zip(parts, (xg, xh))])
        xte = np.hstack([s.transform(x[te]) for s, x in zip(parts, (xg, xh))])
        sk = LogisticRegression(C=1 / (1e-3 * tr.sum()), max_iter=1000).fit(xtr, y[tr])
        central.append(roc_auc(y[te], sk.decision_function(xte)))
        assert cv["per_fold"][f]["n_test"] == int(te.sum())
    assert abs(cv["auc_mean"] - float(np.mean(central))) < 0.01, (cv, central)
    aucs = [f["auc"] for f in cv["per_fold"]]
    assert cv["auc_std"] == pytest.approx(float(np.std(aucs)))
    # the final fit is the job's model, as without cross-validation
    assert "joint" in result["metrics"] and result["training"]["n_test"] == round(len(ids) * 0.2)
    # the folds keep their weights shared: the bank received joint score shares for the folds and the platform's
    # partial scores only once, for the final fit's test rows
    bank_t = read_transcript(next(p for p in cluster.transcripts(job_id) if ".bank." in p.name))
    received = [r["body"]["envelope"]["step"] for r in bank_t if r["kind"] == "message" and r["body"]["direction"] == "received"]
    assert received.count("lr2.test_score_shares") == 3 and received.count("lr2.host_test_scores") == 1


def test_class_weights_and_early_stopping_from_the_job_file(cluster: Cluster) -> None:
    job_id, result = _run(cluster, _spec(class_weight="balanced", validation_fraction=0.25, patience=1, max_epochs=6))
    training, joint = result["training"], result["metrics"]["joint"]
    assert training["class_weight"] == "balanced"
    early = training["early_stopping"]
    assert early["metric"] == "loss" and early["patience"] == 1 and len(early["history"]) == early["stopped_epoch"]
    assert 1 <= early["best_epoch"] <= early["stopped_epoch"] <= 6
    best = int(np.argmin(early["history"])) + 1
    assert early["best_epoch"] == best and joint["best_epoch"] == best and joint["stopped_epoch"] == early["stopped_epoch"]
    n = early["n_validation"] + training["n_train"] + training["n_test"]
    assert n == len(breast_arrays()[0]) and early["n_validation"] == round((n - training["n_test"]) * 0.25)
    for party in ("bank", "platform"):  # both parties keep the best epoch's weights
        model = json.loads((cluster.workdir / party / "jobs" / job_id / "model.json").read_text())
        assert model["best_epoch"] == best
