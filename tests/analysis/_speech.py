"""Synthetic naming trials: espeak-ng words at known onsets, mixed with noise.

The oracle of the voice tests and of ``bench/bench_voice.py``. A word is synthesised by espeak-ng
(Debian package ``espeak-ng``), which writes exact digital silence around the speech, so the true
onset is the word's first non-zero sample and the true offset its last. Words are placed at chosen
onsets in a trial of ``duration_s`` and mixed with one noise condition:

``quiet``      nothing (a −90 dBFS dither keeps the signal from being exactly zero);
``hum``        50 Hz mains hum with its 2nd and 3rd harmonics at 20 dB SNR;
``noise20``    white noise at 20 dB SNR;
``noise10``    white noise at 10 dB SNR;
``pink10``     pink (1/f) noise at 10 dB SNR;
``clicks``     quiet plus 2 ms clicks (a tongue click, a mouse) at random times, peak 0.5;
``breath``     quiet plus breath-like bursts: 300–500 ms of band-passed noise with a smooth
               envelope, 12 dB below the speech.

SNR is the ratio of the mean power of the speech (over its non-silent samples) to the noise power.
Speech peaks at 0.3 of full scale. Clicks and breaths are never placed within 250 ms of a word,
so the true onset stays the word's first sample.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfilt

__all__ = [
    "CONDITIONS",
    "ESPEAK",
    "VOICES",
    "SpeechTrial",
    "naming_trials",
    "noise_only_trials",
    "speech_trial",
    "synthesize",
    "write_session",
]

ESPEAK = shutil.which("espeak-ng")
RATE_HZ = 44100  # the experiment's microphone rate
SPEECH_PEAK = 0.3
CONDITIONS = ("quiet", "hum", "noise20", "noise10", "pink10", "clicks", "breath")
#: (espeak-ng voice, words per minute, pitch 0–99): male, female and accented English voices
VOICES = (
    ("en-us", 160, 45),
    ("en-us+f3", 170, 60),
    ("en-gb", 150, 40),
    ("en-gb-scotland+m3", 165, 50),
    ("en-029+f2", 155, 55),
    ("en-us+m7", 175, 35),
)
#: Words a participant says when naming VOC objects.
WORDS = (
    "dog",
    "person",
    "chair",
    "sofa",
    "horse",
    "car",
    "bottle",
    "cat",
    "table",
    "train",
    "bird",
    "sheep",
    "boat",
    "plant",
    "bus",
    "bicycle",
    "cow",
    "monitor",
    "plane",
    "motorbike",
)


@functools.cache
def synthesize(word: str, *, voice: str = "en-us", speed_wpm: int = 160, pitch: int = 50) -> np.ndarray:
    """One word spoken by espeak-ng, cut to its first and last non-zero sample.

    Returns
    -------
    ndarray, float64, shape (N,)
        At :data:`RATE_HZ`, peak :data:`SPEECH_PEAK`.
    """
    if ESPEAK is None:
        raise FileNotFoundError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    with tempfile.NamedTemporaryFile(suffix=".wav") as handle:
        subprocess.run(
            [ESPEAK, "-v", voice, "-s", str(speed_wpm), "-p", str(pitch), "-w", handle.name, word],
            check=True,
            capture_output=True,
        )
        samples, rate_hz = sf.read(handle.name, dtype="float64")
    voiced = np.flatnonzero(samples)
    samples = samples[voiced[0] : voiced[-1] + 1]
    if rate_hz != RATE_HZ:  # espeak-ng writes 22,050 Hz; its first sample stays sample 0
        samples = resample_poly(samples, RATE_HZ, rate_hz)
    return SPEECH_PEAK * samples / np.abs(samples).max()


@dataclass
class SpeechTrial:
    """A synthetic trial and its truth (times in ms from the first sample)."""

    samples: np.ndarray  # float32 (N,), RATE_HZ
    condition: str
    words: list[str] = field(default_factory=list)
    onsets_ms: list[float] = field(default_factory=list)
    offsets_ms: list[float] = field(default_factory=list)
    voice: str = ""
    rate_hz: int = RATE_HZ


def speech_trial(
    words, onsets_ms, *, condition: str = "quiet", voice=VOICES[0], duration_s: float = 5.0, seed: int = 0
) -> SpeechTrial:
    """``words`` starting at ``onsets_ms`` in ``condition`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * RATE_HZ))
    speech = np.zeros(n)
    offsets_ms, powers, busy = [], [], np.zeros(n, bool)
    for word, onset_ms in zip(words, onsets_ms, strict=True):
        spoken = synthesize(word, voice=voice[0], speed_wpm=voice[1], pitch=voice[2])
        start = int(round(onset_ms * RATE_HZ / 1000))
        if start + spoken.size > n:
            raise ValueError(f"{word!r} at {onset_ms} ms does not fit a {duration_s} s trial")
        speech[start : start + spoken.size] += spoken
        busy[max(0, start - RATE_HZ // 4) : start + spoken.size + RATE_HZ // 4] = True
        offsets_ms.append((start + spoken.size) * 1000 / RATE_HZ)
        powers.append(np.mean(spoken[np.abs(spoken) > 1e-3 * SPEECH_PEAK] ** 2))
    speech_power = float(np.mean(powers)) if powers else np.mean(synthesize("dog") ** 2)
    mix = speech + _noise(condition, n, speech_power, busy, rng)
    return SpeechTrial(
        mix.astype(np.float32), condition, list(words), list(map(float, onsets_ms)), offsets_ms, voice=voice[0]
    )


def _noise(condition: str, n: int, speech_power: float, busy: np.ndarray, rng) -> np.ndarray:
    dither = rng.standard_normal(n) * 10 ** (-90 / 20)
    if condition == "quiet":
        return dither
    if condition == "hum":
        t = np.arange(n) / RATE_HZ
        phase = rng.uniform(0, 2 * np.pi)
        hum = sum(np.sin(2 * np.pi * 50 * k * t + k * phase) / k for k in (1, 2, 3))
        return _at_snr(hum, speech_power, 20)
    if condition in ("noise20", "noise10"):
        return _at_snr(rng.standard_normal(n), speech_power, float(condition[5:]))
    if condition == "pink10":
        spectrum = np.fft.rfft(rng.standard_normal(n))
        spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
        spectrum[0] = 0
        return _at_snr(np.fft.irfft(spectrum, n), speech_power, 10)
    if condition == "clicks":
        out = dither.copy()
        width = RATE_HZ // 500
        for start in _free_starts(busy, width, 6, rng):
            out[start : start + width] += 0.5 * rng.choice([-1, 1]) * np.hanning(width)
        return out
    if condition == "breath":
        out = dither.copy()
        sos = butter(4, [300, 3000], btype="bandpass", fs=RATE_HZ, output="sos")
        for start in _free_starts(busy, RATE_HZ // 2, 3, rng):
            length = int(rng.uniform(0.3, 0.5) * RATE_HZ)
            burst = sosfilt(sos, rng.standard_normal(length)) * np.hanning(length)
            out[start : start + length] += _at_snr(burst, speech_power, 12)
        return out
    raise ValueError(f"condition must be one of {CONDITIONS}; got {condition!r}")


def _at_snr(noise: np.ndarray, speech_power: float, snr_db: float) -> np.ndarray:
    return noise * np.sqrt(speech_power / 10 ** (snr_db / 10) / np.mean(noise**2))


def _free_starts(busy: np.ndarray, length: int, count: int, rng) -> list[int]:
    """Up to ``count`` starts of ``length`` samples that overlap no word (nor each other)."""
    starts, taken = [], busy.copy()
    for _ in range(200):
        start = int(rng.integers(0, busy.size - length))
        if not taken[start : start + length].any():
            starts.append(start)
            taken[max(0, start - length) : start + 2 * length] = True
            if len(starts) == count:
                break
    return starts


def naming_trials(n_trials: int = 21, *, seed: int = 0, duration_s: float = 5.0) -> list[SpeechTrial]:
    """``n_trials`` trials cycling through :data:`CONDITIONS` and :data:`VOICES`, 1–3 words each.

    The first word comes 600–1,500 ms after the start (a naming latency); the next ones 350–900 ms
    after the previous word ends.
    """
    rng = np.random.default_rng(seed)
    trials = []
    for index in range(n_trials):
        voice = VOICES[index % len(VOICES)]
        words, onsets, t_ms = [], [], rng.uniform(600, 1500)
        for word in rng.choice(WORDS, size=int(rng.integers(1, 4)), replace=False):
            length_ms = synthesize(str(word), voice=voice[0], speed_wpm=voice[1], pitch=voice[2]).size * 1000 / RATE_HZ
            if t_ms + length_ms > duration_s * 1000 - 100:
                break
            words.append(str(word))
            onsets.append(round(t_ms, 1))
            t_ms += length_ms + rng.uniform(350, 900)
        trials.append(
            speech_trial(
                words,
                onsets,
                condition=CONDITIONS[index % len(CONDITIONS)],
                voice=voice,
                duration_s=duration_s,
                seed=seed * 1000 + index,
            )
        )
    return trials


def noise_only_trials(*, seed: int = 0, duration_s: float = 5.0) -> list[SpeechTrial]:
    """One trial of every condition without speech (``quiet`` is the silent trial)."""
    return [
        speech_trial([], [], condition=condition, duration_s=duration_s, seed=seed * 1000 + 500 + i)
        for i, condition in enumerate(CONDITIONS)
    ]


def write_session(
    folder: Path,
    spoken: dict,
    *,
    offset_ms: float = 8.0,
    duration_s: float = 3.0,
    condition: str = "noise20",
    participant: str = "P01",
    session: str = "s-1",
) -> Path:
    """A session folder as ``lookwhere run`` writes it, with spoken names in its WAVs.

    Trial ``t`` shows image ``str(1001 + t)`` (OSIE's ids); its WAV (``audio/``, 16-bit at
    :data:`RATE_HZ`) holds ``spoken[t] = (words, onsets_ms)``, onsets from the WAV's first sample,
    which came ``offset_ms`` after the image onset (``mic_offset_ms`` in ``trials.jsonl``). The
    caller adds the fixations (``fixations.csv``) when the session is to be analysed.

    Returns
    -------
    Path
        ``folder``.
    """
    from scipy.io import wavfile

    (folder / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for trial, (words, onsets) in spoken.items():
        audio = speech_trial(words, onsets, condition=condition, duration_s=duration_s, seed=trial).samples
        name = f"audio/trial{trial:03d}_{1001 + trial}.wav"
        wavfile.write(folder / name, RATE_HZ, (audio * 32767).astype(np.int16))
        rows.append({"trial": trial, "image": str(1001 + trial), "mic_file": name, "mic_offset_ms": offset_ms})
    (folder / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "config.json").write_text(json.dumps({"participant": participant, "session_id": session}))
    return folder
