"""The dashboard's live microphone strip in a real headless browser: a trial's recording streamed
in real time as the experiment streams it (``mic_audio`` every 100 ms) to ``lookwhere serve``; each
spoken name shows as a tick within a second of its onset.

Oracles: the espeak-ng words' known onsets (plus the recording's offset) for the ticks' times; the
wall-clock time at which each word's first sample was "captured" (the stream's pacing) against the
time the browser first showed its tick, for the onset-to-tick delay.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from experiment.sender import Sender
from lookwhere.protocol import MicAudio, SessionStart, TrialStart
from stimuli.geometry import DisplayGeometry
from stimuli.sets import StimulusSet
from tests.analysis._speech import ESPEAK, RATE_HZ, speech_trial
from tests.server._serve import serve_process

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (apt-get install espeak-ng)"),
]

IMAGE = "1001"
OFFSET_MS = 2.5
ONSETS_MS = (700.0, 1900.0)
DURATION_MS = 3000.0
CHUNK_S = 0.1  # as experiment.presentation.MIC_AUDIO_INTERVAL_S


def _stream_in_real_time(sender: Sender, pcm: np.ndarray) -> float:
    """Send the recording in 100 ms records, each as soon as its last sample was "captured" (sample
    0 at the returned wall time), servicing the sender as the frame loop does."""
    chunk = int(RATE_HZ * CHUNK_S)
    start_s = time.time()
    for number, first in enumerate(range(0, pcm.size, chunk)):
        while time.time() < start_s + (number + 1) * CHUNK_S:
            sender.service()
            time.sleep(0.002)
        sender.send(
            MicAudio(
                trial=0,
                mic_offset_ms=OFFSET_MS,
                first_sample=first,
                rate_hz=RATE_HZ,
                pcm=pcm[first : first + chunk].astype("<i2").tobytes(),
            )
        )
        sender.service()
    return start_s


@pytest.mark.timeout(120)
def test_the_strip_shows_each_onset_within_a_second(browser, osie_stimuli, tmp_path, artifacts):
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    samples = speech_trial(["horse", "person"], ONSETS_MS, condition="noise20", duration_s=DURATION_MS / 1000).samples
    pcm = np.clip(np.floor(samples * 32768), -32768, 32767).astype(np.int16)
    geometry = DisplayGeometry.fit(*StimulusSet(osie_stimuli).size(IMAGE))
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    testid = page.get_by_test_id
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    with serve_process(osie_stimuli, tmp_path / "data") as server:
        page.goto(server["url"])
        expect(testid("connection")).to_have_attribute("data-state", "live")
        sender = Sender(server["zmq_endpoint"], tmp_path / "rig.msgpack", heartbeat_interval_s=0.5)
        sender.send(
            SessionStart(
                participant="P01",
                tracker="simulated",
                n_trials=1,
                screen_width_px=1920,
                screen_height_px=1080,
                wall_time_s=time.time(),
            )
        )
        sender.send(
            TrialStart(
                trial=0,
                image=IMAGE,
                onset_tracker_ms=0.0,
                onset_session_ms=0.0,
                stimulus_duration_ms=DURATION_MS,
                **geometry.to_dict(),
            )
        )
        deadline = time.monotonic() + 10
        while sender.acked_seq < sender.last_seq:  # connected, and the trial started on the server
            assert time.monotonic() < deadline, "the server did not acknowledge the trial's start"
            sender.service()
            time.sleep(0.005)
        expect(testid("image-id")).to_have_text(IMAGE)
        expect(testid("mic-strip-empty")).to_be_visible()
        start_s = _stream_in_real_time(sender, pcm)
        expect(testid("voice-tick")).to_have_count(len(ONSETS_MS))
        expect(testid("mic-strip-empty")).to_be_hidden()
        expect(testid("mic-strip-detector")).to_contain_text("silero")
        ticks = testid("voice-tick")
        onsets_ms = [float(ticks.nth(i).get_attribute("data-onset-ms")) for i in range(len(ONSETS_MS))]
        shown_ms = [float(ticks.nth(i).get_attribute("data-shown-unix-ms")) for i in range(len(ONSETS_MS))]
        # the strip drew the level of the trial so far: bars in the lower half of the canvas
        painted = page.evaluate(
            """() => { const c = document.querySelector('[data-testid=mic-strip-canvas]');
            const d = c.getContext('2d').getImageData(0, c.height - 2, c.width, 1).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n / c.width; }"""
        )
        page.screenshot(path=artifacts / "dashboard-voice-strip.png", full_page=True)
        sender.close()
    assert not script_errors, script_errors
    np.testing.assert_allclose(onsets_ms, np.add(ONSETS_MS, OFFSET_MS), atol=30)
    delays_ms = [shown - (start_s * 1000 + onset) for shown, onset in zip(shown_ms, ONSETS_MS, strict=True)]
    print("onset-to-tick delays (ms):", [round(d) for d in delays_ms])
    assert all(0 < delay < 1000 for delay in delays_ms), delays_ms
    assert painted > 0.9  # every bin of the 3 s trial has a bar
