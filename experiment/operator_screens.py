"""The screens that wait for a person: drift correction, a pause, the quit confirmation (SPEC §4).

The drift-correction step (:meth:`OperatorScreens.drift_correction`): the real EyeLink runs its own
``doDriftCorrect``; every backend then shows the product's own screen, a central dot that space
accepts (with ``drift_start="gaze"`` also once the gaze has held it, see :class:`GazeHold`; the
simulated participant's ``auto_accept_drift_ms`` too). Operator keys on it: Esc opens the tracker
setup (recalibration), ``p`` pauses until ``p`` again, ``s`` skips the trial (:class:`SkipTrial`),
``q`` quits after confirmation (:class:`QuitRequested` on yes).

Every screen services the stream each frame, naming what it waits for, so heartbeats keep
flowing while the task waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from experiment.config import SessionConfig
from experiment.lifecycle import Devices
from experiment.quality import drift_hint, drift_outcome
from experiment.services import FrameServices

__all__ = ["GazeHold", "DriftScreenOutcome", "OperatorScreens", "QuitRequested", "SkipTrial"]


class QuitRequested(Exception):
    """The operator quit (confirmed)."""


class SkipTrial(Exception):
    """The operator skipped the trial at its drift-correction screen."""


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


@dataclass(frozen=True, slots=True)
class DriftScreenOutcome:
    """How the dot screen was accepted: ``accepted_by`` (``"space"``, ``"gaze"`` or ``"auto"``),
    after ``wait_ms`` and ``recalibrations``; ``gaze_hold_ms`` with a gaze-contingent start."""

    accepted_by: str
    wait_ms: float
    recalibrations: int
    gaze_hold_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``gaze_hold_ms`` only with a gaze-contingent start)."""
        return {name: value for name, value in asdict(self).items() if value is not None}


class OperatorScreens:
    """The waiting screens of one session.

    Parameters
    ----------
    devices : Devices
        The open window, its visual stimuli and the tracker.
    services : FrameServices
        The live stream (serviced each frame) and the operator's keys.
    config : SessionConfig
    recalibrate : callable
        Runs the tracker setup (Esc on the dot screen): :meth:`experiment.lifecycle.Lifecycle.calibrate`.
    """

    def __init__(
        self,
        devices: Devices,
        services: FrameServices,
        config: SessionConfig,
        *,
        recalibrate: Callable[[], None],
    ) -> None:
        self.devices, self.services, self.config = devices, services, config
        self._recalibrate = recalibrate

    def drift_correction(self) -> dict[str, Any]:
        """The drift-correction step; return its result for the trial row: the tracker's own
        result (with the measured offset where it has one), :class:`DriftScreenOutcome`'s fields,
        ``attempts`` and ``outcome`` (:func:`experiment.quality.drift_outcome`).

        With ``drift_start="gaze"`` recording is on when this returns (it started before the dot
        screen, whose gaze samples it needs).
        """
        config, devices = self.config, self.devices
        centre = (config.screen_width_px / 2, config.screen_height_px / 2)
        gaze_start = config.drift_start == "gaze"
        with self.services.waiting_for("drift_correction"):
            if devices.tracker.has_drift_correction:
                import pylink

                attempts = setups = 0
                while True:
                    attempts += 1
                    result = devices.tracker.drift_correct(*centre)
                    if result.error != pylink.ESC_KEY:
                        break
                    setups += 1  # Esc: pylink ran the tracker setup, then the check again
                summary = {"attempts": attempts, "outcome": drift_outcome(attempts=attempts, recalibrations=setups)}
                if not gaze_start:
                    return {**result.to_dict(), **summary}
                # doDriftCorrect needs offline mode: the gaze-contingent start follows it.
                devices.start_recording()
                return {**result.to_dict(), **self.drift_screen().to_dict(), **summary}
            if gaze_start:
                devices.start_recording()
            screen = self.drift_screen()
            outcome = drift_outcome(attempts=1, recalibrations=screen.recalibrations)
            return {
                **devices.tracker.drift_correct(*centre).to_dict(),
                **screen.to_dict(),
                "attempts": 1,
                "outcome": outcome,
            }

    def drift_screen(self) -> DriftScreenOutcome:
        """Central dot until space, the gaze's hold on it (``drift_start="gaze"``) or the simulated
        participant's auto-accept; the operator keys work meanwhile (see the module docstring)."""
        config, devices, services = self.config, self.devices, self.services
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
        services.screen = "drift"
        services.read_keys()  # forget keys pressed during the previous trial
        # The real EyeLink's operator reads the host PC; elsewhere the operator shares this screen.
        hint = devices.visuals.hint if config.tracker != "eyelink" else None
        if hint is not None:
            hint.text = drift_hint(drift_start=config.drift_start)
        while True:
            devices.visuals.dot.draw()
            devices.visuals.dot_centre.draw()
            if hint is not None:
                hint.draw()
            devices.window.flip()
            services.service()
            if hold is not None and self._gaze_held(hold):
                accepted_by = "gaze"
                break
            keys = services.read_keys()
            if "space" in keys:
                accepted_by = "space"
                break
            recalibrations += self._operator_keys(keys, hold)
            if config.auto_accept_drift_ms is not None and _ms_since(started) >= config.auto_accept_drift_ms:
                accepted_by = "auto"
                break
        return DriftScreenOutcome(
            accepted_by=accepted_by,
            wait_ms=_ms_since(started),
            recalibrations=recalibrations,
            gaze_hold_ms=None if hold is None else hold.held_ms,
        )

    def _gaze_held(self, hold: GazeHold) -> bool:
        tracker = self.devices.tracker
        # Only the newest sample matters; the queued events of this screen are not the image's
        # fixations and would otherwise pile up on the link.
        tracker.drain()
        return hold.update(tracker.gaze_position(), time.perf_counter() * 1000.0)

    def _operator_keys(self, keys: list[str], hold: GazeHold | None) -> int:
        """Act on the dot screen's operator keys (Esc, q, s, p); return the recalibrations run."""
        recalibrations = 0
        if "escape" in keys:
            self._recalibrate()
            recalibrations = 1
        if "q" in keys:
            self.confirm_quit()
        if "s" in keys:
            raise SkipTrial
        if "p" in keys:
            self.show_until("Paused: press p to continue", "p", screen="paused", waiting="pause")
        if hold is not None and {"escape", "q", "p"} & set(keys):
            hold.reset()  # the dot was off the screen meanwhile
        self.services.screen = "drift"
        return recalibrations

    def show_until(self, message: str, *keys: str, screen: str, waiting: str) -> str:
        """Show ``message`` (as screen ``screen``; heartbeats say ``waiting``) until one of ``keys``
        is pressed; return that key."""
        services = self.services
        services.screen = screen
        text = self.devices.visuals.message
        text.text = message
        with services.waiting_for(waiting):
            while True:
                text.draw()
                self.devices.window.flip()
                services.service()
                pressed = [key for key in services.read_keys() if key in keys]
                if pressed:
                    return pressed[0]

    def confirm_quit(self) -> None:
        """Ask whether to quit; raise :class:`QuitRequested` on yes."""
        answer = self.show_until(
            "Quit the session?  y = yes, n = no", "y", "n", "escape", screen="confirm", waiting="confirm_quit"
        )
        if answer == "y":
            raise QuitRequested("operator confirmed quit")


def _ms_since(started_perf_s: float) -> float:
    return (time.perf_counter() - started_perf_s) * 1000.0
