"""Utterance onsets found while a trial's recording streams in: the dashboard's live ticks.

:func:`analysis.voice.detect.detect_utterances` sees a whole recording; live, the audio arrives in
chunks (``mic_audio`` records, every 100 ms) and an onset should show within a second of the
speech. :class:`LiveDetector` runs the offline steps on what has arrived so far:

1. resampling to 16 kHz block by block (:class:`StreamResampler`), giving the samples that
   resampling the whole recording gives (``scipy.signal.resample_poly``, the offline step);
2. Silero's speech probability per 32 ms frame, the model's state carried across chunks (a model
   of its own), and the offline hysteresis (:func:`~analysis.voice.detect.hysteresis_step`);
3. runs of speech frames joined across pauses shorter than ``min_silence_ms``, as offline. A run
   becomes an utterance — and is reported, once — when it holds ``min_speech_ms`` of frames and
   ``min_voiced_ms`` of voicing (:func:`~analysis.voice.detect.voiced_ms`) so far: a click or a
   breath is never reported, a name is as soon as its first vowel is;
4. the onset refined to the acoustic rise (:func:`~analysis.voice.detect.refine_bounds` on the
   audio so far: the noise it compares with is the past only, so it may differ from the offline
   onset by a few ms).

An utterance is reported ``detected_ms − onset_ms`` after its onset, in audio time: Silero's
probability rises a frame or two into the speech, then ``min_speech_ms`` of frames (and enough
voicing) must follow. The wall-clock delay adds how long the audio waited to be sent and the
transport (``bench/bench_live_voice.py`` measures both). Times are ms from the recording's first
sample. Nothing here imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import firwin, resample_poly

from analysis.voice.detect import (
    ANALYSIS_RATE_HZ,
    SILERO_FRAME,
    VoiceParams,
    frames_of,
    hysteresis_step,
    refine_bounds,
    samples_of,
    silero_model,
    voiced_ms,
)

__all__ = ["StreamResampler", "LiveUtterance", "LiveDetector"]


class StreamResampler:
    """Resample a stream chunk by chunk to the samples ``resample_poly`` gives for the whole.

    ``resample_poly`` filters the zero-padded, upsampled signal with a Kaiser-windowed sinc of
    ``2 · 10 · max(up, down) + 1`` taps and keeps every ``down``-th sample. Output sample ``j``
    depends on the input samples within the filter's reach around ``j · down / up``. So a block of
    input samples ``[s, e)`` (``s`` and ``e`` multiples of ``down``, so that its outputs fall on
    the whole signal's grid) resampled together with ``context`` samples on each side gives
    exactly the whole signal's outputs ``[s · up / down, e · up / down)``; before the first sample
    the context is zeros, as ``resample_poly`` pads. The outputs lag the input by ``context``
    samples (10 ms at 44.1 kHz, 0.7 ms at 48 kHz).

    Parameters
    ----------
    rate_hz : int
        Input rate.
    out_rate_hz : int
        Output rate (default 16 kHz, the detectors').
    """

    def __init__(self, rate_hz: int, out_rate_hz: int = ANALYSIS_RATE_HZ) -> None:
        if rate_hz <= 0 or out_rate_hz <= 0:
            raise ValueError(f"rates must be positive; got {rate_hz} → {out_rate_hz} Hz")
        common = math.gcd(rate_hz, out_rate_hz)
        self.up, self.down = out_rate_hz // common, rate_hz // common
        half_len = 10 * max(self.up, self.down)
        # resample_poly's own design (its default window), computed once instead of per call
        self._filter = (
            None
            if self.up == self.down
            else firwin(2 * half_len + 1, 1.0 / max(self.up, self.down), window=("kaiser", 5.0)).astype(np.float32)
        )
        self.context = self.down * math.ceil((half_len / self.up + 1) / self.down)
        self._buffer = np.zeros(self.context, np.float32)  # input from global index _start on
        self._start = -self.context  # global index of _buffer[0]
        self._next = 0  # global index of the next block to resample (a multiple of down)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Take the next input samples; return the output samples they complete (float32)."""
        samples = np.asarray(samples, np.float32)
        if self.up == self.down:
            return samples
        self._buffer = np.concatenate([self._buffer, samples])
        available = self._start + self._buffer.size
        end = (available - self.context) // self.down * self.down
        if end <= self._next:
            return np.zeros(0, np.float32)
        first = self._next - self.context - self._start
        block = self._buffer[first : end + self.context - self._start]
        resampled = resample_poly(block, self.up, self.down, window=self._filter)
        keep = resampled[self.context * self.up // self.down : (self.context + end - self._next) * self.up // self.down]
        self._next = end
        drop = end - self.context - self._start  # keep the context of the next block
        self._buffer, self._start = self._buffer[drop:], self._start + drop
        return keep.astype(np.float32)


@dataclass
class LiveUtterance:
    """An utterance found live; times in ms from the recording's first sample.

    Attributes
    ----------
    onset_ms : float
        Refined to the acoustic rise (unless ``refine`` is off).
    detected_ms : float
        The end of the audio that confirmed it: it was reported this far into the recording.
    confidence : float
        Mean speech probability of its frames up to ``detected_ms``.
    offset_ms : float or None
        The end of its last speech frame (not refined), once a pause of ``min_silence_ms`` has
        followed.
    """

    onset_ms: float
    detected_ms: float
    confidence: float
    offset_ms: float | None = None


class LiveDetector:
    """The utterances of one recording, found as its chunks arrive (module docstring).

    Parameters
    ----------
    rate_hz : int
        The recording's rate.
    params : VoiceParams
        ``threshold``, ``min_speech_ms``, ``min_silence_ms``, ``min_voiced_ms``, ``refine`` and
        ``search_ms`` as offline; the method is Silero's (the energy reference needs the whole
        recording's noise floor).

    Attributes
    ----------
    utterances : list of LiveUtterance
        Every utterance reported so far, in time order.
    """

    def __init__(self, rate_hz: int, *, params: VoiceParams = VoiceParams()) -> None:
        if params.method != "silero":
            raise ValueError(f"live detection runs the Silero VAD; got method={params.method!r}")
        self.params = params
        self.utterances: list[LiveUtterance] = []
        self._resampler = StreamResampler(rate_hz)
        self._model = silero_model()  # its own recurrent state
        self._audio = np.zeros(ANALYSIS_RATE_HZ * 8, np.float32)  # grows when needed
        self._n = 0  # samples of _audio filled (16 kHz)
        self._probability: list[float] = []
        self._active = False
        self._run: list[int] | None = None  # [first, last] speech frame of the current run
        self._reported = False  # whether the current run was reported
        self._min_gap = frames_of(params.min_silence_ms, SILERO_FRAME)
        self._min_len = max(frames_of(params.min_speech_ms, SILERO_FRAME), 1)

    @property
    def audio_ms(self) -> float:
        """How much of the recording was analysed (ms)."""
        return len(self._probability) * SILERO_FRAME * 1000 / ANALYSIS_RATE_HZ

    def push(self, samples: np.ndarray) -> list[LiveUtterance]:
        """Take the next samples of the recording (float, full scale ±1, at ``rate_hz``).

        Returns
        -------
        list of LiveUtterance
            The utterances reported by these samples (also appended to :attr:`utterances`).
        """
        audio = self._resampler.push(samples)
        if self._n + audio.size > self._audio.size:
            self._audio = np.concatenate([self._audio, np.zeros(max(audio.size, self._audio.size), np.float32)])
        self._audio[self._n : self._n + audio.size] = audio
        self._n += audio.size
        found = []
        while (len(self._probability) + 1) * SILERO_FRAME <= self._n:
            frame = len(self._probability)
            chunk = np.ascontiguousarray(self._audio[frame * SILERO_FRAME : (frame + 1) * SILERO_FRAME])
            self._probability.append(float(self._model.process(memoryview(chunk.data))))
            utterance = self._frame(frame)
            if utterance is not None:
                found.append(utterance)
        return found

    def _frame(self, frame: int) -> LiveUtterance | None:
        """Take frame ``frame``'s probability: runs, their end, and the report of a new utterance."""
        self._active = hysteresis_step(self._probability[frame], self._active, threshold=self.params.threshold)
        run = self._run
        if run is not None and frame - (run[1] + 1) >= self._min_gap:  # a pause long enough ends the run
            if self._reported:
                self.utterances[-1].offset_ms = _ms((run[1] + 1) * SILERO_FRAME)
            self._run, self._reported = None, False
        if not self._active:
            return None
        if self._run is None:
            self._run = [frame, frame]
        self._run[1] = frame
        if self._reported or frame + 1 - self._run[0] < self._min_len:
            return None
        start, stop = self._run[0] * SILERO_FRAME, (frame + 1) * SILERO_FRAME
        if self.params.min_voiced_ms and voiced_ms(self._audio[start:stop]) < self.params.min_voiced_ms:
            return None
        self._reported = True
        onset = start
        if self.params.refine:
            refined = refine_bounds(
                self._audio[: self._n],
                [(start, stop)],
                search=samples_of(self.params.search_ms),
                min_gap=samples_of(self.params.min_silence_ms),
            )
            onset = refined[0][0]
        confidence = float(np.mean(self._probability[self._run[0] : frame + 1]))
        utterance = LiveUtterance(_ms(onset), _ms(stop), confidence)
        self.utterances.append(utterance)
        return utterance


def _ms(samples_16k: int) -> float:
    return samples_16k * 1000 / ANALYSIS_RATE_HZ
