"""The relay in process: chunked payloads past gRPC's message limit, sealing, sequence and job binding.

Sealing keys are agreed per phase from ephemeral keys (``seal.hello``, federated/sealing.py). A party's first
payload of a phase waits for the peer's key, so these single-threaded tests agree the keys first with :func:`_pair`.
"""

from __future__ import annotations

import threading
from pathlib import Path

import gmpy2
import pytest

from federated.certs import init_certs, load_tls
from federated.config import CoordinatorConfig, JobSpec, SignConfig, TlsConfig, parse_config
from federated.coordinator import Coordinator
from federated.errors import CryptoError, JobFailedError, ProtocolError, QuotaError
from federated.runtime import RelayEndpoint
from federated.approval import make_approval
from federated.sealing import SealSession, load_seal_identity, verify_peer_seal_cert
from federated.signing import load_signing_identity, verify_signing_cert
from federated.transport import MAX_MESSAGE_BYTES, create_channel
from protocols.core import Role
from protocols.hetero_lr.protocol import EncryptedVector
from protocols.hetero_lr.two_party import EncryptedResidualShare, MaskedLoss, TwoPartyStep


@pytest.fixture()
def coordinator(tmp_path: Path):
    layout = init_certs(tmp_path / "certs", ["bank", "platform"])
    c = layout.node("coordinator")
    cfg = CoordinatorConfig(tls=TlsConfig(ca=layout.ca_cert, cert=c.tls_cert, key=c.tls_key), listen="127.0.0.1:0",
                            sign=SignConfig(cert=c.sign_cert, key=c.sign_key), transcripts=tmp_path / "transcripts",
                            database=tmp_path / "c.sqlite", parties=["bank", "platform"])
    coord = Coordinator(cfg)
    coord.start()
    _LAYOUTS[id(coord)] = layout
    yield coord, layout
    coord.stop(0)


_LAYOUTS: dict[int, object] = {}


def layout_of(coord: Coordinator):
    return _LAYOUTS[id(coord)]


def _endpoint(coord: Coordinator, layout, me: str, role: Role, job_id: str, peer: str, restored: dict | None = None) -> RelayEndpoint:
    files = layout.node(me)
    channel = create_channel(f"127.0.0.1:{coord.port}", load_tls(layout.ca_cert, files.tls_cert, files.tls_key), server_name="coordinator")
    ident = load_seal_identity(files.seal_cert, files.seal_key)
    peer_files = layout.node(peer)
    peer_key = verify_peer_seal_cert(peer_files.seal_cert.read_bytes(), layout.ca_cert.read_bytes(), peer)
    names = {Role.GUEST: "bank", Role.HOST: "platform", Role.COORDINATOR: "coordinator"}
    signer = load_signing_identity(files.sign_cert, files.sign_key)
    verify = {n: verify_signing_cert(layout.node(n).sign_cert.read_bytes(), layout.ca_cert.read_bytes(), n) for n in ("bank", "platform", "coordinator")}
    session = SealSession(ident, signer, peer, peer_key, verify[peer], job_id, restored=restored)
    return RelayEndpoint(channel, job_id, role, names, signer=signer, verify_keys=verify, sealers={peer: session}, timeout_s=20)


def _pair(coord: Coordinator, layout, job_id: str, phase: str = "lr2") -> tuple[RelayEndpoint, RelayEndpoint]:
    """(host, guest) endpoints of ``job_id`` whose sealing keys for ``phase`` are agreed: both send their seal.hello, then both read."""
    host = _endpoint(coord, layout, "platform", Role.HOST, job_id, "bank")
    guest = _endpoint(coord, layout, "bank", Role.GUEST, job_id, "platform")
    host.offer_sealing("bank", phase)
    guest.offer_sealing("platform", phase)
    host.establish_sealing("bank", phase)
    guest.establish_sealing("platform", phase)
    return host, guest


def _job(coord: Coordinator, kind: str = "train") -> str:
    spec = parse_config(JobSpec, {"kind": kind, "purpose": "financing.credit_risk_model",
                                  "guest": {"party": "bank", "dataset": "d"}, "host": {"party": "platform", "dataset": "d"}}, source="t")
    job_id = coord.jobs.submit(spec).job_id
    # Approve as each party would (signed with its own key), so the job runs.
    for party in ("bank", "platform"):
        files = layout_of(coord).node(party)
        coord.jobs.set_sign_key(party, files.sign_cert.read_bytes())
        ident = load_signing_identity(files.sign_cert, files.sign_key)
        coord.jobs.approve(job_id, party, make_approval(ident, job_id, coord.jobs.get(job_id).spec_sha256, True, "policy"))
    assert coord.jobs.get(job_id).state == "running"
    return job_id


def _big_scores(count: int) -> EncryptedResidualShare:
    vals = tuple(gmpy2.mpz((1 << 4095) + i) for i in range(count))  # 512-byte "ciphertexts"
    return EncryptedResidualShare(EncryptedVector(b"k" * 32, 0, vals))


def test_large_sealed_payload_streams_in_chunks(coordinator) -> None:
    coord, layout = coordinator
    job = _job(coord)
    host, guest = _pair(coord, layout, job)
    msg = _big_scores(40_000)  # ~20 MB, well past the 8 MiB gRPC message limit
    host.send(TwoPartyStep.RESIDUAL, Role.GUEST, msg)
    assert host.bytes_sent > 2 * MAX_MESSAGE_BYTES
    got = guest.recv(TwoPartyStep.RESIDUAL, Role.HOST)
    assert got == msg
    assert coord.mailbox.pending_bytes() == 0


def test_sequence_numbers_order_messages_and_replays_are_refused(coordinator) -> None:
    coord, layout = coordinator
    job = _job(coord)
    host, guest = _pair(coord, layout, job)
    first, second = _big_scores(2), _big_scores(3)
    host.send(TwoPartyStep.RESIDUAL, Role.GUEST, first)
    host.send(TwoPartyStep.RESIDUAL, Role.GUEST, second)
    assert guest.recv(TwoPartyStep.RESIDUAL, Role.HOST) == first
    assert guest.recv(TwoPartyStep.RESIDUAL, Role.HOST) == second
    # A second copy of sequence 0 (a fresh endpoint restarts its counters) is never delivered again.
    replay = _endpoint(coord, layout, "platform", Role.HOST, job, "bank")
    replay.send(TwoPartyStep.RESIDUAL, Role.GUEST, _big_scores(7))
    assert coord.mailbox.take(job, "bank", "platform", TwoPartyStep.RESIDUAL.wire, 2, wait_s=0.5) is None
    # A receiver restarted from a checkpoint (which keeps the phase's derived sealing keys) can fetch what it had
    # already taken: the original, not the copy.
    restarted = _endpoint(coord, layout, "bank", Role.GUEST, job, "platform", restored=guest.sealers["platform"].export("lr2"))
    assert restarted.recv(TwoPartyStep.RESIDUAL, Role.HOST) == first


def test_payload_sealed_for_another_job_is_rejected(coordinator) -> None:
    coord, layout = coordinator
    job_a, job_b = _job(coord), _job(coord)
    host_a, _ = _pair(coord, layout, job_a)
    _, guest_b = _pair(coord, layout, job_b)
    host_a.send(TwoPartyStep.RESIDUAL, Role.GUEST, _big_scores(2))
    # Move the stored message into job B, as a malicious relay might.
    env, data = coord.mailbox.take(job_a, "bank", "platform", TwoPartyStep.RESIDUAL.wire, 0, wait_s=5)
    env.job_id = job_b
    coord.mailbox.put(env, data)
    # The sender's signature covers the job id, so the move is caught before the seal is even opened.
    with pytest.raises(CryptoError, match="not signed by platform"):
        guest_b.recv(TwoPartyStep.RESIDUAL, Role.HOST)


def test_relay_cannot_reorder_messages(coordinator) -> None:
    coord, layout = coordinator
    job = _job(coord)
    host, guest = _pair(coord, layout, job)
    host.send(TwoPartyStep.RESIDUAL, Role.GUEST, _big_scores(2))
    host.send(TwoPartyStep.RESIDUAL, Role.GUEST, _big_scores(3))
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
    job = _job(coord)
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
    psi_job = _job(coord, kind="psi")
    host, _ = _pair(coord, layout, psi_job)  # seal.hello is part of every job; the phase named in it is the sender's business
    with pytest.raises(ProtocolError, match="not part of"):  # a psi job has no training steps
        host.send(TwoPartyStep.RESIDUAL, Role.GUEST, _big_scores(1))
    import federated.coordinator as coordinator_module

    job = _job(coord)
    host, _ = _pair(coord, layout, job)
    limit = coordinator_module.MAX_PAYLOAD_BYTES
    assert limit <= 64 << 20
    coordinator_module.MAX_PAYLOAD_BYTES = 4096
    try:
        with pytest.raises(QuotaError, match="exceeds the relay's limit"):
            host.send(TwoPartyStep.RESIDUAL, Role.GUEST, _big_scores(20))  # about 10 KiB
    finally:
        coordinator_module.MAX_PAYLOAD_BYTES = limit


def test_receivers_wake_when_a_job_is_cancelled(coordinator) -> None:
    coord, layout = coordinator
    job = _job(coord)
    guest = _endpoint(coord, layout, "bank", Role.GUEST, job, "platform")
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


def test_a_pending_job_is_offered_again_when_the_node_has_not_decided(coordinator, monkeypatch) -> None:
    import federated.coordinator as coordinator_module

    coord, _ = coordinator
    spec = parse_config(JobSpec, {"kind": "psi", "purpose": "financing.credit_risk_model",
                                  "guest": {"party": "bank", "dataset": "d"}, "host": {"party": "platform", "dataset": "d"}}, source="t")
    job_id = coord.jobs.submit(spec).job_id
    assert [j.job_id for j in coord.jobs.assignments("platform", 0)] == [job_id]
    # The reply carrying that offer may be lost (a deadline, a dropped connection): not shown again at once...
    assert coord.jobs.assignments("platform", 0) == []
    # ...but again once REOFFER_S has passed without a decision from the node.
    monkeypatch.setattr(coordinator_module, "REOFFER_S", 0.0)
    assert [j.job_id for j in coord.jobs.assignments("platform", 0)] == [job_id]


def test_a_claimed_role_is_offered_again_while_the_node_reports_nothing(coordinator, monkeypatch) -> None:
    import federated.coordinator as coordinator_module

    coord, _ = coordinator
    job_id = _job(coord)  # approved by both parties: running, roles unclaimed
    assert [j.job_id for j in coord.jobs.assignments("platform", 0)] == [job_id]  # claimed and shown
    assert coord.jobs.assignments("platform", 0) == []  # not again at once
    monkeypatch.setattr(coordinator_module, "REOFFER_S", 0.0)
    # The reply may have been lost: with no progress from the node, the claimed role is shown again...
    assert [j.job_id for j in coord.jobs.assignments("platform", 0)] == [job_id]
    # ...but not once the node reports progress on it.
    coord.jobs.progress(job_id, "platform", "psi", 0, 1, {})
    assert coord.jobs.assignments("platform", 0) == []
