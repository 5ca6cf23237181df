"""The PSI benchmark's own machinery: the SPU harness's byte-counting relay and the goal check.

Timings are never asserted here (they live in the benchmarks); what is asserted is that the
relay forwards every byte unchanged and counts it exactly, and that the goals of the OT mode
are judged from the right columns.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


spu_psi = _load("spu_psi")
psi_bench = _load("psi_bench")


def test_counting_relay_forwards_and_counts_every_byte() -> None:
    payload = os.urandom(3 * (1 << 20) + 12345)  # > the relay's 1 MiB buffer
    reply = b"ack:" + os.urandom(100)
    got = bytearray()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def sink() -> None:
        conn, _ = server.accept()
        with conn:
            while True:
                chunk = conn.recv(1 << 16)
                if not chunk:
                    break
                got.extend(chunk)
            conn.sendall(reply)

    t = threading.Thread(target=sink)
    t.start()
    relay = spu_psi.CountingRelay(server.getsockname()[1])
    with socket.create_connection(("127.0.0.1", relay.port)) as c:
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        back = bytearray()
        while chunk := c.recv(1 << 16):
            back.extend(chunk)
    t.join(10)
    relay.close()
    server.close()
    assert bytes(got) == payload
    assert bytes(back) == reply
    assert relay.forward == len(payload)
    assert relay.back == len(reply)


def test_counting_relay_survives_a_peer_that_is_not_listening_yet() -> None:
    server = spu_psi.reserve_port()  # bound, not listening: connections to it are refused
    relay = spu_psi.CountingRelay(server.getsockname()[1])
    with socket.create_connection(("127.0.0.1", relay.port)) as c:
        c.settimeout(5)
        assert c.recv(1) == b""  # refused upstream: the relay closes this connection...
    server.listen(1)
    with socket.create_connection(("127.0.0.1", relay.port)) as c:  # ...and keeps accepting
        c.sendall(b"hello")
        conn, _ = server.accept()
        with conn:
            assert conn.recv(5) == b"hello"
    relay.close()
    server.close()
    assert relay.forward == 5


def _row(e: int, ot_s: float, ot_mb: float, spu_ecdh: float | None, spu_kkrt: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {"exponent": e,
                           "fedcredit_ot_real": {"seconds": ot_s, "bytes_total": 1, "peak_rss_mb_per_party": {"bank": ot_mb, "platform": 10.0}}}
    spu = {}
    for proto, sec in (("ECDH", spu_ecdh), ("KKRT", spu_kkrt)):
        if sec is not None:
            spu[proto] = {"seconds": sec, "bytes_total": 1, "peak_rss_mb_per_party": {"party0": 1.0, "party1": 1.0}}
    if spu:
        row["spu"] = spu
    return row


@pytest.mark.parametrize(
    ("ot_s", "ot_mb", "ecdh", "kkrt", "expect"),
    [
        (9.0, 500.0, 20.0, 10.0, {"faster_than_spu_ecdh": True, "within_1_5x_spu_kkrt": True, "memory_below_2gb": True}),
        (16.0, 500.0, 20.0, 10.0, {"faster_than_spu_ecdh": True, "within_1_5x_spu_kkrt": False, "memory_below_2gb": True}),
        (21.0, 2100.0, 20.0, 15.0, {"faster_than_spu_ecdh": False, "within_1_5x_spu_kkrt": True, "memory_below_2gb": False}),
    ],
)
def test_goals_are_judged_at_the_largest_size_with_spu(ot_s: float, ot_mb: float, ecdh: float, kkrt: float,
                                                       expect: dict[str, bool], capsys: pytest.CaptureFixture[str]) -> None:
    rows = [_row(17, 1.0, 100.0, 100.0, 100.0), _row(20, ot_s, ot_mb, ecdh, kkrt), _row(22, 1.0, 1.0, None, None)]
    goals = psi_bench.side_by_side(rows, "0.9.5", None)
    assert goals["exponent"] == 20
    assert {k: goals[k] for k in expect} == expect
    assert goals["ratio_to_spu_kkrt"] == pytest.approx(ot_s / kkrt)
    out = capsys.readouterr().out
    assert "Goals at 2^20" in out and ("MISSED" in out) == (not all(expect.values()))


def test_no_spu_means_no_goal_verdict() -> None:
    assert psi_bench.side_by_side([_row(20, 9.0, 500.0, None, None)], None, None) == {}


def test_median_of_reports_the_middle_run() -> None:
    seconds = iter([3.0, 1.0, 2.0])
    r = psi_bench.median_of(3, lambda: {"seconds": next(seconds)})
    assert r["seconds"] == 2.0 and r["runs_seconds"] == [1.0, 2.0, 3.0]
