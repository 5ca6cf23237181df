#!/usr/bin/env python
"""Benchmark online and batch scoring (#14) over real processes with mTLS.

One invocation: a coordinator and two party nodes (``Cluster``, as the demo runs them) on the default_credit
example (30,000 enterprises at each side), a short training job (``--key-bits``, ``--epochs``: the model's
quality does not matter here), then

(a) a batch ``score`` job, private mode, over every applicant of the bank: wall time and applicants/s
    (the platform's table is built and shipped once, in this job);
(b) an online score session (``scoring.online``): the bank's node serves ScoreApplicant; a load generator in
    this process calls it with one applicant per call from ``c`` threads at a time, for ``c`` in
    ``--concurrency`` (default 1, 8, 32), ``--requests`` calls each: p50 / p99 latency and calls/s;
(c) the same session, batched: calls of ``--batch`` applicants at concurrency 8: applicants/s.

Goals (issue #14): p99 < 50 ms for one applicant on loopback; >= 500 applicants/s batched. Every online call
goes bank node -> coordinator relay -> platform node and back (two signed, sealed relay messages), and calls
waiting at the same time share one round trip.

    .venv/bin/python benchmarks/scoring_bench.py --json scoring_bench.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.cli.demo import Cluster
from fedcredit.runtime.cli.scoring import ScoringClient, dev_scoring_pki
from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
PURPOSE = "financing.credit_risk_model"


def _spec(kind: str, **fields: Any) -> JobSpec:
    return parse_config(JobSpec, {"kind": kind, "name": f"bench-{kind}", "purpose": PURPOSE,
                                  "guest": {"party": "bank", "dataset": "credit"}, "host": {"party": "platform", "dataset": "credit"},
                                  **fields}, source="bench")


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def _load(client: ScoringClient, ids: list[str], concurrency: int, requests: int, batch: int) -> dict[str, Any]:
    lat: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        while True:
            with lock:
                k = next(counter, None)
            if k is None:
                return
            req = [ids[(k * batch + j) % len(ids)] for j in range(batch)]
            t = time.perf_counter()
            resp = client.score(req)
            dt_ = time.perf_counter() - t
            assert len(resp.scores) == batch
            with lock:
                lat.append(dt_)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"concurrency": concurrency, "applicants_per_call": batch, "calls": len(lat),
            "p50_ms": round(1000 * statistics.median(lat), 2), "p99_ms": round(1000 * _pct(lat, 0.99), 2),
            "max_ms": round(1000 * max(lat), 2), "calls_per_s": round(len(lat) / wall, 1),
            "applicants_per_s": round(len(lat) * batch / wall, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--guest", type=Path, default=EXAMPLES / "default_credit_hetero_guest.csv")
    p.add_argument("--host", type=Path, default=EXAMPLES / "default_credit_hetero_host.csv")
    p.add_argument("--key-bits", type=int, default=1024)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--requests", type=int, default=400, help="calls per concurrency level")
    p.add_argument("--batch", type=int, default=256, help="applicants per call in the batched run")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    work = (args.workdir or Path(tempfile.mkdtemp(prefix="fedcredit-scoring-bench-"))).resolve()
    server_tls, client_tls = dev_scoring_pki(work / "bank-internal-pki")
    port_file = work / "bank.scoring.port"
    policy = {"auto_approve": True, "min_intersection": 10, "allowed_purposes": [PURPOSE], "min_key_bits": 1024}
    cluster = Cluster(work, {"bank": {"credit": DatasetConfig(path=args.guest.resolve(), id_column="id", label_column="y")},
                             "platform": {"credit": DatasetConfig(path=args.host.resolve(), id_column="id")}},
                      policies={"bank": policy, "platform": policy},
                      party_settings={"bank": {"scoring_service": {"port_file": str(port_file),
                                                                   "tls": json.loads(server_tls.model_dump_json())}}})
    ids = [str(i) for i in pd.read_csv(args.guest, dtype=str, usecols=["id"])["id"]]
    out: dict[str, Any] = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                           "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
                           "applicants": len(ids)}
    with cluster, OperatorClient(cluster.client_config()) as ops:
        t = time.monotonic()
        train = ops.wait(ops.submit(_spec("train", training={"key_bits": args.key_bits, "max_epochs": args.epochs})).job_id,
                         timeout_s=3600)
        assert train.state == "succeeded", train.error
        out["train_seconds"] = round(time.monotonic() - t, 1)
        model = train.job_id

        t = time.monotonic()
        batch_job = ops.wait(ops.submit(_spec("score", scoring={"model": model})).job_id, timeout_s=600)
        assert batch_job.state == "succeeded", batch_job.error
        wall = time.monotonic() - t
        s = cluster.party_result("bank", batch_job.job_id)["scoring"]
        out["batch_job"] = {"applicants": s["queries"], "found": s["rows_scored"], "job_wall_s": round(wall, 2),
                            "applicants_per_s": round(s["queries"] / wall, 1), "table_transferred": s["table_transferred"]}
        print(json.dumps(out["batch_job"]), flush=True)

        out["online_job"] = ops.submit(_spec("score", scoring={"model": model, "online": True, "session_seconds": 600})).job_id
        deadline = time.monotonic() + 120
        while not port_file.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the bank's ScoreApplicant did not start")
            time.sleep(0.1)
        client = ScoringClient(f"127.0.0.1:{port_file.read_text()}", client_tls)
        client.score(ids[:1])  # warm-up: channel, TLS handshake
        out["online"] = []
        for c in args.concurrency:
            r = _load(client, ids, c, args.requests, 1)
            out["online"].append(r)
            print(json.dumps(r), flush=True)
        r = _load(client, ids, 8, max(20, args.requests // 10), args.batch)
        out["online_batched"] = r
        print(json.dumps(r), flush=True)
        client.close()
        cluster.stop()  # the bank's node stops: its session ends, the platform's side finishes
    one = next((r for r in out["online"] if r["concurrency"] == 1), None)
    out["goals"] = {"p99_ms_one_applicant_c1": one["p99_ms"] if one else None,
                    "p99_under_50ms": bool(one and one["p99_ms"] < 50),
                    "batched_applicants_per_s": out["online_batched"]["applicants_per_s"],
                    "batched_at_least_500_per_s": out["online_batched"]["applicants_per_s"] >= 500}
    print(json.dumps(out["goals"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
