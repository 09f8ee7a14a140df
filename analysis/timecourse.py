"""How people and models agree over the viewing time: scores per time bin and per fixation index.

The paper compares whole-trial maps. Here the same scoring (:class:`analysis.engine.ImageEngine`,
the one implementation of heatmaps and metrics) runs on parts of each image's fixations:

- **time bins** — the display period cut into ``bin_ms`` bins (default 1,000 ms: 0–1 s, 1–2 s, …);
  a fixation counts in every bin it overlaps, with the overlapping part as its duration (so a
  duration-weighted heatmap of a bin is the viewing time spent at each place within it);
- **fixation index** — the 1st, 2nd, … fixation of each trial among those selected for the
  heatmaps (:func:`analysis.heatmap.select_fixations`; with the default selection the first one is
  the first to start after image onset), in time order (table order where times are unknown), up
  to ``max_fixation_index``.

Per image, bin and map, the pooled fixations of all participants in that bin are the human target
(as the whole-trial analysis pools them); ``human_loso`` is the human ceiling within the bin. The
summary is the mean over images with a percentile-bootstrap CI (:func:`analysis.stats.summarize_scores`).

Also per trial: the **first fixation** (the first to start at or after image onset, among every
fixation read, selected or not): its latency and where it landed, in image pixels, as a fraction of
the image's width and height, and its distance from the image centre.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "TimecourseParams",
    "TimecourseAnalysis",
    "fixations_in_window",
    "score_fixation_sets",
    "first_fixations",
    "TRIAL_KEYS",
    "on_image",
]

logger = logging.getLogger(__name__)

#: Columns that identify a trial in the fixation table.
TRIAL_KEYS = ["participant", "session", "trial", "image"]


class TimecourseParams(BaseModel):
    """Which parts of the viewing time are scored; written to ``params.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="score time bins and fixation indices (and first fixations)")
    bin_ms: float = Field(1000.0, gt=0, description="width of the viewing-time bins, ms from image onset")
    max_fixation_index: int = Field(10, ge=0, description="score the 1st … nth fixation of each trial (0: none)")


def fixations_in_window(fixations: pd.DataFrame, start_ms: float, end_ms: float) -> pd.DataFrame:
    """The fixations overlapping ``[start_ms, end_ms)``, each cut to the window.

    Parameters
    ----------
    fixations : DataFrame
        Fixation table (``start_ms``, ``end_ms``, ``duration_ms`` in ms from image onset).
    start_ms, end_ms : float
        The window, ms from image onset.

    Returns
    -------
    DataFrame
        The overlapping rows with ``start_ms``/``end_ms`` clipped to the window and ``duration_ms``
        the overlap (ms); rows without times, or overlapping by 0 ms, are left out.
    """
    start = fixations["start_ms"].to_numpy(np.float64)
    end = fixations["end_ms"].to_numpy(np.float64)
    overlap = np.minimum(end, end_ms) - np.maximum(start, start_ms)
    inside = overlap > 0  # NaN times compare False
    out = fixations.loc[inside].copy()
    out["start_ms"] = np.maximum(start[inside], start_ms)
    out["end_ms"] = np.minimum(end[inside], end_ms)
    out["duration_ms"] = overlap[inside]
    return out


def score_fixation_sets(engine, sets: Mapping) -> dict:
    """Every map of one image scored against each of several sets of its fixations.

    Parameters
    ----------
    engine : analysis.engine.ImageEngine
        The image's engine, with its maps and context set; its fixations are replaced (use it after
        its whole-image results were taken).
    sets : mapping key → DataFrame
        Fixations of the image (tidy table columns).

    Returns
    -------
    dict
        key → map name → metric → value, ``human_loso`` included when the set has two or more
        participants; a set with no fixation on the image is left out (it has no heatmap).
    """
    results = {}
    for key, table in sets.items():
        if not on_image(table, engine.shape).any():
            continue
        engine.replace_fixations(table)
        scores = dict(engine.scores())
        ceiling = engine.human_loso()
        if ceiling is not None:
            scores["human_loso"] = ceiling
        results[key] = scores
    return results


def on_image(fixations: pd.DataFrame, shape: tuple[int, int]) -> np.ndarray:
    """Mask of the fixations on an image of ``shape`` ``(H, W)`` (continuous pixels; NaN is off)."""
    x, y = fixations["x_image_px"].to_numpy(np.float64), fixations["y_image_px"].to_numpy(np.float64)
    return (x >= 0) & (x < shape[1]) & (y >= 0) & (y < shape[0])


def _tidy(image_id: str, results: dict, **columns) -> list[dict]:
    return [
        {"image": image_id, **columns, "map": name, "metric": metric, "value": value}
        for name, values in results.items()
        for metric, value in values.items()
    ]


def first_fixations(fixations: pd.DataFrame, shapes: Mapping[str, tuple[int, int]]) -> pd.DataFrame:
    """The first fixation of every trial: latency and landing position.

    Parameters
    ----------
    fixations : DataFrame
        Every fixation read (not only the selected ones), in viewing order within a trial.
    shapes : mapping image id → (H, W)

    Returns
    -------
    DataFrame
        One row per trial: the :data:`TRIAL_KEYS`, ``latency_ms`` (start of the first fixation
        starting at or after image onset; NaN where times are unknown, and then the trial's first
        row is the first fixation), ``duration_ms``, ``x_image_px``, ``y_image_px``, ``x_fraction``,
        ``y_fraction`` (of the image's width and height, 0–1 on the image) and
        ``distance_from_centre_px``.
    """
    columns = [
        *TRIAL_KEYS,
        "latency_ms",
        "duration_ms",
        "x_image_px",
        "y_image_px",
        "x_fraction",
        "y_fraction",
        "distance_from_centre_px",
    ]
    if fixations.empty:
        return pd.DataFrame(columns=columns)
    table = fixations.reset_index(drop=True)
    after_onset = table["start_ms"].ge(0) | table["start_ms"].isna()
    first = table[after_onset].groupby(TRIAL_KEYS, sort=False, dropna=False).head(1)
    height = first["image"].map(lambda image: shapes[image][0]).astype(float)
    width = first["image"].map(lambda image: shapes[image][1]).astype(float)
    out = first[TRIAL_KEYS].copy()
    out["latency_ms"] = first["start_ms"]
    out["duration_ms"] = first["duration_ms"]
    out["x_image_px"], out["y_image_px"] = first["x_image_px"], first["y_image_px"]
    out["x_fraction"], out["y_fraction"] = first["x_image_px"] / width, first["y_image_px"] / height
    out["distance_from_centre_px"] = np.hypot(first["x_image_px"] - width / 2, first["y_image_px"] - height / 2)
    return out[columns].reset_index(drop=True)


class TimecourseAnalysis:
    """Collects the time-course scores image by image, then writes the tables.

    Parameters
    ----------
    params : TimecourseParams
    selected : DataFrame
        The fixations selected for the heatmaps, of every analysed image.
    fixations : DataFrame
        Every fixation read on the analysed images (for the first fixations).
    shapes : mapping image id → (H, W)
    """

    def __init__(
        self,
        params: TimecourseParams,
        selected: pd.DataFrame,
        fixations: pd.DataFrame,
        shapes: Mapping[str, tuple[int, int]],
    ) -> None:
        self.params, self._fixations, self._shapes = params, fixations, shapes
        order = selected.assign(_row=np.arange(len(selected))).sort_values(
            [*TRIAL_KEYS, "start_ms", "_row"], kind="stable", na_position="last"
        )
        self._selected = order.assign(fixation_index=order.groupby(TRIAL_KEYS, dropna=False).cumcount() + 1)
        display = selected["stimulus_duration_ms"].median() if len(selected) else np.nan
        self.n_bins = int(np.ceil(display / params.bin_ms - 1e-9)) if np.isfinite(display) else 0
        if not self.n_bins:
            logger.info("no fixation times (or display durations): the time bins are left out, fixation indices kept")
        self._rows: list[dict] = []
        self.tables: dict[str, pd.DataFrame] = {}

    def score_image(self, image_id: str, engine) -> None:
        """Score the time bins and fixation indices of one image with its engine."""
        rows = self._selected[self._selected["image"] == image_id]
        edges = np.arange(self.n_bins + 1) * self.params.bin_ms
        bins = {b: fixations_in_window(rows, edges[b], edges[b + 1]) for b in range(self.n_bins)}
        for b, results in score_fixation_sets(engine, bins).items():
            self._rows += _tidy(image_id, results, axis="time", bin=b + 1, start_ms=edges[b], end_ms=edges[b + 1])
        indices = {k: rows[rows["fixation_index"] == k] for k in range(1, self.params.max_fixation_index + 1)}
        for k, results in score_fixation_sets(engine, indices).items():
            self._rows += _tidy(image_id, results, axis="fixation_index", bin=k, start_ms=np.nan, end_ms=np.nan)

    def image_results(self) -> list[dict]:
        """The rows of the images scored so far, for :meth:`add_image_results` of another copy
        (``lookwhere analyze --scheduler``: copies on the workers score the images)."""
        return self._rows

    def add_image_results(self, rows: list[dict]) -> None:
        """Add the rows a copy scored (:meth:`image_results`); copies' rows added in image order
        make the tables of a serial run."""
        self._rows += rows

    def write(self, out: Path, *, stat_options: dict) -> dict[str, Path]:
        """Write ``timecourse_scores.csv`` (``image, axis, bin, start_ms, end_ms, map, metric, value``;
        ``axis`` is ``"time"`` or ``"fixation_index"``, ``bin`` 1, 2, …), ``timecourse_summary.csv``
        (:func:`summarize`) and ``first_fixations.csv`` (:func:`first_fixations`)."""
        scores = pd.DataFrame(
            self._rows, columns=["image", "axis", "bin", "start_ms", "end_ms", "map", "metric", "value"]
        )
        self.tables = {
            "timecourse_scores": scores,
            "timecourse_summary": summarize(scores, **stat_options),
            "first_fixations": first_fixations(self._fixations, self._shapes),
        }
        files = {name: out / f"{name}.csv" for name in self.tables}
        for name, table in self.tables.items():
            table.to_csv(files[name], index=False)
        return files

    def record(self) -> dict:
        """For ``params.json``."""
        return {
            "timecourse": {
                "params": self.params.model_dump(),
                "time_bins": self.n_bins,
                "rules": {
                    "time": "a fixation counts in every bin it overlaps, with the overlap as its duration",
                    "fixation_index": "order of the selected fixations within the trial (start time, else file order)",
                    "first_fixation": "the first fixation read that starts at or after image onset",
                },
            }
        }


def summarize(scores: pd.DataFrame, **stat_options) -> pd.DataFrame:
    """Mean over images with a bootstrap CI per axis, bin, map and metric.

    Returns
    -------
    DataFrame
        ``axis, bin, start_ms, end_ms`` and the columns of :func:`analysis.stats.summarize_scores`.
    """
    from analysis.stats import summarize_scores

    parts = []
    for (axis, b), group in scores.groupby(["axis", "bin"], sort=False):
        summary = summarize_scores(group, **stat_options)
        summary.insert(0, "axis", axis)
        summary.insert(1, "bin", b)
        summary.insert(2, "start_ms", group["start_ms"].iloc[0])
        summary.insert(3, "end_ms", group["end_ms"].iloc[0])
        parts.append(summary)
    columns = [
        "axis",
        "bin",
        "start_ms",
        "end_ms",
        "map",
        "metric",
        "n_images",
        "mean",
        "sd",
        "ci_low",
        "ci_high",
        "confidence",
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
