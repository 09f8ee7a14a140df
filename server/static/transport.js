// The dashboard's connections: the live feed (WebSocket /ws, reconnecting with backoff) and the
// per-image API. Messages carry the schema version of server/sections.py; another is refused.

import { $, imagePath } from "./dom.js";

export const SCHEMA_VERSION = 1;
const STALL_AFTER_S = 5; // the health section arrives every second, so silence means trouble
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 8000;

function setConnection(state, text) {
  const node = $("connection");
  node.dataset.state = state;
  node.textContent = text;
}

export class LiveFeed {
  /**
   * @param {(message: object) => void} onMessage called with every message of the current schema
   * @param {(error: string) => void} onError called when the server speaks another schema version
   */
  constructor(onMessage, onError) {
    this.onMessage = onMessage;
    this.onError = onError;
    this.lastMessageMs = null;
  }

  connect(attempt = 0) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/ws`);
    let opened = false;
    setConnection("connecting", attempt ? `connecting (attempt ${attempt + 1})…` : "connecting…");
    socket.addEventListener("open", () => {
      opened = true;
      this.lastMessageMs = performance.now();
      setConnection("live", "● live");
    });
    socket.addEventListener("message", (event) => this.receive(JSON.parse(event.data)));
    socket.addEventListener("close", (event) => {
      const next = opened ? 0 : attempt + 1; // backoff grows only while connecting keeps failing
      const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** next) * (0.8 + 0.4 * Math.random());
      const why = event.reason ? ` (${event.reason})` : "";
      setConnection("reconnecting", `disconnected${why}: retrying in ${(delay / 1000).toFixed(1)} s`);
      this.lastMessageMs = null;
      setTimeout(() => this.connect(next), delay);
    });
  }

  receive(message) {
    this.lastMessageMs = performance.now();
    if (message.v !== SCHEMA_VERSION) {
      this.onError(`The server sends dashboard messages of version ${message.v}; this page reads version ` +
        `${SCHEMA_VERSION}. Reload the page.`);
      return;
    }
    if ($("connection").dataset.state !== "live") setConnection("live", "● live");
    this.onMessage(message);
  }

  /** Mark the connection stalled when nothing arrived for a while (called by a timer). */
  checkStall() {
    const state = $("connection").dataset.state;
    if (this.lastMessageMs !== null && (state === "live" || state === "stalled")) {
      const silent = (performance.now() - this.lastMessageMs) / 1000;
      if (silent > STALL_AFTER_S) setConnection("stalled", `● no update for ${silent.toFixed(0)} s`);
    }
  }
}

/** The scored summary of one image (GET /api/images/{image}). */
export async function fetchImageSummary(image) {
  const response = await fetch(imagePath(image), { cache: "no-store" });
  if (!response.ok) throw new Error(`GET /api/images/${image}: HTTP ${response.status}`);
  return response.json();
}
