"""Microphone capture: one input stream per session, one WAV per trial.

The PortAudio callback copies each block into a ring buffer and notes when it arrived; the frame
loop never touches audio. Between trials, :meth:`Microphone.save` cuts the image period out of
the ring buffer (located through the arrival times) and writes it with ``soundfile``.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

__all__ = ["Microphone", "MicrophoneError", "rms_dbfs"]

logger = logging.getLogger(__name__)


class MicrophoneError(RuntimeError):
    """No usable microphone."""


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level of float samples in [-1, 1], in dB relative to full scale (-inf for silence)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    return float(20.0 * np.log10(rms)) if rms > 0 else -np.inf


class Microphone:
    """A session-long ``sounddevice.InputStream`` into a ring buffer.

    Parameters
    ----------
    device : str, int or None
        ``sounddevice`` input device; None = default input.
    samplerate_hz : int
        Sampling rate.
    buffer_s : float
        Ring-buffer length; must exceed one trial plus the time to save it.

    Notes
    -----
    Positions are mapped to ``time.perf_counter()`` seconds through the arrival time of each
    callback block: the block's last frame is taken to be captured at arrival minus the stream's
    input latency. That is the same clock as the task's onset times.
    """

    def __init__(self, device: str | int | None = None, *, samplerate_hz: int = 44100, buffer_s: float = 30.0) -> None:
        import sounddevice as sd

        try:
            info = sd.query_devices(device, kind="input")
        except (ValueError, sd.PortAudioError) as error:
            available = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
            raise MicrophoneError(
                f"no microphone {device if device is not None else '(default input)'}: {error}; "
                f"input devices found: {available or 'none'}. Connect one, pick it with "
                "mic_device, "
                "or run without the microphone (--no-mic)"
            ) from error
        self.device_name = str(info["name"])
        self.samplerate_hz = int(samplerate_hz)
        self._ring = np.zeros(int(buffer_s * samplerate_hz), dtype=np.float32)
        self._lock = threading.Lock()
        self._frames = 0  # frames captured since the stream started
        self._anchor: tuple[int, float] | None = None  # (frame count, perf_counter s) of last block end
        self.overruns = 0
        self.level_dbfs = -np.inf  # RMS of the last callback block
        self.peak_dbfs = -np.inf
        self._stream = sd.InputStream(
            device=device,
            channels=1,
            samplerate=samplerate_hz,
            dtype="float32",
            callback=self._callback,
        )
        self.latency_s = float(self._stream.latency)

    def _callback(self, indata, frames, time_info, status) -> None:
        arrived = time.perf_counter()
        if status.input_overflow:
            self.overruns += 1
        block = indata[:, 0]
        size = self._ring.size
        with self._lock:
            start = self._frames % size
            first = min(frames, size - start)
            self._ring[start : start + first] = block[:first]
            self._ring[: frames - first] = block[first:]
            self._frames += frames
            self._anchor = (self._frames, arrived - self.latency_s)
        self.level_dbfs = rms_dbfs(block)
        peak = float(np.max(np.abs(block))) if frames else 0.0
        self.peak_dbfs = float(20.0 * np.log10(peak)) if peak > 0 else -np.inf

    def level(self) -> dict:
        """The input level of the last block: ``rms_dbfs``, ``peak_dbfs`` and ``xruns`` so far.

        Silence reads -200 dBFS rather than -inf, so the value stays a finite number on the wire.
        """
        return {
            "rms_dbfs": min(max(self.level_dbfs, -200.0), 0.0),
            "peak_dbfs": min(max(self.peak_dbfs, -200.0), 0.0),
            "xruns": self.overruns,
        }

    def start(self) -> None:
        self._stream.start()

    def frame_at(self, t_s: float) -> float:
        """Stream frame index captured at ``time.perf_counter()`` time ``t_s`` (fractional)."""
        with self._lock:
            if self._anchor is None:
                raise MicrophoneError("the microphone has delivered no audio yet; is the stream started?")
            frames, at = self._anchor
        return frames + (t_s - at) * self.samplerate_hz

    def save(self, path: Path, *, start_s: float, end_s: float, timeout_s: float = 2.0) -> dict:
        """Write the audio between two ``perf_counter`` times to a WAV.

        Waits (up to ``timeout_s``) until the stream has delivered ``end_s``; call it between
        trials only.

        Returns
        -------
        dict
            ``file``, ``frames``, ``offset_ms`` (time of the WAV's first sample minus
            ``start_s``, ms), ``level_dbfs`` of the clip, and ``overruns`` so far.
        """
        import soundfile as sf

        first = self.frame_at(start_s)
        last = self.frame_at(end_s)
        deadline = time.perf_counter() + timeout_s
        while self._frames < last and time.perf_counter() < deadline:
            time.sleep(0.01)
        first_i, last_i = int(np.ceil(first)), int(min(np.floor(last), self._frames))
        with self._lock:
            if self._frames - first_i > self._ring.size:
                raise MicrophoneError(f"the audio of {path.name} was overwritten; enlarge buffer_s")
            index = np.arange(first_i, max(last_i, first_i)) % self._ring.size
            clip = self._ring[index].copy()
        sf.write(path, clip, self.samplerate_hz, subtype="PCM_16")
        return {
            "file": path.name,
            "frames": int(clip.size),
            "offset_ms": (first_i - first) / self.samplerate_hz * 1000.0,
            "level_dbfs": rms_dbfs(clip),
            "overruns": self.overruns,
        }

    def close(self) -> None:
        """Stop and close the stream (idempotent)."""
        if not self._stream.closed:
            self._stream.stop()
            self._stream.close()
        if self.overruns:
            logger.warning("microphone: %d input overruns in this session", self.overruns)
