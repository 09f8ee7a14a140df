// The quality panel (issue 15): the session's latest validation per eye coloured against the lab's
// thresholds, the drift checks as a per-trial strip with the alarm (above the threshold on
// consecutive trials), track loss per trial, and the viewing geometry the degrees come from.
// Reads the hub's "quality" section (server/quality.py); owns everything inside its panel.

import { $, el, fmt, isNumber, svg } from "./dom.js";

const STRIP_HEIGHT = 46;
const BAR_WIDTH = 9;
const LEVEL_TEXT = { good: "good", fair: "fair", poor: "POOR", unknown: "unknown" };

function viewingText(viewing) {
  if (!viewing) return { text: "viewing geometry: not reported", warn: true };
  const width = isNumber(viewing.screen_width_cm) ? `${fmt(viewing.screen_width_cm, 1)} cm wide` : "width ?";
  const distance = isNumber(viewing.viewing_distance_cm) ? `${fmt(viewing.viewing_distance_cm, 0)} cm away` : "distance ?";
  const note = viewing.default === true ? " (lab defaults: degrees are approximate)"
    : viewing.default === null ? " (older experiment: unknown)" : "";
  return { text: `screen ${width}, ${distance}${note}`, warn: viewing.default !== false };
}

function validationRow(entry, thresholds) {
  const text = `${entry.eye}: ${fmt(entry.avg_error_deg, 2)}° avg · ${fmt(entry.max_error_deg, 2)}° max · ` +
    `${LEVEL_TEXT[entry.level]} (${entry.grade}, ${entry.points} pts)`;
  return el("li", {
    class: `validation level-${entry.level}`, "data-testid": `validation-${entry.eye}`, "data-level": entry.level,
    title: `green ≤ ${thresholds.validation_good_deg}°, red > ${thresholds.validation_poor_deg}° average error; ` +
      `setup #${entry.calibration + 1}`,
  }, text);
}

/** One bar per trial, height value/scale (capped), a threshold line at `limit`. */
function strip(testid, entries, { value, scale, limit, barClass, title }) {
  const width = Math.max(entries.length * (BAR_WIDTH + 2), 60);
  const node = svg("svg", { class: "strip", "data-testid": testid, viewBox: `0 0 ${width} ${STRIP_HEIGHT}`,
    width, height: STRIP_HEIGHT, role: "img" });
  entries.forEach((entry, index) => {
    const v = value(entry);
    const height = isNumber(v) ? Math.max(2, Math.min(1, v / scale) * (STRIP_HEIGHT - 4)) : 2;
    node.append(svg("rect", {
      class: `bar ${barClass(entry)}`, "data-testid": `${testid}-bar`, "data-trial": entry.trial,
      x: index * (BAR_WIDTH + 2), y: STRIP_HEIGHT - height, width: BAR_WIDTH, height,
    }, svg("title", {}, title(entry))));
  });
  if (limit !== null) {
    const y = STRIP_HEIGHT - Math.min(1, limit / scale) * (STRIP_HEIGHT - 4);
    node.append(svg("line", { class: "limit", x1: 0, x2: width, y1: y, y2: y }));
  }
  return node;
}

function driftPart(quality) {
  const limit = quality.thresholds.drift_alarm_deg;
  const alarmed = quality.drift.filter((entry) => entry.alarm).map((entry) => entry.trial + 1);
  const last = quality.drift.at(-1);
  const alarm = el("p", { class: "alarm", "data-testid": "drift-alarm", role: "alert" },
    `DRIFT ALARM: offset above ${limit}° on ${quality.thresholds.drift_alarm_run} trials in a row ` +
    `(trial${alarmed.length > 1 ? "s" : ""} ${alarmed.join(", ")}) — recalibrate (Esc on the dot screen)`);
  alarm.hidden = !quality.alarm;
  return [
    el("h3", {}, "Drift checks ", el("span", { class: "hint", "data-testid": "drift-last" },
      last ? `last: ${fmt(last.offset_deg, 2)}° (trial ${last.trial + 1}, ${last.outcome})` : "none yet")),
    strip("drift-strip", quality.drift, {
      value: (entry) => entry.offset_deg, scale: 2 * limit, limit,
      barClass: (entry) => (entry.alarm ? "alarm" : entry.above ? "above" : "ok"),
      title: (entry) => `trial ${entry.trial + 1}: ${fmt(entry.offset_deg, 2)}° ${entry.outcome}` +
        (entry.attempts > 1 ? ` after ${entry.attempts} attempts` : ""),
    }),
    alarm,
  ];
}

function trackLossPart(quality) {
  const last = quality.track_loss.at(-1);
  const lastText = last ? `last: ${isNumber(last.track_loss) ? `${fmt(last.track_loss * 100, 0)} %` : "—"} lost, ` +
    `${last.blinks} blink${last.blinks === 1 ? "" : "s"}` : "none yet";
  return [
    el("h3", {}, "Track loss ", el("span", { class: "hint", "data-testid": "track-loss-last" }, lastText)),
    strip("track-loss-strip", quality.track_loss, {
      value: (entry) => entry.track_loss, scale: 1, limit: null,
      barClass: (entry) => (isNumber(entry.track_loss) && entry.track_loss > 0.2 ? "above" : "ok"),
      title: (entry) => `trial ${entry.trial + 1}: ${isNumber(entry.track_loss) ? fmt(entry.track_loss * 100, 1) : "—"} % ` +
        `of ${entry.samples} samples lost, ${entry.blinks} blinks, pupil ${fmt(entry.mean_pupil, 0)}`,
    }),
  ];
}

export function renderQuality(store) {
  const quality = store.sections.quality;
  const panel = $("quality-panel");
  if (!quality || !panel) return;
  const viewing = viewingText(quality.viewing);
  const validations = quality.validations.length
    ? quality.validations.map((entry) => validationRow(entry, quality.thresholds))
    : [el("li", { class: "muted" }, "no validation yet")];
  panel.replaceChildren(
    el("div", { class: "panel-head" }, el("h2", {}, "Data quality"),
      el("span", { class: `hint${viewing.warn ? " warn" : ""}`, "data-testid": "quality-viewing" }, viewing.text)),
    el("h3", {}, "Validation ", el("span", { class: "hint" }, `${quality.n_validations} this session`)),
    el("ul", { class: "validations", "data-testid": "validations" }, ...validations),
    ...driftPart(quality),
    ...trackLossPart(quality),
  );
  panel.classList.toggle("alarmed", quality.alarm);
}
