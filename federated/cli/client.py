"""Operator client: submit jobs, read their status, wait for them."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import grpc

from fedcredit.proto.v1 import job_pb2, job_pb2_grpc

from ..security.certs import load_tls
from ..config import ClientConfig, JobSpec
from ..errors import DeadlineError, from_rpc_error
from ..coordinator.store import FINAL_STATES
from ..security.transport import DEFAULT_DEADLINE_S, create_channel

__all__ = ["OperatorClient", "job_dict"]


def job_dict(info: job_pb2.JobInfo) -> dict[str, Any]:
    return {
        "job_id": info.job_id,
        "kind": info.kind,
        "state": info.state,
        "stage": info.stage,
        "roles": {r.role: {"node": r.node, "dataset": r.dataset} for r in info.roles},
        "spec_sha256": info.spec_sha256,
        "progress": json.loads(info.progress_json or "{}"),
        "result": json.loads(info.result_json or "{}"),
        "error": info.error,
        "created_unix_ms": info.created_unix_ms,
        "updated_unix_ms": info.updated_unix_ms,
    }


class OperatorClient:
    def __init__(self, cfg: ClientConfig) -> None:
        self.cfg = cfg
        tls = load_tls(cfg.tls.ca, cfg.tls.cert, cfg.tls.key)
        self.channel = create_channel(cfg.coordinator, tls, server_name=cfg.coordinator_name)
        self.stub = job_pb2_grpc.JobServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "OperatorClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Any, req: Any) -> Any:
        try:
            return fn(req, timeout=DEFAULT_DEADLINE_S)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, target=self.cfg.coordinator) from None

    def submit(self, spec: JobSpec) -> job_pb2.JobInfo:
        return self._call(self.stub.SubmitJob, job_pb2.SubmitJobRequest(spec_json=spec.canonical_json())).job

    def get(self, job_id: str) -> job_pb2.JobInfo:
        return self._call(self.stub.GetJob, job_pb2.GetJobRequest(job_id=job_id)).job

    def list(self, limit: int = 50) -> list[job_pb2.JobInfo]:
        return list(self._call(self.stub.ListJobs, job_pb2.ListJobsRequest(limit=limit)).jobs)

    def cancel(self, job_id: str, reason: str = "") -> job_pb2.JobInfo:
        return self._call(self.stub.CancelJob, job_pb2.CancelJobRequest(job_id=job_id, reason=reason)).job

    def wait(self, job_id: str, *, timeout_s: float = 3600.0, interval_s: float = 0.5,
             on_update: Callable[[job_pb2.JobInfo], None] | None = None) -> job_pb2.JobInfo:
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.get(job_id)
            if on_update:
                on_update(info)
            if info.state in FINAL_STATES:
                return info
            if time.monotonic() > deadline:
                raise DeadlineError(f"job {job_id} still {info.state} after {timeout_s:.0f}s")
            time.sleep(interval_s)
