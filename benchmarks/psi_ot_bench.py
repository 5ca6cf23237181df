#!/usr/bin/env python
"""Benchmark the OT-extension PSI (KKRT16) next to fedcredit's ECDH-PSI, on the same id sets.

One invocation, each measurement in a forked child (so its peak memory is its
own). At every size N, guest and host hold N ids each, N/2 in common.

* ``ot``: :func:`fedcredit.protocols.psi.ot.ot_guest_program` / ``ot_host_program``
  driven by ``run_local`` in ONE process, no pool (hashing on a 2-process pool
  does not pay for its pickling here). Also reported: the compute time spent
  inside each role's generator, i.e. what each party would spend on its own
  machine -- with two processes the wall time approaches the larger one plus
  the network.
* ``ecdh``: :func:`fedcredit.protocols.psi.guest_program` / ``host_program`` via
  ``run_local``, scalar multiplications on a ``ProcessPoolExecutor(--cores)``.
  Skipped above ``--ecdh-max`` (2^17 by default; it is ~2 min at 2^20).

Bytes are raw payload bytes (the byte strings a payload carries, 32 per ECDH
point, 8 per integer): no protobuf framing, no relay. Reveal mode is BOTH
(aligned rows on both sides, what training needs) for both protocols, unless
``--mode guest``.

This machine has 2 cores: both roles share them, as in the issue's SPU setup.

Usage::

    python benchmarks/psi_ot_bench.py                        # 2^14, 2^17 (~1 min)
    python benchmarks/psi_ot_bench.py --large                # also 2^20 (OT; ECDH if --ecdh-max 20)
    python benchmarks/psi_ot_bench.py --two-process          # also each role in its own process
    python benchmarks/psi_ot_bench.py --profile 17           # cProfile of the OT run at 2^17
    python benchmarks/psi_ot_bench.py --json out.json
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as _dt
import io
import json
import multiprocessing as mp
import os
import platform
import pstats
import random
import resource
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fedcredit.protocols.core import Recv, Role, RoleProgram, Send, run_local  # noqa: E402
from fedcredit.protocols.psi.ot import OtPsiParams, ot_guest_program, ot_host_program, plan  # noqa: E402
from fedcredit.protocols.psi.protocol import PsiParams, Reveal, guest_program, host_program  # noqa: E402
from psi_bench import cpu_line, isolated, machine_info  # noqa: E402  (one forked-child measurement helper for both PSI benchmarks)

SALT = b"fedcredit-psi-ot-bench-salt"
SEED = 20261130


def id_sets(exponent: int, seed: int = SEED) -> tuple[list[str], list[str]]:
    """Guest and host sets of 2^exponent ids each, half in common (18-character ids, shuffled)."""
    n = 1 << exponent
    half = n // 2
    rng = random.Random(seed * 100 + exponent)
    pool = [f"{x:018X}" for x in rng.sample(range(1 << 60), 3 * half)]
    guest = pool[:half] + pool[half : 2 * half]
    host = pool[:half] + pool[2 * half :]
    rng.shuffle(guest)
    rng.shuffle(host)
    return guest, host


def _payload_bytes(payload: Any) -> int:
    total = 0
    for v in vars(payload).values():
        if isinstance(v, (bytes, bytearray)):
            total += len(v)
        elif isinstance(v, int):
            total += 8
        elif isinstance(v, tuple):
            total += sum(len(x) if isinstance(x, bytes) else 8 for x in v)
    return total


def _metered(gen: RoleProgram, tally: dict[str, float]) -> RoleProgram:
    """Count messages and payload bytes a role sends, and the CPU time spent inside it."""
    reply: Any = None
    while True:
        t = time.perf_counter()
        try:
            action = gen.send(reply)
        except StopIteration as stop:
            tally["compute_s"] += time.perf_counter() - t
            return stop.value
        tally["compute_s"] += time.perf_counter() - t
        if isinstance(action, Send):
            tally["messages"] += 1
            tally["bytes"] += _payload_bytes(action.payload)
        reply = yield action


def _run(make: Callable[[Role, dict[str, float]], RoleProgram]) -> tuple[dict[Role, Any], float, dict[Role, dict[str, float]]]:
    tally = {r: {"messages": 0, "bytes": 0, "compute_s": 0.0} for r in (Role.GUEST, Role.HOST)}
    t, c = time.perf_counter(), time.process_time()
    out = run_local({r: _metered(make(r, tally[r]), tally[r]) for r in (Role.GUEST, Role.HOST)})
    tally[Role.GUEST]["process_cpu_s"] = time.process_time() - c  # both roles: one process, no pool
    return out, time.perf_counter() - t, tally


#: Pools a role process opened (ECDH); shut down before it exits, or multiprocessing's exit hook waits forever.
_POOLS: list[ProcessPoolExecutor] = []


def _role_process(role: Role, make: Callable[[], RoleProgram], conn: Any, done: Any) -> None:
    """Drive one role program in its own process; messages travel over ``conn`` (pickled: bench only)."""
    import queue
    import threading

    inbox: dict[str, "queue.Queue[Any]"] = {}
    lock = threading.Lock()

    def box(wire: str) -> "queue.Queue[Any]":
        with lock:
            return inbox.setdefault(wire, queue.Queue())

    def reader() -> None:
        while True:
            try:
                wire, payload = conn.recv()
            except EOFError:
                return
            box(wire).put(payload)

    tally = {"messages": 0, "bytes": 0, "compute_s": 0.0}
    try:
        gen = _metered(make(), tally)  # before the reader thread: make() may fork a pool
        threading.Thread(target=reader, daemon=True).start()
        reply: Any = None
        while True:
            try:
                action = gen.send(reply)
            except StopIteration as stop:
                result = stop.value
                break
            reply = None
            if isinstance(action, Send):
                conn.send((action.step.wire, action.payload))
            elif isinstance(action, Recv):
                reply = box(action.step.wire).get()
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        done.send(("ok", (result, tally, peak / 1024)))
    except BaseException:
        done.send(("error", traceback.format_exc()))
    finally:
        for ex in _POOLS:
            ex.shutdown(wait=True, cancel_futures=True)


def _run_two_process(makers: dict[Role, Callable[[], RoleProgram]]) -> tuple[dict[Role, Any], float, dict[Role, dict[str, float]], float]:
    """Each role in its own forked process, connected by a pipe; returns results, wall time, tallies, max peak RSS."""
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe(duplex=True)
    ends = {Role.GUEST: a, Role.HOST: b}
    procs, dones = {}, {}
    t = time.perf_counter()
    for role, make in makers.items():
        recv_end, send_end = ctx.Pipe(duplex=False)
        dones[role] = recv_end
        procs[role] = ctx.Process(target=_role_process, args=(role, make, ends[role], send_end))
        procs[role].start()
    out, tallies, peaks = {}, {}, []
    for role in makers:
        status, value = dones[role].recv()
        if status != "ok":
            raise RuntimeError(f"{role} failed:\n{value}")
        out[role], tallies[role], peak = value
        peaks.append(peak)
    seconds = time.perf_counter() - t
    for p in procs.values():
        p.join()
    return out, seconds, tallies, max(peaks)


def _summary(exponent: int, out: dict[Role, Any], seconds: float, tally: dict[Role, dict[str, float]],
             guest_ids: list[str], host_ids: list[str], mode: Reveal) -> dict[str, Any]:
    g, h = out[Role.GUEST], out[Role.HOST]
    expected = set(guest_ids) & set(host_ids)
    correct = {guest_ids[i] for i in g.rows} == expected and len(g.rows) == len(expected)
    if mode is Reveal.BOTH:
        correct &= [host_ids[j] for j in h.rows] == [guest_ids[i] for i in g.rows]
    return {
        "exponent": exponent, "n": 1 << exponent, "seconds": seconds, "correct": correct,
        "intersection": g.size,
        "bytes_guest_to_host": tally[Role.GUEST]["bytes"], "bytes_host_to_guest": tally[Role.HOST]["bytes"],
        "bytes_total": tally[Role.GUEST]["bytes"] + tally[Role.HOST]["bytes"],
        "messages": tally[Role.GUEST]["messages"] + tally[Role.HOST]["messages"],
        "guest_compute_s": tally[Role.GUEST]["compute_s"], "host_compute_s": tally[Role.HOST]["compute_s"],
        "cpu_s": tally[Role.GUEST].get("process_cpu_s"),
    }


def measure_ot(exponent: int, mode: str, code_width: int, profile: bool = False, two_process: bool = False) -> dict[str, Any]:
    guest_ids, host_ids = id_sets(exponent)
    params = OtPsiParams(salt=SALT, mode=Reveal(mode), code_width=code_width)
    progs = {Role.GUEST: ot_guest_program, Role.HOST: ot_host_program}

    def make(r: Role) -> RoleProgram:
        return progs[r](guest_ids if r is Role.GUEST else host_ids, params, random.Random(SEED + (r is Role.HOST)))

    prof = cProfile.Profile() if profile and not two_process else None
    if prof:
        prof.enable()
    peak = None
    if two_process:
        out, seconds, tally, peak = _run_two_process({r: (lambda r=r: make(r)) for r in (Role.GUEST, Role.HOST)})
    else:
        out, seconds, tally = _run(lambda r, _t: make(r))
    result = _summary(exponent, out, seconds, tally, guest_ids, host_ids, params.mode)
    result["setting"] = "two processes" if two_process else "run_local"
    if peak is not None:
        result["peak_rss_per_role_mb"] = peak
    p = plan(params, len(guest_ids), len(host_ids))
    result.update(protocol="ot", bins=p.bins, value_bytes=p.value_bytes, code_width=code_width,
                  plan_bytes=p.bytes_guest_to_host + p.bytes_host_to_guest)
    if prof:
        prof.disable()
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(20)
        result["profile"] = s.getvalue()
    return result


def measure_ecdh(exponent: int, mode: str, cores: int, two_process: bool = False) -> dict[str, Any]:
    guest_ids, host_ids = id_sets(exponent)
    params = PsiParams(salt=SALT, mode=Reveal(mode))
    progs = {Role.GUEST: guest_program, Role.HOST: host_program}
    peak = None
    if two_process:
        # Each role in its own process with a pool of cores // 2 workers (one core per party here).
        def make(r: Role) -> RoleProgram:
            ex = ProcessPoolExecutor(max(1, cores // 2))
            list(ex.map(abs, range(max(1, cores // 2))))  # fork the workers now, before any thread starts
            _POOLS.append(ex)
            return progs[r](guest_ids if r is Role.GUEST else host_ids, params,
                            random.Random(SEED + (r is Role.HOST)), map_fn=ex.map)

        out, seconds, tally, peak = _run_two_process({r: (lambda r=r: make(r)) for r in (Role.GUEST, Role.HOST)})
    else:
        with ProcessPoolExecutor(cores) as ex:
            list(ex.map(abs, range(cores)))
            out, seconds, tally = _run(lambda r, _t: progs[r](guest_ids if r is Role.GUEST else host_ids, params,
                                                              random.Random(SEED + (r is Role.HOST)), map_fn=ex.map))
    result = _summary(exponent, out, seconds, tally, guest_ids, host_ids, params.mode)
    result["setting"] = "two processes" if two_process else "run_local"
    if peak is not None:
        result["peak_rss_per_role_mb"] = peak
    result.update(protocol="ecdh", pool_processes=max(1, cores // 2) if two_process else cores)
    return result


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="14,17", help="comma-separated exponents (default 14,17)")
    ap.add_argument("--large", action="store_true", help="also run 2^20")
    ap.add_argument("--ecdh-max", type=int, default=17, help="largest exponent for the ECDH baseline")
    ap.add_argument("--mode", default="both", choices=["both", "guest"])
    ap.add_argument("--code-width", type=int, default=448)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="ECDH pool processes")
    ap.add_argument("--profile", type=int, default=None, metavar="EXP", help="print a cProfile of the OT run at 2^EXP")
    ap.add_argument("--two-process", action="store_true",
                    help="also run each protocol with its two roles in two processes over a pipe (one core each)")
    ap.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    args = ap.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")} | ({20} if args.large else set()))

    info = machine_info(os.cpu_count() or 1)
    print(cpu_line(info) + f"; Python {platform.python_version()}")
    print("in-process (run_local), both roles in one process; bytes = raw payload bytes\n")
    rows: list[dict[str, Any]] = []

    def log(r: dict[str, Any]) -> None:
        print(f"  measured 2^{r['exponent']} {r['protocol']} ({r['setting']}): {r['seconds']:.2f} s", flush=True)

    for e in sizes:
        r = isolated(measure_ot, e, args.mode, args.code_width, args.profile == e)
        rows.append(r)
        log(r)
        if "profile" in r:
            print(r["profile"])
        if args.two_process:
            rows.append(isolated(measure_ot, e, args.mode, args.code_width, False, True))
            log(rows[-1])
        if e <= args.ecdh_max:
            rows.append(isolated(measure_ecdh, e, args.mode, args.cores))
            log(rows[-1])
            if args.two_process:
                rows.append(isolated(measure_ecdh, e, args.mode, args.cores, True))
                log(rows[-1])

    print()
    print(cpu_line(info))
    head = (f"{'N':>7} {'protocol':>8} {'setting':>13} {'seconds':>8} {'CPU s':>7} {'guest s':>8} {'host s':>8} {'MB g→h':>8} {'MB h→g':>8} "
            f"{'MB total':>9} {'peak MB':>8} {'ok':>3}")
    print(head)
    print("-" * len(head))
    for r in rows:
        peak = r.get("peak_rss_per_role_mb") or max(r["peak_rss_mb"], r["peak_rss_workers_mb"])
        cpu_s = f"{r['cpu_s']:7.2f}" if r.get("cpu_s") is not None and r["setting"] == "run_local" and r["protocol"] == "ot" else f"{'-':>7}"
        print(f"{'2^' + str(r['exponent']):>7} {r['protocol']:>8} {r['setting']:>13} {r['seconds']:8.2f} {cpu_s} {r['guest_compute_s']:8.2f} "
              f"{r['host_compute_s']:8.2f} {_mb(r['bytes_guest_to_host']):>8} {_mb(r['bytes_host_to_guest']):>8} "
              f"{_mb(r['bytes_total']):>9} {peak:8.0f} {'yes' if r['correct'] else 'NO':>3}")
    for e in sizes:
        for setting in ("run_local", "two processes"):
            ot = next((r for r in rows if r["exponent"] == e and r["protocol"] == "ot" and r["setting"] == setting), None)
            ec = next((r for r in rows if r["exponent"] == e and r["protocol"] == "ecdh" and r["setting"] == setting), None)
            if ot and ec:
                print(f"2^{e} ({setting}): ECDH time / OT time = {ec['seconds'] / ot['seconds']:.1f}, "
                      f"OT bytes / ECDH bytes = {ot['bytes_total'] / ec['bytes_total']:.1f}")
    print("\nCPU s: process CPU time of the in-process OT run (both roles; robust to other load on the machine)")
    print("guest s / host s: time inside each role's program (ECDH: includes waiting on its pool)")
    print("peak MB: run_local = the one process (both roles) or its largest pool worker; "
          "two processes = the larger role process")

    if args.json:
        doc = {"benchmark": "psi_ot", "date": _dt.datetime.now(_dt.timezone.utc).isoformat(),
               "machine": info | {"python": platform.python_version()},
               "args": vars(args) | {"json": str(args.json)},
               "results": [{k: v for k, v in r.items() if k != "profile"} for r in rows]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0 if all(r["correct"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
