"""Unbalanced PSI through the runtime: the platform's cache is shipped once, reused, and rebuilt when its set changes."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pandas as pd
import pytest

from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config
from fedcredit.runtime.cli.demo import Cluster

pytestmark = pytest.mark.integration


def _spec(reveal: str = "guest") -> JobSpec:
    return parse_config(JobSpec, {"kind": "psi", "purpose": "financing.credit_risk_model",
                                  "guest": {"party": "bank", "dataset": "applicants"}, "host": {"party": "platform", "dataset": "register"},
                                  "psi": {"unbalanced": True, "reveal": reveal}}, source="unbalanced test")


def test_unbalanced_cache_is_shipped_once_reused_and_invalidated(tmp_path: Path) -> None:
    r = random.Random(5)
    register = [f"91310115{i:010d}" for i in range(40_000)]
    applicants = r.sample(register, 700) + [f"X{i:09d}" for i in range(300)]
    (tmp_path / "register.csv").write_text("id\n" + "\n".join(register) + "\n")
    (tmp_path / "applicants.csv").write_text("id\n" + "\n".join(applicants) + "\n")
    cluster = Cluster(tmp_path / "cluster", {"bank": {"applicants": DatasetConfig(path=tmp_path / "applicants.csv")},
                                              "platform": {"register": DatasetConfig(path=tmp_path / "register.csv")}},
                      policies={p: {"auto_approve": True, "min_intersection": 0} for p in ("bank", "platform")},
                      party_settings={"platform": {"unbalanced": {"key_rotation_days": 30}}})
    expected = set(applicants) & set(register)
    with cluster:
        with OperatorClient(cluster.client_config()) as client:
            def run(reveal: str = "guest") -> tuple[dict, str]:
                info = client.wait(client.submit(_spec(reveal)).job_id, timeout_s=300)
                assert info.state == "succeeded", info.error
                return cluster.job_result(info.job_id, info.result_json), info.job_id

            first, job1 = run()
            assert first["psi"]["intersection_size"] == len(expected) and first["psi"]["cache_received"] is True
            got = set(pd.read_csv(cluster.workdir / "bank" / "jobs" / job1 / "intersection.csv", dtype=str)["id"])
            assert got == expected
            second, _ = run()
            assert second["psi"]["cache_received"] is False and second["psi"]["cache_rebuilt"] == {"platform": False}
            assert second["bytes"]["bank"]["received"] < first["bytes"]["bank"]["received"] / 5  # no cache shipped
            # The platform's set changes: its cache digest changes, it rebuilds, and the bank gets the new cache.
            (tmp_path / "register.csv").write_text("id\n" + "\n".join(register + ["91310115EXTRA00001"]) + "\n")
            third, _ = run()
            assert third["psi"]["cache_rebuilt"] == {"platform": True} and third["psi"]["cache_received"] is True
            card, job4 = run("cardinality")
            assert card["psi"]["intersection_size"] == len(expected)
            assert not (cluster.workdir / "bank" / "jobs" / job4 / "intersection.csv").exists()
            # The key rotates on schedule: the next job finds it too old, draws a new one, rebuilds and re-ships the cache.
            key_file = cluster.workdir / "platform" / "unbalanced" / "register" / "key.json"
            saved = json.loads(key_file.read_text())
            old_key = saved["key"]
            saved["created_unix"] = time.time() - 31 * 86400  # the key is now 31 days old
            key_file.write_text(json.dumps(saved))
            rotated, _ = run()
            assert json.loads(key_file.read_text())["key"] != old_key
            assert rotated["psi"]["cache_rebuilt"] == {"platform": True} and rotated["psi"]["cache_received"] is True
            assert rotated["psi"]["intersection_size"] == len(expected)
    key = cluster.workdir / "platform" / "unbalanced" / "register" / "key.json"
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600
