"""Scorecards (#15): binning, the secure per-bin label counts, WOE/IV, selection and points.

Hand examples pin the binning and merging rules; WOE and IV are checked against
a plain pandas computation on default_credit; the secure protocol's per-bin
counts must equal the plaintext counts exactly; scorecard points are checked
against a hand computation, and the total points' AUC against the WOE-LR's.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from fedcredit.protocols.binning import (
    MISSING, BinCounts, BinningStep, Scorecard, BinsTooSmall, FeatureBins, GuestBinningView, HostBinningResult, ScorecardParams,
    SecureBinningParams, check_layout, chi_merge, count_bins, drop_correlated, equal_width_bins, fit_features, guest_program,
    host_program, merge_small, monotonic_merge, own_tables, quantile_bins, render_iv, render_scorecard, score, scorecard_points,
    select_by_iv, woe_table, woe_transform)
from fedcredit.protocols.core import Ciphertext, Masked, Public, Aggregate, Role, run_local, tap
from fedcredit.protocols.errors import BudgetError, DataError
from fedcredit.protocols.hetero_lr.metrics import roc_auc
from helpers import DATA, paillier_keypair

G, H = Role.GUEST, Role.HOST


# --------------------------------------------------------------------------- data


def default_credit() -> tuple[np.ndarray, list[str], np.ndarray, list[str], np.ndarray]:
    """default_credit joined on id: (bank features, names, platform features, names, labels)."""
    g = pd.read_csv(DATA / "default_credit_hetero_guest.csv")
    h = pd.read_csv(DATA / "default_credit_hetero_host.csv")
    j = g.merge(h, on="id", suffixes=("_g", "_h"), validate="one_to_one")
    gcols = [c for c in g.columns if c not in ("id", "y")]
    hcols = [c for c in h.columns if c != "id"]
    xg = j[[c + "_g" if c in hcols else c for c in gcols]].to_numpy(float)
    xh = j[[c + "_h" if c in gcols else c for c in hcols]].to_numpy(float)
    return xg, [f"bank_{c}" for c in gcols], xh, [f"platform_{c}" for c in hcols], j["y"].to_numpy(int)


@pytest.fixture(scope="module")
def credit() -> tuple[np.ndarray, list[str], np.ndarray, list[str], np.ndarray]:
    return default_credit()


@pytest.fixture(scope="module")
def bank_key() -> tuple:
    return paillier_keypair(1024, 81)


def run(y: np.ndarray, x: np.ndarray, bins: list[FeatureBins], params: SecureBinningParams, key: tuple,
        **guest_kw: object) -> tuple[GuestBinningView, HostBinningResult]:
    out = run_local({G: guest_program(y, key, params, random.Random(1), **guest_kw),  # type: ignore[arg-type]
                     H: host_program(x, bins, params, random.Random(2))})
    return out[G], out[H]


# --------------------------------------------------------------------------- bins on hand examples


def test_quantile_bins_cut_at_data_values() -> None:
    x = np.arange(1.0, 9.0)  # 1..8
    b = quantile_bins(x, 4, "x")
    assert b.cuts == (2.0, 4.0, 6.0) and b.missing is None
    assert b.assign(x).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert b.labels() == ["(-inf, 2]", "(2, 4]", "(4, 6]", "(6, inf)"]
    # a discrete feature: repeated quantiles collapse, no bin is empty, no cut at the maximum
    d = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2], float)
    bd = quantile_bins(d, 5, "d")
    assert bd.cuts == (0.0, 1.0)
    assert count_bins(bd, d).rows.tolist() == [6, 2, 2]


def test_missing_values_get_their_own_bin() -> None:
    x = np.array([1, 2, 3, 4, np.nan, np.nan], float)
    b = quantile_bins(x, 2, "x")
    assert b.cuts == (2.0,) and b.missing == MISSING and b.n_bins == 3
    assert b.assign(x).tolist() == [0, 0, 1, 1, 2, 2]
    assert b.labels()[-1] == "missing"
    c = count_bins(b, x, np.array([0, 1, 0, 0, 1, 1]))
    assert c.rows.tolist() == [2, 2, 2] and c.bads.tolist() == [1, 0, 2]
    # no missing values when fitted: a missing value later falls in no bin (neutral WOE)
    assert quantile_bins(x[:4], 2).assign(np.array([np.nan])).tolist() == [-1]


def test_equal_width_bins_and_empty_bins_merged() -> None:
    x = np.array([0, 1, 2, 3, 9, 10], float)
    b = equal_width_bins(x, 5, "x")
    assert b.cuts == (2.0, 4.0, 6.0, 8.0)
    c = count_bins(b, x)
    assert c.rows.tolist() == [3, 1, 0, 0, 2]
    m, mc = merge_small(b, c, min_rows=1)
    # the two empty bins go first (each into its emptier neighbour), then nothing is under one row
    assert m.cuts == (2.0, 8.0) and mc.rows.tolist() == [3, 1, 2]
    assert count_bins(m, x).rows.tolist() == mc.rows.tolist()


def test_merge_small_by_rows_and_events() -> None:
    b = FeatureBins("x", (1.0, 2.0, 3.0))
    c = BinCounts(np.array([10, 3, 10, 12]), np.array([2, 1, 0, 6]))
    m, mc = merge_small(b, c, min_rows=5)  # bin 1 (3 rows): neighbours 10 and 10, the left one wins the tie
    assert m.cuts == (2.0, 3.0) and mc.rows.tolist() == [13, 10, 12] and mc.bads.tolist() == [3, 0, 6]
    m2, mc2 = merge_small(m, mc, min_rows=5, min_events=1)  # bin 1 has no bads: into its neighbour with fewer rows (12)
    assert m2.cuts == (2.0,) and mc2.rows.tolist() == [13, 22] and mc2.bads.tolist() == [3, 6]


def test_small_missing_bin_goes_to_the_nearest_bad_rate() -> None:
    b = FeatureBins("x", (1.0,), MISSING)
    c = BinCounts(np.array([100, 100, 4]), np.array([10, 50, 2]))
    m, mc = merge_small(b, c, min_rows=5)
    assert m.missing == 1 and m.n_bins == 2 and mc.rows.tolist() == [100, 104] and mc.bads.tolist() == [10, 52]
    assert m.assign(np.array([0.0, 5.0, np.nan])).tolist() == [0, 1, 1]
    assert m.labels() == ["(-inf, 1]", "(1, inf) or missing"]


def test_chi_merge_merges_the_most_similar_pair() -> None:
    b = FeatureBins("x", (1.0, 2.0, 3.0))
    c = BinCounts(np.array([100, 100, 100, 100]), np.array([10, 11, 40, 41]))
    m, mc = chi_merge(b, c, max_bins=6)
    # pairs (0,1) and (2,3) are alike (chi2 < 3.84), (01, 23) are not
    assert m.cuts == (2.0,) and mc.bads.tolist() == [21, 81]
    m3, _ = chi_merge(FeatureBins("x", (1.0, 2.0, 3.0)), BinCounts(np.array([100] * 4), np.array([5, 30, 60, 90])), max_bins=3)
    assert len(m3.cuts) == 2  # all pairs differ: merged only down to max_bins


def test_monotonic_merge_pools_violators() -> None:
    b = FeatureBins("x", (1.0, 2.0, 3.0, 4.0))
    c = BinCounts(np.array([100] * 5), np.array([10, 20, 15, 40, 50]))
    m, mc = monotonic_merge(b, c)
    assert m.cuts == (1.0, 3.0, 4.0) and mc.bads.tolist() == [10, 35, 40, 50]
    rates = mc.bads / mc.rows
    assert (np.diff(rates) >= 0).all()
    d = BinCounts(np.array([100] * 3), np.array([50, 10, 20]))  # decreasing trend
    md, mdc = monotonic_merge(FeatureBins("x", (1.0, 2.0)), d)
    assert md.cuts == (1.0,) and mdc.bads.tolist() == [50, 30]


def test_fit_features_merges_bins_under_the_minimum(credit: tuple) -> None:
    _, _, xh, names, _ = credit
    bins = fit_features(xh, names, n_bins=20, min_rows=500)
    for j, b in enumerate(bins):
        rows = count_bins(b, xh[:, j]).rows
        assert rows.min() >= 500 and rows.sum() == len(xh)


# --------------------------------------------------------------------------- WOE / IV against pandas


def pandas_woe_iv(x: np.ndarray, y: np.ndarray, b: FeatureBins, smoothing: float = 0.5) -> tuple[list[float], float]:
    """Independent plain-pandas WOE/IV of numeric bins (pd.cut, right-closed), the usual smoothing."""
    df = pd.DataFrame({"bin": pd.cut(x, [-np.inf, *b.cuts, np.inf], right=True, labels=False), "y": y})
    t = df.groupby("bin")["y"].agg(["count", "sum"]).reindex(range(len(b.cuts) + 1), fill_value=0)
    bad, good = t["sum"].astype(float), (t["count"] - t["sum"]).astype(float)
    zero = (bad == 0) | (good == 0)
    bad_s, good_s = bad + smoothing * zero, good + smoothing * zero
    woe = np.log((good_s / good.sum()) / (bad_s / bad.sum()))
    iv = ((good_s / good.sum() - bad_s / bad.sum()) * woe).sum()
    return woe.tolist(), float(iv)


def test_woe_iv_equal_pandas_on_default_credit(credit: tuple) -> None:
    xg, gnames, _, _, y = credit
    params = SecureBinningParams(min_bin_rows=100, min_bin_events=0)
    bins = fit_features(xg, gnames, n_bins=10, min_rows=100)
    tables = own_tables(xg, y, bins, params)
    for j, t in enumerate(tables):
        woe, iv = pandas_woe_iv(xg[:, j], y, t.bins)
        np.testing.assert_allclose(t.woe, woe, rtol=1e-12, atol=1e-12)
        assert t.iv == pytest.approx(iv, rel=1e-12)
    assert max(t.iv for t in tables) > 0.1  # not a vacuous comparison: some bank feature carries signal
    # the WOE transform matches the table
    w = woe_transform(tables, xg)
    assert w.shape == xg.shape and np.allclose(w[:, 0], np.asarray(tables[0].woe)[tables[0].bins.assign(xg[:, 0])])


def test_woe_smoothing_for_empty_classes() -> None:
    b = FeatureBins("x", (1.0,))
    t = woe_table(b, BinCounts(np.array([10, 10]), np.array([0, 4])))
    # bin 0: 0 bads, 10 goods -> (10.5/16) / (0.5/4); bin 1: 4 bads, 6 goods
    assert t.woe[0] == pytest.approx(math.log((10.5 / 16) / (0.5 / 4)))
    assert t.woe[1] == pytest.approx(math.log((6 / 16) / (4 / 4)))
    with pytest.raises(DataError):
        woe_table(b, BinCounts(np.array([10, 10]), np.array([0, 0])))


# --------------------------------------------------------------------------- the secure per-bin counts


def test_secure_counts_equal_plaintext_counts(credit: tuple, bank_key: tuple) -> None:
    _, _, xh, hnames, y = credit
    rows = np.random.default_rng(3).choice(len(y), 3000, replace=False)
    x, yy = xh[rows].copy(), y[rows]
    x[::17, 2] = np.nan  # some missing values: a bin of their own
    params = SecureBinningParams(min_bin_rows=60, batch_size=700)
    bins = fit_features(x, hnames, n_bins=10, min_rows=60)
    assert bins[2].missing == MISSING
    log: list = []
    out = run_local({G: guest_program(yy, bank_key, params, random.Random(1)),
                     H: tap(host_program(x, bins, params, random.Random(2)), log.append)})
    guest, host = out[G], out[H]
    for j, (b, c) in enumerate(zip(host.sent_bins, host.counts)):
        plain = count_bins(b, x[:, j], yy)
        assert c.rows.tolist() == plain.rows.tolist() and c.bads.tolist() == plain.bads.tolist()
    # the released tables are the plaintext computation on those counts
    for t, ref in zip(host.tables, own_tables(x, yy, bins, params)):
        assert t.woe == ref.woe and t.rows == ref.rows
    assert guest.bin_rows == tuple(tuple(int(v) for v in c.rows) for c in host.counts)
    assert guest.host_iv is None  # share_iv is off: no IV step
    sent = [a.step for a in log if hasattr(a, "payload")]
    assert BinningStep.IV not in sent and sent.count(BinningStep.LAYOUT) == 1


def test_iv_goes_to_the_bank_only_with_share_iv(credit: tuple, bank_key: tuple) -> None:
    _, _, xh, hnames, y = credit
    x, yy = xh[:1500, :3], y[:1500]
    params = SecureBinningParams(min_bin_rows=50, share_iv=True)
    guest, host = run(yy, x, fit_features(x, hnames[:3], n_bins=5, min_rows=50), params, bank_key)
    assert guest.host_iv == host.iv and set(guest.host_iv) == set(hnames[:3])
    assert host.bank_iv is None
    # the bank's own IV goes the other way only with share_bank_iv
    both = SecureBinningParams(min_bin_rows=50, share_bank_iv=True)
    bank_iv = {"bank_x0": 0.3}
    guest, host = run(yy, x, fit_features(x, hnames[:3], n_bins=5, min_rows=50), both, bank_key, own_iv=bank_iv)
    assert guest.host_iv is None and host.bank_iv == bank_iv
    with pytest.raises(DataError):
        run(yy, x, fit_features(x, hnames[:3], n_bins=5, min_rows=50), both, bank_key)


def test_step_table_classifies_every_payload() -> None:
    kinds = {s.wire: s.spec.payload.__mro__[1] for s in BinningStep}
    assert kinds == {"bin.setup": Public, "bin.layout": Public, "bin.decision": Public, "bin.labels": Ciphertext,
                     "bin.masked_sums": Masked, "bin.reply": Aggregate, "bin.iv": Aggregate, "bin.bank_iv": Aggregate}


def test_bank_refuses_bins_under_its_minimum(bank_key: tuple) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 1)), rng.integers(0, 2, 200)
    bins = [quantile_bins(x[:, 0], 10, "f")]  # 20 rows per bin
    log: list = []
    with pytest.raises(BinsTooSmall) as err:
        run_local({G: guest_program(y, bank_key, SecureBinningParams(min_bin_rows=10), random.Random(1), min_bin_rows=30),
                   H: tap(host_program(x, bins, SecureBinningParams(min_bin_rows=10), random.Random(2)), log.append)})
    assert "20" not in err.value.public_message  # what leaves the node names the policy, not a size
    # the bank stopped before encrypting a single label
    assert not any(getattr(a, "step", None) is BinningStep.LABELS for a in log)
    assert check_layout([[20] * 10], 200, 20) and not check_layout([[20] * 10], 200, 21)
    assert not check_layout([[20] * 9], 200, 1)  # sizes must add up to the rows


def test_platform_checks_its_own_bins_and_the_budget(bank_key: tuple) -> None:
    x, y = np.arange(100.0).reshape(-1, 1), np.array([0, 1] * 50)
    with pytest.raises(DataError):
        run(y, x, [quantile_bins(x[:, 0], 10, "f")], SecureBinningParams(min_bin_rows=11), bank_key)
    small = paillier_keypair(256, 5)
    with pytest.raises(BudgetError):
        run(y, x, [quantile_bins(x[:, 0], 2, "f")], SecureBinningParams(min_bin_rows=1, mask_bits=250), small)


# --------------------------------------------------------------------------- selection


def test_select_by_iv_threshold_and_top_k() -> None:
    iv = {"a": 0.5, "b": 0.01, "c": 0.2, "d": 0.2}
    assert select_by_iv(iv) == ["a", "c", "d"]
    assert select_by_iv(iv, threshold=0.1, top_k=2) == ["a", "c"]
    assert select_by_iv(iv, threshold=None, top_k=1) == ["a"]


def test_drop_correlated_keeps_the_higher_iv() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=500)
    x = np.column_stack([a, a * 2 + rng.normal(scale=0.01, size=500), rng.normal(size=500)])
    kept = drop_correlated(x, ["a", "a2", "z"], {"a": 0.1, "a2": 0.3, "z": 0.05}, threshold=0.7)
    assert kept == ["a2", "z"]
    assert drop_correlated(x, ["a", "a2", "z"], {"a": 0.4, "a2": 0.3, "z": 0.05}) == ["a", "z"]


# --------------------------------------------------------------------------- scorecard


def test_points_by_hand() -> None:
    p = ScorecardParams()  # 600 / 20 / 50:1
    factor = 20 / math.log(2)
    offset = 600 - factor * math.log(50)
    assert p.factor == pytest.approx(factor) and p.offset == pytest.approx(offset)
    t = woe_table(FeatureBins("f", (0.0,)), BinCounts(np.array([50, 50]), np.array([10, 30])))
    card = scorecard_points([t], [-0.8], p, intercept=-1.2)
    assert card.base_points == pytest.approx(offset + factor * 1.2)
    assert card.points[0][0] == pytest.approx(factor * 0.8 * t.woe[0])
    # an applicant at the base odds scores the base score; doubling the good odds adds PDO points
    z = math.log(1 / 50)  # log-odds of bad at good:bad = 50:1
    only = scorecard_points([], [], p, intercept=z)
    assert only.base_points == pytest.approx(600.0)
    assert scorecard_points([], [], p, intercept=z - math.log(2)).base_points == pytest.approx(620.0)
    back = Scorecard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert back == card
    x = np.array([[-1.0], [1.0], [np.nan]])
    assert back.partial_scores(x).tolist() == card.partial_scores(x).tolist()
    assert card.partial_scores(x)[2] == card.base_points  # a missing value without a bin: no points
    with pytest.raises(DataError):
        Scorecard.from_dict({"base_points": 0.0, "features": [{**card.to_dict()["features"][0], "points": [1.0]}]})
    assert "(base points)" in render_scorecard(card, "bank") and "| bank | f | (-inf, 0] | 50 | 0.200 |" in render_scorecard(card, "bank")


def test_total_points_auc_equals_the_woe_lr_auc(credit: tuple, bank_key: tuple) -> None:
    xg, gnames, xh, hnames, y = credit
    params = SecureBinningParams(min_bin_rows=200, min_bin_events=5)
    rows = np.random.default_rng(7).choice(len(y), 4000, replace=False)
    gt = own_tables(xg[rows], y[rows], fit_features(xg[rows], gnames, min_rows=200), params)
    _, host = run(y[rows], xh[rows], fit_features(xh[rows], hnames, min_rows=200), params, bank_key)
    ht = host.tables
    iv = {t.name: t.iv for t in (*gt, *ht)}
    keep_g = [t for t in gt if t.name in select_by_iv(iv, 0.02)]
    keep_h = [t for t in ht if t.name in select_by_iv(iv, 0.02)]
    wg, wh = woe_transform(keep_g, xg[rows][:, [gnames.index(t.name) for t in keep_g]]), \
        woe_transform(keep_h, xh[rows][:, [hnames.index(t.name) for t in keep_h]])
    lr = LogisticRegression(C=1e6, max_iter=2000).fit(np.hstack([wg, wh]), y[rows])
    w = lr.coef_[0]
    z = lr.decision_function(np.hstack([wg, wh]))
    bank = scorecard_points(keep_g, w[:len(keep_g)], intercept=float(lr.intercept_[0]))
    platform = scorecard_points(keep_h, w[len(keep_g):])
    assert platform.base_points == 0.0
    total = score([(bank, xg[rows][:, [gnames.index(t.name) for t in keep_g]]),
                   (platform, xh[rows][:, [hnames.index(t.name) for t in keep_h]])])
    np.testing.assert_allclose(total, ScorecardParams().offset - ScorecardParams().factor * z, rtol=0, atol=1e-8)
    assert roc_auc(y[rows], -total) == pytest.approx(roc_auc(y[rows], z), abs=1e-12)
    assert roc_auc(y[rows], z) > 0.7
    assert "| platform |" in render_iv({t.name: t.iv for t in ht}, "platform")


@pytest.mark.parametrize("merge", ["chimerge", "monotonic"])
def test_optimal_merging_on_the_secure_counts_equals_the_centralized(credit: tuple, bank_key: tuple, merge: str) -> None:
    """The platform merges on the counts the protocol gave it: the same released bins and WOE as a party holding
    both the features and the labels would get."""
    _, _, xh, hnames, y = credit
    x, yy = xh[:3000, 5:8], y[:3000]
    params = SecureBinningParams(min_bin_rows=60, min_bin_events=5, merge=merge, max_bins=4)
    bins = fit_features(x, hnames[5:8], n_bins=20, min_rows=60)
    _, host = run(yy, x, bins, params, bank_key)
    central = own_tables(x, yy, bins, params)
    for t, ref in zip(host.tables, central):
        assert t.bins == ref.bins and t.woe == ref.woe and t.bads == ref.bads
        rates = np.asarray(t.bads[:t.bins.n_numeric]) / np.asarray(t.rows[:t.bins.n_numeric])
        if merge == "monotonic":
            assert (np.diff(rates) >= 0).all() or (np.diff(rates) <= 0).all()
        else:
            assert t.bins.n_numeric <= 4
    assert any(len(t.bins.cuts) < len(b.cuts) for t, b in zip(host.tables, bins))  # it did merge
