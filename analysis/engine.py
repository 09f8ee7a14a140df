"""Incremental scoring of one image: state that each new fixation updates instead of recomputing.

:class:`ImageEngine` holds, for one image, everything :func:`analysis.offline.score_image` computes
from scratch, and keeps it current fixation by fixation: the pooled human heatmap, each
participant's own heatmap, the scores of every map (baselines, the blank and uniform controls and
model maps) against the pooled target and against one participant's target, and the human rows
(``human_loso``: each participant scored against the others' heatmap; ``human_gold``, on request:
the gold standard of :mod:`analysis.ceilings`). The offline analysis builds its results through
this engine too, so live and offline numbers come from one implementation.

What a fixation updates, and what is left for the query
-------------------------------------------------------
- **Heatmaps.** A heatmap is an affine normalisation of ``raw = sum_i w_i K_i``, the fixations'
  weights (duration or 1) stamped with the paper's kernel (:mod:`analysis.heatmap`, MATLAB
  ``conv2(..., 'same')`` or SciPy anchoring). Blurring is linear, so a fixation adds one stamp to the
  pooled ``raw`` and one to its participant's; ``raw``'s sum, sum of squares and maximum follow
  from the stamp's window. The normalisation (divide by the fixation map's maximum, then
  ``final_normalization``) is a pair of scalars ``(a, b)``, heatmap ``= raw * a + b``, applied when
  scores are asked for. The others' heatmap of the human ceiling is ``pooled raw - own raw``.
- **Sufficient statistics of each map** (the image's maps are one stacked array, prepared once):
  CC's ``sum((s - mean s) * raw)`` and KL's ``sum(raw * log(eps + p_s))`` are linear in ``raw`` and
  grow by one window dot product per fixation; NSS, information gain, the AUC-Judd thresholds and
  the Borji AUCs' positives are values at the fixated pixels. KL and information gain read each
  map's density (:mod:`analysis.density`, made once with the map) or, with ``kl_ig_maps="raw"``,
  the map itself. AUC-Judd's count of pixels above a threshold is a bisection of the map's min-max
  scaled, jittered values, sorted once (the jitter is a fixed noise field per image,
  :func:`analysis.metrics._judd_noise`), and is kept per fixated pixel. The Borji AUCs' random
  negatives depend only on the number of fixated pixels and on the target's stream (``(image,)``
  for the pooled target, ``(image, participant)`` for one participant's: every target draws its
  own), so their per-map counts are kept per count and stream.
- **Full passes** remain where the definition needs them: MAE and SIM compare every pixel with a
  normalisation that changes with each fixation, but outside the human map's support the human
  map is zero and both reduce to per-map sums known in advance, so they run over the tiles the
  support touches only. KL is ``sum(q log q) - sum(q log(eps + p))`` (within 2.2e-16 of MIT's
  ``sum(q log(eps + q / (p + eps)))``, since ``sum(p) = 1``): a pass over the support for the human
  map alone plus the running dot product. The human ceiling's others' map changes with every
  fixation, so its metrics run over each participant's own support (where the own heatmap is not
  zero; elsewhere the others' map is the pooled one, known from whole-image scalars), its AUC-Judd
  counts there directly and elsewhere from the pooled raw kept sorted (:mod:`analysis._engine_sorted`,
  :mod:`analysis._engine_loso`); a GPU compares every pixel instead.
- **Context.** The dataset prior and the shuffled-AUC negatives depend on the *other* images'
  fixations: :meth:`ImageEngine.set_context` recomputes them, once per change of those (a version
  the caller keeps), not per fixation of this image.
- **Retractions.** :meth:`ImageEngine.replace_fixations` rebuilds the state from a table
  (an aborted trial, a changed selection): exactness first.

Exactness
---------
Scores equal the full recomputation (:func:`analysis.metrics.score_map` on maps from
:func:`analysis.heatmap.heatmap`) to 1e-9 (observed: about 1e-13), for every option of ``score_map``
and :class:`~analysis.heatmap.HeatmapParams`. The random AUCs use the same draws: for the model maps
and baselines they are identical; for the human ceiling, whose others' heatmap is summed in another
order (values differ in the last bits), a threshold would have to fall within ~1e-19 of a
jittered value to change a count.

Memory (per image, float64 state)
---------------------------------
Per map and pixel: 8 bytes (the map) + 8 (min-max scaled, in tiles) + 1 (Borji threshold code) + 8
(sorted jittered values, CPU backend only) + 8 (the density for KL and information gain; not with
``kl_ig_maps="raw"``) = **33 bytes** (25 on a torch device): 20 maps of 800x600 take 317 MB (240 MB
on a GPU). Per participant and pixel: 9 bytes (own heatmap, support mask). Per
pixel: 8 (the AUC-Judd noise field, shared by the engines of one size and seed) + 9 (pooled
heatmap, support) + up to 24 (the pooled heatmap sorted, CPU) + scratch of the human ceiling
(~40 bytes per pixel of the largest participant support on the CPU; ``7 x participants`` per pixel
on a GPU). The Borji stream table grows with the fixated pixels: ``2200 x maps`` bytes per pixel
fixated, per target that draws. A server keeps a few engines (e.g. the current image's and the
next one's), not one per image.

Threads and devices
-------------------
Not thread-safe (one caller at a time). On the CPU a query runs two worker threads of its own for
the stacked tile pass and the human ceiling (numpy releases the GIL), which matters on a two-core
machine; torch is imported only for a torch ``device``.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np
import pandas as pd

from analysis._checks import as_2d_float, check_choice, check_positive
from analysis._engine_backend import backend as _backend
from analysis._engine_backend import in_two_threads
from analysis._engine_loso import HumanCeiling, Workspace
from analysis._engine_sorted import SortedValues
from analysis._engine_state import (
    N_SPLITS,
    N_THRESHOLDS,
    STEP,
    Heatmap,
    Layout,
    MapStats,
    Target,
    heatmap_transform,
    lookup,
)
from analysis.baselines import CONTROLS, blank_map, center_bias, other_images_on_grid, uniform_map
from analysis.ceilings import gold_density
from analysis.density import DensityParams, default_params, to_density
from analysis.heatmap import HeatmapParams, _check_shape, _kernel, _window, fixation_map, heatmap
from analysis.metrics import (
    _PYSALIENCY_KL_MINIMUM,
    MATLAB_EPS,
    METRICS,
    SAMPLED_METRICS,
    HumanTarget,
    Variant,
    _Affine,
    _borji_negatives,
    _cc_from,
    _check_seed,
    _check_variant,
    _density,
    _density_values,
    _fraction_at_least,
    _info_gain_from,
    _judd_area,
    _judd_noise,
    _minmax_values,
    _nss_from,
    _shuffled_draws,
    _shuffled_negatives,
    _sim_density,
    _split_areas,
    _threshold_codes,
    _undefined,
    monte_carlo_se,
    score_map,
)

__all__ = ["ImageEngine", "BASELINE_MAPS"]

logger = logging.getLogger(__name__)

#: The maps every image is scored with before its model maps, in this order: the baselines, then
#: the controls (:data:`analysis.baselines.CONTROLS`).
BASELINE_MAPS = ("center_bias", "dataset_prior", *CONTROLS)


# --------------------------------------------------------------------------------------------------
# The image's fixed maps (baselines and model maps), prepared once


class _Maps:
    """The image's fixed maps as one stack, with what each metric needs precomputed.

    Arrays (on the backend's device unless said): ``raw`` ``(M, H, W)``; ``scaled_tiles``
    ``(n_tiles, M, tile²)`` min-max scaled, zero-padded; ``codes`` ``(M, N)`` int8 Borji threshold
    codes; numpy ``sorted_jittered`` ``(M, N)`` (CPU backend). Scalars are numpy ``(M,)`` arrays.
    """

    def __init__(
        self,
        be,
        layout: Layout,
        names: list[str],
        arrays: list[np.ndarray],
        *,
        seed: int,
        variant: str,
        mae_normalize: str,
        image_id: str,
        densities: list[DensityParams | None] | None,
        centre_density: np.ndarray,
    ) -> None:
        self.be, self.layout, self.names = be, layout, names
        self.seed, self.variant, self.mae_normalize = seed, variant, mae_normalize
        self.densities, self.centre_density = densities, centre_density
        self.image_stream = (image_id,)  # the AUC-Judd jitter: one field per image
        self.noise = _judd_noise(seed, layout.n_pixels, self.image_stream)
        n_maps, (height, width) = len(arrays), layout.shape
        self.raw = be.zeros((n_maps, height, width))
        # what KL and information gain compare: the maps as densities (analysis.density), or as given
        self.kl_source = self.raw if densities is None else be.zeros((n_maps, height, width))
        self.kl_total = np.zeros(n_maps)  # sum of each map's kl_source
        self.scaled_tiles = be.zeros((layout.n_tiles, n_maps, layout.tile_px**2))
        self.codes = be.zeros((n_maps, layout.n_pixels), dtype=np.int8)
        self.sorted_jittered = np.empty((n_maps, layout.n_pixels)) if be.sorted_counts else None  # min-max + noise
        # per-map scalars, (M,) each
        self.lo, self.hi, self.total, self.centered_sum_sq = (np.zeros(n_maps) for _ in range(4))
        self.abs_total = np.zeros(n_maps)  # sum |s| (MAE without min-max)
        self.kl_offset, self.kl_scale = np.zeros(n_maps), np.zeros(n_maps)  # KL's density (x + offset) * scale
        self._kl_log_totals = np.full(n_maps, np.nan)  # sum of KL's log term, computed when needed
        self.sim_scale, self.sim_offset = np.zeros(n_maps), np.zeros(n_maps)  # SIM's density of the scaled map
        self.sim_undefined = np.zeros(n_maps, dtype=bool)
        self.abs_tile_sums = np.zeros((layout.n_tiles, n_maps)) if mae_normalize == "none" else None
        self.version = 0
        self._stats: MapStats | None = None
        self._judd_counts: dict[int, np.ndarray] = {}  # fixated pixel → (M,) pixels >= its jittered value
        for index, values in enumerate(arrays):
            self._prepare(index, values)

    @property
    def stats(self) -> MapStats:
        if self._stats is None:
            self._stats = MapStats(
                lo=self.lo.copy(),
                hi=self.hi.copy(),
                total=self.total.copy(),
                centered_sum_sq=self.centered_sum_sq.copy(),
                n_pixels=self.layout.n_pixels,
            )
        return self._stats

    def set(self, index: int, values: np.ndarray) -> None:
        """Replace map ``index`` (e.g. the dataset prior after a context change)."""
        self._prepare(index, values)
        if self._judd_counts:
            pixels = np.fromiter(self._judd_counts, dtype=np.int64)
            for pixel, count in zip(pixels.tolist(), self._count_jittered(pixels, [index])[0]):
                self._judd_counts[pixel][index] = count

    def _prepare(self, index: int, values: np.ndarray) -> None:
        be, layout = self.be, self.layout
        flat = values.ravel()
        lo, hi, total = float(flat.min()), float(flat.max()), float(flat.sum())
        n = flat.size
        centered = flat - total / n
        self.lo[index], self.hi[index], self.total[index] = lo, hi, total
        self.centered_sum_sq[index] = float(np.multiply(centered, centered).sum())  # as metrics._Map
        scaled = np.zeros(n) if hi == lo else _minmax_values(flat, lo, hi - lo)
        self.raw[index] = be.array(values)
        self.scaled_tiles[:, index] = be.array(np.append(scaled, 0.0)[layout.tile_pixels])
        self.codes[index] = be.array(_threshold_codes(scaled, STEP), dtype=np.int8)
        if self.sorted_jittered is not None:
            self.sorted_jittered[index] = np.sort(scaled + self.noise)
        if self.abs_tile_sums is not None:
            self.abs_tile_sums[:, index] = np.append(np.abs(flat), 0.0)[layout.tile_pixels].sum(axis=1)
            self.abs_total[index] = float(np.abs(flat).sum())
        kl_flat = flat
        if self.densities is not None:
            kl_flat = to_density(values, self.densities[index], centre_density=self.centre_density).ravel()
            self.kl_source[index] = be.array(kl_flat.reshape(values.shape))
        self.kl_total[index] = float(kl_flat.sum())
        kl = self._kl_density(float(kl_flat.min()), self.kl_total[index], n)
        # KL's density is never a non-zero constant (pysaliency adds 1e-20 before dividing), so
        # the MIT all-zero case is (values + 0) * 0
        assert kl.constant in (None, 0.0)
        self.kl_offset[index], self.kl_scale[index] = (kl.offset, kl.scale) if kl.constant is None else (0.0, 0.0)
        self._kl_log_totals[index] = np.nan
        if self.variant == "pysaliency":
            with np.errstate(divide="ignore"):  # a 0 in the density: -inf, as metrics' KL gives inf
                self._kl_log_totals[index] = float(np.log(kl(kl_flat)).sum())
        sim = (
            _sim_density(lo, hi - lo, total, n)
            if self.variant == "mit"
            else _density(lo, total, n, minimum_value=0.0, zero_to_uniform=True)
        )
        self.sim_undefined[index] = sim is None
        if sim is not None:
            # the SIM density as a function of the min-max scaled map: scaled * sim_scale + sim_offset
            if sim.constant is not None:
                self.sim_scale[index], self.sim_offset[index] = 0.0, sim.constant
            else:
                self.sim_scale[index] = (hi - lo) * sim.scale
                self.sim_offset[index] = (lo + sim.offset) * sim.scale
        self.version += 1
        self._stats = None

    def _kl_density(self, lo: float, total: float, n: int) -> _Affine:
        if self.variant == "mit":
            return _density(lo, total, n, minimum_value=0.0, zero_to_uniform=False)
        return _density(lo, total, n, minimum_value=_PYSALIENCY_KL_MINIMUM, zero_to_uniform=True)

    def kl_log(self, values, index: int | None = None):
        """KL's per-pixel log term of the maps' distributions: MIT ``log(eps + p)``, pysaliency
        ``log(p)``. ``values`` are values of :attr:`kl_source` of every map ``(M, ...)``, or of map
        ``index``."""
        xp, be = self.be.xp, self.be
        if index is None:
            shape = (-1,) + (1,) * (values.ndim - 1)
            offset, scale = be.array(self.kl_offset).reshape(shape), be.array(self.kl_scale).reshape(shape)
        else:
            offset, scale = float(self.kl_offset[index]), float(self.kl_scale[index])
        p = (values + offset) * scale
        return xp.log(p + MATLAB_EPS) if self.variant == "mit" else xp.log(p)

    def kl_log_total(self, index: int) -> float:
        """``sum(kl_log)`` over all pixels of map ``index`` (needed only when a heatmap has no
        zero background: min-max normalisation of a map covering the image)."""
        if np.isnan(self._kl_log_totals[index]):
            self._kl_log_totals[index] = float(self.be.numpy(self.kl_log(self.kl_source[index], index).sum()))
        return float(self._kl_log_totals[index])

    def scaled_at(self, pixels: np.ndarray, maps: list[int] | None = None) -> np.ndarray:
        """The maps' min-max scaled values at flat ``pixels``: numpy ``(M, len(pixels))``, computed
        as :func:`analysis.metrics._minmax_values` (0 for a constant map)."""
        maps = list(range(len(self.names))) if maps is None else maps
        values = self.at(pixels)[maps]
        lo, value_range = self.lo[maps, None], (self.hi - self.lo)[maps, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(value_range == 0.0, 0.0, _minmax_values(values, lo, value_range))

    def judd_counts(self, pixels: np.ndarray) -> np.ndarray:
        """``(M, len(pixels))``: how many pixels of each map are ``>=`` its jittered value at each
        of ``pixels`` (MATLAB's ``sum(S >= thresh)`` on the min-max scaled, jittered map), kept per
        pixel."""
        missing = np.array([p for p in pixels.tolist() if p not in self._judd_counts], dtype=np.int64)
        if missing.size:
            for pixel, counts in zip(missing.tolist(), self._count_jittered(missing).T):
                self._judd_counts[pixel] = counts.copy()
        if not pixels.size:
            return np.zeros((len(self.names), 0), dtype=np.int64)
        return np.stack([self._judd_counts[p] for p in pixels.tolist()], axis=1)

    def _count_jittered(self, pixels: np.ndarray, maps: list[int] | None = None) -> np.ndarray:
        """``(maps, len(pixels))`` counts of jittered values ``>=`` the jittered value at each pixel:
        by bisection of the sorted jittered maps (CPU) or comparing every pixel (torch)."""
        maps = list(range(len(self.names))) if maps is None else maps
        thresholds = self.scaled_at(pixels, maps) + self.noise[pixels]  # as metrics: scaled + noise, at the pixel
        if self.sorted_jittered is not None:
            return np.stack(
                [
                    self.sorted_jittered[m].size - np.searchsorted(self.sorted_jittered[m], row, side="left")
                    for m, row in zip(maps, thresholds)
                ]
            )
        jittered = self._device_scaled(maps) + self._device_noise
        t = self.be.array(thresholds)
        counts = [(jittered >= t[:, k : k + 1]).sum(axis=1) for k in range(t.shape[1])]
        return self.be.numpy(self.be.xp.stack(counts, 1)).astype(np.int64)

    @functools.cached_property
    def _device_noise(self):
        return self.be.array(self.noise)

    def _device_scaled(self, maps: list[int]):
        """The maps' min-max scaled values on the device ``(len(maps), N)`` (GPU AUC-Judd counts)."""
        raw = self.raw.reshape(len(self.names), -1)[maps]
        value_range = self.hi[maps] - self.lo[maps]
        lo = self.be.array(self.lo[maps]).reshape(-1, 1)
        scale = self.be.array(np.where(value_range == 0.0, 1.0, value_range)).reshape(-1, 1)
        return _minmax_values(raw, lo, scale)  # a constant map: (x - x) / 1 = 0

    def noise_at(self, index=None):
        """The AUC-Judd noise on the device, ``(1, N)`` or at backend ``index`` ``(1, L)``."""
        noise = self._device_noise
        return (noise if index is None else noise[index]).reshape(1, -1)

    def at(self, pixels: np.ndarray) -> np.ndarray:
        """The maps' raw values at flat ``pixels``: numpy ``(M, len(pixels))``."""
        return self.be.numpy(self.raw.reshape(len(self.names), -1)[:, self.be.index(pixels)])

    def kl_at(self, pixels: np.ndarray) -> np.ndarray:
        """:attr:`kl_source` at flat ``pixels``: numpy ``(M, len(pixels))``."""
        return self.be.numpy(self.kl_source.reshape(len(self.names), -1)[:, self.be.index(pixels)])

    def codes_at(self, pixels: np.ndarray) -> np.ndarray:
        """Borji threshold codes at flat ``pixels`` (any shape): numpy ``(M, *pixels.shape)``."""
        return self.be.numpy(self.codes[:, self.be.index(pixels)])


# --------------------------------------------------------------------------------------------------
# The engine


class ImageEngine:
    """Scores of one image's maps and human ceiling, updated fixation by fixation.

    Parameters
    ----------
    image_id : str
        The image (used to leave it out of its own dataset prior and shuffled-AUC negatives).
    shape : (int, int)
        ``(H, W)`` of the image in pixels.
    maps : mapping of str → array_like (H, W), optional
        Model maps at the image's size (any scale, finite), scored after the baselines
        ``center_bias`` and ``dataset_prior`` and the controls ``blank`` and ``uniform``
        (:data:`BASELINE_MAPS`).
    params : HeatmapParams
        How fixations become heatmaps. Fixations arrive already selected
        (:func:`analysis.heatmap.select_fixations`), so the selection switches must be off
        (:func:`analysis.offline.without_selection`).
    metrics, seed, variant, mae_normalize
        As :func:`analysis.metrics.score_map`.
    center_bias_sigma_fraction : float
        Of the ``center_bias`` baseline, also the information-gain baseline.
    kl_ig_maps : {"density", "raw"}
        What KL divergence and information gain compare: each map turned into a density
        (:func:`analysis.density.to_density`, default; the baseline of information gain is the
        centre bias's density), or the maps as given (MIT's definitions on the raw maps). The human
        ceiling ``human_loso`` always uses its raw others' heatmap.
    density_params : mapping of str → DensityParams, optional
        Per map name, how it becomes a density (missing names:
        :func:`analysis.density.default_params`); the uniform control is a density already and is
        used as is.
    device : {"cpu", "cuda", "cuda:N", "auto", "torch-cpu"}
        Where the arrays live: ``"cpu"`` numpy; ``"cuda"`` torch (float64) on a GPU; ``"auto"`` CUDA
        when present, else numpy; ``"torch-cpu"`` torch on the CPU (tests). Results are the same.

    Notes
    -----
    Not thread-safe: update and query from one thread (or under one lock). Coordinates are
    continuous image pixels, origin at the top-left corner; a fixation off the image (or with NaN
    coordinates) counts its participant but adds nothing, as in :func:`analysis.heatmap.heatmap`.
    """

    def __init__(
        self,
        image_id: str,
        shape: tuple[int, int],
        maps: Mapping[str, np.ndarray] | None = None,
        *,
        params: HeatmapParams = HeatmapParams(within_display_only=False),
        metrics: Iterable[str] = METRICS,
        seed: int = 0,
        variant: Variant = "mit",
        mae_normalize: Literal["minmax", "none"] = "minmax",
        center_bias_sigma_fraction: float = 0.25,
        kl_ig_maps: str = "density",
        density_params: Mapping[str, DensityParams] | None = None,
        device: str = "cpu",
    ) -> None:
        shape = _check_shape(shape)
        check_choice("kl_ig_maps", kl_ig_maps, ("density", "raw"))
        self.metrics = tuple(metrics)
        unknown = [name for name in self.metrics if name not in METRICS]
        if unknown:
            raise ValueError(f"metrics must be names from {METRICS}; got unknown {unknown}")
        _check_variant(variant)
        _check_seed(seed)
        check_choice("mae_normalize", mae_normalize, ("minmax", "none"))
        check_positive("center_bias_sigma_fraction", center_bias_sigma_fraction)
        if params.within_display_only or params.exclude_first_fixation:
            raise ValueError(
                "params must have the fixation selection off (within_display_only and exclude_first_fixation "
                "False): select once with analysis.heatmap.select_fixations and pass "
                "analysis.offline.without_selection(params)"
            )
        model_maps = {}
        for name, values in (maps or {}).items():
            if name in BASELINE_MAPS:
                raise ValueError(f"map name {name!r} is taken by a baseline; rename the model map")
            array = as_2d_float(values, f"maps[{name!r}]")
            if array.shape != shape:
                raise ValueError(f"maps[{name!r}] has shape {array.shape}, but the image is {shape}; resize it first")
            model_maps[name] = array
        self.image_id, self.shape, self.params = image_id, shape, params
        self.seed, self.variant, self.mae_normalize = seed, variant, mae_normalize
        self.device = device
        self._be = _backend(device)
        self._layout = Layout(shape)
        kernel = _kernel(params.sigma_px, params.resolved_kernel_size_px, params.even_kernel_centre)
        self._kernel, self._kernel_device = kernel, self._be.array(kernel.full)
        centre = center_bias(shape, sigma_fraction=center_bias_sigma_fraction)
        names = [*BASELINE_MAPS, *model_maps]
        self.kl_ig_maps = kl_ig_maps
        self.density_params = _density_params(names, density_params, default_params(shape))
        densities = None if kl_ig_maps == "raw" else [self.density_params[name] for name in names]
        self._maps = _Maps(
            self._be,
            self._layout,
            names,
            [centre, np.zeros(shape), blank_map(shape), uniform_map(shape), *model_maps.values()],
            seed=seed,
            variant=variant,
            mae_normalize=mae_normalize,
            image_id=image_id,
            densities=densities,
            centre_density=centre / centre.sum(),
        )
        self._other_index = np.empty(0, dtype=np.int64)
        self._borji_streams: dict[tuple[str, ...], _BorjiStream] = {}  # per target (pooled, participants)
        self._workspaces = (Workspace(self._be), Workspace(self._be))  # scratch of the human ceiling (two threads)
        self._buffers = [None, None]  # scratch of the stacked tile pass (two threads)
        self.context_version = None
        self._reset()

    # -- state ---------------------------------------------------------------------------------------

    def _reset(self) -> None:
        n_maps = len(self._maps.names)
        self._pooled = Heatmap(self._be, self._layout, n_maps)
        self._own: dict[str, Heatmap] = {}
        self._rows: list[tuple[float, float, float, str]] = []
        self._pending: list[tuple[slice, slice]] = []  # stamp windows not yet in the sorted values
        self._sorted: SortedValues | None = None  # the pooled raw over its support, sorted (CPU)
        # the AUC-Judd noise over the pooled support, sorted (CPU)
        self._sorted_support_noise: SortedValues | None = None
        self._cache: dict = {}
        self.version = 0

    @property
    def map_names(self) -> list[str]:
        """Names of the scored maps: the baselines, then the model maps."""
        return list(self._maps.names)

    @property
    def participants(self) -> list[str]:
        """Participants with at least one fixation on the image (even off the image), sorted."""
        return sorted(self._own)

    @property
    def n_fixations(self) -> int:
        return len(self._rows)

    def add_fixation(self, x_image_px: float, y_image_px: float, duration_ms: float, participant: str) -> None:
        """Add one (already selected) fixation of ``participant`` at continuous image pixel
        ``(x_image_px, y_image_px)``, weighted by ``duration_ms`` when ``params.duration_weighted``."""
        participant = str(participant)
        weight = 1.0
        if self.params.duration_weighted:
            weight = float(duration_ms)
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(
                    f"duration_ms must be finite and >= 0 for duration weighting; got {duration_ms!r} "
                    f"(participant {participant!r}, image {self.image_id!r}); fix it or use duration_weighted=False"
                )
        own = self._own.get(participant)
        if own is None:
            own = self._own[participant] = Heatmap(self._be, self._layout, len(self._maps.names))
        self._rows.append((float(x_image_px), float(y_image_px), float(duration_ms), participant))
        self.version += 1
        height, width = self.shape
        x, y = float(x_image_px), float(y_image_px)
        if not (0 <= x < width and 0 <= y < height):  # NaN compares False: dropped too
            logger.info(
                "image %s: fixation at (%s, %s) is outside the %dx%d image; it adds nothing",
                self.image_id,
                x_image_px,
                y_image_px,
                width,
                height,
            )
            return
        row, col = int(math.floor(y)), int(math.floor(x))
        window, taps = _window(row, col, self._kernel, self.shape)
        delta = self._kernel_device[taps] * weight
        dots = self._window_dots(window, delta)
        for target in (self._pooled, own):
            target.add(row * width + col, weight, window, delta, dots)
        self._pending.append(window)

    def add_fixations(self, table: pd.DataFrame) -> None:
        """:meth:`add_fixation` for every row of a table (columns ``x_image_px``, ``y_image_px``,
        ``duration_ms``, ``participant``), in table order."""
        missing = [c for c in ("x_image_px", "y_image_px", "duration_ms", "participant") if c not in table.columns]
        if missing:
            raise ValueError(f"the fixation table lacks columns {missing}; present: {list(table.columns)}")
        columns = (
            table["x_image_px"].to_numpy(np.float64),
            table["y_image_px"].to_numpy(np.float64),
            table["duration_ms"].to_numpy(np.float64),
            table["participant"].astype(str).to_numpy(),
        )
        for x, y, duration, participant in zip(*columns):
            self.add_fixation(x, y, duration, participant)

    def replace_fixations(self, table: pd.DataFrame) -> None:
        """Rebuild the state from ``table`` alone (retracted or changed fixations)."""
        self._reset()
        self.add_fixations(table)

    def set_context(self, fixations: pd.DataFrame, shapes: Mapping[str, tuple[int, int]], *, version=None) -> None:
        """Set the other images' selected fixations, which give the dataset prior (their heatmap on
        this image's grid) and the shuffled-AUC negatives (their pixels).

        ``fixations`` may hold this image's rows too (they are left out); ``shapes`` gives every
        other image's ``(H, W)``. With ``version`` equal to the last call's, nothing is recomputed.
        """
        if version is not None and version == self.context_version:
            return
        shapes = {**shapes, self.image_id: self.shape}
        others = other_images_on_grid(fixations, shapes, image=self.image_id)
        prior = heatmap(others, shape=self.shape, params=self.params)
        counts = fixation_map(others["x_image_px"].to_numpy(), others["y_image_px"].to_numpy(), shape=self.shape)
        self._other_index = np.flatnonzero(counts.ravel() > 0)
        index = self._maps.names.index("dataset_prior")
        self._maps.set(index, prior)
        for stream in self._borji_streams.values():
            stream.refresh(index)
        for target in (self._pooled, *self._own.values()):
            self._refresh_dots(target, index)
        self.context_version = version
        self._cache.clear()

    # -- per fixation --------------------------------------------------------------------------------

    def _window_dots(self, window, delta):
        """The fixed maps' dot products with one stamp: ``sum((s - mean) * delta)`` and
        ``sum(kl_log(s) * delta)``, each ``(M,)``."""
        xp, maps = self._be.xp, self._maps
        values = maps.raw[:, window[0], window[1]]
        mean = self._be.array(maps.stats.mean)
        centered = xp.einsum("mij,ij->m", values, delta) - mean * delta.sum()
        return centered, xp.einsum("mij,ij->m", maps.kl_log(maps.kl_source[:, window[0], window[1]]), delta)

    def _refresh_dots(self, target: Heatmap, index: int) -> None:
        pixels = target.support_pixels()
        be, maps = self._be, self._maps
        raw = target.raw_ext[be.index(pixels)]
        values = maps.raw[index].reshape(-1)[be.index(pixels)]
        target.dot_centered[index] = ((values - float(maps.stats.mean[index])) * raw).sum()
        kl_values = maps.kl_source[index].reshape(-1)[be.index(pixels)]
        target.dot_log[index] = (maps.kl_log(kl_values, index) * raw).sum()

    # -- results -------------------------------------------------------------------------------------

    def heatmap(self, participant: str | None = None) -> np.ndarray:
        """The pooled human heatmap (or ``participant``'s own): numpy ``(H, W)`` float64, equal to
        :func:`analysis.heatmap.heatmap` of the same fixations."""
        target = self._target(self._pooled if participant is None else self._participant(participant), participant)
        return self._be.numpy(target.heatmap.raw * target.a + target.b).copy()

    def scores(self) -> dict[str, dict[str, float]]:
        """Every map scored against the pooled human data: map name → metric → value."""
        return self._scored(None)[0]

    def participant_scores(self, participant: str) -> dict[str, dict[str, float]]:
        """Every map scored against one participant's own heatmap and fixations on the image."""
        return self._scored(str(participant))[0]

    def mc_se(self, participant: str | None = None) -> dict[str, dict[str, float]]:
        """Monte-Carlo standard errors of the sampled AUCs of :meth:`scores` (or of
        :meth:`participant_scores` of ``participant``): map name → metric → error
        (:func:`analysis.metrics.monte_carlo_se`)."""
        return self._scored(None if participant is None else str(participant))[1]

    def _scored(self, participant: str | None):
        heat = self._pooled if participant is None else self._participant(participant)
        key = ("scores", participant, heat.version, self._maps.version, self.context_version)
        if key not in self._cache:
            self._cache[key] = self._score_maps(self._target(heat, participant))
        return self._cache[key]

    def loso(self) -> dict[str, dict[str, float]]:
        """The human ceiling per participant: each participant's heatmap and fixations as the
        target, the other participants' heatmap as the map (sorted participants; empty with fewer
        than two)."""
        return self._scored_loso()[0]

    def loso_mc_se(self) -> dict[str, dict[str, float]]:
        """Monte-Carlo standard errors of the sampled AUCs of :meth:`loso`: participant → metric →
        error."""
        return self._scored_loso()[1]

    def human_gold(self, params: DensityParams) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        """The gold standard (:mod:`analysis.ceilings`) per participant: the others' fixation
        density, blurred and mixed with the centre bias by ``params``, scored against the
        participant's own heatmap and fixations like every map (:meth:`participant_scores`; in
        density mode KL and information gain take it as the density it is). Returns
        ``(scores, Monte-Carlo errors)``, participant → metric → value; empty with fewer than two
        participants.

        Computed on request from full maps (:func:`analysis.metrics.score_map`), not incrementally:
        about 50 ms per participant on 800x600, for the offline analysis.
        """
        key = ("gold", params, self.version, self._maps.version, self.context_version)
        if key in self._cache:
            return self._cache[key]
        scores: dict[str, dict[str, float]] = {}
        errors: dict[str, dict[str, float]] = {}
        if len(self.participants) >= 2:
            maps, shape, n = self._maps, self.shape, self._layout.n_pixels
            pooled_pixels, _, pooled_counts = self._pooled.fixated()
            other = np.zeros(n)
            other[self._other_index] = 1.0
            centre = maps.names.index("center_bias")
            baseline = maps.raw[centre] if maps.densities is None else maps.kl_source[centre]
            for participant in self.participants:
                pixels, _, counts = self._own[participant].fixated()
                others = pooled_counts - lookup(pixels, counts, pooled_pixels)
                kept = others > 0
                gold = gold_density(
                    pooled_pixels[kept],
                    others[kept],
                    shape,
                    sigma_px=params.sigma_px,
                    centre_weight=params.centre_weight,
                    centre_density=maps.centre_density,
                )
                own = np.zeros(n)
                own[pixels] = counts
                target = HumanTarget(
                    human_map=self.heatmap(participant),
                    fixation_map=own.reshape(shape),
                    other_fixation_map=other.reshape(shape),
                    baseline_map=self._be.numpy(baseline),
                )
                scores[participant], errors[participant] = score_map(
                    gold,
                    target,
                    metrics=self.metrics,
                    seed=self.seed,
                    variant=self.variant,
                    mae_normalize=self.mae_normalize,
                    stream=(self.image_id, participant),
                    return_mc_se=True,
                    density=None if maps.densities is None else gold,
                )
        self._cache[key] = scores, errors
        return scores, errors

    def _scored_loso(self):
        key = ("loso", self.version, self.context_version)
        if key not in self._cache:
            self._cache[key] = self._score_loso()
        return self._cache[key]

    def human_loso(self) -> dict[str, float] | None:
        """Mean of :meth:`loso` over participants (NaNs skipped); None with fewer than two."""
        loso = self.loso()
        if not loso:
            return None
        table = pd.DataFrame(loso.values())
        return {metric: float(table[metric].mean()) for metric in table.columns}

    def _participant(self, participant: str) -> Heatmap:
        own = self._own.get(str(participant))
        if own is None:
            raise KeyError(
                f"participant {participant!r} has no fixation on image {self.image_id!r}; "
                f"participants: {self.participants}"
            )
        return own

    def _target(self, heat: Heatmap, participant: str | None) -> Target:
        """The pooled target (``participant`` None) or one participant's, with its random stream."""
        stats = heat.stats()
        a, b = heatmap_transform(
            heat.top(), float(stats.lo), float(stats.hi), float(stats.total), self.params, what=f"image {self.image_id}"
        )
        pixels, _, counts = heat.fixated()
        stream = (self.image_id,) if participant is None else (self.image_id, participant)
        return Target(
            heatmap=heat, a=a, b=b, stats=stats.transformed(a, b), pixels=pixels, counts=counts, stream=stream
        )

    # -- the fixed maps against a target -------------------------------------------------------------

    def _score_maps(self, target: Target) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        """Every fixed map against ``target``: the scores and the sampled AUCs' Monte-Carlo errors."""
        maps, n = self._maps, self._layout.n_pixels
        wanted = set(self.metrics)
        sums = self._tile_sums(target, wanted)
        values: dict[str, list[float] | np.ndarray] = {}
        if "mae" in wanted:
            values["mae"] = list(sums["mae"] / n)
        if "nss" in wanted or "info_gain" in wanted or "auc_judd" in wanted:
            raw_at = maps.at(target.pixels)
        if "nss" in wanted:
            centered = raw_at - maps.stats.mean[:, None]
            values["nss"] = [
                _nss_from(
                    centered[m],
                    target.counts,
                    maps.stats.centered_sum_sq[m],
                    n,
                    bool(maps.stats.constant[m]),
                    self.variant,
                )
                for m in range(len(maps.names))
            ]
        if "cc" in wanted:
            values["cc"] = self._cc_maps(target)
        if "sim" in wanted:
            values["sim"] = sums["sim"]
        if "kl_div" in wanted:
            values["kl_div"] = self._kl_maps(target, sums["q_log_q"])
        if "auc_judd" in wanted:
            values["auc_judd"] = self._judd_maps(target)
        errors: dict[str, list[float]] = {}
        for metric in SAMPLED_METRICS:
            if metric in wanted:
                values[metric], errors[metric] = self._borji_maps(target, metric)
        if "info_gain" in wanted:
            values["info_gain"] = (
                self._info_gain(raw_at, maps.stats, target)
                if maps.densities is None
                else self._info_gain_of_densities(target)
            )
        scores = {
            name: {metric: float(values[metric][m]) for metric in self.metrics} for m, name in enumerate(maps.names)
        }
        return scores, {
            name: {metric: float(errors[metric][m]) for metric in errors} for m, name in enumerate(maps.names)
        }

    def _tile_sums(self, target: Target, wanted: set) -> dict:
        """One pass over the tiles of the target's support for the metrics that compare every pixel:
        MAE's ``sum |s - h|`` and SIM's ``sum min(p, q)`` per map, KL's ``sum q log q``.

        Outside the support the human map is 0, and so are its min-max scaled values and SIM's and
        MIT KL's distributions; the maps' sums there follow from their whole-image sums.
        """
        be, maps, layout = self._be, self._maps, self._layout
        n, stats = layout.n_pixels, target.stats
        tiles = np.arange(layout.n_tiles) if target.empty_map else np.flatnonzero(target.heatmap.tiles)
        n_valid = int(layout.valid[tiles].sum())
        valid = be.array(layout.valid[tiles])
        # the human map on the tiles (padding zeroed), and what each metric makes of it
        h = (target.heatmap.raw_ext[be.index(layout.tile_pixels[tiles])] * target.a + target.b) * valid
        per_map = {}  # metric → (human values on the tiles, per-map scale of the maps' scaled values)
        result = {}
        if "mae" in wanted and self.mae_normalize == "minmax":
            h_scaled = h * 0.0 if stats.constant else _minmax_values(h, float(stats.lo), float(stats.range)) * valid
            per_map["mae"] = (h_scaled, None)
            result["mae"] = maps.stats.minmax_sum + float(be.numpy(h_scaled.sum()))
        elif "mae" in wanted:
            per_map["mae"] = (h, None)
        sim_q = (
            _sim_density(float(stats.lo), float(stats.range), float(stats.total), n)
            if self.variant == "mit"
            else _density(float(stats.lo), float(stats.total), n, minimum_value=0.0, zero_to_uniform=True)
        )
        if "sim" in wanted and sim_q is not None:
            per_map["sim"] = (sim_q(h) * valid, be.array(maps.sim_scale).reshape(1, -1, 1))
        if "kl_div" in wanted:
            kl_q = self._kl_target_density(stats)
            q_log_q = 0.0
            if kl_q.constant is None:
                q = kl_q(h)
                q_log_q = float(be.numpy((be.xlogy(q, q) * valid).sum()))
                if self.variant == "pysaliency":  # pixels outside the tiles hold q(0) = 1e-20 / sum
                    q0 = float(kl_q(np.zeros(1))[0])
                    q_log_q += (n - n_valid) * q0 * math.log(q0)
            result["q_log_q"] = q_log_q
        if not be.tiles_per_step:  # a GPU: every tile in one gather
            sums = self._stacked_sums([(0, be.index(tiles), tiles.size)], per_map)
        else:  # the CPU: runs of consecutive tiles (views, cache-sized), in two threads
            runs = list(_runs(tiles, be.tiles_per_step))
            halves = (runs[::2], runs[1::2])
            parts = in_two_threads(lambda slot: self._stacked_sums(halves[slot], per_map, slot), (0, 1))
            sums = {metric: parts[0][metric] + parts[1][metric] for metric in per_map}
        if "mae" in wanted and self.mae_normalize == "minmax":
            result["mae"] = result["mae"] - 2.0 * sums["mae"]
        elif "mae" in wanted:
            assert maps.abs_tile_sums is not None  # kept when mae_normalize is "none"
            n_padding = tiles.size * layout.tile_px**2 - n_valid  # padding holds |lo - 0| each
            result["mae"] = (
                sums["mae"] - n_padding * np.abs(maps.lo) + maps.abs_total - maps.abs_tile_sums[tiles].sum(axis=0)
            )
        if "sim" in wanted:
            result["sim"] = sums.get("sim", np.zeros(len(maps.names)))
            undefined = maps.sim_undefined.astype(bool) | (sim_q is None)
            for m in np.flatnonzero(undefined):
                result["sim"][m] = _undefined("sim", "a map is constant and non-zero (MIT min-max gives 0/0)")
        return result

    def _stacked_sums(self, runs, per_map: dict, slot: int = 0) -> dict[str, np.ndarray]:
        """Per metric of ``per_map``, the sum over tiles of each map's pixel terms. ``runs`` are
        ``(position in the selected tiles, tiles, count)`` with tiles a slice start (consecutive
        tiles: a view) or a backend index of tiles (a gather)."""
        be, xp, maps, layout = self._be, self._be.xp, self._maps, self._layout
        sums = {metric: be.zeros(len(maps.names)) for metric in per_map}
        lo_maps, range_maps = be.array(maps.lo).reshape(1, -1, 1), be.array(maps.hi - maps.lo).reshape(1, -1, 1)
        sim_offset = be.array(maps.sim_offset).reshape(1, -1, 1) if maps.sim_offset.any() else None
        largest = max((count for _, _, count in runs), default=0)
        buffer = self._buffers[slot]
        if buffer is None or buffer.shape[0] < largest:
            buffer = self._buffers[slot] = be.zeros((largest, len(maps.names), layout.tile_px**2))
        for at, first, count in runs:
            scaled = maps.scaled_tiles[first : first + count] if isinstance(first, int) else maps.scaled_tiles[first]
            out = buffer[:count]
            for metric, (human, scale) in per_map.items():
                human = human[at : at + count, None, :]
                if metric == "mae" and self.mae_normalize == "none":  # |lo + range * scaled - h|
                    xp.multiply(scaled, range_maps, out=out)
                    out += lo_maps
                    out -= human
                    xp.abs(out, out=out)
                elif metric == "mae":  # sum |s - h| = sum s + sum h - 2 sum min(s, h)
                    xp.minimum(scaled, human, out=out)
                else:  # SIM: the maps' distributions are scaled * sim_scale + sim_offset
                    xp.multiply(scaled, scale, out=out)
                    if sim_offset is not None:
                        out += sim_offset
                    xp.minimum(out, human, out=out)
                sums[metric] += xp.einsum("cmt->m", out)  # twice as fast as sum(axis=(0, 2)) in numpy
        return {metric: be.numpy(total) for metric, total in sums.items()}

    def _kl_target_density(self, stats: MapStats) -> _Affine:
        n = self._layout.n_pixels
        if self.variant == "mit":
            return _density(float(stats.lo), float(stats.total), n, minimum_value=0.0, zero_to_uniform=False)
        return _density(
            float(stats.lo), float(stats.total), n, minimum_value=_PYSALIENCY_KL_MINIMUM, zero_to_uniform=True
        )

    def _cc_maps(self, target: Target) -> list[float]:
        maps, n = self._maps, self._layout.n_pixels
        dots = self._be.numpy(target.heatmap.dot_centered)
        centered_total = maps.stats.total - n * maps.stats.mean
        covariance = target.a * dots + target.b * centered_total
        return [
            _cc_from(
                covariance[m],
                maps.stats.centered_sum_sq[m],
                float(target.stats.centered_sum_sq),
                bool(maps.stats.constant[m]),
                bool(target.stats.constant),
                self.variant,
            )
            for m in range(len(maps.names))
        ]

    def _kl_maps(self, target: Target, q_log_q: float) -> np.ndarray:
        """KL = sum(q log q) - sum(q * kl_log(p)); the second sum from the running dot product."""
        maps = self._maps
        q = self._kl_target_density(target.stats)
        if q.constant is not None:  # MIT: an all-zero human map is all-zero q, so KL = 0
            return np.zeros(len(maps.names))
        dots = self._be.numpy(target.heatmap.dot_log)
        # sum over all pixels of h * kl_log = a * dot + b * sum(kl_log); q = (h + offset) * scale
        extra = target.b + q.offset
        log_totals = (
            np.array([maps.kl_log_total(m) for m in range(len(maps.names))]) if extra else np.zeros(len(maps.names))
        )
        return q_log_q - q.scale * (target.a * dots + extra * log_totals)

    def _judd_maps(self, target: Target) -> list[float]:
        maps, n = self._maps, self._layout.n_pixels
        n_fix = target.pixels.size
        if not n_fix:
            return [_undefined("auc_judd", "the fixation map is empty")] * len(maps.names)
        if n_fix == n:
            return [_undefined("auc_judd", "every pixel is fixated (no negatives)")] * len(maps.names)
        thresholds = maps.scaled_at(target.pixels) + maps.noise[target.pixels]
        counts = maps.judd_counts(target.pixels)
        areas = []
        for m in range(len(maps.names)):
            order = np.argsort(thresholds[m])[::-1]
            areas.append(_judd_area(thresholds[m][order], counts[m][order], target.counts[order], n, self.variant))
        return areas

    def _negatives(self, metric: str, n_fix: int, stream: tuple[str, ...]) -> np.ndarray:
        """The Borji AUCs' random negative pixels for ``n_fix`` fixated pixels of the target named
        ``stream`` (kept per count and stream)."""
        key = (metric, n_fix, stream, self.context_version)
        if key not in self._cache:
            if metric == "auc_borji":
                self._cache[key] = _borji_negatives(self.seed, self._layout.n_pixels, n_fix, N_SPLITS, stream)
            else:
                self._cache[key] = _shuffled_negatives(self.seed, self._other_index, n_fix, N_SPLITS, stream)
        return self._cache[key]

    def _borji_maps(self, target: Target, metric: str) -> tuple[list[float], list[float]]:
        """Every map's sampled AUC against ``target`` and its Monte-Carlo standard error."""
        maps = self._maps
        n_fix = target.pixels.size
        undefined = self._borji_undefined(metric, n_fix)
        if undefined:
            _undefined(metric, undefined)
            return [math.nan] * len(maps.names), [math.nan] * len(maps.names)
        key = (metric, "fp", n_fix, target.stream, maps.version, self.context_version)
        if key not in self._cache:
            if metric == "auc_borji":
                self._cache[key] = self._borji_stream(target.stream).fractions(n_fix)
            else:
                draws = _shuffled_draws(self.seed, self._other_index.size, n_fix, N_SPLITS, target.stream)
                codes = self._other_codes()[:, draws]
                n_maps, n_splits, n_neg = codes.shape
                self._cache[key] = _fraction_at_least(codes.reshape(-1, n_neg), N_THRESHOLDS).reshape(
                    n_maps, n_splits, -1
                )
        tp = _fraction_at_least(maps.codes_at(target.pixels), N_THRESHOLDS)
        areas = _split_areas(tp, self._cache[key])
        means, errors = areas.mean(axis=-1), monte_carlo_se(areas)
        for m in np.flatnonzero(maps.stats.constant):
            means[m] = errors[m] = _undefined(metric, "the saliency map is constant (MIT min-max gives 0/0)")
        return list(means), list(errors)

    def _borji_stream(self, stream: tuple[str, ...]) -> _BorjiStream:
        """The fixed maps' running AUC-Borji counts over the random stream of one target."""
        if stream not in self._borji_streams:
            self._borji_streams[stream] = _BorjiStream(self._maps, self.seed, stream)
        return self._borji_streams[stream]

    def _other_codes(self) -> np.ndarray:
        """The fixed maps' Borji codes at the other images' pixels ``(M, n_other)``."""
        key = ("other codes", self._maps.version, self.context_version)
        if key not in self._cache:
            self._cache[key] = self._maps.codes_at(self._other_index)
        return self._cache[key]

    def _borji_undefined(self, metric: str, n_fix: int) -> str | None:
        if metric == "auc_borji":
            return f"{n_fix} fixated pixel(s); MIT needs at least 2" if n_fix <= 1 else None
        if not n_fix:
            return "the fixation map is empty"
        return None if self._other_index.size else "other_fixation_map is empty"

    def _info_gain_of_densities(self, target: Target) -> list[float]:
        """Information gain of the maps' densities over the centre bias's density, as
        :func:`analysis.metrics.info_gain` with ``densities``."""
        maps = self._maps
        if not target.pixels.size:
            return [_undefined("info_gain", "the fixation map is empty")] * len(maps.names)
        at = maps.kl_at(target.pixels)
        centre = maps.names.index("center_bias")
        q = at[centre] / maps.kl_total[centre]
        return [
            _info_gain_from(at[m] / maps.kl_total[m], q, target.counts, self.variant) for m in range(len(maps.names))
        ]

    def _info_gain(self, raw_at: np.ndarray, stats: MapStats, target: Target, *, baseline=None) -> list[float]:
        """Information gain of maps with values ``raw_at`` ``(K, n_fix)`` at the fixated pixels and
        scalars ``stats`` over the raw centre-bias baseline (whose values there are ``baseline``):
        MIT's definition on the maps as given."""
        if not target.pixels.size:
            return [_undefined("info_gain", "the fixation map is empty")] * len(raw_at)
        maps, n = self._maps, self._layout.n_pixels
        centre = maps.names.index("center_bias")
        if baseline is None:
            baseline = maps.at(target.pixels)[centre]
        b_stats = maps.stats
        if self.variant == "mit":
            q = _minmax_values(baseline, b_stats.lo[centre], b_stats.range[centre]) / b_stats.minmax_sum[centre]
        else:
            q = _density_values(baseline, b_stats.lo[centre], b_stats.total[centre], n)
        gains = []
        for k in range(len(raw_at)):
            if self.variant == "mit":
                if stats.constant[k] or b_stats.constant[centre]:
                    gains.append(_undefined("info_gain", "a map is constant (MIT min-max gives 0/0)"))
                    continue
                p = _minmax_values(raw_at[k], stats.lo[k], stats.range[k]) / stats.minmax_sum[k]
            else:
                p = _density_values(raw_at[k], stats.lo[k], stats.total[k], n)
            gains.append(_info_gain_from(p, q, target.counts, self.variant))
        return gains

    # -- the human ceiling ---------------------------------------------------------------------------

    def _score_loso(self) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        if len(self.participants) < 2:
            return {}, {}
        return HumanCeiling(self).scores()


def _density_params(
    names: list[str], given: Mapping[str, DensityParams] | None, default: DensityParams
) -> dict[str, DensityParams | None]:
    """Each map's density conversion: as given, else ``default``; None (used as is) for the uniform
    control, which is a density."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"density_params names maps this image does not have: {unknown}; maps: {names}")
    return {name: None if name == "uniform" else given.get(name, default) for name in names}


def _runs(tiles: np.ndarray, step: int):
    """Split sorted tile indices into runs of consecutive tiles of at most ``step``: yields
    ``(position in tiles, first tile, count)``."""
    breaks = np.flatnonzero(np.diff(tiles) != 1) + 1
    for start, stop in zip(np.r_[0, breaks], np.r_[breaks, tiles.size]):
        for at in range(int(start), int(stop), step):
            count = min(step, int(stop) - at)
            yield at, int(tiles[at]), count


class _BorjiStream:
    """The fixed maps' AUC-Borji negatives of one target, counted once for every number of fixated
    pixels.

    For ``n`` fixated pixels the negatives are the first ``100 n`` draws of the target's random
    stream (split ``i`` takes draws ``i n .. (i + 1) n - 1``; :func:`analysis.metrics._borji_negatives`).
    Each map's threshold codes at the stream's pixels are kept as running counts ``(M, draws + 1, K)``,
    so a split's counts are the difference of two rows; uint16 that wraps around, since a split's
    count (below 65536 fixated pixels) is exact modulo 2^16 (``2 x 100 x K`` bytes per map and
    fixated pixel).
    Each extension re-draws the negatives as the definition does and checks that the stream is a
    prefix of them, rebuilding if it is not.
    """

    def __init__(self, maps: _Maps, seed: int, stream: tuple[str, ...]) -> None:
        self.maps, self.seed, self.name = maps, seed, stream
        self.stream = np.empty(0, dtype=np.int64)
        self._running = np.zeros((len(maps.names), 1, N_THRESHOLDS), dtype=np.uint16)  # capacity grows x2

    def fractions(self, n_fix: int) -> np.ndarray:
        """``(M, 100, K)``: per map, split and threshold, the fraction of negatives ``>=`` it."""
        length = N_SPLITS * n_fix
        if length > self.stream.size:
            draws = _borji_negatives(self.seed, self.maps.layout.n_pixels, n_fix, N_SPLITS, self.name).ravel()
            kept = self.stream.size if np.array_equal(draws[: self.stream.size], self.stream) else 0
            if self._running.shape[1] < length + 1:
                grown = np.zeros((self._running.shape[0], 2 * length + 1, N_THRESHOLDS), dtype=np.uint16)
                grown[:, : kept + 1] = self._running[:, : kept + 1]
                self._running = grown
            self._running[:, kept + 1 : length + 1] = self._count(draws[kept:], self._running[:, kept : kept + 1])
            self.stream = draws
        bounds = self._running[:, : length + 1 : n_fix]  # (M, 101, K): counts before each split
        return np.diff(bounds, axis=1) / n_fix

    def refresh(self, index: int) -> None:
        """Recount map ``index`` (after it changed)."""
        if self.stream.size:
            start = np.zeros((1, 1, N_THRESHOLDS), np.uint16)
            self._running[index, 1 : self.stream.size + 1] = self._count(self.stream, start, rows=[index])[0]

    def _count(self, pixels: np.ndarray, start: np.ndarray, rows=None) -> np.ndarray:
        codes = self.maps.codes_at(pixels)[rows if rows is not None else slice(None)]
        above = codes[:, :, None] > np.arange(N_THRESHOLDS)  # value >= threshold k
        return start + np.cumsum(above, axis=1, dtype=np.uint16)
