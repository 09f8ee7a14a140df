"""Benchmark: the experiment process's memory over a whole session (issue 10: +1.6 MB per trial).

Runs the real task in this process, as ``lookwhere run --server`` does: a PsychoPy window,
:class:`experiment.task.Session` with the simulated participant on the 200 OSIE photographs
(800×600, shown at 1440×1080), ``--duration-ms`` trials with the drift correction accepted at
once, and the live stream (:mod:`experiment.stream`) to a real receiver in another process
(``--no-stream``: none). Prints the resident set size after trials 5, 50, 100, 150 and the last,
its growth since trial 5 (target: ≤ 20 MB over 200 trials), and the number of objects the
garbage collector tracks (Python-level growth). The garbage collector runs as usual.

Starts its own Xvfb (``:N``, 1920×1080×24) unless ``--use-display`` is given.

Usage: ``.venv/bin/python bench/bench_memory.py [--trials 200] [--duration-ms 200] [--no-stream]
[--use-display]``
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_frames import STIMULI, start_receiver  # noqa: E402

#: Growth allowed from trial 5 to trial 200 (issue 10).
TARGET_GROWTH_MB = 20.0
CHECKPOINTS = (5, 50, 100, 150, 200)


def rss_mb() -> float:
    """This process's resident set size, MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="at most the 200 OSIE images")
    parser.add_argument("--duration-ms", type=float, default=200.0)
    parser.add_argument("--no-stream", action="store_true", help="no live stream (null sink)")
    parser.add_argument("--use-display", action="store_true", help="use $DISPLAY instead of a private Xvfb")
    args = parser.parse_args()
    if not STIMULI.is_dir():
        print(f"needs the OSIE stimuli at {STIMULI}", file=sys.stderr)
        return 1
    xvfb = None
    if not args.use_display:
        from experiment.xvfb import start_xvfb

        xvfb = start_xvfb(first_display=160)
        os.environ["DISPLAY"] = xvfb.display
    from experiment.config import SessionConfig
    from experiment.stream import open_stream
    from experiment.task import Session

    checkpoints = sorted({c for c in CHECKPOINTS if c < args.trials} | {args.trials})
    workdir = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    receiver = None
    table = []
    try:
        config = SessionConfig(
            participant="BENCH",
            stimuli=STIMULI,
            out=workdir / "out",
            tracker="simulated",
            trials=args.trials,
            duration_ms=args.duration_ms,
            microphone=False,
            auto_accept_drift_ms=0,
            seed=0,
            min_free_mb=0,
        )
        sink = None
        if not args.no_stream:
            receiver, endpoint = start_receiver(workdir / "server")
            sink = open_stream(endpoint, config.session_dir, session=config.session_id)
        with Session(config, sink=sink) as session:
            session.start()
            for index in range(len(session.order)):
                session.run_trial(index)
                if index + 1 in checkpoints:
                    table.append((index + 1, rss_mb(), len(gc.get_objects())))
            refresh = session.devices.refresh
    finally:
        if receiver is not None:
            receiver.kill()
        shutil.rmtree(workdir, ignore_errors=True)
        if xvfb is not None:
            xvfb.close()

    print(
        f"experiment memory: {len(table) and table[-1][0]} trials of {args.duration_ms:.0f} ms, "
        f"simulated participant, stream {'off' if args.no_stream else 'to a real receiver'}; "
        f"display {'vsync' if refresh.vsync else 'without vsync'} "
        f"(blank flip {refresh.period_ms:.2f} ms)"
    )
    header = f"{'after trial':>12}{'RSS MB':>10}{'Δ since 5 MB':>14}{'gc objects':>12}{'Δ objects':>11}"
    print(header)
    print("-" * len(header))
    base_rss, base_objects = table[0][1], table[0][2]
    for trial, rss, objects in table:
        print(f"{trial:>12}{rss:>10.1f}{rss - base_rss:>14.1f}{objects:>12}{objects - base_objects:>11}")
    growth = table[-1][1] - base_rss
    per_trial_kb = growth * 1024 / max(table[-1][0] - table[0][0], 1)
    verdict = "OK" if growth <= TARGET_GROWTH_MB else "OVER"
    print(
        f"growth {table[0][0]} → {table[-1][0]}: {growth:.1f} MB ({per_trial_kb:.0f} KB per trial); "
        f"target ≤ {TARGET_GROWTH_MB:g} MB over 200 trials: {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
