"""Run 40 short simulated trials in one session and note memory (run by test_memory.py).

Usage: ``python -m tests.experiment._memory_probe STIMULI OUT``; prints ``OBSERVED <json>``.

From trial 5 on the automatic garbage collector is off, so whatever a trial leaves in reference
cycles stays: the worst case of a session, where a full collection may not come for minutes.
Noted after trials 5 and 40: the resident set size and the number of live PsychoPy visual
stimuli (a stimulus holds OpenGL textures and buffers, megabytes each).
"""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path

from psychopy.visual.basevisual import BaseVisualStim

from experiment.config import SessionConfig
from experiment.task import Session

TRIALS = 40


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def visual_stimuli() -> int:
    # type(), not isinstance(): the latter would resolve PsychoPy's lazy-import proxies.
    return sum(issubclass(type(o), BaseVisualStim) for o in gc.get_objects())


config = SessionConfig(
    participant="MEMORY",
    stimuli=Path(sys.argv[1]),
    out=Path(sys.argv[2]),
    tracker="simulated",
    trials=TRIALS,
    duration_ms=100,
    auto_accept_drift_ms=0,
    seed=3,
    microphone=False,
    min_free_mb=0,
)
observed = {}
with Session(config) as session:
    session.start()
    for index in range(TRIALS):
        session.run_trial(index)
        if index + 1 == 5:
            gc.collect()
            gc.disable()
        if index + 1 in (5, TRIALS):
            observed[index + 1] = {"rss_mb": rss_mb(), "visual_stimuli": visual_stimuli()}
gc.enable()
print("OBSERVED " + json.dumps(observed))
