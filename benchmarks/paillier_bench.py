#!/usr/bin/env python
"""Benchmark fedcredit.protocols.paillier against python-paillier (phe) and, if installed, HEU ZPaillier.

Everything runs in ONE process run (plus the worker processes of one
``ProcessPoolExecutor`` for the parallel variants). phe uses the same key as
this engine; HEU's Python API cannot import a key, so it uses its own fresh
key of the same size.

Measured, each the median of ``--repeats`` runs:

* encrypt/s: this engine (a) online, with a randomness pool filled beforehand
  (the fill is reported separately as an offline rate), (b) no pool, one core
  (default table, and a wider ``--wide-window-bits`` table), (c) no pool,
  ``--workers`` processes; phe ``raw_encrypt``; HEU ``encrypt_raw``.
  Plaintexts are signed 48-bit fixed-point values (residues mod n).
* decrypt per value: CRT decryption, one ciphertext per value (all engines),
  and this engine with packing: masked-gradient-sized values (``--pack-value-bits``,
  by default the LR plan's mask width + 1) packed k to a plaintext; reported as
  the key holder's decrypt+unpack rate, plus the sender's packing rate.
* add/s (ciphertext + ciphertext).
* scalar multiply by a signed 20-bit int /s, and by a positive 20-bit int /s.
* the gradient kernel Σ cᵢ^{xᵢ} = Xᵀ·[[d]] at ``--rows`` × ``--features`` with
  signed 20-bit features (elements/s): this engine's bucketed multi-exponentiation
  on one core and on ``--workers`` processes; phe (``EncryptedNumber * int`` summed)
  and HEU (``mul`` + ``add``) on a ``--baseline-sample`` of one column, scaled as
  a per-element rate (the output says so).

Goals from issue 4 are printed as PASS/MISS lines. Where HEU is not installed,
the issue's single-thread HEU figures are used and labelled "issue reference".

Usage::

    python benchmarks/paillier_bench.py                 # 2048-bit, the issue's sizes
    python benchmarks/paillier_bench.py --json out.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import gmpy2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import phe  # noqa: E402
from phe import paillier as phe_paillier  # noqa: E402

from fedcredit.protocols.paillier import (  # noqa: E402
    Encryptor,
    RandomnessPool,
    add,
    decrypt_packed,
    from_residue,
    generate_keypair,
    matvec_t,
    mul_plain,
    pack,
    plan_packing,
    to_residue,
)

#: HEU ZPaillier single-thread rates quoted in issue 4 (used only when sf-heu is absent).
ISSUE_HEU_REFERENCE = {"encrypt": 1500.0, "decrypt": 230.0, "mul": 2650.0, "add": 156000.0}


def rate(fn: Callable[[], Any], count: int, repeats: int, setup: Callable[[], Any] | None = None) -> tuple[float, list[float]]:
    """Median operations per second of ``fn`` (which performs ``count`` operations)."""
    rates = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates), rates


def machine_info() -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "gmpy2": gmpy2.version(),
        "gmp": gmpy2.mp_version(),
        "phe": getattr(phe, "__version__", "unknown"),
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def load_heu() -> tuple[Any, str]:
    """Import HEU's scalar (single-thread) API, or explain why not."""
    try:
        from heu import phe as heu_phe  # type: ignore[import-not-found]
    except Exception as exc:  # ImportError, or a broken native wheel
        return None, f"not installed ({type(exc).__name__}: {exc}); pip install -e '.[bench]'"
    try:
        from importlib.metadata import version

        ver = version("sf-heu")
    except Exception:
        ver = "unknown"
    return heu_phe, f"sf-heu {ver}"


def default_pack_value_bits(rows: int, features: int) -> tuple[int, str]:
    """Width of a masked LR gradient g + r under the default job plan (mask_bits + 1)."""
    try:
        from fedcredit.protocols.hetero_lr.params import HeteroLRParams, plan_budget

        plan = plan_budget(HeteroLRParams(), n_train=rows, max_abs_feature=8.0)
        return plan.mask_bits + 1, f"default LR plan: mask_bits={plan.mask_bits}, gradient_bits={plan.gradient_bits}"
    except Exception as exc:  # pragma: no cover - only if the LR module changes shape
        return 162, f"fallback (LR plan unavailable: {exc})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", type=int, default=2048, help="modulus size (default 2048)")
    parser.add_argument("--n", type=int, default=2000, help="values per encrypt/add/mul measurement (default 2000)")
    parser.add_argument("--rows", type=int, default=30000, help="kernel rows (default 30000)")
    parser.add_argument("--features", type=int, default=10, help="kernel feature columns (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per measurement (median)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the parallel variants (default 2)")
    parser.add_argument("--phe-encrypt-n", type=int, default=30, help="phe encryptions per repeat")
    parser.add_argument("--decrypt-n", type=int, default=240, help="values decrypted per repeat, each engine")
    parser.add_argument("--baseline-sample", type=int, default=2000, help="kernel elements per repeat for phe/HEU")
    parser.add_argument("--pack-value-bits", type=int, default=None, help="signed value width for packing (default: LR plan)")
    parser.add_argument("--window-bits", type=int, default=8, help="Encryptor table window")
    parser.add_argument("--wide-window-bits", type=int, default=12,
                        help="also measure 1-core encryption with this (larger) table window; 0 = skip")
    parser.add_argument("--seed", type=int, default=0, help="seed for keys and data (benchmark only)")
    parser.add_argument("--no-heu", action="store_true", help="skip HEU even if installed")
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args(argv)

    load_start = os.getloadavg()
    rng = random.Random(args.seed)  # reproducible benchmark data; never for real keys
    n, reps = args.n, args.repeats
    started = time.perf_counter()
    setup: dict[str, float] = {}

    t0 = time.perf_counter()
    pk, sk = generate_keypair(args.bits, rng, insecure_allow_small=args.bits < 1024)
    setup["keygen"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    enc = Encryptor(pk, rng, window_bits=args.window_bits)
    setup["encryptor_table"] = time.perf_counter() - t0
    phe_pk, phe_sk = pk.to_phe(), sk.to_phe()

    t0 = time.perf_counter()
    executor = ProcessPoolExecutor(args.workers)
    # Warm-up: starts the workers (they inherit or build the fixed-base table),
    # before HEU's native library is loaded, so no process is forked after it.
    enc.random_factors(2 * args.workers, map_fn=executor.map, chunk_size=1)
    setup["process_pool_start"] = time.perf_counter() - t0

    heu_phe, heu_status = (None, "skipped (--no-heu)") if args.no_heu else load_heu()
    heu = None
    if heu_phe is not None:
        t0 = time.perf_counter()
        kit = heu_phe.setup(heu_phe.SchemaType.ZPaillier, args.bits)
        heu = {"enc": kit.encryptor(), "dec": kit.decryptor(), "ev": kit.evaluator()}
        setup["heu_keygen"] = time.perf_counter() - t0

    results: dict[str, dict[str, Any]] = {}
    notes: list[str] = []

    def record(key: str, label: str, unit: str, ours: tuple[float, list[float]],
               phe_r: tuple[float, list[float]] | None, heu_r: tuple[float, list[float]] | None,
               heu_ref: float | None = None) -> None:
        row: dict[str, Any] = {"label": label, "unit": unit, "fedcredit": ours[0], "fedcredit_runs": ours[1]}
        if phe_r is not None:
            row.update(phe=phe_r[0], phe_runs=phe_r[1], vs_phe=ours[0] / phe_r[0])
        if heu_r is not None:
            row.update(heu=heu_r[0], heu_runs=heu_r[1], heu_source="measured", vs_heu=ours[0] / heu_r[0])
        elif heu_ref is not None:
            row.update(heu=heu_ref, heu_source="issue reference", vs_heu=ours[0] / heu_ref)
        results[key] = row

    def heu_or_ref(measured: tuple[float, list[float]] | None, ref_key: str) -> tuple[tuple[float, list[float]] | None, float | None]:
        return (measured, None) if measured is not None else (None, ISSUE_HEU_REFERENCE[ref_key])

    # ------------------------------------------------------------------ encrypt
    values = [rng.randrange(-(2**47), 2**47) for _ in range(n)]
    plaintexts = [to_residue(pk, v) for v in values]
    phe_plain = plaintexts[: args.phe_encrypt_n]
    phe_enc = rate(lambda: [phe_pk.raw_encrypt(m) for m in phe_plain], len(phe_plain), reps)
    heu_enc = None
    if heu is not None:
        henc = heu["enc"]
        heu_enc = rate(lambda: [henc.encrypt_raw(v) for v in values], n, reps)
        heu["cts"] = [henc.encrypt_raw(v) for v in values]
        assert [heu["dec"].decrypt_raw(c) for c in heu["cts"][:5]] == values[:5]

    cts: list[Any] = []

    def ours_encrypt(**kw: Any) -> None:
        cts[:] = enc.encrypt_raw_many(plaintexts, **kw)

    chunk = max(1, math.ceil(n / (4 * args.workers)))
    pool = RandomnessPool(enc)
    t0 = time.perf_counter()
    pool.fill(n * reps, map_fn=executor.map, chunk_size=chunk)
    fill_s = time.perf_counter() - t0
    fill_rate = (n * reps / fill_s, [n * reps / fill_s])

    def check_pool() -> None:
        assert pool.available >= n, "pool ran dry: the online figure would include offline work"

    h, r = heu_or_ref(heu_enc, "encrypt")
    record("encrypt_online_pool", "encrypt, online (filled pool)", "ops/s",
           rate(lambda: ours_encrypt(pool=pool), n, reps, setup=check_pool), phe_enc, h, r)
    record("encrypt_1core", "encrypt, no pool, 1 core", "ops/s", rate(ours_encrypt, n, reps), phe_enc, h, r)
    record("encrypt_parallel", f"encrypt, no pool, {args.workers} processes", "ops/s",
           rate(lambda: ours_encrypt(map_fn=executor.map, chunk_size=chunk), n, reps), phe_enc, h, r)
    if args.wide_window_bits:
        t0 = time.perf_counter()
        wide = Encryptor(pk, rng, window_bits=args.wide_window_bits)
        setup["encryptor_table_wide"] = time.perf_counter() - t0
        record("encrypt_1core_wide", f"encrypt, no pool, 1 core, w={args.wide_window_bits}", "ops/s",
               rate(lambda: wide.encrypt_raw_many(plaintexts), n, reps), phe_enc, h, r)
        notes.append(f"w={args.wide_window_bits} table: {wide.table_entries * pk.ciphertext_bytes / 2**20:.0f} MiB, "
                     f"built in {setup['encryptor_table_wide']:.2f} s (the engine's default is w=8, "
                     f"{enc.table_entries * pk.ciphertext_bytes / 2**20:.0f} MiB)")
        del wide
    record("pool_fill_offline", f"pool fill (offline), {args.workers} processes", "factors/s", fill_rate, phe_enc, h, r)
    assert [phe_sk.raw_decrypt(int(c)) for c in cts[:5]] == plaintexts[:5]

    # ------------------------------------------------------------------ decrypt
    dec_cts = cts[: args.decrypt_n]
    dec_ints = [int(c) for c in dec_cts]
    assert sk.decrypt_raw_many(dec_cts) == [phe_sk.raw_decrypt(c) for c in dec_ints] == plaintexts[: len(dec_cts)]
    phe_dec = rate(lambda: [phe_sk.raw_decrypt(c) for c in dec_ints], len(dec_ints), reps)
    heu_dec = None
    if heu is not None:
        hdec, hcts = heu["dec"], heu["cts"][: args.decrypt_n]
        heu_dec = rate(lambda: [hdec.decrypt_raw(c) for c in hcts], len(hcts), reps)
    h, r = heu_or_ref(heu_dec, "decrypt")
    record("decrypt_crt", "decrypt per value, CRT", "values/s",
           rate(lambda: sk.decrypt_raw_many(dec_cts), len(dec_cts), reps), phe_dec, h, r)
    record("decrypt_crt_parallel", f"decrypt per value, CRT, {args.workers} processes", "values/s",
           rate(lambda: sk.decrypt_raw_many(dec_cts, map_fn=executor.map, chunk_size=max(1, len(dec_cts) // (4 * args.workers))),
                len(dec_cts), reps), phe_dec, h, r)

    value_bits, why = (args.pack_value_bits, "--pack-value-bits") if args.pack_value_bits else default_pack_value_bits(args.rows, args.features)
    plan = plan_packing(pk, value_bits)
    # masked-gradient-like values: g + r, |g| < 2^(value_bits - 80), r uniform in [0, 2^(value_bits-1))
    gbits = max(1, value_bits - 1 - 80)
    masked_vals = [rng.randrange(-(2**gbits), 2**gbits) + rng.getrandbits(value_bits - 1) for _ in range(args.decrypt_n)]
    masked_cts = enc.encrypt_raw_many([to_residue(pk, v) for v in masked_vals], pool=pool)
    packed: list[Any] = []

    def do_pack() -> None:
        packed[:] = enc.rerandomize_many(pack(pk, masked_cts, plan.slot_bits, offset=plan.offset), pool=pool)

    pack_rate = rate(do_pack, len(masked_cts), reps)
    assert decrypt_packed(sk, packed, plan.slot_bits, len(masked_vals), offset=plan.offset) == masked_vals
    packed_dec = rate(lambda: decrypt_packed(sk, packed, plan.slot_bits, len(masked_vals), offset=plan.offset),
                      len(masked_vals), reps)
    record("decrypt_packed", f"decrypt per value, packed {plan.slots}/ct", "values/s", packed_dec, phe_dec, h, r)
    end_to_end = 1.0 / (1.0 / packed_dec[0] + 1.0 / pack_rate[0])
    record("pack_sender", f"pack {plan.slot_bits}-bit slots (sender side)", "values/s", pack_rate, None, None)
    record("decrypt_packed_end_to_end", "pack + decrypt per value, 1 core", "values/s", (end_to_end, [end_to_end]), phe_dec, h, r)
    notes.append(f"packing: {plan.slots} values of {value_bits} signed bits per plaintext, slot {plan.slot_bits} bits "
                 f"({why}); packing costs the sender ~{plan.slot_bits} squarings mod n^2 per value")

    # ------------------------------------------------------------------ add
    phe_nums = [phe_paillier.EncryptedNumber(phe_pk, int(c)) for c in cts]
    shifted = cts[1:] + cts[:1]
    phe_shifted = phe_nums[1:] + phe_nums[:1]
    heu_add = None
    if heu is not None:
        ev, hcts = heu["ev"], heu["cts"]
        hsh = hcts[1:] + hcts[:1]
        heu_add = rate(lambda: [ev.add(a, b) for a, b in zip(hcts, hsh)], n, reps)
    h, r = heu_or_ref(heu_add, "add")
    record("add", "add (ct + ct)", "ops/s", rate(lambda: [add(pk, a, b) for a, b in zip(cts, shifted)], n, reps),
           rate(lambda: [a + b for a, b in zip(phe_nums, phe_shifted)], n, reps), h, r)

    # ------------------------------------------------------------------ scalar multiply
    signed_k = [rng.randrange(-(2**20) + 1, 2**20) for _ in range(n)]
    positive_k = [rng.randrange(1, 2**20) for _ in range(n)]
    heu_mul: dict[str, tuple[float, list[float]] | None] = {"signed": None, "positive": None}
    for kind, ks in (("signed", signed_k), ("positive", positive_k)):
        if heu is not None:
            ev, hcts = heu["ev"], heu["cts"]
            heu_mul[kind] = rate(lambda ks=ks: [ev.mul(c, k) for c, k in zip(hcts, ks)], n, reps)
        h, r = heu_or_ref(heu_mul[kind], "mul")
        record(f"mul_{kind}", f"mul by {kind} 20-bit int", "ops/s",
               rate(lambda ks=ks: [mul_plain(pk, c, k) for c, k in zip(cts, ks)], n, reps),
               rate(lambda ks=ks: [e * k for e, k in zip(phe_nums, ks)], n, reps), h, r)

    # ------------------------------------------------------------------ gradient kernel
    rows, feats = args.rows, args.features
    # Residual ciphertexts: products of two fresh encryptions (valid, distinct, cheap to make).
    base_a_vals = [rng.randrange(-(2**40), 2**40) for _ in range(256)]
    base_b_vals = [rng.randrange(-(2**40), 2**40) for _ in range(math.ceil(rows / 256))]
    base_a = enc.encrypt_raw_many([to_residue(pk, v) for v in base_a_vals], pool=pool)
    base_b = enc.encrypt_raw_many([to_residue(pk, v) for v in base_b_vals], pool=pool)
    resid_vals = [base_a_vals[i % 256] + base_b_vals[i // 256] for i in range(rows)]
    resid = [add(pk, base_a[i % 256], base_b[i // 256]) for i in range(rows)]
    X = np.asarray([[rng.randrange(-(2**20) + 1, 2**20) for _ in range(feats)] for _ in range(rows)], dtype=np.int64)
    elements = rows * feats
    grad: list[Any] = []

    def kernel(**kw: Any) -> None:
        grad[:] = matvec_t(pk, resid, X, **kw)

    k_serial = rate(kernel, elements, reps)
    expected = [sum(int(X[i, j]) * resid_vals[i] for i in range(rows)) for j in range(feats)]
    assert [from_residue(pk, sk.decrypt_raw(c)) for c in grad] == expected
    k_par = rate(lambda: kernel(map_fn=executor.map), elements, reps)
    assert [from_residue(pk, sk.decrypt_raw(c)) for c in grad] == expected

    sample = min(args.baseline_sample, rows)
    phe_col = [phe_paillier.EncryptedNumber(phe_pk, int(c)) for c in resid[:sample]]
    col = [int(v) for v in X[:sample, 0]]
    assert phe_sk.decrypt(sum(e * x for e, x in zip(phe_col, col))) == sum(x * v for x, v in zip(col, resid_vals[:sample]))
    phe_kernel = rate(lambda: sum(e * x for e, x in zip(phe_col, col)), sample, reps)
    heu_kernel = None
    if heu is not None:
        ev, hcts = heu["ev"], heu["cts"]
        hcol = [hcts[i % len(hcts)] for i in range(sample)]

        def heu_sum() -> None:
            acc = ev.mul(hcol[0], col[0])
            for c, x in zip(hcol[1:], col[1:]):
                acc = ev.add(acc, ev.mul(c, x))

        heu_kernel = rate(heu_sum, sample, reps)
    h, r = heu_or_ref(heu_kernel, "mul")
    record("kernel_1core", f"sum c_i^x_i {rows}x{feats}, 1 core", "elements/s", k_serial, phe_kernel, h, r)
    record("kernel_parallel", f"sum c_i^x_i {rows}x{feats}, {args.workers} proc", "elements/s", k_par, phe_kernel, h, r)
    notes.append(f"kernel: phe and HEU measured on a sample of {sample} elements of one column (mul + add per element) "
                 f"and scaled per element; full {rows}x{feats} kernel projected at "
                 f"{elements / phe_kernel[0]:.0f} s for phe" + (f", {elements / heu_kernel[0]:.0f} s for HEU" if heu_kernel else "")
                 + f" vs {elements / k_serial[0]:.1f} s (1 core) / {elements / k_par[0]:.1f} s ({args.workers} proc) here")

    executor.shutdown()
    total_s = time.perf_counter() - started

    # ------------------------------------------------------------------ report
    heu_col = "HEU" if heu is not None else "HEU(ref)"
    print(f"Paillier {pk.bits}-bit, median of {reps}; {platform.platform()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"setup: keygen {setup['keygen']:.2f} s, Encryptor table w={args.window_bits} {setup['encryptor_table']:.2f} s "
          f"({enc.table_entries} entries ≈ {enc.table_entries * pk.ciphertext_bytes / 2**20:.0f} MiB), "
          f"process pool ({args.workers}) start {setup['process_pool_start']:.2f} s")
    print(f"HEU: {heu_status}" + ("; HEU uses its own fresh key of the same size (its Python API cannot import ours)" if heu else ""))
    header = f"{'operation':<38} {'unit':<11} {'fedcredit':>11} {'phe':>10} {heu_col:>10} {'x phe':>7} {'x HEU':>7}"
    print(header)
    print("-" * len(header))
    for row in results.values():
        phe_s = f"{row['phe']:>10,.0f}" if "phe" in row else f"{'':>10}"
        heu_s = f"{row['heu']:>10,.0f}" if "heu" in row else f"{'':>10}"
        vp = f"{row['vs_phe']:>6.1f}x" if "vs_phe" in row else f"{'':>7}"
        vh = f"{row['vs_heu']:>6.2f}x" if "vs_heu" in row else f"{'':>7}"
        print(f"{row['label']:<38} {row['unit']:<11} {row['fedcredit']:>11,.0f} {phe_s} {heu_s} {vp} {vh}")
    for note in notes:
        print(f"note: {note}")
    if heu is None:
        print(f"note: {heu_col} column = issue 4's single-thread HEU figures (issue reference), not measured here")

    # ------------------------------------------------------------------ goals
    goals: list[dict[str, Any]] = []

    def goal(name: str, value: float, target: float, detail: str) -> None:
        ok = value >= target
        goals.append({"goal": name, "value": value, "target": target, "pass": ok, "detail": detail})
        print(f"{'PASS' if ok else 'MISS'}  {name}: {detail}")

    src = "measured" if heu is not None else "issue reference"
    heu_enc_rate = heu_enc[0] if heu_enc else ISSUE_HEU_REFERENCE["encrypt"]
    for key in ("encrypt_online_pool", "encrypt_parallel", "encrypt_1core", "encrypt_1core_wide"):
        if key not in results:
            continue
        row = results[key]
        goal(f"{row['label']} >= 20x phe", row["vs_phe"], 20.0, f"{row['fedcredit']:,.0f}/s = {row['vs_phe']:.1f}x phe ({row['phe']:,.0f}/s)")
        goal(f"{row['label']} >= 1x HEU", row["fedcredit"] / heu_enc_rate, 1.0,
             f"{row['fedcredit']:,.0f}/s = {row['fedcredit'] / heu_enc_rate:.2f}x HEU ({heu_enc_rate:,.0f}/s, {src})")
    heu_dec_rate = heu_dec[0] if heu_dec else ISSUE_HEU_REFERENCE["decrypt"]
    for key in ("decrypt_packed", "decrypt_packed_end_to_end", "decrypt_crt"):
        row = results[key]
        goal(f"{row['label']} >= 4x HEU decrypt", row["fedcredit"] / heu_dec_rate, 4.0,
             f"{row['fedcredit']:,.0f}/s = {row['fedcredit'] / heu_dec_rate:.2f}x HEU ({heu_dec_rate:,.0f}/s, {src})")
    if heu is not None:
        heu_mul_rate = max(heu_mul["signed"][0], heu_mul["positive"][0])  # type: ignore[index]
        mul_src = "measured, best of signed/positive scalars"
    else:
        heu_mul_rate, mul_src = ISSUE_HEU_REFERENCE["mul"], "issue reference"
    for key in ("kernel_1core", "kernel_parallel"):
        row = results[key]
        goal(f"{row['label']} >= 3x HEU scalar multiply", row["fedcredit"] / heu_mul_rate, 3.0,
             f"{row['fedcredit']:,.0f} elements/s = {row['fedcredit'] / heu_mul_rate:.1f}x HEU mul ({heu_mul_rate:,.0f}/s, {mul_src})")
    load_end = os.getloadavg()
    print(f"total {total_s:.1f} s; 1-min load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end "
          f"(above ~0 means other work shared the {os.cpu_count()} CPUs)")

    if args.json is not None:
        report = {
            "benchmark": "paillier",
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else argv)),
            "machine": machine_info(),
            "heu": heu_status,
            "config": {
                "bits": pk.bits, "n": n, "rows": rows, "features": feats, "repeats": reps,
                "workers": args.workers, "phe_encrypt_n": len(phe_plain), "decrypt_n": len(dec_cts),
                "baseline_sample": sample, "window_bits": args.window_bits, "seed": args.seed,
                "pack": {"value_bits": value_bits, "slot_bits": plan.slot_bits, "slots": plan.slots, "why": why},
            },
            "setup_seconds": {**setup, "total": total_s},
            "load_average_1min": {"start": load_start[0], "end": load_end[0]},
            "encryptor_table_entries": enc.table_entries,
            "results": results,
            "goals": goals,
            "notes": notes,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
