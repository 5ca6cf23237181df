"""#13 item 4: a job's checkpoints are 0600 and gone when the job ends, whether it succeeds or fails; a node that
was down when its job ended deletes them when it starts. (The real-process runs are in tests/faults/.)"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from fedcredit.proto.v1 import envelope_pb2, job_pb2
from fedcredit.runtime.errors import NotFoundError, TransportError
from fedcredit.runtime.node.party import PartyNode
from fedcredit.runtime.node.results import JobResult, PsiOutcome, Traffic
from fedcredit.runtime.node.workdir import NodeStore
from fedcredit.runtime.plan import plan_job
from fedcredit.runtime.config import JobSpec, parse_config

SECRET = {"secret": {"scalar": "ab" * 32}}


def _node(tmp_path: Path) -> tuple[PartyNode, list[tuple[str, bool, bool]]]:
    """A PartyNode without certificates or a coordinator: its store, and a record of what it reports."""
    node = PartyNode.__new__(PartyNode)
    node.store = NodeStore(tmp_path / "work")
    reports: list[tuple[str, bool, bool]] = []

    def report(job_id: str, ok: bool, result: Any, error: str, code: str) -> None:
        # (job, ok, whether a checkpoint still exists when the coordinator hears the job ended here)
        reports.append((job_id, ok, node.store.job(job_id).has_any_checkpoint()))

    node._report = report  # type: ignore[method-assign]
    node.cfg = type("Cfg", (), {"name": "platform"})()  # type: ignore[assignment]
    node._stop = threading.Event()
    return node, reports


def _write_all(node: PartyNode, job_id: str) -> list[Path]:
    files = node.store.job(job_id)
    files.save_checkpoint(SECRET)
    files.save_psi_done({"rows": [1, 2], "aligned": ["a", "b"], "outcome": {}})
    files.save_train_checkpoint(SECRET)
    files.save_outbox(_envelope(job_id), b"wire")
    return list(files.checkpoints)


def _envelope(job_id: str) -> envelope_pb2.Envelope:
    return envelope_pb2.Envelope(job_id=job_id, step="lr2.shares", sequence=3, payload_size=4, payload_sha256=hashlib.sha256(b"wire").digest())


def test_checkpoints_are_owner_only(tmp_path: Path) -> None:
    node, _ = _node(tmp_path)
    paths = _write_all(node, "j1")
    assert all(p.exists() and p.stat().st_mode & 0o777 == 0o600 for p in paths), [oct(p.stat().st_mode) for p in paths]
    assert paths[0].parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("fails", [False, True])
def test_checkpoints_are_deleted_when_the_job_ends(tmp_path: Path, fails: bool) -> None:
    node, reports = _node(tmp_path)
    info = job_pb2.JobInfo(job_id="j1")
    seen: list[bool] = []

    def run(_info: Any) -> JobResult:
        paths = _write_all(node, "j1")
        seen.append(all(p.exists() for p in paths))
        if fails:
            raise TransportError("the peer went away")  # any failure, after the checkpoints were written
        return JobResult("platform", PsiOutcome(protocol="ecdh"), Traffic(sent=0, received=0))

    node._run_job = run  # type: ignore[method-assign]
    node.run_job(info)
    assert seen == [True]
    assert not node.store.job("j1").has_any_checkpoint()
    assert reports == [("j1", not fails, False)]  # gone before the report: a test (or operator) polling the job sees none
    assert node.store.job("j1").result.exists() is (not fails)


def test_checkpoints_are_deleted_even_when_reporting_fails(tmp_path: Path) -> None:
    node, _ = _node(tmp_path)

    def run(_info: Any) -> JobResult:
        _write_all(node, "j1")
        raise RuntimeError("boom")

    def report(*a: Any) -> None:
        raise RuntimeError("the coordinator is gone")

    node._run_job = run  # type: ignore[method-assign]
    node._report = report  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        node.run_job(job_pb2.JobInfo(job_id="j1"))
    assert not node.store.job("j1").has_any_checkpoint()


class _Jobs:
    """The coordinator's GetJob, as a restarted node sees it."""

    def __init__(self, states: dict[str, Any]) -> None:
        self.states = states

    def GetJob(self, request: job_pb2.GetJobRequest, timeout: float) -> job_pb2.GetJobResponse:
        state = self.states[request.job_id]
        if isinstance(state, Exception):
            raise state
        return job_pb2.GetJobResponse(job=job_pb2.JobInfo(job_id=request.job_id, state=state))


def test_outbox_round_trip(tmp_path: Path) -> None:
    files = NodeStore(tmp_path).job("j")
    assert files.load_outbox() is None
    files.save_outbox(_envelope("j"), b"wire")
    env, data = files.load_outbox() or (None, b"")
    assert env is not None and (env.step, env.sequence, data) == ("lr2.shares", 3, b"wire")
    assert files.outbox.stat().st_mode & 0o777 == 0o600
    files.outbox.write_bytes(files.outbox.read_bytes()[:-1])  # cut short: not handed to the relay
    assert files.load_outbox() is None
    files.outbox.write_bytes(files.outbox.read_bytes()[:-1] + b"ee")  # the right length, not the bytes signed for
    assert files.load_outbox() is None


def test_a_restarted_node_deletes_the_checkpoints_of_ended_jobs(tmp_path: Path) -> None:
    node, _ = _node(tmp_path)
    states = {"failed": "failed", "cancelled": "cancelled", "done": "succeeded", "running": "running",
              "gone": NotFoundError("no job gone"), "unreachable": TransportError("coordinator unavailable")}
    for job_id in states:
        _write_all(node, job_id)
    node.jobs = _Jobs(states)  # type: ignore[assignment]
    dropped = node.sweep_checkpoints()
    assert sorted(dropped) == ["cancelled", "done", "failed", "gone"]
    left = {j for j in states if node.store.job(j).has_any_checkpoint()}
    assert left == {"running", "unreachable"}  # one resumes when offered again; the other is looked at next start
    assert node.store.jobs_with_checkpoints() == ["running", "unreachable"]


def _train_spec(**psi: Any) -> JobSpec:
    return parse_config(JobSpec, {"kind": "train", "purpose": "financing.credit_risk_model", "guest": {"party": "bank", "dataset": "d"},
                                  "host": {"party": "platform", "dataset": "d"}, "psi": psi,
                                  "training": {"key_bits": 1024, "max_epochs": 2}}, source="test")


def test_psi_and_training_are_resumable() -> None:
    for psi in ({"protocol": "ot"}, {"protocol": "ecdh"}):
        plan = plan_job(_train_spec(**psi))
        assert plan.can_resume("train")
    assert plan_job(_train_spec(protocol="ot")).can_resume("psi_ot")  # OT runs again from its seed
    assert plan_job(_train_spec(protocol="ecdh")).can_resume("psi")
    assert not plan_job(_train_spec(protocol="ot")).can_resume("score")  # no other stage keeps a checkpoint
    psi_only = parse_config(JobSpec, {"kind": "psi", "purpose": "financing.credit_risk_model", "guest": {"party": "bank", "dataset": "d"},
                                      "host": {"party": "platform", "dataset": "d"}, "psi": {"protocol": "ot"}}, source="test")
    assert not plan_job(psi_only).can_resume("train")


class _Endpoint:
    def __init__(self) -> None:
        self.already_sent: set[tuple[str, str, int]] = set()
        self.already_received: set[tuple[str, str, int]] = set()
        self.redelivered: list[tuple[Any, bytes]] = []

    def restore_counters(self, steps: Any, sent: Any, recv_from: Any) -> None:
        pass

    def redeliver(self, env: Any, data: bytes) -> None:
        self.redelivered.append((env, data))


def _transcript(tmp_path: Path, sent: list[tuple[str, int]]) -> Any:
    path = tmp_path / "t.jsonl"
    lines = [{"kind": "message", "body": {"direction": "received", "envelope": {"step": "lr2.shares", "sender": "bank", "sequence": 2}}}]
    lines += [{"kind": "message", "body": {"direction": "sent", "envelope": {"step": s, "receiver": "bank", "sequence": n}}} for s, n in sent]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return type("T", (), {"path": path, "job_id": "j"})()


@pytest.mark.parametrize("outbox,handed", [(("lr2.shares", 3), True), (("lr2.shares", 2), False), (None, False)])
def test_a_restarted_node_hands_the_relay_its_last_message_again(tmp_path: Path, outbox: Any, handed: bool) -> None:
    """A send is recorded before it leaves: a node killed while sending it must hand it over again, as it was
    (only the last one recorded can be in flight; an outbox of an older message is not handed over)."""
    from fedcredit.runtime.node.psi_runner import restore_endpoint

    files = NodeStore(tmp_path).job("j")
    if outbox is not None:
        env = _envelope("j")
        env.step, env.sequence, env.receiver = outbox[0], outbox[1], "bank"
        files.save_outbox(env, b"wire")
    endpoint = _Endpoint()
    run = type("Run", (), {"endpoint": endpoint})()
    restore_endpoint(run, None, {}, {}, _transcript(tmp_path, [("lr2.shares", 2), ("lr2.shares", 3)]), files)
    assert endpoint.already_sent == {("lr2.shares", "bank", 2), ("lr2.shares", "bank", 3)}
    assert endpoint.already_received == {("lr2.shares", "bank", 2)}
    assert [(e.step, e.sequence, d) for e, d in endpoint.redelivered] == ([("lr2.shares", 3, b"wire")] if handed else [])
