"""The PsychoPy session: drift correction, image trials, records, one shutdown path (SPEC §2, §4).

:class:`Session` runs a whole session from a :class:`~experiment.config.SessionConfig`::

    with Session(config) as session:
        session.run()

Per trial: ``TRIALID`` → drift correction (the product's own screen: central dot, space accepts,
Esc opens the tracker setup, ``p`` pauses, ``s`` skips the trial, ``q`` quits after confirmation;
the real EyeLink runs its own ``doDriftCorrect``; with ``drift_start="gaze"`` recording starts
first and the dot screen also accepts once the gaze has held it, see :class:`GazeHold`) → start
recording (unless a gaze start has) → the image, scaled and
centred by :class:`stimuli.geometry.DisplayGeometry`, for ``duration_ms`` with ``IMAGE_ONSET`` /
``IMAGE_OFFSET`` sent from ``win.callOnFlip`` (so their times are those of the flips) and every
tracker event drained each frame → stop recording → ``TRIAL_RESULT``. Records, audio and the
stream's flush happen between trials only.

Timing (:mod:`experiment.timing`): the refresh period is measured over blank flips when the window
opens. Each trial row holds the measured display duration (onset flip to offset flip,
``stimulus_duration_ms``), ``overrun`` (longer than requested by more than one frame period) and
its dropped frames counted against the measured period; on a display without vsync (Xvfb) those
are None ("not measurable (no vsync)"; on the stream: ``frame_timing="no_vsync"``). The manifest
and ``session_end`` carry the session's totals.

Every loop that waits for a person (calibration, drift correction, pause, quit confirmation)
services the stream each frame, naming what it waits for, so heartbeats keep flowing.

``q`` or Esc while the image is shown aborts the trial (``!V TRIAL_VAR aborted 1``,
``TRIAL_RESULT 2``; nothing of it is written to the records) and asks the operator to confirm
the quit: yes ends the session (:class:`QuitRequested`, so ``--resume`` re-runs that trial), no
runs the trial again from its drift correction (a new ``TRIALID`` with the same number).

Clocks: ``*_session_s`` is ``time.perf_counter()`` relative to the start of this run (the clock
of the microphone alignment; a resumed session's new segment starts it afresh); ``*_tracker_ms``
the tracker's; ``*_psychopy_s`` PsychoPy's ``logging.defaultClock``; ``*_unix_s`` wall time. Each
segment's ``clock_offsets`` in the manifest are simultaneous readings of all of them.
"""

from __future__ import annotations

import logging
import platform
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from typing import Callable, Iterator, Protocol

import numpy as np

from experiment.config import SessionConfig, trial_order
from experiment.preflight import PreflightError, preflight
from experiment.records import SessionRecords
from experiment.timing import (
    Refresh,
    estimate_refresh,
    frame_summary,
    is_overrun,
    offset_is_due,
    session_frame_timing,
)
from experiment.trackers import Tracker, make_tracker
from lookwhere.records import Fixation
from stimuli.geometry import DisplayGeometry
from stimuli.sets import StimulusSet

__all__ = [
    "Session",
    "RecordSink",
    "NullSink",
    "SessionInterrupted",
    "QuitRequested",
    "SkipTrial",
    "GazeHold",
]

logger = logging.getLogger(__name__)

#: Blank flips shown before the refresh measurement (the first ones are irregular) and measured.
REFRESH_WARMUP_FLIPS = 10
REFRESH_MEASURED_FLIPS = 60
#: EyeLink examples wait this long after startRecording so the first samples reach the link.
RECORDING_LEAD_S = 0.1
#: Recording goes on this long past the image offset, so that the fixation under way at the offset
#: ends after it (and the within-display rule leaves it out) instead of being cut short by the stop.
POST_OFFSET_RECORDING_S = 0.3
#: Microphone level below which preflight calls the input silent.
SILENT_DBFS = -80.0
#: How often the frame loop streams the microphone level.
MIC_LEVEL_INTERVAL_S = 0.25


class RecordSink(Protocol):
    """Where the session's live records go (the ZeroMQ stream sender, through an adapter).

    Each record is a dict with ``"kind"`` (``session_start``, ``trial_start``, ``fixation``,
    ``gaze``, ``mic_level``, ``trial_end``, ``session_end``) and exactly the fields of the matching
    :data:`lookwhere.protocol.RECORD_TYPES` class other than ``session``, ``seq`` and ``v``
    (which the sender stamps), so an adapter is ``sender.send(RECORD_TYPES[kind], **fields)``.

    ``send`` must never block (it is called inside the frame loop); ``service`` is called once per
    frame, also while the task waits for a person, to do a bounded amount of I/O and send the
    heartbeats: ``waiting`` names what the task waits for (one of
    :data:`lookwhere.protocol.WAITING_FOR`, None while it shows an image); ``flush`` between
    trials; ``close`` at shutdown. ``wants_gaze``: whether to send a ``gaze`` record every frame
    of an image (a live cursor).
    """

    wants_gaze: bool

    def send(self, record: dict) -> None: ...

    def service(self, *, waiting: str | None = None) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class NullSink:
    """A :class:`RecordSink` that drops everything (no live stream)."""

    wants_gaze = False

    def send(self, record: dict) -> None:
        pass

    def service(self, *, waiting: str | None = None) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class SessionInterrupted(Exception):
    """SIGTERM received: the session shuts down through its normal path."""


class QuitRequested(Exception):
    """The operator quit (confirmed)."""


class SkipTrial(Exception):
    """The operator skipped the trial at its drift-correction screen."""


class _TrialAborted(Exception):
    """The operator pressed q or Esc during the image period."""


#: ``TRIAL_RESULT`` codes in the EDF.
TRIAL_DONE, TRIAL_SKIPPED, TRIAL_ABORTED = 0, 1, 2


class GazeHold:
    """Whether the gaze has stayed on a target for a hold time (gaze-contingent start).

    Feed it every gaze sample with :meth:`update`; a sample off the target or a missing one
    (None: blink, lost eye, no sample yet) restarts the hold.

    Parameters
    ----------
    x_px, y_px : float
        Target centre, display pixels.
    radius_px : float
        Largest distance from the centre that counts as on the target, display pixels (> 0).
    hold_ms : float
        How long the gaze must stay on the target, ms (> 0).
    """

    def __init__(self, x_px: float, y_px: float, *, radius_px: float, hold_ms: float) -> None:
        for name, value in (("radius_px", radius_px), ("hold_ms", hold_ms)):
            if not value > 0:
                raise ValueError(f"{name} must be positive; got {value!r}")
        self.x_px, self.y_px = float(x_px), float(y_px)
        self.radius_px = float(radius_px)
        self.hold_ms = float(hold_ms)
        self._since_ms: float | None = None
        self.held_ms = 0.0  #: how long the gaze has been on the target as of the last update

    def reset(self) -> None:
        """Restart the hold (after a pause or a recalibration the gaze must hold anew)."""
        self._since_ms = None
        self.held_ms = 0.0

    def update(self, gaze: tuple[float, float] | None, t_ms: float) -> bool:
        """Take the sample ``gaze`` (display px, or None) seen at ``t_ms`` (any ms clock,
        non-decreasing); return True once the gaze has been on the target for ``hold_ms``."""
        if gaze is None or np.hypot(gaze[0] - self.x_px, gaze[1] - self.y_px) > self.radius_px:
            self.reset()
            return False
        if self._since_ms is None:
            self._since_ms = t_ms
        self.held_ms = t_ms - self._since_ms
        return self.held_ms >= self.hold_ms


def _ends_at_stop(event, stop_tracker_ms: float) -> bool:
    """Whether a fixation ended with the recording: its last sample is the last one before the
    stop (the tracker closes the fixation under way when recording stops). One sample interval is
    ``duration - (end - start)`` (EyeLink's ``EFIX`` convention)."""
    sample_ms = event.duration_ms - (event.end_tracker_ms - event.start_tracker_ms)
    return event.end_tracker_ms + sample_ms >= stop_tracker_ms


def _streamed_dropped_frames(count: int | None) -> dict:
    """``dropped_frames`` and ``frame_timing`` of a ``trial_end`` or ``session_end`` record.

    The files say "not measurable" with None; the stream says it with ``frame_timing`` =
    ``"no_vsync"`` and a placeholder 0 (see :data:`lookwhere.protocol.FRAME_TIMINGS`), since
    servers that predate the field add the counts up.
    """
    if count is None:
        return {"dropped_frames": 0, "frame_timing": "no_vsync"}
    return {"dropped_frames": count, "frame_timing": "vsync"}


def _versions() -> dict:
    from importlib import metadata

    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in (
        "lookwhere",
        "psychopy",
        "sr-research-pylink",
        "sounddevice",
        "soundfile",
        "numpy",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


class Session:
    """One participant's session; use as a context manager so every exit saves everything.

    Parameters
    ----------
    config : SessionConfig
        The settings (for ``resume``, the ones saved in the session folder).
    sink : RecordSink or None
        Live record stream; None = :class:`NullSink`.
    resume : bool
        Continue the session in ``config.session_dir`` at its first unfinished trial, recording a
        new EDF segment. Without it, a folder that already holds trials is refused.
    keys : callable or None
        Returns the names of the keys pressed since the last call (PsychoPy names: ``"space"``,
        ``"escape"``); default ``psychopy.event.getKeys``. Tests inject scripted keys here.

    Attributes
    ----------
    screen : str or None
        What the window shows while keys are read: ``"drift"``, ``"image"``, ``"paused"``,
        ``"confirm"`` (lets a scripted key source press each key on the intended screen).
    refresh : experiment.timing.Refresh or None
        The refresh period measured when the window opened.
    """

    def __init__(
        self,
        config: SessionConfig,
        *,
        sink: RecordSink | None = None,
        resume: bool = False,
        keys: Callable[[], list[str]] | None = None,
    ) -> None:
        self.config = config
        self.sink = sink if sink is not None else NullSink()
        self.resume = resume
        self._keys = keys
        self.stimuli = StimulusSet(config.stimuli)
        self.order = trial_order(self.stimuli.image_ids, seed=config.seed, trials=config.trials)
        self.records = SessionRecords(config.session_dir)
        self.window = None
        self.tracker: Tracker | None = None
        self.microphone = None
        self.manifest: dict = {}
        self._segment: dict | None = None  # this run's entry in manifest["segments"]
        self._recording = False
        self.screen: str | None = None
        self._closed = False
        self._t0 = time.perf_counter()
        self.refresh: Refresh | None = None
        # The period of the overrun rule: the measured refresh, or the nominal one where flips
        # are not paced by a display.
        self._frame_period_ms = 1000.0 / config.refresh_hz
        self._waiting: str | None = None  # what the task waits for, in its heartbeats
        self._stimuli: dict = {}  # visual stimuli made once per window (see _make_stimuli)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Session":
        self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        # Ctrl-C must always reach the shutdown path: a process started in the background of a
        # non-interactive shell inherits SIGINT ignored.
        self._previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            status = "completed"
        elif issubclass(kind, QuitRequested):
            status = "quit by operator"
        elif issubclass(kind, (KeyboardInterrupt, SessionInterrupted)):
            status = f"interrupted ({kind.__name__})"
        else:
            status = f"failed: {kind.__name__}: {error}"
        self.close(status)
        signal.signal(signal.SIGTERM, self._previous_sigterm)
        signal.signal(signal.SIGINT, self._previous_sigint)

    def _on_sigterm(self, signum, frame) -> None:
        raise SessionInterrupted("SIGTERM")

    def _elapsed_s(self, t_perf_s: float) -> float:
        return t_perf_s - self._t0

    def start(self) -> list[dict]:
        """Preflight, open the records, window, microphone and tracker; return done trials."""
        existing = self.records.completed_trials()
        if existing and not self.resume:
            raise ValueError(
                f"{self.records.folder} already holds {len(existing)} trials; pass --resume to "
                "continue that session or choose another --out/--participant"
            )
        if self.resume and len(existing) >= len(self.order):
            raise ValueError(
                f"{self.records.folder}: all {len(self.order)} trials are done; nothing to resume"
            )
        self.microphone = preflight(self.config, self.stimuli, self.order[len(existing) :])
        done = self._open_records()
        if self.microphone is not None:
            self.microphone.start()
            time.sleep(0.3)
            if not self.microphone.level_dbfs > SILENT_DBFS:
                raise PreflightError(
                    [
                        f"microphone {self.microphone.device_name!r} is silent "
                        f"({self.microphone.level_dbfs:.1f} dBFS); "
                        "check that it is plugged in and unmuted"
                    ]
                )
        self._open_window()
        segment = len(self.manifest.get("segments", []))
        # The segment is in the manifest before the tracker is touched, so that the shutdown path
        # knows which EDF to fetch whatever fails next.
        self._segment = {
            "segment": segment,
            "edf_name": self.config.edf_segment_name(segment),
            "versions": _versions(),
            "started_unix_s": time.time(),
            "first_trial": len(done),
            "refresh": self.refresh.to_dict(),
            "frame_period_ms": self._frame_period_ms,
            "microphone": (
                None
                if self.microphone is None
                else {
                    "device": self.microphone.device_name,
                    "samplerate_hz": self.microphone.samplerate_hz,
                    "latency_s": self.microphone.latency_s,
                }
            ),
            "calibrations": [],
        }
        self.manifest.setdefault("segments", []).append(self._segment)
        self.tracker = make_tracker(
            self.config, self.stimuli, window=self.window, idle=self._service
        )
        self._segment["tracker"] = self.tracker.connect()
        self.tracker.open_edf(self._segment["edf_name"])
        self.tracker.configure(
            screen_width_px=self.config.screen_width_px,
            screen_height_px=self.config.screen_height_px,
            sample_rate_hz=self.config.sample_rate_hz,
        )
        self._segment["clock_offsets"] = self._clock_offsets()
        # Announced before the calibration, whose heartbeats then belong to a known session.
        self.sink.send(
            {
                "kind": "session_start",
                "participant": self.config.participant,
                "tracker": self.config.tracker,
                "n_trials": len(self.order),
                "screen_width_px": self.config.screen_width_px,
                "screen_height_px": self.config.screen_height_px,
                "wall_time_s": time.time(),
            }
        )
        self._calibrate()
        return done

    def _open_records(self) -> list[dict]:
        self.records.create()
        if self.resume:
            done = self.records.repair()
            self.manifest = self.records.read_manifest()
            expected = [row["image"] for row in done]
            if expected != self.order[: len(done)]:
                raise ValueError(
                    f"the trials recorded in {self.records.folder} do not follow the order of its "
                    "configuration; was config.json edited? Resume with the original configuration"
                )
            logger.info("resuming at trial %d of %d", len(done), len(self.order))
        else:
            done = []
            self.config.save(self.records.config_path)
            self.manifest = {
                "session": self.config.session_id,
                "participant": self.config.participant,
                "seed": self.config.seed,
                "order": self.order,
                "created_unix_s": time.time(),
            }
        self.manifest["status"] = "running"
        return done

    def _clock_offsets(self) -> dict:
        """Simultaneous readings of every clock, to convert between them later."""
        from psychopy import logging as psychopy_logging

        perf = time.perf_counter()
        offsets = {
            "session_s": self._elapsed_s(perf),
            "psychopy_s": psychopy_logging.defaultClock.getTime(),
            "unix_s": time.time(),
        }
        if self.tracker is not None:
            offsets["tracker_ms"] = self.tracker.tracker_time_ms()
        return offsets

    def _open_window(self) -> None:
        from psychopy import visual

        config = self.config
        self.window = visual.Window(
            size=(config.screen_width_px, config.screen_height_px),
            fullscr=config.fullscreen,
            units="pix",
            color="black",
            colorSpace="rgb",
            allowGUI=False,
            waitBlanking=True,
        )
        self.window.mouseVisible = False
        size = tuple(int(v) for v in self.window.size)
        if size != (config.screen_width_px, config.screen_height_px):
            raise PreflightError(
                [
                    f"the window is {size[0]}×{size[1]} px but the configuration says "
                    f"{config.screen_width_px}×{config.screen_height_px}; "
                    "set the screen size to match the display"
                ]
            )
        self.refresh = self._measure_refresh()
        if self.refresh.vsync:
            self._frame_period_ms = self.refresh.period_ms
            logger.info("refresh period %.2f ms (measured)", self.refresh.period_ms)
        else:
            logger.warning(
                "the display does not pace flips (%s): dropped frames are not measurable and the "
                "overrun rule uses the nominal %g Hz",
                self.refresh.reason,
                config.refresh_hz,
            )
        self._make_stimuli()

    def _measure_refresh(self) -> Refresh:
        """Flip a blank screen; the refresh its flip intervals show
        (:func:`experiment.timing.estimate_refresh`)."""
        for _ in range(REFRESH_WARMUP_FLIPS):
            self.window.flip()
        flips = np.empty(REFRESH_MEASURED_FLIPS + 1)
        for i in range(flips.size):
            self.window.flip()
            flips[i] = time.perf_counter()
        return estimate_refresh(np.diff(flips) * 1000.0)

    def _make_stimuli(self) -> None:
        """The visual stimuli of every trial, made once: a stimulus made per trial holds OpenGL
        textures and sits in reference cycles, so it is freed only by a full garbage collection
        (the 1440×1080 image texture of every trial piled up: +1.3–1.6 MB RSS per trial)."""
        from psychopy import visual

        window = self.window
        self._stimuli = {
            "image": visual.ImageStim(window, image=None, units="pix", pos=(0, 0)),
            "dot": visual.Circle(
                window, radius=8, fillColor="white", lineColor="white", units="pix"
            ),
            "dot_centre": visual.Circle(
                window, radius=2, fillColor="black", lineColor="black", units="pix"
            ),
            "message": visual.TextStim(window, text="", color="white", units="pix", height=32),
        }

    @contextmanager
    def _waiting_for(self, what: str) -> Iterator[None]:
        """Name what the task waits for in the heartbeats while the block runs (nestable)."""
        previous, self._waiting = self._waiting, what
        try:
            yield
        finally:
            self._waiting = previous

    def _service(self) -> None:
        """The stream's per-frame I/O and heartbeat (also called by the tracker's setup screens)."""
        self.sink.service(waiting=self._waiting)

    def _get_keys(self) -> list[str]:
        if self._keys is not None:
            return self._keys()
        from psychopy import event

        return event.getKeys()

    def _start_recording(self) -> None:
        self.tracker.start_recording()
        self._recording = True

    def _stop_recording(self) -> None:
        self.tracker.stop_recording()
        self._recording = False

    def _calibrate(self) -> None:
        # The tracker's setup runs in offline mode: a gaze-contingent screen's recording pauses.
        recording = self._recording
        if recording:
            self._stop_recording()
        with self._waiting_for("calibration"):
            result = self.tracker.calibrate()
        if recording:
            self._start_recording()
        logger.info("calibration: %s", result)
        self._segment["calibrations"].append({"unix_s": time.time(), **result})
        self.records.write_manifest(self.manifest)

    def close(self, status: str = "completed") -> None:
        """Save everything and release every resource; safe to call more than once.

        Each step runs even when an earlier one fails, so a broken device never costs the records.
        """
        if self._closed:
            return
        self._closed = True
        logger.info("closing session: %s", status)
        segment = self._segment

        def attempt(step: str, action: Callable[[], object]):
            try:
                return action()
            except Exception:  # noqa: BLE001 — shutdown must go on; the failure is logged.
                logger.exception("shutdown step %r failed", step)
                return None

        if self.tracker is not None:
            if self._recording:
                attempt("stop recording", self.tracker.stop_recording)
            if segment is not None:
                segment["edf"] = attempt(
                    "receive EDF",
                    lambda: self.tracker.receive_edf(
                        self.records.folder / f"{segment['edf_name']}.edf"
                    ),
                )
            attempt("close tracker", self.tracker.close)
        if self.microphone is not None:
            attempt("close microphone", self.microphone.close)
            if segment is not None:
                segment["mic_overruns"] = self.microphone.overruns
        rows = attempt("read the trials", self.records.completed_trials) or []
        timing = session_frame_timing(rows, refresh=self.refresh)
        attempt(
            "send session end",
            lambda: self.sink.send(
                {
                    "kind": "session_end",
                    "reason": status,
                    "n_trials": len(rows),
                    "t_session_ms": self._elapsed_s(time.perf_counter()) * 1000.0,
                    "refresh_period_ms": (
                        float("nan") if self.refresh is None else self.refresh.period_ms
                    ),
                    **_streamed_dropped_frames(timing["dropped_frames"]),
                    "overruns": timing["overruns"],
                }
            ),
        )
        attempt("close stream", self.sink.close)
        if self.window is not None:
            attempt("close window", self.window.close)
        if segment is not None:
            segment["ended_unix_s"] = time.time()
            segment["status"] = status
        if self.manifest:
            self.manifest["status"] = status
            self.manifest["trials_done"] = len(rows)
            # frame_timing, dropped_frames (+ _note), overruns; each run's refresh: in its segment
            self.manifest.update(timing)
            attempt("write manifest", lambda: self.records.write_manifest(self.manifest))

    # ------------------------------------------------------------------ trials
    def run(self) -> int:
        """Run every remaining trial; return how many ran in this call."""
        done = self.start()
        for index in range(len(done), len(self.order)):
            self.run_trial(index)
        return len(self.order) - len(done)

    def _drift_correction(self) -> dict:
        """The drift-correction step; return its result for the trial row.

        With ``drift_start="gaze"`` recording is on when this returns (it started before the dot
        screen, whose gaze samples it needs).
        """
        centre = (self.config.screen_width_px / 2, self.config.screen_height_px / 2)
        gaze_start = self.config.drift_start == "gaze"
        if self.tracker.has_drift_correction:
            import pylink

            while True:
                result = self.tracker.drift_correct(*centre)
                if result.get("error") != pylink.ESC_KEY:
                    break
            if not gaze_start:
                return result
            # doDriftCorrect needs offline mode: the gaze-contingent start follows it.
            self._start_recording()
            return {**result, **self._own_drift_screen()}
        if gaze_start:
            self._start_recording()
        screen = self._own_drift_screen()
        return {**self.tracker.drift_correct(*centre), **screen}

    def _own_drift_screen(self) -> dict:
        """Central dot until space, the gaze's hold on it (``drift_start="gaze"``) or the
        simulated participant's auto-accept; return how it was accepted for the trial row.

        Operator keys: Esc opens the tracker setup (recalibration), ``p`` pauses until ``p`` again,
        ``s`` skips the trial (:class:`SkipTrial`), ``q`` quits after confirmation.
        """
        dot, centre = self._stimuli["dot"], self._stimuli["dot_centre"]
        config = self.config
        auto_ms = config.auto_accept_drift_ms
        hold = None
        if config.drift_start == "gaze":
            hold = GazeHold(
                config.screen_width_px / 2,
                config.screen_height_px / 2,
                radius_px=config.gaze_radius_px,
                hold_ms=config.gaze_hold_ms,
            )
        started = time.perf_counter()
        recalibrations = 0
        self.screen = "drift"
        self._get_keys()  # forget keys pressed during the previous trial
        while True:
            dot.draw()
            centre.draw()
            self.window.flip()
            self._service()
            if hold is not None:
                # Only the newest sample matters; the queued events of this screen are not the
                # image's fixations and would otherwise pile up on the link.
                self.tracker.drain()
                if hold.update(self.tracker.gaze_position(), time.perf_counter() * 1000.0):
                    accepted_by = "gaze"
                    break
            keys = self._get_keys()
            if "space" in keys:
                accepted_by = "space"
                break
            if "escape" in keys:
                self._calibrate()
                recalibrations += 1
            if "q" in keys:
                self._confirm_quit()
            if "s" in keys:
                raise SkipTrial
            if "p" in keys:
                self._show_until(
                    "Paused: press p to continue", "p", screen="paused", waiting="pause"
                )
            if hold is not None and {"escape", "q", "p"} & set(keys):
                hold.reset()  # the dot was off the screen meanwhile
            self.screen = "drift"
            if auto_ms is not None and (time.perf_counter() - started) * 1000.0 >= auto_ms:
                accepted_by = "auto"
                break
        outcome = {
            "accepted_by": accepted_by,
            "wait_ms": (time.perf_counter() - started) * 1000.0,
            "recalibrations": recalibrations,
        }
        if hold is not None:
            outcome["gaze_hold_ms"] = hold.held_ms
        return outcome

    def _show_until(self, message: str, *keys: str, screen: str, waiting: str) -> str:
        """Show ``message`` (as :attr:`screen` ``screen``; heartbeats say ``waiting``) until one
        of ``keys`` is pressed; return that key."""
        self.screen = screen
        text = self._stimuli["message"]
        text.text = message
        with self._waiting_for(waiting):
            while True:
                text.draw()
                self.window.flip()
                self._service()
                pressed = [key for key in self._get_keys() if key in keys]
                if pressed:
                    return pressed[0]

    def _confirm_quit(self) -> None:
        answer = self._show_until(
            "Quit the session?  y = yes, n = no",
            "y",
            "n",
            "escape",
            screen="confirm",
            waiting="confirm_quit",
        )
        if answer == "y":
            raise QuitRequested("operator confirmed quit")

    def run_trial(self, index: int) -> dict:
        """Run trial ``index`` of the order and append its records; return its row.

        A run aborted during its image period (q or Esc) that the operator does not confirm as a
        quit is run again from the drift correction; the row counts those runs in
        ``aborted_runs``.
        """
        config, tracker = self.config, self.tracker
        image_id = self.order[index]
        path = self.stimuli.path(image_id)
        width, height = self.stimuli.size(image_id)
        geometry = config.geometry(width, height)
        stimulus = self._stimuli["image"]  # one texture, refilled per trial
        stimulus.image = str(path)
        stimulus.size = (geometry.display_width_px, geometry.display_height_px)
        aborted_runs = 0
        while True:
            tracker.send_message(f"TRIALID {index}")
            tracker.status_message(f"TRIAL {index + 1}/{len(self.order)} {image_id}")
            tracker.send_message(f"!V TRIAL_VAR image {image_id}")
            try:
                with self._waiting_for("drift_correction"):
                    drift = self._drift_correction()
            except SkipTrial:
                return self._skip_trial(index, image_id)
            try:
                row, fixations = self._present(index, stimulus, geometry, drift)
            except _TrialAborted:
                aborted_runs += 1
                logger.warning(
                    "trial %d/%d (%s) aborted during the image; asking to confirm the quit",
                    index + 1,
                    len(self.order),
                    image_id,
                )
                self._confirm_quit()  # QuitRequested on yes: the trial stays undone
                continue
            row["aborted_runs"] = aborted_runs
            # The stream's trial_end is journalled before the row marks the trial done: killed in
            # between, the trial runs again on --resume and the server drops this run; never a
            # trial done on disk whose end the stream lacks.
            self.sink.send(
                {
                    "kind": "trial_end",
                    "trial": index,
                    "image": image_id,
                    "offset_tracker_ms": row["offset_tracker_ms"],
                    "offset_session_ms": row["offset_session_s"] * 1000.0,
                    "n_fixations": row["fixations"],
                    **_streamed_dropped_frames(row["dropped_frames"]),
                    "aborted": False,
                    "display_duration_ms": row["stimulus_duration_ms"],
                    "overrun": row["overrun"],
                }
            )
            self.records.append_trial(row, fixations)
            self.sink.flush()
            log = logger.warning if row["overrun"] else logger.info
            log(
                "trial %d/%d (%s): %d fixations, shown %.1f ms of %g%s, dropped frames: %s",
                index + 1,
                len(self.order),
                image_id,
                row["fixations"],
                row["stimulus_duration_ms"],
                config.duration_ms,
                " (OVERRUN)" if row["overrun"] else "",
                "not measurable" if row["dropped_frames"] is None else row["dropped_frames"],
            )
            return row

    def _skip_trial(self, index: int, image_id: str) -> dict:
        """Record trial ``index`` as skipped: it counts as done (resume does not repeat it) and
        has no data."""
        if self._recording:  # a gaze-contingent drift screen records
            self._stop_recording()
        self.tracker.send_message("!V TRIAL_VAR skipped 1")
        self.tracker.send_message(f"TRIAL_RESULT {TRIAL_SKIPPED}")
        row = {
            "trial": index,
            "image": image_id,
            "segment": self._segment["segment"],
            "skipped": True,
            "fixations": 0,
        }
        self.records.append_trial(row, [])
        logger.info(
            "trial %d/%d (%s) skipped by the operator", index + 1, len(self.order), image_id
        )
        return row

    def _present(
        self, index: int, stimulus, geometry: DisplayGeometry, drift: dict
    ) -> tuple[dict, list[Fixation]]:
        """The image period of trial ``index``: recording, image, audio; return the trial row
        and its fixations (nothing is written to the records here).

        Raises
        ------
        _TrialAborted
            q or Esc pressed while the image was shown; recording is stopped, the trial's
            fixations and audio are dropped.
        """
        from psychopy.logging import defaultClock as psychopy_clock

        config, tracker, window = self.config, self.tracker, self.window
        image_id = self.order[index]
        path = self.stimuli.path(image_id)
        if not self._recording:
            self._start_recording()
            time.sleep(RECORDING_LEAD_S)
        onset: dict = {}
        offset: dict = {}

        def mark(times: dict, message: str) -> None:
            # Runs right after the flip returns: every clock is read back to back.
            times["perf_s"] = time.perf_counter()
            times["tracker_ms"] = tracker.tracker_time_ms()
            tracker.send_message(message)
            times["psychopy_s"] = psychopy_clock.getTime()
            times["unix_s"] = time.time()

        window.callOnFlip(mark, onset, "IMAGE_ONSET")
        stimulus.draw()
        window.flip()
        tracker.send_message(
            f"!V IMGLOAD CENTER {path.name} "
            f"{config.screen_width_px // 2} {config.screen_height_px // 2} "
            f"{geometry.display_width_px} {geometry.display_height_px}"
        )
        onset_session_ms = self._elapsed_s(onset["perf_s"]) * 1000.0
        self.sink.send(
            {
                "kind": "trial_start",
                "trial": index,
                "image": image_id,
                "onset_tracker_ms": onset["tracker_ms"],
                "onset_session_ms": onset_session_ms,
                "stimulus_duration_ms": config.duration_ms,
                **geometry.to_dict(),
            }
        )
        next_level_s = onset["perf_s"]
        pending: list = []  # (TrackerFixation) of this trial, converted at the end
        flips = [onset["perf_s"]]
        overhead_s = []
        deadline_s = onset["perf_s"] + config.duration_ms / 1000.0
        self.screen = "image"
        while True:
            busy = time.perf_counter()
            for event in tracker.drain():
                pending.append(event)
                self.sink.send(
                    self._live_record(
                        event, index, image_id, geometry, onset["tracker_ms"], onset_session_ms
                    )
                )
            if self.sink.wants_gaze:  # the dashboard's live cursor, once per frame
                self._send_gaze(index, busy)
            if self.microphone is not None and busy >= next_level_s:
                next_level_s = busy + MIC_LEVEL_INTERVAL_S
                self.sink.send(
                    {
                        "kind": "mic_level",
                        "trial": index,
                        "t_session_ms": self._elapsed_s(busy) * 1000.0,
                        **self.microphone.level(),
                    }
                )
            self._service()
            if {"q", "escape"} & set(self._get_keys()):
                self._abort_image(index, image_id, mark, flips, len(pending))
            overhead_s.append(time.perf_counter() - busy)
            if offset_is_due(flips, deadline_s, refresh=self.refresh):
                break
            stimulus.draw()
            window.flip()
            flips.append(time.perf_counter())
        window.callOnFlip(mark, offset, "IMAGE_OFFSET")
        window.flip()
        flips.append(offset["perf_s"])
        time.sleep(max(0.0, offset["perf_s"] + POST_OFFSET_RECORDING_S - time.perf_counter()))
        stop_tracker_ms = tracker.tracker_time_ms()
        self._stop_recording()
        # The fixation under way at the stop ends with the recording, cut short (flagged truncated);
        # it and those after the offset are streamed too, and the within-display rule drops them.
        for event in tracker.drain():
            pending.append(event)
            self.sink.send(
                self._live_record(
                    event, index, image_id, geometry, onset["tracker_ms"], onset_session_ms,
                    truncated=_ends_at_stop(event, stop_tracker_ms),
                )
            )

        stimulus_duration_ms = (offset["perf_s"] - onset["perf_s"]) * 1000.0
        audio = None
        if self.microphone is not None:
            audio_path = self.records.audio_dir / f"trial{index:03d}_{image_id}.wav"
            audio = self.microphone.save(
                audio_path, start_s=onset["perf_s"], end_s=offset["perf_s"]
            )
            tracker.send_message(f"!V TRIAL_VAR mic_file {audio_path.name}")
        tracker.send_message(f"TRIAL_RESULT {TRIAL_DONE}")
        fixations = [
            replace(
                self._fixation(e, index, image_id, geometry, onset["tracker_ms"]),
                stimulus_duration_ms=stimulus_duration_ms,
                truncated=_ends_at_stop(e, stop_tracker_ms),
            )
            for e in pending
        ]
        overhead_us = np.asarray(overhead_s) * 1e6
        intervals_ms = np.diff(flips) * 1000.0
        row = {
            "trial": index,
            "image": image_id,
            "segment": self._segment["segment"],
            "onset_session_s": self._elapsed_s(onset["perf_s"]),
            "onset_tracker_ms": onset["tracker_ms"],
            "onset_psychopy_s": onset["psychopy_s"],
            "onset_unix_s": onset["unix_s"],
            "offset_session_s": self._elapsed_s(offset["perf_s"]),
            "offset_tracker_ms": offset["tracker_ms"],
            "stimulus_duration_ms": stimulus_duration_ms,
            "requested_duration_ms": config.duration_ms,
            "overrun": is_overrun(
                stimulus_duration_ms,
                requested_ms=config.duration_ms,
                period_ms=self._frame_period_ms,
            ),
            "frame_period_ms": self._frame_period_ms,
            **frame_summary(intervals_ms, refresh=self.refresh),
            "loop_overhead_p50_us": float(np.percentile(overhead_us, 50)),
            "loop_overhead_p99_us": float(np.percentile(overhead_us, 99)),
            "frame_intervals_ms": np.round(intervals_ms, 3).tolist(),
            "drift_correction": drift,
            "mic_file": None if audio is None else f"audio/{audio['file']}",
            "mic_offset_ms": None if audio is None else audio["offset_ms"],
            "mic_frames": None if audio is None else audio["frames"],
            "mic_level_dbfs": None if audio is None else audio["level_dbfs"],
            "mic_overruns": None if audio is None else audio["overruns"],
            "fixations": len(fixations),
            "skipped": False,
            "geometry": geometry.to_dict(),
        }
        return row, fixations

    def _abort_image(
        self, index: int, image_id: str, mark, flips: list[float], n_fixations: int
    ) -> None:
        """End the image period at the next flip and raise :class:`_TrialAborted`.

        The stream gets the ``trial_end`` of the aborted run (its ``trial_start`` and fixations
        were already sent); the EDF gets ``IMAGE_OFFSET``, ``!V TRIAL_VAR aborted 1`` and
        ``TRIAL_RESULT 2``.
        """
        offset: dict = {}
        self.window.callOnFlip(mark, offset, "IMAGE_OFFSET")
        self.window.flip()
        flips.append(offset["perf_s"])
        self._stop_recording()
        self.tracker.drain()  # the aborted run's last events: not kept
        self.tracker.send_message("!V TRIAL_VAR aborted 1")
        self.tracker.send_message(f"TRIAL_RESULT {TRIAL_ABORTED}")
        shown_ms = (offset["perf_s"] - flips[0]) * 1000.0
        self.sink.send(
            {
                "kind": "trial_end",
                "trial": index,
                "image": image_id,
                "offset_tracker_ms": offset["tracker_ms"],
                "offset_session_ms": self._elapsed_s(offset["perf_s"]) * 1000.0,
                "n_fixations": n_fixations,
                **_streamed_dropped_frames(
                    frame_summary(np.diff(flips) * 1000.0, refresh=self.refresh)["dropped_frames"]
                ),
                "aborted": True,
                "display_duration_ms": shown_ms,
                "overrun": is_overrun(
                    shown_ms, requested_ms=self.config.duration_ms, period_ms=self._frame_period_ms
                ),
            }
        )
        self.sink.flush()
        raise _TrialAborted

    def _fixation(
        self, event, trial: int, image_id: str, geometry: DisplayGeometry, onset_tracker_ms: float
    ) -> Fixation:
        x_image, y_image = geometry.display_to_image(event.x_display_px, event.y_display_px)
        return Fixation(
            participant=self.config.participant,
            session=self.config.session_id,
            trial=trial,
            image=image_id,
            eye=event.eye,
            start_ms=event.start_tracker_ms - onset_tracker_ms,
            end_ms=event.end_tracker_ms - onset_tracker_ms,
            duration_ms=event.duration_ms,
            x_display_px=event.x_display_px,
            y_display_px=event.y_display_px,
            x_image_px=float(x_image),
            y_image_px=float(y_image),
            stimulus_duration_ms=self.config.duration_ms,
            pupil=event.pupil,
        )

    def _send_gaze(self, trial: int, now_s: float) -> None:
        gaze = self.tracker.gaze_position()
        if gaze is not None:
            self.sink.send(
                {
                    "kind": "gaze",
                    "trial": trial,
                    "t_tracker_ms": self.tracker.tracker_time_ms(),
                    "t_session_ms": self._elapsed_s(now_s) * 1000.0,
                    "eye": "",
                    "x_display_px": gaze[0],
                    "y_display_px": gaze[1],
                    "pupil": float("nan"),
                }
            )

    def _live_record(
        self,
        event,
        trial: int,
        image_id: str,
        geometry: DisplayGeometry,
        onset_tracker_ms: float,
        onset_session_ms: float,
        truncated: bool = False,
    ) -> dict:
        """The streamed form of a fixation: the fixation record (with the nominal stimulus duration;
        the file holds the measured one) plus its start and end on the tracker and session clocks.
        """
        record = asdict(replace(self._fixation(event, trial, image_id, geometry, onset_tracker_ms),
                                truncated=truncated))
        del record["session"]  # the stream stamps its own
        record.update(
            kind="fixation",
            start_tracker_ms=event.start_tracker_ms,
            end_tracker_ms=event.end_tracker_ms,
            start_session_ms=onset_session_ms + record["start_ms"],
            end_session_ms=onset_session_ms + record["end_ms"],
        )
        return record
