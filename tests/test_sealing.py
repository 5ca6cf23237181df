"""End-to-end sealing between two parties: ephemeral X25519 keys per job and phase (#12), certificates from the dev CA.

The first part checks :class:`SealSession` and :class:`Sealer` in memory: the key schedule against raw primitives,
tampering, directions, jobs and phases, and every way a ``seal.hello`` can be substituted or replayed. The second
part runs real exchanges through an in-process coordinator over mTLS (the relay the parties use), records the sealed
bytes exactly as the coordinator stored them, and attacks them after the job with both parties' static keys. The
attack keeps a deliberately naive variant, the old static–static derivation, to show that it works there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedcredit.v1 import envelope_pb2
from federated.approval import make_approval
from federated.audit import verify_transcripts
from federated.certs import CertLayout, init_certs, load_tls
from federated.codec import decode_payload, encode_payload
from federated.config import CoordinatorConfig, JobSpec, SignConfig, TlsConfig, parse_config
from federated.coordinator import Coordinator
from federated.errors import ConfigError, CryptoError, ProtocolError
from federated.runtime import RelayEndpoint, drive, envelope_aad
from federated.sealing import (
    NONCE_BYTES,
    SEAL_CHECKPOINT_KEY,
    SealHello,
    SealIdentity,
    SealSession,
    Sealer,
    hello_digest,
    load_seal_identity,
    verify_peer_seal_cert,
)
from federated.signing import SigningIdentity, envelope_digest, envelope_fields, load_signing_identity, sign_digest, verify_signing_cert
from federated.transcript import TranscriptWriter
from federated.transport import create_channel
from protocols.core import Checkpoint, Role
from protocols.psi import protocol as psi

JOB = "job-2024-001"
HEADER = b"fedcredit.v1|job-2024-001|msg-7|bank->platform|step=lr2.gradient|seq=3"
PARTIES = ("bank", "platform")
NAMES = {Role.GUEST: "bank", Role.HOST: "platform", Role.COORDINATOR: "coordinator"}


def _other(name: str) -> str:
    return "platform" if name == "bank" else "bank"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> CertLayout:
    return init_certs(tmp_path_factory.mktemp("pki"), list(PARTIES))


@pytest.fixture(scope="module")
def other_layout(tmp_path_factory: pytest.TempPathFactory) -> CertLayout:
    return init_certs(tmp_path_factory.mktemp("other-pki"), list(PARTIES))


def _identity(layout: CertLayout, name: str) -> SealIdentity:
    files = layout.node(name)
    assert files.seal_cert is not None and files.seal_key is not None
    return load_seal_identity(files.seal_cert, files.seal_key)


def _signer(layout: CertLayout, name: str) -> SigningIdentity:
    files = layout.node(name)
    return load_signing_identity(files.sign_cert, files.sign_key)


def _static(layout: CertLayout, name: str) -> bytes:
    return _identity(layout, name).private_key.public_key().public_bytes_raw()


def _session(layout: CertLayout, me: str, job: str = JOB, **kwargs: Any) -> SealSession:
    """``me``'s session with the other party, the peer's certificates verified against the CA as a node does."""
    peer, ca = _other(me), layout.ca_cert.read_bytes()
    files = layout.node(peer)
    return SealSession(_identity(layout, me), _signer(layout, me), peer,
                       verify_peer_seal_cert(files.seal_cert.read_bytes(), ca, peer),
                       verify_signing_cert(files.sign_cert.read_bytes(), ca, peer), job, **kwargs)


def _agree(a: SealSession, b: SealSession, phase: str = "lr2") -> tuple[Sealer, Sealer]:
    ha, hb = a.hello(phase), b.hello(phase)
    return a.accept(phase, hb), b.accept(phase, ha)


def _pair(layout: CertLayout, job: str = JOB, phase: str = "lr2") -> tuple[Sealer, Sealer]:
    """(bank's sealer to platform, platform's sealer to bank) after one exchange of hellos in memory."""
    return _agree(_session(layout, "bank", job), _session(layout, "platform", job), phase)


# -------------------------------------------------------------------------- an independent key schedule, for the checks and the attacks


def _lp(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def _schedule(job: str, phase: str, statics: tuple[bytes, bytes], ephemerals: tuple[bytes, bytes],
              ee: bytes, es: bytes, se: bytes, ss: bytes) -> tuple[bytes, bytes]:
    """(key bank -> platform, key platform -> bank), from the sealing module's docstring; the bank is A ("bank" < "platform")."""
    th = hashlib.sha256(b"fedcredit/v1/seal-eph" + b"".join(
        _lp(x) for x in (job.encode(), phase.encode(), b"bank", b"platform", *statics, *ephemerals))).digest()
    ikm = ee + es + se + ss

    def key(sender: bytes, receiver: bytes) -> bytes:
        return HKDF(hashes.SHA256(), 32, th, b"fedcredit/v1/seal-eph|" + sender + b"|" + receiver).derive(ikm)

    return key(b"bank", b"platform"), key(b"platform", b"bank")


def _naive_static_keys(bank: SealIdentity, platform_public: X25519PublicKey, job: str) -> tuple[bytes, bytes]:
    """The old derivation, deliberately naive: one static–static secret per pair of parties, HKDF over the job id."""
    ikm, salt = bank.private_key.exchange(platform_public), hashlib.sha256(job.encode()).digest()

    def key(info: bytes) -> bytes:
        return HKDF(hashes.SHA256(), 32, salt, info).derive(ikm)

    return key(b"fedcredit/v1/seal|bank|platform"), key(b"fedcredit/v1/seal|platform|bank")


class NaiveStaticSealing:
    """The old sealing as a session: static–static keys for every phase, no exchange. For the control runs only."""

    def __init__(self, layout: CertLayout, me: str, job: str) -> None:
        k_bp, k_pb = _naive_static_keys(_identity(layout, "bank"), _identity(layout, "platform").private_key.public_key(), job)
        send, recv = (k_bp, k_pb) if me == "bank" else (k_pb, k_bp)
        self._sealer = Sealer(me, _other(me), job, send, recv, phase="static")

    def sealer(self, phase: str) -> Sealer:
        return self._sealer


def _opened(candidates: list[tuple[bytes, bytes]], sealed: list[tuple[envelope_pb2.Envelope, bytes]]) -> int:
    """How many recorded payloads some candidate pair of keys opens (and decodes as the payload its envelope names)."""
    n = 0
    for env, data in sealed:
        for k_bp, k_pb in candidates:
            try:
                plain = AESGCM(k_bp if env.sender == "bank" else k_pb).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], envelope_aad(env))
            except InvalidTag:
                continue
            decode_payload(env.payload_type, plain)
            n += 1
            break
    return n


# -------------------------------------------------------------------------- identities


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
    bank_s = _session(layout, "bank", keygen=lambda: e_bank)
    plat_s = _session(layout, "platform", keygen=lambda: e_plat)
    hb, hp = bank_s.hello("psi"), plat_s.hello("psi")
    s_bank, s_plat = _identity(layout, "bank").private_key, _identity(layout, "platform").private_key
    S_bank, S_plat = _static(layout, "bank"), _static(layout, "platform")
    E_bank, E_plat = e_bank.public_key().public_bytes_raw(), e_plat.public_key().public_bytes_raw()
    assert (hb.phase, hb.ephemeral) == ("psi", E_bank)
    signed = hashlib.sha256(b"fedcredit/v1/seal-hello" + b"".join(
        _lp(x) for x in (JOB.encode(), b"psi", b"bank", b"platform", S_bank, S_plat, E_bank))).digest()
    _signer(layout, "bank").private_key.public_key().verify(hb.signature, signed)
    bank, platform = bank_s.accept("psi", hp), plat_s.accept("psi", hb)

    k_bp, k_pb = _schedule(JOB, "psi", (S_bank, S_plat), (E_bank, E_plat),
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


# -------------------------------------------------------------------------- the hello: authenticated, bound, not replayable


def test_a_substituted_ephemeral_key_is_refused(layout: CertLayout) -> None:
    """A relay swapping the platform's ephemeral key for its own cannot sign the substitute as the platform."""
    bank, platform = _session(layout, "bank"), _session(layout, "platform")
    hb, hp = bank.hello("lr2"), platform.hello("lr2")
    mitm = X25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(CryptoError, match=r"not signed by 'platform' for this job, phase and pair of sealing keys: "
                                          r"substituted or replayed on the way \(by the relay\?\); refused"):
        bank.accept("lr2", SealHello("lr2", mitm, hp.signature))  # the relay's key under the platform's signature
    coordinator = _signer(layout, "coordinator")  # the only signing key the relay holds
    forged = sign_digest(coordinator, hello_digest(JOB, "lr2", "platform", "bank", _static(layout, "platform"), _static(layout, "bank"), mitm))
    with pytest.raises(CryptoError, match="not signed by 'platform'"):
        bank.accept("lr2", SealHello("lr2", mitm, forged))
    with pytest.raises(CryptoError, match="not signed by 'platform'"):
        bank.accept("lr2", hb)  # the bank's own hello reflected back to it
    assert bank.accept("lr2", hp) is bank.sealer("lr2")  # the genuine hello still goes through


def test_a_hello_replayed_from_another_job_or_phase_is_refused(layout: CertLayout) -> None:
    old = _session(layout, "platform", "job-old").hello("lr2")
    bank = _session(layout, "bank")
    bank.hello("lr2")
    with pytest.raises(CryptoError, match="not signed by 'platform' for this job"):
        bank.accept("lr2", old)
    platform = _session(layout, "platform")
    psi_hello = platform.hello("psi")
    with pytest.raises(CryptoError, match="for phase 'psi', not 'lr2'"):
        bank.accept("lr2", psi_hello)
    with pytest.raises(CryptoError, match="not signed by 'platform'"):
        bank.accept("lr2", SealHello("lr2", psi_hello.ephemeral, psi_hello.signature))  # relabelled
    with pytest.raises(CryptoError, match="no ephemeral key of 'bank' is waiting for phase 'psi'"):
        bank.accept("psi", psi_hello)  # the bank never offered a key for psi


def test_a_hello_bound_to_another_static_key_is_refused(layout: CertLayout, other_layout: CertLayout) -> None:
    """The platform signed for a stale or substituted copy of the bank's sealing certificate: the bank refuses."""
    ca = layout.ca_cert.read_bytes()
    bank_files = layout.node("bank")
    wrong_bank_key = _identity(other_layout, "bank").private_key.public_key()
    platform = SealSession(_identity(layout, "platform"), _signer(layout, "platform"), "bank", wrong_bank_key,
                           verify_signing_cert(bank_files.sign_cert.read_bytes(), ca, "bank"), JOB)
    bank = _session(layout, "bank")
    bank.hello("lr2")
    with pytest.raises(CryptoError, match="pair of sealing keys"):
        bank.accept("lr2", platform.hello("lr2"))


def test_a_relay_with_stolen_signing_keys_but_no_sealing_key_can_neither_read_nor_forge(layout: CertLayout) -> None:
    """The static–static term is still mixed in: signing keys alone do not make a man in the middle."""
    bank, platform = _session(layout, "bank"), _session(layout, "platform")
    hb, hp = bank.hello("lr2"), platform.hello("lr2")
    S = {n: _static(layout, n) for n in PARTIES}
    m1, m2 = X25519PrivateKey.generate(), X25519PrivateKey.generate()  # the relay's keys, one per victim

    def forge(sender: str, key: X25519PrivateKey) -> SealHello:
        e = key.public_key().public_bytes_raw()
        receiver = _other(sender)
        return SealHello("lr2", e, sign_digest(_signer(layout, sender), hello_digest(JOB, "lr2", sender, receiver, S[sender], S[receiver], e)))

    to_bank = bank.accept("lr2", forge("platform", m1))  # accepted: the signatures are genuine
    to_platform = platform.accept("lr2", forge("bank", m2))
    M1, M2 = m1.public_key().public_bytes_raw(), m2.public_key().public_bytes_raw()
    publics = [X25519PublicKey.from_public_bytes(x) for x in (S["bank"], S["platform"], hb.ephemeral, hp.ephemeral, M1, M2)]
    known = [m.exchange(p) for m in (m1, m2) for p in publics]  # every X25519 value the relay can compute
    # The bank's keys: ee = X25519(e_bank, M1) and se = X25519(s_bank, M1) the relay has; es and ss need e_bank, s_bank or s_platform.
    guesses = [_schedule(JOB, "lr2", (S["bank"], S["platform"]), (hb.ephemeral, M1), m1.exchange(publics[2]), es,
                         m1.exchange(publics[0]), ss) for es in known for ss in known]
    sealed = to_bank.seal(HEADER, b"the bank's gradient share")
    env = envelope_pb2.Envelope(sender="bank")
    assert _opened_raw(guesses, env, HEADER, sealed) == 0
    with pytest.raises(CryptoError, match="substituted ephemeral key"):
        to_platform.open(HEADER, sealed)  # and the two parties' keys differ: the first payload fails, loudly


def _opened_raw(candidates: list[tuple[bytes, bytes]], env: envelope_pb2.Envelope, aad: bytes, sealed: bytes) -> int:
    n = 0
    for k_bp, k_pb in candidates:
        try:
            AESGCM(k_bp if env.sender == "bank" else k_pb).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
            n += 1
        except InvalidTag:
            pass
    return n


def test_session_checks_its_inputs(layout: CertLayout) -> None:
    bank, signer, ca = _identity(layout, "bank"), _signer(layout, "bank"), layout.ca_cert.read_bytes()
    files = layout.node("platform")
    seal_pub = verify_peer_seal_cert(files.seal_cert.read_bytes(), ca, "platform")
    sign_pub = verify_signing_cert(files.sign_cert.read_bytes(), ca, "platform")
    with pytest.raises(ConfigError, match="oneself"):
        SealSession(bank, signer, "bank", seal_pub, sign_pub, JOB)
    with pytest.raises(ConfigError, match="invalid peer party name"):
        SealSession(bank, signer, "plat|form", seal_pub, sign_pub, JOB)
    with pytest.raises(ConfigError, match="empty job"):
        SealSession(bank, signer, "platform", seal_pub, sign_pub, "")
    with pytest.raises(ConfigError, match="signing identity is 'platform'"):
        SealSession(bank, _signer(layout, "platform"), "platform", seal_pub, sign_pub, JOB)
    with pytest.raises(ConfigError, match="verified X25519 sealing key and Ed25519 signing key"):
        SealSession(bank, signer, "platform", seal_pub, seal_pub, JOB)  # type: ignore[arg-type]
    with pytest.raises(TypeError):  # the static–static Sealer(identity, peer, peer_public, job) is gone: a Sealer takes derived keys
        Sealer(bank, "platform", seal_pub, JOB)  # type: ignore[call-arg]


def test_the_ephemeral_private_key_lives_in_memory_only_until_the_keys_are_agreed(layout: CertLayout) -> None:
    made: list[X25519PrivateKey] = []

    def keygen() -> X25519PrivateKey:
        made.append(X25519PrivateKey.generate())
        return made[-1]

    bank, platform = _session(layout, "bank", keygen=keygen), _session(layout, "platform")
    hello = bank.hello("lr2")
    assert bank.hello("lr2") == hello and len(made) == 1  # asked twice before the answer: the same key
    bank.accept("lr2", platform.hello("lr2"))
    assert bank._pending == {}  # dropped as soon as the keys were derived
    private = made[0].private_bytes_raw().hex()
    exported = bank.export("lr2")
    assert set(exported) == {"version", "job_id", "me", "peer", "phase", "send", "recv"}
    assert private not in json.dumps(exported) and private not in repr(bank) and private not in repr(bank.sealer("lr2"))
    assert _identity(layout, "bank").private_key.private_bytes_raw().hex() not in json.dumps(exported)
    with pytest.raises(ProtocolError, match="already agreed"):
        bank.hello("lr2")


def test_exported_keys_restore_their_phase_only_for_their_job_and_peer(layout: CertLayout) -> None:
    bank_s, plat_s = _session(layout, "bank"), _session(layout, "platform")
    _, platform = _agree(bank_s, plat_s, "psi")
    state = bank_s.export("psi")
    restored = _session(layout, "bank", restored=state)
    psi_sealer = restored.sealer("psi")
    assert psi_sealer is not None and psi_sealer.open(HEADER, platform.seal(HEADER, b"batch 3")) == b"batch 3"
    assert restored.sealer("lr2") is None  # the next phase has its own exchange
    with pytest.raises(ConfigError, match="belong to job"):
        _session(layout, "bank", "job-other", restored=state)
    with pytest.raises(ConfigError, match="malformed"):
        _session(layout, "bank", restored={**state, "send": "zz"})
    with pytest.raises(ConfigError, match="unknown phase"):
        _session(layout, "bank", restored={**state, "phase": "lr9"})
    with pytest.raises(ProtocolError, match="no sealing keys agreed"):
        bank_s.export("lr2")


# -------------------------------------------------------------------------- verify_peer_seal_cert


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


# -------------------------------------------------------------------------- through the coordinator's relay, over mTLS

Relayed = list[tuple[envelope_pb2.Envelope, bytes]]


@pytest.fixture()
def relay(tmp_path: Path, layout: CertLayout, monkeypatch: pytest.MonkeyPatch):
    """A coordinator on port 0; ``seen`` gets a copy of every (envelope, payload) exactly as the relay stores it."""
    c = layout.node("coordinator")
    cfg = CoordinatorConfig(tls=TlsConfig(ca=layout.ca_cert, cert=c.tls_cert, key=c.tls_key), listen="127.0.0.1:0",
                            sign=SignConfig(cert=c.sign_cert, key=c.sign_key), transcripts=tmp_path / "transcripts",
                            database=tmp_path / "c.sqlite", parties=list(PARTIES))
    coord = Coordinator(cfg)
    coord.start()
    seen: Relayed = []
    put = coord.mailbox.put

    def record(env: envelope_pb2.Envelope, data: bytes, *args: Any, **kwargs: Any) -> Any:
        copy = envelope_pb2.Envelope()
        copy.CopyFrom(env)
        if all(copy.message_id != e.message_id for e, _ in seen):
            seen.append((copy, bytes(data)))
        return put(env, data, *args, **kwargs)

    monkeypatch.setattr(coord.mailbox, "put", record)
    yield coord, seen
    coord.stop(0)


def _job(coord: Coordinator, layout: CertLayout, kind: str = "psi") -> str:
    spec = parse_config(JobSpec, {"kind": kind, "purpose": "financing.credit_risk_model", "psi": {"protocol": "ecdh"},
                                  "guest": {"party": "bank", "dataset": "d"}, "host": {"party": "platform", "dataset": "d"}}, source="t")
    job_id = coord.jobs.submit(spec).job_id
    for party in PARTIES:  # approved as each party would, signed with its own key, so the job runs
        coord.jobs.set_sign_key(party, layout.node(party).sign_cert.read_bytes())
        coord.jobs.approve(job_id, party, make_approval(_signer(layout, party), job_id, coord.jobs.get(job_id).spec_sha256, True, "policy"))
    assert coord.jobs.get(job_id).state == "running"
    return job_id


def _endpoint(coord: Coordinator, layout: CertLayout, me: str, job: str, session: Any = None, **kwargs: Any) -> RelayEndpoint:
    files, ca = layout.node(me), layout.ca_cert.read_bytes()
    channel = create_channel(f"127.0.0.1:{coord.port}", load_tls(layout.ca_cert, files.tls_cert, files.tls_key), server_name="coordinator")
    verify = {n: verify_signing_cert(layout.node(n).sign_cert.read_bytes(), ca, n) for n in (*PARTIES, "coordinator")}
    return RelayEndpoint(channel, job, Role.GUEST if me == "bank" else Role.HOST, NAMES, signer=_signer(layout, me), verify_keys=verify,
                         sealers={_other(me): session if session is not None else _session(layout, me, job)}, timeout_s=20, **kwargs)


BANK_IDS = [f"E{i:04d}" for i in range(0, 60)]
PLATFORM_IDS = [f"E{i:04d}" for i in range(30, 100)]


def _run_psi(bank: RelayEndpoint, platform: RelayEndpoint) -> dict[str, psi.PsiResult]:
    """A real ECDH PSI (reveal both, batches of 16) between the two endpoints, one thread per party."""
    params = psi.PsiParams(salt=b"s" * 16, reveal=psi.Reveal.BOTH, batch_size=16)
    programs: dict[str, Callable[[], Any]] = {
        "bank": lambda: drive(Role.GUEST, psi.guest_program(BANK_IDS, params, random.Random(1)), bank),
        "platform": lambda: drive(Role.HOST, psi.host_program(PLATFORM_IDS, params, random.Random(2)), platform),
    }
    out: dict[str, Any] = {}

    def run(name: str) -> None:
        try:
            out[name] = programs[name]()
        except BaseException as exc:  # noqa: BLE001
            out[name] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in PARTIES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    for name in PARTIES:
        assert not isinstance(out[name], BaseException), out[name]
    assert sorted(BANK_IDS[i] for i in out["bank"].rows) == [f"E{i:04d}" for i in range(30, 60)]
    return out


def test_forward_secrecy_recorded_payloads_resist_both_parties_stolen_static_keys(relay, layout: CertLayout) -> None:
    """#12: a real PSI through the relay, recorded as the coordinator stores it; after the job the attacker holds both parties'
    static sealing keys (signing keys only sign: they open nothing). It opens none of the payloads. The old static–static
    derivation, given the same keys, opens every one (next test)."""
    coord, seen = relay
    job = _job(coord, layout)
    made: dict[str, list[X25519PrivateKey]] = {n: [] for n in PARTIES}

    def keeping(name: str) -> Callable[[], X25519PrivateKey]:  # the test keeps each ephemeral key, for the control only
        def keygen() -> X25519PrivateKey:
            made[name].append(X25519PrivateKey.generate())
            return made[name][-1]
        return keygen

    bank = _endpoint(coord, layout, "bank", job, _session(layout, "bank", job, keygen=keeping("bank")))
    platform = _endpoint(coord, layout, "platform", job, _session(layout, "platform", job, keygen=keeping("platform")))
    _run_psi(bank, platform)

    relayed = [(e, d) for e, d in seen if e.job_id == job]
    sealed = [(e, d) for e, d in relayed if e.sealed]
    hellos = {e.sender: decode_payload(e.payload_type, d) for e, d in relayed if e.step == "seal.hello"}
    assert len(sealed) >= 8 and len(sealed) == len(relayed) - 2  # everything but the two hellos is sealed
    assert set(hellos) == set(PARTIES) and all(isinstance(h, SealHello) and h.phase == "psi" for h in hellos.values())
    assert all(e.classification == "public" and not e.sealed for e, _ in relayed if e.step == "seal.hello")
    assert [len(m) for m in made.values()] == [1, 1]  # one ephemeral key per party for the job's one phase

    stolen_bank, stolen_platform = _identity(layout, "bank").private_key, _identity(layout, "platform").private_key
    # 1. The old static–static derivation opens nothing: these payloads were not sealed that way.
    assert _opened([_naive_static_keys(_identity(layout, "bank"), stolen_platform.public_key(), job)], sealed) == 0
    # 2. The real key schedule, with the three terms the attacker can now compute exactly, and every X25519 value it can
    #    compute from the stolen keys and the recorded public keys in place of the ephemeral–ephemeral term.
    S = (_static(layout, "bank"), _static(layout, "platform"))
    E = (hellos["bank"].ephemeral, hellos["platform"].ephemeral)
    E_bank, E_plat = (X25519PublicKey.from_public_bytes(x) for x in E)
    publics = [stolen_bank.public_key(), stolen_platform.public_key(), E_bank, E_plat]
    es, se, ss = stolen_platform.exchange(E_bank), stolen_bank.exchange(E_plat), stolen_bank.exchange(stolen_platform.public_key())
    guesses = [_schedule(job, "psi", S, E, ee, es, se, ss) for ee in (k.exchange(p) for k in (stolen_bank, stolen_platform) for p in publics)]
    assert _opened(guesses, sealed) == 0
    # Control: the attack is the real key schedule. With one ephemeral private key (a memory dump during the job),
    # which no party kept, it opens every payload.
    assert _opened([_schedule(job, "psi", S, E, made["bank"][0].exchange(E_plat), es, se, ss)], sealed) == len(sealed)


def test_the_old_static_static_sealing_falls_to_the_same_attacker(relay, layout: CertLayout) -> None:
    """The deliberately naive variant: the same PSI sealed with the old static–static keys, attacked with the same stolen keys."""
    coord, seen = relay
    job = _job(coord, layout)
    bank = _endpoint(coord, layout, "bank", job, NaiveStaticSealing(layout, "bank", job))
    platform = _endpoint(coord, layout, "platform", job, NaiveStaticSealing(layout, "platform", job))
    _run_psi(bank, platform)
    sealed = [(e, d) for e, d in seen if e.job_id == job and e.sealed]
    assert len(sealed) >= 8
    stolen = _naive_static_keys(_identity(layout, "bank"), _identity(layout, "platform").private_key.public_key(), job)
    assert _opened([stolen], sealed) == len(sealed)  # every blinded point the parties exchanged


def test_a_relay_substituting_an_ephemeral_key_is_refused(relay, layout: CertLayout, monkeypatch: pytest.MonkeyPatch) -> None:
    """The coordinator swaps the platform's seal.hello for one carrying its own key, fixes the digest and signs the envelope
    with the only signing key it has; or swaps the payload alone. The bank refuses either before it seals anything."""
    coord, _ = relay
    put = coord.mailbox.put
    coordinator = _signer(layout, "coordinator")
    resign = {"on": True}

    def mitm(env: envelope_pb2.Envelope, data: bytes, *args: Any, **kwargs: Any) -> Any:
        if env.step == "seal.hello" and env.sender == "platform":
            hello = decode_payload(env.payload_type, data)
            assert isinstance(hello, SealHello)
            _, data = encode_payload(SealHello(hello.phase, X25519PrivateKey.generate().public_key().public_bytes_raw(), hello.signature))
            if resign["on"]:
                env.payload_sha256, env.payload_size = hashlib.sha256(data).digest(), len(data)
                env.signature = sign_digest(coordinator, envelope_digest(envelope_fields(env)))
        return put(env, data, *args, **kwargs)

    monkeypatch.setattr(coord.mailbox, "put", mitm)
    for resign["on"], why in ((True, "the envelope is not signed by platform"), (False, "does not match its digest")):
        job = _job(coord, layout)
        bank, platform = _endpoint(coord, layout, "bank", job), _endpoint(coord, layout, "platform", job)
        platform.offer_sealing("bank", "psi")
        with pytest.raises(CryptoError, match=rf"refusing to seal phase 'psi' of job {job} with platform: its ephemeral key "
                                              rf"exchange failed: .*{why}"):
            bank.send(psi.PsiStep.GUEST_SIZE, Role.HOST, psi.SetSize(60))
        assert bank.sealers["platform"].sealer("psi") is None and bank.bytes_sent < 300  # only its own hello left


def test_payloads_recorded_in_one_job_do_not_open_in_another(relay, layout: CertLayout) -> None:
    coord, seen = relay
    jobs, sealers = [_job(coord, layout), _job(coord, layout)], {}
    for job in jobs:
        bank, platform = _endpoint(coord, layout, "bank", job), _endpoint(coord, layout, "platform", job)
        platform.offer_sealing("bank", "psi")
        bank.offer_sealing("platform", "psi")
        platform.establish_sealing("bank", "psi")
        sealers[job] = bank.establish_sealing("platform", "psi")
        platform.send(psi.PsiStep.HOST_SIZE, Role.GUEST, psi.SetSize(70))
    env, data = next((e, d) for e, d in seen if e.job_id == jobs[0] and e.sealed)
    assert decode_payload(env.payload_type, sealers[jobs[0]].open(envelope_aad(env), data)) == psi.SetSize(70)
    with pytest.raises(CryptoError, match="failed authentication"):
        sealers[jobs[1]].open(envelope_aad(env), data)  # the same parties, phase and header: the other job's keys
    moved = envelope_pb2.Envelope()
    moved.CopyFrom(env)
    moved.job_id = jobs[1]
    with pytest.raises(CryptoError, match="failed authentication"):
        sealers[jobs[1]].open(envelope_aad(moved), data)  # relabelled as the other job's: still not


def test_a_checkpoint_keeps_its_phase_keys_so_a_restarted_party_can_resume(relay, layout: CertLayout) -> None:
    coord, seen = relay
    job = _job(coord, layout, kind="train")
    kept: list[dict[str, Any]] = []
    bank = _endpoint(coord, layout, "bank", job, on_checkpoint=lambda c: kept.append(dict(c.state)))
    platform = _endpoint(coord, layout, "platform", job)
    bank.checkpoint(Checkpoint("psi", {"secret": "the PSI scalar"}))  # ECDH PSI checkpoints before its first message
    assert kept == [{"secret": "the PSI scalar"}]
    platform.offer_sealing("bank", "psi")
    bank.establish_sealing("platform", "psi")  # what the bank's first PSI message does
    assert kept[-1]["secret"] == "the PSI scalar" and kept[-1][SEAL_CHECKPOINT_KEY]["platform"]["phase"] == "psi"  # rewritten
    platform.establish_sealing("bank", "psi")
    platform.send(psi.PsiStep.HOST_SIZE, Role.GUEST, psi.SetSize(70))
    assert bank.recv(psi.PsiStep.HOST_SIZE, Role.HOST) == psi.SetSize(70)

    # The bank is killed and restarts from its checkpoint: the kept keys open what the platform sealed before.
    state = kept[-1][SEAL_CHECKPOINT_KEY]["platform"]
    restarted = _endpoint(coord, layout, "bank", job, _session(layout, "bank", job, restored=state))
    assert restarted.recv(psi.PsiStep.HOST_SIZE, Role.HOST) == psi.SetSize(70)
    # Without them it cannot, and says so rather than sending a second, useless key.
    lost = _endpoint(coord, layout, "bank", job)
    lost.already_sent.add(("seal.hello", "platform", 0))  # as a resumed node reads it from its transcript
    with pytest.raises(CryptoError, match="cannot resume job .* kept no keys for that phase"):
        lost.recv(psi.PsiStep.HOST_SIZE, Role.HOST)

    # Training has its own exchange (seal.hello#2 both ways: lr2's place in SEAL_PHASES), and no checkpoint ever holds its keys.
    platform.offer_sealing("bank", "lr2")
    bank.establish_sealing("platform", "lr2")
    bank.checkpoint(Checkpoint("psi", {"secret": "the PSI scalar"}))
    assert len(kept) == 3 and [k[SEAL_CHECKPOINT_KEY]["platform"]["phase"] for k in kept[1:]] == ["psi", "psi"]
    hellos = sorted((e.sender, e.sequence, getattr(decode_payload(e.payload_type, d), "phase")) for e, d in seen
                    if e.job_id == job and e.step == "seal.hello")
    assert hellos == [("bank", 0, "psi"), ("bank", 2, "lr2"), ("platform", 0, "psi"), ("platform", 2, "lr2")]


def test_the_parties_need_not_meet_the_phases_in_the_same_order(relay, layout: CertLayout) -> None:
    """Each phase's hello has a fixed place (its index in SEAL_PHASES), so the order the parties reach phases in does not matter."""
    coord, seen = relay
    job = _job(coord, layout, kind="train")
    bank, platform = _endpoint(coord, layout, "bank", job), _endpoint(coord, layout, "platform", job)
    platform.offer_sealing("bank", "lr2")
    platform.offer_sealing("bank", "psi")
    bank.establish_sealing("platform", "psi")
    bank.establish_sealing("platform", "lr2")
    platform.establish_sealing("bank", "lr2")
    platform.establish_sealing("bank", "psi")
    platform.send(psi.PsiStep.HOST_SIZE, Role.GUEST, psi.SetSize(70))
    assert bank.recv(psi.PsiStep.HOST_SIZE, Role.HOST) == psi.SetSize(70)
    assert [(e.sender, e.sequence) for e, _ in seen if e.job_id == job and e.step == "seal.hello"] == \
        [("platform", 2), ("platform", 0), ("bank", 0), ("bank", 2)]
    with pytest.raises(ProtocolError, match="no sealing phase 'lr9'"):
        bank.establish_sealing("platform", "lr9")


def test_transcripts_of_a_sealed_exchange_verify(relay, layout: CertLayout, tmp_path: Path) -> None:
    """The audit checks digests and signatures, never plaintexts: the hellos and sealed payloads verify on all three ends."""
    coord, _ = relay
    job = _job(coord, layout)
    ca = layout.ca_cert.read_bytes()
    writers: dict[str, TranscriptWriter] = {}
    endpoints: dict[str, RelayEndpoint] = {}
    for me, role in (("bank", "guest"), ("platform", "host")):
        peer = _other(me)
        w = writers[me] = TranscriptWriter(tmp_path / f"{job}.{me}.jsonl", job_id=job, identity=_signer(layout, me), role=role, ca_cert_pem=ca)
        w.event("peer_certs", certs={n: layout.node(n).sign_cert.read_text() for n in (peer, "coordinator")})

        def record(direction: str, env: envelope_pb2.Envelope, msg: Any, wire: bytes, w: TranscriptWriter = w) -> None:
            w.message(direction, envelope_fields(env), env.signature, disclosed=msg.disclosed(), payload=wire)

        endpoints[me] = _endpoint(coord, layout, me, job, recorder=record)
    _run_psi(endpoints["bank"], endpoints["platform"])
    for me, w in writers.items():
        w.event("finished", ok=True, error="")
        w.close()
        coord.jobs.role_result(job, me, True, {}, "", "")
    paths = [tmp_path / f"{job}.bank.jsonl", tmp_path / f"{job}.platform.jsonl", *(tmp_path / "transcripts").glob(f"{job}.*.jsonl")]
    assert len(paths) == 3
    result = verify_transcripts(paths, ca_cert_pem=ca)
    assert result.ok, [p.message for p in result.problems]
    bank_hellos = [json.loads(line)["body"] for line in paths[0].read_text().splitlines() if '"seal.hello"' in line]
    assert {(b["direction"], b["envelope"]["sealed"]) for b in bank_hellos} == {("sent", False), ("received", False)}
    assert all(b["disclosed"]["seal_phase"] == "psi" and len(b["disclosed"]["ephemeral_x25519"]) == 64 for b in bank_hellos)
