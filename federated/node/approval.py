"""A party's local policy and its signed approval of a job.

Before a node touches any data for a job, it checks the job against its own
policy (purpose, peer, role, columns) and the job must carry the node's own
approval of *this exact spec* (its SHA-256), signed with the node's Ed25519
key. An approval comes from the policy (``auto_approve``) or from an operator
at the party (``fedcredit job approve ID --config party.yaml``), never from the
coordinator, which cannot forge the signature.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedcredit.proto.v1 import job_pb2

from ..config import JobSpec, PartyConfig, spec_digest
from ..errors import PermissionDeniedError
from ..security.signing import SigningIdentity, canonical_json, sign_digest, verify_digest

__all__ = ["PolicyCheck", "check_policy", "my_role", "approval_digest", "make_approval", "verify_approval", "require_own_approval",
           "checked_spec"]


@dataclass
class PolicyCheck:
    role: str
    dataset: str
    violations: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def my_role(spec: JobSpec, node: str) -> tuple[str, str, str]:
    """(role, dataset, peer) of ``node`` in the job."""
    if spec.guest.party == node:
        return "guest", spec.guest.dataset, spec.host.party
    if spec.host.party == node:
        return "host", spec.host.dataset, spec.guest.party
    raise PermissionDeniedError(f"{node} has no role in this job")


def dataset_digest(spec: JobSpec, cfg: PartyConfig) -> str:
    """SHA-256 of what this node will read for the job: its dataset file's bytes, its consent registry's
    bytes, and the columns the job selects. Recorded at approval; a job whose data changed since is refused."""
    _, dataset, _ = my_role(spec, cfg.name)
    ds = cfg.datasets.get(dataset)
    if ds is None:
        return ""  # the policy check refuses the job for its unknown dataset
    mine = spec.guest if spec.guest.party == cfg.name else spec.host
    h = hashlib.sha256(b"fedcredit/v1/dataset-digest")
    selection = {"dataset": dataset, "id_column": ds.id_column, "label_column": ds.label_column,
                 "columns": mine.columns, "feature_columns": ds.feature_columns, "missing_values": ds.missing_values,
                 "duplicates": ds.duplicates, "validate_uscc": ds.validate_uscc or spec.psi.validate_uscc}
    h.update(canonical_json(selection))
    for path in (ds.path, ds.consent_registry):
        if path is None:
            h.update(b"\x00")
            continue
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            h.update(b"\x01unreadable")  # loading reports it; the digest just will not match a readable file
    return h.hexdigest()


def check_policy(spec: JobSpec, cfg: PartyConfig) -> PolicyCheck:
    """Check a job against this node's policy. Reads no data."""
    role, dataset, peer = my_role(spec, cfg.name)
    pol = cfg.policy
    pc = PolicyCheck(role, dataset)
    mine = spec.guest if role == "guest" else spec.host

    def check(ok: bool, passed: str, failed: str) -> None:
        (pc.checks if ok else pc.violations).append(passed if ok else failed)

    check(spec.purpose in pol.allowed_purposes, f"purpose {spec.purpose!r} is allowed",
          f"purpose {spec.purpose!r} is not among this node's allowed purposes {pol.allowed_purposes}")
    check(role in pol.allowed_roles, f"role {role} is allowed", f"this node may not act as {role}")
    check(pol.allowed_peers is None or peer in pol.allowed_peers, f"peer {peer!r} is allowed",
          f"peer {peer!r} is not among the allowed peers {pol.allowed_peers}")
    check(dataset in cfg.datasets, f"dataset {dataset!r} exists", f"this node has no dataset {dataset!r}")
    if pol.allowed_columns is not None:
        allowed = pol.allowed_columns.get(dataset)
        if allowed is None:
            pc.violations.append(f"no columns of dataset {dataset!r} are allowed for joint jobs")
        elif mine.columns is None:
            pc.violations.append(f"the job must name the columns it uses from {dataset!r} (allowed: {allowed})")
        else:
            extra = [c for c in mine.columns if c not in allowed]
            check(not extra, f"columns {mine.columns} are allowed", f"columns {extra} of {dataset!r} are not allowed")
    elif mine.columns is not None:
        pc.checks.append(f"columns {mine.columns} (no column restriction in policy)")
    if spec.kind in ("train", "scorecard"):
        t = spec.training
        if t.engine == "paillier":
            check(t.key_bits >= pol.min_key_bits, f"key size {t.key_bits} bits >= this node's minimum {pol.min_key_bits}",
                  f"key size {t.key_bits} bits is below this node's minimum of {pol.min_key_bits}")
        else:  # RLWE/CKKS: the parameters are sized by the job and checked against the 128-bit HE standard
            pc.checks.append("CKKS parameters are checked against the HomomorphicEncryption.org 128-bit bound")
        tf = spec.evaluation.test_fraction
        check(tf <= pol.max_test_fraction, f"test fraction {tf:g} <= this node's maximum {pol.max_test_fraction:g}",
              f"test fraction {tf:g} exceeds this node's maximum of {pol.max_test_fraction:g} "
              "(the guest learns the host's partial scores on every test row)")
        if t.cv_folds:
            pc.checks.append(f"cross-validation over {t.cv_folds} folds: the folds' weights stay secret-shared, so the "
                             "guest learns one fold model's joint score z of every aligned row, never the host's "
                             "partial scores")
    if spec.kind == "score":
        mode = spec.scoring.mode
        check(mode in pol.scoring_modes, f"scoring mode {mode} is allowed",
              f"scoring mode {mode} is not among this node's scoring_modes {pol.scoring_modes}")
    pc.checks.append(f"minimum intersection {pol.min_intersection}: where the job reveals ids, checked on the count "
                     "before PSI reveals any (count-first)")
    return pc


def checked_spec(info: job_pb2.JobInfo) -> JobSpec:
    """The job's spec, after checking that it hashes to the digest this node is asked to sign or run.

    A node signs ``info.spec_sha256``; it must be the SHA-256 of the very spec it
    checks against its policy and runs, not a digest the coordinator chose.

    Raises:
        PermissionDeniedError: if the spec and the digest disagree.
    """
    spec = JobSpec.model_validate_json(info.spec_json)
    if spec_digest(spec) != info.spec_sha256:
        raise PermissionDeniedError(f"job {info.job_id}: the spec does not hash to the digest {info.spec_sha256[:16]}… "
                                    "this node is asked to approve; refusing it")
    return spec


def approval_digest(job_id: str, spec_sha256: str, node: str, approved: bool, by: str, reason: str) -> bytes:
    body = {"job_id": job_id, "spec_sha256": spec_sha256, "node": node, "approved": approved, "by": by, "reason": reason,
            "statement": "fedcredit/v1/job-approval"}
    return hashlib.sha256(canonical_json(body)).digest()


def make_approval(identity: SigningIdentity, job_id: str, spec_sha256: str, approved: bool, by: str, reason: str = "") -> job_pb2.JobApproval:
    digest = approval_digest(job_id, spec_sha256, identity.name, approved, by, reason)
    return job_pb2.JobApproval(node=identity.name, approved=approved, by=by, reason=reason, spec_sha256=spec_sha256,
                               signature=sign_digest(identity, digest), unix_ms=int(time.time() * 1000))


def verify_approval(job_id: str, approval: job_pb2.JobApproval, key: Ed25519PublicKey) -> None:
    """Raises CryptoError unless ``approval`` was signed by ``key``."""
    digest = approval_digest(job_id, approval.spec_sha256, approval.node, approval.approved, approval.by, approval.reason)
    verify_digest(key, digest, approval.signature)


def require_own_approval(info: job_pb2.JobInfo, identity: SigningIdentity) -> job_pb2.JobApproval:
    """The node's own valid approval of exactly this spec, or PermissionDeniedError."""
    for a in info.approvals:
        if a.node == identity.name and a.approved and a.spec_sha256 == info.spec_sha256:
            verify_approval(info.job_id, a, identity.private_key.public_key())
            return a
    raise PermissionDeniedError(f"{identity.name} has not approved job {info.job_id} (spec {info.spec_sha256[:16]}…); it will not run")
