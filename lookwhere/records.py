"""The one definition of a fixation, shared by the experiment, the wire protocol and the analysis.

A fixation is stored as a row of a tidy :class:`pandas.DataFrame` whose columns are the fields of
:class:`Fixation`, in that order, with the dtypes of :data:`FIXATION_DTYPES`.

Coordinate frames
-----------------
Both frames are continuous pixel coordinates with the origin at the top-left *corner* of the
top-left pixel, x to the right and y down: pixel ``(row, col)`` covers ``[col, col + 1) x
[row, row + 1)``.  ``*_display_px`` is the screen the participant saw; ``*_image_px`` is the
original (unscaled) image.  :class:`stimuli.geometry.DisplayGeometry` converts between them.

Times
-----
``start_ms`` and ``end_ms`` are relative to the image onset of the fixation's trial;
``stimulus_duration_ms`` is how long that image was shown.  A fixation lies entirely within the
display period when ``0 <= start_ms`` and ``end_ms <= stimulus_duration_ms``.  Datasets that do not
record times (e.g. OSIE) carry NaN there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Fixation",
    "FIXATION_COLUMNS",
    "FIXATION_DTYPES",
    "OPTIONAL_COLUMNS",
    "SESSION_FIXATIONS_FILE",
    "SESSION_TRIALS_FILE",
    "read_fixation_csv",
    "read_trial_rows",
]


@dataclass(frozen=True, slots=True)
class Fixation:
    """One fixation on one image shown in one trial.

    Attributes
    ----------
    participant : str
        Participant identifier (e.g. ``"P07"``, or the OSIE observer index as ``"s03"``).
    session : str
        Session identifier (a UUID for the project's own sessions, a file name for recordings).
    trial : int
        Trial index within the session, 0-based; -1 when unknown.
    image : str
        Image identifier: the stimulus file name without extension.
    eye : str
        ``"L"`` or ``"R"``; ``""`` when the dataset does not say.
    start_ms, end_ms : float
        Start and end relative to image onset, in ms (NaN when unknown).
    duration_ms : float
        Duration in ms as reported by the source (EyeLink: ``end - start + 1`` samples' worth).
    x_display_px, y_display_px : float
        Average gaze position on the screen, in display pixels (NaN when unknown).
    x_image_px, y_image_px : float
        The same position in original-image pixels.
    stimulus_duration_ms : float
        How long the image was displayed in this trial, in ms (NaN when unknown).
    pupil : float
        Average pupil size in tracker units (NaN when unknown).
    truncated : bool
        The fixation was cut short by the end of a recording (its end is the recording's stop, not
        a saccade): its position and duration are not the whole fixation's. The within-display rule
        (:func:`analysis.heatmap.select_fixations`) leaves it out. False where the source cannot tell.
    """

    participant: str
    session: str
    trial: int
    image: str
    eye: str
    start_ms: float
    end_ms: float
    duration_ms: float
    x_display_px: float
    y_display_px: float
    x_image_px: float
    y_image_px: float
    stimulus_duration_ms: float
    pupil: float
    truncated: bool = False


FIXATION_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Fixation))

_DTYPE_OF = {"str": "string", "int": "int64", "float": "float64", "bool": "bool"}
#: Columns added after the table's first release, with the value rows from older files take.
OPTIONAL_COLUMNS: dict[str, object] = {"truncated": False}
FIXATION_DTYPES: dict[str, str] = {f.name: _DTYPE_OF[str(f.type)] for f in dataclasses.fields(Fixation)}

#: The fixation table of a recorded session, in its folder (written by :mod:`experiment.records`).
SESSION_FIXATIONS_FILE = "fixations.csv"
#: The trial rows of a recorded session, one JSON object a line, in its folder (the same writer).
SESSION_TRIALS_FILE = "trials.jsonl"

logger = logging.getLogger(__name__)


def read_fixation_csv(path):
    """Read a fixation table written as CSV (``"nan"`` marks a missing number; ``""`` stays a string).

    Returns
    -------
    pandas.DataFrame
        Columns and dtypes of :data:`FIXATION_DTYPES`.
    """
    import pandas as pd

    header = pd.read_csv(path, nrows=0).columns
    dtypes = {name: dtype for name, dtype in FIXATION_DTYPES.items() if name in header}
    table = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=["nan"])
    for name, default in OPTIONAL_COLUMNS.items():  # a file written before the column existed
        if name not in table.columns:
            table[name] = pd.Series(default, index=table.index, dtype=FIXATION_DTYPES[name])
    return table[list(FIXATION_COLUMNS)]


def read_trial_rows(folder: str | Path, *, shown_only: bool = True) -> list[dict]:
    """The trial rows of a session folder's ``trials.jsonl``.

    A torn line (a write a crash cut short) is skipped with a warning; no file gives no rows.

    Parameters
    ----------
    folder : str or Path
        The session folder.
    shown_only : bool
        True: the shown trials in trial order, skipped trials left out and, of a trial with
        several rows, the last (what the analysis reads). False: every complete row in file order
        (what the experiment repairs and resumes from).

    Returns
    -------
    list of dict
        The rows as written (:class:`experiment.presentation.TrialRow` fields).
    """
    path = Path(folder) / SESSION_TRIALS_FILE
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("%s line %d is incomplete (an interrupted write); ignoring it", path, number)
    if not shown_only:
        return rows
    shown = {int(row["trial"]): row for row in rows if not row.get("skipped")}
    return [shown[trial] for trial in sorted(shown)]
