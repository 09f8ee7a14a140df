"""The receiver's persistence: one append-only journal file per session.

Layout: ``<data_dir>/stream/<session>.msgpack``, each file the session's record maps in ``seq``
order (1, 2, ...), exactly as received (the validated msgpack payload), readable with
:func:`lookwhere.protocol.read_journal`. Session names are validated UUIDs, so they are safe
file names.

Durability: :meth:`SessionJournal.append` hands the bytes to the kernel with ``os.write`` (no
user-space buffer), so a record survives the server process being killed the moment the call
returns; :meth:`SessionJournal.sync` (``os.fsync``) makes it survive a power cut. The receiver
calls ``sync`` once per batch of messages, before it acknowledges any of them (group commit).

:meth:`SessionJournal.payload` reads a held record back (the receiver compares a resent seq with
it: a duplicate or a conflict); the end offset of each record is kept for it, 8 bytes a record.
"""

from __future__ import annotations

import logging
import os
from array import array
from collections.abc import Iterator
from pathlib import Path

from lookwhere import protocol
from lookwhere.protocol import Record

__all__ = ["SessionJournal", "JournalStore"]

logger = logging.getLogger(__name__)


class SessionJournal:
    """The journal of one session; reopening it restores its last ``seq``.

    Parameters
    ----------
    path : Path
        The file; created if absent. A truncated last record (a write cut short by a crash) is cut
        off, with a warning.

    Raises
    ------
    ValueError
        When the file holds something other than the session's records 1..n in order: it was not
        written by this module, and nothing is overwritten.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.session = path.stem
        self.last_seq = 0
        #: kind of the last record found when the file was opened ("" for a new file)
        self.last_kind = ""
        self._ends = array("Q", [0])  # record seq ends at byte _ends[seq], starts at _ends[seq - 1]
        good_offset = 0
        if path.exists():
            for offset, data in protocol.read_journal(path):
                record = self._checked(data, good_offset)
                self.last_seq, self.last_kind = record.seq, record.kind
                good_offset = offset
                self._ends.append(offset)
            size = path.stat().st_size
            if size > good_offset:
                logger.warning(
                    "%s: cutting a truncated record (%d bytes) after seq %d", path, size - good_offset, self.last_seq
                )
                os.truncate(path, good_offset)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)

    def _checked(self, data: object, offset: int) -> Record:
        try:
            record = protocol.validate_map(data)
        except protocol.ProtocolError as exc:
            raise ValueError(f"{self.path} at byte {offset}: not a valid record ({exc}); move the file away") from None
        if record.session != self.session or record.seq != self.last_seq + 1:
            raise ValueError(
                f"{self.path} at byte {offset}: expected seq {self.last_seq + 1} of session {self.session}, "
                f"found seq {record.seq} of {record.session}; move the file away"
            )
        return record

    def append(self, seq: int, payload: bytes) -> None:
        """Append the record ``seq`` (which must be ``last_seq + 1``) as its msgpack ``payload``."""
        if seq != self.last_seq + 1:
            raise ValueError(f"seq must be {self.last_seq + 1} (journals hold 1..n in order); got {seq}")
        view = memoryview(payload)
        while view:  # os.write may write less than asked (e.g. on a signal)
            view = view[os.write(self._fd, view) :]
        self.last_seq = seq
        self._ends.append(self._ends[-1] + len(payload))

    def payload(self, seq: int) -> bytes:
        """The msgpack payload of the held record ``seq`` (1..``last_seq``), as received."""
        if not 1 <= seq <= self.last_seq:
            raise ValueError(f"seq must be in 1..{self.last_seq} (the records {self.path} holds); got {seq}")
        start = self._ends[seq - 1]
        return os.pread(self._fd, self._ends[seq] - start, start)

    def sync(self) -> None:
        """``os.fsync`` the file."""
        os.fsync(self._fd)

    def records(self) -> Iterator[Record]:
        """The persisted records, validated, in ``seq`` order."""
        for _, data in protocol.read_journal(self.path):
            yield protocol.validate_map(data)

    def close(self) -> None:
        os.close(self._fd)


class JournalStore:
    """Every session's journal under ``<data_dir>/stream``, reopened at start.

    Parameters
    ----------
    data_dir : str or Path
        The server's data folder (created if needed).
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.folder = Path(data_dir) / "stream"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.journals: dict[str, SessionJournal] = {}
        for path in sorted(self.folder.glob("*.msgpack")):
            journal = SessionJournal(path)
            self.journals[journal.session] = journal
        if self.journals:
            logger.info(
                "reloaded %d session journals from %s (%d records)",
                len(self.journals),
                self.folder,
                sum(j.last_seq for j in self.journals.values()),
            )

    def open(self, session: str) -> SessionJournal:
        """The journal of ``session`` (a validated UUID), created if new."""
        journal = self.journals.get(session)
        if journal is None:
            journal = self.journals[session] = SessionJournal(self.folder / f"{session}.msgpack")
        return journal

    def close(self) -> None:
        for journal in self.journals.values():
            journal.close()
