"""Voice onsets: espeak-ng words at known onsets in noise, the recordings of sessions, the command.

The oracle is the synthetic speech of ``tests/analysis/_speech.py``: espeak-ng writes exact digital
silence around a word, so its true onset and offset are its first and last non-zero samples.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.io import wavfile

from analysis.voice.detect import VoiceParams, _resample, detect_utterances, refine_bounds, voiced_ms
from analysis.voice.recordings import UTTERANCE_COLUMNS, audio_trials, detect_trials, read_wav
from lookwhere.cli import main
from tests.analysis._speech import (
    CONDITIONS,
    ESPEAK,
    RATE_HZ,
    naming_trials,
    noise_only_trials,
    speech_trial,
    synthesize,
)

pytestmark = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (apt-get install espeak-ng)")


def _match(trials, params):
    """Signed onset errors (ms) of the utterance nearest each true word, and the utterances matching none."""
    errors, invented = [], 0
    for trial in trials:
        found = detect_utterances(trial.samples, trial.rate_hz, params=params)
        onsets = np.array([u.onset_ms for u in found])
        matched = set()
        for truth in trial.onsets_ms:
            nearest = int(np.argmin(np.abs(onsets - truth))) if onsets.size else None
            if nearest is None or abs(onsets[nearest] - truth) > 300:
                errors.append(np.inf)  # missed
            else:
                matched.add(nearest)
                errors.append(onsets[nearest] - truth)
        invented += len(found) - len(matched)
    return np.array(errors), invented


@pytest.fixture(scope="module")
def trials():
    # Two trials of every condition, six voices, 1–3 words each.
    return naming_trials(2 * len(CONDITIONS), seed=4)


def test_silero_onsets_meet_the_issue_targets(trials):
    errors, invented = _match(trials, VoiceParams())
    assert errors.size >= 25
    assert np.median(np.abs(errors)) <= 20
    assert np.mean(np.abs(errors) <= 50) >= 0.9
    assert invented == 0


def test_no_utterance_is_invented_in_silence_or_noise():
    for trial in noise_only_trials(seed=4):
        assert detect_utterances(trial.samples, trial.rate_hz) == [], trial.condition


def test_refinement_moves_a_late_detector_edge_to_the_rise():
    # A 150 Hz harmonic complex switched on at exactly 1,000 ms in white noise at -40 dBFS; the
    # detector's edge is placed 64 ms late (two Silero frames). Oracle: the switch-on time.
    rate = 16_000
    rng = np.random.default_rng(1)
    audio = rng.standard_normal(3 * rate) * 0.01
    t = np.arange(int(0.4 * rate)) / rate
    audio[rate : rate + t.size] += 0.2 * sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
    refined = refine_bounds(audio.astype(np.float32), [(rate + 1024, rate + t.size - 1024)], search=4800, min_gap=3200)
    ((start, stop),) = refined
    assert abs(start - rate) / 16 <= 5
    assert abs(stop - (rate + t.size)) / 16 <= 10


def test_refinement_finds_the_noise_between_words_close_together():
    # Three words a second apart in 2.5 s over a room tone of ±10 LSB (a real microphone's floor):
    # no sample lies 300 ms from every word, and the quietest fifth of the frames alone made
    # ordinary noise frames look active, so an onset moved up to 27 ms early (1 of these 40 trials
    # here, 2 of 4 in recorded sessions). The detector's edges are placed 80 ms late, as Silero's
    # were there. Oracle: the words' first non-zero samples.
    n, onsets_ms, errors = int(2.5 * RATE_HZ), [176, 1176, 1976], []
    for seed in range(40):
        audio = np.random.default_rng(seed).integers(-10, 11, n) / 32767
        bounds = []
        for word, onset_ms in zip(["horse", "chair", "dog"], onsets_ms):
            start = onset_ms * RATE_HZ // 1000
            spoken = synthesize(word)[: n - start]
            audio[start : start + spoken.size] += spoken
            stop_ms = min((start + spoken.size) * 1000 / RATE_HZ + 90, 2496)
            bounds.append((int((onset_ms + 80) * 16), int(stop_ms * 16)))
        refined = refine_bounds(_resample(audio.astype(np.float32), RATE_HZ), bounds, search=4800, min_gap=3200)
        errors += [start / 16 - onset_ms for (start, _), onset_ms in zip(refined, onsets_ms, strict=True)]
    assert np.all(np.abs(errors) <= 10), np.round(errors, 1)


def test_voicing_separates_a_vowel_from_breath():
    rate = 16_000
    t = np.arange(int(0.3 * rate)) / rate
    vowel = sum((np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 10)), np.zeros_like(t))
    breath = np.random.default_rng(0).standard_normal(t.size)
    # Oracle: 300 ms hold (300 - 40) / 10 + 1 = 27 whole 40 ms frames every 10 ms, all periodic.
    assert voiced_ms(vowel) == 270
    assert voiced_ms(breath) == 0


def test_energy_reference_finds_words_in_quiet():
    trial = speech_trial(["horse", "bottle"], [900.0, 2300.0], condition="quiet")
    errors, invented = _match([trial], VoiceParams(method="energy"))
    assert np.all(np.abs(errors) <= 20) and invented == 0


def test_unrefined_silero_reports_its_frame_edges():
    # Without refinement an onset is a multiple of Silero's 32 ms frame.
    trial = speech_trial(["chair"], [1010.0], condition="quiet")
    (utterance,) = detect_utterances(trial.samples, trial.rate_hz, params=VoiceParams(refine=False))
    assert utterance.onset_ms % 32 == 0


def _write(path, samples, rate=RATE_HZ):
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16))


def _session(folder, trials, *, offsets_ms):
    """A session folder as lookwhere run writes it: config.json, trials.jsonl and audio/."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"participant": "P01", "session_id": "s-1", "stimuli": "nowhere"}))
    rows = []
    for index, (trial, offset_ms) in enumerate(zip(trials, offsets_ms)):
        name = f"audio/trial{index:03d}_{1001 + index}.wav"
        _write(folder / name, trial.samples)
        rows.append({"trial": index, "image": str(1001 + index), "mic_file": name, "mic_offset_ms": offset_ms})
    rows.append({"trial": len(trials), "image": "1099", "mic_file": None, "mic_offset_ms": None})  # no microphone
    (folder / "trials.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_session_times_are_image_relative(tmp_path):
    spoken = [speech_trial(["dog"], [700.0]), speech_trial(["sofa", "cat"], [900.0, 2400.0])]
    folder = _session(tmp_path / "P01", spoken, offsets_ms=[12.5, -3.0])
    found = audio_trials([tmp_path])  # a folder of sessions
    assert [(t.trial, t.image, t.offset_ms, t.aligned) for t in found] == [
        (0, "1001", 12.5, True),
        (1, "1002", -3.0, True),
    ]
    table = detect_trials(found)
    assert tuple(table.columns) == UTTERANCE_COLUMNS
    assert table["utterance"].tolist() == [1, 1, 2]
    # Oracle: WAV time + the recorded offset of the WAV's first sample after image onset.
    expected = [700.0 + 12.5, 900.0 - 3.0, 2400.0 - 3.0]
    np.testing.assert_allclose(table["onset_ms"], expected, atol=20)
    assert (table["participant"] == "P01").all() and (table["session"] == "s-1").all()
    # The same WAV given on its own still finds its session's row.
    (alone,) = audio_trials([folder / "audio" / "trial001_1002.wav"])
    assert alone.offset_ms == -3.0 and alone.trial == 1


def test_a_bare_wav_keeps_file_times_and_the_task_name(tmp_path):
    _write(tmp_path / "trial007_000123.wav", speech_trial(["horse"], [500.0]).samples)
    _write(tmp_path / "other.wav", speech_trial([], []).samples)
    found = audio_trials([tmp_path])
    assert [(t.file.name, t.trial, t.image, t.aligned) for t in found] == [
        ("other.wav", -1, "", False),
        ("trial007_000123.wav", 7, "000123", False),
    ]


def test_read_wav_scales_every_sample_format(tmp_path):
    # Oracle: full scale of each format maps to -1 (or just below +1).
    for dtype, values, expected in [
        (np.int16, [-32768, 0, 16384], [-1, 0, 0.5]),
        (np.uint8, [0, 128, 192], [-1, 0, 0.5]),
        (np.float32, [-0.25, 0, 0.5], [-0.25, 0, 0.5]),
    ]:
        wavfile.write(tmp_path / "x.wav", 8000, np.array(values, dtype=dtype))
        samples, rate = read_wav(tmp_path / "x.wav")
        assert rate == 8000 and samples.dtype == np.float32
        np.testing.assert_allclose(samples, expected)
    wavfile.write(tmp_path / "stereo.wav", 8000, np.array([[0.5, 0.25]], dtype=np.float32))
    assert read_wav(tmp_path / "stereo.wav")[0].tolist() == [0.375]
    (tmp_path / "bad.wav").write_bytes(b"not a wav")
    with pytest.raises(ValueError, match="bad.wav"):
        read_wav(tmp_path / "bad.wav")


def test_voice_detect_command_writes_the_csv(tmp_path, capsys):
    _session(tmp_path / "P01", [speech_trial(["dog"], [700.0])], offsets_ms=[5.0])
    out = tmp_path / "voice.csv"
    assert main(["voice", "detect", str(tmp_path / "P01"), "--out", str(out), "--names", "off", "--no-progress"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == list(UTTERANCE_COLUMNS)
    assert len(table) == 1 and abs(table["onset_ms"].iloc[0] - 705.0) <= 20
    assert "1 utterances" in capsys.readouterr().out
    assert main(["voice", "detect", str(tmp_path / "missing"), "--out", str(out)]) == 2
