// The stage: the stimulus, the pooled and participant heatmaps over it, and the live trial's
// fixations and gaze drawn in image pixels scaled to the stage.

import { $, imagePath } from "./dom.js";

const GAZE_FRESH_S = 0.5;

export function imageShape(view) {
  if (view.summary?.shape) return { height: view.summary.shape[0], width: view.summary.shape[1] };
  if (view.trial && view.trial.image === view.image) {
    return { height: view.trial.image_height_px, width: view.trial.image_width_px };
  }
  return null;
}

function heatmapChoice() {
  return document.querySelector('input[name="heat"]:checked').value;
}

export class Stage {
  constructor(store) {
    this.store = store;
    this.shownImage = null; // the stimulus currently loaded
    this.liveHeatmapLayer = null; // the live view's heatmap choice, restored when browsing ends
  }

  /** Watch the stage's images and controls (once, at start). */
  start() {
    const stimulus = $("stimulus");
    stimulus.addEventListener("load", () => {
      // a late load of an earlier image's file must not show it
      if (stimulus.getAttribute("src") === `${imagePath(this.shownImage)}/stimulus`) stimulus.dataset.loaded = "true";
      this.render(this.store.currentView());
    });
    for (const testid of ["heatmap-pooled", "heatmap-participant"]) {
      const image = $(testid);
      image.addEventListener("load", () => { image.dataset.loaded = "true"; this.applyLayers(); });
      image.addEventListener("error", () => { image.dataset.loaded = "false"; this.applyLayers(); });
    }
    for (const input of document.querySelectorAll('input[name="heat"]')) {
      input.addEventListener("change", () => this.applyLayers());
    }
    $("show-fixations").addEventListener("change", () => this.renderOverlay());
    $("show-gaze").addEventListener("change", () => this.renderOverlay());
    new ResizeObserver(() => this.renderOverlay()).observe($("stage"));
  }

  render(view) {
    const shape = imageShape(view);
    const stimulus = $("stimulus");
    $("stage-empty").hidden = view.image !== null;
    stimulus.hidden = view.image === null || stimulus.dataset.loaded !== "true";
    if (shape) $("stage").style.aspectRatio = `${shape.width} / ${shape.height}`;
    if (view.image !== this.shownImage) {
      // Nothing of the previous image stays on the stage: every layer waits for its new source.
      this.shownImage = view.image;
      stimulus.dataset.loaded = "false";
      for (const testid of ["heatmap-pooled", "heatmap-participant"]) {
        $(testid).removeAttribute("src");
        $(testid).dataset.loaded = "false";
      }
      if (view.image !== null) stimulus.src = `${imagePath(view.image)}/stimulus`;
    }
    stimulus.dataset.image = view.image ?? "";
    $("stage-title").textContent = view.live ? "Current image" : `Image ${view.image} (history)`;
    this.renderHeatmaps(view);
    this.renderOverlay();
  }

  // The version in the query changes with every scored state, so the browser fetches the redrawn map.
  renderHeatmaps(view) {
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
    this.applyLayers();
  }

  chooseHeatmap(layer) {
    document.querySelector(`input[name="heat"][value="${layer}"]`).checked = true;
    this.applyLayers();
  }

  /** Browsing shows the pooled heatmap; the live view's choice comes back afterwards. */
  enterBrowsing() {
    this.liveHeatmapLayer = heatmapChoice();
    this.chooseHeatmap("pooled");
  }

  leaveBrowsing() {
    this.chooseHeatmap(this.liveHeatmapLayer);
  }

  // A heatmap is shown when chosen and loaded (the API answers 204 while it has no fixation).
  applyLayers() {
    const choice = heatmapChoice();
    for (const kind of ["pooled", "participant"]) {
      const image = $(`heatmap-${kind}`);
      image.hidden = !(choice === kind && image.dataset.loaded === "true" && image.hasAttribute("src"));
    }
  }

  renderOverlay() {
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
    const view = this.store.currentView();
    const shape = imageShape(view);
    if (!view.live || !view.trial || view.trial.image !== view.image || !shape) return;
    const scale = width / shape.width;
    const { fixations, gaze } = this.store.sections;
    if ($("show-fixations").checked && fixations?.image === view.image) drawFixations(context, fixations.fixations, scale);
    if ($("show-gaze").checked && gaze?.gaze) drawGaze(context, gaze.gaze, scale, this.store.serverNowS());
  }
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

function drawGaze(context, gaze, scale, serverNowS) {
  const fresh = serverNowS - gaze.server_time_s < GAZE_FRESH_S;
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
