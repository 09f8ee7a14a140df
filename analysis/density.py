"""Saliency maps as probability densities, for KL divergence and information gain.

KL divergence and information gain compare probability distributions: a map with exact zeros (a
ReLU-zeroed Grad-CAM, a heatmap blurred with a truncated kernel) loses ~31–52 bits at every fixation
that lands on a zero, through the metrics' epsilons alone, and a map's scale and blur decide the
rest. So every map (models and baselines alike) is turned into a density the same way before these
two metrics, as the MIT benchmark's optimisation step does (cvzoya/saliency ``processMap.m``: blur,
min-max, mix with a centre bias) and as Kümmerer, Wallis & Bethge (PNAS 2015) require for comparing
models by likelihood:

1. min-max scale the map to [0, 1] (a constant map becomes all ones);
2. blur it with a Gaussian of ``sigma_px`` (:func:`blur`, MATLAB ``imfilter(..., 'symmetric')``:
   reflected at the borders, so a constant map stays constant);
3. divide by the sum, and mix with the centre-bias density: ``(1 - w) P + w C``.

``sigma_px`` and ``w`` are chosen per map (e.g. per CNN layer, per baseline) by maximising the
log-likelihood of the fixations on the *other* images (:func:`log_likelihood_table`,
:func:`fit_leave_one_out`): the parameters of one image never see its own fixations. The raw maps'
KL and information gain (MIT's definitions on the maps as given) stay available as a variant.

Arrays are ``(H, W)`` float64 in image pixels, row = y. Fixations are flat pixel indices with counts.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analysis._checks import as_2d_float

__all__ = [
    "CENTRE_WEIGHTS",
    "SIGMA_FRACTIONS",
    "DensityParams",
    "blur",
    "default_params",
    "fit_all",
    "fit_leave_one_out",
    "grid",
    "log_likelihood_table",
    "to_density",
]

#: Blur widths tried, as fractions of the image width (0, 8, 16, 32 and 64 px on an 800 px image).
SIGMA_FRACTIONS = (0.0, 0.01, 0.02, 0.04, 0.08)
#: Centre-bias mixture weights tried (never 0: a density must not vanish where people may look).
CENTRE_WEIGHTS = (0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
#: Gaussian truncation of the blur, in standard deviations (``scipy.ndimage`` default).
_TRUNCATE = 4.0
_BLOCK_ROWS = 128  # rows per block of the banded blur (analysis.density._blur_blocks)


class DensityParams(BaseModel):
    """How one map becomes a density: blur width and centre-bias mixture weight.

    Attributes
    ----------
    sigma_px : float
        Standard deviation of the Gaussian blur in image pixels (0: no blur).
    centre_weight : float
        Weight ``w`` of the centre-bias density in ``(1 - w) P + w C``, in [0, 1].
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sigma_px: float = Field(0.0, ge=0, allow_inf_nan=False)
    centre_weight: float = Field(0.1, ge=0, le=1, allow_inf_nan=False)


#: The default blur, as a fraction of the image width, and centre-bias weight: what the fit chose on
#: the 200 OSIE images for the dataset prior and the gold standard (16 px and 0.1 on 800 px). The
#: live server, which cannot fit, uses them for every map.
DEFAULT_SIGMA_FRACTION, DEFAULT_CENTRE_WEIGHT = 0.02, 0.1


def default_params(shape: tuple[int, int]) -> DensityParams:
    """The density conversion used where none was fitted, for an image of ``shape`` ``(H, W)``."""
    return DensityParams(sigma_px=DEFAULT_SIGMA_FRACTION * shape[1], centre_weight=DEFAULT_CENTRE_WEIGHT)


def grid(width_px: int) -> list[DensityParams]:
    """The parameter grid for images ``width_px`` wide, in the order of :func:`log_likelihood_table`'s
    flattened table (sigma-major)."""
    return [
        DensityParams(sigma_px=fraction * width_px, centre_weight=w)
        for fraction in SIGMA_FRACTIONS
        for w in CENTRE_WEIGHTS
    ]


@functools.lru_cache(maxsize=32)
def _blur_matrix(n: int, sigma_px: float) -> np.ndarray:
    """``(n, n)`` matrix ``M`` with ``M @ x`` the 1-D Gaussian blur of ``x``, as
    ``scipy.ndimage.gaussian_filter1d(x, sigma_px, mode="reflect", truncate=4)``: taps
    ``exp(-t² / 2σ²)`` for ``|t| <= int(4σ + 0.5)``, normalised, the signal reflected about its edges
    (``d c b a | a b c d | d c b a``)."""
    matrix: np.ndarray  # float64 (bincount with weights, which numpy's stubs type as intp)
    if sigma_px == 0:
        matrix = np.eye(n)
    else:
        radius = int(_TRUNCATE * sigma_px + 0.5)
        taps = np.arange(-radius, radius + 1)
        kernel = np.exp(-0.5 * (taps / sigma_px) ** 2)
        kernel /= kernel.sum()
        source = (np.arange(n)[:, None] + taps[None, :]) % (2 * n)  # reflection has period 2n
        source = np.where(source < n, source, 2 * n - 1 - source)
        rows = np.repeat(np.arange(n), taps.size)
        matrix = np.bincount(rows * n + source.ravel(), weights=np.tile(kernel, n), minlength=n * n).reshape(n, n)
    matrix.setflags(write=False)
    return matrix


def blur(values: np.ndarray, *, sigma_px: float) -> np.ndarray:
    """Gaussian blur with reflected borders, as ``scipy.ndimage.gaussian_filter(values, sigma_px,
    mode="reflect", truncate=4)`` and MATLAB ``imfilter(values, h, 'symmetric')``.

    Parameters
    ----------
    values : array_like, shape (H, W)
    sigma_px : float
        Standard deviation in pixels, >= 0 (0 returns a copy).

    Returns
    -------
    numpy.ndarray, shape (H, W), float64
        Computed as ``M_rows @ values @ M_cols.T`` with the 1-D blur matrices, in bands (BLAS; the
        same matrices give :func:`log_likelihood_table` its values at single pixels).
    """
    values = as_2d_float(values, "values")
    height, width = values.shape
    sigma_px = float(sigma_px)
    rows = np.empty_like(values)
    matrix = _blur_matrix(height, sigma_px)
    for start, stop, first, last in _blur_blocks(height, sigma_px):
        np.matmul(matrix[start:stop, first:last], values[first:last], out=rows[start:stop])
    out = np.empty_like(values)
    matrix = _blur_matrix(width, sigma_px)
    for start, stop, first, last in _blur_blocks(width, sigma_px):
        np.matmul(rows[:, first:last], matrix[start:stop, first:last].T, out=out[:, start:stop])
    return out


@functools.lru_cache(maxsize=32)
def _blur_blocks(n: int, sigma_px: float) -> tuple[tuple[int, int, int, int], ...]:
    """``(start, stop, first, last)``: blocks of rows of :func:`_blur_matrix` and the columns outside
    which they are zero. The kernel reaches 4σ, a fraction of the image for the usual σ: multiplying
    block by block skips most of the matrix's zeros (2.5× fewer operations at σ = 2% of 800 px)."""
    nonzero = _blur_matrix(n, sigma_px) != 0
    first = nonzero.argmax(axis=1)
    last = n - nonzero[:, ::-1].argmax(axis=1)
    return tuple(
        (
            start,
            min(n, start + _BLOCK_ROWS),
            int(first[start : start + _BLOCK_ROWS].min()),
            int(last[start : start + _BLOCK_ROWS].max()),
        )
        for start in range(0, n, _BLOCK_ROWS)
    )


def _unit_scaled(values: np.ndarray) -> np.ndarray:
    """Min-max scaled to [0, 1]; a constant map becomes all ones (uniform once normalised)."""
    lo, hi = float(values.min()), float(values.max())
    return np.ones_like(values) if hi == lo else (values - lo) / (hi - lo)


def to_density(saliency_map, params: DensityParams | None, *, centre_density: np.ndarray) -> np.ndarray:
    """The map as a probability density (module docstring, steps 1–3).

    Parameters
    ----------
    saliency_map : array_like, shape (H, W)
        Finite, any scale.
    params : DensityParams or None
        Blur and mixture weight; None for a map that already is a density (non-negative, e.g. the
        uniform control or the human gold standard): it is only divided by its sum.
    centre_density : numpy.ndarray, shape (H, W)
        The centre-bias density ``C`` (sums to 1).

    Returns
    -------
    numpy.ndarray, shape (H, W), float64
        Non-negative, summing to 1 (to rounding); > 0 everywhere when ``centre_weight > 0``.
    """
    values = as_2d_float(saliency_map, "saliency_map")
    if params is None:
        if values.min() < 0 or not values.sum() > 0:
            raise ValueError(
                "a map used as a density must be >= 0 with a positive sum; "
                f"got minimum {values.min()!r}, sum {values.sum()!r}"
            )
        return values / values.sum()
    lo, hi = float(values.min()), float(values.max())
    # a constant map stays constant under the reflected blur: uniform, without the blur's rounding
    blurred = np.ones_like(values) if hi == lo else blur(_unit_scaled(values), sigma_px=params.sigma_px)
    w = params.centre_weight
    return (1.0 - w) * (blurred / blurred.sum()) + w * centre_density


def log_likelihood_table(
    saliency_map,
    pixels: np.ndarray,
    counts: np.ndarray,
    *,
    centre_density: np.ndarray,
    sigmas_px: Sequence[float],
    weights: Sequence[float] = CENTRE_WEIGHTS,
) -> np.ndarray:
    """Log-likelihood of fixations under the map's density, for every blur and mixture weight.

    Parameters
    ----------
    saliency_map : array_like, shape (H, W)
    pixels : numpy.ndarray, shape (F,)
        Flat indices (``row * W + col``) of the fixated pixels.
    counts : numpy.ndarray, shape (F,)
        Fixations at each pixel.
    centre_density : numpy.ndarray, shape (H, W)
    sigmas_px, weights : sequences of float
        The grid.

    Returns
    -------
    numpy.ndarray, shape (len(sigmas_px), len(weights))
        ``sum(counts * log2 p)`` in bits, with ``p`` :func:`to_density` at the fixated pixels, computed
        there only: ``p(r, c) = M_r[r] @ S @ M_c[c]`` with the blur matrices (no full blur); the
        normaliser ``sum(M_r @ S @ M_c.T)`` from their column sums.
    """
    values = _unit_scaled(as_2d_float(saliency_map, "saliency_map"))
    height, width = values.shape
    rows, cols = np.divmod(np.asarray(pixels, dtype=np.int64), width)
    counts = np.asarray(counts, dtype=np.float64)
    centre = centre_density.ravel()[pixels]
    w = np.asarray(weights, dtype=np.float64)
    table = np.empty((len(sigmas_px), w.size))
    for i, sigma_px in enumerate(sigmas_px):
        if sigma_px == 0:
            at, total = values.ravel()[pixels], values.sum()
        else:  # p(r, c) = M_r[r] @ S @ M_c[c]: one (H, W) @ (W, F) product, then F dot products
            m_rows, m_cols = _blur_matrix(height, float(sigma_px)), _blur_matrix(width, float(sigma_px))
            at = np.einsum("hf,fh->f", values @ m_cols[cols].T, m_rows[rows])
            total = m_rows.sum(axis=0) @ values @ m_cols.sum(axis=0)
        p = (1.0 - w[None, :]) * (at / total)[:, None] + w[None, :] * centre[:, None]
        table[i] = counts @ np.log2(p)
    return table


def fit_leave_one_out(tables: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Per image, the grid cell that maximises the log-likelihood of the *other* images' fixations.

    Parameters
    ----------
    tables : mapping of image id → numpy.ndarray
        Each image's log-likelihood table (:func:`log_likelihood_table`; the same shape for all).

    Returns
    -------
    dict of image id → int
        The chosen cell, a flat index into the table (``grid(width_px)[index]`` for the image's
        parameters). Ties go to the first cell (the least blur, then the smallest weight). With a
        single image there is nothing else to fit on: the best cell for that image itself.
    """
    if not tables:
        return {}
    stacked = np.stack([np.asarray(t, dtype=np.float64).ravel() for t in tables.values()])
    others = stacked.sum(axis=0)[None, :] - stacked if len(tables) > 1 else stacked
    return {image: int(np.argmax(row)) for image, row in zip(tables, others)}


def fit_all(tables: Mapping[str, np.ndarray]) -> int:
    """The grid cell that maximises the log-likelihood of every image's fixations (for the record:
    each image is scored with its :func:`fit_leave_one_out` cell)."""
    return int(np.argmax(np.sum([np.asarray(t, dtype=np.float64).ravel() for t in tables.values()], axis=0)))
