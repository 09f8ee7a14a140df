"""Whole sessions in a real PsychoPy window under Xvfb, with the virtual microphone.

Each session runs as ``lookwhere run`` in a subprocess (as the lab runs it), with short
trials (400 ms) to keep the file fast.
"""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest
import soundfile as sf

from experiment.config import trial_order
from experiment.records import SessionRecords
from lookwhere.records import FIXATION_COLUMNS
from stimuli.sets import StimulusSet
from tests.experiment.conftest import MIC_LEVEL_DBFS, run_probe, run_session, start_session

DURATION_MS = 400
COMMON = ("--duration-ms", str(DURATION_MS), "--auto-accept-drift-ms", "150", "--windowed")


def _check_complete_session(folder, stimuli, *, seed: int, trials: int) -> SessionRecords:
    records = SessionRecords(folder)
    rows = records.completed_trials()
    # Oracle for the order: the seeded permutation of the sorted ids (config.trial_order).
    expected = trial_order(StimulusSet(stimuli).image_ids, seed=seed, trials=trials)
    assert [row["trial"] for row in rows] == list(range(trials))
    assert [row["image"] for row in rows] == expected
    for row in rows:
        # Offset is the flip nearest the deadline (Xvfb frames are ~5–20 ms; on a loaded machine
        # a frame can take longer, which the row then shows, and flags as an overrun).
        assert abs(row["stimulus_duration_ms"] - DURATION_MS) < max(40, row["interval_max_ms"])
        assert row["overrun"] == (row["stimulus_duration_ms"] > DURATION_MS + row["frame_period_ms"])
        audio, rate = sf.read(folder / row["mic_file"])
        assert abs(audio.size / rate * 1000 - row["stimulus_duration_ms"]) < 25
        # The virtual microphone plays a 0.25-amplitude sine: -15.05 dBFS (16-bit rounding aside).
        assert row["mic_level_dbfs"] == pytest.approx(MIC_LEVEL_DBFS, abs=0.5)
        assert row["frames"] > 10 and row["interval_p50_ms"] > 0
        # Flip-to-flip intervals tile the display period (onset flip to offset flip).
        intervals = np.array(row["frame_intervals_ms"])
        assert intervals.size == row["frames"] - 1
        assert intervals.sum() == pytest.approx(row["stimulus_duration_ms"], abs=0.01 * intervals.size)
    manifest = records.read_manifest()
    assert manifest["status"] == "completed"
    assert manifest["seed"] == seed and manifest["order"] == expected
    return records


def test_simulated_session_complete(session_env, four_images, tmp_path):
    result = run_session(
        session_env,
        "--participant",
        "P01",
        "--stimuli",
        str(four_images),
        "--tracker",
        "simulated",
        "--out",
        str(tmp_path),
        "--trials",
        "3",
        "--seed",
        "11",
        *COMMON,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = _check_complete_session(tmp_path / "P01", four_images, seed=11, trials=3)
    fixations = records.read_fixations()
    assert tuple(fixations.columns) == FIXATION_COLUMNS
    rows = records.completed_trials()
    assert fixations.groupby("trial").size().to_dict() == {r["trial"]: r["fixations"] for r in rows}
    # ~250 ms fixations over 400 ms: at least one per trial; all on the 800×600 image, which the
    # simulated participant looks at (pre-onset fixations are on the central dot, also on it).
    assert (fixations.groupby("trial").size() >= 1).all()
    assert fixations["x_image_px"].between(0, 800).all() and fixations["y_image_px"].between(0, 600).all()
    # Display → image mapping: 800×600 at scale 1.8 (×2 does not fit 1080 px), centred.
    np.testing.assert_allclose(fixations["x_image_px"], (fixations["x_display_px"] - 240) / 1.8)
    np.testing.assert_allclose(fixations["y_image_px"], fixations["y_display_px"] / 1.8)
    # EyeLink-like events: 250 Hz sample grid, duration = end - start + one sample.
    np.testing.assert_allclose(fixations["duration_ms"], fixations["end_ms"] - fixations["start_ms"] + 4)
    # The tracker records 300 ms past the offset: the fixation under way at the offset ends after it
    # (left out by the display-period rule) rather than cut short by the stop, inside the period;
    # one cut by the stop, >= 300 ms after the offset, is flagged truncated.
    after = fixations["end_ms"] > fixations["stimulus_duration_ms"]
    assert after.groupby(fixations["trial"]).any().all()
    cut = fixations[fixations["truncated"]]
    assert (cut["end_ms"] >= cut["stimulus_duration_ms"] + 300 - 4).all()
    assert (fixations["participant"] == "P01").all()
    # The analysis reads the session's table as it is: one paper heatmap per image shown, built
    # from the fixations entirely within the display period (select_fixations' rule).
    from analysis.heatmap import heatmaps  # the test may use analysis; the experiment may not

    maps = heatmaps(fixations, {image: (600, 800) for image in fixations["image"].unique()})
    inside = fixations[(fixations["start_ms"] >= 0) & (fixations["end_ms"] <= fixations["stimulus_duration_ms"])]
    assert sorted(key[0] for key, m in maps.items() if m.max() > 0) == sorted(inside["image"].unique())


def test_eyelink_dummy_session_complete(session_env, four_images, tmp_path):
    result = run_session(
        session_env,
        "--participant",
        "P02",
        "--stimuli",
        str(four_images),
        "--tracker",
        "eyelink-dummy",
        "--out",
        str(tmp_path),
        "--trials",
        "2",
        "--seed",
        "5",
        *COMMON,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = _check_complete_session(tmp_path / "P02", four_images, seed=5, trials=2)
    segment = records.read_manifest()["segments"][0]
    assert segment["tracker"] == "pylink dummy connection"
    assert segment["edf"] == {
        "transferred": False,
        "host_file": "P02.EDF",
        "reason": "dummy connection",
    }
    # The dummy connection delivers no events: the trials ran, with no fixations.
    assert [row["fixations"] for row in records.completed_trials()] == [0, 0]


def _wait_for_trials(folder, count: int, process, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    path = folder / "trials.jsonl"
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        assert process.poll() is None, process.stdout.read()[-3000:]
        time.sleep(0.02)
    pytest.fail(f"{count} trials were not written within {timeout_s} s")


def test_sigkill_then_resume_has_every_trial_once(session_env, four_images, tmp_path):
    arguments = (
        "--participant",
        "P03",
        "--stimuli",
        str(four_images),
        "--tracker",
        "simulated",
        "--out",
        str(tmp_path),
        "--seed",
        "7",
        *COMMON,
    )
    folder = tmp_path / "P03"
    process = start_session(session_env, *arguments)
    _wait_for_trials(folder, 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    before = (folder / "trials.jsonl").read_text().splitlines()
    done_before = [json.loads(line)["trial"] for line in before if line.endswith("}")]

    refused = run_session(session_env, *arguments)
    assert refused.returncode == 2 and "--resume" in refused.stderr

    resumed = run_session(session_env, *arguments, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = _check_complete_session(folder, four_images, seed=7, trials=4)
    after = (folder / "trials.jsonl").read_text().splitlines()
    # Completed trials are kept byte for byte; the rest were run by the resumed segment.
    assert after[: len(done_before)] == before[: len(done_before)]
    assert [json.loads(line)["segment"] for line in after] == [0] * len(done_before) + [1] * (4 - len(done_before))
    fixations = records.read_fixations()
    assert not fixations.duplicated(["trial", "start_ms"]).any()
    assert sorted(fixations["trial"].unique()) == [0, 1, 2, 3]
    segments = records.read_manifest()["segments"]
    assert [s["edf_name"] for s in segments] == ["P03", "P03_1"]
    assert segments[1]["first_trial"] == len(done_before)
    again = run_session(session_env, *arguments, "--resume")
    assert again.returncode == 2 and "all 4 trials are done" in again.stderr


@pytest.mark.parametrize(
    ("signum", "cause"),
    [(signal.SIGTERM, "SessionInterrupted"), (signal.SIGINT, "KeyboardInterrupt")],
)
def test_sigterm_and_ctrl_c_save_and_mark_interrupted(session_env, four_images, tmp_path, signum, cause):
    folder = tmp_path / "P04"
    process = start_session(
        session_env,
        "--participant",
        "P04",
        "--stimuli",
        str(four_images),
        "--tracker",
        "simulated",
        "--out",
        str(tmp_path),
        "--seed",
        "3",
        *COMMON,
    )
    _wait_for_trials(folder, 1, process)
    process.send_signal(signum)
    assert process.wait(timeout=30) == 1
    records = SessionRecords(folder)
    manifest = records.read_manifest()
    assert manifest["status"] == f"interrupted ({cause})"
    assert manifest["trials_done"] == len(records.completed_trials()) >= 1
    assert manifest["segments"][0]["status"] == manifest["status"]


def test_stream_hook_receives_valid_protocol_records(session_env, four_images, tmp_path):
    observed = run_probe(session_env, "_sink_probe", str(four_images), str(tmp_path), timeout_s=90)
    kinds = observed["kinds"]
    # Every record passed lookwhere.protocol.encode's schema check (the probe raises otherwise).
    assert kinds[0] == "session_start" and kinds[-1] == "session_end"
    assert kinds.count("trial_start") == kinds.count("trial_end") == 2
    rows = SessionRecords(tmp_path / "SINK").completed_trials()
    assert kinds.count("fixation") == sum(row["fixations"] for row in rows)
    assert kinds.count("mic_level") >= 2 * 2  # every 250 ms over 600 ms trials
    # the live cursor: one gaze record per frame of an image while the tracker records
    assert 0.9 * sum(row["frames"] for row in rows) <= kinds.count("gaze") <= sum(row["frames"] for row in rows)
    assert observed["calls"]["flush"] == 2 and observed["calls"]["close"] == 1
    # The recording streamed while the image was shown (plus its end, after the offset) is the WAV.
    for row in rows:
        chunks = observed["audio"][str(row["trial"])]
        assert len(chunks) >= 4  # every 100 ms over a 600 ms trial
        assert {offset_ms for offset_ms, _, _ in chunks} == {row["mic_offset_ms"]}
        starts = [first for _, first, _ in chunks]
        assert starts == list(np.cumsum([0] + [n for _, _, n in chunks[:-1]]))  # no gap, no overlap
        streamed = np.frombuffer((tmp_path / f"streamed_{row['trial']}.pcm").read_bytes(), "<i2")
        recorded, _ = sf.read(tmp_path / "SINK" / row["mic_file"], dtype="int16")
        np.testing.assert_array_equal(streamed, recorded)
    assert observed["calls"]["service"] >= sum(row["frames"] for row in rows) - 2


@pytest.fixture(scope="module")
def keys_observed(session_env, four_images, tmp_path_factory) -> dict:
    """What ``_keys_probe`` observed (its sessions run once for the tests below)."""
    out = tmp_path_factory.mktemp("keys")
    return run_probe(session_env, "_keys_probe", str(four_images), str(out), timeout_s=90)


def test_operator_keys_on_the_drift_correction_screen(keys_observed):
    observed = keys_observed
    first, second, third = observed["a"]
    drift = first["drift_correction"]
    assert (drift["accepted_by"], drift["recalibrations"]) == (
        "space",
        1,
    )  # Esc → setup, then space
    assert drift["performed"] is False  # the simulated tracker has no drift correction of its own
    assert (second["drift_correction"]["accepted_by"], second["skipped"]) == ("space", False)
    assert third["skipped"] is True and third["fixations"] == 0 and "mic_file" not in third
    assert observed["b_quit"] and observed["b_status"] == "quit by operator" and observed["b_trials"] == 0
    # Every scripted key was read on the screen it was meant for.
    assert observed["a_left"] == observed["b_left"] == observed["c_left"] == 0


def test_every_waiting_screen_services_the_stream_and_says_what_it_waits_for(keys_observed):
    # Oracle: the screen each service call was made on (drift dot, pause, quit confirmation,
    # image) and the lookwhere.protocol.WAITING_FOR value that screen stands for.
    assert {tuple(pair) for pair in keys_observed["waiting"]} == {
        ("drift", "drift_correction"),
        ("paused", "pause"),
        ("confirm", "confirm_quit"),
        ("image", None),
    }


def test_quit_key_during_the_image_aborts_the_trial(keys_observed):
    observed = keys_observed
    # q during trial 0's image, n: the trial ran again to its end (one row, one aborted run);
    # Esc during trial 1's image, y: the session quit with trial 1 not done and none of its data.
    assert observed["c_quit"] and observed["c_status"] == "quit by operator"
    (first,) = observed["c_quit_rows"]
    assert (first["trial"], first["aborted_runs"], first["segment"]) == (0, 1, 0)
    assert abs(first["stimulus_duration_ms"] - 600) < 40  # the re-run, not the aborted one
    assert observed["c_quit_fixation_trials"] == [0]
    # --resume re-ran trial 1 and ran trial 2: every trial once, trial 0 kept as it was.
    rows = observed["c_rows"]
    assert [(r["trial"], r["segment"], r["aborted_runs"]) for r in rows] == [
        (0, 0, 1),
        (1, 1, 0),
        (2, 1, 0),
    ]
    assert rows[0] == first
    assert observed["c_fixation_duplicates"] == 0
    assert {int(t): n for t, n in observed["c_fixations_per_trial"].items()} == {
        r["trial"]: r["fixations"] for r in rows
    }


def test_gaze_contingent_start(session_env, four_images, tmp_path):
    # No key and no auto-accept: only the simulated participant's gaze can start the images.
    result = run_session(
        session_env,
        "--participant",
        "P05",
        "--stimuli",
        str(four_images),
        "--tracker",
        "simulated",
        "--out",
        str(tmp_path),
        "--trials",
        "3",
        "--seed",
        "13",
        "--duration-ms",
        str(DURATION_MS),
        "--windowed",
        "--drift-start",
        "gaze",
        "--gaze-hold-ms",
        "300",
        "--gaze-radius-px",
        "60",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = _check_complete_session(tmp_path / "P05", four_images, seed=13, trials=3)
    for row in records.completed_trials():
        drift = row["drift_correction"]
        assert drift["accepted_by"] == "gaze"
        # Held for the hold time, accepted at the first flip after it (Xvfb frames ≤ ~20 ms).
        assert 300 <= drift["gaze_hold_ms"] < 340
        assert drift["wait_ms"] >= drift["gaze_hold_ms"]
        assert row["fixations"] >= 1
