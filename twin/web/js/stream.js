// The twin's live stream (GET /api/stream, server-sent events) with reconnects.
//
// Every (re)connection starts with a `hello` event; the console then reloads its snapshot
// (onOpen), so events missed while disconnected are made up for. EventSource reconnects by itself
// after a network error; when it gives up (the server answered with an error, e.g. 401 after the
// session ended) we check the session (a 401 signs out) and reconnect with a growing delay. A
// `resync` event (the console fell too far behind) means: open a fresh stream and reload — not a
// page reload, which would lose the browser's permission to play sound.

const KINDS = ["device", "alarm", "command", "response", "training", "scenario", "guidance", "escalation"];
/** Reconnect delays, ms: quick at first, then no more often than every 15 s. */
const BACKOFF_MS = [500, 1000, 2000, 5000, 15000];

export class LiveStream {
  constructor({ onOpen, onEvent, onStatus, checkSession, url = "/api/stream" }) {
    Object.assign(this, { onOpen, onEvent, onStatus, checkSession, url });
    this.source = null;
    this.failures = 0;
    this.retry = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    if (this.source) this.source.close();
    this.source = null;
  }

  open() {
    if (this.stopped) return;
    const source = new EventSource(this.url);
    this.source = source;
    source.addEventListener("hello", () => {
      this.failures = 0;
      this.onStatus(true);
      this.onOpen();
    });
    for (const kind of KINDS) {
      source.addEventListener(kind, (event) => this.onEvent(kind, JSON.parse(event.data)));
    }
    source.addEventListener("resync", () => this.reopen(0));
    source.onerror = () => {
      this.onStatus(false);
      if (source.readyState === EventSource.CLOSED) this.reopen(null);
      // otherwise the browser is reconnecting by itself; `hello` will come again
    };
  }

  async reopen(delayMs) {
    if (this.source) this.source.close();
    this.source = null;
    if (this.stopped) return;
    if (delayMs === null) {
      delayMs = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)];
      this.failures += 1;
      try {
        await this.checkSession();
      } catch (error) {
        if (error.status === 401) return; // signed out: the app shows the login form
      }
    }
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.open(), delayMs);
  }
}
