// Prometheus results → uPlot data, query variables, annotations, colours. Pure: no DOM.

/**
 * Grafana's maxDataPoints step: max(scrape interval, ceil(range / width px)), whole seconds.
 */
export function computeStep(rangeSec, widthPx, scrapeSec) {
  const w = Math.max(1, Math.floor(widthPx) || 1);
  return Math.max(1, Math.ceil(scrapeSec), Math.ceil(rangeSec / w));
}

/** Grafana's $__rate_interval in seconds: max(step + scrape, 4 × scrape). */
export const rateInterval = (stepSec, scrapeSec) => Math.max(stepSec + scrapeSec, 4 * scrapeSec);

/** The scrape interval: the smallest of the active targets' (seconds); 15 when none. */
export function scrapeIntervalOf(targets, parse) {
  let min = Infinity;
  for (const t of targets || []) {
    const s = parse(t.scrapeInterval);
    if (s > 0 && s < min) min = s;
  }
  return min === Infinity ? 15 : min;
}

/** Replaces $__rate_interval / ${__rate_interval} (and friends) in an expression. */
export function substitute(expr, vars) {
  return expr.replace(/\$\{?(__\w+)\}?/g, (m, name) => (name in vars ? vars[name] : m));
}

/**
 * A panel's queries as one request: `label_replace(q0, "fp_query", "0", "", "") or …`. The
 * values are the queries' own (the label keeps the series of different queries apart, so `or`
 * drops nothing); a request costs more main-thread time than the evaluation it carries.
 */
export function combineQueries(exprs) {
  if (exprs.length === 1) return exprs[0];
  return exprs.map((e, i) => `label_replace(${e}, "fp_query", "${i}", "", "")`).join(' or ');
}

/** The combined result split back per query (n of them), the `fp_query` label removed. */
export function splitCombined(result, n) {
  const out = Array.from({ length: n }, () => ({ result: [] }));
  for (const r of result || []) {
    let i = 0;
    if (n > 1) {
      const { fp_query: q, ...metric } = r.metric || {};
      i = Number(q);
      r.metric = metric;
    }
    if (out[i]) out[i].result.push(r);
  }
  return out;
}

/** Prometheus-style series name: `up{instance="a", job="b"}`. */
export function seriesName(metric) {
  const name = metric.__name__ || '';
  const labels = Object.keys(metric)
    .filter((k) => k !== '__name__')
    .sort()
    .map((k) => `${k}="${metric[k]}"`);
  return labels.length ? `${name}{${labels.join(', ')}}` : name || '{}';
}

/**
 * Grafana legend template: "{{strategy}} {{outcome}}" with the series' labels. Missing labels
 * become empty; an empty result (or no template) falls back to the series name.
 */
export function legendName(template, metric) {
  if (!template) return seriesName(metric);
  const s = template
    .replace(/\{\{\s*([\w.]+)\s*\}\}/g, (_, k) => metric[k] ?? '')
    .replace(/\s+/g, ' ')
    .trim();
  return s || seriesName(metric);
}

/** A Prometheus sample value → number, or null for NaN/±Inf/unparsable (and ≤ 0 when log). */
export function sampleValue(str, log) {
  const v = +str;
  if (!Number.isFinite(v)) return null;
  return log && v <= 0 ? null : v;
}

/**
 * Aligns Prometheus range series to uPlot columns.
 * `series`: [{values: [[t, "v"], …]}] each sorted by time (t in seconds).
 * Returns [xs (Float64Array, the union of all timestamps), ys…] where each y is an array with
 * null where that series has no sample (gaps, stale or NaN points). With `step`, a run of
 * missing samples longer than 1.5 steps across every series gets one all-null timestamp so
 * lines break instead of bridging the gap.
 */
export function alignSeries(series, { step = 0, log = false } = {}) {
  let total = 0;
  for (const s of series) total += s.values.length;
  let xs;
  if (series.length === 1) {
    xs = new Float64Array(total);
    const v = series[0].values;
    for (let i = 0; i < total; i++) xs[i] = v[i][0];
  } else {
    const all = new Float64Array(total);
    let k = 0;
    for (const s of series) for (const p of s.values) all[k++] = p[0];
    all.sort();
    let n = 0;
    for (let i = 0; i < total; i++) if (i === 0 || all[i] !== all[n - 1]) all[n++] = all[i];
    xs = all.subarray(0, n);
  }
  if (step > 0 && xs.length > 1) {
    let gaps = 0;
    for (let i = 1; i < xs.length; i++) if (xs[i] - xs[i - 1] > step * 1.5) gaps++;
    if (gaps) {
      const out = new Float64Array(xs.length + gaps);
      let k = 0;
      for (let i = 0; i < xs.length; i++) {
        if (i > 0 && xs[i] - xs[i - 1] > step * 1.5) out[k++] = xs[i - 1] + step;
        out[k++] = xs[i];
      }
      xs = out;
    }
  }
  const n = xs.length;
  const data = [xs];
  for (const s of series) {
    const ys = new Array(n).fill(null);
    const v = s.values;
    let j = 0;
    for (let i = 0; i < v.length; i++) {
      const t = v[i][0];
      while (j < n && xs[j] < t) j++;
      if (j < n && xs[j] === t) ys[j] = sampleValue(v[i][1], log);
    }
    data.push(ys);
  }
  return data;
}

/** Number of non-null points of a column, stopping at 1 when `any`. */
export function countPoints(ys, any = false) {
  let c = 0;
  for (let i = 0; i < ys.length; i++) if (ys[i] != null && ++c && any) return 1;
  return c;
}

/** Last non-null value of a column (null when none). */
export function lastValue(ys) {
  for (let i = ys.length - 1; i >= 0; i--) if (ys[i] != null) return ys[i];
  return null;
}

/**
 * Annotations (runs) → the ones to draw on `board` within [fromMs, toMs], sorted by start:
 * each with `from`/`to` clipped to the range (running runs end at `nowMs`), `startMs`, `endMs`
 * (null while running) and `running`. Annotations without a board apply to every board.
 */
export function clipAnnotations(list, { fromMs, toMs, nowMs, board }) {
  const out = [];
  for (const a of list || []) {
    if (!a || !Number.isFinite(a.time)) continue;
    if (board && a.board && a.board !== board) continue;
    const running = a.timeEnd == null;
    const end = running ? Math.max(nowMs, a.time) : Math.max(a.timeEnd, a.time);
    if (end < fromMs || a.time > toMs) continue;
    out.push({
      id: String(a.id ?? ''),
      title: String(a.title ?? ''),
      text: String(a.text ?? ''),
      tags: a.tags || {},
      board: a.board ?? null,
      startMs: a.time,
      endMs: running ? null : a.timeEnd,
      running,
      from: Math.max(a.time, fromMs),
      to: Math.min(end, toMs),
    });
  }
  return out.sort((a, b) => a.startMs - b.startMs || (a.id < b.id ? -1 : 1));
}

// Ten distinct hues, each ≥ 3:1 against white (lines and legend swatches).
export const PALETTE = [
  '#1c7ed6', '#e8590c', '#2f9e44', '#7048e8', '#0c8599', '#d6336c', '#8c564b', '#ae3ec9',
  '#495057', '#b8860b',
];
const RED = '#e03131';
const AMBER = '#e67700';

function hash(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * Colours for a panel's series names: the same name gets the same colour on every panel
 * (hash into PALETTE, the next free one on a clash within the panel); 5xx red, 4xx amber.
 */
export function colorsFor(names) {
  const used = new Set();
  return names.map((name) => {
    if (/^5(\d\d|xx)$/.test(name)) return RED;
    if (/^4(\d\d|xx)$/.test(name)) return AMBER;
    let i = hash(name) % PALETTE.length;
    for (let k = 0; k < PALETTE.length && used.has(i); k++) i = (i + 1) % PALETTE.length;
    used.add(i);
    return PALETTE[i];
  });
}
