"""Trial replay (issue 15): any trial of any session the server received, live or finished, rebuilt
from its journal for the page ``/replay`` (:mod:`server.routes.replay`, ``static/replay.js``).

A session's journal (``<data_dir>/stream/<session>.msgpack``, :mod:`server.journal`) holds every
record the experiment streamed, in order; a trial's are those between its (last) ``trial_start`` and
the next trial's: the gaze samples the task streamed once per frame (display pixels, mapped here to
image pixels with the trial's geometry), its fixations, microphone levels, and its drift check and
track loss. Times are ms from the image onset. Of a trial run again after an aborted run, the last
run is shown (as the analysis counts it). The experimenter's notes on the trial come from
:class:`server.notes.NoteBook`.

The journal is read again only when it grew; sessions are named by their id (a UUID, checked), so a
path is never built from what a client sends.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from lookwhere import protocol
from lookwhere.notes import OperatorNote
from lookwhere.protocol import (
    DriftCheck,
    FixationRecord,
    GazeSample,
    MicLevel,
    Record,
    SessionStart,
    TrialEnd,
    TrialQualityRecord,
    TrialStart,
)

__all__ = ["ReplayLibrary", "ReplaySession", "ReplaySessions", "ReplayTrial", "TrialEntry", "read_trial"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class TrialEntry(_Model):
    """A trial of a session: its image, and whether its (last) run ended or was aborted."""

    trial: int
    image: str
    ended: bool
    aborted: bool


class ReplaySession(_Model):
    session: str
    participant: str
    tracker: str
    wall_time_s: float
    trials: list[TrialEntry]


class ReplaySessions(_Model):
    """``GET /api/replay/sessions``: the sessions the server holds, newest first."""

    sessions: list[ReplaySession]


class GazeTrace(_Model):
    """The streamed gaze samples, columns of one length: ms from the onset, image pixels (origin
    top-left; None: no position), pupil (tracker units; None where the task did not stream it)."""

    t_ms: list[float]
    x_image_px: list[float | None]
    y_image_px: list[float | None]
    pupil: list[float | None]


class ReplayFixation(_Model):
    """One fixation: start and end in ms from the onset, its mean position in image pixels."""

    start_ms: float
    end_ms: float
    duration_ms: float
    x_image_px: float
    y_image_px: float
    eye: str


class MicTrace(_Model):
    """Microphone level per block: ms from the onset, RMS in dBFS (None: digital silence)."""

    t_ms: list[float]
    rms_dbfs: list[float | None]


class ReplayTrial(_Model):
    """``GET /api/replay/sessions/{session}/trials/{trial}``: one trial, everything the page draws.

    ``shown_ms``: onset to offset (None while the trial runs); ``drift`` and ``quality`` the
    trial's drift check and track loss (None: not streamed)."""

    session: str
    participant: str
    trial: int
    image: str
    image_width_px: int
    image_height_px: int
    stimulus_duration_ms: float
    shown_ms: float | None
    ended: bool
    aborted: bool
    gaze: GazeTrace
    fixations: list[ReplayFixation]
    mic: MicTrace
    drift: dict[str, float | str | int | None] | None
    quality: dict[str, float | int | None] | None
    notes: list[OperatorNote]


@dataclass
class _Run:
    """The records of one run of a trial, from its ``trial_start``."""

    start: TrialStart
    end: TrialEnd | None = None
    quality: TrialQualityRecord | None = None
    gaze: list[GazeSample] = field(default_factory=list)
    fixations: list[FixationRecord] = field(default_factory=list)
    mic: list[MicLevel] = field(default_factory=list)


_RUN_LISTS = {"gaze": "gaze", "fixation": "fixations", "mic_level": "mic"}  # record kind → _Run list
_RUN_LAST = {"trial_end": "end", "trial_quality": "quality"}  # record kind → _Run field


def _last_run(records: list[Record], trial: int) -> tuple[str, _Run | None, DriftCheck | None]:
    """The participant, the last run of ``trial`` (None: it never started) and its drift check."""
    participant, run, drift = "", None, None
    for record in records:
        if isinstance(record, SessionStart):
            participant = record.participant
        elif getattr(record, "trial", None) != trial:
            continue
        elif isinstance(record, TrialStart):  # a new run: the earlier one's data is void
            run = _Run(record)
        elif isinstance(record, DriftCheck):  # it comes before its run's start
            drift = record
        elif run is not None and record.kind in _RUN_LISTS:
            getattr(run, _RUN_LISTS[record.kind]).append(record)
        elif run is not None and record.kind in _RUN_LAST:
            setattr(run, _RUN_LAST[record.kind], record)
    return participant, run, drift


def read_trial(records: list[Record], trial: int) -> ReplayTrial:
    """The replay of ``trial`` from a session's records (in ``seq`` order).

    Raises
    ------
    KeyError
        The session has no such trial.
    """
    participant, run, drift = _last_run(records, trial)
    if run is None:
        raise KeyError(f"trial {trial + 1} (index {trial}) has not started in this session")
    start, end, quality, gaze, mic = run.start, run.end, run.quality, run.gaze, run.mic
    onset = start.onset_session_ms
    x, y = start.geometry().display_to_image([g.x_display_px for g in gaze], [g.y_display_px for g in gaze])
    return ReplayTrial(
        session=start.session,
        participant=participant,
        trial=trial,
        image=start.image,
        image_width_px=start.image_width_px,
        image_height_px=start.image_height_px,
        stimulus_duration_ms=start.stimulus_duration_ms,
        shown_ms=None if end is None else end.offset_session_ms - onset,
        ended=end is not None,
        aborted=end is not None and end.aborted,
        gaze=GazeTrace(
            t_ms=[g.t_session_ms - onset for g in gaze],
            x_image_px=[_finite(float(v)) for v in x],
            y_image_px=[_finite(float(v)) for v in y],
            pupil=[_finite(g.pupil) for g in gaze],
        ),
        fixations=[
            ReplayFixation(
                start_ms=f.start_ms,
                end_ms=f.end_ms,
                duration_ms=f.duration_ms,
                x_image_px=f.x_image_px,
                y_image_px=f.y_image_px,
                eye=f.eye,
            )
            for f in run.fixations
        ],
        mic=MicTrace(t_ms=[m.t_session_ms - onset for m in mic], rms_dbfs=[_finite(m.rms_dbfs) for m in mic]),
        drift=None
        if drift is None
        else {"offset_deg": _finite(drift.offset_deg), "outcome": drift.outcome, "attempts": drift.attempts},
        quality=None
        if quality is None
        else {
            "samples": quality.samples,
            "track_loss": _finite(quality.track_loss),
            "blinks": quality.blinks,
            "mean_pupil": _finite(quality.mean_pupil),
        },
        notes=[],
    )


def _session_entry(records: list[Record]) -> ReplaySession | None:
    """The session and its trials (None before its ``session_start``)."""
    start = next((r for r in records if isinstance(r, SessionStart)), None)
    if start is None:
        return None
    trials: dict[int, TrialEntry] = {}
    for record in records:
        if isinstance(record, TrialStart):
            trials[record.trial] = TrialEntry(trial=record.trial, image=record.image, ended=False, aborted=False)
        elif isinstance(record, TrialEnd) and record.trial in trials:
            trials[record.trial] = trials[record.trial].model_copy(update={"ended": True, "aborted": record.aborted})
    return ReplaySession(
        session=start.session,
        participant=start.participant,
        tracker=start.tracker,
        wall_time_s=start.wall_time_s,
        trials=[trials[trial] for trial in sorted(trials)],
    )


class ReplayLibrary:
    """The sessions under ``<data_dir>/stream``, each read from its journal when it grew.

    Parameters
    ----------
    data_dir : str or Path
        The server's data folder (``lookwhere serve --data``).
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.folder = Path(data_dir) / "stream"
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[int, list[Record]]] = {}  # session → (file size, its records)

    def _path(self, session: str) -> Path:
        try:
            name = str(uuid.UUID(session))
        except ValueError:
            raise KeyError(f"no session {session!r}: session ids are UUIDs") from None
        path = self.folder / f"{name}.msgpack"
        if not path.is_file():
            raise KeyError(f"no session {session} in {self.folder}")
        return path

    def records(self, session: str) -> list[Record]:
        """The session's records (KeyError: none held)."""
        path = self._path(session)
        size = path.stat().st_size
        with self._lock:
            cached = self._cache.get(session)
            if cached is not None and cached[0] == size:
                return cached[1]
        # a record being appended meanwhile is cut off by read_journal, and read next time
        records = [protocol.validate_map(data) for _, data in protocol.read_journal(path)]
        with self._lock:
            self._cache[session] = (size, records)
        return records

    def sessions(self) -> ReplaySessions:
        """Every session with a ``session_start``, newest first."""
        entries = []
        for path in self.folder.glob("*.msgpack"):
            entry = _session_entry(self.records(path.stem))
            if entry is not None:
                entries.append(entry)
        return ReplaySessions(sessions=sorted(entries, key=lambda entry: entry.wall_time_s, reverse=True))

    def trial(self, session: str, trial: int, *, notes: Sequence[OperatorNote] = ()) -> ReplayTrial:
        """One trial's replay, with the experimenter's notes on it (KeyError: no such session or trial)."""
        replay = read_trial(self.records(session), trial)
        return replay.model_copy(update={"notes": [note for note in notes if note.trial == trial]})
