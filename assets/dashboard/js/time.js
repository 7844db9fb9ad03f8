// Time ranges, durations and the URL (hash) state. Pure: no DOM.

const UNIT_S = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };

/** Prometheus duration ("15s", "1m30s", "500ms", "2h") → seconds; NaN when invalid. */
export function parseDuration(str) {
  if (typeof str !== 'string' || !str) return NaN;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/gy;
  let total = 0;
  let m;
  let end = 0;
  while ((m = re.exec(str))) {
    total += Number(m[1]) * UNIT_S[m[2]];
    end = re.lastIndex;
  }
  return end === str.length ? total : NaN;
}

/** Seconds → a PromQL duration: whole seconds as "60s", otherwise milliseconds "1500ms". */
export function promDuration(sec) {
  const ms = Math.round(sec * 1000);
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** Seconds → short label for the refresh picker: "1s", "30s", "1m", "5m", "1h". */
export function shortDuration(sec) {
  if (sec >= 3600 && sec % 3600 === 0) return `${sec / 3600}h`;
  if (sec >= 60 && sec % 60 === 0) return `${sec / 60}m`;
  return promDuration(sec);
}

/** True for "now", "now-5m", "now+1h"; false for absolute unix ms. */
export const isRelative = (t) => typeof t === 'string' && t.startsWith('now');

/**
 * A time as in the URL → unix ms. "now", "now-15m", "now-1h30m", or unix ms digits
 * (absolute). NaN when invalid.
 */
export function parseTime(str, nowMs) {
  if (typeof str !== 'string') return NaN;
  const s = str.trim();
  if (s === 'now') return nowMs;
  const rel = /^now([+-])(.+)$/.exec(s);
  if (rel) {
    const d = parseDuration(rel[2]);
    return Number.isFinite(d) ? nowMs + (rel[1] === '-' ? -1 : 1) * d * 1000 : NaN;
  }
  if (/^\d{1,16}(\.\d+)?$/.test(s)) return Number(s);
  return NaN;
}

/**
 * {from, to} strings → {fromMs, toMs, live}; null when unparsable or empty (from ≥ to).
 * `live` is true when `to` is relative (the range moves with the clock).
 */
export function resolveRange(from, to, nowMs) {
  const fromMs = parseTime(from, nowMs);
  const toMs = parseTime(to, nowMs);
  if (!Number.isFinite(fromMs) || !Number.isFinite(toMs) || fromMs >= toMs) return null;
  return { fromMs, toMs, live: isRelative(to) };
}

export const VIEWS = ['race', 'search', 'system', 'explore'];
export const DEFAULTS = { view: 'race', from: 'now-15m', to: 'now', refresh: 'live' };

/**
 * "#/race?from=now-15m&to=now&refresh=1s" → {view, from, to, refresh, expr}.
 * Missing or invalid parts take the defaults; `refresh` is "live" (scrape interval), "off",
 * or a duration like "5s".
 */
export function parseHash(hash) {
  const h = (hash || '').replace(/^#\/?/, '');
  const q = h.indexOf('?');
  const path = (q < 0 ? h : h.slice(0, q)).replace(/\/+$/, '');
  const params = new URLSearchParams(q < 0 ? '' : h.slice(q + 1));
  const state = { ...DEFAULTS, expr: '' };
  if (VIEWS.includes(path)) state.view = path;
  const from = params.get('from');
  const to = params.get('to');
  const now = Date.now();
  if (from && to && resolveRange(from, to, now)) {
    state.from = from;
    state.to = to;
  } else if (from && !to && resolveRange(from, 'now', now)) {
    state.from = from;
  }
  const refresh = params.get('refresh');
  if (refresh === 'off' || refresh === 'live') state.refresh = refresh;
  else if (refresh && parseDuration(refresh) > 0) state.refresh = refresh;
  if (state.view === 'explore') state.expr = params.get('expr') || '';
  return state;
}

/** The inverse of parseHash: default refresh ("live") is left out of the URL. */
export function buildHash(state) {
  const p = new URLSearchParams();
  if (state.view === 'explore' && state.expr) p.set('expr', state.expr);
  p.set('from', String(state.from));
  p.set('to', String(state.to));
  if (state.refresh && state.refresh !== 'live') p.set('refresh', state.refresh);
  return `#/${state.view}?${p.toString().replace(/%2F/g, '/')}`;
}

/** Refresh period in ms for a state, given the scrape interval; 0 = no timer. */
export function refreshMs(state, scrapeSec) {
  if (state.refresh === 'off' || !isRelative(state.to)) return 0;
  const sec = state.refresh === 'live' ? scrapeSec : parseDuration(state.refresh);
  return sec > 0 ? Math.max(1000, Math.round(sec * 1000)) : 0;
}

/** unix ms → value for <input type="datetime-local" step="1"> in local time. */
export function toLocalInput(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** <input type="datetime-local"> value (local time) → unix ms; NaN when empty/invalid. */
export function fromLocalInput(value) {
  if (!value) return NaN;
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?$/.exec(value);
  if (!m) return NaN;
  return new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0)).getTime();
}
