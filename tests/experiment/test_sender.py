"""experiment.sender across crashes: its journal and its numbering, with the real receiver over
ZeroMQ on 127.0.0.1 (no mocks).

Oracles: the sample records of ``tests.protocol._samples`` encoded by the protocol (what was
sent), the receiver's journal and its counters.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from experiment.sender import Sender
from lookwhere import protocol
from server.receiver import CONFLICTS_FOLDER, Receiver
from tests.protocol._samples import FIELDS, SESSION
from tests.server._stream import KINDS, pump, send_sample
from tests.server.test_receiver import _rebind

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]

# A sender in its own process: sends argv[4] sample records (servicing as a task loop does),
# prints its last seq, then waits to be killed.
_SENDER_SCRIPT = """
import sys, time
from experiment.sender import Sender
from tests.server._stream import KINDS, send_sample
sender = Sender(sys.argv[1], sys.argv[2], session=sys.argv[3], heartbeat_interval_s=None)
for i in range(int(sys.argv[4])):
    send_sample(sender, KINDS[i % len(KINDS)])
    sender.service()
print(sender.last_seq, flush=True)
time.sleep(60)
"""


def _payloads(kinds: list[str], first_seq: int) -> list[bytes]:
    """The payloads of the sample records of ``kinds`` numbered from ``first_seq``."""
    return [
        protocol.encode(protocol.RECORD_TYPES[kind](session=SESSION, seq=first_seq + i, **FIELDS[kind]))[1]
        for i, kind in enumerate(kinds)
    ]


def _journal_payloads(path: Path) -> list[bytes]:
    data, start, out = path.read_bytes(), 0, []
    for end, _ in protocol.read_journal(path):
        out.append(data[start:end])
        start = end
    return out


@contextlib.contextmanager
def _serving(receiver: Receiver):
    """The receiver answering from its own thread, as in the server (for the blocking handshake)."""
    stop = threading.Event()
    thread = threading.Thread(
        target=receiver.serve, args=(lambda records: None,), kwargs={"stop": stop, "timeout_ms": 10}
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_a_killed_sender_has_journalled_every_record_it_sent(tmp_path):
    """SIGKILL right after the sends: the journal holds every record (none waits in a buffer of
    the dead process), so the server never holds a record the journal lacks and the resumed
    sender numbers on after all of them: its records are accepted, not taken for duplicates."""
    n_records = 500
    journal = tmp_path / "rig.journal"
    with Receiver(tmp_path / "server") as receiver:
        process = subprocess.Popen(
            [sys.executable, "-c", _SENDER_SCRIPT, receiver.endpoint, str(journal), SESSION, str(n_records)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            with _serving(receiver):
                assert process.stdout is not None  # piped
                assert int(process.stdout.readline()) == n_records
                process.kill()  # right after the sends
                process.wait()
                time.sleep(0.2)  # the receiver takes in what reached it
        finally:
            process.kill()
            process.wait()
        sent = _payloads([KINDS[i % len(KINDS)] for i in range(n_records)], 1)
        assert _journal_payloads(journal) == sent
        held = receiver.sessions()[SESSION].last_seq
        assert 0 < held <= n_records
        assert _journal_payloads(receiver.store.journals[SESSION].path) == sent[:held]

        resumed = Sender(receiver.endpoint, journal, session=SESSION, heartbeat_interval_s=None)
        assert resumed.last_seq == n_records
        record = send_sample(resumed, "session_start")
        pump(receiver, [resumed], lambda: resumed.acked_seq == record.seq)
        resumed.close()
        assert receiver.counters["conflicts"] == 0
        assert [r.seq for r in receiver.persisted(SESSION)] == list(range(1, n_records + 2))


def _cut_journal(path: Path, n_records: int) -> None:
    """Keep the first ``n_records`` of a journal: the rest was lost (a power cut before its fsync,
    or an older lookwhere's in-process buffer)."""
    os.truncate(path, [end for end, _ in protocol.read_journal(path)][n_records - 1])


def test_resumed_sender_numbers_on_after_what_the_server_holds(tmp_path):
    journal = tmp_path / "rig.journal"
    with Receiver(tmp_path / "server") as receiver:
        first = Sender(receiver.endpoint, journal, session=SESSION, heartbeat_interval_s=None)
        for _ in range(30):
            send_sample(first, "gaze")
        pump(receiver, [first], lambda: first.acked_seq == 30)
        first.close()
        _cut_journal(journal, 20)

        resumed = Sender(receiver.endpoint, journal, session=SESSION, heartbeat_interval_s=None)
        assert resumed.last_seq == 20
        with _serving(receiver):
            assert resumed.handshake(timeout_s=5.0)  # the server answered: no false warning
        assert (resumed.last_seq, resumed.acked_seq, resumed.pending) == (30, 30, 0)
        assert resumed.stats["server_ahead"] == 1 and resumed.stats["bad_replies"] == 0
        record = send_sample(resumed, "session_start")
        assert record.seq == 31
        pump(receiver, [resumed], lambda: resumed.acked_seq == 31)
        resumed.close()
        counters = receiver.counters
        assert counters["conflicts"] == 0 and counters["duplicates"] == 0
        persisted = list(receiver.persisted(SESSION))
        assert [r.kind for r in persisted] == ["gaze"] * 30 + ["session_start"]

    # The jump stays in the journal, and a reload reads it: the server held 1..30.
    assert [data["seq"] for _, data in protocol.read_journal(journal)] == [*range(1, 21), 31]
    again = Sender("tcp://127.0.0.1:1", journal, session=SESSION, heartbeat_interval_s=None)
    assert (again.last_seq, again.acked_seq, again.pending) == (31, 30, 1)
    again.close()


def test_server_absent_at_resume_then_holding_more_gives_conflicts_then_a_jump(tmp_path):
    """The resumed sender cannot learn what the server holds, so it numbers on from its journal
    (20) while the server, back later, holds 30: its records 21..25 are conflicts (counted, kept
    aside on disk, never applied), the server's ack makes it jump, and seq 31 is accepted."""
    journal = tmp_path / "rig.journal"
    with Receiver(tmp_path / "server") as receiver:
        port = int(receiver.endpoint.rsplit(":", 1)[1])
        first = Sender(receiver.endpoint, journal, session=SESSION, heartbeat_interval_s=None)
        for _ in range(30):
            send_sample(first, "gaze")
        pump(receiver, [first], lambda: first.acked_seq == 30)
        first.close()
        endpoint = receiver.endpoint
    held = _journal_payloads(tmp_path / "server" / "stream" / f"{SESSION}.msgpack")
    _cut_journal(journal, 20)

    resumed = Sender(endpoint, journal, session=SESSION, heartbeat_interval_s=None, resend_after_s=0.05)
    assert not resumed.handshake(timeout_s=0.3)  # the server is away: a warning, the session runs
    conflicting = [send_sample(resumed, "mic_level") for _ in range(5)]
    assert [r.seq for r in conflicting] == [21, 22, 23, 24, 25]
    with _rebind(tmp_path / "server", port) as receiver:
        accepted: list = []
        pump(receiver, [resumed], lambda: resumed.acked_seq == 30, sink=accepted)
        assert resumed.stats["server_ahead"] == 1
        record = send_sample(resumed, "session_start")
        assert record.seq == 31
        pump(receiver, [resumed], lambda: resumed.acked_seq == 31, sink=accepted)
        assert [r.seq for r in accepted] == [31]  # nothing of 21..25 reached the state
        assert receiver.counters["conflicts"] == 5 and receiver.sessions()[SESSION].conflicts == 5
        persisted = _journal_payloads(receiver.store.journals[SESSION].path)
        assert persisted[:30] == held and persisted[30] == _payloads(["session_start"], 31)[0]
    resumed.close()
    kept = _journal_payloads(tmp_path / "server" / "stream" / CONFLICTS_FOLDER / f"{SESSION}.msgpack")
    assert kept == _payloads(["mic_level"] * 5, 21)  # each conflicting record once, as sent
    assert _journal_payloads(journal)[20:] == kept + _payloads(["session_start"], 31)
    with Receiver(tmp_path / "server") as restarted:  # the counts survive a restart
        assert restarted.counters["conflicts"] == 5 and restarted.sessions()[SESSION].conflicts == 5


def test_drain_at_the_end_of_a_session_waits_for_a_restarting_server(tmp_path):
    """The last records were sent while the server was down: closing the session waits (bounded)
    until the restarted server has them; a server never heard from costs no wait."""
    with Receiver(tmp_path / "server") as receiver:
        port = int(receiver.endpoint.rsplit(":", 1)[1])
        sender = Sender(
            receiver.endpoint, tmp_path / "rig.journal", session=SESSION, heartbeat_interval_s=None, resend_after_s=0.1
        )
        for _ in range(10):
            send_sample(sender, "gaze")
        pump(receiver, [sender], lambda: sender.acked_seq == 10)
    for _ in range(5):
        send_sample(sender, "fixation")
    stop = threading.Event()

    def restart() -> None:
        time.sleep(0.5)
        with _rebind(tmp_path / "server", port) as restarted:
            restarted.serve(lambda records: None, stop=stop, timeout_ms=10)

    thread = threading.Thread(target=restart)
    thread.start()
    try:
        started = time.monotonic()
        assert sender.drain(timeout_s=10.0)
        assert sender.acked_seq == 15 and 0.5 < time.monotonic() - started < 10.0
    finally:
        stop.set()
        thread.join()
        sender.close()

    absent = Sender(f"tcp://127.0.0.1:{port}", tmp_path / "absent.journal", heartbeat_interval_s=None)
    send_sample(absent, "gaze")
    started = time.monotonic()
    assert not absent.drain(timeout_s=10.0) and time.monotonic() - started < 0.1
    absent.close()
