// The banner at the top of every page while the signed-in user is a trainee in a running or paused
// training session: "Training session: <title> — your responses are being scored", with its
// status. It is read from GET /api/training/current at sign-in and whenever the stream (re)opens,
// and follows the session's `training` events; when the session ends it says so and links to the
// report until dismissed. A twin without training sessions (404) shows no banner. The element
// stays in the page (an empty live region is hidden by CSS) so that screen readers announce it.

import { api } from "./api.js";
import { fill, h } from "./dom.js";
import { bannerMessage, isTraineeOf } from "./training.js";

export class TrainingBanner {
  constructor(el, getUsername) {
    this.el = el;
    this.getUsername = getUsername;
    this.session = null;
    this.dismissed = null; // session id whose "ended" banner was dismissed
    this.generation = 0;
  }

  /** Ask the twin which session the user is in now. */
  async refresh() {
    const generation = ++this.generation;
    let current = null;
    try {
      current = (await api("/api/training/current"))?.session ?? null;
    } catch {
      current = null; // no training desk on this twin, or not signed in: no banner
    }
    if (generation !== this.generation) return; // a newer answer or event has already been shown
    if (current) this.show(current);
    else if (this.session && bannerMessage(this.session, this.getUsername())?.live) {
      // the session ended while we were not listening: say so rather than vanish
      this.show({ ...this.session, status: "completed" });
    } else if (!this.session) this.show(null);
  }

  /** The sites of the running or paused session the user is a trainee of ([] if none): the
   * session's own pumps, which the alarm list shows (the rest of the fleet on request). */
  liveSites() {
    const session = this.session;
    if (!session || !bannerMessage(session, this.getUsername())?.live) return [];
    return session.sites || [];
  }

  /** A `training` stream event: a session started, paused, resumed, ended or was scored. */
  onSession(session) {
    if (!isTraineeOf(session, this.getUsername())) return;
    this.generation += 1;
    this.show(session);
  }

  show(session) {
    const username = this.getUsername();
    const message = session ? bannerMessage(session, username) : null;
    if (!message || (!message.live && this.dismissed === session.session_id)) {
      this.session = message ? session : null;
      fill(this.el);
      return;
    }
    this.session = session;
    this.el.dataset.session = session.session_id;
    this.el.dataset.status = session.status;
    this.el.classList.toggle("ended", !message.live);
    const report = `#/training/${encodeURIComponent(session.session_id)}`;
    fill(
      this.el,
      h("strong", { dataset: { testid: "training-banner-text" } }, message.text),
      h("span", { class: "chip banner-status", dataset: { testid: "training-banner-status" } }, message.status),
      message.live
        ? null
        : [
            h("a", { href: report }, "See your report"),
            h(
              "button",
              {
                type: "button",
                onclick: () => {
                  this.dismissed = session.session_id;
                  this.show(session);
                },
              },
              "Dismiss",
            ),
          ],
    );
  }

  clear() {
    this.generation += 1;
    this.session = null;
    this.dismissed = null;
    fill(this.el);
  }
}
