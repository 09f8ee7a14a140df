// The scores of the image on the stage: the table (sortable, best per column in bold), the bar
// chart of one metric, and the model-map thumbnails with their score. Metric titles and
// directions and the kind of each map come from the server's registries (analysis/registry.py).

import { $, el, fmt, imagePath, isNumber, setText, svg } from "./dom.js";

// The scores of the chosen target: the pooled heatmap (every participant), or the current
// participant's own heatmap and fixations on this image (null until they have one there).
function scoreTarget() {
  return document.querySelector('input[name="target"]:checked').value;
}

export class Scores {
  constructor(store) {
    this.store = store;
    this.sortBy = null; // {key: "map" | metric, reversed: bool}; null: the server's order
    this.barMetric = null;
    this.shownMaps = null; // the image and map names the thumbnails were built for
  }

  /** Watch the score controls (once, at start); `rerender` redraws the current view. */
  start(rerender) {
    this.rerender = rerender;
    for (const input of document.querySelectorAll('input[name="target"]')) input.addEventListener("change", rerender);
    $("bar-metric").addEventListener("change", (event) => {
      this.barMetric = event.target.value;
      rerender();
    });
  }

  rows(view) {
    const scores = (scoreTarget() === "participant" ? view.summary?.participant_scores : view.summary?.scores) ?? {};
    const maps = Object.keys(scores);
    const metrics = [...new Set(maps.flatMap((name) => Object.keys(scores[name])))];
    return { scores, maps, metrics };
  }

  best(values, metric) {
    const finite = values.filter(isNumber);
    if (!finite.length) return null;
    return this.store.higherIsBetter(metric) ? Math.max(...finite) : Math.min(...finite);
  }

  // Whether the rows run from the largest value down: names A→Z and metrics best first, unless reversed.
  descending(sort) {
    const largestFirst = sort.key !== "map" && this.store.higherIsBetter(sort.key);
    return largestFirst !== sort.reversed;
  }

  sortedMaps(scores, maps) {
    const sort = this.sortBy;
    if (sort === null) return maps;
    const sign = this.descending(sort) ? -1 : 1;
    if (sort.key === "map") return [...maps].sort((a, b) => sign * a.localeCompare(b));
    // Undefined values last whichever the direction.
    return [...maps].sort((a, b) => {
      const x = scores[a][sort.key];
      const y = scores[b][sort.key];
      if (!isNumber(x) || !isNumber(y)) return isNumber(y) - isNumber(x);
      return sign * (x - y);
    });
  }

  render(view) {
    const { scores, maps, metrics } = this.rows(view);
    const summary = view.summary;
    setText("scores-caption", this.caption(view), { title: "" });
    setText("n-fixations-pooled", String(summary?.n_fixations ?? 0));
    setText("n-participants", String(summary?.n_participants ?? 0));
    setText("participants-word", summary?.n_participants === 1 ? "participant" : "participants");
    setText("sigma", summary ? String(summary.heatmap_params.sigma_px) : "—");
    setText("target-participant-name", summary?.participant ?? "participant");
    this.renderTable(view, scores, maps, metrics);
    this.renderBarMetricChoices(metrics);
    this.renderBars(scores, this.sortedMaps(scores, maps));
    this.renderModelMaps(view, scores);
  }

  renderTable(view, scores, maps, metrics) {
    const table = $("score-table");
    const headRow = el("tr", {}, this.headerCell("map", "map", null));
    for (const metric of metrics) headRow.append(this.headerCell(metric, metric, this.store.metricInfo(metric)));
    table.tHead.replaceChildren(headRow);
    const bests = Object.fromEntries(metrics.map((m) => [m, this.best(maps.map((name) => scores[name][m]), m)]));
    // rows still showing the previous fixation's values while the server computes them
    const updating = new Set(view.summary?.updating ?? []);
    const stale = (name) => updating.has(name) || (scoreTarget() === "participant" && updating.has("participant_scores"));
    const rows = this.sortedMaps(scores, maps).map((name) => {
      const kind = this.store.mapKind(name);
      const row = el("tr", {
        "data-map": name, class: `${kind}${stale(name) ? " updating" : ""}`,
        title: stale(name) ? "updating: these are the values before the last fixation" : null,
      }, el("th", { scope: "row", title: kind }, name));
      for (const metric of metrics) {
        const value = scores[name][metric];
        row.append(el("td", {
          "data-map": name, "data-metric": metric, "data-value": isNumber(value) ? String(value) : "",
          class: isNumber(value) && value === bests[metric] ? "best" : null,
        }, fmt(value)));
      }
      return row;
    });
    const summary = view.summary;
    const empty = summary?.pending ? "Scoring the pooled fixations of this image…"
      : scoreTarget() === "participant" && summary?.n_fixations
        ? `No fixation of ${summary.participant ?? "this participant"} used on this image yet.`
        : "No fixation on this image yet: scores appear with the first one.";
    table.tBodies[0].replaceChildren(...(rows.length ? rows
      : [el("tr", {}, el("td", { class: "muted", "data-testid": "scores-empty" }, empty))]));
  }

  // What the scores are computed from: during a trial, whether this trial's fixations are in yet.
  caption(view) {
    const summary = view.summary;
    if (!summary) return "none yet";
    const participants = `${summary.n_participants} participant${summary.n_participants === 1 ? "" : "s"}`;
    const fixations = isNumber(summary.n_fixations_used)
      ? `${summary.n_fixations_used} of ${summary.n_fixations} fixations used` : `${summary.n_fixations} fixations`;
    const scored = this.store.sections.scores?.trial_fixations;
    const when = !view.live ? "" : scored === 0 ? " · pooled before this trial" : isNumber(scored)
      ? ` · with ${scored} fixation${scored === 1 ? "" : "s"} of this trial` : "";
    return `image ${summary.image} · ${fixations} · ${participants}${when}`;
  }

  // `info`: the metric's registry entry (null for the map column).
  headerCell(key, label, info) {
    const sorted = this.sortBy?.key === key;
    const cell = el("th", {
      scope: "col", "data-metric": key === "map" ? null : key, "data-sort-key": key,
      "aria-sort": sorted ? (this.descending(this.sortBy) ? "descending" : "ascending") : "none",
      title: info === null ? "sort by name" : `${info.title}: ${info.higher_is_better ? "higher" : "lower"} is better`,
      class: sorted ? "sorted" : null,
    }, ...label.split("_").flatMap((part, i) => (i ? [el("wbr"), `_${part}`] : [part])));
    if (info !== null) cell.append(el("span", { class: "dir" }, info.higher_is_better ? "↑" : "↓"));
    cell.addEventListener("click", () => {
      this.sortBy = sorted ? { key, reversed: !this.sortBy.reversed } : { key, reversed: false };
      this.rerender();
    });
    return cell;
  }

  renderBarMetricChoices(metrics) {
    const select = $("bar-metric");
    const current = [...select.options].map((o) => o.value);
    if (current.join() !== metrics.join()) {
      select.replaceChildren(...metrics.map((m) => el("option", { value: m }, m)));
    }
    if (metrics.length && !metrics.includes(this.barMetric)) {
      this.barMetric = metrics.includes("nss") ? "nss" : metrics[0];
    }
    if (this.barMetric !== null) select.value = this.barMetric;
    const better = this.store.higherIsBetter(this.barMetric) ? "higher" : "lower";
    setText("bar-direction", this.barMetric === null ? "" : `${better} is better`);
  }

  renderBars(scores, maps) {
    const chart = $("bar-chart");
    const width = 480;
    const label = 120;
    const row = 22;
    const height = Math.max(maps.length, 1) * row + 8;
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    chart.replaceChildren();
    const metric = this.barMetric;
    if (!metric || !maps.length) return;
    const values = maps.map((name) => scores[name][metric]);
    const finite = values.filter(isNumber);
    const low = Math.min(0, ...finite);
    const high = Math.max(0, ...finite);
    const span = high - low || 1;
    const plot = width - label - 60;
    const x = (value) => label + ((value - low) / span) * plot;
    maps.forEach((name, i) => {
      const y = 4 + i * row;
      const value = values[i];
      chart.append(svg("text", { x: label - 6, y: y + row / 2, class: "label", "text-anchor": "end",
        "dominant-baseline": "middle" }, name));
      if (isNumber(value)) {
        const left = Math.min(x(0), x(value));
        chart.append(svg("rect", { x: left, y: y + 3, width: Math.max(Math.abs(x(value) - x(0)), 1),
          height: row - 6, class: `bar ${this.store.mapKind(name)}`, "data-testid": "bar", "data-map": name,
          "data-value": String(value) }));
      }
      chart.append(svg("text", { x: Math.max(x(0), isNumber(value) ? x(value) : 0) + 4, y: y + row / 2,
        class: "value", "dominant-baseline": "middle" }, fmt(value)));
    });
    chart.append(svg("line", { x1: x(0), x2: x(0), y1: 0, y2: height, class: "axis" }));
  }

  // Model maps do not change during a session: the thumbnails are rebuilt only for another image.
  renderModelMaps(view, scores) {
    const info = this.store.mapsInfo();
    const key = JSON.stringify([view.image, info.names]);
    if (key !== this.shownMaps) {
      this.shownMaps = key;
      setText("maps-label", info.label ? `weights: ${info.label}` : "");
      const container = $("model-maps");
      if (!info.names.length) {
        container.replaceChildren(el("p", { class: "muted" },
          "No map store: baselines only (start the server with --maps STORE)."));
      } else if (view.image !== null) {
        const thumbnail = (name) => el("figure", { "data-testid": "model-map", "data-map": name },
          el("img", { src: `${imagePath(view.image)}/thumbnails/${encodeURIComponent(name)}.png` +
            `?store=${encodeURIComponent(info.store_key)}`, alt: name }),
          el("figcaption", {}, el("span", { class: "name" }, name), el("span", { class: "score" })));
        container.replaceChildren(...info.names.map(thumbnail));
      }
    }
    const metric = this.barMetric;
    for (const figure of document.querySelectorAll('[data-testid="model-map"]')) {
      const value = scores[figure.dataset.map]?.[metric];
      figure.querySelector(".score").textContent = metric && isNumber(value) ? `${metric} ${fmt(value)}` : "";
    }
  }
}
