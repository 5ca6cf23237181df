"""Runtime errors and the ONE place where errors become gRPC status codes.

Every error fedcredit raises on purpose is a :class:`FedCreditError` with a
stable ``code``. On the server, :class:`ErrorInterceptor` turns an error into a
gRPC status (via :func:`to_status_code`) and puts the error's ``code`` in the
trailing metadata key :data:`ERROR_CODE_KEY`; on the client,
:func:`from_rpc_error` turns the failed RPC back into the same error class with
the server's message. Anything that is not a :class:`FedCreditError` becomes
``INTERNAL`` with a generic message: details go to the server log, never to the
client.
"""

from __future__ import annotations

import datetime as _dt
import errno as _errno
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from fedcredit.protocols.errors import (
    BudgetError,
    CryptoError,
    DataError,
    EngineUnavailableError,
    FedCreditError,
    KeyMismatchError,
    ProtocolError,
)

__all__ = [
    # re-exported from fedcredit.protocols.errors
    "FedCreditError",
    "ProtocolError",
    "BudgetError",
    "CryptoError",
    "KeyMismatchError",
    "DataError",
    "EngineUnavailableError",
    # runtime errors
    "ConfigError",
    "AuthError",
    "RevokedError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "TransportError",
    "JobFailedError",
    "DeadlineError",
    "QuotaError",
    "RateLimitedError",
    "MessageNotKeptError",
    "RemoteError",
    "StorageError",
    "storage_error",
    "CertificateExpiredError",
    "CertificateNotYetValidError",
    "TlsHandshakeError",
    "clock_reading",
    "handshake_error",
    # the mapping
    "ERROR_CODE_KEY",
    "INTERNAL_MESSAGE",
    "to_status_code",
    "client_message",
    "from_rpc_error",
    "ErrorInterceptor",
]

_LOGGER = logging.getLogger(__name__)

#: Trailing-metadata key carrying the stable error code from server to client.
ERROR_CODE_KEY = "fedcredit-error-code"

#: The only message a client ever sees for an unexpected server-side exception.
INTERNAL_MESSAGE = "internal error (see the server log)"

# Status details travel in an HTTP/2 trailer; clients refuse oversized metadata
# (8 KiB by default), so long messages are cut.
_MAX_DETAILS_CHARS = 2000


class ConfigError(FedCreditError):
    """Configuration or local files are unusable (bad name, missing cert, ...)."""

    code = "CONFIG"


class AuthError(FedCreditError):
    """The peer is not authenticated (no client certificate, no identity)."""

    code = "AUTH"


class RevokedError(AuthError):
    """The peer's certificate is on the coordinator's deny-list (``revoked``): it no longer authenticates anyone."""

    code = "REVOKED"


class PermissionDeniedError(FedCreditError):
    """The peer is authenticated but not allowed to do this."""

    code = "PERMISSION"


class NotFoundError(FedCreditError):
    """A job, party or message that was named does not exist."""

    code = "NOT_FOUND"


class ConflictError(FedCreditError):
    """The thing already exists or the request conflicts with the current state."""

    code = "CONFLICT"


class TransportError(FedCreditError):
    """A peer cannot be reached or the connection failed."""

    code = "TRANSPORT"


class JobFailedError(FedCreditError):
    """A job ended in failure; the message says which step and why."""

    code = "JOB_FAILED"


class DeadlineError(FedCreditError):
    """An RPC or a job step did not finish in time."""

    code = "DEADLINE"


class QuotaError(FedCreditError):
    """A request exceeds a limit of the relay: the message size, a job's quota of bytes or messages, or a party's
    rate of messages. The message names the limit and its setting, never a data value."""

    code = "QUOTA"


class RateLimitedError(QuotaError):
    """A party sent faster than the relay's per-party rate allows. Unlike the other quotas it is transient: the
    call was refused and nothing else changed, so the sender may try again after a pause (the party's relay
    endpoint does, with backoff)."""

    code = "RATE_LIMITED"


class MessageNotKeptError(QuotaError):
    """A receiver asked the relay again for a message it had taken, and the relay no longer keeps it: delivered
    messages are kept for redelivery only within ``relay.retain_bytes`` per job. Retrying cannot help; the job fails
    with this reason."""

    code = "MESSAGE_NOT_KEPT"


class RemoteError(FedCreditError):
    """The peer failed with a status that carries no fedcredit error code.

    Typically ``INTERNAL`` (an unexpected server-side exception) or a status
    produced by gRPC itself. ``status`` holds the gRPC status code.
    """

    code = "REMOTE"

    def __init__(self, message: str, status: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.status = status


class StorageError(FedCreditError):
    """A node cannot write (or read) its own files: a full or read-only disk, a missing folder, no permission.

    The local message names the path, the system's reason and its errno name (``cannot write
    /srv/bank/work/jobs/j1/result.json: No space left on device [ENOSPC]``); what leaves the node
    (:attr:`public_message`) names neither the path nor anything in the file. ``path`` and ``errno``
    are kept on the instance."""

    code = "STORAGE"
    default_public = "a node cannot write its files (disk full, read-only or not permitted); the node's log names the path"

    def __init__(self, message: str, *, public: str | None = None, path: str | None = None, errno: int | None = None) -> None:
        super().__init__(message, public=public)
        self.path = path
        self.errno = errno


class CertificateExpiredError(ConfigError):
    """A certificate has expired by this machine's clock: this node's own (checked at start) or a peer's (seen in the
    TLS handshake). The message names the certificate, its end and the clock's reading, so a wrong clock shows."""

    code = "CERT_EXPIRED"


class CertificateNotYetValidError(ConfigError):
    """A certificate is not valid yet by this machine's clock: almost always a clock that is behind (or a certificate
    issued on a machine whose clock is ahead). The message names the certificate, its start and the clock's reading."""

    code = "CERT_NOT_YET_VALID"


class TlsHandshakeError(TransportError):
    """The TLS handshake with a peer failed: its certificate does not verify against this node's CA, or it refused
    this node's certificate (revoked, another CA, or expired / not yet valid by the peer's clock).

    ``refused``: the peer closed every connection during the handshake (it refused this node's certificate, or
    something between them closes connections); otherwise this node refused the peer's certificate."""

    code = "TLS_HANDSHAKE"

    def __init__(self, message: str, *, public: str | None = None, refused: bool = False) -> None:
        super().__init__(message, public=public)
        self.refused = refused


def clock_reading(now: _dt.datetime | None = None) -> str:
    """This machine's clock as messages about certificate times print it (UTC, to the second)."""
    return (now or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y-%m-%d %H:%M:%S UTC")


def handshake_error(details: str, where: str) -> FedCreditError | None:
    """The error a failed connection's status ``details`` show, when they show a TLS handshake failure; else None.

    gRPC reports a handshake failure as ``UNAVAILABLE`` with the TLS library's words in the details. Those that
    retrying cannot mend are named: the peer's certificate expired or not yet valid by this machine's clock
    (:class:`CertificateExpiredError`, :class:`CertificateNotYetValidError`, with the clock's reading, so a wrong
    clock shows), or not verifying against this node's CA (:class:`TlsHandshakeError`).
    """
    lowered = details.lower()
    if "certificate has expired" in lowered:
        return CertificateExpiredError(
            f"{where}'s TLS certificate has expired by this machine's clock (it reads {clock_reading()}): the peer must "
            "renew its certificate, or this machine's clock is ahead: set it right (NTP)")
    if "certificate is not yet valid" in lowered:
        return CertificateNotYetValidError(
            f"{where}'s TLS certificate is not valid yet by this machine's clock (it reads {clock_reading()}): this clock "
            "is probably behind, or the peer's certificate was issued with a clock ahead: set it right (NTP)")
    if "handshake" in lowered or "certificate_verify_failed" in lowered or "ssl_error" in lowered:
        marker = "CERTIFICATE_VERIFY_FAILED:"
        reason = details.split(marker, 1)[1].strip().removesuffix(": OK") if marker in details else details
        return TlsHandshakeError(f"the TLS handshake with {where} failed: its certificate does not verify against this "
                                 f"node's CA ({reason})")
    return None


def storage_error(exc: OSError, path: str | os.PathLike[str] | None = None, action: str = "write") -> StorageError:
    """The :class:`StorageError` for ``exc``, naming ``path`` (default: the path the error names) and its errno.

    Args:
        exc: the ``OSError`` raised by a file operation.
        path: the file or folder being written, when the error does not name it (``os.write`` on a full disk).
        action: the verb of the message: ``write``, ``create``, ``read``.
    """
    if isinstance(exc, StorageError):
        return exc
    where = os.fspath(path) if path is not None else exc.filename
    reason = exc.strerror or str(exc) or type(exc).__name__
    name = _errno.errorcode.get(exc.errno, "") if isinstance(exc.errno, int) else ""
    message = f"cannot {action} {where if where is not None else 'a file'}: {reason}" + (f" [{name}]" if name else "")
    return StorageError(message, path=str(where) if where is not None else None, errno=exc.errno)


# --------------------------------------------------------------------------
# The one mapping table. Order matters: the first isinstance match wins, so
# subclasses (KeyMismatchError < CryptoError) resolve through their parents.
# --------------------------------------------------------------------------
_STATUS_TABLE: tuple[tuple[type[FedCreditError], grpc.StatusCode], ...] = (
    (CertificateExpiredError, grpc.StatusCode.FAILED_PRECONDITION),
    (CertificateNotYetValidError, grpc.StatusCode.FAILED_PRECONDITION),
    (TlsHandshakeError, grpc.StatusCode.UNAVAILABLE),
    (DataError, grpc.StatusCode.INVALID_ARGUMENT),
    (ConfigError, grpc.StatusCode.INVALID_ARGUMENT),
    (BudgetError, grpc.StatusCode.INVALID_ARGUMENT),
    (CryptoError, grpc.StatusCode.INVALID_ARGUMENT),
    (ProtocolError, grpc.StatusCode.FAILED_PRECONDITION),
    (EngineUnavailableError, grpc.StatusCode.FAILED_PRECONDITION),
    (AuthError, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (ConflictError, grpc.StatusCode.ALREADY_EXISTS),
    (DeadlineError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (TransportError, grpc.StatusCode.UNAVAILABLE),
    (JobFailedError, grpc.StatusCode.ABORTED),
    (QuotaError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (StorageError, grpc.StatusCode.FAILED_PRECONDITION),
)

# Stable code -> class, used by the client to re-create the server's error.
_CLASS_BY_CODE: dict[str, type[FedCreditError]] = {
    cls.code: cls
    for cls in (
        FedCreditError,
        ProtocolError,
        BudgetError,
        CryptoError,
        KeyMismatchError,
        DataError,
        ConfigError,
        AuthError,
        RevokedError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        TransportError,
        JobFailedError,
        DeadlineError,
        QuotaError,
        RateLimitedError,
        MessageNotKeptError,
        RemoteError,
        StorageError,
        CertificateExpiredError,
        CertificateNotYetValidError,
        TlsHandshakeError,
    )
}

# Used when a failed RPC carries no fedcredit code (e.g. gRPC itself failed it).
_CLASS_BY_STATUS: dict[grpc.StatusCode, type[FedCreditError]] = {
    grpc.StatusCode.UNAUTHENTICATED: AuthError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: ConflictError,
    grpc.StatusCode.FAILED_PRECONDITION: ProtocolError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: QuotaError,
}


def to_status_code(err: BaseException) -> grpc.StatusCode:
    """Map an exception to the gRPC status the server reports.

    Args:
        err: any exception.

    Returns:
        The status from the table above; ``INTERNAL`` for anything that is not
        a mapped :class:`FedCreditError` (including a bare ``FedCreditError``).
    """
    for cls, status in _STATUS_TABLE:
        if isinstance(err, cls):
            return status
    return grpc.StatusCode.INTERNAL


def client_message(err: BaseException) -> str:
    """The status details a client may see for ``err``.

    A :class:`FedCreditError` message is written for users and is passed on
    (cut to a safe length); anything else becomes :data:`INTERNAL_MESSAGE`.
    """
    if isinstance(err, FedCreditError):
        message = err.message
        if len(message) > _MAX_DETAILS_CHARS:
            message = message[: _MAX_DETAILS_CHARS - 3] + "..."
        return message
    return INTERNAL_MESSAGE


def _trailing_code(e: grpc.RpcError) -> str | None:
    trailing = getattr(e, "trailing_metadata", None)
    if not callable(trailing):
        return None
    try:
        metadata = trailing() or ()
    except Exception:  # noqa: BLE001 - a broken call object must not mask the error
        return None
    for key, value in metadata:
        if key == ERROR_CODE_KEY:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


def _call_attr(e: grpc.RpcError, name: str) -> Any:
    attr = getattr(e, name, None)
    if not callable(attr):
        return None
    try:
        return attr()
    except Exception:  # noqa: BLE001
        return None


def from_rpc_error(e: grpc.RpcError, *, target: str | None = None) -> FedCreditError:
    """Turn a failed RPC back into the error the server raised.

    Args:
        e: the ``grpc.RpcError`` a stub call raised.
        target: the address that was called, used in transport messages.

    Returns:
        An instance (not raised) of the class named by the server's
        :data:`ERROR_CODE_KEY` trailer with the server's message. Without that
        trailer: ``UNAVAILABLE`` -> :class:`TransportError` ("cannot reach
        ..."), ``DEADLINE_EXCEEDED`` -> :class:`DeadlineError`, a few other
        statuses -> their natural class, everything else -> :class:`RemoteError`;
        an ``UNAVAILABLE`` that is a failed TLS handshake -> :func:`handshake_error`'s.
        The gRPC status is kept on the instance as ``grpc_status``.
    """
    status = _call_attr(e, "code")
    details = _call_attr(e, "details") or ""
    where = target or "the peer"
    code = _trailing_code(e)

    err: FedCreditError
    cls = _CLASS_BY_CODE.get(code) if code is not None else None
    if cls is RemoteError:
        err = RemoteError(details, status)
    elif cls is not None:
        err = cls(details)
    elif status == grpc.StatusCode.UNAVAILABLE:
        err = handshake_error(details, where) or TransportError(f"cannot reach {where}: {details or 'unavailable'}")
    elif status == grpc.StatusCode.DEADLINE_EXCEEDED:
        err = DeadlineError(f"call to {where} exceeded its deadline: {details or 'deadline exceeded'}")
    elif status in _CLASS_BY_STATUS:
        err = _CLASS_BY_STATUS[status](details or str(status))
    else:
        name = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
        err = RemoteError(f"{where} failed with {name}: {details}", status)
    err.grpc_status = status  # type: ignore[attr-defined]
    return err


# --------------------------------------------------------------------------
# Server side
# --------------------------------------------------------------------------
def _is_handler_abort(exc: Exception, context: grpc.ServicerContext) -> bool:
    """True when ``exc`` is the bare ``Exception()`` that ``context.abort`` raises."""
    if type(exc) is not Exception or exc.args:
        return False
    try:
        return context.code() is not None
    except Exception:  # noqa: BLE001
        return False


def _handle(exc: Exception, context: grpc.ServicerContext, method: str) -> None:
    """Abort the RPC for ``exc``. Always raises."""
    if _is_handler_abort(exc, context):
        raise exc  # the handler already chose its status with context.abort
    try:
        active = context.is_active()
    except Exception:  # noqa: BLE001
        active = True
    if not active:
        # The client went away (cancelled, deadline) or the server is stopping; nobody is listening. Ending the
        # call by abort (not by raising) keeps gRPC from logging a traceback for it.
        _LOGGER.debug("%s: RPC no longer active: %r", method, exc)
        context.abort(grpc.StatusCode.CANCELLED, "the call ended before its handler did")
    status = to_status_code(exc)
    if isinstance(exc, FedCreditError):
        _LOGGER.info("%s failed: %s [%s -> %s]", method, exc.message, exc.code, status.name)
        context.set_trailing_metadata(((ERROR_CODE_KEY, exc.code),))
    else:
        _LOGGER.error("%s raised an unexpected exception", method, exc_info=exc)
    context.abort(status, client_message(exc))


def _wrap_unary_response(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    def wrapper(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behavior(request, context)
        except Exception as exc:  # noqa: BLE001 - mapped in one place
            _handle(exc, context, method)
            raise  # unreachable: _handle always raises

    return wrapper


def _wrap_stream_response(behavior: Callable[..., Any], method: str) -> Callable[..., Iterator[Any]]:
    def wrapper(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            # Calling the behavior may already fail (a plain function that
            # validates before returning an iterator); iterating may fail later.
            yield from behavior(request, context)
        except Exception as exc:  # noqa: BLE001 - mapped in one place
            _handle(exc, context, method)
            raise

    return wrapper


class ErrorInterceptor(grpc.ServerInterceptor):
    """Translate exceptions raised by handlers into gRPC status, in one place.

    * :class:`FedCreditError` -> ``context.abort(to_status_code(err), message)``
      with trailing metadata ``fedcredit-error-code: err.code``.
    * anything else -> logged with its traceback, then ``INTERNAL`` with
      :data:`INTERNAL_MESSAGE` (no exception text reaches the client).
    * a handler's own ``context.abort(...)`` is left untouched.

    Works for all four handler kinds; streaming responses are wrapped in a
    generator so an exception raised mid-stream is mapped the same way.
    """

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = getattr(handler_call_details, "method", "?")
        des, ser = handler.request_deserializer, handler.response_serializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary_response(handler.unary_unary, method), des, ser
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream_response(handler.unary_stream, method), des, ser
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary_response(handler.stream_unary, method), des, ser
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_stream_response(handler.stream_stream, method), des, ser
            )
        return handler
