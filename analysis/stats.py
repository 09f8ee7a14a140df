"""Statistics over per-image scores: means with bootstrap confidence intervals, paired comparisons.

Images are the unit of resampling (the scores of one image are not independent across maps, so
comparisons between maps are paired by image).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from analysis._checks import check_positive

__all__ = ["bootstrap_mean_ci", "combined_mc_se", "summarize_scores", "paired_comparisons"]


def combined_mc_se(errors) -> float:
    """Monte-Carlo standard error of a mean of independently drawn values with standard errors
    ``errors`` (one per value; NaN for values left out of the mean): ``sqrt(sum se²) / n``.

    Returns NaN when no error is left.
    """
    errors = np.asarray(errors, dtype=np.float64)
    errors = errors[~np.isnan(errors)]
    return float(np.sqrt(np.sum(errors * errors)) / errors.size) if errors.size else float("nan")


def bootstrap_mean_ci(
    values, *, n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``values`` with a percentile-bootstrap confidence interval.

    Parameters
    ----------
    values : array_like, shape (N,)
        One value per unit (image); NaNs are dropped first.
    n_resamples : int
        Bootstrap resamples (default 10,000).
    confidence : float
        Coverage of the interval, in (0, 1) (default 0.95).
    seed : int
        Seed of the resampling, so a report is reproducible.

    Returns
    -------
    mean, low, high : float
        NaN for all three when no value is left; ``low == high == mean`` for a single value.

    Notes
    -----
    The percentile method, as ``scipy.stats.bootstrap(method="percentile")``: resample N values
    with replacement, take the mean, report the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of those means.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}")
    check_positive("n_resamples", n_resamples)
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (np.nan, np.nan, np.nan)
    mean = float(x.mean())
    if x.size == 1:
        return (mean, mean, mean)
    rng = np.random.default_rng(seed)
    # Resample in chunks so 10,000 × N never needs more than ~8 MB at once.
    chunk = max(1, 1_000_000 // x.size)
    means = np.concatenate([
        x[rng.integers(0, x.size, size=(min(chunk, n_resamples - start), x.size))].mean(axis=1)
        for start in range(0, n_resamples, chunk)
    ])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return (mean, float(low), float(high))


def summarize_scores(
    scores: pd.DataFrame, *, n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Mean and bootstrap CI of every map × metric over images.

    Parameters
    ----------
    scores : DataFrame
        Tidy scores with columns ``image, map, metric, value``.

    Returns
    -------
    DataFrame
        Columns ``map, metric, n_images, mean, sd, ci_low, ci_high, confidence, mc_se``; ``mc_se``
        is the Monte-Carlo standard error of the mean of a sampled AUC (:func:`combined_mc_se` of
        the ``mc_se`` column of ``scores``, NaN without one).
    """
    rows = []
    for (map_name, metric), group in scores.groupby(["map", "metric"], sort=False):
        values = group["value"].to_numpy(dtype=float)
        kept = ~np.isnan(values)
        finite = values[kept]
        mean, low, high = bootstrap_mean_ci(
            finite, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
        errors = group["mc_se"].to_numpy(dtype=float)[kept] if "mc_se" in group else np.empty(0)
        rows.append({
            "map": map_name,
            "metric": metric,
            "n_images": int(finite.size),
            "mean": mean,
            "sd": float(finite.std(ddof=1)) if finite.size > 1 else np.nan,
            "ci_low": low,
            "ci_high": high,
            "confidence": confidence,
            "mc_se": combined_mc_se(errors),
        })
    return pd.DataFrame(rows)


def paired_comparisons(
    scores: pd.DataFrame,
    *,
    metric: str,
    maps: list[str] | None = None,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Compare every pair of maps on one metric, paired by image.

    Parameters
    ----------
    scores : DataFrame
        Tidy scores with columns ``image, map, metric, value``.
    metric : str
        The metric to compare on.
    maps : list of str, optional
        Maps to compare (default: every map scored on ``metric``).

    Returns
    -------
    DataFrame
        One row per pair: ``map_a, map_b, metric, n_images, mean_difference`` (a − b) with its
        bootstrap CI (``ci_low, ci_high``), the Wilcoxon signed-rank ``p_value`` (two-sided) and
        ``p_holm``, Holm's step-down correction over all pairs of the table.
    """
    table = scores[scores["metric"] == metric].pivot_table(
        index="image", columns="map", values="value", aggfunc="first"
    )
    if table.empty:
        raise ValueError(f"no scores for metric {metric!r}; metrics present: {sorted(scores['metric'].unique())}")
    maps = list(table.columns) if maps is None else maps
    unknown = sorted(set(maps) - set(table.columns))
    if unknown:
        raise ValueError(f"maps {unknown} have no {metric!r} scores; present: {sorted(table.columns)}")
    rows = []
    for a, b in itertools.combinations(maps, 2):
        diff = (table[a] - table[b]).dropna().to_numpy()
        mean, low, high = bootstrap_mean_ci(diff, n_resamples=n_resamples, confidence=confidence, seed=seed)
        if diff.size > 1 and np.any(diff != 0):
            p_value = float(scipy_stats.wilcoxon(diff).pvalue)
        else:
            p_value = np.nan if diff.size <= 1 else 1.0
        rows.append({
            "map_a": a, "map_b": b, "metric": metric, "n_images": int(diff.size),
            "mean_difference": mean, "ci_low": low, "ci_high": high, "p_value": p_value,
        })
    result = pd.DataFrame(rows)
    result["p_holm"] = _holm(result["p_value"].to_numpy()) if len(result) else []
    return result


def _holm(p_values: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (NaNs stay NaN and do not count as tests)."""
    adjusted = np.full_like(p_values, np.nan, dtype=float)
    valid = np.flatnonzero(~np.isnan(p_values))
    order = valid[np.argsort(p_values[valid])]
    m = order.size
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
