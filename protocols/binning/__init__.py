"""Scorecards: binning of each party's own features, secure per-bin label counts, WOE/IV, selection, points.

* :mod:`.bins` -- quantile / equal-width bins, missing values in their own bin,
  merging of small bins, chi-merge and monotonic merging (pure numpy, on counts);
* :mod:`.protocol` -- the secure per-bin label-count protocol (the bank's labels
  encrypted under its own key, summed per platform bin and masked), its step
  table and one generator per role;
* :mod:`.woe` -- WOE and IV per bin and feature, selection by IV and by
  correlation, scorecard points per party from base score / PDO / base odds.
"""

from .bins import (CHI2_95, MISSING, BinCounts, FeatureBins, chi_merge, count_bins, equal_width_bins, fit_bins, fit_features,
                   merge_small, monotonic_merge, quantile_bins)
from .protocol import (BinLayout, BinningStep, BinsTooSmall, EncryptedLabels, GuestBinningView, HostBinningResult, LabelKey,
                       LayoutDecision, MaskedBinSums, MaskedCounts, SecureBinningParams, SharedIv, check_layout, finish_bins,
                       guest_program, host_program, own_tables)
from .woe import (Scorecard, ScorecardParams, WoeTable, drop_correlated, render_iv, render_scorecard, score, scorecard_points,
                  select_by_iv, woe_table, woe_transform)

__all__ = [
    "CHI2_95", "MISSING", "BinCounts", "FeatureBins", "chi_merge", "count_bins", "equal_width_bins", "fit_bins", "fit_features",
    "merge_small", "monotonic_merge", "quantile_bins",
    "BinLayout", "BinningStep", "BinsTooSmall", "EncryptedLabels", "GuestBinningView", "HostBinningResult", "LabelKey",
    "LayoutDecision", "MaskedBinSums", "MaskedCounts", "SecureBinningParams", "SharedIv", "check_layout", "finish_bins",
    "guest_program", "host_program", "own_tables",
    "Scorecard", "ScorecardParams", "WoeTable", "drop_correlated", "render_iv", "render_scorecard", "score", "scorecard_points",
    "select_by_iv", "woe_table", "woe_transform",
]
