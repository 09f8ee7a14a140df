"""Figures and the self-contained HTML report of an offline analysis.

* ``fig9_<metric>.png`` — the paper's Fig. 9 as a bar chart: one bar per map (baselines, CNN
  methods, dense-model layers, human ceiling) with its bootstrap CI;
* ``metrics.png`` — the same for every metric, one panel each;
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

__all__ = ["map_label", "plot_metric_bars", "write_report", "METRIC_TITLES"]

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
    if name == "human_loso":
        return "human"
    return "dense" if name.startswith("dense_") else "cnn"


def plot_metric_bars(summary: pd.DataFrame, *, metric: str, ax=None):
    """Bar chart of one metric's mean per map with its CI (Fig. 9 style).

    Parameters
    ----------
    summary : DataFrame
        From :func:`analysis.stats.summarize_scores` plus an ``untrained`` column.
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
    ax.set_title(f"{METRIC_TITLES.get(metric, metric)} — mean over images, {confidence:.0%} bootstrap CI", fontsize=9)
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


def write_report(out: Path, *, config, scores, summary, comparisons, human_maps, stimulus_set, store, params) -> dict[str, Path]:
    """Write the figures and ``report.html`` into ``out``; return their paths by name."""
    files: dict[str, Path] = {}
    metrics = [m for m in config.metrics if m in set(summary["metric"])]
    for metric in ("mae",) if "mae" in metrics else metrics[:1]:
        fig, ax = plt.subplots(figsize=(max(6, 0.55 * summary["map"].nunique() + 2), 4))
        plot_metric_bars(summary, metric=metric, ax=ax)
        files[f"fig9_{metric}"] = _save(fig, out / f"fig9_{metric}.png")
    cols = 3
    rows = int(np.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    for ax, metric in zip(axes.ravel(), metrics):
        plot_metric_bars(summary, metric=metric, ax=ax)
    fig.tight_layout()
    files["metrics"] = _save(fig, out / "metrics.png")

    untrained = set(summary.loc[summary["untrained"], "map"])
    overlay_paths = []
    for image_id in list(human_maps)[: config.n_overlays]:
        shape = human_maps[image_id].shape
        maps = {"human": human_maps[image_id]}
        if store is not None:
            maps.update(store.load(image_id, shape=shape))
        fig = _overlay_figure(stimulus_set.load_rgb(image_id), maps, title=f"image {image_id}", untrained=untrained)
        overlay_paths.append(_save(fig, out / "overlays" / f"{image_id}.png"))

    files["report"] = out / "report.html"
    files["report"].write_text(_html(config, summary, comparisons, files, overlay_paths, params, untrained))
    return files


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


def _html(config, summary, comparisons, files, overlay_paths, params, untrained) -> str:
    store_note = ""
    if params.get("map_store"):
        weights = params["map_store"]["metadata"]["weights"]
        label = weights["label"] + (f" (seed {weights['seed']})" if weights.get("seed") is not None else "")
        store_note = (
            f"<p>CNN maps from <code>{html.escape(str(config.maps))}</code>, VGG16 weights: "
            f"<b>{html.escape(label)}</b>.</p>"
        )
        if untrained:
            store_note += (
                '<p class="warn">These CNN maps come from <b>untrained</b> (random) weights: they test the '
                "pipeline, they are not the paper's maps.</p>"
            )
    warnings_box = _warnings_box(params)
    wide = summary.pivot_table(index="map", columns="metric", values="mean", aggfunc="first", sort=False)
    wide = wide.reindex(columns=[m for m in config.metrics if m in wide.columns]).reset_index()
    wide.columns.name = None
    wide["map"] = [map_label(n, untrained=n in untrained) for n in wide["map"]]
    figures = "".join(f"<h3>{html.escape(name)}</h3>{_embed(path)}" for name, path in files.items() if path.suffix == ".png")
    overlays = "".join(_embed(path) for path in overlay_paths)
    comparison_html = _table(comparisons[comparisons["metric"] == "mae"]) if len(comparisons) else "<p>—</p>"
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
<p>Dataset <b>{html.escape(config.dataset)}</b> (<code>{html.escape(str(config.fixations))}</code>),
{params['n_images']} images, {params['n_participants']} participants,
{params['n_fixations_used']} of {params['n_fixations_read']} fixations used.
Heatmap: σ = {config.heatmap.sigma_px:g} px, kernel {config.heatmap.kernel_size_px or 'untruncated'},
duration-weighted: {config.heatmap.duration_weighted}. Metric definitions: {config.metric_variant.upper()}.
Every parameter is in <code>params.json</code>.</p>
{warnings_box}
{store_note}
<h2>Mean score per map and metric</h2>{_table(wide)}
<p>Rows: <code>center_bias</code> (centred Gaussian), <code>dataset_prior</code> (fixation density of all other
images), <code>human_loso</code> (each participant against the others: the human ceiling), then the CNN maps.</p>
<h2>Figures</h2>{figures}
<h2>Paired comparisons (MAE, Wilcoxon signed-rank, Holm-corrected)</h2>{comparison_html}
<h2>Overlays</h2>{overlays}
<h2>Summary with confidence intervals</h2>{_table(summary)}
</body></html>
"""
