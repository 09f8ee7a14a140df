"""Benchmark the experiment's stream sender: cost per record on the caller's thread.

    .venv/bin/python bench/bench_sender.py [--records N]

Three server conditions, the receiver always in a separate process as in the lab:

``up``       a :class:`server.receiver.Receiver` polling, persisting and acknowledging (fsync per batch);
``absent``   nothing listens on the port;
``stalled``  the receiver process frozen with SIGSTOP after it served the first record, so the kernel
             buffers and the high-water marks fill and sends start being refused.

The stream is a session's mix (a gaze sample per record, a mic level every 25th, a fixation every
60th) sent as fast as possible, with :meth:`Sender.service` called every 4 records (one 60 Hz
frame of 250 Hz gaze) and :meth:`Sender.flush` between "trials" of 1350 records (5 s), untimed.
Timed: each ``Sender.send`` (build, validate, encode, journal, NOBLOCK send) and each ``service``
call, with the garbage collector off (as a PsychoPy task runs its trials). "slept" counts sends
during which the thread went to sleep (a voluntary context switch, what a blocking call does).
The reference, in the same run and condition, is the floor ZeroMQ itself sets: a raw
``send_multipart(NOBLOCK)`` of an already encoded gaze record on a socket from the same factory.
Absolute maxima on a shared machine are preemptions; compare them with the reference's.

The journal write alone (part of every ``Sender.send``): ``os.write`` of the record on an
``O_APPEND`` descriptor, in the kernel before the record is transmitted so that a SIGKILL loses
nothing, against the former write into a 1 MiB in-process buffer (reference), which a SIGKILL lost.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiment.sender import Sender  # noqa: E402
from lookwhere import protocol  # noqa: E402
from lookwhere.transport import make_socket  # noqa: E402
from tests.protocol._samples import FIELDS  # noqa: E402

_RECEIVER_SCRIPT = """
import sys
from server.receiver import Receiver
receiver = Receiver(sys.argv[1])
print(receiver.endpoint, flush=True)
while True:
    receiver.poll(20)
"""
RECORDS_PER_FRAME = 4
RECORDS_PER_TRIAL = 1350  # 5 s of 250 Hz gaze plus fixations and mic levels


def start_receiver(data_dir: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _RECEIVER_SCRIPT, str(data_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None  # piped
    return process, process.stdout.readline().strip()


def free_endpoint() -> str:
    with make_socket(zmq.Context.instance(), "receiver") as probe:
        probe.bind("tcp://127.0.0.1:*")
        return probe.getsockopt_string(zmq.LAST_ENDPOINT)


def stats_us(times_ns: np.ndarray) -> tuple[float, float, float]:
    return (np.percentile(times_ns, 50) / 1e3, np.percentile(times_ns, 99) / 1e3, times_ns.max() / 1e3)


def time_sender(endpoint: str, journal: Path, n: int, *, process: subprocess.Popen | None, stall: bool):
    kinds: list[type[protocol.Record]] = [protocol.GazeSample] * n
    kinds[::25] = [protocol.MicLevel] * len(kinds[::25])
    kinds[::60] = [protocol.FixationRecord] * len(kinds[::60])
    with Sender(endpoint, journal, heartbeat_interval_s=None) as sender:
        if stall:
            sender.send(protocol.SessionStart(**FIELDS["session_start"]))
            deadline = time.monotonic() + 10
            while sender.acked_seq < 1:  # connected and served, then frozen
                if time.monotonic() > deadline:
                    raise RuntimeError("the receiver did not acknowledge the first record within 10 s")
                sender.service()
                time.sleep(0.005)
            if process is None:
                raise ValueError("stall=True needs the receiver's process")
            process.send_signal(signal.SIGSTOP)
        send_ns = np.empty(n, dtype=np.int64)
        service_ns = np.empty(n // RECORDS_PER_FRAME, dtype=np.int64)
        slept = np.zeros(n, dtype=bool)  # sends during which the thread slept (voluntary switch)
        gc.disable()  # as a PsychoPy task does during trials
        try:
            for i, record_type in enumerate(kinds):
                fields = FIELDS[record_type.kind]
                switches = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
                start = time.perf_counter_ns()
                sender.send(record_type(**fields))
                send_ns[i] = time.perf_counter_ns() - start
                slept[i] = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw != switches
                if (i + 1) % RECORDS_PER_FRAME == 0:
                    start = time.perf_counter_ns()
                    sender.service()
                    service_ns[i // RECORDS_PER_FRAME] = time.perf_counter_ns() - start
                if (i + 1) % RECORDS_PER_TRIAL == 0:
                    sender.flush()  # between trials, untimed, as the task does
        finally:
            gc.enable()
        longest_sleep_us = send_ns[slept].max() / 1e3 if slept.any() else 0.0
        return (
            send_ns,
            service_ns,
            sender.stats["would_block"],
            sender.pending,
            f"{slept.sum()} (≤{longest_sleep_us:.0f} µs)",
        )


def time_raw(endpoint: str, n: int) -> tuple[np.ndarray, int]:
    topic, payload = protocol.encode(protocol.GazeSample(session=str(uuid.uuid4()), seq=1, **FIELDS["gaze"]))
    refused = 0
    times = np.empty(n, dtype=np.int64)
    with make_socket(zmq.Context.instance(), "sender") as sock:
        sock.connect(endpoint)
        time.sleep(0.05)
        for i in range(n):
            start = time.perf_counter_ns()
            try:
                sock.send_multipart((topic, payload), flags=zmq.NOBLOCK)
            except zmq.Again:
                refused += 1
            times[i] = time.perf_counter_ns() - start
    return times, refused


def time_journal(folder: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nanoseconds per record: ``os.write`` on an ``O_APPEND`` descriptor, and a buffered write."""
    payload = protocol.encode(protocol.GazeSample(session=str(uuid.uuid4()), seq=1, **FIELDS["gaze"]))[1]
    unbuffered, buffered = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    fd = os.open(folder / "unbuffered.journal", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    gc.disable()
    try:
        for i in range(n):
            start = time.perf_counter_ns()
            os.write(fd, payload)
            unbuffered[i] = time.perf_counter_ns() - start
            if (i + 1) % RECORDS_PER_TRIAL == 0:
                os.fsync(fd)  # between trials, untimed
        with open(folder / "buffered.journal", "ab", buffering=1 << 20) as file:
            for i in range(n):
                start = time.perf_counter_ns()
                file.write(payload)
                buffered[i] = time.perf_counter_ns() - start
                if (i + 1) % RECORDS_PER_TRIAL == 0:
                    file.flush()
    finally:
        gc.enable()
        os.close(fd)
    return unbuffered, buffered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000, help="records per condition (stalled: ×3)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the sender warns about the backlog it is left with
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for condition in ("up", "absent", "stalled"):
            n = args.records * (3 if condition == "stalled" else 1)
            process, endpoint = (None, free_endpoint()) if condition == "absent" else start_receiver(tmp / condition)
            try:
                send_ns, service_ns, refused, pending, slept = time_sender(
                    endpoint, tmp / f"{condition}.msgpack", n, process=process, stall=condition == "stalled"
                )
                raw_ns, raw_refused = time_raw(endpoint, n)
            finally:
                if process is not None:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
            rows.append((condition, "Sender.send", n, *stats_us(send_ns), refused, pending, slept))
            rows.append((condition, "Sender.service", len(service_ns), *stats_us(service_ns), "", "", ""))
            rows.append((condition, "raw zmq send (ref.)", n, *stats_us(raw_ns), raw_refused, "", ""))
        unbuffered_ns, buffered_ns = time_journal(tmp, args.records)
        rows.append(("-", "journal os.write", args.records, *stats_us(unbuffered_ns), "", "", ""))
        rows.append(("-", "1 MiB buffer (former)", args.records, *stats_us(buffered_ns), "", "", ""))
    print(
        f"{'server':8} {'operation':22} {'calls':>7} {'p50 µs':>8} {'p99 µs':>8} {'max µs':>9} "
        f"{'refused':>8} {'unacked':>8} {'slept':>14}"
    )
    for condition, operation, calls, p50, p99, worst, refused, pending, slept in rows:
        print(
            f"{condition:8} {operation:22} {calls:7d} {p50:8.1f} {p99:8.1f} {worst:9.0f} "
            f"{refused!s:>8} {pending!s:>8} {slept!s:>14}"
        )
    print(
        "refused: sends that met zmq.Again (kept for replay); unacked: records awaiting an ack at the end;\n"
        "slept: sends during which the thread slept (voluntary context switch; a blocking send would),\n"
        "with the longest such send: brief lock waits inside libzmq/the kernel, not network waits;\n"
        "a max in ms without a sleep is preemption on this shared 2-core machine (see the raw reference)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
