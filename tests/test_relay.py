"""The relay in process: chunked payloads past gRPC's message limit, sealing, sequence and job binding.

Sealing keys are agreed per phase from ephemeral keys (``seal.hello``, federated/security/sealing.py). A party's first
payload of a phase waits for the peer's key, so these single-threaded tests agree the keys first with :func:`_pair`.
"""

from __future__ import annotations

import threading
from pathlib import Path

import gmpy2
import pytest

from fedcredit.runtime.security.certs import CertLayout
from fedcredit.runtime.coordinator.service import Coordinator
from fedcredit.runtime.errors import CryptoError, JobFailedError, ProtocolError, QuotaError
from fedcredit.runtime.driver import RelayEndpoint
from fedcredit.runtime.security.transport import MAX_MESSAGE_BYTES
from helpers import job_spec, residual, running_job, seal_session, sealed_endpoint, serving_coordinator
from fedcredit.protocols.core import Role
from fedcredit.protocols.hetero_lr.protocol import EncryptedVector
from fedcredit.protocols.hetero_lr.two_party import MaskedLoss, TwoPartyStep


@pytest.fixture()
def coordinator(tmp_path: Path, layout: CertLayout):
    with serving_coordinator(tmp_path, layout) as coord:
        yield coord, layout


def _endpoint(coord: Coordinator, layout: CertLayout, me: str, job_id: str, restored: dict | None = None) -> RelayEndpoint:
    """``me``'s endpoint sealing to the other party; ``restored``: the phase keys a checkpoint kept."""
    return sealed_endpoint(coord, layout, me, job_id, seal_session(layout, me, job_id, restored=restored))


def _pair(coord: Coordinator, layout: CertLayout, job_id: str, phase: str = "lr2") -> tuple[RelayEndpoint, RelayEndpoint]:
    """(host, guest) endpoints of ``job_id`` whose sealing keys for ``phase`` are agreed: both send their seal.hello, then both read."""
    host = _endpoint(coord, layout, "platform", job_id)
    guest = _endpoint(coord, layout, "bank", job_id)
    host.offer_sealing("bank", phase)
    guest.offer_sealing("platform", phase)
    host.establish_sealing("bank", phase)
    guest.establish_sealing("platform", phase)
    return host, guest


def test_large_sealed_payload_streams_in_chunks(coordinator) -> None:
    coord, layout = coordinator
    job = running_job(coord, layout)
    host, guest = _pair(coord, layout, job)
    msg = residual(40_000)  # ~20 MB, well past the 8 MiB gRPC message limit
    host.send(TwoPartyStep.RESIDUAL, Role.GUEST, msg)
    assert host.bytes_sent > 2 * MAX_MESSAGE_BYTES
    got = guest.recv(TwoPartyStep.RESIDUAL, Role.HOST)
    assert got == msg
    assert coord.mailbox.pending_bytes() == 0


def test_sequence_numbers_order_messages_and_replays_are_refused(coordinator) -> None:
    coord, layout = coordinator
    job = running_job(coord, layout)
    host, guest = _pair(coord, layout, job)
    first, second = residual(2), residual(3)
    host.send(TwoPartyStep.RESIDUAL, Role.GUEST, first)
    host.send(TwoPartyStep.RESIDUAL, Role.GUEST, second)
    assert guest.recv(TwoPartyStep.RESIDUAL, Role.HOST) == first
    assert guest.recv(TwoPartyStep.RESIDUAL, Role.HOST) == second
    # A second copy of sequence 0 (a fresh endpoint restarts its counters) is never delivered again.
    replay = _endpoint(coord, layout, "platform", job)
    replay.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual(7))
    assert coord.mailbox.take(job, "bank", "platform", TwoPartyStep.RESIDUAL.wire, 2, wait_s=0.5) is None
    # A receiver restarted from a checkpoint (which keeps the phase's derived sealing keys) can fetch what it had
    # already taken: the original, not the copy.
    restarted = _endpoint(coord, layout, "bank", job, restored=guest.sealers["platform"].export("lr2"))
    assert restarted.recv(TwoPartyStep.RESIDUAL, Role.HOST) == first


def test_payload_sealed_for_another_job_is_rejected(coordinator) -> None:
    coord, layout = coordinator
    job_a, job_b = running_job(coord, layout), running_job(coord, layout)
    host_a, _ = _pair(coord, layout, job_a)
    _, guest_b = _pair(coord, layout, job_b)
    host_a.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual(2))
    # Move the stored message into job B, as a malicious relay might.
    env, data = coord.mailbox.take(job_a, "bank", "platform", TwoPartyStep.RESIDUAL.wire, 0, wait_s=5)
    env.job_id = job_b
    coord.mailbox.put(env, data)
    # The sender's signature covers the job id, so the move is caught before the seal is even opened.
    with pytest.raises(CryptoError, match="not signed by platform"):
        guest_b.recv(TwoPartyStep.RESIDUAL, Role.HOST)


def test_relay_cannot_reorder_messages(coordinator) -> None:
    coord, layout = coordinator
    job = running_job(coord, layout)
    host, guest = _pair(coord, layout, job)
    host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual(2))
    host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual(3))
    # A malicious relay swaps the sequence numbers of the two stored messages.
    m0 = coord.mailbox.take(job, "bank", "platform", TwoPartyStep.RESIDUAL.wire, 0, wait_s=5)
    m1 = coord.mailbox.take(job, "bank", "platform", TwoPartyStep.RESIDUAL.wire, 1, wait_s=5)
    m0[0].sequence, m1[0].sequence = 1, 0
    coord.mailbox.put(m1[0], m1[1], redeliver=True)
    coord.mailbox.put(m0[0], m0[1], redeliver=True)
    with pytest.raises(CryptoError):
        guest.recv(TwoPartyStep.RESIDUAL, Role.HOST)


def test_wrong_payload_type_for_step_is_rejected(coordinator) -> None:
    coord, layout = coordinator
    job = running_job(coord, layout)
    host, guest = _pair(coord, layout, job)
    wrong = MaskedLoss(EncryptedVector(b"k" * 32, 0, (gmpy2.mpz(5),)))
    # Bypass the driver's step check to put a mistyped payload on the wire: the relay refuses it (#12) ...
    with pytest.raises(ProtocolError, match="carries"):
        host.send(TwoPartyStep.RESIDUAL, Role.GUEST, wrong)
    with pytest.raises(ProtocolError, match="does not go from"):  # ... and a step in the wrong direction
        guest.send(TwoPartyStep.MASKED_LOSS, Role.HOST, wrong)  # masked_loss goes host -> guest


def test_steps_outside_the_jobs_protocols_and_oversized_payloads_are_refused(coordinator) -> None:
    """#12: the relay carried any step name and payloads up to 1 GiB, held in memory."""
    coord, layout = coordinator
    psi_job = running_job(coord, layout, "psi")
    host, _ = _pair(coord, layout, psi_job)  # seal.hello is part of every job; the phase named in it is the sender's business
    with pytest.raises(ProtocolError, match="not part of"):  # a psi job has no training steps
        host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual(1))
    import fedcredit.runtime.coordinator.service as coordinator_module

    job = running_job(coord, layout)
    host, _ = _pair(coord, layout, job)
    limit = coordinator_module.MAX_PAYLOAD_BYTES
    assert limit <= 64 << 20
    coordinator_module.MAX_PAYLOAD_BYTES = 4096
    try:
        with pytest.raises(QuotaError, match="exceeds the relay's limit"):
            host.send(TwoPartyStep.RESIDUAL, Role.GUEST, residual(20))  # about 10 KiB
    finally:
        coordinator_module.MAX_PAYLOAD_BYTES = limit


def test_receivers_wake_when_a_job_is_cancelled(coordinator) -> None:
    coord, layout = coordinator
    job = running_job(coord, layout)
    guest = _endpoint(coord, layout, "bank", job)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            guest.recv(TwoPartyStep.RESIDUAL, Role.HOST)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    coord.jobs.cancel(job, "test")
    t.join(timeout=30)
    assert not t.is_alive()
    assert errors and isinstance(errors[0], JobFailedError)


def test_a_pending_job_is_offered_until_the_node_acknowledges_it(coordinator) -> None:
    coord, _ = coordinator
    job_id = coord.jobs.submit(job_spec("psi")).job_id
    assert [j.job_id for j in coord.jobs.assignments("platform", 0)] == [job_id]
    # The reply carrying that offer may be lost (a deadline, a dropped connection): without an ack it is offered again...
    assert [j.job_id for j in coord.jobs.assignments("platform", 0)] == [job_id]
    # ...and not once the node acknowledged it on its next poll (an ack of a running role does not count for it)...
    assert [j.job_id for j in coord.jobs.assignments("platform", 0, acks=[job_id])] == [job_id]
    assert coord.jobs.assignments("platform", 0, pending_acks=[job_id]) == []
    assert coord.jobs.assignments("platform", 0) == []
    # ...until a new process of the node registers.
    coord.jobs.node_registered("platform")
    assert [j.job_id for j in coord.jobs.assignments("platform", 0)] == [job_id]


def test_a_role_is_claimed_only_when_the_node_acknowledges_it(coordinator) -> None:
    coord, layout = coordinator
    job_id = running_job(coord, layout)  # approved by both parties: running, roles unclaimed
    assert [j.job_id for j in coord.jobs.assignments("platform", 0)] == [job_id]
    assert all(r.claimed_ms is None for r in coord.jobs.get(job_id).roles)  # shown, not claimed
    # a handler left over from a dropped connection takes nothing
    assert coord.jobs.assignments("platform", 5, alive=lambda: False) == []
    assert [j.job_id for j in coord.jobs.assignments("platform", 0)] == [job_id]  # the lost reply: offered again
    # an ack of the pending offer, arriving after the job started, claims nothing
    assert [j.job_id for j in coord.jobs.assignments("platform", 0, pending_acks=[job_id])] == [job_id]
    assert coord.jobs.assignments("platform", 0, acks=[job_id, "job-unknown"]) == []  # acknowledged: claimed
    host = [r for r in coord.jobs.get(job_id).roles if r.node == "platform"]
    assert host and host[0].claimed_ms is not None
    assert [r.claimed_ms for r in coord.jobs.get(job_id).roles if r.node == "bank"] == [None]  # the other role is not
    assert [j.job_id for j in coord.jobs.assignments("bank", 0)] == [job_id]
