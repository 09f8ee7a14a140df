// The experimenter's dashboard: renders the live hub's sections (WebSocket /ws) and the per-image
// API. Native ES modules, no build step and no CDN (the lab machines are offline):
//   transport.js  the live feed and the image API      store.js   the state the views read
//   stage.js      stimulus, heatmaps, live overlay     scores.js  score table, bars, model maps
//   panels.js     header, health, microphone, history  dom.js     DOM and formatting helpers
//   quality.js    validations, drift strip and alarm, track loss
//   mic.js        the live trial's microphone strip with the utterances found live
//   notes.js      the experimenter's notes: presets, hotkeys, note box, the session's notes
// This module wires them: messages into the store, the store into the views, the controls.

import { $, setText, showError } from "./dom.js";
import { renderVoice, startVoiceStrip } from "./mic.js";
import { followTrial, renderNotes, startNotes } from "./notes.js";
import { renderBanner, renderCountdown, renderHealth, renderHistory, renderMic, renderSession } from "./panels.js";
import { renderQuality } from "./quality.js";
import { Scores } from "./scores.js";
import { Stage } from "./stage.js";
import { Store } from "./store.js";
import { LiveFeed, fetchImageSummary } from "./transport.js";

const store = new Store();
const stage = new Stage(store);
const scores = new Scores(store);

function renderView() {
  const view = store.currentView();
  stage.render(view);
  scores.render(view);
}

function renderHistoryList() {
  renderHistory(store, openImage);
}

// The browsed image received fixations since it was fetched: fetch it again.
function refreshBrowsed() {
  const entry = store.sections.history?.images.find((item) => item.image === store.browse?.image);
  if (entry && entry.n_fixations !== store.browse.summary.n_fixations) openImage(store.browse.image);
}

async function openImage(image) {
  try {
    const summary = await fetchImageSummary(image);
    if (store.browse === null) stage.enterBrowsing();
    store.startBrowsing(image, summary);
    showError(null);
  } catch (error) {
    showError(`Could not open image ${image}: ${error.message}`);
    return;
  }
  $("browse-banner").hidden = false;
  setText("browse-image", image);
  renderView();
  renderHistoryList();
}

function backToLive() {
  store.stopBrowsing();
  $("browse-banner").hidden = true;
  stage.leaveBrowsing();
  renderView();
  renderHistoryList();
}

function onMessage(message) {
  const changed = store.apply(message);
  if (changed.has("session")) {
    renderSession(store);
    renderCountdown(store);
  }
  if (changed.has("trial")) renderCountdown(store);
  if (changed.has("health")) renderHealth(store);
  if (changed.has("mic")) renderMic(store);
  if (changed.has("quality")) renderQuality(store);
  if (changed.has("notes")) renderNotes(store);
  if (changed.has("session")) followTrial(store);
  if (changed.has("scores") || changed.has("health")) renderBanner(store);
  setText("n-fixations", String(store.sections.fixations?.fixations?.length ?? 0));
  if (changed.has("trial") || changed.has("scores")) {
    renderView();
  } else if (changed.has("fixations") || changed.has("gaze")) {
    stage.renderOverlay();
  }
  if (changed.has("history") || changed.has("trial")) renderHistoryList();
  if (changed.has("history") && store.browse !== null) refreshBrowsed();
  if (changed.has("voice") || changed.has("trial") || changed.has("session")) renderVoice(store);
}

function start() {
  const feed = new LiveFeed(onMessage, showError);
  stage.start();
  startVoiceStrip(store);
  startNotes(store);
  scores.start(() => scores.render(store.currentView()));
  $("back-to-live").addEventListener("click", backToLive);
  document.addEventListener("keydown", (event) => { if (event.key === "Escape" && store.browse !== null) backToLive(); });
  setInterval(() => {
    renderCountdown(store);
    if (store.sections.gaze?.gaze) stage.renderOverlay(); // the cursor greys out when gaze stops
    feed.checkStall();
  }, 200);
  feed.connect();
}

start();
