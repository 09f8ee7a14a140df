"""Eye-tracking data quality, shared by the experiment (which measures it), the server (which shows
it) and the analysis (which may exclude by it): validation results, drift-check offsets, per-trial
track loss, and the lab's thresholds.

EyeLink host messages
---------------------
After a validation the host writes, per eye, e.g.::

    !CAL VALIDATION HV9 LR LEFT  GOOD ERROR 0.41 avg. 0.64 max  OFFSET 0.35 deg. 12.5,9.6 pix.

and after a drift check::

    DRIFTCORRECT L LEFT  at 512,384  OFFSET 0.38 deg.  12.5,7.9 pix.

:func:`parse_validation` and :func:`parse_drift_check` read them (with or without the ``MSG
<time>`` prefix of an ASC line). Errors are in degrees as the host computed them (from its own
``screen_phys_coords`` and distance), offsets in display pixels.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "GRADES",
    "DRIFT_OUTCOMES",
    "EyeValidation",
    "DriftOffset",
    "TrialQuality",
    "QualityThresholds",
    "parse_validation",
    "parse_drift_check",
    "eyelink_grade",
    "trial_quality",
    "drift_alarms",
]

#: The host's verdicts on a validation, best first.
GRADES = ("GOOD", "FAIR", "POOR")
#: How a trial's drift check ended: ``accepted`` at the first attempt, ``repeated`` after more than
#: one, ``recalibrated``: the operator ran the setup (calibration) from it.
DRIFT_OUTCOMES = ("accepted", "repeated", "recalibrated")

_NUMBER = r"-?\d+(?:\.\d+)?"
_VALIDATION_RE = re.compile(
    rf"!CAL VALIDATION\s+(?P<type>\S+)\s+(?P<mode>[LR]{{1,2}})\s+(?P<eye>LEFT|RIGHT)\s+(?P<grade>[A-Z]+)\s+"
    rf"ERROR\s+(?P<avg>{_NUMBER})\s+avg\.\s+(?P<max>{_NUMBER})\s+max\s+"
    rf"OFFSET\s+(?P<offset>{_NUMBER})\s+deg\.\s+(?P<x>{_NUMBER}),\s*(?P<y>{_NUMBER})\s+pix\."
)
_DRIFT_RE = re.compile(
    rf"DRIFTCORRECT\s+(?P<mode>[LR]{{1,2}})\s+(?P<eye>LEFT|RIGHT)\s+at\s+(?P<tx>{_NUMBER}),\s*(?P<ty>{_NUMBER})\s+"
    rf"OFFSET\s+(?P<offset>{_NUMBER})\s+deg\.\s+(?P<x>{_NUMBER}),\s*(?P<y>{_NUMBER})\s+pix\."
)


@dataclass(frozen=True, slots=True)
class EyeValidation:
    """One eye's validation result.

    Attributes
    ----------
    eye : {"L", "R"}
    grade : str
        The verdict (one of :data:`GRADES` for EyeLink's).
    points : int
        Validation targets (``HV9``: 9); 0 when unknown.
    avg_error_deg, max_error_deg : float
        Mean and largest gaze error over the targets, degrees of visual angle.
    offset_deg : float
        The mean gaze offset's size, degrees.
    offset_x_px, offset_y_px : float
        The mean gaze offset, display pixels (gaze minus target; y down).
    point_errors_deg : list of float
        Per target, when known (the simulated tracker's; EyeLink's per-point lines are not kept).
    """

    eye: str
    grade: str
    points: int
    avg_error_deg: float
    max_error_deg: float
    offset_deg: float
    offset_x_px: float
    offset_y_px: float
    point_errors_deg: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DriftOffset:
    """A drift check's measured gaze offset at the target: ``eye``, target ``(x, y)`` and offset
    in display pixels, its size in degrees."""

    eye: str
    target_x_px: float
    target_y_px: float
    offset_deg: float
    offset_x_px: float
    offset_y_px: float


def _points(calibration_type: str) -> int:
    digits = re.sub(r"\D", "", calibration_type)  # "HV9" → 9, "HV13" → 13
    return int(digits) if digits else 0


def parse_validation(text: str) -> list[EyeValidation]:
    """Every ``!CAL VALIDATION`` result in ``text`` (one host message, or many lines of an ASC
    file), in order.

    Returns
    -------
    list of EyeValidation
        Empty when ``text`` holds none (e.g. a calibration message without validation).
    """
    return [
        EyeValidation(
            eye=match["eye"][0],
            grade=match["grade"],
            points=_points(match["type"]),
            avg_error_deg=float(match["avg"]),
            max_error_deg=float(match["max"]),
            offset_deg=float(match["offset"]),
            offset_x_px=float(match["x"]),
            offset_y_px=float(match["y"]),
        )
        for match in _VALIDATION_RE.finditer(text)
    ]


def parse_drift_check(text: str) -> list[DriftOffset]:
    """Every ``DRIFTCORRECT`` result in ``text``, in order (empty when none)."""
    return [
        DriftOffset(
            eye=match["eye"][0],
            target_x_px=float(match["tx"]),
            target_y_px=float(match["ty"]),
            offset_deg=float(match["offset"]),
            offset_x_px=float(match["x"]),
            offset_y_px=float(match["y"]),
        )
        for match in _DRIFT_RE.finditer(text)
    ]


def eyelink_grade(avg_error_deg: float, max_error_deg: float) -> str:
    """The EyeLink host's verdict for these errors (its documented defaults): GOOD when the
    average is < 0.5° and the worst point < 1.0°, FAIR when < 1.0° and < 1.5°, else POOR."""
    if avg_error_deg < 0.5 and max_error_deg < 1.0:
        return "GOOD"
    if avg_error_deg < 1.0 and max_error_deg < 1.5:
        return "FAIR"
    return "POOR"


@dataclass(frozen=True, slots=True)
class TrialQuality:
    """One trial's samples over its display period (onset flip to offset flip).

    Attributes
    ----------
    samples : int
        Samples recorded in the period.
    track_loss : float
        Share of them missing (eye lost) or inside a blink, in [0, 1]; NaN without samples.
    blinks : int
        Blinks that started in the period.
    mean_pupil : float
        Mean pupil size over the valid samples, tracker units; NaN without any.
    """

    samples: int
    track_loss: float
    blinks: int
    mean_pupil: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trial_quality(
    t_ms: np.ndarray,
    pupil: np.ndarray,
    blinks_ms: np.ndarray,
    *,
    onset_tracker_ms: float,
    offset_tracker_ms: float,
) -> TrialQuality:
    """Track loss, blinks and mean pupil of one display period.

    Parameters
    ----------
    t_ms : ndarray, shape (N,), float
        Sample times, tracker clock (ms).
    pupil : ndarray, shape (N,), float
        Pupil size per sample, tracker units; NaN (or ≤ 0, EyeLink's "missing") when the eye was
        not tracked.
    blinks_ms : ndarray, shape (B, 2), float
        Blink start and end, tracker clock (ms), inclusive.
    onset_tracker_ms, offset_tracker_ms : float
        The display period: samples with ``onset <= t < offset`` count.

    Returns
    -------
    TrialQuality
    """
    t_ms = np.asarray(t_ms, dtype=float)
    pupil = np.asarray(pupil, dtype=float)
    blinks_ms = np.asarray(blinks_ms, dtype=float).reshape(-1, 2)
    if t_ms.shape != pupil.shape or t_ms.ndim != 1:
        raise ValueError(f"t_ms and pupil must be 1-D of one length; got shapes {t_ms.shape} and {pupil.shape}")
    inside = (t_ms >= onset_tracker_ms) & (t_ms < offset_tracker_ms)
    t, size = t_ms[inside], pupil[inside]
    lost = ~(size > 0)  # NaN and EyeLink's 0 both fail
    for start, end in blinks_ms:
        lost |= (t >= start) & (t <= end)
    started = (blinks_ms[:, 0] >= onset_tracker_ms) & (blinks_ms[:, 0] < offset_tracker_ms)
    return TrialQuality(
        samples=int(t.size),
        track_loss=float(lost.mean()) if t.size else float("nan"),
        blinks=int(started.sum()),
        mean_pupil=float(size[~lost].mean()) if (~lost).any() else float("nan"),
    )


@dataclass(frozen=True, slots=True)
class QualityThresholds:
    """The lab's limits (degrees of visual angle), with the issue's defaults.

    Attributes
    ----------
    validation_good_deg : float
        A validation whose average error is at most this is good (green).
    validation_poor_deg : float
        Above this it is poor (red); in between, fair (amber).
    drift_alarm_deg : float
        A drift-check offset above this counts toward the alarm, which sounds when
        ``drift_alarm_run`` consecutive trials exceed it.
    drift_alarm_run : int
    """

    validation_good_deg: float = 0.5
    validation_poor_deg: float = 1.0
    drift_alarm_deg: float = 1.0
    drift_alarm_run: int = 2

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.validation_good_deg <= self.validation_poor_deg:
            problems.append(
                f"0 < validation_good_deg <= validation_poor_deg; got {self.validation_good_deg!r}, "
                f"{self.validation_poor_deg!r}"
            )
        if not self.drift_alarm_deg > 0:
            problems.append(f"drift_alarm_deg > 0; got {self.drift_alarm_deg!r}")
        if self.drift_alarm_run < 1:
            problems.append(f"drift_alarm_run >= 1; got {self.drift_alarm_run!r}")
        if problems:
            raise ValueError("quality thresholds must satisfy " + "; ".join(problems))

    def validation_level(self, avg_error_deg: float) -> str:
        """``"good"``, ``"fair"`` or ``"poor"`` for a validation's average error."""
        if avg_error_deg <= self.validation_good_deg:
            return "good"
        return "fair" if avg_error_deg <= self.validation_poor_deg else "poor"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def drift_alarms(offsets_deg, *, threshold_deg: float, run: int = 2) -> np.ndarray:
    """Where a drift alarm is on: the offset and the ``run - 1`` before it all exceed the threshold.

    Parameters
    ----------
    offsets_deg : array_like, shape (N,)
        Drift-check offsets of consecutive trials, degrees; NaN (not measured) breaks a run.
    threshold_deg : float
    run : int
        Consecutive offsets above ``threshold_deg`` that sound the alarm (the issue's: 2).

    Returns
    -------
    ndarray, shape (N,), bool
    """
    above = np.asarray(offsets_deg, dtype=float) > threshold_deg  # NaN compares False
    streak = np.zeros(above.size, dtype=int)
    for i, flag in enumerate(above):
        streak[i] = (streak[i - 1] + 1 if i else 1) if flag else 0
    return streak >= run
