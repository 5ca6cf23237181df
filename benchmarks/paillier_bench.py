#!/usr/bin/env python
"""Benchmark protocols.paillier against python-paillier (phe) on the same key, in one process.

Measures, for both engines:

* encrypt/s (raw plaintexts; ours = DJN fixed-base table, phe = r^n mod n²),
* decrypt/s (raw; both use CRT),
* add/s (ciphertext + ciphertext),
* scalar multiply by a signed 20-bit int /s,
* the Σ cᵢ^{xᵢ} kernel over a column of ``--n`` ciphertexts with signed 20-bit
  scalars, as elements/s (ours = bucketed multi-exponentiation ``dot``;
  phe = sum of ``EncryptedNumber * int`` over the column).

Each figure is the median of ``--repeats`` runs. phe's encryption is slow
(about 50-90/s at 2048 bits), so it runs on only ``--phe-encrypt-n`` values.

Usage::

    python benchmarks/paillier_bench.py --bits 2048 --n 2000 --json out.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import gmpy2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import phe  # noqa: E402
from phe import paillier as phe_paillier  # noqa: E402

from protocols.paillier import (  # noqa: E402
    Encryptor,
    add,
    dot,
    from_residue,
    generate_keypair,
    mul_plain,
    to_residue,
)


def rate(fn: Callable[[], Any], count: int, repeats: int) -> tuple[float, list[float]]:
    """Median operations per second of ``fn`` (which performs ``count`` operations)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates), rates


def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "gmpy2": gmpy2.version(),
        "gmp": gmpy2.mp_version(),
        "phe": getattr(phe, "__version__", "unknown"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bits", type=int, default=2048, help="modulus size (default 2048)")
    parser.add_argument("--n", type=int, default=2000, help="column length / op count (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per measurement (median)")
    parser.add_argument("--phe-encrypt-n", type=int, default=30, help="phe encryptions per repeat")
    parser.add_argument("--decrypt-n", type=int, default=200, help="decryptions per repeat, each engine")
    parser.add_argument("--window-bits", type=int, default=8, help="Encryptor table window")
    parser.add_argument("--seed", type=int, default=0, help="seed for keys and data (benchmark only)")
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)  # reproducible benchmark data; never for real keys
    n = args.n
    started = time.perf_counter()

    t0 = time.perf_counter()
    pk, sk = generate_keypair(args.bits, rng, insecure_allow_small=args.bits < 1024)
    keygen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    enc = Encryptor(pk, rng, window_bits=args.window_bits)
    table_s = time.perf_counter() - t0
    phe_pk, phe_sk = pk.to_phe(), sk.to_phe()

    plaintexts = [rng.randrange(int(pk.n)) for _ in range(n)]
    results: dict[str, dict[str, Any]] = {}

    def record(name: str, unit: str, ours: tuple[float, list[float]], theirs: tuple[float, list[float]]) -> None:
        results[name] = {
            "unit": unit,
            "fedcredit": ours[0],
            "phe": theirs[0],
            "speedup": ours[0] / theirs[0],
            "fedcredit_runs": ours[1],
            "phe_runs": theirs[1],
        }

    # encrypt (raw)
    cts: list[Any] = []

    def ours_encrypt() -> None:
        cts[:] = enc.encrypt_raw_many(plaintexts)

    phe_plain = plaintexts[: args.phe_encrypt_n]
    record(
        "encrypt (raw)",
        "ops/s",
        rate(ours_encrypt, n, args.repeats),
        rate(lambda: [phe_pk.raw_encrypt(m) for m in phe_plain], len(phe_plain), args.repeats),
    )

    # decrypt (raw, CRT)
    dec_cts = cts[: args.decrypt_n]
    dec_ints = [int(c) for c in dec_cts]
    assert sk.decrypt_raw_many(dec_cts) == [phe_sk.raw_decrypt(c) for c in dec_ints] == plaintexts[: len(dec_cts)]
    record(
        "decrypt (raw, CRT)",
        "ops/s",
        rate(lambda: sk.decrypt_raw_many(dec_cts), len(dec_cts), args.repeats),
        rate(lambda: [phe_sk.raw_decrypt(c) for c in dec_ints], len(dec_ints), args.repeats),
    )

    # add (ciphertext + ciphertext)
    phe_nums = [phe_paillier.EncryptedNumber(phe_pk, int(c)) for c in cts]
    shifted = cts[1:] + cts[:1]
    phe_shifted = phe_nums[1:] + phe_nums[:1]
    record(
        "add",
        "ops/s",
        rate(lambda: [add(pk, a, b) for a, b in zip(cts, shifted)], n, args.repeats),
        rate(lambda: [a + b for a, b in zip(phe_nums, phe_shifted)], n, args.repeats),
    )

    # scalar multiply by a signed 20-bit int
    scalars = [rng.randrange(-(2**20) + 1, 2**20) for _ in range(n)]
    record(
        "mul by 20-bit int",
        "ops/s",
        rate(lambda: [mul_plain(pk, c, k) for c, k in zip(cts, scalars)], n, args.repeats),
        rate(lambda: [e * k for e, k in zip(phe_nums, scalars)], n, args.repeats),
    )

    # Σ cᵢ^{xᵢ} kernel over one column
    small_values = [rng.randrange(-(2**30), 2**30) for _ in range(n)]
    column = [enc.encrypt_raw(to_residue(pk, v)) for v in small_values]
    phe_column = [phe_paillier.EncryptedNumber(phe_pk, int(c)) for c in column]
    xs = [rng.randrange(-(2**20) + 1, 2**20) for _ in range(n)]
    expected = sum(v * x for v, x in zip(small_values, xs))
    assert from_residue(pk, sk.decrypt_raw(dot(pk, column, xs))) == expected
    phe_total = sum(e * x for e, x in zip(phe_column, xs))
    assert phe_sk.decrypt(phe_total) == expected
    record(
        f"sum c_i^x_i, column of {n}",
        "elements/s",
        rate(lambda: dot(pk, column, xs), n, args.repeats),
        rate(lambda: sum(e * x for e, x in zip(phe_column, xs)), n, args.repeats),
    )

    total_s = time.perf_counter() - started

    header = f"{'operation':<28} {'unit':<11} {'fedcredit':>12} {'phe':>12} {'speedup':>8}"
    print(f"Paillier {pk.bits}-bit, n={n}, median of {args.repeats} "
          f"(keygen {keygen_s:.2f} s, Encryptor table w={args.window_bits}: {table_s:.2f} s, "
          f"{enc.table_entries} entries ≈ {enc.table_entries * pk.ciphertext_bytes / 2**20:.0f} MiB)")
    print(header)
    print("-" * len(header))
    for name, row in results.items():
        print(f"{name:<28} {row['unit']:<11} {row['fedcredit']:>12,.0f} {row['phe']:>12,.0f} {row['speedup']:>7.1f}x")
    print(f"total {total_s:.1f} s")

    if args.json is not None:
        report = {
            "benchmark": "paillier",
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "config": {
                "bits": pk.bits,
                "n": n,
                "repeats": args.repeats,
                "phe_encrypt_n": len(phe_plain),
                "decrypt_n": len(dec_cts),
                "window_bits": args.window_bits,
                "seed": args.seed,
            },
            "setup_seconds": {"keygen": keygen_s, "encryptor_table": table_s, "total": total_s},
            "encryptor_table_entries": enc.table_entries,
            "results": results,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
