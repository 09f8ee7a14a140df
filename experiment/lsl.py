"""Lab Streaming Layer outlets of a session (``lookwhere run --lsl``): gaze, fixations, markers.

EEG labs record the eye tracker together with the EEG through LSL (LabRecorder writes every
stream into one XDF file, the clocks of the machines synchronised by LSL). With ``--lsl`` the
session opens three outlets; the session records (SPEC §4) stay as they are.

``lookwhere Gaze`` (type ``Gaze``), float32 × 3 at the tracker's sampling rate
    ``x_display_px``, ``y_display_px`` (display pixels, origin top-left; NaN where the eye was
    lost) and ``pupil`` (tracker units; NaN where the tracker gives none): every sample of every
    recording, stamped with its tracker time mapped to LSL time.
``lookwhere Fixations`` (type ``Fixations``), float32 × 9, irregular
    One sample per fixation, pushed when the tracker ends it and stamped with its start:
    :data:`FIXATION_CHANNELS` = ``trial``, ``start_ms``, ``end_ms`` (from the trial's image onset,
    as in ``fixations.csv``; NaN for a fixation that ended before the onset), ``duration_ms``,
    ``x_display_px``, ``y_display_px``, ``x_image_px``, ``y_image_px``, ``pupil``. Float32 holds
    these exactly enough (onset-relative times to 0.001 ms below 8 s); absolute times are in the
    timestamp, a double.
``lookwhere Markers`` (type ``Markers``), one string channel, irregular
    ``event key=value ...`` (values quoted as a POSIX shell would; :func:`parse_marker` reads
    them back), the events of :data:`MARKER_EVENTS`:

    - ``session_start session=… participant=…``, stamped with the session clock's zero (see below);
    - ``calibration result=…`` after each tracker setup (each eye's grade, or ``skipped``);
    - ``trial_start trial=N image=ID`` when the trial begins (its drift correction);
    - ``drift_correction trial=N image=ID offset_deg=…`` when the drift check is accepted;
    - ``image_onset`` / ``image_offset trial=N image=ID`` at the flips;
    - ``trial_end trial=N image=ID result=done|skipped|aborted`` (an aborted run is run again);
    - ``session_end status=…`` as the session closes (``completed``, ``quit by operator``, …).

    They are the tracker's messages (the EDF's ``TRIALID``, ``IMAGE_ONSET``, ``IMAGE_OFFSET``,
    ``TRIAL_RESULT``) stamped when the task sends them: the onset and offset from the flip's
    callback, as in the EDF. With ``--server``, the experimenter's notes made on the dashboard come
    back to the task (:class:`experiment.stream.StreamSink`) and are pushed as they arrive:

    - ``note kind=… unix_s=… [trial=N] [image=ID] [text=…]`` (:meth:`LslOutlets.note`), stamped on
      arrival (within a heartbeat, ~1 s, of the note; ``unix_s`` is when it was made).

Clocks: the task's clock is ``time.perf_counter()``, the session clock (``*_session_s`` of
``trials.jsonl``) is it since the run started (:class:`experiment.lifecycle.SessionClock`), and LSL
time is ``pylsl.local_clock()``. The offset between ``perf_counter`` and ``local_clock`` is measured
once when the outlets open (the smallest-gap one of back-to-back readings; on Linux both are
``CLOCK_MONOTONIC`` and it is 0), the tracker's clock against ``perf_counter`` at each recording's
start. The ``session_start`` marker's timestamp, also in each stream's description
(``clock/session_origin_lsl_s``), is the LSL time at which the session clock reads 0, so that
``t_session_s = t_lsl - session_origin_lsl_s`` (a resumed session starts a new session clock and
sends a new ``session_start``).

Never blocks a frame (the rule of :mod:`experiment.sender`): every push is handed to liblsl's
per-recorder queues and sent by liblsl's own threads (its default asynchronous transport; the
``transp_sync_blocking`` option, which would wait, is not used). A queue holds at most
``max_buffered_s`` of data: a stalled recorder loses its oldest samples, the push never waits. The
pushes come from the task's thread, like the sender's I/O: a Python thread would take the GIL
from the frame loop (see :class:`experiment.sender.Sender`), and liblsl's threads hold no GIL.
A frame's pushes (a few gaze samples, a fixation, a marker) cost ~10–30 µs.

Security: LSL has no authentication and no encryption, and liblsl listens on every network
interface (its data and time services bind to all addresses even where ``lsl_api.cfg`` narrows
discovery to the machine): whoever reaches the experiment PC can read the participant's gaze.
Use ``--lsl`` on the lab's isolated network only.

This module imports pylsl only when a session opens outlets (:func:`import_pylsl`); the
experiment process never imports torch.
"""

from __future__ import annotations

import logging
import math
import shlex
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

from experiment.presentation import TRIAL_ABORTED, TRIAL_DONE, TRIAL_SKIPPED
from experiment.trackers import CalibrationResult, DriftResult, EdfTransfer, SampleBlock, Tracker, TrackerFixation
from lookwhere.notes import OperatorNote
from stimuli.geometry import DisplayGeometry
from stimuli.sets import StimulusSet

__all__ = [
    "GAZE_CHANNELS",
    "FIXATION_CHANNELS",
    "MARKER_EVENTS",
    "import_pylsl",
    "format_marker",
    "parse_marker",
    "LslOutlets",
    "LslTracker",
]

logger = logging.getLogger(__name__)

#: (label, unit) of the gaze stream's channels.
GAZE_CHANNELS = (("x_display_px", "pixels"), ("y_display_px", "pixels"), ("pupil", "tracker units"))
#: (label, unit) of the fixation stream's channels.
FIXATION_CHANNELS = (
    ("trial", "index"),
    ("start_ms", "ms"),
    ("end_ms", "ms"),
    ("duration_ms", "ms"),
    ("x_display_px", "pixels"),
    ("y_display_px", "pixels"),
    ("x_image_px", "pixels"),
    ("y_image_px", "pixels"),
    ("pupil", "tracker units"),
)
#: The marker stream's events, in a trial's order.
MARKER_EVENTS = (
    "session_start",
    "calibration",
    "trial_start",
    "drift_correction",
    "image_onset",
    "image_offset",
    "trial_end",
    "session_end",
)
#: ``TRIAL_RESULT`` codes as the ``trial_end`` marker names them.
_RESULTS = {TRIAL_DONE: "done", TRIAL_SKIPPED: "skipped", TRIAL_ABORTED: "aborted"}
#: How long the outlets outlive the ``session_end`` marker. liblsl sends from its own threads and
#: drops what is still queued when an outlet closes (measured: closed at once, a recorder on the
#: same machine got none or a few of 51 markers pushed just before).
CLOSE_GRACE_S = 0.5
#: Back-to-back clock readings per offset measurement (the one with the smallest gap counts).
_CLOCK_READINGS = 7
_NAN = float("nan")
_Time = TypeVar("_Time", float, np.ndarray)


def import_pylsl() -> ModuleType:
    """pylsl, with its bundled liblsl loaded.

    Raises
    ------
    ModuleNotFoundError
        pylsl is not installed, or its liblsl cannot be loaded; the message says what to install.
    """
    try:
        import pylsl
    except ImportError as error:
        raise ModuleNotFoundError(
            f"--lsl needs pylsl, which is not installed ({error}); install lookwhere's lsl extra: pip install '.[lsl]'"
        ) from error
    except RuntimeError as error:  # pylsl found no liblsl for this platform
        raise ModuleNotFoundError(
            f"--lsl: pylsl cannot load liblsl ({error}); reinstall pylsl (pip install --force-reinstall '.[lsl]') "
            "or install liblsl from github.com/sccn/liblsl/releases"
        ) from error
    return pylsl


def format_marker(event: str, **fields: Any) -> str:
    """``event key=value ...``; floats with 3 decimals, values quoted where they hold spaces."""

    def text(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    return " ".join([event, *(f"{key}={shlex.quote(text(value))}" for key, value in fields.items())])


def parse_marker(marker: str) -> tuple[str, dict[str, str]]:
    """The event and fields of a :func:`format_marker` string (field values as strings)."""
    event, *pairs = shlex.split(marker)
    return event, dict(pair.split("=", 1) for pair in pairs)


def _min_gap_offset(read: Callable[[], float], *, scale: float = 1.0) -> float:
    """``read() - perf_counter() * scale`` from the back-to-back reading with the smallest gap."""
    readings = []
    for _ in range(_CLOCK_READINGS):
        before = time.perf_counter()
        value = read()
        after = time.perf_counter()
        readings.append((after - before, value - (before + after) / 2.0 * scale))
    return min(readings)[1]


class LslOutlets:
    """The three outlets of one session and the clock mapping their timestamps share.

    Parameters
    ----------
    pylsl : module
        From :func:`import_pylsl`.
    session : str
        The session id: the outlets' source ids are ``lookwhere-<session>-gaze`` (``-fixations``,
        ``-markers``), so that a recorder reconnects to a resumed session's outlets by itself.
    participant, tracker : str
        For the streams' descriptions.
    sample_rate_hz : float
        The tracker's sampling rate (the gaze stream's nominal rate).
    screen_width_px, screen_height_px : int
        The screen the display pixels refer to.
    session_origin_perf_s : float
        ``time.perf_counter()`` at which the session clock reads 0.
    max_buffered_s : float
        Most data a recorder's queue holds, seconds (markers and fixations: ``100 ×`` that many).

    Attributes
    ----------
    lsl_minus_perf_s : float
        ``local_clock() - perf_counter()``, measured when the outlets opened.
    session_origin_lsl_s : float
        The LSL time at which the session clock reads 0.
    """

    def __init__(
        self,
        pylsl: ModuleType,
        *,
        session: str,
        participant: str,
        tracker: str,
        sample_rate_hz: float,
        screen_width_px: int,
        screen_height_px: int,
        session_origin_perf_s: float,
        max_buffered_s: float = 360.0,
    ) -> None:
        self.lsl_minus_perf_s = _min_gap_offset(pylsl.local_clock)
        self.session_origin_lsl_s = self.lsl_time(session_origin_perf_s)
        self._session_origin_perf_s = session_origin_perf_s
        self.session, self.participant, self.tracker = session, participant, tracker
        self.screen_px = (screen_width_px, screen_height_px)
        self._max_buffered = max(1, math.ceil(max_buffered_s))
        self.gaze_outlet = self._outlet(pylsl, "Gaze", GAZE_CHANNELS, rate_hz=sample_rate_hz, channel_format="float32")
        self.fixation_outlet = self._outlet(
            pylsl, "Fixations", FIXATION_CHANNELS, rate_hz=pylsl.IRREGULAR_RATE, channel_format="float32"
        )
        self.marker_outlet = self._outlet(
            pylsl, "Markers", (("marker", "text"),), rate_hz=pylsl.IRREGULAR_RATE, channel_format="string"
        )
        self._closed = False

    @classmethod
    def of_session(cls, config: Any, *, session_origin_perf_s: float) -> LslOutlets:
        """The outlets of a session with ``config`` (:class:`experiment.config.SessionConfig`)."""
        return cls(
            import_pylsl(),
            session=config.session_id,
            participant=config.participant,
            tracker=config.tracker,
            sample_rate_hz=config.sample_rate_hz,
            screen_width_px=config.screen_width_px,
            screen_height_px=config.screen_height_px,
            session_origin_perf_s=session_origin_perf_s,
        )

    def _outlet(
        self, pylsl: ModuleType, kind: str, channels: Sequence[tuple[str, str]], *, rate_hz: float, channel_format: str
    ) -> Any:
        """One outlet, described: channels (label, unit, type), the session, screen and clocks."""
        source_id = f"lookwhere-{self.session}-{kind.lower()}"
        info = pylsl.StreamInfo(f"lookwhere {kind}", kind, len(channels), rate_hz, channel_format, source_id)
        desc = info.desc()
        desc.append_child_value("manufacturer", "lookwhere")
        desc.append_child_value("session", self.session)
        desc.append_child_value("participant", self.participant)
        desc.append_child_value("tracker", self.tracker)
        xml_channels = desc.append_child("channels")
        for label, unit in channels:
            channel = xml_channels.append_child("channel")
            channel.append_child_value("label", label)
            channel.append_child_value("unit", unit)
            channel.append_child_value("type", kind)
        screen = desc.append_child("screen")
        screen.append_child_value("width_px", str(self.screen_px[0]))
        screen.append_child_value("height_px", str(self.screen_px[1]))
        screen.append_child_value("origin", "top-left")
        clock = desc.append_child("clock")
        clock.append_child_value("session_origin_lsl_s", repr(self.session_origin_lsl_s))
        clock.append_child_value("note", "t_session_s = t_lsl - session_origin_lsl_s")
        return pylsl.StreamOutlet(info, max_buffered=self._max_buffered)

    # -- clocks ----------------------------------------------------------------------------------

    def lsl_time(self, perf_s: _Time) -> _Time:
        """``time.perf_counter()`` readings on the LSL clock, s."""
        return perf_s + self.lsl_minus_perf_s

    # -- pushes (never block) ------------------------------------------------------------------

    def marker(self, event: str, *, perf_s: float, **fields: Any) -> None:
        """Push one marker (:func:`format_marker`) stamped at ``perf_s``."""
        self.marker_outlet.push_sample([format_marker(event, **fields)], self.lsl_time(perf_s))

    def note(self, note: OperatorNote) -> None:
        """Push an experimenter's note as a ``note`` marker, stamped now (it has just arrived)."""
        fields = {"kind": note.kind, "unix_s": note.unix_s, "trial": note.trial, "image": note.image, "text": note.text}
        self.marker("note", perf_s=time.perf_counter(), **{k: v for k, v in fields.items() if v not in (None, "")})

    def gaze(self, samples: np.ndarray, t_lsl_s: np.ndarray) -> None:
        """Push gaze samples.

        Parameters
        ----------
        samples : ndarray, shape (N, 3)
            :data:`GAZE_CHANNELS` per sample.
        t_lsl_s : ndarray, shape (N,)
            Their times on the LSL clock, s.
        """
        if len(t_lsl_s):
            self.gaze_outlet.push_chunk(np.asarray(samples, dtype=np.float32), t_lsl_s.tolist())

    def fixation(self, values: Sequence[float], *, t_lsl_s: float) -> None:
        """Push one fixation (:data:`FIXATION_CHANNELS`) stamped at its start ``t_lsl_s``."""
        self.fixation_outlet.push_sample(values, t_lsl_s)

    # -- the session's start and end -------------------------------------------------------------

    def have_consumers(self) -> bool:
        """Whether every outlet has at least one recorder connected."""
        return all(o.have_consumers() for o in (self.gaze_outlet, self.fixation_outlet, self.marker_outlet))

    def start(self, *, wait_s: float, idle: Callable[[], None]) -> bool:
        """Wait up to ``wait_s`` for a recorder on every outlet (calling ``idle``, the live
        stream's service, every 20 ms), then send ``session_start`` (stamped with the session
        clock's zero). Before the first trial only. Returns whether every outlet has a recorder."""
        deadline = time.perf_counter() + wait_s
        if wait_s > 0 and not self.have_consumers():
            logger.info("waiting up to %g s for an LSL recorder on the gaze, fixation and marker outlets", wait_s)
        while not self.have_consumers() and time.perf_counter() < deadline:
            idle()
            time.sleep(0.02)
        connected = self.have_consumers()
        if not connected and wait_s > 0:
            logger.warning("LSL: not every outlet has a recorder after %g s; the session goes on", wait_s)
        self.marker(
            "session_start", perf_s=self._session_origin_perf_s, session=self.session, participant=self.participant
        )
        return connected

    def close(self, status: str) -> None:
        """Send ``session_end`` and close the outlets (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.marker("session_end", perf_s=time.perf_counter(), status=status)
        time.sleep(CLOSE_GRACE_S)
        del self.gaze_outlet, self.fixation_outlet, self.marker_outlet


class LslTracker(Tracker):
    """A tracker whose data also go to the LSL outlets: wraps the session's tracker.

    Every call goes to ``tracker``; on the way, the messages the task sends become markers,
    :meth:`drain` pushes the fixations it returns and the gaze samples recorded since the last
    call (:meth:`Tracker.drain_samples` of the wrapped tracker, so they are not left for anyone
    else), and the setup and drift check push theirs. The task drains the tracker every frame
    while it records, so the gaze goes out as it comes. The streams carry every recording: also
    the fixations of a gaze-contingent drift screen (before the onset: ``start_ms`` NaN) and of a
    run the operator aborted (its ``trial_end`` marker says ``result=aborted``), which
    ``fixations.csv`` leaves out.

    Parameters
    ----------
    tracker : Tracker
        The session's tracker.
    outlets : LslOutlets
    order : list of str
        The session's image order (``TRIALID n`` shows ``order[n]``).
    geometry_of : callable
        The :class:`~stimuli.geometry.DisplayGeometry` of an image id (called once per trial,
        between trials).
    """

    def __init__(
        self,
        tracker: Tracker,
        outlets: LslOutlets,
        *,
        order: Sequence[str],
        geometry_of: Callable[[str], DisplayGeometry],
    ) -> None:
        self.tracker, self.outlets = tracker, outlets
        self.has_drift_correction = tracker.has_drift_correction
        self._order, self._geometry_of = order, geometry_of
        self._trial: int | None = None
        self._geometry: DisplayGeometry | None = None
        self._onset_tracker_ms = _NAN
        self._tracker_minus_perf_ms = _NAN

    @classmethod
    def of_session(
        cls, tracker: Tracker, outlets: LslOutlets, *, config: Any, stimuli: StimulusSet, order: Sequence[str]
    ) -> LslTracker:
        """``tracker`` wrapped for a session with ``config`` (:class:`experiment.config.SessionConfig`),
        ``stimuli`` and image ``order``."""
        return cls(tracker, outlets, order=order, geometry_of=lambda image: config.geometry(*stimuli.size(image)))

    # -- markers -------------------------------------------------------------------------------

    def _trial_fields(self) -> dict[str, Any]:
        if self._trial is None:
            return {}
        return {"trial": self._trial, "image": self._order[self._trial]}

    def send_message(self, text: str) -> None:
        perf_s = time.perf_counter()  # the task sends IMAGE_ONSET/OFFSET right after the flip
        self.tracker.send_message(text)
        word, _, rest = text.partition(" ")
        if word == "TRIALID":
            self._trial = int(rest)
            self._geometry = self._geometry_of(self._order[self._trial])
            self._onset_tracker_ms = _NAN
            self.outlets.marker("trial_start", perf_s=perf_s, **self._trial_fields())
        elif word == "IMAGE_ONSET":
            self._onset_tracker_ms = perf_s * 1000.0 + self._tracker_minus_perf_ms
            self.outlets.marker("image_onset", perf_s=perf_s, **self._trial_fields())
        elif word == "IMAGE_OFFSET":
            self.outlets.marker("image_offset", perf_s=perf_s, **self._trial_fields())
        elif word == "TRIAL_RESULT":
            result = _RESULTS.get(int(rest), rest)
            self.outlets.marker("trial_end", perf_s=perf_s, **self._trial_fields(), result=result)

    def calibrate(self) -> CalibrationResult:
        result = self.tracker.calibrate()
        grades = " ".join(f"{v.eye}:{v.grade}" for v in result.validations)
        self.outlets.marker("calibration", perf_s=time.perf_counter(), result=grades or "skipped")
        return result

    def drift_correct(self, x_display_px: float, y_display_px: float) -> DriftResult:
        result = self.tracker.drift_correct(x_display_px, y_display_px)
        offset_deg = _NAN if result.offset_deg is None else float(result.offset_deg)
        fields = self._trial_fields()
        self.outlets.marker("drift_correction", perf_s=time.perf_counter(), **fields, offset_deg=offset_deg)
        return result

    # -- data ------------------------------------------------------------------------------------

    def _sync_clocks(self) -> None:
        """Measure the tracker's clock against ``perf_counter`` (ms)."""
        self._tracker_minus_perf_ms = _min_gap_offset(self.tracker.tracker_time_ms, scale=1000.0)

    def _lsl_time(self, t_tracker_ms: _Time) -> _Time:
        return self.outlets.lsl_time((t_tracker_ms - self._tracker_minus_perf_ms) / 1000.0)

    def drain(self) -> list[TrackerFixation]:
        fixations = self.tracker.drain()
        block = self.tracker.drain_samples()
        if block is not None and block.t_ms.size:
            samples = np.column_stack([block.x_display_px, block.y_display_px, block.pupil])
            self.outlets.gaze(samples, np.asarray(self._lsl_time(block.t_ms)))
        for fixation in fixations:
            start_lsl_s = float(self._lsl_time(fixation.start_tracker_ms))
            self.outlets.fixation(self._fixation_values(fixation), t_lsl_s=start_lsl_s)
        return fixations

    def _fixation_values(self, fixation: TrackerFixation) -> list[float]:
        x_image = y_image = _NAN
        if self._geometry is not None:
            x, y = self._geometry.display_to_image(fixation.x_display_px, fixation.y_display_px)
            x_image, y_image = float(x), float(y)
        onset = self._onset_tracker_ms
        return [
            _NAN if self._trial is None else float(self._trial),
            fixation.start_tracker_ms - onset,
            fixation.end_tracker_ms - onset,
            fixation.duration_ms,
            fixation.x_display_px,
            fixation.y_display_px,
            x_image,
            y_image,
            fixation.pupil,
        ]

    # -- the rest goes to the wrapped tracker ---------------------------------------------------

    def connect(self) -> str:
        description = self.tracker.connect()
        self._sync_clocks()
        return description

    def open_edf(self, name: str) -> None:
        self.tracker.open_edf(name)

    def configure(self, *, screen_width_px: int, screen_height_px: int, sample_rate_hz: int) -> None:
        self.tracker.configure(
            screen_width_px=screen_width_px, screen_height_px=screen_height_px, sample_rate_hz=sample_rate_hz
        )

    def tracker_time_ms(self) -> float:
        return self.tracker.tracker_time_ms()

    def start_recording(self) -> None:
        self.tracker.start_recording()
        self._sync_clocks()  # per recording: follows a slow drift between the clocks

    def stop_recording(self) -> None:
        self.tracker.stop_recording()

    def status_message(self, text: str) -> None:
        self.tracker.status_message(text)

    def take_samples(self) -> SampleBlock | None:
        return self.tracker.take_samples()

    def gaze_position(self) -> tuple[float, float] | None:
        return self.tracker.gaze_position()

    def receive_edf(self, destination) -> EdfTransfer:
        return self.tracker.receive_edf(destination)

    def close(self) -> None:
        self.tracker.close()
