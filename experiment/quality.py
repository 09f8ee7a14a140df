"""The session's data-quality records: validations after each setup, the drift check of each trial,
each trial's track loss (SPEC §4; issue 15), and what the operator's screens tell the people at
the screen.

Built between trials only (after recording stopped, or at a screen's end), never inside a frame:
the stream's ``send`` never blocks and the trial row is written with the rest of the trial.
Degrees come from the tracker where it reports them (EyeLink computes its own from its
``screen_phys_coords``); the simulated tracker converts with the session's
:class:`stimuli.viewing.ViewingGeometry`.
"""

from __future__ import annotations

import math
from typing import Any

from experiment.trackers import CalibrationResult, SampleBlock
from lookwhere.protocol import DriftCheck, TrialQualityRecord, Validation
from lookwhere.quality import TrialQuality, trial_quality

__all__ = ["validation_records", "drift_outcome", "drift_check_record", "trial_quality_of", "drift_hint", "setup_text"]

_NAN = float("nan")


def validation_records(result: CalibrationResult, *, calibration: int, t_session_ms: float) -> list[Validation]:
    """One :class:`~lookwhere.protocol.Validation` per eye of a setup's result (none when it ran no
    validation); ``calibration`` numbers the setups of the session from 0."""
    return [
        Validation(
            calibration=calibration,
            eye=validation.eye,
            grade=validation.grade,
            points=validation.points,
            avg_error_deg=validation.avg_error_deg,
            max_error_deg=validation.max_error_deg,
            offset_deg=validation.offset_deg,
            offset_x_px=validation.offset_x_px,
            offset_y_px=validation.offset_y_px,
            t_session_ms=t_session_ms,
        )
        for validation in result.validations
    ]


def drift_outcome(*, attempts: int, recalibrations: int) -> str:
    """How a drift check ended (:data:`lookwhere.quality.DRIFT_OUTCOMES`): ``recalibrated`` when
    the operator ran the setup from it, ``repeated`` when it took more than one attempt, else
    ``accepted``."""
    if recalibrations:
        return "recalibrated"
    return "repeated" if attempts > 1 else "accepted"


def drift_check_record(trial: int, drift: dict[str, Any], *, t_session_ms: float) -> DriftCheck:
    """The stream's record of a trial's drift-correction result (the trial row's
    ``drift_correction``: :meth:`experiment.operator_screens.OperatorScreens.drift_correction`);
    offsets NaN where the tracker measured none."""

    def number(name: str) -> float:
        value = drift.get(name)
        return _NAN if value is None else float(value)

    return DriftCheck(
        trial=trial,
        eye=drift.get("eye") or "",
        offset_x_px=number("offset_x_px"),
        offset_y_px=number("offset_y_px"),
        offset_deg=number("offset_deg"),
        outcome=drift["outcome"],
        attempts=drift["attempts"],
        t_session_ms=t_session_ms,
    )


def trial_quality_of(
    block: SampleBlock | None, trial: int, *, onset_tracker_ms: float, offset_tracker_ms: float
) -> tuple[TrialQuality, TrialQualityRecord]:
    """Track loss, blinks and mean pupil of the display period from the tracker's samples
    (:func:`lookwhere.quality.trial_quality`), and its stream record; without samples (a backend
    that delivers none) every figure is unknown (NaN, 0 samples)."""
    if block is None:
        quality = TrialQuality(samples=0, track_loss=_NAN, blinks=0, mean_pupil=_NAN)
    else:
        quality = trial_quality(
            block.t_ms,
            block.pupil,
            block.blinks_ms,
            onset_tracker_ms=onset_tracker_ms,
            offset_tracker_ms=offset_tracker_ms,
        )
    return quality, TrialQualityRecord(trial=trial, **quality.to_dict())


def drift_hint(*, drift_start: str) -> str:
    """The line under the drift-correction dot (dummy and simulated trackers, whose operator shares
    the participant's screen): what the screen waits for and the operator's keys."""
    look = (
        "Participant: look at the dot (the image starts once your gaze holds it) or press SPACE"
        if drift_start == "gaze"
        else "Participant: look at the dot and press SPACE"
    )
    return f"{look} · Esc: setup (recalibrate) · p: pause · s: skip trial · q: quit"


def setup_text(tracker: str, result: CalibrationResult | None = None) -> str:
    """What the setup screen says for a tracker without setup graphics of its own (the simulated
    tracker, pylink's dummy connection), before (``result`` None) and after it ran."""
    if result is None:
        return f"Tracker setup ({tracker}): calibrating and validating… no key needed"
    if result.skipped:
        return f"Tracker setup ({tracker}) skipped: {result.reason}"
    parts = [
        f"{v.eye} {v.grade} {v.avg_error_deg:.2f}° avg, {v.max_error_deg:.2f}° max"
        for v in result.validations
        if math.isfinite(v.avg_error_deg)
    ]
    return f"Tracker setup ({tracker}) done: " + ("; ".join(parts) or "no validation")
