"""Reader for EyeLink ASC files (the text form of SR Research's EDF, written by ``edf2asc``).

Why by hand
-----------
The project needs, per fixation, the tracker's own averages from the ``EFIX`` line (mean gaze
position and pupil) and the trial and image it belongs to; it never needs the samples. Measured on
the files in ``shared/data/eyelink`` (pymovements 0.28.0, MNE 1.x):

- ``pymovements.gaze.from_asc(path, events=True)`` parses every sample (0.9 s for the 3.4 MB
  ``data1.asc``) and keeps only name, eye, onset, offset and a recomputed duration for each event
  (``offset - onset``: 637 ms where the file says 638); the ``EFIX`` average position and pupil are
  dropped, and trials need user-written message patterns.
- ``mne.io.read_raw_eyelink`` also parses every sample (1.0 s for ``data1.asc``), turns fixations
  into annotations in seconds from the first sample (no average position), and keeps message text
  with the Data Viewer time offset unapplied (``"-14 Initial_display"``).

Both would be heavy dependencies (polars; MNE) for a small part of their work. This module skips
sample lines by their first character: 8–13 ms per MiB (``data1.asc``, 3.3 MiB, in 43 ms; the
same file ×10 in 0.40 s), against ~300 ms per MiB for the two libraries above.

Pipeline (:func:`read_eyelink_asc`)
-----------------------------------
1. read lines (UTF-8, Latin-1 fallback; a binary file is refused);
2. parse events and messages in one pass, skipping sample lines by their first character;
3. validate: malformed event lines raise :class:`AscFormatError` naming the file and line, poor
   data (a recording block without ``END``, a trial without an end marker, trials without an onset
   message) gives an :class:`AscDataWarning`, what was detected is logged;
4. build the tables (fixations, saccades, blinks, messages, trials, recording blocks);
5. convert units once: fixation times relative to each trial's image onset;
6. collect metadata (display size, pixels per degree, sample rate, eyes, tracking mode).

Times
-----
Tracker times (``*_tracker_ms``) are the EyeLink clock in ms, as floats (2 kHz files have
half-millisecond stamps). A message written as ``MSG <t> <offset> <text>`` (Data Viewer's offset
convention, used by Experiment Builder) happened at ``t - offset``; that correction is applied once,
when the message is parsed. EyeLink's event end time is the time of the event's *last* sample and its
duration is ``end - start + one sample``; the fixation table's ``end_ms`` is ``start_ms +
duration_ms``, so that a fixation covers ``[start_ms, end_ms)``.

Truncated files
---------------
A file cut inside an event or message line (the last line has no newline and cannot be parsed)
raises :class:`AscFormatError`. A file cut elsewhere (e.g. inside the samples) is read, and the
result is flagged by warnings: the last recording block has no ``END`` and the last trial has no end
marker. Sample lines are not parsed at all, so damage inside them is not detected.

Coordinates
-----------
``x_display_px``/``y_display_px`` are the tracker's gaze coordinates as written (the
``screen_pixel_coords`` frame; ``DISPLAY_COORDS 0 0 1279 1023`` is a 1280×1024 screen).
``x_image_px``/``y_image_px`` are left NaN: map them with
:func:`analysis.fixations.add_image_coordinates` and the display geometry of the study (the trials
table carries any ``!V IMGLOAD`` placement for that purpose).
"""

from __future__ import annotations

import logging
import math
import re
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.fixations import fixation_table

__all__ = [
    "read_eyelink",
    "read_eyelink_asc",
    "AscRecording",
    "AscFormatError",
    "AscDataWarning",
    "DEFAULT_ONSET_PATTERN",
    "DEFAULT_OFFSET_PATTERN",
    "TRIAL_MARKERS",
]

logger = logging.getLogger(__name__)

DEFAULT_ONSET_PATTERN = r"(?:IMAGE_ONSET|SYNCTIME|DISPLAY ON)\b"
"""Image onset message (matched at the start of the message text, after any time offset).

``IMAGE_ONSET`` is this project's own marker; ``SYNCTIME`` and ``DISPLAY ON`` are SR Research's
conventions (the cili remote-mode files; pymovements' no-dummy file). ``!V IMGLOAD`` is deliberately
not an onset: Data Viewer's image-load message is written when the image is
prepared, e.g. 706 ms before ``DISPLAY ON`` and before recording starts in pymovements'
``eyelink_monocular_no_dummy_example.asc``."""

DEFAULT_OFFSET_PATTERN = r"(?:IMAGE_OFFSET|DISPLAY OFF|(?i:blank_screen))\b"
"""Image offset message after the onset; when present, ``stimulus_duration_ms = offset - onset``.

``blank_screen`` is the display that follows the stimulus in SR Research's sample experiments (the
cili remote-mode files: ``SYNCTIME`` to ``blank_screen`` is exactly 5000 ms)."""

TRIAL_MARKERS = {
    "TRIALID": (r"TRIALID\b", r"TRIAL_RESULT\b"),
    "start_trial": (r"start_trial\b", r"stop_trial\b"),
}
"""Trial start/end message patterns: SR Research's convention, then PyGaze/OpenSesame's
(``eyelinkparser/data1.asc``). ``trial_markers=None`` picks the first whose start marker occurs."""

_NUMBER_FIELDS = {"EFIX": (6, 8), "ESACC": (9, 11), "EBLINK": (3,)}
"""Numeric fields after the eye of each event line (the larger count: ``edf2asc -res`` adds x/y
resolution)."""

_EXPECTED = {
    "EFIX": "EFIX <eye> <start> <end> <duration> <x> <y> <pupil> [<xres> <yres>]",
    "ESACC": (
        "ESACC <eye> <start> <end> <duration> <sx> <sy> <ex> <ey> <amplitude> <peak velocity> "
        "[<xres> <yres>]"
    ),
    "EBLINK": "EBLINK <eye> <start> <end> <duration>",
    "MSG": "MSG <time> [<offset>] <text>",
    "START": "START <time> <eyes...> SAMPLES|EVENTS ...",
    "END": "END <time> SAMPLES|EVENTS ... [RES <x ppd> <y ppd>]",
}

# Lines that carry nothing this reader uses; recognised so that they are not counted as unknown.
_IGNORED_KEYWORDS = frozenset({"SFIX", "SSACC", "SBLINK", "PRESCALER", "VPRESCALER", "INPUT", "BUTTON"})
_HEADER = re.compile(r"\*\*\s*([A-Z][A-Z_ ]*):\s*(.*)")
_MESSAGE_OFFSET = re.compile(r"(-?\d+)\s+(\S.*)")
_TRIAL_VARIABLE = re.compile(r"(?:!V TRIAL_VAR|var)\s+(\S+)\s*(.*)")
_IMGLOAD = re.compile(r"!V IMGLOAD\s+(\w+)\s+(\S+)(.*)")


class AscFormatError(ValueError):
    """The file is not a usable ASC file; the message names the file and line."""


class AscDataWarning(UserWarning):
    """The file is readable but its data are incomplete or inconsistent."""


@dataclass(frozen=True)
class AscRecording:
    """Everything :func:`read_eyelink_asc` extracts from one ASC file.

    Attributes
    ----------
    path : Path
        The file read.
    fixations : DataFrame
        The tidy fixation table (:data:`lookwhere.records.FIXATION_COLUMNS`), one row per ``EFIX``
        line in file order; binocular recordings give one row per eye.
    fixation_events : DataFrame
        The same ``EFIX`` lines on the tracker clock, row for row: ``trial``, ``eye``,
        ``start_tracker_ms``, ``end_tracker_ms`` (last sample), ``duration_ms``, ``x_px``, ``y_px``
        (display pixels), ``pupil``; for re-anchoring times to another message.
    saccades : DataFrame
        One row per ``ESACC``: ``trial`` (int), ``eye`` (``"L"``/``"R"``), ``start_tracker_ms``,
        ``end_tracker_ms``, ``duration_ms``, ``x_start_px``, ``y_start_px``, ``x_end_px``,
        ``y_end_px`` (display pixels), ``amplitude_deg``, ``peak_velocity_deg_s``; NaN where the file
        has ``.``.
    blinks : DataFrame
        One row per ``EBLINK``: ``trial``, ``eye``, ``start_tracker_ms``, ``end_tracker_ms``,
        ``duration_ms``.
    messages : DataFrame
        One row per ``MSG``: ``time_tracker_ms`` (offset applied), ``offset_ms`` (0 when none),
        ``trial``, ``text``, ``line`` (1-based line number).
    trials : DataFrame
        One row per trial: ``trial`` (0-based), ``trial_id`` (text after the start marker),
        ``start_tracker_ms``/``end_tracker_ms`` (marker times; NaN end when missing),
        ``onset_tracker_ms``/``offset_tracker_ms`` (image onset/offset messages; NaN when none),
        ``stimulus_duration_ms``, ``image`` (``!V TRIAL_VAR image`` or the ``!V IMGLOAD`` file stem,
        else ``""``), ``imgload`` (the ``!V IMGLOAD`` placement text after the file, e.g.
        ``"CENTER 640 512"``, else ``""``), ``variables`` (dict of ``!V TRIAL_VAR``/``var`` name →
        text), ``start_line``/``end_line``.
    blocks : DataFrame
        One row per recording block (``START`` … ``END``): ``start_tracker_ms``, ``end_tracker_ms``,
        ``eyes`` (``"L"``, ``"R"`` or ``"LR"``), ``sample_rate_hz``, ``x_res_ppd``, ``y_res_ppd``,
        ``tracking`` (e.g. ``"CR"``), ``remote`` (``HTARGET`` samples: remote mode), ``start_line``.
    display_px : tuple of int or None
        ``(width, height)`` from ``DISPLAY_COORDS`` (inclusive: ``0 0 1279 1023`` → 1280×1024);
        None when the file has none.
    gaze_coords : tuple of float or None
        The last ``GAZE_COORDS left top right bottom`` as written (PyGaze writes exclusive bounds,
        SR Research inclusive ones, so it is reported raw).
    resolution_ppd : tuple of float or None
        Mean ``(x, y)`` pixels per degree over the ``END ... RES`` lines.
    sample_rate_hz : float or None
        The ``RATE`` of the ``SAMPLES``/``EVENTS`` lines (the most common if blocks differ, with a
        warning).
    eyes : str
        Eyes recorded in any block: ``"L"``, ``"R"``, ``"LR"`` or ``""``.
    tracking : str
        Tracking mode of the ``SAMPLES`` lines (``"CR"`` pupil–corneal reflection, ``"P"`` pupil only).
    remote : bool
        True when any block recorded in remote mode.
    pupil_measure : str
        ``"AREA"`` or ``"DIAMETER"`` (units of the ``pupil`` column), ``""`` when not stated.
    header : dict
        ``** KEY: value`` header lines (e.g. ``"DATE"``, ``"VERSION"``).
    """

    path: Path
    fixations: pd.DataFrame
    fixation_events: pd.DataFrame
    saccades: pd.DataFrame
    blinks: pd.DataFrame
    messages: pd.DataFrame
    trials: pd.DataFrame
    blocks: pd.DataFrame
    display_px: tuple[int, int] | None
    gaze_coords: tuple[float, float, float, float] | None
    resolution_ppd: tuple[float, float] | None
    sample_rate_hz: float | None
    eyes: str
    tracking: str
    remote: bool
    pupil_measure: str
    header: dict = field(default_factory=dict)


def read_eyelink(path, **kwargs) -> pd.DataFrame:
    """Read the fixations of an EyeLink ASC file as the tidy fixation table.

    Shorthand for ``read_eyelink_asc(path, **kwargs).fixations``; see :func:`read_eyelink_asc`.
    """
    return read_eyelink_asc(path, **kwargs).fixations


def read_eyelink_asc(
    path,
    *,
    participant: str | None = None,
    trial_markers: tuple[str, str] | None = None,
    onset_pattern: str = DEFAULT_ONSET_PATTERN,
    offset_pattern: str = DEFAULT_OFFSET_PATTERN,
) -> AscRecording:
    """Read an EyeLink ASC file: events, messages, trials and recording metadata.

    Parameters
    ----------
    path : str or Path
        An ASC file (convert an EDF with SR Research's ``edf2asc`` first).
    participant : str, optional
        Participant id for the fixation table; default the file stem.
    trial_markers : (str, str), optional
        Regular expressions for the trial start and end messages, matched at the start of the message
        text. Default: ``TRIALID``/``TRIAL_RESULT`` when the file has a ``TRIALID`` message, else
        ``start_trial``/``stop_trial`` (see :data:`TRIAL_MARKERS`); the choice is logged.
    onset_pattern : str
        Regular expression for the image onset message within a trial (first match wins); default
        :data:`DEFAULT_ONSET_PATTERN`. Fixation times are relative to it; NaN for trials without one.
    offset_pattern : str
        Regular expression for the image offset message after the onset; default
        :data:`DEFAULT_OFFSET_PATTERN`. Without one, ``stimulus_duration_ms`` is NaN.

    Returns
    -------
    AscRecording
        Tables and metadata; ``.fixations`` is the tidy fixation table with ``participant`` (the
        file stem unless given), ``session`` (the file name), ``trial`` (0-based index of the trial
        block by file position, -1 outside trials), ``image``, ``eye``, ``start_ms``/``end_ms``
        (relative to the trial's image onset), ``duration_ms`` (from the file),
        ``x_display_px``/``y_display_px`` (EFIX averages), ``stimulus_duration_ms`` and ``pupil``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    AscFormatError
        For an unusable file: empty, binary (e.g. an EDF), no EyeLink lines, or a malformed event
        or message line (naming the line, what was expected and what was found).
    ValueError
        If a pattern is not a valid regular expression.

    Warns
    -----
    AscDataWarning
        For poor data: a recording block without ``END``, a trial without its end marker, trials
        without an onset message, several sample rates, event durations that disagree with their
        start and end.
    """
    path = Path(path)
    participant = _check_text("participant", participant)
    patterns = _compile_patterns(trial_markers, onset_pattern, offset_pattern)
    lines, ends_with_newline = _read_lines(path)
    parsed = _parse_lines(lines, path, ends_with_newline)
    markers = _choose_trial_markers(parsed.messages, patterns["trial_markers"], path)
    trials = _segment_trials(parsed.messages, markers, len(lines), path)
    _validate(parsed, trials, path, ends_with_newline)
    tables = _build_tables(parsed, trials, patterns, path)
    fixations = _fixation_table(
        parsed, tables["trials"], path, participant if participant is not None else path.stem
    )
    recording = _with_metadata(path, parsed, tables, fixations)
    logger.info(
        "%s: %d fixations, %d saccades, %d blinks, %d messages, %d trials, %d recording blocks; "
        "eyes %s, %s Hz, display %s",
        path.name, len(fixations), len(tables["saccades"]), len(tables["blinks"]),
        len(tables["messages"]), len(tables["trials"]), len(tables["blocks"]),
        recording.eyes or "?", recording.sample_rate_hz, recording.display_px,
    )
    return recording


# --- options ---------------------------------------------------------------------------------


def _check_text(name: str, value: str | None) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{name} must be a non-empty string or None; got {value!r}")
    return value


def _compile_patterns(trial_markers, onset_pattern: str, offset_pattern: str) -> dict:
    def compiled(name: str, pattern) -> re.Pattern:
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"{name} must be a non-empty regular expression string; got {pattern!r}")
        try:
            return re.compile(pattern)
        except re.error as error:
            raise ValueError(
                f"{name} is not a valid regular expression ({error}); got {pattern!r}"
            ) from error

    if trial_markers is not None:
        if not (isinstance(trial_markers, tuple) and len(trial_markers) == 2):
            raise ValueError(
                f"trial_markers must be a (start pattern, end pattern) tuple or None; got {trial_markers!r}"
            )
        markers = tuple(compiled(f"trial_markers[{i}]", trial_markers[i]) for i in (0, 1))
    else:
        markers = None
    return {
        "trial_markers": markers,
        "onset": compiled("onset_pattern", onset_pattern),
        "offset": compiled("offset_pattern", offset_pattern),
    }


# --- 1. read lines ---------------------------------------------------------------------------


def _read_lines(path: Path) -> tuple[list[str], bool]:
    """The file's lines (without line ends) and whether the last one was complete."""
    if not path.is_file():
        raise FileNotFoundError(f"EyeLink ASC file {path} does not exist")
    data = path.read_bytes()
    if not data.strip():
        raise AscFormatError(f"{path} is empty; expected an EyeLink ASC file (text written by edf2asc)")
    if b"\x00" in data[:4096]:
        raise AscFormatError(
            f"{path} is a binary file, not an ASC file; if it is an EDF, convert it with SR Research's "
            "edf2asc (e.g. `edf2asc -y file.edf`) and read the .asc"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Messages written on Windows may be in a legacy code page; Latin-1 decodes any byte.
        logger.info("%s is not UTF-8; decoded as Latin-1 (message text may show odd characters)", path)
        text = data.decode("latin-1")
    lines = text.splitlines()
    return lines, text.endswith(("\n", "\r"))


# --- 2. parse events and messages -----------------------------------------------------------


@dataclass
class _Parsed:
    """Raw rows from one pass over the file; each event or message row starts with its 1-based line."""

    fixations: list = field(default_factory=list)  # (line, eye, start, end, duration, x, y, pupil)
    saccades: list = field(default_factory=list)  # (line, eye, start, end, duration, sx, sy, ex, ey,
    #                                                 amplitude, peak velocity)
    blinks: list = field(default_factory=list)  # (line, eye, start, end, duration)
    messages: list = field(default_factory=list)  # (line, time, offset, text)
    blocks: list = field(default_factory=list)  # dicts, one per START
    display_coords: tuple | None = None
    gaze_coords: tuple | None = None
    pupil_measure: str = ""
    header: dict = field(default_factory=dict)
    asc_lines: int = 0
    unknown: Counter = field(default_factory=Counter)


def _parse_lines(lines: list[str], path: Path, ends_with_newline: bool) -> _Parsed:
    """One pass over the non-sample lines, dispatching on the first word."""
    parsed = _Parsed()
    block: dict | None = None
    last = len(lines)
    for number, line in enumerate(lines, start=1):
        first = line[:1]
        # Samples (the bulk of the file) start with their time stamp; skipping them by the first
        # character is what keeps the reader fast. Blank lines, calibration text (">>>>", tab- or
        # space-indented continuation lines) carry nothing we use.
        if not first or first.isdigit() or first in " \t>":
            continue
        if first == "*":
            if line.startswith("**"):
                _parse_header(line, parsed)
                parsed.asc_lines += 1
            continue
        keyword = line.split(None, 1)[0]
        rest = line[len(keyword):]
        try:
            if keyword in _NUMBER_FIELDS:
                _parse_event(keyword, rest, number, parsed)
            elif keyword == "MSG":
                _parse_message(rest, number, parsed)
            elif keyword == "START":
                block = _parse_start(rest, number)
                parsed.blocks.append(block)
            elif keyword == "END":
                if block is None:
                    _warn(f"{path}, line {number}: END without a preceding START; ignored")
                else:
                    _parse_end(rest, block)
                    block = None
            elif keyword in ("SAMPLES", "EVENTS"):
                if block is not None:
                    _parse_data_line(rest, block)
            elif keyword == "PUPIL":
                parsed.pupil_measure = rest.strip()
            elif keyword not in _IGNORED_KEYWORDS:
                parsed.unknown[keyword] += 1
                continue
        except (ValueError, IndexError) as error:
            cut = number == last and not ends_with_newline
            raise _format_error(path, number, keyword, line, cut, error) from None
        parsed.asc_lines += 1
    return parsed


def _format_error(
    path: Path, number: int, keyword: str, line: str, cut: bool, error: Exception
) -> AscFormatError:
    expected = _EXPECTED.get(keyword, f"a valid {keyword} line")
    where = (
        "the file ends in the middle of this line: it looks truncated (copy it again or re-run edf2asc)"
        if cut
        else "fix or remove the line, or re-run edf2asc"
    )
    return AscFormatError(
        f"{path}, line {number}: expected {expected}; found {line.strip()!r} ({error}). {where}"
    )


def _parse_header(line: str, parsed: _Parsed) -> None:
    found = _HEADER.match(line)
    if found:
        parsed.header.setdefault(found.group(1).strip(), found.group(2).strip())


def _number(text: str) -> float:
    """A numeric field; EyeLink writes ``.`` for a missing value."""
    return math.nan if text == "." else float(text)


def _parse_event(keyword: str, rest: str, number: int, parsed: _Parsed) -> None:
    fields = rest.split()
    if len(fields) < 1 or fields[0] not in ("L", "R"):
        raise ValueError(f"the eye must be L or R, got {fields[0] if fields else 'nothing'!r}")
    values = fields[1:]
    counts = _NUMBER_FIELDS[keyword]
    if len(values) not in counts:
        raise ValueError(f"{len(values)} values after the eye, expected {' or '.join(map(str, counts))}")
    numbers = [_number(value) for value in values[: counts[0]]]
    if math.isnan(numbers[0]) or math.isnan(numbers[1]) or math.isnan(numbers[2]):
        raise ValueError("start, end and duration must be numbers")
    row = (number, fields[0], *numbers)
    {"EFIX": parsed.fixations, "ESACC": parsed.saccades, "EBLINK": parsed.blinks}[keyword].append(row)


def _parse_message(rest: str, number: int, parsed: _Parsed) -> None:
    rest = rest.strip()
    time_text = rest.split(None, 1)[0]
    time = float(time_text)
    text = rest[len(time_text):].strip()
    offset = 0
    found = _MESSAGE_OFFSET.fullmatch(text)
    if found:
        offset = int(found.group(1))
        text = found.group(2)
    parsed.messages.append((number, time - offset, offset, text))
    if text.startswith("DISPLAY_COORDS"):
        coords = tuple(float(value) for value in text.split()[1:5])
        if len(coords) != 4:
            raise ValueError("DISPLAY_COORDS needs left top right bottom")
        parsed.display_coords = coords
    elif text.startswith("GAZE_COORDS"):
        coords = tuple(float(value) for value in text.split()[1:5])
        if len(coords) == 4:
            parsed.gaze_coords = coords


def _parse_start(rest: str, number: int) -> dict:
    fields = rest.split()
    eyes = "".join(eye[0] for eye in ("LEFT", "RIGHT") if eye in fields[1:])
    return {
        "start_tracker_ms": float(fields[0]),
        "end_tracker_ms": math.nan,
        "eyes": eyes,
        "sample_rate_hz": math.nan,
        "x_res_ppd": math.nan,
        "y_res_ppd": math.nan,
        "tracking": "",
        "remote": False,
        "start_line": number,
    }


def _parse_data_line(rest: str, block: dict) -> None:
    """``SAMPLES``/``EVENTS GAZE LEFT RATE 1000.00 TRACKING CR FILTER 2 [HTARGET ...]``."""
    fields = rest.split()
    if "RATE" in fields:
        block["sample_rate_hz"] = float(fields[fields.index("RATE") + 1])
    if "TRACKING" in fields:
        block["tracking"] = fields[fields.index("TRACKING") + 1]
    # Remote mode adds the target sticker's position and distance (HTARGET) to each sample.
    block["remote"] = block["remote"] or "HTARGET" in fields


def _parse_end(rest: str, block: dict) -> None:
    fields = rest.split()
    block["end_tracker_ms"] = float(fields[0])
    if "RES" in fields:
        where = fields.index("RES")
        block["x_res_ppd"], block["y_res_ppd"] = float(fields[where + 1]), float(fields[where + 2])


# --- 3. trials and validation ----------------------------------------------------------------


def _choose_trial_markers(messages: list, given, path: Path) -> tuple[re.Pattern, re.Pattern] | None:
    if given is not None:
        return given
    for name, (start, end) in TRIAL_MARKERS.items():
        start_re = re.compile(start)
        if any(start_re.match(text) for _, _, _, text in messages):
            logger.info("%s: trials marked by %s messages", path.name, name)
            return start_re, re.compile(end)
    logger.info(
        "%s: no trial start messages (%s); all events are outside trials", path.name, ", ".join(TRIAL_MARKERS)
    )
    return None


def _segment_trials(messages: list, markers, n_lines: int, path: Path) -> list[dict]:
    """Trial blocks by file position: from a start message to its end message (or the next start)."""
    if markers is None:
        return []
    start_re, end_re = markers
    trials: list[dict] = []
    open_trial: dict | None = None
    for line, time, _, text in messages:
        started = start_re.match(text)
        if started:
            if open_trial is not None:
                _close_unended(open_trial, line - 1, path, "the next trial starts")
            open_trial = {
                "trial": len(trials),
                "trial_id": text[started.end():].strip(),
                "start_tracker_ms": time,
                "end_tracker_ms": math.nan,
                "start_line": line,
                "end_line": n_lines,
            }
            trials.append(open_trial)
        elif open_trial is not None and end_re.match(text):
            open_trial["end_tracker_ms"] = time
            open_trial["end_line"] = line
            open_trial = None
    if open_trial is not None:
        _close_unended(open_trial, n_lines, path, "the file ends")
    return trials


def _close_unended(trial: dict, end_line: int, path: Path, why: str) -> None:
    trial["end_line"] = end_line
    _warn(
        f"{path}: trial {trial['trial']} (start message at line {trial['start_line']}) has no end "
        f"message before {why} (line {end_line}); its events up to there are kept"
    )


def _validate(parsed: _Parsed, trials: list[dict], path: Path, ends_with_newline: bool) -> None:
    if parsed.asc_lines == 0:
        raise AscFormatError(
            f"{path} does not look like an EyeLink ASC file: no '**' header, MSG, START, END or event "
            "lines were found. Pass a file written by SR Research's edf2asc"
        )
    if not ends_with_newline:
        _warn(f"{path} does not end with a line break: the file may have been cut off")
    for block in parsed.blocks:
        if math.isnan(block["end_tracker_ms"]):
            _warn(
                f"{path}: the recording block starting at line {block['start_line']} has no END line "
                "(truncated file?); its events are kept, its pixels per degree are unknown"
            )
    rates = {block["sample_rate_hz"] for block in parsed.blocks if not math.isnan(block["sample_rate_hz"])}
    if len(rates) > 1:
        _warn(f"{path}: recording blocks use different sample rates {sorted(rates)} Hz")
    if parsed.fixations:
        rows = np.asarray([row[2:5] for row in parsed.fixations], dtype=np.float64)
        # duration = end - start + one sample: the gap is between 0 and 4 ms (250 Hz) for sound data.
        gap = rows[:, 2] - (rows[:, 1] - rows[:, 0])
        bad = np.flatnonzero((gap < 0.0) | (gap > 4.0))
        if bad.size:
            first = parsed.fixations[bad[0]][0]
            _warn(
                f"{path}: {bad.size} EFIX lines have a duration that disagrees with end - start "
                f"(first at line {first}); durations are kept as written"
            )
    if parsed.unknown:
        logger.info("%s: ignored lines of unknown type %s", path.name, dict(parsed.unknown))


def _warn(message: str) -> None:
    logger.warning(message)
    # Attribute the warning to the reader's caller, however deep in the pipeline it arose.
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, AscDataWarning, stacklevel=level)


# --- 4. tables -------------------------------------------------------------------------------


def _trial_of_lines(event_lines: np.ndarray, trials: pd.DataFrame) -> np.ndarray:
    """0-based trial index of each line number, -1 outside every trial."""
    if trials.empty or event_lines.size == 0:
        return np.full(event_lines.size, -1, dtype=np.int64)
    starts = trials["start_line"].to_numpy()
    ends = trials["end_line"].to_numpy()
    index = np.searchsorted(starts, event_lines, side="right") - 1
    inside = (index >= 0) & (event_lines <= ends[np.clip(index, 0, None)])
    return np.where(inside, index, -1).astype(np.int64)


def _build_tables(parsed: _Parsed, trials: list[dict], patterns: dict, path: Path) -> dict:
    messages = pd.DataFrame(parsed.messages, columns=["line", "time_tracker_ms", "offset_ms", "text"])
    messages = messages.astype(
        {"line": "int64", "time_tracker_ms": "float64", "offset_ms": "int64", "text": "string"}
    )
    trial_table = _trial_table(trials, messages, patterns, path)
    messages.insert(2, "trial", _trial_of_lines(messages["line"].to_numpy(), trial_table))
    messages = messages[["time_tracker_ms", "offset_ms", "trial", "text", "line"]]

    saccades = pd.DataFrame(
        parsed.saccades,
        columns=[
            "line", "eye", "start_tracker_ms", "end_tracker_ms", "duration_ms",
            "x_start_px", "y_start_px", "x_end_px", "y_end_px", "amplitude_deg", "peak_velocity_deg_s",
        ],
    )
    blinks = pd.DataFrame(
        parsed.blinks, columns=["line", "eye", "start_tracker_ms", "end_tracker_ms", "duration_ms"]
    )
    fixation_events = pd.DataFrame(
        parsed.fixations,
        columns=["line", "eye", "start_tracker_ms", "end_tracker_ms", "duration_ms", "x_px", "y_px", "pupil"],
    )
    events = {"fixation_events": fixation_events, "saccades": saccades, "blinks": blinks}
    for name, table in events.items():
        table.insert(0, "trial", _trial_of_lines(table["line"].to_numpy(dtype=np.int64), trial_table))
        numeric = {column: "float64" for column in table.columns[3:]}
        events[name] = table.astype({"eye": "string"} | numeric).drop(columns="line")
    blocks = pd.DataFrame(
        parsed.blocks,
        columns=[
            "start_tracker_ms", "end_tracker_ms", "eyes", "sample_rate_hz", "x_res_ppd", "y_res_ppd",
            "tracking", "remote", "start_line",
        ],
    )
    return {"messages": messages, "trials": trial_table, "blocks": blocks} | events


def _trial_table(trials: list[dict], messages: pd.DataFrame, patterns: dict, path: Path) -> pd.DataFrame:
    """Add onset/offset, image and variables to each trial, from the messages within it."""
    lines = messages["line"].to_numpy()
    texts = messages["text"].tolist()
    times = messages["time_tracker_ms"].to_numpy()
    rows = []
    for trial in trials:
        first = np.searchsorted(lines, trial["start_line"], side="left")
        stop = np.searchsorted(lines, trial["end_line"], side="right")
        onset = offset = math.nan
        image = imgload = ""
        variables: dict[str, str] = {}
        for text, time in zip(texts[first:stop], times[first:stop]):
            if math.isnan(onset) and patterns["onset"].match(text):
                onset = time
            elif not math.isnan(onset) and math.isnan(offset) and patterns["offset"].match(text):
                offset = time
            variable = _TRIAL_VARIABLE.match(text)
            if variable:
                variables[variable.group(1)] = variable.group(2).strip()
            loaded = _IMGLOAD.match(text)
            if loaded and not imgload:
                imgload = f"{loaded.group(1)} {loaded.group(3).strip()}".strip()
                image = _file_stem(loaded.group(2))
        if "image" in variables:
            image = _file_stem(variables["image"])
        rows.append(
            trial
            | {
                "onset_tracker_ms": onset,
                "offset_tracker_ms": offset,
                "stimulus_duration_ms": offset - onset,
                "image": image,
                "imgload": imgload,
                "variables": variables,
            }
        )
    columns = [
        "trial", "trial_id", "start_tracker_ms", "end_tracker_ms", "onset_tracker_ms", "offset_tracker_ms",
        "stimulus_duration_ms", "image", "imgload", "variables", "start_line", "end_line",
    ]
    table = pd.DataFrame(rows, columns=columns)
    no_onset = table.loc[table["onset_tracker_ms"].isna(), "trial"].tolist()
    if no_onset:
        _warn(
            f"{path}: {len(no_onset)} of {len(table)} trials have no image onset message matching "
            f"{patterns['onset'].pattern!r} (trials {no_onset[:10]}); their fixation times are NaN. "
            "Pass onset_pattern= to name the study's onset message"
        )
    return table.astype(
        {"trial": "int64", "trial_id": "string", "image": "string", "imgload": "string",
         "start_line": "int64", "end_line": "int64"}
    )


def _file_stem(name: str) -> str:
    """Image id from a file name written on any system (``stimuli\\1001.jpg`` → ``1001``)."""
    return Path(name.replace("\\", "/")).stem


# --- 5. units: the fixation table ------------------------------------------------------------


def _fixation_table(parsed: _Parsed, trials: pd.DataFrame, path: Path, participant: str) -> pd.DataFrame:
    raw = np.asarray([row[2:] for row in parsed.fixations], dtype=np.float64).reshape(-1, 6)
    lines = np.asarray([row[0] for row in parsed.fixations], dtype=np.int64)
    eyes = np.asarray([row[1] for row in parsed.fixations], dtype=object)
    trial = _trial_of_lines(lines, trials)
    inside = trial >= 0
    onset = np.full(trial.size, np.nan)
    stimulus_duration = np.full(trial.size, np.nan)
    image = np.full(trial.size, "", dtype=object)
    if inside.any():
        onset[inside] = trials["onset_tracker_ms"].to_numpy()[trial[inside]]
        stimulus_duration[inside] = trials["stimulus_duration_ms"].to_numpy()[trial[inside]]
        image[inside] = trials["image"].to_numpy(dtype=object)[trial[inside]]
    outside = int((~inside).sum())
    if outside:
        logger.info("%s: %d of %d fixations lie outside any trial (trial -1)", path.name, outside, trial.size)
    start_ms = raw[:, 0] - onset
    n = trial.size
    return fixation_table(
        {
            "participant": np.full(n, participant, dtype=object),
            "session": np.full(n, path.name, dtype=object),
            "trial": trial,
            "image": image,
            "eye": eyes,
            "start_ms": start_ms,
            "end_ms": start_ms + raw[:, 2],
            "duration_ms": raw[:, 2],
            "x_display_px": raw[:, 3],
            "y_display_px": raw[:, 4],
            "x_image_px": np.full(n, np.nan),
            "y_image_px": np.full(n, np.nan),
            "stimulus_duration_ms": stimulus_duration,
            "pupil": raw[:, 5],
        }
    )


# --- 6. metadata -----------------------------------------------------------------------------


def _with_metadata(path: Path, parsed: _Parsed, tables: dict, fixations: pd.DataFrame) -> AscRecording:
    blocks = tables["blocks"]
    display_px = None
    if parsed.display_coords is not None:
        left, top, right, bottom = parsed.display_coords
        display_px = (int(round(right - left + 1)), int(round(bottom - top + 1)))
    else:
        logger.info(
            "%s: no DISPLAY_COORDS message; display size unknown (GAZE_COORDS %s)", path.name, parsed.gaze_coords
        )
    resolution = None
    if blocks["x_res_ppd"].notna().any():
        resolution = (float(blocks["x_res_ppd"].mean()), float(blocks["y_res_ppd"].mean()))
    rates = blocks["sample_rate_hz"].dropna()
    sample_rate = float(rates.mode().iloc[0]) if len(rates) else None
    eyes = "".join(eye for eye in "LR" if blocks["eyes"].str.contains(eye).any()) if len(blocks) else ""
    tracking = next((mode for mode in blocks["tracking"] if mode), "") if len(blocks) else ""
    return AscRecording(
        path=path,
        fixations=fixations,
        fixation_events=tables["fixation_events"],
        saccades=tables["saccades"],
        blinks=tables["blinks"],
        messages=tables["messages"],
        trials=tables["trials"],
        blocks=blocks,
        display_px=display_px,
        gaze_coords=parsed.gaze_coords,
        resolution_ppd=resolution,
        sample_rate_hz=sample_rate,
        eyes=eyes,
        tracking=tracking,
        remote=bool(blocks["remote"].any()) if len(blocks) else False,
        pupil_measure=parsed.pupil_measure,
        header=parsed.header,
    )
