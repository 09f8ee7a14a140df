"""The experimenter's notes on a session (issue 15): written by the server from the dashboard, read
by the offline analysis, which drops the trials an ``exclude_trial`` note names.

One JSON object per note, appended to ``notes.jsonl``. The analysis server keeps each session's in
``<data_dir>/sessions/<session>/notes.jsonl`` (:func:`server_notes_path`), and streams each note
back to the experiment (``ctl.note``, :mod:`lookwhere.protocol`), which appends it to its own
session folder's ``notes.jsonl`` (:class:`experiment.stream.StreamSink`): the experiment's folder
may sit on another machine, and it is the session's record. The two files hold the same notes
(the experiment's lacks those made after the session ended, which ``lookwhere analyze --notes
DATA_DIR`` finds on the server; a note in both counts once)::

    {"schema": 1, "session": "c4521e4f-…", "participant": "P07", "trial": 2, "image": "1003",
     "kind": "exclude_trial", "text": "looked away", "unix_s": 1767225600.0}

``trial`` is 0-based (the dashboard shows it 1-based), ``None`` for a note made before the
session's first trial; ``unix_s`` is the server's clock when the note was saved. Notes are never
rewritten: a mistaken ``exclude_trial`` is undone by a ``keep_trial`` note on the same trial, the
later of the two winning (:func:`excluded_trials`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass

__all__ = [
    "NOTES_FILE",
    "NOTE_KINDS",
    "NoteKind",
    "OperatorNote",
    "append_note",
    "read_notes",
    "server_notes_path",
    "excluded_trials",
]

logger = logging.getLogger(__name__)

NOTES_FILE = "notes.jsonl"
SCHEMA = 1

NoteKind = Literal["participant_moved", "recalibrated", "exclude_trial", "keep_trial", "text"]
#: Each kind of note and how the dashboard and the report name it.
NOTE_KINDS: dict[str, str] = {
    "participant_moved": "participant moved",
    "recalibrated": "re-calibrated",
    "exclude_trial": "exclude trial",
    "keep_trial": "keep trial (undoes an exclusion)",
    "text": "note",
}
_NEEDS_TRIAL = ("exclude_trial", "keep_trial")


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class OperatorNote:
    """One note (a line of ``notes.jsonl``); the fields as in the module's example."""

    session: str
    kind: NoteKind
    unix_s: float
    participant: str | None = None
    trial: int | None = Field(default=None, ge=0)
    image: str | None = None
    text: str = Field(default="", max_length=2000)
    schema: int = SCHEMA

    @model_validator(mode="after")
    def _complete(self) -> OperatorNote:
        if self.kind == "text" and not self.text.strip():
            raise ValueError("a free-text note needs its text")
        if self.kind in _NEEDS_TRIAL and self.trial is None:
            raise ValueError(f"a {self.kind!r} note needs the trial it is about")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)


def server_notes_path(data_dir, session: str) -> Path:
    """``<data_dir>/sessions/<session>/notes.jsonl``, where ``lookwhere serve --data DATA_DIR``
    keeps the notes of ``session`` (a UUID, checked: it becomes a folder name)."""
    try:
        name = str(uuid.UUID(session))
    except ValueError:
        raise ValueError(f"session {session!r} is not a UUID (the sessions lookwhere run records are)") from None
    return Path(data_dir) / "sessions" / name / NOTES_FILE


def append_note(path, *notes: OperatorNote) -> None:
    """Append ``notes`` to the file ``path`` (created with its folder), flushed to the disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(note.to_json() + "\n" for note in notes))
        handle.flush()
        os.fsync(handle.fileno())


def read_notes(path) -> list[OperatorNote]:
    """The notes of one ``notes.jsonl`` in the order they were written (empty when it is absent).

    Raises
    ------
    ValueError
        When a complete line is not a valid note (the message names the file and line). A torn
        last line (a save cut short) is skipped with a warning.
    """
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    notes = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                logger.warning("%s line %d is incomplete (a save cut short); ignoring it", path, number)
                continue
            raise ValueError(f"{path} line {number} is not JSON: {error}") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{path} line {number}: expected a note of schema {SCHEMA}, found {found!r}")
        try:
            note = OperatorNote(**data)
        except ValidationError as error:
            raise ValueError(f"{path} line {number} is not an operator note: {error}") from None
        notes.append(note)
    return notes


def excluded_trials(notes: Iterable[OperatorNote]) -> dict[tuple[str, int], OperatorNote]:
    """The trials the notes exclude, ``(session, trial)`` → the ``exclude_trial`` note; a later
    ``keep_trial`` note on the same trial undoes an exclusion. ``notes`` in the order written."""
    excluded: dict[tuple[str, int], OperatorNote] = {}
    for note in notes:
        if note.trial is None:
            continue
        key = (note.session, note.trial)
        if note.kind == "exclude_trial":
            excluded[key] = note
        elif note.kind == "keep_trial":
            excluded.pop(key, None)
    return excluded
