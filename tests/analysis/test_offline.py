"""Offline re-analysis end to end on real OSIE recordings.

Oracles: the heatmap and metric functions called directly (the pipeline must add nothing of its
own), hand-checked file contents, and the leave-one-out definition recomputed here.
"""

import json

import numpy as np
import pandas as pd
import pytest

from analysis import scoring_config
from analysis.heatmap import HeatmapParams, heatmap
from analysis.metrics import HIGHER_IS_BETTER, METRICS
from analysis.offline import AnalysisConfig, run_analysis
from analysis.readers import read_osie
from analysis.timecourse import TimecourseParams
from lookwhere.cli import main as cli_main

IMAGES = ("1001", "1002", "1003")
POOL = 20  # stimulus files, hence images in the baselines' pool (OSIE's 200 make each run slow)


@pytest.fixture(scope="module")
def stimuli(osie_stimuli, tmp_path_factory):
    """The first 20 OSIE stimuli (links): the input's images with fixations and a stimulus file."""
    folder = tmp_path_factory.mktemp("stimuli")
    for path in sorted(osie_stimuli.glob("*.jpg"))[:POOL]:
        (folder / path.name).symlink_to(path)
    return folder


@pytest.fixture(scope="module")
def result(osie_fixations_path, stimuli, tmp_path_factory):
    out = tmp_path_factory.mktemp("osie")
    config = AnalysisConfig(
        dataset="osie",
        fixations=osie_fixations_path,
        stimuli=stimuli,
        out=out,
        images=IMAGES,
        bootstrap_resamples=200,
        n_overlays=2,
        split_half_splits=2,
    )
    return run_analysis(config, progress=False)


def test_every_output_file_is_written(result):
    for name in (
        "scores.csv",
        "loso_scores.csv",
        "participant_scores.csv",
        "ceilings.csv",
        "density_params.csv",
        "heatmaps.npz",
        "params.json",
        "summary.csv",
        "comparisons.csv",
        "fig9_mae.png",
        "metrics.png",
        "report.html",
    ):
        assert (result.out / name).stat().st_size > 0, name
    assert len(list((result.out / "overlays").glob("*.png"))) == 2


def test_scores_cover_every_image_map_and_metric(result):
    scores = pd.read_csv(result.out / "scores.csv", dtype={"image": str})
    assert {"image", "map", "metric", "value", "mc_se"} <= set(scores.columns)
    maps = {"center_bias", "dataset_prior", "blank", "uniform", "human_loso", "human_gold"}
    assert set(scores["map"]) == maps
    assert len(scores) == len(IMAGES) * len(maps) * len(METRICS)
    assert scores.groupby(["image", "map", "metric"]).size().eq(1).all()
    # only the constant controls have undefined scores (MIT: a constant map has no z-score, ...)
    assert np.isfinite(scores.loc[~scores["map"].isin(["blank", "uniform"]), "value"]).all()
    blank = scores[scores["map"] == "blank"].set_index(["image", "metric"])["value"]
    assert blank.xs("nss", level="metric").isna().all() and np.isfinite(blank.xs("mae", level="metric")).all()
    # The human ceiling beats the centre bias on NSS for real observers.
    nss = scores[scores.metric == "nss"].pivot(index="image", columns="map", values="value")
    assert (nss["human_loso"] > nss["center_bias"]).all()


def test_heatmaps_equal_the_heatmap_function(result, osie_fixations_path):
    stored = np.load(result.out / "heatmaps.npz")
    assert sorted(stored.files) == list(IMAGES)
    fixations = read_osie(osie_fixations_path, images=["1002"])
    expected = heatmap(fixations, shape=(600, 800), params=HeatmapParams())
    assert stored["1002"].shape == (600, 800) and stored["1002"].dtype == np.float32  # unless --float64
    np.testing.assert_array_equal(stored["1002"], expected.astype(np.float32))


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
    assert params["densities"]["maps"]["human_gold"]["n_images"] == POOL
    assert params["statistics"]["kendalls_w"]["participant"]["n_metrics"] == len(METRICS)
    ceilings = pd.read_csv(result.out / "ceilings.csv", dtype={"image": str})
    assert set(ceilings["metric"]) == {"cc", "cc_spearman_brown", "nss", "mae"} and len(ceilings) == 4 * len(IMAGES)
    report = (result.out / "report.html").read_text()
    for metric in METRICS:
        assert metric in report
    assert "human_loso" in report and "data:image/png;base64," in report
    # an analyst reads it alone: CIs and directions in the headline table, which map is better, what
    # to do without CNN maps, the dataset's facts, the controls and what MAE rewards
    assert "MAE (eq. 15) ↓" in report and "NSS ↑" in report and "<th>better</th>" in report
    assert 'id="no-cnn-maps"' in report and "lookwhere precompute" in report
    assert "Viewing time per image: median 3000 ms" in report and "What MAE rewards" in report
    assert "Kendall's W" in report and "var(participant)" in report  # 15 participants: the mixed model
    summary = pd.read_csv(result.out / "summary.csv")
    headline = summary[(summary["target"] == "participant") & (summary["metric"] == "nss")].set_index("map")
    assert headline.loc["human_gold", "n_participants"] == 15 and headline.loc["human_gold", "ci_low"] > 0
    assert np.isfinite(summary.loc[(summary["map"] == "blank") & (summary["metric"] == "mae"), "mean"]).all()
    # the gold standard is above every baseline on every metric (the criterion, here on 3 images)
    means = summary[summary["target"] == "participant"].pivot(index="map", columns="metric", values="mean")
    sign = pd.Series({m: 1.0 if HIGHER_IS_BETTER[m] else -1.0 for m in METRICS})
    assert ((means.loc["human_gold"] - means.loc[["center_bias", "dataset_prior"]]) * sign > 0).all().all()
    comparisons = pd.read_csv(result.out / "comparisons.csv")
    assert {"metric", "map", "versus", "better", "p_holm", "target"} <= set(comparisons.columns)
    assert set(comparisons["metric"]) == set(METRICS)


def test_cli_errors_are_clear(osie_fixations_path, osie_stimuli, tmp_path, capsys):
    code = cli_main(
        [
            "analyze",
            "--dataset",
            "osie",
            "--fixations",
            str(tmp_path / "missing.mat"),
            "--stimuli",
            str(osie_stimuli),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "missing.mat" in capsys.readouterr().err
    code = cli_main(
        [
            "analyze",
            "--dataset",
            "osie",
            "--fixations",
            str(osie_fixations_path),
            "--stimuli",
            str(osie_stimuli),
            "--out",
            str(tmp_path / "o"),
            "--images",
            "1001,9999",
        ]
    )
    assert code == 2
    assert "9999" in capsys.readouterr().err


def test_command_line_options_on_analyze_and_serve():
    from analysis.cli import config_from_args
    from lookwhere.cli import build_parser
    from server.config import ServeConfig

    parser = build_parser()
    common = ["--stimuli", "s"]
    analyze = ["analyze", "--dataset", "osie", "--fixations", "f.mat", "--out", "o", *common]
    assert config_from_args(parser.parse_args(analyze)).heatmap.even_kernel_centre == "matlab"
    args = parser.parse_args([*analyze, "--kernel-centre", "scipy"])
    assert config_from_args(args).heatmap.even_kernel_centre == "scipy"
    config = config_from_args(
        parser.parse_args(
            [
                *analyze,
                "--overlays",
                "1002,1001",
                "--kl-ig-maps",
                "raw",
                "--density-fit",
                "default",
                "--float64",
                "--no-mixed-model",
            ]
        )
    )
    assert not config.mixed_model
    assert config.overlay_images == ("1002", "1001") and config.n_overlays == 2
    assert (config.kl_ig_maps, config.density_fit, config.heatmaps_float64) == ("raw", "default", True)
    config = config_from_args(parser.parse_args([*analyze, "--overlays", "3"]))
    assert config.n_overlays == 3 and config.overlay_images is None and config.kl_ig_maps == "density"
    serve = parser.parse_args(["serve", *common, "--kernel-centre", "scipy"])
    assert scoring_config.from_args(serve).heatmap.even_kernel_centre == "scipy"
    assert ServeConfig(stimuli="s").heatmap.even_kernel_centre == "matlab"


def _tag_trials_with_images(source, target, images):
    """Copy a real ASC file, adding a Data Viewer `!V TRIAL_VAR image` message to each trial."""
    lines, n = [], 0
    for line in source.read_text().splitlines(keepends=True):
        lines.append(line)
        if "TRIALID" in line and line.startswith("MSG"):
            time = line.split()[1]
            lines.append(f"MSG\t{time} !V TRIAL_VAR image {images[n % len(images)]}\n")
            n += 1
    target.write_text("".join(lines))
    return n


def test_asc_recordings_are_mapped_to_images(eyelink_dir, osie_stimuli, tmp_path):
    """Two real remote-mode recordings (1024×768 screen), tagged with OSIE image ids: 800×600 does
    not fit ×2, so the 1.28 fitting scale must be used to map gaze back to image pixels."""
    from analysis.fixations import add_image_coordinates
    from analysis.readers import read_eyelink_asc
    from stimuli.geometry import DisplayGeometry

    recordings = tmp_path / "asc"
    recordings.mkdir()
    for name in ("monoRemote500", "binoRemote500"):
        assert (
            _tag_trials_with_images(eyelink_dir / "cili" / f"{name}.asc", recordings / f"{name}.asc", ["1001", "1002"])
            == 4
        )
    out = tmp_path / "out"
    code = cli_main(
        [
            "analyze",
            "--dataset",
            "asc",
            "--fixations",
            str(recordings),
            "--stimuli",
            str(osie_stimuli),
            "--out",
            str(out),
            "--bootstrap",
            "200",
            "--no-progress",
            "--float64",
        ]
    )
    assert code == 0
    params = json.loads((out / "params.json").read_text())
    assert params["n_participants"] == 2 and params["n_images"] == 2

    geometry = DisplayGeometry.fit(800, 600, screen_width_px=1024, screen_height_px=768)
    assert geometry.scale_x == pytest.approx(1.28)
    tables = []
    for name in ("monoRemote500", "binoRemote500"):
        fixations = read_eyelink_asc(recordings / f"{name}.asc").fixations
        # --eye best: binoRemote500's left eye validated better (0.25° against 0.27° mean error).
        fixations = fixations[fixations["eye"] == "L"]
        tables.append(add_image_coordinates(fixations, {"1001": geometry, "1002": geometry}))
    pooled = pd.concat(tables)
    expected = heatmap(pooled[pooled["image"] == "1002"], shape=(600, 800), params=HeatmapParams())
    np.testing.assert_allclose(np.load(out / "heatmaps.npz")["1002"], expected, atol=1e-12)
    assert expected.max() > 0


def test_map_store_maps_are_scored_and_labelled_untrained(osie_fixations_path, osie_stimuli, tmp_path):
    """A real (small-input, untrained) map store: every CNN map is scored beside the baselines and
    carries the untrained label in the tables and the report."""
    import shutil

    from analysis.cnn.engine import MAP_NAMES
    from analysis.cnn.model import load_vgg16
    from analysis.cnn.precompute import precompute_store
    from stimuli.sets import StimulusSet

    stimuli = tmp_path / "stimuli"
    stimuli.mkdir()
    for image_id in ("1001", "1002"):
        shutil.copy(osie_stimuli / f"{image_id}.jpg", stimuli)
    store = precompute_store(
        load_vgg16("untrained", seed=0),
        StimulusSet(stimuli),
        tmp_path / "maps",
        input_size=64,
        batch_size=2,
        progress=False,
    )
    config = AnalysisConfig(
        dataset="osie",
        fixations=osie_fixations_path,
        stimuli=stimuli,
        out=tmp_path / "out",
        maps=store.path,
        bootstrap_resamples=200,
        n_overlays=1,
    )
    result = run_analysis(config, progress=False)
    scores = result.scores
    assert set(MAP_NAMES) <= set(scores["map"])
    assert scores.loc[scores["kind"] == "cnn", "untrained"].all()
    assert not scores.loc[scores["kind"] != "cnn", "untrained"].any()
    # The pipeline scores exactly the store's maps at image size (oracle: numpy's Pearson r).
    stored = np.load(result.out / "heatmaps.npz")["1002"]
    gradcam = store.load("1002", shape=(600, 800))["gradcam"]
    value = scores[(scores.image == "1002") & (scores["map"] == "gradcam") & (scores.metric == "cc")]["value"].item()
    assert value == pytest.approx(np.corrcoef(gradcam.ravel(), stored.ravel())[0, 1], abs=1e-6)
    report = (result.out / "report.html").read_text()
    assert "gradcam (untrained)" in report and "<b>untrained</b>" in report
    params = json.loads((result.out / "params.json").read_text())
    assert params["map_store"]["metadata"]


def test_an_images_scores_do_not_depend_on_the_images_analysed(result, osie_fixations_path, stimuli, tmp_path):
    """Oracle: the same image scored in a run of other images. 8 of the pool's 20 images, each scored
    in an 8-image run and in a smaller one (the module's 3-image run, or a run of the other 5): their
    scores (the dataset prior and shuffled AUC, which draw on other images, and KL and information
    gain, whose densities are fitted on other images, included) are equal, since every run draws on
    the input's images with fixations and a stimulus file, the pool of 20. (Before, a 3-image run's
    prior came from the 2 other images of the run: image 1201's prior NSS was 0.205 in an 8-image
    run, -0.023 in a 4-image one.)"""
    images = tuple(sorted(path.stem for path in stimuli.glob("*.jpg"))[:8])
    assert set(IMAGES) < set(images)

    def scores_of(subset, name):  # the scores only: no time course, mixed model or overlays
        config = AnalysisConfig(
            dataset="osie",
            fixations=osie_fixations_path,
            stimuli=stimuli,
            out=tmp_path / name,
            images=subset,
            bootstrap_resamples=100,
            n_overlays=0,
            split_half_splits=2,
            timecourse=TimecourseParams(enabled=False),
            mixed_model=False,
        )
        return run_analysis(config, progress=False).scores

    eight = scores_of(images, "eight")
    smaller = pd.concat([result.scores, scores_of(tuple(sorted(set(images) - set(IMAGES))), "five")])
    merged = smaller.merge(eight, on=["image", "map", "metric"], suffixes=("_smaller", "_8"))
    assert len(merged) == len(eight) and set(merged["image"]) == set(images)
    assert {"dataset_prior", "human_gold"} <= set(merged["map"])
    np.testing.assert_array_equal(merged["value_8"], merged["value_smaller"])
    params = json.loads((tmp_path / "eight" / "params.json").read_text())
    assert params["baseline_pool"]["n_images"] == POOL
    assert params["densities"]["maps"]["dataset_prior"]["n_images"] == POOL
