// Times on the server's clock. Alarm ages, silence ends and session expiry are the twin's times;
// a browser whose clock is off by minutes would show wrong ages and sound a paused alarm early,
// so the console measures the offset from /api/me's `now` and adds it.

let offsetMs = 0;

/** Set the offset from a server time (ISO) read just now. */
export function syncTo(serverIso) {
  const server = Date.parse(serverIso);
  if (!Number.isNaN(server)) offsetMs = server - Date.now();
}

/** Now, on the server's clock (epoch ms). */
export function serverNow() {
  return Date.now() + offsetMs;
}

/** "45 s", "12 min", "3 h 5 min", "2 d 4 h": how long ago `iso` was (server clock). */
export function age(iso) {
  if (!iso) return "—";
  return duration(Math.max(0, serverNow() - Date.parse(iso)) / 1000);
}

export function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** A timestamp for people: local date and time to the second. */
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "—" : d.toLocaleString(undefined, { hour12: false });
}
