"""Human fixation heatmaps (paper §2 "Data Processing"; SPEC §2 replication notes).

The paper's pipeline, for one image and the fixations pooled over participants:

1. keep the fixations that lie entirely within the display period (:func:`select_fixations`);
2. add each fixation's duration (ms) at its pixel of a zero matrix of the original image size
   (:func:`fixation_map`);
3. divide by the maximum;
4. convolve with MATLAB's ``fspecial('gaussian', 80, 20)`` kernel (:func:`gaussian_kernel`,
   :func:`blur`).

:func:`heatmap` runs it for one table, :func:`heatmaps` for many groups at once (per image, or per
image and participant). Every choice is a field of :class:`HeatmapParams`, written next to results.

Coordinates follow :mod:`lookwhere.records`: continuous image pixels, origin at the top-left corner
of the top-left pixel; the point ``(x, y)`` falls in pixel ``(row, col) = (floor(y), floor(x))``.
Maps are ``(H, W)`` float64 arrays, row = y.

The kernel and its centre
-------------------------
``fspecial('gaussian', k, sigma)`` samples ``exp(-(u² + v²) / (2 sigma²))`` at the offsets
``u, v = -(k-1)/2, ..., (k-1)/2`` and divides by the sum. For ``k = 80`` the offsets are the
half-integers ±0.5 … ±39.5, so the kernel is truncated at ±2σ (σ = 20) and drops ≈ 9 % of
the Gaussian's mass (it keeps 0.9111, ≈ erf(√2)²); the normalisation spreads that mass over the
kept taps. The kernel is exactly the outer product of two normalised 1-D Gaussians (to ~1e-19),
which the dense route exploits.

With an even size the kernel's centre falls on the corner between its four middle taps (0-based
rows/columns 39 and 40), so "same"-size convolution must put the result half a pixel off the
fixation's pixel centre, and libraries disagree on which way:

- ``scipy.signal.convolve2d(..., mode="same")`` (and ``fftconvolve``) keep the full convolution's
  rows ``(k-1)//2 ...`` (39 for k = 80). A unit fixation at pixel ``j`` gives output
  ``G(i - j - 0.5)`` at pixel ``i``: the blob is centred on continuous coordinate ``j + 1``, the
  bottom-right corner of the fixation's pixel, i.e. +0.5 px right and down compared with an odd
  kernel (centred on the pixel centre ``j + 0.5``). This is the default
  (``even_kernel_centre="scipy"``).
- MATLAB ``conv2(..., 'same')`` keeps the full convolution from 1-based index ``floor(k/2) + 1``
  (0-based ``k//2``, 40 for k = 80), as MATLAB's documented ``conv`` example shows
  (``conv([-1 2 3 -2 0 1 2], [2 4 -1 1], 'same') = [15 5 -9 7 6 7 -1]`` where NumPy gives
  ``[0 15 5 -9 7 6 7]``); ``imfilter(A, h, 0)`` correlates with the filter centre at
  ``floor((k+1)/2)`` (1-based), which for a symmetric kernel is the same thing. Both centre the blob
  on ``j``, the top-left corner: -0.5 px. So the MATLAB result is the SciPy result moved by one
  whole pixel up and left, ``matlab[r, c] = scipy[r + 1, c + 1]`` away from the bottom and right
  edges. ``even_kernel_centre="matlab"`` reproduces it and is the default: the paper's heatmaps
  were made in MATLAB. For odd sizes all of them agree. (Checked against MATLAB's documented example
  and a line-by-line transcription of ``conv2``'s definition and ``fspecial``, ``test_heatmap.py``;
  MATLAB itself was not run.) On pooled OSIE maps the two anchors differ pointwise by 5 % of the
  map's maximum (median of 40 images; 7.5 % at most).

``scipy.ndimage.gaussian_filter(sigma=20, truncate=2)`` is *not* the paper's kernel: its radius is
``int(2 * 20 + 0.5) = 40``, so it has 81 taps at integer offsets ±40, centred on the pixel. On the
200 pooled OSIE maps it differs from the 80×80 kernel by 3.5 % of the map's maximum (median; 5.5 %
at worst; ``bench/bench_heatmap.py``).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from analysis._checks import as_2d_float, check_choice, check_positive

__all__ = [
    "HeatmapParams",
    "gaussian_kernel",
    "fixation_map",
    "blur",
    "select_fixations",
    "heatmap",
    "heatmaps",
]

logger = logging.getLogger(__name__)

_TRIAL_KEY = ("participant", "session", "trial", "image")
_TIME_COLUMNS = ("start_ms", "end_ms", "stimulus_duration_ms")
_CENTRES = ("scipy", "matlab")
_METHODS = ("auto", "splat", "separable")
_BACKENDS = ("numpy", "torch")

# Cost model of method="auto" in :func:`blur`, in BLAS multiply-adds (measured on the 2-core
# development machine, where BLAS runs at ~25 G multiply-adds/s): splatting one pixel costs a
# Python-level slice update (≈ 2 µs, worth 5e4 multiply-adds) plus k² taps updated through a
# strided view at about 1/30 of BLAS speed; the separable route costs ~2k multiply-adds per pixel
# and axis. For 800×600 and k = 80 the break-even is ~600 nonzero pixels (≈ 6 ms); a pooled OSIE
# map has ~120, one observer's ~9.
_SPLAT_OVERHEAD_MACS = 5.0e4
_SPLAT_MACS_PER_TAP = 30.0


class HeatmapParams(BaseModel):
    """How human fixations become a heatmap; serialise with ``model_dump_json()`` next to results.

    The defaults are the paper's pipeline (§2 "Data Processing") with the replication choices of
    SPEC §2.

    Attributes
    ----------
    sigma_px : float
        Standard deviation of the Gaussian kernel, in original-image pixels (paper: 20).
    kernel_size_px : int or None
        Side of the square kernel (paper: 80, i.e. ``fspecial('gaussian', 80, 20)``: truncated at
        ±2σ, normalised to sum 1, ≈ 9 % of the mass dropped). ``None``: effectively untruncated,
        side ``2 * ceil(4 sigma_px) + 1`` (odd, centred on the pixel).
    duration_weighted : bool
        Add each fixation's ``duration_ms`` at its pixel (paper); ``False``: add 1 per fixation.
    exclude_first_fixation : bool
        Drop each trial's first fixation, the one in progress at image onset (commonly still on the
        drift-correction dot). See :func:`select_fixations`.
    within_display_only : bool
        Keep only fixations entirely within ``[0, stimulus_duration_ms]`` (paper) and not cut short
        by a recording stop (``truncated``). Rows whose times are unknown (NaN, e.g. OSIE) cannot be
        judged and are kept.
    prenormalize : {"max", "none"}
        ``"max"``: divide the fixation map by its maximum *before* blurring (paper).
    final_normalization : {"none", "max", "minmax", "sum"}
        Applied after blurring. ``"none"`` is the paper (the map's maximum is then well below 1).
    even_kernel_centre : {"matlab", "scipy"}
        Where the result of an even-sized kernel is anchored (see the module docstring):
        ``"matlab"`` (default, the paper's) equals MATLAB ``conv2(..., 'same')`` /
        ``imfilter(..., 0)``; ``"scipy"`` equals ``scipy.signal.convolve2d(mode="same")``, one pixel
        down and right of it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sigma_px: float = Field(20.0, gt=0, allow_inf_nan=False)
    kernel_size_px: int | None = Field(80, ge=1)
    duration_weighted: bool = True
    exclude_first_fixation: bool = False
    within_display_only: bool = True
    prenormalize: Literal["max", "none"] = "max"
    final_normalization: Literal["none", "max", "minmax", "sum"] = "none"
    even_kernel_centre: Literal["matlab", "scipy"] = "matlab"

    @property
    def resolved_kernel_size_px(self) -> int:
        """The kernel side actually used (``kernel_size_px``, or the untruncated size)."""
        return _resolve_kernel_size(self.sigma_px, self.kernel_size_px)


# --------------------------------------------------------------------------------------------
# Kernel


def _resolve_kernel_size(sigma_px: float, kernel_size_px: int | None) -> int:
    return 2 * math.ceil(4 * sigma_px) + 1 if kernel_size_px is None else kernel_size_px


def _check_kernel_args(sigma_px: float, size_px: int | None, *, size_name: str = "kernel_size_px") -> None:
    check_positive("sigma_px", sigma_px)
    if size_px is not None and (isinstance(size_px, bool) or not isinstance(size_px, (int, np.integer)) or size_px < 1):
        raise ValueError(f"{size_name} must be an integer >= 1 or None (untruncated); got {size_px!r}")


def _gaussian_1d(sigma_px: float, size_px: int) -> np.ndarray:
    """Normalised 1-D factor of :func:`gaussian_kernel`: samples at ``-(k-1)/2 ... (k-1)/2``."""
    offsets = np.arange(size_px) - (size_px - 1) / 2
    g = np.exp(-(offsets * offsets) / (2 * sigma_px * sigma_px))
    return g / g.sum()


def gaussian_kernel(*, sigma_px: float, size_px: int) -> np.ndarray:
    """MATLAB's ``fspecial('gaussian', size_px, sigma_px)``, exactly.

    Parameters
    ----------
    sigma_px : float
        Standard deviation in pixels, > 0.
    size_px : int
        Side of the square kernel, >= 1.

    Returns
    -------
    numpy.ndarray
        ``(size_px, size_px)`` float64, summing to 1. Entry ``[a, b]`` is
        ``exp(-(u² + v²) / (2 σ²)) / Σ`` with ``u = a - (size_px - 1)/2``,
        ``v = b - (size_px - 1)/2``; as in ``fspecial``, entries below ``eps * max`` are set to 0
        before normalising. For an even ``size_px`` the centre lies between the middle taps (see
        the module docstring for how :func:`blur` anchors it).

    Notes
    -----
    For ``fspecial('gaussian', 80, 20)`` the kernel spans ±2σ and keeps 0.9111 of the untruncated
    Gaussian's mass; dividing by the sum redistributes the missing ≈ 9 %.
    """
    if size_px is None:
        raise ValueError(
            "size_px must be an integer >= 1; got None (for the untruncated size use blur or HeatmapParams)"
        )
    _check_kernel_args(sigma_px, size_px, size_name="size_px")
    offsets = np.arange(size_px) - (size_px - 1) / 2
    u, v = np.meshgrid(offsets, offsets)
    h = np.exp(-(u * u + v * v) / (2 * sigma_px * sigma_px))
    h[h < np.finfo(np.float64).eps * h.max()] = 0.0
    return h / h.sum()


@dataclass(frozen=True, eq=False)  # hashed by identity: one cached instance per parameter set
class _Kernel:
    """Everything :func:`blur` needs about one kernel, computed once per parameter set."""

    full: np.ndarray  # (k, k), the fspecial kernel
    factor: np.ndarray  # (k,), with outer(factor, factor) == full to ~1e-19
    origin: int  # output pixel i receives input pixel j with weight full[i - j + origin]
    band: np.ndarray  # (k, 2k - 1), factor[a - b + k - 1] at [a, b]: a block of the 1-D convolution matrix

    @property
    def size(self) -> int:
        return self.factor.size


@functools.lru_cache(maxsize=16)
def _kernel(sigma_px: float, size_px: int, even_kernel_centre: str) -> _Kernel:
    full = gaussian_kernel(sigma_px=sigma_px, size_px=size_px)
    full.setflags(write=False)
    factor = _gaussian_1d(sigma_px, size_px)
    factor.setflags(write=False)
    origin = (size_px - 1) // 2 if even_kernel_centre == "scipy" else size_px // 2
    band = _toeplitz(factor, size_px, 2 * size_px - 1, shift=size_px - 1)
    band.setflags(write=False)
    return _Kernel(full=full, factor=factor, origin=origin, band=band)


def _toeplitz(factor: np.ndarray, n_rows: int, n_cols: int, *, shift: int) -> np.ndarray:
    """``(n_rows, n_cols)`` matrix holding ``factor[i - j + shift]`` at ``[i, j]``, else 0."""
    m = np.arange(n_rows)[:, None] - np.arange(n_cols)[None, :] + shift
    inside = (m >= 0) & (m < factor.size)
    t = np.zeros((n_rows, n_cols))
    t[inside] = factor[m[inside]]
    return t


# --------------------------------------------------------------------------------------------
# Fixation map and blur


def _pixels(x_px, y_px, height: int, width: int, *, what: str):
    """Pixel indices of points in the corner convention; drops (and logs) off-image/NaN points.

    ``height`` and ``width`` may be scalars or arrays matching the points (one image per point).
    Returns ``(rows, cols, keep)``: int64 indices of the kept points and the boolean mask.
    """
    x = np.asarray(x_px, dtype=np.float64)
    y = np.asarray(y_px, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        keep = (x >= 0) & (x < width) & (y >= 0) & (y < height)  # NaN compares False: dropped
    n_dropped = int(keep.size - np.count_nonzero(keep))
    if n_dropped:
        n_nan = int(np.count_nonzero(np.isnan(x) | np.isnan(y)))
        logger.info(
            "%s: dropped %d of %d fixations outside the image (%d of them with NaN coordinates)",
            what,
            n_dropped,
            keep.size,
            n_nan,
        )
    return np.floor(y[keep]).astype(np.int64), np.floor(x[keep]).astype(np.int64), keep


def _check_shape(shape, name: str = "shape") -> tuple[int, int]:
    ok = (
        isinstance(shape, (tuple, list))
        and len(shape) == 2
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in shape)
    )
    if not ok:
        raise ValueError(f"{name} must be (height_px, width_px), two integers >= 1; got {shape!r}")
    return int(shape[0]), int(shape[1])


def fixation_map(x_image_px, y_image_px, *, shape: tuple[int, int], weights=None) -> np.ndarray:
    """Accumulate fixations into a zero matrix of the image's size (paper §2).

    Parameters
    ----------
    x_image_px, y_image_px : array_like, shape (N,)
        Fixation positions in continuous image pixels (origin at the top-left corner).
    shape : (int, int)
        ``(H, W)`` of the original image.
    weights : array_like, shape (N,), optional
        Added at each fixation's pixel (e.g. ``duration_ms``); default 1 per fixation.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float64; pixel ``(floor(y), floor(x))`` holds the sum of the weights of the
        fixations in it. Points off the image or with NaN coordinates are dropped and counted in an
        INFO log line (looking at the screen beside the image is normal).
    """
    height, width = _check_shape(shape)
    x = np.asarray(x_image_px, dtype=np.float64)
    y = np.asarray(y_image_px, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(
            f"x_image_px and y_image_px must be 1-D arrays of equal length; got shapes {x.shape} and {y.shape}"
        )
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != x.shape:
        raise ValueError(f"weights must have the shape of x_image_px {x.shape}; got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"weights hold {int((~np.isfinite(w)).sum())} non-finite values; clean them first")
    rows, cols, keep = _pixels(x, y, height, width, what="fixation_map")
    flat = np.bincount(rows * width + cols, weights=w[keep], minlength=height * width)
    return flat.reshape(height, width)


def _choose_method(nnz: int, shape: tuple[int, int], kernel: _Kernel) -> Literal["splat", "separable"]:
    height, width = shape
    splat_cost = nnz * (_SPLAT_OVERHEAD_MACS + _SPLAT_MACS_PER_TAP * kernel.size**2)
    separable_cost = 2 * height * width * (min(2 * kernel.size, height) + min(2 * kernel.size, width))
    return "splat" if splat_cost < separable_cost else "separable"


def _splat(rows, cols, values, kernel: _Kernel, out: np.ndarray) -> np.ndarray:
    """Add to ``out`` (H, W) the blur of the map with ``values`` at ``(rows, cols)``, 0 elsewhere.

    Input pixel j adds ``value * full[i - j + origin]`` at output pixel i, i.e. the whole kernel
    placed with its top-left tap at ``(r - origin, c - origin)``, clipped to the image: exactly the
    terms of the direct convolution.
    """
    for r, c, value in zip(rows.tolist(), cols.tolist(), values.tolist()):
        window, taps = _window(r, c, kernel, out.shape)
        out[window] += value * kernel.full[taps]
    return out


def _window(
    row: int, col: int, kernel: _Kernel, shape: tuple[int, int]
) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Where the kernel of a fixation at pixel ``(row, col)`` lands, clipped to an image of ``shape``:
    ``(window, taps)``, slices of the image and of ``kernel.full`` of the same size."""
    height, width = shape
    k = kernel.size
    r0, c0 = row - kernel.origin, col - kernel.origin
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + k, height), min(c0 + k, width)
    return (slice(rs, re), slice(cs, ce)), (slice(rs - r0, re - r0), slice(cs - c0, ce - c0))


def _bands(n: int, kernel: _Kernel):
    """Blocks of the ``(n, n)`` 1-D convolution matrix ``T[i, j] = factor[i - j + origin]``.

    Yields ``(i0, i1, j0, j1, block)``: rows ``i0:i1`` of T are zero outside columns ``j0:j1``
    and equal ``block`` there. Every block is a window of ``kernel.band`` (T is Toeplitz), so no
    ``(n, n)`` matrix is ever built.
    """
    k, origin = kernel.size, kernel.origin
    for i0 in range(0, n, k):
        i1 = min(i0 + k, n)
        first = i0 + origin - k + 1  # column of band[:, 0]
        j0, j1 = max(first, 0), min(i1 + origin, n)
        yield i0, i1, j0, j1, kernel.band[: i1 - i0, j0 - first : j1 - first]


def _separable(dense: np.ndarray, kernel: _Kernel, out: np.ndarray | None = None) -> np.ndarray:
    """Blur a dense ``(H, W)`` map as ``T_H @ map @ T_W.T`` with the 1-D convolution matrices.

    The products run block by block over the band only (k rows against the 2k - 1 columns they
    touch): about 2·k·H·W multiply-adds per axis in BLAS instead of H²·W.
    """
    height, width = dense.shape
    vertical = np.empty_like(dense)
    for i0, i1, j0, j1, block in _bands(height, kernel):
        np.matmul(block, dense[j0:j1], out=vertical[i0:i1])
    out = np.empty_like(dense) if out is None else out
    for i0, i1, j0, j1, block in _bands(width, kernel):
        np.matmul(vertical[:, j0:j1], block.T, out=out[:, i0:i1])
    return out


def _blur_torch(fixmap: np.ndarray, kernel: _Kernel, device) -> np.ndarray:
    import torch  # optional dependency, imported only when asked for

    height, width = fixmap.shape
    # Whole (n, n) convolution matrices: on a GPU two dense products beat the blockwise loop.
    t_h, t_w = (
        torch.as_tensor(_toeplitz(kernel.factor, n, n, shift=kernel.origin), dtype=torch.float64).to(device)
        for n in (height, width)
    )
    f = torch.as_tensor(fixmap, dtype=torch.float64, device=device)
    return (t_h @ f @ t_w.T).cpu().numpy()


def blur(
    fixmap: np.ndarray,
    *,
    sigma_px: float = 20.0,
    kernel_size_px: int | None = 80,
    even_kernel_centre: Literal["matlab", "scipy"] = "matlab",
    method: Literal["auto", "splat", "separable"] = "auto",
    backend: Literal["numpy", "torch"] = "numpy",
    device=None,
) -> np.ndarray:
    """Convolve a map with the paper's Gaussian kernel, keeping its size (zero outside the image).

    Parameters
    ----------
    fixmap : array_like, shape (H, W)
        The map, in image pixels (finite values).
    sigma_px, kernel_size_px
        The kernel, as in :class:`HeatmapParams` (default ``fspecial('gaussian', 80, 20)``).
    even_kernel_centre : {"matlab", "scipy"}
        Anchor of an even-sized kernel. ``"matlab"`` (default): MATLAB ``conv2(fixmap, h, 'same')``;
        ``"scipy"``: ``scipy.signal.convolve2d(fixmap, gaussian_kernel(...), mode="same",
        boundary="fill")``, one pixel down and right of it (module docstring). Irrelevant for odd
        sizes.
    method : {"auto", "splat", "separable"}
        ``"splat"`` adds the kernel at every nonzero pixel, O(nnz · k²), exact and fast for the
        sparse maps of fixations; ``"separable"`` multiplies by two banded matrices holding the
        normalised 1-D factor (the kernel is their outer product), block by block along the band,
        O(H · W · k) in BLAS.
        ``"auto"`` picks the cheaper one from the number of nonzero pixels.
    backend : {"numpy", "torch"}
        ``"torch"`` runs the separable route with torch in float64 on ``device`` (e.g. ``"cuda"``);
        torch is imported only then.
    device : str or torch.device, optional
        Torch device for ``backend="torch"``; default CPU.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float64. All routes agree with ``conv2`` / ``convolve2d`` to ~1e-15 on maps
        with maximum 1.
    """
    f = as_2d_float(fixmap, "fixmap")
    _check_kernel_args(sigma_px, kernel_size_px)
    check_choice("even_kernel_centre", even_kernel_centre, _CENTRES)
    check_choice("method", method, _METHODS)
    check_choice("backend", backend, _BACKENDS)
    kernel = _kernel(float(sigma_px), _resolve_kernel_size(sigma_px, kernel_size_px), even_kernel_centre)
    if backend == "torch":
        return _blur_torch(f, kernel, device)
    if method == "auto":
        method = _choose_method(int(np.count_nonzero(f)), f.shape, kernel)
    if method == "separable":
        return _separable(f, kernel)
    rows, cols = np.nonzero(f)
    return _splat(rows, cols, f[rows, cols], kernel, np.zeros(f.shape))


# --------------------------------------------------------------------------------------------
# Fixation selection and the pipeline


def _check_columns(fixations: pd.DataFrame, needed: Sequence[str], what: str) -> None:
    if not isinstance(fixations, pd.DataFrame):
        raise TypeError(
            f"fixations must be a pandas DataFrame (lookwhere.records columns); got {type(fixations).__name__}"
        )
    missing = [c for c in needed if c not in fixations.columns]
    if missing:
        raise ValueError(
            f"{what} needs the fixation table columns {missing}, which are missing "
            f"(present: {list(fixations.columns)}); build the table with a lookwhere reader"
        )


def _first_fixation_mask(fixations: pd.DataFrame) -> np.ndarray:
    """True for each trial's first fixation: the earliest-starting one not ending before onset.

    Fixations that end before onset (e.g. during drift correction) are not candidates; rows with
    unknown times are; ties and NaN start times fall back to table order.
    """
    positional = fixations.reset_index(drop=True)  # the caller's index may repeat labels
    candidates = positional[~(positional["end_ms"] < 0)]
    ordered = candidates.sort_values("start_ms", kind="stable", na_position="last")
    first = ordered.groupby(list(_TRIAL_KEY), sort=False, dropna=False).head(1).index.to_numpy()
    mask = np.zeros(len(fixations), dtype=bool)
    mask[first] = True
    return mask


def select_fixations(fixations: pd.DataFrame, params: HeatmapParams = HeatmapParams()) -> pd.DataFrame:
    """The fixations that enter the heatmap (paper §2), in table order.

    Parameters
    ----------
    fixations : pandas.DataFrame
        Table with the :mod:`lookwhere.records` columns (at least ``participant``, ``session``,
        ``trial``, ``image``, ``start_ms``, ``end_ms``, ``stimulus_duration_ms``); times in ms
        relative to image onset.
    params : HeatmapParams

    Returns
    -------
    pandas.DataFrame
        The kept rows (same columns and index).

    Notes
    -----
    Steps, in this order:

    1. ``exclude_first_fixation``: drop each trial's first fixation — the earliest-starting one
       that does not end before onset, i.e. the fixation in progress at onset (usually still on
       the drift-correction dot) or else the first after it. A trial is one
       (participant, session, trial, image); without times, the trial's first row. This runs on the
       unfiltered table so that it removes the onset fixation and not the first one that survives
       the display filter.
    2. ``within_display_only``: drop fixations known to violate ``0 <= start_ms`` and
       ``end_ms <= stimulus_duration_ms``, so one straddling onset or offset goes (paper: "entirely
       within the period of display"), and those flagged ``truncated`` (cut short by a recording
       stop, so their end is not known to be within the period). Rows with a NaN among these times
       cannot be judged and are kept; their number is logged once per call.
    """
    return fixations[_selection_mask(fixations, params)]


def _selection_mask(fixations: pd.DataFrame, params: HeatmapParams) -> np.ndarray:
    """Boolean mask of the rows :func:`select_fixations` keeps."""
    _check_columns(fixations, _TRIAL_KEY + _TIME_COLUMNS, "select_fixations")
    keep = np.ones(len(fixations), dtype=bool)
    if params.exclude_first_fixation:
        keep &= ~_first_fixation_mask(fixations)
    if params.within_display_only:
        start = fixations["start_ms"].to_numpy(dtype=np.float64)
        end = fixations["end_ms"].to_numpy(dtype=np.float64)
        shown = fixations["stimulus_duration_ms"].to_numpy(dtype=np.float64)
        unknown = np.isnan(start) | np.isnan(end) | np.isnan(shown)
        if unknown.any():
            logger.info(
                "select_fixations: %d of %d fixations have no start/end/stimulus duration (NaN); "
                "kept, since the display-period filter cannot judge them",
                int(unknown.sum()),
                len(fixations),
            )
        with np.errstate(invalid="ignore"):
            keep &= ~((start < 0) | (end > shown))
        if "truncated" in fixations.columns:  # cut short by a recording stop: not a whole fixation
            keep &= ~fixations["truncated"].to_numpy(dtype=bool)
    return keep


def _weights(duration_ms: np.ndarray, params: HeatmapParams) -> np.ndarray:
    """What each selected fixation adds at its pixel: its duration (ms) or 1."""
    if not params.duration_weighted:
        return np.ones(duration_ms.size)
    bad = ~(np.isfinite(duration_ms) & (duration_ms >= 0))
    if bad.any():
        raise ValueError(
            "duration_ms must be finite and >= 0 for duration weighting; "
            f"{int(bad.sum())} rows are not (first: {duration_ms[bad][:3].tolist()}); "
            "fix the table or use duration_weighted=False"
        )
    return duration_ms


def _normalize(m: np.ndarray, how: str, *, what: str) -> np.ndarray:
    """Apply ``final_normalization`` to a blurred map (not all zero) in place."""
    if how == "max":
        m /= m.max()
    elif how == "sum":
        m /= m.sum()
    elif how == "minmax":
        bottom, top = m.min(), m.max()
        if top > bottom:
            m -= bottom
            m /= top - bottom
        else:  # e.g. a 1-pixel image: no range to stretch
            logger.warning("%s: the map is constant (%g); min-max normalisation gives all zeros", what, top)
            m[...] = 0.0
    return m


def _render(rows, cols, weights, params: HeatmapParams, *, out: np.ndarray, what: str) -> np.ndarray:
    """Prenormalise, blur and normalise one fixation map given as (possibly repeated) pixels.

    Writes into ``out``, a zeroed ``(H, W)`` array, and returns it. ``weights`` are >= 0 (checked
    by :func:`_weights`), so the map's maximum is that of its nonzero pixels.
    """
    width = out.shape[1]
    flat, inverse = np.unique(rows * width + cols, return_inverse=True)
    values: np.ndarray = np.bincount(inverse, weights=weights, minlength=flat.size)  # float64 (weighted)
    top = values.max(initial=0.0)
    if top == 0:
        logger.info("%s: no fixations left; the heatmap is all zero", what)
        return out
    if params.prenormalize == "max":
        values /= top
    kernel = _kernel(params.sigma_px, params.resolved_kernel_size_px, params.even_kernel_centre)
    rows, cols = np.divmod(flat, width)
    if _choose_method(flat.size, out.shape, kernel) == "splat":
        _splat(rows, cols, values, kernel, out)
    else:
        dense = np.zeros(out.shape)
        dense[rows, cols] = values
        _separable(dense, kernel, out=out)
    return _normalize(out, params.final_normalization, what=what)


def heatmap(fixations: pd.DataFrame, *, shape: tuple[int, int], params: HeatmapParams = HeatmapParams()) -> np.ndarray:
    """The human fixation heatmap of the given rows, pooled over their participants (paper §2).

    Parameters
    ----------
    fixations : pandas.DataFrame
        Fixations on one image, with the :mod:`lookwhere.records` columns (``x_image_px``,
        ``y_image_px`` in continuous original-image pixels; ``duration_ms``; the times used by
        :func:`select_fixations`).
    shape : (int, int)
        ``(H, W)`` of the original image.
    params : HeatmapParams
        Pipeline choices; the default is the paper's.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float64: :func:`select_fixations` → :func:`fixation_map` at
        ``(floor(y_image_px), floor(x_image_px))`` with weights ``duration_ms`` (or 1) → divide by
        the maximum → :func:`blur` → ``final_normalization``. With no fixations left the map is
        all zero (logged), never NaN.
    """
    shape = _check_shape(shape)
    _check_columns(fixations, ("x_image_px", "y_image_px", "duration_ms"), "heatmap")
    images = fixations["image"].unique() if "image" in fixations.columns else []
    if len(images) > 1:
        raise ValueError(
            f"heatmap makes the map of one image, but fixations holds {len(images)} images "
            f"(e.g. {[str(i) for i in images[:3]]}); select one image's rows or use heatmaps()"
        )
    chosen = _selection_mask(fixations, params)
    x, y, duration = _columns(fixations, chosen)
    rows, cols, keep = _pixels(x, y, *shape, what="heatmap")
    return _render(rows, cols, _weights(duration, params)[keep], params, out=np.zeros(shape), what="heatmap")


def _columns(fixations: pd.DataFrame, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x_image_px``, ``y_image_px`` and ``duration_ms`` of the chosen rows, as float64 arrays."""
    names = ("x_image_px", "y_image_px", "duration_ms")
    return tuple(fixations[name].to_numpy(dtype=np.float64)[chosen] for name in names)


def heatmaps(
    fixations: pd.DataFrame,
    shapes: Mapping[str, tuple[int, int]],
    *,
    params: HeatmapParams = HeatmapParams(),
    by: Sequence[str] = ("image",),
) -> dict[tuple, np.ndarray]:
    """:func:`heatmap` for every group of a table at once.

    Parameters
    ----------
    fixations : pandas.DataFrame
        Fixations with the :mod:`lookwhere.records` columns, any number of images.
    shapes : Mapping[str, (int, int)]
        Image id → ``(H, W)`` of the original image; every image in the table must be present.
    params : HeatmapParams
    by : sequence of str
        Grouping columns; must include ``"image"``. ``("image",)`` pools all participants (paper);
        ``("image", "participant")`` gives one map per observer.

    Returns
    -------
    dict[tuple, numpy.ndarray]
        One ``(H, W)`` float64 map per group of the *input* table (sorted keys, always tuples in
        the order of ``by``), equal to :func:`heatmap` on that group's rows. A group whose
        fixations are all filtered out gets an all-zero map.

    Notes
    -----
    Selection, weighting, pixel lookup and grouping run once over the whole table, in NumPy; each
    map is then blurred from its few nonzero pixels (see :func:`blur`, ``method="auto"``). On the
    200 OSIE images (800×600) this takes ≈ 2 ms per pooled map and ≈ 1–2 ms per observer's
    map, largely the first touch of the output memory, against ≈ 20–30 ms for ``fftconvolve`` on
    the shared 2-core development VM (``bench/bench_heatmap.py``; timings vary ~2× with its load).

    Memory: an 800×600 map is 3.8 MB; call per chunk of images for thousands of maps. (One
    ``(n, H, W)`` block for all maps was tried and was slower in the benchmark.)
    """
    by = list(by)
    if "image" not in by:
        raise ValueError(f"by must include 'image' (the map's shape depends on it); got {by!r}")
    _check_columns(fixations, [*by, "x_image_px", "y_image_px", "duration_ms"], "heatmaps")
    images = fixations["image"].unique()
    missing = [str(i) for i in images if i not in shapes]
    if missing:
        raise ValueError(
            f"shapes has no (H, W) for {len(missing)} image(s) of the table, e.g. {missing[:5]}; "
            "pass the sizes of every image (e.g. from the stimulus set)"
        )
    checked = {str(i): _check_shape(shapes[i], f"shapes[{i!r}]") for i in images}

    grouped = fixations.groupby(by if len(by) > 1 else by[0], sort=True, dropna=False)
    keys = [_as_tuple(key) for key in grouped.size().index]
    group_of_row = grouped.ngroup().to_numpy()
    image_code, image_ids = pd.factorize(fixations["image"])
    heights, widths = np.array([checked[str(i)] for i in image_ids], dtype=np.int64).reshape(-1, 2).T

    chosen = _selection_mask(fixations, params)
    x, y, duration = _columns(fixations, chosen)
    code = image_code[chosen]
    rows, cols, keep = _pixels(x, y, heights[code], widths[code], what="heatmaps")
    weights = _weights(duration, params)[keep]
    # The kept points sorted by group: group g owns order[bounds[g]:bounds[g + 1]].
    group = group_of_row[chosen][keep]
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(keys) + 1))

    result: dict[tuple, np.ndarray] = {}
    for g, key in enumerate(keys):
        at = order[bounds[g] : bounds[g + 1]]
        out = np.zeros(checked[str(key[by.index("image")])])
        what = f"heatmaps{dict(zip(by, key))}"
        result[key] = _render(rows[at], cols[at], weights[at], params, out=out, what=what)
    return result


def _as_tuple(key) -> tuple:
    return key if isinstance(key, tuple) else (key,)
