"""Trial replay: a session streamed to ``lookwhere serve`` as the experiment streams it comes back from
the server's journal as each trial's gaze, fixations and microphone levels (the last run of a trial
run twice), and the page ``/replay`` draws them on a timeline that plays and is scrubbed.

Oracles: the records the test sends (times relative to the onset it sends, display positions mapped
to image pixels by the trial's :class:`~stimuli.geometry.DisplayGeometry`), and counts made from them.
"""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from experiment.sender import Sender
from lookwhere.protocol import (
    DriftCheck,
    FixationRecord,
    GazeSample,
    MicLevel,
    SessionStart,
    TrialEnd,
    TrialQualityRecord,
    TrialStart,
)
from stimuli.geometry import DisplayGeometry
from tests.server._serve import serve_process

WAIT_MS = 10_000
IMAGES = ("1001", "1002")
ONSET_MS = (1000.0, 5000.0, 8000.0)  # session ms: trial 0, trial 1's aborted run, trial 1's last run
SHOWN_MS = 2000.0
GAZE_EVERY_MS = 20.0
#: trial 0's fixations: start, end (ms from the onset), position (image px)
FIXATIONS = ((100.0, 400.0, 200.0, 150.0), (500.0, 900.0, 600.0, 300.0), (1000.0, 1600.0, 400.0, 450.0))
GEOMETRY = DisplayGeometry.fit(800, 600)


class _Stream:
    def __init__(self, endpoint: str, journal) -> None:
        self.sender = Sender(endpoint, journal, heartbeat_interval_s=None)

    def send(self, record):
        record = self.sender.send(record)
        deadline = time.monotonic() + 10.0
        while self.sender.acked_seq < record.seq:
            assert time.monotonic() < deadline, f"the server did not acknowledge {record.kind} seq {record.seq}"
            self.sender.service()
            time.sleep(0.002)
        return record


def _gaze(trial: int, onset_ms: float, offset_px: float) -> list[GazeSample]:
    """A sweep from the image's top-left to its bottom-right over the display period (display px)."""
    t_ms = np.arange(0.0, SHOWN_MS, GAZE_EVERY_MS)
    x_image, y_image = 800 * t_ms / SHOWN_MS + offset_px, 600 * t_ms / SHOWN_MS
    x_display, y_display = GEOMETRY.image_to_display(x_image, y_image)
    return [
        GazeSample(
            trial=trial,
            t_tracker_ms=onset_ms + float(t),
            t_session_ms=onset_ms + float(t),
            eye="R",
            x_display_px=float(x),
            y_display_px=float(y),
            pupil=float("nan"),
        )
        for t, x, y in zip(t_ms, x_display, y_display)
    ]


def _run(stream: _Stream, trial: int, onset_ms: float, *, aborted: bool, offset_px: float = 0.0) -> list[GazeSample]:
    stream.send(
        TrialStart(
            trial=trial,
            image=IMAGES[trial],
            onset_tracker_ms=onset_ms,
            onset_session_ms=onset_ms,
            stimulus_duration_ms=SHOWN_MS,
            **GEOMETRY.to_dict(),
        )
    )
    gaze = _gaze(trial, onset_ms, offset_px)
    for sample in gaze:
        stream.send(sample)
    for number, (start, end, x, y) in enumerate(FIXATIONS if trial == 0 else ()):
        x_display, y_display = GEOMETRY.image_to_display(x, y)
        stream.send(
            FixationRecord(
                participant="P07",
                trial=trial,
                image=IMAGES[trial],
                eye="R",
                start_ms=start,
                end_ms=end,
                duration_ms=end - start,
                x_display_px=float(x_display),
                y_display_px=float(y_display),
                x_image_px=x,
                y_image_px=y,
                stimulus_duration_ms=SHOWN_MS,
                pupil=900.0 + number,
                start_tracker_ms=onset_ms + start,
                end_tracker_ms=onset_ms + end,
                start_session_ms=onset_ms + start,
                end_session_ms=onset_ms + end,
            )
        )
    for t in (250.0, 750.0, 1250.0):
        stream.send(
            MicLevel(trial=trial, t_session_ms=onset_ms + t, rms_dbfs=-30.0 - t / 100, peak_dbfs=-10.0, xruns=0)
        )
    stream.send(TrialQualityRecord(trial=trial, samples=500, track_loss=0.1, blinks=1, mean_pupil=901.0))
    stream.send(
        TrialEnd(
            trial=trial,
            image=IMAGES[trial],
            offset_tracker_ms=onset_ms + SHOWN_MS,
            offset_session_ms=onset_ms + SHOWN_MS,
            n_fixations=3 if trial == 0 else 0,
            dropped_frames=0,
            aborted=aborted,
        )
    )
    return gaze


@pytest.fixture(scope="module")
def replayed(osie_stimuli, tmp_path_factory):
    """A server holding one session: trial 0 with three fixations, trial 1 aborted and run again."""
    folder = tmp_path_factory.mktemp("replay")
    with serve_process(osie_stimuli, folder / "data") as server:
        stream = _Stream(server["zmq_endpoint"], folder / "rig.msgpack")
        start = SessionStart(
            participant="P07", tracker="simulated", n_trials=2, screen_width_px=1920, screen_height_px=1080,
            wall_time_s=time.time(),
        )  # fmt: skip
        session = stream.send(start).session
        stream.send(
            DriftCheck(
                trial=0, eye="R", offset_x_px=30.0, offset_y_px=0.0, offset_deg=0.7, outcome="accepted", attempts=1,
                t_session_ms=900.0,
            )
        )  # fmt: skip
        gaze = _run(stream, 0, ONSET_MS[0], aborted=False)
        _run(stream, 1, ONSET_MS[1], aborted=True, offset_px=-300.0)
        rerun = _run(stream, 1, ONSET_MS[2], aborted=False)
        base = server["url"].rstrip("/")
        with httpx.Client(base_url=base, timeout=10.0) as api:
            saved = api.post("/api/notes", json={"kind": "text", "text": "blinked a lot", "trial": 0})
            assert saved.status_code == 201
        yield {"url": base, "session": session, "gaze": gaze, "rerun": rerun}
        stream.sender.close()


def _image_px(samples: list[GazeSample]) -> tuple[np.ndarray, np.ndarray]:
    return GEOMETRY.display_to_image([s.x_display_px for s in samples], [s.y_display_px for s in samples])


@pytest.mark.timeout(120)
def test_the_journal_gives_back_each_trials_last_run(replayed):
    with httpx.Client(base_url=replayed["url"], timeout=10.0) as api:
        (listed,) = api.get("/api/replay/sessions").json()["sessions"]
        assert listed["session"] == replayed["session"] and listed["participant"] == "P07"
        assert [(t["trial"], t["image"], t["ended"], t["aborted"]) for t in listed["trials"]] == [
            (0, "1001", True, False),
            (1, "1002", True, False),  # the last run's end
        ]
        trial = api.get(f"/api/replay/sessions/{replayed['session']}/trials/0").json()
        x, y = _image_px(replayed["gaze"])
        assert trial["gaze"]["t_ms"] == pytest.approx(list(np.arange(0.0, SHOWN_MS, GAZE_EVERY_MS)))
        assert trial["gaze"]["x_image_px"] == pytest.approx(list(x)) and trial["gaze"]["y_image_px"] == pytest.approx(
            list(y)
        )
        assert trial["gaze"]["pupil"] == [None] * len(x)  # NaN streamed: no pupil
        assert [(f["start_ms"], f["end_ms"], f["x_image_px"], f["y_image_px"]) for f in trial["fixations"]] == list(
            FIXATIONS
        )
        assert trial["mic"] == {"t_ms": [250.0, 750.0, 1250.0], "rms_dbfs": [-32.5, -37.5, -42.5]}
        assert trial["shown_ms"] == SHOWN_MS and trial["drift"] == {
            "offset_deg": 0.7,
            "outcome": "accepted",
            "attempts": 1,
        }
        assert trial["quality"]["track_loss"] == 0.1
        assert [note["text"] for note in trial["notes"]] == ["blinked a lot"]
        rerun = api.get(f"/api/replay/sessions/{replayed['session']}/trials/1").json()
        x, _ = _image_px(replayed["rerun"])
        assert rerun["gaze"]["x_image_px"] == pytest.approx(list(x))  # not the aborted run's (300 px to the left)
        assert rerun["notes"] == [] and rerun["fixations"] == []
        missing = (f"/api/replay/sessions/{replayed['session']}/trials/7", "/api/replay/sessions/not-a-uuid/trials/0")
        assert [api.get(path).status_code for path in missing] == [404, 404]


@pytest.mark.timeout(120)
def test_the_replay_page_plays_and_scrubs_a_trial(replayed, browser, artifacts):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    testid = page.get_by_test_id
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    page.goto(f"{replayed['url']}/replay?session={replayed['session']}&trial=0")
    expect(testid("replay-image")).to_contain_text("1001")
    expect(testid("replay-clock")).to_have_text(f"0 / {SHOWN_MS:.0f} ms")
    overlay = testid("replay-overlay")
    expect(overlay).to_have_attribute("data-fixations-shown", "0")
    expect(testid("replay-traces")).to_have_attribute("data-lanes", "x (px),y (px),mic dBFS")  # no pupil streamed
    expect(testid("replay-note")).to_have_text("blinked a lot")
    expect(testid("replay-drift")).to_have_text("0.70° accepted")

    # scrubbed to 730 ms: two fixations have started; the gaze is the sample of 720 ms
    page.evaluate(
        "t => { const s = document.querySelector('[data-testid=replay-time]'); s.value = t;"
        " s.dispatchEvent(new Event('input')); }",
        730,
    )
    expect(overlay).to_have_attribute("data-fixations-shown", "2")
    x, y = _image_px(replayed["gaze"])
    sample = int(720 / GAZE_EVERY_MS)
    expect(overlay).to_have_attribute("data-gaze-x", f"{x[sample]:.1f}")
    expect(overlay).to_have_attribute("data-gaze-y", f"{y[sample]:.1f}")
    expect(testid("replay-fixations")).to_have_text("2 of 3 so far")
    page.screenshot(path=artifacts / "replay-scrubbed.png", full_page=True)

    # played at 4x from the start: the 2 s trial ends in about half a second, every fixation shown
    testid("replay-speed").select_option("4")
    testid("replay-title").click()  # the keys act outside the pickers
    page.keyboard.press("Home")
    expect(testid("replay-clock")).to_have_text(f"0 / {SHOWN_MS:.0f} ms")
    started = time.monotonic()
    testid("replay-play").click()
    expect(testid("replay-play")).to_have_text("▶ play")  # stopped at the end
    assert time.monotonic() - started < 5.0
    expect(testid("replay-clock")).to_have_text(f"{SHOWN_MS:.0f} / {SHOWN_MS:.0f} ms")
    expect(overlay).to_have_attribute("data-fixations-shown", "3")
    # the other trial, through the picker
    testid("replay-trial").select_option("1")
    expect(testid("replay-image")).to_contain_text("1002")
    expect(overlay).to_have_attribute("data-fixations-shown", "0")
    assert "trial=1" in page.url
    page.close()
    assert script_errors == []
