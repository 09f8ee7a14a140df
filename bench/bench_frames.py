"""Benchmark: the experiment's frame loop — per-frame overhead and frame intervals.

Runs real trials of :class:`experiment.task.Session` (PsychoPy window, 800×600 OSIE images shown
at the fitting scale on 1920×1080, ``duration_ms`` each) in one window, alternating three variants
of the per-frame work between flips:

``reference``
    a tracker whose ``drain`` returns nothing and the null stream: the loop's own cost;
``simulated``
    the simulated participant (fixation events with EyeLink timing) and the null stream;
``simulated+stream``
    the same, streaming every record through the real sender (:mod:`experiment.stream`) to a real
    receiver running in another process (validation, msgpack, journal, ZeroMQ, acknowledgements);
``simulated+lsl``
    the simulated participant and the null stream, the tracker wrapped by
    :class:`experiment.lsl.LslTracker`: every 250 Hz gaze sample, fixation and marker pushed to
    LSL outlets read by inlets in another process (skipped without pylsl).

Per-frame overhead is the time from the flip's return to the end of drain + stream service (what
the trial row records as ``loop_overhead_*``); frame intervals are flip-to-flip. Under Xvfb
there is no vsync: flips return when the software renderer is done, so the interval
distribution measures rendering cost, not a display's refresh, and dropped frames are not
measurable ("—"); with vsync they count refreshes missed against the period measured at start-up
(:mod:`experiment.timing`).

Starts its own Xvfb (``:N``, 1920×1080×24) unless ``--use-display`` is given.

Usage: ``.venv/bin/python bench/bench_frames.py [--duration-ms 5000] [--repeat 1] [--use-display]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from experiment.lsl import LslTracker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STIMULI = ROOT.parent / "shared" / "data" / "osie" / "stimuli"


class SilentTracker:
    """The reference: a tracker that never has an event."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def drain(self):
        return []

    def __getattr__(self, name):
        return getattr(self._inner, name)


def start_receiver(folder: Path) -> tuple[subprocess.Popen, str]:
    """A real :class:`server.receiver.Receiver` in its own process; returns it and its endpoint."""
    code = (
        "import sys; from server.receiver import Receiver\n"
        "with Receiver(sys.argv[1]) as r:\n"
        "    print(r.endpoint, flush=True)\n"
        "    while True: r.poll(100)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None  # piped
    return process, process.stdout.readline().strip()


def start_lsl_recorder(participant: str) -> subprocess.Popen:
    """Inlets on the session's three LSL outlets, pulling in their own process until killed."""
    code = (
        "import sys, time, pylsl\n"
        "infos = [pylsl.resolve_bypred(f\"name='lookwhere {k}' and desc/participant='{sys.argv[1]}'\", 1, 30)[0]\n"
        "         for k in ('Gaze', 'Fixations', 'Markers')]\n"
        "inlets = [pylsl.StreamInlet(info, recover=False) for info in infos]\n"
        "while True:\n"
        "    for inlet in inlets: inlet.pull_chunk(timeout=0.0)\n"
        "    time.sleep(0.01)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, participant], cwd=ROOT, stderr=subprocess.DEVNULL)


def lsl_tracker(session, simulated) -> tuple[LslTracker | None, subprocess.Popen | None]:
    """The simulated tracker wrapped for LSL, with a recorder on its outlets (None without pylsl)."""
    from experiment.lsl import LslOutlets, LslTracker

    try:
        outlets = LslOutlets.of_session(session.config, session_origin_perf_s=session.clock.t0_s)
    except ModuleNotFoundError as error:
        print(f"simulated+lsl skipped: {error}", file=sys.stderr)
        return None, None
    recorder = start_lsl_recorder(session.config.participant)
    outlets.start(wait_s=30.0, idle=lambda: None)
    tracker = LslTracker.of_session(
        simulated, outlets, config=session.config, stimuli=session.stimuli, order=session.order
    )
    return tracker, recorder


def _print_table(rows: list[tuple[str, dict]], refresh, *, duration_ms: float, repeat: int) -> None:
    print(
        f"frame loop, {duration_ms:.0f} ms trials, {repeat} per variant; "
        f"blank flip measured at start-up {refresh.period_ms:.2f} ms "
        f"({'vsync' if refresh.vsync else f'no vsync: {refresh.reason}'})"
    )
    header = (
        f"{'variant':<16}{'fix':>5}{'overhead p50 µs':>17}{'p99 µs':>9}{'frames':>8}"
        f"{'interval p50 ms':>17}{'p99 ms':>8}{'max ms':>8}{'dropped':>9}{'shown ms':>10}"
    )
    print(header)
    print("-" * len(header))
    for variant, row in rows:
        print(
            f"{variant:<16}{row['fixations']:>5}"
            f"{row['loop_overhead_p50_us']:>17.1f}{row['loop_overhead_p99_us']:>9.1f}"
            f"{row['frames']:>8}{row['interval_p50_ms']:>17.2f}{row['interval_p99_ms']:>8.2f}"
            f"{row['interval_max_ms']:>8.2f}"
            f"{'—' if row['dropped_frames'] is None else row['dropped_frames']:>9}"
            f"{row['stimulus_duration_ms']:>10.1f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-ms", type=float, default=5000.0)
    parser.add_argument("--repeat", type=int, default=1, help="trials per variant (alternating)")
    parser.add_argument("--use-display", action="store_true", help="use $DISPLAY instead of a private Xvfb")
    args = parser.parse_args()
    if not STIMULI.is_dir():
        print(f"needs the OSIE stimuli at {STIMULI}", file=sys.stderr)
        return 1
    xvfb = None
    if not args.use_display:
        from experiment.xvfb import start_xvfb

        xvfb = start_xvfb(first_display=150)
        os.environ["DISPLAY"] = xvfb.display
    from experiment.config import SessionConfig
    from experiment.services import NullSink
    from experiment.stream import open_stream
    from experiment.task import Session
    from experiment.trackers import Tracker

    variants = ["reference", "simulated", "simulated+stream", "simulated+lsl"]
    trials = len(variants) * args.repeat
    workdir = Path(tempfile.mkdtemp(prefix="bench_frames_"))
    receiver, endpoint = start_receiver(workdir / "server")
    try:
        stimuli = workdir / "stimuli"
        stimuli.mkdir()
        for i in range(trials):
            shutil.copy(STIMULI / f"{1001 + i}.jpg", stimuli)
        config = SessionConfig(
            participant="BENCH",
            stimuli=stimuli,
            out=workdir / "out",
            tracker="simulated",
            trials=trials,
            duration_ms=args.duration_ms,
            microphone=False,
            auto_accept_drift_ms=0,
            seed=0,
            min_free_mb=0,
        )
        rows = []
        recorder = None
        stream = open_stream(endpoint, workdir / "stream", session=config.session_id)
        with Session(config) as session:
            session.start()
            simulated = session.devices.tracker
            lsl, recorder = lsl_tracker(session, simulated)
            # the reference is a duck-typed stand-in for the simulated tracker
            trackers = {"reference": cast(Tracker, SilentTracker(simulated)), "simulated+lsl": lsl}
            for index in range(trials):
                variant = variants[index % len(variants)]
                tracker = trackers.get(variant, simulated)
                if tracker is None:  # no pylsl
                    continue
                session.devices.tracker = tracker
                session.services.sink = stream if variant == "simulated+stream" else NullSink()
                rows.append((variant, session.run_trial(index).to_dict()))
            session.devices.tracker = simulated
            session.services.sink = stream  # closed with the session
            refresh = session.devices.refresh
            if lsl is not None:
                lsl.outlets.close("completed")
    finally:
        receiver.kill()
        if recorder is not None:
            recorder.kill()
        shutil.rmtree(workdir, ignore_errors=True)
        if xvfb is not None:
            xvfb.close()
    _print_table(rows, refresh, duration_ms=args.duration_ms, repeat=args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
