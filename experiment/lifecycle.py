"""A session's life cycle: signals, what it opens and in which order, its manifest and recording
segments, and the one path that saves and closes everything (SPEC §4).

:meth:`Lifecycle.open` runs, in order: the resume check → preflight (every check that can fail
before the participant sees anything) → the session records → the microphone → the window (its
refresh measured over blank flips, :func:`experiment.timing.estimate_refresh`) → a new recording
segment in the manifest (before the tracker is touched, so the shutdown knows which EDF to fetch
whatever fails next) → the tracker (connect, EDF, configuration) → ``session_start`` → calibration.
It returns the open :class:`Devices`. :meth:`Lifecycle.close` saves and releases whatever was
opened, each step even when an earlier one fails, so a broken device never costs the records.
With Lab Streaming Layer outlets (``lookwhere run --lsl``, :mod:`experiment.lsl`) they open after
the records (waiting for a recorder, when asked to) and the tracker is wrapped so that its data and
messages also go to them.

Clocks: ``*_session_s`` is ``time.perf_counter()`` relative to the start of this run
(:class:`SessionClock`, the clock of the microphone alignment; a resumed session's new segment
starts it afresh); ``*_tracker_ms`` the tracker's; ``*_psychopy_s`` PsychoPy's
``logging.defaultClock``; ``*_unix_s`` wall time. Each segment's ``clock_offsets`` are simultaneous
readings of all of them.
"""

from __future__ import annotations

import logging
import platform
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from experiment.config import SessionConfig
from experiment.microphone import Microphone
from experiment.preflight import PreflightError, preflight
from experiment.quality import setup_text, validation_records
from experiment.records import SessionRecords
from experiment.services import FrameServices
from experiment.timing import Refresh, estimate_refresh, session_frame_timing, streamed_frame_timing
from experiment.trackers import Tracker, make_tracker
from lookwhere.protocol import SessionEnd, SessionStart
from stimuli.sets import StimulusSet

if TYPE_CHECKING:
    from experiment.lsl import LslOutlets

__all__ = [
    "SessionInterrupted",
    "Signals",
    "SessionClock",
    "Segment",
    "Manifest",
    "Visuals",
    "Devices",
    "Lifecycle",
    "exit_status",
]

logger = logging.getLogger(__name__)

#: Blank flips shown before the refresh measurement (the first ones are irregular) and measured.
REFRESH_WARMUP_FLIPS = 10
REFRESH_MEASURED_FLIPS = 60
#: Microphone level below which the session refuses to start (the input is silent).
SILENT_DBFS = -80.0
#: Packages whose versions each segment records.
_VERSIONED = ("lookwhere", "psychopy", "sr-research-pylink", "sounddevice", "soundfile", "numpy")


class SessionInterrupted(Exception):
    """SIGTERM received: the session shuts down through its normal path."""


class Signals:
    """While installed, SIGTERM raises :class:`SessionInterrupted` and SIGINT
    :class:`KeyboardInterrupt`, so both reach the shutdown path."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_interrupted)
        # Ctrl-C must always reach the shutdown path: a process started in the background of a
        # non-interactive shell inherits SIGINT ignored.
        self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def _raise_interrupted(signum: int, frame: object) -> None:
    raise SessionInterrupted("SIGTERM")


def exit_status(kind: type[BaseException] | None, error: BaseException | None) -> str:
    """The manifest's ``status`` of a session left with exception ``kind`` (None: completed)."""
    from experiment.operator_screens import QuitRequested

    if kind is None:
        return "completed"
    if issubclass(kind, QuitRequested):
        return "quit by operator"
    if issubclass(kind, (KeyboardInterrupt, SessionInterrupted)):
        return f"interrupted ({kind.__name__})"
    return f"failed: {kind.__name__}: {error}"


class SessionClock:
    """``time.perf_counter()`` relative to the start of this run of the session."""

    def __init__(self) -> None:
        self.t0_s = time.perf_counter()

    def session_s(self, perf_s: float) -> float:
        """``perf_s`` (a ``perf_counter`` reading) on the session clock, s."""
        return perf_s - self.t0_s

    def session_ms(self, perf_s: float) -> float:
        """``perf_s`` on the session clock, ms."""
        return (perf_s - self.t0_s) * 1000.0


_Loaded = TypeVar("_Loaded", "Segment", "Manifest")


def _known_fields(cls: type[_Loaded], data: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that are fields of ``cls`` (a file written by another version may
    lack some, which take their defaults)."""
    return {f.name: data[f.name] for f in fields(cls) if f.name in data}


@dataclass
class Segment:
    """One recording segment (the first run of a session, then each ``--resume``), in the manifest.

    ``edf_name`` names its EDF (``<edf_name>.edf`` in the session folder once transferred);
    ``first_trial`` is the first trial it ran; ``refresh`` (:meth:`Refresh.to_dict`) and
    ``frame_period_ms`` (the period of the overrun rule) are its window's. ``tracker`` (the
    backend's description), ``clock_offsets``, ``edf`` (:class:`~experiment.trackers.EdfTransfer`),
    ``mic_overruns``, ``ended_unix_s`` and ``status`` are filled as the segment runs and closes;
    they stay None when it never got there.
    """

    segment: int
    edf_name: str
    versions: dict[str, str | None] = field(default_factory=dict)
    started_unix_s: float = 0.0
    first_trial: int = 0
    refresh: dict[str, Any] = field(default_factory=dict)
    frame_period_ms: float | None = None
    microphone: dict[str, Any] | None = None
    calibrations: list[dict[str, Any]] = field(default_factory=list)
    tracker: str | None = None
    clock_offsets: dict[str, float] | None = None
    edf: dict[str, Any] | None = None
    mic_overruns: int | None = None
    ended_unix_s: float | None = None
    status: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        return cls(**_known_fields(cls, data))


@dataclass
class Manifest:
    """``manifest.json``: the session, its image order, its segments and how it ended.

    ``status`` is ``"running"`` until the session closes (``"completed"``, ``"quit by operator"``,
    ``"interrupted (…)"``, ``"failed: …"``); ``trials_done`` and the frame-timing totals of
    :func:`experiment.timing.session_frame_timing` are set then.
    """

    session: str
    participant: str
    seed: int
    order: list[str]
    created_unix_s: float
    status: str = "running"
    segments: list[Segment] = field(default_factory=list)
    trials_done: int | None = None
    frame_timing: str | None = None
    dropped_frames: int | None = None
    dropped_frames_note: str | None = None
    overruns: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        values = _known_fields(cls, data)
        values["segments"] = [Segment.from_dict(segment) for segment in data.get("segments", [])]
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Visuals:
    """The visual stimuli of every trial, made once per window (PsychoPy objects): a stimulus made
    per trial holds OpenGL textures and sits in reference cycles, so it is freed only by a full
    garbage collection (the 1440×1080 image texture of every trial piled up: +1.3–1.6 MB RSS per
    trial)."""

    image: Any  # ImageStim, refilled per trial
    dot: Any  # the drift-correction dot
    dot_centre: Any
    message: Any  # TextStim of the pause and quit screens
    hint: Any  # TextStim at the bottom: what a screen waits for and the operator's keys

    @classmethod
    def make(cls, window: Any) -> Visuals:
        from psychopy import visual

        bottom = -window.size[1] / 2 + 40
        return cls(
            image=visual.ImageStim(window, image=None, units="pix", pos=(0, 0)),
            dot=visual.Circle(window, radius=8, fillColor="white", lineColor="white", units="pix"),
            dot_centre=visual.Circle(window, radius=2, fillColor="black", lineColor="black", units="pix"),
            message=visual.TextStim(window, text="", color="white", units="pix", height=32),
            hint=visual.TextStim(
                window, text="", color="grey", units="pix", height=20, pos=(0, bottom), wrapWidth=window.size[0] - 80
            ),
        )


@dataclass
class Devices:
    """What a running session drives, every one open.

    Attributes
    ----------
    window : psychopy.visual.Window
    visuals : Visuals
    tracker : Tracker
        Connected and configured.
    microphone : Microphone or None
        Recording; None when the session records no audio.
    refresh : Refresh
        The refresh period measured when the window opened.
    frame_period_ms : float
        The period of the overrun rule: the measured refresh, or the nominal one where flips are
        not paced by a display.
    recording : bool
        Whether the tracker records (see :meth:`start_recording`).
    """

    window: Any
    visuals: Visuals
    tracker: Tracker
    microphone: Microphone | None
    refresh: Refresh
    frame_period_ms: float
    recording: bool = False

    def start_recording(self) -> None:
        self.tracker.start_recording()
        self.recording = True

    def stop_recording(self) -> None:
        self.tracker.stop_recording()
        self.recording = False


def _package_versions() -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in _VERSIONED:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _open_window(config: SessionConfig) -> tuple[Any, Refresh]:
    """The session's window and its measured refresh; closed again when its size is wrong."""
    from psychopy import visual

    window = visual.Window(
        size=(config.screen_width_px, config.screen_height_px),
        fullscr=config.fullscreen,
        units="pix",
        color="black",
        colorSpace="rgb",
        allowGUI=False,
        waitBlanking=True,
    )
    window.mouseVisible = False
    size = tuple(int(v) for v in window.size)
    if size != (config.screen_width_px, config.screen_height_px):
        window.close()
        raise PreflightError(
            [
                f"the window is {size[0]}×{size[1]} px but the configuration says "
                f"{config.screen_width_px}×{config.screen_height_px}; set the screen size to match the display"
            ]
        )
    return window, _measure_refresh(window)


def _measure_refresh(window: Any) -> Refresh:
    """Flip a blank screen; the refresh its flip intervals show (:func:`estimate_refresh`)."""
    for _ in range(REFRESH_WARMUP_FLIPS):
        window.flip()
    flips = np.empty(REFRESH_MEASURED_FLIPS + 1)
    for i in range(flips.size):
        window.flip()
        flips[i] = time.perf_counter()
    return estimate_refresh(np.diff(flips) * 1000.0)


def _frame_period_ms(refresh: Refresh, config: SessionConfig) -> float:
    if refresh.vsync:
        logger.info("refresh period %.2f ms (measured)", refresh.period_ms)
        return refresh.period_ms
    logger.warning(
        "the display does not pace flips (%s): dropped frames are not measurable and the "
        "overrun rule uses the nominal %g Hz",
        refresh.reason,
        config.refresh_hz,
    )
    return 1000.0 / config.refresh_hz


def _attempt(step: str, action: Callable[[], Any]) -> Any:
    """Run one shutdown step; a failure is logged and the shutdown goes on (returns None)."""
    try:
        return action()
    except Exception:
        logger.exception("shutdown step %r failed", step)
        return None


class Lifecycle:
    """Opens a session's records and devices in order and closes them through one path.

    Parameters
    ----------
    config : SessionConfig
    stimuli : StimulusSet
    order : list of str
        The session's image order (:func:`experiment.config.trial_order`).
    records : SessionRecords
    services : FrameServices
        The live stream (``session_start``, ``session_end``, the calibration's heartbeats).
    clock : SessionClock
    resume : bool
        Continue the session in ``config.session_dir`` at its first unfinished trial.
    lsl_wait_s : float or None
        Open Lab Streaming Layer outlets and wait up to this long for a recorder on each before
        the session starts (None: no outlets).

    Attributes
    ----------
    manifest, segment, microphone, devices, lsl
        What has been opened so far (None before): the shutdown saves and closes exactly that.
    """

    def __init__(
        self,
        config: SessionConfig,
        stimuli: StimulusSet,
        order: list[str],
        records: SessionRecords,
        services: FrameServices,
        clock: SessionClock,
        *,
        resume: bool,
        lsl_wait_s: float | None = None,
    ) -> None:
        self.config, self.stimuli, self.order, self.records = config, stimuli, order, records
        self.services, self.clock, self.resume = services, clock, resume
        self.lsl_wait_s = lsl_wait_s
        self.signals = Signals()
        self.manifest: Manifest | None = None
        self.segment: Segment | None = None
        self.microphone: Microphone | None = None
        self.devices: Devices | None = None
        self.lsl: LslOutlets | None = None
        self._closed = False

    # -- opening -------------------------------------------------------------------------------------

    def open(self) -> tuple[list[dict[str, Any]], Devices]:
        """Open everything (see the module docstring); return the rows of the trials already done
        (resume) and the devices."""
        n_done = self._check_resumable()
        self.microphone = preflight(self.config, self.stimuli, self.order[n_done:], lsl=self.lsl_wait_s is not None)
        manifest, done = self._open_records()
        self._open_lsl()
        self._start_microphone()
        devices = self.devices = self._open_devices()
        segment = self.segment = self._new_segment(manifest, len(done), devices)
        manifest.segments.append(segment)
        tracker, config = devices.tracker, self.config
        segment.tracker = tracker.connect()
        tracker.open_edf(segment.edf_name)
        tracker.configure(
            screen_width_px=config.screen_width_px,
            screen_height_px=config.screen_height_px,
            sample_rate_hz=config.sample_rate_hz,
        )
        segment.clock_offsets = self._clock_offsets(tracker)
        # Announced before the calibration, whose heartbeats then belong to a known session.
        self.services.send(
            SessionStart(
                participant=config.participant,
                tracker=config.tracker,
                n_trials=len(self.order),
                screen_width_px=config.screen_width_px,
                screen_height_px=config.screen_height_px,
                wall_time_s=time.time(),
                first_image=self.order[len(done)] if len(done) < len(self.order) else None,
                screen_width_cm=config.screen_width_cm,
                viewing_distance_cm=config.viewing_distance_cm,
                viewing_default=bool(config.viewing_defaults),
            )
        )
        self.calibrate()
        return done, devices

    def _check_resumable(self) -> int:
        """How many trials are done; an error when that does not fit ``resume``."""
        existing = self.records.completed_trials()
        if existing and not self.resume:
            raise ValueError(
                f"{self.records.folder} already holds {len(existing)} trials; pass --resume to "
                "continue that session or choose another --out/--participant"
            )
        if self.resume and len(existing) >= len(self.order):
            raise ValueError(f"{self.records.folder}: all {len(self.order)} trials are done; nothing to resume")
        return len(existing)

    def _open_records(self) -> tuple[Manifest, list[dict[str, Any]]]:
        self.records.create()
        config = self.config
        if self.resume:
            done = self.records.repair()
            manifest = Manifest.from_dict(self.records.read_manifest())
            if [row["image"] for row in done] != self.order[: len(done)]:
                raise ValueError(
                    f"the trials recorded in {self.records.folder} do not follow the order of its "
                    "configuration; was config.json edited? Resume with the original configuration"
                )
            logger.info("resuming at trial %d of %d", len(done), len(self.order))
        else:
            done = []
            config.save(self.records.config_path)
            manifest = Manifest(
                session=config.session_id,
                participant=config.participant,
                seed=config.seed,
                order=self.order,
                created_unix_s=time.time(),
            )
        manifest.status = "running"
        self.manifest = manifest
        return manifest, done

    def _open_lsl(self) -> None:
        """The LSL outlets (:mod:`experiment.lsl`), once a recorder is on them or the wait is over."""
        if self.lsl_wait_s is None:
            return
        from experiment.lsl import LslOutlets

        self.lsl = LslOutlets.of_session(self.config, session_origin_perf_s=self.clock.t0_s)
        self.lsl.start(wait_s=self.lsl_wait_s, idle=self.services.service)
        self.services.sink.on_note = self.lsl.note

    def _start_microphone(self) -> None:
        microphone = self.microphone
        if microphone is None:
            return
        microphone.start()
        time.sleep(0.3)
        if not microphone.level_dbfs > SILENT_DBFS:
            raise PreflightError(
                [
                    f"microphone {microphone.device_name!r} is silent ({microphone.level_dbfs:.1f} dBFS); "
                    "check that it is plugged in and unmuted"
                ]
            )

    def _open_devices(self) -> Devices:
        """The window (refresh measured), its visual stimuli and the tracker (not connected yet)."""
        config = self.config
        window, refresh = _open_window(config)
        try:
            tracker = make_tracker(config, self.stimuli, window=window, idle=self.services.service)
            if self.lsl is not None:
                from experiment.lsl import LslTracker

                stimuli, order = self.stimuli, self.order
                tracker = LslTracker.of_session(tracker, self.lsl, config=config, stimuli=stimuli, order=order)
            visuals = Visuals.make(window)
        except BaseException:
            window.close()
            raise
        return Devices(
            window=window,
            visuals=visuals,
            tracker=tracker,
            microphone=self.microphone,
            refresh=refresh,
            frame_period_ms=_frame_period_ms(refresh, config),
        )

    def _new_segment(self, manifest: Manifest, first_trial: int, devices: Devices) -> Segment:
        number = len(manifest.segments)
        microphone = self.microphone
        return Segment(
            segment=number,
            edf_name=self.config.edf_segment_name(number),
            versions=_package_versions(),
            started_unix_s=time.time(),
            first_trial=first_trial,
            refresh=devices.refresh.to_dict(),
            frame_period_ms=devices.frame_period_ms,
            microphone=None
            if microphone is None
            else {
                "device": microphone.device_name,
                "samplerate_hz": microphone.samplerate_hz,
                "latency_s": microphone.latency_s,
            },
        )

    def _clock_offsets(self, tracker: Tracker) -> dict[str, float]:
        """Simultaneous readings of every clock, to convert between them later."""
        from psychopy import logging as psychopy_logging

        perf = time.perf_counter()
        return {
            "session_s": self.clock.session_s(perf),
            "psychopy_s": psychopy_logging.defaultClock.getTime(),
            "unix_s": time.time(),
            "tracker_ms": tracker.tracker_time_ms(),
        }

    @property
    def current_segment(self) -> Segment:
        """This run's segment (after :meth:`open` created it)."""
        if self.segment is None:
            raise RuntimeError("the session is not open: its segment is made by open()")
        return self.segment

    def calibrate(self) -> None:
        """Run the tracker's setup (calibration, validation), note its result in the manifest and
        stream its validations (one record per eye).

        A tracker without setup graphics of its own (simulated, pylink's dummy) gets a screen that
        says what happens (:func:`experiment.quality.setup_text`); the real EyeLink draws its own.
        """
        devices, segment, manifest = self.devices, self.segment, self.manifest
        if devices is None or segment is None or manifest is None:
            raise RuntimeError("the session is not open: calibrate() runs after open()")
        own_screen = self.config.tracker != "eyelink"
        if own_screen:
            self._show_setup(setup_text(self.config.tracker))
        # The tracker's setup runs in offline mode: a gaze-contingent screen's recording pauses.
        recording = devices.recording
        if recording:
            devices.stop_recording()
        with self.services.waiting_for("calibration"):
            result = devices.tracker.calibrate()
        if recording:
            devices.start_recording()
        logger.info("calibration: %s", result)
        number = sum(len(s.calibrations) for s in manifest.segments)  # the session's setups so far
        segment.calibrations.append({"unix_s": time.time(), "calibration": number, **result.to_dict()})
        self.records.write_manifest(manifest.to_dict())
        now_ms = self.clock.session_ms(time.perf_counter())
        for record in validation_records(result, calibration=number, t_session_ms=now_ms):
            self.services.send(record)
        if own_screen:
            self._show_setup(setup_text(self.config.tracker, result))

    def _show_setup(self, text: str) -> None:
        """One flip of the setup screen's text (it stays until the next screen draws)."""
        devices = self.devices
        if devices is None:
            return
        devices.visuals.message.text = text
        devices.visuals.message.draw()
        devices.window.flip()

    # -- closing -------------------------------------------------------------------------------------

    def close(self, status: str = "completed") -> None:
        """Save everything and release what was opened; safe to call more than once.

        Each step runs even when an earlier one fails, so a broken device never costs the records.
        """
        if self._closed:
            return
        self._closed = True
        logger.info("closing session: %s", status)
        self._close_devices()
        rows = _attempt("read the trials", self.records.completed_trials) or []
        refresh = None if self.devices is None else self.devices.refresh
        timing = session_frame_timing(rows, refresh=refresh)
        _attempt("send session end", lambda: self.services.send(self._session_end(status, len(rows), timing)))
        _attempt("close stream", self.services.sink.close)
        lsl = self.lsl
        if lsl is not None:
            _attempt("close LSL outlets", lambda: lsl.close(status))
        if self.devices is not None:
            _attempt("close window", self.devices.window.close)
        if self.segment is not None:
            self.segment.ended_unix_s = time.time()
            self.segment.status = status
        manifest = self.manifest
        if manifest is not None:
            manifest.status = status
            manifest.trials_done = len(rows)
            # frame_timing, dropped_frames (+ _note), overruns; each run's refresh: in its segment
            manifest.frame_timing = timing["frame_timing"]
            manifest.dropped_frames = timing["dropped_frames"]
            manifest.dropped_frames_note = timing["dropped_frames_note"]
            manifest.overruns = timing["overruns"]
            _attempt("write manifest", lambda: self.records.write_manifest(manifest.to_dict()))

    def _close_devices(self) -> None:
        """Stop the recording, fetch the EDF, close the tracker and the microphone."""
        devices, segment = self.devices, self.segment
        if devices is not None:
            tracker = devices.tracker
            if devices.recording:
                _attempt("stop recording", tracker.stop_recording)
            if segment is not None:
                edf_path = self.records.folder / f"{segment.edf_name}.edf"
                transfer = _attempt("receive EDF", lambda: tracker.receive_edf(edf_path))
                segment.edf = None if transfer is None else transfer.to_dict()
            _attempt("close tracker", tracker.close)
        microphone = self.microphone
        if microphone is not None:
            _attempt("close microphone", microphone.close)
            if segment is not None:
                segment.mic_overruns = microphone.overruns

    def _session_end(self, status: str, n_trials: int, timing: dict[str, Any]) -> SessionEnd:
        refresh = None if self.devices is None else self.devices.refresh
        return SessionEnd(
            reason=status,
            n_trials=n_trials,
            t_session_ms=self.clock.session_ms(time.perf_counter()),
            refresh_period_ms=float("nan") if refresh is None else refresh.period_ms,
            **streamed_frame_timing(timing["dropped_frames"]),
            overruns=timing["overruns"],
        )
