"""The experimenter's notes land in the experiment's session folder too: a hub in this process takes
notes on the dashboard's path (:meth:`server.hub.LiveHub.add_note`) while the experiment's stream
(:func:`experiment.stream.open_stream`, heartbeats and all) runs; the notes come back over the
stream's reply channel and are appended to the session folder's ``notes.jsonl``, between trials
(:meth:`StreamSink.flush`), once each, and a resumed session asks only for those it lacks.

Oracle: the server's own ``notes.jsonl`` of the session (the notes as saved), and a file the test
tears as a crash would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from experiment.stream import StreamSink, open_stream
from lookwhere.notes import NOTES_FILE, read_notes, server_notes_path
from lookwhere.protocol import SessionStart
from server.hub import LiveHub
from server.notes import NoteIn
from stimuli.sets import StimulusSet


def _serviced(sink: StreamSink, until: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Service the sink as the task does every frame (and flush it as between trials) until ``until()``."""
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        sink.service()
        sink.flush()
        time.sleep(0.01)


@pytest.fixture
def hub(osie_stimuli, tmp_path):
    hub = LiveHub(StimulusSet(osie_stimuli), tmp_path / "server").start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.mark.timeout(60)
def test_notes_come_back_to_the_session_folder(hub, tmp_path):
    session = str(uuid.uuid4())
    folder = tmp_path / "sessions" / "P07"
    sink = open_stream(hub.endpoint, folder, session=session)
    arrived: list = []
    sink.on_note = arrived.append  # what lookwhere run --lsl pushes as markers
    start = SessionStart(
        participant="P07", tracker="simulated", n_trials=1, screen_width_px=1920, screen_height_px=1080,
        wall_time_s=time.time(),
    )  # fmt: skip
    sink.send(start)
    _serviced(sink, lambda: sink.sender.acked_seq >= 1, "the session's start")
    ours = folder / NOTES_FILE
    theirs = server_notes_path(hub.data_dir, session)

    hub.add_note(NoteIn(kind="participant_moved"))
    hub.add_note(NoteIn(kind="text", text="sneezed — twice"))
    _serviced(sink, lambda: len(read_notes(ours)) == 2, "two notes in the session folder")
    assert read_notes(ours) == read_notes(theirs)
    assert ours.read_text() == theirs.read_text()  # the same lines, byte for byte
    # the heartbeats of the next seconds say both are held: none is sent again, none written twice
    received = sink.sender.stats["notes"]
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        sink.service()
        sink.flush()
        time.sleep(0.01)
    assert sink.sender.stats["notes"] <= received + 2  # at most the resends of one heartbeat's answer
    assert ours.read_text() == theirs.read_text()
    assert arrived == read_notes(ours)  # each once, in order
    sink.close()

    # a resumed session whose last note was torn by a crash: cut off, asked for again, written once
    hub.add_note(NoteIn(kind="recalibrated"))
    lines = ours.read_text().splitlines(keepends=True)
    ours.write_text(lines[0] + lines[1][:20])
    sink = open_stream(hub.endpoint, folder, session=session)
    _serviced(sink, lambda: len(read_notes(ours)) == 3, "the notes the resumed session lacks")
    assert ours.read_text() == theirs.read_text()
    sink.close()
