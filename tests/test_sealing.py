"""End-to-end sealing between two parties: ephemeral X25519 keys per job and phase (#12), certificates from the dev CA.

The first part checks that a ``seal.hello`` is authenticated, bound to its job, phase and keys, and not replayable:
every way a hello can be substituted or replayed. The second part runs real exchanges through an in-process
coordinator over mTLS (the relay the parties use), records the sealed bytes exactly as the coordinator stored them,
and attacks them after the job with both parties' static keys. The attack keeps a deliberately naive variant, the old
static–static derivation, to show that it works there. The key schedule, tampering, directions and the peer
certificate check are in test_sealing_keys.py.
"""

from __future__ import annotations

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

from fedcredit.proto.v1 import envelope_pb2
from fedcredit.runtime.audit import verify_transcripts
from fedcredit.runtime.security.certs import CertLayout
from fedcredit.runtime.codec import decode_payload, encode_payload
from fedcredit.runtime.coordinator.service import Coordinator
from fedcredit.runtime.errors import CryptoError, ProtocolError
from fedcredit.runtime.driver import RelayEndpoint, drive, envelope_aad
from fedcredit.runtime.security.sealing import NONCE_BYTES, SEAL_CHECKPOINT_KEY, SealHello, SealIdentity, SealSession, Sealer, hello_digest
from fedcredit.runtime.security.signing import envelope_digest, envelope_fields, sign_digest, verify_signing_cert
from fedcredit.runtime.transcript import TranscriptWriter
from helpers import PARTIES, other_party, running_job, seal_identity, sealed_endpoint, signer, start_coordinator
from fedcredit.protocols.core import Checkpoint, Role
from fedcredit.protocols.psi import protocol as psi
from sealing_support import HEADER, JOB, key_schedule, session, static_key


def _naive_static_keys(bank: SealIdentity, platform_public: X25519PublicKey, job: str) -> tuple[bytes, bytes]:
    """The old derivation, deliberately naive: one static–static secret per pair of parties, HKDF over the job id."""
    ikm, salt = bank.private_key.exchange(platform_public), hashlib.sha256(job.encode()).digest()

    def key(info: bytes) -> bytes:
        return HKDF(hashes.SHA256(), 32, salt, info).derive(ikm)

    return key(b"fedcredit/v1/seal|bank|platform"), key(b"fedcredit/v1/seal|platform|bank")


class NaiveStaticSealing:
    """The old sealing as a session: static–static keys for every phase, no exchange. For the control runs only."""

    def __init__(self, layout: CertLayout, me: str, job: str) -> None:
        k_bp, k_pb = _naive_static_keys(seal_identity(layout, "bank"), seal_identity(layout, "platform").private_key.public_key(), job)
        send, recv = (k_bp, k_pb) if me == "bank" else (k_pb, k_bp)
        self._sealer = Sealer(me, other_party(me), job, send, recv, phase="static")

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


# -------------------------------------------------------------------------- the hello: authenticated, bound, not replayable


def test_a_substituted_ephemeral_key_is_refused(layout: CertLayout) -> None:
    """A relay swapping the platform's ephemeral key for its own cannot sign the substitute as the platform."""
    bank, platform = session(layout, "bank"), session(layout, "platform")
    hb, hp = bank.hello("lr2"), platform.hello("lr2")
    mitm = X25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(CryptoError, match=r"not signed by 'platform' for this job, phase and pair of sealing keys: "
                                          r"substituted or replayed on the way \(by the relay\?\); refused"):
        bank.accept("lr2", SealHello("lr2", mitm, hp.signature))  # the relay's key under the platform's signature
    coordinator = signer(layout, "coordinator")  # the only signing key the relay holds
    forged = sign_digest(coordinator, hello_digest(JOB, "lr2", "platform", "bank", static_key(layout, "platform"), static_key(layout, "bank"), mitm))
    with pytest.raises(CryptoError, match="not signed by 'platform'"):
        bank.accept("lr2", SealHello("lr2", mitm, forged))
    with pytest.raises(CryptoError, match="not signed by 'platform'"):
        bank.accept("lr2", hb)  # the bank's own hello reflected back to it
    assert bank.accept("lr2", hp) is bank.sealer("lr2")  # the genuine hello still goes through


def test_a_hello_replayed_from_another_job_or_phase_is_refused(layout: CertLayout) -> None:
    old = session(layout, "platform", "job-old").hello("lr2")
    bank = session(layout, "bank")
    bank.hello("lr2")
    with pytest.raises(CryptoError, match="not signed by 'platform' for this job"):
        bank.accept("lr2", old)
    platform = session(layout, "platform")
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
    wrong_bank_key = seal_identity(other_layout, "bank").private_key.public_key()
    platform = SealSession(seal_identity(layout, "platform"), signer(layout, "platform"), "bank", wrong_bank_key,
                           verify_signing_cert(bank_files.sign_cert.read_bytes(), ca, "bank"), JOB)
    bank = session(layout, "bank")
    bank.hello("lr2")
    with pytest.raises(CryptoError, match="pair of sealing keys"):
        bank.accept("lr2", platform.hello("lr2"))


def test_a_relay_with_stolen_signing_keys_but_no_sealing_key_can_neither_read_nor_forge(layout: CertLayout) -> None:
    """The static–static term is still mixed in: signing keys alone do not make a man in the middle."""
    bank, platform = session(layout, "bank"), session(layout, "platform")
    hb, hp = bank.hello("lr2"), platform.hello("lr2")
    S = {n: static_key(layout, n) for n in PARTIES}
    m1, m2 = X25519PrivateKey.generate(), X25519PrivateKey.generate()  # the relay's keys, one per victim

    def forge(sender: str, key: X25519PrivateKey) -> SealHello:
        e = key.public_key().public_bytes_raw()
        receiver = other_party(sender)
        return SealHello("lr2", e, sign_digest(signer(layout, sender), hello_digest(JOB, "lr2", sender, receiver, S[sender], S[receiver], e)))

    to_bank = bank.accept("lr2", forge("platform", m1))  # accepted: the signatures are genuine
    to_platform = platform.accept("lr2", forge("bank", m2))
    M1, M2 = m1.public_key().public_bytes_raw(), m2.public_key().public_bytes_raw()
    publics = [X25519PublicKey.from_public_bytes(x) for x in (S["bank"], S["platform"], hb.ephemeral, hp.ephemeral, M1, M2)]
    known = [m.exchange(p) for m in (m1, m2) for p in publics]  # every X25519 value the relay can compute
    # The bank's keys: ee = X25519(e_bank, M1) and se = X25519(s_bank, M1) the relay has; es and ss need e_bank, s_bank or s_platform.
    guesses = [key_schedule(JOB, "lr2", (S["bank"], S["platform"]), (hb.ephemeral, M1), m1.exchange(publics[2]), es,
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


# -------------------------------------------------------------------------- through the coordinator's relay, over mTLS

Relayed = list[tuple[envelope_pb2.Envelope, bytes]]


@pytest.fixture()
def relay(tmp_path: Path, layout: CertLayout, monkeypatch: pytest.MonkeyPatch):
    """A coordinator on port 0; ``seen`` gets a copy of every (envelope, payload) exactly as the relay stores it."""
    coord = start_coordinator(tmp_path, layout)
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
    """A running job of ``kind`` whose PSI protocol is ECDH, the PSI :func:`_run_psi` runs."""
    return running_job(coord, layout, kind, psi={"protocol": "ecdh"})


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

    bank = sealed_endpoint(coord, layout, "bank", job, session(layout, "bank", job, keygen=keeping("bank")))
    platform = sealed_endpoint(coord, layout, "platform", job, session(layout, "platform", job, keygen=keeping("platform")))
    _run_psi(bank, platform)

    relayed = [(e, d) for e, d in seen if e.job_id == job]
    sealed = [(e, d) for e, d in relayed if e.sealed]
    hellos = {e.sender: decode_payload(e.payload_type, d) for e, d in relayed if e.step == "seal.hello"}
    assert len(sealed) >= 8 and len(sealed) == len(relayed) - 2  # everything but the two hellos is sealed
    assert set(hellos) == set(PARTIES) and all(isinstance(h, SealHello) and h.phase == "psi" for h in hellos.values())
    assert all(e.classification == "public" and not e.sealed for e, _ in relayed if e.step == "seal.hello")
    assert [len(m) for m in made.values()] == [1, 1]  # one ephemeral key per party for the job's one phase

    stolen_bank, stolen_platform = seal_identity(layout, "bank").private_key, seal_identity(layout, "platform").private_key
    # 1. The old static–static derivation opens nothing: these payloads were not sealed that way.
    assert _opened([_naive_static_keys(seal_identity(layout, "bank"), stolen_platform.public_key(), job)], sealed) == 0
    # 2. The real key schedule, with the three terms the attacker can now compute exactly, and every X25519 value it can
    #    compute from the stolen keys and the recorded public keys in place of the ephemeral–ephemeral term.
    S = (static_key(layout, "bank"), static_key(layout, "platform"))
    E = (hellos["bank"].ephemeral, hellos["platform"].ephemeral)
    E_bank, E_plat = (X25519PublicKey.from_public_bytes(x) for x in E)
    publics = [stolen_bank.public_key(), stolen_platform.public_key(), E_bank, E_plat]
    es, se, ss = stolen_platform.exchange(E_bank), stolen_bank.exchange(E_plat), stolen_bank.exchange(stolen_platform.public_key())
    guesses = [key_schedule(job, "psi", S, E, ee, es, se, ss) for ee in (k.exchange(p) for k in (stolen_bank, stolen_platform) for p in publics)]
    assert _opened(guesses, sealed) == 0
    # Control: the attack is the real key schedule. With one ephemeral private key (a memory dump during the job),
    # which no party kept, it opens every payload.
    assert _opened([key_schedule(job, "psi", S, E, made["bank"][0].exchange(E_plat), es, se, ss)], sealed) == len(sealed)


def test_the_old_static_static_sealing_falls_to_the_same_attacker(relay, layout: CertLayout) -> None:
    """The deliberately naive variant: the same PSI sealed with the old static–static keys, attacked with the same stolen keys."""
    coord, seen = relay
    job = _job(coord, layout)
    bank = sealed_endpoint(coord, layout, "bank", job, NaiveStaticSealing(layout, "bank", job))
    platform = sealed_endpoint(coord, layout, "platform", job, NaiveStaticSealing(layout, "platform", job))
    _run_psi(bank, platform)
    sealed = [(e, d) for e, d in seen if e.job_id == job and e.sealed]
    assert len(sealed) >= 8
    stolen = _naive_static_keys(seal_identity(layout, "bank"), seal_identity(layout, "platform").private_key.public_key(), job)
    assert _opened([stolen], sealed) == len(sealed)  # every blinded point the parties exchanged


def test_a_relay_substituting_an_ephemeral_key_is_refused(relay, layout: CertLayout, monkeypatch: pytest.MonkeyPatch) -> None:
    """The coordinator swaps the platform's seal.hello for one carrying its own key, fixes the digest and signs the envelope
    with the only signing key it has; or swaps the payload alone. The bank refuses either before it seals anything."""
    coord, _ = relay
    put = coord.mailbox.put
    coordinator = signer(layout, "coordinator")
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
        bank, platform = sealed_endpoint(coord, layout, "bank", job), sealed_endpoint(coord, layout, "platform", job)
        platform.offer_sealing("bank", "psi")
        with pytest.raises(CryptoError, match=rf"refusing to seal phase 'psi' of job {job} with platform: its ephemeral key "
                                              rf"exchange failed: .*{why}"):
            bank.send(psi.PsiStep.GUEST_SIZE, Role.HOST, psi.SetSize(60))
        assert bank.sealers["platform"].sealer("psi") is None and bank.bytes_sent < 300  # only its own hello left


def test_payloads_recorded_in_one_job_do_not_open_in_another(relay, layout: CertLayout) -> None:
    coord, seen = relay
    jobs, sealers = [_job(coord, layout), _job(coord, layout)], {}
    for job in jobs:
        bank, platform = sealed_endpoint(coord, layout, "bank", job), sealed_endpoint(coord, layout, "platform", job)
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
    bank = sealed_endpoint(coord, layout, "bank", job, on_checkpoint=lambda c: kept.append(dict(c.state)))
    platform = sealed_endpoint(coord, layout, "platform", job)
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
    restarted = sealed_endpoint(coord, layout, "bank", job, session(layout, "bank", job, restored=state))
    assert restarted.recv(psi.PsiStep.HOST_SIZE, Role.HOST) == psi.SetSize(70)
    # Without them it cannot, and says so rather than sending a second, useless key.
    lost = sealed_endpoint(coord, layout, "bank", job)
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
    bank, platform = sealed_endpoint(coord, layout, "bank", job), sealed_endpoint(coord, layout, "platform", job)
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
        peer = other_party(me)
        w = writers[me] = TranscriptWriter(tmp_path / f"{job}.{me}.jsonl", job_id=job, identity=signer(layout, me), role=role, ca_cert_pem=ca)
        w.event("peer_certs", certs={n: layout.node(n).sign_cert.read_text() for n in (peer, "coordinator")})

        def record(direction: str, env: envelope_pb2.Envelope, msg: Any, wire: bytes, w: TranscriptWriter = w) -> None:
            w.message(direction, envelope_fields(env), env.signature, disclosed=msg.disclosed(), payload=wire)

        endpoints[me] = sealed_endpoint(coord, layout, me, job, recorder=record)
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
