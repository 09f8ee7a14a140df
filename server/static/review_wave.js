// The review page's trial view: the waveform (the server's min/max envelope of the WAV), each
// utterance as a span with draggable onset and offset marks, the time axis, and playback.
// Times are ms from the image onset; the WAV starts at detail.offset_ms.

import { $, el } from "./dom.js";

const MIN_LENGTH_MS = 10; // an utterance never gets shorter than this while dragged
const NEW_LENGTH_MS = 300; // length of an utterance added by a double click
const PLAY_MARGIN_MS = 150; // an utterance plays with this much before and after it
const round = (ms) => Math.round(ms * 10) / 10;

export class WaveEditor {
  /** `onChange(index)` is called whenever the list changes (index: the utterance, or null). */
  constructor(onChange) {
    this.detail = null;
    this.utterances = []; // {onset_ms, offset_ms, word, name_class}
    this.onChange = onChange;
    this.stopAtS = null; // playback pauses at this WAV time
  }

  start() {
    const wave = $("wave");
    new ResizeObserver(() => this.render()).observe(wave);
    wave.addEventListener("dblclick", (event) => {
      if (this.detail === null || event.target.closest(".mark")) return;
      this.add(this.msAt(event.clientX));
    });
    wave.addEventListener("click", (event) => {
      if (this.detail === null || event.target.closest(".mark") || event.detail > 1) return;
      this.play(this.msAt(event.clientX));
    });
    $("audio").addEventListener("play", () => this.follow());
  }

  show(detail, utterances, audioUrl) {
    this.stop();
    this.detail = detail;
    this.utterances = utterances;
    const audio = $("audio");
    if (audio.getAttribute("src") !== audioUrl) audio.src = audioUrl;
    this.render();
  }

  get t0() { return this.detail.offset_ms; }
  get t1() { return this.detail.offset_ms + this.detail.duration_ms; }

  /** Left edge of time `ms` as a percentage of the waveform's width. */
  percent(ms) { return ((ms - this.t0) / (this.t1 - this.t0)) * 100; }

  /** The time under a pointer at `clientX`, within the recording. */
  msAt(clientX) {
    const box = $("wave").getBoundingClientRect();
    const ms = this.t0 + ((clientX - box.left) / box.width) * (this.t1 - this.t0);
    return Math.min(this.t1, Math.max(this.t0, ms));
  }

  render() {
    $("wave-empty").hidden = this.detail !== null;
    this.drawWaveform();
    this.renderMarks();
    this.renderAxis();
  }

  drawWaveform() {
    const canvas = $("waveform");
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(canvas.clientWidth * ratio);
    const height = Math.round(canvas.clientHeight * ratio);
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    context.clearRect(0, 0, width, height);
    if (this.detail === null) return;
    const { min, max } = this.detail.envelope;
    const peak = Math.max(1e-4, ...max.map(Math.abs), ...min.map(Math.abs));
    const scale = (0.45 * height) / peak; // the loudest sample fills 90 % of the height
    context.fillStyle = "#4a6fa5";
    for (let x = 0; x < width; x += 1) {
      const first = Math.floor((x / width) * min.length);
      const last = Math.max(first + 1, Math.floor(((x + 1) / width) * min.length));
      let low = Infinity;
      let high = -Infinity;
      for (let i = first; i < last; i += 1) {
        low = Math.min(low, min[i]);
        high = Math.max(high, max[i]);
      }
      const top = height / 2 - high * scale;
      context.fillRect(x, top, 1, Math.max(1, (high - low) * scale));
    }
  }

  renderAxis() {
    const axis = $("axis");
    if (this.detail === null) {
      axis.replaceChildren();
      return;
    }
    const step = this.t1 - this.t0 > 3000 ? 500 : 250;
    const ticks = [];
    for (let ms = Math.ceil(this.t0 / step) * step; ms <= this.t1; ms += step) {
      ticks.push(el("span", { class: "tick", style: `left: ${this.percent(ms)}%` }, `${ms}`));
    }
    axis.replaceChildren(...ticks);
  }

  renderMarks() {
    const marks = $("marks");
    if (this.detail === null) {
      marks.replaceChildren();
      return;
    }
    const nodes = this.detail.automatic.map((u) => el("div", {
      class: "auto-span", "data-testid": "auto-span",
      style: `left: ${this.percent(u.onset_ms)}%; width: ${this.percent(u.offset_ms) - this.percent(u.onset_ms)}%`,
      title: `automatic: ${round(u.onset_ms)}–${round(u.offset_ms)} ms ${u.word}`,
    }));
    this.utterances.forEach((u, index) => {
      nodes.push(el("div", {
        class: "span", "data-testid": "span", "data-utterance": index,
        style: `left: ${this.percent(u.onset_ms)}%; width: ${this.percent(u.offset_ms) - this.percent(u.onset_ms)}%`,
      }, el("span", { class: "label" }, `${index + 1}${u.word ? ` ${u.word}` : ""}`)));
      for (const edge of ["onset", "offset"]) nodes.push(this.mark(index, edge));
    });
    marks.replaceChildren(...nodes);
  }

  /** The draggable mark of one utterance's onset or offset (also moved with the arrow keys). */
  mark(index, edge) {
    const value = this.utterances[index][`${edge}_ms`];
    const node = el("div", {
      class: `mark ${edge}`, "data-testid": `mark-${edge}`, "data-utterance": index, "data-ms": String(value),
      tabindex: "0", role: "slider", "aria-label": `utterance ${index + 1} ${edge}`, "aria-valuenow": String(value),
      style: `left: ${this.percent(value)}%`, title: `${edge} ${value} ms`,
    });
    node.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      node.setPointerCapture(event.pointerId);
      node.classList.add("dragging");
      const move = (moved) => this.moveEdge(index, edge, this.msAt(moved.clientX), node);
      const end = () => {
        node.removeEventListener("pointermove", move);
        node.classList.remove("dragging");
        this.renderMarks();
        this.onChange(index);
      };
      node.addEventListener("pointermove", move);
      node.addEventListener("pointerup", end, { once: true });
      node.addEventListener("pointercancel", end, { once: true });
    });
    node.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      event.preventDefault();
      const step = (event.shiftKey ? 10 : 1) * (event.key === "ArrowLeft" ? -1 : 1);
      this.moveEdge(index, edge, this.utterances[index][`${edge}_ms`] + step, node);
      this.onChange(index);
    });
    return node;
  }

  /** Set one edge, kept inside the recording and at least MIN_LENGTH_MS from the other edge. */
  moveEdge(index, edge, ms, node = null) {
    const u = this.utterances[index];
    const value = edge === "onset"
      ? Math.min(Math.max(ms, this.t0), u.offset_ms - MIN_LENGTH_MS)
      : Math.max(Math.min(ms, this.t1), u.onset_ms + MIN_LENGTH_MS);
    this.utterances[index] = { ...u, [`${edge}_ms`]: round(value) };
    if (node === null) {
      this.renderMarks();
      return;
    }
    // while dragging, move the mark and its span only: the node under the pointer must survive
    const updated = this.utterances[index];
    node.style.left = `${this.percent(updated[`${edge}_ms`])}%`;
    node.dataset.ms = String(updated[`${edge}_ms`]);
    node.setAttribute("aria-valuenow", node.dataset.ms);
    const span = $("marks").querySelector(`.span[data-utterance="${index}"]`);
    span.style.left = `${this.percent(updated.onset_ms)}%`;
    span.style.width = `${this.percent(updated.offset_ms) - this.percent(updated.onset_ms)}%`;
    this.onChange(index, { dragging: true });
  }

  add(ms) {
    const onset = round(Math.min(ms, this.t1 - MIN_LENGTH_MS));
    const utterance = { onset_ms: onset, offset_ms: round(Math.min(onset + NEW_LENGTH_MS, this.t1)), word: "", name_class: "" };
    this.utterances.push(utterance);
    this.utterances.sort((a, b) => a.onset_ms - b.onset_ms);
    this.renderMarks();
    this.onChange(null);
  }

  remove(index) {
    this.utterances.splice(index, 1);
    this.renderMarks();
    this.onChange(null);
  }

  // -- playback ------------------------------------------------------------------------------------

  /** Play from `fromMs` (to `untilMs`, or the end). */
  play(fromMs = this.t0, untilMs = null) {
    const audio = $("audio");
    audio.currentTime = Math.max(0, (fromMs - this.t0) / 1000);
    this.stopAtS = untilMs === null ? null : (untilMs - this.t0) / 1000;
    audio.play().catch(() => {}); // a browser without an audio output refuses: nothing to show
  }

  playUtterance(index) {
    const u = this.utterances[index];
    this.play(u.onset_ms - PLAY_MARGIN_MS, u.offset_ms + PLAY_MARGIN_MS);
  }

  stop() {
    $("audio").pause();
    $("playhead").hidden = true;
  }

  /** Move the playhead while the audio plays; pause at stopAtS. */
  follow() {
    const audio = $("audio");
    const playhead = $("playhead");
    const step = () => {
      if (audio.paused || this.detail === null) {
        playhead.hidden = true;
        return;
      }
      if (this.stopAtS !== null && audio.currentTime >= this.stopAtS) {
        audio.pause();
        playhead.hidden = true;
        return;
      }
      playhead.hidden = false;
      playhead.style.left = `${this.percent(this.t0 + audio.currentTime * 1000)}%`;
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }
}
