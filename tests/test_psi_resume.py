"""A party killed mid-PSI (SIGKILL) and restarted resumes from its checkpoint and yields the same intersection."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pandas as pd
import pytest

from fedcredit.runtime.audit import verify_transcripts
from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config
from fedcredit.runtime.cli.demo import Cluster

pytestmark = pytest.mark.integration
N = 150_000


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, set[str]]:
    d = tmp_path_factory.mktemp("resume")
    r = random.Random(3)
    common = [f"C{i:08d}" for i in range(N // 2)]
    a = common + [f"A{i:08d}" for i in range(N // 2)]
    b = common + [f"B{i:08d}" for i in range(N // 2)]
    r.shuffle(a)
    r.shuffle(b)
    (d / "left.csv").write_text("id\n" + "\n".join(a) + "\n")
    (d / "right.csv").write_text("id\n" + "\n".join(b) + "\n")
    return d / "left.csv", d / "right.csv", set(common)


def test_party_killed_mid_psi_resumes(tmp_path: Path, sets) -> None:
    left, right, common = sets
    cluster = Cluster(tmp_path / "cluster", {"bank": {"ids": DatasetConfig(path=left)}, "platform": {"ids": DatasetConfig(path=right)}},
                      policies={p: {"auto_approve": True, "min_intersection": 0} for p in ("bank", "platform")})
    spec = parse_config(JobSpec, {"kind": "psi", "purpose": "financing.credit_risk_model",
                                  "guest": {"party": "bank", "dataset": "ids"}, "host": {"party": "platform", "dataset": "ids"},
                                  "psi": {"protocol": "ecdh"}},  # ECDH checkpoints per batch; OT jobs do not resume
                        source="resume test")
    with cluster:
        with OperatorClient(cluster.client_config()) as client:
            info = client.submit(spec)
            deadline = time.monotonic() + 120
            while True:  # wait until the platform is well into PSI
                p = json.loads(client.get(info.job_id).progress_json).get("platform", {})
                if p.get("stage") == "psi" and p.get("total") and p["done"] >= 0.3 * p["total"]:
                    break
                assert time.monotonic() < deadline, "PSI did not start"
                time.sleep(0.1)
            ckpt = cluster.workdir / "platform" / "jobs" / info.job_id / "psi.checkpoint.json"
            assert ckpt.exists() and (ckpt.stat().st_mode & 0o777) == 0o600  # secret scalar: owner-only
            cluster.kill("platform")
            assert client.get(info.job_id).state == "running"
            cluster.restart("platform")
            info = client.wait(info.job_id, timeout_s=300)
        assert info.state == "succeeded", info.error
        got = set(pd.read_csv(cluster.workdir / "bank" / "jobs" / info.job_id / "intersection.csv", dtype=str)["id"])
        assert got == common
        plat = set(pd.read_csv(cluster.workdir / "platform" / "jobs" / info.job_id / "intersection.csv", dtype=str)["id"])
        assert plat == common
        assert not ckpt.exists()  # removed once PSI is done
        t = (cluster.workdir / "platform" / "transcripts" / f"{info.job_id}.platform.jsonl").read_text()
        assert '"resumed"' in t and '"resumed_psi"' in t
        result = verify_transcripts(cluster.transcripts(info.job_id), ca_cert_pem=(cluster.certs / "ca.crt").read_bytes())
        assert result.ok, [p.message for p in result.problems]
