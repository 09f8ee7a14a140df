"""The full recomputation of one image's scores: the oracle of the incremental engine.

Before :mod:`analysis.engine`, :func:`analysis.offline.score_image` was exactly this: every heatmap
rebuilt by :func:`analysis.heatmap.heatmap`, every map scored by :func:`analysis.metrics.score_map`
(the metric definitions checked against the MIT benchmark and pysaliency in ``test_metrics.py``).
It stays here, outside the product, as the reference that ``test_engine.py`` and
``bench/bench_engine.py`` compare the engine with.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.baselines import center_bias, dataset_prior, leave_one_out_groups, shuffled_fixation_counts
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
) -> ImageScores:
    """Score the baselines, ``maps`` and the human ceiling of one image from scratch.

    Arguments as :func:`analysis.offline.score_image`, with the model maps given directly
    (``maps``: name → ``(H, W)`` at the image's size) instead of through a map store.
    """
    shape = shapes[image_id]
    rows = selected[selected["image"] == image_id]
    all_maps, centre, shuffled = _maps(image_id, selected, shapes, params, maps, center_bias_sigma_fraction)
    human = heatmap(rows, shape=shape, params=params)
    target = HumanTarget(human_map=human, fixation_map=_counts(rows, shape), other_fixation_map=shuffled,
                         baseline_map=centre)
    scores, mc_se = _score_all(all_maps, target, scoring, (image_id,))
    loso, loso_mc_se = {}, {}
    for participant, own, others in leave_one_out_groups(rows):
        own_target = HumanTarget(
            human_map=heatmap(own, shape=shape, params=params),
            fixation_map=_counts(own, shape), other_fixation_map=shuffled, baseline_map=centre,
        )
        loso[participant], loso_mc_se[participant] = score_map(
            heatmap(others, shape=shape, params=params), own_target, stream=(image_id, participant),
            return_mc_se=True, **scoring)
    return ImageScores(human_map=human, scores=scores, loso=loso, mc_se=mc_se, loso_mc_se=loso_mc_se)


def _score_all(maps, target, scoring, stream):
    """Every map against ``target``: ``(scores, Monte-Carlo errors)``, map → metric → value."""
    both = {name: score_map(saliency, target, stream=stream, return_mc_se=True, **scoring)
            for name, saliency in maps.items()}
    return {name: pair[0] for name, pair in both.items()}, {name: pair[1] for name, pair in both.items()}


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
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Every map of :func:`reference_score_image` scored against one participant's own heatmap and
    fixations on the image (the dashboard's "participant" target): ``(scores, Monte-Carlo errors)``."""
    shape = shapes[image_id]
    rows = selected[selected["image"] == image_id]
    own = rows[rows["participant"] == participant]
    all_maps, centre, shuffled = _maps(image_id, selected, shapes, params, maps, center_bias_sigma_fraction)
    target = HumanTarget(human_map=heatmap(own, shape=shape, params=params), fixation_map=_counts(own, shape),
                         other_fixation_map=shuffled, baseline_map=centre)
    return _score_all(all_maps, target, scoring, (image_id, str(participant)))


def _maps(image_id, selected, shapes, params, maps, center_bias_sigma_fraction):
    """The maps scored (baselines first), the centre bias and the shuffled-AUC counts."""
    centre = center_bias(shapes[image_id], sigma_fraction=center_bias_sigma_fraction)
    all_maps = {
        "center_bias": centre,
        "dataset_prior": dataset_prior(selected, shapes, image=image_id, params=params),
        **(maps or {}),
    }
    return all_maps, centre, shuffled_fixation_counts(selected, shapes, image=image_id)


def _counts(rows: pd.DataFrame, shape: tuple[int, int]) -> np.ndarray:
    return fixation_map(rows["x_image_px"].to_numpy(), rows["y_image_px"].to_numpy(), shape=shape)
