"""End-to-end sealing of party-to-party payloads relayed by the coordinator.

Each party has a static X25519 key certified by the job's CA (``seal.crt``,
see :mod:`federated.certs`). Two parties derive directional AES-256-GCM keys::

    ikm  = X25519(own private, peer public)
    salt = SHA-256(job_id)
    key(sender -> receiver) = HKDF-SHA256(ikm, salt,
                                          info = b"fedcredit/v1/seal|" + sender + b"|" + receiver,
                                          length = 32)

A sealed payload is ``nonce (12) || ciphertext || tag (16)`` with the envelope
header as associated data, so the coordinator can route it but can neither read
nor alter it, nor move it to another job, direction or header.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from federated.certs import NAME_PATTERN
from federated.certs import load_key_pair, verify_issued_cert
from federated.errors import ConfigError, CryptoError

__all__ = [
    "NONCE_BYTES",
    "TAG_BYTES",
    "SEAL_INFO_PREFIX",
    "SealIdentity",
    "load_seal_identity",
    "verify_peer_seal_cert",
    "Sealer",
]

NONCE_BYTES = 12
TAG_BYTES = 16
SEAL_INFO_PREFIX = b"fedcredit/v1/seal|"


@dataclass(frozen=True)
class SealIdentity:
    """A party's sealing identity. The private key is kept out of ``repr``."""

    name: str
    private_key: X25519PrivateKey = field(repr=False)
    cert_pem: bytes = field(repr=False)


def load_seal_identity(cert: Path, key: Path) -> SealIdentity:
    """Load this party's sealing certificate and X25519 private key.

    Raises:
        ConfigError: a file is missing/unreadable/not PEM, the key is not
            X25519, the certificate has no single CN, or key and certificate
            do not match.
    """
    name, private, cert_pem = load_key_pair(cert, key, what="sealing", key_type=X25519PrivateKey, key_name="X25519")
    return SealIdentity(name=name, private_key=private, cert_pem=cert_pem)


def verify_peer_seal_cert(
    pem: bytes,
    ca_cert_pem: bytes,
    expected_name: str,
    *,
    now: _dt.datetime | None = None,
) -> X25519PublicKey:
    """Check a peer's sealing certificate and return its X25519 public key.

    Checks: signed directly by the CA, ``now`` within the validity window, the
    single CN equals ``expected_name``, keyUsage allows keyAgreement, and the
    key is X25519.

    Args:
        pem: the peer's ``seal.crt``.
        ca_cert_pem: the job's CA certificate.
        expected_name: the party the certificate must belong to.
        now: the time to check validity at (UTC; naive means UTC). Default: now.

    Raises:
        CryptoError: any check fails; the message says which.
    """
    cert = verify_issued_cert(pem, ca_cert_pem, expected_name, what="sealing", usage="key_agreement", now=now)
    try:
        public = cert.public_key()
    except Exception:  # noqa: BLE001
        raise CryptoError(f"sealing certificate for {expected_name!r} has an unsupported key") from None
    if not isinstance(public, X25519PublicKey):
        raise CryptoError(f"sealing certificate for {expected_name!r} does not hold an X25519 key")
    return public


def _derive(ikm: bytes, salt: bytes, sender: str, receiver: str) -> AESGCM:
    info = SEAL_INFO_PREFIX + sender.encode("ascii") + b"|" + receiver.encode("ascii")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)
    return AESGCM(key)


class Sealer:
    """Seal payloads to one peer and open the peer's payloads, within one job.

    ``seal`` uses the key for ``self -> peer``; ``open`` uses ``peer -> self``.
    Keys are derived once, in the constructor.

    Args:
        identity: this party's sealing identity.
        peer_name: the peer's party name (as in its verified certificate).
        peer_public: the peer's key from :func:`verify_peer_seal_cert`.
        job_id: the job; keys differ per job.

    Raises:
        ConfigError: a name is not a valid node name, the peer is oneself, or
            ``job_id`` is empty.
        CryptoError: the key exchange fails (low-order peer key).
    """

    def __init__(
        self,
        identity: SealIdentity,
        peer_name: str,
        peer_public: X25519PublicKey,
        job_id: str,
    ) -> None:
        for what, name in (("own party name", identity.name), ("peer party name", peer_name)):
            if NAME_PATTERN.fullmatch(name) is None:
                raise ConfigError(f"cannot seal: invalid {what} {name!r}")
        if peer_name == identity.name:
            raise ConfigError(f"cannot seal to oneself ({peer_name!r}): both directions would share a key")
        if not job_id:
            raise ConfigError("cannot seal: empty job id")
        try:
            ikm = identity.private_key.exchange(peer_public)
        except ValueError:
            raise CryptoError(f"key agreement with {peer_name!r} failed (invalid public key)") from None
        salt = hashlib.sha256(job_id.encode("utf-8")).digest()
        self._me = identity.name
        self._peer = peer_name
        self._job_id = job_id
        self._send = _derive(ikm, salt, identity.name, peer_name)
        self._recv = _derive(ikm, salt, peer_name, identity.name)

    @property
    def sender(self) -> str:
        return self._me

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def job_id(self) -> str:
        return self._job_id

    def __repr__(self) -> str:
        return f"Sealer({self._me!r} <-> {self._peer!r}, job={self._job_id!r})"

    def seal(self, aad: bytes, plaintext: bytes, nonce: bytes | None = None) -> bytes:
        """Encrypt ``plaintext`` for the peer, binding ``aad`` (the envelope header).

        Args:
            aad: associated data; the peer must pass the same bytes to ``open``.
            plaintext: the payload.
            nonce: 12 bytes; random (``os.urandom``) if None. Pass one only for
                fixed test vectors: never reuse a nonce.

        Returns:
            ``nonce || ciphertext || tag``.
        """
        if nonce is None:
            nonce = os.urandom(NONCE_BYTES)
        elif len(nonce) != NONCE_BYTES:
            raise ValueError(f"nonce must be {NONCE_BYTES} bytes, got {len(nonce)}")
        return bytes(nonce) + self._send.encrypt(nonce, plaintext, aad)

    def open(self, aad: bytes, sealed: bytes) -> bytes:
        """Decrypt a payload the peer sealed to us.

        Raises:
            CryptoError: too short, or authentication failed (tampered data,
                different aad, other job, other direction, or other keys).
        """
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise CryptoError(
                f"sealed payload from {self._peer!r} is too short ({len(sealed)} bytes)"
            )
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return self._recv.decrypt(nonce, body, aad)
        except InvalidTag:
            raise CryptoError(
                f"sealed payload from {self._peer!r} failed authentication "
                f"(tampered, wrong header, wrong job or wrong key) in job {self._job_id!r}"
            ) from None
