"""Eye choice and trial-to-image mapping of real EyeLink recordings (analysis.readers.mapping).

Oracles: the validation results hand-copied from the files' ``!CAL VALIDATION`` lines, ``EFIX``
counts per eye taken with plain string handling, and the heatmap module's own first-fixation
rule applied to each eye's rows separately.
"""

from __future__ import annotations

import warnings

import pytest

from analysis.heatmap import HeatmapParams, select_fixations
from analysis.readers import read_eyelink_asc
from analysis.readers.mapping import MappingError, MappingOptions, choose_eye, map_recording
from tests.analysis._asc_edits import after_trialid, variant

SIZES = {"1001": (800, 600), "1002": (800, 600)}


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
