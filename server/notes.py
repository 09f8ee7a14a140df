"""The experimenter's notes (issue 15): typed or hot-keyed on the dashboard, posted to
``/api/notes`` (:mod:`server.routes.notes`), saved per session in the server's data folder and
published as the ``notes`` section.

Each session's notes go to ``<data_dir>/sessions/<session>/notes.jsonl``
(:func:`lookwhere.notes.server_notes_path`): the server knows only the stream, not where the
experiment keeps its session folder, which is often on another machine; ``lookwhere analyze
--notes DATA_DIR`` finds them there by the session's id. Notes are appended, never rewritten.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lookwhere.notes import NOTE_KINDS, NOTES_FILE, NoteKind, OperatorNote, append_note, excluded_trials, read_notes
from lookwhere.notes import server_notes_path as notes_path

__all__ = ["NoteBook", "NoteIn", "NotesSection"]

logger = logging.getLogger(__name__)


class NoteIn(BaseModel):
    """What the dashboard posts: the kind, the text, and the trial (0-based) it is about;
    ``trial`` omitted: the trial in progress, or the last one started."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: NoteKind
    text: str = Field("", max_length=2000)
    trial: int | None = Field(None, ge=0)


class NotesSection(BaseModel):
    """The ``notes`` section: the current session's notes (oldest first), the trials they exclude
    (0-based, sorted) and the kinds of note with their labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    session: str | None
    notes: list[OperatorNote]
    excluded_trials: list[int]
    kinds: dict[str, str]


class NoteBook:
    """Every session's notes under ``<data_dir>/sessions``, read from disk on first use.

    Thread-safe: a note is appended (and fsynced) under the book's own lock, not the hub's, so a
    slow disk never delays the stream.

    Parameters
    ----------
    data_dir : str or Path
        The server's data folder (``lookwhere serve --data``).
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self._lock = threading.Lock()
        self._notes: dict[str, list[OperatorNote]] = {}

    def path(self, session: str) -> Path:
        return notes_path(self.data_dir, session)

    def _held(self, session: str) -> list[OperatorNote]:
        if session not in self._notes:
            self._notes[session] = read_notes(self.path(session))
        return self._notes[session]

    def add(self, note: OperatorNote) -> None:
        """Save ``note`` to its session's file, then keep it."""
        with self._lock:
            held = self._held(note.session)
            append_note(self.path(note.session), note)
            held.append(note)

    def notes(self, session: str) -> list[OperatorNote]:
        with self._lock:
            return list(self._held(session))

    def excluded(self, session: str) -> list[int]:
        """The trials (0-based, sorted) the notes on ``session`` exclude."""
        return sorted(trial for _, trial in excluded_trials(self.notes(session)))

    def excluded_everywhere(self) -> dict[str, list[int]]:
        """Every session's excluded trials, for the sessions with notes in the data folder (read at
        start; a notes file that cannot be read is logged and skipped: the server starts anyway)."""
        found = {}
        for path in sorted((self.data_dir / "sessions").glob(f"*/{NOTES_FILE}")):
            try:
                found[path.parent.name] = self.excluded(path.parent.name)
            except ValueError as error:
                logger.warning("the notes in %s are not used by the live scores: %s", path, error)
        return found

    def section(self, session: str | None) -> NotesSection:
        """The ``notes`` section of ``session`` (no notes before the first session)."""
        notes = [] if session is None else self.notes(session)
        return NotesSection(
            session=session,
            notes=notes,
            excluded_trials=sorted(trial for _, trial in excluded_trials(notes)),
            kinds=NOTE_KINDS,
        )
