"""A simulated session whose tracker injects a poor validation, growing drift and a track-loss
episode (issue 15): the session folder, the stream (the sender's journal: every record as sent)
and the server's live state built from that stream all show them.

Oracles: the injected values themselves (``--sim-validation-deg 1.4``: the average error of the
first validation exactly; drift 0.6° per trial: trial ``k`` measures ``0.6·(k+1)`` ± 0.05° noise
per axis; ``--sim-track-loss-trials 2``: 40 % of trial 2's display lost), the EyeLink host's grading
rule, and the issue's alarm rule (above 1.0° twice in a row).
"""

from __future__ import annotations

import json
import socket

import pytest

from experiment.records import SessionRecords
from lookwhere.protocol import read_journal, validate_map
from server.state import LiveState
from stimuli.sets import StimulusSet
from tests.experiment.conftest import run_session

DRIFT_DEG = 0.6


def _unused_endpoint() -> str:
    """A loopback endpoint nobody listens on: the records stay in the session's journal."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture(scope="module")
def session(session_env, four_images, tmp_path_factory):
    out = tmp_path_factory.mktemp("quality")
    result = run_session(
        session_env,
        *("--participant", "Q01", "--stimuli", str(four_images), "--tracker", "simulated"),
        *("--out", str(out), "--trials", "4", "--seed", "3", "--duration-ms", "400"),
        *("--auto-accept-drift-ms", "150", "--windowed", "--no-mic", "--server", _unused_endpoint()),
        *("--sim-validation-deg", "1.4", "--sim-drift-deg-per-trial", str(DRIFT_DEG)),
        *("--sim-track-loss-trials", "2", "--viewing-distance-cm", "65"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = out / "Q01"
    records = [validate_map(data) for _, data in read_journal(folder / "stream.journal")]
    return folder, records, four_images


def test_session_folder_holds_validation_drift_and_track_loss(session):
    folder, _, _ = session
    config = json.loads((folder / "config.json").read_text())
    # --viewing-distance-cm given, the screen width not: only that one is the lab's default
    assert (config["viewing_distance_cm"], config["viewing_defaults"]) == (65.0, ["screen_width_cm"])
    (calibration,) = SessionRecords(folder).read_manifest()["segments"][0]["calibrations"]
    (validation,) = calibration["validations"]
    assert validation["avg_error_deg"] == pytest.approx(1.4)
    assert validation["grade"] == "POOR"  # the host's rule: average ≥ 1.0°
    assert calibration["message"].startswith("!CAL VALIDATION HV9 R RIGHT POOR ERROR 1.40 avg.")
    rows = SessionRecords(folder).completed_trials()
    offsets = [row["drift_correction"]["offset_deg"] for row in rows]
    for trial, offset in enumerate(offsets):
        assert offset == pytest.approx(DRIFT_DEG * (trial + 1), abs=0.25)  # 0.05° noise per axis, 5σ
    assert {row["drift_correction"]["outcome"] for row in rows} == {"accepted"}
    losses = [row["quality"]["track_loss"] for row in rows]
    assert losses[2] >= 0.4 - 0.05  # 40 % of the period on the 4 ms grid (blinks only add)
    assert all(row["quality"]["samples"] > 80 for row in rows)  # ≥ 400 ms at 250 Hz, less rounding
    assert all(900 - 20 < row["quality"]["mean_pupil"] < 900 + 20 for row in rows)


def test_stream_carries_the_quality_records(session):
    folder, records, _ = session
    kinds = [record.kind for record in records]
    assert kinds.count("validation") == 1 and kinds.count("drift_check") == kinds.count("trial_quality") == 4
    # each drift check comes before its trial's image, each trial quality before its trial end
    assert kinds.index("drift_check") < kinds.index("trial_start") < kinds.index("trial_quality")
    assert kinds.index("trial_quality") < kinds.index("trial_end")
    rows = SessionRecords(folder).completed_trials()
    checks = [record for record in records if record.kind == "drift_check"]
    assert [c.offset_deg for c in checks] == [row["drift_correction"]["offset_deg"] for row in rows]
    (start,) = [record for record in records if record.kind == "session_start"]
    assert (start.viewing_distance_cm, start.screen_width_cm, start.viewing_default) == (65.0, 53.1, True)


def test_server_state_shows_the_poor_validation_and_the_drift_alarm(session):
    _, records, stimuli = session
    state = LiveState(StimulusSet(stimuli))
    state.apply_all(records)
    section = state.quality_log.section(state.session)
    (validation,) = section.validations
    assert (validation.eye, validation.level) == ("R", "poor")
    assert [entry.above for entry in section.drift] == [False, True, True, True]  # 0.6, 1.2, 1.8, 2.4°
    assert [entry.alarm for entry in section.drift] == [False, False, True, True]
    assert section.alarm
    lost = section.track_loss[2].track_loss
    assert lost is not None and lost >= 0.35
    assert section.viewing is not None and section.viewing.default is True
