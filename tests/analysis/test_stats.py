"""Statistics. Oracles: scipy.stats.bootstrap (percentile), hand-computed Holm;
for the participant level, the resampled data set built explicitly, scores drawn from a known
crossed model (image and participant effects), Kendall's W by hand."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import stats as lookwhere_stats
from analysis.stats import (
    _holm,
    bootstrap_mean_ci,
    kendalls_w,
    mixed_model,
    planned_contrasts,
    study_statistics,
    summarize_participant_scores,
    summarize_scores,
    two_way_resamples,
)


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


def test_holm_by_hand():
    # p sorted 0.01, 0.02, 0.04 → ×3, ×2, ×1 = 0.03, 0.04, 0.04 (monotone), NaN untouched.
    np.testing.assert_allclose(_holm(np.array([0.04, 0.01, np.nan, 0.02])), [0.04, 0.03, np.nan, 0.04])


# ------------------------------------------------------------------ participant-level statistics


def _crossed(
    rng,
    *,
    effects: dict[str, float],
    n_images=30,
    n_participants=8,
    image_sd=0.5,
    participant_sd=0.2,
    noise_sd=0.1,
    metric="cc",
) -> pd.DataFrame:
    """Scores drawn from value = effect[map] + image + participant + noise (crossed design)."""
    image_effect = rng.normal(0, image_sd, n_images)
    participant_effect = rng.normal(0, participant_sd, n_participants)
    rows = [
        {
            "image": f"i{i}",
            "participant": f"p{p}",
            "map": name,
            "metric": metric,
            "value": effect + image_effect[i] + participant_effect[p] + rng.normal(0, noise_sd),
        }
        for name, effect in effects.items()
        for i in range(n_images)
        for p in range(n_participants)
    ]
    return pd.DataFrame(rows)


def test_two_way_resampled_mean_is_the_mean_of_the_resampled_cells():
    # Oracle: the resampled data set built explicitly, each image and participant repeated as drawn.
    rng = np.random.default_rng(0)
    cube = rng.random((2, 4, 3))
    cube[1, 2, 0] = np.nan  # a missing cell
    images, participants = two_way_resamples(4, 3, n_resamples=5, seed=1)
    assert (images.sum(axis=1) == 4).all() and (participants.sum(axis=1) == 3).all()
    got = lookwhere_stats._resampled_means(cube, images, participants)
    for r in range(5):
        picked_i = np.repeat(np.arange(4), images[r].astype(int))
        picked_p = np.repeat(np.arange(3), participants[r].astype(int))
        for m in range(2):
            cells = cube[m][np.ix_(picked_i, picked_p)]
            assert got[m, r] == pytest.approx(np.nanmean(cells), abs=1e-12)


def test_two_way_intervals_cover_new_participants():
    # With one participant the bootstrap is over images only; with a participant effect the CI over
    # participants is wider than the image-only one would be.
    rng = np.random.default_rng(2)
    table = _crossed(rng, effects={"center_bias": 0.2, "model": 0.5}, participant_sd=0.3)
    summary = summarize_participant_scores(table, higher_is_better={"cc": True}, n_resamples=2000)
    model = summary[summary["map"] == "model"].iloc[0]
    assert model["ci_low"] < table[table["map"] == "model"]["value"].mean() < model["ci_high"]
    one = table[table["participant"] == "p0"]
    narrow = summarize_participant_scores(one, higher_is_better={"cc": True}, n_resamples=2000)
    assert model["n_participants"] == 8 and narrow["n_participants"].max() == 1
    assert model["rank"] == 1 and model["p_rank_first"] > 0.99


def test_planned_contrasts_name_the_better_map():
    rng = np.random.default_rng(3)
    effects = {"center_bias": 0.3, "strong": 0.6, "tied": 0.3, "weak": 0.5}
    cc_table = _crossed(rng, effects=effects)
    mae_table = _crossed(rng, effects=effects, metric="mae")  # lower is better: "strong" is worst here
    kinds = {"center_bias": "baseline", "strong": "cnn", "tied": "cnn", "weak": "cnn"}
    table = planned_contrasts(
        pd.concat([cc_table, mae_table]), higher_is_better={"cc": True, "mae": False}, kinds=kinds, n_resamples=2000
    )
    cc_rows = table[table["metric"] == "cc"].set_index(["map", "versus"])
    assert cc_rows.loc[("strong", "center_bias"), "better"] == "strong"
    assert cc_rows.loc[("tied", "center_bias"), "better"] == "neither (CI includes 0)"
    assert cc_rows.loc[("weak", "strong"), "better"] == "strong"  # the best model on CC is "strong"
    assert cc_rows.loc[("strong", "center_bias"), "mean_difference"] == pytest.approx(0.3, abs=0.03)
    assert cc_rows.loc[("strong", "center_bias"), "p_holm"] < 0.01
    mae_rows = table[table["metric"] == "mae"].set_index(["map", "versus"])
    assert mae_rows.loc[("strong", "center_bias"), "better"] == "center_bias"
    assert ("weak", "tied") in mae_rows.index  # "tied" has the lowest MAE of the models


def test_kendalls_w_hand_computed():
    # Three metrics rank four maps (rank 1 = highest): a 1, 1, 2; b 2, 2, 1; c 4, 3, 4; d 3, 4, 3.
    # Rank sums 4, 5, 11, 10 around 7.5 → S = 37, W = 12 S / (m² (n³ - n)) = 444 / 540 = 0.8222.
    means = {"cc": [4, 3, 1, 2], "nss": [4, 3, 2, 1], "sim": [3, 4, 1, 2]}
    summary = pd.DataFrame(
        [
            {"map": m, "metric": metric, "mean": value}
            for metric, values in means.items()
            for m, value in zip("abcd", values)
        ]
    )
    w, n_maps, n_metrics = kendalls_w(
        summary, higher_is_better={"cc": True, "nss": True, "sim": True}, maps=list("abcd")
    )
    assert (n_maps, n_metrics) == (4, 3) and w == pytest.approx(12 * 37 / (9 * 60))
    flipped = summary.assign(mean=lambda t: np.where(t["metric"] == "sim", -t["mean"], t["mean"]))
    w_lower, *_ = kendalls_w(flipped, higher_is_better={"cc": True, "nss": True, "sim": False}, maps=list("abcd"))
    assert w_lower == pytest.approx(w)  # "lower is better" ranks the other way round


def test_mixed_model_recovers_the_effects_it_was_drawn_from():
    rng = np.random.default_rng(5)
    table = _crossed(
        rng,
        effects={"center_bias": 0.2, "model": 0.45},
        n_images=25,
        n_participants=6,
        image_sd=0.4,
        participant_sd=0.25,
        noise_sd=0.05,
    )
    fit = mixed_model(table, metric="cc").set_index("term")
    assert fit["converged"].all()
    assert fit.loc["model", "estimate"] == pytest.approx(0.25, abs=0.02)
    assert fit.loc["model", "ci_low"] < 0.25 < fit.loc["model", "ci_high"]
    assert fit.loc["var(image)", "estimate"] == pytest.approx(0.4**2, rel=0.6)
    assert fit.loc["var(participant)", "estimate"] == pytest.approx(0.25**2, rel=0.8)
    assert fit.loc["var(residual)", "estimate"] == pytest.approx(0.05**2, rel=0.3)


def test_study_statistics_fits_the_mixed_model_unless_told_not_to():
    table = _crossed(
        np.random.default_rng(6), effects={"center_bias": 0.2, "model": 0.45}, n_images=8, n_participants=4
    )
    kinds = {"center_bias": "baseline", "model": "model"}
    fitted = study_statistics(table, table, higher_is_better={"cc": True}, kinds=kinds, n_resamples=50)
    assert "model" in set(fitted["mixed_model"]["term"])
    skipped = study_statistics(table, table, higher_is_better={"cc": True}, kinds=kinds, n_resamples=50, mixed=False)
    assert skipped["mixed_model"].empty
