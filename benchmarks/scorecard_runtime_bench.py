#!/usr/bin/env python
"""The runtime scorecard job (#15) against a centralized scorecard with the same bins, on default_credit and the raw-UCI pair.

For each data set, a coordinator and two party nodes run as separate processes over mTLS on localhost
(:class:`fedcredit.runtime.cli.demo.Cluster`) and a ``kind: scorecard`` job: PSI, each party's quantile bins,
the secure per-bin counts, WOE/IV, selection, the two-party LR on the WOE columns, points. The reference
(:func:`fedcredit.runtime.reference.centralized_scorecard`) pools the job's aligned rows and, with the same
split and the same bins, counts bads and goods per bin with plain pandas, merges, computes WOE, selects, and
fits scikit-learn's LR with the job's L2; a plain LR (scikit-learn on the standardized raw features) is printed
beside them. The issue's goal: the federated scorecard's test AUC within 0.01 of the centralized one.

Usage::

    python benchmarks/scorecard_runtime_bench.py                       # both data sets, 2048-bit keys
    python benchmarks/scorecard_runtime_bench.py --data default_credit --key-bits 1024 --json out.json --markdown cards.md
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from fedcredit.protocols.binning import Scorecard, render_iv, render_scorecard
from fedcredit.runtime.cli.client import OperatorClient
from fedcredit.runtime.cli.demo import Cluster
from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config
from fedcredit.runtime.node.data import load_dataset
from fedcredit.runtime.plan import plan_job
from fedcredit.runtime.reference import centralized_scorecard, reference_metrics

DATA = Path(__file__).resolve().parent.parent / "examples" / "data"
PURPOSE = "financing.credit_risk_model"
SETS = {
    "default_credit": (DatasetConfig(path=DATA / "default_credit_hetero_guest.csv", id_column="id", label_column="y"),
                       DatasetConfig(path=DATA / "default_credit_hetero_host.csv", id_column="id")),
    "uci_raw": (DatasetConfig(path=DATA / "uci_bank.csv", id_column="enterprise_id", label_column="default.payment.next.month"),
                DatasetConfig(path=DATA / "uci_platform.csv", id_column="enterprise_id")),
}


def run_one(name: str, key_bits: int, scorecard: dict[str, Any], workdir: Path) -> dict[str, Any]:
    guest_ds, host_ds = SETS[name]
    spec = parse_config(JobSpec, {"kind": "scorecard", "name": f"bench-{name}", "purpose": PURPOSE,
                                  "guest": {"party": "bank", "dataset": "d"}, "host": {"party": "platform", "dataset": "d"},
                                  "training": {"key_bits": key_bits}, "scorecard": {"share_iv": True, **scorecard}, "seed": 42},
                        source="benchmark job")
    policy = {"auto_approve": True, "min_intersection": 10, "allowed_purposes": [PURPOSE], "min_key_bits": min(2048, key_bits)}
    cluster = Cluster(workdir, {"bank": {"d": guest_ds}, "platform": {"d": host_ds}}, policies={"bank": policy, "platform": policy})
    t0 = time.monotonic()
    with cluster:
        with OperatorClient(cluster.client_config()) as client:
            info = client.wait(client.submit(spec).job_id, timeout_s=7200)
    seconds = time.monotonic() - t0
    if info.state != "succeeded":
        raise SystemExit(f"{name}: the scorecard job {info.state}: {info.error}")
    result = cluster.party_result("bank", info.job_id)
    bank = json.loads(cluster.party_store("bank").job(info.job_id).model.read_text(encoding="utf-8"))
    plat = json.loads(cluster.party_store("platform").job(info.job_id).model.read_text(encoding="utf-8"))
    ids = list(pd.read_csv(cluster.party_store("bank").job(info.job_id).intersection, dtype=str)["id"])
    g, h = load_dataset(guest_ds, require_label=True), load_dataset(host_ds, require_label=False)
    gi, hi = {v: k for k, v in enumerate(g.ids)}, {v: k for k, v in enumerate(h.ids)}
    gr, hr = [gi[i] for i in ids], [hi[i] for i in ids]
    assert g.labels is not None
    c = plan_job(spec).scorecard
    assert c is not None
    ref = centralized_scorecard(g.features[gr], g.feature_names, h.features[hr], h.feature_names, g.labels[gr], ids, seed=42,
                                test_fraction=spec.evaluation.test_fraction, params=c.binning, method=c.method, n_bins=c.n_bins,
                                iv_threshold=c.iv_threshold, top_k=c.top_k, max_correlation=c.max_correlation, points=c.points,
                                l2=spec.training.l2)
    plain = reference_metrics(g.features[gr], h.features[hr], g.labels[gr], ids, seed=42, test_fraction=spec.evaluation.test_fraction)
    fed = result["metrics"]["scorecard"]
    same_selection = ref["selected"]["guest"] == bank["selected"] and ref["selected"]["host"] == plat["selected"]
    return {"data": name, "rows": len(ids), "n_test": fed["n_test"], "job_seconds": round(seconds, 1),
            "bytes": result.get("bytes", {}), "federated": {"auc": fed["auc"], "ks": fed["ks"]},
            "federated_plain_lr_on_woe": result["metrics"]["joint"],
            "centralized_scorecard": {"auc": ref["auc"], "ks": ref["ks"]}, "auc_gap": fed["auc"] - ref["auc"],
            "plain_lr_sklearn": plain["plain_sklearn"], "same_selection": same_selection,
            "selected": {"bank": bank["selected"], "platform": plat["selected"]},
            "iv": {"bank": {k: round(v, 4) for k, v in bank["iv"].items()}, "platform": {k: round(v, 4) for k, v in plat["iv"].items()}},
            "markdown": "\n\n".join([f"### {name}", render_iv(bank["iv"], "bank"), render_iv(plat["iv"], "platform"),
                                      render_scorecard(Scorecard.from_dict(bank["scorecard"]), "bank"),
                                      render_scorecard(Scorecard.from_dict(plat["scorecard"]), "platform")])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=sorted(SETS), action="append", help="default: both")
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--min-rows", type=int, default=100)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path, help="each data set's IV tables and both parties' scorecards")
    args = ap.parse_args(argv)
    rows = []
    for name in args.data or sorted(SETS):
        with tempfile.TemporaryDirectory(prefix=f"scorecard-{name}-") as d:
            rows.append(run_one(name, args.key_bits, {"n_bins": args.bins, "min_bin_rows": args.min_rows}, Path(d)))
    out = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "machine": {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
           "key_bits": args.key_bits, "bins": args.bins, "min_bin_rows": args.min_rows, "results": rows}
    print("| data | rows (test) | federated scorecard AUC / KS | centralized scorecard, same bins AUC / KS | gap | "
          "plain LR (sklearn) AUC | same selection | job s |")
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        print(f"| {r['data']} | {r['rows']} ({r['n_test']}) | {r['federated']['auc']:.4f} / {r['federated']['ks']:.4f} | "
              f"{r['centralized_scorecard']['auc']:.4f} / {r['centralized_scorecard']['ks']:.4f} | {r['auc_gap']:+.4f} | "
              f"{r['plain_lr_sklearn']['auc']:.4f} | {r['same_selection']} | {r['job_seconds']} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    if args.markdown:
        args.markdown.write_text("\n\n".join(r["markdown"] for r in rows) + "\n")
    return 0 if all(abs(r["auc_gap"]) <= 0.01 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
