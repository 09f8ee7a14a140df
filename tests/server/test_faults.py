"""Fault tests: SIGKILL of the receiver mid-stream, a sender facing an absent or stalled server,
CURVE with a client off the allow-list, a message over MAXMSGSIZE.

Oracles: an uninterrupted run of the same stream (same session, same records) and the sender's
own journal, compared byte for byte; wall-clock bounds on each send.
"""

from __future__ import annotations

import gc
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from experiment.sender import Sender
from lookwhere import protocol
from lookwhere.transport import CurveKeys, create_keys, make_socket
from server.receiver import Receiver
from tests.protocol._samples import SESSION
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
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None  # piped
    endpoint = process.stdout.readline().strip()
    assert endpoint.startswith("tcp://127.0.0.1:"), f"receiver did not start: {endpoint!r}"
    return process, endpoint


def _stream(folder: Path, n_records: int, *, kill_at: int | None = None, restart_at: int | None = None):
    """Stream ``n_records`` of session SESSION to a receiver process persisting into ``folder``;
    optionally SIGKILL it after record ``kill_at`` and restart it (same port, same folder) after
    ``restart_at``. Returns the persisted journal's bytes, the ack count at the kill, the sender."""
    process, endpoint = _start_receiver(folder, 0)
    port = int(endpoint.rsplit(":", 1)[1])
    sender = Sender(
        endpoint,
        folder.parent / f"{folder.name}-rig.msgpack",
        session=SESSION,
        heartbeat_interval_s=None,
        resend_after_s=0.1,
    )
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
                process, _ = _start_receiver(folder, port)
        pump(None, [sender], lambda: sender.acked_seq == n_records, timeout_s=30)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        sender.close()
    return (folder / "stream" / f"{SESSION}.msgpack").read_bytes(), acked_when_killed, sender


@pytest.mark.timeout(90)
def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(tmp_path):
    n_records, kill_at, restart_at = 3000, 1000, 1600
    reference, _, _ = _stream(tmp_path / "uninterrupted", n_records)
    persisted, acked_when_killed, sender = _stream(
        tmp_path / "killed", n_records, kill_at=kill_at, restart_at=restart_at
    )
    seqs = [data["seq"] for _, data in protocol.read_journal(tmp_path / "killed" / "stream" / f"{SESSION}.msgpack")]
    print(
        f"SIGKILL test: {n_records} records, {acked_when_killed} acknowledged when the receiver was killed "
        f"after record {kill_at}, restarted after {restart_at}; sender stats {sender.stats}"
    )
    assert 0 < acked_when_killed < kill_at  # the kill really happened mid-stream
    assert sender.stats["replay_requests"] + sender.stats["hellos"] >= 1  # and recovery was needed
    assert seqs == list(range(1, n_records + 1))  # none lost, none twice
    assert persisted == reference  # byte for byte what the uninterrupted run persisted
    assert persisted == (tmp_path / "killed-rig.msgpack").read_bytes()  # = the sender's own journal


def _send_times_us(sender: Sender, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall time of each send (µs) and the voluntary context switches of this thread during it.

    A send that blocks puts the thread to sleep: a voluntary switch. A slow send without one was
    preempted (this machine's 2 cores are shared), which no code of ours can prevent. The garbage
    collector is off meanwhile, as a PsychoPy task keeps it during trials: its full collections of
    this pytest process (~10 ms) are not the sender's.
    """
    times = np.empty(n)
    sleeps = np.empty(n, dtype=np.int64)
    gc.disable()
    try:
        for i in range(n):
            before = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
            start = time.perf_counter_ns()
            send_sample(sender, "gaze")
            times[i] = (time.perf_counter_ns() - start) / 1000
            sleeps[i] = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw - before
            if i % 50 == 0:
                sender.service()
            if i % 1350 == 0:  # between trials (5 s of records): the journal's fsync
                sender.flush()
    finally:
        gc.enable()
    return times, sleeps


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
    n = 50_000 if server == "stalled" else 20_000  # the stalled wall comes at ~30k records
    try:
        with Sender(endpoint, tmp_path / "rig.msgpack", heartbeat_interval_s=None) as sender:
            if process is not None:
                send_sample(sender, "session_start")
                pump(None, [sender], lambda: sender.acked_seq == 1)  # connected and served ...
                process.send_signal(signal.SIGSTOP)  # ... then frozen
            times_us, sleeps = _send_times_us(sender, n)
            would_block = sender.stats["would_block"]
            assert sender.pending == n  # nothing acknowledged, everything kept for replay
    finally:
        if process is not None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
    p50, p99, worst = np.percentile(times_us, 50), np.percentile(times_us, 99), times_us.max()
    slow = times_us > 1000
    print(
        f"server {server}: send p50 {p50:.1f} µs, p99 {p99:.1f} µs, max {worst:.0f} µs, "
        f"refused {would_block} times for {n} records; {slow.sum()} sends over 1 ms, "
        f"{(sleeps[slow] > 0).sum()} of them slept; {(sleeps > 0).sum()} sends slept in all"
    )
    assert would_block > 0  # the sends really hit a wall
    # Measured on the shared 2-core VM: p50 ~8-11 µs, p99 ~15-50 µs; the max (0.4-44 ms) depends
    # on how busy the machine is: those sends were preempted (involuntary switches; the raw zmq
    # send of bench/bench_sender.py shows the same maxima). A blocking send would sleep on every
    # refused record and, with the server stalled for the whole loop, never return at all; so a
    # bound on sleeps and a max far above the machine's noise are both decisive.
    assert p99 < 200
    assert (sleeps > 0).sum() < 0.01 * n  # 0 when the machine is quiet; a blocking sender: > would_block
    assert worst < 250_000


@pytest.mark.timeout(60)
def test_curve_admits_only_allowed_clients(tmp_path):
    server_public, server_secret = create_keys(tmp_path / "server_keys", name="server")
    allowed_dir = tmp_path / "allowed"
    create_keys(allowed_dir, name="rig1")
    _, intruder_secret = create_keys(tmp_path / "intruder", name="intruder")
    (allowed_dir / "rig1.key_secret").rename(tmp_path / "rig1.key_secret")  # the list holds public keys only
    context = zmq.Context()
    receiver = Receiver(
        tmp_path / "server", context=context, curve=CurveKeys.load(server_secret), allowed_keys_dir=allowed_dir
    )
    try:
        intruder = Sender(
            receiver.endpoint,
            tmp_path / "intruder.msgpack",
            context=context,
            heartbeat_interval_s=None,
            resend_after_s=0.05,
            curve=CurveKeys.load(intruder_secret, server_public_file=server_public),
        )
        allowed = Sender(
            receiver.endpoint,
            tmp_path / "rig1.msgpack",
            context=context,
            heartbeat_interval_s=None,
            curve=CurveKeys.load(tmp_path / "rig1.key_secret", server_public_file=server_public),
        )
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
    with (
        Receiver(tmp_path / "server") as receiver,
        Sender(receiver.endpoint, tmp_path / "rig.msgpack", heartbeat_interval_s=None) as sender,
    ):
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
