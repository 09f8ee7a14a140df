"""Maps as densities for KL and information gain (analysis.density).

Oracles: ``scipy.ndimage.gaussian_filter`` (mode "reflect", MATLAB ``imfilter(..., 'symmetric')``)
for the blur; the conversion written out from its definition with full maps; hand-made
log-likelihood tables for the leave-one-image-out fit.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from analysis.density import (
    CENTRE_WEIGHTS,
    DensityParams,
    blur,
    fit_all,
    fit_leave_one_out,
    grid,
    log_likelihood_table,
    to_density,
)
from analysis.metrics import info_gain, kl_div

SHAPE = (40, 56)


@pytest.fixture
def centre():
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    c = np.exp(-0.5 * (((rows + 0.5 - 20) / 10) ** 2 + ((cols + 0.5 - 28) / 14) ** 2))
    return c / c.sum()


@pytest.mark.parametrize("shape", [(40, 56), (7, 90), (1, 5), (3, 3), (300, 270)])  # the last: several bands
@pytest.mark.parametrize("sigma_px", [0.6, 2.0, 9.0, 40.0])
def test_blur_is_ndimage_with_reflected_borders(shape, sigma_px):
    values = np.random.default_rng(sum(shape)).random(shape)
    expected = ndimage.gaussian_filter(values, sigma_px, mode="reflect", truncate=4.0)
    np.testing.assert_allclose(blur(values, sigma_px=sigma_px), expected, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(blur(values, sigma_px=0.0), values)


def test_to_density_is_blur_then_mixture(centre):
    rng = np.random.default_rng(3)
    saliency = ndimage.gaussian_filter(rng.normal(size=SHAPE), 2) * 5 - 1  # negative values too
    params = DensityParams(sigma_px=3.0, centre_weight=0.2)
    unit = (saliency - saliency.min()) / (saliency.max() - saliency.min())
    blurred = ndimage.gaussian_filter(unit, 3.0, mode="reflect", truncate=4.0)
    expected = 0.8 * blurred / blurred.sum() + 0.2 * centre
    density = to_density(saliency, params, centre_density=centre)
    np.testing.assert_allclose(density, expected, rtol=1e-12, atol=0)
    assert density.sum() == pytest.approx(1.0, abs=1e-12) and density.min() > 0
    # scale and offset do not matter; a constant map becomes the uniform mixed with the centre bias
    np.testing.assert_allclose(to_density(3 * saliency + 7, params, centre_density=centre), density, rtol=1e-12)
    blank = to_density(np.zeros(SHAPE), params, centre_density=centre)
    np.testing.assert_allclose(blank, 0.8 / blank.size + 0.2 * centre, rtol=1e-14)
    # a density is used as it is
    uniform = np.full(SHAPE, 2.0)
    np.testing.assert_array_equal(to_density(uniform, None, centre_density=centre), 1.0 / uniform.size)
    with pytest.raises(ValueError, match="used as a density must be >= 0"):
        to_density(saliency, None, centre_density=centre)


def test_log_likelihood_table_equals_full_densities_at_the_fixations(centre):
    rng = np.random.default_rng(5)
    saliency = ndimage.gaussian_filter(rng.random(SHAPE), 1.5) * (rng.random(SHAPE) > 0.3)
    pixels = np.sort(rng.choice(saliency.size, 25, replace=False))
    counts = rng.integers(1, 4, pixels.size).astype(float)
    sigmas = [0.0, 1.0, 4.0, 30.0]
    table = log_likelihood_table(saliency, pixels, counts, centre_density=centre, sigmas_px=sigmas)
    for i, sigma_px in enumerate(sigmas):
        for j, w in enumerate(CENTRE_WEIGHTS):
            density = to_density(saliency, DensityParams(sigma_px=sigma_px, centre_weight=w), centre_density=centre)
            assert table[i, j] == pytest.approx(np.sum(counts * np.log2(density.ravel()[pixels])), abs=1e-9)


def test_each_image_is_fitted_on_the_others_only():
    # Hand-made tables over three cells (sums by hand): image "a" alone prefers cell 0.
    tables = {"a": np.array([0.0, -5.0, -9.0]), "b": np.array([-9.0, -2.0, -1.0]), "c": np.array([-9.0, -3.0, -1.0])}
    # without "a": [-18, -5, -2] → 2; without "b": [-9, -8, -10] → 1; without "c": [-9, -7, -10] → 1
    assert fit_leave_one_out(tables) == {"a": 2, "b": 1, "c": 1}
    tables["b"] = np.array([-1.0, -2.0, -9.0])
    # without "a": b + c = [-10, -5, -10] → 1; without "b": a + c = [-9, -8, -10] → 1; without "c": [-1, -7, -18] → 0
    assert fit_leave_one_out(tables) == {"a": 1, "b": 1, "c": 0}
    assert fit_all(tables) == 0  # [-10, -10, -19]: the first of the tied best
    assert fit_leave_one_out({"only": np.array([-3.0, -1.0])}) == {"only": 1}
    params = grid(800)
    assert params[0] == DensityParams(sigma_px=0.0, centre_weight=CENTRE_WEIGHTS[0])
    assert params[len(CENTRE_WEIGHTS) + 1] == DensityParams(sigma_px=8.0, centre_weight=CENTRE_WEIGHTS[1])


def test_exact_zeros_cost_bits_that_densities_do_not(centre):
    # The observation: a map with exact zeros (ReLU-zeroed) loses bits per fixation through the
    # epsilons alone; as a density (blurred, mixed with the centre bias) it does not.
    rng = np.random.default_rng(8)
    smooth = ndimage.gaussian_filter(rng.normal(size=SHAPE), 3)
    relu = np.maximum(smooth, 0.0)
    fixations = np.zeros(SHAPE)
    fixations.flat[rng.choice(relu.size, 60, replace=False)] = 1.0
    assert (relu.ravel()[fixations.ravel() > 0] == 0).any()
    raw_gain = info_gain(relu, fixations, centre)
    density = to_density(relu, DensityParams(sigma_px=2.0, centre_weight=0.3), centre_density=centre)
    dense_gain = info_gain(density, fixations, centre, densities=True)
    assert raw_gain < -5 and dense_gain > -1
    human = ndimage.gaussian_filter(fixations, 2.0)
    assert kl_div(relu, human) > 5 * kl_div(density, human)
