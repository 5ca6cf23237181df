#!/usr/bin/env python
"""SecretFlow SPU PSI as a baseline: two party processes over loopback, bytes counted on the wire.

This script needs only the standard library and ``spu`` (``pip install spu==0.9.5``). It does
NOT import fedcredit: spu 0.9.5 pins ``numpy<2`` and ``jax<=0.4.34``, so it lives in its own
virtual environment (``make spu-venv`` creates ``.venv-spu``) and ``benchmarks/psi_bench.py``
calls it as a subprocess with that interpreter.

What runs, for one protocol (``ECDH`` on Curve25519, ``KKRT`` or ``RR22``):

* two processes, one per party (rank 0 = the left file = the receiver), each with its own
  ``spu.libspu.link`` brpc context over 127.0.0.1, each calling ``spu.psi.psi_execute`` on a
  CSV file and writing the intersection to a CSV file (``broadcast_result=True`` by default:
  both parties learn the intersection, as fedcredit's ``reveal: both``);
* between them, a counting TCP relay in this (parent) process, one per direction, so the bytes
  on the wire are measured, not estimated. The relay forwards with 1 MiB buffers;
  ``--direct`` skips it (no byte counts) to show what it costs.

Reported (JSON on stdout, or ``--json FILE``): ``seconds`` = the slower party's
``psi_execute`` (CSV read, protocol, CSV write; link set-up excluded), ``seconds_link`` = link
set-up, ``bytes`` per direction, ``peak_rss_mb`` per party (``ru_maxrss``), and the
receiver's ``intersection_count``.

Usage::

    .venv-spu/bin/python benchmarks/spu_psi.py --protocol KKRT --left a.csv --right b.csv --id-column id
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any


def reserve_port() -> socket.socket:
    """A socket bound to a free loopback port, not listening: the port stays ours (connections
    to it are refused) until the socket is closed."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


class CountingRelay:
    """Accept on a local port, forward each connection to ``target_port``, count the bytes.

    ``forward`` counts bytes towards the target (the protocol's payload to that party's
    server); ``back`` counts the replies (brpc acknowledgements)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = int(self.server.getsockname()[1])
        self.forward = 0
        self.back = 0
        self._lock = threading.Lock()
        self._pumps: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:  # the peer's server is not listening yet: brpc retries
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for src, dst, way in ((client, upstream, "forward"), (upstream, client, "back")):
                t = threading.Thread(target=self._pump, args=(src, dst, way), daemon=True)
                with self._lock:  # registered and started at once: close() sees every pump that may carry bytes,
                    self._pumps.append(t)  # and never one it cannot join yet
                    t.start()

    def _pump(self, src: socket.socket, dst: socket.socket, way: str) -> None:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        count = 0
        try:
            while True:
                k = src.recv_into(buf)
                if not k:
                    break
                dst.sendall(view[:k])
                count += k
        except OSError:
            pass
        finally:
            with self._lock:
                setattr(self, way, getattr(self, way) + count)
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self, wait: float = 5.0) -> None:
        self.server.close()
        deadline = time.monotonic() + wait
        with self._lock:
            pumps = list(self._pumps)
        for t in pumps:
            t.join(max(0.0, deadline - time.monotonic()))


def stop_parties(procs: list[Any]) -> None:
    """Join every party process; kill one that has not ended 10 s later."""
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()


def checked_results(results: list[dict[str, Any]], relays: list[Any], protocol: str) -> dict[int, dict[str, Any]]:
    """Close the byte-counting relays and return each party's result by rank; raise if a party reported a failure."""
    for relay in relays:
        relay.close()
    failed = [r for r in results if not r["ok"]]
    if failed:
        raise RuntimeError(f"SPU {protocol} failed: {failed}")
    return {r["rank"]: r for r in results}


def open_link(link: Any, desc_id: str, addresses: list[str], rank: int, timeout_s: int) -> Any:
    """SPU's brpc link for party ``rank`` of ``addresses`` (``party0``, ``party1``, ...), connected (after a barrier)."""
    desc = link.Desc()
    desc.id = desc_id
    desc.recv_timeout_ms = timeout_s * 1000
    desc.http_timeout_ms = timeout_s * 1000
    desc.connect_retry_times = 120
    desc.connect_retry_interval_ms = 500
    for r, address in enumerate(addresses):
        desc.add_party(f"party{r}", address)
    lctx = link.create_brpc(desc, rank)
    lctx.barrier()
    return lctx


def party(rank: int, addresses: list[str], path: str, out: str, id_column: str, protocol: str, broadcast: bool,
          timeout_s: int, queue: Any) -> None:
    try:
        import spu.libspu.link as link
        import spu.psi as psi

        t0 = time.perf_counter()
        lctx = open_link(link, "fedcredit-spu-bench", addresses, rank, timeout_s)
        t1 = time.perf_counter()
        protocol_conf = psi.PsiProtocolConfig(
            protocol=getattr(psi.PsiProtocol, f"PROTOCOL_{protocol}"),
            receiver_rank=0,
            broadcast_result=broadcast,
            ecdh_params=psi.EcdhParams(curve=psi.EllipticCurveType.CURVE_25519),
        )
        config = psi.PsiExecuteConfig(
            protocol_conf=protocol_conf,
            input_params=psi.InputParams(path=path, selected_keys=[id_column], keys_unique=True),
            output_params=psi.OutputParams(path=out, disable_alignment=True),
        )
        report = psi.psi_execute(config, lctx)
        t2 = time.perf_counter()
        lctx.stop_link()
        queue.put({"rank": rank, "ok": True, "seconds_link": t1 - t0, "seconds": t2 - t1,
                   "original_count": report.original_count, "intersection_count": report.intersection_count,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    except BaseException as exc:  # report to the parent rather than hang it
        queue.put({"rank": rank, "ok": False, "error": f"{type(exc).__name__}: {exc}"})


def run(protocol: str, left: Path, right: Path, id_column: str, workdir: Path, *, broadcast: bool = True,
        direct: bool = False, timeout_s: int = 1800) -> dict[str, Any]:
    import spu

    workdir.mkdir(parents=True, exist_ok=True)
    reserved = [reserve_port(), reserve_port()]  # held while the relays pick their own ports
    ports = [int(r.getsockname()[1]) for r in reserved]
    relays: list[CountingRelay] = []
    if direct:
        views = [[f"127.0.0.1:{p}" for p in ports]] * 2
    else:
        # relays[r] forwards to party r's server; each party reaches its peer through the relay
        relays = [CountingRelay(ports[0]), CountingRelay(ports[1])]
        views = [[f"127.0.0.1:{ports[0]}", f"127.0.0.1:{relays[1].port}"],
                 [f"127.0.0.1:{relays[0].port}", f"127.0.0.1:{ports[1]}"]]
    for r in reserved:  # released just before the parties bind them
        r.close()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    files = [left.resolve(), right.resolve()]
    t = time.perf_counter()
    procs = [ctx.Process(target=party, args=(r, views[r], str(files[r]), str((workdir / f"spu-out-{r}.csv").resolve()),
                                             id_column, protocol, broadcast, timeout_s, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = []
    try:
        for _ in procs:
            results.append(queue.get(timeout=timeout_s))
    finally:
        stop_parties(procs)
    wall = time.perf_counter() - t
    by_rank = checked_results(results, relays, protocol)
    out: dict[str, Any] = {
        "spu": getattr(spu, "__version__", "unknown"), "protocol": protocol, "broadcast_result": broadcast,
        "seconds": max(r["seconds"] for r in results), "seconds_link": max(r["seconds_link"] for r in results),
        "seconds_wall": wall, "intersection_size": by_rank[0]["intersection_count"],
        "original_count": [by_rank[0]["original_count"], by_rank[1]["original_count"]],
        "peak_rss_mb_per_party": {"party0": by_rank[0]["peak_rss_mb"], "party1": by_rank[1]["peak_rss_mb"]},
        "relay": not direct,
    }
    if relays:
        out["bytes"] = {"party0_to_party1": relays[1].forward, "party1_to_party0": relays[0].forward,
                        "acks": relays[0].back + relays[1].back}
        out["bytes_total"] = relays[0].forward + relays[1].forward + relays[0].back + relays[1].back
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", required=True, choices=["ECDH", "KKRT", "RR22"])
    parser.add_argument("--left", type=Path, required=True, help="party 0 (receiver) CSV")
    parser.add_argument("--right", type=Path, required=True, help="party 1 CSV")
    parser.add_argument("--id-column", default="id")
    parser.add_argument("--workdir", type=Path, default=Path("spu-bench-out"))
    parser.add_argument("--receiver-only", action="store_true", help="broadcast_result=False: only party 0 learns it")
    parser.add_argument("--direct", action="store_true", help="no counting relay (no byte counts)")
    parser.add_argument("--json", type=Path, default=None, help="write the result here (default: stdout)")
    args = parser.parse_args(argv)
    result = run(args.protocol, args.left, args.right, args.id_column, args.workdir,
                 broadcast=not args.receiver_only, direct=args.direct)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GLOG_minloglevel", "2")
    sys.exit(main())
