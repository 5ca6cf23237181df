"""End-to-end sealing between two parties, with certificates from the dev CA."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from federated.certs import CertLayout, init_certs
from federated.errors import ConfigError, CryptoError
from federated.sealing import (
    NONCE_BYTES,
    Sealer,
    SealIdentity,
    load_seal_identity,
    verify_peer_seal_cert,
)

JOB = "job-2024-001"
HEADER = b"fedcredit.v1|job-2024-001|msg-7|bank->platform|step=GRADIENT|seq=3"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> CertLayout:
    return init_certs(tmp_path_factory.mktemp("pki"), ["bank", "platform"])


@pytest.fixture(scope="module")
def other_layout(tmp_path_factory: pytest.TempPathFactory) -> CertLayout:
    return init_certs(tmp_path_factory.mktemp("other-pki"), ["bank", "platform"])


def _identity(layout: CertLayout, name: str) -> SealIdentity:
    files = layout.node(name)
    assert files.seal_cert is not None and files.seal_key is not None
    return load_seal_identity(files.seal_cert, files.seal_key)


def _pair(layout: CertLayout, job: str = JOB, job_back: str | None = None) -> tuple[Sealer, Sealer]:
    """(bank's sealer to platform, platform's sealer to bank), certs verified."""
    bank, platform = _identity(layout, "bank"), _identity(layout, "platform")
    ca = layout.ca_cert.read_bytes()
    platform_pub = verify_peer_seal_cert(platform.cert_pem, ca, "platform")
    bank_pub = verify_peer_seal_cert(bank.cert_pem, ca, "bank")
    return Sealer(bank, "platform", platform_pub, job), Sealer(platform, "bank", bank_pub, job_back or job)


def test_load_seal_identity(layout: CertLayout) -> None:
    ident = _identity(layout, "bank")
    assert ident.name == "bank"
    assert isinstance(ident.private_key, X25519PrivateKey)
    assert ident.cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert "PRIVATE" not in repr(ident) and "private_key" not in repr(ident)


def test_load_seal_identity_rejects_mismatched_and_missing_files(layout: CertLayout, tmp_path: Path) -> None:
    bank, platform = layout.node("bank"), layout.node("platform")
    with pytest.raises(ConfigError, match="does not match"):
        load_seal_identity(bank.seal_cert, platform.seal_key)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not an X25519 key"):
        load_seal_identity(bank.seal_cert, bank.tls_key)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="missing.crt"):
        load_seal_identity(tmp_path / "missing.crt", bank.seal_key)  # type: ignore[arg-type]


def test_round_trip_both_directions(layout: CertLayout) -> None:
    bank, platform = _pair(layout)
    sealed = bank.seal(HEADER, b"[[u_H]] ciphertext bytes")
    assert b"ciphertext" not in sealed
    assert len(sealed) == NONCE_BYTES + len(b"[[u_H]] ciphertext bytes") + 16
    assert platform.open(HEADER, sealed) == b"[[u_H]] ciphertext bytes"

    back = platform.seal(b"other header", b"")
    assert bank.open(b"other header", back) == b""


def test_random_nonces_differ_and_fixed_nonce_is_deterministic(layout: CertLayout) -> None:
    bank, platform = _pair(layout)
    assert bank.seal(HEADER, b"same") != bank.seal(HEADER, b"same")
    nonce = bytes(range(NONCE_BYTES))
    a, b = bank.seal(HEADER, b"same", nonce=nonce), bank.seal(HEADER, b"same", nonce=nonce)
    assert a == b and a[:NONCE_BYTES] == nonce
    assert platform.open(HEADER, a) == b"same"
    with pytest.raises(ValueError):
        bank.seal(HEADER, b"x", nonce=b"short")


def test_matches_the_documented_construction(layout: CertLayout) -> None:
    """Recompute the bank->platform key from the spec with raw primitives."""
    import hashlib

    bank_id, platform_id = _identity(layout, "bank"), _identity(layout, "platform")
    ikm = bank_id.private_key.exchange(platform_id.private_key.public_key())
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=hashlib.sha256(JOB.encode()).digest(),
        info=b"fedcredit/v1/seal|bank|platform",
    ).derive(ikm)
    bank, _ = _pair(layout)
    nonce = b"\x01" * NONCE_BYTES
    sealed = bank.seal(HEADER, b"payload", nonce=nonce)
    assert sealed == nonce + AESGCM(key).encrypt(nonce, b"payload", HEADER)


def test_tampered_ciphertext_is_rejected(layout: CertLayout) -> None:
    bank, platform = _pair(layout)
    sealed = bytearray(bank.seal(HEADER, b"gradient"))
    for index in (0, NONCE_BYTES, len(sealed) - 1):  # nonce, body, tag
        tampered = bytearray(sealed)
        tampered[index] ^= 0x01
        with pytest.raises(CryptoError):
            platform.open(HEADER, bytes(tampered))
    with pytest.raises(CryptoError, match="too short"):
        platform.open(HEADER, bytes(sealed[:20]))


def test_wrong_aad_is_rejected(layout: CertLayout) -> None:
    bank, platform = _pair(layout)
    sealed = bank.seal(HEADER, b"gradient")
    with pytest.raises(CryptoError):
        platform.open(HEADER.replace(b"seq=3", b"seq=4"), sealed)


def test_wrong_direction_is_rejected(layout: CertLayout) -> None:
    bank, _ = _pair(layout)
    sealed = bank.seal(HEADER, b"gradient")
    with pytest.raises(CryptoError):
        bank.open(HEADER, sealed)  # bank opening its own message: a reflected payload


def test_another_job_is_rejected(layout: CertLayout) -> None:
    bank, platform = _pair(layout, job="job-A", job_back="job-B")
    with pytest.raises(CryptoError):
        platform.open(HEADER, bank.seal(HEADER, b"gradient"))


def test_an_outsider_key_cannot_open(layout: CertLayout, other_layout: CertLayout) -> None:
    bank, _ = _pair(layout)
    sealed = bank.seal(HEADER, b"gradient")
    # "platform" of another deployment, with the real bank's public key
    outsider = _identity(other_layout, "platform")
    bank_pub = verify_peer_seal_cert(_identity(layout, "bank").cert_pem, layout.ca_cert.read_bytes(), "bank")
    with pytest.raises(CryptoError):
        Sealer(outsider, "bank", bank_pub, JOB).open(HEADER, sealed)


def test_sealer_rejects_self_and_bad_names(layout: CertLayout) -> None:
    bank = _identity(layout, "bank")
    pub = bank.private_key.public_key()
    with pytest.raises(ConfigError):
        Sealer(bank, "bank", pub, JOB)
    with pytest.raises(ConfigError):
        Sealer(bank, "plat|form", pub, JOB)
    with pytest.raises(ConfigError):
        Sealer(bank, "platform", pub, "")


# --------------------------------------------------------------------------
# verify_peer_seal_cert
# --------------------------------------------------------------------------
def test_verify_accepts_a_good_cert(layout: CertLayout) -> None:
    ident = _identity(layout, "platform")
    pub = verify_peer_seal_cert(ident.cert_pem, layout.ca_cert.read_bytes(), "platform")
    assert pub == ident.private_key.public_key()


def test_verify_rejects_a_cert_from_another_ca(layout: CertLayout, other_layout: CertLayout) -> None:
    foreign = _identity(other_layout, "platform").cert_pem
    with pytest.raises(CryptoError, match="not signed by the job's CA"):
        verify_peer_seal_cert(foreign, layout.ca_cert.read_bytes(), "platform")


def test_verify_rejects_a_wrong_name(layout: CertLayout) -> None:
    pem = _identity(layout, "platform").cert_pem
    with pytest.raises(CryptoError, match="expected 'bank'"):
        verify_peer_seal_cert(pem, layout.ca_cert.read_bytes(), "bank")


def test_verify_rejects_an_expired_or_not_yet_valid_cert(layout: CertLayout) -> None:
    pem, ca = _identity(layout, "platform").cert_pem, layout.ca_cert.read_bytes()
    with pytest.raises(CryptoError, match="expired"):
        verify_peer_seal_cert(pem, ca, "platform", now=dt.datetime(2200, 1, 1, tzinfo=dt.timezone.utc))
    with pytest.raises(CryptoError, match="not valid before"):
        verify_peer_seal_cert(pem, ca, "platform", now=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))


def test_verify_rejects_a_tls_cert(layout: CertLayout) -> None:
    tls_pem = layout.node("platform").tls_cert.read_bytes()
    with pytest.raises(CryptoError):
        verify_peer_seal_cert(tls_pem, layout.ca_cert.read_bytes(), "platform")


def test_verify_rejects_garbage(layout: CertLayout) -> None:
    with pytest.raises(CryptoError):
        verify_peer_seal_cert(b"not a certificate", layout.ca_cert.read_bytes(), "platform")
