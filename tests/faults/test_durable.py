"""The coordinator's durability and liveness in process (#13): what a restart keeps, what the watcher ends, who may
register, and that a retried Send is relayed once. Fast: one coordinator per test on 127.0.0.1:0."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from fedcredit.proto.v1 import node_pb2, node_pb2_grpc
from fedcredit.protocols.core import Role
from fedcredit.protocols.hetero_lr.two_party import TwoPartyStep
from fedcredit.runtime.coordinator.store import Store
from fedcredit.runtime.errors import ConflictError, TransportError, from_rpc_error
from fedcredit.runtime.node.approval import make_approval
from fedcredit.runtime.security.certs import CertLayout
from helpers import channel_for, endpoint, job_spec, residual, running_job, signer, start_coordinator


def _register(coord, layout: CertLayout, name: str, instance: str) -> node_pb2.RegisterResponse:  # type: ignore[no-untyped-def]
    files = layout.node(name)
    stub = node_pb2_grpc.NodeServiceStub(channel_for(coord, layout, name))
    req = node_pb2.RegisterRequest(seal_cert_pem=files.seal_cert.read_bytes(), sign_cert_pem=files.sign_cert.read_bytes(),
                                   instance_id=instance)
    try:
        return stub.Register(req, timeout=10)
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from None


def test_a_restarted_coordinator_keeps_pending_jobs_certificates_and_relayed_messages(tmp_path: Path, layout: CertLayout) -> None:
    coord = start_coordinator(tmp_path, layout)
    for party in ("bank", "platform"):
        _register(coord, layout, party, f"{party}-1")
    pending = coord.jobs.submit(job_spec("psi")).job_id
    coord.jobs.approve(pending, "platform", make_approval(signer(layout, "platform"), pending, coord.jobs.get(pending).spec_sha256, True, "policy"))
    running = running_job(coord, layout)
    endpoint(coord, layout, "platform", running).send(TwoPartyStep.RESIDUAL, Role.GUEST, residual())
    coord.stop(0)

    coord = start_coordinator(tmp_path, layout)  # the same database
    try:
        job = coord.jobs.get(pending)
        assert job.state == "pending" and [a["node"] for a in job.approvals] == ["platform"]
        # the bank's signing certificate came back from the database: its approval is checked and counts
        coord.jobs.approve(pending, "bank", make_approval(signer(layout, "bank"), pending, job.spec_sha256, True, "operator"))
        assert coord.jobs.get(pending).state == "running"
        assert coord.jobs.get(running).state == "running"
        got = endpoint(coord, layout, "bank", running).recv(TwoPartyStep.RESIDUAL, Role.HOST)  # relayed before the restart
        assert got == residual()
        assert [e["kind"] for e in coord.store.events(running)].count("coordinator_restarted") == 1
    finally:
        coord.stop(0)


def test_a_restarted_coordinator_drops_what_it_kept_of_jobs_that_ended(tmp_path: Path, layout: CertLayout) -> None:
    coord = start_coordinator(tmp_path, layout)
    job_id = running_job(coord, layout)
    endpoint(coord, layout, "platform", job_id).send(TwoPartyStep.RESIDUAL, Role.GUEST, residual())
    coord.store.set_state(job_id, "failed", error="ended just before a crash")  # the mailbox not yet told
    coord.stop(0)
    coord = start_coordinator(tmp_path, layout)
    try:
        assert coord.mailbox.jobs() == set() and coord.store.relay_load() == []
    finally:
        coord.stop(0)


def test_a_retried_send_is_relayed_once(tmp_path: Path, layout: CertLayout) -> None:
    coord = start_coordinator(tmp_path, layout)
    try:
        job_id = running_job(coord, layout)
        host = endpoint(coord, layout, "platform", job_id)
        sent = []
        deliver = host._deliver

        def twice(env, data):  # type: ignore[no-untyped-def]
            sent.append(env.message_id)
            deliver(env, data)
            deliver(env, data)  # the first reply was lost: the same message again

        host._deliver = twice  # type: ignore[method-assign]
        host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual())
        assert coord.mailbox.charged(job_id) == (1, len(coord.mailbox._items[next(iter(coord.mailbox._items))][1]))
        assert len(coord.store.relay_load()) == 1
        # the id is idempotent: the same message, sent again by a restarted sender, has the same id
        again = endpoint(coord, layout, "platform", job_id)
        ids = []
        again._deliver = lambda env, data: ids.append(env.message_id)  # type: ignore[method-assign]
        again.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual())
        assert ids == sent
    finally:
        coord.stop(0)


def test_a_party_gone_longer_than_the_grace_fails_its_running_jobs_naming_it(tmp_path: Path, layout: CertLayout) -> None:
    coord = start_coordinator(tmp_path, layout, party_grace_s=30.0)
    try:
        for party in ("bank", "platform"):
            _register(coord, layout, party, f"{party}-1")
        job_id = running_job(coord, layout)
        pending = coord.jobs.submit(job_spec("psi")).job_id
        seen = coord.store.last_seen()
        assert coord.jobs.check_jobs(now=max(seen.values()) + 29_000) == []  # within the grace
        coord.store.touch_node("bank")
        late = coord.store.last_seen()["bank"] + 31_000
        coord.store._db.execute("UPDATE nodes SET last_seen_ms=? WHERE name='bank'", (late,))  # the bank keeps beating
        assert coord.jobs.check_jobs(now=late) == [job_id]
        job = coord.jobs.get(job_id)
        assert job.state == "failed" and "party platform has not been heard from" in job.error and "party_grace_s = 30" in job.error
        assert coord.jobs.get(pending).state == "pending"  # a pending job waits for its parties' decisions
    finally:
        coord.stop(0)


def test_every_job_state_times_out_with_a_reason(tmp_path: Path, layout: CertLayout) -> None:
    coord = start_coordinator(tmp_path, layout, pending_timeout_s=60.0, running_timeout_s=600.0, party_grace_s=1e6)
    try:
        pending = coord.jobs.submit(job_spec("psi")).job_id
        running = running_job(coord, layout)
        t0 = coord.jobs.get(running).created_ms
        assert coord.jobs.check_jobs(now=t0 + 59_000) == []
        assert coord.jobs.check_jobs(now=t0 + 61_000 + 1_000) == [pending]
        assert "pending_timeout_s" in coord.jobs.get(pending).error
        assert coord.jobs.check_jobs(now=t0 + 601_000) == [running]
        assert "running_timeout_s" in coord.jobs.get(running).error
    finally:
        coord.stop(0)


def test_one_live_process_per_party_identity(tmp_path: Path, layout: CertLayout) -> None:
    coord = start_coordinator(tmp_path, layout, heartbeat_s=2.0)
    try:
        assert _register(coord, layout, "bank", "first").heartbeat_ms == 2000
        assert _register(coord, layout, "bank", "first").node == "bank"  # the same process reconnecting
        with pytest.raises(ConflictError, match="party bank is already connected from another live process"):
            _register(coord, layout, "bank", "second")
        stub = node_pb2_grpc.NodeServiceStub(channel_for(coord, layout, "bank"))
        stub.Heartbeat(node_pb2.HeartbeatRequest(instance_id="first"), timeout=10)
        # once the first has missed its heartbeats (3 x heartbeat_s), a new process is let in...
        coord.store._db.execute("UPDATE nodes SET last_seen_ms=last_seen_ms-7000 WHERE name='bank'")
        assert _register(coord, layout, "bank", "second").node == "bank"
        # ...and the old one, back, is told another process holds the identity
        with pytest.raises(grpc.RpcError) as info:
            stub.Heartbeat(node_pb2.HeartbeatRequest(instance_id="first"), timeout=10)
        assert isinstance(from_rpc_error(info.value), ConflictError)
    finally:
        coord.stop(0)


def test_a_closed_store_answers_unavailable_not_a_sqlite_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    store.close()
    store.close()
    with pytest.raises(TransportError, match="shutting down"):
        store.get_job("job-x")
    with pytest.raises(TransportError, match="shutting down"):
        store.touch_node("bank")
