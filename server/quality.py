"""The dashboard's quality panel: each session's validations, drift checks and track loss as they
arrive (issue 15), judged against the lab's thresholds (:class:`lookwhere.quality.QualityThresholds`).

:class:`QualityLog` takes the quality records (and ``session_start``, for the viewing geometry)
from :meth:`server.state.LiveState.apply`; :meth:`QualityLog.section` is the ``quality`` section
the hub publishes. Degrees are the experiment's (the tracker's own where it reports them), never
recomputed here; ``None`` stands for NaN ("not measured") in the section, as JSON has no NaN.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict

from lookwhere.protocol import DriftCheck, Record, SessionStart, TrialQualityRecord, Validation
from lookwhere.quality import QualityThresholds, drift_alarms

__all__ = [
    "QualityLog",
    "QualitySection",
    "ValidationEntry",
    "DriftEntry",
    "TrackLossEntry",
    "ViewingInfo",
    "QUALITY_KINDS",
]

#: The record kinds :class:`QualityLog` keeps.
QUALITY_KINDS = (Validation, DriftCheck, TrialQualityRecord)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ViewingInfo(_Model):
    """The geometry the session's degrees come from; ``default``: the lab's, not measured for this
    session (None: an older experiment that does not say)."""

    screen_width_cm: float | None
    viewing_distance_cm: float | None
    default: bool | None


class ValidationEntry(_Model):
    """One eye's latest validation; ``level`` against the lab's thresholds (its average error)."""

    calibration: int
    eye: str
    grade: str
    points: int
    avg_error_deg: float | None
    max_error_deg: float | None
    offset_deg: float | None
    level: Literal["good", "fair", "poor", "unknown"]


class DriftEntry(_Model):
    """One trial's drift check: offset (None: not measured), outcome, whether it exceeds the
    alarm threshold and whether the alarm is on at it (the run of exceeding trials is long enough)."""

    trial: int
    offset_deg: float | None
    outcome: str
    attempts: int
    above: bool
    alarm: bool


class TrackLossEntry(_Model):
    """One trial's display period: share of samples lost, blinks, mean pupil (None: unknown)."""

    trial: int
    samples: int
    track_loss: float | None
    blinks: int
    mean_pupil: float | None


class QualitySection(_Model):
    """The quality panel of the current session.

    ``validations``: the latest validation per eye (left first); ``n_validations``: how many the
    session had; ``drift`` and ``track_loss``: one entry per trial, in trial order (a repeated
    trial's latest); ``alarm``: the drift alarm is on at the latest drift check.
    """

    session: str | None
    viewing: ViewingInfo | None
    thresholds: dict[str, float | int]
    validations: list[ValidationEntry]
    n_validations: int
    drift: list[DriftEntry]
    alarm: bool
    track_loss: list[TrackLossEntry]


@dataclass
class _SessionQuality:
    viewing: ViewingInfo | None = None
    validations: dict[str, Validation] = field(default_factory=dict)  # eye → latest
    n_validations: int = 0
    drift: dict[int, DriftCheck] = field(default_factory=dict)  # trial → latest
    track_loss: dict[int, TrialQualityRecord] = field(default_factory=dict)


class QualityLog:
    """Every session's quality records; not thread-safe (the live state's lock covers it).

    Parameters
    ----------
    thresholds : QualityThresholds
        The lab's limits: validation levels and the drift alarm.
    """

    def __init__(self, thresholds: QualityThresholds = QualityThresholds()) -> None:
        self.thresholds = thresholds
        self._sessions: dict[str, _SessionQuality] = {}

    def copy(self) -> QualityLog:
        return copy.deepcopy(self)

    def apply(self, record: Record) -> bool:
        """Take one record; True when it changed a session's quality."""
        if not isinstance(record, (SessionStart, *QUALITY_KINDS)):
            return False
        entry = self._sessions.setdefault(record.session, _SessionQuality())
        match record:
            case SessionStart():
                entry.viewing = ViewingInfo(
                    screen_width_cm=_finite(record.screen_width_cm),
                    viewing_distance_cm=_finite(record.viewing_distance_cm),
                    default=record.viewing_default,
                )
            case Validation():
                entry.validations[record.eye] = record
                entry.n_validations += 1
            case DriftCheck():
                entry.drift[record.trial] = record
            case TrialQualityRecord():
                entry.track_loss[record.trial] = record
        return True

    def section(self, session: str | None) -> QualitySection:
        """The ``quality`` section of ``session`` (empty before its first record)."""
        entry = self._sessions.get(session, _SessionQuality()) if session is not None else _SessionQuality()
        limits = self.thresholds
        drift = [entry.drift[trial] for trial in sorted(entry.drift)]
        alarms = drift_alarms(
            [record.offset_deg for record in drift], threshold_deg=limits.drift_alarm_deg, run=limits.drift_alarm_run
        )
        return QualitySection(
            session=session,
            viewing=entry.viewing,
            thresholds=limits.to_dict(),
            validations=[self._validation(entry.validations[eye]) for eye in sorted(entry.validations)],
            n_validations=entry.n_validations,
            drift=[
                DriftEntry(
                    trial=record.trial,
                    offset_deg=_finite(record.offset_deg),
                    outcome=record.outcome,
                    attempts=record.attempts,
                    above=record.offset_deg > limits.drift_alarm_deg,
                    alarm=bool(alarm),
                )
                for record, alarm in zip(drift, alarms)
            ],
            alarm=bool(alarms[-1]) if len(alarms) else False,
            track_loss=[
                TrackLossEntry(
                    trial=record.trial,
                    samples=record.samples,
                    track_loss=_finite(record.track_loss),
                    blinks=record.blinks,
                    mean_pupil=_finite(record.mean_pupil),
                )
                for record in (entry.track_loss[trial] for trial in sorted(entry.track_loss))
            ],
        )

    def _validation(self, record: Validation) -> ValidationEntry:
        known = math.isfinite(record.avg_error_deg)
        return ValidationEntry(
            calibration=record.calibration,
            eye=record.eye,
            grade=record.grade,
            points=record.points,
            avg_error_deg=_finite(record.avg_error_deg),
            max_error_deg=_finite(record.max_error_deg),
            offset_deg=_finite(record.offset_deg),
            level=self.thresholds.validation_level(record.avg_error_deg) if known else "unknown",
        )
