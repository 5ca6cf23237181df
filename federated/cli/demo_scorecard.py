"""``fedcredit demo --scorecard`` (#15): a ``scorecard`` job after the demo's plain LR job, and its report.

:func:`run_scorecard_job` submits a scorecard job on the same data, split and seed as the demo's train job
(binning, the secure per-bin counts, WOE/IV, selection, the two-party LR on the WOE columns, points).
:func:`scorecard_section` reads what the bank may show -- its own IV, the platform's IV only where the job shares
it, the scorecard's test AUC/KS -- prints the IV table, the metrics beside the plain LR's and a centralized
scorecard with the same bins (a demo-only reference), and returns the demo JSON's ``metrics.scorecard``, ``iv``,
``parties`` and ``scorecard`` sections.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from fedcredit.protocols.binning import Scorecard, render_scorecard

from ..config import DatasetConfig, JobSpec, parse_config
from ..node.data import load_dataset
from ..plan import plan_job
from ..reference import align_ids, centralized_scorecard

__all__ = ["scorecard_spec", "run_scorecard_job", "scorecard_section"]


def scorecard_spec(spec: JobSpec, *, share_iv: bool = True, settings: dict[str, Any] | None = None) -> JobSpec:
    """The demo's scorecard job: the train job's parties, columns, training, split and seed, ``kind: scorecard``."""
    body = json.loads(spec.canonical_json())
    body.update({"kind": "scorecard", "name": "demo-scorecard", "scorecard": {"share_iv": share_iv, **(settings or {})}})
    return parse_config(JobSpec, body, source="demo scorecard job")


def run_scorecard_job(client: Any, spec: JobSpec, console: Console) -> Any:
    """Submit the scorecard job and follow it; its final job info."""
    from .progress import follow_job

    info = client.submit(spec)
    console.print(f"submitted scorecard job [bold]{info.job_id}[/]: binning → WOE/IV → selection → LR → points")
    return follow_job(client, info.job_id, console=console)


def scorecard_section(cluster: Any, job_id: str, spec: JobSpec, guest_ds: DatasetConfig, host_ds: DatasetConfig,
                      joint: dict[str, Any], console: Console) -> dict[str, Any]:
    """The scorecard's part of the demo's output (module docstring), printed and returned."""
    guest, host = spec.guest.party, spec.host.party
    result = cluster.party_result(guest, job_id)
    bank = json.loads(cluster.party_store(guest).job(job_id).model.read_text(encoding="utf-8"))
    card = result["metrics"]["scorecard"]
    # IV: each party's own goes to its owner; the bank shows the platform's only where the job shared it
    iv: dict[str, dict[str, float]] = {guest: dict(bank["iv"])}
    if bank.get("peer_iv") is not None:
        iv[host] = dict(bank["peer_iv"])
    selected = {guest: list(bank["selected"])}
    plat = json.loads(cluster.party_store(host).job(job_id).model.read_text(encoding="utf-8"))  # the platform's own view
    selected_host = list(plat["selected"])

    table = Table(title="IV per feature (each party's own; the platform's shown because the job shares it)"
                  if host in iv else "IV per feature (the bank's own; the platform keeps its IV)")
    for col in ("party", "feature", "IV", "strength", "selected"):
        table.add_column(col, justify="right" if col == "IV" else "left")
    for party, values in iv.items():
        chosen = selected[guest] if party == guest else selected_host
        for name in sorted(values, key=lambda n: (-values[n], n)):
            v = values[name]
            band = "useless" if v < 0.02 else "weak" if v < 0.1 else "medium" if v < 0.3 else "strong" if v < 0.5 else "suspicious"
            table.add_row(party, name, f"{v:.4f}", band, "yes" if name in chosen else "")
    console.print(table)

    plan = plan_job(spec)
    assert plan.scorecard is not None
    c = plan.scorecard
    g = load_dataset(guest_ds, require_label=True)
    h = load_dataset(host_ds, require_label=False)
    g_rows, h_rows, aligned = align_ids(g.ids, h.ids)
    intersection = cluster.party_store(guest).job(job_id).intersection
    if intersection.exists():  # the job's aligned ids (the host's consent registry may have dropped some)
        import pandas as pd

        ids = list(pd.read_csv(intersection, dtype=str)["id"])
        gi, hi = {v: k for k, v in enumerate(g.ids)}, {v: k for k, v in enumerate(h.ids)}
        g_rows, h_rows, aligned = [gi[i] for i in ids], [hi[i] for i in ids], ids
    assert g.labels is not None
    ref = centralized_scorecard(g.features[g_rows], g.feature_names, h.features[h_rows], h.feature_names, g.labels[g_rows], aligned,
                                seed=spec.seed, test_fraction=spec.evaluation.test_fraction, params=c.binning, method=c.method,
                                n_bins=c.n_bins, iv_threshold=c.iv_threshold, top_k=c.top_k, max_correlation=c.max_correlation,
                                points=c.points, l2=spec.training.l2)
    metrics = Table(title=f"Scorecard vs plain LR on {card['n_test']} held-out rows")
    for col in ("model", "AUC", "KS"):
        metrics.add_column(col, justify="left" if col == "model" else "right")
    metrics.add_row("plain LR, joint federated (fedcredit)", f"{joint['auc']:.4f}", f"{joint['ks']:.4f}")
    metrics.add_row("scorecard, federated (fedcredit)", f"{card['auc']:.4f}", f"{card['ks']:.4f}")
    metrics.add_row("scorecard, centralized, same bins (reference)", f"{ref['auc']:.4f}", f"{ref['ks']:.4f}")
    console.print(metrics)
    console.print(f"scorecard vs centralized scorecard AUC gap: {ref['auc'] - card['auc']:+.4f}; selected: {guest} "
                  f"{len(selected[guest])} features, {host} {len(selected_host)} (its own choice)")
    from ..audit import verify_transcripts

    verification = verify_transcripts(cluster.transcripts(job_id), ca_cert_pem=(cluster.certs / "ca.crt").read_bytes())
    console.print(f"scorecard job transcripts ({len(cluster.transcripts(job_id))}): "
                  + ("[bold green]verified[/]" if verification.ok else f"[bold red]NOT verified[/] ({len(verification.problems)} problems)"))
    bank_card = Scorecard.from_dict(bank["scorecard"])
    console.print(f"{guest}'s scorecard table (its part of the model package):\n" + render_scorecard(bank_card, guest))
    return {"metrics": {"auc": card["auc"], "ks": card["ks"], "n_test": card["n_test"],
                        "centralized_same_bins": {"auc": ref["auc"], "ks": ref["ks"]},
                        "auc_gap_vs_centralized": ref["auc"] - card["auc"]},
            "iv": iv, "parties": {"guest": guest, "hosts": [host]},
            "scorecard": {"job_id": job_id, "selected": {guest: selected[guest], host: selected_host},
                          "points": bank["points"], "base_points": bank_card.base_points,
                          "audit": {"verified": verification.ok, "problems": [p.message for p in verification.problems]},
                          "model_package": {p: str(cluster.party_store(p).model(job_id).folder) for p in (guest, host)}}}
