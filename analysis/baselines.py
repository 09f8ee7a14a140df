"""Baseline maps reviewers expect beside the CNN maps (SPEC §7).

* ``center_bias`` — a centred Gaussian, the classic observer centre bias.
* ``dataset_prior`` — the fixation density of every *other* image of the set (leave the current
  image out), so it carries the set's layout bias but nothing of the image itself.
* ``human_loso`` — each participant scored against the heatmap of the other participants (leave
  one subject out), see :func:`leave_one_out_groups`; its target is the participant's own heatmap.

Two controls show what a metric rewards when a map says nothing:

* ``blank`` — a constant (all-zero) map (:func:`blank_map`). With the default min-max scaling MAE
  gives it the mean of the scaled human map, which is small because most of a heatmap is near
  zero: MAE rewards maps that are dark where people did not look, however uninformative.
* ``uniform`` — the uniform density ``1 / (H W)`` (:func:`uniform_map`), the chance model of KL
  divergence and information gain.

Fixations from images of other sizes are carried over in normalised coordinates
(``x / width``, ``y / height``), the usual choice for sets of mixed sizes (e.g. VOC).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis._checks import check_positive
from analysis.heatmap import HeatmapParams, fixation_map, heatmap

__all__ = [
    "BASELINES",
    "CONTROLS",
    "blank_map",
    "center_bias",
    "other_images_on_grid",
    "dataset_prior",
    "shuffled_fixation_counts",
    "leave_one_out_groups",
    "uniform_map",
]

BASELINES = ("center_bias", "dataset_prior", "human_loso")
CONTROLS = ("blank", "uniform")


def blank_map(shape: tuple[int, int]) -> np.ndarray:
    """The blank control: ``(H, W)`` float64 zeros (a map that predicts nothing)."""
    return np.zeros(shape)


def uniform_map(shape: tuple[int, int]) -> np.ndarray:
    """The uniform density: ``(H, W)`` float64, ``1 / (H W)`` everywhere (sums to 1)."""
    height, width = shape
    return np.full(shape, 1.0 / (height * width))


def center_bias(shape: tuple[int, int], *, sigma_fraction: float = 0.25) -> np.ndarray:
    """A Gaussian centred on the image, stretched to its aspect ratio.

    Parameters
    ----------
    shape : (H, W)
        Image size in pixels.
    sigma_fraction : float
        Standard deviation as a fraction of each side: ``sigma_x = sigma_fraction * W`` and
        ``sigma_y = sigma_fraction * H`` (default 0.25, after Judd et al., 2012: a Gaussian "of
        fixed size stretched to the aspect ratio of the image").

    Returns
    -------
    ndarray, shape (H, W), float64
        Evaluated at pixel centres ``(col + 0.5, row + 0.5)``, scaled to a maximum of 1.
    """
    check_positive("sigma_fraction", sigma_fraction)
    height, width = shape
    y = (np.arange(height) + 0.5 - height / 2) / (sigma_fraction * height)
    x = (np.arange(width) + 0.5 - width / 2) / (sigma_fraction * width)
    bias = np.exp(-0.5 * y[:, None] ** 2) * np.exp(-0.5 * x[None, :] ** 2)
    return bias / bias.max()


def other_images_on_grid(fixations: pd.DataFrame, shapes: Mapping[str, tuple[int, int]], *, image: str) -> pd.DataFrame:
    """The fixations of every image except ``image``, moved onto ``image``'s pixel grid.

    Parameters
    ----------
    fixations : DataFrame
        Fixation table.
    shapes : mapping of image id → (H, W)
        Size of every image that appears in ``fixations``.
    image : str
        The image left out; its grid receives the others' fixations.

    Returns
    -------
    DataFrame
        The other images' rows with ``x_image_px``/``y_image_px`` mapped through normalised
        coordinates and ``image`` set to ``image``.
    """
    height, width = shapes[image]
    others = fixations[fixations["image"] != image].copy()
    if not others.empty:
        source = np.array([shapes[i] for i in others["image"]], dtype=float)
        others["x_image_px"] = others["x_image_px"].to_numpy() / source[:, 1] * width
        others["y_image_px"] = others["y_image_px"].to_numpy() / source[:, 0] * height
        others["image"] = image
    return others


def dataset_prior(
    fixations: pd.DataFrame,
    shapes: Mapping[str, tuple[int, int]],
    *,
    image: str,
    params: HeatmapParams = HeatmapParams(),
) -> np.ndarray:
    """Fixation density of all other images, built exactly like a human heatmap.

    The other images' fixations go through :func:`analysis.heatmap.heatmap` with the same
    parameters, so the prior differs from a human map only in which fixations it holds.

    Returns
    -------
    ndarray, shape (H, W), float64
    """
    others = other_images_on_grid(fixations, shapes, image=image)
    return heatmap(others, shape=shapes[image], params=params)


def shuffled_fixation_counts(
    fixations: pd.DataFrame, shapes: Mapping[str, tuple[int, int]], *, image: str
) -> np.ndarray:
    """Counts of the other images' fixations on ``image``'s grid, for shuffled AUC.

    ``fixations`` should already be selected (:func:`analysis.heatmap.select_fixations`).

    Returns
    -------
    ndarray, shape (H, W), float64
    """
    others = other_images_on_grid(fixations, shapes, image=image)
    return fixation_map(others["x_image_px"].to_numpy(), others["y_image_px"].to_numpy(), shape=shapes[image])


def leave_one_out_groups(fixations: pd.DataFrame) -> list[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """Split one image's fixations into (participant, their rows, everyone else's rows).

    Participants with no fixations cannot be scored and are absent; with fewer than two
    participants the list is empty (there is no "other" map).
    """
    participants = sorted(fixations["participant"].unique())
    if len(participants) < 2:
        return []
    is_p = {p: (fixations["participant"] == p).to_numpy() for p in participants}
    return [(p, fixations[mask], fixations[~mask]) for p, mask in is_p.items()]
