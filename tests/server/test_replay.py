"""Trial replay: a session streamed to ``lookwhere serve`` as the experiment streams it comes back from
the server's journal as each trial's gaze, fixations, microphone levels and audio (the last run of a
trial run twice), and the page ``/replay`` draws them on a timeline that plays (with the audio) and is
scrubbed, the voice onsets marked.

Oracles: the records the test sends (times relative to the onset it sends, display positions mapped
to image pixels by the trial's :class:`~stimuli.geometry.DisplayGeometry`, the samples of the audio),
counts made from them, and the onsets of the words the test places in the audio (espeak-ng speech,
:mod:`tests.analysis._speech`).
"""

from __future__ import annotations

import io
import time
import uuid

import httpx
import numpy as np
import pytest
from scipy.io import wavfile

from experiment.sender import Sender
from lookwhere import protocol
from lookwhere.protocol import (
    DriftCheck,
    FixationRecord,
    GazeSample,
    MicAudio,
    MicLevel,
    SessionStart,
    TrialEnd,
    TrialQualityRecord,
    TrialStart,
)
from server.journal import JournalStore
from server.replay import CACHED_SESSIONS, ReplayLibrary
from stimuli.geometry import DisplayGeometry
from tests.analysis._speech import ESPEAK, RATE_HZ, speech_trial, write_session
from tests.server._serve import serve_process

WAIT_MS = 10_000
IMAGES = ("1001", "1002")
ONSET_MS = (1000.0, 5000.0, 8000.0)  # session ms: trial 0, trial 1's aborted run, trial 1's last run
SHOWN_MS = 2000.0
GAZE_EVERY_MS = 20.0
#: trial 0's fixations: start, end (ms from the onset), position (image px)
FIXATIONS = ((100.0, 400.0, 200.0, 150.0), (500.0, 900.0, 600.0, 300.0), (1000.0, 1600.0, 400.0, 450.0))
GEOMETRY = DisplayGeometry.fit(800, 600)
MIC_OFFSET_MS = 8.0  # the recording's first sample after the onset
END_MS = SHOWN_MS + MIC_OFFSET_MS  # the timeline's end: the recording's
#: the words spoken in each run's recording (ms from its first sample): trial 0 streamed, trial 1's
#: aborted run streamed, trial 1's last run only in the session folder
WORDS = {0: (("dog", "chair"), (400.0, 1300.0)), 1: (("cat",), (700.0,)), 2: (("horse",), (500.0,))}
ONSET_TOLERANCE_MS = 50.0


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


def _audio(trial: int, words) -> tuple[list[MicAudio], np.ndarray]:
    """A run's recording as the task streams it: 100 ms records of 16-bit samples."""
    samples = (speech_trial(*words, duration_s=SHOWN_MS / 1000, seed=trial).samples * 32767).astype("<i2")
    block = RATE_HZ // 10
    records = [
        MicAudio(
            trial=trial,
            mic_offset_ms=MIC_OFFSET_MS,
            first_sample=first,
            rate_hz=RATE_HZ,
            pcm=samples[first : first + block].tobytes(),
        )
        for first in range(0, samples.size, block)
    ]
    return records, samples


def _run(
    stream: _Stream, trial: int, onset_ms: float, *, aborted: bool, offset_px: float = 0.0, words=None
) -> list[GazeSample]:
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
    for record in [] if words is None else _audio(trial, words)[0]:
        stream.send(record)
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
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed (Debian: apt-get install espeak-ng): the audio's words")
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
        gaze = _run(stream, 0, ONSET_MS[0], aborted=False, words=WORDS[0])
        _run(stream, 1, ONSET_MS[1], aborted=True, offset_px=-300.0, words=WORDS[1])
        rerun = _run(stream, 1, ONSET_MS[2], aborted=False)
        # the session folder (in the server's --sessions root, its data folder by default) holds
        # trial 1's WAV, whose last run streamed no audio
        write_session(
            folder / "data" / "P07",
            {1: WORDS[2]},
            offset_ms=MIC_OFFSET_MS,
            duration_s=SHOWN_MS / 1000,
            condition="quiet",
            participant="P07",
            session=session,
        )
        base = server["url"].rstrip("/")
        with httpx.Client(base_url=base, timeout=10.0) as api:
            saved = api.post("/api/notes", json={"kind": "text", "text": "blinked a lot", "trial": 0})
            assert saved.status_code == 201
        yield {"url": base, "session": session, "gaze": gaze, "rerun": rerun, "folder": folder / "data" / "P07"}
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


def _onsets(words) -> list[float]:
    return [MIC_OFFSET_MS + onset for onset in words[1]]


@pytest.mark.timeout(120)
def test_a_trials_audio_comes_from_the_stream_or_else_the_session_folder(replayed):
    base = f"/api/replay/sessions/{replayed['session']}/trials"
    with httpx.Client(base_url=replayed["url"], timeout=30.0) as api:
        streamed = api.get(f"{base}/0").json()
        audio = streamed["audio"]
        assert (audio["source"], audio["offset_ms"], audio["rate_hz"]) == ("stream", MIC_OFFSET_MS, RATE_HZ)
        assert audio["duration_ms"] == pytest.approx(SHOWN_MS, abs=1000 / RATE_HZ)
        assert len(audio["envelope"]["max"]) == pytest.approx(SHOWN_MS / audio["envelope"]["bin_ms"], abs=1)
        onsets = [u["onset_ms"] for u in audio["utterances"]]
        assert onsets == pytest.approx(_onsets(WORDS[0]), abs=ONSET_TOLERANCE_MS)
        assert audio["detector"].startswith("silero") and streamed["no_audio"] is None
        rate_hz, played = wavfile.read(io.BytesIO(api.get(f"{base}/0/audio.wav").content))
        assert rate_hz == RATE_HZ
        np.testing.assert_array_equal(played, _audio(0, WORDS[0])[1])  # the samples streamed, exactly

        # trial 1's last run streamed none (its aborted run did): the session folder's WAV
        folder = api.get(f"{base}/1").json()["audio"]
        assert (folder["source"], folder["offset_ms"]) == ("session folder", MIC_OFFSET_MS)
        assert [u["onset_ms"] for u in folder["utterances"]] == pytest.approx(_onsets(WORDS[2]), abs=ONSET_TOLERANCE_MS)
        wav = replayed["folder"] / "audio" / "trial001_1002.wav"
        assert api.get(f"{base}/1/audio.wav").content == wav.read_bytes()
        wav.unlink()  # a session folder that lost it: no audio, and why
        gone = api.get(f"{base}/1").json()
        assert gone["audio"] is None and "streamed no audio" in gone["no_audio"]
        assert api.get(f"{base}/1/audio.wav").status_code == 404


def _journal_maps(session: str, n_trials: int, *, first_seq: int = 1, first_trial: int = 0) -> list[tuple[int, bytes]]:
    records: list[protocol.Record] = []
    if first_seq == 1:
        records.append(
            SessionStart(participant="P", tracker="simulated", n_trials=9, screen_width_px=1920,
                         screen_height_px=1080, wall_time_s=1e9 + int(session[-1]))
        )  # fmt: skip
    for trial in range(first_trial, first_trial + n_trials):
        records.append(
            TrialStart(trial=trial, image="1001", onset_tracker_ms=0.0, onset_session_ms=0.0,
                       stimulus_duration_ms=SHOWN_MS, **GEOMETRY.to_dict())
        )  # fmt: skip
        records.append(
            MicAudio(trial=trial, mic_offset_ms=3.0, first_sample=0, rate_hz=16000,
                     pcm=np.arange(8, dtype="<i2").tobytes())
        )  # fmt: skip
    return [
        (seq, protocol.stamp(record, session=session, seq=seq)[1][1]) for seq, record in enumerate(records, first_seq)
    ]


def test_the_library_keeps_a_few_sessions_and_reads_a_growing_journal_on(tmp_path):
    """Oracle: the records written to the journals, and which sessions were asked for last."""
    sessions = [str(uuid.UUID(int=n + 1)) for n in range(CACHED_SESSIONS + 2)]
    store = JournalStore(tmp_path)
    for session in sessions:
        for seq, payload in _journal_maps(session, 1):
            store.open(session).append(seq, payload)
        store.open(session).sync()
    library = ReplayLibrary(tmp_path)
    assert len(library.sessions().sessions) == len(sessions)
    assert library.held == []  # listing keeps no session's records
    for session in sessions:
        assert library.trial(session, 0).trial == 0
    assert library.held == sessions[-CACHED_SESSIONS:]  # the least recently used dropped
    library.trial(sessions[-CACHED_SESSIONS], 0)
    assert library.held[-1] == sessions[-CACHED_SESSIONS]

    # the live session's journal grows: read on from where it was, the new trial's audio included
    live = sessions[-1]
    for seq, payload in _journal_maps(live, 1, first_seq=4, first_trial=1):
        store.open(live).append(seq, payload)
    store.open(live).sync()
    assert [r.seq for r in library.records(live)] == [1, 2, 3, 4, 5]
    last = library.records(live)[-1]
    assert isinstance(last, MicAudio) and last.pcm == b""  # the samples stay in the file
    wav = library.wav(live, 1)
    assert isinstance(wav, bytes)
    rate_hz, samples = wavfile.read(io.BytesIO(wav))
    assert rate_hz == 16000 and samples.tolist() == list(range(8))
    assert [t.trial for t in library.sessions().sessions[0].trials] == [0, 1]  # newest first: the live one
    store.close()


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
    expect(testid("replay-clock")).to_have_text(f"0 / {END_MS:.0f} ms")
    overlay = testid("replay-overlay")
    expect(overlay).to_have_attribute("data-fixations-shown", "0")
    traces = testid("replay-traces")
    expect(traces).to_have_attribute("data-lanes", "x (px),y (px),mic dBFS,audio")  # no pupil streamed
    expect(testid("replay-audio")).to_contain_text("streamed, 2.00 s at 44.1 kHz")
    onsets = [float(t) for t in traces.get_attribute("data-onsets").split(",")]
    assert onsets == pytest.approx(_onsets(WORDS[0]), abs=ONSET_TOLERANCE_MS)
    expect(testid("replay-voice")).to_have_text(", ".join(f"{t:.0f}" for t in onsets) + " ms")
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

    # played at 1x: the audio plays, and the timeline follows it
    testid("replay-title").click()  # the keys act outside the pickers
    page.keyboard.press("Home")
    testid("replay-play").click()
    page.wait_for_timeout(700)
    paused, audio_s, t_ms = page.evaluate(
        "() => { const p = document.querySelector('[data-testid=replay-player]');"
        " return [p.paused, p.currentTime, Number(document.querySelector('[data-testid=replay-time]').dataset.tMs)]; }"
    )
    assert not paused and audio_s > 0.2
    assert abs(t_ms - (MIC_OFFSET_MS + 1000 * audio_s)) < 100  # in sync: at most a few frames apart
    page.keyboard.press(" ")
    expect(testid("replay-play")).to_have_text("▶ play")
    assert page.evaluate("() => document.querySelector('[data-testid=replay-player]').paused")

    # played at 4x from the start: the 2 s trial ends in about half a second, every fixation shown
    testid("replay-speed").select_option("4")
    testid("replay-title").click()
    page.keyboard.press("Home")
    expect(testid("replay-clock")).to_have_text(f"0 / {END_MS:.0f} ms")
    started = time.monotonic()
    testid("replay-play").click()
    expect(testid("replay-play")).to_have_text("▶ play")  # stopped at the end
    assert time.monotonic() - started < 5.0
    expect(testid("replay-clock")).to_have_text(f"{END_MS:.0f} / {END_MS:.0f} ms")
    expect(overlay).to_have_attribute("data-fixations-shown", "3")
    # the other trial, through the picker
    testid("replay-trial").select_option("1")
    expect(testid("replay-image")).to_contain_text("1002")
    expect(overlay).to_have_attribute("data-fixations-shown", "0")
    assert "trial=1" in page.url
    page.close()
    assert script_errors == []
