"""The demo's scoring step (#14): the held-out applicants through a private ``score`` job and the online RPC.

After the demo's training job, :func:`score_held_out` submits a batch ``score`` job over the bank's applicants
(private mode), then an online session, and calls the bank node's ``ScoreApplicant`` once per held-out
applicant (the rows the training evaluated on). It reports ``rows_scored``, ``auc`` on those rows (equal to
the training's ``metrics.joint.auc``: the same model on the same rows) and the online latency.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedcredit.protocols.hetero_lr import roc_auc, split_train_test

from .scoring import ScoringClient, dev_scoring_pki
from ..config import JobSpec, TlsConfig, parse_config

__all__ = ["scoring_settings", "score_held_out"]

PORT_FILE = "bank.scoring.port"


def scoring_settings(workdir: Path) -> tuple[dict[str, Any], TlsConfig]:
    """The bank node's ``scoring_service`` settings for the demo (a development PKI of its own), and the caller's TLS."""
    server, client = dev_scoring_pki(workdir / "bank-internal-pki")
    return {"scoring_service": {"port_file": str(workdir / PORT_FILE), "tls": {k: str(v) for k, v in server.model_dump().items()}}}, client


def score_held_out(cluster: Any, client: Any, spec: JobSpec, model_id: str, guest: str, guest_csv: Path, id_column: str,
                   label_column: str, caller_tls: TlsConfig, online_calls: int = 300) -> dict[str, Any]:
    """Score the held-out applicants (batch and online); the demo's ``scoring`` JSON section."""
    base = {"kind": "score", "name": "demo-score", "purpose": spec.purpose,
            "guest": {"party": spec.guest.party, "dataset": spec.guest.dataset, "columns": spec.guest.columns},
            "host": {"party": spec.host.party, "dataset": spec.host.dataset, "columns": spec.host.columns}, "seed": spec.seed}
    t = time.monotonic()
    job = client.wait(client.submit(parse_config(JobSpec, {**base, "scoring": {"model": model_id}}, source="demo score job")).job_id,
                      timeout_s=900)
    if job.state != "succeeded":
        return {"error": job.error}
    batch_s = time.monotonic() - t
    res = cluster.party_result(guest, job.job_id)["scoring"]
    scores = pd.read_csv(res["scores_file"], dtype=str).set_index("id")["probability"]
    aligned = list(pd.read_csv(cluster.party_store(guest).job(model_id).intersection, dtype=str)["id"])
    _, test = split_train_test(aligned, spec.seed, spec.evaluation.test_fraction)
    held = [aligned[i] for i in test]
    labels = pd.read_csv(guest_csv, dtype=str).set_index(id_column)[label_column].astype(int)
    found = [i for i in held if scores.get(i, "not_found") != "not_found"]
    p = np.array([float(scores[i]) for i in found])
    out: dict[str, Any] = {"job_id": job.job_id, "mode": res["mode"], "applicants": res["queries"], "not_found": res["not_found"],
                           "rows_scored": len(found), "held_out_rows": len(held), "auc": roc_auc(labels.loc[found].to_numpy(), p),
                           "batch_seconds": round(batch_s, 2), "scores_file": res["scores_file"]}

    session = client.submit(parse_config(JobSpec, {**base, "scoring": {"model": model_id, "online": True, "session_seconds": 300,
                                                                         "idle_seconds": 2}},
                                         source="demo online score job")).job_id
    port_file = cluster.workdir / PORT_FILE
    deadline = time.monotonic() + 120
    while not port_file.exists():
        if time.monotonic() > deadline:
            out["online"] = {"error": "the bank's ScoreApplicant did not start"}
            return out
        time.sleep(0.1)
    rpc = ScoringClient(f"127.0.0.1:{port_file.read_text()}", caller_tls)
    try:
        rpc.score(held[:1])  # the channel's TLS handshake
        lat, diff = [], 0.0
        for i in held[:online_calls]:
            t = time.perf_counter()
            s = rpc.score([i]).scores[0]
            lat.append(1000 * (time.perf_counter() - t))
            if s.found:
                diff = max(diff, abs(s.probability - float(scores[i])))
    finally:
        rpc.close()
    ended = client.wait(session, timeout_s=60)  # idle for 2 s: the session ends, both sides finish
    lat.sort()
    out["online"] = {"job_id": session, "state": ended.state, "calls": len(lat), "p50_ms": round(statistics.median(lat), 2),
                     "p99_ms": round(lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))], 2),
                     "max_abs_diff_vs_batch": diff}
    out["p99_ms"] = out["online"]["p99_ms"]
    return out
