"""EyeLink calibration graphics in the PsychoPy window (``pylink.EyeLinkCustomDisplay``).

pylink calls these methods during ``doTrackerSetup`` / ``doDriftCorrect`` once the object is
registered with ``pylink.openGraphicsEx``: targets, the camera image with its cross hairs, the
keys the operator presses. The shape follows SR Research's ``EyeLinkCoreGraphicsPsychoPy``
example; the camera image is converted with one palette lookup per frame instead of per pixel.
With the dummy connection pylink draws nothing (SPEC §10), so tests call the methods directly.

Coordinates: pylink passes target positions in screen pixels, origin top-left, y down; the
window uses PsychoPy ``pix`` units, origin at the centre, y up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pylink

if TYPE_CHECKING:
    from PIL import Image, ImageDraw

__all__ = ["CalibrationGraphics", "KEY_CODES"]

logger = logging.getLogger(__name__)

#: PsychoPy key name → pylink key code (letters map to their ASCII code).
KEY_CODES = {
    **{f"f{n}": getattr(pylink, f"F{n}_KEY") for n in range(1, 11)},
    "pageup": pylink.PAGE_UP,
    "pagedown": pylink.PAGE_DOWN,
    "up": pylink.CURS_UP,
    "down": pylink.CURS_DOWN,
    "left": pylink.CURS_LEFT,
    "right": pylink.CURS_RIGHT,
    "return": pylink.ENTER_KEY,
    "escape": pylink.ESC_KEY,
    "space": ord(" "),
    "tab": ord("\t"),
    "backspace": ord("\b"),
    "equal": ord("+"),
    "num_add": ord("+"),
    "minus": ord("-"),
    "num_subtract": ord("-"),
}

_CROSSHAIR_RGB = {
    pylink.CR_HAIR_COLOR: (255, 255, 255),
    pylink.PUPIL_HAIR_COLOR: (255, 255, 255),
    pylink.PUPIL_BOX_COLOR: (0, 255, 0),
    pylink.SEARCH_LIMIT_BOX_COLOR: (255, 0, 0),
    pylink.MOUSE_CURSOR_COLOR: (255, 0, 0),
}


class CalibrationGraphics(pylink.EyeLinkCustomDisplay):
    """Calibration, validation and camera-setup graphics drawn in a PsychoPy window.

    Parameters
    ----------
    tracker : pylink.EyeLink
        The connection (unused by the drawing; kept as SR Research's examples do).
    window : psychopy.visual.Window
        The session's window (``units="pix"``).
    target_radius_px : float
        Radius of the calibration target.
    keys : callable or None
        Returns ``[(name, modifiers)]`` like ``psychopy.event.getKeys(modifiers=True)`` (the
        default); tests inject keys here.
    idle : callable or None
        Called on every key poll: pylink polls :meth:`get_input_key` continuously while setup or
        drift correction waits, so the task's stream is serviced (heartbeats) meanwhile.
    """

    def __init__(
        self,
        tracker,
        window,
        *,
        target_radius_px: float = 12.0,
        keys: Callable[[], list] | None = None,
        idle: Callable[[], None] | None = None,
    ) -> None:
        from psychopy import visual

        super().__init__()
        self._tracker = tracker
        self._window = window
        self._width_px, self._height_px = (int(v) for v in window.size)
        self._keys = keys
        self._idle = idle
        self.target = visual.Circle(window, radius=target_radius_px, fillColor="white", lineColor="white", units="pix")
        self._target_centre = visual.Circle(
            window, radius=target_radius_px / 4, fillColor="black", lineColor="black", units="pix"
        )
        self._title = visual.TextStim(window, text="", color="white", units="pix", height=20)
        # One stimulus refilled per camera frame: a new one per frame would leave its texture to
        # the garbage collector (tens of MB per minute of camera setup).
        self._camera_stim = visual.ImageStim(window, image=None, units="pix")
        # (256, 3) uint8 RGB, pylink's palette once set_image_palette ran (a grey ramp before)
        self._palette = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
        self._rows: list[np.ndarray] = []
        self._camera: Image.Image | None = None  # PIL image of the last complete camera frame
        self._camera_size = (192, 160)  # its size, px
        self._draw: ImageDraw.ImageDraw | None = None  # drawing on it

    # -- display
    def setup_cal_display(self) -> None:
        self.clear_cal_display()

    def clear_cal_display(self) -> None:
        self._window.flip()

    def exit_cal_display(self) -> None:
        self.clear_cal_display()

    def record_abort_hide(self) -> None:
        pass

    def erase_cal_target(self) -> None:
        self.clear_cal_display()

    def draw_cal_target(self, x: float, y: float) -> None:
        """Show the target at screen pixel ``(x, y)`` (origin top-left, y down)."""
        position = (x - self._width_px / 2, self._height_px / 2 - y)
        self.target.pos = position
        self._target_centre.pos = position
        self.target.draw()
        self._target_centre.draw()
        self._window.flip()

    def play_beep(self, beepid) -> None:
        # The session's one audio stream is the microphone; beeps are logged, not played.
        logger.debug("calibration beep %s", beepid)

    def alert_printf(self, message: str) -> None:
        logger.warning("EyeLink: %s", message)

    # -- keys and mouse
    def get_input_key(self) -> list:
        """The pressed keys as ``pylink.KeyInput`` (pylink polls this)."""
        if self._idle is not None:
            self._idle()
        if self._keys is not None:
            pressed = self._keys()
        else:
            from psychopy import event

            pressed = event.getKeys(modifiers=True)
        inputs = []
        for name, modifiers in pressed:
            if name in KEY_CODES:
                code = KEY_CODES[name]
            elif len(name) == 1 and name.isalpha():
                code = ord(name)
            else:
                code = pylink.JUNK_KEY
            modifier = (
                256 if modifiers.get("alt") else 64 if modifiers.get("ctrl") else 1 if modifiers.get("shift") else 0
            )
            inputs.append(pylink.KeyInput(code, modifier))
        return inputs

    def get_mouse_state(self):
        return ((0, 0), 0)

    # -- camera image
    def setup_image_display(self, width: int, height: int) -> int:
        self._rows = []
        return 1  # 1 asks for the high-resolution camera image

    def exit_image_display(self) -> None:
        self.clear_cal_display()

    def image_title(self, text: str) -> None:
        self._title.text = text

    def set_image_palette(self, r, g, b) -> None:
        self._palette = np.stack([np.asarray(r), np.asarray(g), np.asarray(b)], axis=1).astype(np.uint8)
        self._rows = []

    def draw_image_line(self, width: int, line: int, totlines: int, buff) -> None:
        """Collect one camera line; on the last one, draw the frame (×2) with its title."""
        from PIL import Image, ImageDraw

        self._rows.append(np.asarray(buff[:width], dtype=np.uint8))
        if line != totlines:
            return
        indices = np.stack(self._rows)
        self._rows = []
        camera = self._camera = Image.fromarray(self._palette[indices], mode="RGB")
        self._camera_size = camera.size
        self._draw = ImageDraw.Draw(camera)
        self.draw_cross_hair()
        shown = camera.resize((width * 2, totlines * 2))
        self._camera_stim.image = shown
        self._camera_stim.size = shown.size
        self._camera_stim.draw()
        self._title.pos = (0, -totlines - 30)
        self._title.draw()
        self._window.flip()

    def _scaled(self, x: float, y: float) -> tuple[float, float]:
        # pylink draws cross hairs on a 192×160 grid whatever the camera image's size.
        width, height = self._camera_size
        return x / 192 * width, y / 160 * height

    def draw_line(self, x1, y1, x2, y2, colorindex) -> None:
        if self._draw is None:  # no camera frame yet: nothing to draw on
            return
        self._draw.line(
            [self._scaled(x1, y1), self._scaled(x2, y2)],
            fill=_CROSSHAIR_RGB.get(colorindex, (128, 128, 128)),
        )

    def draw_lozenge(self, x, y, width, height, colorindex) -> None:
        left, top = self._scaled(x, y)
        right, bottom = self._scaled(x + width, y + height)
        radius = min(right - left, bottom - top) / 2
        if self._draw is None:
            return
        self._draw.rounded_rectangle(
            [left, top, right, bottom],
            radius=radius,
            outline=_CROSSHAIR_RGB.get(colorindex, (128, 128, 128)),
        )
