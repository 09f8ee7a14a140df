// The dashboard's state: the live hub's sections, the browsed image, the server clock, and the
// scoring registries the server sends (metric titles and directions, map kinds). Views read it;
// only the wiring (dashboard.js) changes it.

export class Store {
  constructor() {
    this.sections = {}; // the hub's sections, latest of each (server/sections.py)
    this.scoresVersion = 0; // counts scored states: heatmap URLs change with it
    this.browse = null; // {image, summary, version} while the history browser shows an image
    this.browseVersion = 0;
    this.clockOffsets = []; // server_time_s - browser time (s), recent messages
  }

  /** Take one WebSocket message; return the names of the sections it changed. */
  apply(message) {
    this.clockOffsets.push(message.server_time_s - Date.now() / 1000);
    if (this.clockOffsets.length > 20) this.clockOffsets.shift();
    const changed = new Set(Object.keys(message.sections));
    if (message.type === "snapshot") this.sections = {};
    Object.assign(this.sections, message.sections);
    if (changed.has("scores")) this.scoresVersion += 1; // a new scored state: heatmaps are redrawn
    return changed;
  }

  // A message's server_time_s minus its arrival time is the clock offset less the network delay,
  // so the largest recent one is the best estimate of the server-minus-browser offset.
  serverNowS() {
    const offset = this.clockOffsets.length ? Math.max(...this.clockOffsets) : 0;
    return Date.now() / 1000 + offset;
  }

  startBrowsing(image, summary) {
    this.browse = { image, summary, version: ++this.browseVersion };
  }

  stopBrowsing() {
    this.browse = null;
  }

  /** The image, its scored summary and the version of its heatmaps: the browsed image, or the live one. */
  currentView() {
    if (this.browse !== null) {
      const { image, summary, version } = this.browse;
      return { image, summary, version: `b${version}`, live: false };
    }
    const trial = this.sections.trial?.trial ?? null;
    const scores = this.sections.scores ?? null;
    const image = trial?.image ?? scores?.image ?? null;
    const summary = scores && scores.image === image ? scores.summary : null;
    return { image, summary, version: `l${this.scoresVersion}`, live: true, trial };
  }

  /** The image the live view shows (the trial's, else the scored one). */
  liveImage() {
    return this.sections.trial?.trial?.image ?? this.sections.scores?.image;
  }

  /** Which model maps are scored (names, weights label, untrained, thumbnail key). */
  mapsInfo() {
    return this.sections.scores?.maps ?? this.sections.health?.maps ?? { names: [], label: null };
  }

  // -- the registries (analysis/registry.py), sent with the scores ----------------------------------

  metricInfo(name) {
    return (this.sections.scores?.metrics ?? []).find((metric) => metric.name === name)
      ?? { name, title: name, higher_is_better: true };
  }

  higherIsBetter(name) {
    return this.metricInfo(name).higher_is_better;
  }

  /** "baseline", "human" or "cnn" (a map store's map). */
  mapKind(name) {
    return this.sections.scores?.map_kinds?.[name] ?? "cnn";
  }
}
