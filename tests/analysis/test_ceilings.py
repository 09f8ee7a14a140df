"""The gold standard and the split-half ceilings (analysis.ceilings).

Oracles: Kümmerer, Wallis & Bethge's definition written out on a small image (each participant's
fixations scored under the other participants' kernel density estimate, made here with
``scipy.ndimage.gaussian_filter``, mixed with the centre bias), and the split-half definition
computed by hand for two participants, whose only split is one against the other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from analysis.ceilings import (
    gold_density,
    gold_log_likelihood_table,
    split_half_ceilings,
)
from analysis.heatmap import HeatmapParams, fixation_map, heatmap
from analysis.metrics import cc, mae, nss
from analysis.offline import without_selection

SHAPE = (24, 32)


def _kummerer_log_likelihood(fixations: dict, sigma_px: float, weight: float, centre: np.ndarray) -> dict:
    """Per participant p: sum over p's fixations x of log2[(1 - w) KDE_{-p}(x) + w C(x)], the KDE of
    the other participants' fixations (each counted once) normalised over the image."""
    total = {}
    for participant, points in fixations.items():
        others = np.zeros(SHAPE)
        for other, their in fixations.items():
            if other != participant:
                for row, col in their:
                    others[row, col] += 1.0
        kde = ndimage.gaussian_filter(others, sigma_px, mode="reflect", truncate=4.0)
        density = (1 - weight) * kde / kde.sum() + weight * centre
        total[participant] = sum(np.log2(density[row, col]) for row, col in points)
    return total


def test_gold_log_likelihood_is_kummerers_definition():
    rng = np.random.default_rng(2)
    centre = np.outer(np.hanning(SHAPE[0] + 2)[1:-1], np.hanning(SHAPE[1] + 2)[1:-1])
    centre /= centre.sum()
    fixations = {p: [tuple(x) for x in rng.integers(0, SHAPE, size=(n, 2))] for p, n in (("a", 6), ("b", 9), ("c", 4))}
    fixations["c"].append(fixations["c"][0])  # a pixel fixated twice counts twice
    as_pixels = {}
    for participant, points in fixations.items():
        flat = np.array([row * SHAPE[1] + col for row, col in points])
        pixels, counts = np.unique(flat, return_counts=True)
        as_pixels[participant] = (pixels, counts.astype(float))
    sigmas, weights = [0.8, 2.5, 6.0], [0.05, 0.5]
    table = gold_log_likelihood_table(as_pixels, SHAPE, centre_density=centre, sigmas_px=sigmas, weights=weights)
    for i, sigma_px in enumerate(sigmas):
        for j, weight in enumerate(weights):
            expected = sum(_kummerer_log_likelihood(fixations, sigma_px, weight, centre).values())
            assert table[i, j] == pytest.approx(expected, abs=1e-9)
    # the full map of one participant's gold standard is the same density
    others = np.concatenate([as_pixels["b"][0], as_pixels["c"][0]])
    counts = np.concatenate([as_pixels["b"][1], as_pixels["c"][1]])
    density = gold_density(others, counts, SHAPE, sigma_px=2.5, centre_weight=0.5, centre_density=centre)
    assert density.sum() == pytest.approx(1.0, abs=1e-12)
    own_pixels, own_counts = as_pixels["a"]
    assert np.sum(own_counts * np.log2(density.ravel()[own_pixels])) == pytest.approx(
        _kummerer_log_likelihood(fixations, 2.5, 0.5, centre)["a"], abs=1e-9
    )
    # no other participant: nothing to predict with but the centre bias
    np.testing.assert_array_equal(
        gold_density(np.empty(0, int), np.empty(0), SHAPE, sigma_px=2.0, centre_weight=0.1, centre_density=centre),
        centre,
    )


def test_split_half_with_two_participants_is_one_against_the_other():
    rng = np.random.default_rng(4)
    rows = pd.DataFrame(
        {
            "participant": ["p1"] * 8 + ["p2"] * 7,
            "x_image_px": rng.uniform(0, 80, 15),
            "y_image_px": rng.uniform(0, 60, 15),
            "duration_ms": rng.uniform(100, 400, 15),
            "session": "s",
            "trial": 0,
            "image": "img",
            "start_ms": np.nan,
            "end_ms": np.nan,
            "stimulus_duration_ms": np.nan,
        }
    )
    params = without_selection(HeatmapParams(sigma_px=5.0, kernel_size_px=20))
    shape = (60, 80)
    result = split_half_ceilings(rows, shape, params=params, seed=0, image="img", n_splits=3)
    halves = [rows[rows["participant"] == p] for p in ("p1", "p2")]
    maps = [heatmap(h, shape=shape, params=params) for h in halves]
    counts = [fixation_map(h["x_image_px"], h["y_image_px"], shape=shape) for h in halves]
    r = (cc(maps[0], maps[1]) + cc(maps[1], maps[0])) / 2
    assert result["cc"] == pytest.approx(r, abs=1e-12)
    assert result["cc_spearman_brown"] == pytest.approx(2 * r / (1 + r), abs=1e-12)
    assert result["nss"] == pytest.approx((nss(maps[0], counts[1]) + nss(maps[1], counts[0])) / 2, abs=1e-12)
    assert result["mae"] == pytest.approx(mae(maps[0], maps[1]), abs=1e-12)
    one = split_half_ceilings(halves[0], shape, params=params, seed=0, image="img")
    assert all(np.isnan(v) for v in one.values())
