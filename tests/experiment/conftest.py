"""Headless fixtures for the experiment: an Xvfb display, a virtual microphone, session runners.

Nothing here needs a display or a sound card on the machine:

* ``xvfb_display`` starts ``Xvfb :N -screen 0 1920x1080x24`` on a free display number and kills
  it at the end.
* ``virtual_mic`` is an ALSA configuration (``ALSA_CONFIG_PATH``) whose default capture device
  plays a looped 440 Hz sine of amplitude 0.25 in real time (``tests/_virtual_mic.py``). Its RMS level is
  ``20·log10(0.25/√2) = -15.05 dBFS`` — the tests' oracle.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiment.xvfb import start_xvfb
from tests._virtual_mic import VirtualMic
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


@pytest.fixture(scope="session")
def virtual_mic(tmp_path_factory):
    """Environment variables that make ALSA's default capture device the looped sine."""
    t = np.arange(MIC_RATE_HZ) / MIC_RATE_HZ  # one second: a whole number of 440 Hz periods
    sine = MIC_AMPLITUDE * np.sin(2 * np.pi * 440 * t)
    with VirtualMic(tmp_path_factory.mktemp("alsa"), sine, MIC_RATE_HZ) as env:
        yield env


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
