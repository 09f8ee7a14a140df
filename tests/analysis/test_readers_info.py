"""``lookwhere recording info``: what a recording holds, checked against the files themselves.

Oracles: counts taken from the ASC text with plain string handling, validation results hand-copied
from the ``!CAL VALIDATION`` lines, and the data README's counts for the EDF.
"""

from __future__ import annotations

import json

from analysis.readers import TrialRules
from analysis.readers.info import format_info, recording_info
from lookwhere.cli import main as cli_main
from tests.analysis._asc_edits import CUSTOM_RULES, after_trialid, custom_messages, replace_lines, variant


def _count(path, keyword: str) -> dict[str, int]:
    lines = [line.split() for line in path.read_text().splitlines() if line.startswith(keyword)]
    names = {"L": "left", "R": "right"}
    return {names[eye]: n for eye in "LR" if (n := sum(fields[1] == eye for fields in lines))}


def test_binocular_asc(eyelink_dir, capsys):
    path = eyelink_dir / "cili/bino1000.asc"
    assert cli_main(["recording", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["format"], info["eyes"], info["sample_rate_hz"]) == ("asc", ["left", "right"], 1000.0)
    assert info["display"] == {"width_px": 1024, "height_px": 768, "source": "DISPLAY_COORDS"}
    assert info["units"] == "GAZE" and info["recording_blocks"] == 4
    assert info["counts"]["fixations"] == _count(path, "EFIX") == {"left": 12, "right": 12}
    assert info["counts"]["saccades"] == _count(path, "ESACC") and info["counts"]["blinks"] == {}
    # "!CAL VALIDATION HV13 LR LEFT  GOOD ERROR 0.35 avg. 0.48 max  OFFSET 0.18 deg. -6.4,-0.9 pix."
    assert [
        (v["eye"], v["points"], v["result"], v["avg_deg"], v["max_deg"], v["offset_deg"], v["aborted"])
        for v in info["validations"]
    ] == [("left", "HV13", "GOOD", 0.35, 0.48, 0.18, False), ("right", "HV13", "GOOD", 0.30, 0.91, 0.17, False)]
    assert [c["eye"] for c in info["calibrations"]] == ["left", "right"]
    assert info["eye_choice"]["best"] == ["right"]
    candidates = {c["message"]: c["count"] for c in info["trial_message_candidates"]}
    assert candidates["TRIALID"] == 4 and candidates["Target_display"] == 4
    assert any("no trial names an image" in p and "--image-message" in p for p in info["problems"])
    assert any("4 of 4 trials have no image onset message" in p and "--onset-message" in p for p in info["problems"])


def test_edf(eyelink_dir):
    info = recording_info(eyelink_dir / "eyelinkio/test_2_raw.edf")
    assert info["format"] == "edf" and info["eyes"] == ["left"]
    assert info["counts"] == {
        "fixations": {"left": 121},
        "saccades": {"left": 120},
        "blinks": {"left": 19},
        "messages": 48,
    }
    assert info["trials"]["count"] == 40 and info["validations"] == []
    assert "no validation result in the file: the data quality is unknown" in info["problems"]
    assert any("40 of 40 trials have no end message" in p for p in info["problems"])


def test_trial_options_can_be_tried(eyelink_dir, tmp_path, capsys):
    path = variant(eyelink_dir / "cili/mono500.asc", tmp_path / "custom.asc", custom_messages)
    untried = recording_info(path)
    assert untried["trials"]["count"] == 0
    assert any("no trial start message was found: name it with --trial-start" in p for p in untried["problems"])
    assert {
        "message": "BEGIN_SCENE",
        "count": 4,
        "example": "BEGIN_SCENE 0 scene=images/1001.jpg",
        "first_line": 74,
    } in untried["trial_message_candidates"]
    options = [
        f"--{name}={CUSTOM_RULES[key]}"
        for name, key in (
            ("trial-start", "trial_start"),
            ("image-message", "image"),
            ("onset-message", "onset"),
            ("offset-message", "offset"),
        )
    ]
    assert cli_main(["recording", "info", str(path), *options]) == 0
    text = capsys.readouterr().out
    assert (
        "trials       4 (start /^BEGIN_SCENE (?P<trial>\\d+)/); with an image 4, with an onset 4, with an offset 4"
        in text
    )
    assert "images 1001, 1002" in text
    assert recording_info(path, rules=TrialRules(**CUSTOM_RULES))["problems"] == []


def test_problems_name_what_to_do(eyelink_dir, tmp_path):
    def edit(lines):
        lines = replace_lines(r"_COORDS", "")(lines)
        lines = replace_lines(r"^EVENTS\tGAZE", lambda line: line.replace("GAZE", "HREF"))(lines)
        return after_trialid(lambda n, t: [f"MSG\t{t} !CAL VALIDATION HV9 L LEFT ABORTED\n"] if n == 1 else [])(lines)

    info = recording_info(variant(eyelink_dir / "cili/mono500.asc", tmp_path / "poor.asc", edit))
    assert info["display"] is None and info["units"] == "HREF"
    assert info["validations"][-1] | {} == {
        "time_tracker_ms": 7199247.0,
        "eye": "left",
        "points": "HV9",
        "result": "ABORTED",
        "avg_deg": None,
        "max_deg": None,
        "offset_deg": None,
        "aborted": True,
    }
    problems = " | ".join(info["problems"])
    assert "the screen size is unknown (no DISPLAY_COORDS or GAZE_COORDS message): pass --screen W H" in problems
    assert "HREF units" in problems and "was ABORTED" in problems
    assert "display      unknown; units HREF" in format_info(info)


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert cli_main(["recording", "info", str(tmp_path / "nope.edf")]) == 2
    assert "nope.edf does not exist" in capsys.readouterr().err
