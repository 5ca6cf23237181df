"""`fedcredit demo` scores the held-out applicants (#14): a private score job and the online RPC, in its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


def test_demo_json_has_the_scoring_section(tmp_path: Path) -> None:
    out = tmp_path / "demo.json"
    run = subprocess.run([sys.executable, "-m", "fedcredit.runtime.cli", "demo", "--guest-data", str(DATA / "breast_hetero_guest.csv"),
                          "--host-data", str(DATA / "breast_hetero_host.csv"), "--key-bits", "1024", "--max-epochs", "1",
                          "--workdir", str(tmp_path / "w"), "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    d = json.loads(out.read_text())
    s = d["scoring"]
    assert s["rows_scored"] == s["held_out_rows"] == d["metrics"]["joint"]["n_test"]
    assert abs(s["auc"] - d["metrics"]["joint"]["auc"]) < 1e-12  # the same model on the same rows
    assert s["online"]["state"] == "succeeded" and s["online"]["max_abs_diff_vs_batch"] < 1e-12 and s["p99_ms"] > 0
    for party, folder in d["artifacts"]["model_package"].items():
        assert (Path(folder) / "spec.json").exists() and (Path(folder) / "part.json").exists(), party
