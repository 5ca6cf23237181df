"""#13 item 4 at its edges, for real (SIGKILL, restarted nodes): a party killed between PSI and training, and a party
killed late in an epoch when the relay keeps far less than an epoch of delivered messages.

The relay keeps delivered messages for restarted receivers only within ``relay.retain_bytes`` per job. Training
checkpoints after every batch, so a restarted party asks again for at most one batch's messages: here the
retention is set to about two batches of this job (both directions), a fraction of one epoch, and the party is
killed late in an epoch -- with only epoch checkpoints it would ask for messages the relay has dropped (and get
``MESSAGE_NOT_KEPT``). Both jobs must end with the model and metrics of an uninterrupted run (to 1e-5 / 1e-6, as in
tests/faults/test_resume_training.py, whose helpers this module shares).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import pytest

from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.cli.demo import Cluster
from fedcredit.runtime.config import DatasetConfig
from helpers import BREAST_GUEST, BREAST_HOST

from .test_resume_training import _outputs, _spec, _wait_training, _weights

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RETAIN = 150_000  # bytes of delivered messages the relay keeps per job: about two batches of this job


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    c = Cluster(tmp_path_factory.mktemp("bounds"), {
        "bank": {"breast": DatasetConfig(path=BREAST_GUEST, id_column="id", label_column="y")},
        "platform": {"breast": DatasetConfig(path=BREAST_HOST, id_column="id")},
    }, policies={p: {"auto_approve": True, "min_intersection": 0, "min_key_bits": 1024, "allowed_purposes": ["financing.credit_risk_model"]}
                 for p in ("bank", "platform")}, coordinator_settings={"relay": {"retain_bytes": RETAIN}})
    with c:
        yield c


@pytest.fixture(scope="module")
def uninterrupted(cluster: Cluster) -> dict[str, Any]:
    with OperatorClient(cluster.client_config()) as client:
        info = client.wait(client.submit(_spec()).job_id, timeout_s=300)
    assert info.state == "succeeded", info.error
    out = _outputs(cluster, info.job_id)
    # what the relay delivered in training, per epoch and per batch (both directions), from its transcript
    sizes: dict[str, int] = defaultdict(int)
    for path in cluster.transcripts(info.job_id):
        if path.name.endswith(".coordinator.jsonl"):
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                if entry["kind"] == "message":
                    env = entry["body"]["envelope"]
                    sizes[env["step"]] += int(env["payload_size"])
    epochs = out["bank"]["epochs"]
    lr2 = sum(v for k, v in sizes.items() if k.startswith("lr2."))
    out["epoch_bytes"] = lr2 / epochs
    out["batch_bytes"] = sum(sizes[k] for k in ("lr2.shares", "lr2.conversion", "lr2.residual", "lr2.gradient")) / (epochs * 7)
    return out


def _same_result(uninterrupted: dict[str, Any], got: dict[str, Any]) -> None:
    for party in ("bank", "platform"):
        ref_w, got_w = _weights(uninterrupted[party]), _weights(got[party])
        assert ref_w.keys() == got_w.keys()
        assert max(abs(ref_w[k] - got_w[k]) for k in ref_w) < 1e-5, (party, ref_w, got_w)
        assert got[party]["epochs"] == uninterrupted[party]["epochs"] == 6
        assert max(abs(a - b) for a, b in zip(got[party]["losses"], uninterrupted[party]["losses"])) < 1e-5
    ref_m, got_m = uninterrupted["result"]["metrics"]["joint"], got["result"]["metrics"]["joint"]
    assert abs(ref_m["auc"] - got_m["auc"]) < 1e-6 and abs(ref_m["ks"] - got_m["ks"]) < 1e-6, (ref_m, got_m)


@pytest.mark.parametrize("victim", ["bank"])  # one party each (make test stays under 15 min); both pass
def test_party_killed_between_psi_and_training_resumes_to_the_same_model(cluster: Cluster, uninterrupted: dict[str, Any],
                                                                         victim: str) -> None:
    with OperatorClient(cluster.client_config()) as client:
        info = client.submit(_spec())
        done = cluster.workdir / victim / "jobs" / info.job_id / "psi.done.json"
        deadline = time.monotonic() + 180
        while not done.exists():  # PSI has ended at the victim: it kept the intersection; training starts next
            assert client.get(info.job_id).state in ("pending", "running")
            assert time.monotonic() < deadline, "PSI did not end"
            time.sleep(0.01)
        progress = json.loads(client.get(info.job_id).progress_json or "{}").get(victim, {})
        cluster.kill(victim)
        cluster.restart(victim)
        info = client.wait(info.job_id, timeout_s=300)
    assert info.state == "succeeded", info.error
    assert progress.get("stage") != "train" or progress.get("done", 0) == 0, progress  # killed before a batch ended
    _same_result(uninterrupted, _outputs(cluster, info.job_id))
    t = (cluster.workdir / victim / "transcripts" / f"{info.job_id}.{victim}.jsonl").read_text()
    assert "resumed" in t  # it did not start the job over: it resumed after its PSI


def _wait_late_in_an_epoch(client: OperatorClient, job_id: str, party: str, fraction: float, per_epoch: int = 7
                           ) -> dict[str, Any]:
    """The party's first progress report past ``fraction`` of training that is also in its epoch's last three batches
    (progress is rate-limited, so the first report past ``fraction`` may land anywhere in an epoch)."""
    deadline = time.monotonic() + 180
    while True:
        p = _wait_training(client, job_id, party, fraction)
        if p["done"] % per_epoch >= per_epoch - 3:
            return p
        assert time.monotonic() < deadline, f"no progress report late in an epoch: {p}"
        time.sleep(0.02)


@pytest.mark.parametrize("victim", ["platform"])  # the host: its checkpoint holds the encrypted loss accumulator
def test_party_killed_late_in_an_epoch_resumes_within_a_small_relay_retention(cluster: Cluster, uninterrupted: dict[str, Any],
                                                                              victim: str, record_property: Any) -> None:
    # the setting means something: a resume from the epoch's start would need messages the relay has dropped
    assert uninterrupted["batch_bytes"] < RETAIN / 1.5 and 5 * uninterrupted["batch_bytes"] > RETAIN
    record_property("bytes_per_epoch", uninterrupted["epoch_bytes"])
    record_property("bytes_per_batch", uninterrupted["batch_bytes"])
    with OperatorClient(cluster.client_config()) as client:
        info = client.submit(_spec())
        at = _wait_late_in_an_epoch(client, info.job_id, victim, 0.45)  # 42 batches of 7: epoch 3 or later
        cluster.kill(victim)
        time.sleep(1.0)  # the peer goes on as far as it can: the relay delivers (and drops) what it can meanwhile
        cluster.restart(victim)
        info = client.wait(info.job_id, timeout_s=300)
    assert info.state == "succeeded", info.error
    record_property("killed_at", f'{at["done"]}/{at["total"]}')
    assert at["done"] % 7 >= 4, at  # late in its epoch
    _same_result(uninterrupted, _outputs(cluster, info.job_id))
    t = (cluster.workdir / victim / "transcripts" / f"{info.job_id}.{victim}.jsonl").read_text()
    assert '"resumed_training"' in t
