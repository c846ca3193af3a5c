// The HTTP API as the pages use it: same origin, the session cookie (or nothing, with
// --no-auth), JSON in and out, errors as ApiError with the server's words.

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** Called on any 401: the session is gone or was never there. */
let onUnauthorized = () => {};
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

/**
 * Requests `path`. `body` is sent as is with `type`, or as JSON when it is an object.
 * Answers the parsed JSON (or null for an empty body); `raw: true` answers the Response.
 */
export async function api(path, { method = 'GET', body, type, signal, raw = false } = {}) {
  const headers = { Accept: 'application/json' };
  let payload = body;
  if (body !== undefined && typeof body !== 'string' && !(body instanceof Blob)) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  } else if (type) {
    headers['Content-Type'] = type;
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      body: payload,
      headers,
      signal,
      credentials: 'same-origin',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `the server could not be reached (${e.message})`, null);
  }
  if (raw && response.ok) return response;
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!response.ok) {
    if (response.status === 401) onUnauthorized();
    const message = (parsed && parsed.error) || text || response.statusText;
    throw new ApiError(response.status, message, parsed);
  }
  return parsed;
}

/** The path of a run's resource. */
export function runPath(uid, rest = '') {
  return `/api/runs/${encodeURIComponent(uid)}${rest}`;
}

/** The path of a job's log. */
export function logPath(uid, job, attempt, follow = false) {
  const q = new URLSearchParams();
  if (attempt) q.set('attempt', String(attempt));
  if (follow) q.set('follow', 'true');
  return `${runPath(uid, `/jobs/${encodeURIComponent(job)}/logs`)}?${q}`;
}

/** The UI's own URLs. */
export const link = {
  runs: () => '/',
  run: (uid) => `/runs/${encodeURIComponent(uid)}`,
  job: (uid, job) => `/runs/${encodeURIComponent(uid)}/jobs/${encodeURIComponent(job)}`,
  newRun: () => '/new',
};
