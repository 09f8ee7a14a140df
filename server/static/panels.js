// The header (session, trial, countdown), the health and microphone panel, the history list and
// the untrained-weights banner.

import { $, el, fmt, formatDuration, isNumber, setText } from "./dom.js";

const WAITING = { calibration: "calibration", drift_correction: "drift correction", pause: "pause",
  confirm_quit: "quit confirmation" };

export function renderSession(store) {
  const session = store.sections.session ?? {};
  setText("participant", session.participant ?? "—");
  setText("session-id", session.session ? session.session.slice(0, 8) : "—", { title: session.session ?? "" });
  setText("tracker", session.tracker ?? "—");
  const total = session.n_trials ?? "?";
  const trial = isNumber(session.trial) ? `${session.trial + 1} / ${total}` : "—";
  setText("trial", session.ended ? `${trial} (session ${session.ended})` : trial);
}

export function renderCountdown(store) {
  const trial = store.sections.trial?.trial ?? null;
  const node = $("time-left");
  setText("image-id", trial?.image ?? "—");
  const waiting = store.sections.session?.waiting ?? null;
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
  const left = Math.max(0, trial.onset_server_time_s + trial.stimulus_duration_ms / 1000 - store.serverNowS());
  node.textContent = `${left.toFixed(1)} s`;
  node.dataset.seconds = left.toFixed(3);
}

const ms = (stats) => (stats && stats.n ? `${fmt(stats.p50, 1)} / ${fmt(stats.p99, 1)} ms` : "—");
const counts = (map) => Object.entries(map ?? {}).map(([k, v]) => `${k} ${v}`).join(", ");

function streamText(health) {
  const stream = health.stream;
  if (stream === null) return { text: "no session yet", warn: false };
  const disconnected = !stream.ended && health.connections === 0;
  const silent = fmt(stream.silent_s, stream.alive ? 1 : 0);
  const text = stream.ended ? "session ended"
    : disconnected ? `disconnected (no sender connected; last record ${silent} s ago)`
      : stream.alive ? `alive (last record ${silent} s ago)` : `SILENT for ${silent} s`;
  return { text, warn: disconnected || (!stream.alive && !stream.ended) };
}

function renderReceiver(health) {
  const receiver = health.receiver ?? {};
  setText("health-accepted", String(receiver.accepted ?? 0));
  setText("health-duplicates", String(receiver.duplicates ?? 0));
  // Gaps and replays are history; what matters now is whether records are still missing.
  const missing = health.stream?.missing ?? 0;
  const recovered = missing > 0 ? ` (${missing} missing now)` : (receiver.gaps ?? 0) > 0 ? " (recovered)" : "";
  setText("health-gaps", `${receiver.gaps ?? 0}${recovered}`, { warn: missing > 0 });
  setText("health-replays", `${receiver.replays ?? 0}${(receiver.replays ?? 0) > 0 && missing === 0 ? " (recovered)" : ""}`);
  const conflicts = receiver.conflicts ?? 0;
  setText("health-conflicts", conflicts ? `${conflicts}: records kept aside, see stream/conflicts` : "0",
    { warn: conflicts > 0, title: "records whose seq the server already held with other content" });
  setText("health-malformed", String(health.malformed_total),
    { title: counts(receiver.malformed), warn: health.malformed_total > 0 });
}

export function renderHealth(store) {
  const health = store.sections.health;
  if (!health) return;
  const stream = streamText(health);
  setText("health-stream", stream.text, { warn: stream.warn });
  const rates = Object.entries(health.rates_per_s).map(([kind, rate]) =>
    el("span", { "data-kind": kind }, el("span", {}, kind.replaceAll("_", " ")), el("b", {}, `${rate.toFixed(1)}/s`)));
  $("health-rates").replaceChildren(...(rates.length ? rates : ["—"]));
  renderReceiver(health);
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

export function renderMic(store) {
  const mic = store.sections.mic?.mic ?? null;
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

/** The images with fixations so far; `open(image)` browses one. */
export function renderHistory(store, open) {
  const history = store.sections.history;
  if (!history) return;
  setText("history-count", `${history.images.length} of ${history.n_stimuli} stimuli`);
  const liveImage = store.liveImage();
  const items = history.images.map((entry) => {
    const button = el("button", {
      type: "button", "data-testid": "history-item", "data-image": entry.image,
      class: [entry.image === liveImage ? "live" : "", entry.image === store.browse?.image ? "browsed" : ""].join(" "),
    }, el("span", { class: "name" }, entry.image),
    el("span", { class: "count" }, `${entry.n_fixations} fix · ${entry.n_participants} part.`));
    button.addEventListener("click", () => open(entry.image));
    return el("li", {}, button);
  });
  $("history-list").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "No fixation yet.")]));
}

export function renderBanner(store) {
  const maps = store.sections.scores?.maps ?? store.sections.health?.maps;
  $("untrained-banner").hidden = !maps?.untrained;
  setText("weights-label", maps?.label ?? "");
}
