"""Ed25519 signatures for envelopes and transcripts.

Every node has a static Ed25519 key certified by the job's CA (``sign.crt``,
see :mod:`fedcredit.runtime.security.certs`; keyUsage digitalSignature + contentCommitment).
It signs two things, always as a 32-byte SHA-256 digest:

* each envelope it sends: ``envelope_digest(envelope_fields(env))``, the
  SHA-256 of the canonical JSON of :data:`ENVELOPE_FIELDS` -- job, message id,
  sender, receiver, step, sequence, payload type, size, digest, sealed flag and
  classification. The signature travels with the envelope, so the receiver and
  the relay can record exactly what the sender committed to;
* each record of its own transcript (:mod:`fedcredit.runtime.transcript`).

Canonical JSON is ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8: key order and whitespace never change a
digest.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .certs import load_key_pair, single_cn, verify_issued_cert
from ..errors import CryptoError

__all__ = [
    "ENVELOPE_FIELDS",
    "DIGEST_BYTES",
    "SIGNATURE_BYTES",
    "SigningIdentity",
    "load_signing_identity",
    "verify_signing_cert",
    "signing_public_key",
    "canonical_json",
    "sha256_hex",
    "envelope_fields",
    "envelope_digest",
    "sign_digest",
    "verify_digest",
    "cert_fingerprint",
]

#: The envelope fields a sender signs, in proto field order (1-11).
ENVELOPE_FIELDS: tuple[str, ...] = (
    "job_id",
    "message_id",
    "sender",
    "receiver",
    "step",
    "sequence",
    "payload_type",
    "payload_size",
    "payload_sha256",
    "sealed",
    "classification",
)

DIGEST_BYTES = 32
SIGNATURE_BYTES = 64


@dataclass(frozen=True)
class SigningIdentity:
    """A node's signing identity. The private key is kept out of ``repr``."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)
    cert_pem: bytes = field(repr=False)


def load_signing_identity(cert: Path, key: Path) -> SigningIdentity:
    """Load this node's signing certificate and Ed25519 private key.

    Raises:
        ConfigError: a file is missing/unreadable/not PEM, the key is not
            Ed25519, the certificate has no single CN, or key and certificate
            do not match.
    """
    name, private, cert_pem = load_key_pair(
        cert, key, what="signing", key_type=Ed25519PrivateKey, key_name="Ed25519",
        missing_hint=" (certificates made before signing keys existed need `fedcredit certs init --force`)")
    return SigningIdentity(name=name, private_key=private, cert_pem=cert_pem)


def _load_cert(pem: bytes, who: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError):
        raise CryptoError(f"signing certificate for {who!r} is not a PEM certificate") from None


def signing_public_key(pem: bytes, expected_name: str | None = None) -> Ed25519PublicKey:
    """The Ed25519 key of a signing certificate, WITHOUT checking who issued it.

    For reading transcripts when no CA is at hand; anything trusting the key
    must use :func:`verify_signing_cert`.

    Raises:
        CryptoError: not PEM, CN differs from ``expected_name`` (if given), or
            the key is not Ed25519.
    """
    who = expected_name or "?"
    cert = _load_cert(pem, who)
    if expected_name is not None:
        cn = single_cn(cert)
        if cn != expected_name:
            raise CryptoError(f"signing certificate belongs to {cn!r}, expected {expected_name!r}")
    try:
        public = cert.public_key()
    except Exception:  # noqa: BLE001
        raise CryptoError(f"signing certificate for {who!r} has an unsupported key") from None
    if not isinstance(public, Ed25519PublicKey):
        raise CryptoError(f"signing certificate for {who!r} does not hold an Ed25519 key")
    return public


def verify_signing_cert(
    pem: bytes,
    ca_cert_pem: bytes,
    expected_name: str,
    *,
    now: _dt.datetime | None = None,
) -> Ed25519PublicKey:
    """Check a node's signing certificate and return its Ed25519 public key.

    Checks: signed directly by the CA, ``now`` within the validity window, the
    single CN equals ``expected_name``, keyUsage allows digitalSignature, and
    the key is Ed25519.

    Args:
        pem: the node's ``sign.crt``.
        ca_cert_pem: the job's CA certificate.
        expected_name: the node the certificate must belong to.
        now: the time to check validity at (UTC; naive means UTC). Default: now.
            Auditors pass the time the signature was made.

    Raises:
        CryptoError: any check fails; the message says which.
    """
    verify_issued_cert(pem, ca_cert_pem, expected_name, what="signing", usage="digital_signature", now=now)
    return signing_public_key(pem, expected_name)


def canonical_json(obj: Any) -> bytes:
    """The canonical UTF-8 JSON of ``obj``: sorted keys, no whitespace, no ASCII escaping."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def envelope_fields(env: Any) -> dict[str, Any]:
    """The signed fields of a ``fedcredit.v1.Envelope`` as a JSON-ready dict.

    ``payload_sha256`` becomes lowercase hex; ``sequence`` and ``payload_size``
    ints; ``sealed`` a bool. ``sent_unix_ms`` and ``signature`` are not signed.
    """
    return {
        "job_id": str(env.job_id),
        "message_id": str(env.message_id),
        "sender": str(env.sender),
        "receiver": str(env.receiver),
        "step": str(env.step),
        "sequence": int(env.sequence),
        "payload_type": str(env.payload_type),
        "payload_size": int(env.payload_size),
        "payload_sha256": bytes(env.payload_sha256).hex(),
        "sealed": bool(env.sealed),
        "classification": str(env.classification),
    }


def envelope_digest(fields: dict[str, Any]) -> bytes:
    """SHA-256 (32 bytes) of the canonical JSON of an :func:`envelope_fields` dict."""
    return hashlib.sha256(canonical_json(fields)).digest()


def sign_digest(identity: SigningIdentity, digest: bytes) -> bytes:
    """Ed25519-sign a 32-byte digest; returns the 64-byte signature."""
    if len(digest) != DIGEST_BYTES:
        raise ValueError(f"expected a {DIGEST_BYTES}-byte digest, got {len(digest)} bytes")
    return identity.private_key.sign(bytes(digest))


def verify_digest(public_key: Ed25519PublicKey, digest: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature over a digest.

    Raises:
        CryptoError: the signature is malformed or does not verify.
    """
    if not isinstance(public_key, Ed25519PublicKey):
        raise CryptoError("signature check needs an Ed25519 public key")
    try:
        public_key.verify(bytes(signature), bytes(digest))
    except (InvalidSignature, TypeError, ValueError):
        raise CryptoError("signature does not verify") from None


def cert_fingerprint(pem: bytes) -> str:
    """SHA-256 (hex) of a PEM certificate's DER encoding.

    Raises:
        CryptoError: ``pem`` is not a PEM certificate.
    """
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError):
        raise CryptoError("not a PEM certificate") from None
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
