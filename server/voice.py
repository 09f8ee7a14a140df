"""The dashboard's live microphone strip: the trial's level and its utterance onsets.

The experiment streams the trial's recording as ``mic_audio`` records (every 100 ms while the
image is shown; exactly the samples of the trial's WAV). The hub's receiver thread hands each to
:meth:`VoiceMonitor.feed` (a queue put: detection never delays the records behind it); the
monitor's own thread keeps the trial's level per ``bin_ms`` and runs
:class:`analysis.voice.live.LiveDetector` (the offline detector's steps on the audio so far) on
it, then publishes the ``voice`` section (:class:`server.sections.VoiceSection`). The first record
of a trial's run (``first_sample`` 0) starts a new strip; a record that does not continue the
strip (a gap: the server missed the trial's start) is counted and skipped.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable

import numpy as np

from analysis.voice.detect import VoiceParams
from lookwhere.protocol import MicAudio
from server.sections import VoiceSection, VoiceTick

__all__ = ["VoiceMonitor", "BIN_MS"]

logger = logging.getLogger(__name__)

#: Width of one column of the level strip.
BIN_MS = 50.0


class _Strip:
    """One trial's run: its level bins, its detector, how much of it arrived."""

    def __init__(self, record: MicAudio, params: VoiceParams, detector_error: str | None) -> None:
        self.session, self.trial = record.session, record.trial
        self.offset_ms, self.rate_hz = record.mic_offset_ms, record.rate_hz
        self.per_bin = max(int(round(BIN_MS * record.rate_hz / 1000)), 1)
        self.n_samples = 0
        self.levels: list[float | None] = []
        self._pending = np.zeros(0, np.float32)  # samples of the unfinished bin
        self.ticks: list[VoiceTick] = []
        self.detector = None
        if detector_error is None:
            from analysis.voice.live import LiveDetector

            self.detector = LiveDetector(record.rate_hz, params=params)

    def take(self, samples: np.ndarray) -> None:
        self.n_samples += samples.size
        self._pending = np.concatenate([self._pending, samples])
        whole = self._pending.size // self.per_bin * self.per_bin
        if whole:
            power = np.mean(np.square(self._pending[:whole].reshape(-1, self.per_bin), dtype=np.float64), axis=1)
            self.levels += [round(10 * math.log10(p), 1) if p > 0 else None for p in power]
            self._pending = self._pending[whole:]
        if self.detector is None:
            return
        now = time.time()
        for utterance in self.detector.push(samples):
            self.ticks.append(
                VoiceTick(
                    onset_ms=self.offset_ms + utterance.onset_ms,
                    offset_ms=None,
                    confidence=utterance.confidence,
                    detected_ms=self.offset_ms + utterance.detected_ms,
                    server_time_s=now,
                )
            )
        for index, utterance in enumerate(self.detector.utterances):  # offsets come when a pause has followed
            if utterance.offset_ms is not None and self.ticks[index].offset_ms is None:
                self.ticks[index] = self.ticks[index].model_copy(
                    update={"offset_ms": self.offset_ms + utterance.offset_ms}
                )

    def section(self, detector: str) -> VoiceSection:
        return VoiceSection(
            session=self.session,
            trial=self.trial,
            start_ms=self.offset_ms,
            bin_ms=self.per_bin * 1000.0 / self.rate_hz,
            level_dbfs=list(self.levels),
            audio_ms=self.n_samples * 1000.0 / self.rate_hz,
            utterances=list(self.ticks),
            detector=detector,
        )


class VoiceMonitor:
    """Level strip and live utterance onsets of the trial being shown, in a thread of its own.

    Parameters
    ----------
    publish : callable
        Called with each new :class:`~server.sections.VoiceSection` (from the monitor's thread).
    params : VoiceParams
        The detector's options (the offline defaults).

    Attributes
    ----------
    skipped : int
        ``mic_audio`` records that did not continue their trial's strip.
    """

    def __init__(self, publish: Callable[[VoiceSection], None], *, params: VoiceParams = VoiceParams()) -> None:
        self._publish = publish
        self.params = params
        self._queue: queue.SimpleQueue[MicAudio | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._strip: _Strip | None = None
        self.skipped = 0
        self.detector_error = _detector_error()
        self.detector = (
            f"{params.method} (threshold {params.threshold}, min speech {params.min_speech_ms:g} ms)"
            if self.detector_error is None
            else f"none: {self.detector_error}"
        )

    @staticmethod
    def empty() -> VoiceSection:
        """The section before any audio arrived."""
        return VoiceSection(
            session=None,
            trial=None,
            start_ms=0.0,
            bin_ms=BIN_MS,
            level_dbfs=[],
            audio_ms=0.0,
            utterances=[],
            detector="",
        )

    def feed(self, record: MicAudio) -> None:
        """Queue one record (from the receiver thread; never waits)."""
        self._queue.put(record)

    def start(self) -> VoiceMonitor:
        self._thread = threading.Thread(target=self._run, name="lookwhere-voice", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the thread (idempotent)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5.0)
            self._thread = None

    def _run(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                return
            try:
                self.take(record)
                while True:  # what queued meanwhile, then one section for all of it
                    record = self._queue.get_nowait()
                    if record is None:
                        return
                    self.take(record)
            except queue.Empty:
                pass
            except Exception:  # a bug here must not end the strip for the session
                logger.exception("live voice: a mic_audio record failed")
            if self._strip is not None:
                self._publish(self._strip.section(self.detector))

    def take(self, record: MicAudio) -> None:
        """Add one record to its trial's strip (a new strip when it starts a run)."""
        strip = self._strip
        if record.first_sample == 0:
            strip = self._strip = _Strip(record, self.params, self.detector_error)
        elif (
            strip is None
            or (strip.session, strip.trial) != (record.session, record.trial)
            or record.first_sample != strip.n_samples
        ):
            self.skipped += 1
            n = self.skipped
            log = logger.warning if n == 1 or n % 1000 == 0 else logger.debug
            log(
                "live voice: a mic_audio record of trial %d does not continue its strip; skipped (%d so far)",
                record.trial,
                n,
            )
            return
        samples = np.frombuffer(record.pcm, "<i2").astype(np.float32) / 32768.0
        strip.take(samples)


def _detector_error() -> str | None:
    """Why the live detector cannot run here (None: it can)."""
    try:
        from analysis.voice.detect import silero_model

        silero_model()
    except ImportError as error:
        return str(error)
    return None
