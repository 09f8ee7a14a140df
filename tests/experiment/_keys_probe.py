"""Drive the session with scripted keys, each pressed on a named screen (run by test_session.py).

Usage: ``python -m tests.experiment._keys_probe STIMULI OUT``; prints ``OBSERVED <json>``.

Session A: trial 0 sees Esc (→ tracker setup) then space; trial 1 a pause (``p`` … ``p``) then
space; trial 2 is skipped (``s``). Session B: ``q``, ``n`` (quit cancelled), then ``q``, ``y``
(quit confirmed) at trial 0. Session C: ``q`` during trial 0's image, ``n`` (the trial runs
again), Esc during trial 1's image, ``y`` (quit); then ``--resume`` finishes trials 1 and 2.
Every session notes, per screen, what the task said it waits for when it serviced its stream.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiment.config import SessionConfig
from experiment.operator_screens import QuitRequested
from experiment.records import SessionRecords
from experiment.task import Session
from lookwhere.notes import OperatorNote
from lookwhere.protocol import Record


class Scripted:
    """A key source pressing ``(screen, keys)`` steps in turn, each on its own screen.

    A poll while the session shows ``screen`` (:attr:`Session.screen`) of the next step returns
    that step's keys; a poll on any other screen returns nothing. The image period's per-frame
    polls thus never eat a key meant for a later screen. ``("drift", [])`` steps stand for the
    poll with which each drift-correction screen discards stale keys.
    """

    def __init__(self, *steps: tuple[str, list[str]]) -> None:
        self.steps = list(steps)
        self.session: Session | None = None

    def __call__(self) -> list[str]:
        assert self.session is not None  # set before the session runs
        if self.steps and self.steps[0][0] == self.session.screen:
            return list(self.steps.pop(0)[1])
        return []


class WaitingLog:
    """A record sink noting each ``(screen, waiting)`` pair its ``service`` calls see."""

    wants_gaze = False
    wants_audio = False
    on_note: Callable[[OperatorNote], None] | None = None  # notes are not exercised here

    def __init__(self) -> None:
        self.session: Session | None = None
        self.seen: set[tuple] = set()

    def send(self, record: Record) -> None:
        pass

    def service(self, *, waiting: str | None = None) -> None:
        assert self.session is not None  # set before the session runs
        self.seen.add((self.session.screen, waiting))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


waiting = WaitingLog()


def run(config: SessionConfig, keys: Scripted, *, resume: bool = False) -> None:
    with Session(config, keys=keys, resume=resume, sink=waiting) as session:
        keys.session = waiting.session = session
        session.run()


DISCARD: tuple[str, list[str]] = ("drift", [])
SPACE = ("drift", ["space"])
observed: dict[str, object] = {}
base: dict[str, Any] = dict(
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
keys = Scripted(
    DISCARD,
    ("drift", ["escape"]),
    SPACE,
    DISCARD,
    ("drift", ["p"]),
    ("paused", []),
    ("paused", ["p"]),
    SPACE,
    DISCARD,
    ("drift", ["s"]),
)
run(config, keys)
observed["a"] = SessionRecords(config.session_dir).completed_trials()
observed["a_left"] = len(keys.steps)

config = SessionConfig(participant="KEYS_B", **base)
keys = Scripted(DISCARD, ("drift", ["q"]), ("confirm", ["n"]), ("drift", ["q"]), ("confirm", ["y"]))
try:
    run(config, keys)
except QuitRequested:
    observed["b_quit"] = True
records = SessionRecords(config.session_dir)
observed["b_status"] = records.read_manifest()["status"]
observed["b_trials"] = len(records.completed_trials())
observed["b_left"] = len(keys.steps)

config = SessionConfig(participant="KEYS_C", **{**base, "duration_ms": 600})
keys = Scripted(
    DISCARD,
    SPACE,
    ("image", []),  # a few frames of the image first
    ("image", []),
    ("image", ["q"]),
    ("confirm", ["n"]),
    DISCARD,
    SPACE,  # trial 0 again, to its end
    DISCARD,
    SPACE,
    ("image", ["escape"]),
    ("confirm", ["y"]),
)
try:
    run(config, keys)
except QuitRequested:
    observed["c_quit"] = True
records = SessionRecords(config.session_dir)
observed["c_status"] = records.read_manifest()["status"]
observed["c_quit_rows"] = records.completed_trials()
observed["c_quit_fixation_trials"] = sorted(set(records.read_fixations()["trial"].tolist()))
observed["c_left"] = len(keys.steps)
run(config, Scripted(DISCARD, SPACE, DISCARD, SPACE), resume=True)
observed["c_rows"] = records.completed_trials()
fixations = records.read_fixations()
observed["c_fixations_per_trial"] = fixations.groupby("trial").size().to_dict()
observed["c_fixation_duplicates"] = int(fixations.duplicated(["trial", "start_ms"]).sum())
observed["waiting"] = sorted(waiting.seen, key=str)
print("OBSERVED " + json.dumps(observed))
