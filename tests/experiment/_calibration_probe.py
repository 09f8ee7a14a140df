"""Drive CalibrationGraphics by calling its methods directly (run by test_calibration.py).

pylink's dummy connection never draws calibration graphics (SPEC §10), so this script plays
pylink's part: it opens a window on $DISPLAY, calls each method as ``doTrackerSetup`` would and
prints what it observed as JSON.
"""

from __future__ import annotations

import json

import numpy as np
import pylink
from psychopy import visual

from experiment.calibration import CalibrationGraphics

window = visual.Window(size=(1920, 1080), units="pix", color="black", fullscr=False, allowGUI=False)
pressed = [
    [("space", {}), ("escape", {}), ("c", {"shift": True}), ("f1", {"alt": True}), ("kp_9", {})]
]
graphics = CalibrationGraphics(
    pylink.EyeLink(None), window, keys=lambda: pressed.pop() if pressed else []
)
observed = {}
graphics.setup_cal_display()
graphics.draw_cal_target(100, 200)
observed["target_pos"] = [float(v) for v in graphics.target.pos]
graphics.erase_cal_target()
observed["keys"] = [(k.__key__, k.__mod__) for k in graphics.get_input_key()]
observed["keys_again"] = len(graphics.get_input_key())
# A 4×3 camera image whose palette index i shows grey level 10·i.
levels = list(range(0, 256, 10))[:26]
graphics.setup_image_display(4, 3)
graphics.set_image_palette(levels, levels, levels)
graphics.image_title("camera")
for line in range(1, 4):
    graphics.draw_image_line(4, line, 3, [line, line + 1, line + 2, line + 3])
observed["camera"] = np.asarray(graphics._camera)[..., 0].tolist()
graphics.exit_image_display()
graphics.exit_cal_display()
window.close()
print("OBSERVED " + json.dumps(observed))
