"""The live stream of a session (``lookwhere run --server``), over real ZeroMQ sockets.

Oracles: the session's own records on disk (``fixations.csv``, ``trials.jsonl``) and the
sender's journal; the receiver is the real one of the server package.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from analysis.heatmap import heatmap
from experiment.records import SessionRecords
from experiment.sender import Sender
from experiment.stream import JOURNAL_NAME
from lookwhere.cli import main as cli_main
from lookwhere.protocol import FixationRecord, Heartbeat, Record, SessionEnd, TrialStart, read_journal
from server.receiver import Receiver
from tests.experiment.conftest import start_session
from tests.server._stream import pump


def test_session_streams_every_record_to_a_real_receiver(session_env, four_images, tmp_path):
    with Receiver(tmp_path / "server") as receiver:
        process = start_session(
            session_env,
            "--participant",
            "S01",
            "--stimuli",
            str(four_images),
            "--tracker",
            "simulated",
            "--out",
            str(tmp_path / "sessions"),
            "--trials",
            "2",
            "--seed",
            "3",
            "--duration-ms",
            "500",
            "--auto-accept-drift-ms",
            "150",
            "--windowed",
            "--server",
            receiver.endpoint,
        )
        received: list[Record] = []
        deadline = time.monotonic() + 90
        while not any(isinstance(r, SessionEnd) for r in received):
            assert time.monotonic() < deadline, "no session_end within 90 s"
            if process.poll() not in (None, 0):
                pytest.fail(f"session failed: {process.communicate()[0][-3000:]}")
            received.extend(receiver.poll(50))
        output = process.communicate(timeout=30)[0]
        assert process.returncode == 0, output[-3000:]

    records = SessionRecords(tmp_path / "sessions" / "S01")
    on_disk = records.read_fixations()
    streamed = [r.to_fixation() for r in received if isinstance(r, FixationRecord)]
    assert len(streamed) == len(on_disk) > 0
    np.testing.assert_allclose([f.x_display_px for f in streamed], on_disk["x_display_px"])
    np.testing.assert_allclose([f.duration_ms for f in streamed], on_disk["duration_ms"])
    # Gap-free numbering, and the receiver persisted exactly the sender's journal.
    seqs = [r.seq for r in received]
    assert seqs == list(range(1, len(seqs) + 1))
    journal = [data["seq"] for _, data in read_journal(tmp_path / "sessions" / "S01" / JOURNAL_NAME)]
    assert journal == seqs

    # Offline, the session's folder is a dataset: `lookwhere analyze --dataset session`.
    out = tmp_path / "analysis"
    assert (
        cli_main(
            [
                "analyze",
                "--dataset",
                "session",
                "--fixations",
                str(tmp_path / "sessions"),
                "--stimuli",
                str(four_images),
                "--out",
                str(out),
                "--bootstrap",
                "200",
                "--no-progress",
                "--float64",
            ]
        )
        == 0
    )
    heatmaps = np.load(out / "heatmaps.npz")
    for image_id in on_disk["image"].unique():
        rows = on_disk[on_disk["image"] == image_id]
        np.testing.assert_allclose(heatmaps[image_id], heatmap(rows, shape=(600, 800)), atol=1e-12)


def test_heartbeats_flow_while_the_task_waits_at_drift_correction(session_env, four_images, tmp_path):
    """The task holds at its drift-correction screen for 2.5 s per trial (the simulated participant
    accepts it then): heartbeats saying so reach a real receiver meanwhile, about one a second,
    before the image's trial_start; the image's heartbeats say it waits for nothing."""
    with Receiver(tmp_path / "server") as receiver:
        process = start_session(
            session_env,
            "--participant",
            "S03",
            "--stimuli",
            str(four_images),
            "--tracker",
            "simulated",
            "--out",
            str(tmp_path / "sessions"),
            "--trials",
            "2",
            "--seed",
            "4",
            "--duration-ms",
            "1200",
            "--auto-accept-drift-ms",
            "2500",
            "--windowed",
            "--no-mic",
            "--server",
            receiver.endpoint,
        )
        received: list[Record] = []
        deadline = time.monotonic() + 90
        while not any(isinstance(r, SessionEnd) for r in received):
            assert time.monotonic() < deadline, "no session_end within 90 s"
            if process.poll() not in (None, 0):
                pytest.fail(f"session failed: {process.communicate()[0][-3000:]}")
            received.extend(receiver.poll(50))
        output = process.communicate(timeout=30)[0]
        assert process.returncode == 0, output[-3000:]

    starts = [r.seq for r in received if isinstance(r, TrialStart)]
    beats = [r for r in received if isinstance(r, Heartbeat)]
    at_drift = [[b for b in beats if b.waiting == "drift_correction" and b.seq < start] for start in starts]
    for trial, before in enumerate(at_drift):
        if trial:  # only this trial's drift screen: after the previous image's trial_end
            before = [b for b in before if b.seq > starts[trial - 1]]
        # one when the screen appears, then one per second of the 2.5 s wait
        assert len(before) >= 3, [(b.seq, b.waiting, b.t_session_ms) for b in beats]
        assert before[-1].t_session_ms - before[0].t_session_ms >= 1900
    during_image = [b for b in beats if starts[0] < b.seq < starts[1] and b.waiting is None]
    assert during_image  # the image's 1.2 s: the task waits for nothing
    assert {b.waiting for b in beats} == {"drift_correction", None}


def test_a_resumed_sender_continues_its_session(tmp_path):
    """A process killed mid-session leaves its journal; the resumed process numbers on from it
    (a restart at seq 1 would be taken for duplicates) and a torn last record is cut off."""
    session = "0b7c8d2e-1f3a-4c5b-9d6e-7f8a9b0c1d2e"
    journal = tmp_path / JOURNAL_NAME
    first = Sender("tcp://127.0.0.1:1", journal, session=session, heartbeat_interval_s=None)
    for i in range(5):
        first.send(SessionEnd(reason=f"part-{i}", n_trials=i, t_session_ms=1.0 + i))
    first.close()
    with open(journal, "ab") as file:
        file.write(b"\x8a\xa4kind")  # a record torn by SIGKILL mid-write

    with Receiver(tmp_path / "server") as receiver:
        second = Sender(receiver.endpoint, journal, session=session, heartbeat_interval_s=None)
        assert second.last_seq == 5 and second.pending == 5
        record = second.send(SessionEnd(reason="resumed", n_trials=6, t_session_ms=9.0))
        assert record.seq == 6
        pump(receiver, [second], until=lambda: second.acked_seq == 6)
        second.close()
        persisted = list(receiver.persisted(session))
    assert [r.seq for r in persisted] == [1, 2, 3, 4, 5, 6]
    assert isinstance(persisted[-1], SessionEnd) and persisted[-1].reason == "resumed"
    assert [data["seq"] for _, data in read_journal(journal)] == [1, 2, 3, 4, 5, 6]


def test_a_foreign_journal_is_refused(tmp_path):
    session = "0b7c8d2e-1f3a-4c5b-9d6e-7f8a9b0c1d2e"
    journal = tmp_path / JOURNAL_NAME
    sender = Sender("tcp://127.0.0.1:1", journal, session=session, heartbeat_interval_s=None)
    sender.send(SessionEnd(reason="a", n_trials=0, t_session_ms=1.0))
    sender.close()
    # Duplicate the journal's content: seq 1 twice can only come from an edited or mixed file.
    journal.write_bytes(journal.read_bytes() * 2)
    with pytest.raises(ValueError, match="not this sender's journal"):
        Sender("tcp://127.0.0.1:1", journal, session=session)


def test_server_absent_the_session_completes_and_the_journal_holds_everything(session_env, four_images, tmp_path):
    """Nothing listens on the endpoint: trials run at their normal length and every record the
    task produced is in the journal, numbered without gaps, ready to be replayed."""
    with Receiver(tmp_path / "probe") as probe:
        endpoint = probe.endpoint  # a free port, closed again before the session starts
    process = start_session(
        session_env,
        "--participant",
        "S02",
        "--stimuli",
        str(four_images),
        "--tracker",
        "simulated",
        "--out",
        str(tmp_path),
        "--trials",
        "2",
        "--seed",
        "5",
        "--duration-ms",
        "500",
        "--auto-accept-drift-ms",
        "150",
        "--windowed",
        "--server",
        endpoint,
    )
    output = process.communicate(timeout=90)[0]
    assert process.returncode == 0, output[-3000:]
    records = SessionRecords(tmp_path / "S02")
    rows = records.completed_trials()
    assert len(rows) == 2
    assert all(abs(row["stimulus_duration_ms"] - 500) < 40 for row in rows)
    journal = [data for _, data in read_journal(tmp_path / "S02" / JOURNAL_NAME)]
    assert [d["seq"] for d in journal] == list(range(1, len(journal) + 1))
    kinds = [d["kind"] for d in journal]
    assert kinds[0] == "session_start" and kinds[-1] == "session_end"
    assert kinds.count("fixation") == len(records.read_fixations()) > 0


def test_handshake_says_whether_a_server_answers(tmp_path):
    session = "0b7c8d2e-1f3a-4c5b-9d6e-7f8a9b0c1d2e"
    with Receiver(tmp_path / "server") as receiver:
        endpoint = receiver.endpoint
        stop = threading.Event()

        def serve():  # the receiver answers from its own loop, as the server does
            while not stop.is_set():
                receiver.poll(20)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with Sender(endpoint, tmp_path / "a.journal", session=session, heartbeat_interval_s=None) as sender:
                assert sender.handshake(timeout_s=5.0)
        finally:
            stop.set()
            thread.join()
    started = time.monotonic()
    with Sender(endpoint, tmp_path / "b.journal", session=session, heartbeat_interval_s=None) as sender:
        assert not sender.handshake(timeout_s=0.5)
    assert time.monotonic() - started < 2.0
