// A refetch that the live stream asks for far more often than it should run: a session's report
// changes with every alarm transition and response of a busy fleet, and each change arrives as a
// stream event. The page asks on every one; the fetch runs at most once per `periodMs`, never
// two at once, and a request made while one runs (or while waiting) is served by one more run
// after it, so the last change is never left unshown.

export class Refetcher {
  /**
   * @param {() => Promise<unknown>} fetchFn what to run (errors are the caller's to show)
   * @param {number} periodMs at least this long between the starts of two runs
   * @param {{now?: () => number, setTimer?: Function, clearTimer?: Function}} clock seams for tests
   */
  constructor(
    fetchFn,
    periodMs,
    // wrapped: a browser refuses setTimeout called as a method of another object ("Illegal invocation")
    { now = () => Date.now(), setTimer = (fn, ms) => setTimeout(fn, ms), clearTimer = (id) => clearTimeout(id) } = {},
  ) {
    Object.assign(this, { fetchFn, periodMs, now, setTimer, clearTimer });
    this.lastStart = -Infinity;
    this.timer = null;
    this.running = false;
    this.again = false;
    this.stopped = false;
    this.runs = 0;
  }

  /** Ask for a refetch: now if the period has passed, otherwise when it does. */
  request() {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer !== null) return;
    const wait = Math.max(0, this.lastStart + this.periodMs - this.now());
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.run();
    }, wait);
  }

  async run() {
    if (this.stopped) return;
    this.running = true;
    this.again = false;
    this.lastStart = this.now();
    this.runs += 1;
    try {
      await this.fetchFn();
    } catch (error) {
      // the fetch shows its own errors to the user; a failed refetch must not stop the next one
      console.error("refetch failed", error);
    } finally {
      this.running = false;
      if (this.again) this.request();
    }
  }

  stop() {
    this.stopped = true;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
  }
}
