"""The ONE gRPC server and channel factory used by every fedcredit process.

Both sides get the same message-size limits and keepalive settings. Servers
require mutual TLS (client certificates signed by the job's CA), register the
standard gRPC health service, and put :class:`~fedcredit.runtime.errors.ErrorInterceptor`
first in the interceptor chain, so every handler's errors are mapped to status
codes in one place. Plaintext exists only for tests and must be asked for.
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .certs import TlsMaterial
from ..errors import (AuthError, ConfigError, ErrorInterceptor, TlsHandshakeError, TransportError, clock_reading,
                                      handshake_error)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "CHUNK_BYTES",
    "DEFAULT_DEADLINE_S",
    "STREAM_DEADLINE_S",
    "HEALTH_DEADLINE_S",
    "SHUTDOWN_GRACE_S",
    "KEEPALIVE_OPTIONS",
    "SERVER_OPTIONS",
    "CHANNEL_OPTIONS",
    "create_server",
    "serve",
    "create_channel",
    "peer_identity",
    "peer_certificate",
    "PeerCheckInterceptor",
    "wait_healthy",
    "handshake_error",
    "chunk_bytes",
]

_LOGGER = logging.getLogger(__name__)

#: Largest single gRPC message, both directions. Bigger payloads are streamed.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
#: Payload bytes per message when streaming a large blob (well under the limit,
#: leaving room for the envelope).
CHUNK_BYTES = 1024 * 1024

#: Deadline for an ordinary unary RPC.
DEFAULT_DEADLINE_S = 30.0
#: Deadline for a streaming transfer of a large payload.
STREAM_DEADLINE_S = 600.0
#: Deadline for one health check.
HEALTH_DEADLINE_S = 5.0
#: Grace period given to in-flight RPCs when a server stops.
SHUTDOWN_GRACE_S = 5.0

#: Keepalive shared by servers and channels: ping every 30 s, give up after 10 s
#: without an answer, also while idle.
KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)

_SIZE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)

#: Server options. The server accepts pings every 10 s (clients ping every 30 s),
#: so a client's keepalive never earns "too_many_pings" GOAWAYs.
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    *_SIZE_OPTIONS,
    *KEEPALIVE_OPTIONS,
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 2),
    ("grpc.so_reuseport", 0),
)

#: Reconnection backoff of channels (#13): gRPC's default grows to 120 s, so after an outage of a minute a party
#: could stay away long enough to be taken for dead (coordinator ``party_grace_s``); it retries at least every 5 s.
RECONNECT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5_000),
)

#: Channel options.
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (*_SIZE_OPTIONS, *KEEPALIVE_OPTIONS, *RECONNECT_OPTIONS)

_HEALTH_SERVICE = ""
# Remember each channel's target for error messages (channels expose none).
_CHANNEL_TARGETS: weakref.WeakKeyDictionary[grpc.Channel, str] = weakref.WeakKeyDictionary()


def create_server(
    tls: TlsMaterial | None,
    address: str = "127.0.0.1:0",
    *,
    max_workers: int = 32,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    insecure: bool = False,
    health_servicer: health.HealthServicer | None = None,
) -> tuple[grpc.Server, int]:
    """Build a gRPC server with mutual TLS, health service and error mapping.

    The server is returned NOT started: register servicers, then call
    ``server.start()`` (or use :func:`serve`).

    Args:
        tls: this node's CA, certificate and key. Clients must present a
            certificate signed by ``tls.ca``.
        address: ``host:port`` to bind; port 0 picks a free port.
        max_workers: handler threads.
        interceptors: extra interceptors, run after the ErrorInterceptor.
        insecure: serve plaintext. Tests only; ``tls`` must then be None.
        health_servicer: a servicer to register (to set per-service status
            later); a new one is made if None. ``""`` is set to SERVING.

    Returns:
        ``(server, port)`` where ``port`` is the bound port.

    Raises:
        ConfigError: neither/both of ``tls`` and ``insecure``, or a bad worker count.
        TransportError: the address cannot be bound.
    """
    if insecure and tls is not None:
        raise ConfigError("create_server: pass either tls material or insecure=True, not both")
    if not insecure and tls is None:
        raise ConfigError("create_server: tls material is required (insecure=True is for tests only)")
    if max_workers < 1:
        raise ConfigError(f"create_server: max_workers must be >= 1, got {max_workers}")

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="fedcredit-rpc"),
        interceptors=[ErrorInterceptor(), *interceptors],
        options=list(SERVER_OPTIONS),
    )
    health_servicer = health_servicer or health.HealthServicer()
    health_servicer.set(_HEALTH_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    try:
        if insecure:
            _LOGGER.warning("gRPC server on %s is INSECURE (no TLS): use only in tests", address)
            port = server.add_insecure_port(address)
        else:
            assert tls is not None
            credentials = grpc.ssl_server_credentials(
                [(tls.key, tls.cert)],
                root_certificates=tls.ca,
                require_client_auth=True,
            )
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # newer grpcio raises instead of returning 0
        raise TransportError(f"cannot bind gRPC server to {address}: {exc}") from exc
    if not port:
        raise TransportError(f"cannot bind gRPC server to {address}")
    return server, port


@contextlib.contextmanager
def serve(
    tls: TlsMaterial | None,
    address: str = "127.0.0.1:0",
    *,
    register: Callable[[grpc.Server], None] | None = None,
    handlers: Iterable[grpc.GenericRpcHandler] = (),
    max_workers: int = 32,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    insecure: bool = False,
    health_servicer: health.HealthServicer | None = None,
    grace_s: float = SHUTDOWN_GRACE_S,
) -> Iterator[tuple[grpc.Server, int]]:
    """Run a server from :func:`create_server` for the duration of a ``with``.

    ``register(server)`` (e.g. ``lambda s: add_FooServicer_to_server(foo, s)``)
    and ``handlers`` are added before the server starts. On exit the server
    stops, giving in-flight RPCs ``grace_s`` seconds.

    Yields:
        ``(server, port)``, already started.
    """
    server, port = create_server(
        tls,
        address,
        max_workers=max_workers,
        interceptors=interceptors,
        insecure=insecure,
        health_servicer=health_servicer,
    )
    try:
        if register is not None:
            register(server)
        handlers = tuple(handlers)
        if handlers:
            server.add_generic_rpc_handlers(handlers)
        server.start()
    except BaseException:
        server.stop(None)  # release the bound port
        raise
    try:
        yield server, port
    finally:
        server.stop(grace_s).wait()


def create_channel(
    target: str,
    tls: TlsMaterial | None,
    *,
    server_name: str | None = None,
    insecure: bool = False,
) -> grpc.Channel:
    """Open a channel to ``target`` with mutual TLS and the shared limits.

    Args:
        target: ``host:port``.
        tls: the CA that signs servers, and this node's certificate and key.
        server_name: expected server certificate name when it differs from the
            host in ``target`` (sets ``grpc.ssl_target_name_override``).
        insecure: plaintext, for tests against an ``insecure=True`` server.

    Raises:
        ConfigError: neither/both of ``tls`` and ``insecure``.
    """
    options: list[tuple[str, int | str]] = list(CHANNEL_OPTIONS)
    if insecure:
        if tls is not None:
            raise ConfigError("create_channel: pass either tls material or insecure=True, not both")
        _LOGGER.warning("gRPC channel to %s is INSECURE (no TLS): use only in tests", target)
        channel = grpc.insecure_channel(target, options=options)
    else:
        if tls is None:
            raise ConfigError("create_channel: tls material is required (insecure=True is for tests only)")
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        credentials = grpc.ssl_channel_credentials(
            root_certificates=tls.ca,
            private_key=tls.key,
            certificate_chain=tls.cert,
        )
        channel = grpc.secure_channel(target, credentials, options=options)
    try:
        _CHANNEL_TARGETS[channel] = target
    except TypeError:  # a channel type without weakref support: messages say "the peer"
        pass
    return channel


def peer_identity(context: grpc.ServicerContext) -> str:
    """The authenticated client's name: the CN of its verified certificate.

    Raises:
        AuthError: the call carries no verified client certificate (plaintext
            server, or a CN that is missing, repeated or not UTF-8).
    """
    try:
        auth = context.auth_context() or {}
    except Exception as exc:  # noqa: BLE001
        raise AuthError("cannot read the peer's authentication context") from exc
    values = auth.get("x509_common_name") or []
    if len(values) != 1:
        raise AuthError("the peer presented no client certificate with a single common name")
    value = values[0]
    try:
        name = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    except UnicodeDecodeError:
        raise AuthError("the peer's certificate common name is not valid UTF-8") from None
    if not name:
        raise AuthError("the peer's certificate has an empty common name")
    return name


def peer_certificate(context: grpc.ServicerContext) -> bytes:
    """The authenticated client's certificate (PEM), as verified by the TLS handshake.

    Raises:
        AuthError: the call carries no verified client certificate.
    """
    try:
        auth = context.auth_context() or {}
    except Exception as exc:  # noqa: BLE001
        raise AuthError("cannot read the peer's authentication context") from exc
    values = auth.get("x509_pem_cert") or []
    if len(values) != 1 or not values[0]:
        raise AuthError("the peer presented no client certificate")
    value = values[0]
    return value if isinstance(value, bytes) else str(value).encode("ascii")


class PeerCheckInterceptor(grpc.ServerInterceptor):
    """Run ``check(context)`` before every handler of the server, whatever its service or kind.

    ``check`` raises (e.g. :class:`~fedcredit.runtime.errors.RevokedError` for a revoked client certificate) to refuse
    the call; put this after :class:`~fedcredit.runtime.errors.ErrorInterceptor` (``create_server`` does), which maps the
    error to its status.
    """

    def __init__(self, check: Callable[[grpc.ServicerContext], None]) -> None:
        self._check = check

    def _unary(self, behavior: Callable[..., object]) -> Callable[..., object]:
        def wrapper(request: object, context: grpc.ServicerContext) -> object:
            self._check(context)
            return behavior(request, context)

        return wrapper

    def _streaming(self, behavior: Callable[..., Iterable[object]]) -> Callable[..., Iterator[object]]:
        def wrapper(request: object, context: grpc.ServicerContext) -> Iterator[object]:
            self._check(context)
            yield from behavior(request, context)

        return wrapper

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        des, ser = handler.request_deserializer, handler.response_serializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._unary(handler.unary_unary), des, ser)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(self._streaming(handler.unary_stream), des, ser)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(self._unary(handler.stream_unary), des, ser)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(self._streaming(handler.stream_stream), des, ser)
        return handler


def _refused_handshake(where: str) -> TlsHandshakeError:
    return TlsHandshakeError(
        f"{where} closed every connection during the TLS handshake: it does not accept this node's certificate. By its "
        f"clock this node's certificate may be expired or not yet valid (this machine's clock reads {clock_reading()}; "
        "compare the two clocks), or it is revoked or from another CA; the peer's log says which", refused=True)


def wait_healthy(
    channel: grpc.Channel,
    timeout_s: float = HEALTH_DEADLINE_S,
    *,
    service: str = _HEALTH_SERVICE,
    target: str | None = None,
) -> None:
    """Block until the server behind ``channel`` reports SERVING.

    Asks again while the server cannot be reached or says NOT_SERVING, all within ``timeout_s``. A TLS
    handshake failure that retrying cannot mend is raised at once (see :func:`handshake_error`).

    Raises:
        CertificateExpiredError / CertificateNotYetValidError: the server's certificate, by this machine's clock.
        TlsHandshakeError: the server's certificate does not verify, or the server closed every connection during
            the handshake (it refused this node's certificate) until ``timeout_s``.
        TransportError: not SERVING within ``timeout_s``; the message names the target and the last status seen.
    """
    where = target or _CHANNEL_TARGETS.get(channel) or "the server"
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    refused = 0  # answers that were a connection closed in the TLS handshake
    answers = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            # not wait_for_ready: a failed connection's reason (a certificate, a refused handshake) is seen at once
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=min(remaining, 2.0))
        except grpc.RpcError as exc:
            code = exc.code() if callable(getattr(exc, "code", None)) else None
            details = (exc.details() if callable(getattr(exc, "details", None)) else "") or ""
            last = f"{getattr(code, 'name', code)}: {details}"
            answers += 1
            if code == grpc.StatusCode.UNAVAILABLE:
                named = handshake_error(details, where)
                if named is not None:
                    raise named
                refused += "socket closed" in details.lower()
            elif code not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.DEADLINE_EXCEEDED):
                break
        else:
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
            last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            answers += 1
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    if answers >= 2 and refused == answers:
        raise _refused_handshake(where)
    raise TransportError(f"{where} is not healthy after {timeout_s:g}s (last status: {last})")


def chunk_bytes(data: bytes, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Split ``data`` into pieces of at most ``size`` bytes, in order.

    Empty ``data`` yields nothing: the caller's first stream message carries the
    header (and the total length), so an empty payload needs no chunk.

    Raises:
        ValueError: ``size`` is not positive.
    """
    if size <= 0:
        raise ValueError(f"chunk size must be positive, got {size}")
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])
