"""The error hierarchy shared by protocols and runtime.

Every error carries a stable ``code`` (a short string that never changes once
released) so callers, logs and the gRPC layer can match on it. The runtime maps
codes to gRPC status in one place (:mod:`federated.errors`).
"""

from __future__ import annotations

__all__ = [
    "FedCreditError",
    "ProtocolError",
    "BudgetError",
    "CryptoError",
    "KeyMismatchError",
    "DataError",
]


class FedCreditError(Exception):
    """Base of every error fedcredit raises on purpose."""

    code: str = "FEDCREDIT"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


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


class DataError(FedCreditError):
    """Input data is unusable. The message names the file, row and column."""

    code = "DATA"
