"""A party node: dials out to the coordinator, decides on jobs by its policy, and runs its role in each.

The node opens no port. It registers its sealing and signing certificates, long-polls for jobs in which it
has a role, and approves or rejects a pending one by its policy (or waits for its operator). It runs each
approved job in a thread: it checks its own signed approval and the data it approved on, plans the job
(:func:`fedcredit.runtime.plan.plan_job`), loads its rows, then runs PSI (:mod:`fedcredit.runtime.node.psi_runner`) and, for a
``train`` job, its LR role (:mod:`fedcredit.runtime.node.train_runner`). Raw data, labels and weights never leave this
process: what it keeps goes to its workdir (:mod:`fedcredit.runtime.node.workdir`), and the coordinator gets only the
public part of its result (:class:`fedcredit.runtime.node.results.JobResult`).

Owns: the node's lifecycle and decisions, and what a job's run is wired to: the relay endpoint, the peer's
verified keys, the transcript, progress reports and the executor its kernels run on (:mod:`.executors`).
May import: the rest of ``federated`` except the coordinator, the CLI and the demo; ``fedcredit.protocols.core``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import asdict, replace
from typing import Any

import grpc
import numpy as np

from fedcredit.proto.v1 import job_pb2, job_pb2_grpc, node_pb2, node_pb2_grpc
from fedcredit.protocols.core import MapFn, Progress, Role, key_owner_of
from fedcredit.protocols.hetero_lr.two_party_checkpoint import CHECKPOINT_STAGE as TRAIN_CHECKPOINT_STAGE

from .approval import check_policy, checked_spec, dataset_digest, make_approval, my_role, require_own_approval
from ..security.certs import load_tls
from ..config import JobSpec, PartyConfig
from .consent import apply_consent, load_consent_registry
from .data import LocalDataset, load_dataset, read_ids
from .executors import Executor, make_executor
from ..errors import (ConfigError, ConflictError, DataError, DeadlineError, FedCreditError, NotFoundError, PermissionDeniedError,
                     StorageError, TlsHandshakeError, TransportError, from_rpc_error, storage_error)
from ..files import check_writable
from .model_package import write_package
from ..plan import JobPlan, RolePlan, plan_job
from .psi_runner import PartyIds, PsiRun, run_psi
from .results import JobResult, PsiOutcome, Traffic
from ..driver import RelayEndpoint, RoleRun, describe_error
from ..security.sealing import SEAL_CHECKPOINT_KEY, SealSession, load_seal_identity, verify_peer_seal_cert
from ..security.signing import envelope_fields, load_signing_identity, verify_signing_cert
from .score_runner import OnlineWiring, run_scoring
from .scorecard_runner import run_scorecard
from .train_runner import run_training
from ..transcript import TranscriptWriter
from ..security.transport import DEFAULT_DEADLINE_S, create_channel, wait_healthy
from .workdir import ApprovedData, JobFiles, NodeStore

__all__ = ["PartyNode"]

_LOG = logging.getLogger(__name__)
VERSION = "0.1.0"


class PartyNode:
    def __init__(self, cfg: PartyConfig) -> None:
        self.cfg = cfg
        self.tls = load_tls(cfg.tls.ca, cfg.tls.cert, cfg.tls.key)
        self.seal = load_seal_identity(cfg.seal.cert, cfg.seal.key)
        if self.seal.name != cfg.name:
            raise ConfigError(f"seal certificate is for {self.seal.name!r}, but this node is {cfg.name!r}")
        self.signer = load_signing_identity(cfg.sign.cert, cfg.sign.key)
        if self.signer.name != cfg.name:
            raise ConfigError(f"signing certificate is for {self.signer.name!r}, but this node is {cfg.name!r}")
        self.store = NodeStore(cfg.workdir, transcripts=cfg.transcripts.directory, unbalanced=cfg.unbalanced.directory,
                               key_rotation_days=cfg.unbalanced.key_rotation_days)
        for folder in (self.store.workdir, self.store.transcripts):  # a read-only or missing disk is named now, not at the first job
            try:
                check_writable(folder)
            except OSError as exc:
                raise storage_error(exc) from None
        self.channel = create_channel(cfg.coordinator, self.tls, server_name=cfg.coordinator_name)
        self.jobs = job_pb2_grpc.JobServiceStub(self.channel)
        self.nodes = node_pb2_grpc.NodeServiceStub(self.channel)
        self._threads: dict[str, threading.Thread] = {}
        self._decided: set[str] = set()
        self._stop = threading.Event()
        # The connection (#13): this process's id (one live process per party identity), the heartbeat, and the
        # jobs of the last poll's reply this node took up, acknowledged on its next poll.
        self.instance_id = secrets.token_hex(8)
        self._heartbeat_s = 2.0
        self._reregister = threading.Event()
        self._registered = False  # registered once: from then on no handshake failure ends the daemon
        self._acks: dict[str, set[str]] = {"running": set(), "pending": set()}
        self._heartbeat: threading.Thread | None = None
        # where the kernels run (#16): the node's own process pool, or the bank's Dask cluster, connected now so
        # that an unreachable scheduler is named at start and not at the first job
        self._executor: Executor | None = make_executor(cfg.executor) if cfg.executor.kind != "local" else None
        self._pool_lock = threading.Lock()

    # -- lifecycle
    def _call(self, fn: Any, request: Any, timeout: float = DEFAULT_DEADLINE_S) -> Any:
        try:
            return fn(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, target=self.cfg.coordinator) from None

    def _call_patiently(self, fn: Any, request: Any, wait_s: float = 300.0) -> Any:
        """:meth:`_call`, again with backoff while the coordinator cannot be reached (for an idempotent call)."""
        deadline = time.monotonic() + wait_s
        backoff = 0.2
        while True:
            try:
                return self._call(fn, request)
            except (TransportError, DeadlineError):
                if time.monotonic() > deadline or self._stop.is_set():
                    raise
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def register(self, wait_s: float | None = None, duplicate_wait_s: float = 20.0, handshake_wait_s: float = 10.0) -> None:
        """Register this process's certificates, retrying with backoff while the coordinator cannot be reached
        (for ``wait_s``, or until stopped when None). A coordinator that already has a live process with this
        identity refuses; the refusal is retried for ``duplicate_wait_s`` (a killed predecessor is let go after a
        few missed heartbeats) and then raised: one live process per party identity.

        Certificates are not transient: the coordinator's certificate expired, not yet valid or not from this node's
        CA is raised at once, named, and a coordinator closing every TLS handshake (it refuses this node's
        certificate: another CA, revoked, or its clock is off) after ``handshake_wait_s`` more -- while this process
        has never registered. Once registered, both are retried like any outage (the daemon outlives a coordinator
        restarting behind a proxy, which can look the same). Connection refusals are always retried.

        Raises:
            CertificateExpiredError, CertificateNotYetValidError, TlsHandshakeError: see above.
            ConflictError: another live process holds this party's identity.
            TransportError: the coordinator stayed unreachable for ``wait_s``.
        """
        deadline = None if wait_s is None else time.monotonic() + wait_s
        refused_since: float | None = None
        handshake_since: float | None = None
        backoff = 0.5
        while not self._stop.is_set():
            try:
                wait_healthy(self.channel, timeout_s=5.0, target=self.cfg.coordinator)
                resp = self._call(self.nodes.Register, node_pb2.RegisterRequest(
                    seal_cert_pem=self.seal.cert_pem, sign_cert_pem=self.signer.cert_pem, software_version=VERSION,
                    datasets=sorted(self.cfg.datasets), instance_id=self.instance_id))
                if resp.heartbeat_ms:
                    self._heartbeat_s = resp.heartbeat_ms / 1000.0
                self._reregister.clear()
                self._registered = True
                _LOG.info("registered with coordinator %s as %s", resp.coordinator, resp.node)
                return
            except ConflictError as exc:
                refused_since = refused_since if refused_since is not None else time.monotonic()
                if time.monotonic() - refused_since > duplicate_wait_s:
                    raise
                _LOG.warning("%s; retrying", exc)
            except TlsHandshakeError as exc:
                handshake_since = handshake_since if handshake_since is not None else time.monotonic()
                if not self._registered and (not exc.refused or time.monotonic() - handshake_since > handshake_wait_s):
                    raise  # this node refuses the coordinator's certificate (no retry mends that), or is refused
                _LOG.warning("cannot register with the coordinator: %s; retrying in %.1f s", exc, backoff)
            except TransportError as exc:
                handshake_since = None
                if deadline is not None and time.monotonic() > deadline:
                    raise
                _LOG.warning("cannot register with the coordinator: %s; retrying in %.1f s", exc, backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    def sweep_checkpoints(self) -> list[str]:
        """At start: delete the checkpoints of every job that ended while this node was down (failed, cancelled,
        or unknown to the coordinator). Those of a running job stay: the node resumes it when it is offered again.
        Returns the jobs whose checkpoints were deleted."""
        dropped = []
        for job_id in self.store.jobs_with_checkpoints():
            try:
                state = self._call(self.jobs.GetJob, job_pb2.GetJobRequest(job_id=job_id)).job.state
            except (NotFoundError, PermissionDeniedError):
                state = "unknown"
            except FedCreditError as exc:  # the coordinator is unreachable: keep them, and look again at the next start
                _LOG.warning("job %s: cannot tell whether it ended (%s); its checkpoints stay for now", job_id, exc)
                continue
            if state not in ("pending", "running"):
                self.store.job(job_id).drop_checkpoints()
                dropped.append(job_id)
                _LOG.info("job %s is %s: deleted the checkpoints this node kept to resume it", job_id, state)
        return dropped

    def stop(self) -> None:
        self._stop.set()

    def _beat(self) -> None:
        """The heartbeat thread: a sign of life every few seconds. A coordinator that no longer knows this node (a
        new database) or cannot be reached makes the poll loop register again once it can."""
        while not self._stop.wait(self._heartbeat_s):
            try:
                self._call(self.nodes.Heartbeat, node_pb2.HeartbeatRequest(instance_id=self.instance_id), timeout=5.0)
            except (NotFoundError, ConflictError, TransportError, DeadlineError) as exc:
                _LOG.debug("heartbeat failed: %s", exc)
                self._reregister.set()
            except FedCreditError as exc:
                _LOG.warning("heartbeat refused: %s", exc)

    def serve_forever(self) -> None:
        """Serve until stopped. Neither a job's failure nor the coordinator's restart ends this loop: the node
        reconnects with backoff and registers again; only another live process with its identity does."""
        self.register()
        ex = self.cfg.executor
        _LOG.info("kernels run on %s", "this node's process pool" if ex.kind == "local" else
                  f"the Dask cluster at {ex.address} ({self._executor.workers() if self._executor else '?'} worker threads)")
        self.sweep_checkpoints()
        self._heartbeat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._heartbeat.start()
        try:
            self._serve()
        finally:
            self._stop.set()  # also when another process holds this identity: the heartbeat stops with the loop
            for t in self._threads.values():
                t.join(timeout=5.0)
            if self._executor is not None:
                self._executor.close()
            self.channel.close()

    def _serve(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            if self._reregister.is_set():
                self.register()  # the same process again: its running jobs go on
            running, pending = sorted(self._acks["running"]), sorted(self._acks["pending"])
            try:
                resp = self._call(self.jobs.PollAssignments, job_pb2.PollAssignmentsRequest(
                    wait_ms=5_000, ack_job_ids=running, ack_pending_job_ids=pending), timeout=20.0)
            except (TransportError, DeadlineError) as exc:
                _LOG.warning("%s; retrying in %.1f s", exc, backoff)
                self._reregister.set()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            except FedCreditError as exc:  # never a reason to stop serving
                _LOG.error("polling for jobs failed: %s", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            self._acks["running"] -= set(running)
            self._acks["pending"] -= set(pending)
            for info in resp.jobs:
                try:
                    self._take_up(info)
                except (TransportError, DeadlineError) as exc:  # not acknowledged: offered again on the next poll
                    _LOG.warning("job %s: could not reach the coordinator: %s; retrying", info.job_id, exc)
                    continue
                except FedCreditError as exc:
                    _LOG.error("job %s: %s", info.job_id, exc)
                except Exception:  # one job's trouble never stops the node
                    _LOG.exception("job %s: taking it up failed", info.job_id)
                self._acks["pending" if info.state == "pending" else "running"].add(info.job_id)

    def _take_up(self, info: job_pb2.JobInfo) -> None:
        """Decide on a pending job, or start this node's role in a running one (once per job and process)."""
        if info.state == "pending":
            self.decide(info)
        elif info.job_id not in self._threads:
            t = threading.Thread(target=self.run_job, args=(info,), name=f"job-{info.job_id}", daemon=True)
            self._threads[info.job_id] = t
            t.start()

    # -- approval
    def decide(self, info: job_pb2.JobInfo) -> None:
        """Check a pending job against the local policy; approve, reject, or wait for an operator."""
        if info.job_id in self._decided:
            return
        try:
            spec = checked_spec(info)
            check = check_policy(spec, self.cfg)
        except (FedCreditError, ValueError) as exc:
            self._decide(info, False, "policy", f"the job spec is not acceptable: {exc}")
            return
        if not check.ok:
            self._decide(info, False, "policy", "; ".join(check.violations))
        elif self.cfg.policy.auto_approve:
            try:
                self._decide(info, True, "policy", "; ".join(check.checks))
            except StorageError as exc:  # not decided: the next poll tries again, once the disk is mended
                _LOG.error("job %s: cannot approve it: [%s] %s", info.job_id, exc.code, exc.message)
        else:
            _LOG.warning("job %s (purpose %s) awaits this node's approval: run `fedcredit job approve %s --config <this node's config>` "
                         "or `fedcredit job reject ...`", info.job_id, spec.purpose, info.job_id)
            self._decided.add(info.job_id)

    def record_approved_data(self, info: job_pb2.JobInfo) -> None:
        """Before approving: the digest of the data this node approves the job on (#12: a job runs on that data only)."""
        spec = checked_spec(info)
        try:
            self.store.job(info.job_id).record_approved(ApprovedData(info.spec_sha256, dataset_digest(spec, self.cfg)))
        except OSError as exc:
            raise storage_error(exc) from None

    def check_approved_data(self, info: job_pb2.JobInfo, spec: JobSpec) -> str:
        """The data digest now, which must equal the one recorded at approval."""
        files = self.store.job(info.job_id)
        now = dataset_digest(spec, self.cfg)
        recorded = files.approved()
        if recorded is None:
            raise PermissionDeniedError(f"no record of the data this node approved job {info.job_id} on ({files.approved_data})",
                                        public="this node has no record of the data it approved the job on")
        if recorded != ApprovedData(info.spec_sha256, now):
            raise PermissionDeniedError(f"the dataset (or its consent registry, or the selected columns) changed since this node "
                                        f"approved job {info.job_id}: approve the job again on the current data",
                                        public="the party's data changed since it approved the job")
        return now

    def _decide(self, info: job_pb2.JobInfo, approve: bool, by: str, reason: str) -> None:
        if approve:
            self.record_approved_data(info)
        approval = make_approval(self.signer, info.job_id, info.spec_sha256, approve, by, reason)
        try:
            self._call(self.jobs.ApproveJob, job_pb2.ApproveJobRequest(job_id=info.job_id, approval=approval))
            _LOG.info("job %s %s by %s: %s", info.job_id, "approved" if approve else "rejected", by, reason)
        except ConflictError as exc:
            _LOG.info("job %s: %s", info.job_id, exc)
        except (TransportError, DeadlineError):
            raise  # not acknowledged: the poll loop retries, and the decision is made again on the next poll
        except FedCreditError as exc:  # one job's decision failing must not stop the node
            _LOG.error("job %s: the coordinator refused this node's decision: %s", info.job_id, exc)
        self._decided.add(info.job_id)

    # -- one job
    def run_job(self, info: job_pb2.JobInfo) -> None:
        job_id = info.job_id
        try:
            self._run_and_report(info)
        finally:
            # The job ended here, either way: nothing it kept to resume (PSI's scalar, training's seed and weight
            # shares) may outlive it. Only a killed process leaves its checkpoints behind, to resume from.
            self.store.job(job_id).drop_checkpoints()

    def _run_and_report(self, info: job_pb2.JobInfo) -> None:
        job_id = info.job_id
        files = self.store.job(job_id)
        try:
            result = self._run_job(info)
            files = self.store.job(job_id)
            files.write_result(result)
        except Exception as exc:
            if isinstance(exc, OSError):  # a full or read-only disk: named with its path here, and only its kind leaves the node
                exc = storage_error(exc)
            files.drop_checkpoints()  # before the report: once the job has ended, nothing of it may resume
            code, message = describe_error(exc)
            if not isinstance(exc, FedCreditError):
                _LOG.exception("job %s failed", job_id)
            else:
                _LOG.error("job %s failed: [%s] %s", job_id, code, message)
            # what leaves the node: the code, column names and line numbers, never a value or a path
            self._report(job_id, False, {}, describe_error(exc, public=True)[1], code)
            return
        files.drop_checkpoints()  # before the report, as on failure
        self._report(job_id, True, result.public(), "", "")
        _LOG.info("job %s: role finished; its result is in %s", job_id, files.result)

    def _report(self, job_id: str, ok: bool, result: dict[str, Any], error: str, code: str, wait_s: float = 600.0) -> None:
        """Report this role's end, retrying with backoff while the coordinator cannot be reached (it may be
        restarting); a report the coordinator already has (its reply was lost) is done."""
        req = job_pb2.ReportRoleResultRequest(job_id=job_id, ok=ok, error=error, error_code=code, result_json=json.dumps(result))
        deadline = time.monotonic() + wait_s
        backoff = 0.5
        while True:
            try:
                self._call(self.jobs.ReportRoleResult, req)
                return
            except ConflictError:
                return  # reported before, its reply lost
            except (TransportError, DeadlineError) as exc:
                if time.monotonic() > deadline or self._stop.is_set():
                    _LOG.warning("could not report the result of %s: %s", job_id, exc)
                    return
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            except FedCreditError as exc:
                _LOG.warning("could not report the result of %s: %s", job_id, exc)
                return
            except ValueError:  # grpc: "Cannot invoke RPC on closed channel": this node is shutting down
                _LOG.warning("could not report the result of %s: this node is shutting down", job_id)
                return

    def _progress_reporter(self, job_id: str) -> Any:
        last = [0.0]
        started: dict[str, tuple[float, int]] = {}  # stage -> (time, done) when first seen

        def report(p: Progress) -> None:
            now = time.monotonic()
            t0, d0 = started.setdefault(p.stage, (now, p.done))
            if now - last[0] < 0.5 and p.done < p.total:
                return
            last[0] = now
            detail = {k: v for k, v in dict(p.detail).items() if isinstance(v, (int, float, str, bool))}
            if now > t0 and p.done > d0:
                rate = (p.done - d0) / (now - t0)
                detail["rate_per_s"] = round(rate, 1)
                if p.total > p.done:
                    detail["eta_s"] = round((p.total - p.done) / rate, 1)
            _LOG.info("job %s: %s %d/%d%s", job_id, p.stage, p.done, p.total,
                      "".join(f" {k}={v}" for k, v in detail.items() if k in ("rate_per_s", "eta_s", "epoch")))
            req = job_pb2.ReportProgressRequest(job_id=job_id, stage=p.stage, done=p.done, total=p.total, detail_json=json.dumps(detail))
            try:
                self._call(self.jobs.ReportProgress, req, timeout=10.0)
            except FedCreditError as exc:
                _LOG.debug("progress report failed: %s", exc)

        return report

    def _run_job(self, info: job_pb2.JobInfo) -> JobResult:
        spec = checked_spec(info)  # the spec run is the one whose digest this node signed
        me = self.cfg.name
        role = Role(my_role(spec, me)[0])
        # Nothing is read before this point: the job must carry our own signed approval of this exact spec,
        # and still pass our policy (which may have changed since the approval).
        approval = require_own_approval(info, self.signer)
        check = check_policy(spec, self.cfg)
        if not check.ok:
            raise PermissionDeniedError("the job no longer passes this node's policy: " + "; ".join(check.violations))
        data_sha256 = self.check_approved_data(info, spec)
        plan = plan_job(spec)

        files = self.store.job(info.job_id)
        resuming = files.has_checkpoint() or files.has_psi_done()
        writer = TranscriptWriter(self.store.transcript(info.job_id, me), job_id=info.job_id, identity=self.signer,
                                  role=role.value, ca_cert_pem=self.tls.ca, keep_payloads=self.cfg.transcripts.keep_payloads,
                                  resume=resuming)
        try:
            if not resuming:
                writer.event("job_spec", spec=json.loads(spec.canonical_json()), spec_sha256=info.spec_sha256, purpose=spec.purpose)
                writer.event("approved", spec_sha256=approval.spec_sha256, by=approval.by, reason=approval.reason,
                             checks=check.checks, signature=approval.signature.hex(), dataset_sha256=data_sha256)
            try:
                result = self._run_approved(info, plan, plan.role(role), writer)
            except Exception as exc:
                writer.event("finished", ok=False, error=describe_error(exc)[1])
                raise
            writer.event("finished", ok=True, error="")
            return replace(result, transcript=str(writer.path), peak_rss_mb=peak_rss_mb())
        finally:
            writer.close()

    def _run_approved(self, info: job_pb2.JobInfo, plan: JobPlan, mine: RolePlan, writer: TranscriptWriter) -> JobResult:
        """Load this node's rows, then run the plan: PSI, and for a train job, training; a score job: scoring."""
        if plan.score is not None:
            return self._run_score(info, plan, mine, writer)
        if plan.scorecard is not None:
            return self._run_scorecard(info, plan, mine, writer)
        minimum = plan.psi.minimum(self.cfg.policy.min_intersection)
        data, ids = self._load(info.job_id, plan, mine, writer, minimum)
        files = self.store.job(info.job_id)
        run = RoleRun(mine.role, self._endpoint(info.job_id, plan, mine, writer, files), secrets.SystemRandom(), self._map_fn)
        psi = _recorded_psi(files) if plan.train is not None else None
        if psi is None:
            psi = run_psi(run, plan.psi, mine, ids, salt=bytes.fromhex(info.psi_salt_hex), minimum=minimum, files=files,
                          store=self.store, transcript=writer)
            if plan.train is not None and psi.rows is not None:
                # what training needs of PSI, before PSI's checkpoint goes: a restart from here resumes training
                files.save_psi_done({"outcome": asdict(psi.outcome), "rows": [int(r) for r in psi.rows], "aligned": psi.aligned})
            files.drop_checkpoint()  # PSI's scalar is no longer needed: do not keep it
        trained = None
        if plan.train is not None:
            if psi.rows is None or len(psi.aligned) == 0:
                raise FedCreditError("the intersection is empty: nothing to train on")
            trained = run_training(run, plan.train, data, psi.rows, psi.aligned, job_id=info.job_id, files=files,
                                   transcript=writer)
            write_package(self.store, files, plan, info.job_id, info.spec_sha256, self.cfg.name)  # models/<job>/ (#14)
        traffic = Traffic(sent=run.endpoint.bytes_sent, received=run.endpoint.bytes_received)
        if trained is None:
            return JobResult(self.cfg.name, psi.outcome, traffic)
        return JobResult(self.cfg.name, psi.outcome, traffic, train_seconds=trained.seconds, training=trained.summary,
                         metrics=trained.metrics)

    def _run_scorecard(self, info: job_pb2.JobInfo, plan: JobPlan, mine: RolePlan, writer: TranscriptWriter) -> JobResult:
        """A scorecard job (#15): PSI, then binning, WOE/IV, selection, the LR on the WOE columns and points
        (:mod:`fedcredit.runtime.node.scorecard_runner`); no checkpoint after PSI."""
        assert plan.scorecard is not None and plan.train is not None
        minimum = plan.psi.minimum(self.cfg.policy.min_intersection)
        data, ids = self._load(info.job_id, plan, mine, writer, minimum)
        files = self.store.job(info.job_id)
        run = RoleRun(mine.role, self._endpoint(info.job_id, plan, mine, writer, files), secrets.SystemRandom(), self._map_fn)
        psi = run_psi(run, plan.psi, mine, ids, salt=bytes.fromhex(info.psi_salt_hex), minimum=minimum, files=files,
                      store=self.store, transcript=writer)
        files.drop_checkpoint()
        if psi.rows is None or len(psi.aligned) == 0:
            raise FedCreditError("the intersection is empty: nothing to bin")
        card = run_scorecard(run, plan.scorecard, plan.train, data, psi.rows, psi.aligned, job_id=info.job_id, files=files)
        write_package(self.store, files, plan, info.job_id, info.spec_sha256, self.cfg.name)  # models/<job>/, its scorecard
        traffic = Traffic(sent=run.endpoint.bytes_sent, received=run.endpoint.bytes_received)
        return JobResult(self.cfg.name, psi.outcome, traffic, train_seconds=card.seconds, training=card.summary,
                         metrics=card.metrics, scorecard_metrics=card.scorecard_metrics)

    def _run_score(self, info: job_pb2.JobInfo, plan: JobPlan, mine: RolePlan, writer: TranscriptWriter) -> JobResult:
        """A score job (#14): this node's rows and its part of the model, through the scoring protocol; no PSI."""
        assert plan.score is not None
        data, ids = self._load(info.job_id, plan, mine, writer, 0)
        files = self.store.job(info.job_id)
        run = RoleRun(mine.role, self._endpoint(info.job_id, plan, mine, writer, files), secrets.SystemRandom(), self._map_fn)
        online = OnlineWiring(self.cfg.scoring_service, self._stop) if plan.score.online and mine.role is Role.GUEST else None
        summary = run_scoring(run, plan.score, mine, data, ids.ids, ids.rows, store=self.store, files=files, transcript=writer,
                              daily_limit=self.cfg.policy.max_scoring_queries_per_day, online=online)
        traffic = Traffic(sent=run.endpoint.bytes_sent, received=run.endpoint.bytes_received)
        return JobResult(self.cfg.name, PsiOutcome(), traffic, scoring=summary)

    def _load(self, job_id: str, plan: JobPlan, mine: RolePlan, writer: TranscriptWriter,
              minimum: int) -> tuple[LocalDataset, PartyIds]:
        """This node's dataset as the job selects it, and the ids its consent registry admits to PSI.

        Raises:
            DataError: fewer usable ids than ``minimum``: the intersection cannot reach it, so refuse before any message.
        """
        ds_cfg = self.cfg.datasets[mine.dataset]
        if plan.psi.validate_uscc and not ds_cfg.validate_uscc:
            ds_cfg = ds_cfg.model_copy(update={"validate_uscc": True})
        if mine.columns is not None:
            ds_cfg = ds_cfg.model_copy(update={"feature_columns": list(mine.columns)})
        _LOG.info("job %s: %s as %s on dataset %s (purpose %s)", job_id, plan.kind, mine.role.value, ds_cfg.path.name, plan.purpose)
        if mine.needs_labels or mine.needs_features:
            data = load_dataset(ds_cfg, require_label=mine.needs_labels, require_features=mine.needs_features)
        else:  # a PSI job: only the id column, read in chunks (#16), never the file's other columns
            column = read_ids(ds_cfg)
            data = LocalDataset(ds_cfg.path, column.ids, np.empty((len(column.ids), 0)), [], None, column.duplicates_removed)
        ids, keep = data.ids, None
        if ds_cfg.consent_registry is not None:
            registry = load_consent_registry(ds_cfg.consent_registry)
            decision = apply_consent(ids, registry, plan.purpose, dt.date.today())  # read once per job: revocations apply from the next job
            keep = np.flatnonzero(decision.keep)
            ids = [ids[i] for i in keep]
            writer.event("consent", purpose=plan.purpose, included=decision.included, excluded=decision.excluded,
                         registry=str(ds_cfg.consent_registry))
            _LOG.info("job %s: consent registry admits %d of %d enterprises for %s (%d excluded; only this node knows)",
                      job_id, decision.included, len(data.ids), plan.purpose, decision.excluded)
        if len(ids) < minimum:
            raise DataError(f"{ds_cfg.path}: {len(ids)} usable enterprises, below this node's min_intersection of {minimum}",
                            public=f"the party's usable dataset is smaller than its policy's min_intersection ({minimum})")
        return data, PartyIds(ids, data.ids, keep, data.duplicates_removed)

    # -- what a job's run is wired to
    def _endpoint(self, job_id: str, plan: JobPlan, mine: RolePlan, writer: TranscriptWriter, files: JobFiles) -> RelayEndpoint:
        """The job's endpoint: sealed with the peer, checking the peer's and the coordinator's signatures, recording
        every message in the transcript, reporting progress, and keeping checkpoints on this node."""
        peer = mine.peer
        sealer, peer_sign_pem, peer_sign = self._sealer(job_id, peer, files)
        coord_sign_pem = self._sign_cert(self.cfg.coordinator_name)
        verify_keys = {
            peer: peer_sign,
            self.cfg.coordinator_name: verify_signing_cert(coord_sign_pem, self.tls.ca, self.cfg.coordinator_name),
        }
        writer.event("peer_certs", certs={peer: peer_sign_pem.decode(), self.cfg.coordinator_name: coord_sign_pem.decode()})
        names = plan.parties(self.cfg.coordinator_name)
        role_of_node = {node: r for r, node in names.items()}

        resumable = plan.psi.resumable or plan.train is not None

        def record(direction: str, env: Any, msg: Any, wire: bytes) -> None:
            if direction == "sent" and resumable:
                files.save_outbox(env, wire)  # before its record: a restarted node hands the relay the last one again
            owner = key_owner_of(type(msg), role_of_node[env.sender]) if env.classification == "ciphertext" else None
            writer.message(direction, envelope_fields(env), env.signature, key_owner=str(owner) if owner else None,
                           disclosed=msg.disclosed(), payload=wire)

        def on_checkpoint(c: Any) -> None:
            # persisted before the program goes on; it holds secrets, so it stays here (0600) and goes nowhere
            if c.stage == TRAIN_CHECKPOINT_STAGE:
                files.save_train_checkpoint(c.state)
            else:
                files.save_checkpoint(c.state)

        return RelayEndpoint(
            self.channel, job_id, mine.role, names, signer=self.signer, verify_keys=verify_keys,
            sealers={peer: sealer}, on_progress=self._progress_reporter(job_id), on_checkpoint=on_checkpoint, recorder=record,
            timeout_s=self.cfg.message_timeout_s,
        )

    def _sealer(self, job_id: str, peer: str, files: JobFiles, wait_s: float = 300.0) -> tuple[SealSession, bytes, Any]:
        """The job's sealing with ``peer``, the peer's signing certificate and its key (verified against our CA copy).
        Waits for the peer to register.

        The peer's static sealing and signing keys are verified against our own CA copy; they only authenticate
        the fresh ephemeral keys the endpoint exchanges per phase (:class:`SealSession`). After a restart
        mid-PSI, the PSI phase's derived keys come back from this node's own checkpoint, which is all that
        was kept of them."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                resp = self._call(self.nodes.GetPeer, node_pb2.GetPeerRequest(name=peer))
                break
            except (NotFoundError, TransportError, DeadlineError):  # not registered yet, or the connection dropped
                if time.monotonic() > deadline:
                    raise
                self._stop.wait(0.5)
        peer_key = verify_peer_seal_cert(resp.seal_cert_pem, self.tls.ca, peer)
        peer_sign = verify_signing_cert(resp.sign_cert_pem, self.tls.ca, peer)
        try:
            restored = (files.load_checkpoint() or files.load_train_checkpoint() or {}).get(SEAL_CHECKPOINT_KEY, {}).get(peer)
        except (OSError, ValueError, AttributeError):
            restored = None  # the PSI resume reads the same file and reports what is wrong with it
        session = SealSession(self.seal, self.signer, peer, peer_key, peer_sign, job_id, restored=restored)
        return session, resp.sign_cert_pem, peer_sign

    def _sign_cert(self, name: str) -> bytes:
        return self._call_patiently(self.nodes.GetPeer, node_pb2.GetPeerRequest(name=name)).sign_cert_pem

    def _map_fn(self, n_items: int, minimum: int = 20_000) -> MapFn | None:
        """Where work over ``n_items`` items runs: the node's executor (``executor`` in its config: its own process
        pool, spawned, never forked, whose workers die with the node; or the bank's Dask cluster). None (this
        thread) below ``minimum`` items (``executor.min_items`` when set), or for the local pool on one core."""
        ex_cfg = self.cfg.executor
        if n_items < (minimum if ex_cfg.min_items is None else ex_cfg.min_items):
            return None
        if ex_cfg.kind == "local" and (ex_cfg.workers or os.cpu_count() or 1) < 2:
            return None
        with self._pool_lock:
            if self._executor is None:
                self._executor = make_executor(ex_cfg)
            return self._executor.map


def _recorded_psi(files: JobFiles) -> PsiRun | None:
    """A train job's PSI result as recorded before training started (after a restart: training resumes without PSI)."""
    try:
        done = files.load_psi_done()
        if done is None:
            return None
        return PsiRun(PsiOutcome(**done["outcome"]), np.asarray(done["rows"], dtype=np.int64), [str(i) for i in done["aligned"]])
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DataError(f"{files.psi_done} cannot be read to resume the job: {type(exc).__name__}",
                        public="the party's record of the job's PSI result cannot be read") from None


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB.

    Linux's ``VmHWM`` (``/proc/self/status``): the high-water mark of this process image alone. ``ru_maxrss``
    is only the fallback: Linux carries it across ``fork`` and ``execve``, so a node started by a large process
    (a benchmark, a test run) would report that process's peak as its own."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
