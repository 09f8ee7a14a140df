"""The live hub: the receiver thread, the scoring thread, and the dashboard's view of both.

Two threads share one :class:`server.state.LiveState` under one lock:

* the **receiver thread** polls :class:`server.receiver.Receiver`, applies every accepted record
  to the state (microseconds) and refreshes the cheap sections of the view — session, trial,
  gaze, the current trial's fixations, microphone, stream health — then wakes the subscribers;
* the **scoring thread** waits until fixations changed, takes the image in focus from the state
  under the lock (:meth:`LiveState.image_input`: its rows and versions) and, outside it, brings
  that image's engine up to date (:class:`server.scoring.LiveScorer`: one kernel stamp and the
  metrics' running statistics per new fixation) — so scoring never delays the records behind it.
  Heatmaps and scores served over HTTP come from the same scorer (under its own lock).

The view is a dict of JSON-ready *sections*, each with a version number; a subscriber (a
WebSocket client) asks :meth:`LiveHub.sections_since` for what changed since it last sent, so a
slow client gets the latest state, never a backlog. Every number is the one the offline analysis
computes (both score with :class:`analysis.engine.ImageEngine`).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lookwhere.protocol import (
    FixationRecord,
    GazeSample,
    Heartbeat,
    MicLevel,
    Record,
    SessionEnd,
    SessionStart,
    TrialEnd,
    TrialStart,
)
from server.receiver import Receiver
from server.state import LiveState
from server.thumbnails import ThumbnailCache
from stimuli.sets import StimulusSet

if TYPE_CHECKING:
    from analysis.cnn.store import MapStore
    from lookwhere.transport import CurveKeys

__all__ = ["LiveHub", "SECTIONS"]

logger = logging.getLogger(__name__)

#: The sections of the dashboard's view, in the order a snapshot lists them.
SECTIONS = ("session", "trial", "gaze", "fixations", "mic", "health", "scores", "history")

_RATE_WINDOW_S = 5.0
_SCORE_DELAY_S = 0.02


def _percentiles(values) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    array = np.asarray(values, dtype=float)
    return {"p50": float(np.percentile(array, 50)), "p99": float(np.percentile(array, 99)),
            "max": float(array.max()), "n": int(array.size)}


def jsonable(value: Any) -> Any:
    """``value`` with NaN and ±inf floats turned into ``None`` (JSON has neither), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    return value


class LiveHub:
    """Receive records, keep the live state, score it, and publish the dashboard's view.

    Parameters
    ----------
    stimuli : StimulusSet
        The images the experiment may show.
    data_dir : str or Path
        The receiver's folder (journals in ``<data_dir>/stream``); the pooled state is rebuilt
        from it at :meth:`start`.
    maps : MapStore, optional
        Model maps scored beside the baselines; ``None``: baselines only.
    host : str
        Interface of the ZeroMQ stream (loopback by default).
    zmq_port : int
        Port of the stream; 0 picks a free one (see :attr:`endpoint` after :meth:`start`).
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
        host: str = "127.0.0.1",
        zmq_port: int = 0,
        curve: CurveKeys | None = None,
        allowed_keys_dir: str | Path | None = None,
        state_options: dict | None = None,
        health_interval_s: float = 1.0,
    ) -> None:
        self.stimuli = stimuli
        if maps is not None:
            from analysis.cnn.store import RecentMaps

            maps = RecentMaps(maps)
        self.maps = maps
        self.thumbnails = None if maps is None else ThumbnailCache(Path(data_dir) / "thumbnails", maps, stimuli)
        self.data_dir = Path(data_dir)
        self._receiver_options = dict(host=host, port=zmq_port, curve=curve, allowed_keys_dir=allowed_keys_dir)
        self._state_options = dict(state_options or {})
        self._health_interval_s = health_interval_s
        self._lock = threading.Lock()  # the live state and the view
        self._score_lock = threading.Lock()  # the scorer (its engines are not thread-safe)
        self._stop = threading.Event()
        self._dirty = threading.Event()
        self._threads: list[threading.Thread] = []
        self._subscribers: list[Callable[[], None]] = []
        self._sections: dict[str, dict] = {}
        self._versions: dict[str, int] = dict.fromkeys(SECTIONS, 0)
        self.receiver: Receiver | None = None
        self.endpoint: str | None = None
        self.started_at = time.time()
        self._started_monotonic = time.monotonic()
        self.n_clients = 0

    # -- life cycle --------------------------------------------------------------------------------

    def start(self) -> "LiveHub":
        """Rebuild the pooled state from ``data_dir``, bind the stream, start both threads."""
        self.state = LiveState.from_receiver_data(self.data_dir, self.stimuli, maps=self.maps, **self._state_options)
        self.scoring_device = self.state.scorer.device
        self._seq: dict[str, int] = {}
        self._trial: dict | None = None
        self._geometry = None
        self._fixations: list[dict] = []
        self._gaze: dict | None = None
        self._mic: dict | None = None
        self._waiting: dict[str, str | None] = {}  # session → what the task waits for (heartbeats)
        self._focus: str | None = self.state.image_ids[-1] if self.state.image_ids else None
        self._summaries: dict[str, dict] = {}  # image → its latest scored summary (shown at trial start)
        self._history: dict[str, dict] = {}  # image → pooled counts when last scored
        self._changes = self._scored_changes = 0  # fixation changes applied, and taken by the last scoring
        self._arrivals: deque[tuple[float, str]] = deque()
        self._latency_ms: deque[float] = deque(maxlen=240)
        self._apply_ms: deque[float] = deque(maxlen=1000)
        self._score_ms: deque[float] = deque(maxlen=100)
        self.receiver = Receiver(self.data_dir, **self._receiver_options)
        self.endpoint = self.receiver.endpoint
        with self._lock:
            self._refresh_session()
            self._refresh_trial()
            self._set("gaze", {"gaze": None})
            self._refresh_fixations()
            self._set("mic", {"mic": None})
            self._refresh_health()
            self._history = self.state.image_counts()
            self._set_scores(self._focus, None, through={}, participant=self.state.participant, trial_fixations=None)
            self._set("history", {"images": list(self._history.values()), "n_stimuli": len(self.stimuli.image_ids)})
        self._changes += 1  # the scoring thread scores the image in focus first (its engine takes a second)
        self._dirty.set()
        # Scoring is CPU-bound Python: hand the GIL over every 0.5 ms (default 5 ms) so the
        # receiver thread and the event loop answer within a millisecond while it runs.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.0005))
        for target, name in ((self._receive_loop, "lookwhere-receiver"), (self._score_loop, "lookwhere-scorer")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info("live hub: stream at %s, %d pooled fixations reloaded", self.endpoint, len(self.state.fixations()))
        return self

    def stop(self) -> None:
        """Stop both threads and close the receiver (journals flushed). Idempotent."""
        self._stop.set()
        self._dirty.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads.clear()
        if self.receiver is not None:
            self.receiver.close()
            self.receiver = None

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

    def sections_since(self, sent: dict[str, int]) -> tuple[dict[str, dict], dict[str, int]]:
        """The sections newer than the versions in ``sent`` (``{}``: all), and their versions."""
        with self._lock:
            changed = {name: self._sections[name] for name in SECTIONS
                       if self._versions[name] > sent.get(name, -1)}
            return changed, dict(self._versions)

    def _set(self, name: str, content: dict) -> None:
        self._sections[name] = jsonable(content)
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
        """Apply a batch to the state and refresh the sections it touches (under the lock)."""
        started = time.perf_counter()
        touched: set[str] = set()
        fixations_changed = False
        for record in records:
            self._seq[record.session] = record.seq
            self._arrivals.append((time.monotonic(), record.kind))
            changed = self.state.apply(record)
            if changed:
                fixations_changed = True
                self._focus = next(iter(changed)) if self.state.image is None else self.state.image
            touched |= self._view(record)
        if fixations_changed:
            self._changes += 1
            self._dirty.set()
        self._apply_ms.append((time.perf_counter() - started) * 1000.0)
        for name in touched:
            getattr(self, f"_refresh_{name}")()

    def _view(self, record: Record) -> set[str]:
        """Update the hub's own per-record view; the names of the sections to refresh."""
        if isinstance(record, SessionStart):
            self._trial, self._fixations, self._gaze = None, [], None
            self._prepare(record.first_image)
            return {"session", "trial", "fixations", "gaze"}
        if isinstance(record, TrialStart):
            if record.session != self.state.session or self.state.image != record.image:
                return {"session"}  # ignored by the state (unknown image, bad geometry)
            self._geometry = record.geometry()
            self._trial = {"trial": record.trial, "image": record.image,
                           "stimulus_duration_ms": record.stimulus_duration_ms,
                           "onset_server_time_s": time.time(), "ended": False,
                           "image_width_px": record.image_width_px, "image_height_px": record.image_height_px}
            self._fixations, self._gaze = [], None
            self._dirty.set()  # the focus moves to this image: scored again with this trial's data
            self._focus = record.image
            self._prepare(record.next_image)
            self._set_scores(record.image, self._summaries.get(record.image) or self._unscored(record.image),
                             through=dict(self._seq), participant=self.state.participant, trial_fixations=0)
            return {"session", "trial", "fixations", "gaze"}
        if isinstance(record, TrialEnd):
            if self._trial is not None and record.trial == self._trial["trial"]:
                self._trial = {**self._trial, "ended": True, "aborted": record.aborted}
                if record.aborted:
                    self._fixations = []
            return {"trial", "fixations", "session"}
        if isinstance(record, SessionEnd):
            return {"session", "trial"}
        if isinstance(record, FixationRecord):
            if self._trial is None or record.trial != self._trial["trial"] or record.session != self.state.session:
                return set()
            self._fixations.append({"seq": record.seq, "x_image_px": record.x_image_px, "y_image_px": record.y_image_px,
                                    "duration_ms": record.duration_ms})
            return {"fixations", "session"}
        if isinstance(record, GazeSample):
            if self._geometry is None or record.session != self.state.session:
                return set()
            x, y = self._geometry.display_to_image(record.x_display_px, record.y_display_px)
            self._gaze = {"seq": record.seq, "x_image_px": float(x), "y_image_px": float(y),
                          "t_session_ms": record.t_session_ms, "server_time_s": time.time()}
            return {"gaze"}
        if isinstance(record, MicLevel):
            self._mic = {"rms_dbfs": record.rms_dbfs, "peak_dbfs": record.peak_dbfs, "xruns": record.xruns,
                         "trial": record.trial, "server_time_s": time.time()}
            return {"mic"}
        if isinstance(record, Heartbeat):
            self._latency_ms.append((time.time() - record.wall_time_s) * 1000.0)
            if self._waiting.get(record.session) != record.waiting:
                self._waiting[record.session] = record.waiting
                return {"session"}
        return set()

    def _prepare(self, image: str | None) -> None:
        """Prepare the maps of the image a trial will show soon, in the background (under the lock)."""
        if image is not None and image in self.stimuli.image_ids:
            self.state.scorer.prepare_in_background(self.state.image_input(image), self._context)

    def _refresh_session(self) -> None:
        state = self.state
        self._set("session", {
            "session": state.session, "participant": state.participant, "trial": state.trial,
            "n_trials": state.n_trials_planned, "image": state.image, "ended": state.session_ended,
            "tracker": state.tracker, "last_seq": self._seq.get(state.session),
            "waiting": self._waiting.get(state.session),
            "n_records": state.n_records, "n_sessions": state.n_sessions,
            "n_stimuli": len(self.stimuli.image_ids), "ignored": state.ignored,
        })

    def _refresh_trial(self) -> None:
        self._set("trial", {"trial": self._trial})

    def _refresh_fixations(self) -> None:
        self._set("fixations", {"participant": self.state.participant, "session": self.state.session,
                                "image": None if self._trial is None else self._trial["image"],
                                "fixations": list(self._fixations)})

    def _refresh_gaze(self) -> None:
        self._set("gaze", {"gaze": self._gaze})

    def _refresh_mic(self) -> None:
        self._set("mic", {"mic": self._mic})

    def _refresh_health(self) -> None:
        now = time.monotonic()
        while self._arrivals and self._arrivals[0][0] < now - _RATE_WINDOW_S:
            self._arrivals.popleft()
        window = max(min(_RATE_WINDOW_S, now - self._started_monotonic), 1e-3)
        rates: dict[str, float] = {}
        for _, kind in self._arrivals:
            rates[kind] = rates.get(kind, 0.0) + 1.0
        counters = self.receiver.counters if self.receiver is not None else {}
        sessions = self.receiver.sessions() if self.receiver is not None else {}
        current = sessions.get(self.state.session)
        self._set("health", {
            "rates_per_s": {kind: count / window for kind, count in sorted(rates.items())},
            "receiver": counters,
            "malformed_total": sum(counters.get("malformed", {}).values()),
            "stream": None if current is None else {
                "alive": current.alive, "silent_s": current.silent_s, "last_seq": current.last_seq,
                "ended": current.ended, "conflicts": current.conflicts, "missing": current.missing},
            "connections": self.receiver.n_connections if self.receiver is not None else 0,
            "n_sessions_alive": sum(s.alive for s in sessions.values()),
            "latency_ms": _percentiles(self._latency_ms),
            "apply_ms": _percentiles(self._apply_ms),
            "score_ms": _percentiles(self._score_ms),
            "scoring_device": self.scoring_device,
            "timing": self.state.timing(),
            "gaze_age_s": None if self._gaze is None else time.time() - self._gaze["server_time_s"],
            "ignored": self.state.ignored,
            "clients": self.n_clients,
            "uptime_s": time.time() - self.started_at,
            "maps": self.maps_info(),
        })

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
            self._dirty.clear()
            try:
                self._score()
            except Exception:  # keep scoring later records; the dashboard shows the last good scores
                logger.exception("scoring failed")
            self._publish()

    def _score(self) -> None:
        """Score the image in focus with the fixations applied so far; publish the scores in two
        steps — the baselines' and model maps' first, then with the human ceiling and the
        participant's own scores — and the history."""
        started = time.perf_counter()
        with self._lock:
            changes = self._changes
            through = dict(self._seq)
            focus = self._focus
            participant = self.state.participant
            item = None if focus is None else self.state.image_input(focus)
            in_trial = self._trial is not None and self._trial["image"] == focus and not self._trial["ended"]
            publish = functools.partial(self._set_scores, focus, through=through, participant=participant,
                                        trial_fixations=len(self._fixations) if in_trial else None)
            history = self.state.image_counts()
        with self._score_lock:
            if item is None:
                summary = None
            elif item.rows:
                first = jsonable(self.state.scorer.summary(item, self._context, complete=False))
                with self._lock:
                    publish(self._with_previous_rows(first), score_ms=(time.perf_counter() - started) * 1000.0)
                self._publish()
                summary = jsonable(self.state.scorer.summary(item, self._context))
            else:  # a trial's image without fixations yet: ready its engine for the first one
                self.state.scorer.prepare(item, self._context)
                summary = self._empty_summary(focus)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        with self._lock:
            self._score_ms.append(elapsed_ms)
            self._history = history
            if summary is not None and summary["n_fixations"]:
                self._summaries[focus] = summary
            publish(summary, score_ms=elapsed_ms)
            self._scored_changes = changes
            self._set("history", {"images": list(history.values()), "n_stimuli": len(self.stimuli.image_ids)})

    def _with_previous_rows(self, summary: dict) -> dict:
        """A first-step summary with the ceiling and participant scores of the image's previous
        complete one, listed in ``updating`` (the dashboard shows them as being updated)."""
        previous = self._summaries.get(summary["image"]) or {}
        scores = dict(summary["scores"])
        if "human_loso" in previous.get("scores", {}):
            scores["human_loso"] = previous["scores"]["human_loso"]
        return {**summary, "scores": scores, "participant_scores": previous.get("participant_scores"),
                "updating": ["human_loso", "participant_scores"]}

    def _context(self) -> tuple[list[tuple], dict[str, tuple[int, int]]]:
        """The other images' part of a score (:data:`server.scoring.ContextSource`), taken under the lock."""
        with self._lock:
            return self.state.context_rows()

    def _set_scores(self, image: str | None, summary: dict | None, *, through: dict[str, int],
                    participant: str | None, trial_fixations: int | None, score_ms: float | None = None) -> None:
        """Publish the scores section (under the lock).

        ``trial_fixations``: how many of the running trial's fixations the summary includes (0 at
        trial start: the image's pooled state before this trial), None outside a trial.
        """
        self._set("scores", {"image": image, "participant": participant, "through_seq": through,
                             "summary": summary, "trial_fixations": trial_fixations, "score_ms": score_ms,
                             "maps": self.maps_info()})

    def _unscored(self, image_id: str) -> dict:
        """The summary of an image not scored since this server started: pooled counts, no scores
        yet (``pending`` while it has fixations, which the scoring thread is about to score)."""
        counts = self._history.get(image_id, {})
        return self._empty_summary(image_id, n_fixations=counts.get("n_fixations", 0),
                                   n_participants=counts.get("n_participants", 0), pending=bool(counts))

    def _empty_summary(self, image_id: str, *, n_fixations: int = 0, n_participants: int = 0,
                       pending: bool = False) -> dict:
        self.stimuli.path(image_id)  # KeyError when the set does not hold it
        return {"image": image_id, "shape": list(self.stimuli.shape(image_id)), "n_fixations": n_fixations,
                "n_fixations_used": None if pending else 0, "n_participants": n_participants,
                "participant": self.state.participant, "n_fixations_participant": 0,
                "heatmap_params": self.state.params.model_dump(), "scores": {}, "participant_scores": None,
                "pending": pending}

    # -- queries (any thread) ----------------------------------------------------------------------

    def maps_info(self) -> dict:
        """Which model maps are scored, and whether they come from untrained weights."""
        if self.maps is None:
            return {"names": [], "label": None, "untrained": False, "store_key": None}
        return {"names": list(self.maps.map_names), "label": self.maps.metadata["weights"].get("label"),
                "untrained": self.maps.is_untrained, "store_key": self.thumbnails.key}

    def _image_input(self, image_id: str):
        """The image's scoring input; None while it has no fixation (KeyError: not a stimulus)."""
        self.stimuli.path(image_id)
        with self._lock:
            return self.state.image_input(image_id) if image_id in self.state.image_ids else None

    def image_summary(self, image_id: str) -> dict:
        """Heatmap parameters, fixation counts and scores of one image, with every fixation applied.

        Raises
        ------
        KeyError
            ``image_id`` is not in the stimulus set.
        """
        item = self._image_input(image_id)
        if item is None:
            return self._empty_summary(image_id)
        with self._score_lock:
            return jsonable(self.state.scorer.summary(item, self._context))

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

    def progress(self) -> dict:
        """``applied_seq`` (session → last record applied) and ``settled`` (the published scores
        include every fixation change applied): tools wait for both before reading final scores."""
        with self._lock:
            return {"applied_seq": dict(self._seq), "settled": self._scored_changes == self._changes}

    def health(self) -> dict:
        """The health section (refreshed each second by the receiver thread, which alone may
        touch the receiver), with the client count and uptime of now."""
        with self._lock:
            health = self._sections["health"]
        return {**health, "clients": self.n_clients, "uptime_s": time.time() - self.started_at}

    def session(self) -> dict:
        """The current session and pooled totals (``LiveState.session_summary`` plus the trial)."""
        with self._lock:  # copying is cheap; building the summary's table is not: outside the lock
            snapshot, trial, last_seq = self.state.copy(), self._trial, self._seq.get(self.state.session)
        return jsonable({**snapshot.session_summary(), "trial_info": trial, "last_seq": last_seq})
