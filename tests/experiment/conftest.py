"""Headless fixtures for the experiment: an Xvfb display, a virtual microphone, session runners.

Nothing here needs a display or a sound card on the machine:

* ``xvfb_display`` starts ``Xvfb :N -screen 0 1920x1080x24`` on a free display number and kills
  it at the end.
* ``virtual_mic`` is an ALSA configuration (``ALSA_CONFIG_PATH``) whose default capture PCM is a
  ``type file`` plugin over ``null`` that reads a named pipe. ALSA's ``null`` PCM is not paced (it
  delivers frames as fast as they are read), so a thread writes a 440 Hz sine of amplitude 0.25
  into the pipe in real time, 10 ms at a time: the blocking pipe paces the capture like a real
  sound card. Its RMS level is ``20·log10(0.25/√2) = -15.05 dBFS`` — the tests' oracle.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from experiment.xvfb import start_xvfb
from tests.conftest import SHARED_DATA

MIC_RATE_HZ = 44100
MIC_AMPLITUDE = 0.25
MIC_LEVEL_DBFS = 20 * np.log10(MIC_AMPLITUDE / np.sqrt(2))
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def xvfb_display():
    """``":N"`` of a private Xvfb server (1920×1080×24), killed after the tests."""
    try:
        server = start_xvfb()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    yield server.display
    server.close()


class _PacedPipeWriter(threading.Thread):
    """Writes a sine into a named pipe at real-time pace, reopening it for each new reader."""

    def __init__(self, fifo: Path) -> None:
        super().__init__(daemon=True)
        self.fifo = fifo
        self.stopped = threading.Event()
        t = np.arange(MIC_RATE_HZ) / MIC_RATE_HZ  # one second: a whole number of 440 Hz periods
        self.second = (MIC_AMPLITUDE * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes()

    def run(self) -> None:
        chunk = MIC_RATE_HZ // 100 * 2  # 10 ms of S16 mono
        loop = self.second * 2
        while not self.stopped.is_set():
            fd = os.open(self.fifo, os.O_WRONLY)  # blocks until a reader opens the pipe
            started, written = time.monotonic(), 0
            try:
                while not self.stopped.is_set():
                    offset = (written * chunk) % len(self.second)
                    os.write(fd, loop[offset : offset + chunk])
                    written += 1
                    time.sleep(max(0.0, started + written * 0.01 - time.monotonic()))
            except BrokenPipeError:
                pass  # the reader closed the stream; wait for the next one
            finally:
                os.close(fd)

    def stop(self) -> None:
        self.stopped.set()
        # Unblock a writer waiting in open() by opening the reading end once.
        fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        time.sleep(0.05)
        os.close(fd)
        self.join(timeout=5)


@pytest.fixture(scope="session")
def virtual_mic(tmp_path_factory):
    """Environment variables that make ALSA's default capture device the paced sine."""
    folder = tmp_path_factory.mktemp("alsa")
    fifo = folder / "mic.pipe"
    os.mkfifo(fifo)
    config = folder / "asound.conf"
    config.write_text(f"""
pcm.!default {{ type asym; playback.pcm "null"; capture.pcm "lookwhere_mic" }}
pcm.lookwhere_mic {{
  type plug
  slave {{ pcm "lookwhere_mic_file"; format S16_LE; rate {MIC_RATE_HZ}; channels 1 }}
}}
pcm.lookwhere_mic_file {{
  type file; slave.pcm "null"; file "/dev/null"; infile "{fifo}"; format "raw"
}}
""")
    writer = _PacedPipeWriter(fifo)
    writer.start()
    yield {"ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{config}"}
    writer.stop()


@pytest.fixture(scope="session")
def session_env(xvfb_display, virtual_mic) -> dict:
    """Environment of a session subprocess: the private display and the virtual microphone."""
    return {**os.environ, "DISPLAY": xvfb_display, **virtual_mic}


@pytest.fixture(scope="session")
def four_images(tmp_path_factory) -> Path:
    """Four real OSIE photographs (800×600) in a stimulus folder of their own."""
    source = SHARED_DATA / "osie" / "stimuli"
    if not source.is_dir():
        pytest.skip(f"real data folder {source} is absent (clone the project beside shared/)")
    folder = tmp_path_factory.mktemp("stimuli")
    for name in ("1001.jpg", "1002.jpg", "1003.jpg", "1004.jpg"):
        shutil.copy(source / name, folder / name)
    return folder


def run_session(env: dict, *arguments: str, timeout_s: float = 90) -> subprocess.CompletedProcess:
    """Run ``lookwhere run`` with ``arguments``; return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "lookwhere", "-v", "run", *arguments],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def start_session(env: dict, *arguments: str) -> subprocess.Popen:
    """Start ``lookwhere run`` with ``arguments`` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "lookwhere", "-v", "run", *arguments],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_probe(env: dict, module: str, *arguments: str, timeout_s: float = 90) -> dict:
    """Run ``python -m tests.experiment.<module> ARGS`` and return the JSON it prints after
    ``OBSERVED``; fails the test with the probe's stderr when it exits non-zero."""
    result = subprocess.run(
        [sys.executable, "-m", f"tests.experiment.{module}", *arguments],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.split("OBSERVED ", 1)[1])
