// DOM and formatting helpers shared by the dashboard's modules (no state here).

export const DIGITS = 3; // displayed precision of scores (the browser test compares at this precision)

/** The element carrying data-testid="testid". */
export const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

/** A new HTML element with attributes (null/undefined ones left out) and children. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

/** A new SVG element with attributes and children. */
export function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

export const isNumber = (value) => typeof value === "number" && Number.isFinite(value);
export const fmt = (value, digits = DIGITS) => (isNumber(value) ? value.toFixed(digits) : "—");
export const imagePath = (image) => `/api/images/${encodeURIComponent(image)}`;

/** Set the text of the element `testid`, and optionally its title and warning state. */
export function setText(testid, text, { title = null, warn = null } = {}) {
  const node = $(testid);
  node.textContent = text;
  if (title !== null) node.title = title;
  if (warn !== null) node.classList.toggle("warn", warn);
}

export function formatDuration(seconds) {
  const s = Math.floor(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
    : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

export function showError(message) {
  const node = $("error");
  node.hidden = message === null;
  node.textContent = message ?? "";
}
