"""Figures and the self-contained HTML report of an offline analysis.

* ``fig9_<metric>.png`` — the paper's Fig. 9 as a bar chart: one bar per map (baselines, controls,
  CNN methods, dense-model layers, human references) against the pooled map, with its bootstrap CI;
* ``metrics.png`` — every metric, one panel each, for the headline target (each participant's data);
* ``overlays/<image>.png`` — the human heatmap over the image (paper Fig. 1), beside every map;
* ``report.html`` — all of it, images embedded, opening with no other file.

Maps computed with untrained weights are labelled "(untrained)" in every figure and table.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # library code: never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["headline_target", "map_label", "plot_metric_bars", "write_report", "METRIC_TITLES"]

METRIC_TITLES = {
    "mae": "MAE (eq. 15) ↓",
    "nss": "NSS ↑",
    "cc": "CC ↑",
    "sim": "SIM ↑",
    "kl_div": "KL divergence ↓",
    "auc_judd": "AUC-Judd ↑",
    "auc_borji": "AUC-Borji ↑",
    "auc_shuffled": "shuffled AUC ↑",
    "info_gain": "information gain (bits/fix) ↑",
}
_KIND_COLOURS = {"baseline": "#9e9e9e", "control": "#d7d7d7", "human": "#2e7d32", "cnn": "#1565c0",
                 "dense": "#ef6c00"}


def map_label(name: str, *, untrained: bool) -> str:
    """Display name of a map, marked when its CNN weights were untrained."""
    return f"{name} (untrained)" if untrained else name


def _kind(name: str) -> str:
    if name in ("center_bias", "dataset_prior"):
        return "baseline"
    if name in ("blank", "uniform"):
        return "control"
    if name in ("human_loso", "human_gold"):
        return "human"
    return "dense" if name.startswith("dense_") else "cnn"


def plot_metric_bars(summary: pd.DataFrame, *, metric: str, ax=None):
    """Bar chart of one metric's mean per map with its CI (Fig. 9 style).

    Parameters
    ----------
    summary : DataFrame
        The rows of one target of :func:`analysis.stats.study_statistics`' summary plus an
        ``untrained`` column.
    metric : str
        Which metric to draw.
    ax : matplotlib Axes, optional
        Where to draw; a new figure otherwise.

    Returns
    -------
    matplotlib Axes
    """
    rows = summary[summary["metric"] == metric].reset_index(drop=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6, 0.55 * len(rows) + 2), 4))
    labels = [map_label(r.map, untrained=bool(r.untrained)) for r in rows.itertuples()]
    means = rows["mean"].to_numpy()
    errors = np.vstack([means - rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy() - means])
    colours = [_KIND_COLOURS[_kind(name)] for name in rows["map"]]
    ax.bar(range(len(rows)), means, yerr=np.nan_to_num(errors), color=colours, capsize=3)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    confidence = rows["confidence"].iloc[0] if len(rows) else 0.95
    over = "images and participants" if "target" in rows and (rows["target"] == "participant").any() else "images"
    ax.set_title(f"{METRIC_TITLES.get(metric, metric)} — mean over {over}, {confidence:.0%} bootstrap CI", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return ax


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _overlay_figure(image_rgb: np.ndarray, maps: dict[str, np.ndarray], *, title: str, untrained: set[str]):
    """The image with the human heatmap on top, then every other map on its own panel."""
    n = len(maps) + 1
    cols = min(n, 5)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(image_rgb)
    axes[0, 0].set_title("image", fontsize=8)
    for ax, (name, values) in zip(axes.ravel()[1:], maps.items()):
        span = np.ptp(values)
        shown = (values - values.min()) / span if span > 0 else np.zeros_like(values)
        ax.imshow(image_rgb)
        ax.imshow(shown, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        ax.set_title(map_label(name, untrained=name in untrained), fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def _embed(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'


def headline_target(summary: pd.DataFrame) -> str:
    """The target of the headline numbers: each participant's own data when there are at least two
    participants (CIs over images and participants), else the pooled map (CIs over images)."""
    participant = summary[summary["target"] == "participant"]
    if len(participant) and participant["n_participants"].max() >= 2:
        return "participant"
    return "pooled"


_TARGET_NOTES = {
    "participant": "every map scored against each participant's own heatmap and fixations; mean over images and "
                   "participants, CI from a two-way bootstrap (images × participants)",
    "pooled": "every map scored against the pooled heatmap and fixations of an image (the paper's analysis); "
              "mean over images, CI from a bootstrap over images",
}


def write_report(out: Path, *, config, scores, summary, comparisons, human_maps, stimulus_set, store, params,
                 ceilings: pd.DataFrame | None = None, mixed: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write the figures and ``report.html`` into ``out``; return their paths by name.

    ``summary`` and ``comparisons`` hold both targets (column ``target``); Fig. 9 is the paper's
    (pooled target, every map and control), the panel of every metric shows the headline target
    (:func:`headline_target`).
    """
    files: dict[str, Path] = {}
    target = headline_target(summary)
    pooled, headline = (summary[summary["target"] == name].reset_index(drop=True) for name in ("pooled", target))
    metrics = [m for m in config.metrics if m in set(summary["metric"])]
    for metric in ("mae",) if "mae" in metrics else metrics[:1]:
        fig, ax = plt.subplots(figsize=(max(6, 0.55 * pooled["map"].nunique() + 2), 4))
        plot_metric_bars(pooled, metric=metric, ax=ax)
        files[f"fig9_{metric}"] = _save(fig, out / f"fig9_{metric}.png")
    cols = 3
    rows = int(np.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    for ax, metric in zip(axes.ravel(), metrics):
        plot_metric_bars(headline, metric=metric, ax=ax)
    fig.suptitle(f"target: {target} ({_TARGET_NOTES[target].split(';')[0]})", fontsize=10)
    fig.tight_layout()
    files["metrics"] = _save(fig, out / "metrics.png")

    untrained = set(summary.loc[summary["untrained"], "map"])
    overlay_paths = []
    for image_id in _overlay_images(config, human_maps):
        shape = human_maps[image_id].shape
        maps = {"human": human_maps[image_id]}
        if store is not None:
            maps.update(store.load(image_id, shape=shape))
        fig = _overlay_figure(stimulus_set.load_rgb(image_id), maps, title=f"image {image_id}", untrained=untrained)
        overlay_paths.append(_save(fig, out / "overlays" / f"{image_id}.png"))

    files["report"] = out / "report.html"
    sections = _Sections(config, summary, comparisons, params, untrained, target, scores, ceilings, mixed)
    files["report"].write_text(_html(config, sections, files, overlay_paths, params))
    return files


def _overlay_images(config, human_maps) -> list[str]:
    """The images drawn as overlays: ``config.overlay_images`` (those analysed), else the first
    ``config.n_overlays``."""
    chosen = getattr(config, "overlay_images", None)
    if chosen:
        return [image for image in chosen if image in human_maps]
    return list(human_maps)[: config.n_overlays]


def _table(frame: pd.DataFrame, *, digits: int = 4) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.{digits}g}", border=0, classes="t")


def _warnings_box(params: dict) -> str:
    """The files left out and the data warnings of the run, in a box at the top (empty when none)."""
    left_out = params.get("left_out") or {}
    warnings = params.get("warnings") or []
    if not left_out and not warnings:
        return ""
    items = [f"<li><b>left out</b> <code>{html.escape(file)}</code>: {html.escape(why)}</li>" for file, why in left_out.items()]
    items += [f"<li>{html.escape(message)}</li>" for message in warnings]
    return (
        f'<div class="warn" id="data-warnings"><b>{len(left_out)} files left out, {len(warnings)} data warnings</b> '
        f"(also in <code>params.json</code>)<ul>{''.join(items)}</ul></div>"
    )


class _Sections:
    """The HTML of the report's sections (each a small method, so the page reads top to bottom)."""

    def __init__(self, config, summary, comparisons, params, untrained, target, scores, ceilings, mixed) -> None:
        self.config, self.summary, self.comparisons, self.params = config, summary, comparisons, params
        self.untrained, self.target, self.scores = untrained, target, scores
        self.ceilings, self.mixed = ceilings, mixed
        self.metrics = [m for m in config.metrics if m in set(summary["metric"])]
        self.headline = summary[summary["target"] == target]

    def facts(self) -> str:
        """Dataset facts: size, viewing time, the display-period rule, what was dropped and why."""
        p, heat = self.params, self.config.heatmap
        viewing = p.get("viewing_time_ms") or {}
        viewing_text = (f"median {viewing['median']:.0f} ms (range {viewing['min']:.0f}–{viewing['max']:.0f} ms)"
                        if viewing.get("median") is not None else "unknown (the data hold no display times)")
        period = p.get("display_period", {})
        unjudged = period.get("fixations_without_times_kept")
        rule = html.escape(period.get("rule", ""))
        if unjudged:
            rule += f"; {unjudged} fixations without times could not be judged and were kept"
        dropped = p.get("fixations", {}).get("dropped", {})
        dropped_text = ", ".join(f"{n} {html.escape(reason)}" for reason, n in dropped.items()) or "none"
        images = p.get("images", {})
        images_text = ", ".join(f"{n} {html.escape(why)}" for why, n in images.get("not_analysed", {}).items()) or "none"
        return f"""<ul class="facts">
<li><b>{html.escape(self.config.dataset)}</b> (<code>{html.escape(str(self.config.fixations))}</code>):
{p['n_images']} images analysed, {p['n_participants']} participants, {p['n_fixations_used']} of
{p['n_fixations_read']} fixations used.</li>
<li>Viewing time per image: {viewing_text}.</li>
<li>Display-period rule: {rule}.</li>
<li>Fixations dropped: {dropped_text}.</li>
<li>Images with fixations not analysed: {images_text}. The dataset prior and the shuffled-AUC negatives of every
image come from all {p.get('baseline_pool', {}).get('n_images', '?')} images of the input with fixations and a
stimulus file, so an image's scores do not depend on <code>--images</code>.</li>
<li>Heatmap: σ = {heat.sigma_px:g} px, kernel {heat.kernel_size_px or 'untruncated'} ({heat.even_kernel_centre}
anchor), duration-weighted: {heat.duration_weighted}. Metric definitions: {self.config.metric_variant.upper()}.
Every parameter is in <code>params.json</code>.</li>
</ul>"""

    def maps_note(self) -> str:
        if self.params.get("map_store"):
            weights = self.params["map_store"]["metadata"]["weights"]
            label = weights["label"] + (f" (seed {weights['seed']})" if weights.get("seed") is not None else "")
            note = (f"<p>CNN maps from <code>{html.escape(str(self.config.maps))}</code>, VGG16 weights: "
                    f"<b>{html.escape(label)}</b>.</p>")
            if self.untrained:
                note += ('<p class="warn">These CNN maps come from <b>untrained</b> (random) weights: they test the '
                         "pipeline, they are not the paper's maps.</p>")
            return note
        return ("<p class=\"warn\" id=\"no-cnn-maps\">No CNN maps were scored: the tables hold the baselines, the "
                "controls and the human references only. To add the paper's maps, compute them once with "
                f"<code>lookwhere precompute --stimuli {html.escape(str(self.config.stimuli))} --out MAPS</code> "
                "and rerun this analysis with <code>--maps MAPS</code>.</p>")

    def headline_table(self) -> str:
        """Mean [CI] of every map and metric, with the direction of each metric."""
        table = {}
        for row in self.headline.itertuples():
            text = "—" if not np.isfinite(row.mean) else f"{row.mean:.3g} [{row.ci_low:.3g}, {row.ci_high:.3g}]"
            if np.isfinite(row.mean) and np.isfinite(getattr(row, "mc_se", np.nan)):
                text += f" ±{row.mc_se:.1g} MC"
            table.setdefault(row.map, {})[row.metric] = text
        frame = pd.DataFrame.from_dict(table, orient="index").reindex(columns=self.metrics)
        frame.columns = [METRIC_TITLES.get(m, m) for m in frame.columns]
        frame.index = [map_label(name, untrained=name in self.untrained) for name in frame.index]
        return (frame.fillna("—").rename_axis("map").reset_index()
                .to_html(index=False, border=0, classes="t", escape=True))

    def rows_note(self) -> str:
        blank = self._pooled_mean("blank", "mae")
        human = self._pooled_mean("human_loso", "mae")
        mae_note = ""
        if blank is not None:
            mae_note = (f"<p><b>What MAE rewards.</b> With both maps min-max scaled (the default), a blank map "
                        f"scores MAE {blank:.3f} against the pooled map"
                        + (f", against {human:.3f} for one participant's map against the others'" if human is not None else "")
                        + ": most of a human heatmap is near zero, so MAE rewards maps that are dark where people "
                          "did not look, however uninformative. Read MAE beside the blank control and with "
                          "CC, NSS and information gain.</p>")
        fit = self.params.get("densities", {})
        mode = fit.get("kl_ig_maps", "density")
        density_note = ("<p><b>KL divergence and information gain</b> compare every map turned into a probability "
                        "density the same way: min-max, Gaussian blur, divided by the sum, mixed with the centre-bias "
                        "density, blur and weight fitted per map on the <i>other</i> images (leave one image out, "
                        "<code>density_params.csv</code>); information gain is over the centre bias's density. "
                        "Raw maps (with exact zeros) lose tens of bits per fixation on the metrics' epsilons alone. "
                        "<code>--kl-ig-maps raw</code> gives MIT's definitions on the maps as given.</p>"
                        if mode == "density" else
                        "<p><b>KL divergence and information gain</b> are MIT's definitions on the raw maps "
                        "(<code>--kl-ig-maps raw</code>): maps with exact zeros lose tens of bits per fixation to the "
                        "epsilons.</p>")
        return f"""<p>Target: {_TARGET_NOTES[self.target]}. ↑: higher is better, ↓: lower is better. "±… MC" is the
Monte-Carlo standard error of a sampled AUC's mean (every image and participant draws its own random negatives).</p>
<p>Rows: <code>center_bias</code> (centred Gaussian) and <code>dataset_prior</code> (fixation density of all other
images): baselines. <code>blank</code> (constant map) and <code>uniform</code> (uniform density): controls; a metric
that is undefined for a constant map shows —. <code>human_gold</code>: the gold standard (Kümmerer et al., PNAS 2015),
each participant predicted by the other participants' fixation density, blur and centre-bias mixture fitted on the
other images: the ceiling. <code>human_loso</code>: each participant's own heatmap and fixations against the raw
heatmap of the others (its exact zeros cost KL and information gain). Then the CNN maps.</p>
{mae_note}{density_note}"""

    def _pooled_mean(self, name: str, metric: str) -> float | None:
        rows = self.summary[(self.summary["target"] == "pooled") & (self.summary["map"] == name)
                            & (self.summary["metric"] == metric)]
        value = float(rows["mean"].iloc[0]) if len(rows) else np.nan
        return value if np.isfinite(value) else None

    def ceilings_table(self) -> str:
        if self.ceilings is None or self.ceilings.empty:
            return "<p>—</p>"
        table = self.ceilings.groupby("metric", sort=False)["value"].agg(["mean", "count"]).reset_index()
        table.columns = ["metric", "mean over images", "images"]
        return (_table(table) + "<p>Split-half: the participants split at random into halves, one half's heatmap "
                "against the other's heatmap (CC, MAE) and fixations (NSS), both ways, averaged over splits; "
                "<code>cc_spearman_brown</code> = 2r / (1 + r), the full pool's expected correlation with another "
                "pool of the same size.</p>")

    def comparisons_table(self) -> str:
        rows = self.comparisons[self.comparisons["target"] == self.target] if len(self.comparisons) else self.comparisons
        if not len(rows):
            return "<p>—</p>"
        shown = rows[["metric", "map", "versus", "mean_difference", "ci_low", "ci_high", "p_holm", "better"]]
        return _table(shown)

    def rankings(self) -> str:
        w = self.params.get("statistics", {}).get("kendalls_w", {}).get(self.target, {})
        ranked = self.headline[self.headline["p_rank_first"].notna()]
        table = ranked.pivot_table(index="map", columns="metric", values="p_rank_first", aggfunc="first")
        table = table.reindex(columns=[m for m in self.metrics if m in table.columns]).reset_index()
        table.columns.name = None
        w_text = ("—" if w.get("w") is None or not np.isfinite(w["w"]) else f"{w['w']:.3f}")
        return (f"<p>Kendall's W (agreement of the maps' ranks across metrics, 1 = all metrics rank them alike): "
                f"<b>{w_text}</b> over {w.get('n_maps', 0)} maps and {w.get('n_metrics', 0)} metrics. Probability "
                "that each map ranks first (fraction of bootstrap resamples), baselines and models only:</p>"
                + _table(table))

    def mixed_table(self) -> str:
        if self.mixed is None or self.mixed.empty:
            return "<p>Not fitted: it needs at least 3 participants.</p>"
        return ("<p><code>value ~ map + (1|image) + (1|participant)</code> (statsmodels MixedLM, REML): each map's "
                "difference from the centre bias, and the variance components.</p>" + _table(self.mixed))


def _html(config, sections: _Sections, files, overlay_paths, params) -> str:
    figures = "".join(f"<h3>{html.escape(name)}</h3>{_embed(path)}" for name, path in files.items() if path.suffix == ".png")
    overlays = "".join(_embed(path) for path in overlay_paths) or "<p>—</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lookwhere analysis — {html.escape(config.dataset)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1400px; }}
table.t {{ border-collapse: collapse; font-size: 0.85em; }}
table.t td, table.t th {{ padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; }}
img {{ max-width: 100%; margin: 0.5em 0; }}
.warn {{ background: #fff3cd; padding: 0.5em; border-left: 4px solid #f0ad4e; }}
code {{ background: #f4f4f4; padding: 0 3px; }}
</style></head><body>
<h1>lookwhere — offline analysis</h1>
{sections.facts()}
{_warnings_box(params)}
{sections.maps_note()}
<h2>Mean score per map and metric, with {sections.headline['confidence'].iloc[0] if len(sections.headline) else 0.95:.0%} CIs</h2>
{sections.headline_table()}
{sections.rows_note()}
<h2>Noise ceilings</h2>{sections.ceilings_table()}
<h2>Figures</h2>{figures}
<h2>Planned contrasts: each map against the centre bias and the best model</h2>
<p>Paired by image and participant; mean difference (map − versus) with its CI; p-values from the bootstrap,
Holm-corrected within each metric; "better" names the better map when the CI excludes 0.</p>
{sections.comparisons_table()}
<h2>Rank agreement</h2>{sections.rankings()}
<h2>Mixed model</h2>{sections.mixed_table()}
<h2>Overlays</h2>{overlays}
<h2>Summary with confidence intervals (both targets)</h2>{_table(sections.summary)}
</body></html>
"""
