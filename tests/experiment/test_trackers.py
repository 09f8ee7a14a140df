"""Tracker backends: the simulated participant's EyeLink-like timing, replay, pylink's dummy."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiment.trackers import EyeLinkTracker, SimulatedTracker, read_scanpaths
from stimuli.geometry import DisplayGeometry
from stimuli.sets import StimulusSet


@pytest.fixture
def tracker(four_images):
    return SimulatedTracker(
        StimulusSet(four_images),
        screen_width_px=1920,
        screen_height_px=1080,
        scale=2.0,
        sample_rate_hz=250,
        seed=1,
    )


def _record(tracker, image_id: str, seconds: float) -> tuple[float, list]:
    tracker.send_message(f"!V TRIAL_VAR image {image_id}")
    tracker.start_recording()
    tracker.send_message("IMAGE_ONSET")
    onset = tracker.tracker_time_ms()
    events = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        drained = tracker.drain()
        # EyeLink sends ENDFIX when a fixation ends: nothing may arrive before its end.
        assert all(e.end_tracker_ms <= tracker.tracker_time_ms() for e in drained)
        events += drained
        time.sleep(0.005)
    tracker.send_message("IMAGE_OFFSET")
    tracker.stop_recording()
    events += tracker.drain()
    assert tracker.drain() == []
    return onset, events


def test_simulated_fixations_have_eyelink_timing_and_lie_on_the_image(tracker):
    onset, events = _record(tracker, "1001", 1.5)
    assert 3 <= len(events) <= 15  # mean fixation 250 ms + saccade 40 ms over 1.5 s ≈ 5
    start = np.array([e.start_tracker_ms for e in events])
    end = np.array([e.end_tracker_ms for e in events])
    # Samples every 4 ms (250 Hz) on the tracker clock; duration counts the last sample.
    np.testing.assert_allclose((start - start[0]) % 4, 0, atol=1e-6)
    np.testing.assert_allclose([e.duration_ms for e in events], end - start + 4)
    assert (start[1:] >= end[:-1]).all() and (end >= start).all()  # no overlap: saccades between
    assert start[0] > 1e6  # an arbitrary clock origin, like the EyeLink host's
    geometry = DisplayGeometry.fit(800, 600, scale=2.0)
    on_image = [e for e in events if e.start_tracker_ms >= onset]
    x, y = geometry.display_to_image([e.x_display_px for e in on_image], [e.y_display_px for e in on_image])
    assert geometry.on_image(x, y).all()


def test_simulated_replays_recorded_scanpaths(four_images, tmp_path):
    path = tmp_path / "scanpaths.csv"
    pd.DataFrame(
        {
            "observer": ["s1"] * 3,
            "image": ["1002"] * 3,
            "x_image_px": [100.0, 400.0, 700.0],
            "y_image_px": [50.0, 300.0, 550.0],
            "duration_ms": [120.0, 160.0, 2000.0],
        }
    ).to_csv(path, index=False)
    tracker = SimulatedTracker(
        StimulusSet(four_images),
        screen_width_px=1920,
        screen_height_px=1080,
        scale=2.0,
        seed=2,
        scanpaths=read_scanpaths(path),
    )
    _, events = _record(tracker, "1002", 0.6)
    geometry = DisplayGeometry.fit(800, 600, scale=2.0)
    x, y = geometry.display_to_image([e.x_display_px for e in events], [e.y_display_px for e in events])
    # The recorded positions, in order (oracle: the table); the last is cut by the offset.
    np.testing.assert_allclose(x[:3], [100, 400, 700])
    np.testing.assert_allclose(y[:3], [50, 300, 550])
    assert [round(e.duration_ms) for e in events[:2]] == [
        124,
        164,
    ]  # 120/160 ms on the 4-ms grid, + 1 sample


def test_read_scanpaths_names_missing_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("image,x,y\n1001,1,2\n")
    with pytest.raises(ValueError, match="lacks the columns.*duration_ms"):
        read_scanpaths(path)


def test_eyelink_dummy_connection_runs_the_call_sequence():
    tracker = EyeLinkTracker(None)
    assert tracker.connect() == "pylink dummy connection"
    tracker.open_edf("TEST")
    tracker.configure(screen_width_px=1920, screen_height_px=1080, sample_rate_hz=250)
    assert tracker.calibrate().skipped and tracker.drift_correct(960, 540).to_dict() == {"performed": False}
    tracker.start_recording()
    tracker.send_message("IMAGE_ONSET")
    first = tracker.tracker_time_ms()
    time.sleep(0.02)
    assert tracker.tracker_time_ms() - first >= 15  # a real ms clock, not the dummy's 2**32 - 1
    assert tracker.drain() == []
    tracker.stop_recording()
    assert tracker.receive_edf(Path("unused.edf")).transferred is False
    tracker.close()
    tracker.close()


def test_unreachable_eyelink_host_fails_with_a_clear_message():
    # Nothing listens for EyeLink's protocol on the loopback address: pylink gives up in ~3 s.
    with pytest.raises(ConnectionError, match=r"EyeLink host at 127\.0\.0\.1.*--tracker eyelink-dummy"):
        EyeLinkTracker("127.0.0.1").connect()


def test_replays_osie_observers_from_a_tidy_table(four_images, osie_fixations_path, tmp_path):
    from analysis.readers.osie import read_osie  # the test may use analysis; the experiment may not

    osie = read_osie(osie_fixations_path, images=["1003"])
    path = tmp_path / "osie.csv"
    osie.to_csv(path, index=False)
    scanpaths = read_scanpaths(path)
    # Oracle: the reader's own table, observer by observer, in viewing order.
    assert len(scanpaths["1003"]) == osie["participant"].nunique()
    first = osie[osie["participant"] == osie["participant"].iloc[0]]
    np.testing.assert_allclose(scanpaths["1003"][0], first[["x_image_px", "y_image_px", "duration_ms"]].to_numpy())


class _FakeEyeLink:
    """Stands in for a connected ``pylink.EyeLink`` (no hardware here): scripted link events and
    EDF transfers, with pylink's own constants."""

    def __init__(self, events=(), transfers=()):
        import pylink

        self._pylink = pylink
        self._events = list(events)
        self._current = None
        self._transfers = list(transfers)
        self.calls: list[str] = []

    def getNextData(self):
        if not self._events:
            return 0
        self._current = self._events.pop(0)
        return self._current[0]

    def getFloatData(self):
        assert self._current is not None  # getNextData ran
        return self._current[1]

    def setOfflineMode(self):
        self.calls.append("setOfflineMode")

    def closeDataFile(self):
        self.calls.append("closeDataFile")

    def receiveDataFile(self, host_name, destination):
        self.calls.append(f"receiveDataFile {host_name}")
        outcome = self._transfers.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        sent, written = outcome
        with open(destination, "wb") as handle:
            handle.write(b"x" * written)
        return sent


class _EndFix:
    def __init__(self, eye, start, end, x, y, pupil):
        self._values = eye, start, end, (x, y), pupil

    def getEye(self):
        return self._values[0]

    def getStartTime(self):
        return self._values[1]

    def getEndTime(self):
        return self._values[2]

    def getAverageGaze(self):
        return self._values[3]

    def getAveragePupilSize(self):
        return self._values[4]


def _connected(fake, sample_rate_hz=250) -> EyeLinkTracker:
    tracker = EyeLinkTracker("100.1.1.1")
    tracker._el = fake  # what connect() would have set on a real host
    tracker._edf_name = "P07"
    tracker._sample_ms = 1000.0 / sample_rate_hz
    return tracker


def test_eyelink_drain_keeps_only_end_of_fixation_events():
    import pylink

    fake = _FakeEyeLink(
        events=[
            (pylink.STARTFIX, None),
            (pylink.ENDFIX, _EndFix(1, 1000, 1196, 812.5, 400.25, 950.0)),
            (pylink.SAMPLE_TYPE, None),
            (pylink.ENDFIX, _EndFix(0, 1240, 1500, 10.0, 20.0, 800.0)),
        ]
    )
    fixations = _connected(fake).drain()  # getEye(): 0 left, 1 right
    # EFIX convention: duration = end - start + one sample (4 ms at 250 Hz).
    assert [(f.eye, f.start_tracker_ms, f.end_tracker_ms, f.duration_ms) for f in fixations] == [
        ("R", 1000.0, 1196.0, 200.0),
        ("L", 1240.0, 1500.0, 264.0),
    ]
    assert (fixations[0].x_display_px, fixations[0].y_display_px, fixations[0].pupil) == (
        812.5,
        400.25,
        950.0,
    )


def test_eyelink_edf_transfer_retries_and_checks_the_size(tmp_path):
    fake = _FakeEyeLink(transfers=[RuntimeError("link busy"), (2048, 2048)])
    outcome = _connected(fake).receive_edf(tmp_path / "P07.edf").to_dict()
    assert outcome == {
        "transferred": True,
        "host_file": "P07.EDF",
        "path": str(tmp_path / "P07.edf"),
        "bytes": 2048,
    }
    assert fake.calls[:2] == ["setOfflineMode", "closeDataFile"]
    assert fake.calls.count("receiveDataFile P07.EDF") == 2


def test_eyelink_edf_transfer_that_keeps_failing_names_the_host_file(tmp_path):
    fake = _FakeEyeLink(transfers=[(2048, 1000)] * 3)  # truncated every time
    outcome = _connected(fake).receive_edf(tmp_path / "P07.edf", retries=3).to_dict()
    assert outcome == {"transferred": False, "host_file": "P07.EDF", "reason": "3 attempts failed"}
