// The experimenter's dashboard: renders the live hub's sections (WebSocket /ws) and the per-image
// API. Plain JS, no build step and no CDN (the lab machines are offline).
"use strict";

const LOWER_IS_BETTER = new Set(["mae", "kl_div"]);
const DIGITS = 3; // displayed precision of scores (the test compares at this precision)
const STALL_AFTER_S = 5; // the health section arrives every second, so silence means trouble
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 8000;
const GAZE_FRESH_S = 0.5;

const live = { sections: {}, scoresVersion: 0 };
let browse = null; // {image, summary, version} while the history browser shows an image
let browseVersion = 0;
let liveHeatmapLayer = null; // the live view's heatmap choice, restored when browsing ends
let sortBy = null; // {key: "map" | metric, reversed: bool}; null: the server's order
let barMetric = null;
let shownImage = null; // the stimulus currently loaded in the stage
let lastMessageMs = null;
const clockOffsets = []; // server_time_s - browser time (s), recent messages

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

const isNumber = (value) => typeof value === "number" && Number.isFinite(value);
const fmt = (value, digits = DIGITS) => (isNumber(value) ? value.toFixed(digits) : "—");
const imagePath = (image) => `/api/images/${encodeURIComponent(image)}`;

function setText(testid, text, { title = null, warn = null } = {}) {
  const node = $(testid);
  node.textContent = text;
  if (title !== null) node.title = title;
  if (warn !== null) node.classList.toggle("warn", warn);
}

// -- clock ----------------------------------------------------------------------------------------

// A message's server_time_s minus its arrival time is the clock offset less the network delay,
// so the largest recent one is the best estimate of the server-minus-browser offset.
function serverNowS() {
  const offset = clockOffsets.length ? Math.max(...clockOffsets) : 0;
  return Date.now() / 1000 + offset;
}

// -- what the stage shows -------------------------------------------------------------------------

// The image, its scored summary and the version of its heatmaps: the browsed image, or the live one.
function currentView() {
  if (browse !== null) {
    return { image: browse.image, summary: browse.summary, version: `b${browse.version}`, live: false };
  }
  const trial = live.sections.trial?.trial ?? null;
  const scores = live.sections.scores ?? null;
  const image = trial?.image ?? scores?.image ?? null;
  const summary = scores && scores.image === image ? scores.summary : null;
  return { image, summary, version: `l${live.scoresVersion}`, live: true, trial };
}

function imageShape(view) {
  if (view.summary?.shape) return { height: view.summary.shape[0], width: view.summary.shape[1] };
  if (view.trial && view.trial.image === view.image) {
    return { height: view.trial.image_height_px, width: view.trial.image_width_px };
  }
  return null;
}

function renderView() {
  const view = currentView();
  const shape = imageShape(view);
  const stage = $("stage");
  const stimulus = $("stimulus");
  $("stage-empty").hidden = view.image !== null;
  stimulus.hidden = view.image === null || stimulus.dataset.loaded !== "true";
  if (shape) stage.style.aspectRatio = `${shape.width} / ${shape.height}`;
  if (view.image !== shownImage) {
    // Nothing of the previous image stays on the stage: every layer waits for its new source.
    shownImage = view.image;
    stimulus.dataset.loaded = "false";
    for (const testid of ["heatmap-pooled", "heatmap-participant"]) {
      $(testid).removeAttribute("src");
      $(testid).dataset.loaded = "false";
    }
    if (view.image !== null) stimulus.src = `${imagePath(view.image)}/stimulus`;
  }
  stimulus.dataset.image = view.image ?? "";
  renderModelMaps(view);
  $("stage-title").textContent = view.live ? "Current image" : `Image ${view.image} (history)`;
  renderHeatmaps(view);
  renderScores(view);
  renderOverlay();
}

// The version in the query changes with every scored state, so the browser fetches the redrawn map.
function renderHeatmaps(view) {
  const summary = view.summary;
  const base = summary ? `${imagePath(view.image)}/heatmap.png?v=${view.version}` : null;
  const sources = {
    "heatmap-pooled": summary?.n_fixations ? base : null,
    "heatmap-participant": summary?.n_fixations_participant
      ? `${base}&participant=${encodeURIComponent(summary.participant)}` : null,
  };
  for (const [testid, source] of Object.entries(sources)) {
    const image = $(testid);
    if (source === null) {
      image.removeAttribute("src");
      image.dataset.loaded = "false";
    } else if (image.getAttribute("src") !== source) {
      image.src = source;
    }
  }
  applyLayers();
}

function chooseHeatmap(layer) {
  document.querySelector(`input[name="heat"][value="${layer}"]`).checked = true;
  applyLayers();
}

// A heatmap is shown when chosen and loaded (the API answers 204 while it has no fixation).
function applyLayers() {
  const choice = document.querySelector('input[name="heat"]:checked').value;
  for (const kind of ["pooled", "participant"]) {
    const image = $(`heatmap-${kind}`);
    image.hidden = !(choice === kind && image.dataset.loaded === "true" && image.hasAttribute("src"));
  }
}

function watchHeatmap(testid) {
  const image = $(testid);
  image.addEventListener("load", () => { image.dataset.loaded = "true"; applyLayers(); });
  image.addEventListener("error", () => { image.dataset.loaded = "false"; applyLayers(); });
}

// -- overlay: the live trial's fixations and gaze in image pixels, scaled to the stage ------------

function renderOverlay() {
  const canvas = $("overlay");
  const stage = $("stage");
  const ratio = window.devicePixelRatio || 1;
  const width = stage.clientWidth;
  const height = stage.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  const view = currentView();
  const shape = imageShape(view);
  if (!view.live || !view.trial || view.trial.image !== view.image || !shape) return;
  const scale = width / shape.width;
  const fixations = live.sections.fixations;
  if ($("show-fixations").checked && fixations?.image === view.image) drawFixations(context, fixations.fixations, scale);
  const gaze = live.sections.gaze?.gaze;
  if ($("show-gaze").checked && gaze) drawGaze(context, gaze, scale);
}

function drawFixations(context, fixations, scale) {
  const points = fixations.map((f) => ({
    x: f.x_image_px * scale, y: f.y_image_px * scale,
    r: (5 + Math.sqrt(Math.max(f.duration_ms, 0))) * scale, // area grows with duration
  }));
  context.lineWidth = 1.5;
  context.strokeStyle = "rgba(20, 30, 60, 0.7)";
  context.beginPath();
  points.forEach((p, i) => (i ? context.lineTo(p.x, p.y) : context.moveTo(p.x, p.y)));
  context.stroke();
  context.font = "600 12px system-ui, sans-serif";
  context.textAlign = "center";
  context.textBaseline = "middle";
  points.forEach((p, i) => {
    const last = i === points.length - 1;
    context.beginPath();
    context.arc(p.x, p.y, p.r, 0, 2 * Math.PI);
    context.fillStyle = last ? "rgba(255, 140, 0, 0.55)" : "rgba(255, 200, 0, 0.35)";
    context.fill();
    context.lineWidth = last ? 2.5 : 1.5;
    context.strokeStyle = "rgba(20, 30, 60, 0.9)";
    context.stroke();
    context.lineWidth = 3;
    context.strokeStyle = "white";
    context.strokeText(String(i + 1), p.x, p.y);
    context.fillStyle = "rgb(20, 30, 60)";
    context.fillText(String(i + 1), p.x, p.y);
  });
}

function drawGaze(context, gaze, scale) {
  const fresh = serverNowS() - gaze.server_time_s < GAZE_FRESH_S;
  const x = gaze.x_image_px * scale;
  const y = gaze.y_image_px * scale;
  context.lineWidth = 2.5;
  context.strokeStyle = fresh ? "rgba(0, 170, 255, 0.95)" : "rgba(120, 120, 120, 0.6)";
  context.beginPath();
  context.arc(x, y, 10, 0, 2 * Math.PI);
  context.moveTo(x - 16, y); context.lineTo(x - 5, y);
  context.moveTo(x + 5, y); context.lineTo(x + 16, y);
  context.moveTo(x, y - 16); context.lineTo(x, y - 5);
  context.moveTo(x, y + 5); context.lineTo(x, y + 16);
  context.stroke();
}

// -- scores: table, bars and model-map captions ---------------------------------------------------

// The scores of the chosen target: the pooled heatmap (every participant), or the current
// participant's own heatmap and fixations on this image (null until they have one there).
function scoreTarget() {
  return document.querySelector('input[name="target"]:checked').value;
}

function scoreRows(view) {
  const scores = (scoreTarget() === "participant" ? view.summary?.participant_scores : view.summary?.scores) ?? {};
  const maps = Object.keys(scores);
  const metrics = [...new Set(maps.flatMap((name) => Object.keys(scores[name])))];
  return { scores, maps, metrics };
}

function best(values, metric) {
  const finite = values.filter(isNumber);
  if (!finite.length) return null;
  return LOWER_IS_BETTER.has(metric) ? Math.min(...finite) : Math.max(...finite);
}

// Whether the rows run from the largest value down: names A→Z and metrics best first, unless reversed.
function descending(sort) {
  const largestFirst = sort.key !== "map" && !LOWER_IS_BETTER.has(sort.key);
  return largestFirst !== sort.reversed;
}

function sortedMaps(scores, maps) {
  if (sortBy === null) return maps;
  const sign = descending(sortBy) ? -1 : 1;
  if (sortBy.key === "map") return [...maps].sort((a, b) => sign * a.localeCompare(b));
  // Undefined values last whichever the direction.
  return [...maps].sort((a, b) => {
    const x = scores[a][sortBy.key];
    const y = scores[b][sortBy.key];
    if (!isNumber(x) || !isNumber(y)) return isNumber(y) - isNumber(x);
    return sign * (x - y);
  });
}

function mapKind(name) {
  return (live.sections.scores?.maps?.names ?? []).includes(name) ? "model" : "baseline";
}

function renderScores(view) {
  const { scores, maps, metrics } = scoreRows(view);
  const summary = view.summary;
  setText("scores-caption", scoresCaption(view), { title: "" });
  setText("n-fixations-pooled", String(summary?.n_fixations ?? 0));
  setText("n-participants", String(summary?.n_participants ?? 0));
  setText("participants-word", summary?.n_participants === 1 ? "participant" : "participants");
  setText("sigma", summary ? String(summary.heatmap_params.sigma_px) : "—");

  const table = $("score-table");
  const headRow = el("tr", {}, headerCell("map", "map", null));
  for (const metric of metrics) headRow.append(headerCell(metric, metric, LOWER_IS_BETTER.has(metric) ? "↓" : "↑"));
  table.tHead.replaceChildren(headRow);
  const bests = Object.fromEntries(metrics.map((m) => [m, best(maps.map((name) => scores[name][m]), m)]));
  // rows still showing the previous fixation's values while the server computes them
  const updating = new Set(view.summary?.updating ?? []);
  const stale = (name) => updating.has(name) || (scoreTarget() === "participant" && updating.has("participant_scores"));
  const rows = sortedMaps(scores, maps).map((name) => {
    const kind = mapKind(name);
    const row = el("tr", { "data-map": name, class: `${kind}${stale(name) ? " updating" : ""}`,
      title: stale(name) ? "updating: these are the values before the last fixation" : null },
    el("th", { scope: "row", title: kind }, name));
    for (const metric of metrics) {
      const value = scores[name][metric];
      row.append(el("td", {
        "data-map": name, "data-metric": metric, "data-value": isNumber(value) ? String(value) : "",
        class: isNumber(value) && value === bests[metric] ? "best" : null,
      }, fmt(value)));
    }
    return row;
  });
  const empty = summary?.pending ? "Scoring the pooled fixations of this image…"
    : scoreTarget() === "participant" && summary?.n_fixations
      ? `No fixation of ${summary.participant ?? "this participant"} used on this image yet.`
      : "No fixation on this image yet: scores appear with the first one.";
  setText("target-participant-name", summary?.participant ?? "participant");
  table.tBodies[0].replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { class: "muted", "data-testid": "scores-empty" }, empty))]));

  renderBarMetricChoices(metrics);
  renderBars(scores, sortedMaps(scores, maps));
  renderMapCaptions(scores);
}

// What the scores are computed from: during a trial, whether this trial's fixations are in yet.
function scoresCaption(view) {
  const summary = view.summary;
  if (!summary) return "none yet";
  const participants = `${summary.n_participants} participant${summary.n_participants === 1 ? "" : "s"}`;
  const fixations = isNumber(summary.n_fixations_used)
    ? `${summary.n_fixations_used} of ${summary.n_fixations} fixations used` : `${summary.n_fixations} fixations`;
  const scored = live.sections.scores?.trial_fixations;
  const when = !view.live ? "" : scored === 0 ? " · pooled before this trial" : isNumber(scored)
    ? ` · with ${scored} fixation${scored === 1 ? "" : "s"} of this trial` : "";
  return `image ${summary.image} · ${fixations} · ${participants}${when}`;
}

function headerCell(key, label, arrow) {
  const sorted = sortBy?.key === key;
  const cell = el("th", {
    scope: "col", "data-metric": key === "map" ? null : key, "data-sort-key": key,
    "aria-sort": sorted ? (descending(sortBy) ? "descending" : "ascending") : "none",
    title: arrow === null ? "sort by name" : `${arrow === "↓" ? "lower" : "higher"} is better`,
    class: sorted ? "sorted" : null,
  }, ...label.split("_").flatMap((part, i) => (i ? [el("wbr"), `_${part}`] : [part])));
  if (arrow !== null) cell.append(el("span", { class: "dir" }, arrow));
  cell.addEventListener("click", () => {
    sortBy = sorted ? { key, reversed: !sortBy.reversed } : { key, reversed: false };
    renderScores(currentView());
  });
  return cell;
}

function renderBarMetricChoices(metrics) {
  const select = $("bar-metric");
  const current = [...select.options].map((o) => o.value);
  if (current.join() !== metrics.join()) {
    select.replaceChildren(...metrics.map((m) => el("option", { value: m }, m)));
  }
  if (metrics.length && !metrics.includes(barMetric)) barMetric = metrics.includes("nss") ? "nss" : metrics[0];
  if (barMetric !== null) select.value = barMetric;
  const better = LOWER_IS_BETTER.has(barMetric) ? "lower" : "higher";
  setText("bar-direction", barMetric === null ? "" : `${better} is better`);
}

function renderBars(scores, maps) {
  const chart = $("bar-chart");
  const width = 480;
  const label = 120;
  const row = 22;
  const height = Math.max(maps.length, 1) * row + 8;
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  chart.replaceChildren();
  if (!barMetric || !maps.length) return;
  const values = maps.map((name) => scores[name][barMetric]);
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
        height: row - 6, class: `bar ${mapKind(name)}`, "data-testid": "bar", "data-map": name,
        "data-value": String(value) }));
    }
    chart.append(svg("text", { x: Math.max(x(0), isNumber(value) ? x(value) : 0) + 4, y: y + row / 2,
      class: "value", "dominant-baseline": "middle" }, fmt(value)));
  });
  chart.append(svg("line", { x1: x(0), x2: x(0), y1: 0, y2: height, class: "axis" }));
}

let shownMaps = null; // the image and map names the thumbnails were built for

// Model maps do not change during a session: the thumbnails are rebuilt only for another image.
function renderModelMaps(view) {
  const info = live.sections.scores?.maps ?? live.sections.health?.maps ?? { names: [], label: null };
  const key = JSON.stringify([view.image, info.names]);
  if (key !== shownMaps) {
    shownMaps = key;
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
  renderMapCaptions(scoreRows(view).scores);
}

function renderMapCaptions(scores) {
  for (const figure of document.querySelectorAll('[data-testid="model-map"]')) {
    const value = scores[figure.dataset.map]?.[barMetric];
    figure.querySelector(".score").textContent = barMetric && isNumber(value) ? `${barMetric} ${fmt(value)}` : "";
  }
}

// -- header, health, history ----------------------------------------------------------------------

function renderSession() {
  const session = live.sections.session ?? {};
  setText("participant", session.participant ?? "—");
  setText("session-id", session.session ? session.session.slice(0, 8) : "—", { title: session.session ?? "" });
  setText("tracker", session.tracker ?? "—");
  const total = session.n_trials ?? "?";
  const trial = isNumber(session.trial) ? `${session.trial + 1} / ${total}` : "—";
  setText("trial", session.ended ? `${trial} (session ${session.ended})` : trial);
}

function renderCountdown() {
  const trial = live.sections.trial?.trial ?? null;
  const node = $("time-left");
  setText("image-id", trial?.image ?? "—");
  const waiting = live.sections.session?.waiting ?? null;
  if (waiting !== null && (trial === null || trial.ended)) {
    node.textContent = `waiting: ${WAITING[waiting] ?? waiting}`;
    node.dataset.seconds = "0";
    return;
  }
  if (trial === null) {
    node.textContent = "—";
    delete node.dataset.seconds;
    return;
  }
  if (trial.ended) {
    node.textContent = trial.aborted ? "aborted" : "ended";
    node.dataset.seconds = "0";
    return;
  }
  const left = Math.max(0, trial.onset_server_time_s + trial.stimulus_duration_ms / 1000 - serverNowS());
  node.textContent = `${left.toFixed(1)} s`;
  node.dataset.seconds = left.toFixed(3);
}

const ms = (stats) => (stats && stats.n ? `${fmt(stats.p50, 1)} / ${fmt(stats.p99, 1)} ms` : "—");
const counts = (map) => Object.entries(map ?? {}).map(([k, v]) => `${k} ${v}`).join(", ");

function renderHealth() {
  const health = live.sections.health;
  if (!health) return;
  const stream = health.stream;
  let streamText = "no session yet";
  const disconnected = stream !== null && !stream.ended && health.connections === 0;
  if (stream !== null) {
    const silent = fmt(stream.silent_s, stream.alive ? 1 : 0);
    streamText = stream.ended ? "session ended"
      : disconnected ? `disconnected (no sender connected; last record ${silent} s ago)`
        : stream.alive ? `alive (last record ${silent} s ago)` : `SILENT for ${silent} s`;
  }
  setText("health-stream", streamText, { warn: disconnected || (stream !== null && !stream.alive && !stream.ended) });
  const rates = Object.entries(health.rates_per_s).map(([kind, rate]) =>
    el("span", { "data-kind": kind }, el("span", {}, kind), el("b", {}, `${rate.toFixed(1)}/s`)));
  $("health-rates").replaceChildren(...(rates.length ? rates : ["—"]));
  const receiver = health.receiver ?? {};
  setText("health-accepted", String(receiver.accepted ?? 0));
  setText("health-duplicates", String(receiver.duplicates ?? 0));
  // Gaps and replays are history; what matters now is whether records are still missing.
  const missing = stream?.missing ?? 0;
  const recovered = missing > 0 ? ` (${missing} missing now)` : (receiver.gaps ?? 0) > 0 ? " (recovered)" : "";
  setText("health-gaps", `${receiver.gaps ?? 0}${recovered}`, { warn: missing > 0 });
  setText("health-replays", `${receiver.replays ?? 0}${(receiver.replays ?? 0) > 0 && missing === 0 ? " (recovered)" : ""}`);
  const conflicts = receiver.conflicts ?? 0;
  setText("health-conflicts", conflicts ? `${conflicts}: records kept aside, see stream/conflicts` : "0",
    { warn: conflicts > 0, title: "records whose seq the server already held with other content" });
  setText("health-malformed", String(health.malformed_total),
    { title: counts(receiver.malformed), warn: health.malformed_total > 0 });
  const ignored = counts(health.ignored);
  setText("health-ignored", ignored || "0", { warn: ignored !== "" });
  const beats = health.latency_ms.n;
  setText("health-latency",
    beats ? `${ms(health.latency_ms)} (${beats} heartbeat${beats === 1 ? "" : "s"})` : "no heartbeat yet");
  setText("health-apply", ms(health.apply_ms));
  setText("health-score", `${ms(health.score_ms)} on ${health.scoring_device ?? "?"}`);
  renderTiming(health.timing);
  setText("health-clients", String(health.clients));
  setText("uptime", `up ${formatDuration(health.uptime_s)}`);
}

const WAITING = { calibration: "calibration", drift_correction: "drift correction", pause: "pause",
  confirm_quit: "quit confirmation" };

// Display timing of this session's trials: dropped frames only where the display has vsync.
function renderTiming(timing) {
  if (!timing) {
    setText("health-dropped", "no trial ended yet", { warn: false });
    setText("health-overruns", "—", { warn: false });
    return;
  }
  const measurable = timing.frame_timing === "vsync";
  setText("health-dropped", measurable ? String(timing.dropped_frames)
    : timing.frame_timing === "no_vsync" ? "not measurable (no vsync)" : "not reported",
  { warn: measurable && timing.dropped_frames > 0, title: `over ${timing.trials} trials of this session` });
  const last = timing.last_overrun;
  setText("health-overruns", timing.overruns ? `${timing.overruns} of ${timing.trials} trials (last: trial ` +
    `${last.trial + 1}, ${fmt(last.display_duration_ms, 0)} ms for ${fmt(last.requested_ms, 0)})` : `0 of ${timing.trials}`,
  { warn: timing.overruns > 0 });
}

function formatDuration(seconds) {
  const s = Math.floor(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
    : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

function renderMic() {
  const mic = live.sections.mic?.mic ?? null;
  const meter = document.querySelector(".meter");
  if (mic === null) {
    setText("mic", "no level yet");
    meter.hidden = true;
    return;
  }
  setText("mic", `rms ${fmt(mic.rms_dbfs, 1)} dBFS · peak ${fmt(mic.peak_dbfs, 1)} dBFS · xruns ${mic.xruns}`,
    { warn: mic.xruns > 0 || mic.peak_dbfs >= -1 });
  meter.hidden = false;
  const position = (dbfs) => `${Math.min(100, Math.max(0, ((dbfs + 60) / 60) * 100))}%`; // −60…0 dBFS
  meter.querySelector(".rms").style.width = isNumber(mic.rms_dbfs) ? position(mic.rms_dbfs) : "0";
  meter.querySelector(".peak").style.left = isNumber(mic.peak_dbfs) ? position(mic.peak_dbfs) : "0";
}

function renderHistory() {
  const history = live.sections.history;
  if (!history) return;
  const list = $("history-list");
  setText("history-count", `${history.images.length} of ${history.n_stimuli} stimuli`);
  const liveImage = live.sections.trial?.trial?.image ?? live.sections.scores?.image;
  const items = history.images.map((entry) => {
    const button = el("button", {
      type: "button", "data-testid": "history-item", "data-image": entry.image,
      class: [entry.image === liveImage ? "live" : "", entry.image === browse?.image ? "browsed" : ""].join(" "),
    }, el("span", { class: "name" }, entry.image),
    el("span", { class: "count" }, `${entry.n_fixations} fix · ${entry.n_participants} part.`));
    button.addEventListener("click", () => openImage(entry.image));
    return el("li", {}, button);
  });
  list.replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "No fixation yet.")]));
}

// The browsed image received fixations since it was fetched: fetch it again.
function refreshBrowsed() {
  const entry = live.sections.history?.images.find((item) => item.image === browse?.image);
  if (entry && entry.n_fixations !== browse.summary.n_fixations) openImage(browse.image);
}

async function openImage(image) {
  try {
    const response = await fetch(imagePath(image), { cache: "no-store" });
    if (!response.ok) throw new Error(`GET /api/images/${image}: HTTP ${response.status}`);
    const summary = await response.json();
    if (browse === null) {
      liveHeatmapLayer = document.querySelector('input[name="heat"]:checked').value;
      chooseHeatmap("pooled");
    }
    browse = { image, summary, version: ++browseVersion };
    showError(null);
  } catch (error) {
    showError(`Could not open image ${image}: ${error.message}`);
    return;
  }
  $("browse-banner").hidden = false;
  setText("browse-image", image);
  renderView();
  renderHistory();
}

function backToLive() {
  browse = null;
  $("browse-banner").hidden = true;
  chooseHeatmap(liveHeatmapLayer);
  renderView();
  renderHistory();
}

function showError(message) {
  const node = $("error");
  node.hidden = message === null;
  node.textContent = message ?? "";
}

function renderBanner() {
  const maps = live.sections.scores?.maps ?? live.sections.health?.maps;
  $("untrained-banner").hidden = !maps?.untrained;
  setText("weights-label", maps?.label ?? "");
}

// -- the live feed --------------------------------------------------------------------------------

function apply(message) {
  clockOffsets.push(message.server_time_s - Date.now() / 1000);
  if (clockOffsets.length > 20) clockOffsets.shift();
  const changed = new Set(Object.keys(message.sections));
  if (message.type === "snapshot") live.sections = {};
  Object.assign(live.sections, message.sections);
  if (changed.has("scores")) live.scoresVersion += 1; // a new scored state: heatmaps are redrawn
  if (changed.has("session")) {
    renderSession();
    renderCountdown();
  }
  if (changed.has("trial")) renderCountdown();
  if (changed.has("health")) renderHealth();
  if (changed.has("mic")) renderMic();
  if (changed.has("scores") || changed.has("health")) renderBanner();
  setText("n-fixations", String(live.sections.fixations?.fixations?.length ?? 0));
  if (changed.has("trial") || changed.has("scores")) {
    renderView();
  } else if (changed.has("fixations") || changed.has("gaze")) {
    renderOverlay();
  }
  if (changed.has("history") || changed.has("trial")) renderHistory();
  if (changed.has("history") && browse !== null) refreshBrowsed();
}

function setConnection(state, text) {
  const node = $("connection");
  node.dataset.state = state;
  node.textContent = text;
}

function connect(attempt = 0) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/ws`);
  let opened = false;
  setConnection("connecting", attempt ? `connecting (attempt ${attempt + 1})…` : "connecting…");
  socket.addEventListener("open", () => {
    opened = true;
    lastMessageMs = performance.now();
    setConnection("live", "● live");
  });
  socket.addEventListener("message", (event) => {
    lastMessageMs = performance.now();
    if ($("connection").dataset.state !== "live") setConnection("live", "● live");
    apply(JSON.parse(event.data));
  });
  socket.addEventListener("close", (event) => {
    const next = opened ? 0 : attempt + 1; // backoff grows only while connecting keeps failing
    const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** next) * (0.8 + 0.4 * Math.random());
    const why = event.reason ? ` (${event.reason})` : "";
    setConnection("reconnecting", `disconnected${why}: retrying in ${(delay / 1000).toFixed(1)} s`);
    lastMessageMs = null;
    setTimeout(() => connect(next), delay);
  });
}

function tick() {
  renderCountdown();
  if (live.sections.gaze?.gaze) renderOverlay(); // the cursor greys out when gaze stops
  const state = $("connection").dataset.state;
  if (lastMessageMs !== null && (state === "live" || state === "stalled")) {
    const silent = (performance.now() - lastMessageMs) / 1000;
    if (silent > STALL_AFTER_S) setConnection("stalled", `● no update for ${silent.toFixed(0)} s`);
  }
}

function start() {
  const stimulus = $("stimulus");
  stimulus.addEventListener("load", () => {
    // a late load of an earlier image's file must not show it
    if (stimulus.getAttribute("src") === `${imagePath(shownImage)}/stimulus`) stimulus.dataset.loaded = "true";
    renderView();
  });
  watchHeatmap("heatmap-pooled");
  watchHeatmap("heatmap-participant");
  for (const input of document.querySelectorAll('input[name="heat"]')) input.addEventListener("change", applyLayers);
  for (const input of document.querySelectorAll('input[name="target"]')) {
    input.addEventListener("change", () => renderScores(currentView()));
  }
  $("show-fixations").addEventListener("change", renderOverlay);
  $("show-gaze").addEventListener("change", renderOverlay);
  $("bar-metric").addEventListener("change", (event) => {
    barMetric = event.target.value;
    renderScores(currentView());
  });
  $("back-to-live").addEventListener("click", backToLive);
  document.addEventListener("keydown", (event) => { if (event.key === "Escape" && browse !== null) backToLive(); });
  new ResizeObserver(renderOverlay).observe($("stage"));
  setInterval(tick, 200);
  connect();
}

start();
