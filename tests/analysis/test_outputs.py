"""Outputs whole or absent: inputs checked before any scoring, a failed run leaves ``--out`` as it
was, a new run replaces an earlier one whole.

Oracles: the folder's file listing and bytes before and after a run, hashlib for the recorded
checksums, and the counts' own arithmetic (read = used + every drop).
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from analysis.outputs import StagedOutput
from lookwhere.cli import main as cli_main
from tests.analysis._asc_edits import after_trialid, variant


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def study(eyelink_dir, osie_stimuli, tmp_path):
    """A tagged real recording (trials show 1001, 1002, 1001, 1002; onset Target_display), its
    stimuli, and an earlier analysis in --out."""
    recording = variant(
        eyelink_dir / "cili/mono500.asc",
        tmp_path / "mono500.asc",
        after_trialid(lambda n, t: [f"MSG\t{t} !V TRIAL_VAR image {1001 + n % 2}\n"]),
    )
    stimuli = tmp_path / "stimuli"
    stimuli.mkdir()
    for image_id in ("1001", "1002"):
        shutil.copy(osie_stimuli / f"{image_id}.jpg", stimuli)
    out = tmp_path / "out"
    (out / "overlays").mkdir(parents=True)
    (out / "params.json").write_text('{"earlier": true}')
    (out / "overlays" / "0999.png").write_bytes(b"an overlay of an earlier run")
    args = [
        "analyze",
        "--dataset",
        "eyelink",
        "--fixations",
        str(recording),
        "--stimuli",
        str(stimuli),
        "--out",
        str(out),
        "--onset-message",
        "Target_display",
        "--bootstrap",
        "200",
        "--no-progress",
    ]
    return {"recording": recording, "stimuli": stimuli, "out": out, "args": args, "before": _snapshot(out)}


def _nothing_partial_beside(out):
    return not [p.name for p in out.parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_a_truncated_stimulus_fails_before_scoring_naming_the_file(study, capsys):
    jpeg = study["stimuli"] / "1002.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:5000])
    assert cli_main(study["args"]) == 2
    err = capsys.readouterr().err
    assert "1 stimulus images cannot be read" in err and "1002.jpg" in err and "lookwhere stimuli check" in err
    assert _snapshot(study["out"]) == study["before"] and _nothing_partial_beside(study["out"])


def test_an_out_that_is_a_file_or_a_foreign_folder_is_refused_untouched(study, tmp_path, capsys):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    assert cli_main([a if a != str(study["out"]) else str(file) for a in study["args"]]) == 2
    assert "--out" in capsys.readouterr().err and file.read_text() == "mine"
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("draft")
    assert cli_main([a if a != str(study["out"]) else str(foreign) for a in study["args"]]) == 2
    assert "holds files that are not a lookwhere analysis" in capsys.readouterr().err
    assert _snapshot(foreign) == {"chapter1.tex": b"draft"}


def test_a_run_that_fails_after_reading_leaves_out_as_it_was(study, tmp_path, capsys):
    not_a_store = tmp_path / "maps"
    not_a_store.mkdir()
    assert cli_main([*study["args"], "--maps", str(not_a_store)]) == 2
    assert "maps" in capsys.readouterr().err
    assert _snapshot(study["out"]) == study["before"] and _nothing_partial_beside(study["out"])


def test_a_single_image_run_replaces_an_earlier_analysis_whole(study):
    assert cli_main([*study["args"], "--images", "1001"]) == 0
    out = study["out"]
    assert not (out / "overlays" / "0999.png").exists()
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["1001.png"]
    params = json.loads((out / "params.json").read_text())
    assert params["n_images"] == 1 and _nothing_partial_beside(out)
    assert params["command_line"] == ["lookwhere", *study["args"], "--images", "1001"]
    recording = str(study["recording"])
    assert params["inputs_sha256"][recording] == hashlib.sha256(study["recording"].read_bytes()).hexdigest()
    assert str(study["stimuli"] / "1001.jpg") in params["inputs_sha256"]
    assert params["packages"]["eyelinkio"] and params["packages"]["numpy"]
    counts = params["fixations"]
    # mono500: 12 EFIX lines, left eye, 4, 4, 2, 2 per trial; trials 1 and 3 showed 1002.
    assert counts["read"] == 12 and counts["read_per_eye"] == {"L": 12}
    assert counts["read"] == counts["used"] + sum(counts["dropped"].values())
    assert counts["dropped"]["image not analysed"] == 6 and counts["dropped"]["outside the display period"] > 0
    assert params["display_period"]["rule"].startswith("0 <= start_ms and end_ms <= stimulus_duration_ms")
    assert params["display_period"]["per_recording"][recording]["onset"] == "Target_display"
    assert params["recordings"][0]["eye"] == "L"


def test_warnings_are_recorded_and_boxed_in_the_report(study):
    # Without --onset-message the default rule finds no onset: warned, kept without the check.
    args = [a for a in study["args"] if a not in ("--onset-message", "Target_display")]
    assert cli_main([*args, "--images", "1001,1002"]) == 0
    params = json.loads((study["out"] / "params.json").read_text())
    assert len(params["warnings"]) == 1 and "4 of 4 trials used have no image onset" in params["warnings"][0]
    assert params["display_period"]["fixations_without_times_kept"] == 12
    report = (study["out"] / "report.html").read_text()
    assert 'id="data-warnings"' in report and "0 files left out, 1 data warnings" in report
    assert "4 of 4 trials used have no image onset" in report


def test_staged_output_commit_and_discard(tmp_path):
    out = tmp_path / "a" / "out"
    staged = StagedOutput(out)
    (staged.path / "params.json").write_text("{}")
    assert not out.exists()
    assert staged.commit() == out and (out / "params.json").is_file()
    again = StagedOutput(out)
    again.discard()
    assert (out / "params.json").is_file() and _nothing_partial_beside(out)
