"""Statistics over scores: means with bootstrap confidence intervals, comparisons, rankings.

Two levels:

* per image (:func:`summarize_scores`): each map against the pooled human data of an image, images
  the unit of resampling (the paper's analysis);
* per image and participant (:func:`summarize_participant_scores`, :func:`planned_contrasts`,
  :func:`kendalls_w`, :func:`mixed_model`): every map against each participant's own heatmap and
  fixations, resampled over images *and* participants (a two-way bootstrap), so that the intervals
  speak for new observers as well as new images. Comparisons are paired by image and participant.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis._checks import check_positive

__all__ = [
    "bootstrap_mean_ci",
    "combined_mc_se",
    "kendalls_w",
    "mixed_model",
    "planned_contrasts",
    "summarize_participant_scores",
    "summarize_scores",
    "two_way_resamples",
]


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
    means = np.concatenate(
        [
            x[rng.integers(0, x.size, size=(min(chunk, n_resamples - start), x.size))].mean(axis=1)
            for start in range(0, n_resamples, chunk)
        ]
    )
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
        mean, low, high = bootstrap_mean_ci(finite, n_resamples=n_resamples, confidence=confidence, seed=seed)
        errors = group["mc_se"].to_numpy(dtype=float)[kept] if "mc_se" in group else np.empty(0)
        rows.append(
            {
                "map": map_name,
                "metric": metric,
                "n_images": int(finite.size),
                "mean": mean,
                "sd": float(finite.std(ddof=1)) if finite.size > 1 else np.nan,
                "ci_low": low,
                "ci_high": high,
                "confidence": confidence,
                "mc_se": combined_mc_se(errors),
            }
        )
    return pd.DataFrame(rows)


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


# --------------------------------------------------------------------------------------------------
# Participant-level statistics: every map scored against each participant's own heatmap and
# fixations, so that images *and* participants are the units a reader generalises over.
# --------------------------------------------------------------------------------------------------

#: Map kinds that are not candidates for "the best model" (the human references and the controls).
_NOT_CANDIDATES = ("human", "control")


def _cube(table: pd.DataFrame, maps: list[str]) -> np.ndarray:
    """``(maps, images, participants)`` values of one metric, NaN where a cell has no score."""
    images = np.sort(table["image"].astype(str).unique())
    participants = np.sort(table["participant"].astype(str).unique())
    cube = np.full((len(maps), images.size, participants.size), np.nan)
    m = pd.Index(maps).get_indexer(table["map"])
    i = np.searchsorted(images, table["image"].astype(str).to_numpy())
    p = np.searchsorted(participants, table["participant"].astype(str).to_numpy())
    keep = m >= 0
    cube[m[keep], i[keep], p[keep]] = table["value"].to_numpy(dtype=float)[keep]
    return cube


def two_way_resamples(
    n_images: int, n_participants: int, *, n_resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """How often each image and each participant is drawn in each resample of a two-way bootstrap.

    Images and participants are resampled independently, with replacement (a crossed design: the
    CI then covers new images *and* new observers).

    Returns
    -------
    images : numpy.ndarray, shape (n_resamples, n_images)
    participants : numpy.ndarray, shape (n_resamples, n_participants)
        Multiplicities (each row sums to the number of units).
    """
    rng = np.random.default_rng([seed, 2])
    return (
        rng.multinomial(n_images, np.full(n_images, 1 / n_images), size=n_resamples).astype(float),
        rng.multinomial(n_participants, np.full(n_participants, 1 / n_participants), size=n_resamples).astype(float),
    )


def _resampled_means(cube: np.ndarray, images: np.ndarray, participants: np.ndarray) -> np.ndarray:
    """``(maps, resamples)``: the mean over the resampled cells (each cell weighted by its image's and
    its participant's multiplicity; missing cells left out)."""
    present = ~np.isnan(cube)
    values = np.where(present, cube, 0.0)
    total = np.einsum("ri,mip,rp->mr", images, values, participants, optimize=True)
    count = np.einsum("ri,mip,rp->mr", images, present.astype(float), participants, optimize=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def _cell_means(cube: np.ndarray) -> np.ndarray:
    """``(maps,)``: each map's mean over its cells with a score (NaN for none)."""
    present = ~np.isnan(cube)
    count = present.reshape(cube.shape[0], -1).sum(axis=1)
    total = np.where(present, cube, 0.0).reshape(cube.shape[0], -1).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if not finite.size:
        return np.nan, np.nan
    alpha = (1 - confidence) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high)


def summarize_participant_scores(
    table: pd.DataFrame,
    *,
    higher_is_better: dict[str, bool],
    kinds: dict[str, str] | None = None,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean of every map × metric over images and participants, with a two-way bootstrap CI and the
    probability that each candidate map ranks first.

    Parameters
    ----------
    table : DataFrame
        Columns ``image, participant, map, metric, value`` (and optionally ``mc_se``): every map
        scored against each participant's own target.
    higher_is_better : dict of metric → bool
    kinds : dict of map → kind, optional
        Maps of kind ``human`` or ``control`` are summarised but never ranked.
    n_resamples, confidence, seed
        Of the bootstrap (:func:`two_way_resamples`).

    Returns
    -------
    DataFrame
        ``map, metric, n_images, n_participants, mean, ci_low, ci_high, confidence, mc_se, rank,
        p_rank_first``: ``rank`` 1 is the best candidate's mean (direction-aware), ``p_rank_first``
        the fraction of resamples in which it has the best mean (NaN for the non-candidates).
    """
    kinds = kinds or {}
    rows = []
    for metric, group in table.groupby("metric", sort=False):
        maps = list(dict.fromkeys(group["map"]))
        cube = _cube(group, maps)
        images, participants = two_way_resamples(cube.shape[1], cube.shape[2], n_resamples=n_resamples, seed=seed)
        boot = _resampled_means(cube, images, participants)
        means = _cell_means(cube)
        sign = 1.0 if higher_is_better.get(metric, True) else -1.0
        candidates = [
            k for k, name in enumerate(maps) if kinds.get(name) not in _NOT_CANDIDATES and np.isfinite(means[k])
        ]
        ranks = {k: r + 1 for r, k in enumerate(sorted(candidates, key=lambda k: -sign * means[k]))}
        first = {}
        if candidates:
            scored = np.where(np.isfinite(boot[candidates]), sign * boot[candidates], -np.inf)
            winners = np.argmax(scored, axis=0)
            first = {k: float(np.mean(winners == j)) for j, k in enumerate(candidates)}
        for k, name in enumerate(maps):
            mine = group[group["map"] == name]
            low, high = _interval(boot[k], confidence)
            values = mine["value"].to_numpy(dtype=float)
            kept = ~np.isnan(values)
            rows.append(
                {
                    "map": name,
                    "metric": metric,
                    "n_images": int(mine.loc[kept, "image"].nunique()),
                    "n_participants": int(mine.loc[kept, "participant"].nunique()),
                    "mean": float(means[k]),
                    "ci_low": low,
                    "ci_high": high,
                    "confidence": confidence,
                    "mc_se": combined_mc_se(mine["mc_se"].to_numpy(dtype=float)[kept]) if "mc_se" in mine else np.nan,
                    "rank": ranks.get(k, np.nan),
                    "p_rank_first": first.get(k, np.nan),
                }
            )
    return pd.DataFrame(rows)


def planned_contrasts(
    table: pd.DataFrame,
    *,
    higher_is_better: dict[str, bool],
    kinds: dict[str, str] | None = None,
    reference: str = "center_bias",
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Each map against the centre bias and against the best model, on every metric, paired by
    image and participant, with two-way bootstrap CIs and p-values.

    The "best model" is the candidate (not ``human`` nor ``control``, not ``reference``) with the
    best mean on that metric; the models are the maps of kind ``cnn``/``dense``, or every candidate
    when there are none.

    Returns
    -------
    DataFrame
        ``metric, map, versus, n_images, n_participants, mean_difference`` (map − versus),
        ``ci_low, ci_high, p_value`` (two-sided bootstrap: twice the smaller tail of the resampled
        differences around 0, ``(count + 1) / (resamples + 1)``), ``p_holm`` (Holm over the
        metric's contrasts) and ``better``: the better map when the CI excludes 0, else
        ``"neither (CI includes 0)"``.
    """
    kinds = kinds or {}
    rows = []
    for metric, group in table.groupby("metric", sort=False):
        maps = list(dict.fromkeys(group["map"]))
        if reference not in maps:
            continue
        cube = _cube(group, maps)
        means = _cell_means(cube)
        sign = 1.0 if higher_is_better.get(metric, True) else -1.0
        candidates = [
            name
            for k, name in enumerate(maps)
            if kinds.get(name) not in _NOT_CANDIDATES and name != reference and np.isfinite(means[k])
        ]
        models = [name for name in candidates if kinds.get(name) in ("cnn", "dense")] or candidates
        best = max(models, key=lambda name: sign * means[maps.index(name)]) if models else None
        pairs = [(name, reference) for name in maps if name != reference]
        pairs += [(name, best) for name in models if best is not None and name != best]
        if not pairs:  # the reference alone
            continue
        images, participants = two_way_resamples(cube.shape[1], cube.shape[2], n_resamples=n_resamples, seed=seed)
        differences = np.stack([cube[maps.index(a)] - cube[maps.index(b)] for a, b in pairs])
        boot = _resampled_means(differences, images, participants)
        metric_rows = []
        for k, (a, b) in enumerate(pairs):
            d = differences[k]
            kept = ~np.isnan(d)
            samples = boot[k][np.isfinite(boot[k])]
            low, high = _interval(boot[k], confidence)
            p_value = np.nan
            if samples.size and kept.any():
                tail = min(np.sum(samples <= 0), np.sum(samples >= 0))
                p_value = float(min(1.0, 2 * (tail + 1) / (samples.size + 1)))
            mean = float(d[kept].mean()) if kept.any() else np.nan
            better = "neither (CI includes 0)" if np.isfinite(low) else "undefined (no scores)"
            if np.isfinite(low) and (low > 0 or high < 0):
                better = a if (mean > 0) == (sign > 0) else b
            metric_rows.append(
                {
                    "metric": metric,
                    "map": a,
                    "versus": b,
                    "n_images": int(kept.any(axis=1).sum()),
                    "n_participants": int(kept.any(axis=0).sum()),
                    "mean_difference": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "p_value": p_value,
                    "better": better,
                }
            )
        adjusted = _holm(np.array([r["p_value"] for r in metric_rows], dtype=float))
        for row, p_holm in zip(metric_rows, adjusted):
            row["p_holm"] = float(p_holm)
        rows.extend(metric_rows)
    columns = [
        "metric",
        "map",
        "versus",
        "n_images",
        "n_participants",
        "mean_difference",
        "ci_low",
        "ci_high",
        "p_value",
        "p_holm",
        "better",
    ]
    return pd.DataFrame(rows, columns=columns)


def kendalls_w(summary: pd.DataFrame, *, higher_is_better: dict[str, bool], maps: list[str]) -> tuple[float, int, int]:
    """Kendall's coefficient of concordance of the maps' ranks across metrics (the metrics are the
    raters), with the correction for ties.

    Parameters
    ----------
    summary : DataFrame
        ``map, metric, mean``.
    maps : list of str
        The maps ranked; those without a finite mean on every metric are left out.

    Returns
    -------
    w, n_maps, n_metrics
        ``W = 12 S / (m² (n³ - n) - m Σ (t³ - t))`` in [0, 1] (1: every metric ranks the maps alike);
        NaN with fewer than two maps or metrics.
    """
    from scipy.stats import rankdata

    wide = summary[summary["map"].isin(maps)].pivot_table(index="map", columns="metric", values="mean", aggfunc="first")
    wide = wide.dropna(axis=0, how="any")
    n, m = wide.shape
    if n < 2 or m < 2:
        return float("nan"), int(n), int(m)
    ranks = np.column_stack([rankdata(-wide[c] if higher_is_better.get(c, True) else wide[c]) for c in wide.columns])
    totals = ranks.sum(axis=1)
    s = float(((totals - totals.mean()) ** 2).sum())
    ties = sum(float(((counts := np.unique(column, return_counts=True)[1]) ** 3 - counts).sum()) for column in ranks.T)
    denominator = m * m * (n**3 - n) - m * ties
    return (float(12 * s / denominator) if denominator > 0 else float("nan")), int(n), int(m)


def mixed_model(table: pd.DataFrame, *, metric: str, reference: str = "center_bias") -> pd.DataFrame:
    """``value ~ map + (1 | image) + (1 | participant)`` for one metric (statsmodels ``MixedLM``,
    REML; crossed random intercepts as variance components of one group).

    Parameters
    ----------
    table : DataFrame
        ``image, participant, map, metric, value``.
    metric : str
    reference : str
        The map the fixed effects are contrasts with.

    Returns
    -------
    DataFrame
        One row per term: ``metric, term`` (a map, or ``var(image)``, ``var(participant)``,
        ``var(residual)``), ``estimate`` (difference from ``reference``, or a variance),
        ``std_error, p_value, ci_low, ci_high`` (95 % Wald), ``converged`` and ``note`` (the
        optimiser's warnings, e.g. a variance on the boundary of its range).

    Notes
    -----
    About 40 s per metric for 200 images × 15 participants × 4 maps on one core (L-BFGS).
    """
    import warnings

    import statsmodels.formula.api as smf

    data = table[(table["metric"] == metric) & table["value"].notna()][["image", "participant", "map", "value"]].copy()
    data["group"] = 0
    maps = [reference, *sorted(set(data["map"]) - {reference})]
    data["map"] = pd.Categorical(data["map"], categories=maps)
    model = smf.mixedlm(
        "value ~ C(map)",
        data,
        groups="group",
        re_formula="0",
        vc_formula={"image": "0 + C(image)", "participant": "0 + C(participant)"},
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit(reml=True, method=["lbfgs"])
    common = {"converged": bool(fit.converged), "note": "; ".join(sorted({str(w.message) for w in caught}))}
    intervals = fit.conf_int()
    rows = []
    for term in fit.fe_params.index:
        if term == "Intercept":
            continue
        rows.append(
            {
                "metric": metric,
                "term": term.split("[T.")[-1].rstrip("]"),
                "estimate": float(fit.fe_params[term]),
                "std_error": float(fit.bse_fe[term]),
                "p_value": float(fit.pvalues[term]),
                "ci_low": float(intervals.loc[term, 0]),
                "ci_high": float(intervals.loc[term, 1]),
                **common,
            }
        )
    for name, variance in zip(model.exog_vc.names, fit.vcomp):
        rows.append({"metric": metric, "term": f"var({name})", "estimate": float(variance), **common})
    rows.append({"metric": metric, "term": "var(residual)", "estimate": float(fit.scale), **common})
    return pd.DataFrame(rows)


def study_statistics(
    scores: pd.DataFrame,
    per_participant: pd.DataFrame,
    *,
    higher_is_better: dict[str, bool],
    kinds: dict[str, str],
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    mixed: bool = True,
    min_participants_mixed: int = 3,
) -> dict:
    """Every statistic of an offline analysis, for both targets.

    ``target="participant"``: every map against each participant (:func:`summarize_participant_scores`,
    :func:`planned_contrasts`; the headline numbers). ``target="pooled"``: against the pooled map of
    an image (the paper's analysis; CIs over images: the pooled scores as one "participant").

    Returns
    -------
    dict
        ``summary`` and ``comparisons`` (DataFrames with a ``target`` column), ``mixed_model``
        (:func:`mixed_model` of every metric when ``mixed`` and there are at least
        ``min_participants_mixed`` participants, else empty) and ``kendalls_w`` (per target: ``w``,
        ``n_maps``, ``n_metrics``).
    """
    options: dict[str, Any] = dict(
        higher_is_better=higher_is_better, kinds=kinds, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    pooled = scores.assign(participant="pooled")
    summaries, comparisons, concordance = [], [], {}
    for target, table in (("participant", per_participant), ("pooled", pooled)):
        if table.empty:
            continue
        summary = summarize_participant_scores(table, **options)
        summaries.append(summary.assign(target=target))
        comparisons.append(planned_contrasts(table, **options).assign(target=target))
        candidates = [name for name in table["map"].unique() if kinds.get(name) not in _NOT_CANDIDATES]
        w, n_maps, n_metrics = kendalls_w(summary, higher_is_better=higher_is_better, maps=candidates)
        concordance[target] = {"w": w, "n_maps": n_maps, "n_metrics": n_metrics}
    fits = []
    if mixed and per_participant["participant"].nunique() >= min_participants_mixed:
        modelled = per_participant[per_participant["map"].map(lambda name: kinds.get(name) != "control")]
        for metric in modelled["metric"].unique():
            try:
                fits.append(mixed_model(modelled, metric=metric))
            except (ValueError, np.linalg.LinAlgError) as error:  # e.g. a singular design: say so, go on
                fits.append(
                    pd.DataFrame([{"metric": metric, "term": "not fitted", "converged": False, "error": str(error)}])
                )
    return {
        "summary": pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame(),
        "comparisons": pd.concat(comparisons, ignore_index=True) if comparisons else pd.DataFrame(),
        "mixed_model": pd.concat(fits, ignore_index=True) if fits else pd.DataFrame(),
        "kendalls_w": concordance,
    }
