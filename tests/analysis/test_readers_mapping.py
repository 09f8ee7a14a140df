"""Eye choice and trial-to-image mapping of real EyeLink recordings (analysis.readers.mapping).

Oracles: the validation results hand-copied from the files' ``!CAL VALIDATION`` lines, ``EFIX``
counts per eye taken with plain string handling, and the heatmap module's own first-fixation
rule applied to each eye's rows separately.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from analysis.heatmap import HeatmapParams, select_fixations
from analysis.readers import TrialRules, read_eyelink_asc
from analysis.readers.mapping import MappingError, MappingOptions, choose_eye, map_recording, read_trials_table
from lookwhere.cli import main as cli_main
from tests.analysis._asc_edits import CUSTOM_RULES, after_trialid, custom_messages, variant

SIZES = {"1001": (800, 600), "1002": (800, 600)}

# The cili files have no onset message the default rule knows: mapping warns, rightly, every time.
pytestmark = pytest.mark.filterwarnings("ignore::analysis.readers.EyeLinkDataWarning")


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_eyelink_asc(path)


def _efix_per_eye(path) -> dict[str, int]:
    lines = [line.split() for line in path.read_text().splitlines() if line.startswith("EFIX")]
    return {eye: sum(fields[1] == eye for fields in lines) for eye in "LR"}


@pytest.fixture(scope="module")
def tagged(eyelink_dir, tmp_path_factory):
    """Every cili file with a `!V TRIAL_VAR image` per trial (1001, 1002, 1001, 1002)."""
    folder = tmp_path_factory.mktemp("tagged")
    tag = after_trialid(lambda n, t: [f"MSG\t{t} !V TRIAL_VAR image {1001 + n % 2}\n"])
    return {path.stem: variant(path, folder / path.name, tag) for path in sorted((eyelink_dir / "cili").glob("*.asc"))}


@pytest.mark.parametrize(
    ("name", "eye", "why"),
    [
        # "!CAL VALIDATION HV13 LR LEFT GOOD ERROR 0.35 avg. 0.48 max" / "RIGHT ... 0.30 avg. 0.91 max"
        ("bino1000", "R", "0.30° mean / 0.91° max error against 0.35° / 0.48°"),
        # LEFT 0.25 avg. 0.71 max / RIGHT 0.27 avg. 0.78 max: the left eye wins.
        ("binoRemote500", "L", "0.25° mean / 0.71° max error against 0.27° / 0.78°"),
        ("mono500", "L", "the only eye recorded"),
        ("mono1000", "R", "the only eye recorded"),
    ],
)
def test_best_eye_is_the_better_last_validation(tagged, name, eye, why):
    assert choose_eye(_read(tagged[name])) == (eye, f"best: last validation {why}" if "°" in why else why)


def test_best_eye_without_validations_is_the_right_one(tagged, tmp_path):
    lines = tagged["bino500"].read_text().splitlines(keepends=True)
    path = tmp_path / "noval.asc"
    path.write_text("".join(line for line in lines if "!CAL VALIDATION" not in line))
    assert choose_eye(_read(path)) == ("R", "best: no validation to compare, so the right eye")


@pytest.mark.parametrize("name", ["bino1000", "bino250", "binoRemote500"])
def test_one_eye_is_mapped_and_the_other_counted(tagged, name):
    recording = _read(tagged[name])
    per_eye = _efix_per_eye(tagged[name])
    table, summary = map_recording(recording, SIZES)
    eye = summary["eye"]
    assert set(table["eye"]) == {eye}
    assert summary["counts"]["read_per_eye"] == per_eye
    assert summary["counts"]["dropped"]["other eye"] == per_eye["LR".replace(eye, "")]
    assert summary["counts"]["mapped_per_eye"] == {eye: len(table)}
    for choice in ("left", "right"):
        table = map_recording(recording, SIZES, MappingOptions(eye=choice))[0]
        assert set(table["eye"]) == {choice[0].upper()}


def test_an_eye_not_recorded_names_the_option(tagged):
    with pytest.raises(MappingError, match=r"mono500\.asc: no right-eye data \(eyes recorded: L\); pass --eye best"):
        map_recording(_read(tagged["mono500"]), SIZES, MappingOptions(eye="right"))


def test_both_eyes_are_separate_sessions_so_the_first_fixation_goes_per_eye(tagged):
    recording = _read(tagged["bino1000"])
    table, summary = map_recording(recording, SIZES, MappingOptions(eye="both"))
    assert summary["eye"] == "LR" and len(table) == sum(_efix_per_eye(tagged["bino1000"]).values())
    assert set(table["session"]) == {"bino1000.asc:L", "bino1000.asc:R"}
    kept = select_fixations(table, HeatmapParams(exclude_first_fixation=True, within_display_only=False))
    # Oracle: the same rule on each eye's rows alone removes one fixation per trial and eye.
    expected = sum(
        len(select_fixations(rows, HeatmapParams(exclude_first_fixation=True, within_display_only=False)))
        for _, rows in table.groupby("eye")
    )
    assert len(kept) == expected == len(table) - table.groupby(["trial", "eye"]).ngroups


# --- trial mapping from the command line ------------------------------------------------------


@pytest.fixture
def custom(eyelink_dir, tmp_path):
    return variant(eyelink_dir / "cili/mono500.asc", tmp_path / "custom.asc", custom_messages)


def test_custom_messages_without_options_name_the_option_and_show_candidates(custom):
    with pytest.raises(MappingError) as error:
        map_recording(_read(custom), SIZES)
    message = str(error.value)
    assert "custom.asc: no fixation can be tied to an image: no trial start message" in message
    assert "--trial-start REGEX" in message and "lookwhere recording info" in message
    # The candidates: "4 × 'BEGIN_SCENE' e.g. line 74: 'BEGIN_SCENE 0 scene=images/1001.jpg'".
    assert "4 × 'BEGIN_SCENE'" in message and "'End_trial_display'" in message


def test_custom_trial_start_and_image_messages(custom):
    recording = read_eyelink_asc(custom, rules=TrialRules(**CUSTOM_RULES))
    trials = recording.trials
    assert trials["trial_id"].tolist() == ["0", "1", "2", "3"]
    assert trials["image"].tolist() == ["1001", "1002", "1001", "1002"]
    # "MSG 7196804 -11 Initial_display" → 7196815; "MSG 7197767 -15 End_trial_display" → 7197782.
    assert (trials.loc[0, "onset_tracker_ms"], trials.loc[0, "stimulus_duration_ms"]) == (7196815.0, 967.0)
    # Without an end pattern a trial runs to the next start ("MSG 7199247 BEGIN_SCENE 1").
    next_start = next(i for i, line in enumerate(custom.read_text().splitlines(), 1) if "BEGIN_SCENE 1" in line)
    assert trials.loc[0, "end_line"] == next_start - 1 and np.isnan(trials.loc[0, "end_tracker_ms"])
    table, summary = map_recording(recording, SIZES)
    assert len(table) == 12 and summary["display_period"]["trials_without_onset"] == 0
    ended = read_eyelink_asc(custom, rules=TrialRules(**CUSTOM_RULES, trial_end="^END_SCENE"))
    assert ended.trials.loc[0, "end_tracker_ms"] == 7197861.0  # "MSG 7197861 END_SCENE"


def test_trials_are_numbered_without_a_trial_group(custom):
    rules = TrialRules(**(CUSTOM_RULES | {"trial_start": "^BEGIN_SCENE"}))
    assert read_eyelink_asc(custom, rules=rules).trials["trial_id"].tolist() == ["0", "1", "2", "3"]


def test_custom_messages_from_the_command_line(eyelink_dir, osie_stimuli, tmp_path, capsys):
    folder = tmp_path / "custom"
    folder.mkdir()
    for name in ("mono500", "mono1000"):
        variant(eyelink_dir / f"cili/{name}.asc", folder / f"{name}.asc", custom_messages)
    out = tmp_path / "out"
    base = [
        "analyze",
        "--dataset",
        "eyelink",
        "--fixations",
        str(folder),
        "--stimuli",
        str(osie_stimuli),
        "--out",
        str(out),
        "--bootstrap",
        "200",
        "--no-progress",
    ]
    assert cli_main(base) == 2
    err = capsys.readouterr().err
    assert "no recording could be analysed" in err and "--trial-start REGEX" in err and "BEGIN_SCENE" in err
    assert not out.exists()
    options = [
        "--trial-start",
        CUSTOM_RULES["trial_start"],
        "--image-message",
        CUSTOM_RULES["image"],
        "--onset-message",
        CUSTOM_RULES["onset"],
        "--offset-message",
        CUSTOM_RULES["offset"],
    ]
    assert cli_main(base + options) == 0
    params = json.loads((out / "params.json").read_text())
    assert params["n_images"] == 2 and params["n_participants"] == 2
    # 12 + 10 EFIX lines; the display period drops those before Initial_display or after End_trial_display.
    assert params["n_fixations_read"] == 22 and 0 < params["n_fixations_used"] < 22


def test_an_invalid_pattern_names_the_option(osie_stimuli, eyelink_dir, tmp_path, capsys):
    code = cli_main(
        [
            "analyze",
            "--dataset",
            "eyelink",
            "--fixations",
            str(eyelink_dir / "cili/mono500.asc"),
            "--stimuli",
            str(osie_stimuli),
            "--out",
            str(tmp_path / "o"),
            "--image-message",
            "scene=(\\S+)",
        ]
    )
    assert code == 2
    assert "--image-message needs a named group 'image'" in capsys.readouterr().err


# --- --trials-table ---------------------------------------------------------------------------


def _table(tmp_path, text: str):
    path = tmp_path / "trials.csv"
    path.write_text(text)
    return read_trials_table(path)


def test_trials_table_names_the_images_and_onsets(tagged, tmp_path):
    # mono500's trials are "TRIALID 0" … "TRIALID 3"; trial 0's onset is given (Target_display, 7197314).
    table = _table(
        tmp_path,
        "recording,trial,image,onset_ms,offset_ms\n"
        "mono500.asc,0,stimuli/1002.jpg,7197314,\nmono500,1,1001,,\nmono500,2,1001,,\n"
        "other.asc,0,1001,,\n",
    )
    recording = _read(tagged["mono500"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fixations, summary = map_recording(recording, SIZES, MappingOptions(trials_table=table))
    assert fixations.groupby("trial")["image"].first().to_dict() == {0: "1002", 1: "1001", 2: "1001"}
    assert summary["counts"]["dropped"]["trial without an image"] == 2  # trial 3's two EFIX lines
    assert any("1 trials are not in --trials-table (ids ['3'])" in str(w.message) for w in caught)
    # "EFIX L 7196724 ..." starts 590 ms before the given onset.
    assert fixations.loc[0, "start_ms"] == 7196724 - 7197314
    assert summary["display_period"]["onset"] == "--trials-table onset_ms"
    assert summary["display_period"]["trials_without_onset"] == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("recording,image\nmono500,1001\n", r"lacks the columns \['trial'\]"),
        ("recording,trial,image,onset_ms\nmono500,0,1001,soon\n", r"row 2: onset_ms must be a number"),
        ("recording,trial,image\nmono500,0,1001\nmono500,0,1002\n", "lists trial '0' of 'mono500' twice"),
        ("recording,trial,image\nmono500,0,\n", "row 2: trial and image must not be empty"),
    ],
)
def test_trials_table_format_errors(tmp_path, text, message):
    with pytest.raises(ValueError, match=rf"--trials-table .*trials\.csv.*{message}"):
        _table(tmp_path, text)


def test_trials_table_mapping_errors_name_the_fix(tagged, custom, tmp_path):
    recording = _read(tagged["mono500"])
    options = MappingOptions(trials_table=_table(tmp_path, "recording,trial,image\nmono500,7,1001\n"))
    with pytest.raises(
        MappingError, match=r"names trials \['7'\] that the recording does not have .*ids: \['0', '1', '2', '3'\]"
    ):
        map_recording(recording, SIZES, options)
    options = MappingOptions(trials_table=_table(tmp_path, "recording,trial,image\nbino500,0,1001\n"))
    with pytest.raises(MappingError, match=r"mono500\.asc: not in --trials-table .*\['bino500'\]"):
        map_recording(recording, SIZES, options)
    options = MappingOptions(trials_table=_table(tmp_path, "recording,trial,image\ncustom,0,1001\n"))
    with pytest.raises(MappingError, match=r"(?s)no trial start message .*--trial-start REGEX.*BEGIN_SCENE"):
        map_recording(_read(custom), SIZES, options)
