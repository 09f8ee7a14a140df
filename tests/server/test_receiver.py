"""server.receiver with experiment.sender over real ZeroMQ sockets on 127.0.0.1 (no mocks).

Oracles: the records the sender sent (its own journal) and hand-counted malformed messages.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest
import zmq

from experiment.sender import Sender
from lookwhere import protocol
from lookwhere.transport import make_socket
from server.receiver import CONFLICTS_FOLDER, Receiver
from tests.protocol._samples import record_map
from tests.server._stream import KINDS, pump, send_sample

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]


def _journal_maps(path):
    return [data for _, data in protocol.read_journal(path)]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a
    )


def test_every_kind_travels_persists_and_is_acknowledged(tmp_path):
    accepted: list[protocol.Record] = []
    with (
        Receiver(tmp_path / "server") as receiver,
        Sender(receiver.endpoint, tmp_path / "rig.msgpack", heartbeat_interval_s=None) as sender,
    ):
        sent = [send_sample(sender, kind) for kind in KINDS]
        pump(receiver, [sender], lambda: sender.acked_seq == len(KINDS), sink=accepted)
        assert [r.seq for r in accepted] == list(range(1, len(KINDS) + 1))
        assert [r.kind for r in accepted] == KINDS
        assert all(_same(protocol.record_map(a), protocol.record_map(s)) for a, s in zip(accepted, sent))
        assert sender.pending == 0
        assert receiver.counters["accepted"] == len(KINDS) and receiver.counters["malformed"] == {}
        status = receiver.sessions()[sender.session]
        assert status.last_seq == len(KINDS) and status.alive and status.ended  # session_end was sent
    persisted = _journal_maps(tmp_path / "server" / "stream" / f"{sender.session}.msgpack")
    assert all(_same(p, protocol.record_map(s)) for p, s in zip(persisted, sent, strict=True))
    # The sender's local journal holds the same maps, byte for byte.
    assert (tmp_path / "rig.msgpack").read_bytes() == (
        tmp_path / "server" / "stream" / f"{sender.session}.msgpack"
    ).read_bytes()


def _rebind(data_dir, port: int, timeout_s: float = 5.0) -> Receiver:
    """A new receiver on ``port``: libzmq frees the old listener asynchronously after close()."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return Receiver(data_dir, port=port)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_restarted_receiver_reloads_and_a_replay_fills_exactly_the_gap(tmp_path):
    with Receiver(tmp_path / "server") as receiver:
        endpoint = receiver.endpoint
        port = int(endpoint.rsplit(":", 1)[1])
        sender = Sender(endpoint, tmp_path / "rig.msgpack", heartbeat_interval_s=None, resend_after_s=0.1)
        for _ in range(50):
            send_sample(sender, "gaze")
        pump(receiver, [sender], lambda: sender.acked_seq == 50)
    for _ in range(30):  # server down: nothing goes out, nothing blocks
        send_sample(sender, "gaze")
    assert sender.pending == 30
    with _rebind(tmp_path / "server", port) as receiver:
        assert receiver.sessions()[sender.session].last_seq == 50  # reloaded from disk
        accepted: list[protocol.Record] = []
        pump(receiver, [sender], lambda: sender.acked_seq == 80, sink=accepted)
        assert [r.seq for r in accepted] == list(range(51, 81))
        assert receiver.counters["accepted"] == 30
        assert [r.seq for r in receiver.persisted(sender.session)] == list(range(1, 81))
    sender.close()


def test_gap_triggers_a_replay_and_duplicates_are_dropped(tmp_path):
    """Records 2..5 are sent straight to the socket, skipping 1: the receiver must ask for 1."""
    with (
        Receiver(tmp_path / "server", replay_interval_s=0.05) as receiver,
        Sender(receiver.endpoint, tmp_path / "rig.msgpack", heartbeat_interval_s=None) as sender,
    ):
        raw = make_socket(zmq.Context.instance(), "sender")
        raw.connect(receiver.endpoint)
        try:
            pump(receiver, [], lambda: raw.poll(0, zmq.POLLOUT) != 0, timeout_s=5)
            for seq in (2, 3, 2, 5):
                raw.send_multipart([b"gaze", msgpack.packb(record_map("gaze", seq, session=sender.session))])
            pump(receiver, [], lambda: receiver.counters["gaps"] == 4)
            assert receiver.counters["replays"] >= 1 and receiver.counters["accepted"] == 0
            assert receiver.sessions()[sender.session].missing == 5  # seq 1..5 known missing
            # A duplicate of an accepted record is counted and acknowledged again, not stored twice.
            for _ in range(5):
                send_sample(sender, "gaze")
            pump(receiver, [sender], lambda: sender.acked_seq == 5)
            assert receiver.sessions()[sender.session].missing == 0  # the gaps are recovered
            raw.send_multipart([b"gaze", msgpack.packb(record_map("gaze", 3, session=sender.session))])
            pump(receiver, [], lambda: receiver.counters["duplicates"] == 1)
            assert [r.seq for r in receiver.persisted(sender.session)] == [1, 2, 3, 4, 5]
        finally:
            raw.close()


def test_a_closed_connection_is_seen_at_once(tmp_path):
    """Oracle: the senders opened and closed by the test (no waiting for the liveness timeout)."""
    with Receiver(tmp_path / "server", liveness_timeout_s=60) as receiver:
        senders = [Sender(receiver.endpoint, tmp_path / f"rig{i}.msgpack", heartbeat_interval_s=0.05) for i in range(2)]
        pump(receiver, senders, lambda: receiver.n_connections == 2)
        senders[0].close()
        pump(receiver, senders[1:], lambda: receiver.n_connections == 1, timeout_s=2)
        senders[1].close()
        pump(receiver, [], lambda: receiver.n_connections == 0, timeout_s=2)
        assert all(status.alive for status in receiver.sessions().values())  # silence alone: not yet


def test_liveness_follows_the_heartbeats(tmp_path):
    with Receiver(tmp_path / "server", liveness_timeout_s=0.3) as receiver:
        sender = Sender(receiver.endpoint, tmp_path / "rig.msgpack", heartbeat_interval_s=0.05)
        pump(receiver, [sender], lambda: receiver.counters["accepted"] >= 3)  # heartbeats only
        assert receiver.sessions()[sender.session].alive
        sender.close()
        time.sleep(0.4)
        receiver.poll(0)
        status = receiver.sessions()[sender.session]
        assert not status.alive and status.silent_s > 0.3


def _without(data: dict, key: str) -> dict:
    return {k: v for k, v in data.items() if k != key}


def _malformed_messages(rng: random.Random, session: str, accepted_seq: int):
    """Yield (frames, expected reason or "duplicates") — ≥ 10 families of bad messages."""
    good = record_map("fixation", 1, session=session)
    droppable = sorted(set(good) - {"kind", "v"})
    # Between the protocol's limit and the socket's MAXMSGSIZE, so the receiver sees and counts it.
    oversize_image = "x" * (protocol.MAX_MESSAGE_BYTES + 100)
    families = [
        lambda: ([b"fixation", rng.randbytes(rng.randint(0, 300))], None),  # random bytes: any reason
        lambda: ([rng.randbytes(rng.randint(1, 20)), msgpack.packb(good)], None),  # random topic
        lambda: ([b"fixation"], "bad_frames"),
        lambda: ([b"fixation", msgpack.packb(good), b"x"], "bad_frames"),
        lambda: ([b"fixation", msgpack.packb(_without(good, rng.choice(droppable)))], "missing_field"),
        lambda: (
            [
                b"fixation",
                msgpack.packb(
                    {**good, "x_display_px": rng.choice([float("nan"), float("inf"), -float("inf"), 1e9, -3e4])}
                ),
            ],
            "out_of_range",
        ),
        lambda: (
            [
                b"fixation",
                msgpack.packb(
                    {
                        **good,
                        rng.choice(["trial", "seq", "x_display_px", "image"]): rng.choice(
                            [None, [1], {"a": 1}, b"\x01", True]
                        ),
                    }
                ),
            ],
            "wrong_type",
        ),
        lambda: ([b"fixation", msgpack.packb({**good, "v": rng.choice([0, 2, 99, "1", None])})], "wrong_version"),
        lambda: ([b"fixation", msgpack.packb({**good, "colour": "red"})], "unknown_field"),
        lambda: ([b"gaze", msgpack.packb(good)], "kind_mismatch"),
        lambda: ([protocol.TOPIC_HELLO, msgpack.packb({"v": 1, "session": session})], "missing_field"),
        lambda: ([protocol.TOPIC_ACK, msgpack.packb({"v": 1, "session": session, "seq": 1})], "unknown_kind"),
        lambda: ([b"fixation", msgpack.packb({**good, "image": oversize_image})], "oversize"),
        lambda: (
            [b"fixation", msgpack.packb(record_map("fixation", rng.randint(1, accepted_seq), session=session))],
            "duplicates",
        ),
    ]
    while True:
        yield rng.choice(families)()


def test_fuzz_ten_thousand_malformed_messages(tmp_path):
    """The receiver stays up, counts every rejection, and its accepted state does not change."""
    rng = random.Random(20261126)
    n_messages = 12_000
    with (
        Receiver(tmp_path / "server") as receiver,
        Sender(receiver.endpoint, tmp_path / "rig.msgpack", heartbeat_interval_s=None) as sender,
    ):
        for _ in range(20):
            send_sample(sender, "fixation")
        pump(receiver, [sender], lambda: sender.acked_seq == 20)
        journal = tmp_path / "server" / "stream" / f"{sender.session}.msgpack"
        before = journal.read_bytes()

        fuzzer = make_socket(zmq.Context.instance(), "sender")
        fuzzer.connect(receiver.endpoint)
        expected: dict[str, int] = {}
        leaked: list[protocol.Record] = []
        try:
            pump(receiver, [], lambda: fuzzer.poll(0, zmq.POLLOUT) != 0, timeout_s=5)
            messages = _malformed_messages(rng, sender.session, 20)
            for start in range(0, n_messages, 500):
                for _ in range(500):
                    frames, reason = next(messages)
                    fuzzer.send_multipart(frames)
                    expected[reason or "any"] = expected.get(reason or "any", 0) + 1

                def handled():
                    c = receiver.counters
                    return sum(c["malformed"].values()) + c["duplicates"] == start + 500  # noqa: B023 — called now

                pump(receiver, [], handled, sink=leaked)
        finally:
            fuzzer.close()
        counters = receiver.counters
        malformed = counters["malformed"]
        print("fuzz counters:", counters)
        assert leaked == []  # nothing reached the consumer
        assert counters["accepted"] == 20 and counters["gaps"] == 0
        assert counters["duplicates"] == expected.pop("duplicates")
        assert sum(malformed.values()) == n_messages - counters["duplicates"]
        for reason, n in expected.items():
            if reason != "any":
                assert malformed[reason] >= n, reason  # random bytes/topics add to some reasons
        assert set(malformed) <= set(protocol.REJECT_REASONS)
        assert journal.read_bytes() == before
        # Still serving: the next real record is accepted.
        send_sample(sender, "trial_end")
        pump(receiver, [sender], lambda: sender.acked_seq == 21)
        assert receiver.sessions()[sender.session].last_seq == 21


def test_the_sender_imports_neither_torch_nor_the_analysis(tmp_path):
    """The experiment process must stay light: checked in a fresh interpreter."""
    code = (
        "import sys, experiment.sender; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'analysis', 'server')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bad_arguments_are_refused_with_the_value(tmp_path):
    with pytest.raises(zmq.ZMQError):
        Sender("tcp://nowhere:not-a-port", tmp_path / "rig.msgpack")
    with pytest.raises(protocol.ProtocolError, match="session must match"):
        Sender("tcp://127.0.0.1:5555", tmp_path / "rig.msgpack", session="P07")
    with pytest.raises(ValueError, match="port must be in 0..65535"):
        Receiver(tmp_path / "server", port=70000)
    with pytest.raises(ValueError, match="CURVE needs both"):
        Receiver(tmp_path / "server", allowed_keys_dir=tmp_path)


def test_a_held_seq_with_other_content_is_a_conflict_and_the_same_record_a_duplicate(tmp_path):
    """Seq 3 arrives again: with another gaze position (twice), it is one conflict, counted, kept
    aside on disk and never applied; with the same content (even encoded differently: an int for a
    float field) it is a silent duplicate."""
    with (
        Receiver(tmp_path / "server") as receiver,
        Sender(receiver.endpoint, tmp_path / "rig.msgpack", heartbeat_interval_s=None) as sender,
    ):
        for _ in range(5):
            send_sample(sender, "gaze")
        pump(receiver, [sender], lambda: sender.acked_seq == 5)
        journal = tmp_path / "server" / "stream" / f"{sender.session}.msgpack"
        before = journal.read_bytes()
        other = msgpack.packb(record_map("gaze", 3, session=sender.session, x_display_px=100.0))
        same = record_map("gaze", 3, session=sender.session)
        same["x_display_px"] = int(same["x_display_px"])
        assert msgpack.packb(same) not in before  # other bytes, the same record
        raw = make_socket(zmq.Context.instance(), "sender")
        raw.connect(receiver.endpoint)
        leaked: list = []
        try:
            pump(receiver, [], lambda: raw.poll(0, zmq.POLLOUT) != 0, timeout_s=5)
            for payload in (other, other, msgpack.packb(same)):
                raw.send_multipart([b"gaze", payload])
            pump(receiver, [], lambda: receiver.counters["duplicates"] == 1, sink=leaked)
        finally:
            raw.close()
        assert leaked == []
        assert receiver.counters["conflicts"] == 1 and receiver.sessions()[sender.session].conflicts == 1
        assert journal.read_bytes() == before
        kept = tmp_path / "server" / "stream" / CONFLICTS_FOLDER / f"{sender.session}.msgpack"
        assert kept.read_bytes() == other
        session = sender.session
    with Receiver(tmp_path / "server") as restarted:  # reloaded: the dashboard keeps showing it
        assert restarted.counters["conflicts"] == 1 and restarted.sessions()[session].conflicts == 1
        assert [r.seq for r in restarted.persisted(session)] == [1, 2, 3, 4, 5]
