"""End-to-end sealing of party-to-party payloads relayed by the coordinator, with forward secrecy.

Each party has two static keys certified by the job's CA: an X25519 sealing key
(``seal.crt``) and an Ed25519 signing key (``sign.crt``, :mod:`fedcredit.runtime.security.signing`).
Neither encrypts anything by itself. For every *phase* of a job -- the protocol a
step belongs to, named by its wire prefix: ``psi``, ``psi_ot``, ``lr2``, ``score``, ``bin``
(:data:`SEAL_PHASES`) -- each party draws a fresh X25519 key pair from the OS
RNG (``os.urandom``), keeps its private half in memory only, and sends the
public half to the peer in a ``seal.hello`` message (:class:`SealStep`) before
the phase's first sealed payload. Both parties then derive the phase's AES-256-GCM keys; the ephemeral
private keys are dropped at once.

The hello of ``X`` to ``Y`` for ``phase`` carries ``E_X`` and ``X``'s Ed25519
signature over::

    SHA-256("fedcredit/v1/seal-hello" ‖ lp(job) ‖ lp(phase) ‖ lp(X) ‖ lp(Y) ‖ lp(S_X) ‖ lp(S_Y) ‖ lp(E_X))

where ``lp(b)`` is ``b`` prefixed by its length (4 bytes, big-endian), ``S_*``
the static sealing keys and ``E_*`` the ephemeral ones (32 raw bytes each). The
receiver checks it with ``X``'s signing certificate, verified against the CA.
With ``A`` < ``B`` the two party names in byte order::

    th   = SHA-256("fedcredit/v1/seal-eph" ‖ lp(job) ‖ lp(phase) ‖ lp(A) ‖ lp(B)
                   ‖ lp(S_A) ‖ lp(S_B) ‖ lp(E_A) ‖ lp(E_B))
    ikm  = X25519(e_A, E_B) ‖ X25519(e_A, S_B) ‖ X25519(s_A, E_B) ‖ X25519(s_A, S_B)
    key(sender -> receiver) = HKDF-SHA256(ikm, salt = th,
                                          info = b"fedcredit/v1/seal-eph|" + sender + b"|" + receiver,
                                          length = 32)

Why this design:

* **Forward secrecy.** Every key depends on ``X25519(e_A, E_B)``, which needs
  one of the two ephemeral private keys. They exist only in memory, for one phase
  of one job, and are discarded once the keys are derived; stealing both
  parties' static sealing *and* signing keys after the job opens nothing that
  was recorded (``tests/test_sealing.py`` shows it, and shows that the old
  static–static derivation does not resist it).
* **No man in the middle, even with a stolen signing key.** The coordinator
  relays the hellos and could swap them. Without the sender's signing key it
  cannot sign a substitute: the receiver refuses it with a clear error. The
  static–static term ``X25519(s_A, S_B)`` (and the two mixed terms) are in
  ``ikm`` as in Noise KK, so even a relay that also stole a signing key, but
  not a sealing key, derives nothing: the two parties' keys then simply differ
  and the first payload fails authentication. The mixed terms also mean that
  one party's stolen static keys do not let an attacker impersonate the *other*
  party to it (key-compromise impersonation).
* **Binding.** ``th`` covers the job id, the phase, both names, both static
  keys and both ephemeral keys, so a hello replayed from another job or phase,
  or a substituted key, yields different keys; the signed hello already names
  all of them except the peer's ephemeral key. The direction is in ``info``, so
  the two directions' keys differ.
* **One exchange per phase, not per job,** so the keys a resumable phase must
  keep on disk never open another phase. An ECDH PSI resumes after a crash
  from its checkpoint; the party that restarts must still open what the peer
  sealed before the crash, so the PSI phase's two derived AES keys (never the
  ephemeral private key) go into the party's own checkpoint (0600, next to the
  PSI's secret scalar, deleted when PSI ends; see
  :meth:`SealSession.export`). The training phase has its own exchange, and
  its keys are never written anywhere.
* No coordinator change beyond one row in its step allow-list: ``seal.hello``
  (from either party to the other, payload :class:`SealHello`) is accepted in
  every job, and it is recorded in the transcripts like any other message.
  A phase's hello always travels as ``seal.hello#n``, ``n`` its place in
  :data:`SEAL_PHASES`: the two parties need not meet the phases in the same
  order, and a party restarted mid-job knows where each phase's hello is.

A sealed payload is ``nonce (12) || ciphertext || tag (16)`` with the envelope
header as associated data, so the coordinator can route it but can neither read
nor alter it, nor move it to another job, direction, phase or header.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .certs import NAME_PATTERN
from .certs import load_key_pair, verify_issued_cert
from ..errors import ConfigError, CryptoError
from .signing import SigningIdentity, sign_digest, verify_digest
from fedcredit.protocols.core import ProtocolStep, Public, Role, StepSpec
from fedcredit.protocols.errors import ProtocolError

__all__ = [
    "NONCE_BYTES",
    "TAG_BYTES",
    "KEY_BYTES",
    "HELLO_TAG",
    "TRANSCRIPT_TAG",
    "SEAL_INFO_PREFIX",
    "SEAL_CHECKPOINT_KEY",
    "SEAL_PHASES",
    "SealIdentity",
    "load_seal_identity",
    "verify_peer_seal_cert",
    "SealHello",
    "SealStep",
    "seal_phase",
    "seal_sequence",
    "hello_digest",
    "transcript_hash",
    "Sealer",
    "SealSession",
]

NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
HELLO_TAG = b"fedcredit/v1/seal-hello"
TRANSCRIPT_TAG = b"fedcredit/v1/seal-eph"
SEAL_INFO_PREFIX = b"fedcredit/v1/seal-eph|"
#: Where a checkpoint keeps the derived keys of its own phase (see :meth:`SealSession.export`).
SEAL_CHECKPOINT_KEY = "sealing"
#: The phases whose payloads are sealed, each with its own key exchange; a phase's ``seal.hello`` has its index here as
#: its sequence number. A new protocol between the parties adds its wire prefix at the end.
SEAL_PHASES: tuple[str, ...] = ("psi", "psi_ot", "lr2", "score", "bin")  # appended only: a hello travels as seal.hello#<index>
_EXPORT_VERSION = 1
_PHASE = re.compile(r"[a-z0-9_]{1,32}")


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


# --------------------------------------------------------------------------- the hello message


@dataclass(frozen=True)
class SealHello(Public):
    """One party's ephemeral X25519 public key for one phase of a job, signed with its Ed25519 key.

    Classified :class:`~fedcredit.protocols.core.Public`: a fresh public key, useless
    without its private half, which never leaves the sender's memory.

    Attributes:
        phase: the protocol whose payloads the keys seal (a step's wire prefix).
        ephemeral: the 32-byte X25519 public key.
        signature: the sender's Ed25519 signature over :func:`hello_digest`.
    """

    phase: str
    ephemeral: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.phase, str) or _PHASE.fullmatch(self.phase) is None:
            raise ProtocolError(f"SealHello.phase must match [a-z0-9_]{{1,32}}, got {self.phase!r}")
        if not isinstance(self.ephemeral, bytes) or len(self.ephemeral) != KEY_BYTES:
            raise ProtocolError(f"SealHello.ephemeral must be {KEY_BYTES} bytes")
        if not isinstance(self.signature, bytes) or len(self.signature) != 64:
            raise ProtocolError("SealHello.signature must be 64 bytes")

    def disclosed(self) -> dict[str, Any]:
        return {"seal_phase": self.phase, "ephemeral_x25519": self.ephemeral.hex()}


class SealStep(ProtocolStep):
    """The sealing layer's one step, run by :class:`fedcredit.runtime.driver.Endpoint` before a phase's first sealed payload."""

    HELLO = StepSpec(
        "seal.hello", (Role.GUEST, Role.HOST), (Role.GUEST, Role.HOST), SealHello,
        "the sender's fresh X25519 key for one phase of the job, signed; once per phase and direction",
    )


def seal_phase(wire: str) -> str:
    """The phase a step belongs to: its wire name's prefix (``psi.guest_blinded`` -> ``psi``)."""
    return wire.partition(".")[0]


def seal_sequence(phase: str) -> int:
    """The sequence number of ``phase``'s ``seal.hello`` (both directions): its index in :data:`SEAL_PHASES`.

    Raises:
        ProtocolError: not a sealed phase (a protocol missing from :data:`SEAL_PHASES`).
    """
    try:
        return SEAL_PHASES.index(phase)
    except ValueError:
        raise ProtocolError(f"no sealing phase {phase!r}: a protocol between the parties must be listed in SEAL_PHASES") from None


# --------------------------------------------------------------------------- the key schedule


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes_raw()


def hello_digest(job_id: str, phase: str, sender: str, receiver: str, sender_static: bytes, receiver_static: bytes,
                 ephemeral: bytes) -> bytes:
    """What the sender of a :class:`SealHello` signs (see the module docstring)."""
    parts = (job_id.encode("utf-8"), phase.encode("ascii"), sender.encode("ascii"), receiver.encode("ascii"),
             sender_static, receiver_static, ephemeral)
    return hashlib.sha256(HELLO_TAG + b"".join(_lp(p) for p in parts)).digest()


def transcript_hash(job_id: str, phase: str, names: tuple[str, str], statics: tuple[bytes, bytes],
                    ephemerals: tuple[bytes, bytes]) -> bytes:
    """``th`` of the module docstring: ``names`` in byte order, ``statics`` and ``ephemerals`` in the same order."""
    parts = (job_id.encode("utf-8"), phase.encode("ascii"), names[0].encode("ascii"), names[1].encode("ascii"),
             *statics, *ephemerals)
    return hashlib.sha256(TRANSCRIPT_TAG + b"".join(_lp(p) for p in parts)).digest()


def _traffic_key(ikm: bytes, th: bytes, sender: str, receiver: str) -> bytes:
    info = SEAL_INFO_PREFIX + sender.encode("ascii") + b"|" + receiver.encode("ascii")
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=th, info=info).derive(ikm)


# --------------------------------------------------------------------------- sealing with derived keys


class Sealer:
    """Seal payloads to one peer and open the peer's payloads, with one phase's keys.

    ``seal`` uses the key for ``me -> peer``; ``open`` the key for ``peer -> me``.
    Made by :class:`SealSession` from an ephemeral key exchange; the keys are
    kept out of ``repr``.

    Args:
        me: this party's name.
        peer: the peer's name.
        job_id: the job (for messages only: the keys are bound to it already).
        send_key: 32 bytes, ``me -> peer``.
        recv_key: 32 bytes, ``peer -> me``.
        phase: the phase the keys belong to (for messages).
    """

    def __init__(self, me: str, peer: str, job_id: str, send_key: bytes, recv_key: bytes, *, phase: str = "") -> None:
        if len(send_key) != KEY_BYTES or len(recv_key) != KEY_BYTES:
            raise ConfigError(f"sealing keys are {KEY_BYTES} bytes")
        if send_key == recv_key:
            raise ConfigError("the two directions' sealing keys must differ")
        self._me = me
        self._peer = peer
        self._job_id = job_id
        self._phase = phase
        self._keys = (bytes(send_key), bytes(recv_key))
        self._send = AESGCM(send_key)
        self._recv = AESGCM(recv_key)

    @property
    def sender(self) -> str:
        return self._me

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def job_id(self) -> str:
        return self._job_id

    @property
    def phase(self) -> str:
        return self._phase

    def __repr__(self) -> str:
        return f"Sealer({self._me!r} <-> {self._peer!r}, job={self._job_id!r}, phase={self._phase!r})"

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
                different aad, other job, phase or direction, or keys that
                differ because an ephemeral key was substituted).
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
                f"sealed payload from {self._peer!r} failed authentication in job {self._job_id!r}, phase {self._phase!r} "
                f"(tampered, wrong header, wrong job or phase, or the two parties' keys differ: a substituted ephemeral key)"
            ) from None


# --------------------------------------------------------------------------- the per-job session


class SealSession:
    """The sealing between this party and one peer within one job: one ephemeral key exchange per phase.

    :class:`fedcredit.runtime.driver.Endpoint` drives it: :meth:`hello` before a
    phase's first payload, :meth:`accept` with the peer's hello, then
    :meth:`sealer` for every payload of that phase.

    Args:
        identity: this party's static sealing identity.
        signer: this party's signing identity (signs its hellos); same name.
        peer_name: the peer's party name.
        peer_seal_key: the peer's static key, from :func:`verify_peer_seal_cert`.
        peer_sign_key: the peer's Ed25519 key, from
            :func:`fedcredit.runtime.security.signing.verify_signing_cert`.
        job_id: the job; keys differ per job.
        restored: :meth:`export` output from this party's own checkpoint, to
            resume a phase after a restart.
        keygen: makes one ephemeral private key; default: 32 bytes of
            ``os.urandom``. Tests pass fixed keys to check vectors.

    Raises:
        ConfigError: a name is not a valid node name, the peer is oneself, the
            signer is another node, ``job_id`` is empty, or ``restored`` is
            malformed or belongs to another job or peer.
    """

    def __init__(
        self,
        identity: SealIdentity,
        signer: SigningIdentity,
        peer_name: str,
        peer_seal_key: X25519PublicKey,
        peer_sign_key: Ed25519PublicKey,
        job_id: str,
        *,
        restored: Mapping[str, Any] | None = None,
        keygen: Callable[[], X25519PrivateKey] | None = None,
    ) -> None:
        for what, name in (("own party name", identity.name), ("peer party name", peer_name)):
            if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
                raise ConfigError(f"cannot seal: invalid {what} {name!r}")
        if peer_name == identity.name:
            raise ConfigError(f"cannot seal to oneself ({peer_name!r}): both directions would share a key")
        if signer.name != identity.name:
            raise ConfigError(f"cannot seal: the signing identity is {signer.name!r}, the sealing identity {identity.name!r}")
        if not job_id:
            raise ConfigError("cannot seal: empty job id")
        if not isinstance(peer_seal_key, X25519PublicKey) or not isinstance(peer_sign_key, Ed25519PublicKey):
            raise ConfigError("cannot seal: the peer's keys must be a verified X25519 sealing key and Ed25519 signing key")
        self._identity = identity
        self._signer = signer
        self._peer = peer_name
        self._job_id = job_id
        self._own_static = _raw(identity.private_key.public_key())
        self._peer_static_key = peer_seal_key
        self._peer_static = _raw(peer_seal_key)
        self._peer_sign = peer_sign_key
        self._keygen = keygen or (lambda: X25519PrivateKey.from_private_bytes(os.urandom(KEY_BYTES)))
        self._pending: dict[str, tuple[X25519PrivateKey, SealHello]] = {}
        self._sealers: dict[str, Sealer] = {}
        if restored is not None:
            self._restore(restored)

    @property
    def me(self) -> str:
        return self._identity.name

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def job_id(self) -> str:
        return self._job_id

    def __repr__(self) -> str:
        return f"SealSession({self.me!r} <-> {self._peer!r}, job={self._job_id!r}, phases={sorted(self._sealers)})"

    def sealer(self, phase: str) -> Sealer | None:
        """The phase's sealer once its keys are agreed, else None."""
        return self._sealers.get(phase)

    def hello(self, phase: str) -> SealHello:
        """This party's hello for ``phase``: a fresh ephemeral key pair (kept in memory until :meth:`accept`), signed.

        Calling it again before :meth:`accept` returns the same hello.

        Raises:
            ProtocolError: the phase's keys are already agreed, or ``phase`` is not in :data:`SEAL_PHASES`.
        """
        seal_sequence(phase)
        if phase in self._sealers:
            raise ProtocolError(f"the sealing keys of phase {phase!r} of job {self._job_id} are already agreed")
        if phase in self._pending:
            return self._pending[phase][1]
        private = self._keygen()
        ephemeral = _raw(private.public_key())
        digest = hello_digest(self._job_id, phase, self.me, self._peer, self._own_static, self._peer_static, ephemeral)
        hello = SealHello(phase, ephemeral, sign_digest(self._signer, digest))
        self._pending[phase] = (private, hello)
        return hello

    def accept(self, phase: str, hello: SealHello) -> Sealer:
        """Check the peer's hello for ``phase`` and derive the phase's keys; the ephemeral private key is dropped.

        Raises:
            CryptoError: the hello is for another phase, not signed by the peer
                for this job, these two parties and these static keys (a
                substituted or replayed ephemeral key), a low-order point, or
                this party sent no hello for the phase.
        """
        if not isinstance(hello, SealHello):
            raise CryptoError(f"expected a SealHello from {self._peer!r}, got {type(hello).__name__}")
        if hello.phase != phase:
            raise CryptoError(f"the ephemeral sealing key {self._peer!r} sent is for phase {hello.phase!r}, not {phase!r} "
                              f"(job {self._job_id}): a replayed or misdirected seal.hello")
        pending = self._pending.get(phase)
        if pending is None:
            raise CryptoError(f"no ephemeral key of {self.me!r} is waiting for phase {phase!r} of job {self._job_id}: "
                              f"an unexpected seal.hello from {self._peer!r}")
        digest = hello_digest(self._job_id, phase, self._peer, self.me, self._peer_static, self._own_static, hello.ephemeral)
        try:
            verify_digest(self._peer_sign, digest, hello.signature)
        except CryptoError:
            raise CryptoError(
                f"the ephemeral sealing key received from {self._peer!r} for phase {phase!r} of job {self._job_id} is not signed "
                f"by {self._peer!r} for this job, phase and pair of sealing keys: substituted or replayed on the way (by the relay?); "
                f"refused") from None
        private, mine = pending
        if hello.ephemeral == mine.ephemeral:
            raise CryptoError(f"the ephemeral sealing key received from {self._peer!r} is this party's own: a reflected seal.hello")
        try:
            peer_ephemeral = X25519PublicKey.from_public_bytes(hello.ephemeral)
            ee = private.exchange(peer_ephemeral)
            e_to_static = private.exchange(self._peer_static_key)            # own ephemeral, peer's static
            static_to_e = self._identity.private_key.exchange(peer_ephemeral)  # own static, peer's ephemeral
            ss = self._identity.private_key.exchange(self._peer_static_key)
        except ValueError:
            raise CryptoError(f"key agreement with {self._peer!r} failed (a low-order ephemeral or static key)") from None
        if self.me < self._peer:  # A = me: X25519(e_A, S_B), X25519(s_A, E_B)
            es, se = e_to_static, static_to_e
            names, statics, ephemerals = (self.me, self._peer), (self._own_static, self._peer_static), (mine.ephemeral, hello.ephemeral)
        else:  # A = peer: X25519(e_A, S_B) = X25519(s_me, E_peer); X25519(s_A, E_B) = X25519(e_me, S_peer)
            es, se = static_to_e, e_to_static
            names, statics, ephemerals = (self._peer, self.me), (self._peer_static, self._own_static), (hello.ephemeral, mine.ephemeral)
        th = transcript_hash(self._job_id, phase, names, statics, ephemerals)
        ikm = ee + es + se + ss
        sealer = Sealer(self.me, self._peer, self._job_id, _traffic_key(ikm, th, self.me, self._peer),
                        _traffic_key(ikm, th, self._peer, self.me), phase=phase)
        del self._pending[phase]  # forward secrecy: the ephemeral private key goes now
        self._sealers[phase] = sealer
        return sealer

    def export(self, phase: str) -> dict[str, Any]:
        """The derived keys of an agreed phase, for this party's own checkpoint only. **Secret.**

        Holds the phase's two AES keys, never an ephemeral or static private
        key: whoever reads it can open that phase's payloads of this job, and
        nothing else. The runtime writes it only into a checkpoint of the same
        phase (ECDH PSI's, 0600, deleted when PSI ends), so that a party
        restarted mid-phase can still open what the peer sealed before.

        Raises:
            ProtocolError: the phase's keys are not agreed.
        """
        sealer = self._sealers.get(phase)
        if sealer is None:
            raise ProtocolError(f"no sealing keys agreed for phase {phase!r} of job {self._job_id}")
        send, recv = sealer._keys
        return {"version": _EXPORT_VERSION, "job_id": self._job_id, "me": self.me, "peer": self._peer, "phase": phase,
                "send": send.hex(), "recv": recv.hex()}

    def _restore(self, state: Mapping[str, Any]) -> None:
        try:
            if state["version"] != _EXPORT_VERSION:
                raise ConfigError(f"unsupported sealing state version {state['version']!r}")
            phase = str(state["phase"])
            owner = (state["job_id"], state["me"], state["peer"])
            send, recv = bytes.fromhex(state["send"]), bytes.fromhex(state["recv"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed sealing state in the checkpoint: {type(exc).__name__}") from None
        if owner != (self._job_id, self.me, self._peer):
            raise ConfigError(f"the checkpoint's sealing keys belong to job {owner[0]!r}, {owner[1]!r} -> {owner[2]!r}, "
                              f"not to job {self._job_id!r}, {self.me!r} -> {self._peer!r}")
        if phase not in SEAL_PHASES:
            raise ConfigError(f"malformed sealing state in the checkpoint: unknown phase {phase!r}")
        self._sealers[phase] = Sealer(self.me, self._peer, self._job_id, send, recv, phase=phase)
