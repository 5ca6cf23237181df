"""#12: there was no revocation check. The coordinator's deny-list (``revoked:``) refuses a certificate on every RPC."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fedcredit.proto.v1 import job_pb2, job_pb2_grpc, node_pb2, node_pb2_grpc, relay_pb2, relay_pb2_grpc
from fedcredit.runtime.security.certs import CertLayout, cert_fingerprint
from fedcredit.runtime.config import CoordinatorConfig, parse_config
from fedcredit.runtime.errors import AuthError, ConfigError, RevokedError, from_rpc_error, to_status_code
from fedcredit.runtime.security.revocation import DenyList, parse_entry
from fedcredit.protocols.core import Role
from fedcredit.protocols.hetero_lr.two_party import TwoPartyStep
from helpers import channel_for, endpoint, residual, running_job, serving_coordinator

TIMEOUT = 10.0


def _fingerprint(path: Path, colons: bool = False) -> str:
    fp = cert_fingerprint(path.read_bytes())
    return ":".join(fp[i:i + 2] for i in range(0, len(fp), 2)).upper() if colons else fp


def _serial(path: Path) -> str:
    return format(x509.load_pem_x509_certificate(path.read_bytes()).serial_number, "X")


def _refused(call: Callable[[], Any]) -> RevokedError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, err.value.details()
    exc = from_rpc_error(err.value)
    assert isinstance(exc, RevokedError), exc
    return exc


def _party_calls(channel: grpc.Channel, job_id: str) -> dict[str, Callable[[], Any]]:
    nodes, jobs = node_pb2_grpc.NodeServiceStub(channel), job_pb2_grpc.JobServiceStub(channel)
    relay = relay_pb2_grpc.RelayServiceStub(channel)
    return {
        "Register": lambda: nodes.Register(node_pb2.RegisterRequest(), timeout=TIMEOUT),
        "Heartbeat": lambda: nodes.Heartbeat(node_pb2.HeartbeatRequest(), timeout=TIMEOUT),
        "GetPeer": lambda: nodes.GetPeer(node_pb2.GetPeerRequest(name="platform"), timeout=TIMEOUT),
        "GetJob": lambda: jobs.GetJob(job_pb2.GetJobRequest(job_id=job_id), timeout=TIMEOUT),
        "ListJobs": lambda: jobs.ListJobs(job_pb2.ListJobsRequest(), timeout=TIMEOUT),
        "PollAssignments": lambda: jobs.PollAssignments(job_pb2.PollAssignmentsRequest(wait_ms=0), timeout=TIMEOUT),
        "Send": lambda: relay.Send(iter([relay_pb2.SendRequest()]), timeout=TIMEOUT),
        "Receive": lambda: list(relay.Receive(relay_pb2.ReceiveRequest(job_id=job_id, sender="platform", wait_ms=0), timeout=TIMEOUT)),
        "Health": lambda: health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT),
    }


def test_a_revoked_party_is_refused_on_every_rpc(tmp_path: Path, layout: CertLayout) -> None:
    bank = layout.node("bank")
    with serving_coordinator(tmp_path, layout, revoked=[f"sha256:{_fingerprint(bank.tls_cert)}"]) as coord:
        job = running_job(coord, layout)
        channel = channel_for(coord, layout, "bank")
        for rpc, call in _party_calls(channel, job).items():
            exc = _refused(call)
            assert "revoked" in exc.message and "bank" in exc.message, rpc
        channel.close()
        # Through the runtime too, and the other party is untouched.
        with pytest.raises(AuthError, match="revoked"):
            endpoint(coord, layout, "bank", job).send(TwoPartyStep.RESIDUAL, Role.HOST, residual())
        endpoint(coord, layout, "platform", job).send(TwoPartyStep.RESIDUAL, Role.GUEST, residual())
        ok = node_pb2_grpc.NodeServiceStub(channel_for(coord, layout, "platform")).Heartbeat(node_pb2.HeartbeatRequest(), timeout=TIMEOUT)
        assert ok.server_unix_ms > 0


def test_an_operator_revoked_by_serial_is_refused(tmp_path: Path, layout: CertLayout) -> None:
    op = layout.node("operator")
    with serving_coordinator(tmp_path, layout, revoked=[f"serial:{_serial(op.tls_cert)}"]) as coord:
        stub = job_pb2_grpc.JobServiceStub(channel_for(coord, layout, "operator"))
        _refused(lambda: stub.ListJobs(job_pb2.ListJobsRequest(), timeout=TIMEOUT))
        _refused(lambda: stub.SubmitJob(job_pb2.SubmitJobRequest(spec_json="{}"), timeout=TIMEOUT))


def test_a_revoked_signing_or_sealing_certificate_cannot_register(tmp_path: Path, layout: CertLayout) -> None:
    bank = layout.node("bank")
    for revoked, what in ((bank.sign_cert, "signing"), (bank.seal_cert, "sealing")):
        (tmp_path / what).mkdir()
        with serving_coordinator(tmp_path / what, layout, revoked=[f"sha256:{_fingerprint(revoked, colons=True)}"]) as coord:
            nodes = node_pb2_grpc.NodeServiceStub(channel_for(coord, layout, "bank"))
            nodes.Heartbeat(node_pb2.HeartbeatRequest(), timeout=TIMEOUT)  # its TLS certificate is still good
            request = node_pb2.RegisterRequest(sign_cert_pem=bank.sign_cert.read_bytes(), seal_cert_pem=bank.seal_cert.read_bytes())
            exc = _refused(lambda: nodes.Register(request, timeout=TIMEOUT))
            assert what in exc.message


def test_entries_are_parsed_and_malformed_ones_fail_the_config() -> None:
    fp = "AB:" * 31 + "CD"
    assert parse_entry(f"SHA256:{fp}") == ("sha256", "ab" * 31 + "cd")
    assert parse_entry("serial:00:1A:2b") == ("serial", "1a2b")
    base = {"tls": {"ca": "a", "cert": "b", "key": "c"}, "sign": {"cert": "d", "key": "e"}, "parties": ["bank"]}
    for bad in ("md5:abcd", "sha256:abcd", "serial:xyz", "3f1c"):
        with pytest.raises(ConfigError, match="field 'revoked"):
            parse_config(CoordinatorConfig, {**base, "revoked": [bad]}, source="coordinator.yaml")


def test_deny_list_matches_only_what_it_names(layout: CertLayout) -> None:
    bank, platform = layout.node("bank").tls_cert.read_bytes(), layout.node("platform").tls_cert.read_bytes()
    deny = DenyList.from_entries([f"sha256:{cert_fingerprint(bank)}"])
    with pytest.raises(RevokedError):
        deny.check_pem(bank, "TLS", "bank")
    deny.check_pem(platform, "TLS", "platform")
    with pytest.raises(RevokedError, match="cannot be read"):
        deny.check_pem(b"not a certificate", "TLS", "x")
    DenyList.from_entries([]).check_pem(b"not a certificate", "TLS", "x")  # nothing revoked: nothing to check


def test_revoked_maps_to_unauthenticated_with_its_own_code() -> None:
    assert to_status_code(RevokedError("x")) == grpc.StatusCode.UNAUTHENTICATED
    assert RevokedError.code == "REVOKED" and issubclass(RevokedError, AuthError)
