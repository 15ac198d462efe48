// Times on a pump's own clock. A simulated pump's clock is the simulation's (at 600x a day passes
// in 2.4 wall minutes); a real pump's is the wall clock. Ages and "days to" figures on the fleet
// and device pages are measured on that clock, never on the browser's: "reported 3 h ago" means
// three hours of the pump's life, whatever the speed. Pure (the server's now is an argument).
//
// A device summary carries `device_now` (the pump's clock at the wall time `as_of`) and
// `clock_rate` (device seconds per wall second, measured by the twin); between summaries the
// console runs that clock on.

/** The pump's clock (epoch ms) at the server's wall time `serverNowMs`, or null if never heard. */
export function deviceNowMs(summary, serverNowMs) {
  if (!summary || !summary.device_now) return null;
  const base = Date.parse(summary.device_now);
  const asOf = Date.parse(summary.as_of);
  if (Number.isNaN(base)) return null;
  if (Number.isNaN(asOf)) return base;
  return base + Math.max(0, serverNowMs - asOf) * (summary.clock_rate ?? 1);
}

/** Seconds of the pump's clock since `iso` (a device time), or null. */
export function deviceAgeS(iso, summary, serverNowMs) {
  const now = deviceNowMs(summary, serverNowMs);
  const then = iso ? Date.parse(iso) : NaN;
  if (now === null || Number.isNaN(then)) return null;
  return Math.max(0, (now - then) / 1000);
}

/** Days of the pump's clock until `iso` (negative: past), or null. */
export function daysUntil(iso, summary, serverNowMs) {
  const now = deviceNowMs(summary, serverNowMs);
  const then = iso ? Date.parse(iso) : NaN;
  if (now === null || Number.isNaN(then)) return null;
  return (then - now) / 86_400_000;
}

/** "45 s", "12 min", "3 h 5 min", "2 d 4 h", "3 y 2 mo" for a span in seconds; "—" for none. */
export function span(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  const s = Math.floor(Math.abs(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  const d = Math.floor(h / 24);
  if (d < 365) return `${d} d ${h % 24} h`;
  const months = Math.floor((d % 365) / 30.44);
  return `${Math.floor(d / 365)} y${months ? ` ${months} mo` : ""}`;
}

/** "in 12.3 d", "2.0 d ago", "—" for a number of days from now. */
export function inDays(days) {
  if (days === null || days === undefined || Number.isNaN(days)) return "—";
  const text = `${Math.abs(days) < 10 ? Math.abs(days).toFixed(1) : Math.round(Math.abs(days))} d`;
  return days >= 0 ? `in ${text}` : `${text} ago`;
}

/** A device time for people: the date and time on the pump's clock (UTC, as pumps keep it). */
export function deviceWhen(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "—";
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}
