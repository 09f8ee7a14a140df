"""The live hub: the receiver thread, the scoring thread, and the dashboard's view of both.

Two threads share one :class:`server.state.LiveState` under one lock, a third its audio:

* the **receiver thread** polls :class:`server.receiver.Receiver`, applies every accepted record
  to the state (microseconds) and refreshes the cheap sections of the view — session, trial,
  gaze, the current trial's fixations, microphone, stream health — then wakes the subscribers;
* the **voice thread** (:class:`server.voice.VoiceMonitor`) takes the trial's streamed recording
  from the receiver thread and publishes its level strip and live utterance onsets;
* the **scoring thread** waits until fixations changed, takes the image in focus from the state
  under the lock (:meth:`LiveState.image_input`: its rows and versions) and, outside it, brings
  that image's engine up to date (:class:`server.scoring.LiveScorer`: one kernel stamp and the
  metrics' running statistics per new fixation) — so scoring never delays the records behind it.
  Heatmaps and scores served over HTTP come from the same scorer (under its own lock).

Every record is applied once, by :meth:`LiveState.apply`, which says what it changed
(:class:`server.state.Change`); the hub turns that into *sections* (:mod:`server.sections`, each a
pydantic model kept as its JSON, with a version number). A subscriber (a WebSocket client) asks
:meth:`LiveHub.sections_since` for what changed since it last sent, so a slow client gets the
latest state, never a backlog. Every number is the one the offline analysis
computes (both score with :class:`analysis.engine.ImageEngine`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from analysis.cnn.store import RecentMaps
from analysis.registry import BASELINE_MAPS, HUMAN_MAPS, METRIC_REGISTRY, map_kind
from lookwhere.notes import OperatorNote
from lookwhere.protocol import Record, encode_note
from lookwhere.transport import DEFAULT_HOST
from server.notes import NoteBook, NoteIn, NotesSection
from server.receiver import Receiver
from server.replay import ReplayLibrary
from server.scoring import ImageInput
from server.sections import (
    SECTIONS,
    FixationsSection,
    GazeSection,
    HealthSection,
    HistoryEntry,
    HistorySection,
    ImageSummary,
    MapsInfo,
    MetricInfo,
    MicSection,
    ScoresSection,
    SessionReport,
    SessionSection,
    StreamStatus,
    TrialSection,
    jsonable,
)
from server.state import Change, LiveState
from server.thumbnails import ThumbnailCache
from server.voice import VoiceMonitor
from stimuli.sets import StimulusSet

if TYPE_CHECKING:
    from analysis.cnn.store import MapStore
    from lookwhere.transport import CurveKeys

__all__ = ["LiveHub"]

logger = logging.getLogger(__name__)

_RATE_WINDOW_S = 5.0
_SCORE_DELAY_S = 0.005


def _percentiles(values: deque[float]) -> dict[str, Any]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    array = np.asarray(values, dtype=float)
    return {
        "p50": float(np.percentile(array, 50)),
        "p99": float(np.percentile(array, 99)),
        "max": float(array.max()),
        "n": int(array.size),
    }


def _sections_of(change: Change) -> set[str]:
    """The sections a state change refreshes (the scores and history follow the scoring thread)."""
    parts = (
        ("session", change.session),
        ("trial", change.trial),
        ("fixations", change.trial_fixations),
        ("gaze", change.gaze),
        ("mic", change.mic),
        ("quality", change.quality),
    )
    return {name for name, changed in parts if changed}


class LiveHub:
    """Receive records, keep the live state, score it, and publish the dashboard's view.

    The constructor rebuilds the pooled state from ``data_dir`` and binds the stream (see
    :attr:`endpoint`); :meth:`start` starts both threads, :meth:`stop` ends them.

    Parameters
    ----------
    stimuli : StimulusSet
        The images the experiment may show.
    data_dir : str or Path
        The receiver's folder (journals in ``<data_dir>/stream``); the pooled state is rebuilt
        from it.
    maps : MapStore, optional
        Model maps scored beside the baselines; ``None``: baselines only.
    host : str
        Interface of the ZeroMQ stream (loopback by default).
    zmq_port : int
        Port of the stream; 0 picks a free one (see :attr:`endpoint`).
    curve, allowed_keys_dir
        CURVE encryption and the allow-list of client keys, as :class:`Receiver`.
    state_options : dict, optional
        Keyword arguments of :class:`LiveState` (heatmap parameters, metrics, seed, variants).
    health_interval_s : float
        How often the health section is refreshed when nothing arrives.
    """

    def __init__(
        self,
        stimuli: StimulusSet,
        data_dir: str | Path,
        *,
        maps: MapStore | None = None,
        host: str = DEFAULT_HOST,
        zmq_port: int = 0,
        curve: CurveKeys | None = None,
        allowed_keys_dir: str | Path | None = None,
        state_options: dict[str, Any] | None = None,
        health_interval_s: float = 1.0,
    ) -> None:
        self.stimuli = stimuli
        self.data_dir = Path(data_dir)
        self.maps = None if maps is None else RecentMaps(maps)
        self.thumbnails = (
            None if self.maps is None else ThumbnailCache(self.data_dir / "thumbnails", self.maps, stimuli)
        )
        self._health_interval_s = health_interval_s
        self._lock = threading.Lock()  # the live state and the view
        self._score_lock = threading.Lock()  # the scorer (its engines are not thread-safe)
        self._stop = threading.Event()
        self._dirty = threading.Event()
        self._threads: list[threading.Thread] = []
        self._subscribers: list[Callable[[], None]] = []
        self._sections: dict[str, dict[str, Any]] = {}
        self._versions: dict[str, int] = dict.fromkeys(SECTIONS, 0)
        self.started_at = time.time()
        self._started_monotonic = time.monotonic()
        self.n_clients = 0
        self._summaries: dict[str, dict[str, Any]] = {}  # image → its latest scored summary (shown at trial start)
        self._changes = self._scored_changes = 0  # fixation changes applied, and taken by the last scoring
        self._scoring = False  # a scoring under way (see progress)
        self._arrivals: deque[tuple[float, str]] = deque()
        self._latency_ms: deque[float] = deque(maxlen=240)
        self._apply_ms: deque[float] = deque(maxlen=1000)
        self._score_ms: deque[float] = deque(maxlen=100)
        self.state = LiveState.from_receiver_data(self.data_dir, stimuli, maps=self.maps, **(state_options or {}))
        #: the experimenter's notes, per session (:mod:`server.notes`); their excluded trials are left out
        self.notes = NoteBook(self.data_dir)
        for session, trials in self.notes.excluded_everywhere().items():
            self.state.exclude_trials(session, trials)
        self.scoring_device = self.state.scorer.device
        self._focus: str | None = self.state.image_ids[-1] if self.state.image_ids else None
        self._history = self.state.image_counts()  # image → pooled counts when last scored
        self.receiver = Receiver(
            self.data_dir, host=host, port=zmq_port, curve=curve, allowed_keys_dir=allowed_keys_dir
        )
        #: the stream's bound endpoint, e.g. ``"tcp://127.0.0.1:43517"``
        self.endpoint = self.receiver.endpoint
        self.voice = VoiceMonitor(self._publish_voice)
        #: any trial of the sessions received, from their journals (:mod:`server.replay`)
        self.replay = ReplayLibrary(self.data_dir)
        with self._lock:
            self._set("voice", VoiceMonitor.empty())
            for name in ("session", "trial", "fixations", "gaze", "mic", "quality", "notes"):
                self._refresh(name)
            self._refresh_health()
            self._set_scores(self._focus, None, through={}, participant=self.state.participant, trial_fixations=None)
            self._set_history()

    # -- life cycle --------------------------------------------------------------------------------

    def start(self) -> LiveHub:
        """Start the receiver and scoring threads (the image in focus is scored first)."""
        self._changes += 1  # the scoring thread scores the image in focus first (its engine takes a second)
        self._dirty.set()
        # Scoring is CPU-bound Python: hand the GIL over every 0.5 ms (default 5 ms) so the
        # receiver thread and the event loop answer within a millisecond while it runs.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.0005))
        for target, name in ((self._receive_loop, "lookwhere-receiver"), (self._score_loop, "lookwhere-scorer")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.voice.start()
        logger.info("live hub: stream at %s, %d pooled fixations reloaded", self.endpoint, len(self.state.fixations()))
        return self

    def stop(self) -> None:
        """Stop both threads and close the receiver (journals flushed). Idempotent."""
        self._stop.set()
        self._dirty.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads.clear()
        self.voice.stop()
        self.receiver.close()

    # -- subscribers -------------------------------------------------------------------------------

    def subscribe(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake()`` (from a hub thread; it must not block) whenever a section changes.

        Returns the function that unsubscribes.
        """
        with self._lock:
            self._subscribers.append(wake)

        def unsubscribe() -> None:
            with self._lock:
                if wake in self._subscribers:
                    self._subscribers.remove(wake)

        return unsubscribe

    def sections_since(self, sent: dict[str, int]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
        """The sections newer than the versions in ``sent`` (``{}``: all), as JSON-ready dicts, and
        their versions."""
        with self._lock:
            changed = {name: self._sections[name] for name in SECTIONS if self._versions[name] > sent.get(name, -1)}
            return changed, dict(self._versions)

    def _set(self, name: str, section: BaseModel) -> None:
        """Publish one section (under the lock): kept as its JSON, one serialisation for every client."""
        self._sections[name] = section.model_dump(mode="json")
        self._versions[name] += 1

    def _publish(self) -> None:
        for wake in list(self._subscribers):
            wake()

    # -- the receiver thread -----------------------------------------------------------------------

    def _receive_loop(self) -> None:
        next_health = 0.0
        while not self._stop.is_set():
            try:
                records = self.receiver.poll(50)
                now = time.monotonic()
                if records or now >= next_health:
                    with self._lock:
                        if records:
                            self._take(records)
                        if now >= next_health:
                            self._refresh_health()
                            next_health = now + self._health_interval_s
                    self._publish()
            except Exception:  # records are persisted before this: log the bug, keep the stream alive
                logger.exception("live hub: handling a batch failed")

    def _take(self, records: list[Record]) -> None:
        """Apply a batch to the state and refresh the sections it changed (under the lock)."""
        started = time.perf_counter()
        touched: set[str] = set()
        fixations_changed = False
        for record in records:
            self._arrivals.append((time.monotonic(), record.kind))
            change = self.state.apply(record)
            touched |= _sections_of(change)
            if change.images:
                fixations_changed = True
                self._refocus(change.images)
            if change.started is not None:
                self._trial_started(change.started)
            if change.upcoming is not None and change.upcoming in self.stimuli.image_ids:
                # prepared in the background while this trial (or the calibration) runs
                self.state.scorer.prepare_in_background(self.state.image_input(change.upcoming), self._context)
            if change.audio is not None:
                self.voice.feed(change.audio)
            if change.sent_wall_time_s is not None:
                self._latency_ms.append((time.time() - change.sent_wall_time_s) * 1000.0)
            if change.notes_held is not None:
                self._send_notes(*change.notes_held)
        if fixations_changed:
            self._changes += 1
            self._dirty.set()
        self._apply_ms.append((time.perf_counter() - started) * 1000.0)
        if self.state.session != self._sections["notes"]["session"]:
            touched.add("notes")  # another session: its notes
        for name in touched:
            self._refresh(name)

    def _send_notes(self, session: str, held: int) -> None:
        """Send the experiment the notes on its session it does not hold yet, for its session
        folder's ``notes.jsonl`` (from the receiver thread: the receiver's socket is its own)."""
        try:
            notes = self.notes.notes(session)
        except ValueError as error:  # an unreadable notes file must not stop the stream
            logger.warning("the notes of session %s are not sent to the experiment: %s", session, error)
            return
        for index in range(held, len(notes)):
            if not self.receiver.reply(session, encode_note(notes[index], index)):
                return  # asked again at the next heartbeat

    def _refocus(self, images: frozenset[str]) -> None:
        """Images' pooled fixations changed: the scores shown follow the trial on screen, else one of them."""
        self._focus = next(iter(images)) if self.state.image is None else self.state.image

    def _trial_started(self, image: str) -> None:
        """The focus moves to a new trial's image: its latest scores show at once, and it is scored
        again with this trial's data."""
        self._dirty.set()
        self._focus = image
        self._set_scores(
            image,
            self._summaries.get(image) or self._unscored(image),
            through=dict(self.state.live.applied_seq),
            participant=self.state.participant,
            trial_fixations=0,
        )

    def _refresh(self, name: str) -> None:
        """Publish section ``name`` from the state (session, trial, fixations, gaze, mic, quality,
        notes)."""
        state, live = self.state, self.state.live
        section: BaseModel
        if name == "session":
            section = SessionSection(
                session=state.session,
                participant=state.participant,
                trial=state.trial,
                n_trials=state.n_trials_planned,
                image=state.image,
                ended=state.session_ended,
                tracker=state.tracker,
                last_seq=None if state.session is None else live.applied_seq.get(state.session),
                waiting=None if state.session is None else live.waiting.get(state.session),
                n_records=state.n_records,
                n_sessions=state.n_sessions,
                n_stimuli=len(self.stimuli.image_ids),
                ignored=state.ignored,
            )
        elif name == "trial":
            section = TrialSection(trial=live.trial)
        elif name == "fixations":
            section = FixationsSection(
                participant=state.participant,
                session=state.session,
                image=None if live.trial is None else live.trial.image,
                fixations=list(live.fixations),
            )
        elif name == "gaze":
            section = GazeSection(gaze=live.gaze)
        elif name == "mic":
            section = MicSection(mic=live.mic)
        elif name == "quality":
            section = state.quality_log.section(state.session)
        elif name == "notes":
            section = self.notes.section(state.session)
        else:
            raise ValueError(f"no state section {name!r}")
        self._set(name, section)

    def _publish_voice(self, section: BaseModel) -> None:
        """Publish the ``voice`` section (from the voice thread)."""
        with self._lock:
            self._set("voice", section)
        self._publish()

    def _refresh_health(self) -> None:
        self._set("health", HealthSection.model_validate(jsonable(self._health())))

    def _health(self) -> dict[str, Any]:
        now = time.monotonic()
        while self._arrivals and self._arrivals[0][0] < now - _RATE_WINDOW_S:
            self._arrivals.popleft()
        window = max(min(_RATE_WINDOW_S, now - self._started_monotonic), 1e-3)
        rates: dict[str, float] = {}
        for _, kind in self._arrivals:
            rates[kind] = rates.get(kind, 0.0) + 1.0
        counters = self.receiver.counters
        sessions = self.receiver.sessions()
        current = None if self.state.session is None else sessions.get(self.state.session)
        gaze = self.state.live.gaze
        return {
            "rates_per_s": {kind: count / window for kind, count in sorted(rates.items())},
            "receiver": counters,
            "malformed_total": sum(counters["malformed"].values()),
            "stream": None
            if current is None
            else StreamStatus(
                alive=current.alive,
                silent_s=jsonable(current.silent_s),
                last_seq=current.last_seq,
                ended=current.ended,
                conflicts=current.conflicts,
                missing=current.missing,
            ),
            "connections": self.receiver.n_connections,
            "n_sessions_alive": sum(s.alive for s in sessions.values()),
            "latency_ms": _percentiles(self._latency_ms),
            "apply_ms": _percentiles(self._apply_ms),
            "score_ms": _percentiles(self._score_ms),
            "scoring_device": self.scoring_device,
            "timing": self.state.timing(),
            "gaze_age_s": None if gaze is None else time.time() - gaze.server_time_s,
            "ignored": self.state.ignored,
            "clients": self.n_clients,
            "uptime_s": time.time() - self.started_at,
            "maps": self.maps_info(),
        }

    def _set_history(self) -> None:
        self._set(
            "history",
            HistorySection(
                images=[HistoryEntry(**row) for row in self._history.values()], n_stimuli=len(self.stimuli.image_ids)
            ),
        )

    # -- the scoring thread ------------------------------------------------------------------------

    def _score_loop(self) -> None:
        try:  # Linux schedules threads by their own nice value: the receiver and the web server first
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            logger.debug("could not lower the scoring thread's priority", exc_info=True)
        while True:
            self._dirty.wait()
            # Let the receiver thread publish the record that set the flag before scoring takes
            # the GIL for a few hundred ms; also coalesces a burst of fixations into one scoring.
            self._stop.wait(_SCORE_DELAY_S)
            if self._stop.is_set():
                return
            with self._lock:
                self._scoring = True
                self._dirty.clear()
            try:
                self._score()
            except Exception:  # keep scoring later records; the dashboard shows the last good scores
                logger.exception("scoring failed")
            finally:
                with self._lock:
                    self._scoring = False
            self._publish()

    def _score(self) -> None:
        """Score the image in focus with the fixations applied so far; publish scores and history."""
        started = time.perf_counter()
        with self._lock:
            changes = self._changes
            through = dict(self.state.live.applied_seq)
            focus = self._focus
            participant = self.state.participant
            item = None if focus is None else self.state.image_input(focus)
            trial = self.state.live.trial
            in_trial = trial is not None and trial.image == focus and not trial.ended
            trial_fixations = len(self.state.live.fixations) if in_trial else None
            history = self.state.image_counts()
        with self._score_lock:
            summary: dict[str, Any] | None
            if item is None or focus is None:
                summary = None
            elif item.rows:
                # in steps: the baselines' and model maps' scores first (the ceiling and the
                # participant's own scores, every participant against the others, take longer)
                first = jsonable(self.state.scorer.summary(item, self._context, complete=False))
                with self._lock:
                    self._set_scores(
                        focus,
                        self._with_previous_rows(first),
                        through=through,
                        participant=participant,
                        trial_fixations=trial_fixations,
                        score_ms=(time.perf_counter() - started) * 1000.0,
                    )
                self._publish()
                # then the ceiling, then the participant's scores, unless newer fixations wait:
                # their scores first, the rest when the stream pauses
                if not self._dirty.is_set():
                    self.state.scorer.ceiling(item, self._context)
                if self._dirty.is_set():
                    with self._lock:
                        self._history = history
                        self._set_history()
                    return
                summary = jsonable(self.state.scorer.summary(item, self._context))
            else:  # a trial's image without fixations yet: ready its engine for the first one
                self.state.scorer.prepare(item, self._context)
                summary = self._empty_summary(focus)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        with self._lock:
            # only scorings of fixations: readying an engine that is ready takes ~0 ms, and such
            # wake-ups (trial starts, an image without fixations) showed p50 and p99 as 0.0 ms
            if item is not None and item.rows:
                self._score_ms.append(elapsed_ms)
            self._history = history
            if summary is not None and focus is not None and summary["n_fixations"]:
                self._summaries[focus] = summary
            self._set_scores(
                focus,
                summary,
                through=through,
                participant=participant,
                trial_fixations=trial_fixations,
                score_ms=elapsed_ms,
            )
            self._scored_changes = changes
            self._set_history()

    def _with_previous_rows(self, summary: dict[str, Any]) -> dict[str, Any]:
        """A first-step summary with the ceiling and participant scores of the image's previous
        complete one, listed in ``updating`` (the dashboard shows them as being updated)."""
        previous = self._summaries.get(summary["image"]) or {}
        scores = dict(summary["scores"])
        if "human_loso" in previous.get("scores", {}):
            scores["human_loso"] = previous["scores"]["human_loso"]
        return {
            **summary,
            "scores": scores,
            "participant_scores": previous.get("participant_scores"),
            "updating": ["human_loso", "participant_scores"],
        }

    def _context(self) -> tuple[list[tuple], dict[str, tuple[int, int]]]:
        """The other images' part of a score (:data:`server.scoring.ContextSource`), taken under the lock."""
        with self._lock:
            return self.state.context_rows()

    def _set_scores(
        self,
        image: str | None,
        summary: dict[str, Any] | None,
        *,
        through: dict[str, int],
        participant: str | None,
        trial_fixations: int | None,
        score_ms: float | None = None,
    ) -> None:
        """Publish the scores section (under the lock).

        ``trial_fixations``: how many of the running trial's fixations the summary includes (0 at
        trial start: the image's pooled state before this trial), None outside a trial.
        """
        maps = self.maps_info()
        self._set(
            "scores",
            ScoresSection(
                image=image,
                participant=participant,
                through_seq=through,
                summary=None if summary is None else ImageSummary.model_validate(summary),
                trial_fixations=trial_fixations,
                score_ms=score_ms,
                maps=maps,
                metrics=[
                    MetricInfo(
                        name=name,
                        title=METRIC_REGISTRY[name].title,
                        higher_is_better=METRIC_REGISTRY[name].higher_is_better,
                    )
                    for name in self.state.metrics
                ],
                map_kinds={name: map_kind(name) for name in (*BASELINE_MAPS, *HUMAN_MAPS, *maps.names)},
            ),
        )

    def _unscored(self, image_id: str) -> dict[str, Any]:
        """The summary of an image not scored since this server started: pooled counts, no scores
        yet (``pending`` while it has fixations, which the scoring thread is about to score)."""
        counts = self._history.get(image_id, {})
        return self._empty_summary(
            image_id,
            n_fixations=counts.get("n_fixations", 0),
            n_participants=counts.get("n_participants", 0),
            pending=bool(counts),
        )

    def _empty_summary(
        self, image_id: str, *, n_fixations: int = 0, n_participants: int = 0, pending: bool = False
    ) -> dict[str, Any]:
        self.stimuli.path(image_id)  # KeyError when the set does not hold it
        return {
            "image": image_id,
            "shape": list(self.stimuli.shape(image_id)),
            "n_fixations": n_fixations,
            "n_fixations_used": None if pending else 0,
            "n_participants": n_participants,
            "participant": self.state.participant,
            "n_fixations_participant": 0,
            "heatmap_params": self.state.params.model_dump(),
            "scores": {},
            "participant_scores": None,
            "pending": pending,
        }

    # -- queries (any thread) ----------------------------------------------------------------------

    def maps_info(self) -> MapsInfo:
        """Which model maps are scored, and whether they come from untrained weights."""
        if self.maps is None or self.thumbnails is None:
            return MapsInfo(names=[], label=None, untrained=False, store_key=None)
        return MapsInfo(
            names=list(self.maps.map_names),
            label=self.maps.metadata["weights"].get("label"),
            untrained=self.maps.is_untrained,
            store_key=self.thumbnails.key,
        )

    def _image_input(self, image_id: str) -> ImageInput | None:
        """The image's scoring input; None while it has no fixation (KeyError: not a stimulus)."""
        self.stimuli.path(image_id)
        with self._lock:
            return self.state.image_input(image_id) if image_id in self.state.image_ids else None

    def image_summary(self, image_id: str) -> ImageSummary:
        """Heatmap parameters, fixation counts and scores of one image, with every fixation applied.

        Raises
        ------
        KeyError
            ``image_id`` is not in the stimulus set.
        """
        item = self._image_input(image_id)
        if item is None:
            return ImageSummary.model_validate(self._empty_summary(image_id))
        with self._score_lock:
            return ImageSummary.model_validate(jsonable(self.state.scorer.summary(item, self._context)))

    def heatmap(self, image_id: str, *, participant: str | None = None) -> np.ndarray | None:
        """Pooled (or one participant's) heatmap with every fixation applied, ``(H, W)`` float64;
        ``None`` while the image (or the participant on it) has no selected fixation."""
        item = self._image_input(image_id)
        if item is None:
            return None
        with self._score_lock:
            return self.state.scorer.heatmap(item, self._context, participant=participant)

    def model_map(self, image_id: str, name: str) -> np.ndarray:
        """One model map of one image at the image's size, ``(H, W)`` float32.

        Raises
        ------
        KeyError
            No store, or the store has no such map or image.
        """
        if self.maps is None:
            raise KeyError("the server runs without a map store (start it with --maps STORE)")
        if name not in self.maps.map_names:
            raise KeyError(f"map {name!r} is not in the store; it holds {list(self.maps.map_names)}")
        return self.maps.load(image_id, shape=self.stimuli.shape(image_id))[name]

    def progress(self) -> dict[str, Any]:
        """``applied_seq`` (session → last record applied) and ``settled`` (the published scores
        include every fixation change applied, and no scoring is pending or under way): tools wait
        for both before reading final scores."""
        with self._lock:
            settled = self._scored_changes == self._changes and not self._dirty.is_set() and not self._scoring
            return {"applied_seq": dict(self.state.live.applied_seq), "settled": settled}

    def health(self) -> HealthSection:
        """The health section (refreshed each second by the receiver thread, which alone may
        touch the receiver), with the client count and uptime of now."""
        with self._lock:
            health = self._sections["health"]
        return HealthSection.model_validate(
            {**health, "clients": self.n_clients, "uptime_s": time.time() - self.started_at}
        )

    def session(self) -> SessionReport:
        """The current session and pooled totals (``LiveState.session_summary`` plus the live trial)."""
        with self._lock:  # copying is cheap; building the summary's table is not: outside the lock
            snapshot = self.state.copy()
        live = snapshot.live
        return SessionReport.model_validate(
            jsonable(
                {
                    **snapshot.session_summary(),
                    "trial_info": live.trial,
                    "last_seq": None if snapshot.session is None else live.applied_seq.get(snapshot.session),
                }
            )
        )

    def notes_section(self, session: str | None = None) -> NotesSection:
        """The notes of ``session`` (default: the current one).

        Raises
        ------
        ValueError
            ``session`` is not a session id (a UUID).
        """
        if session is None:
            with self._lock:
                session = self.state.session
        return self.notes.section(session)

    def add_note(self, note: NoteIn) -> OperatorNote:
        """Save the experimenter's note on the current session (its trial: ``note.trial``, else the
        trial in progress or the last one started) and publish the ``notes`` section.

        Raises
        ------
        LookupError
            No session has started yet.
        ValueError
            The trial has not started in the session, or the note lacks what its kind needs.
        """
        with self._lock:
            session, participant = self.state.session, self.state.participant
            if session is None:
                raise LookupError("no session has started: a note belongs to a session (start lookwhere run)")
            trial = self.state.trial if note.trial is None else note.trial
            image = None if trial is None else self.state.trial_image(session, trial)
        saved = OperatorNote(
            session=session,
            participant=participant,
            trial=trial,
            image=image,
            kind=note.kind,
            text=note.text.strip(),
            unix_s=time.time(),
        )
        self.notes.add(saved)  # outside the hub's lock: the disk never holds up the stream
        excluded = self.notes.excluded(session) if saved.kind in ("exclude_trial", "keep_trial") else None
        with self._lock:
            if excluded is not None:
                self._exclude(session, excluded)
            self._refresh("notes")
        self._publish()
        return saved

    def _exclude(self, session: str, trials: list[int]) -> None:
        """Leave the trials out of the live scores, as the offline analysis leaves them out; the
        images whose fixations changed are scored again (under the lock)."""
        images = self.state.exclude_trials(session, trials)
        if not images:
            return
        for image in images:  # their last scores included the trial
            self._summaries.pop(image, None)
        self._refocus(images)
        self._changes += 1
        self._dirty.set()
