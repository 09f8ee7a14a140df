"""The live stream of a session: the task's records sent to the analysis server.

:class:`StreamSink` is the :class:`experiment.task.RecordSink` the task writes to; it hands each
record to a :class:`experiment.sender.Sender` (non-blocking, journalled, replaying) and sends the
session's heartbeats, which say what the task waits for.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from experiment.sender import Sender
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
    """

    wants_gaze = True
    wants_audio = True

    def __init__(self, sender: Sender, *, heartbeat_interval_s: float = 1.0) -> None:
        if not heartbeat_interval_s > 0:
            raise ValueError(f"heartbeat_interval_s must be > 0; got {heartbeat_interval_s!r}")
        self.sender = sender
        self.rejected = 0
        self._heartbeat_interval_s = heartbeat_interval_s
        self._t0 = time.monotonic()
        self._next_heartbeat = self._t0
        self._waiting: str | None = None

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
                )
            )
        self.sender.service()

    def flush(self) -> None:
        self.sender.flush()

    def close(self) -> None:
        self.sender.drain()  # the session is over: a few seconds for a restarting server
        self.sender.close()


def open_stream(endpoint: str, session_dir: Path, *, session: str) -> StreamSink:
    """A sink streaming to ``endpoint``, journalled in ``session_dir``; a resumed session goes on
    with the records the journal already holds (the server keeps only what it lacks)."""
    session_dir.mkdir(parents=True, exist_ok=True)
    # The sink sends the heartbeats: only the task knows what it waits for.
    sender = Sender(endpoint, session_dir / JOURNAL_NAME, session=session, heartbeat_interval_s=None)
    return StreamSink(sender)
