"""The server's live voice strip (:class:`server.voice.VoiceMonitor`) fed with ``mic_audio`` records.

Oracles: the level of each 50 ms bin computed with numpy from the samples sent; the espeak-ng
words' known onsets (plus the recording's offset); :class:`analysis.voice.live.LiveDetector` run
directly on the same samples (the monitor must add exactly the offset to its times).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from analysis.voice.live import LiveDetector
from lookwhere.protocol import MicAudio
from server.sections import VoiceSection
from server.voice import VoiceMonitor
from tests.analysis._speech import ESPEAK, RATE_HZ, speech_trial

pytestmark = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")

SESSION = "0b8e6a1c-2f4d-4e5a-9c3b-7d2e1f0a9b8c"
OFFSET_MS = 3.5
ONSETS_MS = [700.0, 2000.0]


def _records(pcm: np.ndarray, *, trial: int = 2, chunk: int = RATE_HZ // 10) -> list[MicAudio]:
    """The trial's recording as the experiment streams it: consecutive 100 ms records."""
    return [
        MicAudio(
            session=SESSION,
            seq=1 + i,
            trial=trial,
            mic_offset_ms=OFFSET_MS,
            first_sample=start,
            rate_hz=RATE_HZ,
            pcm=pcm[start : start + chunk].astype("<i2").tobytes(),
        )
        for i, start in enumerate(range(0, pcm.size, chunk))
    ]


@pytest.fixture(scope="module")
def pcm() -> np.ndarray:
    samples = speech_trial(["horse", "person"], ONSETS_MS, condition="noise20", duration_s=3.0, seed=2).samples
    return np.clip(np.floor(samples * 32768), -32768, 32767).astype(np.int16)


def test_the_strip_holds_the_level_and_the_onsets(pcm):
    published: list[VoiceSection] = []
    monitor = VoiceMonitor(published.append).start()
    try:
        for record in _records(pcm):
            monitor.feed(record)
        deadline = time.monotonic() + 30
        while not published or published[-1].audio_ms < pcm.size * 1000 / RATE_HZ:
            assert time.monotonic() < deadline, "the monitor did not take every record"
            time.sleep(0.01)
    finally:
        monitor.stop()
    section = published[-1]
    assert (section.session, section.trial, section.start_ms, section.bin_ms) == (SESSION, 2, OFFSET_MS, 50.0)
    samples = pcm.astype(np.float64) / 32768
    whole = samples[: samples.size // 2205 * 2205].reshape(-1, 2205)
    np.testing.assert_allclose(
        np.array(section.level_dbfs, float), 10 * np.log10(np.mean(whole**2, axis=1)), atol=0.051
    )
    detector = LiveDetector(RATE_HZ)
    for start in range(0, pcm.size, RATE_HZ // 10):
        detector.push(samples[start : start + RATE_HZ // 10].astype(np.float32))
    assert [t.onset_ms for t in section.utterances] == [OFFSET_MS + u.onset_ms for u in detector.utterances]
    np.testing.assert_allclose([t.onset_ms for t in section.utterances], np.add(ONSETS_MS, OFFSET_MS), atol=30)
    assert section.utterances[0].offset_ms is not None and section.utterances[0].detected_ms > ONSETS_MS[0]
    assert section.detector.startswith("silero")


def test_a_record_that_does_not_continue_the_strip_is_skipped(pcm):
    monitor = VoiceMonitor(lambda section: None)
    records = _records(pcm[:RATE_HZ])
    for record in records[:3]:
        monitor.take(record)
    monitor.take(records[4])  # records[3] never came: a gap
    monitor.take(_records(pcm[:RATE_HZ], trial=3)[1])  # another trial's, not from its start
    assert monitor.skipped == 2
    assert monitor.empty().trial is None
    monitor.take(_records(pcm[:RATE_HZ], trial=3)[0])  # a new run starts a new strip
    monitor.take(_records(pcm[:RATE_HZ], trial=3)[1])
    assert monitor.skipped == 2
