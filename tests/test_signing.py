"""Ed25519 signing certificates from the dev CA, and envelope/digest signatures."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from fedcredit.proto.v1 import envelope_pb2
from fedcredit.runtime.security.certs import CertLayout, init_certs
from fedcredit.runtime.errors import ConfigError, CryptoError
from fedcredit.runtime.security.signing import (
    ENVELOPE_FIELDS,
    canonical_json,
    cert_fingerprint,
    envelope_digest,
    envelope_fields,
    load_signing_identity,
    sign_digest,
    verify_digest,
    verify_signing_cert,
)

NODES = ("coordinator", "bank", "platform", "operator")


def _ca(layout: CertLayout) -> bytes:
    return layout.ca_cert.read_bytes()


def _sign_pem(layout: CertLayout, name: str) -> bytes:
    files = layout.node(name)
    assert files.sign_cert is not None
    return files.sign_cert.read_bytes()


def _envelope(**over: object) -> envelope_pb2.Envelope:
    fields: dict[str, object] = dict(
        job_id="job-1", message_id="ab" * 16, sender="bank", receiver="platform", step="lr.residuals",
        sequence=3, payload_type="fedcredit.v1.EncryptedResiduals", payload_size=4096,
        payload_sha256=hashlib.sha256(b"payload").digest(), sealed=True, classification="ciphertext",
        sent_unix_ms=1_700_000_000_000,
    )
    fields.update(over)
    return envelope_pb2.Envelope(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# certificates
# --------------------------------------------------------------------------
def test_init_certs_makes_a_signing_cert_for_every_node(layout: CertLayout) -> None:
    ca = x509.load_pem_x509_certificate(_ca(layout))
    for name in NODES:
        files = layout.node(name)
        assert files.sign_cert == layout.directory / name / "sign.crt"
        assert files.sign_key == layout.directory / name / "sign.key"
        assert files.sign_cert.is_file() and files.sign_key.is_file()
        assert stat.S_IMODE(os.stat(files.sign_key).st_mode) == 0o600
        assert files.sign_key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
        cert = x509.load_pem_x509_certificate(files.sign_cert.read_bytes())
        cert.verify_directly_issued_by(ca)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        assert isinstance(cert.public_key(), Ed25519PublicKey)
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical
        assert ku.value.digital_signature and ku.value.content_commitment
        assert not ku.value.key_agreement and not ku.value.key_cert_sign
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and not bc.value.ca
        # and it verifies through the API
        assert isinstance(verify_signing_cert(files.sign_cert.read_bytes(), _ca(layout), name), Ed25519PublicKey)


def test_layout_load_finds_the_signing_files(layout: CertLayout) -> None:
    loaded = CertLayout.load(layout.directory)
    assert loaded.node("operator").sign_cert == layout.node("operator").sign_cert
    assert loaded.node("bank") == layout.node("bank")


def test_init_refuses_when_only_a_signing_key_exists(tmp_path: Path) -> None:
    (tmp_path / "bank").mkdir(parents=True)
    (tmp_path / "bank" / "sign.key").write_bytes(b"precious")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        init_certs(tmp_path, ["bank"], operators=())
    assert (tmp_path / "bank" / "sign.key").read_bytes() == b"precious"


def test_verify_signing_cert_rejects_another_ca(layout: CertLayout, other_layout: CertLayout) -> None:
    with pytest.raises(CryptoError, match="not signed by the job's CA"):
        verify_signing_cert(_sign_pem(other_layout, "bank"), _ca(layout), "bank")


def test_verify_signing_cert_rejects_the_wrong_name(layout: CertLayout) -> None:
    with pytest.raises(CryptoError, match="belongs to 'platform', expected 'bank'"):
        verify_signing_cert(_sign_pem(layout, "platform"), _ca(layout), "bank")


def test_verify_signing_cert_checks_validity(tmp_path: Path) -> None:
    issued = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    old = init_certs(tmp_path, ["bank"], operators=(), days=1, now=issued)
    pem, ca = _sign_pem(old, "bank"), _ca(old)
    with pytest.raises(CryptoError, match="expired"):
        verify_signing_cert(pem, ca, "bank")
    with pytest.raises(CryptoError, match="not valid before"):
        verify_signing_cert(pem, ca, "bank", now=issued - dt.timedelta(days=1))
    # at the time it was used, it was valid (auditors pass the record's time)
    verify_signing_cert(pem, ca, "bank", now=issued + dt.timedelta(hours=1))


def test_verify_signing_cert_rejects_seal_and_tls_certs(layout: CertLayout) -> None:
    seal = layout.node("bank").seal_cert
    assert seal is not None
    with pytest.raises(CryptoError, match="does not allow digital signatures"):
        verify_signing_cert(seal.read_bytes(), _ca(layout), "bank")
    # the TLS cert allows digitalSignature but holds an EC P-256 key
    with pytest.raises(CryptoError, match="Ed25519"):
        verify_signing_cert(layout.node("bank").tls_cert.read_bytes(), _ca(layout), "bank")
    with pytest.raises(CryptoError, match="not a PEM"):
        verify_signing_cert(b"garbage", _ca(layout), "bank")


def test_load_signing_identity(layout: CertLayout, tmp_path: Path) -> None:
    bank, platform = layout.node("bank"), layout.node("platform")
    ident = load_signing_identity(bank.sign_cert, bank.sign_key)  # type: ignore[arg-type]
    assert ident.name == "bank"
    assert ident.cert_pem == bank.sign_cert.read_bytes()  # type: ignore[union-attr]
    assert "PRIVATE" not in repr(ident) and "BEGIN" not in repr(ident)
    with pytest.raises(ConfigError, match="does not match"):
        load_signing_identity(bank.sign_cert, platform.sign_key)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        load_signing_identity(bank.sign_cert, bank.tls_key)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="missing.crt"):
        load_signing_identity(tmp_path / "missing.crt", bank.sign_key)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        load_signing_identity(bank.sign_key, bank.sign_key)  # type: ignore[arg-type]


def test_cert_fingerprint_is_sha256_of_der(layout: CertLayout) -> None:
    pem = _sign_pem(layout, "bank")
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert cert_fingerprint(pem) == hashlib.sha256(der).hexdigest()
    assert cert_fingerprint(pem) != cert_fingerprint(_sign_pem(layout, "platform"))
    with pytest.raises(CryptoError):
        cert_fingerprint(b"nope")


# --------------------------------------------------------------------------
# digests and signatures
# --------------------------------------------------------------------------
def test_sign_verify_round_trip_and_a_flipped_bit_fails(layout: CertLayout) -> None:
    files = layout.node("bank")
    ident = load_signing_identity(files.sign_cert, files.sign_key)  # type: ignore[arg-type]
    key = verify_signing_cert(ident.cert_pem, _ca(layout), "bank")
    digest = hashlib.sha256(b"record").digest()
    sig = sign_digest(ident, digest)
    assert len(sig) == 64
    verify_digest(key, digest, sig)
    for i in (0, 17, 63):
        bad = bytearray(sig)
        bad[i] ^= 0x01
        with pytest.raises(CryptoError):
            verify_digest(key, digest, bytes(bad))
    flipped = bytes([digest[0] ^ 0x80]) + digest[1:]
    with pytest.raises(CryptoError):
        verify_digest(key, flipped, sig)
    other = verify_signing_cert(_sign_pem(layout, "platform"), _ca(layout), "platform")
    with pytest.raises(CryptoError):
        verify_digest(other, digest, sig)
    with pytest.raises(CryptoError):
        verify_digest(key, digest, sig[:10])
    with pytest.raises(ValueError):
        sign_digest(ident, b"short")


def test_envelope_fields_and_digest() -> None:
    env = _envelope()
    fields = envelope_fields(env)
    assert tuple(fields) == ENVELOPE_FIELDS
    assert fields["payload_sha256"] == hashlib.sha256(b"payload").hexdigest()
    assert fields["sequence"] == 3 and fields["payload_size"] == 4096 and fields["sealed"] is True
    assert "sent_unix_ms" not in fields and "signature" not in fields
    digest = envelope_digest(fields)
    assert len(digest) == 32
    assert digest == hashlib.sha256(canonical_json(fields)).digest()
    # stable across field order and across the unsigned send time
    reordered = dict(reversed(list(fields.items())))
    assert list(reordered) != list(fields)
    assert envelope_digest(reordered) == digest
    assert envelope_digest(envelope_fields(_envelope(sent_unix_ms=1))) == digest
    # but any signed field changes it
    for change in ({"sequence": 4}, {"job_id": "job-2"}, {"sealed": False}, {"receiver": "coordinator"},
                   {"payload_sha256": hashlib.sha256(b"other").digest()}, {"classification": "plaintext"}):
        assert envelope_digest(envelope_fields(_envelope(**change))) != digest, change


def test_canonical_json_is_exact() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode("utf-8")
