"""Make the platform's example consent registry for default_credit (run once; the output is committed).

    python examples/make_consent_registry.py

Writes ``examples/data/default_credit_platform_consent.csv`` covering the ids of
``default_credit_hetero_host.csv``: about 95% hold a valid consent for
``financing.*``, and the rest show each way a consent can fail on 2026-11-30:
expired (1%), revoked (1%), for another purpose (1%), or missing (2%).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"


def main() -> None:
    ids = [row["id"] for row in csv.DictReader(open(DATA / "default_credit_hetero_host.csv", newline=""))]
    rng = np.random.default_rng(20261130)
    u = rng.random(len(ids))
    with open(DATA / "default_credit_platform_consent.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["enterprise_id", "purpose", "valid_from", "valid_to", "revoked"])
        for i, x in zip(ids, u):
            if x < 0.02:
                continue  # never consented
            if x < 0.03:
                w.writerow([i, "financing.*", "2024-01-01", "2025-12-31", ""])  # expired
            elif x < 0.04:
                w.writerow([i, "financing.*", "2025-01-01", "", "2026-06-01"])  # revoked
            elif x < 0.05:
                w.writerow([i, "marketing.campaigns", "2025-01-01", "", ""])  # another purpose
            else:
                w.writerow([i, "financing.*", "2025-01-01", "", ""])  # open-ended
    print(f"wrote {DATA / 'default_credit_platform_consent.csv'}")


if __name__ == "__main__":
    main()
