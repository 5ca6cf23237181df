"""#13 item 4, for real: a party node killed (SIGKILL) during OT-extension PSI and restarted runs its role again
from its checkpointed seed, and the job ends with the intersection of an uninterrupted run (and no checkpoint)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pandas as pd
import pytest

from fedcredit.runtime.audit import verify_transcripts
from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.cli.demo import Cluster
from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]
N = 1 << 18


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, set[str]]:
    d = tmp_path_factory.mktemp("ot-resume")
    r = random.Random(5)
    common = [f"C{i:08d}" for i in range(N // 2)]
    a = common + [f"A{i:08d}" for i in range(N // 2)]
    b = common + [f"B{i:08d}" for i in range(N // 2)]
    r.shuffle(a)
    r.shuffle(b)
    (d / "left.csv").write_text("id\n" + "\n".join(a) + "\n")
    (d / "right.csv").write_text("id\n" + "\n".join(b) + "\n")
    return d / "left.csv", d / "right.csv", set(common)


def test_party_killed_mid_ot_psi_resumes(tmp_path: Path, sets: tuple[Path, Path, set[str]]) -> None:
    left, right, common = sets
    cluster = Cluster(tmp_path / "cluster", {"bank": {"ids": DatasetConfig(path=left)}, "platform": {"ids": DatasetConfig(path=right)}},
                      policies={p: {"auto_approve": True, "min_intersection": 0} for p in ("bank", "platform")})
    spec = parse_config(JobSpec, {"kind": "psi", "purpose": "financing.credit_risk_model",
                                  "guest": {"party": "bank", "dataset": "ids"}, "host": {"party": "platform", "dataset": "ids"},
                                  "psi": {"protocol": "ot", "reveal": "both"}}, source="OT resume test")
    with cluster:
        with OperatorClient(cluster.client_config()) as client:
            info = client.submit(spec)
            ckpt = cluster.workdir / "platform" / "jobs" / info.job_id / "psi.checkpoint.json"
            deadline = time.monotonic() + 120
            while True:  # the platform is in the OT exchange, its seed on disk
                p = json.loads(client.get(info.job_id).progress_json or "{}").get("platform", {})
                if p.get("stage") == "psi_ot" and ckpt.exists():
                    break
                assert time.monotonic() < deadline, "OT PSI did not start"
                time.sleep(0.02)
            assert ckpt.stat().st_mode & 0o777 == 0o600  # the secret seed: owner-only
            cluster.kill("platform")
            assert client.get(info.job_id).state == "running"
            cluster.restart("platform")
            info = client.wait(info.job_id, timeout_s=300)
        assert info.state == "succeeded", info.error
        for party in ("bank", "platform"):
            folder = cluster.workdir / party / "jobs" / info.job_id
            assert set(pd.read_csv(folder / "intersection.csv", dtype=str)["id"]) == common
            assert not [n for n in ("psi.checkpoint.json", "outbox.bin") if (folder / n).exists()]
        t = (cluster.workdir / "platform" / "transcripts" / f"{info.job_id}.platform.jsonl").read_text()
        assert '"resumed_psi"' in t
        result = verify_transcripts(cluster.transcripts(info.job_id), ca_cert_pem=(cluster.certs / "ca.crt").read_bytes())
        assert result.ok, [p.message for p in result.problems]
