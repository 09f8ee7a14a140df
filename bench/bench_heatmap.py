"""Benchmark: analysis.heatmap.heatmaps against scipy.signal.fftconvolve on the OSIE study.

The 200 OSIE images in ../shared/data/osie (1001 … 1200, 800×600) × 15 observers, the paper's
pipeline (duration-weighted fixation map, divided by its maximum, fspecial('gaussian', 80, 20)):

- pooled: one map per image (~140 fixations each);
- per observer: one map per image and observer (~9 fixations each).

Reference, in the same run: the fixation map built with ``np.add.at``, divided by its maximum and
convolved with ``scipy.signal.fftconvolve(fixmap, kernel, mode="same")`` with the same explicit
80×80 kernel. ``heatmaps`` is timed end to end (selection, pixel lookup, grouping, blur); maps are
made per chunk of images to bound memory (a 800×600 map is 3.8 MB); both routes hold every map of a
chunk, so both pay for fresh output memory (slow on a VM: a few ms per map).

OSIE's ``fix_x``/``fix_y`` are 1-based MATLAB pixel coordinates (the authors' code indexes
``map(round(fix_y), round(fix_x))``), so the project's corner frame is ``fix - 0.5`` (as in
``analysis.readers.osie``); pixel ``(floor(y), floor(x))`` is then the authors' pixel.

Usage: ``.venv/bin/python bench/bench_heatmap.py [--images N] [--chunk N]``
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

# One BLAS thread, so that every route runs on one core like scipy.fft inside fftconvolve (and a
# busy 2-core machine does not stall BLAS's thread pool). Must be set before NumPy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import scipy.io
import scipy.ndimage
import scipy.signal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.heatmap import HeatmapParams, blur, gaussian_kernel, heatmaps  # noqa: E402
from lookwhere.records import FIXATION_COLUMNS, FIXATION_DTYPES  # noqa: E402

DEFAULT_FIXATIONS = ROOT.parent / "shared" / "data" / "osie" / "eye" / "fixations.mat"
SHAPE = (600, 800)  # every OSIE stimulus is 800×600


def load_osie(path: Path, n_images: int) -> pd.DataFrame:
    """Fixations of the first ``n_images`` stimuli (1001, 1002, …), lookwhere.records columns."""
    entries = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["fixations"]
    wanted = {str(1001 + i) for i in range(n_images)}
    names = ("image", "participant", "x_image_px", "y_image_px", "duration_ms")
    columns: dict[str, list] = {name: [] for name in names}
    for entry in entries:
        image = str(entry.img).rsplit(".", 1)[0]
        if image not in wanted:
            continue
        for s, subject in enumerate(entry.subjects):
            x = np.atleast_1d(subject.fix_x).astype(np.float64)
            columns["image"] += [image] * x.size
            columns["participant"] += [f"s{s + 1:02d}"] * x.size
            columns["x_image_px"] += (x - 0.5).tolist()
            columns["y_image_px"] += (np.atleast_1d(subject.fix_y).astype(np.float64) - 0.5).tolist()
            columns["duration_ms"] += np.atleast_1d(subject.fix_duration).astype(np.float64).tolist()
    frame = pd.DataFrame(columns)
    n = len(frame)
    neutral = dict(
        session="osie",
        trial=-1,
        eye="",
        start_ms=np.nan,
        end_ms=np.nan,
        x_display_px=np.nan,
        y_display_px=np.nan,
        stimulus_duration_ms=np.nan,
        pupil=np.nan,
        truncated=False,
    )
    for name, value in neutral.items():
        frame[name] = [value] * n
    return frame[list(FIXATION_COLUMNS)].astype(FIXATION_DTYPES)


def fixation_matrix(rows: pd.DataFrame) -> np.ndarray:
    """The duration-weighted fixation matrix, built independently of analysis.heatmap."""
    fixmap = np.zeros(SHAPE)
    index = np.floor(rows["y_image_px"]).astype(int), np.floor(rows["x_image_px"]).astype(int)
    np.add.at(fixmap, index, rows["duration_ms"].to_numpy())
    return fixmap


def reference_map(rows: pd.DataFrame, kernel: np.ndarray) -> np.ndarray:
    """The paper's map via the dense fixation matrix and scipy.signal.fftconvolve."""
    fixmap = fixation_matrix(rows)
    return scipy.signal.fftconvolve(fixmap / fixmap.max(), kernel, mode="same")


def largest_difference(maps: dict, expected: dict) -> float:
    return max(float(np.abs(maps[key] - expected[key]).max()) for key in expected)


def run(fixations: pd.DataFrame, by: tuple[str, ...], chunk: int, kernel: np.ndarray) -> dict:
    """Time both routes over chunks of images; return total seconds and the largest differences.

    Both routes make and hold every map of a chunk (as ``heatmaps`` returns them), so both pay
    for the same fresh output memory, which on a VM costs a few ms per 3.8 MB map.
    """
    images = sorted(fixations["image"].unique())
    shapes = {image: SHAPE for image in images}
    seconds = dict(reference=0.0, ours=0.0, separable=0.0)
    diffs = dict(ours=0.0, separable=0.0)
    n_maps = 0
    for start in range(0, len(images), chunk):
        part = fixations[fixations["image"].isin(images[start : start + chunk])]
        groups = list(part.groupby(list(by)))
        t0 = time.perf_counter()
        expected = {key: reference_map(group, kernel) for key, group in groups}
        seconds["reference"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        maps = heatmaps(part, shapes, params=HeatmapParams(), by=by)
        seconds["ours"] += time.perf_counter() - t0
        diffs["ours"] = max(diffs["ours"], largest_difference(maps, expected))
        del maps
        if by == ("image",):  # the dense route on the same maps
            fixmaps = {key: fixation_matrix(group) for key, group in groups}
            t0 = time.perf_counter()
            dense = {key: blur(fixmap / fixmap.max(), method="separable") for key, fixmap in fixmaps.items()}
            seconds["separable"] += time.perf_counter() - t0
            diffs["separable"] = max(diffs["separable"], largest_difference(dense, expected))
            del dense, fixmaps
        n_maps += len(expected)
    return dict(n=n_maps, seconds=seconds, diffs=diffs)


def ndimage_gap(fixations: pd.DataFrame) -> np.ndarray:
    """Per pooled image map: max |gaussian_filter(σ=20, truncate=2) - paper| / max(paper)."""
    gaps = []
    for _image, group in fixations.groupby("image"):
        fixmap = fixation_matrix(group)
        fixmap /= fixmap.max()
        paper = blur(fixmap)
        ndimage_81 = scipy.ndimage.gaussian_filter(fixmap, sigma=20.0, mode="constant", truncate=2.0)
        gaps.append(np.abs(ndimage_81 - paper).max() / paper.max())
    return np.array(gaps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="number of OSIE images, 1..200 (default 200)")
    parser.add_argument("--chunk", type=int, default=10, help="images per heatmaps() call (default 10)")
    parser.add_argument("--fixations", type=Path, default=DEFAULT_FIXATIONS, help="OSIE fixations.mat")
    args = parser.parse_args()
    if not 1 <= args.images <= 200:
        parser.error(f"--images must be in 1..200 (the stimuli in shared/data); got {args.images}")
    if not args.fixations.is_file():
        parser.error(f"--fixations {args.fixations} does not exist; pass the path of OSIE's fixations.mat")
    logging.basicConfig(level=logging.WARNING)

    fixations = load_osie(args.fixations, args.images)
    kernel = gaussian_kernel(sigma_px=20.0, size_px=80)
    heatmaps(fixations.head(50), {i: SHAPE for i in fixations["image"].unique()})  # warm the caches
    n_images, n_observers = fixations["image"].nunique(), fixations["participant"].nunique()
    print(
        f"OSIE: {n_images} images, {n_observers} observers, {len(fixations)} fixations; "
        "kernel 80×80, σ = 20 px; reference scipy.signal.fftconvolve"
    )
    header = (
        f"{'maps':<13}{'route':<34}{'n maps':>7}{'total s':>10}{'per map ms':>12}{'speed-up':>10}{'max |diff|':>12}"
    )
    print(header)
    print("-" * len(header))
    for label, by in (("pooled", ("image",)), ("per observer", ("image", "participant"))):
        result = run(fixations, by, args.chunk, kernel)
        n, seconds, diffs = result["n"], result["seconds"], result["diffs"]
        rows = [("fftconvolve (reference)", "reference"), ("heatmaps (auto: splat)", "ours")]
        if by == ("image",):
            rows.append(("blur(method='separable')", "separable"))
        for route, name in rows:
            ratio = seconds["reference"] / seconds[name]
            shown = f"{diffs[name]:.1e}" if name in diffs else "—"
            total = seconds[name]
            print(f"{label:<13}{route:<34}{n:>7}{total:>10.2f}{1e3 * total / n:>12.2f}{ratio:>9.1f}×{shown:>12}")
    gaps = ndimage_gap(fixations)
    print("\nscipy.ndimage.gaussian_filter(sigma=20, truncate=2), 81 taps, vs the 80×80 kernel:")
    print(
        f"max |diff| / map max = {100 * np.median(gaps):.1f} % (median over images), "
        f"{100 * gaps.max():.1f} % (worst image)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
