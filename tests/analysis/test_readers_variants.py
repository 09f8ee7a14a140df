"""Real-world EyeLink variants, each made by editing a real file into ``tmp_path``, and how they map
to images.

Oracles: the unedited file read by the same reader (an edit that only changes the form must not
change the result), values hand-copied from the files, and placement arithmetic done by hand.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.readers import EyeLinkDataWarning, read_eyelink_asc
from analysis.readers.mapping import MappingError, MappingOptions, imgload_placement, map_recording
from tests.analysis._asc_edits import after_trialid, replace_lines, variant

MONO500 = "cili/mono500.asc"  # left eye, 1024×768, 4 TRIALID trials, 12 EFIX lines

# mono500 has no onset message the default rule knows: mapping warns, rightly, every time.
pytestmark = pytest.mark.filterwarnings("ignore::analysis.readers.EyeLinkDataWarning")


def read_quietly(path, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recording = read_eyelink_asc(path, **kwargs)
    return recording, [str(w.message) for w in caught if issubclass(w.category, EyeLinkDataWarning)]


def assert_same_fixations(table, reference):
    """Equal apart from the participant and session ids, which come from the file name."""
    columns = ["participant", "session"]
    pd.testing.assert_frame_equal(table.drop(columns=columns), reference.drop(columns=columns))


@pytest.fixture(scope="module")
def mono500(eyelink_dir):
    return read_quietly(eyelink_dir / MONO500)[0]


# --- header and message forms -----------------------------------------------------------------


def test_display_coords_with_an_equals_sign(eyelink_dir, tmp_path, mono500):
    path = variant(
        eyelink_dir / MONO500,
        tmp_path / "equals.asc",
        replace_lines(r"DISPLAY_COORDS", "MSG\t4818632 DISPLAY_COORDS = 0 0 1919 1079\n"),
    )
    recording, caught = read_quietly(path)
    assert (recording.display_px, recording.display_source) == ((1920, 1080), "DISPLAY_COORDS")
    assert_same_fixations(recording.fixations, mono500.fixations)
    assert not any("DISPLAY_COORDS" in message for message in caught)


def test_malformed_display_coords_is_a_warning_naming_the_line(eyelink_dir, tmp_path):
    path = variant(
        eyelink_dir / MONO500,
        tmp_path / "bad_coords.asc",
        replace_lines(r"DISPLAY_COORDS", "MSG\t6382611 DISPLAY_COORDS left top right bottom\n"),
    )
    recording, caught = read_quietly(path)
    assert any(re.search(r"bad_coords\.asc, line 14: DISPLAY_COORDS needs four numbers", m) for m in caught)
    # GAZE_COORDS 0.00 0.00 1023.00 767.00 (line 77) is the fallback.
    assert (recording.display_px, recording.display_source) == ((1024, 768), "GAZE_COORDS")


@pytest.mark.parametrize(
    ("gaze_coords", "display_px"),
    [
        ("0.00 0.00 1023.00 767.00", (1024, 768)),  # SR Research: the last pixel
        ("0.00 0.00 1024.00 768.00", (1024, 768)),  # PyGaze: the size (eyelinkparser/data1.asc)
        ("= 0 0 1919 1079", (1920, 1080)),
    ],
)
def test_gaze_coords_is_the_display_fallback(eyelink_dir, tmp_path, gaze_coords, display_px):
    def edit(lines):
        lines = replace_lines(r"DISPLAY_COORDS", "")(lines)
        return replace_lines(r"GAZE_COORDS", lambda line: f"MSG\t{line.split()[1]} GAZE_COORDS {gaze_coords}\n")(lines)

    recording = read_quietly(variant(eyelink_dir / MONO500, tmp_path / "gaze.asc", edit))[0]
    assert (recording.display_px, recording.display_source) == (display_px, "GAZE_COORDS")


def test_neither_coordinate_message_leaves_the_display_unknown(eyelink_dir, tmp_path):
    path = variant(eyelink_dir / MONO500, tmp_path / "nocoords.asc", replace_lines(r"_COORDS", ""))
    recording = read_quietly(path)[0]
    assert (recording.display_px, recording.display_source) == (None, None)


def test_missing_final_newline_reads_the_same_without_a_warning(eyelink_dir, tmp_path, mono500):
    data = (eyelink_dir / MONO500).read_bytes()
    path = tmp_path / "nonl.asc"
    path.write_bytes(data.rstrip(b"\r\n"))
    recording, caught = read_quietly(path)
    assert_same_fixations(recording.fixations, mono500.fixations)
    assert recording.messages["text"].iloc[-1] == mono500.messages["text"].iloc[-1]
    assert caught == []


def test_experiment_builder_trial_variables(eyelink_dir, tmp_path):
    def edit(lines):
        lines = after_trialid(lambda n, t: [f"MSG\t{t} -5 !V TRIAL_VAR_DATA {1001 + n} left {n}\n"])(lines)
        return [lines[0], "MSG\t6382600 !V TRIAL_VAR_LABELS image side order\n", *lines[1:]]

    recording = read_quietly(variant(eyelink_dir / MONO500, tmp_path / "eb.asc", edit))[0]
    assert recording.trials["image"].tolist() == ["1001", "1002", "1003", "1004"]
    assert recording.trials.loc[2, "variables"].items() >= {"side": "left", "order": "2", "direction": "Right"}.items()
    # "MSG 7196664 TRIALID 0" then "MSG 7196664 -5 !V TRIAL_VAR_DATA ...": offset applied.
    row = recording.messages[recording.messages["text"].str.startswith("!V TRIAL_VAR_DATA")].iloc[0]
    assert (row["time_tracker_ms"], row["offset_ms"]) == (7196669.0, -5)


def test_trial_var_with_an_equals_sign_and_a_windows_path(eyelink_dir, tmp_path):
    path = variant(
        eyelink_dir / MONO500,
        tmp_path / "var.asc",
        after_trialid(lambda n, t: [f"MSG\t{t} !V TRIAL_VAR image = stimuli\\{1001 + n}.jpg\n"]),
    )
    assert read_quietly(path)[0].trials["image"].tolist() == ["1001", "1002", "1003", "1004"]


# --- units ------------------------------------------------------------------------------------


def test_href_units_are_recorded_per_block_and_refused_for_heatmaps(eyelink_dir, tmp_path, mono500):
    # The second block (START at line 675) recorded its events in HREF units.
    def edit(lines):
        lines[678] = lines[678].replace("EVENTS\tGAZE", "EVENTS\tHREF")
        lines[679] = lines[679].replace("SAMPLES\tGAZE", "SAMPLES\tHREF")
        return lines

    recording = read_quietly(variant(eyelink_dir / MONO500, tmp_path / "href.asc", edit))[0]
    assert recording.blocks["units"].tolist() == ["GAZE", "HREF", "GAZE", "GAZE"]
    assert recording.units == "GAZE+HREF"
    # RES of the GAZE blocks only (END lines 654, 1613, 2080): x 35.24, 35.19, 35.19.
    assert recording.resolution_ppd == pytest.approx(((35.24 + 35.19 + 35.19) / 3, (35.17 + 35.15 + 35.14) / 3))
    assert mono500.units == "GAZE"
    with pytest.raises(
        MappingError, match=r"href\.asc: events recorded in HREF units .*lines \[675\].*not screen pixels"
    ):
        map_recording(recording, {"1001": (800, 600)})


# --- placement --------------------------------------------------------------------------------


def _tagged(eyelink_dir, tmp_path, imgload: str, name="placed.asc"):
    return variant(
        eyelink_dir / MONO500,
        tmp_path / name,
        after_trialid(lambda n, t: [f"MSG\t{t} !V IMGLOAD {imgload.format(file='images/1001.jpg')}\n"]),
    )


def test_imgload_top_left_is_honoured(eyelink_dir, tmp_path):
    recording = read_quietly(_tagged(eyelink_dir, tmp_path, "TOP_LEFT {file} 0 0 800 600"))[0]
    table, summary = map_recording(recording, {"1001": (800, 600)})
    # Drawn at its own size from the corner: image pixels are display pixels.
    np.testing.assert_array_equal(table["x_image_px"], table["x_display_px"])
    np.testing.assert_array_equal(table["y_image_px"], table["y_display_px"])
    assert summary["placements"] == {"!V IMGLOAD": 4}
    assert len(table) == 12


def test_imgload_center_with_and_without_size(eyelink_dir, tmp_path):
    centred = read_quietly(_tagged(eyelink_dir, tmp_path, "CENTER {file} 512 384 400 300", "c1.asc"))[0]
    table = map_recording(centred, {"1001": (800, 600)})[0]
    # Drawn 400×300 centred at (512, 384): left 312, top 234, half scale.
    np.testing.assert_allclose(table["x_image_px"], (table["x_display_px"] - 312) * 2)
    np.testing.assert_allclose(table["y_image_px"], (table["y_display_px"] - 234) * 2)
    native = read_quietly(_tagged(eyelink_dir, tmp_path, "CENTER {file} 512 384", "c2.asc"))[0]
    table = map_recording(native, {"1001": (800, 600)})[0]
    np.testing.assert_allclose(table["x_image_px"], table["x_display_px"] - 112)
    # --scale overrides the drawn size: 800×600 × 0.5 centred at (512, 384).
    table = map_recording(native, {"1001": (800, 600)}, MappingOptions(scale=0.5))[0]
    np.testing.assert_allclose(table["x_image_px"], (table["x_display_px"] - 312) * 2)


def test_imgload_placement_forms():
    assert imgload_placement("FILL", (800, 600), screen_px=(1600, 1200), scale=None).to_dict() == {
        "image_width_px": 800,
        "image_height_px": 600,
        "left_px": 0.0,
        "top_px": 0.0,
        "display_width_px": 1600.0,
        "display_height_px": 1200.0,
    }
    with pytest.raises(ValueError, match="FILL.*screen, whose size is unknown"):
        imgload_placement("FILL", (800, 600), screen_px=None, scale=None)
    with pytest.raises(ValueError, match="expected '!V IMGLOAD CENTER|TOP_LEFT"):
        imgload_placement("STRETCH 1 2", (800, 600), screen_px=None, scale=None)


def test_without_imgload_the_image_is_centred_at_the_fitted_scale(eyelink_dir, tmp_path):
    path = variant(
        eyelink_dir / MONO500,
        tmp_path / "var.asc",
        after_trialid(lambda n, t: [f"MSG\t{t} !V TRIAL_VAR image 1001.jpg\n"]),
    )
    table, summary = map_recording(read_quietly(path)[0], {"1001": (800, 600)})
    # 800×600 ×2 does not fit 1024×768: ×1.28, filling the screen (the x 218.8 → 170.9).
    np.testing.assert_allclose(table["x_image_px"], table["x_display_px"] / 1.28)
    assert summary["placements"] == {"centred": 4} and summary["display_source"] == "DISPLAY_COORDS"


def test_unknown_screen_names_the_option(eyelink_dir, tmp_path):
    def edit(lines):
        lines = replace_lines(r"_COORDS", "")(lines)
        return after_trialid(lambda n, t: [f"MSG\t{t} !V TRIAL_VAR image 1001\n"])(lines)

    recording = read_quietly(variant(eyelink_dir / MONO500, tmp_path / "noscreen.asc", edit))[0]
    with pytest.raises(MappingError, match=r"noscreen\.asc: the screen size is unknown .* --screen W H"):
        map_recording(recording, {"1001": (800, 600)})
    table, summary = map_recording(recording, {"1001": (800, 600)}, MappingOptions(screen_px=(1024, 768)))
    assert summary["display_source"] == "--screen" and len(table) == 12


def test_no_image_names_the_options(mono500):
    with pytest.raises(
        MappingError,
        match=r"mono500\.asc: no fixation can be tied to an image: none of its 4 "
        r"trials names an image.*--image-message.*--trials-table",
    ):
        map_recording(mono500, {"1001": (800, 600)})
