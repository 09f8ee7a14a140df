"""The full recomputation of one image's scores: the oracle of the incremental engine.

Before :mod:`analysis.engine`, :func:`analysis.offline.score_image` was exactly this: every heatmap
rebuilt by :func:`analysis.heatmap.heatmap`, every map scored by :func:`analysis.metrics.score_map`
(the metric definitions checked against the MIT benchmark and pysaliency in ``test_metrics.py``),
every density for KL and information gain made by :func:`analysis.density.to_density`. It stays
here, outside the product, as the reference that ``test_engine.py`` and ``bench/bench_engine.py``
compare the engine with.

``scoring`` holds the keyword arguments of :func:`~analysis.metrics.score_map` (``metrics``,
``seed``, ``variant``, ``mae_normalize``) and, as the engine takes it, ``kl_ig_maps``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.baselines import (
    blank_map,
    center_bias,
    dataset_prior,
    leave_one_out_groups,
    shuffled_fixation_counts,
    uniform_map,
)
from analysis.ceilings import gold_density
from analysis.density import DensityParams, default_params, to_density
from analysis.heatmap import HeatmapParams, fixation_map, heatmap
from analysis.metrics import HumanTarget, score_map
from analysis.offline import ImageScores


def reference_score_image(
    image_id: str,
    selected: pd.DataFrame,
    shapes: dict[str, tuple[int, int]],
    *,
    params: HeatmapParams,
    scoring: dict,
    maps: dict[str, np.ndarray] | None = None,
    center_bias_sigma_fraction: float = 0.25,
    density_params: dict[str, DensityParams] | None = None,
) -> ImageScores:
    """Score the baselines, ``maps`` and the human ceiling of one image from scratch.

    Arguments as :func:`analysis.offline.score_image`, with the model maps given directly
    (``maps``: name → ``(H, W)`` at the image's size) instead of through a map store.
    """
    shape = shapes[image_id]
    rows = selected[selected["image"] == image_id]
    scoring, densities = _densities_from(scoring)
    prepared = _Prepared(
        image_id, selected, shapes, params, maps, center_bias_sigma_fraction, density_params, densities
    )
    human = heatmap(rows, shape=shape, params=params)
    scores, mc_se = prepared.score(rows, shape, params, scoring, (image_id,))
    loso, loso_mc_se = {}, {}
    for participant, own, others in leave_one_out_groups(rows):
        # the human ceiling: the others' heatmap as given (raw KL and information gain, raw centre bias)
        own_target = HumanTarget(
            human_map=heatmap(own, shape=shape, params=params),
            fixation_map=_counts(own, shape),
            other_fixation_map=prepared.shuffled,
            baseline_map=prepared.centre,
        )
        loso[participant], loso_mc_se[participant] = score_map(
            heatmap(others, shape=shape, params=params),
            own_target,
            stream=(image_id, participant),
            return_mc_se=True,
            **scoring,
        )
    return ImageScores(human_map=human, scores=scores, loso=loso, mc_se=mc_se, loso_mc_se=loso_mc_se)


def reference_participant_scores(
    image_id: str,
    selected: pd.DataFrame,
    shapes: dict[str, tuple[int, int]],
    participant: str,
    *,
    params: HeatmapParams,
    scoring: dict,
    maps: dict[str, np.ndarray] | None = None,
    center_bias_sigma_fraction: float = 0.25,
    density_params: dict[str, DensityParams] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Every map of :func:`reference_score_image` scored against one participant's own heatmap and
    fixations on the image (the dashboard's "participant" target): ``(scores, Monte-Carlo errors)``."""
    rows = selected[selected["image"] == image_id]
    own = rows[rows["participant"] == participant]
    scoring, densities = _densities_from(scoring)
    prepared = _Prepared(
        image_id, selected, shapes, params, maps, center_bias_sigma_fraction, density_params, densities
    )
    return prepared.score(own, shapes[image_id], params, scoring, (image_id, str(participant)))


def reference_human_gold(
    image_id: str,
    selected: pd.DataFrame,
    shapes: dict[str, tuple[int, int]],
    gold: DensityParams,
    *,
    params: HeatmapParams,
    scoring: dict,
    center_bias_sigma_fraction: float = 0.25,
    density_params: dict[str, DensityParams] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """The gold standard of every participant, from the table: the others' fixations counted on the
    grid (:func:`analysis.heatmap.fixation_map`), :func:`analysis.ceilings.gold_density`, scored
    against the participant's own target. ``(scores, Monte-Carlo errors)``."""
    shape = shapes[image_id]
    rows = selected[selected["image"] == image_id]
    scoring, densities = _densities_from(scoring)
    prepared = _Prepared(
        image_id, selected, shapes, params, None, center_bias_sigma_fraction, density_params, densities
    )
    centre_density = prepared.centre / prepared.centre.sum()
    scores, errors = {}, {}
    for participant, own, others in leave_one_out_groups(rows):
        counts = _counts(others, shape).ravel()
        pixels = np.flatnonzero(counts)
        density = gold_density(
            pixels,
            counts[pixels],
            shape,
            sigma_px=gold.sigma_px,
            centre_weight=gold.centre_weight,
            centre_density=centre_density,
        )
        target = prepared.target(own, shape, params)
        scores[participant], errors[participant] = score_map(
            density,
            target,
            stream=(image_id, str(participant)),
            return_mc_se=True,
            density=density if densities else None,
            **scoring,
        )
    return scores, errors


def _densities_from(scoring: dict) -> tuple[dict, bool]:
    """``score_map``'s keyword arguments, and whether KL and information gain use densities."""
    scoring = dict(scoring)
    return scoring, scoring.pop("kl_ig_maps", "density") == "density"


class _Prepared:
    """The maps scored (baselines, controls, then the model maps), their densities, the centre bias
    and the shuffled-AUC counts of one image."""

    def __init__(
        self, image_id, selected, shapes, params, maps, center_bias_sigma_fraction, density_params, densities: bool
    ) -> None:
        shape = shapes[image_id]
        self.centre = center_bias(shape, sigma_fraction=center_bias_sigma_fraction)
        self.maps = {
            "center_bias": self.centre,
            "dataset_prior": dataset_prior(selected, shapes, image=image_id, params=params),
            "blank": blank_map(shape),
            "uniform": uniform_map(shape),
            **(maps or {}),
        }
        self.shuffled = shuffled_fixation_counts(selected, shapes, image=image_id)
        self.densities = None
        if densities:
            chosen = density_params or {}
            centre_density = self.centre / self.centre.sum()
            self.densities = {
                name: to_density(
                    values,
                    None if name == "uniform" else chosen.get(name, default_params(shape)),
                    centre_density=centre_density,
                )
                for name, values in self.maps.items()
            }

    def target(self, rows, shape, params) -> HumanTarget:
        """The heatmap and fixations of ``rows`` with the shuffled-AUC counts and the information-gain
        baseline (the centre bias, or its density)."""
        baseline = self.centre if self.densities is None else self.densities["center_bias"]
        return HumanTarget(
            human_map=heatmap(rows, shape=shape, params=params),
            fixation_map=_counts(rows, shape),
            other_fixation_map=self.shuffled,
            baseline_map=baseline,
        )

    def score(self, rows, shape, params, scoring, stream):
        """Every map against the target of ``rows``: ``(scores, Monte-Carlo errors)``."""
        target = self.target(rows, shape, params)
        both = {
            name: score_map(
                values,
                target,
                stream=stream,
                return_mc_se=True,
                density=None if self.densities is None else self.densities[name],
                **scoring,
            )
            for name, values in self.maps.items()
        }
        return {name: pair[0] for name, pair in both.items()}, {name: pair[1] for name, pair in both.items()}


def _counts(rows: pd.DataFrame, shape: tuple[int, int]) -> np.ndarray:
    return fixation_map(rows["x_image_px"].to_numpy(), rows["y_image_px"].to_numpy(), shape=shape)
