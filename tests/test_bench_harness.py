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


def _row(e: int, ot_s: float, ot_mb: float, spu_ecdh: float | None, spu_kkrt: float | None,
         spu_rr22: float | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"exponent": e,
                           "fedcredit_ot_real": {"seconds": ot_s, "bytes_total": 1, "peak_rss_mb_per_party": {"bank": ot_mb, "platform": 10.0}}}
    spu = {}
    for proto, sec in (("ECDH", spu_ecdh), ("KKRT", spu_kkrt), ("RR22", spu_rr22)):
        if sec is not None:
            spu[proto] = {"seconds": sec, "bytes_total": 1, "peak_rss_mb_per_party": {"party0": 1.0, "party1": 1.0}}
    if spu:
        row["spu"] = spu
    return row


@pytest.mark.parametrize(
    ("small_ot", "ot_s", "ot_mb", "rr22", "expect17", "expect20"),
    [
        (1.4, 9.0, 500.0, 10.0, {"within_1_5x_spu_kkrt": True}, {"faster_than_spu_rr22": True, "memory_below_1gb": True}),
        (1.6, 11.0, 500.0, 10.0, {"within_1_5x_spu_kkrt": False}, {"faster_than_spu_rr22": False, "memory_below_1gb": True}),
        (1.0, 9.0, 1100.0, 10.0, {"within_1_5x_spu_kkrt": True}, {"faster_than_spu_rr22": True, "memory_below_1gb": False}),
    ],
)
def test_goals_of_issue_17_are_judged_per_size(small_ot: float, ot_s: float, ot_mb: float, rr22: float, expect17: dict[str, bool],
                                               expect20: dict[str, bool], capsys: pytest.CaptureFixture[str]) -> None:
    rows = [_row(17, small_ot, 100.0, None, 1.0, 0.5), _row(20, ot_s, ot_mb, 30.0, 12.0, rr22), _row(22, 1.0, 1.0, None, None)]
    goals = psi_bench.side_by_side(rows, "0.9.5", None, "CPU: test")
    assert set(goals) == {"2^17", "2^20"}  # 2^22 has no SPU column: no verdict
    assert {k: goals["2^17"][k] for k in expect17} == expect17
    assert {k: goals["2^20"][k] for k in expect20} == expect20
    assert goals["2^20"]["ratio_to_spu_rr22"] == pytest.approx(ot_s / rr22)
    assert goals["2^20"]["ratio_to_spu_kkrt"] == pytest.approx(ot_s / 12.0)
    out = capsys.readouterr().out
    assert "Goals at 2^20" in out and "CPU: test" in out
    assert ("MISSED" in out) == (not all(expect17.values()) or not all(expect20.values()))


def test_no_spu_means_no_goal_verdict() -> None:
    assert psi_bench.side_by_side([_row(20, 9.0, 500.0, None, None)], None, None) == {}


def test_cpu_line_names_the_flags() -> None:
    info = psi_bench.machine_info(2)
    assert set(info["cpu_flags"]) == {"AES-NI", "SHA-NI", "AVX2", "AVX-512"}
    line = psi_bench.cpu_line(info)
    assert line.startswith("CPU: ") and all(f"{k} {'yes' if v else 'no'}" in line for k, v in info["cpu_flags"].items())


def test_median_of_reports_the_middle_run() -> None:
    seconds = iter([3.0, 1.0, 2.0])
    r = psi_bench.median_of(3, lambda: {"seconds": next(seconds)})
    assert r["seconds"] == 2.0 and r["runs_seconds"] == [1.0, 2.0, 3.0]
