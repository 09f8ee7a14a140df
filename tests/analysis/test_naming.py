"""Naming-aligned fixations, the time course, reviewed utterances, and a session analysed end to end.

Oracles: hand-computed windows, objects and first fixations; :func:`analysis.offline.score_image`
on the subset alone (the one-shot scoring) for every subset score; the known onsets of espeak-ng
words in the session's WAVs.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.fixations import fixation_table
from analysis.heatmap import HeatmapParams
from analysis.naming import NamingAnalysis, NamingParams, read_boxes
from analysis.offline import AnalysisConfig, run_analysis, score_image, without_selection
from analysis.readers import read_osie
from analysis.timecourse import TimecourseAnalysis, TimecourseParams, first_fixations, fixations_in_window
from analysis.voice.corrections import CORRECTIONS_FILE, apply_corrections, read_corrections, save_correction
from lookwhere.records import SESSION_FIXATIONS_FILE
from tests.analysis._speech import ESPEAK, write_session

SHAPE = (600, 800)
SCORING = dict(metrics=("mae", "nss", "cc", "auc_shuffled"), seed=0, variant="mit", mae_normalize="minmax")


def _fixations(rows):
    """A fixation table from (participant, trial, image, start_ms, end_ms, x, y) rows."""
    return fixation_table(
        {
            "participant": [r[0] for r in rows],
            "session": ["s"] * len(rows),
            "trial": [r[1] for r in rows],
            "image": [r[2] for r in rows],
            "eye": ["R"] * len(rows),
            "start_ms": [r[3] for r in rows],
            "end_ms": [r[4] for r in rows],
            "duration_ms": [r[4] - r[3] for r in rows],
            "x_display_px": [np.nan] * len(rows),
            "y_display_px": [np.nan] * len(rows),
            "x_image_px": [r[5] for r in rows],
            "y_image_px": [r[6] for r in rows],
            "stimulus_duration_ms": [5000.0] * len(rows),
            "pupil": [np.nan] * len(rows),
        }
    )


def test_a_window_cuts_fixations_to_their_overlap():
    table = _fixations([("P", 0, "a", 100, 400, 1, 1), ("P", 0, "a", 450, 900, 2, 2), ("P", 0, "a", 950, 1300, 3, 3)])
    window = fixations_in_window(table, 300, 1000)
    # Oracle by hand: [300, 400) 100 ms, [450, 900) 450 ms, [950, 1000) 50 ms.
    assert window["duration_ms"].tolist() == [100, 450, 50]
    assert window["start_ms"].tolist() == [300, 450, 950] and window["end_ms"].tolist() == [400, 900, 1000]
    assert fixations_in_window(table, 1300, 2000).empty


def test_first_fixation_is_the_first_after_onset():
    table = _fixations(
        [("P", 0, "a", -120, 180, 400, 300), ("P", 0, "a", 210, 500, 600, 150), ("Q", 1, "a", 250, 600, 200, 450)]
    )
    first = first_fixations(table, {"a": SHAPE})
    assert first["latency_ms"].tolist() == [210, 250]
    assert first["x_fraction"].tolist() == [0.75, 0.25] and first["y_fraction"].tolist() == [0.25, 0.75]
    # Oracle: hypot(600 - 400, 150 - 300) = 250.
    assert first["distance_from_centre_px"].iloc[0] == pytest.approx(250.0)


@pytest.fixture(scope="module")
def osie(osie_fixations_path):
    """Three OSIE images with every observer's fixations given consecutive times from 0 ms."""
    table = read_osie(osie_fixations_path, images=["1001", "1002", "1003"])
    end = table.groupby(["participant", "image"])["duration_ms"].cumsum()
    return table.assign(
        start_ms=end - table["duration_ms"],
        end_ms=end,
        stimulus_duration_ms=3000.0,
        trial=table["image"].astype(int) - 1001,
    )


def _engine_for(image_id, selected):
    """The image's engine after its whole-image scoring, as run_analysis leaves it."""
    params = without_selection(HeatmapParams())
    return score_image(
        image_id, selected, {i: SHAPE for i in selected["image"].unique()}, params=params, scoring=SCORING
    ).engine


def _one_shot(image_id, subset, selected):
    """Oracle: score_image run on the subset alone, beside the other images' fixations."""
    table = pd.concat([selected[selected["image"] != image_id], subset], ignore_index=True)
    result = score_image(
        image_id,
        table,
        {i: SHAPE for i in table["image"].unique()},
        params=without_selection(HeatmapParams()),
        scoring=SCORING,
    )
    return result.scores | ({"human_loso": result.human_loso} if result.human_loso else {})


def test_time_bins_and_fixation_indices_equal_one_shot_scoring(osie, tmp_path):
    shapes = {image: SHAPE for image in ("1001", "1002", "1003")}
    analysis = TimecourseAnalysis(TimecourseParams(bin_ms=1000, max_fixation_index=2), osie, osie, shapes)
    analysis.score_image("1002", _engine_for("1002", osie))
    files = analysis.write(tmp_path, stat_options=dict(n_resamples=100))
    scores = analysis.tables["timecourse_scores"]
    assert analysis.n_bins == 3 and set(scores["axis"]) == {"time", "fixation_index"}
    rows = osie[osie["image"] == "1002"]
    for axis, b, subset in [
        ("time", 2, fixations_in_window(rows, 1000, 2000)),
        ("fixation_index", 1, rows.groupby("participant").head(1)),
    ]:
        expected = _one_shot("1002", subset, osie)
        got = scores[(scores["axis"] == axis) & (scores["bin"] == b)]
        for row in got.itertuples():
            np.testing.assert_allclose(
                row.value,
                expected[row.map][row.metric],
                rtol=1e-9,
                atol=1e-12,
                err_msg=f"{axis} {b} {row.map} {row.metric}",
            )
    assert "human_loso" in set(scores["map"])
    assert set(files) == {"timecourse_scores", "timecourse_summary", "first_fixations"}


def test_naming_window_scores_and_objects(osie, tmp_path):
    # One utterance per observer of image 1001, 1,500 ms after onset: the fixations of
    # [500, 1500) ms are its window. Boxes: a large one and a small one inside it.
    rows = osie[osie["image"] == "1001"]
    utterances = pd.DataFrame(
        {
            "participant": rows["participant"].unique(),
            "session": "osie",
            "trial": 0,
            "image": "1001",
            "utterance": 1,
            "onset_ms": 1500.0,
            "name_class": "dog",
        }
    )
    boxes = pd.DataFrame(
        {
            "image": ["1001", "1001"],
            "class": ["sofa", "dog"],
            "xmin_px": [0.0, 300.0],
            "ymin_px": [0.0, 200.0],
            "xmax_px": [800.0, 500.0],
            "ymax_px": [600.0, 400.0],
        }
    )
    analysis = NamingAnalysis(NamingParams(window_ms=1000), utterances, osie, boxes)
    analysis.score_image("1001", _engine_for("1001", osie))
    analysis.write(tmp_path, stat_options=dict(n_resamples=100))
    first = rows[rows["participant"] == utterances["participant"].iloc[0]]
    window = fixations_in_window(first, 500, 1500)
    expected = _one_shot("1001", window, osie[osie["image"] != "1001"])
    scores = analysis.tables["naming_scores"]
    got = scores[scores["participant"] == utterances["participant"].iloc[0]]
    for row in got.itertuples():
        np.testing.assert_allclose(row.value, expected[row.map][row.metric], rtol=1e-9, atol=1e-12)
    # Objects by hand: inside the dog box → dog (the smaller box), elsewhere → sofa.
    in_dog = window["x_image_px"].between(300, 500, inclusive="left") & window["y_image_px"].between(
        200, 400, inclusive="left"
    )
    naming = analysis.tables["naming"].set_index("participant")
    p = utterances["participant"].iloc[0]
    dwell = {"dog": window.loc[in_dog, "duration_ms"].sum(), "sofa": window.loc[~in_dog, "duration_ms"].sum()}
    assert naming.loc[p, "fixated_class"] == max((v, k) for k, v in dwell.items() if v > 0)[1]
    assert naming.loc[p, "named_fixated"] == bool(in_dog.any())
    assert naming.loc[p, "dwell_ms"] == pytest.approx(window["duration_ms"].sum())
    assert set(np.load(tmp_path / "naming_heatmaps.npz").files) == {"1001"}


def test_voc_boxes_become_continuous_pixels(tmp_path):
    (tmp_path / "000010.xml").write_text(
        "<annotation><object><name>horse</name><bndbox><xmin>1</xmin><ymin>11</ymin><xmax>100</xmax>"
        "<ymax>50</ymax></bndbox></object></annotation>"
    )
    boxes = read_boxes(tmp_path)
    # VOC pixels 1..100 inclusive are the continuous span [0, 100).
    assert boxes.iloc[0].tolist() == ["000010", "horse", 0.0, 10.0, 100.0, 50.0]


def _automatic():
    return pd.DataFrame(
        {
            "file": ["a.wav", "a.wav", "b.wav"],
            "participant": "P01",
            "session": "s-1",
            "trial": [0, 0, 1],
            "image": ["1001", "1001", "1002"],
            "utterance": [1, 2, 1],
            "onset_ms": [800.0, 2000.0, 900.0],
            "offset_ms": [1200.0, 2400.0, 1300.0],
            "confidence": 0.9,
            "method": "silero",
            "aligned": True,
            "word": ["dog", "cat", "horse"],
            "name_class": ["dog", "cat", "horse"],
            "name_score": -3.0,
        }
    )


def test_corrections_replace_whole_trials_and_keep_history(tmp_path, caplog):
    (tmp_path / "trials.jsonl").write_text("")
    save_correction(tmp_path, trial=0, image="1001", utterances=[{"onset_ms": 790.0, "offset_ms": 1210.0}])
    save_correction(
        tmp_path,
        trial=0,
        image="1001",
        reviewer="AB",
        utterances=[{"onset_ms": 780.0, "offset_ms": 1210.0, "word": "puppy", "name_class": "dog"}],
    )
    save_correction(tmp_path, trial=1, image="1002", utterances=[])  # reviewed: no speech
    assert len((tmp_path / CORRECTIONS_FILE).read_text().splitlines()) == 3  # appended, never rewritten
    table, record = apply_corrections(_automatic(), {("P01", "s-1"): tmp_path})
    assert table[["trial", "onset_ms", "word", "source"]].values.tolist() == [[0, 780.0, "puppy", "corrected"]]
    assert record[0]["trials_corrected"] == [0, 1] and record[0]["reviewers"] == ["", "AB"]
    with open(tmp_path / CORRECTIONS_FILE, "a") as handle:
        handle.write('{"schema": 1, "trial": 2')  # an interrupted save
    assert sorted(read_corrections(tmp_path)) == [0, 1] and "incomplete" in caplog.text
    with pytest.raises(ValueError, match="offset_ms"):
        save_correction(tmp_path, trial=0, image="1001", utterances=[{"onset_ms": 900.0, "offset_ms": 800.0}])
    (tmp_path / CORRECTIONS_FILE).write_text(
        json.dumps({"schema": 1, "trial": 1, "image": "9999", "saved_unix_s": 0, "utterances": []}) + "\n"
    )
    with pytest.raises(ValueError, match="image 9999"):
        apply_corrections(_automatic(), {("P01", "s-1"): tmp_path})


@pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_a_session_with_spoken_names_is_analysed_end_to_end(osie, osie_stimuli, tmp_path):
    # A session folder as lookwhere run writes it: OSIE observer s01's fixations on three images,
    # and per trial a WAV whose first sample came 8 ms after the image onset, with names spoken.
    session = write_session(
        tmp_path / "sessions" / "P01",
        {0: (["dog", "person"], [900.0, 2100.0]), 1: (["chair"], [1200.0]), 2: ([], [])},
    )
    fixations = osie[osie["participant"] == "s01"].assign(participant="P01", session="s-1")
    fixations.to_csv(session / SESSION_FIXATIONS_FILE, index=False, na_rep="nan")
    save_correction(
        session,
        trial=1,
        image="1002",
        reviewer="AB",
        utterances=[{"onset_ms": 1190.0, "offset_ms": 1700.0, "word": "chair", "name_class": "chair"}],
    )

    config = AnalysisConfig(
        dataset="session",
        fixations=tmp_path / "sessions",
        stimuli=osie_stimuli,
        out=tmp_path / "out",
        bootstrap_resamples=100,
        n_overlays=0,
        metrics=("mae", "nss", "cc"),
        timecourse=TimecourseParams(max_fixation_index=3),
    )
    result = run_analysis(config, progress=False)
    utterances = pd.read_csv(result.out / "utterances.csv")
    assert utterances["source"].tolist() == ["automatic", "automatic", "corrected"]
    # Oracle: the words' onsets in the WAV plus the WAV's 8 ms offset.
    np.testing.assert_allclose(utterances["onset_ms"][:2], [908.0, 2108.0], atol=30)
    assert utterances["onset_ms"].iloc[2] == 1190.0
    naming = pd.read_csv(result.out / "naming.csv")
    assert len(naming) == 3 and (naming["n_fixations"] > 0).all()
    assert set(pd.read_csv(result.out / "naming_scores.csv")["metric"]) == {"mae", "nss", "cc"}
    summary = pd.read_csv(result.out / "timecourse_summary.csv")
    assert set(summary["axis"]) == {"time", "fixation_index"} and summary["bin"].max() == 3
    params = json.loads((result.out / "params.json").read_text())
    assert params["naming"]["corrections"][0]["trials_corrected"] == [1]
    assert params["naming"]["utterances_by_source"] == {"automatic": 2, "corrected": 1}
    report = (result.out / "report.html").read_text()
    for figure in (
        "naming_latency",
        "naming_scores",
        "timecourse_time",
        "timecourse_index",
        "first_fixation_latency",
        "first_fixation_landing",
    ):
        assert (result.out / f"{figure}.png").stat().st_size > 0
        assert f'alt="{figure}.png"' in report
