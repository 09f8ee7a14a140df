"""A simulated session whose first image stalls 1.5 s (run by test_timing.py).

Usage: ``python -m tests.experiment._timing_probe STIMULI OUT``; prints ``OBSERVED <json>``.

The sink validates every record against the wire protocol and blocks once, for 1.5 s, in its
``service`` call on the third frame of trial 0's image, as a stalled device or a swapping machine
would stall the frame loop.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from experiment.config import SessionConfig
from experiment.records import SessionRecords
from experiment.task import Session
from lookwhere import protocol
from lookwhere.notes import OperatorNote

STALL_S = 1.5


class StallingSink:
    wants_gaze = False
    wants_audio = False
    on_note: Callable[[OperatorNote], None] | None = None  # notes are not exercised here

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.session: Session | None = None
        self.records: list[dict] = []  # the wire maps sent
        self.image_frames = 0

    def send(self, record: protocol.Record) -> None:
        stamped = replace(record, session=self.session_id, seq=len(self.records) + 1)
        protocol.encode(stamped)
        self.records.append(protocol.record_map(stamped))

    def service(self, *, waiting: str | None = None) -> None:
        assert self.session is not None  # set before the session runs
        if self.session.screen == "image" and waiting is None:
            self.image_frames += 1
            if self.image_frames == 3:
                time.sleep(STALL_S)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


config = SessionConfig(
    participant="TIMING",
    stimuli=Path(sys.argv[1]),
    out=Path(sys.argv[2]),
    tracker="simulated",
    trials=2,
    duration_ms=300,
    auto_accept_drift_ms=50,
    seed=2,
    microphone=False,
    min_free_mb=0,
)
sink = StallingSink(config.session_id)
with Session(config, sink=sink) as session:
    sink.session = session
    session.run()
records = SessionRecords(config.session_dir)
manifest = records.read_manifest()
print(
    "OBSERVED "
    + json.dumps(
        {
            "rows": records.completed_trials(),
            "trial_ends": [r for r in sink.records if r["kind"] == "trial_end"],
            "session_end": next(r for r in sink.records if r["kind"] == "session_end"),
            "refresh": manifest["segments"][0]["refresh"],
            "manifest_frame_timing": {
                key: manifest[key] for key in ("frame_timing", "dropped_frames", "dropped_frames_note", "overruns")
            },
        }
    )
)
