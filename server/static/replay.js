// The trial replay page (issue 15): any trial of a session the server received, from its journal
// (GET /api/replay/…, server/replay.py). The image with the fixations made so far (numbered, the
// current one filled) and the gaze with a short trail, on a timeline that plays at a chosen speed
// or is scrubbed; under it the gaze x/y traces with the fixations shaded, the pupil, the
// microphone level and the trial's audio waveform, with the voice onsets marked across them.
// While the audio plays it is the timeline's clock (so sound and picture stay together at any
// speed); outside the recording the page's own clock runs. Times are ms from the image onset.
// ?session=…&trial=… (trial from 0) opens a trial; the URL follows the choice, so it can be shared.

import { $, el, fmt, imagePath, isNumber, showError } from "./dom.js";

const TRAIL_MS = 300; // the gaze trail drawn behind the current sample
const STEP_MS = 100;
const SYNC_S = 0.05; // the audio is moved when it is this far from the timeline
const COLOURS = {
  x: "#2f6fde", y: "#c4320a", pupil: "#1a7f37", mic: "#7a5af8", audio: "#475467", onset: "#e8590c",
  fixation: "rgba(47,111,222,0.12)",
};

const state = {
  sessions: [], trial: null, tMs: 0, startMs: 0, endMs: 0, playing: false, lastFrameMs: null, audioError: null,
};

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`GET ${url}: ${answer.detail ?? `HTTP ${response.status}`}`);
  return answer;
}

// -- time --------------------------------------------------------------------------------------------

/** Index of the last sample at or before t (-1: none), by bisection over the sorted times. */
function lastAtOrBefore(times, t) {
  let low = 0;
  let high = times.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (times[middle] <= t) low = middle + 1;
    else high = middle;
  }
  return low - 1;
}

function setTime(tMs) {
  state.tMs = Math.min(state.endMs, Math.max(state.startMs, tMs));
  $("replay-time").value = String(Math.round(state.tMs));
  draw();
}

/** A time chosen by the user (keys, slider, traces): the audio follows. */
function seek(tMs) {
  setTime(tMs);
  syncAudio();
}

function setPlaying(playing) {
  state.playing = playing && state.trial !== null;
  state.lastFrameMs = null;
  $("replay-play").textContent = state.playing ? "❚❚ pause" : "▶ play";
  if (state.playing && state.tMs >= state.endMs) setTime(state.startMs);
  syncAudio();
  if (state.playing) requestAnimationFrame(tick);
}

function tick(nowMs) {
  if (!state.playing) return;
  const player = $("replay-player");
  if (audioPlaying()) { // the audio is the clock
    setTime(state.trial.audio.offset_ms + player.currentTime * 1000);
  } else if (state.lastFrameMs !== null) {
    setTime(state.tMs + (nowMs - state.lastFrameMs) * speed());
    if (player.paused && inAudio(state.tMs)) syncAudio(); // the recording starts here
  }
  state.lastFrameMs = nowMs;
  if (state.tMs >= state.endMs) setPlaying(false);
  else requestAnimationFrame(tick);
}

// -- the audio -------------------------------------------------------------------------------------

const speed = () => Number($("replay-speed").value);

/** Whether the trial's recording covers time t (ms from the onset). */
function inAudio(tMs) {
  const audio = state.trial?.audio;
  return Boolean(audio) && tMs >= audio.offset_ms && tMs < audio.offset_ms + audio.duration_ms;
}

function audioPlaying() {
  const player = $("replay-player");
  return !player.paused && !player.ended && player.readyState >= 2 && inAudio(state.tMs);
}

/** Play the recording from the timeline's time while the timeline plays over it; pause it otherwise. */
function syncAudio() {
  const player = $("replay-player");
  if (!state.playing || !inAudio(state.tMs) || state.audioError !== null) {
    if (!player.paused) player.pause();
    return;
  }
  player.playbackRate = speed();
  const seconds = (state.tMs - state.trial.audio.offset_ms) / 1000;
  if (Math.abs(player.currentTime - seconds) > SYNC_S) player.currentTime = seconds;
  if (player.paused) {
    player.play().catch((error) => { // the page's clock goes on without sound
      if (error.name === "AbortError") return; // paused or another trial loaded meanwhile
      state.audioError = error.message;
      $("replay-audio").textContent = `${describeAudio(state.trial)} (cannot play here: ${error.message})`;
    });
  }
}

function describeAudio(trial) {
  const audio = trial.audio;
  if (!audio) return trial.no_audio ?? "none";
  const from = audio.source === "stream" ? "streamed" : "the session folder's WAV";
  return `${from}, ${fmt(audio.duration_ms / 1000, 2)} s at ${fmt(audio.rate_hz / 1000, 1)} kHz, ` +
    `from ${fmt(audio.offset_ms, 0)} ms`;
}

function describeVoice(trial) {
  const audio = trial.audio;
  if (!audio) return "—";
  if (audio.detector.startsWith("none")) return `not detected: ${audio.detector}`;
  const onsets = audio.utterances.map((utterance) => fmt(utterance.onset_ms, 0));
  return onsets.length ? `${onsets.join(", ")} ms` : "none found";
}

// -- the image and its overlay ---------------------------------------------------------------------

function drawOverlay() {
  const trial = state.trial;
  const canvas = $("replay-overlay");
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const unit = Math.max(trial.image_width_px, trial.image_height_px) / 400; // line widths in image px
  const shown = trial.fixations.filter((fixation) => fixation.start_ms <= state.tMs);
  context.lineWidth = unit;
  context.strokeStyle = "rgba(255,255,255,0.85)";
  context.beginPath();
  shown.forEach((fixation, index) => {
    if (index) context.lineTo(fixation.x_image_px, fixation.y_image_px);
    else context.moveTo(fixation.x_image_px, fixation.y_image_px);
  });
  context.stroke();
  context.font = `${Math.round(7 * unit)}px system-ui, sans-serif`;
  context.textAlign = "center";
  context.textBaseline = "middle";
  shown.forEach((fixation, index) => {
    const current = state.tMs <= fixation.end_ms;
    const radius = (4 + Math.sqrt(Math.max(fixation.duration_ms, 0)) / 2.5) * unit;
    context.beginPath();
    context.arc(fixation.x_image_px, fixation.y_image_px, radius, 0, 2 * Math.PI);
    context.fillStyle = current ? "rgba(255,140,0,0.75)" : "rgba(47,111,222,0.45)";
    context.fill();
    context.strokeStyle = "white";
    context.stroke();
    context.fillStyle = "white";
    context.fillText(String(index + 1), fixation.x_image_px, fixation.y_image_px);
  });
  canvas.dataset.fixationsShown = String(shown.length);
  drawGaze(context, unit);
}

function drawGaze(context, unit) {
  const gaze = state.trial.gaze;
  const canvas = $("replay-overlay");
  const last = lastAtOrBefore(gaze.t_ms, state.tMs);
  const visible = (i) => isNumber(gaze.x_image_px[i]) && isNumber(gaze.y_image_px[i]);
  context.strokeStyle = "rgba(255,0,80,0.6)";
  context.lineWidth = 1.5 * unit;
  context.beginPath();
  let drawing = false;
  for (let i = last; i >= 0 && gaze.t_ms[i] > state.tMs - TRAIL_MS; i--) {
    if (!visible(i)) { drawing = false; continue; }
    if (drawing) context.lineTo(gaze.x_image_px[i], gaze.y_image_px[i]);
    else context.moveTo(gaze.x_image_px[i], gaze.y_image_px[i]);
    drawing = true;
  }
  context.stroke();
  const now = last >= 0 && visible(last) ? last : -1;
  canvas.dataset.gazeX = now >= 0 ? gaze.x_image_px[now].toFixed(1) : "";
  canvas.dataset.gazeY = now >= 0 ? gaze.y_image_px[now].toFixed(1) : "";
  $("replay-gaze").textContent = now >= 0
    ? `${fmt(gaze.x_image_px[now], 0)}, ${fmt(gaze.y_image_px[now], 0)} px (at ${fmt(gaze.t_ms[now], 0)} ms)` : "—";
  if (now < 0) return;
  context.beginPath();
  context.arc(gaze.x_image_px[now], gaze.y_image_px[now], 5 * unit, 0, 2 * Math.PI);
  context.fillStyle = "rgba(255,0,80,0.9)";
  context.fill();
}

// -- the traces ------------------------------------------------------------------------------------

/** Lanes of the traces: each a series over the trial's time with its value range (null: none). */
function lanes(trial) {
  const finite = (values) => values.filter(isNumber);
  const range = (values) => (values.length ? [Math.min(...values), Math.max(...values)] : null);
  const widen = ([low, high]) => (high > low ? [low, high] : [low - 1, high + 1]);
  const pupil = finite(trial.gaze.pupil);
  const mic = finite(trial.mic.rms_dbfs);
  return [
    { name: "x (px)", colour: COLOURS.x, t: trial.gaze.t_ms, values: trial.gaze.x_image_px, range: [0, trial.image_width_px], fixations: true },
    { name: "y (px)", colour: COLOURS.y, t: trial.gaze.t_ms, values: trial.gaze.y_image_px, range: [0, trial.image_height_px], fixations: true },
    { name: "pupil", colour: COLOURS.pupil, t: trial.gaze.t_ms, values: trial.gaze.pupil, range: pupil.length ? widen(range(pupil)) : null,
      missing: "pupil: not streamed" },
    { name: "mic dBFS", colour: COLOURS.mic, t: trial.mic.t_ms, values: trial.mic.rms_dbfs, range: mic.length ? widen([Math.min(-80, ...mic), 0]) : null,
      missing: "microphone: no level" },
    { name: "audio", colour: COLOURS.audio, envelope: trial.audio?.envelope ?? null, offsetMs: trial.audio?.offset_ms ?? 0,
      range: trial.audio ? [-1, 1] : null, missing: "audio: none" },
  ];
}

/** The waveform: each envelope column's min to max, scaled to the recording's peak. */
function drawEnvelope(context, lane, xOf, top, laneHeight) {
  const { min, max, bin_ms: binMs } = lane.envelope;
  const peak = min.reduce((most, low, i) => Math.max(most, -low, max[i]), 0.01);
  const middle = top + laneHeight / 2;
  const half = (laneHeight - 8) / 2;
  context.strokeStyle = lane.colour;
  context.lineWidth = 1;
  context.beginPath();
  min.forEach((low, i) => {
    const x = xOf(lane.offsetMs + (i + 0.5) * binMs);
    context.moveTo(x, middle - (max[i] / peak) * half);
    context.lineTo(x, middle - (low / peak) * half + 0.5);
  });
  context.stroke();
}

/** The voice onsets: a line across every lane, numbered. */
function drawOnsets(context, xOf, height) {
  const utterances = state.trial.audio?.utterances ?? [];
  context.strokeStyle = COLOURS.onset;
  context.fillStyle = COLOURS.onset;
  context.lineWidth = 1.5;
  context.setLineDash([4, 3]);
  utterances.forEach((utterance, index) => {
    const x = xOf(utterance.onset_ms);
    context.beginPath();
    context.moveTo(x, 0);
    context.lineTo(x, height);
    context.stroke();
    context.fillText(`▾${index + 1}`, x + 3, 8);
  });
  context.setLineDash([]);
}

function drawTraces() {
  const canvas = $("replay-traces");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  const trial = state.trial;
  const all = lanes(trial);
  const laneHeight = height / all.length;
  const left = 64;
  const xOf = (t) => left + ((t - state.startMs) / Math.max(1, state.endMs - state.startMs)) * (width - left - 6);
  context.font = "11px system-ui, sans-serif";
  context.textBaseline = "middle";
  all.forEach((lane, number) => {
    const top = number * laneHeight;
    context.fillStyle = "#667085";
    context.fillText(lane.name, 4, top + laneHeight / 2);
    context.strokeStyle = "#d9dee7";
    context.strokeRect(left, top + 2, width - left - 6, laneHeight - 4);
    if (lane.fixations) {
      context.fillStyle = COLOURS.fixation;
      for (const fixation of trial.fixations) {
        context.fillRect(xOf(fixation.start_ms), top + 2, xOf(fixation.end_ms) - xOf(fixation.start_ms), laneHeight - 4);
      }
    }
    if (lane.range === null) {
      context.fillStyle = "#98a2b3";
      context.fillText(lane.missing, left + 8, top + laneHeight / 2);
      return;
    }
    if (lane.envelope) {
      drawEnvelope(context, lane, xOf, top, laneHeight);
      return;
    }
    const [low, high] = lane.range;
    const yOf = (value) => top + 4 + (1 - (value - low) / (high - low)) * (laneHeight - 8);
    context.strokeStyle = lane.colour;
    context.lineWidth = 1.25;
    context.beginPath();
    let drawing = false;
    lane.t.forEach((t, i) => {
      const value = lane.values[i];
      if (!isNumber(value)) { drawing = false; return; }
      if (drawing) context.lineTo(xOf(t), yOf(value));
      else context.moveTo(xOf(t), yOf(value));
      drawing = true;
    });
    context.stroke();
  });
  drawOnsets(context, xOf, height);
  context.strokeStyle = "#1b2330";
  context.lineWidth = 1;
  context.beginPath();
  context.moveTo(xOf(state.tMs), 0);
  context.lineTo(xOf(state.tMs), height);
  context.stroke();
  canvas.dataset.lanes = all.filter((lane) => lane.range !== null).map((lane) => lane.name).join(",");
  canvas.dataset.onsets = (trial.audio?.utterances ?? []).map((utterance) => Math.round(utterance.onset_ms)).join(",");
  canvas.onpointerdown = (event) => scrubFrom(event, xOf, left, width);
}

function scrubFrom(event, xOf, left, width) {
  const canvas = $("replay-traces");
  const timeAt = (clientX) => {
    const x = clientX - canvas.getBoundingClientRect().left;
    return state.startMs + ((x - left) / (width - left - 6)) * (state.endMs - state.startMs);
  };
  setPlaying(false);
  seek(timeAt(event.clientX));
  canvas.setPointerCapture(event.pointerId);
  canvas.onpointermove = (move) => seek(timeAt(move.clientX));
  canvas.onpointerup = () => { canvas.onpointermove = null; };
}

function draw() {
  if (state.trial === null) return;
  drawOverlay();
  drawTraces();
  $("replay-clock").textContent = `${fmt(state.tMs, 0)} / ${fmt(state.endMs, 0)} ms`;
  $("replay-time").dataset.tMs = state.tMs.toFixed(1);
  const shown = Number($("replay-overlay").dataset.fixationsShown);
  $("replay-fixations").textContent = `${shown} of ${state.trial.fixations.length} so far`;
}

// -- choosing a trial ------------------------------------------------------------------------------

function describe(trial) {
  const shown = isNumber(trial.shown_ms) ? `${fmt(trial.shown_ms, 0)} ms of ${fmt(trial.stimulus_duration_ms, 0)}`
    : `running (${fmt(trial.stimulus_duration_ms, 0)} ms planned)`;
  $("replay-title").textContent = `${trial.participant} · trial ${trial.trial + 1}`;
  $("replay-image").textContent = `${trial.image} (${trial.image_width_px}×${trial.image_height_px})`;
  $("replay-shown").textContent = trial.aborted ? `${shown}, ABORTED (run again)` : shown;
  const drift = trial.drift;
  $("replay-drift").textContent = drift ? `${fmt(drift.offset_deg, 2)}° ${drift.outcome}` +
    (drift.attempts > 1 ? ` after ${drift.attempts} attempts` : "") : "—";
  const quality = trial.quality;
  $("replay-quality").textContent = quality && isNumber(quality.track_loss)
    ? `${fmt(quality.track_loss * 100, 0)} % of ${quality.samples} samples, ${quality.blinks} blink${quality.blinks === 1 ? "" : "s"}`
    : "—";
  $("replay-audio").textContent = describeAudio(trial);
  $("replay-voice").textContent = describeVoice(trial);
  $("replay-voice").title = trial.audio?.detector ?? "";
  const notes = trial.notes.map((note) => el("li", { "data-testid": "replay-note" },
    [note.kind === "text" ? "" : note.kind.replaceAll("_", " "), note.text].filter(Boolean).join(": ")));
  $("replay-notes").replaceChildren(...(notes.length ? notes : [el("li", { class: "muted" }, "none")]));
}

async function openTrial(session, trial) {
  setPlaying(false);
  try {
    const data = await getJson(`/api/replay/sessions/${encodeURIComponent(session)}/trials/${trial}`);
    state.trial = data;
    const last = (values) => (values.length ? values[values.length - 1] : 0);
    state.startMs = Math.min(0, data.gaze.t_ms[0] ?? 0);
    state.endMs = Math.max(data.shown_ms ?? data.stimulus_duration_ms, last(data.gaze.t_ms),
      ...data.fixations.map((fixation) => fixation.end_ms), data.audio ? data.audio.offset_ms + data.audio.duration_ms : 0);
    state.audioError = null;
    const player = $("replay-player");
    const path = `/api/replay/sessions/${encodeURIComponent(session)}/trials/${trial}/audio.wav`;
    if (data.audio) player.src = path;
    else player.removeAttribute("src");
    player.load();
    const slider = $("replay-time");
    slider.min = String(Math.floor(state.startMs));
    slider.max = String(Math.ceil(state.endMs));
    const image = $("replay-stimulus");
    const canvas = $("replay-overlay");
    canvas.width = data.image_width_px;
    canvas.height = data.image_height_px;
    image.src = `${imagePath(data.image)}/stimulus`;
    $("replay-empty").hidden = true;
    describe(data);
    history.replaceState(null, "", `?session=${encodeURIComponent(session)}&trial=${trial}`);
    showError(null);
    setTime(state.startMs);
  } catch (error) {
    showError(`Could not open trial ${trial + 1}: ${error.message}`);
  }
}

function fillTrials(session, chosen) {
  const entry = state.sessions.find((item) => item.session === session);
  const trials = entry?.trials ?? [];
  $("replay-trial").replaceChildren(...trials.map((trial) => el("option", { value: String(trial.trial) },
    `${trial.trial + 1}: ${trial.image}${trial.aborted ? " (aborted)" : trial.ended ? "" : " (running)"}`)));
  const pick = trials.some((trial) => trial.trial === chosen) ? chosen : trials.at(-1)?.trial;
  if (pick === undefined) return;
  $("replay-trial").value = String(pick);
  openTrial(session, pick);
}

function onKey(event) {
  if (state.trial === null || event.target instanceof HTMLSelectElement || event.ctrlKey || event.metaKey) return;
  const step = event.shiftKey ? 10 * STEP_MS : STEP_MS;
  const actions = {
    " ": () => setPlaying(!state.playing),
    ArrowLeft: () => seek(state.tMs - step),
    ArrowRight: () => seek(state.tMs + step),
    Home: () => seek(state.startMs),
    End: () => seek(state.endMs),
  };
  if (event.target instanceof HTMLInputElement && event.key !== " ") return; // the slider steps itself
  if (actions[event.key]) {
    event.preventDefault();
    actions[event.key]();
  }
}

async function start() {
  $("replay-play").addEventListener("click", () => setPlaying(!state.playing));
  $("replay-time").addEventListener("input", (event) => {
    setPlaying(false);
    setTime(Number(event.target.value));
  });
  $("replay-speed").addEventListener("change", syncAudio);
  $("replay-session").addEventListener("change", (event) => fillTrials(event.target.value, null));
  $("replay-trial").addEventListener("change", (event) => openTrial($("replay-session").value, Number(event.target.value)));
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", draw);
  try {
    state.sessions = (await getJson("/api/replay/sessions")).sessions;
  } catch (error) {
    showError(error.message);
    return;
  }
  if (!state.sessions.length) {
    $("replay-empty").textContent = "No session recorded yet.";
    return;
  }
  const query = new URLSearchParams(location.search);
  const session = state.sessions.some((item) => item.session === query.get("session"))
    ? query.get("session") : state.sessions[0].session;
  $("replay-session").replaceChildren(...state.sessions.map((item) => el("option", { value: item.session },
    `${item.participant} · ${item.session.slice(0, 8)} · ${new Date(item.wall_time_s * 1000).toLocaleString()}`)));
  $("replay-session").value = session;
  const trial = query.get("trial");
  fillTrials(session, trial === null ? null : Number(trial));
}

start();
