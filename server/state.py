"""Live per-image state of the analysis server: fixations, heatmaps and scores as records arrive.

Fed with the receiver's accepted protocol records in order (:meth:`LiveState.apply`), the state
keeps the current session, participant, trial and image, and per image the fixations of the
current participant and the pooled ones (every participant and session seen so far). Heatmaps and
scores come from :class:`server.scoring.LiveScorer`, which keeps an
:class:`analysis.engine.ImageEngine` per recently scored image up to date fixation by fixation — the
engine the offline analysis scores with — so live numbers equal those of
:func:`analysis.offline.run_analysis` on the same fixations:

* the fixations that count are chosen by :func:`analysis.heatmap.select_fixations` on the whole
  pooled table (as offline, once over every image), heatmaps are built from them without a
  second selection;
* the analysed images are those with at least one pooled fixation; ``dataset_prior`` and the
  shuffled-AUC negatives of an image are the *other analysed images'* selected pooled fixations so
  far (offline: the other images of the analysis);
* ``human_loso`` (at least two participants on the image) is the mean over participants of each
  participant scored against the others' heatmap;
* a fixation is streamed with the nominal display time; at its trial's end it takes the measured
  one (``offset_session_ms − onset_session_ms``), which the session's ``fixations.csv`` holds;
* the trials the experimenter's notes exclude (:meth:`LiveState.exclude_trials`) are left out of
  everything, as ``lookwhere analyze`` leaves them out: their image's pooled fixations, the other
  images' context, the counts. Their fixations are kept aside (a ``keep_trial`` note brings them
  back) and the live trial's view still shows them.

Coordinates are those of the fixation records: continuous original-image pixels
(``x_image_px``, ``y_image_px``), origin at the top-left corner of the top-left pixel.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis.heatmap import HeatmapParams, select_fixations
from analysis.scoring_config import ScoringConfig
from lookwhere.protocol import (
    DriftCheck,
    FixationRecord,
    GazeSample,
    Heartbeat,
    MicAudio,
    MicLevel,
    ProtocolError,
    Record,
    SessionEnd,
    SessionStart,
    TrialEnd,
    TrialQualityRecord,
    TrialStart,
    Validation,
    read_journal,
    validate_map,
)
from lookwhere.quality import QualityThresholds
from lookwhere.records import FIXATION_COLUMNS
from server.quality import QualityLog
from server.scoring import ImageInput, LiveScorer, fixation_table
from server.sections import GazePoint, MicReading, TrialFixation, TrialInfo
from stimuli.geometry import DisplayGeometry
from stimuli.sets import StimulusSet

if TYPE_CHECKING:
    from analysis.cnn.store import MapStore, RecentMaps

__all__ = ["LiveState", "LiveView", "Change", "IGNORED_REASONS"]

logger = logging.getLogger(__name__)

_SHOWN = FIXATION_COLUMNS.index("stimulus_duration_ms")
_IMAGE = FIXATION_COLUMNS.index("image")
_PARTICIPANT = FIXATION_COLUMNS.index("participant")
_SESSION = FIXATION_COLUMNS.index("session")
_TRIAL = FIXATION_COLUMNS.index("trial")

#: Why a record can be counted and ignored by :meth:`LiveState.apply`.
IGNORED_REASONS = (
    "unknown_image",  # a trial whose image is not in the stimulus set
    "bad_geometry",  # a trial whose display geometry is invalid or not the image's size
    "no_trial",  # a fixation of a trial the state never saw start (or that was ignored)
    "image_mismatch",  # a fixation naming another image than its trial's
    "unknown_session",  # a trial or fixation before its session's start
    "malformed_journal",  # an entry of a persisted journal failing validation (restart only)
)


@dataclass(frozen=True, slots=True)
class Change:
    """What applying one record changed (:meth:`LiveState.apply`); the hub turns it into sections.

    Attributes
    ----------
    session : bool
        The current session, trial number, image or what the task waits for.
    trial : bool
        The live trial (:attr:`LiveView.trial`) started, ended or was aborted.
    trial_fixations : bool
        The live trial's fixations (:attr:`LiveView.fixations`).
    gaze, mic : bool
        The latest gaze sample, the latest microphone level.
    quality : bool
        A session's data quality (:class:`server.quality.QualityLog`).
    images : frozenset of str
        Images whose pooled fixations changed; every analysed image's scores may change with them
        (dataset prior, shuffled AUC).
    started : str or None
        The image of a trial that started (and was accepted): the one the dashboard now shows.
    upcoming : str or None
        The image a trial will show soon (``session_start.first_image``, ``trial_start.next_image``;
        again at ``trial_end``), whose maps the scorer prepares meanwhile.
    sent_wall_time_s : float or None
        A heartbeat's send time (the sender's wall clock), for the stream's latency.
    notes_held : (str, int) or None
        A heartbeat's session and how many of its notes the experiment holds (the hub sends it the
        others); None: the sender takes no notes.
    audio : MicAudio or None
        A stretch of the trial's recording, for the live voice strip (:mod:`server.voice`).
    """

    session: bool = False
    trial: bool = False
    trial_fixations: bool = False
    gaze: bool = False
    mic: bool = False
    quality: bool = False
    images: frozenset[str] = frozenset()
    started: str | None = None
    upcoming: str | None = None
    sent_wall_time_s: float | None = None
    notes_held: tuple[str, int] | None = None
    audio: MicAudio | None = None


@dataclass
class LiveView:
    """What arrived live: the trial shown now, its fixations, the latest gaze and microphone level,
    what each session's task waits for, the last record applied per session. A state rebuilt from
    the journals starts with an empty view (nothing is live before a record arrives)."""

    trial: TrialInfo | None = None
    geometry: DisplayGeometry | None = None  # the live trial's, to map gaze to image pixels
    fixations: list[TrialFixation] = field(default_factory=list)
    gaze: GazePoint | None = None
    mic: MicReading | None = None
    waiting: dict[str, str | None] = field(default_factory=dict)  # session → heartbeats' "waiting"
    applied_seq: dict[str, int] = field(default_factory=dict)  # session → last record applied

    def copy(self) -> LiveView:
        return LiveView(
            self.trial,
            self.geometry,
            list(self.fixations),
            self.gaze,
            self.mic,
            dict(self.waiting),
            dict(self.applied_seq),
        )


class LiveState:
    """Per-image fixations, heatmaps and scores, updated record by record.

    Parameters
    ----------
    stimuli : StimulusSet
        The images that may be shown; a trial with another image is counted and ignored.
    maps : analysis.cnn.store.MapStore, optional
        Model maps scored beside the baselines (``None``: baselines only). Maps are loaded at the
        image's size, as offline.
    scoring : ScoringConfig
        How fixations are selected, become heatmaps and are scored: as ``lookwhere analyze``'s (the
        same seed gives the offline values exactly).
    device : {"auto", "cpu", "cuda"}
        Where scores are computed (:class:`analysis.engine.ImageEngine`); the same numbers.
    quality : QualityThresholds
        The lab's data-quality limits (:attr:`quality_log`).

    Notes
    -----
    Not thread-safe: apply records and read results from one thread (or under one lock). A
    server applies records in one thread and scores in another: :meth:`image_input` takes what
    scoring an image needs (cheap, under the lock), and :attr:`scorer` scores it outside the lock.
    Each image's fixations carry a version, so a new fixation costs its own image's engine one
    update, and the other images' priors one recomputation when they are scored next.
    """

    def __init__(
        self,
        stimuli: StimulusSet,
        *,
        maps: MapStore | RecentMaps | None = None,
        scoring: ScoringConfig = ScoringConfig(),
        device: str = "cpu",
        quality: QualityThresholds = QualityThresholds(),
    ) -> None:
        self.stimuli = stimuli
        #: every session's validations, drift checks and track loss
        self.quality_log = QualityLog(quality)
        self.maps = maps
        self.scoring = scoring
        self._device = device
        self._scorer: LiveScorer | None = None
        self._image_ids = set(stimuli.image_ids)
        self._shapes: dict[str, tuple[int, int]] = {}
        self._participants: dict[str, str] = {}  # session → participant
        self._trackers: dict[str, str] = {}  # session → tracker backend
        self._timing: dict[str, dict] = {}  # session → display timing over its trials (:meth:`timing`)
        self._requested_ms: dict[tuple[str, int], float] = {}  # (session, trial) → requested display time
        self._trials: dict[tuple[str, int], str | None] = {}  # (session, trial) → image, None: ignored
        self._rows: list[tuple] = []  # pooled fixations in arrival order, FIXATION_COLUMNS (excluded ones too)
        self._excluded: set[tuple[str, int]] = set()  # (session, trial) left out by the experimenter's notes
        # (session, trial) → indices in _rows of the fixations of the trial's latest run
        self._runs: dict[tuple[str, int], list[int]] = {}
        self._onsets: dict[tuple[str, int], float] = {}  # (session, trial) → onset_session_ms
        self._image_rows: defaultdict[str, list[int]] = defaultdict(list)  # image → indices of its counted rows
        self._version = 0  # changes of the pooled fixations
        self._image_versions: Counter[str] = Counter()  # image → changes of its fixations
        self._ignored: Counter[str] = Counter()
        self._n_records = 0
        self.session: str | None = None
        self.participant: str | None = None
        self.trial: int | None = None
        self.image: str | None = None
        self.n_trials_planned: int | None = None
        self.session_ended: str | None = None
        self.upcoming: str | None = None  # the image the session shows next (Change.upcoming)
        self.live = LiveView()
        self._invalidate()

    # -- feeding -----------------------------------------------------------------------------------

    def apply(self, record: Record) -> Change:
        """Take one accepted record (in ``seq`` order within its session); return what changed.

        The one dispatch on record kinds of the server: the pooled fixations, the current session
        and trial, and the live view (the trial shown, its fixations, gaze, microphone, what the
        task waits for) all follow from here.
        """
        self._n_records += 1
        self.live.applied_seq[record.session] = record.seq
        match record:
            case SessionStart():
                self.quality_log.apply(record)
                return self._start_session(record)
            case Validation() | DriftCheck() | TrialQualityRecord():
                return Change(quality=self.quality_log.apply(record))
            case TrialStart():
                return self._start_trial(record)
            case TrialEnd():
                return self._end_trial(record)
            case SessionEnd():
                return self._end_session(record)
            case FixationRecord():
                return self._add_fixation(record)
            case GazeSample():
                return self._gaze_sample(record)
            case MicLevel():
                return self._mic_level(record)
            case MicAudio():
                return Change(audio=record)
            case Heartbeat():
                return self._heartbeat(record)
        return Change()

    def apply_all(self, records: Iterable[Record]) -> set[str]:
        """:meth:`apply` each record; the union of the images whose fixations changed."""
        changed: set[str] = set()
        for record in records:
            changed |= self.apply(record).images
        return changed

    def _ignore(self, reason: str, detail: str) -> None:
        self._ignored[reason] += 1
        n = self._ignored[reason]
        # One warning per reason, then one per 1000: a flood must not flood the log too.
        log = logger.warning if n == 1 or n % 1000 == 0 else logger.debug
        log("record ignored (%s, %d so far): %s", reason, n, detail)

    def _start_session(self, record: SessionStart) -> Change:
        self._participants[record.session] = record.participant
        self._trackers[record.session] = record.tracker
        self.session, self.participant = record.session, record.participant
        self.n_trials_planned, self.session_ended = record.n_trials, None
        self.trial = self.image = None
        self.live.trial, self.live.geometry, self.live.gaze = None, None, None
        self.live.fixations = []
        self.upcoming = record.first_image
        return Change(
            session=True, trial=True, trial_fixations=True, gaze=True, quality=True, upcoming=record.first_image
        )

    def _start_trial(self, record: TrialStart) -> Change:
        key = (record.session, record.trial)
        dropped: frozenset[str] = frozenset()
        if self._runs.get(key):  # a run that never ended (the experiment crashed, then resumed):
            dropped = self._drop_run(key)  # its data is not in the session's files, so not here either
        self._trials[key] = None
        self._runs[key] = []
        self._onsets[key] = record.onset_session_ms
        self._requested_ms[key] = record.stimulus_duration_ms
        if record.session not in self._participants:
            self._ignore("unknown_session", f"trial {record.trial} of session {record.session} before its start")
            return Change(session=True, images=dropped)
        self.session, self.participant = record.session, self._participants[record.session]
        self.trial, self.image = record.trial, None
        geometry = self._trial_geometry(record)
        if geometry is None:
            return Change(session=True, images=dropped)
        self._trials[key] = self.image = record.image
        self.live.geometry = geometry
        self.live.trial = TrialInfo(
            trial=record.trial,
            image=record.image,
            stimulus_duration_ms=record.stimulus_duration_ms,
            onset_server_time_s=time.time(),
            image_width_px=record.image_width_px,
            image_height_px=record.image_height_px,
        )
        self.live.fixations, self.live.gaze = [], None
        self.upcoming = record.next_image
        return Change(
            session=True,
            trial=True,
            trial_fixations=True,
            gaze=True,
            images=dropped,
            started=record.image,
            upcoming=record.next_image,
        )

    def _trial_geometry(self, record: TrialStart) -> DisplayGeometry | None:
        """The trial's display geometry; None (counted, ignored) for an unknown image or a geometry
        that is invalid or not the image's size."""
        if record.image not in self._image_ids:
            self._ignore("unknown_image", f"trial {record.trial} shows {record.image!r}, not in {self.stimuli.folder}")
            return None
        try:
            geometry = record.geometry()
        except (ValueError, TypeError) as exc:
            self._ignore("bad_geometry", f"trial {record.trial} ({record.image}): {exc}")
            return None
        size = self.stimuli.size(record.image)
        if (geometry.image_width_px, geometry.image_height_px) != size:
            self._ignore(
                "bad_geometry",
                f"trial {record.trial} declares {record.image} as "
                f"{geometry.image_width_px}x{geometry.image_height_px} px; the file is {size[0]}x{size[1]}",
            )
            return None
        return geometry

    def _end_trial(self, record: TrialEnd) -> Change:
        self._time_trial(record)
        if record.session == self.session and record.trial == self.trial:
            self.image = None
        live = self.live.trial
        if live is not None and record.trial == live.trial:
            self.live.trial = live.model_copy(update={"ended": True, "aborted": record.aborted})
            if record.aborted:
                self.live.fixations = []
        images = self._retract_run(record) if record.aborted else self._measured_duration(record)
        # the trial's fixations are in the next image's context now: its engine catches up on them
        # during the drift correction rather than at its trial's first fixation
        return Change(session=True, trial=True, trial_fixations=True, images=images, upcoming=self.upcoming)

    def _end_session(self, record: SessionEnd) -> Change:
        if record.session == self.session:
            self.session_ended, self.trial, self.image = record.reason, None, None
        return Change(session=True, trial=True)

    def _gaze_sample(self, record: GazeSample) -> Change:
        geometry = self.live.geometry
        if geometry is None or record.session != self.session:
            return Change()
        x, y = geometry.display_to_image(record.x_display_px, record.y_display_px)
        self.live.gaze = GazePoint(
            seq=record.seq,
            x_image_px=float(x),
            y_image_px=float(y),
            t_session_ms=record.t_session_ms,
            server_time_s=time.time(),
        )
        return Change(gaze=True)

    def _mic_level(self, record: MicLevel) -> Change:
        self.live.mic = MicReading(
            rms_dbfs=record.rms_dbfs,
            peak_dbfs=record.peak_dbfs,
            xruns=record.xruns,
            trial=record.trial,
            server_time_s=time.time(),
        )
        return Change(mic=True)

    def _heartbeat(self, record: Heartbeat) -> Change:
        waiting_changed = self.live.waiting.get(record.session) != record.waiting
        self.live.waiting[record.session] = record.waiting
        return Change(
            session=waiting_changed,
            sent_wall_time_s=record.wall_time_s,
            notes_held=None if record.notes is None else (record.session, record.notes),
        )

    def _time_trial(self, record: TrialEnd) -> None:
        """Add one trial's display timing to its session's (:meth:`timing`)."""
        timing = self._timing.setdefault(
            record.session,
            {"frame_timing": "unknown", "dropped_frames": 0, "trials": 0, "overruns": 0, "last_overrun": None},
        )
        timing["frame_timing"] = record.frame_timing
        timing["trials"] += 1
        if record.frame_timing == "vsync":  # elsewhere the count is a placeholder (not measurable)
            timing["dropped_frames"] += record.dropped_frames
        if record.overrun:
            timing["overruns"] += 1
            timing["last_overrun"] = {
                "trial": record.trial,
                "image": record.image,
                "display_duration_ms": record.display_duration_ms,
                "requested_ms": self._requested_ms.get((record.session, record.trial)),
            }

    def timing(self, session: str | None = None) -> dict | None:
        """Display timing of a session's trials (the current one by default), from its
        ``trial_end`` records: ``frame_timing`` (``"vsync"``, ``"no_vsync"``: dropped frames not
        measurable, ``"unknown"``: an older experiment), ``dropped_frames`` (with vsync only),
        ``trials``, ``overruns`` (shown longer than requested by more than a frame) and
        ``last_overrun`` (trial, image, measured and requested ms); None before its first trial end."""
        key = self.session if session is None else session
        timing = None if key is None else self._timing.get(key)
        return None if timing is None else {**timing}

    def _retract_run(self, record: TrialEnd) -> frozenset[str]:
        """Drop the fixations of an aborted run of a trial (the experiment keeps none of its data
        and runs the trial again), so the pooled state stays equal to the session's records."""
        run = self._runs.get((record.session, record.trial), [])
        dropped = self._drop_run((record.session, record.trial))
        if dropped:
            logger.info("trial %d of session %s aborted: %d fixations dropped", record.trial, record.session, len(run))
        return dropped

    def _drop_run(self, key: tuple[str, int]) -> frozenset[str]:
        """Remove the fixations of the latest run of trial ``key``; the image they were on (none
        when the run had no fixation)."""
        run = self._runs.pop(key, [])
        if not run:
            return frozenset()
        doomed = set(run)
        image = self._rows[run[0]][_IMAGE]
        self._changed(image)
        self._rows = [row for index, row in enumerate(self._rows) if index not in doomed]
        self._runs = {k: [i - sum(j < i for j in run) for i in rows] for k, rows in self._runs.items()}
        self._reindex()
        return frozenset({image})

    def _counted(self, row: tuple) -> bool:
        """Whether a pooled row counts (its trial is not excluded)."""
        return (row[_SESSION], row[_TRIAL]) not in self._excluded

    def _reindex(self) -> None:
        """Index the counted rows by image; an image left without any is no longer analysed
        (offline would not see it)."""
        self._image_rows = defaultdict(list)
        for index, row in enumerate(self._rows):
            if self._counted(row):
                self._image_rows[row[_IMAGE]].append(index)
        self._shapes = {name: self._shapes.get(name) or self.stimuli.shape(name) for name in self._image_rows}
        self._invalidate()

    def exclude_trials(self, session: str, trials: Iterable[int]) -> frozenset[str]:
        """Leave out the fixations of ``trials`` (0-based) of ``session``, in place of the trials
        of ``session`` excluded so far: the trials the session's notes exclude
        (:func:`lookwhere.notes.excluded_trials`), as the offline analysis leaves them out. A trial
        may be excluded before or while it runs: its fixations are then left out as they arrive.

        Returns
        -------
        frozenset of str
            The images whose counted fixations changed (each one's scores, and through the context
            every analysed image's, change with them).
        """
        wanted = {(session, int(trial)) for trial in trials}
        before = {key for key in self._excluded if key[0] == session}
        self._excluded = (self._excluded - before) | wanted
        images = {self._rows[index][_IMAGE] for key in wanted ^ before for index in self._runs.get(key, ())}
        if images:
            logger.info("session %s: trials %s excluded by the notes", session, sorted(t for _, t in wanted) or "none")
            for image in images:
                self._changed(image)
            self._reindex()
        return frozenset(images)

    def _measured_duration(self, record: TrialEnd) -> frozenset[str]:
        """Give the trial's fixations the display time measured by the experiment (offset − onset
        on the session clock), as its ``fixations.csv`` holds; until the trial ends they carry the
        nominal one, so a fixation ending in the last milliseconds of a late offset is selected
        only from then on, as offline."""
        key = (record.session, record.trial)
        onset = self._onsets.get(key)
        run = self._runs.get(key)
        if onset is None or not run:
            return frozenset()
        measured = record.offset_session_ms - onset
        for index in run:
            row = list(self._rows[index])
            row[_SHOWN] = measured
            self._rows[index] = tuple(row)
        if key in self._excluded:  # kept aside, counted nowhere
            return frozenset()
        self._changed(self._rows[run[0]][_IMAGE])
        self._invalidate()
        return frozenset({record.image})

    def _add_fixation(self, record: FixationRecord) -> Change:
        if record.session not in self._participants:
            self._ignore("unknown_session", f"fixation seq {record.seq} of session {record.session} before its start")
            return Change()
        image = self._trials.get((record.session, record.trial))
        if image is None:
            self._ignore(
                "no_trial",
                f"fixation seq {record.seq} of session {record.session}: trial {record.trial} unknown or ignored",
            )
            return Change()
        if record.image != image:
            self._ignore(
                "image_mismatch", f"fixation seq {record.seq} names {record.image!r}; its trial showed {image!r}"
            )
            return Change()
        key = (record.session, record.trial)
        counted = key not in self._excluded
        self._runs.setdefault(key, []).append(len(self._rows))
        if counted:
            self._image_rows[image].append(len(self._rows))
            if image not in self._shapes:
                self._shapes[image] = self.stimuli.shape(image)
            self._changed(image)
            self._invalidate()
        self._rows.append(astuple(record.to_fixation()))
        images = frozenset({image}) if counted else frozenset()
        live = self.live.trial
        if live is None or record.trial != live.trial or record.session != self.session:
            return Change(images=images)
        self.live.fixations.append(
            TrialFixation(
                seq=record.seq,
                x_image_px=record.x_image_px,
                y_image_px=record.y_image_px,
                duration_ms=record.duration_ms,
            )
        )
        return Change(session=True, trial_fixations=True, images=images)

    def _changed(self, image: str) -> None:
        self._version += 1
        self._image_versions[image] += 1

    def _invalidate(self) -> None:
        self._table: pd.DataFrame | None = None

    def copy(self) -> LiveState:
        """An independent copy of the pooled state (caches empty, a scorer of its own), e.g. to
        read it in another thread while this one keeps taking records; the stimuli and the map
        store are shared."""
        clone = copy.copy(self)
        clone._shapes = dict(self._shapes)
        clone._participants = dict(self._participants)
        clone._trackers = dict(self._trackers)
        clone._timing = {session: dict(timing) for session, timing in self._timing.items()}
        clone._requested_ms = dict(self._requested_ms)
        clone._trials = dict(self._trials)
        clone._rows = list(self._rows)
        clone._excluded = set(self._excluded)
        clone._runs = {key: list(rows) for key, rows in self._runs.items()}
        clone._onsets = dict(self._onsets)
        clone._image_rows = defaultdict(list, {image: list(rows) for image, rows in self._image_rows.items()})
        clone._image_versions = Counter(self._image_versions)
        clone._ignored = Counter(self._ignored)
        clone.live = self.live.copy()
        clone.quality_log = self.quality_log.copy()
        clone._scorer = None
        clone._invalidate()
        return clone

    # -- restart -----------------------------------------------------------------------------------

    @classmethod
    def from_receiver_data(cls, data_dir, stimuli: StimulusSet, **options) -> LiveState:
        """Rebuild the pooled state from the receiver's persisted journals (``<data_dir>/stream``).

        Sessions are replayed one after the other, ordered by their ``session_start`` wall time
        (then by file name), each in ``seq`` order — the order a live server saw them when the
        sessions ran one after another. Invalid entries are counted as ``malformed_journal``.

        Parameters
        ----------
        data_dir : str or Path
            The receiver's ``data_dir``.
        stimuli : StimulusSet
        **options
            Keyword arguments of :class:`LiveState`.
        """
        state = cls(stimuli, **options)
        folder = Path(data_dir) / "stream"
        sessions = []
        for path in sorted(folder.glob("*.msgpack")):
            records: list[Record] = []
            try:
                for _, data in read_journal(path):
                    try:
                        record = validate_map(data)
                    except ProtocolError as exc:
                        state._ignore("malformed_journal", f"{path.name}: {exc}")
                        continue
                    # a rebuilt state replays no audio: kept without it (a session streams ~90 MB)
                    records.append(replace(record, pcm=b"") if isinstance(record, MicAudio) else record)
            except ProtocolError as exc:  # a corrupt tail: keep what was readable
                state._ignore("malformed_journal", str(exc))
            start = next((r.wall_time_s for r in records if isinstance(r, SessionStart)), float("inf"))
            sessions.append((start, path.name, records))
        for _, _, records in sorted(sessions, key=lambda item: item[:2]):
            state.apply_all(records)
        state.live = LiveView()  # nothing is live before a record arrives
        logger.info(
            "rebuilt the live state from %d journals in %s: %d fixations", len(sessions), folder, len(state._rows)
        )
        return state

    # -- tables and maps ---------------------------------------------------------------------------

    @property
    def ignored(self) -> dict[str, int]:
        """Records counted and ignored, by reason (see :data:`IGNORED_REASONS`)."""
        return dict(self._ignored)

    @property
    def tracker(self) -> str | None:
        """The tracker backend of the current session (from its ``session_start``)."""
        return None if self.session is None else self._trackers.get(self.session)

    @property
    def n_records(self) -> int:
        """Records applied so far."""
        return self._n_records

    @property
    def n_sessions(self) -> int:
        """Sessions seen (their ``session_start`` applied)."""
        return len(self._participants)

    @property
    def image_ids(self) -> list[str]:
        """Images with at least one pooled fixation (the analysed images), sorted."""
        return sorted(self._shapes)

    def fixations(self) -> pd.DataFrame:
        """The pooled fixation table (every counted fixation, arrival order, tidy columns/dtypes)."""
        if self._table is None:
            self._table = fixation_table(self._counted_rows())
        return self._table

    def _counted_rows(self) -> list[tuple]:
        """The pooled rows that count, in arrival order."""
        return [row for row in self._rows if self._counted(row)] if self._excluded else list(self._rows)

    @property
    def excluded(self) -> dict[str, list[int]]:
        """The trials left out, session → trials (0-based, sorted)."""
        out: dict[str, list[int]] = {}
        for session, trial in sorted(self._excluded):
            out.setdefault(session, []).append(trial)
        return out

    def image_fixations(self, image_id: str, *, participant: str | None = None) -> pd.DataFrame:
        """The selected pooled fixations of one image (of one participant when given)."""
        self._check_image(image_id)
        rows = select_fixations(fixation_table(self.image_input(image_id).rows), self.params)
        return rows if participant is None else rows[rows["participant"] == participant]

    def image_input(self, image_id: str) -> ImageInput:
        """What scoring one image needs (its rows and versions), cheap to take under a lock; no
        rows for an image without fixations yet.

        Raises
        ------
        KeyError
            The image is not in the stimulus set.
        """
        if image_id not in self._image_ids:
            raise KeyError(f"image {image_id!r} is not in the stimulus set {self.stimuli.folder}")
        shape = self._shapes[image_id] if image_id in self._shapes else self.stimuli.shape(image_id)
        return ImageInput(
            image=image_id,
            shape=shape,
            rows=tuple(self._rows[index] for index in self._image_rows[image_id]),
            context_version=self._version - self._image_versions[image_id],
            participant=self.participant,
        )

    def context_rows(self) -> tuple[list[tuple], dict[str, tuple[int, int]]]:
        """Every pooled fixation row and the shape of every image with fixations (the other images'
        part of an image's scores: :data:`server.scoring.ContextSource`)."""
        return self._counted_rows(), dict(self._shapes)

    def trial_image(self, session: str, trial: int) -> str | None:
        """The image trial ``trial`` (0-based) of ``session`` showed; None for a trial ignored
        (its image is not in the stimulus set, or its geometry was invalid).

        Raises
        ------
        ValueError
            The trial has not started in that session.
        """
        if (session, trial) not in self._trials:
            raise ValueError(f"trial {trial + 1} (index {trial}) has not started in session {session}")
        return self._trials[(session, trial)]

    def image_counts(self) -> dict[str, dict]:
        """Per image with fixations: pooled fixation and participant counts (all received)."""
        return {
            image: {
                "image": image,
                "n_fixations": len(indices),
                "n_participants": len({self._rows[i][_PARTICIPANT] for i in indices}),
            }
            for image, indices in sorted(self._image_rows.items())
        }

    @property
    def params(self) -> HeatmapParams:
        """How fixations are selected and become heatmaps (``scoring.heatmap``)."""
        return self.scoring.heatmap

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics scored (``scoring.metrics``)."""
        return self.scoring.metrics

    @property
    def scorer(self) -> LiveScorer:
        """This state's :class:`~server.scoring.LiveScorer` (made on first use)."""
        if self._scorer is None:
            self._scorer = LiveScorer(maps=self.maps, scoring=self.scoring, device=self._device)
        return self._scorer

    def heatmap(self, image_id: str, *, participant: str | None = None) -> np.ndarray:
        """Pooled heatmap (or one participant's), shape (H, W) of the image, float64; zeros while
        it has no selected fixation. Equal to :func:`analysis.heatmap.heatmap` of
        :meth:`image_fixations`, as offline."""
        self._check_image(image_id)
        values = self.scorer.heatmap(self.image_input(image_id), self.context_rows, participant=participant)
        return np.zeros(self._shapes[image_id]) if values is None else values

    def scores(self, image_id: str) -> dict[str, dict[str, float]]:
        """Scores of every map against the pooled human data of one image: map → metric → value.

        Maps: ``center_bias``, ``dataset_prior``, the store's maps, and ``human_loso`` when at
        least two participants have selected fixations on the image.
        """
        return self.image_summary(image_id)["scores"]

    def _check_image(self, image_id: str) -> None:
        if image_id not in self._shapes:
            raise KeyError(f"image {image_id!r} has no fixation yet; images with fixations: {self.image_ids[:10]}")

    # -- snapshots ---------------------------------------------------------------------------------

    def session_summary(self) -> dict:
        """JSON-ready snapshot of the current session and the pooled totals."""
        table = self.fixations()
        return {
            "session": self.session,
            "participant": self.participant,
            "tracker": self.tracker,
            "trial": self.trial,
            "image": self.image,
            "n_trials_planned": self.n_trials_planned,
            "ended": self.session_ended,
            "n_records": self.n_records,
            "n_fixations": len(table),
            "n_participants": int(table["participant"].nunique()),
            "n_sessions": self.n_sessions,
            "images": self.image_ids,
            "ignored": self.ignored,
        }

    def image_summary(self, image_id: str) -> dict:
        """JSON-ready snapshot of one image (:meth:`server.scoring.LiveScorer.summary`): heatmap
        parameters, fixation counts, pooled scores and the current participant's scores.

        ``n_fixations`` counts the pooled fixations received, ``n_fixations_used`` those selected
        for the heatmap; ``participant`` figures are the current participant's.
        """
        self._check_image(image_id)
        return self.scorer.summary(self.image_input(image_id), self.context_rows)
