"""The one definition of the wire protocol between the experiment and the analysis server.

Messages
--------
Every message is two ZeroMQ frames ``[topic, payload]`` (the Pupil Labs convention): ``topic`` is
the ASCII record kind (``b"fixation"``) or a control topic (``b"ctl.ack"``), ``payload`` one
msgpack map. Record maps carry ``kind`` (equal to the topic, so that a journal entry describes
itself), ``v`` (:data:`SCHEMA_VERSION`), ``session`` (a UUID string) and ``seq`` (gap-free per
session, starting at 1), then the fields of their record class. Maps must hold exactly those keys:
a missing or an unknown key is an error, so that a version mismatch cannot pass silently. The one
exception is a field added to a record after its first release (the class's ``added`` names): a
map without it, written by an older sender or read from an older journal, takes the field's
default ("unknown"). Senders always write every field, so an older server rejects them loudly
(``unknown_field``) instead of misreading them.

Record kinds (:data:`RECORD_TYPES`): :class:`SessionStart`, :class:`SessionEnd`,
:class:`TrialStart`, :class:`TrialEnd`, :class:`FixationRecord`, :class:`GazeSample`,
:class:`MicLevel`, :class:`MicAudio`, :class:`Heartbeat`, and the data-quality records
:class:`Validation`, :class:`DriftCheck` and :class:`TrialQualityRecord` (:mod:`lookwhere.quality`).

Delivery (zguide ch. 5 "Clone", turned around)
----------------------------------------------
The experiment's DEALER sends records; the server's ROUTER persists them and answers
``ctl.ack {session, seq}`` (cumulative: every record up to ``seq`` is on disk). A sender that has
unacknowledged records sends ``ctl.hello {session, last_seq}``; the server answers with an ack and,
when it lacks records, ``ctl.replay {session, from_seq}``, which it also sends when it sees a gap.
The server accepts records strictly in ``seq`` order (go-back-N), so a replay always restarts at the
first missing record and the persisted stream is exactly ``1..n`` with no duplicates.

Every ack carries the last ``seq`` the server holds for the session, the reply to a hello too: a
sender starting or resuming a session says hello first (a bounded wait, before any trial) and
numbers on after the larger of its own last ``seq`` and the server's. A record arriving with a
``seq`` the server holds is a duplicate when it is the same record, a *conflict* when its content
differs (the server keeps its own and sets the other aside; see :mod:`server.receiver`).

The experimenter's notes (:mod:`lookwhere.notes`) travel the other way, so that each lands in the
experiment's session folder too: every :class:`Heartbeat` says how many of the session's notes the
experiment holds (``notes``; None: it takes none), and the server answers with each note it lacks,
``ctl.note {session, index, note}`` (``index``: the note's 0-based place among the session's notes,
``note``: its ``notes.jsonl`` object, :class:`lookwhere.notes.OperatorNote`). A note that is lost
is sent again after the next heartbeat; one that arrives twice is recognised by its index.

Units and frames follow :mod:`lookwhere.records`: ``*_px`` are continuous display or image pixels
(origin at the top-left corner), ``*_tracker_ms`` tracker clock time, ``*_session_ms`` time since
the session started, ``*_ms`` without a clock name relative to the trial's image onset.

Validation
----------
:func:`decode` checks every field against one rule table (:data:`FIELD_RULES`): exact Python types
(``bool`` is not an int), finite and bounded numbers (NaN only where a field allows "unknown"),
known kinds and version, UUID sessions. It raises :class:`ProtocolError` whose ``reason`` is one of
:data:`REJECT_REASONS`, for counting. Never pickle: msgpack only.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

import msgpack
from pydantic import ValidationError

from lookwhere.notes import OperatorNote
from lookwhere.quality import DRIFT_OUTCOMES
from lookwhere.records import OPTIONAL_COLUMNS, Fixation
from stimuli.geometry import DisplayGeometry

__all__ = [
    "SCHEMA_VERSION",
    "MAX_MESSAGE_BYTES",
    "COORD_LIMIT_PX",
    "TOPIC_HELLO",
    "TOPIC_ACK",
    "TOPIC_REPLAY",
    "TOPIC_NOTE",
    "REJECT_REASONS",
    "FIELD_RULES",
    "ProtocolError",
    "Record",
    "SessionStart",
    "SessionEnd",
    "TrialStart",
    "TrialEnd",
    "FixationRecord",
    "GazeSample",
    "MicLevel",
    "MicAudio",
    "Heartbeat",
    "Validation",
    "DriftCheck",
    "TrialQualityRecord",
    "WAITING_FOR",
    "FRAME_TIMINGS",
    "RECORD_TYPES",
    "record_map",
    "encode",
    "stamp",
    "decode",
    "validate_map",
    "encode_control",
    "decode_control",
    "encode_note",
    "decode_note",
    "read_journal",
]

SCHEMA_VERSION = 1
#: Largest accepted message, in bytes; also the sockets' ``MAXMSGSIZE`` (a fixation is ~600 B).
MAX_MESSAGE_BYTES = 64 * 1024
#: Coordinates farther than this from the screen origin are rejected as out of range.  EyeLink
#: reports lost tracking as ~1e8 px, so a finite bound catches it; 10 screens' worth is generous.
COORD_LIMIT_PX = 20_000.0
_MAX_STR = 256
_MAX_TIME_MS = 1e13  # ~300 years: catches garbage, never a real clock

TOPIC_HELLO = b"ctl.hello"
TOPIC_ACK = b"ctl.ack"
TOPIC_REPLAY = b"ctl.replay"
TOPIC_NOTE = b"ctl.note"  # server → experiment: a note on the session (module notes)

REJECT_REASONS = (
    "bad_frames",  # not exactly two frames
    "oversize",  # payload larger than MAX_MESSAGE_BYTES
    "not_msgpack",  # payload does not unpack as one msgpack object
    "not_a_map",  # payload is not a map with string keys
    "unknown_kind",  # topic is not a record kind or control topic
    "kind_mismatch",  # map's kind differs from the topic
    "wrong_version",  # v is not SCHEMA_VERSION
    "missing_field",
    "unknown_field",
    "wrong_type",
    "out_of_range",  # NaN/inf where not allowed, bounds, bad UUID, bad eye code
)

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ProtocolError(ValueError):
    """A message that does not follow the protocol; ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------------------------------------
# Field rules: one table keyed by field name, so a name means the same thing in every record.
# A rule takes the received value and returns it normalised (ints accepted as floats) or raises.


def _wrong_type(name: str, value: Any, expected: str) -> ProtocolError:
    return ProtocolError("wrong_type", f"{name} must be {expected}; got {type(value).__name__}")


def _string(*, choices: frozenset[str] | None = None, pattern: re.Pattern | None = None) -> Callable:
    def check(name: str, value: Any) -> str:
        if type(value) is not str:
            raise _wrong_type(name, value, "a string")
        if len(value) > _MAX_STR:
            raise ProtocolError("out_of_range", f"{name} is {len(value)} characters long; at most {_MAX_STR}")
        if choices is not None and value not in choices:
            raise ProtocolError("out_of_range", f"{name} must be one of {sorted(choices)}; got {value!r}")
        if pattern is not None and pattern.fullmatch(value) is None:
            raise ProtocolError("out_of_range", f"{name} must match {pattern.pattern}; got {value!r}")
        return value

    return check


def _integer(lo: int, hi: int) -> Callable:
    def check(name: str, value: Any) -> int:
        if type(value) is not int:
            raise _wrong_type(name, value, "an integer")
        if not lo <= value <= hi:
            raise ProtocolError("out_of_range", f"{name} must lie in [{lo}, {hi}]; got {value}")
        return value

    return check


def _number(lo: float, hi: float, *, nan_ok: bool = False) -> Callable:
    def check(name: str, value: Any) -> float:
        kind = type(value)
        if kind is int:
            value = float(value)
        elif kind is not float:
            raise _wrong_type(name, value, "a number")
        if value != value:  # NaN
            if nan_ok:
                return value
            raise ProtocolError("out_of_range", f"{name} must not be NaN")
        if not lo <= value <= hi:  # also rejects ±inf
            raise ProtocolError("out_of_range", f"{name} must lie in [{lo:g}, {hi:g}]; got {value!r}")
        return value

    return check


def _pcm(name: str, value: Any) -> bytes:
    """16-bit little-endian samples: bytes of even length (the message size bounds it)."""
    if type(value) is not bytes:
        raise _wrong_type(name, value, "bytes (msgpack bin)")
    if len(value) % 2:
        raise ProtocolError("out_of_range", f"{name} holds {len(value)} bytes; 16-bit samples take an even number")
    return value


def _boolean(name: str, value: Any) -> bool:
    if type(value) is not bool:
        raise _wrong_type(name, value, "true or false")
    return value


def _or_none(rule: Callable) -> Callable:
    """``rule``, or None (nil on the wire) for "not measurable" / "not applicable"."""

    def check(name: str, value: Any) -> Any:
        return None if value is None else rule(name, value)

    return check


def _version(name: str, value: Any) -> int:
    if type(value) is not int or value != SCHEMA_VERSION:
        raise ProtocolError("wrong_version", f"v must be {SCHEMA_VERSION}; got {value!r}")
    return value


#: :attr:`Heartbeat.waiting` values: what the task waits for (None: it is not waiting, e.g. it shows
#: an image or works between trials).
WAITING_FOR = ("calibration", "drift_correction", "pause", "confirm_quit")
#: ``frame_timing`` values (:class:`TrialEnd`, :class:`SessionEnd`): ``"vsync"``: ``dropped_frames``
#: counts refreshes missed, against the refresh period measured at start; ``"no_vsync"``: the
#: display does not pace flips (e.g. Xvfb), dropped frames are not measurable and
#: ``dropped_frames`` is 0, a placeholder to show as "not measurable (no vsync)", never as a count;
#: ``"unknown"``: an older sender, whose counts used a nominal period.
FRAME_TIMINGS = ("vsync", "no_vsync", "unknown")

_COORD = _number(-COORD_LIMIT_PX, COORD_LIMIT_PX)
_TIME = _number(-_MAX_TIME_MS, _MAX_TIME_MS)
_DURATION = _number(0.0, _MAX_TIME_MS)
_SIZE = _integer(1, 100_000)
_COUNT = _integer(0, 2**53)

#: Rule of every field name used by any record (see the module docstring for units and frames).
FIELD_RULES: dict[str, Callable[[str, Any], Any]] = {
    "v": _version,
    "session": _string(pattern=_UUID_RE),
    "seq": _integer(1, 2**53),
    "participant": _string(),
    "image": _string(),
    "next_image": _or_none(_string()),
    "first_image": _or_none(_string()),
    "tracker": _string(),
    "reason": _string(),
    "eye": _string(choices=frozenset({"L", "R", ""})),
    "trial": _integer(0, 1_000_000),  # Fixation's -1 ("unknown") never occurs live
    "n_trials": _COUNT,
    "n_fixations": _COUNT,
    "dropped_frames": _COUNT,  # a count only where frame_timing is "vsync"
    "xruns": _COUNT,
    "pending": _COUNT,
    "notes": _or_none(_COUNT),  # the session's notes the experiment holds; None: it takes none
    "aborted": _boolean,
    "truncated": _boolean,  # the fixation ended with the recording
    "overrun": _or_none(_boolean),  # None: unknown (an older sender)
    "overruns": _COUNT,
    "frame_timing": _string(choices=frozenset(FRAME_TIMINGS)),
    "waiting": _or_none(_string(choices=frozenset(WAITING_FOR))),
    **{name: _SIZE for name in DisplayGeometry.__dataclass_fields__},
    "x_display_px": _COORD,
    "y_display_px": _COORD,
    "x_image_px": _COORD,
    "y_image_px": _COORD,
    "start_ms": _TIME,
    "end_ms": _TIME,
    "duration_ms": _DURATION,
    "stimulus_duration_ms": _DURATION,
    "display_duration_ms": _number(0.0, _MAX_TIME_MS, nan_ok=True),  # NaN: unknown (an older sender)
    "refresh_period_ms": _number(0.0, 1e6, nan_ok=True),  # NaN: not measured
    "pupil": _number(0.0, 1e9, nan_ok=True),  # tracker units; NaN when the tracker has none
    "wall_time_s": _number(0.0, 1e11),  # Unix time
    # viewing geometry and data quality (lookwhere.quality, stimuli.viewing)
    "screen_width_cm": _number(0.0, 1e4, nan_ok=True),  # NaN: unknown (an older sender)
    "viewing_distance_cm": _number(0.0, 1e4, nan_ok=True),
    "viewing_default": _or_none(_boolean),  # the lab's default geometry, not the session's own
    "calibration": _integer(0, 1_000_000),
    "grade": _string(),
    "points": _integer(0, 1000),
    "avg_error_deg": _number(0.0, 360.0, nan_ok=True),
    "max_error_deg": _number(0.0, 360.0, nan_ok=True),
    "offset_deg": _number(0.0, 360.0, nan_ok=True),  # NaN: not measured
    "offset_x_px": _number(-COORD_LIMIT_PX, COORD_LIMIT_PX, nan_ok=True),
    "offset_y_px": _number(-COORD_LIMIT_PX, COORD_LIMIT_PX, nan_ok=True),
    "outcome": _string(choices=frozenset(DRIFT_OUTCOMES)),
    "attempts": _integer(0, 1_000_000),
    "samples": _COUNT,
    "track_loss": _number(0.0, 1.0, nan_ok=True),  # NaN: no samples
    "blinks": _COUNT,
    "mean_pupil": _number(0.0, 1e9, nan_ok=True),
    "rms_dbfs": _number(-400.0, 0.0),
    "peak_dbfs": _number(-400.0, 0.0),
    # the trial's recording, streamed (MicAudio)
    "rate_hz": _integer(1000, 384_000),
    "first_sample": _COUNT,
    "mic_offset_ms": _number(-60_000.0, 60_000.0),
    "pcm": _pcm,
    **{f"{edge}_{clock}_ms": _TIME for edge in ("start", "end") for clock in ("tracker", "session")},
    **{f"{t}_{clock}_ms": _TIME for t in ("onset", "offset", "t") for clock in ("tracker", "session")},
}


# ---------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """Fields every record carries; subclasses add their own and set ``kind``.

    Attributes
    ----------
    session : str
        Session UUID (lower-case, hyphenated); ``""`` until a sender stamps it.
    seq : int
        Position in the session's stream: 1, 2, 3, ... with no gap; 0 until a sender stamps it.
    v : int
        Schema version, :data:`SCHEMA_VERSION`.

    The task builds records without ``session`` and ``seq``
    (:meth:`experiment.sender.Sender.send` stamps both); :func:`encode` refuses a record that
    lacks them, and a map on the wire must carry them.
    """

    kind: ClassVar[str] = ""
    #: Fields added after the record's first release; a map may lack them (they take defaults).
    added: ClassVar[tuple[str, ...]] = ()
    session: str = ""
    seq: int = 0
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStart(Record):
    """A session begins: who, on which tracker backend and screen, how many trials planned;
    ``first_image``: the image of the first trial to run (None: none left), so that the server
    prepares its maps during the calibration; the viewing geometry (:mod:`stimuli.viewing`) and
    whether it is the lab's default (``viewing_default``)."""

    kind: ClassVar[str] = "session_start"
    added: ClassVar[tuple[str, ...]] = ("first_image", "screen_width_cm", "viewing_distance_cm", "viewing_default")
    participant: str
    tracker: str
    n_trials: int
    screen_width_px: int
    screen_height_px: int
    wall_time_s: float
    first_image: str | None = None
    screen_width_cm: float = float("nan")  # the viewing geometry degrees are computed with
    viewing_distance_cm: float = float("nan")
    viewing_default: bool | None = None  # True: the lab's defaults (the session did not say)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEnd(Record):
    """A session ends; ``reason`` is e.g. ``"completed"``, ``"quit"``, ``"error"``.

    The frame-timing summary covers every completed trial of the session (all its segments):
    ``dropped_frames`` counted against ``refresh_period_ms``, the refresh period measured when the
    window opened (the latest segment's), when ``frame_timing`` is ``"vsync"``; otherwise not
    measurable (see :data:`FRAME_TIMINGS`). ``overruns`` is the number of trials shown longer than
    requested by more than one frame period.
    """

    kind: ClassVar[str] = "session_end"
    added: ClassVar[tuple[str, ...]] = ("frame_timing", "refresh_period_ms", "dropped_frames", "overruns")
    reason: str
    n_trials: int  # trials completed
    t_session_ms: float
    frame_timing: str = "unknown"  # one of FRAME_TIMINGS
    refresh_period_ms: float = float("nan")
    dropped_frames: int = 0
    overruns: int = 0


_GEOMETRY_FIELDS = tuple(DisplayGeometry.__dataclass_fields__)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialStart(Record):
    """An image appeared (flip-locked onset on both clocks) with its display geometry.

    The geometry fields are those of :meth:`stimuli.geometry.DisplayGeometry.to_dict`; build them
    with ``TrialStart(..., **geometry.to_dict())`` and get the object back with :meth:`geometry`.
    ``next_image``: the image the next trial will show (None for the last), so that the server
    prepares its maps during this trial.
    """

    kind: ClassVar[str] = "trial_start"
    added: ClassVar[tuple[str, ...]] = ("next_image",)
    trial: int
    image: str
    onset_tracker_ms: float
    onset_session_ms: float
    stimulus_duration_ms: float  # planned display time
    image_width_px: int
    image_height_px: int
    display_width_px: int
    display_height_px: int
    screen_width_px: int
    screen_height_px: int
    next_image: str | None = None

    def geometry(self) -> DisplayGeometry:
        """The trial's :class:`~stimuli.geometry.DisplayGeometry`."""
        return DisplayGeometry(**{name: getattr(self, name) for name in _GEOMETRY_FIELDS})


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialEnd(Record):
    """An image was taken off the screen.

    ``aborted``: the operator ended the image early; that run of the trial is void (the
    experiment keeps none of its data and runs the trial again), so its fixations must be
    dropped by whoever counted them.

    ``display_duration_ms``: how long the image was shown, measured from the onset flip to the
    offset flip; ``overrun``: it exceeded the requested duration by more than one frame period.
    ``dropped_frames`` is a count only where ``frame_timing`` is ``"vsync"`` (see
    :data:`FRAME_TIMINGS`).
    """

    kind: ClassVar[str] = "trial_end"
    added: ClassVar[tuple[str, ...]] = ("display_duration_ms", "overrun", "frame_timing")
    trial: int
    image: str
    offset_tracker_ms: float
    offset_session_ms: float
    n_fixations: int
    dropped_frames: int
    aborted: bool
    display_duration_ms: float = float("nan")
    overrun: bool | None = None
    frame_timing: str = "unknown"  # one of FRAME_TIMINGS


_FIXATION_FIELDS = tuple(f.name for f in dataclasses.fields(Fixation))


@dataclass(frozen=True, slots=True, kw_only=True)
class FixationRecord(Record):
    """One fixation: every field of :class:`lookwhere.records.Fixation` (start/end relative to
    image onset, average gaze in display and image pixels, eye, duration, pupil) plus its start and
    end on the tracker clock (``start_tracker_ms``, ``end_tracker_ms``) and since the session
    started (``start_session_ms``, ``end_session_ms``); ``session`` is the record's own.

    The fields are written out (type checkers see them); ``tests/protocol`` checks that they are
    exactly :class:`~lookwhere.records.Fixation`'s plus the four clock fields, with the same types,
    so the two can never drift apart. :meth:`to_fixation` returns the analysis record,
    :meth:`of` builds the wire record from it.
    """

    kind: ClassVar[str] = "fixation"
    added: ClassVar[tuple[str, ...]] = tuple(OPTIONAL_COLUMNS)
    participant: str
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
    start_tracker_ms: float
    end_tracker_ms: float
    start_session_ms: float
    end_session_ms: float
    truncated: bool = False  # added: cut short by the recording's stop (lookwhere.records.Fixation)

    def to_fixation(self) -> Fixation:
        """The :class:`lookwhere.records.Fixation` this record carries (times relative to onset)."""
        return Fixation(**{name: getattr(self, name) for name in _FIXATION_FIELDS})

    @classmethod
    def of(
        cls, fixation: Fixation, *, start_tracker_ms: float, end_tracker_ms: float, onset_session_ms: float
    ) -> FixationRecord:
        """The wire record of ``fixation`` (its ``session`` is left to the sender), with its start
        and end on the tracker clock and, from the image onset ``onset_session_ms``, on the session
        clock."""
        fields = {name: getattr(fixation, name) for name in _FIXATION_FIELDS if name != "session"}
        return cls(
            **fields,
            start_tracker_ms=start_tracker_ms,
            end_tracker_ms=end_tracker_ms,
            start_session_ms=onset_session_ms + fixation.start_ms,
            end_session_ms=onset_session_ms + fixation.end_ms,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class GazeSample(Record):
    """One gaze sample for the live cursor (optional; the analysis never uses it)."""

    kind: ClassVar[str] = "gaze"
    trial: int
    t_tracker_ms: float
    t_session_ms: float
    eye: str
    x_display_px: float
    y_display_px: float
    pupil: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MicLevel(Record):
    """Microphone input level over the last block, in dB full scale, and overruns so far."""

    kind: ClassVar[str] = "mic_level"
    trial: int
    t_session_ms: float
    rms_dbfs: float
    peak_dbfs: float
    xruns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MicAudio(Record):
    """A stretch of the trial's recording, for live voice detection (the WAV stays the record).

    The trial's recording is the one its WAV holds: sample 0 came ``mic_offset_ms`` after the image
    onset (``trials.jsonl``'s ``mic_offset_ms``); this record carries samples ``first_sample …
    first_sample + len(pcm) / 2 - 1`` of it, mono, 16-bit little-endian, at ``rate_hz``. Records of
    one run of a trial follow each other without gap or overlap.
    """

    kind: ClassVar[str] = "mic_audio"
    trial: int
    mic_offset_ms: float
    first_sample: int
    rate_hz: int
    pcm: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(Record):
    """Sender liveness; ``pending`` is how many records the sender holds unacknowledged;
    ``waiting`` what the task waits for (one of :data:`WAITING_FOR`, or None); ``notes`` how many
    of the session's notes the experiment holds (the server sends it the others, ``ctl.note``)."""

    kind: ClassVar[str] = "heartbeat"
    added: ClassVar[tuple[str, ...]] = ("waiting", "notes")
    t_session_ms: float
    wall_time_s: float
    pending: int
    waiting: str | None = None
    notes: int | None = None  # the session's notes it holds (None: it takes none); module notes


@dataclass(frozen=True, slots=True, kw_only=True)
class Validation(Record):
    """One eye's result of a validation (:class:`lookwhere.quality.EyeValidation`), after setup
    run ``calibration`` (0: the session's first; a resumed session numbers on)."""

    kind: ClassVar[str] = "validation"
    calibration: int
    eye: str
    grade: str
    points: int
    avg_error_deg: float
    max_error_deg: float
    offset_deg: float
    offset_x_px: float
    offset_y_px: float
    t_session_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftCheck(Record):
    """A trial's drift check: the gaze offset at the target (display px and degrees; NaN where the
    tracker measures none, e.g. pylink's dummy), its ``outcome`` (one of
    :data:`lookwhere.quality.DRIFT_OUTCOMES`) and how many ``attempts`` it took."""

    kind: ClassVar[str] = "drift_check"
    trial: int
    eye: str
    offset_x_px: float
    offset_y_px: float
    offset_deg: float
    outcome: str
    attempts: int
    t_session_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialQualityRecord(Record):
    """A trial's samples over its display period (:class:`lookwhere.quality.TrialQuality`)."""

    kind: ClassVar[str] = "trial_quality"
    trial: int
    samples: int
    track_loss: float
    blinks: int
    mean_pupil: float


RECORD_TYPES: dict[str, type[Record]] = {
    cls.kind: cls
    for cls in (
        SessionStart,
        SessionEnd,
        TrialStart,
        TrialEnd,
        FixationRecord,
        GazeSample,
        MicLevel,
        MicAudio,
        Heartbeat,
        Validation,
        DriftCheck,
        TrialQualityRecord,
    )
}
_TOPIC_TYPES: dict[bytes, type[Record]] = {kind.encode("ascii"): cls for kind, cls in RECORD_TYPES.items()}


def _field_checks(cls: type[Record]) -> tuple[tuple[str, Callable], ...]:
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in FIELD_RULES]
    if missing:  # a programming error in this module, caught at import
        raise RuntimeError(f"{cls.__name__} fields {missing} have no rule in FIELD_RULES")
    return tuple((f.name, FIELD_RULES[f.name]) for f in dataclasses.fields(cls))


_CHECKS = {kind: _field_checks(cls) for kind, cls in RECORD_TYPES.items()}
_KEYS = {kind: frozenset(name for name, _ in checks) | {"kind"} for kind, checks in _CHECKS.items()}
_REQUIRED = {kind: _KEYS[kind] - frozenset(cls.added) for kind, cls in RECORD_TYPES.items()}


# ---------------------------------------------------------------------------------------------
# Encoding and decoding


def record_map(record: Record) -> dict[str, Any]:
    """The wire map of ``record`` (``kind`` first, then its fields)."""
    out = {"kind": record.kind}
    for name, _ in _CHECKS[record.kind]:
        out[name] = getattr(record, name)
    return out


def validate_map(data: Any) -> Record:
    """Check a decoded map against its kind's schema and build the record.

    Parameters
    ----------
    data : Any
        What msgpack produced; must be a ``dict`` with a ``kind`` key.

    Returns
    -------
    Record
        An instance of ``RECORD_TYPES[data["kind"]]`` (numbers normalised: ints given for float
        fields become floats).

    Raises
    ------
    ProtocolError
        With the first problem found; ``reason`` is one of :data:`REJECT_REASONS`.
    """
    if type(data) is not dict:
        raise ProtocolError("not_a_map", f"payload must be a map; got {type(data).__name__}")
    kind = data.get("kind")
    if type(kind) is not str or kind not in _CHECKS:
        raise ProtocolError("unknown_kind", f"kind {kind!r} is not one of {sorted(RECORD_TYPES)}")
    checks = _CHECKS[kind]
    # The version is checked first so that a newer sender is reported as such, not as field errors.
    _version("v", data.get("v"))
    if len(data) != len(_KEYS[kind]) or data.keys() != _KEYS[kind]:
        missing = sorted(_REQUIRED[kind] - data.keys())
        if missing:
            raise ProtocolError("missing_field", f"{kind} lacks {missing}")
        unknown = data.keys() - _KEYS[kind]
        if unknown:
            raise ProtocolError("unknown_field", f"{kind} has unknown fields {sorted(map(str, unknown))}")
        # an older sender's map without the fields added since: they keep their defaults
    values = {name: check(name, data[name]) for name, check in checks if name in data}
    return RECORD_TYPES[kind](**values)


def encode(record: Record) -> tuple[bytes, bytes]:
    """The two frames ``(topic, payload)`` of ``record``; the record is validated first.

    Raises
    ------
    ProtocolError
        When a field breaks its rule (so a bad record fails at the sender, not at the server).
    """
    data = record_map(record)
    validate_map(data)
    return record.kind.encode("ascii"), msgpack.packb(data, use_bin_type=True)


R = TypeVar("R", bound=Record)


def stamp(record: R, *, session: str, seq: int) -> tuple[R, tuple[bytes, bytes]]:
    """``record`` numbered for the stream (``session`` and ``seq`` set) and validated, with its two
    frames: :func:`encode` of the stamped record, without building the record twice (the sender's
    hot path).

    Raises
    ------
    ProtocolError
        When a field breaks its rule.
    """
    data = record_map(record)
    data["session"], data["seq"] = session, seq
    stamped = cast(R, validate_map(data))
    return stamped, (record.kind.encode("ascii"), msgpack.packb(data, use_bin_type=True))


def _unpack(payload: bytes) -> Any:
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ProtocolError("oversize", f"payload is {len(payload)} bytes; at most {MAX_MESSAGE_BYTES}")
    try:
        return msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=MAX_MESSAGE_BYTES,
            max_bin_len=MAX_MESSAGE_BYTES,
            max_array_len=4096,
            max_map_len=256,
        )
    # msgpack signals malformed input with several ValueError subclasses (ExtraData, FormatError,
    # StackError, UnicodeDecodeError) and TypeError/OverflowError for unusable keys or numbers.
    except (ValueError, TypeError, OverflowError) as exc:
        raise ProtocolError("not_msgpack", f"{type(exc).__name__}: {exc}") from None


def decode(topic: bytes, payload: bytes) -> Record:
    """Validate the frames of one record message and build the record.

    Parameters
    ----------
    topic : bytes
        The record kind, ASCII.
    payload : bytes
        One msgpack map.

    Raises
    ------
    ProtocolError
        When anything is wrong; the caller counts ``reason`` and drops the message.
    """
    if topic not in _TOPIC_TYPES:
        raise ProtocolError("unknown_kind", f"topic {topic[:40]!r} is not a record kind")
    data = _unpack(payload)
    if type(data) is dict and data.get("kind") != _TOPIC_TYPES[topic].kind:
        raise ProtocolError("kind_mismatch", f"topic {topic!r} carries kind {data.get('kind')!r}")
    return validate_map(data)


_CONTROL_FIELDS = {TOPIC_HELLO: "last_seq", TOPIC_ACK: "seq", TOPIC_REPLAY: "from_seq"}


def encode_control(topic: bytes, session: str, seq: int) -> tuple[bytes, bytes]:
    """Frames of a control message: hello ``{last_seq}`` (the last seq the sender transmitted: the
    server asks for a replay when it holds less), ack ``{seq}`` (the server's last held seq:
    1..seq are persisted) or replay ``{from_seq}`` (the server holds 1..from_seq-1 and wants the
    rest)."""
    return topic, msgpack.packb({"v": SCHEMA_VERSION, "session": session, _CONTROL_FIELDS[topic]: seq})


def decode_control(topic: bytes, payload: bytes) -> tuple[str, int]:
    """``(session, seq)`` of a control message; ``seq`` may be 0 (nothing sent or persisted yet).

    Raises
    ------
    ProtocolError
        When the topic is not a control topic or the map is malformed.
    """
    name = _CONTROL_FIELDS.get(topic)
    if name is None:
        raise ProtocolError("unknown_kind", f"topic {topic[:40]!r} is not a control topic")
    data = _unpack(payload)
    if type(data) is not dict:
        raise ProtocolError("not_a_map", f"payload must be a map; got {type(data).__name__}")
    if data.keys() != {"v", "session", name}:
        raise ProtocolError("missing_field", f"{topic.decode()} needs exactly v, session, {name}")
    _version("v", data["v"])
    return FIELD_RULES["session"]("session", data["session"]), _integer(0, 2**53)(name, data[name])


def encode_note(note: OperatorNote, index: int) -> tuple[bytes, bytes]:
    """Frames of ``ctl.note``: ``note``, the ``index``-th (0-based) note on its session, sent by the
    server to the session's sender (module notes)."""
    data = {"v": SCHEMA_VERSION, "session": note.session, "index": index, "note": dataclasses.asdict(note)}
    return TOPIC_NOTE, msgpack.packb(data, use_bin_type=True)


def decode_note(payload: bytes) -> tuple[str, int, OperatorNote]:
    """``(session, index, note)`` of a ``ctl.note`` payload.

    Raises
    ------
    ProtocolError
        When the map is malformed or its note is not an :class:`~lookwhere.notes.OperatorNote` of
        the session.
    """
    data = _unpack(payload)
    if type(data) is not dict:
        raise ProtocolError("not_a_map", f"payload must be a map; got {type(data).__name__}")
    if data.keys() != {"v", "session", "index", "note"}:
        raise ProtocolError("missing_field", "ctl.note needs exactly v, session, index, note")
    _version("v", data["v"])
    session = FIELD_RULES["session"]("session", data["session"])
    index = _COUNT("index", data["index"])
    if type(data["note"]) is not dict:
        raise _wrong_type("note", data["note"], "a map")
    try:
        note = OperatorNote(**data["note"])
    except (ValidationError, TypeError) as error:
        raise ProtocolError("out_of_range", f"note is not an operator note: {error}") from None
    if note.session != session:
        raise ProtocolError("out_of_range", f"a note on session {note.session} sent as one on {session}")
    return session, index, note


def read_journal(path: str | Path, *, start: int = 0) -> Iterator[tuple[int, Any]]:
    """Iterate over a journal: a file of concatenated msgpack record maps.

    Both the sender's local journal and the server's per-session journals use this format.

    Parameters
    ----------
    path : str or Path
    start : int
        Byte offset of the first object to read (an offset yielded earlier: a journal only grows).

    Yields
    ------
    offset : int
        Byte offset just past the object, from the file's start.
    data : Any
        The decoded object (validate it with :func:`validate_map`).

    Notes
    -----
    Stops silently at a truncated last object (a write cut short by a crash, or one being
    appended): the caller can truncate the file to the last yielded offset, or read on from it later.
    """
    with open(path, "rb") as file:
        file.seek(start)
        unpacker = msgpack.Unpacker(file, raw=False, strict_map_key=True, max_buffer_size=16 * MAX_MESSAGE_BYTES)
        try:
            for data in unpacker:
                yield start + unpacker.tell(), data
        except (ValueError, TypeError, OverflowError) as exc:
            at = start + unpacker.tell()
            raise ProtocolError("not_msgpack", f"{path} is corrupt after byte {at}: {exc}") from None
