"""Figures and the self-contained HTML report of an offline analysis.

* ``fig9_<metric>.png`` — the paper's Fig. 9 as a bar chart: one bar per map (baselines, controls,
  CNN methods, dense-model layers, human references) against the pooled map, with its bootstrap CI;
* ``metrics.png`` — every metric, one panel each, for the headline target (each participant's data);
* ``overlays/<image>.png`` — the human heatmap over the image (paper Fig. 1), beside every map;
* ``timecourse_time.png``, ``timecourse_index.png`` — every map's score per viewing-time bin and per
  fixation index, with bootstrap CIs (:mod:`analysis.timecourse`);
* ``first_fixation_latency.png``, ``first_fixation_landing.png`` — when and where each trial's first
  fixation landed;
* ``naming_latency.png``, ``naming_scores.png`` — for sessions with audio: the first utterance's
  onset per trial, and every map scored on the fixations just before each utterance
  (:mod:`analysis.naming`);
* ``report.html`` — all of it, images embedded, opening with no other file.

Maps computed with untrained weights are labelled "(untrained)" in every figure and table.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # library code: never open a window
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.quality import report_section as quality_section
from analysis.registry import METRIC_REGISTRY, is_dense_layer, map_kind

__all__ = [
    "headline_target",
    "map_label",
    "plot_metric_bars",
    "plot_timecourse",
    "plot_first_fixation_latency",
    "plot_first_fixation_landing",
    "plot_naming_latency",
    "write_report",
    "METRIC_TITLES",
]

METRIC_TITLES = {name: f"{info.title} {info.arrow}" for name, info in METRIC_REGISTRY.items()}
_KIND_COLOURS = {"baseline": "#9e9e9e", "control": "#d7d7d7", "human": "#2e7d32", "cnn": "#1565c0", "dense": "#ef6c00"}


def map_label(name: str, *, untrained: bool) -> str:
    """Display name of a map, marked when its CNN weights were untrained."""
    return f"{name} (untrained)" if untrained else name


def _kind(name: str) -> str:
    """The map's kind (:func:`analysis.registry.map_kind`), the dense model's layers apart."""
    return "dense" if is_dense_layer(name) else map_kind(name)


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


def plot_timecourse(summary: pd.DataFrame, *, axis: str, metrics, untrained=frozenset()):
    """Every map's mean score per bin with its CI band, one panel per metric.

    Parameters
    ----------
    summary : DataFrame
        :func:`analysis.timecourse.summarize` (``axis, bin, start_ms, end_ms, map, metric, mean, ci_low, ci_high``).
    axis : {"time", "fixation_index"}
        Which time course: x is the bin's centre in seconds, or the fixation's index.
    metrics : sequence of str
        Panels, in order (metrics without scores are skipped).

    Returns
    -------
    matplotlib Figure
    """
    rows = summary[summary["axis"] == axis]
    metrics = [m for m in metrics if m in set(rows["metric"])]
    cols = min(3, max(len(metrics), 1))
    n_rows = int(np.ceil(max(len(metrics), 1) / cols))
    height_in = 3.2 * n_rows + 1.2  # panels, plus the title above and the legend below
    fig, axes = plt.subplots(n_rows, cols, figsize=(5.5 * cols, height_in), squeeze=False)
    for ax in axes.ravel()[len(metrics) :]:
        ax.axis("off")
    colours = plt.get_cmap("tab20")
    for ax, metric in zip(axes.ravel(), metrics):
        for number, (name, line) in enumerate(rows[rows["metric"] == metric].groupby("map", sort=False)):
            line = line.sort_values("bin")
            x = (line["start_ms"] + line["end_ms"]) / 2000 if axis == "time" else line["bin"]
            colour = _KIND_COLOURS["human"] if name == "human_loso" else colours(number % 20)
            ax.plot(x, line["mean"], marker="o", ms=3, color=colour, label=map_label(name, untrained=name in untrained))
            ax.fill_between(x, line["ci_low"], line["ci_high"], color=colour, alpha=0.15, linewidth=0)
        ax.set_title(METRIC_TITLES.get(metric, metric), fontsize=9)
        ax.set_xlabel("viewing time (s, bin centre)" if axis == "time" else "fixation index (1 = first)", fontsize=8)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=axis != "time"))
        ax.grid(alpha=0.3)
    if metrics:
        handles, labels = axes.ravel()[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=7, frameon=False)
    what = "viewing-time bin" if axis == "time" else "fixation index"
    fig.suptitle(f"Score per {what}: mean over images, bootstrap CI", fontsize=10, y=1 - 0.12 / height_in)
    fig.subplots_adjust(
        left=0.06, right=0.98, top=1 - 0.6 / height_in, bottom=0.95 / height_in, hspace=0.5, wspace=0.22
    )
    return fig


def plot_first_fixation_latency(first: pd.DataFrame):
    """Histogram of the first fixation's latency (ms after image onset) over trials, median marked."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    latency = first["latency_ms"].dropna().to_numpy(float)
    if latency.size:
        ax.hist(latency, bins=min(40, max(5, latency.size // 3)), color=_KIND_COLOURS["cnn"])
        ax.axvline(np.median(latency), color="k", ls="--", label=f"median {np.median(latency):.0f} ms")
        ax.legend(fontsize=8)
    ax.set_xlabel("first fixation latency (ms after image onset)")
    ax.set_ylabel("trials")
    ax.set_title(f"First fixation latency ({latency.size} trials)", fontsize=10)
    return fig


def plot_first_fixation_landing(first: pd.DataFrame):
    """Where each trial's first fixation landed, as a fraction of the image's width and height."""
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.add_patch(plt.Rectangle((0, 0), 1, 1, fill=False, color="0.4"))
    ax.scatter(first["x_fraction"], first["y_fraction"], s=10, alpha=0.5, color=_KIND_COLOURS["cnn"])
    ax.plot([0.5], [0.5], "k+", ms=12, label="image centre")
    ax.set_xlim(-0.1, 1.1)
    ax.set_ylim(1.1, -0.1)  # image rows grow downwards
    ax.set_aspect("equal")
    ax.set_xlabel("x / image width")
    ax.set_ylabel("y / image height")
    distance = first["distance_from_centre_px"].dropna()
    median = f", median {distance.median():.0f} px from the centre" if len(distance) else ""
    ax.set_title(f"First fixation landing ({len(first)} trials{median})", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def plot_naming_latency(utterances: pd.DataFrame):
    """Histogram of each trial's first utterance onset (the naming latency), median marked."""
    keys = ["participant", "session", "trial"]
    first = utterances.sort_values("onset_ms").groupby(keys, sort=False).head(1)["onset_ms"].to_numpy(float)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if first.size:
        ax.hist(first, bins=min(40, max(5, first.size // 3)), color=_KIND_COLOURS["dense"])
        ax.axvline(np.median(first), color="k", ls="--", label=f"median {np.median(first):.0f} ms")
        ax.legend(fontsize=8)
    ax.set_xlabel("first utterance onset (ms after image onset)")
    ax.set_ylabel("trials")
    ax.set_title(f"Naming latency ({first.size} trials with speech)", fontsize=10)
    return fig


def _save(fig, path: Path, *, tight: bool = True) -> Path:
    """Save and close ``fig``; ``tight=False`` keeps the figure's own layout (much faster for many panels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight" if tight else None)
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


def write_report(
    out: Path,
    *,
    config,
    scores,
    summary,
    comparisons,
    human_maps,
    stimulus_set,
    store,
    params,
    ceilings: pd.DataFrame | None = None,
    mixed: pd.DataFrame | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
) -> dict[str, Path]:
    """Write the figures and ``report.html`` into ``out``; return their paths by name.

    ``summary`` and ``comparisons`` hold both targets (column ``target``); Fig. 9 is the paper's
    (pooled target, every map and control), the panel of every metric shows the headline target
    (:func:`headline_target`). ``tables`` holds the time-course and naming tables when those ran
    (``timecourse_summary``, ``first_fixations``, ``utterances``, ``naming``, ``naming_summary``)
    and, for sessions, the quality tables (:mod:`analysis.quality`); each gets its figures and section.
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
    for ax in axes.ravel()[len(metrics) :]:
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

    extra = _timecourse_section(out, tables or {}, config, untrained, files)
    extra += _naming_section(out, tables or {}, config, untrained, files)
    extra += quality_section(tables or {})
    files["report"] = out / "report.html"
    sections = _Sections(config, summary, comparisons, params, untrained, target, scores, ceilings, mixed)
    files["report"].write_text(_html(config, sections, files, overlay_paths, params, extra))
    return files


def _overlay_images(config, human_maps) -> list[str]:
    """The images drawn as overlays: ``config.overlay_images`` (those analysed), else the first
    ``config.n_overlays``."""
    chosen = getattr(config, "overlay_images", None)
    if chosen:
        return [image for image in chosen if image in human_maps]
    return list(human_maps)[: config.n_overlays]


def _timecourse_section(out: Path, tables: dict, config, untrained: set, files: dict) -> str:
    """Figures of the time course and the first fixations (added to ``files``), and their HTML."""
    if "timecourse_summary" not in tables:
        return ""
    summary, first = tables["timecourse_summary"], tables["first_fixations"]
    parts = [
        "<h2>Time course</h2><p>Every map scored on the fixations of each viewing-time bin and of each "
        "fixation index (all participants pooled per image), mean over images with bootstrap CIs; "
        "<code>human_loso</code> is the human ceiling within the bin. Tables: <code>timecourse_summary.csv</code>, "
        "<code>timecourse_scores.csv</code>, <code>first_fixations.csv</code>.</p>"
    ]
    for axis, name in (("time", "timecourse_time"), ("fixation_index", "timecourse_index")):
        if (summary["axis"] == axis).any():
            files[name] = _save(
                plot_timecourse(summary, axis=axis, metrics=config.metrics, untrained=untrained),
                out / f"{name}.png",
                tight=False,
            )
            parts.append(_embed(files[name]))
    for name, plot in (
        ("first_fixation_latency", plot_first_fixation_latency),
        ("first_fixation_landing", plot_first_fixation_landing),
    ):
        if len(first):
            files[name] = _save(plot(first), out / f"{name}.png")
            parts.append(_embed(files[name]))
    return "".join(parts)


def _naming_section(out: Path, tables: dict, config, untrained: set, files: dict) -> str:
    """Figures and tables of the utterances and the naming-aligned fixations, and their HTML."""
    if "utterances" not in tables:
        return ""
    utterances, naming, summary = tables["utterances"], tables["naming"], tables["naming_summary"]
    counts = utterances["source"].value_counts().to_dict() if len(utterances) else {}
    parts = [
        f"<h2>Naming</h2><p>{len(utterances)} utterances ({counts.get('automatic', 0)} automatic, "
        f"{counts.get('corrected', 0)} corrected by review) in <code>utterances.csv</code>; names are automatic "
        "(pocketsphinx) unless corrected. Fixations in the window before each onset: <code>naming.csv</code>, "
        "their scores <code>naming_scores.csv</code> and <code>naming_summary.csv</code>.</p>"
    ]
    if len(utterances):
        files["naming_latency"] = _save(plot_naming_latency(utterances), out / "naming_latency.png")
        parts.append(_embed(files["naming_latency"]))
    if len(summary):
        metric = "mae" if "mae" in set(summary["metric"]) else summary["metric"].iloc[0]
        shown = summary.assign(untrained=summary["map"].isin(untrained))
        fig, ax = plt.subplots(figsize=(max(6, 0.55 * shown["map"].nunique() + 2), 4))
        plot_metric_bars(shown, metric=metric, ax=ax)
        ax.set_title(f"Naming-aligned {METRIC_TITLES.get(metric, metric)} (fixations before each onset)", fontsize=9)
        files["naming_scores"] = _save(fig, out / "naming_scores.png")
        parts.append(_embed(files["naming_scores"]))
    if "named_fixated" in naming.columns and naming["named_fixated"].notna().any():
        share = naming["named_fixated"].dropna().astype(bool)
        parts.append(
            f"<p>The named object was fixated in the window before {share.sum()} of {share.size} named "
            f"utterances ({share.mean():.0%}) where the image has object boxes.</p>"
        )
    return "".join(parts)


def _table(frame: pd.DataFrame, *, digits: int = 4) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.{digits}g}", border=0, classes="t")


def _warnings_box(params: dict) -> str:
    """The files left out and the data warnings of the run, in a box at the top (empty when none)."""
    left_out = params.get("left_out") or {}
    warnings = params.get("warnings") or []
    if not left_out and not warnings:
        return ""
    items = [
        f"<li><b>left out</b> <code>{html.escape(file)}</code>: {html.escape(why)}</li>"
        for file, why in left_out.items()
    ]
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
        viewing_text = (
            f"median {viewing['median']:.0f} ms (range {viewing['min']:.0f}–{viewing['max']:.0f} ms)"
            if viewing.get("median") is not None
            else "unknown (the data hold no display times)"
        )
        period = p.get("display_period", {})
        unjudged = period.get("fixations_without_times_kept")
        rule = html.escape(period.get("rule", ""))
        if unjudged:
            rule += f"; {unjudged} fixations without times could not be judged and were kept"
        dropped = p.get("fixations", {}).get("dropped", {})
        dropped_text = ", ".join(f"{n} {html.escape(reason)}" for reason, n in dropped.items()) or "none"
        images = p.get("images", {})
        images_text = (
            ", ".join(f"{n} {html.escape(why)}" for why, n in images.get("not_analysed", {}).items()) or "none"
        )
        return f"""<ul class="facts">
<li><b>{html.escape(self.config.dataset)}</b> (<code>{html.escape(str(self.config.fixations))}</code>):
{p["n_images"]} images analysed, {p["n_participants"]} participants, {p["n_fixations_used"]} of
{p["n_fixations_read"]} fixations used.</li>
<li>Viewing time per image: {viewing_text}.</li>
<li>Display-period rule: {rule}.</li>
<li>Fixations dropped: {dropped_text}.</li>
<li>Images with fixations not analysed: {images_text}. The dataset prior and the shuffled-AUC negatives of every
image come from all {p.get("baseline_pool", {}).get("n_images", "?")} images of the input with fixations and a
stimulus file, so an image's scores do not depend on <code>--images</code>.</li>
<li>Heatmap: σ = {heat.sigma_px:g} px, kernel {heat.kernel_size_px or "untruncated"} ({heat.even_kernel_centre}
anchor), duration-weighted: {heat.duration_weighted}. Metric definitions: {self.config.metric_variant.upper()}.
Every parameter is in <code>params.json</code>.</li>
</ul>"""

    def maps_note(self) -> str:
        if self.params.get("map_store"):
            weights = self.params["map_store"]["metadata"]["weights"]
            label = weights["label"] + (f" (seed {weights['seed']})" if weights.get("seed") is not None else "")
            note = (
                f"<p>CNN maps from <code>{html.escape(str(self.config.maps))}</code>, VGG16 weights: "
                f"<b>{html.escape(label)}</b>.</p>"
            )
            if self.untrained:
                note += (
                    '<p class="warn">These CNN maps come from <b>untrained</b> (random) weights: they test the '
                    "pipeline, they are not the paper's maps.</p>"
                )
            return note
        return (
            '<p class="warn" id="no-cnn-maps">No CNN maps were scored: the tables hold the baselines, the '
            "controls and the human references only. To add the paper's maps, compute them once with "
            f"<code>lookwhere precompute --stimuli {html.escape(str(self.config.stimuli))} --out MAPS</code> "
            "and rerun this analysis with <code>--maps MAPS</code>.</p>"
        )

    def headline_table(self) -> str:
        """Mean [CI] of every map and metric, with the direction of each metric."""
        table: dict[str, dict[str, str]] = {}  # map → metric → text
        for row in self.headline.itertuples():
            text = "—" if not np.isfinite(row.mean) else f"{row.mean:.3g} [{row.ci_low:.3g}, {row.ci_high:.3g}]"
            if np.isfinite(row.mean) and np.isfinite(getattr(row, "mc_se", np.nan)):
                text += f" ±{row.mc_se:.1g} MC"
            table.setdefault(row.map, {})[row.metric] = text
        frame = pd.DataFrame.from_dict(table, orient="index").reindex(columns=self.metrics)
        frame.columns = [METRIC_TITLES.get(m, m) for m in frame.columns]
        frame.index = [map_label(name, untrained=name in self.untrained) for name in frame.index]
        return (
            frame.fillna("—").rename_axis("map").reset_index().to_html(index=False, border=0, classes="t", escape=True)
        )

    def rows_note(self) -> str:
        blank = self._pooled_mean("blank", "mae")
        human = self._pooled_mean("human_loso", "mae")
        mae_note = ""
        if blank is not None:
            mae_note = (
                f"<p><b>What MAE rewards.</b> With both maps min-max scaled (the default), a blank map "
                f"scores MAE {blank:.3f} against the pooled map"
                + (f", against {human:.3f} for one participant's map against the others'" if human is not None else "")
                + ": most of a human heatmap is near zero, so MAE rewards maps that are dark where people "
                "did not look, however uninformative. Read MAE beside the blank control and with "
                "CC, NSS and information gain.</p>"
            )
        fit = self.params.get("densities", {})
        mode = fit.get("kl_ig_maps", "density")
        density_note = (
            "<p><b>KL divergence and information gain</b> compare every map turned into a probability "
            "density the same way: min-max, Gaussian blur, divided by the sum, mixed with the centre-bias "
            "density, blur and weight fitted per map on the <i>other</i> images (leave one image out, "
            "<code>density_params.csv</code>); information gain is over the centre bias's density. "
            "Raw maps (with exact zeros) lose tens of bits per fixation on the metrics' epsilons alone. "
            "<code>--kl-ig-maps raw</code> gives MIT's definitions on the maps as given.</p>"
            if mode == "density"
            else "<p><b>KL divergence and information gain</b> are MIT's definitions on the raw maps "
            "(<code>--kl-ig-maps raw</code>): maps with exact zeros lose tens of bits per fixation to the "
            "epsilons.</p>"
        )
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
        rows = self.summary[
            (self.summary["target"] == "pooled") & (self.summary["map"] == name) & (self.summary["metric"] == metric)
        ]
        value = float(rows["mean"].iloc[0]) if len(rows) else np.nan
        return value if np.isfinite(value) else None

    def ceilings_table(self) -> str:
        if self.ceilings is None or self.ceilings.empty:
            return "<p>—</p>"
        table = self.ceilings.groupby("metric", sort=False)["value"].agg(["mean", "count"]).reset_index()
        table.columns = ["metric", "mean over images", "images"]
        return (
            _table(table) + "<p>Split-half: the participants split at random into halves, one half's heatmap "
            "against the other's heatmap (CC, MAE) and fixations (NSS), both ways, averaged over splits; "
            "<code>cc_spearman_brown</code> = 2r / (1 + r), the full pool's expected correlation with another "
            "pool of the same size.</p>"
        )

    def comparisons_table(self) -> str:
        rows = (
            self.comparisons[self.comparisons["target"] == self.target] if len(self.comparisons) else self.comparisons
        )
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
        w_text = "—" if w.get("w") is None or not np.isfinite(w["w"]) else f"{w['w']:.3f}"
        return (
            f"<p>Kendall's W (agreement of the maps' ranks across metrics, 1 = all metrics rank them alike): "
            f"<b>{w_text}</b> over {w.get('n_maps', 0)} maps and {w.get('n_metrics', 0)} metrics. Probability "
            "that each map ranks first (fraction of bootstrap resamples), baselines and models only:</p>"
            + _table(table)
        )

    def mixed_table(self) -> str:
        if self.mixed is None or self.mixed.empty:
            return "<p>Not fitted: it needs at least 3 participants.</p>"
        return (
            "<p><code>value ~ map + (1|image) + (1|participant)</code> (statsmodels MixedLM, REML): each map's "
            "difference from the centre bias, and the variance components.</p>" + _table(self.mixed)
        )


def _html(config, sections: _Sections, files, overlay_paths, params, extra: str = "") -> str:
    # the time-course and naming figures sit in their own sections (``extra``)
    figures = "".join(
        f"<h3>{html.escape(name)}</h3>{_embed(path)}"
        for name, path in files.items()
        if name == "metrics" or name.startswith("fig9_")
    )
    overlays = "".join(_embed(path) for path in overlay_paths) or "<p>—</p>"
    confidence = sections.headline["confidence"].iloc[0] if len(sections.headline) else 0.95
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
<h2>Mean score per map and metric, with {confidence:.0%} CIs</h2>
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
{extra}
<h2>Overlays</h2>{overlays}
<h2>Summary with confidence intervals (both targets)</h2>{_table(sections.summary)}
</body></html>
"""
