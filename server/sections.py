"""What the dashboard receives: the live hub's sections and the API's answers, as pydantic models.

The hub publishes its view as *sections* (:data:`SECTIONS`), each one of the models below; the
WebSocket sends them as :class:`LiveMessage` (``v``: :data:`SCHEMA_VERSION`, which the page checks),
and the ``/api/*`` routes declare their answers with these models as ``response_model``. The
``quality`` and ``notes`` sections' models live in :mod:`server.quality` and :mod:`server.notes`. Every
number is JSON-ready: NaN and infinities become ``null`` before a model is built
(:func:`jsonable`), since JSON has neither.

Units follow :mod:`lookwhere.records`: ``*_image_px`` original-image pixels (origin top-left),
``*_ms`` milliseconds, ``*_s`` seconds, ``*_server_time_s`` the server's Unix time.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from analysis.heatmap import HeatmapParams
from analysis.registry import MapKind

__all__ = [
    "SCHEMA_VERSION",
    "SECTIONS",
    "jsonable",
    "SessionSection",
    "TrialInfo",
    "TrialSection",
    "GazeSection",
    "FixationsSection",
    "MicSection",
    "VoiceTick",
    "VoiceSection",
    "HealthSection",
    "ImageSummary",
    "ScoresSection",
    "HistorySection",
    "SessionReport",
    "ImageList",
    "LiveMessage",
]

#: Version of the dashboard's message format (the WebSocket's ``v``); the page refuses another.
SCHEMA_VERSION = 1
#: The sections of the dashboard's view, in the order a snapshot lists them.
SECTIONS = ("session", "trial", "gaze", "fixations", "mic", "voice", "health", "scores", "history", "quality", "notes")


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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- the live trial ------------------------------------------------------------------------------


class TrialInfo(_Model):
    """The trial shown now (or last): onset on the server's clock, planned duration, image size."""

    trial: int
    image: str
    stimulus_duration_ms: float
    onset_server_time_s: float
    ended: bool = False
    aborted: bool | None = None  # at its end: whether the operator ended the image early
    image_width_px: int
    image_height_px: int


class TrialFixation(_Model):
    """One fixation of the live trial, for the overlay."""

    seq: int
    x_image_px: float
    y_image_px: float
    duration_ms: float


class GazePoint(_Model):
    """The latest gaze sample, mapped to image pixels."""

    seq: int
    x_image_px: float
    y_image_px: float
    t_session_ms: float
    server_time_s: float


class MicReading(_Model):
    """The latest microphone level (dB full scale) and overruns so far."""

    rms_dbfs: float | None
    peak_dbfs: float | None
    xruns: int
    trial: int
    server_time_s: float


# -- sections ------------------------------------------------------------------------------------


class SessionSection(_Model):
    """The current session: who, which trial of how many, what the task waits for, totals."""

    session: str | None
    participant: str | None
    trial: int | None
    n_trials: int | None
    image: str | None
    ended: str | None
    tracker: str | None
    last_seq: int | None
    waiting: str | None
    n_records: int
    n_sessions: int
    n_stimuli: int
    ignored: dict[str, int]


class TrialSection(_Model):
    trial: TrialInfo | None


class GazeSection(_Model):
    gaze: GazePoint | None


class FixationsSection(_Model):
    """The live trial's fixations (empty between trials and after an aborted run)."""

    participant: str | None
    session: str | None
    image: str | None
    fixations: list[TrialFixation]


class MicSection(_Model):
    mic: MicReading | None


class VoiceTick(_Model):
    """An utterance found live in the trial's streamed recording (ms from the image onset).

    ``detected_ms``: how far into the trial the audio that confirmed it reached; ``server_time_s``:
    when the server found it; ``offset_ms``: None while it goes on."""

    onset_ms: float
    offset_ms: float | None
    confidence: float
    detected_ms: float
    server_time_s: float


class VoiceSection(_Model):
    """The live trial's microphone level strip and its utterances (:mod:`server.voice`).

    ``level_dbfs[i]`` is the RMS level of the recording from ``start_ms + i · bin_ms`` (None:
    digital silence); ``audio_ms`` how much of the trial's recording has arrived; ``detector``
    what finds the utterances (or why nothing does)."""

    session: str | None
    trial: int | None
    start_ms: float
    bin_ms: float
    level_dbfs: list[float | None]
    audio_ms: float
    utterances: list[VoiceTick]
    detector: str


class Percentiles(_Model):
    """p50, p99 and max of recent values (None without any), and how many."""

    p50: float | None
    p99: float | None
    max: float | None
    n: int


class StreamStatus(_Model):
    """The current session's stream (:class:`server.receiver.SessionStatus`)."""

    alive: bool
    silent_s: float | None  # None: not heard since this server started
    last_seq: int
    ended: bool
    conflicts: int
    missing: int


class LastOverrun(_Model):
    trial: int
    image: str
    display_duration_ms: float | None
    requested_ms: float | None


class DisplayTiming(_Model):
    """Display timing of the session's trials (:meth:`server.state.LiveState.timing`)."""

    frame_timing: Literal["vsync", "no_vsync", "unknown"]
    dropped_frames: int
    trials: int
    overruns: int
    last_overrun: LastOverrun | None


class MapsInfo(_Model):
    """Which model maps are scored, and whether they come from untrained weights."""

    names: list[str]
    label: str | None
    untrained: bool
    store_key: str | None


class HealthSection(_Model):
    """Stream, receiver, timing and scoring health (refreshed every second)."""

    rates_per_s: dict[str, float]
    receiver: dict[str, Any]  # Receiver.counters: counts, and malformed reason → count
    malformed_total: int
    stream: StreamStatus | None
    connections: int
    n_sessions_alive: int
    latency_ms: Percentiles
    apply_ms: Percentiles
    score_ms: Percentiles
    scoring_device: str
    timing: DisplayTiming | None
    gaze_age_s: float | None
    ignored: dict[str, int]
    clients: int
    uptime_s: float
    maps: MapsInfo


class ImageSummary(_Model):
    """One image's heatmap parameters, fixation counts and scores (map → metric → value; None:
    undefined), pooled and the current participant's (:meth:`server.scoring.LiveScorer.summary`).

    ``n_fixations_used`` is None while ``pending`` (an image with fixations not scored since the
    server started).
    """

    image: str
    shape: list[int]
    heatmap_params: HeatmapParams
    n_fixations: int
    n_fixations_used: int | None
    n_participants: int
    participant: str | None
    n_fixations_participant: int
    scores: dict[str, dict[str, float | None]]
    participant_scores: dict[str, dict[str, float | None]] | None
    pending: bool = False
    #: False for the first step of a scoring (no ceiling, no participant scores yet)
    complete: bool = True
    #: rows still showing the previous scoring's values while the server computes them
    updating: list[str] = []


class MetricInfo(_Model):
    """A metric of :data:`analysis.registry.METRIC_REGISTRY`: name, title, direction."""

    name: str
    title: str
    higher_is_better: bool


class ScoresSection(_Model):
    """The scores of the image in focus; ``through_seq``: the last record of each session they
    include; ``trial_fixations``: how many of the running trial's fixations (0 at its start: the
    pooled state before it; None outside a trial). ``metrics`` (the scored metrics, in order) and
    ``map_kinds`` (every map the server scores → its kind) are the registries of
    :mod:`analysis.registry`, for the page's titles, directions and colours."""

    image: str | None
    participant: str | None
    through_seq: dict[str, int]
    summary: ImageSummary | None
    trial_fixations: int | None
    score_ms: float | None
    maps: MapsInfo
    metrics: list[MetricInfo]
    map_kinds: dict[str, MapKind]


class HistoryEntry(_Model):
    image: str
    n_fixations: int
    n_participants: int


class HistorySection(_Model):
    """Every image with pooled fixations, and how many stimuli there are."""

    images: list[HistoryEntry]
    n_stimuli: int


# -- API answers ---------------------------------------------------------------------------------


class SessionReport(_Model):
    """``GET /api/session``: the current session, the pooled totals and the live trial."""

    session: str | None
    participant: str | None
    tracker: str | None
    trial: int | None
    image: str | None
    n_trials_planned: int | None
    ended: str | None
    n_records: int
    n_fixations: int
    n_participants: int
    n_sessions: int
    images: list[str]
    ignored: dict[str, int]
    trial_info: TrialInfo | None
    last_seq: int | None


class ImageList(_Model):
    """``GET /api/images``: every stimulus with its pooled counts, and the hub's progress."""

    images: list[HistoryEntry]
    applied_seq: dict[str, int]
    settled: bool


class LiveMessage(_Model):
    """One WebSocket message: every section (``snapshot``, first) or the changed ones (``update``)."""

    type: Literal["snapshot", "update"]
    v: int = SCHEMA_VERSION
    server_time_s: float
    sections: dict[str, Any]
