"""The evaluation report: its metrics against scikit-learn, scipy and hand examples; the HTML is offline, escaped and
renders its charts in a real browser; the CLI and the demo's glue build it from files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from fedcredit.protocols.hetero_lr import ks_statistic, split_train_test
from fedcredit.runtime.audit.evaluation import (
    PSI_FLOOR,
    build_evaluation,
    calibration,
    confusion_at,
    decile_table,
    evaluate_model,
    gain_curve,
    ks_curve,
    load_scores_csv,
    population_stability,
    psi_verdict,
    render_evaluation,
    roc_curve,
)
from fedcredit.runtime.errors import DataError

CHART_TITLES = ["ROC curve", "KS curve", "Cumulative gain and lift", "Score distribution of goods and bads",
                "Population stability of the score", "Calibration (reliability curve)"]


def _data(n: int = 3000, seed: int = 7, ties: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.22).astype(int)
    z = rng.normal(size=n) + 1.1 * y - 1.3
    p = 1.0 / (1.0 + np.exp(-z))
    if ties:
        p = np.round(p, 2)  # many equal scores
    weaker = 1.0 / (1.0 + np.exp(-(0.5 * z + rng.normal(size=n))))
    return y, p, weaker


# --------------------------------------------------------------------------- metrics against sklearn / scipy


@pytest.mark.parametrize("ties", [False, True])
def test_roc_and_auc_match_sklearn(ties: bool) -> None:
    y, p, _ = _data(ties=ties)
    roc = roc_curve(y, p)
    assert roc.auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    fpr, tpr, thr = sk_roc_curve(y, p, drop_intermediate=False)
    np.testing.assert_allclose(roc.fpr, fpr, atol=1e-12)
    np.testing.assert_allclose(roc.tpr, tpr, atol=1e-12)
    np.testing.assert_allclose(roc.thresholds[1:], thr[1:])
    # a score's orientation matters: the reversed score has AUC 1 - AUC
    assert roc_curve(y, -p).auc == pytest.approx(1.0 - roc.auc, abs=1e-12)


def test_brier_and_calibration_match_sklearn() -> None:
    y, p, _ = _data()
    cal = calibration(y, p)
    assert cal.brier == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    np.testing.assert_allclose([b.observed_rate for b in cal.bins], prob_true, atol=1e-12)
    np.testing.assert_allclose([b.mean_score for b in cal.bins], prob_pred, atol=1e-12)
    assert sum(b.n for b in cal.bins) == len(y)
    rate = y.mean()
    assert cal.brier_base_rate == pytest.approx(rate * (1 - rate))
    assert 0.0 < cal.brier_skill < 1.0
    # a bin edge falls in the lower bin, as in sklearn: 0.1 is in [0, 0.1]
    edge = calibration(np.array([0, 1, 0]), np.array([0.1, 0.15, 0.05]))
    assert [(b.low, b.n) for b in edge.bins] == [(0.0, 2), (0.1, 1)]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration(np.array([0, 1]), np.array([0.5, 1.5]))


@pytest.mark.parametrize("ties", [False, True])
def test_ks_matches_scipy_and_the_protocols_ks(ties: bool) -> None:
    from scipy.stats import ks_2samp

    y, p, _ = _data(ties=ties)
    ks = ks_curve(y, p)
    assert ks.ks == pytest.approx(ks_2samp(p[y == 1], p[y == 0]).statistic, abs=1e-12)
    assert ks.ks == pytest.approx(ks_statistic(y, p), abs=1e-12)
    # the cut-off reaches the gap: flag bad at score >= cut-off
    flag = p >= ks.cutoff
    assert abs(flag[y == 1].mean() - flag[y == 0].mean()) == pytest.approx(ks.ks, abs=1e-12)
    assert ks.flagged_share == pytest.approx(flag.mean())


# --------------------------------------------------------------------------- hand examples


def test_ks_by_hand() -> None:
    y = np.array([1, 1, 0, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    ks = ks_curve(y, s)
    # bads/goods at or above: .9: 1/3,0  .8: 2/3,0  .7: 2/3,1/3  .6: 1,1/3  .5: 1,2/3  .4: 1,1
    np.testing.assert_allclose(ks.cum_bad, [1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    np.testing.assert_allclose(ks.cum_good, [0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert ks.ks == pytest.approx(2 / 3)
    assert ks.cutoff == 0.8 and ks.flagged_share == pytest.approx(2 / 6)  # the first (highest) cut-off with the largest gap
    assert roc_curve(y, s).auc == pytest.approx(8 / 9)  # of 9 bad-good pairs, 8 are ordered right (0.6 < 0.7)


def test_psi_by_hand() -> None:
    expected = np.array([0.1, 0.2, 0.6, 0.7])  # 50% below 0.5, 50% at or above
    actual = np.array([0.1, 0.6, 0.7, 0.8])  # 25% / 75%
    psi = population_stability(expected, actual, edges=[0.5])
    hand = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert psi.value == pytest.approx(hand) and psi.value == pytest.approx(0.274653, abs=1e-6)
    assert [(b.expected_n, b.actual_n) for b in psi.bins] == [(2, 1), (2, 3)]
    assert psi.bins[0].low == -np.inf and psi.bins[-1].high == np.inf and psi.verdict == "significant shift"
    # a score equal to a cut point goes to the bin above it
    assert [b.actual_n for b in population_stability(expected, np.array([0.5]), edges=[0.5]).bins] == [0, 1]
    # an empty bin is floored, so the PSI stays finite: (1e-4 - 0.5) ln(1e-4 / 0.5) + (1 - 0.5) ln(1 / 0.5)
    empty = population_stability(expected, np.array([0.9, 0.9]), edges=[0.5])
    assert empty.value == pytest.approx((PSI_FLOOR - 0.5) * np.log(PSI_FLOOR / 0.5) + 0.5 * np.log(2.0))
    # default bins: the expected scores' deciles; the same distribution is stable (PSI 0)
    same = population_stability(np.arange(100.0), np.arange(100.0) + 0.05)
    assert len(same.bins) == 10 and all(b.expected_n == 10 for b in same.bins) and same.value == pytest.approx(0.0)
    assert (psi_verdict(0.05), psi_verdict(0.1), psi_verdict(0.2), psi_verdict(0.3)) == (
        "stable", "moderate shift", "moderate shift", "significant shift")


def test_lift_and_gain_by_hand() -> None:
    s = np.arange(1.0, 11.0)  # ten rows, scores 1..10
    y = np.zeros(10, dtype=int)
    y[[9, 8, 4]] = 1  # the bads score 10, 9 and 5
    gain = gain_curve(y, s)
    np.testing.assert_allclose(gain.population, np.arange(11) / 10)
    np.testing.assert_allclose(gain.captured, [0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(gain.lift[:2], [10 / 3, 10 / 3])  # the top 20% hold 2/3 of the bads
    deciles = decile_table(y, s)
    assert [r.bads for r in deciles] == [1, 1, 0, 0, 0, 1, 0, 0, 0, 0]
    assert deciles[0].lift == pytest.approx(1 / 0.3) and deciles[2].lift == 0.0
    assert deciles[1].cum_captured == pytest.approx(2 / 3) and deciles[1].cum_lift == pytest.approx((2 / 3) / 0.2)
    assert deciles[-1].cum_captured == pytest.approx(1.0) and deciles[-1].cum_lift == pytest.approx(1.0)
    assert (deciles[0].min_score, deciles[0].max_score) == (10.0, 10.0)
    ev = evaluate_model("m", y, s / 10)
    assert ev.captured_at(0.2) == pytest.approx(2 / 3) and ev.captured_at(0.55) == pytest.approx(5 / 6)  # interpolated


def test_confusion_table_by_hand() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.6, 0.4, 0.1])
    at_half, at_095, at_0 = confusion_at(y, p, [0.5, 0.95, 0.0])
    assert (at_half.tp, at_half.fp, at_half.tn, at_half.fn) == (1, 1, 1, 1)
    assert at_half.precision == 0.5 and at_half.recall == 0.5 and at_half.fpr == 0.5 and at_half.passed_bad_rate == 0.5
    assert (at_095.tp, at_095.fp, at_095.flagged_share) == (0, 0, 0.0) and np.isnan(at_095.precision)
    assert (at_0.tp, at_0.fp, at_0.flagged_share) == (2, 2, 1.0) and np.isnan(at_0.passed_bad_rate)
    assert confusion_at(y, p, [0.6])[0].fp == 1  # at the cut-off counts as flagged


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="0 \\(good\\) or 1 \\(bad\\)"):
        roc_curve(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="both goods and bads"):
        roc_curve(np.array([1, 1]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="one length"):
        roc_curve(np.array([0, 1, 1]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="finite"):
        roc_curve(np.array([0, 1]), np.array([0.1, np.nan]))


# --------------------------------------------------------------------------- the HTML page


def _evaluation(feature: str = "income", name: str = "joint") -> str:
    y, p, weaker = _data(n=1500)
    rng = np.random.default_rng(3)
    train = 1.0 / (1.0 + np.exp(-(rng.normal(size=4000) - 1.2)))
    ev = build_evaluation(y, {name: p, "bank only": weaker}, train_scores=train, subject="job-20261202-abc",
                          features={"bank": ["age", feature], "platform": ["tax_invoices"]}, notes=["a note"])
    return render_evaluation(ev)


def test_the_page_is_offline_and_has_every_chart_and_table() -> None:
    page = _evaluation()
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    lowered = page.lower()
    for forbidden in ("<script", "<link", "<img", "<iframe", "@import", "src="):
        assert forbidden not in lowered, forbidden
    # no reference to anything outside the page: every href points inside it, every url() too
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', page))
    assert all(u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", page))
    # the only http strings are the SVG and XLink namespace names (never fetched)
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    # six charts, each an inline <svg> with its title; ids are unique across them
    assert page.count("<svg") == 6
    assert re.findall(r"<svg[^>]*>\s*<title>([^<]*)</title>", page) == CHART_TITLES  # in the page's order
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    for table in ("comparison", "deciles", "cutoffs", "psi", "calibration", "features"):
        assert f'<table id="{table}">' in page, table
    assert page.count("<tr><td class=\"num\">") >= 10 + 9 + 10  # deciles, cut-offs 0.1..0.9, PSI bins
    assert "job-20261202-abc" in page and "a note" in page


def test_the_page_shows_the_numbers_it_computed() -> None:
    y, p, weaker = _data(n=1500)
    ev = build_evaluation(y, {"joint": p, "bank only": weaker}, train_scores=p)
    page = render_evaluation(ev)
    assert f"{roc_auc_score(y, p):.4f}" in page and f"{roc_auc_score(y, weaker):.4f}" in page
    assert f"{brier_score_loss(y, p):.4f}" in page
    assert ev.psi is not None and ev.psi.value == pytest.approx(0.0) and "stable" in page
    assert ev.primary.name == "joint" and [m.name for m in ev.compared] == ["bank only"]
    assert f"AUC {roc_auc_score(y, p) - roc_auc_score(y, weaker):+.4f}" in page
    without_psi = render_evaluation(build_evaluation(y, {"joint": p}))
    assert without_psi.count("<svg") == 5 and "no training-row scores were given" in without_psi


def test_long_curves_are_thinned_for_drawing_only() -> None:
    from fedcredit.runtime.audit.evaluation import _thin

    np.testing.assert_array_equal(_thin(10), np.arange(10))
    t = _thin(5000)
    assert len(t) <= 800 and t[0] == 0 and t[-1] == 4999 and np.all(np.diff(t) > 0)
    y, p, _ = _data(n=6000)
    ev = evaluate_model("m", y, p)
    assert len(ev.roc.fpr) > 800 and ev.auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)  # the metrics keep every point


def test_every_value_is_escaped() -> None:
    page = _evaluation(feature="<script>alert(1)</script>", name="joint <b>&amp; $x$</b>")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>" not in page and "joint &lt;b&gt;&amp;amp; $x$&lt;/b&gt;" in page


# --------------------------------------------------------------------------- a real browser


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed; cannot render the evaluation report in a browser")
def test_the_report_renders_its_charts_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "evaluation_report.html"
    page.write_text(_evaluation(feature="<script>alert(1)</script>"), encoding="utf-8")
    flags = [str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    proc = subprocess.run([*flags, "--dump-dom", page.resolve().as_uri()], capture_output=True, timeout=120, check=False)
    dom = proc.stdout.decode("utf-8", "replace")
    assert "</html>" in dom, proc.stderr.decode("utf-8", "replace")[-2000:]
    # the DOM after load: six SVG charts, each with its title, and their drawn paths
    svgs = re.findall(r"<svg\b[^>]*>(.*?)</svg>", dom, flags=re.S)
    assert len(svgs) == 6
    assert sorted(re.search(r"<title>([^<]*)</title>", s).group(1) for s in svgs) == sorted(CHART_TITLES)  # type: ignore[union-attr]
    assert all(s.count("<path") > 20 for s in svgs)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and "<script" not in dom.lower()  # escaped, not run
    png = tmp_path / "evaluation_report.png"
    proc = subprocess.run([*flags, f"--screenshot={png}", "--window-size=1200,3000", page.resolve().as_uri()],
                          capture_output=True, timeout=120, check=False)
    assert png.is_file(), proc.stderr.decode("utf-8", "replace")[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000


# --------------------------------------------------------------------------- from files: the CLI and the demo's glue


def _scores_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, p, weaker = _data(n=800)
    train = np.clip(p[::-1] * 0.9, 0, 1)
    lines = ["split,label,joint,bank_only"] + [f"test,{a},{float(b)!r},{float(c)!r}" for a, b, c in zip(y, p, weaker)]
    lines += [f"train,0,{float(t)!r},0.5" for t in train]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return y, p, train


def test_scores_csv_and_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fedcredit.runtime.cli.main import app

    y, p, train = _scores_csv(tmp_path / "scores.csv")
    labels, scores, tr = load_scores_csv(tmp_path / "scores.csv", score_columns=["joint", "bank_only"])
    assert list(scores) == ["joint", "bank_only"] and tr is not None
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_allclose(scores["joint"], p)
    np.testing.assert_allclose(tr, train)
    out = tmp_path / "out" / "evaluation_report.html"
    run = CliRunner().invoke(app, ["report", "evaluation", str(tmp_path / "scores.csv"), "--out", str(out),
                                   "--scores", "joint,bank_only", "--subject", "job-x"])
    assert run.exit_code == 0, run.output
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") == 6 and f"{roc_auc_score(y, p):.4f}" in page and "job-x" in page
    assert f"{population_stability(train, p).value:.4f}" in page
    # a missing column or a label that is not 0/1: a DATA error naming the column, no traceback, no value
    run = CliRunner().invoke(app, ["report", "evaluation", str(tmp_path / "scores.csv"), "--out", str(out), "--scores", "nope"])
    assert run.exit_code == 2 and "missing column(s) nope" in run.output and "Traceback" not in run.output
    bad = tmp_path / "bad.csv"
    bad.write_text("label,score\n0,0.1\n7,0.2\n", encoding="utf-8")
    with pytest.raises(DataError, match="0 \\(good\\) or 1 \\(bad\\)"):
        load_scores_csv(bad)
    bad.write_text("label,score\n0,0.1\n1,1.2\n", encoding="utf-8")
    with pytest.raises(DataError, match="1 row\\(s\\) of score are not probabilities") as info:
        load_scores_csv(bad)
    assert "1.2" not in str(info.value)


def test_demo_glue_applies_both_parties_model_files(tmp_path: Path) -> None:
    """The demo's joint scores: each party's standardizer and weights on its own rows, summed, in the job's split."""
    from fedcredit.runtime.cli.demo_evaluation import demo_evaluation, sigmoid
    from fedcredit.runtime.config import DatasetConfig

    rng = np.random.default_rng(11)
    n = 400
    ids = [f"E{k:04d}" for k in range(n)]  # normalized, as PSI writes them
    g = rng.normal(size=(n, 2)) * [2.0, 5.0] + [1.0, -3.0]
    h = rng.normal(size=(n, 1)) * 3.0
    y = (rng.random(n) < 1 / (1 + np.exp(-(g[:, 0] + h[:, 0] / 3 - 1)))).astype(int)
    # the platform's file is in another order and holds an extra row
    perm = rng.permutation(n)
    (tmp_path / "g.csv").write_text("id,y,f1,f2\n" + "".join(f"{i},{a},{float(b)!r},{float(c)!r}\n" for i, a, (b, c) in zip(ids, y, g)), encoding="utf-8")
    (tmp_path / "h.csv").write_text("id,tax\n" + "".join(f"{ids[k]},{float(h[k, 0])!r}\n" for k in perm) + "zz9,1.0\n", encoding="utf-8")
    aligned = ids[::-1]  # the order PSI agreed on
    (tmp_path / "intersection.csv").write_text("id\n" + "".join(f"{i}\n" for i in aligned), encoding="utf-8")
    std = {"f1": {"mean": 1.0, "scale": 2.0, "clip": 3.0}, "f2": {"mean": -3.0, "scale": 5.0, "clip": 3.0}}
    (tmp_path / "g.json").write_text(json.dumps({"features": {"f1": 0.8, "f2": -0.1}, "intercept": -1.0, "standardizer": std}))
    (tmp_path / "h.json").write_text(json.dumps({"features": {"tax": 0.9}, "standardizer": {"tax": {"mean": 0.0, "scale": 3.0, "clip": 3.0}}}))
    pos = [ids.index(i) for i in aligned]
    z = (0.8 * np.clip((g[pos, 0] - 1) / 2, -3, 3) - 0.1 * np.clip((g[pos, 1] + 3) / 5, -3, 3) - 1.0
         + 0.9 * np.clip(h[pos, 0] / 3, -3, 3))
    tr, te = split_train_test(aligned, 5, 0.25)
    yy = y[pos]
    auc = roc_auc_score(yy[te], z[te])
    ev = demo_evaluation(guest_model=tmp_path / "g.json", host_model=tmp_path / "h.json", intersection=tmp_path / "intersection.csv",
                         guest_ds=DatasetConfig(path=tmp_path / "g.csv", id_column="id", label_column="y"),
                         host_ds=DatasetConfig(path=tmp_path / "h.csv", id_column="id"), seed=5, test_fraction=0.25, clip=3.0,
                         l2=1e-3, job_id="job-1", guest="bank", host="platform", joint_auc=auc)
    joint, bank = ev.models
    assert joint.n == len(te) and joint.auc == pytest.approx(auc, abs=1e-12)
    assert joint.brier == pytest.approx(brier_score_loss(yy[te], sigmoid(z[te])))
    assert ev.psi is not None and ev.psi.value == pytest.approx(population_stability(sigmoid(z[tr]), sigmoid(z[te])).value)
    assert bank.name == "bank only (its own features)" and 0.5 < bank.auc < 1.0
    assert any("is equal to the AUC bank computed" in note for note in ev.notes)
    assert [(f.party, f.names) for f in ev.features] == [("bank", ("f1", "f2")), ("platform", ("tax",))]
    # secret-shared weights: no file holds them, the glue says so
    (tmp_path / "h.json").write_text(json.dumps({"features": ["tax"], "weight_shares": {}}))
    with pytest.raises(DataError, match="secret-shared"):
        demo_evaluation(guest_model=tmp_path / "g.json", host_model=tmp_path / "h.json", intersection=tmp_path / "intersection.csv",
                        guest_ds=DatasetConfig(path=tmp_path / "g.csv", id_column="id", label_column="y"),
                        host_ds=DatasetConfig(path=tmp_path / "h.csv", id_column="id"), seed=5, test_fraction=0.25, clip=3.0,
                        l2=1e-3, job_id="job-1", guest="bank", host="platform")


@pytest.mark.integration
def test_the_demo_report_of_a_real_job_has_the_jobs_own_auc(tmp_path: Path) -> None:
    """A real train job over mTLS (three processes); the report built from the parties' files has the AUC the bank computed."""
    from fedcredit.runtime.cli.client import OperatorClient
    from fedcredit.runtime.cli.demo import Cluster
    from fedcredit.runtime.cli.demo_evaluation import write_demo_evaluation
    from fedcredit.runtime.config import DatasetConfig, JobSpec, parse_config
    from helpers import BREAST_GUEST, BREAST_HOST

    guest_ds = DatasetConfig(path=BREAST_GUEST, id_column="id", label_column="y")
    host_ds = DatasetConfig(path=BREAST_HOST, id_column="id")
    spec = parse_config(JobSpec, {"kind": "train", "name": "eval", "purpose": "financing.credit_risk_model",
                                  "guest": {"party": "bank", "dataset": "breast"}, "host": {"party": "platform", "dataset": "breast"},
                                  "training": {"key_bits": 1024, "max_epochs": 2}, "evaluation": {"test_fraction": 0.25}, "seed": 3},
                        source="test job")
    with Cluster(tmp_path / "cluster", {"bank": {"breast": guest_ds}, "platform": {"breast": host_ds}}) as cluster:
        with OperatorClient(cluster.client_config()) as client:
            info = client.wait(client.submit(spec).job_id, timeout_s=300)
    assert info.state == "succeeded", info.error
    joint = cluster.party_result("bank", info.job_id)["metrics"]["joint"]
    out = write_demo_evaluation(tmp_path / "audit" / "evaluation_report.html", guest_files=cluster.party_store("bank").job(info.job_id),
                                host_files=cluster.party_store("platform").job(info.job_id), guest_ds=guest_ds, host_ds=host_ds,
                                spec=spec, job_id=info.job_id, guest="bank", host="platform", joint_auc=joint["auc"])
    assert isinstance(out, Path), out
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") == 6 and info.job_id in page
    assert f"is equal to the AUC bank computed in the job ({joint['auc']:.6f})" in page
    assert f"Evaluated on {joint['n_test']} rows" in page
