"""Microphone capture: one input stream per session, one WAV per trial.

The PortAudio callback copies each block into a ring buffer and notes when it arrived. While the
image is shown, the frame loop copies what was captured since its last look (:meth:`Microphone.read`,
never waiting) for the live stream; between trials, :meth:`Microphone.save` cuts the image period
out of the ring buffer (located through the arrival times) and writes it with ``soundfile``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path

import numpy as np

__all__ = ["Microphone", "MicrophoneError", "rms_dbfs", "pcm16"]

logger = logging.getLogger(__name__)


class MicrophoneError(RuntimeError):
    """No usable microphone."""


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level of float samples in [-1, 1], in dB relative to full scale (-inf for silence)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    return float(20.0 * np.log10(rms)) if rms > 0 else -np.inf


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples as 16-bit little-endian PCM, exactly as :meth:`Microphone.save` writes them
    (``soundfile``'s PCM_16: ``floor(x · 32768)``, clipped to the int16 range)."""
    return np.clip(np.floor(samples * np.float32(32768)), -32768, 32767).astype("<i2").tobytes()


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

    @property
    def captured(self) -> int:
        """Frames captured since the stream started."""
        return self._frames

    def read(self, start: int, stop: int) -> np.ndarray:
        """Stream frames ``start … stop - 1``, as far as they are captured; never waits.

        Returns
        -------
        ndarray, float32, shape (n,)
            ``n = min(stop, captured) - start`` (0 when none is there yet).

        Raises
        ------
        MicrophoneError
            When the ring buffer has overwritten frame ``start``.
        """
        with self._lock:
            stop = min(stop, self._frames)
            if self._frames - start > self._ring.size:
                raise MicrophoneError(f"audio frames from {start} on were overwritten; enlarge buffer_s")
            return self._ring[np.arange(start, max(stop, start)) % self._ring.size]

    def save(self, path: Path, *, start_frame: float, duration_s: float, timeout_s: float = 2.0) -> dict:
        """Write ``duration_s`` of audio from stream frame ``start_frame`` on to a WAV.

        ``start_frame`` is :meth:`frame_at` of the period's start, read once by the caller (its
        live stream sent the same samples); the period's length in frames is ``duration_s`` at the
        nominal rate. Waits (up to ``timeout_s``) until the stream has delivered its end; call it
        between trials only.

        Returns
        -------
        dict
            ``file``, ``frames``, ``offset_ms`` (time of the WAV's first sample, frame
            ``ceil(start_frame)``, after the start, ms), ``level_dbfs`` of the clip, and
            ``overruns`` so far.
        """
        import soundfile as sf

        last = start_frame + duration_s * self.samplerate_hz
        deadline = time.perf_counter() + timeout_s
        while self._frames < last and time.perf_counter() < deadline:
            time.sleep(0.01)
        first_i, last_i = math.ceil(start_frame), int(min(math.floor(last), self._frames))
        try:
            clip = self.read(first_i, last_i)
        except MicrophoneError as error:
            raise MicrophoneError(f"the audio of {path.name}: {error}") from None
        sf.write(path, clip, self.samplerate_hz, subtype="PCM_16")
        return {
            "file": path.name,
            "frames": int(clip.size),
            "offset_ms": (first_i - start_frame) / self.samplerate_hz * 1000.0,
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
