"""Revoked certificates: the coordinator's deny-list (``revoked:`` in its config).

An entry names one certificate, by its SHA-256 fingerprint or by its serial
number (both in hex; colons and case do not matter, so OpenSSL's output can be
pasted)::

    revoked:
      - sha256:3f1c...e9     # openssl x509 -noout -fingerprint -sha256 -in tls.crt
      - serial:5a07...c1     # openssl x509 -noout -serial -in tls.crt

Serials are checked only for certificates of the job's CA (every certificate
the coordinator accepts chains to it, and the CA draws 159-bit random serials).
The coordinator checks the caller's TLS certificate on every RPC
(:class:`fedcredit.runtime.security.transport.PeerCheckInterceptor`) and a party's signing and
sealing certificates when it registers; a match fails with
:class:`~fedcredit.runtime.errors.RevokedError` (``UNAUTHENTICATED``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import grpc
from cryptography import x509

from .certs import cert_fingerprint
from ..errors import ConfigError, RevokedError
from .transport import peer_certificate, peer_identity

__all__ = ["parse_entry", "DenyList"]

_HEX = re.compile(r"[0-9a-f]+")


def parse_entry(entry: str) -> tuple[str, str]:
    """``("sha256", 64 hex digits)`` or ``("serial", hex without leading zeros)``; ConfigError if malformed."""
    kind, sep, value = str(entry).partition(":")
    kind, value = kind.strip().lower(), value.strip().lower().replace(":", "")
    if not sep or kind not in ("sha256", "serial") or _HEX.fullmatch(value) is None:
        raise ConfigError(f"revoked entry {entry!r}: use 'sha256:<fingerprint in hex>' or 'serial:<serial number in hex>'")
    if kind == "sha256" and len(value) != 64:
        raise ConfigError(f"revoked entry {entry!r}: a SHA-256 fingerprint has 64 hex digits, not {len(value)}")
    if kind == "serial":
        value = value.lstrip("0") or "0"
        if len(value) > 40:
            raise ConfigError(f"revoked entry {entry!r}: a serial number has at most 20 bytes (40 hex digits)")
    return kind, value


@lru_cache(maxsize=256)
def _ids(pem: bytes) -> tuple[str, str]:
    """(SHA-256 fingerprint, serial) of a PEM certificate, both lower-case hex; cached: callers repeat."""
    cert = x509.load_pem_x509_certificate(pem)
    return cert_fingerprint(cert), format(cert.serial_number, "x")


@dataclass(frozen=True)
class DenyList:
    """The certificates the coordinator refuses, from its config's ``revoked`` entries."""

    fingerprints: frozenset[str] = frozenset()
    serials: frozenset[str] = frozenset()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> DenyList:
        parsed = [parse_entry(e) for e in entries]
        return cls(frozenset(v for k, v in parsed if k == "sha256"), frozenset(v for k, v in parsed if k == "serial"))

    def __bool__(self) -> bool:
        return bool(self.fingerprints or self.serials)

    def check_pem(self, pem: bytes, what: str, name: str) -> None:
        """Raise :class:`RevokedError` if the PEM certificate ``pem`` (``name``'s ``what`` certificate) is revoked.

        A certificate that cannot be parsed is refused too: this runs on certificates the caller sent. Empty
        ``pem`` (no certificate) passes: there is nothing to trust.
        """
        if not self or not pem:
            return
        try:
            fingerprint, serial = _ids(bytes(pem))
        except ValueError:
            raise RevokedError(f"{name}'s {what} certificate cannot be read, so it cannot be checked against the revocation list") from None
        if fingerprint in self.fingerprints or serial in self.serials:
            raise RevokedError(f"{name}'s {what} certificate (serial {serial}) is revoked by this coordinator")

    def check_peer(self, context: grpc.ServicerContext) -> None:
        """Refuse a caller whose TLS certificate is revoked; for :class:`fedcredit.runtime.security.transport.PeerCheckInterceptor`."""
        if self:
            self.check_pem(peer_certificate(context), "TLS", peer_identity(context))
