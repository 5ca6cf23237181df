"""Make a realistic vertical split of the raw UCI credit data (run once; outputs are committed).

    python examples/make_uci_split.py

From ``examples/data/UCI_Credit_Card.csv`` it writes two files with what a new
user would bring, unlike the pre-scaled FATE splits:

* ``uci_bank.csv`` (guest): ``enterprise_id``, the label ``default.payment.next.month``,
  ``LIMIT_BAL``, ``PAY_0``, ``PAY_2``..``PAY_6``, ``BILL_AMT1``..``BILL_AMT6`` -- raw amounts up to ~1e6;
* ``uci_platform.csv`` (host): ``enterprise_id``, ``SEX``, ``EDUCATION``, ``MARRIAGE``, ``AGE``,
  ``PAY_AMT1``..``PAY_AMT6``, with about 0.5% of amounts missing.

Ids are synthetic 18-character unified social credit codes (统一社会信用代码) with
valid GB 32100-2015 check digits, derived from the UCI row ID. The bank holds
IDs 1..27000 and the platform IDs 3001..30000 (24,000 in common), in different
orders; 1% of the platform's codes are written in full-width characters and 1%
in lower case, as hand-keyed registers are, so PSI's id normalization matters.

    python examples/make_uci_split.py --keep-defaults 0.1

writes an imbalanced pair with the same columns, ``uci_imbalanced_guest.csv`` and
``uci_imbalanced_host.csv``: before the split it keeps every non-defaulting row and
a seeded random ``FRACTION`` of the defaulting rows (0.1: about 2.9% positives
instead of 22%), then splits as above.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fedcredit.protocols.psi.ids import uscc_check_digit  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
ORG_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def org_code(n: int) -> str:
    """A 9-character GB 11714 organization code with its check character."""
    body = f"{n:08d}"
    r = 11 - sum(ORG_CHARS.index(c) * w for c, w in zip(body, ORG_WEIGHTS)) % 11
    return body + ("X" if r == 10 else "0" if r == 11 else str(r))


def uscc(n: int) -> str:
    head = "91" + "310115" + org_code(n)  # 9 = registered by market regulator, 1 = enterprise; Shanghai Pudong
    return head + uscc_check_digit(head)


def fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


KEEP_DEFAULTS_SEED = 2027


def keep_defaults(rows: list[dict[str, str]], label: str, fraction: float) -> list[dict[str, str]]:
    """Every non-defaulting row and a seeded random ``fraction`` of the defaulting ones, in file order."""
    if not 0.0 < fraction <= 1.0:
        raise SystemExit("--keep-defaults must be in (0, 1]")
    defaults = [i for i, r in enumerate(rows) if r[label] == "1"]
    rng = np.random.default_rng(KEEP_DEFAULTS_SEED)
    kept = set(rng.choice(defaults, size=int(round(fraction * len(defaults))), replace=False).tolist())
    return [r for i, r in enumerate(rows) if r[label] != "1" or i in kept]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep-defaults", type=float, default=None, metavar="FRACTION",
                    help="keep only this fraction of the defaulting rows (seeded) and write the uci_imbalanced_* pair")
    args = ap.parse_args(argv)
    rows = list(csv.DictReader(open(DATA / "UCI_Credit_Card.csv", newline="")))
    rng = np.random.default_rng(2026)
    label = "default.payment.next.month"
    bank_out, plat_out = DATA / "uci_bank.csv", DATA / "uci_platform.csv"
    if args.keep_defaults is not None:
        rows = keep_defaults(rows, label, args.keep_defaults)
        bank_out, plat_out = DATA / "uci_imbalanced_guest.csv", DATA / "uci_imbalanced_host.csv"
    bank_cols = ["LIMIT_BAL", "PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"] + [f"BILL_AMT{i}" for i in range(1, 7)]
    plat_cols = ["SEX", "EDUCATION", "MARRIAGE", "AGE"] + [f"PAY_AMT{i}" for i in range(1, 7)]

    bank = [r for r in rows if int(r["ID"]) <= 27000]
    plat = [r for r in rows if int(r["ID"]) > 3000]
    bank = [bank[i] for i in rng.permutation(len(bank))]
    plat = [plat[i] for i in rng.permutation(len(plat))]

    with open(bank_out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["enterprise_id", label, *bank_cols])
        for r in bank:
            w.writerow([uscc(int(r["ID"])), r[label], *(r[c] for c in bank_cols)])

    with open(plat_out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["enterprise_id", *plat_cols])
        for r in plat:
            code = uscc(int(r["ID"]))
            u = rng.random()
            if u < 0.01:
                code = fullwidth(code)
            elif u < 0.02:
                code = code.lower()
            values = [r[c] if not (c.startswith("PAY_AMT") and rng.random() < 0.005) else "" for c in plat_cols]
            w.writerow([code, *values])
    positives = sum(r[label] == "1" for r in bank)
    print(f"wrote {bank_out} ({len(bank)} rows, {positives} defaults) and {plat_out} ({len(plat)} rows)")


if __name__ == "__main__":
    main()
