"""The benchmarks' own machinery: the SPU harness's byte-counting relay, the PSI goal check, and the
LR benchmark's hand-off to SPU (the .npz that must carry fedcredit's preprocessed arrays unchanged).

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

import numpy as np
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
spu_lr = _load("spu_lr")
lr_bench = _load("lr_bench")


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


# --------------------------------------------------------------------------- lr_bench -> spu_lr hand-off


def test_spu_inputs_carry_the_jobs_preprocessed_arrays_byte_for_byte(tmp_path: Path) -> None:
    import pandas as pd

    from fedcredit.protocols.hetero_lr.preprocess import epoch_batches
    from fedcredit.runtime.config import DatasetConfig

    g, h, idc, yc = lr_bench.SETS["default_credit"]
    gs, hs = tmp_path / "g.csv", tmp_path / "h.csv"
    pd.read_csv(lr_bench.DATA / g, dtype=str).head(700).to_csv(gs, index=False)
    pd.read_csv(lr_bench.DATA / h, dtype=str).head(700).to_csv(hs, index=False)
    bank, platform = DatasetConfig(path=gs, id_column=idc, label_column=yc), DatasetConfig(path=hs, id_column=idc)
    spec = lr_bench.job("default_credit", epochs=3, seed=7)
    path = tmp_path / "in.npz"
    meta = lr_bench.write_spu_inputs(bank, platform, spec, path)
    arrays, params = spu_lr.read_inputs(path)

    prep = lr_bench.prepared(bank, platform, spec)
    for key in ("guest_train", "host_train", "y_train", "guest_test", "host_test", "y_test"):
        want = np.asarray(getattr(prep, key))
        assert arrays[key].dtype == want.dtype and arrays[key].shape == want.shape
        assert arrays[key].tobytes() == want.tobytes(), key
    assert abs(float(arrays["guest_train"].max())) <= 3.0  # clipped at ±3, as the job does
    lr = spec.lr_params()
    bs = lr.batch_size_for(prep.n_train)
    assert params == meta and params["epochs"] == 3 and params["batch_size"] == bs
    assert (params["optimizer"], params["learning_rate"], params["l2"]) == (lr.optimizer, lr.learning_rate, lr.l2)
    assert arrays["order"].shape == (3, prep.n_train)
    for e in range(3):
        batches = epoch_batches(prep.n_train, bs, lr.seed, e)
        assert np.array_equal(arrays["order"][e], np.concatenate(batches))
        assert arrays["bounds"].tolist() == [0, *np.cumsum([len(b) for b in batches]).tolist()]
    assert not np.array_equal(arrays["order"][0], arrays["order"][1])  # a fresh batch order every epoch


def _arrays(n: int = 10) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {"guest_train": rng.normal(size=(n, 3)), "host_train": rng.normal(size=(n, 2)), "y_train": rng.integers(0, 2, n),
            "guest_test": rng.normal(size=(4, 3)), "host_test": rng.normal(size=(4, 2)), "y_test": np.array([0, 1, 0, 1])}


def test_spu_inputs_refuse_batches_spu_cannot_run_as_one_program(tmp_path: Path) -> None:
    a = _arrays()
    ok = [[np.arange(0, 5), np.arange(5, 10)], [np.arange(5, 10), np.arange(0, 5)]]
    spu_lr.write_inputs(tmp_path / "ok.npz", **a, batches=ok, params={})
    assert spu_lr.read_inputs(tmp_path / "ok.npz")[0]["bounds"].tolist() == [0, 5, 10]
    with pytest.raises(ValueError, match="other batch sizes"):
        spu_lr.write_inputs(tmp_path / "x.npz", **a, batches=[ok[0], [np.arange(0, 6), np.arange(6, 10)]], params={})
    with pytest.raises(ValueError, match="not a permutation"):
        spu_lr.write_inputs(tmp_path / "x.npz", **a, batches=[[np.arange(0, 5), np.arange(4, 9)]], params={})
    with pytest.raises(ValueError, match="number of rows"):
        spu_lr.write_inputs(tmp_path / "x.npz", **(a | {"host_train": a["host_train"][:9]}), batches=ok, params={})


def test_spu_side_metrics_match_fedcredits() -> None:
    from fedcredit.protocols.hetero_lr.metrics import ks_statistic, roc_auc

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    score = np.round(rng.normal(size=500) + 0.8 * y, 1)  # rounded: many ties
    assert spu_lr.roc_auc(y, score) == pytest.approx(roc_auc(y, score), abs=1e-12)
    assert spu_lr.ks_statistic(y, score) == pytest.approx(ks_statistic(y, score), abs=1e-12)
    assert spu_lr.roc_auc(y, -score) == pytest.approx(1 - roc_auc(y, score), abs=1e-12)


@pytest.mark.parametrize(
    ("only", "skip", "expect"),
    [
        (None, False, ["fast", "two_party", "spu_semi2k", "spu_cheetah"]),
        (None, True, ["fast", "two_party"]),
        ("spu", False, ["spu_semi2k", "spu_cheetah"]),
        ("fedcredit", False, ["fast", "two_party"]),
    ],
)
def test_variant_selection(only: str | None, skip: bool, expect: list[str]) -> None:
    assert lr_bench.select_variants("fast,two_party,spu_semi2k,spu_cheetah", only=only, skip_spu=skip) == expect
    assert lr_bench.select_variants("fast", only="spu", skip_spu=False) == ["spu_semi2k", "spu_cheetah"]


def test_spu_goals_compare_the_fastest_real_job_with_each_spu_column() -> None:
    labels = {v: v for v in ("two_party", "two_party_ckks", "spu_semi2k", "spu_cheetah")}
    results = {"two_party_local": {"s_per_epoch": 1.0, "auc": 0.5},  # in process, one epoch: never compared
               "two_party": {"s_per_epoch": 57.0, "auc": 0.7282}, "two_party_ckks": {"s_per_epoch": 18.0, "auc": 0.7282},
               "spu_semi2k": {"s_per_epoch": 6.0, "auc": 0.7290}, "spu_cheetah": {"s_per_epoch": 20.0, "auc": 0.7340}}
    goals = {name: (ok, value) for name, ok, value in lr_bench.spu_goals(results, labels)}
    assert goals["two_party_ckks per epoch <= spu_cheetah (#18)"] == (True, pytest.approx(0.9))
    assert goals["two_party_ckks per epoch <= spu_semi2k (#18)"] == (False, pytest.approx(3.0))
    assert goals["two_party_ckks AUC within 0.005 of spu_semi2k (#18)"] == (True, pytest.approx(0.0008))
    assert goals["two_party_ckks AUC within 0.005 of spu_cheetah (#18)"] == (False, pytest.approx(0.0058))
    assert len(goals) == 4
    assert lr_bench.spu_goals({"two_party_local": results["two_party_local"], "spu_semi2k": results["spu_semi2k"]},
                              labels) == []
