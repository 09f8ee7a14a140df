// The live trial's microphone strip (server/voice.py): the level of the trial's recording so far,
// one bar per bin (−60…0 dBFS), and each utterance found live as a tick at its onset (a band to its
// offset once it has ended), over the trial's display period. Shown for the trial on the stage.

import { $, el, isNumber } from "./dom.js";

const FLOOR_DBFS = -60;

/** The voice section, when it belongs to the live trial on the stage. */
function liveVoice(store) {
  const voice = store.sections.voice;
  const trial = store.sections.trial?.trial ?? null;
  const session = store.sections.session?.session ?? null;
  if (!voice || trial === null || voice.trial !== trial.trial || voice.session !== session) return null;
  return { voice, trial };
}

/** Redraw the strip when the page resizes (once, at start). */
export function startVoiceStrip(store) {
  new ResizeObserver(() => renderVoice(store)).observe($("mic-strip"));
}

export function renderVoice(store) {
  const strip = $("mic-strip");
  const shown = store.browse === null ? liveVoice(store) : null;
  strip.dataset.trial = shown ? String(shown.trial.trial) : "";
  $("mic-strip-empty").hidden = shown !== null;
  drawLevels(shown);
  renderTicks(shown);
  $("mic-strip-detector").textContent = store.sections.voice?.detector ?? "";
}

function drawLevels(shown) {
  const canvas = $("mic-strip-canvas");
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(canvas.clientWidth * ratio);
  canvas.height = Math.round(canvas.clientHeight * ratio);
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (shown === null) return;
  const { voice, trial } = shown;
  const scale = canvas.width / trial.stimulus_duration_ms;
  const width = Math.max(1, voice.bin_ms * scale - 0.5);
  voice.level_dbfs.forEach((level, i) => {
    const height = isNumber(level) ? Math.min(1, Math.max(0, (level - FLOOR_DBFS) / -FLOOR_DBFS)) * canvas.height : 0;
    context.fillStyle = isNumber(level) && level > -1 ? "#c4320a" : "#1a7f37"; // clipping in red
    context.fillRect((voice.start_ms + i * voice.bin_ms) * scale, canvas.height - height, width, Math.max(height, 1));
  });
  context.fillStyle = "rgba(27, 35, 48, 0.6)"; // how far the recording has arrived
  context.fillRect(Math.min(canvas.width - 1, (voice.start_ms + voice.audio_ms) * scale), 0, 1, canvas.height);
}

// Ticks are elements (one per utterance, kept across updates) so that each keeps the time it
// first appeared: data-shown-unix-ms, the browser's side of the onset-to-tick delay.
function renderTicks(shown) {
  const ticks = $("voice-ticks");
  if (shown === null) {
    ticks.replaceChildren();
    return;
  }
  const { voice, trial } = shown;
  const percent = (ms) => `${Math.min(100, Math.max(0, (ms / trial.stimulus_duration_ms) * 100))}%`;
  const nodes = [...ticks.children];
  voice.utterances.forEach((utterance, index) => {
    let tick = nodes[index];
    if (!tick || tick.dataset.onsetMs !== String(utterance.onset_ms)) {
      tick = el("div", { class: "voice-tick", "data-testid": "voice-tick", "data-onset-ms": String(utterance.onset_ms),
        "data-shown-unix-ms": String(performance.timeOrigin + performance.now()) });
      if (nodes[index]) nodes[index].replaceWith(tick); else ticks.append(tick);
      nodes[index] = tick;
    }
    // the tick is its left edge; the band behind it runs to the offset (or to the audio so far)
    const end = utterance.offset_ms ?? voice.start_ms + voice.audio_ms;
    tick.style.left = percent(utterance.onset_ms);
    tick.style.width = `${Math.max(0, ((end - utterance.onset_ms) / trial.stimulus_duration_ms) * 100)}%`;
    tick.dataset.ended = String(utterance.offset_ms !== null);
    tick.title = `utterance ${index + 1}: onset ${Math.round(utterance.onset_ms)} ms, found at ` +
      `${Math.round(utterance.detected_ms)} ms (confidence ${utterance.confidence.toFixed(2)})`;
  });
  nodes.slice(voice.utterances.length).forEach((node) => node.remove());
}
