"""`fedcredit demo --scorecard` (#15): a scorecard job after the plain LR, its IV table and metrics in the JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fedcredit.runtime.cli.demo_scorecard import scorecard_spec
from fedcredit.runtime.config import JobSpec, parse_config

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


def test_the_demo_scorecard_job_keeps_the_train_jobs_split_and_columns() -> None:
    spec = parse_config(JobSpec, {"kind": "train", "name": "demo", "purpose": "financing.credit_risk_model",
                                  "guest": {"party": "bank", "dataset": "credit", "columns": ["x0"]},
                                  "host": {"party": "platform", "dataset": "credit", "columns": ["x1", "x2"]},
                                  "evaluation": {"test_fraction": 0.25}, "seed": 5}, source="t")
    card = scorecard_spec(spec, share_iv=False)
    assert card.kind == "scorecard" and not card.scorecard.share_iv and not card.scorecard.share_bank_iv
    assert (card.guest, card.host, card.seed, card.evaluation, card.training) == (spec.guest, spec.host, 5, spec.evaluation, spec.training)


def test_demo_json_has_the_scorecard_sections(tmp_path: Path) -> None:
    out = tmp_path / "demo.json"
    run = subprocess.run([sys.executable, "-m", "fedcredit.runtime.cli", "demo", "--scorecard",
                          "--guest-data", str(DATA / "breast_hetero_guest.csv"), "--host-data", str(DATA / "breast_hetero_host.csv"),
                          "--key-bits", "1024", "--max-epochs", "2", "--workdir", str(tmp_path / "w"), "--json", str(out)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    d = json.loads(out.read_text())
    card, joint = d["metrics"]["scorecard"], d["metrics"]["joint"]
    assert 0.5 < card["auc"] <= 1.0 and 0.0 < card["ks"] <= 1.0 and card["n_test"] == joint["n_test"]
    assert abs(card["auc_gap_vs_centralized"]) <= 0.02, card
    assert d["parties"] == {"guest": "bank", "hosts": ["platform"]}
    # each party's IV, the platform's because the demo's job shares it; every feature of each side, nothing else
    assert set(d["iv"]) == {"bank", "platform"}
    assert set(d["iv"]["bank"]) == {f"x{i}" for i in range(10)} and set(d["iv"]["platform"]) == {f"x{i}" for i in range(20)}
    assert all(v >= 0 for iv in d["iv"].values() for v in iv.values())
    assert d["scorecard"]["audit"]["verified"] and d["scorecard"]["points"] == {"base_score": 600.0, "pdo": 20.0, "base_odds": 50.0}
    assert set(d["scorecard"]["selected"]["bank"]) <= set(d["iv"]["bank"])
    assert "IV per feature" in run.stdout and "scorecard, federated" in run.stdout
