"""What tests/test_sealing.py and tests/test_sealing_keys.py share: the job and header they seal under, sessions
between the bank and the platform, and an independent key schedule written from the sealing module's docstring,
for the checks and the attacks."""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedcredit.runtime.security.certs import CertLayout
from fedcredit.runtime.security.sealing import SealSession
from helpers import seal_identity, seal_session

JOB = "job-2024-001"
HEADER = b"fedcredit.v1|job-2024-001|msg-7|bank->platform|step=lr2.gradient|seq=3"


def session(layout: CertLayout, me: str, job: str = JOB, **kwargs: Any) -> SealSession:
    """``me``'s session with the other party in ``job``, the peer's certificates verified against the CA as a node does."""
    return seal_session(layout, me, job, **kwargs)


def static_key(layout: CertLayout, name: str) -> bytes:
    """``name``'s static X25519 sealing public key, raw."""
    return seal_identity(layout, name).private_key.public_key().public_bytes_raw()


# -------------------------------------------------------------------------- an independent key schedule, for the checks and the attacks


def lp(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def key_schedule(job: str, phase: str, statics: tuple[bytes, bytes], ephemerals: tuple[bytes, bytes],
                 ee: bytes, es: bytes, se: bytes, ss: bytes) -> tuple[bytes, bytes]:
    """(key bank -> platform, key platform -> bank), from the sealing module's docstring; the bank is A ("bank" < "platform")."""
    th = hashlib.sha256(b"fedcredit/v1/seal-eph" + b"".join(
        lp(x) for x in (job.encode(), phase.encode(), b"bank", b"platform", *statics, *ephemerals))).digest()
    ikm = ee + es + se + ss

    def key(sender: bytes, receiver: bytes) -> bytes:
        return HKDF(hashes.SHA256(), 32, th, b"fedcredit/v1/seal-eph|" + sender + b"|" + receiver).derive(ikm)

    return key(b"bank", b"platform"), key(b"platform", b"bank")
