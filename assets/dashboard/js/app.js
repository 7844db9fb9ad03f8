// FastPick monitor dashboard: routing, boards, explore, refresh loop, target status.
import { api, queryInstant, queryRange } from './api.js';
import { Chart } from './chart.js';
import {
  buildHash, fromLocalInput, isRelative, parseDuration, parseHash, promDuration, refreshMs,
  resolveRange, shortDuration, toLocalInput,
} from './time.js';
import {
  alignSeries, clipAnnotations, colorsFor, combineQueries, computeStep, countPoints, legendName,
  rateInterval, scrapeIntervalOf, seriesName, splitCombined, substitute,
} from './transform.js';
import { formatDateTime, formatDurationMs, formatValue, unitName } from './units.js';

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const k in attrs) {
    const v = attrs[k];
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  e.append(...kids);
  return e;
};
const setAttr = (e, k, v) => {
  v = String(v);
  if (e.getAttribute(k) !== v) e.setAttribute(k, v);
};
const setText = (e, t) => {
  if (e.textContent !== t) e.textContent = t;
};
const yieldToMain = () =>
  globalThis.scheduler?.yield ? scheduler.yield() : new Promise((r) => setTimeout(r, 0));

// Renders run one per task, so no task grows long however many panels a board has.
let chain = Promise.resolve();
const inTurn = (fn) => {
  const p = chain.then(yieldToMain).then(fn);
  chain = p.catch(() => {});
  return p;
};

const CHART_H = 220;
const EXPLORE_H = 300;
const PRESETS = { 'now-5m': '5 minutes', 'now-15m': '15 minutes', 'now-30m': '30 minutes', 'now-1h': '1 hour', 'now-3h': '3 hours', 'now-6h': '6 hours', 'now-12h': '12 hours', 'now-24h': '24 hours' };
const UNIT_SHORT = { reqps: 'req/s', ops: 'ops/s', s: 'seconds', bytes: 'bytes', Bps: 'bytes/s', ratio: '%', short: '', cores: 'cores' };

let state = parseHash(location.hash);
let boards = null;
let view = null;
let scrape = null; // seconds, from /api/v1/targets
let targetsAt = 0;
let timer = 0;
let timerMs = 0;
let refreshes = 0;

// ---------------------------------------------------------------- targets / status strip

const statusTargets = $('#targets');
const statusRange = $('#range-info');

async function loadTargets(signal) {
  targetsAt = Date.now();
  try {
    const data = await api('api/v1/targets', null, signal);
    const list = data.activeTargets || [];
    const prev = scrape;
    scrape = scrapeIntervalOf(list, parseDuration);
    const up = list.filter((t) => t.health === 'up').length;
    const down = list.filter((t) => t.health !== 'up');
    let txt = list.length ? `${up}/${list.length} targets up` : 'No targets configured';
    if (list.length) txt += ` · scrape every ${shortDuration(scrape)}`;
    for (const t of down) {
      const name = `${t.labels?.job ?? '?'} ${t.labels?.instance ?? ''}`.trim();
      txt += ` · ${name} ${t.health || 'unknown'}${t.lastError ? ': ' + t.lastError : ''}`;
    }
    setText(statusTargets, txt);
    statusTargets.className = down.length ? 'bad' : 'good';
    if (prev !== scrape) syncControls();
  } catch (e) {
    if (e.name === 'AbortError') return;
    if (scrape == null) scrape = 15;
    setText(statusTargets, `Targets unavailable: ${e.message}`);
    statusTargets.className = 'bad';
  }
}

// ---------------------------------------------------------------- controls

const rangeSel = $('#range');
const refreshSel = $('#refresh-every');
const absForm = $('#abs');
const absFrom = $('#abs-from');
const absTo = $('#abs-to');
const absDetails = absForm.closest('details');

function go(next) {
  const h = buildHash({ ...state, ...next });
  if (h !== location.hash) location.hash = h;
}

function syncControls() {
  const preset = state.to === 'now' && PRESETS[state.from] ? state.from : 'custom';
  const custom = rangeSel.querySelector('[value=custom]');
  custom.hidden = preset !== 'custom';
  rangeSel.value = preset;

  const live = refreshSel.querySelector('[value=live]');
  setText(live, scrape ? `Live (every ${shortDuration(scrape)})` : 'Live (scrape interval)');
  let val = state.refresh;
  if (![...refreshSel.options].some((o) => o.value === val)) {
    refreshSel.append(el('option', { value: val, text: `Every ${val}` }));
  }
  refreshSel.value = val;
  const abs = !isRelative(state.to);
  refreshSel.disabled = abs;
  refreshSel.title = abs ? 'Auto refresh needs a range ending at now' : '';

  const r = resolveRange(state.from, state.to, Date.now());
  if (r && document.activeElement !== absFrom && document.activeElement !== absTo) {
    absFrom.value = toLocalInput(r.fromMs);
    absTo.value = toLocalInput(r.toMs);
  }
  for (const a of document.querySelectorAll('nav a[data-view]')) {
    const v = a.dataset.view;
    a.href = buildHash({ ...state, view: v, expr: v === 'explore' ? state.expr : '' });
    if (v === state.view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  armTimer();
}

rangeSel.addEventListener('change', () => {
  if (rangeSel.value !== 'custom') go({ from: rangeSel.value, to: 'now' });
});
refreshSel.addEventListener('change', () => go({ refresh: refreshSel.value }));
absForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const a = fromLocalInput(absFrom.value);
  const b = fromLocalInput(absTo.value);
  if (!(a < b)) {
    absTo.setCustomValidity('"To" must be after "From"');
    absTo.reportValidity();
    return;
  }
  absTo.setCustomValidity('');
  absDetails.open = false;
  go({ from: String(a), to: String(b) });
});
absTo.addEventListener('input', () => absTo.setCustomValidity(''));
// The absolute range popover closes on a click elsewhere and on Escape.
document.addEventListener('click', (e) => {
  if (absDetails.open && !absDetails.contains(e.target)) absDetails.open = false;
});
absDetails.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && absDetails.open) {
    absDetails.open = false;
    absDetails.querySelector('summary').focus();
  }
});
$('#refresh').addEventListener('click', () => view?.refresh('manual'));
const zoomTo = (a, b) => go({ from: String(a), to: String(b) });

// ---------------------------------------------------------------- refresh timer

function armTimer() {
  let ms = refreshMs(state, scrape ?? 15);
  // "Live" never polls faster than the step: nothing new can arrive in between.
  if (ms && state.refresh === 'live' && view?.step) ms = Math.max(ms, view.step * 1000);
  if (ms === timerMs) return;
  clearInterval(timer);
  timerMs = ms;
  timer = ms ? setInterval(tick, ms) : 0;
}

function tick() {
  if (document.hidden || !view || view.busy) return; // skip: previous refresh still in flight
  view.refresh('tick');
}
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && timerMs) tick();
});

// One refresh of a view: shared range arithmetic.
function rangeParams(width) {
  const now = Date.now();
  const r = resolveRange(state.from, state.to, now) || resolveRange('now-15m', 'now', now);
  const sc = scrape ?? 15;
  const rangeSec = (r.toMs - r.fromMs) / 1000;
  const step = computeStep(rangeSec, width, sc);
  const start = Math.floor(r.fromMs / 1000 / step) * step;
  let end = Math.floor(r.toMs / 1000 / step) * step;
  if (end <= start) end = start + step;
  const ri = rateInterval(step, sc);
  return { ...r, now, step, start, end, vars: { __rate_interval: promDuration(ri) }, ri, rangeSec, key: `${state.from}..${state.to}` };
}

function describeRange(p) {
  const label = state.to === 'now' && PRESETS[state.from]
    ? `Last ${PRESETS[state.from]}`
    : `${formatDateTime(p.fromMs)} → ${isRelative(state.to) ? 'now' : formatDateTime(p.toMs)}`;
  setText(statusRange, `${label} · step ${shortDuration(p.step)} · rate interval ${promDuration(p.ri)}`);
}

// ---------------------------------------------------------------- board view

class Panel {
  constructor(def, board) {
    this.def = def;
    this.board = board;
    this.visible = false;
    this.pending = null;
    this.stale = false;
    const tid = `t-${def.id}`;
    this.box = el('div', { class: 'chart', role: 'img', 'aria-label': `${def.title}: loading` });
    this.msg = el('p', { class: 'msg', text: 'Loading…' });
    this.legend = el('ul', { class: 'legend', 'aria-label': `Series of ${def.title} (toggle to hide or show)` });
    this.link = el('a', { class: 'explore', href: '#/explore' }, 'Explore', el('span', { class: 'sr', text: `: ${def.title}` }));
    this.el = el('section', { class: 'panel', 'data-panel': def.id, 'data-state': 'loading', 'data-series': '0', 'data-bands': '0', 'aria-labelledby': tid },
      el('div', { class: 'ph' }, el('h2', { id: tid, text: def.title }), el('span', { class: 'unit', text: UNIT_SHORT[def.unit] ?? '' }), this.link),
      el('div', { class: 'plot' }, this.box, this.msg),
      this.legend);
    this.chart = new Chart(this.box, this.legend, {
      unit: def.unit, log: def.scale === 'log', thresholds: def.thresholds || [], syncKey: board.board.id, height: CHART_H, onZoom: zoomTo,
      onBands: (n) => setAttr(this.el, 'data-bands', n),
    });
  }

  setState(s, message) {
    setAttr(this.el, 'data-state', s);
    this.msg.hidden = !message;
    if (message) setText(this.msg, message);
  }

  /**
   * In or near the viewport: draws what arrived while it was off screen, or fetches anew
   * when refreshes went by while it was off screen.
   */
  setVisible(v) {
    this.visible = v;
    if (!v) return;
    const d = this.pending;
    this.pending = null;
    if (this.stale) {
      this.stale = false;
      this.board.loadOne(this);
    } else if (d) {
      inTurn(() => !d.signal.aborted && this.draw(d.results, d.bands, d.p));
    }
  }

  /**
   * Fetches the panel's queries; resolves when drawn (in turn with the other panels). Off
   * screen, the data waits in `pending` (data-deferred) until the panel scrolls into view.
   */
  /** The panel's queries with the range's variables, its Explore link kept in step. */
  exprs(p) {
    const exprs = this.def.queries.map((q) => substitute(q.expr, p.vars));
    if (exprs.length) setAttr(this.link, 'href', buildHash({ view: 'explore', expr: exprs[0], from: state.from, to: state.to, refresh: state.refresh }));
    return exprs;
  }

  async load(p, bandsP, signal) {
    this.stale = false;
    let results;
    try {
      const exprs = this.exprs(p);
      const data = await queryRange(combineQueries(exprs), p.start, p.end, p.step, signal);
      results = splitCombined(data.result, exprs.length);
    } catch (e) {
      if (signal.aborted) return;
      return inTurn(() => {
        if (signal.aborted) return;
        this.setState('error', `Query failed: ${e.message}`);
        this.box.setAttribute('aria-label', `${this.def.title}: query failed`);
      });
    }
    return this.show(results, await bandsP, p, signal);
  }

  /** Draws results now (in turn) when on screen, or keeps them for when it scrolls in. */
  show(results, bands, p, signal) {
    if (signal.aborted) return;
    if (!this.visible) {
      this.pending = { results, bands, p, signal };
      setAttr(this.el, 'data-deferred', '1');
      return;
    }
    this.pending = null;
    return inTurn(() => {
      if (signal.aborted) return;
      return this.draw(results, bands, p);
    });
  }

  async draw(results, bands, p) {
    const def = this.def;
    const width = this.board.width;
    this.el.removeAttribute('data-deferred');
    const log = def.scale === 'log';
    const series = [];
    const seen = new Map();
    def.queries.forEach((q, qi) => {
      const res = results[qi]?.result || [];
      const named = res.map((r) => ({ name: legendName(q.legend, r.metric), values: r.values || [] }));
      named.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const s of named) {
        const n = seen.get(s.name) || 0;
        seen.set(s.name, n + 1);
        if (n) s.name += ` (${n + 1})`;
        series.push(s);
      }
    });
    const all = alignSeries(series, { step: p.step, log });
    const data = [all[0]];
    const names = [];
    for (let i = 0; i < series.length; i++) {
      if (countPoints(all[i + 1], true)) {
        data.push(all[i + 1]);
        names.push(series[i].name);
      }
    }
    setAttr(this.el, 'data-range', p.key);
    setAttr(this.el, 'data-series', names.length);
    if (!names.length) {
      this.chart.destroy();
      this.setState('empty', def.empty || 'No data in this range.');
      setAttr(this.box, 'aria-label', `${def.title}: no data. ${def.empty || ''}`.trim());
      return;
    }
    await this.chart.set({ names, colors: colorsFor(names), data, xMin: p.fromMs / 1000, xMax: p.toMs / 1000, bands }, width);
    this.setState('ok');
    const u = unitName(def.unit);
    setAttr(this.box, 'aria-label', `${def.title}${u ? ` (${u})` : ''}, chart of ${names.length} series: ${names.slice(0, 8).join(', ')}${names.length > 8 ? ', …' : ''}. Latest: ${names.slice(0, 4).map((n, i) => `${n} ${formatValue(def.unit, this.chart.last[i + 1])}`).join('; ')}.`);
  }
}

class BoardView {
  constructor(board) {
    this.board = board;
    this.busy = false;
    this.ctl = null;
    this.step = 0;
    this.width = 0;
    this.runsKey = null;
    this.runsError = null;
    this.annList = null;
    this.annAt = 0;
    this.annKey = '';
    this.panels = board.panels.map((d) => new Panel(d, this));
    // Panels draw when within half a screen of the viewport: a board of 12 charts costs what
    // the visible ones cost, and the rest draw as they scroll in.
    const byEl = new Map(this.panels.map((p) => [p.el, p]));
    this.io = new IntersectionObserver((entries) => {
      for (const e of entries) byEl.get(e.target)?.setVisible(e.isIntersecting);
    }, { rootMargin: '50% 0px' });
    this.grid = el('div', { class: 'grid' }, ...this.panels.map((p) => p.el));
    this.runsList = el('ol', { class: 'runs-list' });
    this.runsNote = el('p', { class: 'note', text: 'Loading runs…' });
    this.runs = el('section', { class: 'runs', 'data-testid': 'runs', 'aria-labelledby': 'runs-h' },
      el('h2', { id: 'runs-h', text: 'Load runs in this range' }), this.runsNote, this.runsList);
    this.root = el('div', { class: 'board' }, this.grid, this.runs);
    this.ro = new ResizeObserver(() => {
      const w = this.measure();
      if (w && w !== this.width) {
        this.width = w;
        for (const p of this.panels) p.chart.resize(w);
      }
    });
  }

  mount(container) {
    container.append(this.root);
    if (this.panels[0]) this.ro.observe(this.panels[0].box);
    for (const p of this.panels) this.io.observe(p.el);
  }

  measure() {
    return this.panels[0] ? Math.floor(this.panels[0].box.clientWidth) : 600;
  }

  destroy() {
    this.ctl?.abort();
    this.ro.disconnect();
    this.io.disconnect();
    for (const p of this.panels) p.chart.destroy();
    this.root.remove();
  }

  async refresh(reason) {
    this.ctl?.abort();
    const ctl = (this.ctl = new AbortController());
    const { signal } = ctl;
    this.busy = true;
    document.body.dataset.busy = '1';
    try {
      if (scrape == null) await targetsP;
      else if (Date.now() - targetsAt > 4500) loadTargets(signal);
      if (signal.aborted) return;
      if (!this.width) {
        // Let the new panels lay out and paint first; then measuring costs nothing.
        await new Promise((r) => {
          requestAnimationFrame(() => setTimeout(r, 0));
          setTimeout(r, 100);
        });
        if (signal.aborted) return;
        this.width = this.measure();
      }
      const p = rangeParams(this.width);
      this.step = p.step;
      describeRange(p);
      if (reason === 'range') for (const pn of this.panels) pn.setState('loading', pn.chart.u ? '' : 'Loading…');
      // Runs: asked for on every range change, and at most every 5 s on refreshes.
      const key = p.key;
      let listP;
      if (reason === 'range' || key !== this.annKey || p.now - this.annAt > 5000 || !this.annList) {
        this.annAt = p.now;
        this.annKey = key;
        listP = api('api/v1/annotations', { start: Math.floor(p.fromMs / 1000), end: Math.ceil(p.toMs / 1000) }, signal)
          .then((list) => {
            this.runsError = null;
            return (this.annList = list);
          })
          .catch((e) => {
            if (!signal.aborted) this.runsError = e.message;
            this.annAt = 0;
            return [];
          });
      } else listP = Promise.resolve(this.annList);
      const bandsP = listP.then((list) => clipAnnotations(list, { fromMs: p.fromMs, toMs: p.toMs, nowMs: p.now, board: this.board.id }));
      bandsP.then((bands) => !signal.aborted && this.renderRuns(bands));
      this.last = { p, bandsP, signal };
      if (reason === 'range') {
        // A new range: every panel, one request each, so the first ones draw early. Each
        // request starts in a task of its own: a fetch() costs main-thread time.
        const loads = [];
        for (const pn of this.panels) {
          await yieldToMain();
          if (signal.aborted) return;
          loads.push(pn.load(p, bandsP, signal));
        }
        await Promise.all(loads);
      } else {
        // A refresh: the panels on screen, all in one request (a request costs more main-thread
        // time than drawing a chart); those off screen fetch when they scroll in.
        // A panel whose query failed goes alone, so it does not fail the others' request.
        const shown = [];
        const alone = [];
        for (const pn of this.panels) {
          if (!pn.visible) pn.stale = true;
          else (pn.el.dataset.state === 'error' ? alone : shown).push(pn);
        }
        await Promise.all([this.loadBatch(shown, p, bandsP, signal), ...alone.map((pn) => pn.load(p, bandsP, signal))]);
      }
      if (signal.aborted) return;
      document.body.dataset.refreshes = String(++refreshes);
      armTimer();
    } finally {
      if (this.ctl === ctl) {
        this.busy = false;
        if (view === this) delete document.body.dataset.busy;
      }
    }
  }

  /** Panels' queries as one request; if it fails, each panel alone (to tell which failed). */
  async loadBatch(panels, p, bandsP, signal) {
    if (panels.length < 2) return Promise.all(panels.map((pn) => pn.load(p, bandsP, signal)));
    const all = [];
    const spans = panels.map((pn) => {
      const exprs = pn.exprs(p);
      all.push(...exprs);
      return exprs.length;
    });
    let split;
    try {
      const data = await queryRange(combineQueries(all), p.start, p.end, p.step, signal, true);
      split = splitCombined(data.result, all.length);
    } catch (e) {
      if (signal.aborted) return;
      return Promise.all(panels.map((pn) => pn.load(p, bandsP, signal)));
    }
    const bands = await bandsP;
    let k = 0;
    return Promise.all(panels.map((pn, i) => {
      const results = split.slice(k, (k += spans[i]));
      pn.stale = false;
      return pn.show(results, bands, p, signal);
    }));
  }

  /** A panel that scrolled in after refreshes passed it by: fetched alone, range as of now. */
  loadOne(pn) {
    if (!this.last || this.last.signal.aborted) return;
    const p = rangeParams(this.width);
    pn.load(p, this.last.bandsP.then(() => clipAnnotations(this.annList || [], { fromMs: p.fromMs, toMs: p.toMs, nowMs: p.now, board: this.board.id })), this.last.signal);
  }

  renderRuns(bands) {
    const key = (this.runsError || '') + bands.map((b) => `${b.id}:${b.endMs}:${b.title}:${b.text.length}`).join();
    if (key === this.runsKey) {
      // Durations of running runs still move.
      for (const b of bands) {
        if (b.running) {
          const d = this.runsList.querySelector(`[data-annotation-id="${CSS.escape(b.id)}"] .dur`);
          if (d) setText(d, `running for ${formatDurationMs(Date.now() - b.startMs)}`);
        }
      }
      return;
    }
    this.runsKey = key;
    this.runsList.textContent = '';
    setText(this.runsNote, this.runsError
      ? `Runs unavailable: ${this.runsError}`
      : bands.length ? `${bands.length} run${bands.length > 1 ? 's' : ''} of the load tool, drawn as shaded bands on the charts.` : 'No load runs in this range.');
    for (const b of bands) {
      const when = new Date(b.startMs);
      const li = el('li', { 'data-annotation-id': b.id },
        el('div', { class: 'run-head' },
          el('strong', { text: b.title || 'Run' }),
          el('time', { datetime: when.toISOString(), text: formatDateTime(b.startMs) }),
          el('span', { class: 'dur', text: b.running ? `running for ${formatDurationMs(Date.now() - b.startMs)}` : `took ${formatDurationMs(b.endMs - b.startMs)}` }),
          el('button', { type: 'button', class: 'link' }, 'Zoom to run', el('span', { class: 'sr', text: `: ${b.title}` }))));
      li.querySelector('button').addEventListener('click', () => {
        const end = b.endMs ?? Date.now();
        const pad = Math.max(10000, (end - b.startMs) * 0.1);
        zoomTo(Math.round(b.startMs - pad), Math.round(end + pad));
      });
      if (b.text) li.append(el('details', {}, el('summary', { text: 'Summary' }), el('pre', { text: b.text })));
      this.runsList.append(li);
    }
  }
}

// ---------------------------------------------------------------- explore view

class ExploreView {
  constructor() {
    this.busy = false;
    this.ctl = null;
    this.step = 0;
    this.width = 0;
    this.input = el('textarea', { id: 'expr', rows: '3', spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'expr-hint' });
    this.input.value = state.expr;
    this.form = el('form', { class: 'explore-form' },
      el('label', { for: 'expr', text: 'PromQL query' }),
      this.input,
      el('div', { class: 'row' },
        el('button', { type: 'submit', class: 'primary', text: 'Run query' }),
        el('span', { id: 'expr-hint', class: 'hint', text: 'Ctrl+Enter (⌘+Enter) runs. $__rate_interval is substituted.' })));
    this.error = el('p', { class: 'error', role: 'alert', hidden: true });
    this.box = el('div', { class: 'chart', role: 'img', 'aria-label': 'Query result graph' });
    this.msg = el('p', { class: 'msg', hidden: true });
    this.legend = el('ul', { class: 'legend tall', 'aria-label': 'Series (toggle to hide or show)' });
    this.graph = el('section', { class: 'panel wide', 'data-testid': 'explore-graph', 'data-state': 'empty', 'data-series': '0', 'aria-label': 'Graph' },
      el('div', { class: 'plot tall' }, this.box, this.msg), this.legend);
    this.caption = el('caption', { text: 'Instant values' });
    this.thead = el('thead');
    this.tbody = el('tbody');
    this.table = el('table', { 'data-testid': 'explore-table' }, this.caption, this.thead, this.tbody);
    this.root = el('div', { class: 'explore-view' }, this.form, this.error, this.graph, el('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Instant values' }, this.table));
    this.chart = new Chart(this.box, this.legend, { unit: 'short', log: false, thresholds: [], syncKey: null, height: EXPLORE_H, onZoom: zoomTo });
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      const expr = this.input.value.trim();
      if (expr === state.expr) this.refresh('manual');
      else go({ expr });
    });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.ro = new ResizeObserver(() => {
      const w = Math.floor(this.box.clientWidth);
      if (w && w !== this.width) {
        this.width = w;
        this.chart.resize(w);
      }
    });
  }

  mount(container) {
    container.append(this.root);
    this.ro.observe(this.box);
    if (!state.expr) this.input.focus();
  }

  destroy() {
    this.ctl?.abort();
    this.ro.disconnect();
    this.chart.destroy();
    this.root.remove();
  }

  async refresh(reason) {
    this.ctl?.abort();
    const ctl = (this.ctl = new AbortController());
    const { signal } = ctl;
    if (this.input.value.trim() !== state.expr && document.activeElement !== this.input) this.input.value = state.expr;
    if (!state.expr) {
      this.error.hidden = true;
      this.graph.dataset.state = 'empty';
      this.msg.hidden = false;
      this.msg.textContent = 'Type a PromQL query, e.g. up, and run it.';
      return;
    }
    this.busy = true;
    document.body.dataset.busy = '1';
    try {
      if (scrape == null) await targetsP;
      if (!this.width) this.width = Math.floor(this.box.clientWidth) || 600;
      const p = rangeParams(this.width);
      this.step = p.step;
      describeRange(p);
      const expr = substitute(state.expr, p.vars);
      if (reason !== 'tick') this.graph.dataset.state = 'loading';
      const [range, inst] = await Promise.allSettled([
        queryRange(expr, p.start, p.end, p.step, signal),
        queryInstant(expr, p.toMs / 1000, signal),
      ]);
      if (signal.aborted) return;
      await yieldToMain();
      const err = range.status === 'rejected' ? range.reason : inst.status === 'rejected' ? inst.reason : null;
      this.error.hidden = !err;
      if (err) this.error.textContent = `Query failed: ${err.message}`;
      if (range.status === 'fulfilled') await this.drawGraph(range.value, p);
      else {
        this.chart.destroy();
        this.graph.dataset.state = 'error';
        this.graph.dataset.series = '0';
      }
      await yieldToMain();
      if (signal.aborted) return;
      this.drawTable(inst.status === 'fulfilled' ? inst.value : null, p);
      document.body.dataset.refreshes = String(++refreshes);
      armTimer();
    } finally {
      if (this.ctl === ctl) {
        this.busy = false;
        if (view === this) delete document.body.dataset.busy;
      }
    }
  }

  async drawGraph(data, p) {
    const res = data.resultType === 'matrix' ? data.result : [];
    const series = res.map((r) => ({ name: seriesName(r.metric), values: r.values || [] }));
    series.sort((a, b) => (a.name < b.name ? -1 : 1));
    const all = alignSeries(series, { step: p.step });
    const names = [];
    const cols = [all[0]];
    series.forEach((s, i) => {
      if (countPoints(all[i + 1], true)) {
        names.push(s.name);
        cols.push(all[i + 1]);
      }
    });
    this.graph.dataset.series = String(names.length);
    if (!names.length) {
      this.chart.destroy();
      this.graph.dataset.state = 'empty';
      this.msg.hidden = false;
      this.msg.textContent = data.resultType === 'matrix' ? 'The query returned no data in this range.' : `A ${data.resultType} has no graph.`;
      return;
    }
    this.msg.hidden = true;
    await this.chart.set({ names, colors: colorsFor(names), data: cols, xMin: p.fromMs / 1000, xMax: p.toMs / 1000, bands: [] }, this.width);
    this.graph.dataset.state = 'ok';
    this.box.setAttribute('aria-label', `Graph of ${names.length} series: ${names.slice(0, 6).join(', ')}${names.length > 6 ? ', …' : ''}`);
  }

  drawTable(data, p) {
    this.caption.textContent = `Instant values at ${formatDateTime(p.toMs)}`;
    this.thead.textContent = '';
    this.tbody.textContent = '';
    if (!data) return;
    let rows;
    if (data.resultType === 'vector') rows = data.result.map((r) => ({ metric: r.metric, value: r.value[1] }));
    else if (data.resultType === 'matrix') rows = data.result.map((r) => ({ metric: r.metric, value: r.values.at(-1)?.[1] }));
    else rows = [{ metric: {}, value: Array.isArray(data.result) ? data.result[1] : String(data.result) }];
    const keys = [...new Set(rows.flatMap((r) => Object.keys(r.metric)))].sort((a, b) => (a === '__name__' ? -1 : b === '__name__' ? 1 : a < b ? -1 : 1));
    this.thead.append(el('tr', {}, ...keys.map((k) => el('th', { scope: 'col', text: k === '__name__' ? 'name' : k })), el('th', { scope: 'col', class: 'num', text: 'Value' })));
    if (!rows.length) {
      this.tbody.append(el('tr', {}, el('td', { colspan: String(keys.length + 1), text: 'No series at this instant.' })));
      return;
    }
    for (const r of rows) {
      this.tbody.append(el('tr', {}, ...keys.map((k) => el('td', { text: r.metric[k] ?? '' })), el('td', { class: 'num', text: r.value ?? '' })));
    }
  }
}

// ---------------------------------------------------------------- routing

const title = $('#title');
const desc = $('#desc');
const content = $('#content');

function mountView() {
  view?.destroy();
  view = null;
  if (state.view === 'explore') {
    setText(title, 'Explore');
    setText(desc, 'Run any PromQL query against the monitor: a graph over the time range and the values at its end.');
    document.title = 'Explore · FastPick monitor';
    view = new ExploreView();
  } else {
    const board = boards.find((b) => b.id === state.view) || boards[0];
    setText(title, board.title);
    setText(desc, board.description || '');
    document.title = `${board.title} · FastPick monitor`;
    view = new BoardView(board);
  }
  view.mount(content);
  view.refresh('range');
}

function onRoute() {
  const prev = state;
  state = parseHash(location.hash);
  const canonical = buildHash(state);
  if (canonical !== location.hash) history.replaceState(null, '', canonical);
  syncControls();
  if (!boards) return;
  if (!view || prev.view !== state.view) mountView();
  else if (prev.from !== state.from || prev.to !== state.to || prev.expr !== state.expr) view.refresh('range');
}

const targetsP = loadTargets();
addEventListener('hashchange', onRoute);
onRoute();
fetch('boards.json')
  .then((r) => {
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    return r.json();
  })
  .then((b) => {
    boards = b.boards;
    mountView();
  })
  .catch((e) => {
    content.append(el('p', { class: 'error', role: 'alert', text: `Could not load boards.json: ${e.message}` }));
  });
