#!/usr/bin/env python
"""How #16 chose its distributed engine: per-task overhead and ECDH-kernel throughput, one engine per run.

    python benchmarks/executor_choice.py serial|local|dask|ray

Each run prints one JSON line: the engine's startup, its overhead per task (1000 no-op tasks submitted and
read back in order) and the rate of ECDH-PSI's kernel (hash an id to the curve and multiply it by a scalar)
over 2^16 ids in tasks of 1024, with 2 workers. ``dask`` needs the ``cluster`` extra; ``ray`` needs
``pip install ray`` (not a dependency of fedcredit: run it in a venv of its own with fedcredit installed).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fedcredit.protocols.psi.ecdh import hash_blind_worker, random_scalar  # noqa: E402

WORKERS = 2


def noop(x: Any) -> Any:
    return x


def tasks(n: int, chunk: int = 1024) -> list[tuple[bytes, bytes, tuple[bytes, ...]]]:
    scalar = random_scalar(random.Random(1))
    ids = [f"id{i:09d}".encode() for i in range(n)]
    return [(b"s" * 32, scalar, tuple(ids[lo:lo + chunk])) for lo in range(0, n, chunk)]


def run(name: str, mapper: Callable[..., Any], startup: float) -> None:
    out: dict[str, Any] = {"engine": name, "workers": WORKERS, "startup_s": round(startup, 2)}
    list(mapper(noop, range(50)))  # warm
    t = time.perf_counter()
    list(mapper(noop, range(1000)))
    out["overhead_ms_per_task"] = round((time.perf_counter() - t), 3)  # 1000 tasks: seconds = ms per task
    t = time.perf_counter()
    list(mapper(hash_blind_worker, tasks(1 << 16)))
    out["hash_blind_per_s"] = round((1 << 16) / (time.perf_counter() - t))
    print(json.dumps(out), flush=True)


def main(which: str) -> None:
    t0 = time.perf_counter()
    if which == "serial":
        run("serial", map, 0.0)
    elif which == "local":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ex = ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn"))
        list(ex.map(noop, range(WORKERS)))
        run("local", ex.map, time.perf_counter() - t0)
        ex.shutdown()
    elif which == "dask":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=":0")
        client = Client(cluster)

        def in_order(fn: Callable[..., Any], it: Any) -> Any:
            futures = client.map(fn, list(it), pure=False)
            return (f.result() for f in futures)

        run("dask", in_order, time.perf_counter() - t0)
        client.close()
        cluster.close()
    elif which == "ray":
        import ray

        ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
        remote: dict[Any, Any] = {}

        def gathered(fn: Callable[..., Any], it: Any) -> Any:
            r = remote.setdefault(fn, ray.remote(fn))
            return iter(ray.get([r.remote(x) for x in it]))

        run("ray", gathered, time.perf_counter() - t0)
        ray.shutdown()
    else:
        raise SystemExit(f"unknown engine {which!r}: serial, local, dask or ray")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "serial")
