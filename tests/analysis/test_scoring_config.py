"""One scoring configuration, its command-line options, and the metric and map-kind registries.

Oracles: the model's own defaults (the options are generated from it), hand-written option lines,
and :data:`analysis.metrics.HIGHER_IS_BETTER` for the metrics' directions.
"""

from __future__ import annotations

import argparse

import pytest
from pydantic import ValidationError

from analysis import scoring_config
from analysis.heatmap import HeatmapParams
from analysis.metrics import HIGHER_IS_BETTER, METRICS
from analysis.offline import AnalysisConfig
from analysis.registry import METRIC_REGISTRY, map_kind, metric_info
from analysis.scoring_config import ScoringConfig


def _parse(*words: str) -> ScoringConfig:
    parser = argparse.ArgumentParser()
    scoring_config.add_arguments(parser)
    return scoring_config.from_args(parser.parse_args(list(words)))


def test_no_option_gives_the_defaults():
    assert _parse() == ScoringConfig()


def test_every_option_reaches_its_field():
    config = _parse(
        "--sigma-px",
        "25",
        "--kernel-size-px",
        "0",
        "--no-duration-weighting",
        "--exclude-first-fixation",
        "--metrics",
        "cc, nss",
        "--metric-variant",
        "pysaliency",
        "--mae-normalize",
        "none",
        "--seed",
        "7",
        "--center-bias-sigma-fraction",
        "0.3",
    )
    assert config == ScoringConfig(
        heatmap=HeatmapParams(sigma_px=25.0, kernel_size_px=None, duration_weighted=False, exclude_first_fixation=True),
        metrics=("cc", "nss"),
        metric_variant="pysaliency",
        mae_normalize="none",
        seed=7,
        center_bias_sigma_fraction=0.3,
    )


def test_bad_values_are_refused_with_the_reason():
    with pytest.raises(ValidationError, match="unknown metrics \\['auc'\\]"):
        _parse("--metrics", "cc,auc")
    with pytest.raises(ValidationError, match="auc_splits must be 100"):
        _parse("--auc-splits", "50")
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        _parse("--metric-variant", "matlab")


def test_the_offline_configuration_is_a_scoring_configuration():
    config = AnalysisConfig(dataset="osie", fixations="f.mat", stimuli="s", out="o", seed=3, metrics=("cc",))
    assert isinstance(config, ScoringConfig)
    assert config.engine_options() == {"metrics": ("cc",), "seed": 3, "variant": "mit", "mae_normalize": "minmax"}


def test_the_metric_registry_lists_every_metric_with_its_direction():
    assert tuple(METRIC_REGISTRY) == METRICS
    assert {name: info.higher_is_better for name, info in METRIC_REGISTRY.items()} == HIGHER_IS_BETTER
    assert metric_info("kl_div").arrow == "↓" and metric_info("nss").arrow == "↑"
    with pytest.raises(KeyError, match="unknown metric 'auc'"):
        metric_info("auc")


def test_map_kinds():
    assert [map_kind(name) for name in ("center_bias", "dataset_prior", "human_loso", "gradcam", "dense_conv54")] == [
        "baseline",
        "baseline",
        "human",
        "cnn",
        "cnn",
    ]
