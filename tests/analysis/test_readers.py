"""Readers against the real files in ../shared/data.

Oracles: line counts and fields taken from the files with plain Python (``startswith("EFIX")``),
values hand-copied from the files (quoted next to each assertion), MATLAB's own indexing rule for
OSIE, and hand-computed arithmetic. Edge cases are made by editing a real file into ``tmp_path``.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.readers import (
    EyeLinkDataWarning,
    EyeLinkFormatError,
    TrialRules,
    read_eyelink,
    read_eyelink_asc,
    read_osie,
)
from lookwhere.records import FIXATION_COLUMNS, FIXATION_DTYPES

ASC_FILES = [
    "cili/bino1000.asc",
    "cili/bino250.asc",
    "cili/bino500.asc",
    "cili/binoRemote250.asc",
    "cili/binoRemote500.asc",
    "cili/mono1000.asc",
    "cili/mono2000.asc",
    "cili/mono250.asc",
    "cili/mono500.asc",
    "cili/monoRemote250.asc",
    "cili/monoRemote500.asc",
    "eyelinkparser/data1.asc",
    "pymovements/eyelink_binocular_example.asc",
    "pymovements/eyelink_monocular_2khz_example.asc",
    "pymovements/eyelink_monocular_example.asc",
    "pymovements/eyelink_monocular_no_dummy_example.asc",
]


def _quiet_read(path, **kwargs):
    """Read while recording (not printing) the data warnings several real files deserve."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recording = read_eyelink_asc(path, **kwargs)
    return recording, [w for w in caught if issubclass(w.category, EyeLinkDataWarning)]


@pytest.fixture(scope="module")
def recordings(eyelink_dir: Path) -> dict:
    """Every ASC file, parsed once for the module."""
    return {name: _quiet_read(eyelink_dir / name)[0] for name in ASC_FILES}


def _efix_lines(path: Path) -> list[list[str]]:
    """Oracle: the fields of every EFIX line, by plain string handling."""
    with open(path, encoding="utf-8") as handle:
        return [line.split() for line in handle if line.startswith("EFIX")]


def _check_table_schema(table) -> None:
    assert tuple(table.columns) == FIXATION_COLUMNS
    assert {name: str(dtype) for name, dtype in table.dtypes.items()} == FIXATION_DTYPES


# --- EyeLink: every real file -----------------------------------------------------------------


@pytest.mark.parametrize("name", ASC_FILES)
def test_every_file_gives_one_row_per_efix_line(recordings, eyelink_dir, name):
    recording = recordings[name]
    efix = _efix_lines(eyelink_dir / name)
    table = recording.fixations
    _check_table_schema(table)
    assert len(table) == len(efix) == len(recording.fixation_events)
    # Row i is EFIX line i: eye, duration, position and pupil as written.
    assert table["eye"].tolist() == [fields[1] for fields in efix]
    np.testing.assert_array_equal(table["duration_ms"], [float(fields[4]) for fields in efix])
    np.testing.assert_array_equal(table["x_display_px"], [float(fields[5]) for fields in efix])
    np.testing.assert_array_equal(table["y_display_px"], [float(fields[6]) for fields in efix])
    np.testing.assert_array_equal(table["pupil"], [float(fields[7]) for fields in efix])
    np.testing.assert_array_equal(recording.fixation_events["start_tracker_ms"], [float(f[2]) for f in efix])
    assert (table["session"] == Path(name).name).all()
    assert (table["participant"] == Path(name).stem).all()
    assert table["x_image_px"].isna().all()


def _efix_ended_by_the_stop(path: Path) -> list[bool]:
    """Oracle: per EFIX line, whether no other event line of its eye (fixation, saccade, blink
    start or end) follows it before its recording block's END line, by plain string handling."""
    flags: list[bool] = []
    open_fixations: dict[str, int] = {}  # eye -> index in flags of the last EFIX with nothing after it yet
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if not fields:
                continue
            if fields[0] in ("SFIX", "SSACC", "ESACC", "SBLINK", "EBLINK", "EFIX"):
                open_fixations.pop(fields[1], None)
                if fields[0] == "EFIX":
                    open_fixations[fields[1]] = len(flags)
                    flags.append(False)
            elif fields[0] == "END":
                for index in open_fixations.values():
                    flags[index] = True
                open_fixations = {}
            elif fields[0] == "START":
                open_fixations = {}
    return flags


# An edited excerpt: its END line (1408901) comes before the last 130 ms of events, so the order of
# its lines says nothing about the stop. Both last fixations end after END, and are flagged as the
# task flags a fixation ending at or after its stop; the left one is followed by "SSACC L 1409026".
_END_BEFORE_ITS_EVENTS = "pymovements/eyelink_binocular_example.asc"


@pytest.mark.parametrize("name", [name for name in ASC_FILES if name != _END_BEFORE_ITS_EVENTS])
def test_the_fixation_the_recording_stop_cuts_is_truncated(recordings, eyelink_dir, name):
    # As the task flags the fixation its recording stop cuts (experiment.presentation): EyeLink
    # closes it at the stop, so no saccade or blink of its eye follows it in its block.
    table = recordings[name].fixations
    np.testing.assert_array_equal(table["truncated"], _efix_ended_by_the_stop(eyelink_dir / name))
    if name == "cili/mono1000.asc":  # the last EFIX before each of the 4 END lines, e.g.
        # "EFIX R 7710490 7710565 76 ..." then "END 7710567"
        assert table["truncated"].sum() == 4 and table["truncated"].iloc[-1]


def test_fixations_ending_after_end_are_truncated(recordings):
    table = recordings[_END_BEFORE_ITS_EVENTS].fixations
    assert table["truncated"].tolist() == [False, False, True, True]  # EFIX L/R ending 1409025/1409027


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        # Hand-copied from the files: (eye, start, end, duration, x, y, pupil).
        (
            "cili/mono1000.asc",
            ("R", 7709686, 7710087, 402, 505.0, 398.0, 1102),
            ("R", 7719218, 7719282, 65, 806.1, 392.3, 982),
        ),
        (
            "cili/bino500.asc",
            ("L", 6185403, 6185567, 166, 503.3, 370.6, 937),
            ("R", 6195701, 6195769, 70, 754.1, 392.6, 859),
        ),
        (
            "cili/binoRemote500.asc",
            ("L", 11961962, 11962226, 266, 133.0, 166.7, 293),
            ("R", 12064740, 12064872, 134, 826.4, 531.8, 187),
        ),
        (
            "eyelinkparser/data1.asc",
            ("R", 1030731, 1031368, 638, 236.1, 381.9, 1531),
            ("R", 1153176, 1155935, 2760, 491.4, 668.8, 831),
        ),
        (
            "pymovements/eyelink_monocular_2khz_example.asc",
            ("L", 2154563.0, 2154695.0, 132.5, 141.0, 132.2, 791),
            ("L", 2339246.0, 2339290.0, 44.5, 638.5, 531.8, 618),
        ),
    ],
)
def test_first_and_last_fixation_values(recordings, name, first, last):
    events = recordings[name].fixation_events
    columns = ["eye", "start_tracker_ms", "end_tracker_ms", "duration_ms", "x_px", "y_px", "pupil"]
    assert tuple(events.iloc[0][columns]) == first
    assert tuple(events.iloc[-1][columns]) == last


@pytest.mark.parametrize(
    ("name", "display_px", "rate_hz", "eyes", "remote", "res_ppd"),
    [
        # RES: mean of the END lines' values, by hand (e.g. mono1000 y: 35.14, 35.15, 35.15, 35.14).
        ("cili/mono1000.asc", (1024, 768), 1000.0, "R", False, (35.18, 35.145)),
        ("cili/mono2000.asc", (1024, 768), 2000.0, "R", False, None),
        ("cili/mono250.asc", (1024, 768), 250.0, "L", False, None),
        ("cili/bino500.asc", (1024, 768), 500.0, "LR", False, (35.1875, 35.145)),
        ("cili/binoRemote250.asc", (1024, 768), 250.0, "LR", True, None),
        ("cili/monoRemote500.asc", (1024, 768), 500.0, "L", True, (36.40, 36.105)),
        ("eyelinkparser/data1.asc", (1024, 768), 1000.0, "R", False, None),  # from GAZE_COORDS
        ("pymovements/eyelink_monocular_2khz_example.asc", (1280, 1024), 2000.0, "L", False, (37.17, 37.75)),
        ("pymovements/eyelink_monocular_no_dummy_example.asc", (1920, 1080), 500.0, "L", False, None),
    ],
)
def test_recording_metadata(recordings, name, display_px, rate_hz, eyes, remote, res_ppd):
    recording = recordings[name]
    assert recording.display_px == display_px
    assert recording.sample_rate_hz == rate_hz
    assert recording.eyes == eyes
    assert recording.remote is remote
    assert recording.tracking == "CR"
    if res_ppd is not None:
        assert recording.resolution_ppd == pytest.approx(res_ppd, abs=1e-9)


def test_no_end_line_means_unknown_resolution(recordings):
    assert recordings["pymovements/eyelink_monocular_no_dummy_example.asc"].resolution_ppd is None


@pytest.mark.parametrize("name", ["cili/bino1000.asc", "cili/bino250.asc", "cili/binoRemote500.asc"])
def test_binocular_files_give_both_eyes(recordings, eyelink_dir, name):
    efix = _efix_lines(eyelink_dir / name)
    counts = recordings[name].fixations["eye"].value_counts().to_dict()
    assert counts == {eye: sum(fields[1] == eye for fields in efix) for eye in "LR"}
    assert min(counts.values()) > 0


def test_data1_trial_segmentation(recordings, eyelink_dir):
    recording = recordings["eyelinkparser/data1.asc"]
    trials = recording.trials
    assert len(trials) == 20
    assert trials["trial_id"].tolist() == [str(i) for i in range(20)]
    assert trials["end_tracker_ms"].notna().all()
    # "MSG 1031034 start_trial 0" ... "MSG 1035363 stop_trial" (hand-copied).
    assert (trials.loc[0, "start_tracker_ms"], trials.loc[0, "end_tracker_ms"]) == (1031034.0, 1035363.0)
    assert trials.loc[0, "variables"]["subject_nr"] == "4"
    # Oracle: walk the file, tracking the open trial by its start/stop messages.
    expected, current = [], -1
    with open(eyelink_dir / "eyelinkparser/data1.asc", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MSG") and " start_trial " in line:
                current = int(line.split()[-1])
            elif line.startswith("MSG") and line.rstrip().endswith("stop_trial"):
                current = -1
            elif line.startswith("EFIX"):
                expected.append(current)
    assert recording.fixations["trial"].tolist() == expected
    assert len(recording.blocks) == 20


def test_onset_offset_and_relative_times(recordings):
    recording = recordings["cili/monoRemote250.asc"]
    trial = recording.trials.iloc[0]
    # "MSG 12976265 -6 SYNCTIME": Data Viewer offset, event at 12976265 - (-6) = 12976271.
    assert trial["onset_tracker_ms"] == 12976271.0
    # "MSG 12981257 -14 blank_screen" → 12981271: a 5000 ms display.
    assert trial["offset_tracker_ms"] == 12981271.0
    fixation = recording.fixations.iloc[0]
    # "EFIX L 12976176 12981288 5116 ..." (hand-copied) → starts 95 ms before onset.
    assert (fixation["start_ms"], fixation["duration_ms"]) == (-95.0, 5116.0)
    assert fixation["end_ms"] == fixation["start_ms"] + fixation["duration_ms"]
    assert (recording.fixations["stimulus_duration_ms"] == 5000.0).all()
    message = recording.messages[recording.messages["text"] == "SYNCTIME"].iloc[0]
    assert (message["time_tracker_ms"], message["offset_ms"], message["trial"]) == (12976271.0, -6, 0)


def test_custom_onset_pattern(eyelink_dir):
    fixations = _quiet_read(eyelink_dir / "cili/mono1000.asc", rules=TrialRules(onset="Target_display"))[0].fixations
    # "MSG 7710248 -15 Target_display" → onset 7710263; first EFIX starts at 7709686.
    assert fixations.loc[0, "start_ms"] == 7709686 - 7710263
    assert fixations["stimulus_duration_ms"].isna().all()


def test_image_from_imgload_and_trial_var(recordings, eyelink_dir, tmp_path):
    trial = recordings["pymovements/eyelink_monocular_no_dummy_example.asc"].trials.iloc[0]
    # "MSG 642499 !V IMGLOAD FILL Images/text.png"
    assert (trial["image"], trial["imgload"]) == ("text", "FILL")
    # "MSG 643205 DISPLAY ON" is the first onset match.
    assert trial["onset_tracker_ms"] == 643205.0
    lines = (eyelink_dir / "cili/mono500.asc").read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("MSG") and "TRIALID 1" in line)
    lines.insert(at + 1, "MSG\t7199000 !V TRIAL_VAR image stimuli\\1001.jpg\n")
    variant = tmp_path / "image_var.asc"
    variant.write_text("".join(lines))
    recording = _quiet_read(variant, participant="P07")[0]
    assert recording.trials["image"].tolist() == ["", "1001", "", ""]
    assert set(recording.fixations.loc[recording.fixations["trial"] == 1, "image"]) == {"1001"}
    assert (recording.fixations["participant"] == "P07").all()


def test_message_separators_and_fractional_times(recordings):
    # The 2 kHz fixture mixes "MSG\t" and "MSG " and writes half-millisecond stamps.
    recording = recordings["pymovements/eyelink_monocular_2khz_example.asc"]
    assert recording.trials["trial_id"].tolist() == ["0", "1", "2", "3", "4"]
    # "MSG\t2135819.5 !CAL" (hand-copied)
    assert 2135819.5 in recording.messages["time_tracker_ms"].tolist()


def test_detection_is_logged(eyelink_dir, caplog):
    with caplog.at_level(logging.INFO, logger="analysis.readers.eyelink"):
        _quiet_read(eyelink_dir / "eyelinkparser/data1.asc")
    assert "trials marked by start_trial messages" in caplog.text
    assert "76 fixations" in caplog.text


def test_latin1_file_is_decoded(eyelink_dir, tmp_path):
    data = (eyelink_dir / "cili/mono250.asc").read_bytes()
    variant = tmp_path / "latin1.asc"
    variant.write_bytes(data.replace(b"TRIALID 0\n", b"TRIALID 0\nMSG\t5885900 Stra\xdfe\n", 1))
    recording = _quiet_read(variant)[0]
    assert "Straße" in recording.messages["text"].tolist()


def test_read_eyelink_returns_the_fixation_table(eyelink_dir, recordings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EyeLinkDataWarning)
        table = read_eyelink(eyelink_dir / "cili/mono500.asc")
    assert table.equals(recordings["cili/mono500.asc"].fixations)


def test_data_warnings_on_real_files(eyelink_dir):
    _, caught = _quiet_read(eyelink_dir / "pymovements/eyelink_monocular_no_dummy_example.asc")
    text = " | ".join(str(w.message) for w in caught)
    assert "has no END line" in text and "trial 0" in text and "no end message" in text


# --- EyeLink: edge cases made from a real file ------------------------------------------------


@pytest.fixture
def mono1000_lines(eyelink_dir) -> list[str]:
    return (eyelink_dir / "cili/mono1000.asc").read_text().splitlines(keepends=True)


def _line_index(lines: list[str], prefix: str, occurrence: int = 0) -> int:
    return [i for i, line in enumerate(lines) if line.startswith(prefix)][occurrence]


def test_truncated_inside_an_event_line_is_an_error(mono1000_lines, tmp_path):
    at = _line_index(mono1000_lines, "EFIX", 3)
    variant = tmp_path / "cut.asc"
    variant.write_text("".join(mono1000_lines[:at]) + mono1000_lines[at][:20])
    with pytest.raises(EyeLinkFormatError, match=rf"cut\.asc, line {at + 1}: expected EFIX .*truncated"):
        read_eyelink_asc(variant)


def test_truncated_inside_samples_is_a_warned_partial_result(mono1000_lines, tmp_path):
    after = _line_index(mono1000_lines, "EFIX", 3)
    at = next(i for i in range(after, len(mono1000_lines)) if mono1000_lines[i][0].isdigit())
    variant = tmp_path / "cut_samples.asc"
    variant.write_text("".join(mono1000_lines[:at]) + mono1000_lines[at][:9])
    recording, caught = _quiet_read(variant)
    text = " | ".join(str(w.message) for w in caught)
    assert "ends inside a sample line without a line break" in text
    assert "has no END line" in text
    assert "has no end message before the file ends" in text
    assert len(recording.fixations) == 4


def test_garbage_in_an_efix_field_names_the_line(mono1000_lines, tmp_path):
    at = _line_index(mono1000_lines, "EFIX", 2)
    fields = mono1000_lines[at].split("\t")
    fields[2] = "3x5"  # the duration
    mono1000_lines[at] = "\t".join(fields)
    variant = tmp_path / "garbage.asc"
    variant.write_text("".join(mono1000_lines))
    with pytest.raises(EyeLinkFormatError, match=rf"garbage\.asc, line {at + 1}: expected EFIX .*'3x5'"):
        read_eyelink_asc(variant)


def test_missing_end_warns(mono1000_lines, tmp_path):
    at = _line_index(mono1000_lines, "END", 1)
    variant = tmp_path / "no_end.asc"
    variant.write_text("".join(mono1000_lines[:at] + mono1000_lines[at + 1 :]))
    recording, caught = _quiet_read(variant)
    assert any(re.search(r"block starting at line \d+ has no END line", str(w.message)) for w in caught)
    assert recording.blocks["end_tracker_ms"].isna().tolist() == [False, True, False, False]
    assert len(recording.fixations) == 10


def test_missing_trial_end_warns(mono1000_lines, tmp_path):
    at = _line_index(mono1000_lines, "MSG\t7710622 TRIAL_RESULT")
    variant = tmp_path / "no_result.asc"
    variant.write_text("".join(mono1000_lines[:at] + mono1000_lines[at + 1 :]))
    recording, caught = _quiet_read(variant)
    assert any(re.search("trial 0 .* no end message before the next trial starts", str(w.message)) for w in caught)
    assert len(recording.trials) == 4


def test_empty_file(tmp_path):
    (tmp_path / "empty.asc").write_text("")
    with pytest.raises(EyeLinkFormatError, match="empty"):
        read_eyelink_asc(tmp_path / "empty.asc")


def test_text_that_is_not_asc(tmp_path):
    (tmp_path / "table.csv").write_text("x,y\n1,2\n3,4\n")
    with pytest.raises(EyeLinkFormatError, match="does not look like an EyeLink ASC file"):
        read_eyelink_asc(tmp_path / "table.csv")


def test_binary_file(tmp_path):
    (tmp_path / "rec.edf").write_bytes(b"SR_RESEARCH\x00\x01\x02" * 10)
    with pytest.raises(EyeLinkFormatError, match="is an EDF file, not an ASC file.*eyelinkio"):
        read_eyelink_asc(tmp_path / "rec.edf")
    (tmp_path / "rec.bin").write_bytes(b"\x00\x01\x02" * 10)
    with pytest.raises(EyeLinkFormatError, match="binary file, not an ASC file"):
        read_eyelink_asc(tmp_path / "rec.bin")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_eyelink_asc(tmp_path / "nope.asc")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rules": "TRIALID"}, TypeError, "rules must be a TrialRules"),
        ({"participant": ""}, ValueError, "participant must be a non-empty string"),
    ],
)
def test_invalid_options(eyelink_dir, kwargs, error, message):
    with pytest.raises(error, match=message):
        read_eyelink_asc(eyelink_dir / "cili/mono250.asc", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"onset": "("}, r"--onset-message \(onset\) is not a valid regular expression"),
        ({"image": "scene=(\\S+)"}, "--image-message needs a named group 'image'"),
        ({"trial_end": "END_TRIAL"}, "needs its trial start pattern \\(--trial-start\\)"),
    ],
)
def test_invalid_trial_rules_name_the_option(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrialRules(**kwargs)


# --- OSIE -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def osie(osie_fixations_path):
    return read_osie(osie_fixations_path)


@pytest.fixture(scope="module")
def osie_struct(osie_fixations_path):
    """Oracle: the raw struct as the data README says to load it."""
    from scipy.io import loadmat

    return loadmat(osie_fixations_path, squeeze_me=True, struct_as_record=False)["fixations"]


def test_osie_counts(osie):
    _check_table_schema(osie)
    assert len(osie) == 98_321  # the data README
    assert osie["image"].nunique() == 700
    assert sorted(osie["participant"].unique()) == [f"s{i:02d}" for i in range(1, 16)]
    assert osie.groupby("image")["participant"].nunique().eq(15).all()
    assert (osie["session"] == "osie").all() and (osie["trial"] == -1).all() and (osie["eye"] == "").all()
    assert (osie["stimulus_duration_ms"] == 3000.0).all()
    assert osie[["start_ms", "end_ms", "x_display_px", "pupil"]].isna().all().all()


def test_osie_exact_values(osie):
    # fixations{1}.subjects{1}: fix_x(1) = 395.5, fix_y(1) = 265.7, fix_duration(1) = 246.
    first = osie.iloc[0]
    assert (first["image"], first["participant"]) == ("1001", "s01")
    assert (first["x_image_px"], first["y_image_px"], first["duration_ms"]) == pytest.approx((395.0, 265.2, 246.0))
    # fixations{700}.subjects{15}: 11 fixations, the last at (673.4, 27.7) for 174 ms.
    last = osie[(osie["image"] == "1700") & (osie["participant"] == "s15")]
    assert len(last) == 11
    assert (last.iloc[-1]["x_image_px"], last.iloc[-1]["y_image_px"], last.iloc[-1]["duration_ms"]) == pytest.approx(
        (672.9, 27.2, 174.0)
    )


def test_osie_coordinates_match_matlab_indexing(osie, osie_struct):
    # computeFixationMaps.m marks map(round(fix_y), round(fix_x)) (1-based; round half away from
    # zero). Our corner-origin coordinate must fall in that pixel: floor(x_image_px) = round(fix_x) - 1.
    fix_x = np.concatenate([np.atleast_1d(s.fix_x) for e in osie_struct for s in e.subjects]).astype(float)
    fix_y = np.concatenate([np.atleast_1d(s.fix_y) for e in osie_struct for s in e.subjects]).astype(float)
    np.testing.assert_array_equal(np.floor(osie["x_image_px"]), np.floor(fix_x + 0.5) - 1)
    np.testing.assert_array_equal(np.floor(osie["y_image_px"]), np.floor(fix_y + 0.5) - 1)
    assert osie["x_image_px"].between(0, 800, inclusive="left").all()
    assert osie["y_image_px"].between(0, 600, inclusive="left").all()


def test_osie_images_filter(osie_fixations_path, osie_struct, osie):
    table = read_osie(osie_fixations_path, images=["1002", "1001"])
    expected = sum(np.size(s.fix_x) for e in osie_struct[:2] for s in e.subjects)
    assert len(table) == expected
    assert table["image"].unique().tolist() == ["1001", "1002"]  # file order
    assert table.equals(osie[osie["image"].isin(["1001", "1002"])].reset_index(drop=True))


def test_osie_unknown_image(osie_fixations_path):
    with pytest.raises(KeyError, match=r"\['999'\] are not in .* 700 images with ids 1001 … 1700"):
        read_osie(osie_fixations_path, images=["1001", "999"])


def test_osie_bad_arguments(osie_fixations_path, tmp_path):
    with pytest.raises(TypeError, match="sequence of image ids"):
        read_osie(osie_fixations_path, images="1001")
    with pytest.raises(FileNotFoundError):
        read_osie(tmp_path / "missing.mat")
    (tmp_path / "bad.mat").write_text("not a mat file")
    with pytest.raises(ValueError, match="not a readable MATLAB"):
        read_osie(tmp_path / "bad.mat")


def test_read_session_finds_sessions_and_says_when_there_is_none(tmp_path):
    """Oracle: a table written by the project's own CSV convention reads back identically."""
    from analysis.fixations import fixation_table
    from analysis.readers import read_session
    from lookwhere.records import FIXATION_COLUMNS, SESSION_FIXATIONS_FILE

    table = fixation_table(
        {
            "participant": ["P1", "P1"],
            "session": ["s", "s"],
            "trial": [0, 1],
            "image": ["a", "b"],
            "eye": ["", "R"],
            "start_ms": [10.0, float("nan")],
            "end_ms": [200.0, float("nan")],
            "duration_ms": [190.0, 50.0],
            "x_display_px": [1.0, 2.0],
            "y_display_px": [3.0, 4.0],
            "x_image_px": [0.5, 1.0],
            "y_image_px": [1.5, 2.0],
            "stimulus_duration_ms": [5000.0, 5000.0],
            "pupil": [float("nan"), 800.0],
        }
    )
    for participant in ("P1", "P2"):
        (tmp_path / participant).mkdir()
        table.to_csv(tmp_path / participant / SESSION_FIXATIONS_FILE, index=False, na_rep="nan")
    one = read_session(tmp_path / "P1")
    pd.testing.assert_frame_equal(one, table)
    assert len(read_session(tmp_path)) == 4 and list(read_session(tmp_path).columns) == list(FIXATION_COLUMNS)
    with pytest.raises(FileNotFoundError, match="no session in"):
        read_session(tmp_path / "P1" / "missing")
