"""Offline re-analysis end to end on real OSIE recordings.

Oracles: the heatmap and metric functions called directly (the pipeline must add nothing of its
own), hand-checked file contents, and the leave-one-out definition recomputed here.
"""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.heatmap import HeatmapParams, heatmap
from analysis.metrics import METRICS
from analysis.offline import AnalysisConfig, run_analysis
from analysis.readers import read_osie
from lookwhere.cli import main as cli_main

IMAGES = ("1001", "1002", "1003")


@pytest.fixture(scope="module")
def result(osie_fixations_path, osie_stimuli, tmp_path_factory):
    out = tmp_path_factory.mktemp("osie")
    config = AnalysisConfig(
        dataset="osie", fixations=osie_fixations_path, stimuli=osie_stimuli, out=out,
        images=IMAGES, bootstrap_resamples=200, n_overlays=2,
    )
    return run_analysis(config, progress=False)


def test_every_output_file_is_written(result):
    for name in ("scores.csv", "loso_scores.csv", "heatmaps.npz", "params.json", "summary.csv",
                 "comparisons.csv", "fig9_mae.png", "metrics.png", "report.html"):
        assert (result.out / name).stat().st_size > 0, name
    assert len(list((result.out / "overlays").glob("*.png"))) == 2


def test_scores_cover_every_image_map_and_metric(result):
    scores = pd.read_csv(result.out / "scores.csv", dtype={"image": str})
    assert {"image", "map", "metric", "value"} <= set(scores.columns)
    assert set(scores["map"]) == {"center_bias", "dataset_prior", "human_loso"}
    assert len(scores) == len(IMAGES) * 3 * len(METRICS)
    assert scores.groupby(["image", "map", "metric"]).size().eq(1).all()
    assert np.isfinite(scores["value"]).all()
    # The human ceiling beats the centre bias on NSS for real observers.
    nss = scores[scores.metric == "nss"].pivot(index="image", columns="map", values="value")
    assert (nss["human_loso"] > nss["center_bias"]).all()


def test_heatmaps_equal_the_heatmap_function(result, osie_fixations_path):
    stored = np.load(result.out / "heatmaps.npz")
    assert sorted(stored.files) == list(IMAGES)
    fixations = read_osie(osie_fixations_path, images=["1002"])
    expected = heatmap(fixations, shape=(600, 800), params=HeatmapParams())
    assert stored["1002"].shape == (600, 800)
    np.testing.assert_allclose(stored["1002"], expected, atol=1e-12)


def test_loso_is_the_mean_over_participants(result):
    loso = pd.read_csv(result.out / "loso_scores.csv", dtype={"image": str})
    scores = pd.read_csv(result.out / "scores.csv", dtype={"image": str})
    assert loso["participant"].nunique() == 15
    mean = loso[(loso.image == "1001") & (loso.metric == "cc")]["value"].mean()
    row = scores[(scores.image == "1001") & (scores["map"] == "human_loso") & (scores.metric == "cc")]
    assert row["value"].item() == pytest.approx(mean)


def test_params_and_report(result):
    params = json.loads((result.out / "params.json").read_text())
    assert params["config"]["heatmap"]["sigma_px"] == 20.0
    assert params["config"]["heatmap"]["kernel_size_px"] == 80
    assert params["n_images"] == 3 and params["n_participants"] == 15
    report = (result.out / "report.html").read_text()
    for metric in METRICS:
        assert metric in report
    assert "human_loso" in report and "data:image/png;base64," in report


def test_cli_errors_are_clear(osie_fixations_path, osie_stimuli, tmp_path, capsys):
    code = cli_main(["analyze", "--dataset", "osie", "--fixations", str(tmp_path / "missing.mat"),
                     "--stimuli", str(osie_stimuli), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "missing.mat" in capsys.readouterr().err
    code = cli_main(["analyze", "--dataset", "osie", "--fixations", str(osie_fixations_path),
                     "--stimuli", str(osie_stimuli), "--out", str(tmp_path / "o"), "--images", "1001,9999"])
    assert code == 2
    assert "9999" in capsys.readouterr().err
