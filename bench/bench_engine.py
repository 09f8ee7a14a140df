"""Benchmark the incremental scoring engine against the full recomputation, fixation by fixation.

    .venv/bin/python bench/bench_engine.py [--fixations 200] [--maps 20] [--device cpu|cuda|auto]
                                           [--reference-every 10]

One OSIE photograph (800x600, the one with the most fixations; past its own fixations, its
observers are replayed as new participants) with ``--maps`` random 800x600 model maps, the two
baselines and the human ceiling, 9 metrics each; the dataset prior and shuffled-AUC negatives come
from 20 other OSIE images. After each fixation:

``engine``     :meth:`ImageEngine.add_fixation`, then the pooled scores, the human ceiling
               (every participant against the others) and the current participant's own scores;
``reference``  the full recomputation (``tests/analysis/_reference.py``, the former
               ``score_image``: every heatmap and every map x metric from scratch; no participant
               scores), timed every ``--reference-every`` fixations (it takes seconds).

Prints p50 / p99 / max per fixation (wall clock) and the ratio, and the process CPU time per
fixation (all threads: the engine runs two on a CPU), which tells the cost from the machine's load
(wall ~ CPU / 2 on an idle 2-core machine). Targets (issue 10): engine p99 <= 100 ms on the 2-core
development machine, <= 15 ms on a GPU. The first engine scores also check equality.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.engine import ImageEngine  # noqa: E402
from analysis.heatmap import HeatmapParams  # noqa: E402
from analysis.offline import without_selection  # noqa: E402
from analysis.readers import read_osie  # noqa: E402
from tests.analysis._reference import reference_score_image  # noqa: E402

OSIE = ROOT.parent / "shared" / "data" / "osie" / "eye" / "fixations.mat"
SHAPE = (600, 800)
COLUMNS = ["x_image_px", "y_image_px", "duration_ms", "participant"]


def _fixations(n_fixations: int) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """The busiest OSIE image's fixations (its observers replayed as new participants past the
    real ones) and 20 other images' fixations."""
    table = read_osie(OSIE)
    counts = table.groupby("image").size()
    image = str(counts.idxmax())
    rows = table[table["image"] == image]
    repeats = [
        rows.assign(participant=rows["participant"] + (f"-{k}" if k else ""))
        for k in range(-(-n_fixations // len(rows)))
    ]
    rows = pd.concat(repeats, ignore_index=True).iloc[:n_fixations]
    others = table[table["image"].isin([i for i in counts.index[:21] if i != image][:20])]
    return image, rows, others


def _percentiles(times_s: list[float]) -> tuple[float, float, float]:
    ms = np.asarray(times_s) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(ms.max())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixations", type=int, default=200)
    parser.add_argument("--maps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reference-every", type=int, default=10, help="0: skip the reference")
    args = parser.parse_args(argv)

    image, rows, others = _fixations(args.fixations)
    shapes = {i: SHAPE for i in [image, *others["image"].unique()]}
    rng = np.random.default_rng(1)
    maps = {f"map{k:02d}": rng.random(SHAPE) for k in range(args.maps)}
    params = without_selection(HeatmapParams())

    start = time.perf_counter()
    engine = ImageEngine(image, SHAPE, maps, params=params, device=args.device)
    engine.set_context(others, shapes)
    build_s = time.perf_counter() - start

    engine_s, reference_s, engine_cpu, reference_cpu, checked = [], [], [], [], 0
    for k, row in enumerate(rows[COLUMNS].itertuples(index=False), start=1):
        start, start_cpu = time.perf_counter(), time.process_time()
        engine.add_fixation(*row)
        scores = engine.scores()
        engine.loso()
        engine.participant_scores(row.participant)
        engine_s.append(time.perf_counter() - start)
        engine_cpu.append(time.process_time() - start_cpu)
        if args.reference_every and (k % args.reference_every == 0 or k == 1):
            start, start_cpu = time.perf_counter(), time.process_time()
            expected = reference_score_image(
                image, pd.concat([others, rows.iloc[:k]]), shapes, params=params, scoring={}, maps=maps
            )
            reference_s.append(time.perf_counter() - start)
            reference_cpu.append(time.process_time() - start_cpu)
            if checked < 3:  # the benchmark is also a check
                for name, values in expected.scores.items():
                    for metric, value in values.items():
                        assert np.isclose(scores[name][metric], value, rtol=0, atol=1e-9, equal_nan=True), (
                            name,
                            metric,
                        )
                checked += 1

    print(
        f"OSIE image {image}, {SHAPE[1]}x{SHAPE[0]}, {len(rows)} fixations from {rows['participant'].nunique()} "
        f"participants, {args.maps} model maps + 2 baselines + human ceiling, 9 metrics; device {args.device}"
    )
    print(f"engine set-up (maps prepared, context): {build_s * 1000:.0f} ms")
    print()
    print(f"{'route (ms per fixation)':<44} {'n':>5} {'p50':>9} {'p99':>9} {'max':>9} {'CPU p50':>9} {'CPU p99':>9}")
    p50, p99, top = _percentiles(engine_s)
    c50, c99, _ = _percentiles(engine_cpu)
    print(
        f"{'engine: update + pooled + ceiling + own':<44} {len(engine_s):>5} {p50:>9.1f} {p99:>9.1f} {top:>9.1f} "
        f"{c50:>9.1f} {c99:>9.1f}"
    )
    if reference_s:
        r50, r99, rtop = _percentiles(reference_s)
        rc50, rc99, _ = _percentiles(reference_cpu)
        print(
            f"{'reference: full recomputation (sampled)':<44} {len(reference_s):>5} {r50:>9.1f} {r99:>9.1f} "
            f"{rtop:>9.1f} {rc50:>9.1f} {rc99:>9.1f}"
        )
        print(
            f"{'ratio reference / engine':<44} {'':>5} {r50 / p50:>9.1f} {r99 / p99:>9.1f} {rtop / top:>9.1f} "
            f"{rc50 / c50:>9.1f} {rc99 / c99:>9.1f}"
        )
    last = engine_s[-len(engine_s) // 10 :]
    print(f"engine over the last 10% of fixations: p50 {_percentiles(last)[0]:.1f} ms")
    print(f"machine load (1-minute average) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
