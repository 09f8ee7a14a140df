"""Preflight failures: each problem is reported, with what to do, before anything is shown."""

from __future__ import annotations

import shutil

import pytest

from experiment.config import SessionConfig
from experiment.preflight import PreflightError, preflight
from stimuli.sets import StimulusSet
from tests.experiment.conftest import run_session


def _config(stimuli, out, **overrides) -> SessionConfig:
    settings = dict(
        participant="P09",
        stimuli=stimuli,
        out=out,
        tracker="simulated",
        microphone=False,
        min_free_mb=0,
    )
    return SessionConfig(**{**settings, **overrides})


def test_unwritable_output_folder(four_images, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # A folder inside a regular file cannot be created, whatever the user's permissions (root too).
    config = _config(four_images, blocker / "sessions")
    with pytest.raises(PreflightError, match="output folder .* is not writable.*pass a writable --out"):
        preflight(config, StimulusSet(four_images), ["1001"])


def test_not_enough_free_space(four_images, tmp_path):
    config = _config(four_images, tmp_path, min_free_mb=1e12)
    with pytest.raises(PreflightError, match="MB free, less than"):
        preflight(config, StimulusSet(four_images), ["1001"])


def test_unreadable_and_missing_images_are_all_listed(four_images, tmp_path):
    stimuli = tmp_path / "stimuli"
    shutil.copytree(four_images, stimuli)
    data = (stimuli / "1002.jpg").read_bytes()
    (stimuli / "1002.jpg").write_bytes(data[: len(data) // 3])  # truncated JPEG
    config = _config(stimuli, tmp_path / "out")
    with pytest.raises(PreflightError) as error:
        preflight(config, StimulusSet(stimuli), ["1001", "1002", "9999"])
    assert len(error.value.problems) == 2
    assert "image '1002' cannot be read" in str(error.value) and "image '9999' cannot be read" in str(error.value)


def test_no_microphone(four_images, tmp_path):
    config = _config(four_images, tmp_path, microphone=True, mic_device="no-such-microphone")
    with pytest.raises(PreflightError, match="no microphone no-such-microphone.*--no-mic"):
        preflight(config, StimulusSet(four_images), ["1001"])


def test_cli_reports_preflight_failures_before_opening_a_window(session_env, four_images, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_session(
        session_env,
        "--participant",
        "P09",
        "--stimuli",
        str(four_images),
        "--tracker",
        "simulated",
        "--out",
        str(blocker),
        "--mic-device",
        "no-such-microphone",
    )
    assert result.returncode == 2
    assert "preflight failed" in result.stderr
    assert "not writable" in result.stderr and "no microphone no-such-microphone" in result.stderr
    assert "frame period" not in result.stderr  # the window never opened
