"""A party node: dials out to the coordinator, loads its own data, runs its role.

The node opens no port. It registers its sealing certificate, long-polls for
jobs in which it has a role, and runs each job in a thread: PSI to align rows,
then (for ``train`` jobs) vertical LR and evaluation. Raw data, labels and
weights never leave this process; the model is written to the node's workdir.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from fedcredit.v1 import job_pb2, job_pb2_grpc, node_pb2, node_pb2_grpc
from protocols.core import Checkpoint, Progress, Role, key_owner_of
from protocols.hetero_lr import Standardizer, split_train_test
from protocols.hetero_lr import two_party
from protocols.psi import protocol as psi
from protocols.psi import unbalanced as ub
from protocols.psi.ot import protocol as ot_psi

from .approval import check_policy, checked_spec, dataset_digest, make_approval, my_role, require_own_approval
from .certs import load_tls
from .config import JobSpec, PartyConfig
from .consent import apply_consent, load_consent_registry
from .data import LocalDataset, load_dataset
from .errors import ConfigError, ConflictError, DataError, FedCreditError, NotFoundError, PermissionDeniedError, TransportError, from_rpc_error
from .runtime import RelayEndpoint, describe_error, drive
from .sealing import SEAL_CHECKPOINT_KEY, SealSession, load_seal_identity, verify_peer_seal_cert
from .signing import envelope_fields, load_signing_identity, verify_signing_cert
from .transcript import TranscriptWriter
from .transport import DEFAULT_DEADLINE_S, create_channel, wait_healthy

__all__ = ["PartyNode", "atomic_write_text"]

_LOG = logging.getLogger(__name__)
VERSION = "0.1.0"
#: The parts of a party's job result that go to the coordinator, each keyed by the party's own name: run
#: metadata the coordinator could time or count itself. Everything else (metrics, losses, training and PSI
#: sizes, artifacts) stays in the party's own ``jobs/<job>/result.json`` (0600): the platform's operator runs
#: the coordinator, so what it stores the platform may read.
PUBLIC_RESULT_KEYS = ("seconds", "bytes", "peak_rss_mb")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a party output atomically and readable by this user only (0600; fsync before the rename).

    Every file a party writes (intersections, models, caches, checkpoints) holds private data."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


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
        self.channel = create_channel(cfg.coordinator, self.tls, server_name=cfg.coordinator_name)
        self.jobs = job_pb2_grpc.JobServiceStub(self.channel)
        self.nodes = node_pb2_grpc.NodeServiceStub(self.channel)
        self._threads: dict[str, threading.Thread] = {}
        self._decided: set[str] = set()
        self._stop = threading.Event()
        self._pool: Any = None
        self._pool_lock = threading.Lock()

    # -- lifecycle
    def _call(self, fn: Any, request: Any, timeout: float = DEFAULT_DEADLINE_S) -> Any:
        try:
            return fn(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, target=self.cfg.coordinator) from None

    def register(self, wait_s: float = 60.0) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                wait_healthy(self.channel, timeout_s=5.0, target=self.cfg.coordinator)
                resp = self._call(self.nodes.Register, node_pb2.RegisterRequest(
                    seal_cert_pem=self.seal.cert_pem, sign_cert_pem=self.signer.cert_pem, software_version=VERSION,
                    datasets=sorted(self.cfg.datasets)))
                _LOG.info("registered with coordinator %s as %s", resp.coordinator, resp.node)
                return
            except TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def stop(self) -> None:
        self._stop.set()

    def serve_forever(self) -> None:
        self.register()
        while not self._stop.is_set():
            try:
                resp = self._call(self.jobs.PollAssignments, job_pb2.PollAssignmentsRequest(wait_ms=5_000), timeout=20.0)
            except TransportError as exc:
                _LOG.warning("%s; retrying", exc)
                self._stop.wait(2.0)
                continue
            for info in resp.jobs:
                if info.state == "pending":
                    try:
                        self.decide(info)
                    except TransportError as exc:  # not recorded as decided: the next poll decides again
                        _LOG.warning("job %s: could not send this node's decision: %s; retrying", info.job_id, exc)
                    continue
                if info.job_id not in self._threads:
                    t = threading.Thread(target=self.run_job, args=(info,), name=f"job-{info.job_id}", daemon=True)
                    self._threads[info.job_id] = t
                    t.start()
        for t in self._threads.values():
            t.join(timeout=5.0)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.channel.close()

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
            self._decide(info, True, "policy", "; ".join(check.checks))
        else:
            _LOG.warning("job %s (purpose %s) awaits this node's approval: run `fedcredit job approve %s --config <this node's config>` "
                         "or `fedcredit job reject ...`", info.job_id, spec.purpose, info.job_id)
            self._decided.add(info.job_id)

    def approved_data_path(self, job_id: str) -> Path:
        return self.cfg.workdir / "jobs" / job_id / "approved_data.json"

    def record_approved_data(self, info: job_pb2.JobInfo) -> None:
        """Before approving: the digest of the data this node approves the job on (#12: a job runs on that data only)."""
        spec = checked_spec(info)
        _write_private_json(self.approved_data_path(info.job_id), {"spec_sha256": info.spec_sha256,
                                                                   "dataset_sha256": dataset_digest(spec, self.cfg)})

    def check_approved_data(self, info: job_pb2.JobInfo, spec: JobSpec) -> str:
        """The data digest now, which must equal the one recorded at approval."""
        path = self.approved_data_path(info.job_id)
        now = dataset_digest(spec, self.cfg)
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise PermissionDeniedError(f"no record of the data this node approved job {info.job_id} on ({path})",
                                        public="this node has no record of the data it approved the job on") from None
        if recorded.get("spec_sha256") != info.spec_sha256 or recorded.get("dataset_sha256") != now:
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
        except TransportError:
            raise  # the poll loop retries; the decision is made again on the next poll
        except FedCreditError as exc:  # one job's decision failing must not stop the node
            _LOG.error("job %s: the coordinator refused this node's decision: %s", info.job_id, exc)
        self._decided.add(info.job_id)

    # -- one job
    def run_job(self, info: job_pb2.JobInfo) -> None:
        job_id = info.job_id
        try:
            result = self._run_job(info)
        except Exception as exc:
            code, message = describe_error(exc)
            if not isinstance(exc, FedCreditError):
                _LOG.exception("job %s failed", job_id)
            else:
                _LOG.error("job %s failed: [%s] %s", job_id, code, message)
            # what leaves the node: the code, column names and line numbers, never a value or a path
            self._report(job_id, False, {}, describe_error(exc, public=True)[1], code)
            return
        atomic_write_text(self.result_path(job_id), json.dumps(result, indent=2))
        public = {k: {self.cfg.name: result[k][self.cfg.name]} for k in PUBLIC_RESULT_KEYS
                  if isinstance(result.get(k), dict) and self.cfg.name in result[k]}
        self._report(job_id, True, public, "", "")
        _LOG.info("job %s: role finished; its result is in %s", job_id, self.result_path(job_id))

    def result_path(self, job_id: str) -> Path:
        """This party's own result of a job (metrics, sizes, artifacts): local, 0600, never sent."""
        return self.cfg.workdir / "jobs" / job_id / "result.json"

    def _report(self, job_id: str, ok: bool, result: dict[str, Any], error: str, code: str) -> None:
        req = job_pb2.ReportRoleResultRequest(job_id=job_id, ok=ok, error=error, error_code=code, result_json=json.dumps(result))
        try:
            self._call(self.jobs.ReportRoleResult, req)
        except FedCreditError as exc:
            _LOG.warning("could not report the result of %s: %s", job_id, exc)

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

    # -- unbalanced PSI
    def _ub_dir(self) -> Path:
        return self.cfg.unbalanced.directory or self.cfg.workdir / "unbalanced"

    def _ub_key(self, dataset: str, rng: Any) -> tuple[bytes, bytes]:
        """The host's long-lived key and salt for ``dataset``, rotated on the configured schedule."""
        path = self._ub_dir() / dataset / "key.json"
        if path.exists():
            saved = json.loads(path.read_text(encoding="utf-8"))
            age_days = (time.time() - float(saved["created_unix"])) / 86400.0
            if age_days < self.cfg.unbalanced.key_rotation_days:
                return bytes.fromhex(saved["key"]), bytes.fromhex(saved["salt"])
            _LOG.info("unbalanced key for %s is %.1f days old: rotating (the cache is rebuilt)", dataset, age_days)
        key, salt = ub.unbalanced_new_key(rng), rng.getrandbits(256).to_bytes(32, "big")
        _write_private_json(path, {"key": key.hex(), "salt": salt.hex(), "created_unix": time.time()})
        return key, salt

    def _run_unbalanced(self, spec: JobSpec, role: Role, peer: str, ds_cfg: Any, ids: list[str], rng: Any,
                        endpoint: RelayEndpoint, minimum: int, *, count_first: bool) -> dict[str, Any]:
        me = self.cfg.name
        params = ub.UnbalancedParams(mode=psi.Reveal(spec.psi.reveal), count_first=count_first)
        mine = spec.guest if role is Role.GUEST else spec.host
        out: dict[str, Any] = {"psi": {"unbalanced": True}}
        t_off = time.monotonic()
        if role is Role.HOST:
            key, salt = self._ub_key(mine.dataset, rng)
            digest = ub.unbalanced_cache_digest(ids, key, salt)
            store = self._ub_dir() / mine.dataset
            cache_file, digest_file = store / "cache.bin", store / "cache.digest"
            if digest_file.exists() and digest_file.read_bytes() == digest.digest and cache_file.exists():
                data = cache_file.read_bytes()
                cache = [data[i : i + 16] for i in range(0, len(data), 16)]
                rebuilt = False
            else:  # the set or the key changed: blind the whole set again (offline work)
                cache = ub.unbalanced_build_cache(ids, key, salt, map_fn=self._map_fn(len(ids)))
                store.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(cache_file, b"".join(cache))
                atomic_write_bytes(digest_file, digest.digest)
                rebuilt = True
            offline = time.monotonic() - t_off
            t_on = time.monotonic()
            drive(role, ub.unbalanced_host_program(key, cache, digest, params, rng, map_fn=self._map_fn(len(ids)),
                                                   min_intersection=minimum), endpoint)
            out["psi"]["seconds"] = {me: {"offline": round(offline, 3), "online": round(time.monotonic() - t_on, 3)}}
            out["psi"]["cache_rebuilt"] = {me: rebuilt}
        else:
            store = self._ub_dir() / f"peer-{peer}-{spec.host.dataset}"
            cache = None
            if (store / "cache.bin").exists() and (store / "digest.json").exists():
                d = json.loads((store / "digest.json").read_text(encoding="utf-8"))
                dig = ub.CacheDigest(bytes.fromhex(d["key_id"]), bytes.fromhex(d["set_digest"]), int(d["count"]), bytes.fromhex(d["salt"]))
                data = (store / "cache.bin").read_bytes()
                cache = ub.UnbalancedCache.from_values(dig, (data[i : i + 16] for i in range(0, len(data), 16)))
            t_on = time.monotonic()
            res = drive(role, ub.unbalanced_guest_program(ids, params, rng, cache=cache, map_fn=self._map_fn(len(ids)),
                                                          min_intersection=minimum), endpoint)
            if res.cache_updated:
                c = res.cache
                store.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(store / "cache.bin", b"".join(sorted(c.values)))
                atomic_write_text(store / "digest.json", json.dumps({"key_id": c.digest.key_id.hex(), "set_digest": c.digest.set_digest.hex(),
                                                                     "count": c.digest.count, "salt": c.digest.salt.hex()}))
            out["psi"]["seconds"] = {me: {"online": round(time.monotonic() - t_on, 3)}}
            out["psi"]["cache_received"] = res.cache_updated
            r = res.result
            if spec.psi.reveal == "cardinality":
                out["psi"]["intersection_size"] = r.size
            else:
                aligned = [ids[i] for i in r.rows]
                out["psi"]["intersection_size"] = len(aligned)
                if len(aligned) < minimum:  # refused at the count already (count-first); a guard only
                    raise PermissionDeniedError(f"the intersection has {len(aligned)} enterprises, below this node's minimum of {minimum}",
                                                public=f"the intersection is below this party's minimum (min_intersection {minimum})")
                atomic_write_text(self.cfg.workdir / "jobs" / endpoint.job_id / "intersection.csv",
                                  "id\n" + "".join(f"{i}\n" for i in aligned))
        out["bytes"] = {me: {"sent": endpoint.bytes_sent, "received": endpoint.bytes_received}}
        return out

    def _checkpoint_path(self, job_id: str) -> Path:
        return self.cfg.workdir / "jobs" / job_id / "psi.checkpoint.json"

    def _map_fn(self, n_items: int, minimum: int = 20_000) -> Any:
        """Work on all cores (PSI's scalar multiplications, Paillier encryption randomness): a process
        pool, spawned, never forked (gRPC is threaded). None below ``minimum`` items or on one core."""
        if n_items < minimum or (os.cpu_count() or 1) < 2:
            return None
        with self._pool_lock:
            if self._pool is None:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                self._pool = ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=multiprocessing.get_context("spawn"))
            return self._pool.map

    def _sealer(self, job_id: str, peer: str, wait_s: float = 300.0) -> tuple[SealSession, bytes]:
        """The job's sealing with ``peer`` and the peer's signing certificate. Waits for the peer to register.

        The peer's static sealing and signing keys are verified against our own CA copy; they only authenticate
        the fresh ephemeral keys the endpoint exchanges per phase (:class:`SealSession`). After a restart
        mid-PSI, the PSI phase's derived keys come back from this node's own checkpoint, which is all that
        was kept of them."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                resp = self._call(self.nodes.GetPeer, node_pb2.GetPeerRequest(name=peer))
                break
            except NotFoundError:
                if time.monotonic() > deadline:
                    raise
                self._stop.wait(0.5)
        peer_key = verify_peer_seal_cert(resp.seal_cert_pem, self.tls.ca, peer)
        peer_sign = verify_signing_cert(resp.sign_cert_pem, self.tls.ca, peer)
        restored = None
        ckpt = self._checkpoint_path(job_id)
        if ckpt.exists():
            try:
                restored = json.loads(ckpt.read_text(encoding="utf-8")).get(SEAL_CHECKPOINT_KEY, {}).get(peer)
            except (OSError, ValueError, AttributeError):
                restored = None  # the PSI resume reads the same file and reports what is wrong with it
        session = SealSession(self.seal, self.signer, peer, peer_key, peer_sign, job_id, restored=restored)
        return session, resp.sign_cert_pem

    def _sign_cert(self, name: str) -> bytes:
        return self._call(self.nodes.GetPeer, node_pb2.GetPeerRequest(name=name)).sign_cert_pem

    def _run_job(self, info: job_pb2.JobInfo) -> dict[str, Any]:
        spec = checked_spec(info)  # the spec run is the one whose digest this node signed
        me = self.cfg.name
        role_name, dataset_name, peer = my_role(spec, me)
        role = Role(role_name)
        # Nothing is read before this point: the job must carry our own signed approval of this exact spec,
        # and still pass our policy (which may have changed since the approval).
        approval = require_own_approval(info, self.signer)
        check = check_policy(spec, self.cfg)
        if not check.ok:
            raise PermissionDeniedError("the job no longer passes this node's policy: " + "; ".join(check.violations))
        data_sha256 = self.check_approved_data(info, spec)
        ds_cfg = self.cfg.datasets[dataset_name]
        if spec.psi.validate_uscc and not ds_cfg.validate_uscc:
            ds_cfg = ds_cfg.model_copy(update={"validate_uscc": True})
        mine = spec.guest if role is Role.GUEST else spec.host
        if mine.columns is not None:
            ds_cfg = ds_cfg.model_copy(update={"feature_columns": list(mine.columns)})

        transcript_dir = self.cfg.transcripts.directory or self.cfg.workdir / "transcripts"
        transcript_dir.mkdir(parents=True, exist_ok=True)
        resuming = self._checkpoint_path(info.job_id).exists()
        writer = TranscriptWriter(transcript_dir / f"{info.job_id}.{me}.jsonl", job_id=info.job_id, identity=self.signer,
                                  role=role.value, ca_cert_pem=self.tls.ca, keep_payloads=self.cfg.transcripts.keep_payloads,
                                  resume=resuming)
        try:
            if not resuming:
                writer.event("job_spec", spec=json.loads(spec.canonical_json()), spec_sha256=info.spec_sha256, purpose=spec.purpose)
                writer.event("approved", spec_sha256=approval.spec_sha256, by=approval.by, reason=approval.reason,
                             checks=check.checks, signature=approval.signature.hex(), dataset_sha256=data_sha256)
            try:
                result = self._run_approved(info, spec, role, peer, ds_cfg, writer)
            except Exception as exc:
                writer.event("finished", ok=False, error=describe_error(exc)[1])
                raise
            writer.event("finished", ok=True, error="")
            result.setdefault("artifacts", {})[me] = {"transcript": str(writer.path)}
            result["peak_rss_mb"] = {me: round(peak_rss_mb(), 1)}
            return result
        finally:
            writer.close()

    def _run_approved(self, info: job_pb2.JobInfo, spec: JobSpec, role: Role, peer: str, ds_cfg: Any,
                      writer: TranscriptWriter) -> dict[str, Any]:
        _LOG.info("job %s: %s as %s on dataset %s (purpose %s)", info.job_id, spec.kind, role.value, ds_cfg.path.name, spec.purpose)
        data = load_dataset(ds_cfg, require_label=(role is Role.GUEST and spec.kind == "train"), require_features=spec.kind == "train")
        ids = data.ids
        keep = None
        if ds_cfg.consent_registry is not None:
            registry = load_consent_registry(ds_cfg.consent_registry)
            decision = apply_consent(ids, registry, spec.purpose, dt.date.today())  # read once per job: revocations apply from the next job
            keep = np.flatnonzero(decision.keep)
            ids = [ids[i] for i in keep]
            writer.event("consent", purpose=spec.purpose, included=decision.included, excluded=decision.excluded,
                         registry=str(ds_cfg.consent_registry))
            _LOG.info("job %s: consent registry admits %d of %d enterprises for %s (%d excluded; only this node knows)",
                      info.job_id, decision.included, len(data.ids), spec.purpose, decision.excluded)
        # Where the job reveals rows (training; PSI with reveal both or guest), each party's minimum is checked on the
        # count, before anything locates the intersection: count-first PSI (#12). Both parties learn the count then.
        reveals_rows = spec.kind == "train" or spec.psi.reveal in ("both", "guest")
        minimum = self.cfg.policy.min_intersection if reveals_rows else 0
        if len(ids) < minimum:
            # the intersection cannot reach the minimum: refuse before any message
            raise DataError(f"{ds_cfg.path}: {len(ids)} usable enterprises, below this node's min_intersection of {minimum}",
                            public=f"the party's usable dataset is smaller than its policy's min_intersection ({minimum})")

        sealer, peer_sign_pem = self._sealer(info.job_id, peer)
        coord_sign_pem = self._sign_cert(self.cfg.coordinator_name)
        verify_keys = {
            peer: verify_signing_cert(peer_sign_pem, self.tls.ca, peer),
            self.cfg.coordinator_name: verify_signing_cert(coord_sign_pem, self.tls.ca, self.cfg.coordinator_name),
        }
        writer.event("peer_certs", certs={peer: peer_sign_pem.decode(), self.cfg.coordinator_name: coord_sign_pem.decode()})
        names = {Role.GUEST: spec.guest.party, Role.HOST: spec.host.party, Role.COORDINATOR: self.cfg.coordinator_name}

        role_of_node = {node: r for r, node in names.items()}

        def record(direction: str, env: Any, msg: Any, wire: bytes) -> None:
            owner = key_owner_of(type(msg), role_of_node[env.sender]) if env.classification == "ciphertext" else None
            writer.message(direction, envelope_fields(env), env.signature, key_owner=str(owner) if owner else None,
                           disclosed=msg.disclosed(), payload=wire)

        report = self._progress_reporter(info.job_id)
        ckpt_path = self._checkpoint_path(info.job_id)

        def on_checkpoint(c: Checkpoint) -> None:
            # persisted before the program goes on; it holds secrets, so it stays here (0600) and goes nowhere
            _write_private_json(ckpt_path, dict(c.state))

        endpoint = RelayEndpoint(
            self.channel, info.job_id, role, names, signer=self.signer, verify_keys=verify_keys,
            sealers={peer: sealer}, on_progress=report, on_checkpoint=on_checkpoint, recorder=record,
            timeout_s=self.cfg.message_timeout_s,
        )
        rng = secrets.SystemRandom()
        t0 = time.monotonic()

        if spec.psi.unbalanced:
            return self._run_unbalanced(spec, role, peer, ds_cfg, ids, rng, endpoint, minimum, count_first=reveals_rows)
        if spec.psi.resolved_protocol() == "ot":
            # OT cannot reveal the count alone: a positive minimum on either side switches both to count-first ECDH
            ot_params = ot_psi.OtPsiParams(salt=bytes.fromhex(info.psi_salt_hex), mode=psi.Reveal(spec.psi.reveal))
            ot_program = ot_psi.ot_guest_program if role is Role.GUEST else ot_psi.ot_host_program
            psi_result = drive(role, ot_program(ids, ot_params, rng, min_intersection=minimum), endpoint)
            return self._after_psi(info, spec, role, data, keep, psi_result, t0, endpoint, rng)
        params = psi.PsiParams(salt=bytes.fromhex(info.psi_salt_hex), reveal=psi.Reveal(spec.psi.reveal),
                               count_first=reveals_rows)
        role_program = psi.guest_program if role is Role.GUEST else psi.host_program
        resume = None
        if ckpt_path.exists():
            resume = psi.PsiCheckpoint.from_dict(json.loads(ckpt_path.read_text(encoding="utf-8")))
            endpoint.restore_counters(psi.PsiStep, resume.sent, resume.recv_from)
            for line in writer.path.read_text(encoding="utf-8").splitlines():
                rec = json.loads(line)
                if rec.get("kind") == "message":
                    e = rec["body"]["envelope"]
                    if rec["body"]["direction"] == "sent":
                        endpoint.already_sent.add((e["step"], e["receiver"], int(e["sequence"])))
                    elif rec["body"]["direction"] == "received":
                        endpoint.already_received.add((e["step"], e["sender"], int(e["sequence"])))
            writer.event("resumed_psi", sent=dict(resume.sent), recv_from=dict(resume.recv_from))
            _LOG.warning("job %s: resuming PSI from its checkpoint (sent %s)", info.job_id, dict(resume.sent))
        program = role_program(ids, params, rng, map_fn=self._map_fn(len(ids)), checkpoint=True, resume=resume,
                               min_intersection=minimum)
        try:
            psi_result: psi.PsiResult = drive(role, program, endpoint)
        except Exception:
            # a failed role fails the job (a refused count, or the peer's failure), which cannot resume: keep none of its
            # secrets. Only a killed process leaves its checkpoint behind, to resume from.
            ckpt_path.unlink(missing_ok=True)
            raise
        ckpt_path.unlink(missing_ok=True)  # the scalar is no longer needed: do not keep it
        return self._after_psi(info, spec, role, data, keep, psi_result, t0, endpoint, rng)

    def _after_psi(self, info: job_pb2.JobInfo, spec: JobSpec, role: Role, data: LocalDataset, keep: Any,
                   psi_result: psi.PsiResult, t0: float, endpoint: RelayEndpoint, rng: Any) -> dict[str, Any]:
        """Align rows from the PSI result and write ``intersection.csv``; for a train job, then :meth:`_train`."""
        me = self.cfg.name
        outdir = self.cfg.workdir / "jobs" / info.job_id
        psi_seconds = time.monotonic() - t0
        result: dict[str, Any] = {"psi": {"seconds": {me: round(psi_seconds, 3)}, "protocol": spec.psi.resolved_protocol()}}
        if data.duplicates_removed:
            result["psi"]["duplicates_removed"] = {me: data.duplicates_removed}
        aligned: list[str] = []
        if psi_result.size >= 0 and spec.psi.reveal == "cardinality":
            result["psi"]["intersection_size"] = psi_result.size  # the count only; no rows are known
        elif psi_result.size >= 0:
            rows = np.asarray(psi_result.rows, dtype=np.int64)
            if keep is not None:
                rows = keep[rows]  # back to rows of the full file
            aligned = [data.ids[i] for i in rows]
            result["psi"]["intersection_size"] = len(aligned)
            if len(aligned) < self.cfg.policy.min_intersection:
                # the count-first exchange refused this before any row was known; reaching here would be a bug: still write nothing
                raise PermissionDeniedError(
                    f"the intersection has {len(aligned)} enterprises, below this node's minimum of {self.cfg.policy.min_intersection}",
                    public=f"the intersection is below this party's minimum (min_intersection {self.cfg.policy.min_intersection})")
            atomic_write_text(outdir / "intersection.csv", "id\n" + "".join(f"{i}\n" for i in aligned))
        if spec.kind == "psi":
            result["bytes"] = {me: {"sent": endpoint.bytes_sent, "received": endpoint.bytes_received}}
            return result

        if len(aligned) == 0:
            raise FedCreditError("the intersection is empty: nothing to train on")
        t1 = time.monotonic()
        result.update(self._train(info, spec, role, data, rows, aligned, endpoint, rng))
        result["seconds"] = {me: {"psi": round(psi_seconds, 3), "train": round(time.monotonic() - t1, 3)}}
        result["bytes"] = {me: {"sent": endpoint.bytes_sent, "received": endpoint.bytes_received}}
        return result

    def _train(self, info: job_pb2.JobInfo, spec: JobSpec, role: Role, data: LocalDataset, rows: np.ndarray,
               aligned: list[str], endpoint: RelayEndpoint, rng: Any) -> dict[str, Any]:
        """Split the aligned rows, standardize, run this node's LR role, write ``model.json``.

        Returns the result fields this role contributes (the guest: metrics and training sizes)."""
        result: dict[str, Any] = {}
        outdir = self.cfg.workdir / "jobs" / info.job_id
        train_pos, test_pos = split_train_test(aligned, spec.seed, spec.evaluation.test_fraction)
        x = data.features[rows]
        std = Standardizer.fit(x[train_pos], clip=spec.training.clip)
        x_train, x_test = std.transform(x[train_pos]), std.transform(x[test_pos])
        lr_params = spec.lr_params()
        topology, engine = spec.training.topology, spec.training.engine
        pool = self._map_fn(len(train_pos), minimum=2048)
        if role is Role.GUEST:
            y = data.labels[rows]
            program = two_party.guest_program(x_train, y[train_pos], x_test, y[test_pos], lr_params, rng, map_fn=pool)
            model = drive(role, program, endpoint)
            metrics = {"auc": model.metrics.auc, "ks": model.metrics.ks, "n_test": model.metrics.n_test}
            artifact = {"job_id": info.job_id, "role": "guest", **_weights_json(data, model, lr_params),
                        "standardizer": _std_json(data, std), "epochs": model.epochs, "losses": list(model.losses), "metrics": metrics}
            result["metrics"] = {"joint": metrics}
            # the guest learns the epoch losses (the coordinator runs no role)
            keys = {"key_bits": lr_params.key_bits} if lr_params.he_scheme == "paillier" else \
                {"he_scheme": "rlwe (CKKS ciphertexts, coefficient encoding)", "rlwe_degree": lr_params.rlwe_degree}
            result["training"] = {"n_train": int(len(train_pos)), "n_test": int(len(test_pos)), "engine": engine,
                                  "topology": topology, "reveal_weights": spec.training.reveal_weights,
                                  "epochs": model.epochs, "losses": list(model.losses), **keys}
        else:
            program = two_party.host_program(x_train, x_test, lr_params, rng, map_fn=pool)
            model = drive(role, program, endpoint)
            artifact = {"job_id": info.job_id, "role": "host", **_weights_json(data, model, lr_params),
                        "standardizer": _std_json(data, std), "epochs": model.epochs, "losses": list(model.losses)}
        atomic_write_text(outdir / "model.json", json.dumps(artifact, indent=2))
        return result


def _write_private_json(path: Path, obj: Any) -> None:
    """Atomically write JSON readable by this user only (fsync before rename)."""
    atomic_write_text(path, json.dumps(obj))


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _weights_json(data: LocalDataset, model: Any, params: Any) -> dict[str, Any]:
    """The model's weights by feature name, or, when they stay secret-shared, this party's part of them."""
    if model.shares is None:
        out: dict[str, Any] = {"features": {n: float(w) for n, w in zip(data.feature_names, model.weights)}}
        if getattr(model, "intercept", None) is not None:
            out["intercept"] = model.intercept
        return out
    sh = model.shares
    own = dict(zip(data.feature_names, (str(v) for v in sh.own)))
    if len(sh.own) == len(data.feature_names) + 1:
        own["(intercept)"] = str(sh.own[-1])
    return {"features": list(data.feature_names),
            "weight_shares": {"what": "this party's additive shares mod 2^ring_bits at scale 2^frac_bits; "
                                      "neither party's part alone reveals any weight",
                              "ring_bits": sh.ring_bits, "frac_bits": sh.frac_bits,
                              "feature_frac_bits": params.feature_frac_bits,
                              "own": own, "peer": [str(v) for v in sh.peer]}}


def _std_json(data: LocalDataset, std: Standardizer) -> dict[str, Any]:
    return {n: {"mean": float(m), "scale": float(s), "clip": std.clip} for n, m, s in zip(data.feature_names, std.mean, std.scale)}
