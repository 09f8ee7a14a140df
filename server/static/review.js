// The naming task's review page (server/routes/review.py): pick a session, go through its trials,
// correct each utterance's onset and offset and the name said, save. Saving appends the trial's
// whole list to the session's voice_corrections.jsonl (the automatic values stay as they are).
// Native ES modules, no build step:
//   review_wave.js  the waveform, the draggable marks and playback   dom.js  DOM helpers

import { $, el, setText, showError } from "./dom.js";
import { WaveEditor } from "./review_wave.js";

const state = {
  key: null, // the session shown
  trials: [], // its TrialEntry list
  index: -1, // the trial shown, in `trials`
  details: new Map(), // trial → TrialDetail (fetched once; detection runs on the server)
  drafts: new Map(), // trial → unsaved utterance list
};
const editor = new WaveEditor(onEdit);
const params = new URLSearchParams(location.search);

async function api(path, options = {}) {
  const response = await fetch(`/api/review${path}`, options);
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? response.statusText);
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.json();
}

const sessionPath = () => `/sessions/${encodeURIComponent(state.key)}`;
const trialPath = (trial) => `${sessionPath()}/trials/${trial}`;
const current = () => state.trials[state.index] ?? null;
const editable = (list) => list.map(({ onset_ms, offset_ms, word, name_class }) => ({ onset_ms, offset_ms, word, name_class }));

// -- sessions and trials ---------------------------------------------------------------------------

async function loadSessions() {
  const list = await api("/sessions");
  const select = $("session-select");
  const options = list.sessions.map((s) => el("option", { value: s.key },
    `${s.participant} · ${s.session.slice(0, 8)} (${s.n_reviewed}/${s.n_trials} reviewed) — ${s.folder}`));
  select.replaceChildren(...(options.length ? options : [el("option", { value: "" }, `no session with audio in ${list.roots.join(", ")}`)]));
  const p = list.voice_params;
  setText("detector", `automatic: ${p.method}${list.names ? " + names" : ""}, min speech ${p.min_speech_ms} ms`);
  const wanted = params.get("session");
  const key = list.sessions.some((s) => s.key === wanted) ? wanted : list.sessions[0]?.key;
  if (key) {
    select.value = key;
    await openSession(key, Number(params.get("trial") ?? NaN));
  }
}

async function openSession(key, trial = NaN) {
  state.key = key;
  state.details.clear();
  state.drafts.clear();
  const list = await api(`${sessionPath()}/trials`);
  state.trials = list.trials;
  setText("trial-count", `${list.session.n_reviewed} of ${list.trials.length} reviewed`);
  const index = state.trials.findIndex((t) => t.trial === trial);
  await openTrial(index >= 0 ? index : 0);
}

function renderTrialList() {
  const items = state.trials.map((entry, index) => {
    const draft = state.drafts.has(entry.trial);
    const status = draft ? "unsaved" : entry.reviewed ? "reviewed" : "automatic";
    const detail = state.details.get(entry.trial);
    const count = draft ? state.drafts.get(entry.trial).length : entry.reviewed ? entry.n_utterances : detail?.automatic.length;
    const button = el("button", {
      type: "button", "data-testid": "trial-item", "data-trial": entry.trial, "data-status": status,
      class: index === state.index ? "current" : "",
    }, el("span", { class: "name" }, `${entry.trial + 1} · ${entry.image}`),
    el("span", { class: `badge ${status}` }, `${status}${count === undefined ? "" : ` (${count})`}`),
    overview(entry.overview));
    button.addEventListener("click", () => openTrial(index));
    return el("li", {}, button);
  });
  $("trial-list").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "No trial with audio.")]));
}

/** A trial's small waveform: its peak level per column, mirrored about the middle. */
function overview(peaks) {
  const canvas = el("canvas", { class: "overview", width: String(peaks.length), height: "18", "aria-hidden": "true" });
  const context = canvas.getContext("2d");
  const top = Math.max(1e-4, ...peaks);
  context.fillStyle = "#4a6fa5";
  peaks.forEach((peak, x) => {
    const half = Math.max(0.5, (peak / top) * 9);
    context.fillRect(x, 9 - half, 1, 2 * half);
  });
  return canvas;
}

async function fetchDetail(trial) {
  if (!state.details.has(trial)) state.details.set(trial, await api(trialPath(trial)));
  return state.details.get(trial);
}

async function openTrial(index) {
  if (index < 0 || index >= state.trials.length) return;
  state.index = index;
  const entry = current();
  const url = new URL(location.href);
  url.searchParams.set("session", state.key);
  url.searchParams.set("trial", String(entry.trial));
  history.replaceState(null, "", url);
  setText("trial-title", `Trial ${entry.trial + 1} · image ${entry.image}`);
  renderTrialList();
  setState("loading", "finding utterances…");
  try {
    const detail = await fetchDetail(entry.trial);
    if (current() !== entry) return; // another trial was chosen meanwhile
    const list = state.drafts.get(entry.trial) ?? editable(detail.review?.utterances ?? detail.automatic);
    editor.show(detail, list.map((u) => ({ ...u })), `/api/review${trialPath(entry.trial)}/audio.wav`);
    renderNames(detail);
    renderTable();
    renderTrialList();
    showState();
    showError(null);
  } catch (error) {
    showError(`Could not open trial ${entry.trial + 1}: ${error.message}`);
    return;
  }
  const next = state.trials[index + 1];
  if (next) fetchDetail(next.trial).then(renderTrialList).catch(() => {}); // ready when asked for
}

// -- the utterance table ---------------------------------------------------------------------------

function renderNames(detail) {
  const own = new Set(detail.classes);
  const names = Object.keys(detail.names).sort((a, b) => (own.has(detail.names[b]) - own.has(detail.names[a])) || a.localeCompare(b));
  document.getElementById("names").replaceChildren(...names.map((name) => el("option", { value: name }, detail.names[name])));
}

function classOptions(detail, chosen) {
  const own = detail.classes;
  const others = [...new Set(Object.values(detail.names))].filter((c) => !own.includes(c)).sort();
  const options = [el("option", { value: "" }, "—")];
  if (own.length) options.push(el("optgroup", { label: "on this image" }, ...own.map((c) => el("option", { value: c }, c))));
  options.push(el("optgroup", { label: own.length ? "other classes" : "classes" }, ...others.map((c) => el("option", { value: c }, c))));
  const select = el("select", { "data-testid": "class" }, ...options);
  select.value = chosen;
  return select;
}

function numberInput(index, edge) {
  const input = el("input", { type: "number", step: "1", "data-testid": edge, value: String(editor.utterances[index][`${edge}_ms`]) });
  input.addEventListener("change", () => {
    const value = Number(input.value);
    if (Number.isFinite(value)) editor.moveEdge(index, edge, value);
    renderTable();
    markDirty();
  });
  return input;
}

function renderTable() {
  const detail = editor.detail;
  const rows = editor.utterances.map((u, index) => {
    const word = el("input", { "data-testid": "word", list: "names", value: u.word, size: "10" });
    const select = classOptions(detail, u.name_class);
    word.addEventListener("change", () => {
      const typed = word.value.trim().toLowerCase();
      const known = detail.names[typed];
      editor.utterances[index] = { ...editor.utterances[index], word: typed, name_class: known ?? editor.utterances[index].name_class };
      select.value = editor.utterances[index].name_class;
      editor.renderMarks();
      markDirty();
    });
    select.addEventListener("change", () => {
      editor.utterances[index] = { ...editor.utterances[index], name_class: select.value };
      markDirty();
    });
    const auto = detail.automatic[index];
    const play = el("button", { type: "button", title: "play this utterance", "data-testid": "play-utterance" }, "▶");
    play.addEventListener("click", () => editor.playUtterance(index));
    const remove = el("button", { type: "button", title: "delete this utterance", "data-testid": "delete" }, "✕");
    remove.addEventListener("click", () => editor.remove(index));
    return el("tr", { "data-utterance": index },
      el("th", {}, String(index + 1)), el("td", {}, numberInput(index, "onset")), el("td", {}, numberInput(index, "offset")),
      el("td", {}, word), el("td", {}, select),
      el("td", { class: "auto", "data-testid": "automatic" }, auto
        ? `${Math.round(auto.onset_ms)}–${Math.round(auto.offset_ms)} ${auto.word}${auto.confidence === null ? "" : ` (${auto.confidence.toFixed(2)})`}`
        : "—"),
      el("td", {}, play, remove));
  });
  $("utterances").querySelector("tbody").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "7", class: "muted" }, "No utterance: saving says nobody spoke."))]));
}

/** The editor changed utterance `index` (null: the list). While dragging only its times change. */
function onEdit(index, { dragging = false } = {}) {
  if (dragging && index !== null) {
    const row = $("utterances").querySelector(`tr[data-utterance="${index}"]`);
    for (const edge of ["onset", "offset"]) row.querySelector(`[data-testid=${edge}]`).value = String(editor.utterances[index][`${edge}_ms`]);
    return;
  }
  renderTable();
  markDirty();
}

// -- saving ----------------------------------------------------------------------------------------

function markDirty() {
  const entry = current();
  if (entry === null) return;
  state.drafts.set(entry.trial, editable(editor.utterances));
  showState();
  renderTrialList();
}

function setState(name, text) {
  const node = $("trial-state");
  node.dataset.state = name;
  node.textContent = text;
}

function showState() {
  const entry = current();
  const detail = state.details.get(entry.trial);
  if (state.drafts.has(entry.trial)) {
    setState("unsaved", "unsaved changes (Save review, or Ctrl+S)");
  } else if (detail.review) {
    const when = new Date(detail.review.saved_unix_s * 1000).toLocaleString();
    setState("reviewed", `reviewed${detail.review.reviewer ? ` by ${detail.review.reviewer}` : ""}, saved ${when}`);
  } else {
    setState("automatic", `automatic (${detail.method}), not reviewed`);
  }
}

async function save() {
  const entry = current();
  if (entry === null || editor.detail === null) return;
  const body = { utterances: editable(editor.utterances), reviewer: $("reviewer").value.trim() };
  try {
    const saved = await api(trialPath(entry.trial), {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const detail = state.details.get(entry.trial);
    state.details.set(entry.trial, { ...detail, review: { saved_unix_s: saved.saved_unix_s, reviewer: saved.reviewer, utterances: saved.utterances } });
    state.drafts.delete(entry.trial);
    const wasReviewed = entry.reviewed;
    state.trials[state.index] = { ...entry, reviewed: true, n_utterances: saved.utterances.length };
    if (!wasReviewed) {
      const reviewed = state.trials.filter((t) => t.reviewed).length;
      setText("trial-count", `${reviewed} of ${state.trials.length} reviewed`);
    }
    setText("status", `saved trial ${entry.trial + 1}`);
    showError(null);
    showState();
    renderTrialList();
  } catch (error) {
    showError(`Could not save trial ${entry.trial + 1}: ${error.message}`);
  }
}

// -- wiring ----------------------------------------------------------------------------------------

function start() {
  editor.start();
  const reviewer = $("reviewer");
  reviewer.value = params.get("reviewer") ?? localStorage.getItem("lookwhere.reviewer") ?? "";
  reviewer.addEventListener("change", () => localStorage.setItem("lookwhere.reviewer", reviewer.value.trim()));
  $("session-select").addEventListener("change", (event) => openSession(event.target.value).catch((e) => showError(e.message)));
  $("previous").addEventListener("click", () => openTrial(state.index - 1));
  $("next").addEventListener("click", () => openTrial(state.index + 1));
  $("play").addEventListener("click", () => editor.detail && editor.play());
  $("stop").addEventListener("click", () => editor.stop());
  $("add").addEventListener("click", () => editor.detail && editor.add((editor.t0 + editor.t1) / 2));
  $("clear").addEventListener("click", () => {
    editor.utterances.splice(0);
    editor.renderMarks();
    onEdit(null);
  });
  $("reset").addEventListener("click", () => {
    if (editor.detail === null) return;
    editor.utterances = editable(editor.detail.automatic);
    editor.renderMarks();
    onEdit(null);
  });
  $("save").addEventListener("click", save);
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "s") {
      event.preventDefault();
      save();
    } else if (event.altKey && event.key === "ArrowLeft") {
      openTrial(state.index - 1);
    } else if (event.altKey && event.key === "ArrowRight") {
      openTrial(state.index + 1);
    }
  });
  loadSessions().catch((error) => showError(`Could not list the sessions: ${error.message}`));
}

start();
