// Human formatting of values by panel unit (boards.json `unit`). Pure: no DOM.
// Units: reqps, ops, s, bytes, Bps, ratio (0..1 shown as %), short, cores.

const SI = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
const IEC = [[2 ** 40, 'TiB'], [2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']];
const TIME = [[3600, 'h'], [60, 'min'], [1, 's'], [1e-3, 'ms'], [1e-6, 'µs'], [1e-9, 'ns']];

const NAMES = {
  reqps: 'requests per second', ops: 'operations per second', s: 'seconds',
  bytes: 'bytes', Bps: 'bytes per second', ratio: 'percent', short: '', cores: 'CPU cores',
};

/** Spoken unit name for aria labels ("" when none). */
export const unitName = (unit) => NAMES[unit] ?? '';

// A scale for |v|: [divisor, suffix]. `ref` is the magnitude that picks the scale.
function scaleFor(unit, ref) {
  const a = Math.abs(ref);
  switch (unit) {
    case 's': {
      if (a === 0) return [1, ' s'];
      for (const [d, u] of TIME) if (a >= d * 0.9995) return [d, ' ' + u];
      return [1e-9, ' ns'];
    }
    case 'bytes':
    case 'Bps': {
      const tail = unit === 'Bps' ? '/s' : '';
      for (const [d, u] of IEC) if (a >= d * 0.9995) return [d, ' ' + u + tail];
      return [1, ' B' + tail];
    }
    case 'ratio':
      return [0.01, '%'];
    default: {
      const tail = unit === 'reqps' ? ' req/s' : unit === 'ops' ? ' ops/s' : unit === 'cores' ? ' cores' : '';
      for (const [d, u] of SI) if (a >= d * 0.9995) return [d, u + tail];
      return [1, tail];
    }
  }
}

function trimZeros(s) {
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

/** One value, about 3 significant digits, e.g. 0.0123 s → "12.3 ms", 1536 bytes → "1.5 KiB". */
export function formatValue(unit, v) {
  if (v == null || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  const [d, suffix] = scaleFor(unit, v);
  const x = v / d;
  const a = Math.abs(x);
  const dec = a === 0 || a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return trimZeros(x.toFixed(dec)) + suffix;
}

/**
 * Axis tick labels: one scale for all ticks (picked by the largest tick), decimals from the
 * ticks, so ticks read 0, 50 ms, 100 ms (zero is plain "0"). With `log`, each tick alone.
 * Null ticks (filtered by uPlot) stay "".
 */
export function formatTicks(unit, ticks, log = false) {
  if (log) return ticks.map((t) => (t == null ? '' : formatValue(unit, t)));
  let ref = 0;
  for (const t of ticks) if (t != null && Math.abs(t) > ref) ref = Math.abs(t);
  const [d, suffix] = scaleFor(unit, ref);
  // Fewest decimals that show every tick exactly (2.5k, 5k, 7.5k → 2.5k, 5.0k, 7.5k).
  let dec = 0;
  for (; dec < 4; dec++) {
    const m = 10 ** dec;
    if (ticks.every((t) => t == null || Math.abs((t / d) * m - Math.round((t / d) * m)) < 1e-6 * Math.max(1, Math.abs((t / d) * m)))) break;
  }
  return ticks.map((t) => (t == null ? '' : t === 0 ? '0' : (t / d).toFixed(dec) + suffix));
}

/** Duration in ms as "1h 02m", "2m 05s", "4.2s" (for run lists). */
export function formatDurationMs(ms) {
  if (!(ms >= 0)) return '–';
  const s = ms / 1000;
  if (s < 10) return trimZeros(s.toFixed(1)) + 's';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  const p2 = (n) => String(n).padStart(2, '0');
  if (h) return `${h}h ${p2(m)}m`;
  if (m) return `${m}m ${p2(sec)}s`;
  return `${sec}s`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n) => String(n).padStart(2, '0');

/**
 * Time axis tick (unix seconds, local time) for a tick spacing of `incr` seconds: "14:05:30"
 * under a minute, "14:05" under a day ("Dec 1" at midnight), "Dec 1" from a day up.
 */
export function formatTimeTick(sec, incr) {
  const d = new Date(sec * 1000);
  const day = `${MONTHS[d.getMonth()]} ${d.getDate()}`;
  if (incr >= 86400) return day;
  const hm = `${p2(d.getHours())}:${p2(d.getMinutes())}`;
  if (incr < 60) return `${hm}:${p2(d.getSeconds())}`;
  return hm === '00:00' ? day : hm;
}

/** unix ms → "Dec 1 21:05:07" (local time), for run lists and range labels. */
export function formatDateTime(ms) {
  const d = new Date(ms);
  return `${MONTHS[d.getMonth()]} ${d.getDate()} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
}

const NICE = [];
for (let e = -3; e <= 3; e++) for (const m of [1, 2, 5]) NICE.push(m * 10 ** e);

/**
 * Axis tick increments for bytes: decimal-nice in the binary unit the axis shows (that of the
 * larger end), so a 1.0–1.25 MiB axis ticks at 0.05 MiB, not at 50,000 B.
 */
export function byteIncrs(min, max) {
  const a = Math.max(Math.abs(min) || 0, Math.abs(max) || 0);
  const level = a >= 1024 ? Math.min(4, Math.floor(Math.log2(a) / 10)) : 0;
  const base = 1024 ** level;
  return NICE.filter((m) => level > 0 || m >= 1).map((m) => m * base);
}

/** Log axis ticks: the powers of ten within [min, max] (min > 0), at most 40. */
export function logSplits(min, max) {
  if (!(min > 0) || !(max >= min) || !Number.isFinite(max)) return [];
  const out = [];
  for (let e = Math.ceil(Math.log10(min) - 1e-9); out.length < 40; e++) {
    const v = Number(`1e${e}`);
    if (v > max * (1 + 1e-9)) break;
    out.push(v);
  }
  return out;
}

/** Linear axis ticks: k × incr within [min, max] (no accumulated float error), at most 200. */
export function linSplits(min, max, incr) {
  if (!(incr > 0) || !Number.isFinite(min) || !Number.isFinite(max) || max < min) return [];
  const out = [];
  for (let k = Math.ceil(min / incr - 1e-9); out.length < 200; k++) {
    const v = k * incr;
    if (v > max + incr * 1e-9) break;
    out.push(v === 0 ? 0 : v);
  }
  return out;
}
