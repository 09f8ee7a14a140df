"""The sessions' data quality in the offline analysis (analysis.quality): on a simulated session
whose tracker injects a poor validation, growing drift and a track-loss episode, an "exclude trial"
note left by the server removes that trial's fixations from ``lookwhere analyze --dataset session``
(``--ignore-notes`` keeps them), ``--max-track-loss`` and ``--max-validation-deg`` exclude by the
session's own measurements, and the report shows the quality table, the excluded trials and the notes.

Oracles: the session's ``fixations.csv`` (the excluded trial's rows counted with pandas), the
injected values (``--sim-validation-deg 1.4``: every trial's validation; ``--sim-track-loss-trials
2``: at least 40 % of trial 2 lost; 0.6° more drift per trial: the alarm on from trial 3), and the
notes the test writes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket

import pandas as pd
import pytest

from analysis.quality import QualityRules, report_section, session_quality
from analysis.readers.session import read_session
from lookwhere.cli import main
from lookwhere.notes import NoteKind, OperatorNote, append_note, server_notes_path
from tests.conftest import SHARED_DATA
from tests.experiment.conftest import run_session

EXCLUDED = 1  # the trial (0-based) the experimenter excludes


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A finished 4-trial simulated session, and the server's notes on it: trial 1 excluded,
    trial 3 excluded and then kept, a free-text note on trial 0."""
    from experiment.xvfb import start_xvfb

    stimuli = SHARED_DATA / "osie" / "stimuli"
    if not stimuli.is_dir():
        pytest.skip(f"real data folder {stimuli} is absent")
    try:
        display = start_xvfb()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    root = tmp_path_factory.mktemp("quality")
    images = root / "stimuli"
    images.mkdir()
    for name in ("1001.jpg", "1002.jpg", "1003.jpg", "1004.jpg"):
        (images / name).symlink_to(stimuli / name)
    with socket.socket() as probe:  # a loopback endpoint nobody listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    try:
        result = run_session(
            {**os.environ, "DISPLAY": display.display},
            *("--participant", "Q01", "--stimuli", str(images), "--tracker", "simulated"),
            *("--out", str(root / "sessions"), "--trials", "4", "--seed", "3", "--duration-ms", "1500"),
            *("--auto-accept-drift-ms", "150", "--windowed", "--no-mic", "--server", endpoint),
            *("--sim-validation-deg", "1.4", "--sim-drift-deg-per-trial", "0.6", "--sim-track-loss-trials", "2"),
        )
    finally:
        display.close()
    assert result.returncode == 0, result.stderr[-3000:]
    folder = root / "sessions" / "Q01"
    session_id = json.loads((folder / "config.json").read_text())["session_id"]
    notes = server_notes_path(root / "server", session_id)
    written: list[tuple[int, NoteKind, str]] = [
        (0, "text", "sneezed"),
        (EXCLUDED, "exclude_trial", "looked away"),
        (3, "exclude_trial", ""),
        (3, "keep_trial", ""),
    ]
    for trial, kind, text in written:
        append_note(
            notes,
            OperatorNote(session=session_id, participant="Q01", trial=trial, kind=kind, text=text, unix_s=1e9 + trial),
        )
    return {"folder": folder, "stimuli": images, "server": root / "server", "session": session_id}


def _analyze(session, out, *options: str) -> dict:
    arguments = ["analyze", "--dataset", "session", "--fixations", str(session["folder"])]
    arguments += ["--stimuli", str(session["stimuli"]), "--out", str(out), "--bootstrap", "200", "--no-progress"]
    assert main([*arguments, "--voice", "off", "--no-timecourse", *options]) == 0
    return json.loads((out / "params.json").read_text())


def test_an_exclude_trial_note_removes_that_trials_fixations(session, tmp_path):
    recorded = pd.read_csv(session["folder"] / "fixations.csv")
    n_excluded = int((recorded["trial"] == EXCLUDED).sum())
    assert n_excluded > 0  # 1.5 s of simulated viewing: several fixations
    noted = _analyze(session, tmp_path / "noted", "--notes", str(session["server"]))
    ignored = _analyze(session, tmp_path / "ignored", "--notes", str(session["server"]), "--ignore-notes")
    unnoted = _analyze(session, tmp_path / "unnoted")  # the session folder holds no notes.jsonl

    dropped = "trial excluded (notes, validation or track loss)"
    assert noted["fixations"]["dropped"][dropped] == n_excluded
    assert dropped not in ignored["fixations"]["dropped"] and dropped not in unnoted["fixations"]["dropped"]
    assert noted["fixations"]["read"] == ignored["fixations"]["read"] == len(recorded)
    assert noted["quality"]["excluded_trials"] == [
        {
            "participant": "Q01",
            "session": session["session"],
            "trial": EXCLUDED,
            "image": recorded.loc[recorded["trial"] == EXCLUDED, "image"].astype(str).iloc[0],
            "reasons": "note: looked away",
        }
    ]  # trial 3's exclusion was undone by its "keep trial" note
    assert ignored["quality"]["excluded_trials"] == [] and ignored["quality"]["n_notes"] == 4
    assert ignored["quality"]["rules"]["notes"] == "ignore"
    # what the heatmaps used: the excluded trial's selected fixations fewer
    used = noted["fixations"]["used"], ignored["fixations"]["used"]
    assert used[0] < used[1]
    trials = pd.read_csv(tmp_path / "noted" / "quality_trials.csv")
    assert trials["excluded"].tolist() == [trial == EXCLUDED for trial in range(4)]
    assert trials.loc[0, "notes"] == "sneezed"


def test_the_report_shows_the_quality_table_and_what_was_excluded(session, tmp_path):
    params = _analyze(session, tmp_path / "out", "--notes", str(session["server"]), "--max-track-loss", "0.3")
    excluded = {row["trial"]: row["reasons"] for row in params["quality"]["excluded_trials"]}
    assert excluded[EXCLUDED] == "note: looked away"
    assert excluded[2].startswith("track loss ") and excluded[2].endswith("% > 30%")  # ≥ 40 % lost
    assert set(excluded) == {EXCLUDED, 2}
    report = (tmp_path / "out" / "report.html").read_text()
    section = report[report.index('<h2 id="quality">Data quality</h2>') :]
    assert "#1 R 1.40°/" in section and "POOR" in section  # the injected validation, per setup and eye
    assert "<td>3, 4</td>" in section  # drift 1.8°, 2.4°: the alarm's trials (above 1° twice in a row)
    assert "<td>2, 3</td>" in section  # the excluded trials, numbered from 1
    assert "Excluded trials (2)" in section and "note: looked away" in section
    assert "Notes (4)" in section and "sneezed" in section and "keep trial" in section
    sessions = pd.read_csv(tmp_path / "out" / "quality_sessions.csv")
    # the simulated loss spans 40 % of the display period; sampled, its share is a sample short of it
    assert sessions.loc[0, "track_loss_max"] >= 0.35 and sessions.loc[0, "notes"] == 4


def test_validation_limit_and_its_scope(session):
    poor = session_quality("session", session["folder"], rules=QualityRules(max_validation_deg=1.0))
    assert poor is not None and poor.trials["excluded"].all()  # 1.40° in force for every trial
    assert set(poor.trials["reasons"]) == {"validation 1.40° > 1°"}
    lenient = session_quality("session", session["folder"], rules=QualityRules(max_validation_deg=1.5))
    assert lenient is not None and not lenient.trials["excluded"].any()
    assert lenient.trials["validation_avg_deg"].round(2).tolist() == [1.4] * 4
    with pytest.raises(ValueError, match="apply to --dataset session"):
        session_quality("osie", session["folder"], rules=QualityRules(max_track_loss=0.2))
    assert session_quality("osie", session["folder"]) is None


def test_the_validation_limit_judges_the_eye_analysed(session, tmp_path):
    """Oracle: a copy of the session whose every setup validated the left eye too, at 2.5° (its
    manifest edited): the right eye's fixations are judged by the right eye's 1.40°, left-eye
    fixations by the left eye's 2.5°, fixations naming no eye by the worse."""
    folder = tmp_path / "sessions" / "Q01"
    shutil.copytree(session["folder"], folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for segment in manifest["segments"]:
        for setup in segment["calibrations"]:
            right = next(v for v in setup["validations"] if v["eye"] == "R")
            setup["validations"].append({**right, "eye": "L", "avg_error_deg": 2.5, "max_error_deg": 3.1})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    fixations = read_session(folder)
    assert set(fixations["eye"]) == {"R"}  # the simulated tracker records the right eye
    rules = QualityRules(max_validation_deg=2.0)

    right = session_quality("session", folder, rules=rules, fixations=fixations)
    assert right is not None and not right.trials["excluded"].any()
    assert right.trials["validation_eye"].tolist() == ["R"] * 4
    assert right.trials["validation_avg_deg"].round(2).tolist() == [1.4] * 4
    left = session_quality("session", folder, rules=rules, fixations=fixations.assign(eye="L"))
    assert left is not None and left.trials["excluded"].all()
    assert set(left.trials["reasons"]) == {"validation 2.50° > 2°"}
    unnamed = session_quality("session", folder, rules=rules, fixations=fixations.assign(eye=""))
    assert unnamed is not None and unnamed.trials["validation_eye"].tolist() == ["L"] * 4
    # a trial without fixations takes its session's eye
    others = session_quality("session", folder, rules=rules, fixations=fixations[fixations["trial"] != 0])
    assert others is not None and others.trials.loc[0, "validation_eye"] == "R"

    params = _analyze({**session, "folder": folder}, tmp_path / "out", "--max-validation-deg", "2")
    assert params["quality"]["excluded_trials"] == []


def test_sessions_without_trial_records_have_an_empty_quality_table(tmp_path):
    folder = tmp_path / "sessions" / "all"  # a folder holding a fixation table only
    folder.mkdir(parents=True)
    (folder / "fixations.csv").write_text("")
    quality = session_quality("session", tmp_path / "sessions", rules=QualityRules(max_track_loss=0.1))
    assert quality is not None and quality.trials.empty and quality.sessions.empty
    assert "hold no trial records" in report_section(quality.tables)
