// The twin's HTTP API: JSON in, JSON out, the session cookie sent by the browser. A 401 from any
// route but login means the session ended: the app shows the login form (onSignedOut).

export class ApiError extends Error {
  constructor(status, reason, detail) {
    super(detail || reason || `HTTP ${status}`);
    this.status = status;
    this.reason = reason;
  }
}

let signedOut = () => {};

export function onSignedOut(handler) {
  signedOut = handler;
}

export async function api(path, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") {
    // every state-changing request is JSON: the server refuses anything else (CSRF defence)
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  const res = await fetch(path, init);
  const payload = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.status === 401 && path !== "/api/login") signedOut();
  if (!res.ok) {
    let detail = payload?.detail;
    let reason = payload?.reason;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; "); // FastAPI validation errors
    else if (detail && typeof detail === "object") {
      // an error not flattened by the app's handler: {"detail": {"reason": ..., "detail": ...}}
      reason = reason ?? detail.reason;
      detail = detail.detail;
    }
    throw new ApiError(res.status, reason, detail);
  }
  return payload;
}
