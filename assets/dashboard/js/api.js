// The monitor's Prometheus-compatible HTTP API (relative URLs: the dashboard is served by it).

export class ApiError extends Error {
  constructor(message, type = '', status = 0) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

/**
 * GET `path` with `params` (POST as a form when `post`, for long queries); resolves to the
 * body's `data`, or throws ApiError.
 */
export async function api(path, params, signal, post = false) {
  const form = params ? new URLSearchParams(params) : null;
  let res;
  try {
    res = post
      ? await fetch(path, { method: 'POST', body: form, signal, headers: { accept: 'application/json' } })
      : await fetch(form ? `${path}?${form}` : path, { signal, headers: { accept: 'application/json' } });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(`Monitor unreachable: ${e.message}`);
  }
  let body = null;
  try {
    body = await res.json();
  } catch (e) {
    if (e.name === 'AbortError') throw e;
  }
  if (!res.ok || !body || body.status !== 'success') {
    const msg = body?.error || `HTTP ${res.status} ${res.statusText}`.trim();
    throw new ApiError(msg, body?.errorType || '', res.status);
  }
  return body.data;
}

export const queryRange = (query, start, end, step, signal, post = false) =>
  api('api/v1/query_range', { query, start, end, step }, signal, post);

export const queryInstant = (query, time, signal) => api('api/v1/query', { query, time }, signal);
