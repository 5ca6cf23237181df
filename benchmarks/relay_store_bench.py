"""The relay mailbox's write-through to SQLite: ms per MB relayed, and how long the mailbox lock is held.

Puts and takes messages of a CKKS job's sizes (1-18 MB) through :class:`fedcredit.runtime.coordinator.relay.Mailbox`
with a :class:`~fedcredit.runtime.coordinator.store.Store` on a real file, as the coordinator does, and prints the
cost of ``put`` + ``take`` per MB, with and without the store, and the longest time one ``put`` held the lock
(measured from another thread that waits for it).

    .venv/bin/python benchmarks/relay_store_bench.py [--mb 200] [--dir /tmp]

Not a test: the numbers depend on the disk and the machine's load.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from fedcredit.proto.v1 import envelope_pb2
from fedcredit.runtime.config import RelayLimits
from fedcredit.runtime.coordinator.relay import Mailbox
from fedcredit.runtime.coordinator.store import Store

SIZES = (18 << 20, 6 << 20, 1 << 20, 3 << 20)  # a CKKS batch's residual, shares, gradient, conversion (roughly)


def run(total_mb: int, folder: Path | None, durable: bool) -> tuple[float, float, float]:
    """(ms per MB, total seconds, longest lock wait in ms) for ``total_mb`` MB put and taken."""
    with tempfile.TemporaryDirectory(dir=folder) as d:
        store = Store(Path(d) / "c.sqlite") if durable else None
        box = Mailbox(limits=RelayLimits(job_max_bytes=1 << 40, job_max_pending_bytes=1 << 34), store=store)
        payloads = {s: bytes(range(256)) * (s // 256) for s in SIZES}
        waits: list[float] = []
        stop = threading.Event()

        def prober() -> None:  # how long another handler waits for the mailbox lock
            while not stop.is_set():
                t = time.perf_counter()
                box.pending_bytes()
                waits.append(time.perf_counter() - t)
                time.sleep(0.002)

        th = threading.Thread(target=prober, daemon=True)
        th.start()
        done, seq, t0 = 0, 0, time.perf_counter()
        while done < total_mb << 20:
            size = SIZES[seq % len(SIZES)]
            env = envelope_pb2.Envelope(job_id="j", receiver="bank", sender="platform", step="lr2.residual", sequence=seq,
                                        payload_size=size)
            box.put(env, payloads[size])
            box.take("j", "bank", "platform", "lr2.residual", seq, wait_s=1)
            done += size
            seq += 1
        seconds = time.perf_counter() - t0
        stop.set()
        th.join()
        if store is not None:
            store.close()
        return seconds * 1000 / (done / 2**20), seconds, max(waits) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    for durable in (False, True):
        ms, seconds, lock_ms = run(args.mb, args.dir, durable)
        print(f"{'SQLite write-through' if durable else 'memory only':22s} {ms:6.2f} ms/MB  ({args.mb} MB in {seconds:.1f} s; "
              f"longest wait for the mailbox lock {lock_ms:.0f} ms)")


if __name__ == "__main__":
    main()
