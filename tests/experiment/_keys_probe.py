"""Drive the drift-correction screen with scripted keys (run by test_session.py).

Usage: ``python -m tests.experiment._keys_probe STIMULI OUT``; prints ``OBSERVED <json>``.
Session A: trial 0 sees Esc (→ tracker setup) then space; trial 1 a pause (``p`` … ``p``) then
space; trial 2 is skipped (``s``). Session B: ``q``, ``n`` (quit cancelled), then ``q``, ``y``
(quit confirmed) at trial 0.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from experiment.config import SessionConfig
from experiment.records import SessionRecords
from experiment.task import QuitRequested, Session


def scripted(*presses: list[str]):
    """A key source returning each list in turn (one per poll), then nothing."""
    queue = [[]] + [list(p) for p in presses]  # the screen first discards stale keys
    return lambda: queue.pop(0) if queue else []


observed = {}
base = dict(
    stimuli=Path(sys.argv[1]),
    out=Path(sys.argv[2]),
    tracker="simulated",
    trials=3,
    duration_ms=200,
    seed=1,
    microphone=False,
    min_free_mb=0,
)
config = SessionConfig(participant="KEYS_A", **base)
keys = scripted([], ["escape"], [], ["space"], [], ["p"], [], [], ["p"], ["space"], [], ["s"])
with Session(config, keys=keys) as session:
    session.run()
observed["a"] = SessionRecords(config.session_dir).completed_trials()

config = SessionConfig(participant="KEYS_B", **base)
try:
    with Session(config, keys=scripted(["q"], ["n"], ["q"], ["y"])) as session:
        session.run()
except QuitRequested:
    observed["b_quit"] = True
records = SessionRecords(config.session_dir)
observed["b_status"] = records.read_manifest()["status"]
observed["b_trials"] = len(records.completed_trials())
print("OBSERVED " + json.dumps(observed))
