"""``lookwhere run --lsl``: the Lab Streaming Layer outlets of a session (experiment.lsl).

A real simulated session (PsychoPy under Xvfb, the virtual microphone) runs as ``lookwhere run``
while inlets in this process resolve and read every stream. Oracles: the session's own records
(``trials.jsonl``'s trials and flip times, ``fixations.csv``'s values), the simulated tracker's
250 Hz sample grid (the gaze timestamps 4 ms apart, each fixation's start on a gaze sample) and
LSL's clock in this process (the same machine: ``local_clock`` needs no correction).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import numpy as np
import pandas as pd
import pytest

from experiment.config import SessionConfig
from experiment.lsl import (
    FIXATION_CHANNELS,
    GAZE_CHANNELS,
    MARKER_EVENTS,
    LslOutlets,
    format_marker,
    import_pylsl,
    parse_marker,
)
from experiment.preflight import PreflightError, preflight
from experiment.records import SessionRecords
from experiment.trackers import FIXATIONAL_NOISE_PX, SimulatedTracker
from lookwhere.notes import OperatorNote
from stimuli.sets import StimulusSet
from tests.experiment.conftest import REPO, start_session

pylsl = pytest.importorskip("pylsl")

PARTICIPANT = f"LSL{os.getpid()}"  # the inlets find this run's outlets, not another's
DURATION_MS = 500
TRIALS = 3
RATE_HZ = 250
SAMPLE_S = 1 / RATE_HZ


def _inlet(kind: str, participant: str = PARTICIPANT):
    """An inlet on this test's ``lookwhere <kind>`` outlet (its participant: not another run's)."""
    predicate = f"name='lookwhere {kind}' and desc/participant='{participant}'"
    (info,) = pylsl.resolve_bypred(predicate, minimum=1, timeout=60)
    # No clock post-processing (one machine: the raw stamps are what the oracle is about); no
    # recovery, whose reconnection attempts stall pulls once the session has closed its outlets.
    inlet = pylsl.StreamInlet(info, max_buflen=60, recover=False)
    inlet.open_stream(timeout=10)
    return inlet


def _pull_all(inlets: dict, process: subprocess.Popen) -> dict[str, tuple[list, list, list]]:
    """Every stream's samples, timestamps and arrival times (``local_clock`` at the pull), pulled
    every 10 ms until the ``session_end`` marker, then once more (the outlets outlive that marker
    by ``CLOSE_GRACE_S``; a closed outlet's inlet holds nothing more)."""
    received: dict[str, tuple[list, list, list]] = {kind: ([], [], []) for kind in inlets}
    last_round = False
    while True:
        ended = process.poll() is not None
        for kind, inlet in inlets.items():
            try:
                samples, stamps = inlet.pull_chunk(timeout=0.0)
            except pylsl.util.LostError:
                continue
            arrived = pylsl.local_clock()
            received[kind][0].extend(samples)
            received[kind][1].extend(stamps)
            received[kind][2].extend([arrived] * len(stamps))
        if last_round or ended:
            return received
        last_round = any(sample[0].startswith("session_end") for sample in received["Markers"][0][-1:])
        time.sleep(0.01)


@pytest.fixture(scope="module")
def lsl_session(session_env, four_images, tmp_path_factory):
    out = tmp_path_factory.mktemp("lsl")
    process = start_session(
        session_env,
        *("--participant", PARTICIPANT, "--stimuli", str(four_images), "--tracker", "simulated"),
        *("--out", str(out), "--trials", str(TRIALS), "--seed", "7", "--duration-ms", str(DURATION_MS)),
        *("--auto-accept-drift-ms", "150", "--windowed", "--lsl", "--lsl-wait-s", "60"),
    )
    try:
        inlets = {kind: _inlet(kind) for kind in ("Gaze", "Fixations", "Markers")}
        infos = {kind: inlet.info(timeout=10) for kind, inlet in inlets.items()}
        received = _pull_all(inlets, process)
        output = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output[-3000:]
    return out / PARTICIPANT, infos, received


def _markers(received) -> tuple[list[tuple[str, dict]], np.ndarray, np.ndarray]:
    samples, stamps, arrived = received["Markers"]
    return [parse_marker(sample[0]) for sample in samples], np.array(stamps), np.array(arrived)


def test_streams_are_described_by_the_session(lsl_session):
    folder, infos, _ = lsl_session
    session = SessionRecords(folder).read_manifest()["session"]
    expected = {"Gaze": GAZE_CHANNELS, "Fixations": FIXATION_CHANNELS, "Markers": (("marker", "text"),)}
    for kind, info in infos.items():
        assert (info.name(), info.type()) == (f"lookwhere {kind}", kind)
        assert info.source_id() == f"lookwhere-{session}-{kind.lower()}"
        assert info.desc().child_value("session") == session
        channel, channels = info.desc().child("channels").child("channel"), []
        while not channel.empty():
            channels.append((channel.child_value("label"), channel.child_value("unit")))
            channel = channel.next_sibling()
        assert tuple(channels) == expected[kind]
    assert infos["Gaze"].nominal_srate() == RATE_HZ
    assert infos["Gaze"].channel_format() == pylsl.cf_float32 == infos["Fixations"].channel_format()
    assert infos["Markers"].channel_format() == pylsl.cf_string


def test_markers_follow_the_trials_on_the_session_clock(lsl_session):
    folder, infos, received = lsl_session
    records = SessionRecords(folder)
    rows = records.completed_trials()
    markers, stamps, arrived = _markers(received)
    (calibration,) = records.read_manifest()["segments"][0]["calibrations"]
    grades = " ".join(f"{v['eye']}:{v['grade']}" for v in calibration["validations"])
    expected = [("session_start", {}), ("calibration", {"result": grades})]
    for row in rows:
        trial = {"trial": str(row["trial"]), "image": row["image"]}
        events = ("trial_start", "drift_correction", "image_onset", "image_offset")
        expected += [(event, trial) for event in events] + [("trial_end", {**trial, "result": "done"})]
    expected.append(("session_end", {"status": "completed"}))
    assert [event for event, _ in expected[:7]] + [expected[-1][0]] == list(MARKER_EVENTS)  # every kind
    assert [
        (event, {k: v for k, v in fields.items() if k in ("trial", "image", "result", "status")})
        for event, fields in markers
    ] == expected
    # The session_start marker is stamped with the session clock's zero, also in every description.
    origin = stamps[0]
    for info in infos.values():
        assert float(info.desc().child("clock").child_value("session_origin_lsl_s")) == pytest.approx(origin, abs=1e-6)
    # Onsets and offsets: the flips' times in trials.jsonl (read in the flip's callback, as the
    # marker's stamp; a few µs apart).
    kinds = [event for event, _ in markers]
    onsets = stamps[[i for i, e in enumerate(kinds) if e == "image_onset"]] - origin
    offsets = stamps[[i for i, e in enumerate(kinds) if e == "image_offset"]] - origin
    np.testing.assert_allclose(onsets, [row["onset_session_s"] for row in rows], atol=1e-3)
    np.testing.assert_allclose(offsets, [row["offset_session_s"] for row in rows], atol=1e-3)
    # Live: each marker reached this process within a second of its stamp, during the session
    # (the session_start's stamp is the session clock's zero, seconds before it was sent).
    assert (arrived[1:] - stamps[1:]).max() < 1.0


def test_fixation_records_equal_the_session_table(lsl_session):
    folder, _, received = lsl_session
    samples, stamps, _ = received["Fixations"]
    streamed = pd.DataFrame(samples, columns=[label for label, _ in FIXATION_CHANNELS])
    table = SessionRecords(folder).read_fixations()
    columns = [label for label, _ in FIXATION_CHANNELS]
    assert len(streamed) == len(table) > TRIALS
    # float32 on the wire: 7 significant digits (the onset is read a few µs apart: 0.01 ms).
    np.testing.assert_allclose(streamed[columns], table[columns].to_numpy(float), rtol=1e-6, atol=0.01)
    # Each stamp is the fixation's start: onset (session clock) + start_ms, on the LSL clock.
    markers, marker_stamps, _ = _markers(received)
    rows = {row["trial"]: row for row in SessionRecords(folder).completed_trials()}
    starts_s = np.array([rows[t]["onset_session_s"] for t in table["trial"]]) + table["start_ms"] / 1000
    np.testing.assert_allclose(np.array(stamps) - marker_stamps[0], starts_s, atol=1e-3)


def test_gaze_comes_at_the_tracker_rate_on_the_fixations_clock(lsl_session):
    folder, _, received = lsl_session
    samples, stamps, arrived = received["Gaze"]
    gaze, t_lsl = np.array(samples, dtype=float), np.array(stamps)
    origin = _markers(received)[1][0]
    rows = SessionRecords(folder).completed_trials()
    # One run of 4 ms steps per recording (lead, image, 300 ms after the offset), nothing between
    # (recording stops for the next trial's drift correction, accepted after 150 ms).
    steps = np.diff(t_lsl)
    assert np.all((np.abs(steps - SAMPLE_S) < 1e-6) | (steps > 0.15))
    assert np.sum(steps > 0.15) == TRIALS - 1
    # rate × duration samples during each image (± one at either end)
    t_session = t_lsl - origin
    for row in rows:
        shown = np.sum((t_session >= row["onset_session_s"]) & (t_session < row["offset_session_s"]))
        assert abs(shown - row["stimulus_duration_ms"] / 1000 * RATE_HZ) <= 1
    # Every fixation begins on a gaze sample (one 250 Hz grid, one clock mapping), and the gaze
    # during it sits at its position (jitter σ = FIXATIONAL_NOISE_PX per axis).
    fixations = received["Fixations"]
    for values, start in zip(fixations[0], fixations[1], strict=True):
        assert np.abs(t_lsl - start).min() < 1e-4
        during = (t_lsl >= start) & (t_lsl <= start + (values[3] - 4) / 1000 + 1e-6)
        centre = np.median(gaze[during, :2], axis=0)
        assert np.abs(centre - values[4:6]).max() < 3 * FIXATIONAL_NOISE_PX
        assert np.abs(np.median(gaze[during, 2]) - values[8]) < 30  # the fixation's pupil ± 15
    # Live: the gaze left within a frame or so of being recorded, except after the offset, where
    # the task waits 300 ms before it drains the recording's end.
    latency_s = np.array(arrived) - t_lsl
    assert np.median(latency_s) < 0.1


def test_the_outlets_do_not_hurt_the_frame_timing(lsl_session):
    folder, _, _ = lsl_session
    rows = SessionRecords(folder).completed_trials()
    # The image stays requested ± one frame: no overrun; the loop's own work stays far below a
    # frame (the pushes are ~10–30 µs; the p99 includes the tracker and microphone work too).
    assert [row["overrun"] for row in rows] == [False] * TRIALS
    assert max(row["loop_overhead_p99_us"] for row in rows) < 5000


# -- the parts, without a window -------------------------------------------------------------


def test_markers_round_trip_with_quoted_values():
    text = format_marker("session_end", status="quit by operator", offset_deg=float("nan"), trial=3)
    assert text == "session_end status='quit by operator' offset_deg=nan trial=3"
    assert parse_marker(text) == ("session_end", {"status": "quit by operator", "offset_deg": "nan", "trial": "3"})


@pytest.mark.timeout(120)
def test_an_experimenters_note_is_a_marker_stamped_on_arrival():
    participant = f"{PARTICIPANT}-notes"
    outlets = LslOutlets(
        import_pylsl(), session=str(uuid.uuid4()), participant=participant, tracker="simulated", sample_rate_hz=RATE_HZ,
        screen_width_px=1920, screen_height_px=1080, session_origin_perf_s=time.perf_counter(),
    )  # fmt: skip
    inlet = _inlet("Markers", participant)
    note = OperatorNote(session=outlets.session, kind="exclude_trial", unix_s=1765000000.25, trial=2, image="1001")
    before = pylsl.local_clock()
    outlets.note(note)
    outlets.note(OperatorNote(session=outlets.session, kind="text", unix_s=1765000001.0, text="sneezed — 'twice'"))
    (first,), stamp = inlet.pull_sample(timeout=10)
    (second,), _ = inlet.pull_sample(timeout=10)
    inlet.close_stream()
    outlets.close("completed")
    assert parse_marker(first) == (
        "note",
        {"kind": "exclude_trial", "unix_s": "1765000000.250", "trial": "2", "image": "1001"},
    )
    assert parse_marker(second) == ("note", {"kind": "text", "unix_s": "1765000001.000", "text": "sneezed — 'twice'"})
    assert before <= stamp <= pylsl.local_clock()


def test_simulated_samples_tile_the_recording_on_the_sample_grid(four_images):
    tracker = SimulatedTracker(StimulusSet(four_images), screen_width_px=1920, screen_height_px=1080, scale=2.0)
    assert tracker.drain_samples().t_ms.size == 0  # nothing recorded yet
    tracker.send_message("TRIALID 0")
    tracker.send_message("!V TRIAL_VAR image 1001")
    before_start_ms = tracker.tracker_time_ms()
    tracker.start_recording()
    after_start_ms = tracker.tracker_time_ms()
    blocks, fixations = [], []
    for frame in range(40):
        time.sleep(0.01)
        if frame == 10:
            tracker.send_message("IMAGE_ONSET")
        fixations += tracker.drain()
        blocks.append(tracker.drain_samples())
    before_stop_ms = tracker.tracker_time_ms()
    tracker.stop_recording()
    after_stop_ms = tracker.tracker_time_ms()
    fixations += tracker.drain()
    blocks.append(tracker.drain_samples())
    assert tracker.drain_samples().t_ms.size == 0  # all delivered
    t_ms = np.concatenate([b.t_ms for b in blocks])
    x = np.concatenate([b.x_display_px for b in blocks])
    # Oracle: the 4 ms grid from the recording's start to its stop, each sample once.
    np.testing.assert_allclose(np.diff(t_ms), 4.0)
    assert before_start_ms < t_ms[0] <= after_start_ms + 4
    assert before_stop_ms - 4 < t_ms[-1] <= after_stop_ms
    assert len(fixations) >= 2
    for fixation in fixations:  # on its position from its first sample to its last
        inside = (t_ms >= fixation.start_tracker_ms) & (t_ms <= fixation.end_tracker_ms)
        assert inside.any() and np.abs(x[inside] - fixation.x_display_px).max() < 6 * FIXATIONAL_NOISE_PX


class _LinkSample:
    """What ``EyeLinkTracker.drain`` reads of a pylink sample: right eye only."""

    def __init__(self, t_ms, gaze, pupil):
        self._t, self._gaze, self._pupil = t_ms, gaze, pupil

    def getTime(self):
        return self._t

    def isRightSample(self):
        return self._gaze is not None

    def getRightEye(self):
        return self

    def getGaze(self):
        return self._gaze

    def getPupilSize(self):
        return self._pupil


class _SampleLink:
    """A link whose queue holds only samples (``getNextData`` / ``getFloatData``)."""

    def __init__(self, samples):
        self._queue = list(samples)
        self._current = None

    def setOfflineMode(self):
        pass

    def startRecording(self, *flags):
        return 0

    def eyeAvailable(self):
        return 1  # the right eye

    def getNextData(self):
        import pylink

        if not self._queue:
            return 0
        self._current = self._queue.pop(0)
        return pylink.SAMPLE_TYPE

    def getFloatData(self):
        return self._current


def test_eyelink_samples_reach_the_gaze_stream_with_nan_where_missing():
    import pylink

    from experiment.trackers import EyeLinkTracker

    missing = pylink.MISSING_DATA
    tracker = EyeLinkTracker("100.1.1.1")
    tracker._el = _SampleLink(
        [
            _LinkSample(1000.0, (812.5, 400.25), 950.0),
            _LinkSample(1004.0, (missing, missing), 0.0),  # a blink: no gaze, pupil 0
            _LinkSample(1008.0, None, 0.0),  # the other eye's sample only
        ]
    )
    tracker.start_recording()
    assert tracker.drain() == []
    block = tracker.drain_samples()
    np.testing.assert_array_equal(block.t_ms, [1000.0, 1004.0, 1008.0])
    np.testing.assert_array_equal(block.x_display_px, [812.5, np.nan, np.nan])
    np.testing.assert_array_equal(block.y_display_px, [400.25, np.nan, np.nan])
    np.testing.assert_array_equal(block.pupil, [950.0, np.nan, np.nan])
    assert tracker.drain_samples().t_ms.size == 0
    # the data-quality samples are unchanged: pupil 0 where the eye was lost
    quality = tracker.take_samples()
    assert quality is not None
    np.testing.assert_array_equal(quality.pupil, [950.0, 0.0, 0.0])


def test_a_missing_pylsl_names_the_fix_before_the_session_opens(monkeypatch, four_images, tmp_path):
    monkeypatch.setitem(sys.modules, "pylsl", None)  # what an environment without the extra sees
    with pytest.raises(ModuleNotFoundError, match=r"pip install '\.\[lsl\]'"):
        import_pylsl()
    config = SessionConfig(participant="P09", stimuli=four_images, out=tmp_path, tracker="simulated", microphone=False)
    preflight(config, StimulusSet(four_images), ["1001"])  # without --lsl pylsl is not needed
    with pytest.raises(PreflightError, match=r"--lsl needs pylsl.*pip install '\.\[lsl\]'"):
        preflight(config, StimulusSet(four_images), ["1001"], lsl=True)


def test_the_experiment_imports_pylsl_only_for_lsl():
    probe = (
        "import json, sys\n"
        "import experiment.cli, experiment.task, experiment.lifecycle\n"
        "before = 'pylsl' in sys.modules\n"
        "import experiment.lsl\n"
        "print(json.dumps([before, 'pylsl' in sys.modules, 'torch' in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [False, False, False]
