// The experimenter's notes (issue 15): preset buttons with hotkeys ("participant moved",
// "re-calibrated", "exclude trial") and a free-text box, posted to POST /api/notes for the trial
// in the trial field (it follows the live trial until edited); the session's notes listed from
// the hub's "notes" section (server/notes.py), each exclusion with a button that undoes it.
// Owns everything inside its panel; the form is built once so typing survives every update.

import { $, el } from "./dom.js";

// the preset kinds, their buttons and hotkeys (pressed outside a text field, without modifiers)
const PRESETS = [
  { kind: "participant_moved", label: "participant moved", key: "m" },
  { kind: "recalibrated", label: "re-calibrated", key: "r" },
  { kind: "exclude_trial", label: "exclude trial", key: "x" },
];
const FOCUS_KEY = "n"; // puts the cursor in the note box

let followLive = true; // the trial field shows the live trial until the experimenter edits it
let liveStore = null; // the dashboard's store (startNotes)

const clock = (unixS) => new Date(unixS * 1000).toLocaleTimeString([], { hour12: false });

function liveTrial(store) {
  const trial = store.sections.session?.trial;
  return Number.isInteger(trial) ? trial : null;
}

/** The trial the form speaks about, 0-based (null: let the server take the live one). */
function formTrial() {
  const value = $("note-trial").valueAsNumber;
  return Number.isInteger(value) && value >= 1 ? value - 1 : null;
}

function setStatus(text, { error = false } = {}) {
  const node = $("note-status");
  node.textContent = text;
  node.classList.toggle("warn", error);
}

async function postNote(kind, { text = "", trial = formTrial() } = {}) {
  try {
    const response = await fetch("/api/notes", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ kind, text, trial }),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof answer.detail === "string" ? answer.detail : JSON.stringify(answer.detail ?? answer);
      setStatus(`not saved: ${detail}`, { error: true });
      return false;
    }
    const where = answer.trial === null ? "before the first trial" : `trial ${answer.trial + 1}`;
    setStatus(`saved ${clock(answer.unix_s)}: ${kind.replaceAll("_", " ")}, ${where}`);
    return true;
  } catch (error) {
    setStatus(`not saved: ${error.message}`, { error: true });
    return false;
  }
}

/** A preset (or the free text): the box's text goes with it, and is cleared once saved. */
async function submit(kind) {
  const box = $("note-text");
  const text = box.value.trim();
  if (kind === "text" && !text) {
    setStatus("type a note first (or use a preset)", { error: true });
    return;
  }
  if (await postNote(kind, { text })) {
    box.value = "";
    followLive = true;
    followTrial(liveStore);
  }
}

function onHotkey(event) {
  const target = event.target;
  const typing = target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  if (typing || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const key = event.key.toLowerCase();
  if (key === FOCUS_KEY) {
    event.preventDefault();
    $("note-text").focus();
    return;
  }
  const preset = PRESETS.find((item) => item.key === key);
  if (preset) {
    event.preventDefault();
    submit(preset.kind);
  }
}

/** Build the form and bind the hotkeys (once, at page start). */
export function startNotes(store) {
  liveStore = store;
  const panel = $("notes-panel");
  const trial = el("input", { type: "number", min: "1", step: "1", "data-testid": "note-trial",
    "aria-label": "trial the note is about", title: "the trial the note is about (follows the live trial until edited)" });
  trial.addEventListener("input", () => {
    followLive = trial.value === "";
    linkReplay();
  });
  const text = el("input", { type: "text", maxlength: "2000", "data-testid": "note-text",
    placeholder: "N: note · Enter: save", "aria-label": "note" });
  text.addEventListener("keydown", (event) => { if (event.key === "Escape") text.blur(); });
  const form = el("form", { class: "note-form", "data-testid": "note-form" },
    el("div", { class: "presets" }, ...PRESETS.map(({ kind, label, key }) => {
      const button = el("button", { type: "button", "data-testid": `note-${kind}`, "data-kind": kind,
        title: `save "${label}" for the trial (key ${key.toUpperCase()}), with the text typed if any` },
      `${label} `, el("kbd", {}, key.toUpperCase()));
      button.addEventListener("click", () => submit(kind));
      return button;
    })),
    text,
    el("div", { class: "note-line" }, el("label", {}, "for trial ", trial),
      el("a", { href: "/replay", target: "_blank", "data-testid": "note-replay",
        title: "replay this trial: image, gaze and fixations on a timeline, traces (opens a tab)" }, "replay ▸"),
      el("button", { type: "submit", "data-testid": "note-save" }, "Save note")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit("text");
  });
  panel.replaceChildren(
    el("div", { class: "panel-head" }, el("h2", {}, "Notes"),
      el("span", { class: "hint", "data-testid": "notes-excluded" }, "")),
    form,
    el("p", { class: "hint note-status", "data-testid": "note-status", role: "status" }, ""),
    el("ul", { class: "notes", "data-testid": "notes-list" }),
  );
  document.addEventListener("keydown", onHotkey);
  followTrial(store);
  renderNotes(store);
}

function noteItem(note, kinds, excluded) {
  const where = note.trial === null ? "before trial 1" : `trial ${note.trial + 1}`;
  const label = note.kind === "text" ? "" : kinds[note.kind] ?? note.kind;
  const item = el("li", { "data-testid": "note", "data-kind": note.kind, class: `note kind-${note.kind}` },
    el("span", { class: "when" }, `${clock(note.unix_s)} · ${where}`),
    el("span", { class: "what" }, [label, note.text].filter(Boolean).join(": ")));
  if (note.kind === "exclude_trial" && excluded.has(note.trial)) {
    const undo = el("button", { type: "button", class: "undo", "data-testid": "note-undo",
      title: "keep this trial after all (saves a 'keep trial' note)" }, "keep");
    undo.addEventListener("click", () => postNote("keep_trial", { trial: note.trial }));
    item.append(undo);
  }
  return item;
}

/** The replay link opens the trial of the trial field. */
function linkReplay() {
  const session = liveStore?.sections.session?.session;
  const trial = formTrial();
  $("note-replay").href = session ? `/replay?session=${encodeURIComponent(session)}` +
    (trial === null ? "" : `&trial=${trial}`) : "/replay";
}

/** The trial field follows the live trial until the experimenter edits it (called on session changes). */
export function followTrial(store) {
  const field = $("note-trial");
  if (!field) return;
  if (followLive && document.activeElement !== field) {
    const trial = liveTrial(store);
    field.value = trial === null ? "" : String(trial + 1);
  }
  linkReplay();
}

/** The session's notes, newest first, and the trials excluded. */
export function renderNotes(store) {
  const section = store.sections.notes;
  if (!section || !$("notes-list")) return;
  const excluded = new Set(section.excluded_trials);
  // only the last exclusion of a trial still excluded offers "keep"
  const lastExclusion = new Map();
  section.notes.forEach((note, index) => { if (note.kind === "exclude_trial") lastExclusion.set(note.trial, index); });
  const items = section.notes.map((note, index) => noteItem(note, section.kinds,
    lastExclusion.get(note.trial) === index ? excluded : new Set())).reverse();
  $("notes-list").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "no note yet")]));
  $("notes-excluded").textContent = excluded.size
    ? `excluded: trial${excluded.size > 1 ? "s" : ""} ${[...excluded].map((t) => t + 1).join(", ")}` : "";
}
