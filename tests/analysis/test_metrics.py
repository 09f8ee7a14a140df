"""Tests of analysis.metrics.

Oracles, per test: values computed by hand (stated next to each), literal Python transcriptions of
the MIT MATLAB loops (cvzoya/saliency ``code_forMetrics``), invariances that follow from the
definitions, and pysaliency 0.2.22 on real OSIE images and fixations.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pytest
import scipy.io
from scipy.ndimage import gaussian_filter

from analysis import metrics
from analysis.metrics import (
    METRICS,
    HumanTarget,
    auc_borji,
    auc_judd,
    auc_shuffled,
    cc,
    info_gain,
    kl_div,
    mae,
    nss,
    score_map,
    sim,
)

RNG = np.random.default_rng(20140801)
SHAPE = (60, 80)


def _smooth_map(rng: np.random.Generator, shape=SHAPE, sigma_px: float = 4.0) -> np.ndarray:
    return gaussian_filter(rng.random(shape), sigma_px)


def _fixation_counts(rng: np.random.Generator, n: int, shape=SHAPE) -> np.ndarray:
    counts = np.zeros(shape)
    np.add.at(counts, (rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)), 1.0)
    return counts


@pytest.fixture
def smooth():
    rng = np.random.default_rng(7)
    return _smooth_map(rng), _smooth_map(rng), _fixation_counts(rng, 60)


# ------------------------------------------------------------------ known answers (hand-computed)


def test_mae_hand_computed():
    s = np.array([[0.0, 1.0], [2.0, 3.0]])
    g = np.array([[0.0, 0.0], [0.0, 1.0]])
    # min-max: S -> [0, 1/3, 2/3, 1], G -> [0, 0, 0, 1]; |diff| = [0, 1/3, 2/3, 0], mean 1/4
    assert mae(s, g) == pytest.approx(0.25, abs=1e-15)
    # paper-literal eq. 15: |S - G| = [0, 1, 2, 2], mean 5/4
    assert mae(s, g, normalize="none") == pytest.approx(1.25, abs=1e-15)
    # a constant map min-maxes to zeros: mean of G scaled = 1/4
    assert mae(np.full((2, 2), 5.0), g) == pytest.approx(0.25, abs=1e-15)


def test_nss_of_a_single_spike():
    # One pixel = 1, the other N - 1 = 0, fixated once at the spike. mean = 1/N;
    # MATLAB std (N - 1): sqrt(1/N) -> NSS = (1 - 1/N) / sqrt(1/N) = (N - 1) / sqrt(N);
    # numpy std (N): sqrt(N - 1) / N -> NSS = sqrt(N - 1).
    n = SHAPE[0] * SHAPE[1]
    spike = np.zeros(SHAPE)
    spike[10, 20] = 1.0
    fixation_map = np.zeros(SHAPE)
    fixation_map[10, 20] = 3.0  # repeats change neither value: one fixated pixel
    assert nss(spike, fixation_map) == pytest.approx((n - 1) / np.sqrt(n), rel=1e-12)
    assert nss(spike, fixation_map, variant="pysaliency") == pytest.approx(np.sqrt(n - 1), rel=1e-12)


def test_nss_duplicates_count_once_in_mit_and_per_fixation_in_pysaliency():
    s = np.array([[0.0, 1.0], [2.0, 3.0]])
    fixations = np.array([[0.0, 3.0], [0.0, 1.0]])  # pixel value 1 fixated 3x, value 3 once
    z_mit = (np.array([1.0, 3.0]) - 1.5) / np.std([0, 1, 2, 3], ddof=1)
    assert nss(s, fixations) == pytest.approx(z_mit.mean(), rel=1e-12)
    z_pys = (np.array([1.0, 3.0]) - 1.5) / np.std([0, 1, 2, 3])
    assert nss(s, fixations, variant="pysaliency") == pytest.approx((3 * z_pys[0] + z_pys[1]) / 4, rel=1e-12)


def test_cc_of_a_map_with_itself_and_its_negative(smooth):
    s, _, _ = smooth
    assert cc(s, s) == pytest.approx(1.0, abs=1e-12)
    assert cc(s, -s) == pytest.approx(-1.0, abs=1e-12)


def test_sim_identical_is_one_and_disjoint_is_zero(smooth):
    s, _, _ = smooth
    assert sim(s, s) == pytest.approx(1.0, abs=1e-12)
    assert sim(s, s, variant="pysaliency") == pytest.approx(1.0, abs=1e-12)
    left, right = np.zeros(SHAPE), np.zeros(SHAPE)
    left[:, :40], right[:, 40:] = 1.0, 1.0
    assert sim(left, right) == 0.0


def test_kl_of_identical_maps_is_zero(smooth):
    s, _, _ = smooth
    # MIT: sum q log(eps + q / (q + eps)) = O(N eps), not exactly 0
    assert kl_div(s, s) == pytest.approx(0.0, abs=1e-9)
    assert kl_div(s, s, variant="pysaliency") == pytest.approx(0.0, abs=1e-15)


def test_kl_hand_computed():
    p = np.array([[1.0, 3.0]])  # -> [1/4, 3/4]
    q = np.array([[1.0, 1.0]])  # -> [1/2, 1/2]
    expected = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)
    assert kl_div(p, q) == pytest.approx(expected, rel=1e-12)
    assert kl_div(p, q, variant="pysaliency") == pytest.approx(expected, rel=1e-12)


def test_auc_judd_of_a_perfect_map_is_one_and_of_a_constant_map_one_half():
    rng = np.random.default_rng(1)
    fixation_map = _fixation_counts(rng, 40)
    perfect = (fixation_map > 0).astype(float)
    assert auc_judd(perfect, fixation_map) == 1.0
    assert auc_judd(perfect, fixation_map, jitter=False, variant="pysaliency") == 1.0
    # MIT without jitter on these ties: tp_i = i / F, fp_i = (F - i) / (N - F) (all F fixated pixels
    # pass every threshold), so the curve starts at fp = (F - 1) / (N - F) and walks back to 0.
    n_fix, n = int(perfect.sum()), perfect.size
    i = np.arange(1, n_fix + 1)
    tp = np.r_[0.0, i / n_fix, 1.0]
    fp = np.r_[0.0, (n_fix - i) / (n - n_fix), 1.0]
    assert auc_judd(perfect, fixation_map, jitter=False) == pytest.approx(np.trapezoid(tp, fp), abs=1e-15)
    # constant map: the jitter orders pixels at random, AUC ~ 0.5 (sd ~ 1 / sqrt(12 N_fix) = 0.007)
    many = _fixation_counts(rng, 2000, shape=(100, 100))
    assert auc_judd(np.ones((100, 100)), many, seed=3) == pytest.approx(0.5, abs=0.03)


def test_shuffled_auc_known_answers(smooth):
    s, _, _ = smooth
    fixation_map = np.zeros(SHAPE)
    fixation_map[20:30, 30:40] = 1.0
    # negatives = exactly the fixated pixels (all of them are drawn): tp = fp at every threshold
    assert auc_shuffled(s, fixation_map, fixation_map) == pytest.approx(0.5, abs=1e-15)
    # positives on a map value of 1, negatives on 0: tp = 1 while fp = 0 above threshold 0
    step_map = fixation_map.copy()
    other = np.zeros(SHAPE)
    other[0:5, 0:5] = 1.0
    assert auc_shuffled(step_map, fixation_map, other) == 1.0
    assert auc_borji(step_map, fixation_map) > 0.97  # 1 - E[fraction of draws on a fixation] / 2


def test_info_gain_hand_computed_and_baseline_against_itself(smooth):
    s = np.array([[0.0, 1.0], [1.0, 1.0]])  # min-max, / sum -> [0, 1/3, 1/3, 1/3]
    b = np.array([[0.0, 1.0], [2.0, 3.0]])  # min-max, / sum -> [0, 1/6, 1/3, 1/2]
    fixations = np.array([[0.0, 0.0], [0.0, 1.0]])
    assert info_gain(s, fixations, b) == pytest.approx(np.log2(2 / 3), rel=1e-12)
    map_, _, fixation_map = smooth
    assert info_gain(map_, fixation_map, map_) == 0.0
    assert info_gain(map_, fixation_map, map_, variant="pysaliency") == 0.0


# ------------------------------------------------------------------ literal MATLAB transcriptions


def _matlab_auc_judd(saliency_map, fixation_map, noise=None):
    """AUC_Judd.m line by line (its min-max after the jitter omitted: it does not change the order).
    The benchmark gives it maps read from 8-bit images, in [0, 1]: pass a min-max scaled map."""
    s = saliency_map.ravel() + (0.0 if noise is None else noise.ravel())
    thresholds = np.sort(s[fixation_map.ravel() > 0])[::-1]
    n_fix, n_pixels = thresholds.size, s.size
    tp, fp = np.zeros(n_fix + 2), np.zeros(n_fix + 2)
    tp[-1] = fp[-1] = 1.0
    for i in range(1, n_fix + 1):
        above = np.sum(s >= thresholds[i - 1])
        tp[i] = i / n_fix
        fp[i] = (above - i) / (n_pixels - n_fix)
    return np.trapezoid(tp, fp)


def _matlab_auc_borji(saliency_map, fixation_map, negative_index, step):
    """AUC_Borji.m / AUC_shuffled.m loop, given the random negative pixels (n_splits, n)."""
    s = (saliency_map.ravel() - saliency_map.min()) / (saliency_map.max() - saliency_map.min())
    positives = s[fixation_map.ravel() > 0]
    aucs = []
    for split in negative_index:
        negatives = s[split]
        top = max(positives.max(), negatives.max())
        thresholds = (step * np.arange(int(np.floor(top / step + 1e-9)) + 1))[::-1]
        tp = np.r_[0, [np.mean(positives >= t) for t in thresholds], 1]
        fp = np.r_[0, [np.mean(negatives >= t) for t in thresholds], 1]
        aucs.append(np.trapezoid(tp, fp))
    return np.mean(aucs)


@pytest.mark.parametrize("kind", ["smooth", "ties", "plateau"])
def test_auc_judd_without_jitter_equals_matlab_loop(kind):
    rng = np.random.default_rng(11)
    saliency_map = {
        "smooth": _smooth_map(rng),
        "ties": np.round(rng.random(SHAPE), 1),  # many ties, also among fixated values
        "plateau": np.pad(np.ones((20, 40)), 20),  # 60 x 80, ties at 0 and at 1
    }[kind]
    fixation_map = _fixation_counts(rng, 80)
    assert auc_judd(saliency_map, fixation_map, jitter=False) == pytest.approx(
        _matlab_auc_judd(saliency_map, fixation_map), abs=1e-12
    )


def _minmax(values: np.ndarray) -> np.ndarray:
    return (values - values.min()) / (values.max() - values.min())


def test_auc_judd_jitter_is_matlabs_whole_map_jitter_on_the_scaled_map():
    # MATLAB adds rand(size(map)) / 1e7 to every pixel of the benchmark's map, an 8-bit image read
    # into [0, 1]; ours min-max scales and adds the seeded noise field of the same shape, so the
    # result equals the MATLAB loop given that noise (ties, zero background and all), at any scale.
    rng = np.random.default_rng(5)
    saliency_map = (np.round(rng.random((40, 50)), 1) * (rng.random((40, 50)) < 0.5) + 2.0) * 1e-8
    fixation_map = _fixation_counts(rng, 60, shape=(40, 50))
    for seed in range(5):
        noise = metrics._judd_noise(seed, saliency_map.size, ("img",)).reshape(saliency_map.shape)
        assert auc_judd(saliency_map, fixation_map, seed=seed, stream=("img",)) == pytest.approx(
            _matlab_auc_judd(_minmax(saliency_map), fixation_map, noise), abs=1e-12
        )
    assert len({auc_judd(saliency_map, fixation_map, seed=seed) for seed in range(5)}) == 5
    # A jitter added to the raw map (AUC_Judd.m given a map of range 1e-8) reorders it: not ours.
    noise = metrics._judd_noise(0, saliency_map.size).reshape(saliency_map.shape)
    raw = _matlab_auc_judd(saliency_map, fixation_map, noise)
    assert abs(raw - auc_judd(saliency_map, fixation_map, seed=0)) > 0.01


def test_sampled_auc_equals_matlab_loop_for_the_same_draws(smooth):
    saliency_map, _, fixation_map = smooth
    n_fix = int((fixation_map > 0).sum())
    negative_index = np.random.default_rng(2).integers(0, saliency_map.size, size=(7, n_fix))
    ours = metrics._auc_sampled(
        metrics._Map(saliency_map), metrics._Fixations(fixation_map), negative_index, 0.1
    ).mean()
    assert ours == pytest.approx(_matlab_auc_borji(saliency_map, fixation_map, negative_index, 0.1), abs=1e-12)


def test_shuffled_draws_are_uniform_subsets():
    # MATLAB takes the first k of randperm: every k-subset equally likely. Chi-square over all 45
    # pairs of 10 elements (seeded, so the p-value is fixed; it is 0.84 here).
    from scipy.stats import chisquare

    draws = np.sort(metrics._distinct_draws(np.random.default_rng(1), 10, 2, 300_000), axis=1)
    assert (draws[:, 0] != draws[:, 1]).all()
    pair_counts = np.bincount(draws[:, 0] * 10 + draws[:, 1])
    assert chisquare(pair_counts[pair_counts > 0]).pvalue > 0.01
    assert np.count_nonzero(pair_counts) == 45


def test_negative_zero_in_a_map_is_handled():
    # -0.0 has its sign bit set; AUC-Judd must still order it with +0.0
    rng = np.random.default_rng(12)
    saliency_map = np.round(rng.random(SHAPE), 1)
    signed = saliency_map.copy()
    signed[saliency_map == 0] = -0.0
    fixation_map = _fixation_counts(rng, 80)
    assert auc_judd(signed, fixation_map, jitter=False) == auc_judd(saliency_map, fixation_map, jitter=False)
    assert auc_judd(signed, fixation_map) == auc_judd(saliency_map, fixation_map)


# ------------------------------------------------------------------ invariances


def test_affine_invariance(smooth):
    s, g, fixation_map = smooth
    scaled = 3.7 * s + 12.0
    other = _fixation_counts(np.random.default_rng(9), 200)
    cases: list[tuple[Callable[..., float], tuple[np.ndarray, ...]]] = [
        (nss, (fixation_map,)),
        (cc, (g,)),
        (sim, (g,)),  # MIT SIM min-maxes
        (auc_borji, (fixation_map,)),
        (auc_shuffled, (fixation_map, other)),
    ]
    for metric, args in cases:
        assert metric(scaled, *args) == pytest.approx(metric(s, *args), abs=1e-9), metric.__name__
    assert auc_judd(scaled, fixation_map, jitter=False) == pytest.approx(
        auc_judd(s, fixation_map, jitter=False), abs=1e-12
    )
    # with the jitter too: it is added to the min-max scaled map (a map's scale does not matter)
    tied = np.round(s * 20) * (s > np.median(s))
    for factor, offset in ((1e-6, 0.0), (3.7, 12.0)):
        assert auc_judd(tied * factor + offset, fixation_map) == pytest.approx(auc_judd(tied, fixation_map), abs=1e-12)


def test_sum_normalisation_invariance(smooth):
    s, g, _ = smooth
    for variant in ("mit", "pysaliency"):
        assert sim(5.0 * s, g, variant=variant) == pytest.approx(sim(s, g, variant=variant), abs=1e-12)
        assert kl_div(5.0 * s, 0.1 * g, variant=variant) == pytest.approx(kl_div(s, g, variant=variant), abs=1e-12)


def test_sim_offset_matters_only_for_pysaliency(smooth):
    s, g, _ = smooth
    s = s - s.min()
    assert sim(s + 1.0, g) == pytest.approx(sim(s, g), abs=1e-12)
    # pysaliency divides by the sum only: the offset flattens the distribution
    assert abs(sim(s + 1.0, g, variant="pysaliency") - sim(s, g, variant="pysaliency")) > 0.01


# ------------------------------------------------------------------ undefined results and validation


def test_undefined_results_are_nan_with_a_log_line(caplog, smooth):
    s, g, fixation_map = smooth
    empty = np.zeros(SHAPE)
    constant = np.full(SHAPE, 0.3)
    with caplog.at_level(logging.INFO, logger="analysis.metrics"):
        for value in (
            nss(s, empty),
            auc_judd(s, empty),
            auc_borji(s, empty),
            auc_shuffled(s, empty, fixation_map),
            auc_shuffled(s, fixation_map, empty),
            info_gain(s, empty, g),
            nss(constant, fixation_map),
            cc(constant, g),
            sim(constant, g),
            auc_judd(constant, fixation_map, jitter=False),
            auc_borji(constant, fixation_map),
            info_gain(constant, fixation_map, g),
        ):
            assert np.isnan(value)
    assert len(caplog.records) == 12
    assert all("undefined" in record.getMessage() for record in caplog.records)
    # pysaliency's conventions for constant maps
    assert nss(constant, fixation_map, variant="pysaliency") == 0.0
    assert cc(constant, g, variant="pysaliency") == 0.0
    assert sim(np.zeros(SHAPE), g) == 0.0  # MIT: an all-zero map stays zero


def test_score_map_never_raises_on_undefined_inputs(caplog, smooth):
    s, g, _ = smooth
    target = HumanTarget(human_map=g, fixation_map=np.zeros(SHAPE))
    with caplog.at_level(logging.INFO, logger="analysis.metrics"):
        scores = score_map(np.full(SHAPE, 2.0), target)
    assert list(scores) == list(METRICS)
    assert scores["mae"] == pytest.approx(mae(np.zeros(SHAPE), g))
    for name in ("nss", "cc", "sim", "auc_judd", "auc_borji", "auc_shuffled", "info_gain"):
        assert np.isnan(scores[name]), name
    assert any("no other_fixation_map" in r.getMessage() for r in caplog.records)
    assert any("no baseline_map" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda s: mae(s, np.zeros((3, 3))),
            r"same \(H, W\) shape.*saliency_map \(60, 80\).*human_map \(3, 3\)",
        ),
        (lambda s: nss(np.where(s > 0.5, np.nan, s), s), "saliency_map holds .* non-finite"),
        (lambda s: nss(s, -s), "fixation_map holds fixation counts and must be >= 0"),
        (
            lambda s: cc(s[None], s),
            r"saliency_map must be a 2-D \(H, W\) array; got shape \(1, 60, 80\)",
        ),
        # cast: a value the types forbid, refused at run time
        (lambda s: sim(s, s, variant=cast(Any, "matlab")), "variant must be one of"),
        (lambda s: mae(s, s, normalize=cast(Any, "max")), "normalize must be one of"),
        (lambda s: auc_borji(s, s, n_splits=0), "n_splits must be a positive integer; got 0"),
        (lambda s: auc_borji(s, s, step=2.0), "step must be <= 1"),
        (lambda s: auc_judd(s, s, seed=-1), "seed must be a non-negative integer; got -1"),
        (lambda s: score_map(s, HumanTarget(s, s), metrics=("nss", "emd")), r"unknown \['emd'\]"),
        (lambda s: HumanTarget(s, s, baseline_map=s[:10]), "baseline_map"),
    ],
)
def test_invalid_input_raises_naming_the_parameter(call, message, smooth):
    with pytest.raises(ValueError, match=message):
        call(smooth[0])


# ------------------------------------------------------------------ score_map


@pytest.mark.parametrize("variant", ["mit", "pysaliency"])
def test_score_map_equals_the_standalone_metrics(smooth, variant):
    s, g, fixation_map = smooth
    other = _fixation_counts(np.random.default_rng(4), 300)
    baseline = _smooth_map(np.random.default_rng(8), sigma_px=15.0)
    target = HumanTarget(g, fixation_map, other_fixation_map=other, baseline_map=baseline)
    scores = score_map(s, target, seed=5, variant=variant)
    expected = {
        "mae": mae(s, g),
        "nss": nss(s, fixation_map, variant=variant),
        "cc": cc(s, g, variant=variant),
        "sim": sim(s, g, variant=variant),
        "kl_div": kl_div(s, g, variant=variant),
        "auc_judd": auc_judd(s, fixation_map, seed=5, variant=variant),
        "auc_borji": auc_borji(s, fixation_map, seed=5),
        "auc_shuffled": auc_shuffled(s, fixation_map, other, seed=5),
        "info_gain": info_gain(s, fixation_map, baseline, variant=variant),
    }
    assert scores == pytest.approx(expected, abs=1e-12)
    assert score_map(s, target, seed=5, variant=variant, metrics=("auc_borji",)) == {"auc_borji": expected["auc_borji"]}


def test_random_metrics_are_seeded(smooth):
    s, _, fixation_map = smooth
    assert auc_borji(s, fixation_map, seed=1) == auc_borji(s, fixation_map, seed=1)
    assert auc_borji(s, fixation_map, seed=1) != auc_borji(s, fixation_map, seed=2)
    tied = np.round(s, 2)
    assert auc_judd(tied, fixation_map, seed=1) == auc_judd(tied, fixation_map, seed=1)


def test_every_target_draws_from_its_own_stream(smooth):
    s, _, fixation_map = smooth
    other = _fixation_counts(np.random.default_rng(9), 200)
    for metric, args in ((auc_borji, (fixation_map,)), (auc_shuffled, (fixation_map, other))):
        values = {metric(s, *args, stream=stream) for stream in [(), ("a",), ("b",), ("a", "p1"), ("a", "p2")]}
        assert len(values) == 5, metric.__name__
        assert metric(s, *args, stream=("a", "p1")) == metric(s, *args, stream=["a", "p1"])
    tied = np.round(s, 1)
    assert auc_judd(tied, fixation_map, stream=("a",)) != auc_judd(tied, fixation_map, stream=("b",))
    # score_map: the sampled AUCs draw per (image, participant), the AUC-Judd jitter per image
    target = HumanTarget(s, fixation_map, other_fixation_map=other)
    scores, errors = score_map(tied, target, stream=("a", "p1"), return_mc_se=True)
    assert scores["auc_borji"] == auc_borji(tied, fixation_map, stream=("a", "p1"))
    assert scores["auc_judd"] == auc_judd(tied, fixation_map, stream=("a",))
    assert set(errors) == {"auc_borji", "auc_shuffled"} and all(0 < e < 0.02 for e in errors.values())
    with pytest.raises(ValueError, match="stream must be a tuple of names"):
        auc_borji(s, fixation_map, stream=cast(Any, "a"))


def test_monte_carlo_error_of_a_mean_over_images_falls_as_one_over_sqrt_n():
    # Oracle: the spread over seeds. One map (as the centre bias, the same on every image) scored on
    # eight images with the same number of fixated pixels: with one stream for all (stream=()) every
    # image gets the same negative pixels and their errors add up; with a stream per image the error
    # of the 8-image mean is the single image's over sqrt(8).
    rng = np.random.default_rng(31)
    shared_map = _smooth_map(rng, sigma_px=6.0)
    images = []
    for _ in range(8):
        counts = np.zeros(SHAPE)
        counts.flat[rng.choice(counts.size, 40, replace=False)] = 1.0
        images.append((shared_map, counts))
    seeds = range(60)

    def spread(per_image_stream: bool) -> tuple[float, float, np.ndarray]:
        values = np.array(
            [
                [
                    auc_borji(m, f, seed=seed, stream=(str(k),) if per_image_stream else ())
                    for k, (m, f) in enumerate(images)
                ]
                for seed in seeds
            ]
        )
        return values.std(axis=0, ddof=1).mean(), values.mean(axis=1).std(ddof=1), values.std(axis=0, ddof=1)

    single, of_mean, _ = spread(True)
    assert of_mean / single == pytest.approx(1 / np.sqrt(8), rel=0.3)
    shared_single, shared_mean, _ = spread(False)
    assert shared_mean / shared_single > 0.9  # one stream: no averaging out
    # monte_carlo_se predicts the spread over seeds of one image's AUC
    m, f = images[0]
    target = HumanTarget(m, f)
    errors = [
        score_map(m, target, seed=seed, stream=("0",), metrics=("auc_borji",), return_mc_se=True)[1]["auc_borji"]
        for seed in seeds
    ]
    assert np.mean(errors) == pytest.approx(spread(True)[2][0], rel=0.3)
    # hand-computed: std([0.5, 0.7], ddof=1) = 0.1414, over sqrt(2)
    np.testing.assert_allclose(metrics.monte_carlo_se(np.array([[0.5, 0.7], [0.1, 0.1]])), [0.1, 0.0], atol=1e-15)


def test_human_target_keeps_its_inputs_and_only_scalars(smooth):
    s, g, fixation_map = smooth
    target = HumanTarget(g, fixation_map.astype(np.int64))
    assert target.human_map is g  # float64 input: no copy
    assert target.fixation_map.dtype == np.float64
    score_map(s, target)
    score_map(s, target, variant="pysaliency")
    # scoring caches scalars on the target's human map, never arrays (memory stays that of the inputs)
    kept = [name for name, value in vars(target._human).items() if isinstance(value, np.ndarray)]
    assert kept == ["flat"]


def test_every_metric_has_a_direction():
    assert set(metrics.HIGHER_IS_BETTER) == set(METRICS)


# ------------------------------------------------------------------ against pysaliency on OSIE


def _import_pysaliency():
    """pysaliency 0.2.22 (a test dependency) calls np.trapz, removed in numpy 2.4: alias it here."""
    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # type: ignore[assignment]  # numpy's stubs type trapz and trapezoid apart
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its own pkg_resources deprecation notice
        import pysaliency
    return pysaliency


@pytest.fixture(scope="module")
def osie(osie_fixations_path):
    """Three OSIE images: observers 1-7 blurred as a saliency map, observers 8-15 as the target.

    Coordinates are truncated to pixels (pysaliency's x_int); fixations outside the image dropped.
    """
    mat = scipy.io.loadmat(osie_fixations_path, squeeze_me=True, struct_as_record=False)
    shape = (600, 800)
    images = []
    for entry in mat["fixations"][:3]:
        halves = []
        for subjects in (entry.subjects[:7], entry.subjects[7:]):
            xs = np.concatenate([np.atleast_1d(s.fix_x) for s in subjects])
            ys = np.concatenate([np.atleast_1d(s.fix_y) for s in subjects])
            inside = (xs >= 0) & (xs < shape[1]) & (ys >= 0) & (ys < shape[0])
            halves.append((xs[inside].astype(int), ys[inside].astype(int)))
        counts = [np.zeros(shape), np.zeros(shape)]
        for half, (xs, ys) in zip(counts, halves):
            np.add.at(half, (ys, xs), 1.0)
        images.append(
            {
                "saliency": gaussian_filter(counts[0], 20.0),
                "human": gaussian_filter(counts[1], 20.0),
                "fixation_map": counts[1],
                "xs": halves[1][0],
                "ys": halves[1][1],
            }
        )
    y, x = np.mgrid[:600, :800]
    centre = np.exp(-(((y - 300) / 150.0) ** 2 + ((x - 400) / 200.0) ** 2) / 2)
    return images, centre


@pytest.fixture(scope="module")
def pys(osie):
    """pysaliency stimuli, fixations and a factory of models serving given arrays."""
    pysaliency = _import_pysaliency()
    images, _ = osie
    stimuli = pysaliency.Stimuli([np.full((600, 800), i, np.uint8) for i in range(len(images))])
    fixations = pysaliency.Fixations.create_without_history(
        np.concatenate([im["xs"] for im in images]).astype(float),
        np.concatenate([im["ys"] for im in images]).astype(float),
        np.concatenate([np.full(im["xs"].size, i) for i, im in enumerate(images)]),
    )

    base: Any = pysaliency.SaliencyMapModel  # a module imported at run time: untyped

    class ArrayModel(base):
        def __init__(self, arrays):
            super().__init__()
            for stimulus_id, array in zip(stimuli.stimulus_ids, arrays):
                self._cache[stimulus_id] = array

        def _saliency_map(self, stimulus):
            raise KeyError("every map is pre-filled in the cache")

    return pysaliency, stimuli, fixations, ArrayModel


def _per_image(values, fixations, n_images):
    return np.array([values[fixations.n == i].mean() for i in range(n_images)])


def test_nss_matches_pysaliency(osie, pys):
    images, centre = osie
    pysaliency, stimuli, fixations, ArrayModel = pys
    for maps in ([im["saliency"] for im in images], [centre] * len(images)):
        theirs = _per_image(ArrayModel(maps).NSSs(stimuli, fixations), fixations, len(images))
        ours = [nss(m, im["fixation_map"], variant="pysaliency") for m, im in zip(maps, images)]
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
        # MIT: each fixated pixel once (OSIE has repeated pixels), std with N - 1
        n = centre.size
        for m, im in zip(maps, images):
            unique = pysaliency.metrics.NSS(m, *np.nonzero(im["fixation_map"].T)).mean()
            assert nss(m, im["fixation_map"]) == pytest.approx(unique * np.sqrt((n - 1) / n), rel=1e-12)
    assert any((im["fixation_map"] > 1).any() for im in images), "the MIT/pysaliency difference is exercised"


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # pysaliency's log(0) where maps are 0
def test_cc_sim_kl_match_pysaliency(osie, pys):
    images, centre = osie
    pysaliency, stimuli, _, ArrayModel = pys
    human = ArrayModel([im["human"] for im in images])
    for maps in ([im["saliency"] for im in images], [centre] * len(images)):
        model = ArrayModel(maps)
        humans = [im["human"] for im in images]
        np.testing.assert_allclose([cc(m, h) for m, h in zip(maps, humans)], model.CCs(stimuli, human), rtol=1e-12)
        np.testing.assert_allclose(
            [sim(m, h, variant="pysaliency") for m, h in zip(maps, humans)],
            model.SIMs(stimuli, human),
            rtol=1e-12,
        )
        np.testing.assert_allclose(
            [kl_div(m, h, variant="pysaliency") for m, h in zip(maps, humans)],
            model.KLDivs(stimuli, human),
            rtol=1e-10,
        )
        # MIT KL equals pysaliency's MIT_KLDiv up to its rounded eps (2.2204e-16 vs 2.220446e-16,
        # relative 2e-5), which matters where the saliency map is 0: there log(q / eps) shifts by 2e-5
        np.testing.assert_allclose(
            [kl_div(m, h) for m, h in zip(maps, humans)],
            [pysaliency.metrics.MIT_KLDiv(m, h) for m, h in zip(maps, humans)],
            rtol=1e-5,
        )
    # MIT SIM min-max scales first: differs for a map whose minimum is > 0
    h = images[0]["human"]
    assert abs(sim(centre + 0.5, h) - sim(centre + 0.5, h, variant="pysaliency")) > 0.02


def test_auc_judd_matches_pysaliency_without_jitter(osie, pys):
    images, centre = osie
    pysaliency, stimuli, fixations, ArrayModel = pys
    for maps in ([im["saliency"] for im in images], [centre] * len(images)):
        theirs = ArrayModel(maps).AUC_per_image(stimuli, fixations, nonfixations="unfixated", thresholds="fixations")
        ours = [auc_judd(m, im["fixation_map"], jitter=False, variant="pysaliency") for m, im in zip(maps, images)]
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
        # MIT (binarised fixations) equals pysaliency given each fixated pixel once, on a map without
        # ties (a 1e-12 ramp breaks the exact zeros of the blurred map; MIT's tie rule differs)
        ramp = 1e-12 * np.arange(centre.size).reshape(centre.shape)
        for m, im in zip(maps, images):
            once = (im["fixation_map"] > 0).astype(float)
            mit = auc_judd(m + ramp, im["fixation_map"], jitter=False)
            assert mit == pytest.approx(auc_judd(m + ramp, once, jitter=False, variant="pysaliency"), abs=1e-12)
            if (im["fixation_map"] > 1).any():  # repeats weigh more in pysaliency
                weighted = auc_judd(m + ramp, im["fixation_map"], jitter=False, variant="pysaliency")
                assert mit != pytest.approx(weighted, abs=1e-9)
    # With jitter the noise differs (uniform here, Gaussian there) and only breaks ties; on a map
    # with few ties (the centre Gaussian's mirror pairs) the value barely moves. (On the blurred
    # map, 38 % zeros, the jitter's spread is ~0.005 around the tie-aware value.)
    jittered = [auc_judd(centre, im["fixation_map"], variant="pysaliency") for im in images]
    theirs_centre = theirs  # the loop ended on the centre maps
    np.testing.assert_allclose(jittered, theirs_centre, atol=1e-4)


def test_info_gain_matches_pysaliency(osie, pys):
    images, centre = osie
    pysaliency, stimuli, fixations, ArrayModel = pys
    from pysaliency.models import SaliencyMapNormalizingModel

    maps = [im["saliency"] + 1e-3 for im in images]  # no zeros: pysaliency's log has no epsilon
    model = SaliencyMapNormalizingModel(ArrayModel(maps))
    baseline = SaliencyMapNormalizingModel(ArrayModel([centre] * len(images)))
    theirs = _per_image(model.information_gains(stimuli, fixations, baseline), fixations, len(images))
    ours = [info_gain(m, im["fixation_map"], centre, variant="pysaliency") for m, im in zip(maps, images)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    # MIT min-max scales both maps first, which changes the value
    assert info_gain(maps[0], images[0]["fixation_map"], centre) != pytest.approx(ours[0], rel=1e-3)


def test_score_map_passes_the_mae_normalisation():
    # Oracle: the standalone eq. 15 in both modes.
    rng = np.random.default_rng(7)
    saliency, human = rng.random((12, 16)) * 3, rng.random((12, 16)) * 0.2
    counts = np.zeros((12, 16))
    counts[3, 4] = 1
    target = HumanTarget(human_map=human, fixation_map=counts)
    for mode in ("minmax", "none"):
        assert score_map(saliency, target, metrics=("mae",), mae_normalize=mode)["mae"] == mae(
            saliency, human, normalize=mode
        )
    assert score_map(saliency, target, metrics=("mae",), mae_normalize="none")["mae"] == pytest.approx(
        np.abs(saliency - human).mean()
    )
    with pytest.raises(ValueError, match="mae_normalize"):
        score_map(saliency, target, metrics=("mae",), mae_normalize=cast(Any, "max"))
