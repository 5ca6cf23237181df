"""The error hierarchy shared by protocols and runtime.

Every error carries a stable ``code`` (a short string that never changes once
released) so callers, logs and the gRPC layer can match on it. The runtime maps
codes to gRPC status in one place (:mod:`fedcredit.runtime.errors`).
"""

from __future__ import annotations

__all__ = [
    "FedCreditError",
    "ProtocolError",
    "BudgetError",
    "CryptoError",
    "KeyMismatchError",
    "DataError",
    "EngineUnavailableError",
]


class FedCreditError(Exception):
    """Base of every error fedcredit raises on purpose.

    ``message`` is for the local user and log and may name files, paths and
    values. :attr:`public_message` is what may leave the node (the job status
    the coordinator, the operator and the peer read): a stable code's text,
    field or column names and line numbers, never a data value or a path.
    """

    code: str = "FEDCREDIT"
    #: what leaves the node when a subclass gives no ``public`` text (None: the message itself)
    default_public: str | None = None

    def __init__(self, message: str, *, public: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self._public = public

    def __str__(self) -> str:
        return self.message

    @property
    def public_message(self) -> str:
        if self._public is not None:
            return self._public
        return self.default_public if self.default_public is not None else self.message


class ProtocolError(FedCreditError):
    """A message arrived out of order, from the wrong role, or of the wrong type."""

    code = "PROTOCOL"


class BudgetError(FedCreditError):
    """A fixed-point / overflow plan cannot fit the key size. Raised before any work."""

    code = "BUDGET"


class CryptoError(FedCreditError):
    """A cryptographic check failed (bad point, decryption failure, bad seal)."""

    code = "CRYPTO"


class KeyMismatchError(CryptoError):
    """Values encrypted under different public keys were combined."""

    code = "KEY_MISMATCH"


class EngineUnavailableError(FedCreditError):
    """The job asks for an engine whose optional dependency this node lacks (the ``ckks`` extra's numba)."""

    code = "ENGINE_UNAVAILABLE"


class DataError(FedCreditError):
    """Input data is unusable. The message names the file, row and column (and shows the bad cells);
    the public message names only the column and lines, or nothing."""

    code = "DATA"
    default_public = "the party's input data is unusable; its log names the file, line and column"
