"""The live stream of a session: the task's records sent to the analysis server, and the
experimenter's notes coming back.

:class:`StreamSink` is the :class:`experiment.task.RecordSink` the task writes to; it hands each
record to a :class:`experiment.sender.Sender` (non-blocking, journalled, replaying) and sends the
session's heartbeats, which say what the task waits for and how many of the experimenter's notes
it holds; the server answers with the others, which the sink appends to the session folder's
``notes.jsonl`` between trials (:mod:`lookwhere.notes`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from experiment.sender import Sender
from lookwhere.notes import NOTES_FILE, OperatorNote, append_note, read_notes
from lookwhere.protocol import Heartbeat, ProtocolError, Record

__all__ = ["StreamSink", "open_stream", "JOURNAL_NAME"]

logger = logging.getLogger(__name__)

#: The sender's journal, in the session folder (kept across ``--resume``).
JOURNAL_NAME = "stream.journal"


class StreamSink:
    """Send the task's records through a :class:`Sender`.

    A record the protocol rejects (say, a non-finite value from a faulty device) is dropped,
    logged and counted in ``rejected``: the session must go on, and the session records on disk
    keep the data.

    The sink sends the :class:`~lookwhere.protocol.Heartbeat` records (give it a sender made with
    ``heartbeat_interval_s=None``): every ``heartbeat_interval_s`` and at once when what the task
    waits for changes, with ``waiting`` as the task passed it to :meth:`service`. The task
    services the sink on every frame, the frames of its waiting screens included.

    With ``notes_path`` (the session folder's ``notes.jsonl``) each heartbeat also says how many of
    the session's notes it holds (those in the file, a resumed session's included, and those
    received since); the notes the server sends back are kept in memory and appended to the file
    by :meth:`flush` (between trials: no frame waits on the disk) and :meth:`close`. A note
    received twice, or after one that was lost, is dropped: the next heartbeat asks for it again.
    Each note kept is also handed to ``on_note`` when set (``lookwhere run --lsl``: a marker).
    """

    wants_gaze = True
    wants_audio = True

    def __init__(self, sender: Sender, *, heartbeat_interval_s: float = 1.0, notes_path: Path | None = None) -> None:
        if not heartbeat_interval_s > 0:
            raise ValueError(f"heartbeat_interval_s must be > 0; got {heartbeat_interval_s!r}")
        self.sender = sender
        self.rejected = 0
        self._heartbeat_interval_s = heartbeat_interval_s
        self._t0 = time.monotonic()
        self._next_heartbeat = self._t0
        self._waiting: str | None = None
        self.notes_path = notes_path
        self._notes_held = None if notes_path is None else _notes_in(notes_path, sender.session)
        self._unwritten: list[OperatorNote] = []
        self.on_note: Callable[[OperatorNote], None] | None = None

    def send(self, record: Record) -> None:
        try:
            self.sender.send(record)
        except ProtocolError as error:
            self.rejected += 1
            logger.warning("%s record not streamed (%s); the session records keep it", record.kind, error)

    def service(self, *, waiting: str | None = None) -> None:
        now = time.monotonic()
        if now >= self._next_heartbeat or waiting != self._waiting:
            self._next_heartbeat = now + self._heartbeat_interval_s
            self._waiting = waiting
            self.send(
                Heartbeat(
                    t_session_ms=(now - self._t0) * 1000.0,
                    wall_time_s=time.time(),
                    pending=self.sender.pending,
                    waiting=waiting,
                    notes=self._notes_held,
                )
            )
        self.sender.service()
        self._take_notes()

    def _take_notes(self) -> None:
        """Keep the notes that follow those held, in order (others: a resend, or after a lost one)."""
        for index, note in self.sender.take_notes():
            if self._notes_held is not None and index == self._notes_held:
                self._unwritten.append(note)
                self._notes_held += 1
                if self.on_note is not None:
                    self.on_note(note)

    def flush(self) -> None:
        self.sender.flush()
        if self._unwritten and self.notes_path is not None:
            append_note(self.notes_path, *self._unwritten)
            logger.info("%d notes of the experimenter saved in %s", len(self._unwritten), self.notes_path)
            self._unwritten = []

    def close(self) -> None:
        self.sender.drain()  # the session is over: a few seconds for a restarting server
        self._take_notes()
        self.flush()
        self.sender.close()


def _notes_in(path: Path, session: str) -> int | None:
    """How many notes on ``session`` the file ``path`` holds (0: none, or no file; None: it cannot
    be read, and notes are not taken); a last line torn by a crash is cut off first, so the notes
    that follow start on a line of their own."""
    if path.is_file():
        data = path.read_bytes()
        whole = data.rfind(b"\n") + 1
        if whole < len(data):
            logger.warning("%s: cut off a note torn by a crash (it is asked for again)", path)
            os.truncate(path, whole)
    try:
        return sum(note.session == session for note in read_notes(path))
    except ValueError as error:  # the session must run: its notes stay on the server
        logger.warning("the experimenter's notes are not saved in this session folder: %s", error)
        return None


def open_stream(endpoint: str, session_dir: Path, *, session: str) -> StreamSink:
    """A sink streaming to ``endpoint``, journalled in ``session_dir``, the experimenter's notes
    saved there; a resumed session goes on with the records the journal already holds (the server
    keeps only what it lacks) and the notes the folder holds."""
    session_dir.mkdir(parents=True, exist_ok=True)
    # The sink sends the heartbeats: only the task knows what it waits for.
    sender = Sender(endpoint, session_dir / JOURNAL_NAME, session=session, heartbeat_interval_s=None)
    return StreamSink(sender, notes_path=session_dir / NOTES_FILE)
