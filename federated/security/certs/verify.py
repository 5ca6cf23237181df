"""Checking certificates at run time: fingerprints, names, issuance, key usage, key pairs.

Owns what the rest of the runtime uses to trust a certificate the CA issued:
:func:`cert_fingerprint` (what ``revoked`` lists take), :func:`single_cn`,
:func:`verify_issued_cert` (issued by the job's CA to this name, valid now, allows this
usage) and :func:`load_key_pair` (a node's certificate and its matching private key),
used by :mod:`fedcredit.runtime.security.sealing`, :mod:`fedcredit.runtime.security.signing`, :mod:`fedcredit.runtime.security.revocation`
and the CLI.

It also holds :func:`check_cert_time`, with which a node refuses its own expired or not-yet-valid
certificates at start (:func:`~.layout.load_tls` and :func:`load_key_pair`).

It issues and writes nothing. It may import :mod:`fedcredit.runtime.errors` and ``cryptography``
only; no other module of :mod:`fedcredit.runtime.security.certs` (:mod:`.layout` imports it).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ...errors import CertificateExpiredError, CertificateNotYetValidError, ConfigError, CryptoError, clock_reading


def check_cert_time(cert: x509.Certificate, what: str, *, now: _dt.datetime | None = None) -> None:
    """Refuse a certificate that is not valid at ``now`` (default: this machine's clock), naming which way.

    A node checks its own certificates at start, so an expired or not-yet-valid one (or a clock that is wrong)
    is named at once, not as a connection that never becomes healthy.

    Args:
        cert: the certificate.
        what: how the message names it, e.g. ``"TLS certificate /etc/fedcredit/bank/tls.crt"``.

    Raises:
        CertificateExpiredError: ``now`` is after its end.
        CertificateNotYetValidError: ``now`` is before its start.
    """
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=_dt.timezone.utc)
    clock = clock_reading(now)
    if now > cert.not_valid_after_utc:
        raise CertificateExpiredError(
            f"{what} expired at {clock_reading(cert.not_valid_after_utc)}; this machine's clock reads {clock}. "
            "Renew the certificate (fedcredit certs request / sign), or fix this machine's clock if it is wrong")
    if now < cert.not_valid_before_utc:
        raise CertificateNotYetValidError(
            f"{what} is not valid before {clock_reading(cert.not_valid_before_utc)}; this machine's clock reads "
            f"{clock}. This clock is probably behind (or the CA's was ahead when it issued the certificate): set it right (NTP)")


def cert_fingerprint(cert: x509.Certificate | bytes) -> str:
    """The SHA-256 fingerprint of a certificate (object or PEM), lower-case hex: what ``revoked`` lists take."""
    if isinstance(cert, bytes):
        try:
            cert = x509.load_pem_x509_certificate(cert)
        except ValueError:
            raise ConfigError("not a PEM certificate") from None
    return cert.fingerprint(hashes.SHA256()).hex()


def single_cn(cert: x509.Certificate) -> str | None:
    """The certificate's one common name, or None if it has none or several."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(attrs) != 1:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else None


def verify_issued_cert(pem: bytes, ca_cert_pem: bytes, expected_name: str, *, what: str, usage: str,
                       now: _dt.datetime | None = None) -> x509.Certificate:
    """Check that ``pem`` was issued by the CA to ``expected_name``, is valid ``now`` and allows ``usage``.

    ``what`` names the certificate in messages ("sealing", "signing"); ``usage`` is a
    :class:`x509.KeyUsage` attribute (``key_agreement``, ``digital_signature``). The
    caller checks the key type. Any failure raises :class:`CryptoError`.
    """
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError):
        raise CryptoError(f"{what} certificate for {expected_name!r} is not a PEM certificate") from None
    try:
        ca = x509.load_pem_x509_certificate(ca_cert_pem)
    except (ValueError, TypeError):
        raise CryptoError("the CA certificate is not a PEM certificate") from None
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CryptoError(f"{what} certificate for {expected_name!r} is not signed by the job's CA") from None
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=_dt.timezone.utc)
    if now < cert.not_valid_before_utc:
        raise CryptoError(f"{what} certificate for {expected_name!r} is not valid before {cert.not_valid_before_utc.isoformat()}")
    if now > cert.not_valid_after_utc:
        raise CryptoError(f"{what} certificate for {expected_name!r} expired at {cert.not_valid_after_utc.isoformat()}")
    cn = single_cn(cert)
    if cn != expected_name:
        raise CryptoError(f"{what} certificate belongs to {cn!r}, expected {expected_name!r}")
    try:
        key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CryptoError(f"{what} certificate for {expected_name!r} has no keyUsage extension") from None
    if not getattr(key_usage, usage):
        words = {"key_agreement": "key agreement", "digital_signature": "digital signatures"}.get(usage, usage)
        raise CryptoError(f"{what} certificate for {expected_name!r} does not allow {words}")
    return cert


def load_key_pair(cert: Path, key: Path, *, what: str, key_type: type, key_name: str,
                  missing_hint: str = "") -> tuple[str, object, bytes]:
    """Load a node's certificate and matching private key: (CN, private key, certificate PEM).

    ``what`` names the pair in messages ("sealing", "signing"); the key must be a
    ``key_type`` (named ``key_name``) and match the certificate, and the certificate must be valid now.
    Raises ConfigError (:class:`CertificateExpiredError`, :class:`CertificateNotYetValidError` for its time).
    """
    try:
        cert_pem = Path(cert).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} certificate {cert}: {exc.strerror or exc}{missing_hint}") from None
    try:
        key_pem = Path(key).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} key {key}: {exc.strerror or exc}") from None
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise ConfigError(f"{what} certificate {cert} is not a PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{what} key {key} is not an unencrypted PEM private key") from None
    if not isinstance(private, key_type):
        raise ConfigError(f"{what} key {key} is not an {key_name} key")
    name = single_cn(certificate)
    if name is None:
        raise ConfigError(f"{what} certificate {cert} has no single common name")
    try:
        cert_public = certificate.public_key()
    except Exception:  # noqa: BLE001 - unsupported key types raise various errors
        raise ConfigError(f"{what} certificate {cert} has an unsupported public key") from None
    if cert_public != private.public_key():  # type: ignore[attr-defined]
        raise ConfigError(f"{what} key {key} does not match certificate {cert}")
    check_cert_time(certificate, f"{what} certificate {cert}")
    return name, private, cert_pem
