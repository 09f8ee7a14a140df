"""Run a short simulated session in-process with a sink that checks every record against the wire
protocol (run by test_session.py with the private display and virtual microphone).

Usage: ``python -m tests.experiment._sink_probe STIMULI OUT``; prints ``OBSERVED <json>``. The
``mic_audio`` records of trial ``t`` are written, joined, to ``OUT/streamed_<t>.pcm``; their
``mic_offset_ms`` and ``first_sample`` values go into the JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from experiment.config import SessionConfig
from experiment.task import Session
from lookwhere import protocol
from lookwhere.notes import OperatorNote


class CheckingSink:
    """Stamps and encodes (validates) every record it receives, as the stream's sender does."""

    wants_gaze = True  # every frame's gaze record is validated too
    wants_audio = True
    on_note: Callable[[OperatorNote], None] | None = None  # notes are not exercised here

    def __init__(self, session: str) -> None:
        self.session = session
        self.kinds: list[str] = []
        self.calls = {"service": 0, "flush": 0, "close": 0}
        self.audio: dict[int, list] = {}  # trial → [mic_offset_ms, first_sample, n_samples] of its records
        self.pcm: dict[int, bytes] = {}

    def send(self, record: protocol.Record) -> None:
        protocol.encode(replace(record, session=self.session, seq=len(self.kinds) + 1))
        self.kinds.append(record.kind)
        if isinstance(record, protocol.MicAudio):
            self.audio.setdefault(record.trial, []).append(
                [record.mic_offset_ms, record.first_sample, len(record.pcm) // 2]
            )
            self.pcm[record.trial] = self.pcm.get(record.trial, b"") + record.pcm

    def service(self, *, waiting: str | None = None) -> None:
        self.calls["service"] += 1

    def flush(self) -> None:
        self.calls["flush"] += 1

    def close(self) -> None:
        self.calls["close"] += 1


config = SessionConfig(
    participant="SINK",
    stimuli=Path(sys.argv[1]),
    out=Path(sys.argv[2]),
    tracker="simulated",
    trials=2,
    duration_ms=600,
    auto_accept_drift_ms=100,
    seed=1,
    min_free_mb=0,
)
sink = CheckingSink(config.session_id)
with Session(config, sink=sink) as session:
    session.run()
for trial, pcm in sink.pcm.items():
    (config.out / f"streamed_{trial}.pcm").write_bytes(pcm)
print("OBSERVED " + json.dumps({"kinds": sink.kinds, "calls": sink.calls, "audio": sink.audio}))
