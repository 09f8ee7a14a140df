"""Drive CalibrationGraphics by calling its methods directly (run by test_calibration.py).

pylink's dummy connection never draws calibration graphics (SPEC §10), so this script plays
pylink's part: it opens a window on $DISPLAY, calls each method as ``doTrackerSetup`` would and
prints what it observed as JSON.
"""

from __future__ import annotations

import gc
import json

import numpy as np
import pylink
from psychopy import visual

from experiment.calibration import CalibrationGraphics

window = visual.Window(size=(1920, 1080), units="pix", color="black", fullscr=False, allowGUI=False)
pressed = [[("space", {}), ("escape", {}), ("c", {"shift": True}), ("f1", {"alt": True}), ("kp_9", {})]]
idle_calls: list[int] = []
graphics = CalibrationGraphics(
    pylink.EyeLink(None),
    window,
    keys=lambda: pressed.pop() if pressed else [],
    idle=lambda: idle_calls.append(len(pressed)),
)
observed: dict[str, object] = {}
graphics.setup_cal_display()
graphics.draw_cal_target(100, 200)
observed["target_pos"] = [float(v) for v in graphics.target.pos]
graphics.erase_cal_target()
observed["keys"] = [(k.__key__, k.__mod__) for k in graphics.get_input_key()]
observed["keys_again"] = len(graphics.get_input_key())
observed["idle_calls"] = idle_calls  # before each key poll: 1 batch pending, then none
# A 4×3 camera image whose palette index i shows grey level 10·i.
levels = list(range(0, 256, 10))[:26]
graphics.setup_image_display(4, 3)
graphics.set_image_palette(levels, levels, levels)
graphics.image_title("camera")
for line in range(1, 4):
    graphics.draw_image_line(4, line, 3, [line, line + 1, line + 2, line + 3])
observed["camera"] = np.asarray(graphics._camera)[..., 0].tolist()


def image_stims() -> int:
    # type(), not isinstance(): the latter would resolve PsychoPy's lazy-import proxies.
    return sum(type(o) is visual.ImageStim for o in gc.get_objects())


# Live camera frames: no new stimulus per frame (garbage is counted too: no collection here).
gc.disable()
before = image_stims()
for _ in range(20):
    for line in range(1, 4):
        graphics.draw_image_line(4, line, 3, [line, line + 1, line + 2, line + 3])
observed["image_stims_added"] = image_stims() - before
gc.enable()
graphics.exit_image_display()
graphics.exit_cal_display()
window.close()
print("OBSERVED " + json.dumps(observed))
