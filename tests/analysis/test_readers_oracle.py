"""The ASC reader against MNE-Python, an independent EyeLink reader (the test extra's oracle).

MNE's ``read_raw_eyelink`` gives fixations and blinks as annotations: onset in seconds from the
first sample (the first ``START``), duration in seconds, the eye in the channel names.
``read_eyelink_calibration`` gives each validation's eye, point layout and errors in degrees. Every
ASC file of the corpus that MNE reads is compared; the ones it refuses are listed with MNE's reason.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from analysis.readers import read_eyelink_asc

mne = pytest.importorskip("mne")

# MNE reads these fully. It refuses the remote-mode binocular files ("expected 10 columns of
# data, but got 7") and the no-dummy fixture ("couldn't find any samples"); on the excerpted
# pymovements monocular fixtures it drops the fixation after the cut.
MNE_READS = [
    "cili/bino1000.asc",
    "cili/bino250.asc",
    "cili/bino500.asc",
    "cili/mono1000.asc",
    "cili/mono2000.asc",
    "cili/mono250.asc",
    "cili/mono500.asc",
    "cili/monoRemote250.asc",
    "cili/monoRemote500.asc",
    "eyelinkparser/data1.asc",
    "pymovements/eyelink_binocular_example.asc",
]
# read_eyelink_calibration fails on the binocular cili files (it reads "MSG" as a number).
MNE_CALIBRATIONS = [
    "cili/mono1000.asc",
    "cili/mono2000.asc",
    "cili/mono250.asc",
    "cili/mono500.asc",
    "cili/monoRemote250.asc",
    "cili/monoRemote500.asc",
    "eyelinkparser/data1.asc",
]


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_eyelink_asc(path)


def _mne_events(path, description: str) -> list[tuple[str, float, float]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        annotations = mne.io.read_raw_eyelink(path, verbose="error").annotations
    rows = []
    for onset, duration, channels, text in zip(
        annotations.onset, annotations.duration, annotations.ch_names, annotations.description
    ):
        if text == description:
            eye = {"left": "L", "right": "R"}[channels[0].rsplit("_", 1)[1]]
            rows.append((eye, round(onset * 1000, 3), round(duration * 1000, 3)))
    return sorted(rows)


def _ours(table, first_sample_ms: float) -> list[tuple[str, float, float]]:
    return sorted(
        (eye, round(start - first_sample_ms, 3), round(duration, 3))
        for eye, start, duration in zip(table["eye"], table["start_tracker_ms"], table["duration_ms"])
    )


@pytest.mark.parametrize("name", MNE_READS)
def test_fixations_and_blinks_equal_mne(eyelink_dir, name):
    path = eyelink_dir / name
    recording = _read(path)
    first_sample = recording.blocks["start_tracker_ms"].iloc[0]
    fixations = _ours(recording.fixation_events, first_sample)
    assert fixations == _mne_events(path, "fixation")
    assert len(fixations) > 0
    assert _ours(recording.blinks, first_sample) == _mne_events(path, "BAD_blink")


@pytest.mark.parametrize("name", MNE_CALIBRATIONS)
def test_validations_equal_mne(eyelink_dir, name):
    path = eyelink_dir / name
    expected = [
        ({"left": "L", "right": "R"}[c["eye"]], c["model"], c["avg_error"], c["max_error"])
        for c in mne.preprocessing.eyetracking.read_eyelink_calibration(path)
    ]
    validations = _read(path).validations
    ours = list(zip(validations["eye"], validations["points"], validations["avg_deg"], validations["max_deg"]))
    assert ours == expected
    assert not validations["aborted"].any() and np.isfinite(validations["offset_deg"]).all()
