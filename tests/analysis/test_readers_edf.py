"""The EDF reader against ``eyelinkio.read_edf``, the public reader of the same EDF API.

No ASC conversion of these EDF files exists (that needs SR Research's edf2asc), so the oracle is
eyelinkio's own reader: the same events, positions and messages; its times are seconds from the
first sample (interpolated on the sample clock), ours the tracker clock, so both are compared as
milliseconds from the first sample. Damaged files are made by cutting or forging a real one.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from analysis.readers import EyeLinkFormatError, read_recording
from analysis.readers.edf import read_eyelink_edf
from lookwhere.cli import main as cli_main
from tests.analysis._asc_edits import replace_lines, variant

eyelinkio = pytest.importorskip("eyelinkio")

# eyelinkio's wheel carries its own test recordings; the binocular one is the only binocular EDF here.
PACKAGED = Path(eyelinkio.__file__).parent / "tests" / "data"


def _read(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_eyelink_edf(path, **kwargs)


def _oracle(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return eyelinkio.read_edf(path)


@pytest.fixture(scope="module")
def edf_path(eyelink_dir) -> Path:
    return eyelink_dir / "eyelinkio" / "test_2_raw.edf"


@pytest.fixture(scope="module")
def pair(edf_path):
    return _read(edf_path), _oracle(edf_path)


def _events_ms(table, first_sample_ms: float) -> np.ndarray:
    return np.column_stack([table["start_tracker_ms"] - first_sample_ms, table["end_tracker_ms"] - first_sample_ms])


def test_counts_and_metadata_equal_eyelinkio(pair):
    ours, edf = pair
    # The data README: 121 fixations, 120 saccades, 19 blinks, 48 messages.
    assert (len(ours.fixations), len(ours.saccades), len(ours.blinks), len(ours.messages)) == (121, 120, 19, 48)
    assert [len(edf["discrete"][name]) for name in ("fixations", "saccades", "blinks", "messages")] == [
        121,
        120,
        19,
        48,
    ]
    assert ours.format == "edf" and ours.eyes == "L" and edf["info"]["eye"] == "LEFT_EYE"
    assert ours.sample_rate_hz == edf["info"]["sfreq"] == 1000.0
    assert ours.display_px == tuple(edf["info"]["screen_coords"]) == (1920, 1080)
    assert ours.display_source == "GAZE_COORDS" and ours.units == "GAZE"
    assert ours.pupil_measure == "AREA" and edf["info"]["ps_units"] == "PUPIL_AREA"
    assert ours.header["SERIAL NUMBER"] == edf["info"]["serial"] == "CL1-ACA32"


def test_fixations_saccades_and_blinks_equal_eyelinkio(pair):
    ours, edf = pair
    first = ours.blocks["start_tracker_ms"].iloc[0]
    fixations = edf["discrete"]["fixations"]
    np.testing.assert_array_equal(ours.fixation_events["x_px"], fixations["axp"].astype(np.float32))
    np.testing.assert_array_equal(ours.fixation_events["y_px"], fixations["ayp"].astype(np.float32))
    np.testing.assert_allclose(
        _events_ms(ours.fixation_events, first),
        np.column_stack([fixations["stime"], fixations["etime"]]) * 1000,
        atol=1e-6,
    )
    # edf2asc's duration: end - start + one sample (1 ms at 1000 Hz).
    np.testing.assert_array_equal(
        ours.fixations["duration_ms"],
        ours.fixation_events["end_tracker_ms"] - ours.fixation_events["start_tracker_ms"] + 1,
    )
    saccades = edf["discrete"]["saccades"]
    np.testing.assert_array_equal(ours.saccades["x_end_px"], saccades["exp"].astype(np.float32))
    np.testing.assert_array_equal(ours.saccades["peak_velocity_deg_s"], saccades["pv"].astype(np.float32))
    blinks = edf["discrete"]["blinks"]
    np.testing.assert_allclose(
        _events_ms(ours.blinks, first), np.column_stack([blinks["stime"], blinks["etime"]]) * 1000, atol=1e-6
    )
    assert ours.fixation_events["pupil"].notna().all()  # eyelinkio drops the fixation pupil


def test_the_fixation_the_recording_stop_cuts_is_truncated(pair):
    # Oracle: eyelinkio's events. One recording block, one eye: the stop cuts the last fixation
    # when no saccade or blink starts after it.
    ours, edf = pair
    events = edf["discrete"]
    ends = np.asarray(events["fixations"]["etime"])
    last_other = max(np.max(events["saccades"]["stime"]), np.max(events["blinks"]["stime"]))
    expected = (ends == ends.max()) & (ends > last_other)
    assert expected.sum() == 1
    np.testing.assert_array_equal(ours.fixations["truncated"], expected)


def test_messages_equal_eyelinkio(pair):
    ours, edf = pair
    texts = [m.decode("ascii").split("\n", 1)[0].strip() for m in edf["discrete"]["messages"]["msg"]]
    assert ours.messages["text"].tolist() == texts
    assert ours.trials["trial_id"].tolist() == [str(i) for i in range(1, 41)]  # "TRIALID 1" … "TRIALID 40"


def test_samples_on_request_equal_eyelinkio(pair, edf_path):
    ours = _read(edf_path, samples=True)
    samples = pair[1]["samples"]  # rows xpos, ypos, ps; missing values NaN
    np.testing.assert_array_equal(ours.samples["x_px"], samples[0].astype(np.float32))
    np.testing.assert_array_equal(ours.samples["pupil"], samples[2].astype(np.float32))
    assert (ours.samples["eye"] == "L").all()
    assert ours.fixations.equals(pair[0].fixations)


@pytest.mark.skipif(
    not (PACKAGED / "test_raw_binocular.edf").is_file(), reason="eyelinkio's packaged test data is absent"
)
def test_a_binocular_edf_equals_eyelinkio_per_eye():
    path = PACKAGED / "test_raw_binocular.edf"
    ours, edf = _read(path), _oracle(path)
    fixations = edf["discrete"]["fixations"]
    assert ours.eyes == "LR" and edf["info"]["eye"] == "BINOCULAR"
    assert ours.fixations["eye"].value_counts().to_dict() == {
        eye: int((fixations["eye"] == index).sum()) for index, eye in enumerate("LR")
    }
    np.testing.assert_array_equal(ours.fixation_events["x_px"], fixations["axp"].astype(np.float32))


def test_suffix_in_any_letter_case_is_read_as_edf(edf_path, tmp_path, pair):
    copy = tmp_path / "SUBJ01.EDF"
    shutil.copy(edf_path, copy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recording = read_recording(copy)
    assert recording.format == "edf"
    assert recording.fixations.drop(columns=["participant", "session"]).equals(
        pair[0].fixations.drop(columns=["participant", "session"])
    )
    assert set(recording.fixations["participant"]) == {"SUBJ01"}


def test_damaged_edf_files_are_errors_naming_the_file(edf_path, tmp_path):
    cut = tmp_path / "cut.edf"
    cut.write_bytes(edf_path.read_bytes()[:100_000])
    with pytest.raises(
        EyeLinkFormatError, match=r"cut\.edf: SR Research's EDF API cannot open it .*copy it from the tracker again"
    ):
        read_eyelink_edf(cut)
    # A forged header makes the EDF API crash (segmentation fault): only its child process dies.
    forged = tmp_path / "forged.edf"
    forged.write_bytes(b"SR_RESEARCH_1000FILE\n" + b"x" * 100)
    with pytest.raises(EyeLinkFormatError, match=r"forged\.edf: SR Research's EDF API crashed reading this file"):
        read_eyelink_edf(forged)
    text = tmp_path / "text.edf"
    text.write_text("MSG 1 hello\n")
    with pytest.raises(EyeLinkFormatError, match=r"text\.edf is not an EDF file"):
        read_eyelink_edf(text)


def test_a_folder_of_edf_files_from_the_command_line(edf_path, eyelink_dir, osie_stimuli, tmp_path, capsys):
    """Two participants' EDFs (copies of the real one) and a trials table naming each trial's image:
    trial ids are the TRIALID numbers; the onset is each trial's start (TRIALID), the offset 3 s later.
    Two damaged files in the folder are reported and left out, the others analysed."""
    folder = tmp_path / "edf"
    folder.mkdir()
    for name in ("p01.edf", "P02.EDF"):
        shutil.copy(edf_path, folder / name)
    (folder / "forged.edf").write_bytes(b"SR_RESEARCH_1000FILE\n" + b"x" * 100)
    variant(
        eyelink_dir / "cili/mono500.asc",
        folder / "broken.asc",
        replace_lines(r"^EFIX L   7196724", "EFIX L   7196724\t3x\t400\n"),
    )
    recording = _read(edf_path)
    rows = ["recording,trial,image,onset_ms,offset_ms"]
    for participant in ("p01", "P02"):
        for trial in recording.trials.itertuples():
            start = trial.start_tracker_ms
            rows.append(f"{participant},{trial.trial_id},{1001 + trial.trial % 3},{start},{start + 3000}")
    table = tmp_path / "trials.csv"
    table.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    code = cli_main(
        [
            "analyze",
            "--dataset",
            "eyelink",
            "--fixations",
            str(folder),
            "--stimuli",
            str(osie_stimuli),
            "--out",
            str(out),
            "--trials-table",
            str(table),
            "--bootstrap",
            "200",
            "--no-progress",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "left out: " in err and "forged.edf: SR Research's EDF API crashed" in err
    assert re.search(r"broken\.asc, line 296: expected EFIX .*'EFIX L   7196724\\t3x\\t400'", err)
    params = json.loads((out / "params.json").read_text())
    assert params["n_participants"] == 2 and params["n_images"] == 3
    # Every fixation inside a trial is mapped: all but those before "TRIALID 1".
    outside = int((recording.fixations["trial"] < 0).sum())
    assert params["n_fixations_read"] == 2 * (121 - outside)
    assert params["fixations"]["read"] == 242 and params["fixations"]["dropped"]["outside any trial"] == 2 * outside
    assert sorted(Path(file).name for file in params["left_out"]) == ["broken.asc", "forged.edf"]
    assert "2 files left out" in (out / "report.html").read_text()
    assert {r["format"] for r in params["recordings"]} == {"edf"}
