"""Sealing between two parties in memory: identities, the key schedule against raw primitives, tampering, directions,
jobs and phases, a session's inputs and the lifetime of its keys, and the peer certificate check.

The ``seal.hello`` exchange under attack and real exchanges through the coordinator's relay are in test_sealing.py;
the session helpers and the independent key schedule both files use are in tests/sealing_support.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedcredit.runtime.security.certs import CertLayout
from fedcredit.runtime.errors import ConfigError, CryptoError, ProtocolError
from fedcredit.runtime.security.sealing import NONCE_BYTES, SealSession, Sealer, load_seal_identity, verify_peer_seal_cert
from fedcredit.runtime.security.signing import verify_signing_cert
from helpers import seal_identity, signer
from sealing_support import HEADER, JOB, key_schedule, lp, session, static_key


def _agree(a: SealSession, b: SealSession, phase: str = "lr2") -> tuple[Sealer, Sealer]:
    ha, hb = a.hello(phase), b.hello(phase)
    return a.accept(phase, hb), b.accept(phase, ha)


def _pair(layout: CertLayout, job: str = JOB, phase: str = "lr2") -> tuple[Sealer, Sealer]:
    """(bank's sealer to platform, platform's sealer to bank) after one exchange of hellos in memory."""
    return _agree(session(layout, "bank", job), session(layout, "platform", job), phase)


# -------------------------------------------------------------------------- identities


def test_load_seal_identity(layout: CertLayout) -> None:
    ident = seal_identity(layout, "bank")
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


# -------------------------------------------------------------------------- sealing with agreed keys


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


def test_matches_the_documented_key_schedule(layout: CertLayout) -> None:
    """Recompute the hello signature and both directions' keys from the module docstring, with raw primitives."""
    e_bank = X25519PrivateKey.from_private_bytes(bytes(range(32)))
    e_plat = X25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
    bank_s = session(layout, "bank", keygen=lambda: e_bank)
    plat_s = session(layout, "platform", keygen=lambda: e_plat)
    hb, hp = bank_s.hello("psi"), plat_s.hello("psi")
    s_bank, s_plat = seal_identity(layout, "bank").private_key, seal_identity(layout, "platform").private_key
    S_bank, S_plat = static_key(layout, "bank"), static_key(layout, "platform")
    E_bank, E_plat = e_bank.public_key().public_bytes_raw(), e_plat.public_key().public_bytes_raw()
    assert (hb.phase, hb.ephemeral) == ("psi", E_bank)
    signed = hashlib.sha256(b"fedcredit/v1/seal-hello" + b"".join(
        lp(x) for x in (JOB.encode(), b"psi", b"bank", b"platform", S_bank, S_plat, E_bank))).digest()
    signer(layout, "bank").private_key.public_key().verify(hb.signature, signed)
    bank, platform = bank_s.accept("psi", hp), plat_s.accept("psi", hb)

    k_bp, k_pb = key_schedule(JOB, "psi", (S_bank, S_plat), (E_bank, E_plat),
                           ee=e_bank.exchange(e_plat.public_key()), es=e_bank.exchange(s_plat.public_key()),
                           se=s_bank.exchange(e_plat.public_key()), ss=s_bank.exchange(s_plat.public_key()))
    nonce = b"\x01" * NONCE_BYTES
    assert bank.seal(HEADER, b"payload", nonce=nonce) == nonce + AESGCM(k_bp).encrypt(nonce, b"payload", HEADER)
    assert platform.seal(HEADER, b"payload", nonce=nonce) == nonce + AESGCM(k_pb).encrypt(nonce, b"payload", HEADER)


def test_keys_differ_per_direction_phase_job_and_exchange(layout: CertLayout) -> None:
    keys: set[bytes] = set()
    for job in ("job-A", "job-B"):
        for phase in ("psi", "lr2"):
            bank, platform = _pair(layout, job, phase)
            send, recv = bank._keys
            assert (recv, send) == platform._keys
            keys |= {send, recv}
    again, _ = _pair(layout, "job-A", "psi")  # the same job and phase once more: fresh ephemeral keys, fresh keys
    keys |= set(again._keys)
    assert len(keys) == 10


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


def test_payloads_of_one_job_or_phase_do_not_open_in_another(layout: CertLayout) -> None:
    bank_a, platform_a = _pair(layout, "job-A")
    _, platform_b = _pair(layout, "job-B")
    sealed = bank_a.seal(HEADER, b"gradient")
    with pytest.raises(CryptoError, match="failed authentication in job 'job-B'"):
        platform_b.open(HEADER, sealed)
    _, platform_psi = _pair(layout, "job-A", "psi")
    with pytest.raises(CryptoError, match="failed authentication"):
        platform_psi.open(HEADER, sealed)
    assert platform_a.open(HEADER, sealed) == b"gradient"


# -------------------------------------------------------------------------- a session's inputs and the lifetime of its keys


def test_session_checks_its_inputs(layout: CertLayout) -> None:
    bank, bank_signer, ca = seal_identity(layout, "bank"), signer(layout, "bank"), layout.ca_cert.read_bytes()
    files = layout.node("platform")
    seal_pub = verify_peer_seal_cert(files.seal_cert.read_bytes(), ca, "platform")
    sign_pub = verify_signing_cert(files.sign_cert.read_bytes(), ca, "platform")
    with pytest.raises(ConfigError, match="oneself"):
        SealSession(bank, bank_signer, "bank", seal_pub, sign_pub, JOB)
    with pytest.raises(ConfigError, match="invalid peer party name"):
        SealSession(bank, bank_signer, "plat|form", seal_pub, sign_pub, JOB)
    with pytest.raises(ConfigError, match="empty job"):
        SealSession(bank, bank_signer, "platform", seal_pub, sign_pub, "")
    with pytest.raises(ConfigError, match="signing identity is 'platform'"):
        SealSession(bank, signer(layout, "platform"), "platform", seal_pub, sign_pub, JOB)
    with pytest.raises(ConfigError, match="verified X25519 sealing key and Ed25519 signing key"):
        SealSession(bank, bank_signer, "platform", seal_pub, seal_pub, JOB)  # type: ignore[arg-type]
    with pytest.raises(TypeError):  # the static–static Sealer(identity, peer, peer_public, job) is gone: a Sealer takes derived keys
        Sealer(bank, "platform", seal_pub, JOB)  # type: ignore[call-arg]


def test_the_ephemeral_private_key_lives_in_memory_only_until_the_keys_are_agreed(layout: CertLayout) -> None:
    made: list[X25519PrivateKey] = []

    def keygen() -> X25519PrivateKey:
        made.append(X25519PrivateKey.generate())
        return made[-1]

    bank, platform = session(layout, "bank", keygen=keygen), session(layout, "platform")
    hello = bank.hello("lr2")
    assert bank.hello("lr2") == hello and len(made) == 1  # asked twice before the answer: the same key
    bank.accept("lr2", platform.hello("lr2"))
    assert bank._pending == {}  # dropped as soon as the keys were derived
    private = made[0].private_bytes_raw().hex()
    exported = bank.export("lr2")
    assert set(exported) == {"version", "job_id", "me", "peer", "phase", "send", "recv"}
    assert private not in json.dumps(exported) and private not in repr(bank) and private not in repr(bank.sealer("lr2"))
    assert seal_identity(layout, "bank").private_key.private_bytes_raw().hex() not in json.dumps(exported)
    with pytest.raises(ProtocolError, match="already agreed"):
        bank.hello("lr2")


def test_exported_keys_restore_their_phase_only_for_their_job_and_peer(layout: CertLayout) -> None:
    bank_s, plat_s = session(layout, "bank"), session(layout, "platform")
    _, platform = _agree(bank_s, plat_s, "psi")
    state = bank_s.export("psi")
    restored = session(layout, "bank", restored=state)
    psi_sealer = restored.sealer("psi")
    assert psi_sealer is not None and psi_sealer.open(HEADER, platform.seal(HEADER, b"batch 3")) == b"batch 3"
    assert restored.sealer("lr2") is None  # the next phase has its own exchange
    with pytest.raises(ConfigError, match="belong to job"):
        session(layout, "bank", "job-other", restored=state)
    with pytest.raises(ConfigError, match="malformed"):
        session(layout, "bank", restored={**state, "send": "zz"})
    with pytest.raises(ConfigError, match="unknown phase"):
        session(layout, "bank", restored={**state, "phase": "lr9"})
    with pytest.raises(ProtocolError, match="no sealing keys agreed"):
        bank_s.export("lr2")


# -------------------------------------------------------------------------- verify_peer_seal_cert


def test_verify_accepts_a_good_cert(layout: CertLayout) -> None:
    ident = seal_identity(layout, "platform")
    pub = verify_peer_seal_cert(ident.cert_pem, layout.ca_cert.read_bytes(), "platform")
    assert pub == ident.private_key.public_key()


def test_verify_rejects_a_cert_from_another_ca(layout: CertLayout, other_layout: CertLayout) -> None:
    foreign = seal_identity(other_layout, "platform").cert_pem
    with pytest.raises(CryptoError, match="not signed by the job's CA"):
        verify_peer_seal_cert(foreign, layout.ca_cert.read_bytes(), "platform")


def test_verify_rejects_a_wrong_name(layout: CertLayout) -> None:
    pem = seal_identity(layout, "platform").cert_pem
    with pytest.raises(CryptoError, match="expected 'bank'"):
        verify_peer_seal_cert(pem, layout.ca_cert.read_bytes(), "bank")


def test_verify_rejects_an_expired_or_not_yet_valid_cert(layout: CertLayout) -> None:
    pem, ca = seal_identity(layout, "platform").cert_pem, layout.ca_cert.read_bytes()
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
