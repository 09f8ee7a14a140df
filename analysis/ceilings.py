"""How well people predict people: the gold standard and split-half noise ceilings.

* **Gold standard** (Kümmerer, Wallis & Bethge, "Information-theoretic model comparison unifies
  saliency metrics", PNAS 2015): for each participant, the fixation density of the *other*
  participants on the same image, a Gaussian kernel density estimate (each fixation counts once,
  blurred as :func:`analysis.density.blur`), mixed with the centre-bias density:
  ``G_p = (1 - w) KDE_{-p} / sum + w C``. The blur ``sigma_px`` and the weight ``w`` maximise the
  log-likelihood of each participant's fixations under ``G_p`` on the *other images*
  (:func:`gold_log_likelihood_table`, :func:`analysis.density.fit_leave_one_out`). ``G_p`` is scored
  against participant ``p``'s own heatmap and fixations, the targets every map is scored against
  per participant; the row ``human_gold`` is its mean over participants. Unlike the others' raw
  heatmap (``human_loso``), it has no exact zeros, and its blur is fitted to the data, not fixed.
* **Split-half ceilings**: the participants split at random into two halves; the heatmap of one
  half scored against the other half's heatmap (CC, MAE) and fixations (NSS), both ways, averaged
  over splits. CC is also given Spearman–Brown corrected, ``2 r / (1 + r)``: the expected
  correlation of the full pool's map with another pool's of the same size.

Arrays are ``(H, W)`` float64 in image pixels; fixations are flat pixel indices with counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from analysis.density import CENTRE_WEIGHTS, _blur_matrix
from analysis.heatmap import HeatmapParams, fixation_map, heatmap
from analysis.metrics import Variant, _rng, cc, mae, nss

__all__ = [
    "GOLD_SIGMA_FRACTIONS",
    "blurred_points",
    "gold_density",
    "gold_log_likelihood_table",
    "split_half_ceilings",
]

#: Kernel widths of the gold standard tried, as fractions of the image width (4 to 48 px at 800 px).
GOLD_SIGMA_FRACTIONS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.045, 0.06)


def blurred_points(pixels: np.ndarray, weights: np.ndarray, shape: tuple[int, int], *, sigma_px: float) -> np.ndarray:
    """:func:`analysis.density.blur` of the map holding ``weights`` at flat ``pixels`` (zero
    elsewhere), from the fixated columns of the blur matrices only: ``(H, F) @ (F, W)``."""
    height, width = shape
    rows, cols = np.divmod(np.asarray(pixels, dtype=np.int64), width)
    m_rows, m_cols = _blur_matrix(height, float(sigma_px)), _blur_matrix(width, float(sigma_px))
    return (m_rows[:, rows] * np.asarray(weights, dtype=np.float64)) @ m_cols[:, cols].T


def gold_density(
    others_pixels: np.ndarray,
    others_counts: np.ndarray,
    shape: tuple[int, int],
    *,
    sigma_px: float,
    centre_weight: float,
    centre_density: np.ndarray,
) -> np.ndarray:
    """The gold standard's density for one participant: ``(1 - w) KDE / sum + w C``.

    Parameters
    ----------
    others_pixels, others_counts : numpy.ndarray, shape (F,)
        The other participants' fixated pixels (flat) and their fixation counts.
    shape : (H, W)
    sigma_px : float
        Kernel width (> 0).
    centre_weight : float
        ``w`` in [0, 1].
    centre_density : numpy.ndarray, shape (H, W)

    Returns
    -------
    numpy.ndarray, shape (H, W), float64, summing to 1; the centre density alone without others'
    fixations.
    """
    if not np.sum(others_counts) > 0:
        return centre_density.copy()
    kde = blurred_points(others_pixels, others_counts, shape, sigma_px=sigma_px)
    return (1.0 - centre_weight) * (kde / kde.sum()) + centre_weight * centre_density


def gold_log_likelihood_table(
    fixations: Mapping[str, tuple[np.ndarray, np.ndarray]],
    shape: tuple[int, int],
    *,
    centre_density: np.ndarray,
    sigmas_px: Sequence[float],
    weights: Sequence[float] = CENTRE_WEIGHTS,
) -> np.ndarray:
    """Log-likelihood (bits) of every participant's fixations under their gold-standard density.

    Parameters
    ----------
    fixations : mapping of participant → (pixels, counts)
        Each participant's fixated pixels (flat, distinct) on the image and fixation counts.
    shape : (H, W)
    centre_density : numpy.ndarray, shape (H, W)
    sigmas_px, weights : sequences of float
        The grid.

    Returns
    -------
    numpy.ndarray, shape (len(sigmas_px), len(weights))
        ``sum_p sum_{x in p} counts * log2 G_p(x)``, from the kernel between fixated pixels only
        (the blur matrices' entries), not full maps; participants without others' fixations add
        nothing.
    """
    height, width = shape
    names = list(fixations)
    pixels = np.unique(
        np.concatenate([np.asarray(fixations[p][0], dtype=np.int64) for p in names] or [np.empty(0, int)])
    )
    own = np.zeros((len(names), pixels.size))
    for k, name in enumerate(names):
        at, counts = fixations[name]
        own[k, np.searchsorted(pixels, at)] = counts
    others = own.sum(axis=0)[None, :] - own  # (P, U)
    rows, cols = np.divmod(pixels, width)
    centre = centre_density.ravel()[pixels]
    w = np.asarray(weights, dtype=np.float64)
    scored = others.sum(axis=1) > 0
    table = np.zeros((len(sigmas_px), w.size))
    for i, sigma_px in enumerate(sigmas_px):
        m_rows, m_cols = _blur_matrix(height, float(sigma_px)), _blur_matrix(width, float(sigma_px))
        kernel = m_rows[np.ix_(rows, rows)] * m_cols[np.ix_(cols, cols)]  # value at x of a unit fixation at y
        mass = m_rows.sum(axis=0)[rows] * m_cols.sum(axis=0)[cols]  # of a fixation's blur inside the image
        kde = (others @ kernel.T)[scored] / (others @ mass)[scored, None]  # (P, U), each row sums to 1 over the image
        p = (1.0 - w[:, None, None]) * kde[None] + w[:, None, None] * centre[None, None, :]
        with np.errstate(divide="ignore"):  # log 0 where a participant has no fixation: weight 0
            logs = np.where(own[scored][None] > 0, np.log2(p), 0.0)
        table[i] = (own[scored][None] * logs).sum(axis=(1, 2))
    return table


def split_half_ceilings(
    rows: pd.DataFrame,
    shape: tuple[int, int],
    *,
    params: HeatmapParams,
    seed: int,
    image: str,
    n_splits: int = 10,
    variant: Variant = "mit",
    mae_normalize: Literal["minmax", "none"] = "minmax",
) -> dict[str, float]:
    """Split-half noise ceilings of one image's heatmap (module docstring).

    Parameters
    ----------
    rows : DataFrame
        The image's selected fixations (``participant``, ``x_image_px``, ``y_image_px``,
        ``duration_ms``).
    shape : (H, W)
    params : HeatmapParams
        With the selection off (:func:`analysis.offline.without_selection`).
    seed, image : int, str
        Name the random stream of the splits (one per image).
    n_splits : int
        Random splits averaged.
    variant, mae_normalize
        As :func:`analysis.metrics.score_map`.

    Returns
    -------
    dict
        ``cc``, ``cc_spearman_brown``, ``nss`` and ``mae`` (means over splits and both directions);
        NaN with fewer than two participants.
    """
    participants = np.array(sorted(rows["participant"].astype(str).unique()))
    keys = ("cc", "cc_spearman_brown", "nss", "mae")
    if participants.size < 2:
        return dict.fromkeys(keys, float("nan"))
    rng = _rng(seed, "split_half", (image,))
    who = rows["participant"].astype(str).to_numpy()
    values: dict[str, list[float]] = {key: [] for key in ("cc", "nss", "mae")}
    for _ in range(n_splits):
        order = rng.permutation(participants)
        halves = [rows[np.isin(who, half)] for half in (order[: order.size // 2], order[order.size // 2 :])]
        maps = [heatmap(half, shape=shape, params=params) for half in halves]
        counts = [fixation_map(h["x_image_px"].to_numpy(), h["y_image_px"].to_numpy(), shape=shape) for h in halves]
        for a, b in ((0, 1), (1, 0)):
            values["cc"].append(cc(maps[a], maps[b], variant=variant))
            values["nss"].append(nss(maps[a], counts[b], variant=variant))
            values["mae"].append(mae(maps[a], maps[b], normalize=mae_normalize))
    result = {key: float(np.nanmean(v)) for key, v in values.items()}
    r = result["cc"]
    result["cc_spearman_brown"] = 2 * r / (1 + r)
    return {key: result[key] for key in keys}
