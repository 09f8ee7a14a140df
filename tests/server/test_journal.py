"""server.journal: reopening restores the last seq and cuts a record truncated by a crash.

Oracle: journals written here from the hand-made sample records, cut at a known byte.
"""

from __future__ import annotations

import pytest

from lookwhere import protocol
from server.journal import JournalStore, SessionJournal
from tests.protocol._samples import FIELDS, SESSION


def _payload(seq: int, kind: str = "gaze") -> bytes:
    return protocol.encode(protocol.RECORD_TYPES[kind](session=SESSION, seq=seq, **FIELDS[kind]))[1]


def test_reopen_cuts_a_truncated_tail_and_appends_after_it(tmp_path):
    path = tmp_path / f"{SESSION}.msgpack"
    journal = SessionJournal(path)
    for seq in (1, 2, 3):
        journal.append(seq, _payload(seq))
    journal.close()
    whole = path.read_bytes()
    path.write_bytes(whole + _payload(4)[:10])  # a write cut short by SIGKILL

    journal = SessionJournal(path)
    assert (journal.last_seq, journal.last_kind) == (3, "gaze")
    assert path.read_bytes() == whole
    journal.append(4, _payload(4, "session_end"))
    with pytest.raises(ValueError, match="seq must be 5"):
        journal.append(7, _payload(7))
    journal.close()
    reopened = SessionJournal(path)
    assert [r.seq for r in reopened.records()] == [1, 2, 3, 4] and reopened.last_kind == "session_end"
    reopened.close()
    store = JournalStore(tmp_path / "data")
    assert store.journals == {}


def test_a_journal_out_of_order_is_refused_not_overwritten(tmp_path):
    path = tmp_path / f"{SESSION}.msgpack"
    path.write_bytes(_payload(1) + _payload(3))
    with pytest.raises(ValueError, match="expected seq 2 .* found seq 3"):
        SessionJournal(path)
    assert path.read_bytes() == _payload(1) + _payload(3)
