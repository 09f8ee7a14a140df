"""The EyeLink calibration graphics, method by method, in a real window under Xvfb."""

from __future__ import annotations

import pylink

from tests.experiment.conftest import run_probe


def test_calibration_graphics_methods(session_env):
    observed = run_probe(session_env, "_calibration_probe", timeout_s=60)
    # pylink's (100, 200) from the top-left of 1920×1080 is (-860, 340) in PsychoPy pix units.
    assert observed["target_pos"] == [-860.0, 340.0]
    # Oracle: pylink's key codes; modifiers as SR Research's examples encode them.
    assert observed["keys"] == [
        [ord(" "), 0],
        [pylink.ESC_KEY, 0],
        [ord("c"), 1],
        [pylink.F1_KEY, 256],
        [pylink.JUNK_KEY, 0],
    ]
    assert observed["keys_again"] == 0
    # The task's stream is serviced on every key poll pylink makes (heartbeats during setup).
    assert observed["idle_calls"] == [1, 0]
    # Camera line n holds palette indices n..n+3, grey level 10·index; the dummy connection's
    # cross-hair data put a white (CR_HAIR_COLOR) point on the top-left pixel.
    assert observed["camera"] == [[255, 20, 30, 40], [20, 30, 40, 50], [30, 40, 50, 60]]
    # 20 more camera frames reuse one stimulus (one texture), none left to the garbage collector.
    assert observed["image_stims_added"] == 0
