"""Calibration and validation results from an EyeLink recording's ``!CAL`` messages.

The tracker writes one summary message per eye after each calibration and validation (the same text
in an ASC file and an EDF)::

    !CAL CALIBRATION HV13 LR LEFT    GOOD
    !CAL VALIDATION HV13 LR LEFT  GOOD ERROR 0.35 avg. 0.48 max  OFFSET 0.18 deg. -6.4,-0.9 pix.
    !CAL VALIDATION HV9 R RIGHT ABORTED

``HV13`` is the point layout, ``LR`` the eyes tracked, ``LEFT`` the eye this line is about, then the
tracker's verdict (GOOD, FAIR, POOR) or ``ABORTED``. A validation's errors are in degrees of visual
angle: the mean and the largest over its points, and the mean offset with its x, y in pixels. Those
numbers are read by :func:`lookwhere.quality.parse_validation`, the parser the experiment's EyeLink
backend uses on the same messages, so a session and its recording agree on them.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from lookwhere.quality import parse_validation

__all__ = ["calibration_tables", "last_validation"]

_SUMMARY = re.compile(r"!CAL (CALIBRATION|VALIDATION)\b\s*(.*)")
_POINTS = re.compile(r"(?:HV|H)\d+|[A-Z]+\d+")
_EYE_WORDS = {"LEFT": "L", "RIGHT": "R"}

_CALIBRATION_COLUMNS = ["time_tracker_ms", "eye", "points", "result", "aborted", "line"]
_VALIDATION_COLUMNS = _CALIBRATION_COLUMNS[:5] + [
    "avg_deg",
    "max_deg",
    "offset_deg",
    "offset_x_px",
    "offset_y_px",
    "line",
]


def calibration_tables(messages: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The calibrations and validations of a recording, in time order.

    Parameters
    ----------
    messages : DataFrame
        ``time_tracker_ms``, ``text`` and ``line`` of every message.

    Returns
    -------
    calibrations : DataFrame
        One row per eye and calibration: ``time_tracker_ms``, ``eye`` (``"L"``/``"R"``, ``""`` when
        the message names none), ``points`` (e.g. ``"HV13"``), ``result`` (``"GOOD"``, ``"FAIR"``,
        ``"POOR"``, ``"ABORTED"``…), ``aborted`` (bool), ``line``.
    validations : DataFrame
        The same columns, plus ``avg_deg``, ``max_deg``, ``offset_deg`` (degrees of visual angle)
        and ``offset_x_px``, ``offset_y_px``; NaN for an aborted validation.
    """
    rows: dict[str, list[list]] = {"CALIBRATION": [], "VALIDATION": []}
    for time, text, line in zip(messages["time_tracker_ms"], messages["text"], messages["line"]):
        found = _SUMMARY.match(text)
        if found is None:
            continue
        kind, rest = found.groups()
        words = rest.split()
        eye_word = next((word for word in words if word in _EYE_WORDS), "")
        points = next((word for word in words if _POINTS.fullmatch(word)), "")
        after_eye = words[words.index(eye_word) + 1 :] if eye_word else words[1:]
        aborted = "ABORTED" in words
        result = "ABORTED" if aborted else (after_eye[0] if after_eye else "")
        row = [float(time), _EYE_WORDS.get(eye_word, ""), points, result, aborted]
        if kind == "VALIDATION":
            parsed = parse_validation(text)  # empty for an aborted validation
            if parsed:
                v = parsed[0]
                row += [v.avg_error_deg, v.max_error_deg, v.offset_deg, v.offset_x_px, v.offset_y_px]
            else:
                row += [np.nan] * 5
        rows[kind].append(row + [int(line)])
    calibrations = pd.DataFrame(rows["CALIBRATION"], columns=_CALIBRATION_COLUMNS)
    validations = pd.DataFrame(rows["VALIDATION"], columns=_VALIDATION_COLUMNS)
    kinds = {
        "time_tracker_ms": "float64",
        "eye": "string",
        "points": "string",
        "result": "string",
        "aborted": "bool",
        "line": "int64",
    }
    floats = {name: "float64" for name in _VALIDATION_COLUMNS[5:10]}
    return calibrations.astype(kinds), validations.astype(kinds | floats)


def last_validation(validations: pd.DataFrame, eye: str) -> pd.Series | None:
    """The last validation of ``eye`` (``"L"``/``"R"``) that was not aborted, or None."""
    rows = validations[(validations["eye"] == eye) & ~validations["aborted"] & validations["avg_deg"].notna()]
    return None if rows.empty else rows.iloc[-1]
