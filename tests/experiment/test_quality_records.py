"""The experiment's quality records and the operator's screen texts (no window needed)."""

from __future__ import annotations

import math

import numpy as np

from experiment.quality import drift_check_record, drift_hint, drift_outcome, setup_text, trial_quality_of
from experiment.trackers import CalibrationResult, SampleBlock
from lookwhere.quality import parse_validation


def test_drift_outcomes_and_an_unmeasured_offset():
    assert drift_outcome(attempts=1, recalibrations=0) == "accepted"
    assert drift_outcome(attempts=3, recalibrations=0) == "repeated"
    assert drift_outcome(attempts=2, recalibrations=1) == "recalibrated"
    # pylink's dummy connection measures nothing: NaN on the wire, no eye
    record = drift_check_record(4, {"performed": False, "attempts": 1, "outcome": "accepted"}, t_session_ms=1.0)
    assert math.isnan(record.offset_deg) and record.eye == "" and record.trial == 4


def test_a_backend_without_samples_reports_unknown_track_loss():
    quality, record = trial_quality_of(None, 2, onset_tracker_ms=0.0, offset_tracker_ms=400.0)
    assert quality.samples == 0 and math.isnan(record.track_loss) and record.trial == 2
    block = SampleBlock(t_ms=np.arange(0.0, 400.0, 4.0), pupil=np.full(100, 900.0), blinks_ms=np.empty((0, 2)))
    quality, _ = trial_quality_of(block, 2, onset_tracker_ms=0.0, offset_tracker_ms=400.0)
    assert (quality.samples, quality.track_loss, quality.mean_pupil) == (100, 0.0, 900.0)


def test_operator_screens_say_what_they_wait_for_and_the_keys():
    assert drift_hint(drift_start="key").startswith("Participant: look at the dot and press SPACE · Esc: setup")
    assert "gaze holds it" in drift_hint(drift_start="gaze")
    assert "no key needed" in setup_text("simulated")
    message = "!CAL VALIDATION HV9 R RIGHT POOR ERROR 1.40 avg. 1.78 max  OFFSET 0.39 deg. -15.2,-8.0 pix."
    done = setup_text("simulated", CalibrationResult(message=message, validations=tuple(parse_validation(message))))
    assert done == "Tracker setup (simulated) done: R POOR 1.40° avg, 1.78° max"
    skipped = setup_text("eyelink-dummy", CalibrationResult(skipped=True, reason="dummy connection"))
    assert skipped == "Tracker setup (eyelink-dummy) skipped: dummy connection"
