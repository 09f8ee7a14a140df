"""Cross-validated density parameters of an offline analysis (:mod:`analysis.density`).

For every map kind (the baselines, the blank control, each model map of a store) and for the gold
standard (:mod:`analysis.ceilings`), the log-likelihood of each image's fixations is tabulated over
the parameter grid; each image is then scored with the parameters that fit the *other* images best
(leave one image out). The images are the baselines' pool (every image of the input with fixations
and a stimulus file), so the parameters of an image do not depend on ``--images`` either; model
maps are fitted on the pool images the store holds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis._engine_state import heatmap_transform
from analysis.baselines import blank_map, center_bias, other_images_on_grid
from analysis.ceilings import GOLD_SIGMA_FRACTIONS, gold_log_likelihood_table
from analysis.density import (
    CENTRE_WEIGHTS,
    SIGMA_FRACTIONS,
    DensityParams,
    _unit_scaled,
    blur,
    default_params,
    fit_all,
    fit_leave_one_out,
    log_likelihood_table,
)
from analysis.heatmap import HeatmapParams, _pixels, fixation_map
from analysis.heatmap import blur as heatmap_blur

__all__ = ["GOLD", "DensityFit", "fit_densities"]

logger = logging.getLogger(__name__)

#: The name the gold standard's parameters are kept under.
GOLD = "human_gold"


@dataclass
class DensityFit:
    """Fitted grid cells: ``cells[map][image]`` (leave one image out) and ``overall[map]`` (all
    images, for the record); ``widths[image]`` sets each image's grid in pixels."""

    cells: dict[str, dict[str, int]] = field(default_factory=dict)
    overall: dict[str, int] = field(default_factory=dict)
    widths: dict[str, int] = field(default_factory=dict)

    def params(self, name: str, image: str) -> DensityParams:
        """The parameters of map ``name`` (or :data:`GOLD`) on ``image``; the default where the map
        was not fitted (e.g. no image with fixations)."""
        cell = self.cells.get(name, {}).get(image)
        if cell is None:
            return default_params((0, self.widths.get(image, 0)))
        return _params(name, cell, self.widths[image])

    def for_image(self, image: str) -> dict[str, DensityParams]:
        """Every fitted map's parameters on ``image`` (the gold standard's apart)."""
        return {name: self.params(name, image) for name in self.cells if name != GOLD and image in self.cells[name]}

    def table(self, images) -> pd.DataFrame:
        """``image, map, sigma_px, centre_weight`` of ``images``."""
        rows = [
            {"image": image, "map": name, **self.params(name, image).model_dump()}
            for image in images
            for name in self.cells
            if image in self.cells[name]
        ]
        return pd.DataFrame(rows, columns=["image", "map", "sigma_px", "centre_weight"])

    def summary(self) -> dict:
        """For ``params.json``: the grid, and per map the cell fitted on all images and the range of
        the per-image (leave-one-out) choices."""
        per_map = {}
        for name, cells in self.cells.items():
            fractions = GOLD_SIGMA_FRACTIONS if name == GOLD else SIGMA_FRACTIONS
            chosen = [_cell(name, cell) for cell in cells.values()]
            per_map[name] = {
                "n_images": len(cells),
                "all_images": dict(zip(("sigma_fraction_of_width", "centre_weight"), _cell(name, self.overall[name]))),
                "leave_one_out_sigma_fractions": sorted({f for f, _ in chosen}),
                "leave_one_out_centre_weights": sorted({w for _, w in chosen}),
                "grid_sigma_fractions_of_width": list(fractions),
            }
        return {"grid_centre_weights": list(CENTRE_WEIGHTS), "maps": per_map}


def _cell(name: str, cell: int) -> tuple[float, float]:
    fractions = GOLD_SIGMA_FRACTIONS if name == GOLD else SIGMA_FRACTIONS
    return fractions[cell // len(CENTRE_WEIGHTS)], CENTRE_WEIGHTS[cell % len(CENTRE_WEIGHTS)]


def _params(name: str, cell: int, width_px: int) -> DensityParams:
    fraction, weight = _cell(name, cell)
    return DensityParams(sigma_px=fraction * width_px, centre_weight=weight)


class _SameMapTables:
    """Log-likelihood tables of a map that is the same on every image of a shape (the centre bias,
    the blank control): its blurred densities made once, then looked up at each image's fixations."""

    def __init__(self, values: np.ndarray, sigmas_px) -> None:
        unit = _unit_scaled(values)
        self.blurred = [blurred.ravel() / blurred.sum() for blurred in (blur(unit, sigma_px=s) for s in sigmas_px)]

    def table(self, pixels, counts, centre: np.ndarray) -> np.ndarray:
        weights = np.asarray(CENTRE_WEIGHTS)[None, :]
        c = centre[pixels][:, None]
        return np.stack([counts @ np.log2((1.0 - weights) * b[pixels][:, None] + weights * c) for b in self.blurred])


def fit_densities(
    selected: pd.DataFrame,
    shapes: Mapping[str, tuple[int, int]],
    *,
    params: HeatmapParams,
    store=None,
    center_bias_sigma_fraction: float = 0.25,
    progress: bool = False,
) -> DensityFit:
    """Fit every map's density parameters and the gold standard's, leave one image out.

    Parameters
    ----------
    selected : DataFrame
        The selected fixations of every image of the pool.
    shapes : mapping of image id → (H, W)
        Every pool image's size.
    params : HeatmapParams
        Heatmap parameters with the selection off (the dataset prior is a heatmap).
    store : MapStore, optional
        Model maps, fitted on the pool images it holds.
    center_bias_sigma_fraction : float
    progress : bool
        Show a progress bar.

    Returns
    -------
    DensityFit
    """
    tables: dict[str, dict[str, np.ndarray]] = {}
    widths: dict[str, int] = {}
    same_maps: dict[tuple, tuple[np.ndarray, dict[str, _SameMapTables]]] = {}
    priors = _Priors(selected, shapes, params)
    store_images = set(store.image_ids) if store is not None else set()
    images = sorted(set(selected["image"]) & set(shapes))
    for image in tqdm(images, desc="fitting densities", unit="image", disable=not progress):
        rows = selected[selected["image"] == image]
        shape = shapes[image]
        pixels, counts = _pixel_counts(rows, shape)
        if not pixels.size:
            continue
        widths[image] = shape[1]
        sigmas = [fraction * shape[1] for fraction in SIGMA_FRACTIONS]
        key = (shape, center_bias_sigma_fraction)
        if key not in same_maps:
            centre_map = center_bias(shape, sigma_fraction=center_bias_sigma_fraction)
            same_maps[key] = (
                centre_map.ravel() / centre_map.sum(),
                {"center_bias": _SameMapTables(centre_map, sigmas), "blank": _SameMapTables(blank_map(shape), sigmas)},
            )
        centre, fixed = same_maps[key]
        for name, tabulated in fixed.items():
            tables.setdefault(name, {})[image] = tabulated.table(pixels, counts, centre)
        maps = {"dataset_prior": priors(image)}
        if image in store_images:
            maps.update(store.load(image, shape=shape))
        for name, values in maps.items():
            tables.setdefault(name, {})[image] = log_likelihood_table(
                values, pixels, counts, centre_density=centre.reshape(shape), sigmas_px=sigmas
            )
        per_participant = {
            participant: _pixel_counts(own, shape)
            for participant, own in rows.groupby(rows["participant"].astype(str), sort=True)
        }
        tables.setdefault(GOLD, {})[image] = gold_log_likelihood_table(
            per_participant,
            shape,
            centre_density=centre.reshape(shape),
            sigmas_px=[fraction * shape[1] for fraction in GOLD_SIGMA_FRACTIONS],
        )
    fit = DensityFit(widths=widths)
    for name, per_image in tables.items():
        fit.cells[name] = fit_leave_one_out(per_image)
        fit.overall[name] = fit_all(per_image)
    logger.info("density parameters fitted on %d images for %s", len(widths), sorted(tables))
    return fit


def _pixel_counts(rows: pd.DataFrame, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The fixated pixels (flat, ascending) of ``rows`` on an image of ``shape`` and their fixation
    counts (as :func:`analysis.heatmap.fixation_map`; off-image fixations dropped)."""
    height, width = shape
    r, c, _ = _pixels(rows["x_image_px"].to_numpy(), rows["y_image_px"].to_numpy(), height, width, what="fit")
    pixels, counts = np.unique(r * width + c, return_counts=True)
    return pixels, counts.astype(np.float64)


class _Priors:
    """The dataset prior of each image for the fit: the heatmap of every other image's fixations.
    Blurring is linear, so it is the blur of all images' fixation map (made once per image size)
    minus the image's own, normalised as :func:`analysis.heatmap.heatmap` does; it equals
    :func:`analysis.baselines.dataset_prior` to rounding (which the fit cannot see)."""

    def __init__(self, selected: pd.DataFrame, shapes, params: HeatmapParams) -> None:
        self.selected, self.shapes, self.params = selected, shapes, params
        self.weights = (
            selected["duration_ms"].to_numpy(np.float64) if params.duration_weighted else np.ones(len(selected))
        )
        self.labels = selected["image"].to_numpy()
        self._all: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def _blur(self, fixmap: np.ndarray) -> np.ndarray:
        p = self.params
        return heatmap_blur(
            fixmap, sigma_px=p.sigma_px, kernel_size_px=p.kernel_size_px, even_kernel_centre=p.even_kernel_centre
        )

    def _on_grid(self, shape: tuple[int, int]):
        """Every fixation in ``shape``'s pixels (as :func:`analysis.baselines.other_images_on_grid`),
        their fixation map and its blur."""
        if shape not in self._all:
            mapped = other_images_on_grid(self.selected, {**self.shapes, "": shape}, image="")
            x, y = mapped["x_image_px"].to_numpy(), mapped["y_image_px"].to_numpy()
            fixmap = fixation_map(x, y, shape=shape, weights=self.weights)
            self._all[shape] = x, y, fixmap, self._blur(fixmap)
        return self._all[shape]

    def __call__(self, image: str) -> np.ndarray:
        shape = self.shapes[image]
        x, y, all_fixmap, all_blurred = self._on_grid(shape)
        mine = self.labels == image
        own = fixation_map(x[mine], y[mine], shape=shape, weights=self.weights[mine])
        top = (all_fixmap - own).max()
        if not top > 0:
            return np.zeros(shape)
        raw = all_blurred - self._blur(own)
        a, b = heatmap_transform(
            top, float(raw.min()), float(raw.max()), float(raw.sum()), self.params, what=f"dataset prior of {image}"
        )
        return raw * a + b
