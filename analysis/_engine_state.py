"""State of the incremental engine (:mod:`analysis.engine`) shared by its parts: the image's
pixels and tiles, heatmaps under construction and the scalars each metric needs of a map."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from analysis.heatmap import HeatmapParams
from analysis.metrics import _JITTER_DIVISOR, _judd_noise, _thresholds

logger = logging.getLogger("analysis.engine")

TILE_PX = 16  # side of the tiles the stacked map passes gather (a stamp of 80 px covers 36)
N_SPLITS, STEP = 100, 0.1  # AUC-Borji / shuffled AUC as in score_map
N_THRESHOLDS = _thresholds(STEP).size
NOISE_MAX = 1.0 / _JITTER_DIVISOR  # the AUC-Judd noise is in [0, 1e-7)


class Layout:
    """Pixels and tiles of one image. Flat pixel indices are row-major ``row * W + col``; index ``N``
    is a sentinel (value 0) that pads the last row and column of tiles."""

    def __init__(self, shape: tuple[int, int], tile_px: int = TILE_PX) -> None:
        self.shape = shape
        height, width = shape
        self.n_pixels = height * width
        self.tile_px = tile_px
        self.n_tile_rows, self.n_tile_cols = -(-height // tile_px), -(-width // tile_px)
        rows = np.arange(self.n_tile_rows * tile_px)
        cols = np.arange(self.n_tile_cols * tile_px)
        flat = np.where(
            (rows[:, None] < height) & (cols[None, :] < width), rows[:, None] * width + cols[None, :], self.n_pixels
        )
        grid = flat.reshape(self.n_tile_rows, tile_px, self.n_tile_cols, tile_px).transpose(0, 2, 1, 3)
        #: (n_tiles, tile_px²) flat pixel indices of each tile, N for padding
        self.tile_pixels = grid.reshape(-1, tile_px * tile_px)
        self.valid = self.tile_pixels < self.n_pixels

    @property
    def n_tiles(self) -> int:
        return self.tile_pixels.shape[0]

    def tiles_of(self, window: tuple[slice, slice]) -> np.ndarray:
        """Flat indices of the tiles a window touches."""
        rows = np.arange(window[0].start // self.tile_px, (window[0].stop - 1) // self.tile_px + 1)
        cols = np.arange(window[1].start // self.tile_px, (window[1].stop - 1) // self.tile_px + 1)
        return (rows[:, None] * self.n_tile_cols + cols[None, :]).ravel()

    def pixels_of(self, window: tuple[slice, slice]) -> np.ndarray:
        width = self.shape[1]
        rows = np.arange(window[0].start, window[0].stop)
        cols = np.arange(window[1].start, window[1].stop)
        return (rows[:, None] * width + cols[None, :]).ravel()


def heatmap_transform(
    top: float, lo: float, hi: float, total: float, params: HeatmapParams, *, what: str
) -> tuple[float, float]:
    """``(a, b)`` such that the heatmap equals ``raw * a + b``.

    ``raw`` is the blurred un-normalised fixation map (min ``lo``, max ``hi``, sum ``total``) and
    ``top`` the fixation map's maximum, as :func:`analysis.heatmap._render` normalises: divide the
    fixation map by its maximum (``prenormalize="max"``), blur, then ``final_normalization``. A map
    without weight is all zero, before any normalisation.
    """
    if top == 0.0:
        return 0.0, 0.0
    final = params.final_normalization
    if final == "none":
        return (1.0 / top if params.prenormalize == "max" else 1.0), 0.0
    if final == "max":
        return 1.0 / hi, 0.0
    if final == "sum":
        return 1.0 / total, 0.0
    if hi > lo:
        scale = 1.0 / (hi - lo)
        return scale, -lo * scale
    logger.warning("%s: the map is constant (%g); min-max normalisation gives all zeros", what, hi)
    return 0.0, 0.0


@dataclass(frozen=True)
class MapStats:
    """Whole-map scalars of one map, or of several (arrays ``(M,)``), as :class:`metrics._Map` has."""

    lo: np.ndarray
    hi: np.ndarray
    total: np.ndarray
    centered_sum_sq: np.ndarray
    n_pixels: int

    @classmethod
    def from_moments(cls, lo, hi, total, total_sq, n_pixels: int) -> MapStats:
        """From the sum of squares: ``sum((x - mean)^2) = sum(x^2) - sum(x)^2 / N`` (>= 0)."""
        return cls(
            lo=lo,
            hi=hi,
            total=total,
            n_pixels=n_pixels,
            centered_sum_sq=np.maximum(total_sq - total * total / n_pixels, 0.0),
        )

    @property
    def range(self):
        return self.hi - self.lo

    @property
    def constant(self):
        return self.range == 0.0

    @property
    def mean(self):
        return self.total / self.n_pixels

    @property
    def minmax_sum(self):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.constant, 0.0, (self.total - self.n_pixels * self.lo) / self.range)

    def transformed(self, a: float, b: float) -> MapStats:
        """The scalars of ``x * a + b`` (``a >= 0``)."""
        n = self.n_pixels
        return MapStats(
            lo=self.lo * a + b,
            hi=self.hi * a + b,
            total=a * self.total + n * b,
            centered_sum_sq=a * a * self.centered_sum_sq,
            n_pixels=n,
        )


class Heatmap:
    """One heatmap under construction (pooled, or one participant's): the stamped un-normalised map,
    its support, the fixations behind it and the fixed maps' running dot products with it."""

    def __init__(self, be, layout: Layout, n_maps: int) -> None:
        self.be, self.layout = be, layout
        height, width = layout.shape
        self.raw_ext = be.zeros(layout.n_pixels + 1)  # the map, flat, plus the zero sentinel
        self.raw = self.raw_ext[: layout.n_pixels].reshape(height, width)
        self.support = np.zeros(layout.n_pixels, dtype=bool)
        self.tiles = np.zeros(layout.n_tiles, dtype=bool)
        self.total = be.zeros(())
        self.total_sq = be.zeros(())
        self.peak = be.zeros(())
        self.dot_centered = be.zeros(n_maps)  # sum((s - mean s) * raw) per fixed map
        self.dot_log = be.zeros(n_maps)  # sum(kl_log(s) * raw) per fixed map
        self._slots: dict[int, int] = {}  # fixated pixel → slot
        self._weights: list[float] = []
        self._counts: list[int] = []
        self.version = 0
        self._support_pixels = (-1, np.empty(0, dtype=np.int64))  # (version, pixels); -1: none yet

    def add(self, pixel: int, weight: float, window, delta, dots) -> None:
        """Add a fixation at flat ``pixel``: its kernel stamp ``delta`` (already times ``weight``)
        on ``window`` and the fixed maps' dot products with it."""
        old = self.raw[window]
        new = old + delta
        self.total_sq += (delta * (old + new)).sum()
        self.raw[window] = new
        self.total += delta.sum()
        self.peak = self.be.xp.maximum(self.peak, new.max())
        self.dot_centered += dots[0]
        self.dot_log += dots[1]
        self.support.reshape(self.layout.shape)[window] = True
        self.tiles[self.layout.tiles_of(window)] = True
        slot = self._slots.setdefault(pixel, len(self._weights))
        if slot == len(self._weights):
            self._weights.append(0.0)
            self._counts.append(0)
        self._weights[slot] += weight
        self._counts[slot] += 1
        self.version += 1

    def fixated(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fixated pixels (ascending flat index, as :class:`metrics._Fixations`), their summed
        weights and their fixation counts."""
        pixels = np.fromiter(self._slots, dtype=np.int64, count=len(self._slots))
        slots = np.fromiter(self._slots.values(), dtype=np.int64, count=len(self._slots))
        order = np.argsort(pixels)
        weights, counts = np.asarray(self._weights), np.asarray(self._counts, dtype=np.float64)
        return pixels[order], weights[slots[order]], counts[slots[order]]

    def top(self) -> float:
        """The fixation map's maximum (what ``prenormalize="max"`` divides by)."""
        return max(self._weights, default=0.0)

    def support_pixels(self) -> np.ndarray:
        if self._support_pixels[0] != self.version:
            self._support_pixels = (self.version, np.flatnonzero(self.support))
        return self._support_pixels[1]

    def stats(self) -> MapStats:
        """Scalars of ``raw``."""
        be = self.be
        lo = float(be.numpy(self.raw.min())) if self.support.all() else 0.0
        return MapStats.from_moments(
            np.float64(lo),
            np.float64(be.numpy(self.peak)),
            np.float64(be.numpy(self.total)),
            np.float64(be.numpy(self.total_sq)),
            self.layout.n_pixels,
        )


@dataclass
class Target:
    """A human target ready for scoring: heatmap ``raw * a + b`` and its scalars, the fixations."""

    heatmap: Heatmap
    a: float
    b: float
    stats: MapStats
    pixels: np.ndarray
    counts: np.ndarray
    stream: tuple[str, ...]  # names the target's random streams: (image,) pooled, (image, participant)

    @property
    def empty_map(self) -> bool:
        return self.stats.total == 0.0


@functools.lru_cache(maxsize=4)
def sorted_noise(seed: int, n_pixels: int, stream: tuple[str, ...]) -> np.ndarray:
    """The AUC-Judd noise field of an image sorted (shared by the engines of that image)."""
    values = np.sort(_judd_noise(seed, n_pixels, stream))
    values.setflags(write=False)
    return values


def lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``values`` of sorted ``keys`` at ``queries``; 0 where a query is not a key."""
    at = np.searchsorted(keys, queries)
    found = at < keys.size
    found[found] = keys[at[found]] == queries[found]
    out = np.zeros(queries.size)
    out[found] = values[at[found]]
    return out
