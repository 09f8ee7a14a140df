"""The PsychoPy session: drift correction, image trials, records, one shutdown path (SPEC §2, §4).

:class:`Session` runs a whole session from a :class:`~experiment.config.SessionConfig`::

    with Session(config) as session:
        session.run()

Per trial: ``TRIALID`` → drift correction (:class:`experiment.operator_screens.OperatorScreens`) →
the image period (:class:`experiment.presentation.ImagePeriod`: recording, onset flip, frame loop,
offset flip) → the stream's ``trial_end`` → the trial's row and fixations in the records. Records,
audio and the stream's flush happen between trials only. What the session opens, in which order,
and how it closes whatever happens: :mod:`experiment.lifecycle`.

Timing (:mod:`experiment.timing`): the refresh period is measured over blank flips when the window
opens. Each trial row holds the measured display duration (onset flip to offset flip,
``stimulus_duration_ms``), ``overrun`` (longer than requested by more than one frame period) and
its dropped frames counted against the measured period; on a display without vsync (Xvfb) those
are None ("not measurable (no vsync)"; on the stream: ``frame_timing="no_vsync"``). The manifest
and ``session_end`` carry the session's totals.

``q`` or Esc while the image is shown aborts the trial (nothing of it is written to the records)
and asks the operator to confirm the quit: yes ends the session (:class:`QuitRequested`, so
``--resume`` re-runs that trial), no runs the trial again from its drift correction (a new
``TRIALID`` with the same number).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType

from experiment.config import SessionConfig, trial_order
from experiment.lifecycle import Devices, Lifecycle, SessionClock, exit_status
from experiment.operator_screens import OperatorScreens, SkipTrial
from experiment.presentation import TRIAL_SKIPPED, ImagePeriod, SkippedRow, TrialAborted, TrialRow
from experiment.quality import drift_check_record
from experiment.records import SessionRecords
from experiment.services import FrameServices, NullSink, RecordSink
from stimuli.sets import StimulusSet

__all__ = ["Session"]

logger = logging.getLogger(__name__)


class Session:
    """One participant's session; use as a context manager so every exit saves everything.

    Parameters
    ----------
    config : SessionConfig
        The settings (for ``resume``, the ones saved in the session folder).
    sink : RecordSink or None
        Live record stream; None = :class:`~experiment.services.NullSink`.
    resume : bool
        Continue the session in ``config.session_dir`` at its first unfinished trial, recording a
        new EDF segment. Without it, a folder that already holds trials is refused.
    keys : callable or None
        Returns the names of the keys pressed since the last call (PsychoPy names: ``"space"``,
        ``"escape"``); default ``psychopy.event.getKeys``. Tests inject scripted keys here.
    lsl_wait_s : float or None
        Open Lab Streaming Layer outlets (:mod:`experiment.lsl`) and wait up to this long for a
        recorder on each before the session starts; None (default): no outlets.

    Attributes
    ----------
    services : FrameServices
        The live stream and the operator's keys; ``services.screen`` says what the window shows
        while keys are read (also :attr:`screen`).
    lifecycle : Lifecycle
        What is open, and the shutdown.
    """

    def __init__(
        self,
        config: SessionConfig,
        *,
        sink: RecordSink | None = None,
        resume: bool = False,
        keys: Callable[[], list[str]] | None = None,
        lsl_wait_s: float | None = None,
    ) -> None:
        self.config = config
        self.stimuli = StimulusSet(config.stimuli)
        self.order = trial_order(self.stimuli.image_ids, seed=config.seed, trials=config.trials)
        self.records = SessionRecords(config.session_dir)
        self.services = FrameServices(sink if sink is not None else NullSink(), keys=keys)
        self.clock = SessionClock()
        self.lifecycle = Lifecycle(
            config,
            self.stimuli,
            self.order,
            self.records,
            self.services,
            self.clock,
            resume=resume,
            lsl_wait_s=lsl_wait_s,
        )

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Session:
        self.lifecycle.signals.install()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close(exit_status(kind, error))
        self.lifecycle.signals.restore()

    def start(self) -> list[dict]:
        """Preflight, open the records, window, microphone and tracker; return the done trials."""
        done, _ = self.lifecycle.open()
        return done

    def close(self, status: str = "completed") -> None:
        """Save everything and release every resource; safe to call more than once."""
        self.lifecycle.close(status)

    @property
    def devices(self) -> Devices:
        """The open window, tracker and microphone (after :meth:`start`)."""
        devices = self.lifecycle.devices
        if devices is None:
            raise RuntimeError("the session is not open: call start() (or run()) first")
        return devices

    @property
    def screen(self) -> str | None:
        """What the window shows while keys are read: ``"drift"``, ``"image"``, ``"paused"``,
        ``"confirm"`` (lets a scripted key source press each key on the intended screen)."""
        return self.services.screen

    # ------------------------------------------------------------------ trials
    def run(self) -> int:
        """Run every remaining trial; return how many ran in this call."""
        done = self.start()
        for index in range(len(done), len(self.order)):
            self.run_trial(index)
        return len(self.order) - len(done)

    def run_trial(self, index: int) -> TrialRow | SkippedRow:
        """Run trial ``index`` of the order and append its records; return its row.

        A run aborted during its image period (q or Esc) that the operator does not confirm as a
        quit is run again from the drift correction; the row counts those runs in
        ``aborted_runs``.
        """
        devices, image_id = self.devices, self.order[index]
        screens = OperatorScreens(devices, self.services, self.config, recalibrate=self.lifecycle.calibrate)
        period = self._prepare_image(index)
        aborted_runs = 0
        while True:
            tracker = devices.tracker
            tracker.send_message(f"TRIALID {index}")
            tracker.status_message(f"TRIAL {index + 1}/{len(self.order)} {image_id}")
            tracker.send_message(f"!V TRIAL_VAR image {image_id}")
            try:
                drift = screens.drift_correction()
            except SkipTrial:
                return self._skip_trial(index, image_id)
            now_ms = self.clock.session_ms(time.perf_counter())
            self.services.send(drift_check_record(index, drift, t_session_ms=now_ms))
            try:
                row, fixations, trial_end = period().run(drift)
            except TrialAborted:
                aborted_runs += 1
                logger.warning(
                    "trial %d/%d (%s) aborted during the image; asking to confirm the quit",
                    index + 1,
                    len(self.order),
                    image_id,
                )
                screens.confirm_quit()  # QuitRequested on yes: the trial stays undone
                continue
            break
        row = replace(row, aborted_runs=aborted_runs)
        # The stream's trial_end is journalled before the row marks the trial done: killed in
        # between, the trial runs again on --resume and the server drops this run; never a
        # trial done on disk whose end the stream lacks.
        self.services.send(trial_end)
        self.records.append_trial(row.to_dict(), fixations)
        self.services.sink.flush()
        self._log_trial(row)
        return row

    def _prepare_image(self, index: int) -> Callable[[], ImagePeriod]:
        """Load trial ``index``'s image into the (one, reused) image stimulus; return the maker of
        one run of its image period."""
        devices, image_id = self.devices, self.order[index]
        path = self.stimuli.path(image_id)
        geometry = self.config.geometry(*self.stimuli.size(image_id))
        stimulus = devices.visuals.image  # one texture, refilled per trial
        stimulus.image = str(path)
        stimulus.size = (geometry.display_width_px, geometry.display_height_px)
        number = self.lifecycle.current_segment.segment

        def period() -> ImagePeriod:
            return ImagePeriod(
                devices,
                self.services,
                self.clock,
                self.config,
                trial=index,
                image=image_id,
                next_image=self.order[index + 1] if index + 1 < len(self.order) else None,
                path=path,
                geometry=geometry,
                segment=number,
                audio_dir=self.records.audio_dir,
            )

        return period

    def _skip_trial(self, index: int, image_id: str) -> SkippedRow:
        """Record trial ``index`` as skipped: it counts as done (resume does not repeat it) and
        has no data."""
        devices = self.devices
        if devices.recording:  # a gaze-contingent drift screen records
            devices.stop_recording()
        devices.tracker.send_message("!V TRIAL_VAR skipped 1")
        devices.tracker.send_message(f"TRIAL_RESULT {TRIAL_SKIPPED}")
        row = SkippedRow(trial=index, image=image_id, segment=self.lifecycle.current_segment.segment)
        self.records.append_trial(row.to_dict(), [])
        logger.info("trial %d/%d (%s) skipped by the operator", index + 1, len(self.order), image_id)
        return row

    def _log_trial(self, row: TrialRow) -> None:
        log = logger.warning if row.overrun else logger.info
        log(
            "trial %d/%d (%s): %d fixations, shown %.1f ms of %g%s, dropped frames: %s",
            row.trial + 1,
            len(self.order),
            row.image,
            row.fixations,
            row.stimulus_duration_ms,
            self.config.duration_ms,
            " (OVERRUN)" if row.overrun else "",
            "not measurable" if row.dropped_frames is None else row.dropped_frames,
        )
