"""Plain helpers shared by the test files (tests/ is on sys.path: ``from helpers import ...``).

Fixtures live in tests/conftest.py; what is here is called, not requested: the example data, Paillier key pairs
from a seed, the identities a dev CA's layout holds, and a real coordinator on 127.0.0.1:0 with jobs that run and
relay endpoints that talk through it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gmpy2
import grpc
import numpy as np
import pandas as pd

from fedcredit.runtime.node.approval import make_approval
from fedcredit.runtime.security.certs import CertLayout
from fedcredit.runtime.config import CoordinatorConfig, JobSpec, SignConfig, TlsConfig, parse_config
from fedcredit.runtime.coordinator.service import Coordinator
from fedcredit.runtime.driver import RelayEndpoint
from fedcredit.runtime.security.sealing import SealIdentity, SealSession, load_seal_identity, verify_peer_seal_cert
from fedcredit.runtime.security.signing import SigningIdentity, load_signing_identity, verify_signing_cert
from fedcredit.runtime.security.transport import create_channel
from fedcredit.protocols.core import Role
from fedcredit.protocols.hetero_lr.protocol import EncryptedVector
from fedcredit.protocols.hetero_lr.two_party import EncryptedResidualShare
from fedcredit.protocols.paillier import PaillierPrivateKey, PaillierPublicKey, from_residue, generate_keypair

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "data"
BREAST_GUEST = DATA / "breast_hetero_guest.csv"  # id, y and the bank's features
BREAST_HOST = DATA / "breast_hetero_host.csv"  # id and the platform's features

PARTIES = ("bank", "platform")
#: who plays which role in every test job: the bank is the guest, the platform the host
NAMES = {Role.GUEST: "bank", Role.HOST: "platform", Role.COORDINATOR: "coordinator"}
PURPOSE = "financing.credit_risk_model"


# --------------------------------------------------------------------------
# the example data
# --------------------------------------------------------------------------
def read_breast() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The breast example as the two parties hold it: (guest frame, host frame), ids as strings."""
    return pd.read_csv(BREAST_GUEST, dtype={"id": str}), pd.read_csv(BREAST_HOST, dtype={"id": str})


def breast_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The breast example aligned on id, unscaled: (ids, guest features, host features, 0/1 labels)."""
    g, h = read_breast()
    j = g.merge(h, on="id", suffixes=("_g", "_h"), validate="one_to_one")
    gcols = [c for c in g.columns if c not in ("id", "y")]
    hcols = [c for c in h.columns if c != "id"]
    xg = j[[c + "_g" if c in hcols else c for c in gcols]].to_numpy(float)
    xh = j[[c + "_h" if c in gcols else c for c in hcols]].to_numpy(float)
    assert xg.shape[1] == len(gcols) and xh.shape[1] == len(hcols)
    y = j["y"].to_numpy().astype(int)
    assert set(np.unique(y)) == {0, 1}
    return j["id"].to_numpy(), xg, xh, y


# --------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------
def paillier_keypair(bits: int, seed: int) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """A reproducible Paillier key pair; below 1024 bits the insecure test-only sizes are allowed."""
    return generate_keypair(bits, random.Random(seed), insecure_allow_small=bits < 1024)


def paillier_with_phe(bits: int, seed: int) -> tuple[PaillierPublicKey, PaillierPrivateKey, Any]:
    """:func:`paillier_keypair` and the private key's python-paillier (phe) twin, the independent oracle."""
    pk, sk = paillier_keypair(bits, seed)
    return pk, sk, sk.to_phe()


def dec_signed(sk: PaillierPrivateKey, c: Any) -> int:
    """Decrypt ``c`` to the signed integer its residue stands for."""
    return from_residue(sk.public_key, sk.decrypt_raw(c))


def signer(layout: CertLayout, name: str) -> SigningIdentity:
    """``name``'s Ed25519 signing identity from the layout."""
    files = layout.node(name)
    assert files.sign_cert is not None and files.sign_key is not None
    return load_signing_identity(files.sign_cert, files.sign_key)


def seal_identity(layout: CertLayout, name: str) -> SealIdentity:
    """``name``'s static X25519 sealing identity from the layout."""
    files = layout.node(name)
    assert files.seal_cert is not None and files.seal_key is not None
    return load_seal_identity(files.seal_cert, files.seal_key)


def signing_keys(layout: CertLayout, names: tuple[str, ...] = (*PARTIES, "coordinator")) -> dict[str, Any]:
    """The signing keys of ``names``, each verified against the layout's CA as a node verifies its peers'."""
    ca = layout.ca_cert.read_bytes()
    return {n: verify_signing_cert(layout.node(n).sign_cert.read_bytes(), ca, n) for n in names}


def other_party(name: str) -> str:
    return "platform" if name == "bank" else "bank"


def seal_session(layout: CertLayout, me: str, job_id: str, **kwargs: Any) -> SealSession:
    """``me``'s sealing session with the other party, the peer's certificates verified against the CA as a node does."""
    peer, ca = other_party(me), layout.ca_cert.read_bytes()
    files = layout.node(peer)
    return SealSession(seal_identity(layout, me), signer(layout, me), peer,
                       verify_peer_seal_cert(files.seal_cert.read_bytes(), ca, peer),
                       verify_signing_cert(files.sign_cert.read_bytes(), ca, peer), job_id, **kwargs)


# --------------------------------------------------------------------------
# a coordinator in process, its jobs and relay endpoints
# --------------------------------------------------------------------------
def start_coordinator(tmp_path: Path, layout: CertLayout, **settings: Any) -> Coordinator:
    """A coordinator on 127.0.0.1:0 with ``layout``'s certificates; ``settings`` are extra config fields."""
    c = layout.node("coordinator")
    cfg = CoordinatorConfig(tls=TlsConfig(ca=layout.ca_cert, cert=c.tls_cert, key=c.tls_key), listen="127.0.0.1:0",
                            sign=SignConfig(cert=c.sign_cert, key=c.sign_key), transcripts=tmp_path / "transcripts",
                            database=tmp_path / "c.sqlite", parties=list(PARTIES), **settings)
    coord = Coordinator(cfg)
    coord.start()
    return coord


@contextmanager
def serving_coordinator(tmp_path: Path, layout: CertLayout, **settings: Any) -> Iterator[Coordinator]:
    """:func:`start_coordinator` for a ``with`` block: stopped at its end."""
    coord = start_coordinator(tmp_path, layout, **settings)
    try:
        yield coord
    finally:
        coord.stop(0)


def channel_for(coord: Coordinator, layout: CertLayout, name: str) -> grpc.Channel:
    """An mTLS channel to ``coord`` as node ``name``."""
    return create_channel(f"127.0.0.1:{coord.port}", layout.tls(name), server_name="coordinator")


def job_spec(kind: str = "train", **fields: Any) -> JobSpec:
    """A job of ``kind`` between the bank (guest) and the platform (host) on dataset "d"; ``fields`` are added."""
    return parse_config(JobSpec, {"kind": kind, "purpose": PURPOSE, "guest": {"party": "bank", "dataset": "d"},
                                  "host": {"party": "platform", "dataset": "d"}, **fields}, source="t")


def running_job(coord: Coordinator, layout: CertLayout, kind: str = "train", **fields: Any) -> str:
    """Submit a job and approve it as both parties would (signed with their keys), so it runs."""
    job_id = coord.jobs.submit(job_spec(kind, **fields)).job_id
    for party in PARTIES:
        coord.jobs.set_sign_key(party, layout.node(party).sign_cert.read_bytes())
        coord.jobs.approve(job_id, party, make_approval(signer(layout, party), job_id, coord.jobs.get(job_id).spec_sha256, True, "policy"))
    assert coord.jobs.get(job_id).state == "running"
    return job_id


def endpoint(coord: Coordinator, layout: CertLayout, me: str, job_id: str, timeout_s: float = 20, **kwargs: Any) -> RelayEndpoint:
    """``me``'s relay endpoint in ``job_id`` (bank is the guest, platform the host); ``kwargs`` go to the endpoint
    (``sealers=...``, ``recorder=...``). Without sealers nothing is sealed: the relay's checks and limits do not
    depend on it, and an unsealed endpoint needs no key exchange."""
    return RelayEndpoint(channel_for(coord, layout, me), job_id, Role.GUEST if me == "bank" else Role.HOST, NAMES,
                         signer=signer(layout, me), verify_keys=signing_keys(layout), timeout_s=timeout_s, **kwargs)


def sealed_endpoint(coord: Coordinator, layout: CertLayout, me: str, job_id: str, session: Any = None, **kwargs: Any) -> RelayEndpoint:
    """``me``'s relay endpoint that seals to the other party with ``session`` (by default a fresh :func:`seal_session`)."""
    sealer = session if session is not None else seal_session(layout, me, job_id)
    return endpoint(coord, layout, me, job_id, sealers={other_party(me): sealer}, **kwargs)


SECRET = 0x5EC12E7  # a "data value" that must never appear in an error


def residual(count: int = 2) -> EncryptedResidualShare:
    """A residual-share message of ``count`` 512-byte "ciphertexts" (about 0.5 KiB each on the wire)."""
    return EncryptedResidualShare(EncryptedVector(b"k" * 32, 0, tuple(gmpy2.mpz((1 << 4095) + SECRET + i) for i in range(count))))


def through_wire(program):
    """A role program whose every sent message goes through its protobuf codec, as the runtime sends it."""
    from fedcredit.protocols.core import Send
    from fedcredit.runtime.codec import decode_payload, encode_payload

    reply = None
    while True:
        try:
            action = program.send(reply)
        except StopIteration as stop:
            return stop.value
        if isinstance(action, Send):
            name, raw = encode_payload(action.payload)
            action = Send(action.step, decode_payload(name, raw, expected=type(action.payload)), action.to)
        reply = yield action
