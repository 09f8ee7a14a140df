"""Benchmark analysis.metrics against pysaliency 0.2.22 on the OSIE images, in one run.

    .venv/bin/python bench/bench_metrics.py [--images N]

For each of the first N OSIE images (800x600, 15 observers; ../shared/data/osie) the fixations of
observers 1-7 are blurred into a "saliency map" (an inter-observer predictor) and scored, together
with a centre Gaussian, against the fixations of observers 8-15 and their blurred heatmap. The
shuffled-AUC negatives are the fixations on all other images; the information-gain baseline is the
centre Gaussian. Fixation coordinates are truncated to pixels (pysaliency's ``x_int``), and
fixations outside the image are dropped.

pysaliency is timed through its public model API on the whole set (its natural use: ``NSSs``,
``CCs``, ``SIMs``, ``KLDivs``, ``AUC_per_image`` with the nonfixation setting of each AUC,
``information_gains``); ours through ``score_map`` per image. "max |diff|" compares per-image values
where the definitions agree (our ``variant="pysaliency"``; AUC-Judd without jitter); for AUC-Borji
and shuffled AUC pysaliency computes the exact rank AUC instead of MIT's sampled 0.1-step sweep, so
the difference shown there is an estimator difference, not an error. MAE has no pysaliency
counterpart; its reference is a plain numpy transcription of eq. 15.
"""

from __future__ import annotations

import os

# One BLAS thread for both libraries: pysaliency's CC goes through BLAS, whose threads thrash on a
# busy 2-core machine and would inflate its time unfairly. Must precede the numpy import.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import sys
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from scipy.ndimage import gaussian_filter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis import metrics  # noqa: E402

OSIE = ROOT.parent / "shared" / "data" / "osie"
SIGMA_PX = 20.0
N_SPLIT_OBSERVERS = 7


def import_pysaliency():
    """Import pysaliency 0.2.22, which calls ``np.trapz`` (removed in numpy 2.4): alias it here."""
    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # type: ignore[assignment]  # numpy's stubs type trapz and trapezoid apart
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # its own pkg_resources deprecation notice
        import pysaliency
    return pysaliency


def load_osie(n_images: int):
    """Per image: (shape, fixations of observers 1-7, of observers 8-15), as integer (x, y) arrays."""
    mat = scipy.io.loadmat(OSIE / "eye" / "fixations.mat", squeeze_me=True, struct_as_record=False)
    images = []
    for entry in mat["fixations"][:n_images]:
        height, width = 600, 800  # every OSIE stimulus is 800x600
        halves = []
        for subjects in (entry.subjects[:N_SPLIT_OBSERVERS], entry.subjects[N_SPLIT_OBSERVERS:]):
            xs = np.concatenate([np.atleast_1d(s.fix_x) for s in subjects]).astype(float)
            ys = np.concatenate([np.atleast_1d(s.fix_y) for s in subjects]).astype(float)
            inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
            halves.append((xs[inside].astype(int), ys[inside].astype(int)))
        images.append(((height, width), *halves))
    return images


def counts(shape, xs, ys) -> np.ndarray:
    out = np.zeros(shape)
    np.add.at(out, (ys, xs), 1.0)
    return out


def centre_gaussian(shape) -> np.ndarray:
    height, width = shape
    y, x = np.mgrid[:height, :width]
    return np.exp(-(((y + 0.5 - height / 2) / (height / 4)) ** 2 + ((x + 0.5 - width / 2) / (width / 4)) ** 2) / 2)


def build_inputs(n_images: int):
    """Saliency maps (model name -> list of maps), targets, and the raw evaluation fixations."""
    images = load_osie(n_images)
    shape = images[0][0]
    fixation_maps = [counts(shape, *test) for shape, _, test in images]
    all_counts = np.sum(fixation_maps, axis=0)
    centre = centre_gaussian(shape)
    targets = [
        metrics.HumanTarget(
            human_map=gaussian_filter(fixation_map, SIGMA_PX),
            fixation_map=fixation_map,
            other_fixation_map=all_counts - fixation_map,
            baseline_map=centre,
        )
        for fixation_map in fixation_maps
    ]
    maps = {
        "other observers": [gaussian_filter(counts(shape, *train), SIGMA_PX) for shape, train, _ in images],
        "centre Gaussian": [centre] * len(images),
    }
    return maps, targets, images


class _ArrayModel:
    """Factory of pysaliency SaliencyMapModels serving given arrays (its cache filled by stimulus id)."""

    def __init__(self, pysaliency, stimuli):
        self.pysaliency, self.stimuli = pysaliency, stimuli

    def __call__(self, arrays):
        base: Any = self.pysaliency.SaliencyMapModel  # a module imported at run time: untyped

        class ArrayModel(base):
            def _saliency_map(self, stimulus):
                raise KeyError("every map is pre-filled in the cache")

        model = ArrayModel()
        for stimulus_id, array in zip(self.stimuli.stimulus_ids, arrays):
            model._cache[stimulus_id] = array
        return model


def pysaliency_scores(pysaliency, saliency_maps, targets, images):
    """Per-image pysaliency values and seconds per metric for one list of saliency maps."""
    from pysaliency.models import SaliencyMapNormalizingModel
    from pysaliency.saliency_map_models import RandomNoiseSaliencyMapModel

    n = len(images)
    shape = images[0][0]
    # Distinct tiny stimuli: pysaliency only needs their size and a distinct id per image.
    stimuli = pysaliency.Stimuli(
        [np.full(shape, i % 251, np.uint8) + (np.arange(shape[1]) == i // 251) for i in range(n)]
    )
    xs = np.concatenate([test[0] for _, _, test in images])
    ys = np.concatenate([test[1] for _, _, test in images])
    ns = np.concatenate([np.full(test[0].size, i) for i, (_, _, test) in enumerate(images)])
    fixations = pysaliency.Fixations.create_without_history(xs.astype(float), ys.astype(float), ns)
    as_model = _ArrayModel(pysaliency, stimuli)
    model = as_model(saliency_maps)
    human = as_model([t.human_map for t in targets])
    baseline = as_model([t.baseline_map for t in targets])

    def per_image(per_fixation):
        return np.array([per_fixation[ns == i].mean() for i in range(n)])

    calls = {
        "nss": lambda: per_image(model.NSSs(stimuli, fixations)),
        "cc": lambda: model.CCs(stimuli, human),
        "sim": lambda: model.SIMs(stimuli, human),
        "kl_div": lambda: np.asarray(model.KLDivs(stimuli, human)),
        # as AUC_Judd computes it (jitter, unfixated negatives, fixation thresholds), but per image
        "auc_judd": lambda: np.asarray(
            RandomNoiseSaliencyMapModel(model, noise_size=1e-7, random_seed=42).AUC_per_image(
                stimuli, fixations, nonfixations="unfixated", thresholds="fixations"
            )
        ),
        "auc_borji": lambda: np.asarray(model.AUC_per_image(stimuli, fixations, nonfixations="uniform")),
        "auc_shuffled": lambda: np.asarray(model.AUC_per_image(stimuli, fixations, nonfixations="shuffled")),
        "info_gain": lambda: per_image(
            SaliencyMapNormalizingModel(model).information_gains(
                stimuli, fixations, SaliencyMapNormalizingModel(baseline)
            )
        ),
    }
    values, seconds = {}, {}
    for name, call in calls.items():
        start = time.perf_counter()
        values[name] = call()
        seconds[name] = time.perf_counter() - start
    # Untimed: AUC-Judd without jitter, the setting where both definitions agree exactly.
    values["auc_judd"] = np.asarray(
        model.AUC_per_image(stimuli, fixations, nonfixations="unfixated", thresholds="fixations")
    )
    return values, seconds


def our_scores(saliency_maps, targets):
    """Per-image values: timed score_map (MIT, all metrics) per metric and together, plus the
    untimed values in the settings comparable with pysaliency."""
    seconds = {}
    for name in metrics.METRICS:
        start = time.perf_counter()
        for saliency_map, target in zip(saliency_maps, targets):
            metrics.score_map(saliency_map, target, metrics=(name,))
        seconds[name] = time.perf_counter() - start
    start = time.perf_counter()
    for saliency_map, target in zip(saliency_maps, targets):
        metrics.score_map(saliency_map, target)
    seconds["all"] = time.perf_counter() - start
    comparable = [metrics.score_map(m, t, variant="pysaliency") for m, t in zip(saliency_maps, targets)]
    values = {name: np.array([scores[name] for scores in comparable]) for name in metrics.METRICS}
    values["auc_judd"] = np.array(
        [
            metrics.auc_judd(m, t.fixation_map, jitter=False, variant="pysaliency")
            for m, t in zip(saliency_maps, targets)
        ]
    )
    return values, seconds


def numpy_mae(saliency_maps, targets):
    """Reference MAE: eq. 15 on min-max scaled maps, written plainly."""

    def scaled(a):
        return (a - a.min()) / (a.max() - a.min())

    start = time.perf_counter()
    values = np.array([np.mean(np.abs(scaled(m) - scaled(t.human_map))) for m, t in zip(saliency_maps, targets)])
    return values, time.perf_counter() - start


NOTES = {
    "mae": "reference: numpy eq. 15",
    "auc_judd": "diff without jitter (the noises differ)",
    "auc_borji": "estimator differs (exact rank AUC)",
    "auc_shuffled": "estimator differs (exact rank AUC)",
}


def _max_abs_diff(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest |difference| over images where both are finite; NaN unless both are non-finite alike
    elsewhere (pysaliency's information gain is -inf when a fixation hits a zero of the map)."""
    finite = np.isfinite(ours) & np.isfinite(theirs)
    if not np.array_equal(ours[~finite], theirs[~finite], equal_nan=True):
        return float("nan")
    return float(np.max(np.abs(ours[finite] - theirs[finite]), initial=0.0))


def _fastest(runs):
    """Per-metric minimum seconds over repeated runs, with the values of the last run."""
    seconds = {name: min(run[1][name] for run in runs) for name in runs[0][1]}
    return runs[-1][0], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="number of OSIE images (max 200)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="alternate the two libraries this many times, keep each one's fastest",
    )
    args = parser.parse_args()
    pysaliency = import_pysaliency()
    maps, targets, images = build_inputs(args.images)

    print(
        f"{args.images} OSIE images (800x600), observers 8-15 as the target; pysaliency {version('pysaliency')}; "
        f"fastest of {args.repeat}"
    )
    print()
    header = f"{'map':<16} {'metric':<15} {'ours s':>8} {'pysaliency s':>13} {'ratio':>7} {'max |diff|':>11}  note"
    print(header)
    print("-" * len(header))
    total_ours = total_theirs = 0.0
    for map_name, saliency_maps in maps.items():
        their_runs, our_runs = [], []
        for _ in range(args.repeat):
            with np.errstate(divide="ignore"):  # pysaliency's log(0) where a map is 0
                their_runs.append(pysaliency_scores(pysaliency, saliency_maps, targets, images))
            their_runs[-1][0]["mae"], their_runs[-1][1]["mae"] = numpy_mae(saliency_maps, targets)
            our_runs.append(our_scores(saliency_maps, targets))
        theirs, their_seconds = _fastest(their_runs)
        ours, our_seconds = _fastest(our_runs)
        for name in metrics.METRICS:
            diff = _max_abs_diff(ours[name], theirs[name])
            print(
                f"{map_name:<16} {name:<15} {our_seconds[name]:8.3f} {their_seconds[name]:13.3f} "
                f"{their_seconds[name] / our_seconds[name]:6.1f}x {diff:11.2e}  {NOTES.get(name, '')}"
            )
        theirs_all = sum(their_seconds.values())
        print(
            f"{map_name:<16} {'ALL: score_map':<15} {our_seconds['all']:8.3f} {theirs_all:13.3f} "
            f"{theirs_all / our_seconds['all']:6.1f}x                all metrics in one call vs the sum above"
        )
        print()
        total_ours += our_seconds["all"]
        total_theirs += theirs_all
    print(f"overall: ours {total_ours:.2f} s, pysaliency {total_theirs:.2f} s, ratio {total_theirs / total_ours:.1f}x")


if __name__ == "__main__":
    main()
