"""The live stream of a session: the task's records sent to the analysis server.

:class:`StreamSink` is the :class:`experiment.task.RecordSink` the task writes to; it hands each
record to a :class:`experiment.sender.Sender` (non-blocking, journalled, replaying).
"""

from __future__ import annotations

import logging
from pathlib import Path

from experiment.sender import Sender
from lookwhere.protocol import RECORD_TYPES, ProtocolError

__all__ = ["StreamSink", "open_stream", "JOURNAL_NAME"]

logger = logging.getLogger(__name__)

#: The sender's journal, in the session folder (kept across ``--resume``).
JOURNAL_NAME = "stream.journal"


class StreamSink:
    """Send the task's records through a :class:`Sender`.

    A record the protocol rejects (say, a non-finite value from a faulty device) is dropped,
    logged and counted in ``rejected``: the session must go on, and the session records on disk
    keep the data.
    """

    wants_gaze = True

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.rejected = 0

    def send(self, record: dict) -> None:
        fields = dict(record)
        kind = fields.pop("kind")
        try:
            self.sender.send(RECORD_TYPES[kind], **fields)
        except (ProtocolError, KeyError, TypeError) as error:
            self.rejected += 1
            logger.warning("%s record not streamed (%s); the session records keep it", kind, error)

    def service(self) -> None:
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
    return StreamSink(Sender(endpoint, session_dir / JOURNAL_NAME, session=session))
