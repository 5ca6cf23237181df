"""The centralized scorecard reference (#15, demo and benchmark only): plain pandas counts, the job's rules."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedcredit.protocols.binning import FeatureBins, SecureBinningParams, count_bins, fit_features
from fedcredit.runtime.reference import _pandas_counts, centralized_scorecard
from helpers import DATA


def test_pandas_counts_equal_the_protocol_layers_counts_with_missing_values() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=2000)
    x[rng.choice(2000, 90, replace=False)] = np.nan
    y = (rng.random(2000) < 0.3).astype(int)
    for bins in (fit_features(x[:, None], ["f"], n_bins=8, min_rows=1)[0], FeatureBins("f", (-0.5, 0.0, 0.7), 1)):
        want, got = count_bins(bins, x, y), _pandas_counts(bins, x, y)
        assert got.rows.tolist() == want.rows.tolist() and got.bads is not None and want.bads is not None
        assert got.bads.tolist() == want.bads.tolist()
    assert fit_features(x[:, None], ["f"], n_bins=8, min_rows=1)[0].missing == "separate"


def test_centralized_scorecard_on_default_credit() -> None:
    g = pd.read_csv(DATA / "default_credit_hetero_guest.csv", dtype={"id": str}).iloc[:6000]
    h = pd.read_csv(DATA / "default_credit_hetero_host.csv", dtype={"id": str}).set_index("id").loc[g["id"]]
    gcols = [c for c in g.columns if c not in ("id", "y")]
    out = centralized_scorecard(g[gcols].to_numpy(float), gcols, h.to_numpy(float), list(h.columns), g["y"].to_numpy(int), list(g["id"]),
                                seed=42, test_fraction=0.2, params=SecureBinningParams(min_bin_rows=100, min_bin_events=5))
    assert out["n_test"] == 1200 and 0.7 < out["auc"] < 0.85 and 0.3 < out["ks"] < 0.6
    assert set(out["iv"]) == {"guest", "host"} and out["selected"]["host"][0] == "x5"  # the platform's strongest feature
    assert all(out["iv"]["guest"][n] >= 0.02 for n in out["selected"]["guest"])
