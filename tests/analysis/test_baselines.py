"""Baselines. Oracles: scipy.stats.multivariate_normal for the centre bias; hand-mapped coordinates
and the plain heatmap of the other images for the dataset prior."""

import numpy as np
import pytest
from scipy import stats

from analysis.baselines import (
    center_bias,
    dataset_prior,
    leave_one_out_groups,
    other_images_on_grid,
    shuffled_fixation_counts,
)
from analysis.fixations import fixation_table
from analysis.heatmap import HeatmapParams, heatmap


def _table(rows):
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    n = len(rows)
    columns.setdefault("session", ["s"] * n)
    columns.setdefault("trial", [0] * n)
    columns.setdefault("eye", ["R"] * n)
    for name in ("start_ms", "end_ms", "x_display_px", "y_display_px", "stimulus_duration_ms", "pupil"):
        columns.setdefault(name, [np.nan] * n)
    return fixation_table(columns)


def test_center_bias_is_the_stretched_gaussian():
    shape = (30, 40)
    sigma_fraction = 0.2
    rows, cols = np.mgrid[0:30, 0:40] + 0.5
    pdf = stats.multivariate_normal(mean=[15, 20], cov=np.diag([(0.2 * 30) ** 2, (0.2 * 40) ** 2]))
    expected = pdf.pdf(np.dstack([rows, cols]))
    np.testing.assert_allclose(center_bias(shape, sigma_fraction=sigma_fraction), expected / expected.max(), rtol=1e-12)
    with pytest.raises(ValueError, match="sigma_fraction"):
        center_bias(shape, sigma_fraction=0)


FIX = _table(
    [
        {"participant": "p1", "image": "a", "duration_ms": 100.0, "x_image_px": 5.5, "y_image_px": 2.5},
        {"participant": "p2", "image": "a", "duration_ms": 300.0, "x_image_px": 1.5, "y_image_px": 1.5},
        {"participant": "p1", "image": "b", "duration_ms": 200.0, "x_image_px": 10.0, "y_image_px": 4.0},
        {"participant": "p1", "image": "c", "duration_ms": 50.0, "x_image_px": 3.0, "y_image_px": 3.0},
    ]
)
SHAPES = {"a": (10, 20), "b": (8, 40), "c": (10, 20)}


def test_other_images_are_moved_in_normalised_coordinates():
    moved = other_images_on_grid(FIX, SHAPES, image="a")
    assert set(moved["image"]) == {"a"} and len(moved) == 2
    # b: x 10/40 of the width → 5 on a 20-px grid; y 4/8 → 5 on a 10-px grid. c is the same size.
    np.testing.assert_allclose(moved["x_image_px"], [5.0, 3.0])
    np.testing.assert_allclose(moved["y_image_px"], [5.0, 3.0])
    counts = shuffled_fixation_counts(FIX, SHAPES, image="a")
    assert counts.sum() == 2 and counts[5, 5] == 1 and counts[3, 3] == 1


def test_dataset_prior_is_the_heatmap_of_the_other_images():
    params = HeatmapParams(sigma_px=2.0, kernel_size_px=9)
    prior = dataset_prior(FIX, SHAPES, image="a", params=params)
    reference = heatmap(other_images_on_grid(FIX, SHAPES, image="a"), shape=(10, 20), params=params)
    np.testing.assert_array_equal(prior, reference)
    own = heatmap(FIX[FIX["image"] == "a"], shape=(10, 20), params=params)
    assert not np.allclose(prior, own), "the current image must be left out"


def test_leave_one_out_groups():
    groups = leave_one_out_groups(FIX[FIX["image"] == "a"])
    assert [(p, len(own), len(others)) for p, own, others in groups] == [("p1", 1, 1), ("p2", 1, 1)]
    assert leave_one_out_groups(FIX[FIX["image"] == "b"]) == []
