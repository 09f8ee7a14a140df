"""Reader for EyeLink recordings: ASC files (the text form of SR Research's EDF, written by
``edf2asc``) here, EDF files in :mod:`analysis.readers.edf`; both give one :class:`EyeLinkRecording`.

Why by hand
-----------
The project needs, per fixation, the tracker's own averages from the ``EFIX`` line (mean gaze
position and pupil) and the trial and image it belongs to; it needs the samples rarely. Measured on
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
same file ×10 in 0.40 s), against ~300 ms per MiB for the two libraries above. MNE stays the tests'
oracle for fixations, blinks and validations.

Pipeline (:func:`read_eyelink_asc`; the EDF reader joins at step 3)
-------------------------------------------------------------------
1. read lines (UTF-8, Latin-1 fallback; a binary file is refused, an EDF with a pointer to its reader);
2. parse events and messages in one pass, skipping sample lines by their first character (samples are
   parsed only when asked for);
3. segment trials by their start/end messages (:class:`TrialRules`), validate: malformed event lines
   raise :class:`EyeLinkFormatError` naming the file and line, poor data (a recording block without
   ``END``, a trial without an end marker, trials without an onset message) gives an
   :class:`EyeLinkDataWarning`, what was detected is logged;
4. build the tables (fixations, saccades, blinks, messages, trials, recording blocks, calibrations,
   validations);
5. convert units once: fixation times relative to each trial's image onset;
6. collect metadata (display size and where it came from, position units, pixels per degree, sample
   rate, eyes, tracking mode).

Real-world variants read
------------------------
``DISPLAY_COORDS = 0 0 1919 1079`` (any ``KEY = value`` form of the coordinate and trial messages);
``GAZE_COORDS`` as the display size when ``DISPLAY_COORDS`` is missing; a last line without a line
break; Experiment Builder's ``!V TRIAL_VAR``, ``!V TRIAL_VAR_LABELS``/``!V TRIAL_VAR_DATA`` and
``!V IMGLOAD`` messages; ``GAZE`` or ``HREF`` position units, recorded per recording block (HREF
positions are head-referenced angles, not screen pixels).

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
raises :class:`EyeLinkFormatError`. A file cut elsewhere (e.g. inside the samples) is read, and the
result is flagged by warnings: the last recording block has no ``END`` and the last trial has no end
marker. Sample lines are not parsed unless asked for, so damage inside them is not detected.

Coordinates
-----------
``x_display_px``/``y_display_px`` are the tracker's gaze coordinates as written (the
``screen_pixel_coords`` frame; ``DISPLAY_COORDS 0 0 1279 1023`` is a 1280×1024 screen).
``x_image_px``/``y_image_px`` are left NaN: :mod:`analysis.readers.mapping` places them with each
trial's ``!V IMGLOAD`` placement or the study's display geometry.
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
from types import FrameType

import numpy as np
import pandas as pd

from analysis.fixations import fixation_table
from analysis.readers.calibration import calibration_tables

__all__ = [
    "read_eyelink",
    "read_eyelink_asc",
    "read_recording",
    "EyeLinkRecording",
    "EyeLinkFormatError",
    "EyeLinkDataWarning",
    "TrialRules",
    "DEFAULT_ONSET_PATTERN",
    "DEFAULT_OFFSET_PATTERN",
    "TRIAL_MARKERS",
    "RECORDING_SUFFIXES",
    "image_id_from_name",
    "fixation_table_from_events",
]

logger = logging.getLogger(__name__)

RECORDING_SUFFIXES = (".asc", ".edf")
"""File suffixes of EyeLink recordings, compared case-insensitively (``DATA.EDF`` is an EDF)."""

DEFAULT_ONSET_PATTERN = r"^(?:IMAGE_ONSET|SYNCTIME|DISPLAY ON)\b"
"""Image onset message (searched in the message text, after any time offset).

``IMAGE_ONSET`` is this project's own marker; ``SYNCTIME`` and ``DISPLAY ON`` are SR Research's
conventions (the cili remote-mode files; pymovements' no-dummy file). ``!V IMGLOAD`` is deliberately
not an onset: Data Viewer's image-load message is written when the image is
prepared, e.g. 706 ms before ``DISPLAY ON`` and before recording starts in pymovements'
``eyelink_monocular_no_dummy_example.asc``."""

DEFAULT_OFFSET_PATTERN = r"^(?:IMAGE_OFFSET|DISPLAY OFF|(?i:blank_screen))\b"
"""Image offset message after the onset; when present, ``stimulus_duration_ms = offset - onset``.

``blank_screen`` is the display that follows the stimulus in SR Research's sample experiments (the
cili remote-mode files: ``SYNCTIME`` to ``blank_screen`` is exactly 5000 ms)."""

TRIAL_MARKERS = {
    "TRIALID": (r"^TRIALID\b\s*=?\s*(?P<trial>.*)", r"^TRIAL_RESULT\b"),
    "start_trial": (r"^start_trial\b\s*=?\s*(?P<trial>.*)", r"^stop_trial\b"),
}
"""Trial start/end message patterns: SR Research's convention, then PyGaze/OpenSesame's
(``eyelinkparser/data1.asc``). Without ``TrialRules.trial_start`` the first whose start marker
occurs is used."""

_NUMBER_FIELDS = {"EFIX": (6, 8), "ESACC": (9, 11), "EBLINK": (3,)}
"""Numeric fields after the eye of each event line (the larger count: ``edf2asc -res`` adds x/y
resolution)."""

_EXPECTED = {
    "EFIX": "EFIX <eye> <start> <end> <duration> <x> <y> <pupil> [<xres> <yres>]",
    "ESACC": ("ESACC <eye> <start> <end> <duration> <sx> <sy> <ex> <ey> <amplitude> <peak velocity> [<xres> <yres>]"),
    "EBLINK": "EBLINK <eye> <start> <end> <duration>",
    "MSG": "MSG <time> [<offset>] <text>",
    "START": "START <time> <eyes...> SAMPLES|EVENTS ...",
    "END": "END <time> SAMPLES|EVENTS ... [RES <x ppd> <y ppd>]",
}

# Lines that carry nothing this reader uses; recognised so that they are not counted as unknown.
_IGNORED_KEYWORDS = frozenset({"SFIX", "SSACC", "SBLINK", "PRESCALER", "VPRESCALER", "INPUT", "BUTTON"})
_HEADER = re.compile(r"\*\*\s*([A-Z][A-Z_ ]*):\s*(.*)")
_MESSAGE_OFFSET = re.compile(r"(-?\d+)\s+(\S.*)")
_TRIAL_VARIABLE = re.compile(r"(?:!V TRIAL_VAR|var)\s+(\S+?)\s*(?:=\s*|\s+|$)(.*)")
_TRIAL_VAR_LABELS = re.compile(r"!V TRIAL_VAR_LABELS\s+(.*)")
_TRIAL_VAR_DATA = re.compile(r"!V TRIAL_VAR_DATA\s+(.*)")
_IMGLOAD = re.compile(r"!V IMGLOAD\s+(\w+)\s+(\S+)(.*)")
# "DISPLAY_COORDS 0 0 1279 1023" and "DISPLAY_COORDS = 0 0 1919 1079"
_COORDS = re.compile(r"(DISPLAY_COORDS|GAZE_COORDS)\s*=?\s*(.*)")
_UNITS = ("GAZE", "HREF", "PUPIL")
_EDF_MAGIC = b"SR_RESEARCH"


class EyeLinkFormatError(ValueError):
    """The file is not a usable EyeLink recording; the message names the file and line."""


class EyeLinkDataWarning(UserWarning):
    """The file is readable but its data are incomplete or inconsistent."""


@dataclass(frozen=True)
class TrialRules:
    """How trials, their images and their display periods are found in a recording's messages.

    Every pattern is a Python regular expression searched in the message text (after any Data
    Viewer time offset); anchor it with ``^`` to match at the start. The command-line option of
    each is named in brackets.

    Attributes
    ----------
    trial_start : str, optional
        Message that starts a trial (``--trial-start``); a named group ``trial`` gives the trial id,
        otherwise trials are numbered 0, 1, … Default: ``TRIALID``, else ``start_trial`` (see
        :data:`TRIAL_MARKERS`), with the text after the marker as the id.
    trial_end : str, optional
        Message that ends a trial. Default: the built-in marker's end (``TRIAL_RESULT``,
        ``stop_trial``); with a custom ``trial_start`` and no ``trial_end``, a trial ends where the
        next one starts.
    image : str, optional
        Message naming the trial's image (``--image-message``), with a named group ``image`` (a file
        name or id; its stem is the image id). Default: ``!V TRIAL_VAR image``, else the
        ``!V IMGLOAD`` file.
    onset : str
        Image onset message within a trial (``--onset-message``); default :data:`DEFAULT_ONSET_PATTERN`.
    offset : str
        Image offset message after the onset (``--offset-message``); default
        :data:`DEFAULT_OFFSET_PATTERN`.

    Raises
    ------
    ValueError
        For an invalid pattern, or one without its required named group, naming the option.
    """

    trial_start: str | None = None
    trial_end: str | None = None
    image: str | None = None
    onset: str = DEFAULT_ONSET_PATTERN
    offset: str = DEFAULT_OFFSET_PATTERN

    OPTIONS = {
        "trial_start": "--trial-start",
        "trial_end": "--trial-end",
        "image": "--image-message",
        "onset": "--onset-message",
        "offset": "--offset-message",
    }

    def __post_init__(self) -> None:
        for name in ("trial_start", "trial_end", "image", "onset", "offset"):
            self.compiled(name)
        if self.image is not None and "image" not in self.required("image").groupindex:
            raise ValueError(
                f"{self.OPTIONS['image']} needs a named group 'image' that captures the image file or id, "
                f"e.g. 'scene=(?P<image>\\S+)'; got {self.image!r}"
            )
        if self.trial_end is not None and self.trial_start is None:
            raise ValueError("a trial end pattern needs its trial start pattern (--trial-start)")

    def required(self, name: str) -> re.Pattern:
        """The compiled pattern of attribute ``name``, which must be set."""
        pattern = self.compiled(name)
        if pattern is None:
            raise ValueError(f"{self.OPTIONS[name]} ({name}) is not set")
        return pattern

    def compiled(self, name: str) -> re.Pattern | None:
        """The compiled pattern of attribute ``name`` (None when unset)."""
        pattern = getattr(self, name)
        if pattern is None:
            return None
        option = f"{self.OPTIONS[name]} ({name})"
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"{option} must be a non-empty regular expression; got {pattern!r}")
        try:
            return re.compile(pattern)
        except re.error as error:
            raise ValueError(f"{option} is not a valid regular expression ({error}); got {pattern!r}") from None


@dataclass(frozen=True)
class EyeLinkRecording:
    """Everything :func:`read_eyelink_asc` or :func:`~analysis.readers.edf.read_eyelink_edf`
    extracts from one recording.

    Attributes
    ----------
    path : Path
        The file read.
    format : str
        ``"asc"`` or ``"edf"``.
    fixations : DataFrame
        The tidy fixation table (:data:`lookwhere.records.FIXATION_COLUMNS`), one row per ``EFIX``
        in file order; binocular recordings give one row per eye.
    fixation_events : DataFrame
        The same fixations on the tracker clock, row for row: ``trial``, ``eye``,
        ``start_tracker_ms``, ``end_tracker_ms`` (last sample), ``duration_ms``, ``x_px``, ``y_px``
        (display pixels, or HREF units where :attr:`units` says so), ``pupil``, ``truncated`` (it
        ended with its recording block: see :func:`ended_with_recording`); for re-anchoring times to
        another message.
    saccades : DataFrame
        One row per ``ESACC``: ``trial`` (int), ``eye`` (``"L"``/``"R"``), ``start_tracker_ms``,
        ``end_tracker_ms``, ``duration_ms``, ``x_start_px``, ``y_start_px``, ``x_end_px``,
        ``y_end_px``, ``amplitude_deg``, ``peak_velocity_deg_s``; NaN where unknown.
    blinks : DataFrame
        One row per ``EBLINK``: ``trial``, ``eye``, ``start_tracker_ms``, ``end_tracker_ms``,
        ``duration_ms``.
    messages : DataFrame
        One row per message: ``time_tracker_ms`` (offset applied), ``offset_ms`` (0 when none),
        ``trial``, ``text``, ``line`` (1-based line number; for an EDF, the element number).
    trials : DataFrame
        One row per trial: ``trial`` (0-based), ``trial_id`` (the start marker's ``trial`` group, else
        the trial's index as text), ``start_tracker_ms``/``end_tracker_ms`` (marker times; NaN end
        when missing), ``onset_tracker_ms``/``offset_tracker_ms`` (image onset/offset messages; NaN
        when none), ``stimulus_duration_ms``, ``image`` (see :attr:`TrialRules.image`, else ``""``),
        ``imgload`` (the ``!V IMGLOAD`` placement text, e.g. ``"CENTER 640 512 800 600"``, else
        ``""``), ``variables`` (dict of trial variable name → text), ``start_line``/``end_line``.
    blocks : DataFrame
        One row per recording block (``START`` … ``END``): ``start_tracker_ms``, ``end_tracker_ms``,
        ``eyes`` (``"L"``, ``"R"`` or ``"LR"``), ``sample_rate_hz``, ``x_res_ppd``, ``y_res_ppd``,
        ``tracking`` (e.g. ``"CR"``), ``remote`` (remote mode), ``units`` (``"GAZE"``, ``"HREF"``,
        ``"PUPIL"``, ``""`` unknown), ``start_line``.
    calibrations, validations : DataFrame
        See :func:`analysis.readers.calibration.calibration_tables`.
    samples : DataFrame or None
        When asked for: ``time_tracker_ms``, ``eye``, ``x_px``, ``y_px``, ``pupil`` (NaN for missing).
    display_px : tuple of int or None
        ``(width, height)`` of the screen; see :attr:`display_source`.
    display_source : str or None
        Where :attr:`display_px` came from: ``"DISPLAY_COORDS"`` (inclusive: ``0 0 1279 1023`` →
        1280×1024) or ``"GAZE_COORDS"`` (used when there is no ``DISPLAY_COORDS``; written inclusive
        by SR Research and exclusive by PyGaze, so a size ending in 9 or 7 (1919, 767, …) is taken
        as inclusive, an even one as exclusive); None when the file has neither.
    gaze_coords : tuple of float or None
        The last ``GAZE_COORDS left top right bottom`` as written.
    units : str
        Units of the event positions over all blocks: ``"GAZE"`` (screen pixels), ``"HREF"``
        (head-referenced), ``"GAZE+HREF"`` when blocks differ, ``""`` when no block says.
    resolution_ppd : tuple of float or None
        Mean ``(x, y)`` pixels per degree over the ``GAZE`` blocks' ``END ... RES`` values (None for
        HREF recordings, whose resolution is not in pixels).
    sample_rate_hz : float or None
        The ``RATE`` of the recording blocks (the most common if blocks differ, with a warning).
    eyes : str
        Eyes recorded in any block: ``"L"``, ``"R"``, ``"LR"`` or ``""``.
    tracking : str
        Tracking mode (``"CR"`` pupil–corneal reflection, ``"P"`` pupil only).
    remote : bool
        True when any block recorded in remote mode.
    pupil_measure : str
        ``"AREA"`` or ``"DIAMETER"`` (units of the ``pupil`` column), ``""`` when not stated.
    rules : dict of str → str or None
        The patterns actually used (trial start/end, image, onset, offset).
    header : dict
        ``** KEY: value`` header lines (e.g. ``"DATE"``, ``"VERSION"``).
    """

    path: Path
    format: str
    fixations: pd.DataFrame
    fixation_events: pd.DataFrame
    saccades: pd.DataFrame
    blinks: pd.DataFrame
    messages: pd.DataFrame
    trials: pd.DataFrame
    blocks: pd.DataFrame
    calibrations: pd.DataFrame
    validations: pd.DataFrame
    samples: pd.DataFrame | None
    display_px: tuple[int, int] | None
    display_source: str | None
    gaze_coords: tuple[float, float, float, float] | None
    units: str
    resolution_ppd: tuple[float, float] | None
    sample_rate_hz: float | None
    eyes: str
    tracking: str
    remote: bool
    pupil_measure: str
    rules: dict = field(default_factory=dict)
    header: dict = field(default_factory=dict)


def read_recording(path, **kwargs) -> EyeLinkRecording:
    """Read an EyeLink recording, ASC or EDF by its suffix (any letter case).

    Keyword arguments are those of :func:`read_eyelink_asc`. A file with another suffix is read as
    an EDF when it starts with the EDF signature, else as an ASC file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".edf" or (suffix != ".asc" and _is_edf(path)):
        from analysis.readers.edf import read_eyelink_edf

        return read_eyelink_edf(path, **kwargs)
    return read_eyelink_asc(path, **kwargs)


def read_eyelink(path, **kwargs) -> pd.DataFrame:
    """Read the fixations of an EyeLink recording (ASC or EDF) as the tidy fixation table.

    Shorthand for ``read_recording(path, **kwargs).fixations``; see :func:`read_eyelink_asc`.
    """
    return read_recording(path, **kwargs).fixations


def read_eyelink_asc(
    path,
    *,
    participant: str | None = None,
    rules: TrialRules | None = None,
    samples: bool = False,
) -> EyeLinkRecording:
    """Read an EyeLink ASC file: events, messages, trials, calibrations and recording metadata.

    Parameters
    ----------
    path : str or Path
        An ASC file (read an EDF with :func:`~analysis.readers.edf.read_eyelink_edf`).
    participant : str, optional
        Participant id for the fixation table; default the file stem.
    rules : TrialRules, optional
        How trials, images, onsets and offsets are marked; default :class:`TrialRules()`. Fixation
        times are relative to the trial's onset message (NaN for trials without one).
    samples : bool
        Also parse the sample lines into :attr:`EyeLinkRecording.samples` (slower: every line is read).

    Returns
    -------
    EyeLinkRecording
        Tables and metadata; ``.fixations`` is the tidy fixation table with ``participant`` (the
        file stem unless given), ``session`` (the file name), ``trial`` (0-based index of the trial
        block by file position, -1 outside trials), ``image``, ``eye``, ``start_ms``/``end_ms``
        (relative to the trial's image onset), ``duration_ms`` (from the file),
        ``x_display_px``/``y_display_px`` (EFIX averages), ``stimulus_duration_ms`` and ``pupil``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    EyeLinkFormatError
        For an unusable file: empty, binary (e.g. an EDF), no EyeLink lines, or a malformed event
        or message line (naming the line, what was expected and what was found).

    Warns
    -----
    EyeLinkDataWarning
        For poor data: a recording block without ``END``, a trial without its end marker, several
        sample rates, event durations that disagree with their start and end, a malformed
        ``DISPLAY_COORDS``. (Trials without an onset message are logged; :mod:`analysis.readers.mapping`
        warns about the ones it uses.)
    """
    path = Path(path)
    participant = _check_text("participant", participant)
    rules = _check_rules(rules)
    lines, ends_with_newline = _read_lines(path)
    parsed = _parse_lines(lines, path, ends_with_newline, samples=samples)
    parsed.n_lines = len(lines)
    return build_recording(parsed, path, participant=participant, rules=rules, format="asc")


# --- options ---------------------------------------------------------------------------------


def _check_text(name: str, value: str | None) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{name} must be a non-empty string or None; got {value!r}")
    return value


def _check_rules(rules) -> TrialRules:
    if rules is None:
        return TrialRules()
    if not isinstance(rules, TrialRules):
        raise TypeError(f"rules must be a TrialRules or None; got {type(rules).__name__}")
    return rules


def _is_edf(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(_EDF_MAGIC)) == _EDF_MAGIC


# --- 1. read lines ---------------------------------------------------------------------------


def _read_lines(path: Path) -> tuple[list[str], bool]:
    """The file's lines (without line ends) and whether the last one was complete."""
    if not path.is_file():
        raise FileNotFoundError(f"EyeLink recording {path} does not exist")
    data = path.read_bytes()
    if not data.strip():
        raise EyeLinkFormatError(f"{path} is empty; expected an EyeLink ASC file (text written by edf2asc)")
    if data.startswith(_EDF_MAGIC):
        raise EyeLinkFormatError(
            f"{path} is an EDF file, not an ASC file: read it with read_recording() or "
            "`lookwhere analyze --dataset eyelink`, which read EDF files through eyelinkio"
        )
    if b"\x00" in data[:4096]:
        raise EyeLinkFormatError(
            f"{path} is a binary file, not an ASC file; pass an ASC file written by SR Research's "
            "edf2asc or an EDF file"
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
    """Raw rows from one pass over a recording; each event or message row starts with its 1-based
    line (an EDF's element number). The EDF reader fills the same structure."""

    fixations: list = field(default_factory=list)  # (line, eye, start, end, duration, x, y, pupil)
    saccades: list = field(default_factory=list)  # (line, eye, start, end, duration, sx, sy, ex, ey,
    #                                                 amplitude, peak velocity)
    blinks: list = field(default_factory=list)  # (line, eye, start, end, duration)
    messages: list = field(default_factory=list)  # (line, time, offset, text)
    blocks: list = field(default_factory=list)  # dicts, one per START
    samples: list | None = None  # (block index, line text) of sample lines, when asked for
    sample_table: pd.DataFrame | None = None  # the EDF reader's samples
    display_coords: tuple | None = None
    gaze_coords: tuple | None = None
    pupil_measure: str = ""
    header: dict = field(default_factory=dict)
    asc_lines: int = 0
    n_lines: int = 0
    last_line_cut: bool = False
    unknown: Counter = field(default_factory=Counter)


def _parse_lines(lines: list[str], path: Path, ends_with_newline: bool, *, samples: bool = False) -> _Parsed:
    """One pass over the non-sample lines, dispatching on the first word."""
    parsed = _Parsed(samples=[] if samples else None)
    block: dict | None = None
    last = len(lines)
    for number, line in enumerate(lines, start=1):
        first = line[:1]
        # Samples (the bulk of the file) start with their time stamp; skipping them by the first
        # character is what keeps the reader fast. Blank lines, calibration text (">>>>", tab- or
        # space-indented continuation lines) carry nothing we use.
        if not first or first.isdigit() or first in " \t>":
            if first.isdigit():
                _sample_line(parsed, line, cut=number == last and not ends_with_newline, in_block=block is not None)
            continue
        if first == "*":
            if line.startswith("**"):
                add_header_line(line, parsed)
                parsed.asc_lines += 1
            continue
        keyword = line.split(None, 1)[0]
        try:
            block, known = _parse_keyword(keyword, line[len(keyword) :], number, parsed, path, block)
        except (ValueError, IndexError) as error:
            cut = number == last and not ends_with_newline
            raise _format_error(path, number, keyword, line, cut, error) from None
        if known:
            parsed.asc_lines += 1
    return parsed


def _sample_line(parsed: _Parsed, line: str, *, cut: bool, in_block: bool) -> None:
    """Keep a sample line of a recording block (when samples are read); note a line cut short."""
    if cut:
        parsed.last_line_cut = True  # a sample line cut short: the file was truncated
    elif parsed.samples is not None and in_block:
        parsed.samples.append((len(parsed.blocks) - 1, line))


def _parse_keyword(
    keyword: str, rest: str, number: int, parsed: _Parsed, path: Path, block: dict | None
) -> tuple[dict | None, bool]:
    """Parse one non-sample line (``rest`` follows ``keyword``); return the recording block open
    after it and whether the keyword is one the reader knows."""
    if keyword in _NUMBER_FIELDS:
        _parse_event(keyword, rest, number, parsed)
    elif keyword == "MSG":
        _parse_message(rest, number, parsed, path)
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
            _parse_data_line(keyword, rest, block)
    elif keyword == "PUPIL":
        parsed.pupil_measure = rest.strip()
    elif keyword not in _IGNORED_KEYWORDS:
        parsed.unknown[keyword] += 1
        return block, False
    return block, True


def _format_error(path: Path, number: int, keyword: str, line: str, cut: bool, error: Exception) -> EyeLinkFormatError:
    expected = _EXPECTED.get(keyword, f"a valid {keyword} line")
    where = (
        "the file ends in the middle of this line: it looks truncated (copy it again or re-run edf2asc)"
        if cut
        else "fix or remove the line, or convert the EDF again with edf2asc"
    )
    return EyeLinkFormatError(f"{path}, line {number}: expected {expected}; found {line.strip()!r} ({error}). {where}")


def add_header_line(line: str, parsed: _Parsed) -> None:
    """Record a ``** KEY: value`` header line (ASC files and an EDF's preamble)."""
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


def _parse_message(rest: str, number: int, parsed: _Parsed, path: Path) -> None:
    rest = rest.strip()
    time_text = rest.split(None, 1)[0]
    time = float(time_text)
    add_message(parsed, number, time, rest[len(time_text) :].strip(), path)


def add_message(parsed: _Parsed, number: int, time: float, text: str, path: Path) -> None:
    """Record one message (applying a Data Viewer time offset) and the display geometry it states.

    Shared by the ASC and EDF readers, so that both read the same message forms.
    """
    offset = 0
    found = _MESSAGE_OFFSET.fullmatch(text)
    if found:
        offset = int(found.group(1))
        text = found.group(2)
    parsed.messages.append((number, time - offset, offset, text))
    coords = _COORDS.match(text)
    if coords:
        try:
            values = tuple(float(value) for value in coords.group(2).split()[:4])
            if len(values) != 4:
                raise ValueError("needs left top right bottom")
        except ValueError:
            _warn(
                f"{path}, line {number}: {coords.group(1)} needs four numbers (left top right bottom); "
                f"found {text!r}; ignored"
            )
            return
        if coords.group(1) == "DISPLAY_COORDS":
            parsed.display_coords = values
        else:
            parsed.gaze_coords = values


def _parse_start(rest: str, number: int) -> dict:
    fields = rest.split()
    eyes = "".join(eye[0] for eye in ("LEFT", "RIGHT") if eye in fields[1:])
    return new_block(float(fields[0]), eyes, number)


def new_block(start_tracker_ms: float, eyes: str, number: int) -> dict:
    """One recording block's row, filled in as its lines are read (ASC) or its record (EDF)."""
    return {
        "start_tracker_ms": start_tracker_ms,
        "end_tracker_ms": math.nan,
        "eyes": eyes,
        "sample_rate_hz": math.nan,
        "x_res_ppd": math.nan,
        "y_res_ppd": math.nan,
        "tracking": "",
        "remote": False,
        "units": "",
        "start_line": number,
    }


def _parse_data_line(keyword: str, rest: str, block: dict) -> None:
    """``SAMPLES``/``EVENTS GAZE LEFT RATE 1000.00 TRACKING CR FILTER 2 [HTARGET ...]``."""
    fields = rest.split()
    if "RATE" in fields:
        block["sample_rate_hz"] = float(fields[fields.index("RATE") + 1])
    if "TRACKING" in fields:
        block["tracking"] = fields[fields.index("TRACKING") + 1]
    # The EVENTS line states the units of the event positions; SAMPLES is the fallback.
    units = next((word for word in fields[:1] if word in _UNITS), "")
    if units and (keyword == "EVENTS" or not block["units"]):
        block["units"] = units
    # Remote mode adds the target sticker's position and distance (HTARGET) to each sample.
    block["remote"] = block["remote"] or "HTARGET" in fields


def _parse_end(rest: str, block: dict) -> None:
    fields = rest.split()
    block["end_tracker_ms"] = float(fields[0])
    if "RES" in fields:
        where = fields.index("RES")
        block["x_res_ppd"], block["y_res_ppd"] = float(fields[where + 1]), float(fields[where + 2])


def _sample_table(parsed: _Parsed) -> pd.DataFrame:
    """Samples in long form, one row per eye: ``time x y pupil`` or ``time xl yl pl xr yr pr``."""
    rows = []
    for block_index, line in parsed.samples or ():
        fields = line.split()
        eyes = parsed.blocks[block_index]["eyes"] or "L"
        time = float(fields[0])
        for k, eye in enumerate(eyes):
            values = fields[1 + 3 * k : 4 + 3 * k]
            rows.append((time, eye, *(_number(v) if v != "..." else math.nan for v in values)))
    table = pd.DataFrame(rows, columns=["time_tracker_ms", "eye", "x_px", "y_px", "pupil"])
    return table.astype(
        {"time_tracker_ms": "float64", "eye": "string", "x_px": "float64", "y_px": "float64", "pupil": "float64"}
    )


# --- 3. trials and validation ----------------------------------------------------------------


def build_recording(parsed: _Parsed, path: Path, *, participant: str | None, rules: TrialRules, format: str):
    """Steps 3–6 of the pipeline, shared by the ASC and EDF readers."""
    markers = _choose_trial_markers(parsed.messages, rules, path)
    trials = _segment_trials(parsed.messages, markers, parsed.n_lines, path)
    _validate(parsed, path)
    tables = _build_tables(parsed, trials, rules, path)
    fixations = fixation_table_from_events(
        tables["fixation_events"],
        tables["trials"],
        participant=participant if participant is not None else path.stem,
        session=path.name,
    )
    used = {
        "trial_start": markers[0].pattern if markers else None,
        "trial_end": markers[1].pattern if markers and markers[1] is not None else None,
        "image": rules.image,
        "onset": rules.onset,
        "offset": rules.offset,
    }
    recording = _with_metadata(path, parsed, tables, fixations, format, used)
    logger.info(
        "%s: %d fixations, %d saccades, %d blinks, %d messages, %d trials, %d recording blocks; "
        "eyes %s, %s Hz, display %s (%s), units %s",
        path.name,
        len(fixations),
        len(tables["saccades"]),
        len(tables["blinks"]),
        len(tables["messages"]),
        len(tables["trials"]),
        len(tables["blocks"]),
        recording.eyes or "?",
        recording.sample_rate_hz,
        recording.display_px,
        recording.display_source,
        recording.units or "?",
    )
    return recording


def _choose_trial_markers(messages: list, rules: TrialRules, path: Path):
    """(start, end or None) compiled patterns, or None when no trial start message occurs."""
    if rules.trial_start is not None:
        start_re = rules.required("trial_start")
        if not any(start_re.search(text) for _, _, _, text in messages):
            logger.info("%s: no message matches the trial start %r", path.name, rules.trial_start)
            return None
        return start_re, rules.compiled("trial_end")
    for name, (start, end) in TRIAL_MARKERS.items():
        start_re = re.compile(start)
        if any(start_re.search(text) for _, _, _, text in messages):
            logger.info("%s: trials marked by %s messages", path.name, name)
            return start_re, re.compile(end)
    logger.info("%s: no trial start messages (%s); all events are outside trials", path.name, ", ".join(TRIAL_MARKERS))
    return None


def _segment_trials(messages: list, markers, n_lines: int, path: Path) -> list[dict]:
    """Trial blocks by file position: from a start message to its end message (or the next start).

    Without an end pattern a trial ends where the next one starts, silently (that is the rule).
    """
    if markers is None:
        return []
    start_re, end_re = markers
    trials: list[dict] = []
    unended: list[str] = []
    open_trial: dict | None = None
    for line, time, _, text in messages:
        started = start_re.search(text)
        if started:
            if open_trial is not None and end_re is None:
                open_trial["end_line"] = line - 1
            elif open_trial is not None:
                unended.append(_close_unended(open_trial, line - 1, "the next trial starts"))
            trial_id = (started.groupdict().get("trial") or "").strip()
            open_trial = {
                "trial": len(trials),
                "trial_id": trial_id or str(len(trials)),
                "start_tracker_ms": time,
                "end_tracker_ms": math.nan,
                "start_line": line,
                "end_line": n_lines,
            }
            trials.append(open_trial)
        elif open_trial is not None and end_re is not None and end_re.search(text):
            open_trial["end_tracker_ms"] = time
            open_trial["end_line"] = line
            open_trial = None
    if open_trial is not None and end_re is not None:
        unended.append(_close_unended(open_trial, n_lines, "the file ends"))
    if unended:
        _warn(
            f"{path}: {len(unended)} of {len(trials)} trials have no end message; each keeps its events up "
            f"to the next trial's start or the file's end: {'; '.join(unended[:3])}{'; …' if len(unended) > 3 else ''}"
        )
    return trials


def _close_unended(trial: dict, end_line: int, why: str) -> str:
    trial["end_line"] = end_line
    return (
        f"trial {trial['trial']} (start message at line {trial['start_line']}) has no end message "
        f"before {why} (line {end_line})"
    )


def _validate(parsed: _Parsed, path: Path) -> None:
    if parsed.asc_lines == 0:
        raise EyeLinkFormatError(
            f"{path} does not look like an EyeLink ASC file: no '**' header, MSG, START, END or event "
            "lines were found. Pass a file written by SR Research's edf2asc, or the EDF itself"
        )
    if parsed.last_line_cut:
        _warn(f"{path} ends inside a sample line without a line break: the file may have been cut off")
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
                f"{path}: {bad.size} fixation events have a duration that disagrees with end - start "
                f"(first at line {first}); durations are kept as written"
            )
    if parsed.unknown:
        logger.info("%s: ignored lines of unknown type %s", path.name, dict(parsed.unknown))


def _warn(message: str) -> None:
    logger.warning(message)
    # Attribute the warning to the reader's caller, however deep in the pipeline it arose.
    frame: FrameType | None = sys._getframe(1)
    level = 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("analysis.readers."):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, EyeLinkDataWarning, stacklevel=level)


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


def _build_tables(parsed: _Parsed, trials: list[dict], rules: TrialRules, path: Path) -> dict:
    messages = pd.DataFrame(parsed.messages, columns=["line", "time_tracker_ms", "offset_ms", "text"])
    messages = messages.astype({"line": "int64", "time_tracker_ms": "float64", "offset_ms": "int64", "text": "string"})
    trial_table = _trial_table(trials, messages, rules, path)
    messages.insert(2, "trial", _trial_of_lines(messages["line"].to_numpy(), trial_table))
    messages = messages[["time_tracker_ms", "offset_ms", "trial", "text", "line"]]

    saccades = pd.DataFrame(
        parsed.saccades,
        columns=[
            "line",
            "eye",
            "start_tracker_ms",
            "end_tracker_ms",
            "duration_ms",
            "x_start_px",
            "y_start_px",
            "x_end_px",
            "y_end_px",
            "amplitude_deg",
            "peak_velocity_deg_s",
        ],
    )
    blinks = pd.DataFrame(parsed.blinks, columns=["line", "eye", "start_tracker_ms", "end_tracker_ms", "duration_ms"])
    fixation_events = pd.DataFrame(
        parsed.fixations,
        columns=["line", "eye", "start_tracker_ms", "end_tracker_ms", "duration_ms", "x_px", "y_px", "pupil"],
    )
    truncated = ended_with_recording(fixation_events, parsed.blocks)
    events = {"fixation_events": fixation_events, "saccades": saccades, "blinks": blinks}
    for name, table in events.items():
        table.insert(0, "trial", _trial_of_lines(table["line"].to_numpy(dtype=np.int64), trial_table))
        numeric = {column: "float64" for column in table.columns[3:]}
        events[name] = table.astype({"eye": "string"} | numeric).drop(columns="line")
    events["fixation_events"]["truncated"] = truncated
    blocks = pd.DataFrame(
        parsed.blocks,
        columns=[
            "start_tracker_ms",
            "end_tracker_ms",
            "eyes",
            "sample_rate_hz",
            "x_res_ppd",
            "y_res_ppd",
            "tracking",
            "remote",
            "units",
            "start_line",
        ],
    )
    calibrations, validations = calibration_tables(messages)
    samples = parsed.sample_table
    if samples is None and parsed.samples is not None:
        samples = _sample_table(parsed)
    return {
        "messages": messages,
        "trials": trial_table,
        "blocks": blocks,
        "calibrations": calibrations,
        "validations": validations,
        "samples": samples,
    } | events


_TRIAL_COLUMNS = [
    "trial",
    "trial_id",
    "start_tracker_ms",
    "end_tracker_ms",
    "onset_tracker_ms",
    "offset_tracker_ms",
    "stimulus_duration_ms",
    "image",
    "imgload",
    "variables",
    "start_line",
    "end_line",
]


def ended_with_recording(fixations: pd.DataFrame, blocks: list[dict]) -> np.ndarray:
    """Whether each fixation ended with its recording block: the ``truncated`` flag the task sets
    on the fixation the recording stop cuts short (``experiment.presentation._ends_at_stop``).

    EyeLink closes the fixation under way at the stop on the sample before the last and writes
    ``END`` 1 ms after the last sample: in every file of ``shared/data/eyelink`` (250 Hz to 2 kHz,
    ASC and EDF) ``END`` comes one sample interval + 1 ms after that fixation's end (2 ms at 2 kHz,
    whose stamps are whole ms), and ≥ 65 ms after any other fixation's. So a fixation counts as
    cut when it ends within two sample intervals + 1 ms of ``END`` (or after it). A block without
    ``END`` (a cut file) flags nothing.

    Parameters
    ----------
    fixations : DataFrame
        ``line`` (an EDF's element number), ``start_tracker_ms``, ``end_tracker_ms`` (last sample),
        ``duration_ms``.
    blocks : list of dict
        The recording blocks (:func:`new_block`), in file order.

    Returns
    -------
    ndarray of bool, one per fixation
    """
    if fixations.empty or not blocks:
        return np.zeros(len(fixations), dtype=bool)
    block = np.searchsorted([b["start_line"] for b in blocks], fixations["line"].to_numpy(np.int64), side="right") - 1
    end_of_block = np.array([b["end_tracker_ms"] for b in blocks] + [math.nan])[block]  # -1: before any block
    rate_hz = np.array([b["sample_rate_hz"] for b in blocks] + [math.nan])[block]
    start, end = fixations["start_tracker_ms"].to_numpy(np.float64), fixations["end_tracker_ms"].to_numpy(np.float64)
    period_ms = 1000.0 / np.where(rate_hz > 0, rate_hz, np.nan)
    # Without a RATE, the interval the event's duration implies (duration = end - start + 1 sample).
    implied_ms = fixations["duration_ms"].to_numpy(np.float64) - (end - start)
    sample_ms = np.where(np.isnan(period_ms), implied_ms, period_ms)
    return end + 2 * sample_ms + 1.0 >= end_of_block


def _trial_table(trials: list[dict], messages: pd.DataFrame, rules: TrialRules, path: Path) -> pd.DataFrame:
    """Add onset/offset, image and variables to each trial, from the messages within it."""
    lines = messages["line"].to_numpy()
    texts = messages["text"].tolist()
    times = messages["time_tracker_ms"].to_numpy()
    labels = next((found.group(1).split() for text in texts if (found := _TRIAL_VAR_LABELS.match(text))), [])
    rows = []
    for trial in trials:
        first = np.searchsorted(lines, trial["start_line"], side="left")
        stop = np.searchsorted(lines, trial["end_line"], side="right")
        rows.append(trial | _trial_messages(texts[first:stop], times[first:stop], rules, labels))
    table = pd.DataFrame(rows, columns=_TRIAL_COLUMNS)
    no_onset = table.loc[table["onset_tracker_ms"].isna(), "trial"].tolist()
    if no_onset:
        # Logged, not warned: whoever maps the trials to images may give the onsets another way.
        logger.info(
            "%s: %d of %d trials have no image onset message matching %r (trials %s); their fixation times are NaN",
            path.name,
            len(no_onset),
            len(table),
            rules.onset,
            no_onset[:10],
        )
    return table.astype(
        {
            "trial": "int64",
            "trial_id": "string",
            "image": "string",
            "imgload": "string",
            "start_line": "int64",
            "end_line": "int64",
        }
    )


def _trial_messages(texts: list[str], times: np.ndarray, rules: TrialRules, labels: list[str]) -> dict:
    """Onset and offset (tracker ms), image, ``!V IMGLOAD`` and trial variables of one trial, from
    its messages ``texts`` at ``times``; ``labels``: the recording's ``!V TRIAL_VAR_LABELS``."""
    onset_re, offset_re, image_re = rules.required("onset"), rules.required("offset"), rules.compiled("image")
    onset = offset = math.nan
    image = imgload = named = ""
    variables: dict[str, str] = {}
    for text, time in zip(texts, times):
        if math.isnan(onset) and onset_re.search(text):
            onset = time
        elif not math.isnan(onset) and math.isnan(offset) and offset_re.search(text):
            offset = time
        if image_re is not None and not named and (found := image_re.search(text)):
            named = (found.group("image") or "").strip()
        if found := _TRIAL_VARIABLE.match(text):
            variables[found.group(1)] = found.group(2).strip()
        elif found := _TRIAL_VAR_DATA.match(text):
            # Experiment Builder's older form: values in the order of !V TRIAL_VAR_LABELS.
            variables.update(zip(labels, found.group(1).split()))
        if (found := _IMGLOAD.match(text)) and not imgload:
            imgload = f"{found.group(1)} {found.group(3).strip()}".strip()
            image = image_id_from_name(found.group(2))
    image_variable = next((value for name, value in variables.items() if name.lower() == "image"), "")
    if named:
        image = image_id_from_name(named)
    elif image_variable:
        image = image_id_from_name(image_variable)
    return {
        "onset_tracker_ms": onset,
        "offset_tracker_ms": offset,
        "stimulus_duration_ms": offset - onset,
        "image": image,
        "imgload": imgload,
        "variables": variables,
    }


def image_id_from_name(name: str) -> str:
    """Image id from a file name written on any system (``stimuli\\1001.jpg`` → ``1001``)."""
    return Path(name.strip().strip("\"'").replace("\\", "/")).stem


# --- 5. units: the fixation table ------------------------------------------------------------


def fixation_table_from_events(
    events: pd.DataFrame, trials: pd.DataFrame, *, participant: str, session: str
) -> pd.DataFrame:
    """The tidy fixation table of fixation events on the tracker clock.

    Parameters
    ----------
    events : DataFrame
        :attr:`EyeLinkRecording.fixation_events` (or a subset): ``trial`` (-1 outside trials),
        ``eye``, ``start_tracker_ms``, ``duration_ms``, ``x_px``, ``y_px``, ``pupil``, ``truncated``.
    trials : DataFrame
        :attr:`EyeLinkRecording.trials` (or a remapped copy): ``onset_tracker_ms``,
        ``stimulus_duration_ms`` and ``image`` per trial index.
    participant, session : str
        Written into every row.

    Returns
    -------
    DataFrame
        ``start_ms = start_tracker_ms - onset_tracker_ms`` (ms, NaN without an onset), ``end_ms =
        start_ms + duration_ms``, display positions from ``x_px``/``y_px``, image coordinates NaN.
    """
    trial = events["trial"].to_numpy(dtype=np.int64)
    inside = trial >= 0
    n = trial.size
    onset = np.full(n, np.nan)
    stimulus_duration = np.full(n, np.nan)
    image = np.full(n, "", dtype=object)
    if inside.any():
        by_index = trials.set_index("trial")
        onset[inside] = by_index["onset_tracker_ms"].reindex(trial[inside]).to_numpy(dtype=np.float64)
        stimulus_duration[inside] = by_index["stimulus_duration_ms"].reindex(trial[inside]).to_numpy(dtype=np.float64)
        image[inside] = by_index["image"].reindex(trial[inside]).fillna("").to_numpy(dtype=object)
    outside = int((~inside).sum())
    if outside:
        logger.info("%s: %d of %d fixations lie outside any trial (trial -1)", session, outside, n)
    duration = events["duration_ms"].to_numpy(dtype=np.float64)
    start_ms = events["start_tracker_ms"].to_numpy(dtype=np.float64) - onset
    return fixation_table(
        {
            "participant": np.full(n, participant, dtype=object),
            "session": np.full(n, session, dtype=object),
            "trial": trial,
            "image": image,
            "eye": events["eye"].to_numpy(dtype=object),
            "start_ms": start_ms,
            "end_ms": start_ms + duration,
            "duration_ms": duration,
            "x_display_px": events["x_px"].to_numpy(dtype=np.float64),
            "y_display_px": events["y_px"].to_numpy(dtype=np.float64),
            "x_image_px": np.full(n, np.nan),
            "y_image_px": np.full(n, np.nan),
            "stimulus_duration_ms": stimulus_duration,
            "pupil": events["pupil"].to_numpy(dtype=np.float64),
            "truncated": events["truncated"].to_numpy(dtype=bool),
        }
    )


# --- 6. metadata -----------------------------------------------------------------------------


def _display(parsed: _Parsed, path: Path) -> tuple[tuple[int, int] | None, str | None]:
    """Screen size and its source: DISPLAY_COORDS (inclusive), else GAZE_COORDS (see the attribute)."""
    if parsed.display_coords is not None:
        left, top, right, bottom = parsed.display_coords
        return (int(round(right - left + 1)), int(round(bottom - top + 1))), "DISPLAY_COORDS"
    if parsed.gaze_coords is not None:
        left, top, right, bottom = parsed.gaze_coords
        # SR Research writes the last pixel (1919), PyGaze the size (1920): screen sizes are even.
        width, height = (int(round(b - a)) + (int(round(b - a)) % 2) for a, b in ((left, right), (top, bottom)))
        size = (width, height)
        logger.info(
            "%s: no DISPLAY_COORDS message; display size %s from GAZE_COORDS %s", path.name, size, parsed.gaze_coords
        )
        return size, "GAZE_COORDS"
    logger.info("%s: neither DISPLAY_COORDS nor GAZE_COORDS; display size unknown", path.name)
    return None, None


def _with_metadata(path: Path, parsed: _Parsed, tables: dict, fixations: pd.DataFrame, format: str, rules: dict):
    blocks = tables["blocks"]
    display_px, display_source = _display(parsed, path)
    block_units = sorted({units for units in blocks["units"] if units}, key=_UNITS.index)
    units = "+".join(block_units)
    gaze_blocks = blocks[blocks["units"].isin(["GAZE", ""])]
    resolution = None
    if gaze_blocks["x_res_ppd"].notna().any():
        resolution = (float(gaze_blocks["x_res_ppd"].mean()), float(gaze_blocks["y_res_ppd"].mean()))
    rates = blocks["sample_rate_hz"].dropna()
    sample_rate = float(rates.mode().iloc[0]) if len(rates) else None
    eyes = "".join(eye for eye in "LR" if blocks["eyes"].str.contains(eye).any()) if len(blocks) else ""
    tracking = next((mode for mode in blocks["tracking"] if mode), "") if len(blocks) else ""
    return EyeLinkRecording(
        path=path,
        format=format,
        fixations=fixations,
        fixation_events=tables["fixation_events"],
        saccades=tables["saccades"],
        blinks=tables["blinks"],
        messages=tables["messages"],
        trials=tables["trials"],
        blocks=blocks,
        calibrations=tables["calibrations"],
        validations=tables["validations"],
        samples=tables["samples"],
        display_px=display_px,
        display_source=display_source,
        gaze_coords=parsed.gaze_coords,
        units=units,
        resolution_ppd=resolution,
        sample_rate_hz=sample_rate,
        eyes=eyes,
        tracking=tracking,
        remote=bool(blocks["remote"].any()) if len(blocks) else False,
        pupil_measure=parsed.pupil_measure,
        rules=rules,
        header=parsed.header,
    )
