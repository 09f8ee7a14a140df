"""A virtual microphone: ALSA's default capture device reads a named pipe that a player process fills.

ALSA's ``type file`` plugin over the ``null`` PCM reads its ``infile`` at the application's
request; ``null`` itself is not paced (with a pipe that is never empty, PortAudio captured 16
million frames in 15 s). The player paces it: it writes its loop in real time, and the capture
waits on the empty pipe. How the plugin reads the pipe decides what is recorded (measured with a
ramp through PortAudio 19.6 and alsa-lib 1.2.8, traced with strace):

* PortAudio captures in mmap access, one period of 383 frames at a time (44.1 kHz, its default
  high input latency; a ring of 5 periods). Before each period the plugin reads the pipe into the
  whole free area up to the ring's end, 1 to 5 periods, and PortAudio commits one period of it.
* A short read, from a pipe holding less than a period, leaves the rest of the period as it was a
  ring ago: stale fragments of earlier sound (clicks every 43 ms in digital silence, bits of words).
  A read of more than a period loses what lies beyond the committed one.

So the player writes exactly one period per ``write`` (atomic, below ``PIPE_BUF``): every read
finds whole periods, the capture is the loop's samples at real time, and a late player makes the
capture skip whole periods rather than repeat stale ones. Only the stream's first ring (43 ms) is
garbage. The player loops its samples from their start for each reader that opens the pipe. It is
a separate process, not a thread of the test process, whose GIL it would share with whatever
earlier tests left running there.

Use::

    with VirtualMic(folder, samples, rate_hz) as env:  # samples: floats in [-1, 1]
        subprocess.run([...], env={**os.environ, **env})
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PERIOD_FRAMES = 383  # PortAudio's capture period at 44.1 kHz and its default high input latency


class VirtualMic:
    """Context manager: ``{"ALSA_CONFIG_PATH": ...}`` of a capture device that plays ``samples`` in a loop.

    Parameters
    ----------
    folder : Path
        An empty folder for the pipe, the raw samples and the ALSA configuration.
    samples : ndarray of float
        The loop, mono, in [-1, 1] (clipped); written as 16-bit signed little-endian samples.
    rate_hz : int
        The sampling rate that the capture device reports.
    """

    def __init__(self, folder: Path, samples: np.ndarray, rate_hz: int) -> None:
        self.folder, self.rate_hz = Path(folder), rate_hz
        self.fifo = self.folder / "mic.pipe"
        self.raw = self.folder / "mic.raw"
        self.raw.write_bytes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
        self.player: subprocess.Popen | None = None

    def __enter__(self) -> dict[str, str]:
        os.mkfifo(self.fifo)
        config = self.folder / "asound.conf"
        config.write_text(f"""
pcm.!default {{ type asym; playback.pcm "null"; capture.pcm "lookwhere_mic" }}
pcm.lookwhere_mic {{
  type plug
  slave {{ pcm "lookwhere_mic_file"; format S16_LE; rate {self.rate_hz}; channels 1 }}
}}
pcm.lookwhere_mic_file {{
  type file; slave.pcm "null"; file "/dev/null"; infile "{self.fifo}"; format "raw"
}}
""")
        self.player = subprocess.Popen(
            [sys.executable, "-m", "tests._virtual_mic", str(self.fifo), str(self.raw), str(self.rate_hz)],
            cwd=Path(__file__).resolve().parents[1],
        )
        return {"ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{config}"}

    def __exit__(self, *exc_info: object) -> None:
        assert self.player is not None
        self.player.terminate()
        self.player.wait(timeout=5)


def play(fifo: Path, loop: bytes, rate_hz: int) -> None:
    """Write ``loop`` (S16 mono) into ``fifo`` in real time, a period per write, from its start for each reader."""
    chunk = PERIOD_FRAMES * 2
    looped = loop + loop[:chunk]  # a period may run across the loop's end
    while True:
        fd = os.open(fifo, os.O_WRONLY)  # blocks until a reader opens the pipe
        started, written = time.monotonic(), 0
        try:
            while True:
                offset = (written * chunk) % len(loop)
                os.write(fd, looped[offset : offset + chunk])
                written += 1
                time.sleep(max(0.0, started + written * PERIOD_FRAMES / rate_hz - time.monotonic()))
        except BrokenPipeError:
            pass  # the reader closed the stream; wait for the next one
        finally:
            os.close(fd)


if __name__ == "__main__":
    fifo, raw, rate_hz = sys.argv[1:]
    play(Path(fifo), Path(raw).read_bytes(), int(rate_hz))
