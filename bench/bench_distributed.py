"""Benchmark: ``--scheduler local:2`` (a Dask LocalCluster of 2 single-threaded worker processes) vs
the serial run, for ``lookwhere precompute`` and ``lookwhere analyze``, in one run.

- **precompute**: the first ``--precompute-images`` (32) OSIE stimuli at 224×224 with UNTRAINED
  VGG16 weights (seed 0: the time does not depend on the weights; the maps are not the paper's),
  batches of ``--batch-size`` (8); tasks = CAM-fit batches + map batches. Serial: the model loaded
  and run in this process (torch's own threads); on the cluster each worker loads it once.
- **analyze**: the OSIE fixations on the first ``--images`` (200) images, every default except
  ``mixed_model`` (off: it runs here either way, ~40 s per metric); one task per image. Both the
  whole run and its scoring phase (``analysis.offline._score_images``, timed by a wrapper) are shown.

Columns: wall times in s; ``excess/task`` = (workers × cluster time − serial time) / tasks, the
worker-seconds each task costs beyond an even split of the serial work (Dask's round trips, the
transfers, the model loads, the cores the workers share); for the whole analysis it also holds the
serial steps (reading, density fits, statistics, report), which run in the client either way.
The round trip of an empty task and the cluster's start are printed apart. Results are checked
equal to the serial run's (the stores to 0, ``scores.csv`` byte for byte).

Run: ``.venv/bin/python bench/bench_distributed.py [--workers 2] [--images 200] [--precompute-images 32]``
(about 25 min on 2 cores with the defaults).
"""

from __future__ import annotations

import argparse
import filecmp
import functools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OSIE = REPO.parent / "shared" / "data" / "osie"


def _empty(batch: list[str]) -> int:
    return len(batch)


def _round_trip_s(client, tasks: int = 200) -> float:
    """Seconds per task of ``tasks`` empty tasks through :func:`analysis.distributed.run_batches`."""
    from tqdm.auto import tqdm

    from analysis.distributed import run_batches

    start = time.perf_counter()
    with tqdm(disable=True) as bar:
        run_batches(client, _empty, [[str(i)] for i in range(tasks)], bar=bar)
    return (time.perf_counter() - start) / tasks


def _stimuli(folder: Path, count: int) -> Path:
    """A folder of links to the first ``count`` OSIE stimuli."""
    folder.mkdir()
    for path in sorted((OSIE / "stimuli").glob("*.jpg"))[:count]:
        (folder / path.name).symlink_to(path)
    return folder


def _precompute(client, workdir: Path, *, images: int, batch_size: int) -> dict:
    import numpy as np

    from analysis.cnn.model import load_vgg16
    from analysis.cnn.precompute import precompute_store, precompute_store_distributed
    from stimuli.sets import StimulusSet

    stimuli = StimulusSet(_stimuli(workdir / "precompute_stimuli", images))
    options: dict[str, Any] = dict(input_size=224, batch_size=batch_size, device="cpu", progress=False)
    start = time.perf_counter()
    serial = precompute_store(load_vgg16("untrained", seed=0), stimuli, workdir / "serial_store", **options)
    serial_s = time.perf_counter() - start
    start = time.perf_counter()
    dask = precompute_store_distributed(client, "untrained", stimuli, workdir / "dask_store", seed=0, **options)
    dask_s = time.perf_counter() - start
    difference = max(
        float(np.abs(serial.load_native(i)[name] - dask.load_native(i)[name]).max())
        for i in serial.image_ids
        for name in serial.map_names
    )
    tasks = 2 * -(-images // batch_size)  # the CAM fit's batches and the maps'
    return {
        "work": f"precompute {images} images (UNTRAINED)",
        "tasks": tasks,
        "serial": serial_s,
        "dask": dask_s,
        "equal": "yes" if difference == 0 else f"max |diff| {difference:.1e}",
    }


def _analyze(client, workdir: Path, *, images: int) -> list[dict]:
    from analysis import offline

    stimuli = _stimuli(workdir / "analysis_stimuli", images)
    scoring_s: list[float] = []
    score_images = offline._score_images

    @functools.wraps(score_images)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return score_images(*args, **kwargs)
        finally:
            scoring_s.append(time.perf_counter() - start)

    offline._score_images = timed  # the scoring phase's time, without changing what runs

    def run(name: str, with_client) -> float:
        config = offline.AnalysisConfig(
            dataset="osie",
            fixations=OSIE / "eye" / "fixations.mat",
            stimuli=stimuli,
            out=workdir / name,
            mixed_model=False,
        )
        start = time.perf_counter()
        offline.run_analysis(config, progress=False, client=with_client)
        return time.perf_counter() - start

    try:
        serial_s, dask_s = run("serial", None), run("dask", client)
    finally:
        offline._score_images = score_images
    same = filecmp.cmp(workdir / "serial" / "scores.csv", workdir / "dask" / "scores.csv", shallow=False)
    equal = "yes" if same else "NO"
    return [
        {"work": f"analyze {images} images, whole run", "tasks": images, "serial": serial_s, "dask": dask_s},
        {
            "work": f"analyze {images} images, scoring",
            "tasks": images,
            "serial": scoring_s[0],
            "dask": scoring_s[1],
            "equal": equal,
        },
    ]


def _table(rows: list[dict], workers: int) -> str:
    lines = [
        f"{'work':<40} {'tasks':>5} {'serial s':>9} {f'{workers} workers s':>11} {'speed-up':>8} "
        f"{'excess/task s':>13}  equal to serial",
    ]
    for row in rows:
        excess = (workers * row["dask"] - row["serial"]) / row["tasks"]
        lines.append(
            f"{row['work']:<40} {row['tasks']:>5} {row['serial']:>9.1f} {row['dask']:>11.1f} "
            f"{row['serial'] / row['dask']:>7.2f}x {excess:>13.3f}  {row.get('equal', '')}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="local workers (default 2)")
    parser.add_argument("--images", type=int, default=200, help="OSIE images analysed (default 200; 0: skip)")
    parser.add_argument("--precompute-images", type=int, default=32, help="images precomputed (default 32; 0: skip)")
    parser.add_argument("--batch-size", type=int, default=8, help="precompute batch size (default 8)")
    args = parser.parse_args()
    if not OSIE.is_dir():
        print(f"the OSIE data are not at {OSIE}", file=sys.stderr)
        return 1
    from analysis.distributed import Scheduler, open_client

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_distributed_") as tmp:
        start = time.perf_counter()
        with open_client(Scheduler(n_workers=args.workers)) as client:
            start_s = time.perf_counter() - start
            round_trip_s = _round_trip_s(client)
            if args.precompute_images:
                rows.append(_precompute(client, Path(tmp), images=args.precompute_images, batch_size=args.batch_size))
            if args.images:
                rows += _analyze(client, Path(tmp), images=args.images)
    print(f"\nCPU cores: {os.cpu_count()}; the cluster: {args.workers} worker processes, 1 thread each")
    print(f"cluster start {start_s:.1f} s; an empty task's round trip {1000 * round_trip_s:.1f} ms\n")
    print(_table(rows, args.workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
