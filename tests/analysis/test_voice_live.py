"""Live voice detection: the streamed recording resampled as a whole, onsets found chunk by chunk.

Oracles: ``scipy.signal.resample_poly`` on the whole recording (the offline step) for the block
resampler; the espeak-ng words' known onsets (their first non-zero sample) and the offline
detector's onsets on the same recordings for the live detector.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from analysis.voice.detect import VoiceParams, detect_utterances
from analysis.voice.live import LiveDetector, StreamResampler
from tests.analysis._speech import ESPEAK, RATE_HZ, naming_trials, noise_only_trials

CHUNK = RATE_HZ // 10  # the experiment streams every 100 ms


@pytest.mark.parametrize("rate_hz", [44100, 48000, 22050, 16000, 8000])
def test_block_resampling_equals_resampling_the_whole(rate_hz):
    rng = np.random.default_rng(rate_hz)
    samples = (rng.standard_normal(3 * rate_hz) * 0.1).astype(np.float32)
    resampler = StreamResampler(rate_hz)
    chunks, start = [], 0
    while start < samples.size:  # chunks of any length, one sample up to 0.2 s
        size = int(rng.integers(1, rate_hz // 5))
        chunks.append(resampler.push(samples[start : start + size]))
        start += size
    streamed = np.concatenate(chunks)
    common = np.gcd(16000, rate_hz)
    whole = resample_poly(samples, 16000 // common, rate_hz // common)
    # Everything but the last `context` input samples (the stream waits for what follows them).
    lag = int(np.ceil(resampler.context * 16000 / rate_hz))
    assert whole.size - lag - 1 <= streamed.size <= whole.size
    np.testing.assert_allclose(streamed, whole[: streamed.size], rtol=0, atol=1e-6)


def _stream(samples: np.ndarray, detector: LiveDetector) -> None:
    for start in range(0, samples.size, CHUNK):
        detector.push(samples[start : start + CHUNK])


@pytest.fixture(scope="module")
def trials():
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    return naming_trials(21, seed=3)


def test_live_onsets_meet_the_offline_targets_within_half_a_second(trials):
    errors, delays, to_offline = [], [], []
    for trial in trials:
        detector = LiveDetector(RATE_HZ)
        _stream(trial.samples, detector)
        found = np.array([u.onset_ms for u in detector.utterances])
        offline = np.array([u.onset_ms for u in detect_utterances(trial.samples, RATE_HZ)])
        assert found.size == len(trial.onsets_ms), (trial.condition, trial.onsets_ms, found)
        errors += list(np.abs(found - trial.onsets_ms))
        delays += [u.detected_ms - u.onset_ms for u in detector.utterances]
        to_offline += [np.min(np.abs(offline - onset)) for onset in found]
        # every utterance ends, with its offset after its onset
        assert all(u.offset_ms is not None and u.offset_ms > u.onset_ms for u in detector.utterances[:-1])
    errors_ms, delays_ms, to_offline_ms = np.array(errors), np.array(delays), np.array(to_offline)
    print(
        f"live: median |error| {np.median(errors_ms):.1f} ms, within 50 ms {np.mean(errors_ms <= 50):.0%}; "
        f"audio delay median {np.median(delays_ms):.0f} ms, max {delays_ms.max():.0f} ms; "
        f"equal to offline {np.mean(to_offline_ms < 1):.0%}"
    )
    # The accuracy targets hold live too (the refinement sees only the past).
    assert np.median(errors_ms) <= 20 and np.mean(errors_ms <= 50) >= 0.9
    assert np.mean(to_offline_ms <= 5) >= 0.8
    # Reported within half a second of audio: Silero's lag plus 100 ms of speech frames and voicing.
    assert delays_ms.min() > 0 and delays_ms.max() <= 500


def test_nothing_is_reported_in_silence_or_noise():
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    for trial in noise_only_trials(seed=4):
        detector = LiveDetector(RATE_HZ)
        _stream(trial.samples, detector)
        assert detector.utterances == [], trial.condition


def test_the_energy_reference_cannot_run_live():
    with pytest.raises(ValueError, match="Silero"):
        LiveDetector(RATE_HZ, params=VoiceParams(method="energy"))
