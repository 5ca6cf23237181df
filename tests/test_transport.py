"""Transport plumbing: the dev CA, the mTLS server/channel factory, error mapping.

Every server binds port 0 on 127.0.0.1. Assertions are on outcomes (status
codes, messages, files), never on timing.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fedcredit.runtime import errors
from fedcredit.runtime.security.certs import CertLayout, TlsMaterial, init_certs, load_tls
from fedcredit.runtime.errors import (
    ConfigError,
    DataError,
    DeadlineError,
    ErrorInterceptor,
    FedCreditError,
    INTERNAL_MESSAGE,
    NotFoundError,
    TransportError,
    from_rpc_error,
    to_status_code,
)
from fedcredit.runtime.security.transport import (
    CHUNK_BYTES,
    MAX_MESSAGE_BYTES,
    chunk_bytes,
    create_channel,
    create_server,
    peer_identity,
    serve,
    wait_healthy,
)
from helpers import PARTIES

SERVICE = "fedcredit.test.Probe"
RPC_TIMEOUT = 10.0


def _identity(b: bytes) -> bytes:
    return b


def _method(name: str) -> str:
    return f"/{SERVICE}/{name}"


# --------------------------------------------------------------------------
# handlers (the layout fixtures are in tests/conftest.py)
# --------------------------------------------------------------------------
def _whoami(request: bytes, context: grpc.ServicerContext) -> bytes:
    return peer_identity(context).encode()


def _raise_data(request: bytes, context: grpc.ServicerContext) -> bytes:
    raise DataError("bank.csv row 3 column 'income': not a number")


def _raise_not_found(request: bytes, context: grpc.ServicerContext) -> bytes:
    raise NotFoundError("job 'j-42' does not exist")


def _raise_runtime(request: bytes, context: grpc.ServicerContext) -> bytes:
    raise RuntimeError("secret detail: /etc/fedcredit/ca.key")


def _own_abort(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")


def _stream_then_runtime(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    yield b"one"
    yield b"two"
    raise RuntimeError("secret detail mid-stream")


def _stream_then_data(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    yield b"one"
    raise DataError("bad row in the second batch")


def _client_stream_data(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    for r in requests:
        if r == b"bad":
            raise DataError("client stream had a bad chunk")
    return b"ok"


def _bidi_runtime(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for r in requests:
        yield r
    raise RuntimeError("secret detail in bidi")


def _echo_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    yield from chunk_bytes(request, 1000)


def _probe_handler() -> grpc.GenericRpcHandler:
    uu = lambda f: grpc.unary_unary_rpc_method_handler(f, _identity, _identity)  # noqa: E731
    us = lambda f: grpc.unary_stream_rpc_method_handler(f, _identity, _identity)  # noqa: E731
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "WhoAmI": uu(_whoami),
            "RaiseData": uu(_raise_data),
            "RaiseNotFound": uu(_raise_not_found),
            "RaiseRuntime": uu(_raise_runtime),
            "OwnAbort": uu(_own_abort),
            "StreamRuntime": us(_stream_then_runtime),
            "StreamData": us(_stream_then_data),
            "EchoStream": us(_echo_stream),
            "ClientStreamData": grpc.stream_unary_rpc_method_handler(
                _client_stream_data, _identity, _identity
            ),
            "BidiRuntime": grpc.stream_stream_rpc_method_handler(_bidi_runtime, _identity, _identity),
        },
    )


@pytest.fixture(scope="module")
def server_port(layout: CertLayout) -> Iterator[int]:
    with serve(layout.tls("coordinator"), handlers=[_probe_handler()], grace_s=0.5) as (_, port):
        yield port


@pytest.fixture(scope="module")
def bank_channel(layout: CertLayout, server_port: int) -> Iterator[grpc.Channel]:
    channel = create_channel(f"127.0.0.1:{server_port}", layout.tls("bank"))
    yield channel
    channel.close()


def _health_check(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=RPC_TIMEOUT).status


# --------------------------------------------------------------------------
# certificates
# --------------------------------------------------------------------------
def test_init_certs_writes_the_layout(layout: CertLayout) -> None:
    assert layout.ca_cert.is_file() and layout.ca_key.is_file()
    for name in ("coordinator", "bank", "platform", "operator"):
        files = layout.node(name)
        assert files.tls_cert.is_file() and files.tls_key.is_file()
        if name in PARTIES:
            assert files.seal_cert is not None and files.seal_cert.is_file()
            assert files.seal_key is not None and files.seal_key.is_file()
        else:
            assert files.seal_cert is None and files.seal_key is None
    # no temporary files left behind
    assert not [p for p in layout.directory.rglob(".*.tmp")]


def test_private_keys_are_0600(layout: CertLayout) -> None:
    keys = [layout.ca_key]
    for name in layout.nodes:
        files = layout.node(name)
        keys += [p for p in (files.tls_key, files.seal_key) if p is not None]
    assert len(keys) == 1 + 4 + 2
    for key in keys:
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600, key
        assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted


def test_node_cert_is_issued_by_the_ca(layout: CertLayout) -> None:
    ca = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign

    cert = x509.load_pem_x509_certificate(layout.node("bank").tls_cert.read_bytes())
    cert.verify_directly_issued_by(ca)  # raises if not
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "bank"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # #12: a party only dials out: clientAuth and its own name, no host names it could serve under
    assert san.get_values_for_type(x509.DNSName) == ["bank"] and not san.get_values_for_type(x509.IPAddress)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    coord = x509.load_pem_x509_certificate(layout.node("coordinator").tls_cert.read_bytes())
    san = coord.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"coordinator", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert set(coord.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == {ExtendedKeyUsageOID.SERVER_AUTH}

    other = x509.load_pem_x509_certificate(layout.node("platform").seal_cert.read_bytes())  # type: ignore[union-attr]
    other.verify_directly_issued_by(ca)
    ku = other.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_agreement and not ku.value.digital_signature


def test_second_init_refuses_to_overwrite_the_ca(layout: CertLayout) -> None:
    before = layout.ca_cert.read_bytes()
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        init_certs(layout.directory, PARTIES)
    assert layout.ca_cert.read_bytes() == before


def test_overwrite_replaces_the_ca(tmp_path: Path) -> None:
    first = init_certs(tmp_path, ["bank"], operators=())
    old = first.ca_cert.read_bytes()
    second = init_certs(tmp_path, ["bank"], operators=(), overwrite=True)
    assert second.ca_cert.read_bytes() != old
    ca = x509.load_pem_x509_certificate(second.ca_cert.read_bytes())
    x509.load_pem_x509_certificate(second.node("bank").tls_cert.read_bytes()).verify_directly_issued_by(ca)


@pytest.mark.parametrize(
    "parties, kwargs",
    [
        (["Bank"], {}),
        (["-bank"], {}),
        (["bank/../x"], {}),
        (["a" * 64], {}),
        (["bank", "bank"], {}),
        (["coordinator"], {}),
        ([], {}),
        (["bank"], {"operators": ["op erator"]}),
    ],
)
def test_init_certs_rejects_bad_names(tmp_path: Path, parties: list[str], kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        init_certs(tmp_path / "pki", parties, **kwargs)
    assert not (tmp_path / "pki").exists()


def test_load_tls_names_the_missing_file(layout: CertLayout, tmp_path: Path) -> None:
    files = layout.node("bank")
    missing = tmp_path / "nope.key"
    with pytest.raises(ConfigError, match="nope.key"):
        load_tls(layout.ca_cert, files.tls_cert, missing)
    with pytest.raises(ConfigError, match="does not match"):
        load_tls(layout.ca_cert, files.tls_cert, layout.node("platform").tls_key)
    material = load_tls(layout.ca_cert, files.tls_cert, files.tls_key)
    assert "PRIVATE" not in repr(material)


def test_layout_load_discovers_nodes(layout: CertLayout) -> None:
    loaded = CertLayout.load(layout.directory)
    assert set(loaded.nodes) == {"coordinator", "bank", "platform", "operator"}
    assert set(loaded.parties) == set(PARTIES)
    assert loaded.node("bank") == layout.node("bank")
    with pytest.raises(ConfigError):
        loaded.node("nobody")


# --------------------------------------------------------------------------
# mTLS server and channel
# --------------------------------------------------------------------------
def test_health_check_with_a_good_client_cert(bank_channel: grpc.Channel) -> None:
    assert _health_check(bank_channel) == health_pb2.HealthCheckResponse.SERVING
    wait_healthy(bank_channel, 10.0)


def test_server_name_override(layout: CertLayout, server_port: int) -> None:
    # Dial by IP but verify the server certificate's DNS name "coordinator".
    channel = create_channel(f"127.0.0.1:{server_port}", layout.tls("bank"), server_name="coordinator")
    with channel:
        assert _health_check(channel) == health_pb2.HealthCheckResponse.SERVING


def test_client_cert_from_another_ca_is_refused(
    layout: CertLayout, other_layout: CertLayout, server_port: int
) -> None:
    # Trusts the right CA for the server, but presents a certificate of another CA.
    foreign = other_layout.tls("bank")
    tls = TlsMaterial(ca=layout.ca_cert.read_bytes(), cert=foreign.cert, key=foreign.key)
    with create_channel(f"127.0.0.1:{server_port}", tls) as channel:
        with pytest.raises(grpc.RpcError) as info:
            _health_check(channel)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_without_a_cert_is_refused(layout: CertLayout, server_port: int) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=layout.ca_cert.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{server_port}", credentials) as channel:
        with pytest.raises(grpc.RpcError) as info:
            _health_check(channel)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_refuses_a_server_of_another_ca(other_layout: CertLayout, server_port: int) -> None:
    with create_channel(f"127.0.0.1:{server_port}", other_layout.tls("bank")) as channel:
        with pytest.raises(grpc.RpcError) as info:
            _health_check(channel)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_is_refused(server_port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server_port}") as channel:
        with pytest.raises(grpc.RpcError) as info:
            _health_check(channel)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_wait_healthy_names_the_target(other_layout: CertLayout, server_port: int) -> None:
    target = f"127.0.0.1:{server_port}"
    with create_channel(target, other_layout.tls("bank")) as channel:
        with pytest.raises(TransportError, match=target):
            wait_healthy(channel, 0.5)


def test_peer_identity_is_the_client_cn(bank_channel: grpc.Channel, layout: CertLayout, server_port: int) -> None:
    whoami = bank_channel.unary_unary(_method("WhoAmI"))
    assert whoami(b"", timeout=RPC_TIMEOUT) == b"bank"
    with create_channel(f"127.0.0.1:{server_port}", layout.tls("operator")) as channel:
        assert channel.unary_unary(_method("WhoAmI"))(b"", timeout=RPC_TIMEOUT) == b"operator"


def test_peer_identity_without_tls_is_unauthenticated() -> None:
    with serve(None, insecure=True, handlers=[_probe_handler()], grace_s=0) as (_, port):
        with create_channel(f"127.0.0.1:{port}", None, insecure=True) as channel:
            with pytest.raises(grpc.RpcError) as info:
                channel.unary_unary(_method("WhoAmI"))(b"", timeout=RPC_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert isinstance(from_rpc_error(info.value), errors.AuthError)


def test_create_server_requires_tls_unless_insecure(layout: CertLayout) -> None:
    with pytest.raises(ConfigError):
        create_server(None)
    with pytest.raises(ConfigError):
        create_server(layout.tls("coordinator"), insecure=True)


def test_create_server_returns_the_bound_port(layout: CertLayout) -> None:
    server, port = create_server(layout.tls("coordinator"))
    try:
        assert port > 0
        # the same port cannot be bound twice
        with pytest.raises(TransportError, match=str(port)):
            create_server(layout.tls("coordinator"), f"127.0.0.1:{port}")
    finally:
        server.stop(None)


def test_large_messages_within_the_limit(bank_channel: grpc.Channel) -> None:
    payload = os.urandom(3 * 1000 + 7)
    echoed = list(bank_channel.unary_stream(_method("EchoStream"))(payload, timeout=RPC_TIMEOUT))
    assert [len(c) for c in echoed] == [1000, 1000, 1000, 7]
    assert b"".join(echoed) == payload
    # a request over the limit is refused by the client-side limit
    with pytest.raises(grpc.RpcError) as info:
        bank_channel.unary_unary(_method("WhoAmI"))(b"x" * (MAX_MESSAGE_BYTES + 1), timeout=RPC_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_chunk_bytes() -> None:
    assert list(chunk_bytes(b"")) == []
    assert list(chunk_bytes(b"abcdefg", 3)) == [b"abc", b"def", b"g"]
    assert list(chunk_bytes(b"abcdef", 3)) == [b"abc", b"def"]
    assert list(chunk_bytes(b"x" * (CHUNK_BYTES + 1))) == [b"x" * CHUNK_BYTES, b"x"]
    with pytest.raises(ValueError):
        list(chunk_bytes(b"abc", 0))


# --------------------------------------------------------------------------
# error mapping
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "err, status",
    [
        (errors.DataError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.ConfigError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.BudgetError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.CryptoError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.KeyMismatchError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.ProtocolError("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.AuthError("x"), grpc.StatusCode.UNAUTHENTICATED),
        (errors.PermissionDeniedError("x"), grpc.StatusCode.PERMISSION_DENIED),
        (errors.NotFoundError("x"), grpc.StatusCode.NOT_FOUND),
        (errors.ConflictError("x"), grpc.StatusCode.ALREADY_EXISTS),
        (errors.DeadlineError("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.TransportError("x"), grpc.StatusCode.UNAVAILABLE),
        (errors.JobFailedError("x"), grpc.StatusCode.ABORTED),
        (errors.FedCreditError("x"), grpc.StatusCode.INTERNAL),
        (RuntimeError("x"), grpc.StatusCode.INTERNAL),
        (KeyError("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_to_status_code_table(err: BaseException, status: grpc.StatusCode) -> None:
    assert to_status_code(err) == status


def test_error_codes_are_stable() -> None:
    assert {
        cls.__name__: cls.code
        for cls in (
            errors.ConfigError,
            errors.AuthError,
            errors.PermissionDeniedError,
            errors.NotFoundError,
            errors.ConflictError,
            errors.TransportError,
            errors.JobFailedError,
            errors.DeadlineError,
        )
    } == {
        "ConfigError": "CONFIG",
        "AuthError": "AUTH",
        "PermissionDeniedError": "PERMISSION",
        "NotFoundError": "NOT_FOUND",
        "ConflictError": "CONFLICT",
        "TransportError": "TRANSPORT",
        "JobFailedError": "JOB_FAILED",
        "DeadlineError": "DEADLINE",
    }
    for cls in (errors.ConfigError, errors.TransportError, errors.DeadlineError):
        assert issubclass(cls, FedCreditError)


def test_data_error_round_trips(bank_channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as info:
        bank_channel.unary_unary(_method("RaiseData"))(b"", timeout=RPC_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "bank.csv row 3 column 'income': not a number"
    err = from_rpc_error(info.value)
    assert type(err) is DataError
    assert err.message == "bank.csv row 3 column 'income': not a number"

    with pytest.raises(grpc.RpcError) as info:
        bank_channel.unary_unary(_method("RaiseNotFound"))(b"", timeout=RPC_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert type(from_rpc_error(info.value)) is NotFoundError


def test_unexpected_exception_is_internal_without_details(
    bank_channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="fedcredit.runtime.errors"):
        with pytest.raises(grpc.RpcError) as info:
            bank_channel.unary_unary(_method("RaiseRuntime"))(b"", timeout=RPC_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == INTERNAL_MESSAGE
    assert "secret" not in info.value.details()
    err = from_rpc_error(info.value)
    assert isinstance(err, errors.RemoteError) and "secret" not in err.message
    # the server log keeps the traceback
    logged = [r for r in caplog.records if r.exc_info and "secret detail" in str(r.exc_info[1])]
    assert logged


def test_a_handlers_own_abort_is_kept(bank_channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as info:
        bank_channel.unary_unary(_method("OwnAbort"))(b"", timeout=RPC_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert info.value.details() == "slow down"


def _until_error(call: Iterator[bytes]) -> tuple[list[bytes], grpc.RpcError]:
    """What a streaming call yields before it fails, and how it fails (the calling test fails if it never does)."""
    received = []
    with pytest.raises(grpc.RpcError) as info:
        for item in call:
            received.append(item)
    return received, info.value


def test_server_stream_raising_mid_stream_is_internal(bank_channel: grpc.Channel) -> None:
    call = bank_channel.unary_stream(_method("StreamRuntime"))(b"", timeout=RPC_TIMEOUT)
    received, error = _until_error(call)
    assert received == [b"one", b"two"]
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == INTERNAL_MESSAGE


def test_server_stream_raising_data_error_round_trips(bank_channel: grpc.Channel) -> None:
    call = bank_channel.unary_stream(_method("StreamData"))(b"", timeout=RPC_TIMEOUT)
    received, error = _until_error(call)
    assert received == [b"one"]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = from_rpc_error(error)
    assert type(err) is DataError and err.message == "bad row in the second batch"


def test_client_stream_and_bidi_are_mapped(bank_channel: grpc.Channel) -> None:
    upload = bank_channel.stream_unary(_method("ClientStreamData"))
    assert upload(iter([b"a", b"b"]), timeout=RPC_TIMEOUT) == b"ok"
    with pytest.raises(grpc.RpcError) as info:
        upload(iter([b"a", b"bad"]), timeout=RPC_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert type(from_rpc_error(info.value)) is DataError

    call = bank_channel.stream_stream(_method("BidiRuntime"))(iter([b"x", b"y"]), timeout=RPC_TIMEOUT)
    received, error = _until_error(call)
    assert received == [b"x", b"y"]
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == INTERNAL_MESSAGE


def test_unavailable_becomes_transport_error(layout: CertLayout) -> None:
    server, port = create_server(layout.tls("coordinator"))
    server.start()
    server.stop(None).wait()  # nothing listens on `port` any more
    target = f"127.0.0.1:{port}"
    with create_channel(target, layout.tls("bank")) as channel:
        with pytest.raises(grpc.RpcError) as info:
            _health_check(channel)
    err = from_rpc_error(info.value, target=target)
    assert isinstance(err, TransportError)
    assert err.message.startswith(f"cannot reach {target}")


def test_deadline_becomes_deadline_error(layout: CertLayout) -> None:
    class _Fake(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.DEADLINE_EXCEEDED

        def details(self) -> str:
            return "Deadline Exceeded"

        def trailing_metadata(self) -> tuple:
            return ()

    assert isinstance(from_rpc_error(_Fake()), DeadlineError)


def test_error_interceptor_is_a_server_interceptor() -> None:
    assert isinstance(ErrorInterceptor(), grpc.ServerInterceptor)


def test_a_party_certificate_cannot_pose_as_the_coordinator(layout: CertLayout) -> None:
    """#12: every node's certificate once carried serverAuth and the shared host names, so a node dialling
    localhost accepted any node as the coordinator. A party's certificate is clientAuth-only now."""
    with serve(layout.tls("platform"), handlers=[_probe_handler()], grace_s=0.5) as (_, port):
        channel = create_channel(f"localhost:{port}", layout.tls("bank"), server_name="localhost")
        try:
            with pytest.raises(grpc.RpcError) as err:
                _health_check(channel)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            channel.close()
    with serve(layout.tls("coordinator"), handlers=[_probe_handler()], grace_s=0.5) as (_, port):
        channel = create_channel(f"localhost:{port}", layout.tls("bank"), server_name="localhost")
        try:
            assert _health_check(channel) == health_pb2.HealthCheckResponse.SERVING  # the real one still works
        finally:
            channel.close()
