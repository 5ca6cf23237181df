"""Faults, for real (#13): connections cut between the parties and the coordinator, the coordinator killed with
SIGKILL and started again, a party killed mid-job, a second process with a party's identity.

One cluster serves the module (tests/faults/conftest.py); each test leaves it as it found it: every process up.
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fedcredit.proto.v1 import job_pb2
from fedcredit.runtime.audit import verify_transcripts
from fedcredit.runtime.config import JobSpec, parse_config
from fedcredit.runtime.node.workdir import NodeStore
from fedcredit.runtime.transcript import transcript_name

from .conftest import GRACE_S, PURPOSE, FaultCluster, Flaky, wait_for

pytestmark = pytest.mark.integration


def _spec(kind: str = "psi", **fields: object) -> JobSpec:
    base: dict[str, object] = {"kind": kind, "name": "fault", "purpose": PURPOSE, "guest": {"party": "bank", "dataset": "d"},
                               "host": {"party": "platform", "dataset": "d"}, "seed": 7}
    if kind == "train":
        base["training"] = {"key_bits": 1024, "max_epochs": 50, "tol": 0.0}
    return parse_config(JobSpec, {**base, **fields}, source="fault test")


def _job(cluster: FaultCluster, job_id: str) -> job_pb2.JobInfo:
    with cluster.client() as client:
        return client.get(job_id)


def _approve_as_bank(cluster: FaultCluster, job_id: str, timeout_s: float = 60.0) -> None:
    """The bank's operator approves (the CLI, through the faulty proxy): again until the coordinator has it."""
    cmd = [sys.executable, "-m", "fedcredit.runtime.cli", "job", "approve", job_id, "--config", str(cluster.party_config("bank"))]
    deadline = time.monotonic() + timeout_s
    while True:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if any(a.node == "bank" and a.approved for a in _job(cluster, job_id).approvals):
            return
        assert time.monotonic() < deadline, run.stdout + run.stderr
        time.sleep(0.5)


def _submit(cluster: FaultCluster, spec: JobSpec) -> str:
    with cluster.client() as client:
        job_id: str = client.submit(spec).job_id
    wait_for(lambda: any(a.node == "platform" for a in _job(cluster, job_id).approvals), 60, f"the platform's decision on {job_id}")
    return job_id


def _finished(cluster: FaultCluster, job_id: str, timeout_s: float) -> job_pb2.JobInfo:
    with cluster.client() as client:
        return client.wait(job_id, timeout_s=timeout_s, interval_s=0.2)


def _assert_alive(cluster: FaultCluster, *names: str) -> None:
    for name in names:
        assert cluster.procs[name].poll() is None, f"{name} exited ({cluster.procs[name].returncode}):\n{cluster.log(name)[-3000:]}"


def test_a_clean_psi_job_finds_the_common_ids(cluster: FaultCluster, fault_data: tuple[Path, Path, set[str]]) -> None:
    """The reference every faulty run is held to."""
    job_id = _submit(cluster, _spec())
    _approve_as_bank(cluster, job_id)
    info = _finished(cluster, job_id, 120)
    assert info.state == "succeeded", info.error
    assert sorted(cluster.intersection("bank", job_id)) == sorted(fault_data[2])
    assert cluster.intersection("bank", job_id) == cluster.intersection("platform", job_id)


@pytest.mark.slow  # 20 to 80 s, by the machine's load
def test_connections_cut_during_submit_approve_and_psi_lose_no_job(cluster: FaultCluster, fault_data: tuple[Path, Path, set[str]]) -> None:
    """Every connection between the parties and the coordinator is cut every 0.7 s, and new ones dropped for 0.2 s
    after each cut, while three jobs are offered, decided on, approved and run: each finishes, with exactly the
    common ids."""
    cuts_before = cluster.proxy.cuts
    with Flaky(cluster.proxy, 0.7, refuse_s=0.2):
        with cluster.client() as client:
            jobs = [client.submit(_spec()).job_id for _ in range(3)]
        with ThreadPoolExecutor(len(jobs)) as pool:  # the bank's operator approves them all at once
            list(pool.map(lambda job_id: _approve_as_bank(cluster, job_id), jobs))
        infos = [_finished(cluster, job_id, 150) for job_id in jobs]
    assert cluster.proxy.cuts - cuts_before >= 3
    for info in infos:
        assert info.state == "succeeded", (info.job_id, info.error)
        bank = cluster.intersection("bank", info.job_id)
        assert sorted(bank) == sorted(fault_data[2]) and len(set(bank)) == len(bank)
        assert bank == cluster.intersection("platform", info.job_id)
    _assert_alive(cluster, "coordinator", "bank", "platform")


def test_a_coordinator_killed_while_a_job_awaits_approval_continues_it(cluster: FaultCluster,
                                                                       fault_data: tuple[Path, Path, set[str]]) -> None:
    job_id = _submit(cluster, _spec())  # the platform approved; the bank's operator has not yet
    assert _job(cluster, job_id).state == "pending"
    cluster.kill("coordinator")
    restarted = time.monotonic()
    cluster.start_coordinator()
    info = _job(cluster, job_id)
    assert info.state == "pending" and [a.node for a in info.approvals] == ["platform"], info.error
    _approve_as_bank(cluster, job_id)  # its signing certificate came back from the coordinator's database
    info = _finished(cluster, job_id, 120)
    print(f"\njob approved after a coordinator restart finished {time.monotonic() - restarted:.1f} s after the kill")
    assert info.state == "succeeded", info.error
    assert sorted(cluster.intersection("bank", job_id)) == sorted(fault_data[2])
    _assert_alive(cluster, "bank", "platform")


def test_a_coordinator_killed_during_psi_continues_the_job(cluster: FaultCluster, fault_data: tuple[Path, Path, set[str]]) -> None:
    """kill -9 mid-PSI: the relay's mailbox, the claims and the transcript come back from disk; the job finishes with
    the same intersection and every transcript, the coordinator's continued across its restart, verifies."""
    job_id = _submit(cluster, _spec(psi={"protocol": "ecdh"}))
    _approve_as_bank(cluster, job_id)
    wait_for(lambda: "platform" in _job(cluster, job_id).progress_json, 60, "the platform to start PSI")
    cluster.kill("coordinator")
    cluster.start_coordinator()
    info = _finished(cluster, job_id, 120)
    assert info.state == "succeeded", info.error
    assert sorted(cluster.intersection("bank", job_id)) == sorted(fault_data[2])
    assert cluster.intersection("bank", job_id) == cluster.intersection("platform", job_id)
    transcripts = [cluster.workdir / "transcripts" / transcript_name(job_id, "coordinator")]
    transcripts += [NodeStore(cluster.workdir / p).transcript(job_id, p) for p in ("bank", "platform")]
    result = verify_transcripts(transcripts, ca_cert_pem=(cluster.certs / "ca.crt").read_bytes())
    assert result.ok, [p.message for p in result.problems]
    _assert_alive(cluster, "bank", "platform")


def test_party_daemons_outlive_a_coordinator_restart_and_register_again(cluster: FaultCluster,
                                                                         fault_data: tuple[Path, Path, set[str]]) -> None:
    before = {p: cluster.registrations(p) for p in ("bank", "platform")}
    cluster.kill("coordinator")
    time.sleep(3.0)  # the parties' polls and heartbeats fail meanwhile
    _assert_alive(cluster, "bank", "platform")
    cluster.start_coordinator()
    up = time.monotonic()
    wait_for(lambda: all(cluster.registrations(p) > before[p] for p in before), 60, "both parties to register again")
    print(f"\nparties registered again {time.monotonic() - up:.1f} s after the coordinator restarted")
    job_id = _submit(cluster, _spec())
    _approve_as_bank(cluster, job_id)
    info = _finished(cluster, job_id, 120)
    assert info.state == "succeeded", info.error
    assert sorted(cluster.intersection("bank", job_id)) == sorted(fault_data[2])
    _assert_alive(cluster, "bank", "platform")


def test_a_killed_party_fails_its_job_within_the_grace_naming_it(cluster: FaultCluster) -> None:
    job_id = _submit(cluster, _spec("train"))
    _approve_as_bank(cluster, job_id)
    wait_for(lambda: "platform" in _job(cluster, job_id).progress_json and _job(cluster, job_id).state == "running", 60,
             "the platform to start its role")
    time.sleep(1.0)
    cluster.kill("platform")
    killed = time.monotonic()
    info = _finished(cluster, job_id, GRACE_S + 30)
    noticed = time.monotonic() - killed
    print(f"\nkilled party noticed after {noticed:.1f} s (party_grace_s = {GRACE_S:g})")
    assert info.state == "failed", info.state
    assert "party platform has not been heard from" in info.error, info.error
    assert noticed <= GRACE_S + 5, noticed
    _assert_alive(cluster, "coordinator", "bank")  # the bank's daemon outlives its job's failure
    before = cluster.registrations("platform")
    cluster.start_party("platform")  # a new process: let in once the killed one has missed its heartbeats
    wait_for(lambda: cluster.registrations("platform") > before, 60, "the restarted platform to register")


@pytest.mark.slow  # about 30 s: the second process retries its refusal for 20 s
def test_a_second_process_with_a_partys_identity_is_refused(cluster: FaultCluster) -> None:
    second = cluster.start_party("bank", name="bank-2")
    try:
        code = second.wait(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
    log = cluster.log("bank-2")
    assert code != 0, log
    assert "party bank is already connected from another live process" in log, log[-3000:]
    _assert_alive(cluster, "coordinator", "bank")


def test_the_coordinator_stops_without_a_traceback(cluster: FaultCluster) -> None:
    p = cluster.procs["coordinator"]
    start = len(cluster.log("coordinator"))
    p.terminate()
    assert p.wait(timeout=30) == 0
    tail = cluster.log("coordinator")[start:]
    assert "Traceback" not in tail and "closed database" not in tail, tail
