"""Fault tests: SIGKILL of the receiver mid-stream, a sender facing an absent or stalled server,
CURVE with a client off the allow-list, a message over MAXMSGSIZE.

Oracles: the sender's own journal (every record it produced, once, in order: what an
uninterrupted run persists, as ``test_every_kind_travels_persists_and_is_acknowledged`` shows
byte for byte) and wall-clock bounds on each send.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from experiment.sender import Sender
from lookwhere import protocol
from lookwhere.transport import CurveKeys, create_keys, make_socket
from server.receiver import Receiver
from tests.server._stream import KINDS, pump, send_sample

REPO = Path(__file__).resolve().parents[2]

# The receiver as a separate process: prints its endpoint, then polls until killed.
_RECEIVER_SCRIPT = """
import sys
from server.receiver import Receiver
receiver = Receiver(sys.argv[1], port=int(sys.argv[2]))
print(receiver.endpoint, flush=True)
while True:
    receiver.poll(20)
"""


def _start_receiver(data_dir: Path, port: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _RECEIVER_SCRIPT, str(data_dir), str(port)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    endpoint = process.stdout.readline().strip()
    assert endpoint.startswith("tcp://127.0.0.1:"), f"receiver did not start: {endpoint!r}"
    return process, endpoint


@pytest.mark.timeout(90)
def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(tmp_path):
    n_records, kill_at, restart_at = 3000, 1000, 1600
    data_dir = tmp_path / "server"
    process, endpoint = _start_receiver(data_dir, 0)
    port = int(endpoint.rsplit(":", 1)[1])
    sender = Sender(endpoint, tmp_path / "rig.msgpack", heartbeat_interval_s=None, resend_after_s=0.1)
    acked_when_killed = None
    try:
        for i in range(1, n_records + 1):
            send_sample(sender, KINDS[i % len(KINDS)])
            if i % 10 == 0:  # ~ one frame: service, then let the clock run
                sender.service()
                time.sleep(0.001)
            if i == kill_at:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
                acked_when_killed = sender.acked_seq
            if i == restart_at:
                process, _ = _start_receiver(data_dir, port)
        pump(None, [sender], lambda: sender.acked_seq == n_records, timeout_s=30)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        sender.close()
    sent = [data for _, data in protocol.read_journal(tmp_path / "rig.msgpack")]
    persisted = [data for _, data in protocol.read_journal(data_dir / "stream" / f"{sender.session}.msgpack")]
    print(f"SIGKILL test: {n_records} records, acked {acked_when_killed} at the kill, "
          f"sender stats {sender.stats}")
    assert 0 < acked_when_killed < kill_at  # the kill really happened mid-stream
    assert sender.stats["replay_requests"] + sender.stats["hellos"] >= 1
    assert [d["seq"] for d in persisted] == list(range(1, n_records + 1))
    assert msgpack.packb(persisted) == msgpack.packb(sent)  # same records, same values (NaN-safe)


def _send_times_us(sender: Sender, n: int) -> np.ndarray:
    times = np.empty(n)
    for i in range(n):
        start = time.perf_counter_ns()
        send_sample(sender, "gaze")
        times[i] = (time.perf_counter_ns() - start) / 1000
        if i % 50 == 0:
            sender.service()
    return times


@pytest.mark.timeout(60)
@pytest.mark.parametrize("server", ["absent", "stalled"])
def test_sender_never_blocks(tmp_path, server):
    """Absent: nothing listens on the port. Stalled: a receiver process frozen with SIGSTOP after
    the connection formed, so the kernel buffers and the high-water mark fill until sends are
    refused."""
    process = None
    if server == "absent":
        with make_socket(zmq.Context.instance(), "receiver") as probe:  # find a free port, then free it
            probe.bind("tcp://127.0.0.1:*")
            endpoint = probe.getsockopt_string(zmq.LAST_ENDPOINT)
    else:
        process, endpoint = _start_receiver(tmp_path / "server", 0)
    n = 150_000 if server == "stalled" else 20_000
    try:
        with Sender(endpoint, tmp_path / "rig.msgpack", heartbeat_interval_s=None) as sender:
            if process is not None:
                send_sample(sender, "session_start")
                pump(None, [sender], lambda: sender.acked_seq == 1)  # connected and served ...
                process.send_signal(signal.SIGSTOP)  # ... then frozen
            times_us = _send_times_us(sender, n)
            would_block = sender.stats["would_block"]
            assert sender.pending == n  # nothing acknowledged, everything kept for replay
    finally:
        if process is not None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
    p50, p99, worst = np.percentile(times_us, 50), np.percentile(times_us, 99), times_us.max()
    print(f"server {server}: send p50 {p50:.1f} µs, p99 {p99:.1f} µs, max {worst:.0f} µs, "
          f"refused {would_block} times for {n} records")
    assert would_block > 0  # the sends really hit a wall
    assert p99 < 200 and worst < 5000  # measured p50 ~8, p99 ~12-22, max ~300-500 µs on 2 cores


@pytest.mark.timeout(60)
def test_curve_admits_only_allowed_clients(tmp_path):
    server_public, server_secret = create_keys(tmp_path / "server_keys", name="server")
    allowed_dir = tmp_path / "allowed"
    create_keys(allowed_dir, name="rig1")
    _, intruder_secret = create_keys(tmp_path / "intruder", name="intruder")
    (allowed_dir / "rig1.key_secret").rename(tmp_path / "rig1.key_secret")  # the list holds public keys only
    context = zmq.Context()
    receiver = Receiver(tmp_path / "server", context=context, curve=CurveKeys.load(server_secret),
                        allowed_keys_dir=allowed_dir)
    try:
        intruder = Sender(receiver.endpoint, tmp_path / "intruder.msgpack", context=context,
                          heartbeat_interval_s=None, resend_after_s=0.05,
                          curve=CurveKeys.load(intruder_secret, server_public_file=server_public))
        allowed = Sender(receiver.endpoint, tmp_path / "rig1.msgpack", context=context, heartbeat_interval_s=None,
                         curve=CurveKeys.load(tmp_path / "rig1.key_secret", server_public_file=server_public))
        for kind in KINDS:
            send_sample(intruder, kind)
            send_sample(allowed, kind)
        pump(receiver, [intruder, allowed], lambda: allowed.acked_seq == len(KINDS))
        deadline = time.monotonic() + 1.0  # give the intruder a full second of retries
        pump(receiver, [intruder, allowed], lambda: time.monotonic() > deadline)
        assert intruder.acked_seq == 0 and intruder.pending == len(KINDS)
        assert set(receiver.sessions()) == {allowed.session}
        assert receiver.counters["accepted"] == len(KINDS)
        assert not (tmp_path / "server" / "stream" / f"{intruder.session}.msgpack").exists()
        intruder.close()
        allowed.close()
    finally:
        receiver.close()
        context.term()


@pytest.mark.timeout(30)
def test_a_message_over_maxmsgsize_drops_only_its_connection(tmp_path):
    with Receiver(tmp_path / "server") as receiver, \
            Sender(receiver.endpoint, tmp_path / "rig.msgpack", heartbeat_interval_s=None) as sender:
        rogue = make_socket(zmq.Context.instance(), "sender")
        rogue.connect(receiver.endpoint)
        try:
            pump(receiver, [], lambda: rogue.poll(0, zmq.POLLOUT) != 0, timeout_s=5)
            rogue.send_multipart([b"fixation", b"\x00" * (2 * protocol.MAX_MESSAGE_BYTES)])
            for _ in range(20):
                receiver.poll(5)
        finally:
            rogue.close()
        send_sample(sender, "fixation")
        pump(receiver, [sender], lambda: sender.acked_seq == 1)
        assert receiver.counters["accepted"] == 1 and receiver.counters["malformed"] == {}
