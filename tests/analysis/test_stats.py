"""Statistics. Oracles: scipy.stats.bootstrap (percentile), scipy.stats.wilcoxon, hand-computed Holm."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.stats import _holm, bootstrap_mean_ci, paired_comparisons, summarize_scores


def test_bootstrap_ci_matches_scipy_percentile_bootstrap():
    x = np.random.default_rng(3).gamma(2.0, size=150)
    mean, low, high = bootstrap_mean_ci(x, n_resamples=20_000, seed=1)
    reference = stats.bootstrap((x,), np.mean, method="percentile", n_resamples=20_000, random_state=2)
    assert mean == pytest.approx(x.mean())
    # Two independent Monte-Carlo estimates of the same quantiles: agree to ~1 % of the CI width.
    width = high - low
    assert low == pytest.approx(reference.confidence_interval.low, abs=0.03 * width)
    assert high == pytest.approx(reference.confidence_interval.high, abs=0.03 * width)


def test_bootstrap_edge_cases():
    assert np.isnan(bootstrap_mean_ci([np.nan, np.nan])).all()
    assert bootstrap_mean_ci([2.0]) == (2.0, 2.0, 2.0)
    assert bootstrap_mean_ci([1.0, 2.0, 3.0], seed=5) == bootstrap_mean_ci([1.0, 2.0, 3.0], seed=5)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean_ci([1.0, 2.0], confidence=1.5)


def _scores():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        base = rng.normal()
        for name, shift in (("a", 0.0), ("b", 0.5), ("c", 0.02)):
            rows.append({"image": f"i{i}", "map": name, "metric": "nss", "value": base + shift + 0.1 * rng.normal()})
    return pd.DataFrame(rows)


def test_summary_has_one_row_per_map_and_metric():
    summary = summarize_scores(_scores(), n_resamples=1000)
    assert list(summary["map"]) == ["a", "b", "c"]
    assert (summary["n_images"] == 40).all()
    assert ((summary["ci_low"] <= summary["mean"]) & (summary["mean"] <= summary["ci_high"])).all()


def test_paired_comparisons_use_wilcoxon_and_holm():
    scores = _scores()
    table = paired_comparisons(scores, metric="nss", n_resamples=1000)
    wide = scores.pivot(index="image", columns="map", values="value")
    ab = table[(table.map_a == "a") & (table.map_b == "b")].iloc[0]
    assert ab.p_value == pytest.approx(stats.wilcoxon(wide["a"] - wide["b"]).pvalue)
    assert ab.mean_difference == pytest.approx((wide["a"] - wide["b"]).mean())
    assert ab.ci_high < 0  # b is clearly higher
    np.testing.assert_allclose(table["p_holm"], _holm(table["p_value"].to_numpy()))
    with pytest.raises(ValueError, match="no scores for metric"):
        paired_comparisons(scores, metric="cc")


def test_holm_by_hand():
    # p sorted 0.01, 0.02, 0.04 → ×3, ×2, ×1 = 0.03, 0.04, 0.04 (monotone), NaN untouched.
    np.testing.assert_allclose(_holm(np.array([0.04, 0.01, np.nan, 0.02])), [0.04, 0.03, np.nan, 0.04])
