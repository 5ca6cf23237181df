#!/usr/bin/env python
"""Scorecard on default_credit (#15): binning → secure per-bin counts → WOE/IV → selection → two-party LR → points.

Everything in one process, both roles driven by ``run_local`` (no network, no
relay; the runtime job ``kind: scorecard`` does not exist yet):

1. the job's split (:func:`split_train_test`, seed 42, 20 % test);
2. each party bins its own training features (quantile, ``--bins``, bins under
   ``--min-rows`` merged); the bank counts its own bins from its labels, the
   platform gets its counts from the secure protocol (:mod:`fedcredit.protocols.binning.protocol`,
   a ``--key-bits`` Paillier key of the bank's) -- timed, with its ciphertext bytes;
3. WOE/IV per feature; features with IV ≥ 0.02 kept, then within each party the
   lower-IV feature of every pair with |r| > 0.7 (on the WOE columns) dropped;
4. the two-party LR (Paillier, ``reveal_weights: owner``) on the WOE columns: each
   party learns its own weights, the bank its intercept;
5. each party's scorecard (600 / 20 / 50:1), total points on the test rows.

Reference columns, same split: the centralized scorecard (one party holds
everything: the same bins and WOE, plaintext scikit-learn LR on the same WOE
columns), and the plain LR on the raw standardized features (scikit-learn).
The issue's goal: the federated scorecard's test AUC within 0.01 of the centralized one.

Usage::

    python benchmarks/scorecard_bench.py                    # ~1-3 minutes on 2 cores
    python benchmarks/scorecard_bench.py --json out.json --markdown tables.md
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from fedcredit.protocols.binning import (EncryptedLabels, MaskedBinSums, MaskedCounts, ScorecardParams, SecureBinningParams,
                                         drop_correlated, fit_features, guest_program, host_program, own_tables, render_iv,
                                         render_scorecard, score, scorecard_points, select_by_iv, woe_transform)
from fedcredit.protocols.core import Role, Send, run_local, tap
from fedcredit.protocols.hetero_lr import HeteroLRParams, split_train_test
from fedcredit.protocols.hetero_lr import two_party as tp
from fedcredit.protocols.hetero_lr.metrics import ks_statistic, roc_auc
from fedcredit.protocols.paillier import generate_keypair

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
G, H = Role.GUEST, Role.HOST


def load() -> tuple[list[str], np.ndarray, list[str], np.ndarray, list[str], np.ndarray]:
    g = pd.read_csv(DATA / "default_credit_hetero_guest.csv", dtype={"id": str})
    h = pd.read_csv(DATA / "default_credit_hetero_host.csv", dtype={"id": str})
    j = g.merge(h, on="id", suffixes=("_g", "_h"), validate="one_to_one")
    gcols = [c for c in g.columns if c not in ("id", "y")]
    hcols = [c for c in h.columns if c != "id"]
    xg = j[[c + "_g" if c in hcols else c for c in gcols]].to_numpy(float)
    xh = j[[c + "_h" if c in gcols else c for c in hcols]].to_numpy(float)
    return list(j["id"]), xg, [f"bank.{c}" for c in gcols], xh, [f"platform.{c}" for c in hcols], j["y"].to_numpy(int)


def payload_bytes(payload: object, cbytes: int) -> int:
    """Ciphertext bytes of a binning message at a fixed width (the runtime's codec has no binning messages yet)."""
    if isinstance(payload, (EncryptedLabels, MaskedBinSums)):
        return cbytes * len(payload.values)
    if isinstance(payload, MaskedCounts):
        return sum((int(v).bit_length() + 7) // 8 for v in payload.values)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--lr-key-bits", type=int, default=2048)
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--min-rows", type=int, default=100)
    ap.add_argument("--merge", default="none", choices=("none", "chimerge", "monotonic"))
    ap.add_argument("--binning-only", action="store_true", help="stop after the secure counts (no LR, no scorecard)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args(argv)

    ids, xg, gnames, xh, hnames, y = load()
    train, test = split_train_test(ids, 42, 0.2)
    params = SecureBinningParams(min_bin_rows=args.min_rows, min_bin_events=5, merge=args.merge, share_iv=True)

    gbins = fit_features(xg[train], gnames, n_bins=args.bins, min_rows=args.min_rows)
    gtables = own_tables(xg[train], y[train], gbins, params)
    hbins = fit_features(xh[train], hnames, n_bins=args.bins, min_rows=args.min_rows)
    t0 = time.perf_counter()
    key = generate_keypair(args.key_bits, random.SystemRandom())
    keygen_s = time.perf_counter() - t0
    sent: dict[str, int] = {}
    cbytes = key[0].ciphertext_bytes

    def count(action: object) -> None:
        if isinstance(action, Send):
            sent[action.step.wire] = sent.get(action.step.wire, 0) + payload_bytes(action.payload, cbytes)

    t0 = time.perf_counter()
    out = run_local({G: tap(guest_program(y[train], key, params, random.SystemRandom()), count),
                     H: tap(host_program(xh[train], hbins, params, random.SystemRandom()), count)})
    protocol_s = time.perf_counter() - t0
    htables = out[H].tables
    assert out[G].host_iv == out[H].iv

    iv = {t.name: t.iv for t in (*gtables, *htables)}
    if args.binning_only:
        print(json.dumps({"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "rows": int(len(train)),
                          "key_bits": args.key_bits, "keygen_s": round(keygen_s, 2), "protocol_s": round(protocol_s, 2),
                          "platform_bins": int(sum(b.n_bins for b in hbins)), "bytes": sent}, indent=2))
        return 0
    chosen = []
    for tables, x, names in ((gtables, xg, gnames), (htables, xh, hnames)):
        cand = [t for t in tables if t.name in select_by_iv({t.name: t.iv for t in tables}, 0.02)]
        w = woe_transform(cand, x[train][:, [names.index(t.name) for t in cand]])
        kept = set(drop_correlated(w, [t.name for t in cand], iv, 0.7))
        chosen.append([t for t in cand if t.name in kept])
    keep_g, keep_h = chosen

    def cols(tables: list, names: list[str], x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return x[rows][:, [names.index(t.name) for t in tables]]

    wg_tr, wg_te = woe_transform(keep_g, cols(keep_g, gnames, xg, train)), woe_transform(keep_g, cols(keep_g, gnames, xg, test))
    wh_tr, wh_te = woe_transform(keep_h, cols(keep_h, hnames, xh, train)), woe_transform(keep_h, cols(keep_h, hnames, xh, test))

    lr_params = replace(HeteroLRParams(), key_bits=args.lr_key_bits, seed=42)
    t0 = time.perf_counter()
    lr = run_local({G: tp.guest_program(wg_tr, y[train], wg_te, y[test], lr_params, random.SystemRandom()),
                    H: tp.host_program(wh_tr, wh_te, lr_params, random.SystemRandom())})
    lr_s = time.perf_counter() - t0
    gm, hm = lr[G], lr[H]
    sp = ScorecardParams()
    bank_card = scorecard_points(keep_g, gm.weights, sp, intercept=gm.intercept)
    platform_card = scorecard_points(keep_h, hm.weights, sp)
    points = score([(bank_card, cols(keep_g, gnames, xg, test)), (platform_card, cols(keep_h, hnames, xh, test))])
    fed = {"auc": roc_auc(y[test], -points), "ks": ks_statistic(y[test], -points)}

    central = LogisticRegression(max_iter=5000).fit(np.hstack([wg_tr, wh_tr]), y[train])
    zc = central.decision_function(np.hstack([wg_te, wh_te]))
    mu, sd = np.vstack([xg[train].T, xh[train].T]).mean(axis=1), np.vstack([xg[train].T, xh[train].T]).std(axis=1)
    xr_tr, xr_te = (np.hstack([xg[train], xh[train]]) - mu) / sd, (np.hstack([xg[test], xh[test]]) - mu) / sd
    plain = LogisticRegression(max_iter=5000).fit(xr_tr, y[train])
    zp = plain.decision_function(xr_te)

    result = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": platform.processor() or platform.machine(),
        "rows": {"train": int(len(train)), "test": int(len(test))},
        "binning": {"key_bits": args.key_bits, "keygen_s": round(keygen_s, 2), "protocol_s": round(protocol_s, 2),
                    "platform_features": len(hbins), "platform_bins": int(sum(b.n_bins for b in hbins)),
                    "bytes": sent, "merge": args.merge, "min_rows": args.min_rows},
        "iv": {k: round(v, 4) for k, v in sorted(iv.items(), key=lambda kv: -kv[1])},
        "selected": {"bank": [t.name for t in keep_g], "platform": [t.name for t in keep_h]},
        "lr": {"key_bits": args.lr_key_bits, "seconds": round(lr_s, 1), "epochs": gm.epochs},
        "metrics": {"scorecard": fed,
                    "centralized_scorecard": {"auc": roc_auc(y[test], zc), "ks": ks_statistic(y[test], zc)},
                    "plain_lr": {"auc": roc_auc(y[test], zp), "ks": ks_statistic(y[test], zp)}},
    }
    print(json.dumps(result, indent=2))
    md = "\n\n".join([render_iv({t.name: t.iv for t in gtables}, "bank"), render_iv({t.name: t.iv for t in htables}, "platform"),
                      render_scorecard(bank_card, "bank"), render_scorecard(platform_card, "platform")])
    print(md)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.markdown:
        args.markdown.write_text(md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
