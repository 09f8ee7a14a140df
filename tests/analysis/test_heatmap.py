"""Tests of analysis.heatmap (paper §2 "Data Processing").

Oracles: a line-by-line transcription of MATLAB's ``fspecial.m`` (gaussian branch) and
closed-form kernel values; ``scipy.signal.convolve2d(mode="same")`` with the explicit kernel;
MATLAB's documented ``conv(..., 'same')`` example for the even-kernel anchor;
``scipy.ndimage.gaussian_filter`` for the untruncated kernel; hand-made fixation tables with known
answers; real OSIE fixations.
"""

from __future__ import annotations

import logging
import math
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.ndimage
import scipy.signal
from pydantic import ValidationError

from analysis import heatmap as hm
from analysis.heatmap import (
    HeatmapParams,
    blur,
    fixation_map,
    gaussian_kernel,
    heatmap,
    heatmaps,
    select_fixations,
)
from lookwhere.records import FIXATION_COLUMNS, FIXATION_DTYPES

K80 = gaussian_kernel(sigma_px=20.0, size_px=80)


def fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    """Transcription of MATLAB fspecial.m, case 'gaussian' (p2 = [size size], p3 = sigma)."""
    siz = (np.array([size, size]) - 1) / 2
    x, y = np.meshgrid(np.arange(-siz[1], siz[1] + 1), np.arange(-siz[0], siz[0] + 1))
    arg = -(x * x + y * y) / (2 * sigma * sigma)
    h = np.exp(arg)
    h[h < np.finfo(float).eps * h.max()] = 0
    sumh = h.sum()
    if sumh != 0:
        h = h / sumh
    return h


def table(rows: list[dict]) -> pd.DataFrame:
    """A fixation table with the lookwhere.records columns; unspecified fields are neutral."""
    defaults = dict(
        participant="P01",
        session="S1",
        trial=0,
        image="img",
        eye="R",
        start_ms=np.nan,
        end_ms=np.nan,
        duration_ms=100.0,
        x_display_px=np.nan,
        y_display_px=np.nan,
        x_image_px=10.5,
        y_image_px=10.5,
        stimulus_duration_ms=np.nan,
        pupil=np.nan,
        truncated=False,
    )
    frame = pd.DataFrame([{**defaults, **row} for row in rows], columns=list(FIXATION_COLUMNS))
    return frame.astype(FIXATION_DTYPES)


def placed(kernel: np.ndarray, shape: tuple[int, int], row: int, col: int, origin: int) -> np.ndarray:
    """The kernel pasted with its top-left tap at (row - origin, col - origin), clipped: the
    hand-derived response of a "same" convolution to a unit impulse at (row, col)."""
    k = kernel.shape[0]
    padded = np.zeros((shape[0] + 2 * k, shape[1] + 2 * k))
    padded[row - origin + k : row - origin + 2 * k, col - origin + k : col - origin + 2 * k] = kernel
    return padded[k:-k, k:-k]


# ------------------------------------------------------------------------------------ kernel


@pytest.mark.parametrize(
    ("size", "sigma"),
    [(80, 20.0), (81, 20.0), (3, 1.0), (2, 5.0), (1, 3.0), (80, 2.0), (161, 20.0)],
)
def test_kernel_equals_fspecial_transcription(size, sigma):
    # (80, 2.0) reaches fspecial's eps threshold in the corners.
    kernel = gaussian_kernel(sigma_px=sigma, size_px=size)
    assert kernel.shape == (size, size) and kernel.dtype == np.float64
    np.testing.assert_allclose(kernel, fspecial_gaussian(size, sigma), rtol=1e-15, atol=1e-300)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-14)


def test_kernel_closed_form_values():
    # fspecial('gaussian', 3, 1): 1-D factor [e, 1, e] / (1 + 2e) with e = exp(-1/2).
    e = math.exp(-0.5)
    kernel = gaussian_kernel(sigma_px=1.0, size_px=3)
    assert kernel[1, 1] == pytest.approx(1 / (1 + 2 * e) ** 2, rel=1e-14)  # 0.2041800
    assert kernel[0, 0] == pytest.approx(e * e / (1 + 2 * e) ** 2, rel=1e-14)  # 0.0751136
    # Even size 2: the four taps are equidistant from the centre.
    np.testing.assert_array_equal(gaussian_kernel(sigma_px=5.0, size_px=2), np.full((2, 2), 0.25))


def test_kernel_80_drops_nine_percent_of_the_mass():
    offsets = np.arange(80) - 39.5
    unnormalised = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 20.0**2))
    kept = unnormalised.sum() / (2 * math.pi * 20.0**2)  # the untruncated integral is 2πσ²
    # ±2σ in each axis: erf(√2)² = 0.9111
    assert kept == pytest.approx(math.erf(math.sqrt(2)) ** 2, abs=1e-4)
    dropped = 1 - kept
    assert dropped == pytest.approx(0.0889, abs=5e-4)
    assert K80.max() == pytest.approx(unnormalised.max() / unnormalised.sum(), rel=1e-14)


def test_kernel_is_outer_product_of_normalised_1d_gaussians():
    for size, sigma in [(80, 20.0), (81, 20.0), (80, 2.0)]:
        factor = hm._gaussian_1d(sigma, size)
        assert factor.sum() == pytest.approx(1.0, abs=1e-15)
        assert np.abs(np.outer(factor, factor) - gaussian_kernel(sigma_px=sigma, size_px=size)).max() < 1e-17


def test_params_untruncated_size_and_validation():
    assert HeatmapParams().resolved_kernel_size_px == 80
    assert HeatmapParams(kernel_size_px=None).resolved_kernel_size_px == 161  # 2 * ceil(4 * 20) + 1
    assert HeatmapParams(sigma_px=2.3, kernel_size_px=None).resolved_kernel_size_px == 21
    bad_options: list[dict[str, Any]] = [
        dict(sigma_px=0),
        dict(sigma_px=float("nan")),
        dict(kernel_size_px=0),
        dict(sigma=20),
    ]
    for bad in bad_options:
        with pytest.raises(ValidationError):
            HeatmapParams(**bad)
    params = HeatmapParams(final_normalization="minmax")
    assert HeatmapParams.model_validate_json(params.model_dump_json()) == params
    with pytest.raises(ValidationError):
        cast(Any, params).sigma_px = 3.0  # frozen (cast: the types forbid it too)


def test_gaussian_kernel_validation():
    with pytest.raises(ValueError, match="sigma_px must be a finite number > 0; got -1"):
        gaussian_kernel(sigma_px=-1, size_px=80)
    with pytest.raises(ValueError, match="size_px must be an integer >= 1.*got 80.5"):
        gaussian_kernel(sigma_px=20, size_px=cast(Any, 80.5))  # cast: a value the types forbid


# ------------------------------------------------------------------------------------ blur


def sparse_map(shape, n, rng):
    fixmap = np.zeros(shape)
    fixmap.flat[rng.integers(0, fixmap.size, n)] = rng.random(n)
    # fixations on all four borders and corners
    fixmap[0, 0] = fixmap[-1, -1] = fixmap[0, -1] = fixmap[-1, 0] = 1.0
    fixmap[shape[0] // 2, -1] = fixmap[-1, shape[1] // 2] = 0.7
    return fixmap / fixmap.max()


@pytest.mark.parametrize("shape", [(120, 90), (90, 120), (7, 200), (1, 50), (50, 1), (1, 1)])
@pytest.mark.parametrize("kind", ["sparse", "dense"])
@pytest.mark.parametrize("method", ["auto", "splat", "separable"])
def test_blur_equals_convolve2d_same(shape, kind, method):
    rng = np.random.default_rng(sum(shape))
    fixmap = sparse_map(shape, 12, rng) if kind == "sparse" else rng.random(shape)
    reference = scipy.signal.convolve2d(fixmap, K80, mode="same", boundary="fill")
    out = blur(fixmap, method=method, even_kernel_centre="scipy")
    assert out.shape == shape and out.dtype == np.float64
    assert np.abs(out - reference).max() < 1e-9


def test_blur_odd_and_untruncated_kernels_equal_convolve2d():
    rng = np.random.default_rng(3)
    fixmap = sparse_map((120, 90), 20, rng)
    for size in (81, None, 5):
        kernel = gaussian_kernel(sigma_px=20.0, size_px=size or 161)
        reference = scipy.signal.convolve2d(fixmap, kernel, mode="same")
        for method in ("splat", "separable"):
            assert np.abs(blur(fixmap, kernel_size_px=size, method=method) - reference).max() < 1e-9


def test_blur_of_an_impulse_is_the_kernel_half_a_pixel_up_left_or_down_right():
    impulse = np.zeros((200, 300))
    impulse[100, 150] = 1.0
    out = blur(impulse)  # MATLAB's anchor, the default
    np.testing.assert_allclose(out, placed(K80, impulse.shape, 100, 150, origin=40), atol=1e-17)
    # The kernel's symmetry centre lies between output rows/cols 99 and 100: the top-left corner of
    # the fixation's pixel.
    assert out[100, 150] == out[99, 149] == out[99, 150] == K80.max()
    assert out[101, 150] < out[100, 150]
    scipy_out = blur(impulse, even_kernel_centre="scipy")
    np.testing.assert_allclose(scipy_out, placed(K80, impulse.shape, 100, 150, origin=39), atol=1e-17)
    # SciPy's: between rows/cols 100 and 101, the bottom-right corner.
    assert scipy_out[100, 150] == scipy_out[101, 151] == scipy_out[100, 151] == K80.max()
    assert scipy_out[99, 150] < scipy_out[100, 150]


def test_matlab_anchor_follows_matlab_conv_same():
    # MATLAB documentation of conv:
    # conv([-1 2 3 -2 0 1 2], [2 4 -1 1], 'same') = [15 5 -9 7 6 7 -1], i.e. MATLAB keeps the
    # full convolution from 0-based index k//2 (here 2), NumPy from (k-1)//2.
    u, v = np.array([-1, 2, 3, -2, 0, 1, 2]), np.array([2, 4, -1, 1])
    full = np.convolve(u, v, "full")
    np.testing.assert_array_equal(full[len(v) // 2 : len(v) // 2 + len(u)], [15, 5, -9, 7, 6, 7, -1])
    np.testing.assert_array_equal(np.convolve(u, v, "same"), full[(len(v) - 1) // 2 :][: len(u)])

    rng = np.random.default_rng(4)
    fixmap = sparse_map((120, 90), 15, rng)
    full2d = scipy.signal.convolve2d(fixmap, K80, mode="full")
    matlab = full2d[40 : 40 + 120, 40 : 40 + 90]
    for method in ("splat", "separable"):
        out = blur(fixmap, even_kernel_centre="matlab", method=method)
        assert np.abs(out - matlab).max() < 1e-9
    # ... which is the SciPy result moved one pixel up and left.
    scipy_same = blur(fixmap, even_kernel_centre="scipy")
    assert np.abs(matlab[:-1, :-1] - scipy_same[1:, 1:]).max() < 1e-15
    # Odd kernels have one centre: both anchors agree.
    np.testing.assert_array_equal(
        blur(fixmap, kernel_size_px=81, even_kernel_centre="matlab"),
        blur(fixmap, kernel_size_px=81, even_kernel_centre="scipy"),
    )


def matlab_conv2_same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Transcription of MATLAB/Octave ``conv2(A, B, 'same')`` from its definition: the full
    convolution ``C(j, k) = sum_p sum_q A(p, q) B(j - p + 1, k - q + 1)`` (1-based), of which
    ``'same'`` keeps the central part the size of A, rows ``ceil((mb - 1) / 2) + (1:ma)``."""
    (ma, na), (mb, nb) = a.shape, b.shape
    full = np.zeros((ma + mb - 1, na + nb - 1))
    for p in range(ma):
        for q in range(na):
            if a[p, q]:  # A(p, q) B(j - p + 1, k - q + 1): B's top-left tap lands at C(p, q)
                full[p : p + mb, q : q + nb] += a[p, q] * b
    top, left = math.ceil((mb - 1) / 2), math.ceil((nb - 1) / 2)
    return full[top : top + ma, left : left + na]


def test_the_default_heatmap_is_matlabs_conv2_same_of_fspecial():
    # The paper's pipeline in MATLAB: F / max(F), conv2(F, fspecial('gaussian', 80, 20), 'same').
    rows, shape = [], (70, 95)
    for x, y, d in [
        (0.2, 0.4, 200.0),
        (94.9, 69.9, 350.0),
        (40.5, 30.5, 120.0),
        (41.2, 30.9, 80.0),
        (3.0, 66.0, 500.0),
        (90.0, 2.0, 60.0),
    ]:
        rows.append(dict(x_image_px=x, y_image_px=y, duration_ms=d))
    fixations = table(rows)
    f = duration_map(fixations, shape)
    expected = matlab_conv2_same(f / f.max(), fspecial_gaussian(80, 20.0))
    assert np.abs(heatmap(fixations, shape=shape) - expected).max() < 1e-15
    # The transcription reproduces MATLAB's documented 1-D example as a 1 x n image.
    u, v = np.array([[-1.0, 2, 3, -2, 0, 1, 2]]), np.array([[2.0, 4, -1, 1]])
    np.testing.assert_array_equal(matlab_conv2_same(u, v), [[15, 5, -9, 7, 6, 7, -1]])
    # SciPy's anchor is one pixel down and right; pointwise it differs by several % of the maximum.
    scipy_map = heatmap(fixations, shape=shape, params=HeatmapParams(even_kernel_centre="scipy"))
    assert np.abs(scipy_map - expected).max() / expected.max() > 0.03


@pytest.mark.parametrize("shape", [(1, 1), (7, 200), (200, 7), (81, 161)])
def test_matlab_anchor_on_small_and_odd_images(shape):
    rng = np.random.default_rng(sum(shape) + 1)
    fixmap = sparse_map(shape, 5, rng)
    full2d = scipy.signal.convolve2d(fixmap, K80, mode="full")
    matlab = full2d[40 : 40 + shape[0], 40 : 40 + shape[1]]
    for method in ("splat", "separable"):
        assert np.abs(blur(fixmap, even_kernel_centre="matlab", method=method) - matlab).max() < 1e-9


def test_auto_method_picks_splat_for_fixations_and_separable_for_dense_maps():
    kernel = hm._kernel(20.0, 80, "scipy")
    assert hm._choose_method(150, (600, 800), kernel) == "splat"  # a pooled OSIE map
    assert hm._choose_method(5000, (600, 800), kernel) == "separable"
    assert hm._choose_method(600 * 800, (600, 800), kernel) == "separable"


def test_untruncated_kernel_equals_ndimage_gaussian_filter():
    rng = np.random.default_rng(5)
    fixmap = sparse_map((150, 130), 25, rng)
    # ndimage: radius int(truncate * sigma + 0.5) = 80 = ceil(4 * 20), i.e. the same 161 taps.
    reference = scipy.ndimage.gaussian_filter(fixmap, sigma=20.0, mode="constant", truncate=4.0)
    assert np.abs(blur(fixmap, kernel_size_px=None) - reference).max() < 1e-12
    # A far longer tail changes the map by about the mass beyond ±4σ, 2 * 6.3e-5 in 2-D, which the
    # 161-tap kernel redistributes over its taps: a relative change of ~1.3e-4.
    longer = scipy.ndimage.gaussian_filter(fixmap, sigma=20.0, mode="constant", truncate=8.0)
    relative = np.abs(blur(fixmap, kernel_size_px=None) - longer).max() / longer.max()
    assert 5e-5 < relative < 2e-4


def test_gaussian_filter_truncate_2_is_not_the_paper_kernel():
    impulse = np.zeros((200, 200))
    impulse[100, 100] = 1.0
    ndimage_81 = scipy.ndimage.gaussian_filter(impulse, sigma=20.0, mode="constant", truncate=2.0)
    ours = blur(impulse)
    assert scipy.ndimage.gaussian_filter1d(np.eye(1, 201, 100)[0], 20.0, truncate=2.0).nonzero()[0].size == 81
    # Half a pixel of shift and a different renormalisation: ~1.5 % of the peak on an impulse.
    assert np.abs(ours - ndimage_81).max() / ours.max() > 0.01


def test_blur_validation():
    with pytest.raises(ValueError, match=r"fixmap must be a 2-D \(H, W\) array; got shape \(3,\)"):
        blur(np.zeros(3))
    with pytest.raises(ValueError, match="fixmap holds 1 non-finite"):
        blur(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="method must be one of"):
        blur(np.zeros((2, 2)), method=cast(Any, "fft"))  # cast: a value the types forbid
    with pytest.raises(ValueError, match="kernel_size_px must be an integer >= 1"):
        blur(np.zeros((2, 2)), kernel_size_px=0)


def test_blur_torch_backend_equals_convolve2d():
    pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    fixmap = sparse_map((120, 90), 12, rng)
    reference = scipy.signal.convolve2d(fixmap, K80, mode="same")
    assert np.abs(blur(fixmap, backend="torch", even_kernel_centre="scipy") - reference).max() < 1e-9


@pytest.mark.gpu
def test_blur_torch_backend_on_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(7)
    fixmap = rng.random((600, 800))
    reference = scipy.signal.fftconvolve(fixmap, K80, mode="same")
    assert np.abs(blur(fixmap, backend="torch", device="cuda", even_kernel_centre="scipy") - reference).max() < 1e-9


# ------------------------------------------------------------------------------ fixation map


def test_fixation_map_floor_convention_and_weights():
    x, y = [0.0, 0.999, 1.0, 3.5, 3.9], [0.0, 0.2, 0.0, 2.999, 2.0]
    fixmap = fixation_map(x, y, shape=(3, 4), weights=[1, 2, 4, 8, 16])
    expected = np.zeros((3, 4))
    expected[0, 0] = 1 + 2  # both in pixel (0, 0)
    expected[0, 1] = 4
    expected[2, 3] = 8 + 16
    np.testing.assert_array_equal(fixmap, expected)
    np.testing.assert_array_equal(fixation_map([1.5], [0.5], shape=(1, 2)), [[0.0, 1.0]])  # default weight 1


def test_fixation_map_drops_off_image_points_and_logs(caplog):
    x = [-0.001, 4.0, 1.0, 1.0, np.nan, 3.999]
    y = [1.0, 1.0, -1.0, 3.0, 1.0, 2.999]
    with caplog.at_level(logging.INFO, logger="analysis.heatmap"):
        fixmap = fixation_map(x, y, shape=(3, 4))
    assert fixmap.sum() == 1 and fixmap[2, 3] == 1
    assert "dropped 5 of 6 fixations outside the image (1 of them with NaN coordinates)" in caplog.text


def test_fixation_map_validation():
    with pytest.raises(ValueError, match=r"shape must be \(height_px, width_px\).*got \(0, 4\)"):
        fixation_map([1.0], [1.0], shape=(0, 4))
    with pytest.raises(ValueError, match="equal length"):
        fixation_map([1.0, 2.0], [1.0], shape=(3, 4))
    with pytest.raises(ValueError, match="weights hold 1 non-finite"):
        fixation_map([1.0], [1.0], shape=(3, 4), weights=[np.inf])


# ------------------------------------------------------------------------ selection, pipeline


def test_heatmap_of_one_fixation_is_the_kernel():
    fixations = table([dict(x_image_px=50.3, y_image_px=60.7, duration_ms=300.0)])
    out = heatmap(fixations, shape=(150, 200))
    np.testing.assert_allclose(out, placed(K80, (150, 200), 60, 50, origin=40), atol=1e-17)
    raw = heatmap(fixations, shape=(150, 200), params=HeatmapParams(prenormalize="none"))
    np.testing.assert_allclose(raw, 300.0 * out, rtol=1e-14)


def test_duration_weighting():
    fixations = table(
        [
            dict(x_image_px=50.0, y_image_px=50.0, duration_ms=100.0),
            dict(x_image_px=120.0, y_image_px=80.0, duration_ms=300.0),
            dict(x_image_px=120.9, y_image_px=80.9, duration_ms=100.0),  # same pixel as the previous one
        ]
    )
    shape = (150, 200)
    at_first = placed(K80, shape, 50, 50, origin=40)
    at_second = placed(K80, shape, 80, 120, origin=40)
    np.testing.assert_allclose(heatmap(fixations, shape=shape), 0.25 * at_first + at_second, atol=1e-16)
    counted = heatmap(fixations, shape=shape, params=HeatmapParams(duration_weighted=False))
    np.testing.assert_allclose(counted, 0.5 * at_first + at_second, atol=1e-16)


def test_display_period_filter(caplog):
    fixations = table(
        [
            dict(start_ms=-40.0, end_ms=200.0, stimulus_duration_ms=5000.0),  # straddles onset
            dict(start_ms=0.0, end_ms=5000.0, stimulus_duration_ms=5000.0),  # exactly the period: kept
            dict(start_ms=4900.0, end_ms=5100.0, stimulus_duration_ms=5000.0),  # straddles offset
            dict(start_ms=300.0, end_ms=500.0, stimulus_duration_ms=5000.0),
            dict(start_ms=np.nan, end_ms=np.nan, stimulus_duration_ms=np.nan),  # no times: kept
            # ended with the recording, inside the period (a stop right after the offset): cut short
            dict(start_ms=4800.0, end_ms=4999.0, stimulus_duration_ms=5000.0, truncated=True),
        ]
    )
    with caplog.at_level(logging.INFO, logger="analysis.heatmap"):
        kept = select_fixations(fixations, HeatmapParams())
    assert kept.index.tolist() == [1, 3, 4]
    assert "1 of 6 fixations have no start/end/stimulus duration (NaN); kept" in caplog.text
    assert len(select_fixations(fixations, HeatmapParams(within_display_only=False))) == 6


def test_first_fixation_exclusion():
    fixations = table(
        [
            dict(trial=0, start_ms=-900.0, end_ms=-300.0, stimulus_duration_ms=5000.0),  # ends before onset
            dict(trial=0, start_ms=-100.0, end_ms=250.0, stimulus_duration_ms=5000.0),  # in progress at onset
            dict(trial=0, start_ms=300.0, end_ms=600.0, stimulus_duration_ms=5000.0),
            dict(trial=1, start_ms=0.0, end_ms=180.0, stimulus_duration_ms=5000.0),  # starts at onset
            dict(trial=1, start_ms=200.0, end_ms=400.0, stimulus_duration_ms=5000.0),
            dict(trial=0, participant="P02", image="other"),  # no times: the trial's first row ...
            dict(trial=0, participant="P02", image="other"),
        ]
    ).set_index(pd.Index([7, 7, 8, 9, 10, 11, 12]))  # repeated labels must not confuse it
    params = HeatmapParams(exclude_first_fixation=True, within_display_only=False)
    kept = select_fixations(fixations, params)
    assert len(kept) == 4
    np.testing.assert_array_equal(kept["start_ms"].to_numpy()[:3], [-900.0, 300.0, 200.0])
    assert kept["participant"].tolist() == ["P01", "P01", "P01", "P02"]
    # Both filters: the pre-onset and the onset fixations go, once each.
    both = select_fixations(fixations, params.model_copy(update=dict(within_display_only=True)))
    np.testing.assert_array_equal(both["start_ms"].to_numpy()[:2], [300.0, 200.0])
    assert len(both) == 3


def test_heatmap_without_fixations_is_zero_not_nan(caplog):
    fixations = table([dict(start_ms=4900.0, end_ms=5100.0, stimulus_duration_ms=5000.0)])
    for how in ("none", "max", "minmax", "sum"):
        with caplog.at_level(logging.INFO, logger="analysis.heatmap"):
            out = heatmap(fixations, shape=(30, 40), params=HeatmapParams(final_normalization=how))
        np.testing.assert_array_equal(out, np.zeros((30, 40)))
    assert "no fixations left; the heatmap is all zero" in caplog.text
    np.testing.assert_array_equal(heatmap(table([]), shape=(3, 4)), np.zeros((3, 4)))


def test_final_normalizations():
    fixations = table(
        [
            dict(x_image_px=5.0, y_image_px=5.0),
            dict(x_image_px=100.0, y_image_px=20.0, duration_ms=50.0),
        ]
    )
    base = heatmap(fixations, shape=(60, 120))
    peak = heatmap(fixations, shape=(60, 120), params=HeatmapParams(final_normalization="max"))
    np.testing.assert_allclose(peak, base / base.max(), rtol=1e-14)
    total = heatmap(fixations, shape=(60, 120), params=HeatmapParams(final_normalization="sum"))
    assert total.sum() == pytest.approx(1.0, abs=1e-12)
    stretched = heatmap(fixations, shape=(60, 120), params=HeatmapParams(final_normalization="minmax"))
    expected = (base - base.min()) / (base.max() - base.min())
    np.testing.assert_allclose(stretched, expected, rtol=1e-13, atol=1e-15)


def test_minmax_on_a_constant_map_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="analysis.heatmap"):
        out = heatmap(
            table([dict(x_image_px=0.5, y_image_px=0.5)]),
            shape=(1, 1),
            params=HeatmapParams(final_normalization="minmax"),
        )
    np.testing.assert_array_equal(out, [[0.0]])
    assert "constant" in caplog.text


def test_heatmap_validation():
    fixations = table([dict()])
    with pytest.raises(ValueError, match=r"needs the fixation table columns \['x_image_px'\]"):
        heatmap(fixations.drop(columns="x_image_px"), shape=(30, 40))
    with pytest.raises(ValueError, match=r"duration_ms must be finite and >= 0.*\[-5.0\]"):
        heatmap(table([dict(duration_ms=-5.0)]), shape=(30, 40))
    with pytest.raises(ValueError, match=r"fixations holds 2 images \(e.g. \['a', 'b'\]\); select one"):
        heatmap(table([dict(image="a"), dict(image="b")]), shape=(30, 40))
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        heatmap(fixations.to_numpy(), shape=(30, 40))


# ------------------------------------------------------------------------------ batched


def study_table(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for image in ("a", "b"):
        for participant in ("P01", "P02", "P03"):
            for i in range(6):
                start = float(rng.uniform(-200, 5000))
                rows.append(
                    dict(
                        image=image,
                        participant=participant,
                        trial=0 if image == "a" else 1,
                        x_image_px=float(rng.uniform(-5, 105)),
                        y_image_px=float(rng.uniform(0, 70)),
                        start_ms=start,
                        end_ms=start + 150.0,
                        duration_ms=150.0 + i,
                        stimulus_duration_ms=5000.0,
                    )
                )
    # P04 looked at "b" only before onset: all of it filtered out.
    rows.append(dict(image="b", participant="P04", start_ms=-300.0, end_ms=-10.0, stimulus_duration_ms=5000.0))
    return table(rows)


@pytest.mark.parametrize("by", [("image",), ("image", "participant"), ("participant", "image")])
def test_heatmaps_equal_heatmap_per_group(by):
    fixations = study_table(np.random.default_rng(8))
    shapes = {"a": (70, 100), "b": (60, 110)}
    params = HeatmapParams(exclude_first_fixation=True, final_normalization="max")
    maps = heatmaps(fixations, shapes, params=params, by=by)
    groups = list(fixations.groupby(list(by)))  # iteration yields tuple keys
    assert list(maps) == sorted(key for key, _ in groups)
    for key, group in groups:
        image = key[list(by).index("image")]
        expected = heatmap(group, shape=shapes[image], params=params)
        np.testing.assert_allclose(maps[tuple(key)], expected, rtol=0, atol=1e-15)
    if "participant" in by:
        np.testing.assert_array_equal(maps[tuple({"image": "b", "participant": "P04"}[c] for c in by)], 0.0)


def test_heatmaps_validation():
    fixations = study_table(np.random.default_rng(9))
    with pytest.raises(ValueError, match=r"by must include 'image'"):
        heatmaps(fixations, {"a": (70, 100), "b": (60, 110)}, by=("participant",))
    with pytest.raises(ValueError, match=r"shapes has no \(H, W\) for 1 image\(s\).*\['b'\]"):
        heatmaps(fixations, {"a": (70, 100)})
    with pytest.raises(ValueError, match=r"shapes\['b'\] must be \(height_px, width_px\)"):
        heatmaps(fixations, {"a": (70, 100), "b": cast(Any, (60.0, 110))})  # cast: a value the types forbid


# ---------------------------------------------------------------------------- real data


def osie_table(path, images: list[str]) -> pd.DataFrame:
    """OSIE fixations of some images; fix_x/fix_y are 1-based MATLAB pixel coordinates (the
    authors index ``map(round(fix_y), round(fix_x))``), so the corner frame is ``fix - 0.5``."""
    data = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["fixations"]
    rows = []
    for entry in data:
        image = str(entry.img).rsplit(".", 1)[0]
        if image not in images:
            continue
        for s, subject in enumerate(entry.subjects):
            x, y, d = (np.atleast_1d(v).astype(float) for v in (subject.fix_x, subject.fix_y, subject.fix_duration))
            rows += [
                dict(
                    image=image,
                    participant=f"s{s + 1:02d}",
                    trial=-1,
                    x_image_px=xi - 0.5,
                    y_image_px=yi - 0.5,
                    duration_ms=di,
                )
                for xi, yi, di in zip(x, y, d)
            ]
    return table(rows)


def duration_map(rows: pd.DataFrame, shape: tuple[int, int]) -> np.ndarray:
    """The paper's fixation matrix built with np.add.at, independently of analysis.heatmap."""
    fixmap = np.zeros(shape)
    index = np.floor(rows["y_image_px"]).astype(int), np.floor(rows["x_image_px"]).astype(int)
    np.add.at(fixmap, index, rows["duration_ms"])
    return fixmap


@pytest.mark.slow
def test_osie_heatmaps_equal_convolve2d_route(osie_fixations_path):
    fixations = osie_table(osie_fixations_path, ["1001", "1002"])
    shapes = {"1001": (600, 800), "1002": (600, 800)}
    pooled = heatmaps(fixations, shapes)
    per_observer = heatmaps(fixations, shapes, by=("image", "participant"))
    assert len(pooled) == 2 and len(per_observer) == 30

    one = fixations[fixations["image"] == "1001"]
    reference_map = duration_map(one, (600, 800))
    reference_map /= reference_map.max()
    # the ~7 s direct route; MATLAB's 'same' part of the full convolution (the default anchor)
    reference = scipy.signal.convolve2d(reference_map, K80, mode="full")[40:640, 40:840]
    assert np.abs(pooled[("1001",)] - reference).max() < 1e-9

    for (image, participant), out in list(per_observer.items())[:15]:
        rows = fixations[(fixations["image"] == image) & (fixations["participant"] == participant)]
        single = duration_map(rows, (600, 800))
        expected = scipy.signal.fftconvolve(single / single.max(), K80, mode="full")[40:640, 40:840]
        assert np.abs(out - expected).max() < 1e-9

    # SPEC §2: ndimage's 81-tap truncate=2 filter is measurably not the paper's kernel.
    ndimage_81 = scipy.ndimage.gaussian_filter(reference_map, sigma=20.0, mode="constant", truncate=2.0)
    assert np.abs(ndimage_81 - reference).max() / reference.max() > 0.01
