"""The notes file (lookwhere.notes): what is written is read back, a torn last line is skipped, a
bad line is named, and "keep trial" undoes an earlier exclusion.

Oracles: the notes written by the test, in order.
"""

from __future__ import annotations

import pytest

from lookwhere.notes import NoteKind, OperatorNote, append_note, excluded_trials, read_notes, server_notes_path

SESSION = "c4521e4f-9766-4a27-aa24-6f8146c947b6"


def _note(kind: NoteKind, trial: int | None, *, text: str = "", at: float = 1.0) -> OperatorNote:
    return OperatorNote(session=SESSION, participant="P07", trial=trial, kind=kind, text=text, unix_s=at)


def test_notes_are_read_back_in_order_and_a_torn_last_line_is_skipped(tmp_path):
    path = server_notes_path(tmp_path, SESSION)
    assert path == tmp_path / "sessions" / SESSION / "notes.jsonl"
    written = [_note("participant_moved", 0), _note("text", 1, text="yawned", at=2.0), _note("exclude_trial", 1)]
    for note in written:
        append_note(path, note)
    assert read_notes(path) == written
    with open(path, "a") as handle:
        handle.write('{"schema": 1, "session": "c45')  # a save cut short
    assert read_notes(path) == written
    assert read_notes(tmp_path / "absent.jsonl") == []


def test_a_bad_line_is_named(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text(_note("recalibrated", 2).to_json() + "\n" + '{"schema": 1, "kind": "dance"}\n' + "{}\n")
    with pytest.raises(ValueError, match="notes.jsonl line 2 is not an operator note"):
        read_notes(path)
    path.write_text('{"schema": 2}\n\n')
    with pytest.raises(ValueError, match="line 1: expected a note of schema 1, found 2"):
        read_notes(path)


def test_notes_say_what_their_kind_needs():
    with pytest.raises(ValueError, match="free-text note needs its text"):
        _note("text", 0, text="  ")
    with pytest.raises(ValueError, match="needs the trial"):
        _note("exclude_trial", None)
    with pytest.raises(ValueError, match="is not a UUID"):
        server_notes_path("data", "../../etc")


def test_keep_trial_undoes_an_exclusion_and_the_later_note_wins():
    notes = [
        _note("exclude_trial", 1),
        _note("exclude_trial", 3),
        _note("keep_trial", 1),
        _note("exclude_trial", 4),
        _note("keep_trial", 4),
        _note("exclude_trial", 4, text="after all"),
    ]
    excluded = excluded_trials(notes)
    assert sorted(trial for _, trial in excluded) == [3, 4]
    assert excluded[(SESSION, 4)].text == "after all"
