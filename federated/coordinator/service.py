"""The coordinator: job registry (SQLite), message relay, and the coordinator role.

Parties dial in over mutual TLS; the coordinator never dials out. Servicers
are thin: they authenticate the caller by its certificate, decode, call the
:class:`JobManager` or the :class:`Mailbox`, and encode. Errors become gRPC
status codes in one place (:class:`fedcredit.runtime.errors.ErrorInterceptor`).
Revoked certificates are refused on every RPC (:mod:`fedcredit.runtime.security.revocation`),
and the relay's quotas and rate limits live in :mod:`fedcredit.runtime.coordinator.relay`. What a
job's protocols are (the steps the relay carries) and whether a restarted node
resumes its role come from the job's plan (:mod:`fedcredit.runtime.plan`); what a party
may report comes from :mod:`fedcredit.runtime.node.results`.

Owns: the job lifecycle, the relay's checks, and the servicers. May import the
rest of ``federated`` except the party node, the CLI and the demo.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import grpc

from fedcredit.proto.v1 import envelope_pb2, job_pb2, job_pb2_grpc, node_pb2, node_pb2_grpc, relay_pb2, relay_pb2_grpc
from fedcredit.protocols.core import MAX_PAYLOAD_BYTES as CORE_MAX_PAYLOAD_BYTES
from fedcredit.protocols.core import Role

from ..node.approval import verify_approval
from ..security.certs import load_tls
from ..codec import payload_type_name
from ..config import CoordinatorConfig, JobSpec, spec_digest
from ..errors import (ConfigError, ConflictError, CryptoError, JobFailedError, MessageNotKeptError, NotFoundError,
                     PermissionDeniedError, ProtocolError, QuotaError, TransportError)
from ..plan import JobPlan, plan_job
from .relay import Mailbox, RateLimiter
from ..node.results import PUBLIC_RESULT_KEYS
from ..security.revocation import DenyList
from ..security.signing import SigningIdentity, envelope_digest, envelope_fields, load_signing_identity, verify_digest, verify_signing_cert
from ..transcript import TranscriptWriter, transcript_name
from .store import ACTIVE_STATES, JobRow, RoleRow, Store, now_ms
from ..security.transport import CHUNK_BYTES, PeerCheckInterceptor, chunk_bytes, create_server, peer_identity

__all__ = ["Coordinator", "Mailbox", "JobManager"]

_LOG = logging.getLogger(__name__)
# One relayed message may not exceed fedcredit.protocols.core.MAX_PAYLOAD_BYTES (64 MiB); the protocols check their own
# plans against it before any work (a default CKKS job's largest message is 2.2 MB, a PSI batch 256 KiB).
MAX_PAYLOAD_BYTES = CORE_MAX_PAYLOAD_BYTES
VERSION = "0.1.0"

#: Heartbeats a party may miss before another process with its identity is let in (one live process per party).
DUPLICATE_HEARTBEATS = 3


@dataclass(frozen=True)
class Caller:
    name: str
    is_party: bool
    is_operator: bool


class JobManager:
    """Job lifecycle: submit, assign, progress, results; runs the coordinator role."""

    def __init__(self, cfg: CoordinatorConfig, store: Store, mailbox: Mailbox, identity: SigningIdentity, ca_pem: bytes) -> None:
        self.cfg = cfg
        self.store = store
        self.mailbox = mailbox
        self.identity = identity
        self.ca_pem = ca_pem
        self._lock = threading.Lock()
        self._decisions = threading.RLock()  # approvals against job endings (see approve)
        self.on_ended: list[Callable[[str], None]] = []  # called with the job id when a job ends (the relay's caches)
        self._changed = threading.Condition()
        # (job, node): pending jobs the node acknowledged (it took up the offer). An offer or a role counts only
        # once the node acknowledges it on its next poll: a long-poll reply lost with its connection (or taken by
        # a handler left over from a dropped one) is offered again. Claimed roles are durable (claimed_ms).
        self._acked: set[tuple[str, str]] = set()
        self._transcripts: dict[str, TranscriptWriter] = {}
        self._sign_keys: dict[str, Any] = {identity.name: identity.private_key.public_key()}
        self.started_ms = now_ms()  # liveness counts from here: a restarted coordinator gives every party its grace
        self._closing = threading.Event()
        self._watcher: threading.Thread | None = None
        active = store.jobs_in_state(*ACTIVE_STATES)
        for job in active:  # a restarted coordinator continues every job (#13)
            store.add_event(job.job_id, self.cfg.name, "coordinator_restarted", f"the job continues ({job.state})")
            _LOG.info("job %s continues after the coordinator restarted (%s, %s)", job.job_id, job.state, job.stage)
        for job_id in mailbox.jobs() - {j.job_id for j in active}:  # ended just before a crash: nothing left to relay
            mailbox.drop_job(job_id)

    # -- lifecycle: the watcher ends jobs whose party is gone or whose state timed out
    def start(self) -> None:
        self._watcher = threading.Thread(target=self._watch, name="job-watcher", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Stop the watcher and wake every waiting handler; call before the store closes."""
        self._closing.set()
        with self._changed:
            self._changed.notify_all()
        self.mailbox.wake()
        if self._watcher is not None:
            self._watcher.join(timeout=5.0)

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def _watch(self) -> None:
        period = min(1.0, self.cfg.party_grace_s / 4)
        while not self._closing.wait(period):
            try:
                self.check_jobs()
            except TransportError:
                return  # the store closed: the coordinator is stopping
            except Exception:  # the watcher must outlive any one job's trouble
                _LOG.exception("checking jobs failed")

    def check_jobs(self, now: int | None = None) -> list[str]:
        """End what must end: running jobs with a party gone longer than ``party_grace_s``, and jobs past their
        state's timeout. Returns the ids of the jobs it ended."""
        cfg = self.cfg
        now = now_ms() if now is None else now
        ended = []
        for job in self.store.jobs_in_state("pending"):
            if now - job.created_ms > cfg.pending_timeout_s * 1000:
                self.fail(job.job_id, f"not approved by every party within {cfg.pending_timeout_s:g} s (pending_timeout_s)")
                ended.append(job.job_id)
        seen = self.store.last_seen()
        for job in self.store.jobs_in_state("running"):
            if now - job.created_ms > cfg.running_timeout_s * 1000:
                self.fail(job.job_id, f"still running after {cfg.running_timeout_s:g} s (running_timeout_s)")
                ended.append(job.job_id)
                continue
            for r in job.roles:
                if r.finished_ms is not None:
                    continue
                quiet = now - max(seen.get(r.node, 0), self.started_ms)
                if quiet > cfg.party_grace_s * 1000:
                    self.fail(job.job_id, f"party {r.node} has not been heard from for {quiet / 1000:.0f} s (party_grace_s = "
                                          f"{cfg.party_grace_s:g}): its process or its connection is gone")
                    ended.append(job.job_id)
                    break
        return ended

    # -- signing keys of registered parties (verified against the CA at registration)
    def set_sign_key(self, node: str, pem: bytes) -> None:
        self._sign_keys[node] = verify_signing_cert(pem, self.ca_pem, node)

    def sign_key(self, node: str) -> Any:
        key = self._sign_keys.get(node)
        if key is None:
            row = self.store.get_node(node)  # registered before a restart: the certificate is in the store
            if row is None or not row["sign_cert_pem"]:
                raise NotFoundError(f"{node} has not registered a signing certificate")
            self.set_sign_key(node, bytes(row["sign_cert_pem"]))
            key = self._sign_keys[node]
        return key

    # -- transcripts
    def transcript(self, job_id: str) -> TranscriptWriter:
        with self._lock:
            w = self._transcripts.get(job_id)
            if w is None:
                path = self.cfg.transcripts / transcript_name(job_id, self.cfg.name)
                path.parent.mkdir(parents=True, exist_ok=True)
                # a restarted coordinator continues the job's transcript, its chain unbroken
                w = TranscriptWriter(path, job_id=job_id, identity=self.identity, role="coordinator", ca_cert_pem=self.ca_pem,
                                     resume=path.exists())
                self._transcripts[job_id] = w
            return w

    def record(self, job_id: str, direction: str, env: envelope_pb2.Envelope, payload: Any = None) -> None:
        disclosed = payload.disclosed() if payload is not None else None
        key_owner = None
        if payload is not None and getattr(type(payload), "key_owner", None) is not None and env.classification == "ciphertext":
            key_owner = str(type(payload).key_owner)
        self.transcript(job_id).message(direction, envelope_fields(env), env.signature, key_owner=key_owner, disclosed=disclosed)

    def _close_transcript(self, job_id: str, ok: bool, error: str) -> None:
        with self._lock:
            w = self._transcripts.pop(job_id, None)
        if w is not None:
            w.event("finished", ok=ok, error=error)
            w.close()

    # -- submission
    def submit(self, spec: JobSpec) -> JobRow:
        for party in (spec.guest.party, spec.host.party):
            if party not in self.cfg.parties:
                raise NotFoundError(f"party {party!r} is not known to this coordinator (known: {', '.join(self.cfg.parties)})")
        t = now_ms()
        job_id = time.strftime("job-%Y%m%d-%H%M%S-", time.gmtime(t / 1000)) + secrets.token_hex(3)
        roles = [
            RoleRow(job_id, Role.GUEST.value, spec.guest.party, spec.guest.dataset, None, None, None, {}),
            RoleRow(job_id, Role.HOST.value, spec.host.party, spec.host.dataset, None, None, None, {}),
        ]
        job = JobRow(job_id, spec.kind, spec.name, spec.canonical_json(), spec_digest(spec), "pending", "awaiting approval",
                     secrets.token_hex(32), {}, {}, "", t, t, roles)
        self.store.insert_job(job)
        self.transcript(job_id).event("job_spec", spec=json.loads(spec.canonical_json()), spec_sha256=job.spec_sha256, purpose=spec.purpose)
        _LOG.info("job %s submitted (%s, %s, purpose %s); awaiting approval by %s and %s",
                  job_id, spec.kind, spec.name, spec.purpose, spec.guest.party, spec.host.party)
        with self._changed:
            self._changed.notify_all()
        return self.get(job_id)

    def approve(self, job_id: str, node: str, approval: Any) -> JobRow:
        """Record a party's signed decision; start the job when every party approved.

        Decisions and job endings are serialized (``_decisions``): two parties deciding at once, one of them
        rejecting, must not let the other's decision be checked against a pending job and then recorded in the
        transcript that the rejection has just closed.
        """
        with self._decisions:
            return self._approve(job_id, node, approval)

    def _approve(self, job_id: str, node: str, approval: Any) -> JobRow:
        job = self.get(job_id)
        self.role_of(job, node)
        if approval.node != node:
            raise PermissionDeniedError(f"{node} cannot decide for {approval.node}")
        if job.state != "pending":
            raise ConflictError(f"job {job_id} is {job.state}; approvals are closed")
        if approval.spec_sha256 != job.spec_sha256:
            raise ConflictError(f"{node} decided on spec {approval.spec_sha256[:16]}…, but the job's spec is {job.spec_sha256[:16]}…")
        verify_approval(job_id, approval, self.sign_key(node))
        if any(a["node"] == node for a in job.approvals):
            raise ConflictError(f"{node} has already decided on job {job_id}")
        self.store.add_approval(job_id, node, approval.approved, approval.by, approval.reason, approval.spec_sha256,
                                approval.signature, approval.unix_ms)
        self.transcript(job_id).event("approved" if approval.approved else "rejected", node=node, spec_sha256=approval.spec_sha256,
                                      by=approval.by, reason=approval.reason, signature=approval.signature.hex())
        if not approval.approved:
            if self.store.set_state(job_id, "rejected", error=f"rejected by {node}: {approval.reason or 'no reason given'}"):
                self._job_ended(job_id, False, f"rejected by {node}")
            return self.get(job_id)
        job = self.get(job_id)
        parties = {r.node for r in job.roles if r.role != Role.COORDINATOR.value}
        if parties <= {a["node"] for a in job.approvals if a["approved"]}:
            if self.store.set_state(job_id, "running", only_from=("pending",)):
                self.store.update_progress(job_id, self.cfg.name, "approved", {"stage": "approved", "ts_ms": now_ms()})
                _LOG.info("job %s approved by all parties; starting", job_id)
                with self._changed:
                    self._changed.notify_all()
        return self.get(job_id)

    def get(self, job_id: str) -> JobRow:
        job = self.store.get_job(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r}")
        return job

    def is_live(self, job_id: str) -> bool:
        job = self.store.get_job(job_id)
        return job is not None and job.state in ACTIVE_STATES

    def role_of(self, job: JobRow, node: str) -> RoleRow:
        for r in job.roles:
            if r.node == node:
                return r
        raise PermissionDeniedError(f"{node} has no role in job {job.job_id}")

    def cancel(self, job_id: str, reason: str) -> JobRow:
        self.get(job_id)
        if self.store.set_state(job_id, "cancelled", error=reason or "cancelled by an operator"):
            self._job_ended(job_id, False, "cancelled")
        return self.get(job_id)

    # -- party side
    def acknowledge(self, node: str, job_ids: Any, pending_job_ids: Any = ()) -> None:
        """The node took up these jobs of its previous poll: the pending offers in ``pending_job_ids`` (it decided,
        or left them to its operator) are not offered again; its role in each running job of ``job_ids`` counts as
        claimed (durably). Each ack counts for the state the node saw: a pending offer acknowledged after the job
        started claims nothing. Ids the node has no role in, or that ended, are ignored."""
        for job_id in pending_job_ids:
            job = self.store.get_job(job_id)
            if job is not None and job.state == "pending" and any(r.node == node for r in job.roles):
                self._acked.add((job_id, node))
        for job_id in job_ids:
            job = self.store.get_job(job_id)
            if job is None or not any(r.node == node for r in job.roles):
                continue
            if job.state == "running":
                for r in job.roles:
                    if r.node == node and r.claimed_ms is None and r.finished_ms is None:
                        self.store.claim_role(job_id, r.role)
                        self.store.add_event(job_id, node, "claimed", f"{node} took up its {r.role} role")

    def assignments(self, node: str, wait_s: float, acks: Any = (), alive: Callable[[], bool] = lambda: True,
                    pending_acks: Any = ()) -> list[JobRow]:
        """Jobs that need this node: pending ones to decide on, running ones whose role it has not taken up.

        ``acks`` and ``pending_acks`` are what of its previous reply the node took up (:meth:`acknowledge`). Whatever the node has
        not acknowledged is offered again on every poll, so a lost reply loses nothing; the node ignores what it
        already handles. ``alive`` is false once the caller's connection is gone: a handler left over from a
        dropped connection stops waiting and takes nothing."""
        self.acknowledge(node, acks, pending_acks)
        deadline = time.monotonic() + wait_s
        while not self._closing.is_set() and alive():
            out: list[JobRow] = []
            for j in self.store.jobs_in_state("pending"):
                if any(r.node == node for r in j.roles) and not any(a["node"] == node for a in j.approvals) \
                        and (j.job_id, node) not in self._acked:
                    out.append(j)
            for j in self.store.jobs_in_state("running"):
                if any(r.node == node and r.claimed_ms is None and r.finished_ms is None for r in j.roles):
                    out.append(j)
            if out:
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            with self._changed:
                self._changed.wait(min(left, 1.0))
        return []

    def node_registered(self, node: str) -> None:
        """A new process of the node started: offer it pending jobs again; a running role it had taken up resumes
        from its checkpoint where the plan allows (PSI, training), or fails its job."""
        self._acked = {k for k in self._acked if k[1] != node}
        for job in self.store.jobs_in_state("running"):
            for r in job.roles:
                if r.node == node and r.claimed_ms is not None and r.finished_ms is None:
                    stage = job.progress.get(node, {}).get("stage")
                    if job_plan(job).can_resume(stage):
                        # the stage keeps a checkpoint (the plan says which): the node picks the role up again and resumes
                        self.store.unclaim_role(job.job_id, r.role, node)
                        _LOG.warning("%s restarted during %s of %s; it will resume from its checkpoint", node, stage or "its start", job.job_id)
                    else:
                        self.fail(job.job_id, f"{node} restarted while running its {r.role} role ({stage})")
        with self._changed:
            self._changed.notify_all()

    def progress(self, job_id: str, node: str, stage: str, done: int, total: int, detail: dict[str, Any]) -> str:
        job = self.get(job_id)
        self.role_of(job, node)
        if job.state in ACTIVE_STATES:
            self.store.update_progress(job_id, node, stage, {"stage": stage, "done": done, "total": total, "detail": detail, "ts_ms": now_ms()})
        return job.state

    def role_result(self, job_id: str, node: str, ok: bool, result: dict[str, Any], error: str, code: str) -> str:
        job = self.get(job_id)
        role = self.role_of(job, node)
        if role.finished_ms is not None:
            raise ConflictError(f"{node} already reported its result for {job_id}")
        # One record per party: only run metadata keyed by the reporting node itself is kept, so one party
        # cannot overwrite another's entries, and no party's metrics or sizes reach the coordinator's store.
        result = {k: {node: v[node]} for k, v in result.items()
                  if k in PUBLIC_RESULT_KEYS and isinstance(v, dict) and set(v) == {node} and _flat_numbers(v[node])}
        self.store.finish_role(job_id, role.role, ok, result, error)
        if not ok:
            self.fail(job_id, f"{role.role} ({node}) failed: [{code}] {error}")
        else:
            self.store.merge_result(job_id, result)
            job = self.get(job_id)
            if all(r.ok for r in job.roles):
                if self.store.set_state(job_id, "succeeded"):
                    self.store.update_progress(job_id, self.cfg.name, "done", {"stage": "done", "ts_ms": now_ms()})
                    self._job_ended(job_id, True, "")
        return self.get(job_id).state

    def fail(self, job_id: str, error: str) -> None:
        if self.store.set_state(job_id, "failed", error=error):
            _LOG.warning("job %s failed: %s", job_id, error)
            self._job_ended(job_id, False, error)

    def _job_ended(self, job_id: str, ok: bool, error: str) -> None:
        with self._decisions:
            self.mailbox.drop_job(job_id)
            self._close_transcript(job_id, ok, error)
            self._acked = {k for k in self._acked if k[0] != job_id}
        for forget in self.on_ended:
            forget(job_id)
        with self._changed:
            self._changed.notify_all()


def job_plan(job: JobRow) -> JobPlan:
    """The plan of a stored job (its spec was validated when it was submitted)."""
    return plan_job(JobSpec.model_validate_json(job.spec_json))


def _flat_numbers(v: Any) -> bool:
    """A number, or a flat dict of str -> number: all run metadata may be (nothing nested, no text)."""
    num = (int, float)
    return (isinstance(v, num) and not isinstance(v, bool)) or (
        isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, num) and not isinstance(x, bool) for k, x in v.items()))


def job_info(job: JobRow) -> job_pb2.JobInfo:
    return job_pb2.JobInfo(
        job_id=job.job_id,
        kind=job.kind,
        state=job.state,
        stage=job.stage,
        spec_json=job.spec_json,
        spec_sha256=job.spec_sha256,
        roles=[job_pb2.JobRole(role=r.role, node=r.node, dataset=r.dataset) for r in job.roles],
        progress_json=json.dumps(job.progress),
        result_json=json.dumps(job.result),
        error=job.error,
        created_unix_ms=job.created_ms,
        updated_unix_ms=job.updated_ms,
        psi_salt_hex=job.psi_salt,
        approvals=[job_pb2.JobApproval(node=a["node"], approved=bool(a["approved"]), by=a["by"], reason=a["reason"],
                                       spec_sha256=a["spec_sha256"], signature=a["signature"], unix_ms=a["unix_ms"])
                   for a in job.approvals],
        purpose=job.purpose,
    )


class _Auth:
    def __init__(self, cfg: CoordinatorConfig) -> None:
        self.cfg = cfg
        self.revoked = DenyList.from_entries(cfg.revoked)  # callers' TLS certificates: PeerCheckInterceptor, every RPC

    def caller(self, context: grpc.ServicerContext) -> Caller:
        name = peer_identity(context)
        c = Caller(name, name in self.cfg.parties, name in self.cfg.operators)
        if not (c.is_party or c.is_operator):
            raise PermissionDeniedError(f"{name} is neither a party nor an operator of this coordinator")
        return c

    def party(self, context: grpc.ServicerContext) -> str:
        c = self.caller(context)
        if not c.is_party:
            raise PermissionDeniedError(f"{c.name} is not a party")
        return c.name

    def operator(self, context: grpc.ServicerContext) -> str:
        c = self.caller(context)
        if not c.is_operator:
            raise PermissionDeniedError(f"{c.name} is not an operator")
        return c.name


class NodeServicer(node_pb2_grpc.NodeServiceServicer):
    def __init__(self, auth: _Auth, store: Store, jobs: JobManager) -> None:
        self.auth, self.store, self.jobs = auth, store, jobs
        self._registering = threading.Lock()  # one registration at a time: two processes racing are told apart

    def Register(self, request: node_pb2.RegisterRequest, context: grpc.ServicerContext) -> node_pb2.RegisterResponse:
        name = self.auth.party(context)
        self.auth.revoked.check_pem(request.sign_cert_pem, "signing", name)
        self.auth.revoked.check_pem(request.seal_cert_pem, "sealing", name)
        cfg = self.auth.cfg
        with self._registering:
            row = self.store.get_node(name)
            known = row["instance_id"] if row is not None else ""
            if row is not None and known and request.instance_id != known:
                quiet_s = (now_ms() - int(row["last_seen_ms"] or 0)) / 1000
                window = DUPLICATE_HEARTBEATS * cfg.heartbeat_s
                if quiet_s < window:
                    raise ConflictError(
                        f"party {name} is already connected from another live process (heard from {max(quiet_s, 0):.1f} s ago): "
                        f"one process per party identity; stop the other one (a killed one is let go after {window:g} s without "
                        "heartbeats)")
            self.jobs.set_sign_key(name, request.sign_cert_pem)  # refuses a certificate our CA did not issue to this name
            new_process = not request.instance_id or request.instance_id != known
            self.store.upsert_node(name, request.seal_cert_pem, request.sign_cert_pem, request.software_version, list(request.datasets),
                                   request.instance_id)
            if new_process:  # the same process registering again (it reconnected) keeps its jobs as they are
                self.jobs.node_registered(name)
        _LOG.info("party %s %s (datasets: %s)", name, "registered" if new_process else "reconnected", ", ".join(request.datasets))
        return node_pb2.RegisterResponse(node=name, coordinator=cfg.name, heartbeat_ms=int(cfg.heartbeat_s * 1000))

    def Heartbeat(self, request: node_pb2.HeartbeatRequest, context: grpc.ServicerContext) -> node_pb2.HeartbeatResponse:
        name = self.auth.party(context)
        row = self.store.get_node(name)
        if row is None:  # not registered (yet): nothing to keep alive; a party registers after every reconnection
            return node_pb2.HeartbeatResponse(server_unix_ms=now_ms())
        if request.instance_id and row["instance_id"] and request.instance_id != row["instance_id"]:
            raise ConflictError(f"another process of party {name} registered since this one did: one process per party identity")
        self.store.touch_node(name)
        return node_pb2.HeartbeatResponse(server_unix_ms=now_ms())

    def GetPeer(self, request: node_pb2.GetPeerRequest, context: grpc.ServicerContext) -> node_pb2.GetPeerResponse:
        self.auth.party(context)
        if request.name == self.auth.cfg.name:
            return node_pb2.GetPeerResponse(name=request.name, online=True, sign_cert_pem=self.jobs.identity.cert_pem)
        row = self.store.get_node(request.name)
        if row is None:
            raise NotFoundError(f"party {request.name!r} has not registered with this coordinator")
        online = now_ms() - max(int(row["last_seen_ms"] or 0), self.jobs.started_ms) <= self.auth.cfg.party_grace_s * 1000
        return node_pb2.GetPeerResponse(name=row["name"], seal_cert_pem=row["seal_cert_pem"], online=online,
                                        sign_cert_pem=row["sign_cert_pem"] or b"")


class JobServicer(job_pb2_grpc.JobServiceServicer):
    def __init__(self, auth: _Auth, jobs: JobManager) -> None:
        self.auth, self.jobs = auth, jobs

    def SubmitJob(self, request: job_pb2.SubmitJobRequest, context: grpc.ServicerContext) -> job_pb2.SubmitJobResponse:
        self.auth.operator(context)
        from ..config import parse_config

        spec = parse_config(JobSpec, json.loads(request.spec_json or "{}"), source="job spec")
        return job_pb2.SubmitJobResponse(job=job_info(self.jobs.submit(spec)))

    def GetJob(self, request: job_pb2.GetJobRequest, context: grpc.ServicerContext) -> job_pb2.GetJobResponse:
        caller = self.auth.caller(context)
        job = self.jobs.get(request.job_id)
        if not caller.is_operator:
            self.jobs.role_of(job, caller.name)
        return job_pb2.GetJobResponse(job=job_info(job))

    def ListJobs(self, request: job_pb2.ListJobsRequest, context: grpc.ServicerContext) -> job_pb2.ListJobsResponse:
        caller = self.auth.caller(context)
        jobs = self.jobs.store.list_jobs(request.limit or 50)
        if not caller.is_operator:
            jobs = [j for j in jobs if any(r.node == caller.name for r in j.roles)]
        return job_pb2.ListJobsResponse(jobs=[job_info(j) for j in jobs])

    def CancelJob(self, request: job_pb2.CancelJobRequest, context: grpc.ServicerContext) -> job_pb2.CancelJobResponse:
        self.auth.operator(context)
        return job_pb2.CancelJobResponse(job=job_info(self.jobs.cancel(request.job_id, request.reason)))

    def ApproveJob(self, request: job_pb2.ApproveJobRequest, context: grpc.ServicerContext) -> job_pb2.ApproveJobResponse:
        name = self.auth.party(context)
        return job_pb2.ApproveJobResponse(job=job_info(self.jobs.approve(request.job_id, name, request.approval)))

    def PollAssignments(self, request: job_pb2.PollAssignmentsRequest, context: grpc.ServicerContext) -> job_pb2.PollAssignmentsResponse:
        name = self.auth.party(context)
        self.jobs.store.touch_node(name)  # a poll is a sign of life too
        wait_s = min(request.wait_ms, 30_000) / 1000.0
        jobs = self.jobs.assignments(name, wait_s, acks=list(request.ack_job_ids), alive=context.is_active,
                                     pending_acks=list(request.ack_pending_job_ids))
        return job_pb2.PollAssignmentsResponse(jobs=[job_info(j) for j in jobs])

    def ReportProgress(self, request: job_pb2.ReportProgressRequest, context: grpc.ServicerContext) -> job_pb2.ReportProgressResponse:
        name = self.auth.party(context)
        detail = json.loads(request.detail_json or "{}")
        return job_pb2.ReportProgressResponse(state=self.jobs.progress(request.job_id, name, request.stage, request.done, request.total, detail))

    def ReportRoleResult(self, request: job_pb2.ReportRoleResultRequest, context: grpc.ServicerContext) -> job_pb2.ReportRoleResultResponse:
        name = self.auth.party(context)
        result = json.loads(request.result_json or "{}")
        state = self.jobs.role_result(request.job_id, name, request.ok, result, request.error, request.error_code)
        return job_pb2.ReportRoleResultResponse(state=state)


class RelayServicer(relay_pb2_grpc.RelayServiceServicer):
    def __init__(self, auth: _Auth, jobs: JobManager, mailbox: Mailbox) -> None:
        self.auth, self.jobs, self.mailbox = auth, jobs, mailbox
        self.rate = RateLimiter(auth.cfg.relay.party_messages_per_s, auth.cfg.relay.party_burst)
        self._steps: dict[str, tuple[dict[str, Any], dict[str, Role]]] = {}  # job -> (wire -> StepSpec, node -> role)
        jobs.on_ended.append(lambda job_id: self._steps.pop(job_id, None))  # a long-running coordinator keeps none

    def _check_step(self, env: envelope_pb2.Envelope) -> None:
        """The step must belong to the job's protocols, from a role that may send it to one that may receive it,
        with the step's payload type: a party cannot make the relay carry anything else."""
        steps, roles = self._job_steps(env.job_id)
        spec = steps.get(env.step)
        if spec is None:
            raise ProtocolError(f"step {env.step!r} is not part of job {env.job_id}'s protocols")
        sender, receiver = roles.get(env.sender), roles.get(env.receiver)
        if sender not in spec.senders or receiver not in spec.receivers or sender is receiver:
            raise ProtocolError(f"step {env.step} does not go from {env.sender} ({sender}) to {env.receiver} ({receiver})")
        if env.payload_type != payload_type_name(spec.payload):
            raise ProtocolError(f"step {env.step} carries {payload_type_name(spec.payload)}, not {env.payload_type}")

    def _job_steps(self, job_id: str) -> tuple[dict[str, Any], dict[str, Role]]:
        cached = self._steps.get(job_id)
        if cached is None:
            job = self.jobs.get(job_id)
            # the job's PSI, its LR, and in every job the parties' per-phase ephemeral sealing keys (seal.hello)
            steps = {s.wire: s.spec for table in job_plan(job).steps for s in table}
            roles = {r.node: Role(r.role) for r in job.roles}
            cached = self._steps[job_id] = (steps, roles)
        return cached

    def _check_job(self, job_id: str, *nodes: str) -> None:
        job = self.jobs.get(job_id)
        if job.state not in ACTIVE_STATES:
            self._steps.pop(job_id, None)
            raise JobFailedError(f"job {job_id} is {job.state}" + (f": {job.error}" if job.error else ""))
        for n in nodes:
            self.jobs.role_of(job, n)

    def _within_quota(self, job_id: str, charge: Any) -> Any:
        """Run a per-job quota check (``Mailbox.admit`` or ``put``); a job over its quota fails, for both parties."""
        try:
            return charge()
        except QuotaError as exc:
            self.jobs.fail(job_id, exc.message)
            raise

    def Send(self, request_iterator: Iterator[relay_pb2.SendRequest], context: grpc.ServicerContext) -> relay_pb2.SendResponse:
        name = self.auth.party(context)
        self.rate.take(name)  # a party over its rate is refused; the coordinator does not fail its job for it
        first = next(request_iterator, None)
        if first is None or not first.HasField("envelope"):
            raise ProtocolError("a Send stream must start with the envelope")
        env = first.envelope
        if env.sender != name:
            raise PermissionDeniedError(f"{name} cannot send as {env.sender!r}")
        if env.payload_size > MAX_PAYLOAD_BYTES:
            raise QuotaError(f"payload of {env.payload_size} bytes exceeds the relay's limit of {MAX_PAYLOAD_BYTES} bytes")
        self._check_job(env.job_id, env.sender, env.receiver)
        self._check_step(env)
        try:
            verify_digest(self.jobs.sign_key(name), envelope_digest(envelope_fields(env)), env.signature)
        except CryptoError:
            raise PermissionDeniedError(f"the envelope of {env.step}#{env.sequence} is not signed by {name}") from None
        if self.mailbox.seen(env):  # a retried Send whose first try got through: relayed once, acknowledged again
            _LOG.info("dropped a second copy of %s#%d from %s in %s (already relayed)", env.step, env.sequence, name, env.job_id)
            return relay_pb2.SendResponse(message_id=env.message_id, received_bytes=env.payload_size)
        self._within_quota(env.job_id, lambda: self.mailbox.admit(env.job_id, env.payload_size))  # before reading it
        parts, size = [], 0
        for req in request_iterator:
            if not req.HasField("chunk"):
                raise ProtocolError("only payload chunks may follow the envelope")
            size += len(req.chunk)
            if size > env.payload_size:
                raise ProtocolError("payload is longer than its envelope says")
            parts.append(req.chunk)
        if size != env.payload_size:
            raise ProtocolError(f"payload has {size} bytes, its envelope says {env.payload_size}")
        data = b"".join(parts)
        if hashlib.sha256(data).digest() != env.payload_sha256:
            raise ProtocolError("payload does not match the digest in its signed envelope")
        if not self._within_quota(env.job_id, lambda: self.mailbox.put(env, data)):
            _LOG.info("dropped a second copy of %s#%d from %s in %s (already relayed)", env.step, env.sequence, name, env.job_id)
            return relay_pb2.SendResponse(message_id=env.message_id, received_bytes=size)
        if env.receiver != self.auth.cfg.name:
            self.jobs.record(env.job_id, "relayed", env)  # what the coordinator passed on: envelope only
        return relay_pb2.SendResponse(message_id=env.message_id, received_bytes=size)

    def Receive(self, request: relay_pb2.ReceiveRequest, context: grpc.ServicerContext) -> Iterator[relay_pb2.ReceiveResponse]:
        name = self.auth.party(context)
        self._check_job(request.job_id, name, request.sender)
        wait_s = min(request.wait_ms, 30_000) / 1000.0
        deadline = time.monotonic() + wait_s
        got = None
        while got is None and context.is_active() and not self.jobs.closing:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                got = self.mailbox.take(request.job_id, name, request.sender, request.step, request.sequence,
                                        wait_s=min(left, 1.0))
            except MessageNotKeptError as exc:  # no retry can mend it: the job fails now, with the reason
                self.jobs.fail(request.job_id, exc.message)
                raise
            if got is None:
                self._check_job(request.job_id)
        if got is None:
            return
        env, data = got
        try:
            yield relay_pb2.ReceiveResponse(envelope=env)
            for chunk in chunk_bytes(data, CHUNK_BYTES):
                yield relay_pb2.ReceiveResponse(chunk=chunk)
        except BaseException:
            # The receiver went away mid-stream: put the message back so a retry gets it.
            self.mailbox.put(env, data, redeliver=True)
            raise


class Coordinator:
    """A running coordinator: ``start()`` binds and serves; ``stop()`` shuts down."""

    def __init__(self, cfg: CoordinatorConfig) -> None:
        self.cfg = cfg
        self.store = Store(cfg.database)
        self.mailbox = Mailbox(limits=cfg.relay, store=self.store)  # durable: a restart loses no relayed message
        tls = load_tls(cfg.tls.ca, cfg.tls.cert, cfg.tls.key)
        identity = load_signing_identity(cfg.sign.cert, cfg.sign.key)
        if identity.name != cfg.name:
            raise ConfigError(f"signing certificate is for {identity.name!r}, but this coordinator is {cfg.name!r}")
        self.jobs = JobManager(cfg, self.store, self.mailbox, identity, tls.ca)
        auth = _Auth(cfg)
        self.server, self.port = create_server(tls, cfg.listen, interceptors=[PeerCheckInterceptor(auth.revoked.check_peer)])
        node_pb2_grpc.add_NodeServiceServicer_to_server(NodeServicer(auth, self.store, self.jobs), self.server)
        job_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(auth, self.jobs), self.server)
        relay_pb2_grpc.add_RelayServiceServicer_to_server(RelayServicer(auth, self.jobs, self.mailbox), self.server)

    def start(self) -> int:
        self.server.start()
        self.jobs.start()
        if self.cfg.port_file:
            tmp = self.cfg.port_file.with_suffix(".tmp")
            tmp.write_text(str(self.port))
            tmp.replace(self.cfg.port_file)
        _LOG.info("coordinator %s listening on port %d (mTLS)", self.cfg.name, self.port)
        return self.port

    def stop(self, grace_s: float = 3.0) -> None:
        """Stop serving: the watcher and waiting handlers first, then the server, then the store. A handler still
        running after that gets UNAVAILABLE from the closed store, never a traceback."""
        self.jobs.close()
        self.server.stop(grace_s).wait()
        self.store.close()
