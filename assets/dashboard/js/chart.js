// One uPlot chart with its own keyboard-accessible legend, run bands, threshold lines and
// drag-to-zoom. The instance is reused (setData) while the series stay the same.
import { byteIncrs, formatTicks, formatTimeTick, formatValue, linSplits, logSplits } from './units.js';
import { lastValue } from './transform.js';

const AXIS = '#3d4451';
const GRID = '#e4e7ec';
const FONT = '12px system-ui, -apple-system, "Segoe UI", sans-serif';
const SMALL = 11;
const BAND_FILL = 'rgba(76, 110, 245, 0.10)';
const BAND_EDGE = 'rgba(59, 91, 219, 0.55)';
const BAND_TEXT = '#364fc7';
const THRESHOLD = '#b02a37';

const sameNames = (a, b) => a.length === b.length && a.every((n, i) => n === b[i]);
const yieldToMain = () =>
  globalThis.scheduler?.yield ? scheduler.yield() : new Promise((r) => setTimeout(r, 0));

export class Chart {
  /**
   * box: the element the canvas goes in (fixed height); legend: a <ul>.
   * opts: {unit, log, thresholds, syncKey, height, onZoom(fromMs, toMs), onBands(count drawn)}
   */
  constructor(box, legend, opts) {
    this.box = box;
    this.legend = legend;
    this.o = opts;
    this.u = null;
    this.names = [];
    this.hidden = new Set();
    this.bands = [];
    this.xr = [0, 1];
    this.last = [];
    this.vals = [];
    this.idx = undefined;
    this.width = 0;
    this.drawnBands = 0;
  }

  /**
   * {names, colors, data: [xs, ...ys], xMin, xMax (s), bands: [{from, to, title}] (ms)}.
   * Same series: setData on the same instance. Otherwise a new instance, built in
   * one task and first drawn in the next (the first chart of a page is the costly one).
   */
  async set(d, width) {
    this.xr = [d.xMin, d.xMax];
    this.bands = d.bands || [];
    this.last = d.data.map((ys, i) => (i ? lastValue(ys) : null));
    if (this.u && !this.initing && sameNames(this.names, d.names)) {
      this.data = d.data;
      this.resize(width);
      this.u.setData(d.data);
      this.idx = undefined;
      this.legendValues();
      return;
    }
    this.destroy();
    this.names = d.names;
    this.colors = d.colors;
    this.data = d.data;
    this.width = width;
    let init;
    const u = (this.u = new uPlot(this.options(width), d.data, (self, go) => {
      this.box.append(self.root);
      init = go;
    }));
    this.initing = true;
    await yieldToMain();
    if (this.u !== u) return;
    this.initing = false;
    init();
    this.buildLegend();
  }

  resize(width) {
    if (this.u && !this.initing && width !== this.width) {
      this.width = width;
      this.u.setSize({ width, height: this.o.height });
    }
  }

  destroy() {
    if (this.u) this.u.destroy();
    this.u = null;
    this.initing = false;
    if (this.drawnBands) this.o.onBands?.(0);
    this.drawnBands = 0;
    this.legend.textContent = '';
    this.vals = [];
  }

  options(width) {
    const { unit, log, thresholds = [], syncKey, height } = this.o;
    const self = this;
    const yAxis = {
      stroke: AXIS,
      font: FONT,
      grid: { stroke: GRID, width: 1 },
      ticks: { stroke: GRID, width: 1, size: 4 },
      values: (u, ticks) => formatTicks(unit, ticks, log),
      incrs: !log && (unit === 'bytes' || unit === 'Bps') ? (u, i, min, max) => byteIncrs(min, max) : undefined,
      // Our own splits: decades on log axes (uPlot's loop never ends on a scale that is not
      // strictly positive), exact multiples of the increment otherwise.
      splits: (u, i, min, max, incr) => (log ? logSplits(min, max) : linSplits(min, max, incr)),
      size(u, values, i, cycle) {
        const axis = u.axes[i];
        if (cycle > 1) return axis._size;
        let longest = '';
        for (const v of values || []) if (v && v.length > longest.length) longest = v;
        u.ctx.font = axis.font[0];
        return Math.ceil(axis.ticks.size + axis.gap + u.ctx.measureText(longest).width / uPlot.pxRatio) + 6;
      },
    };
    return {
      width,
      height,
      legend: { show: false },
      padding: [12, null, 0, null],
      cursor: {
        // The crosshair follows across the board; a drag selection stays on its own chart.
        sync: syncKey ? { key: syncKey, scales: ['x', null], filters: { pub: (type) => type !== 'mousedown' && type !== 'mouseup' } } : undefined,
        drag: { x: true, y: false, setScale: false, dist: 4 },
        points: { size: 7 },
      },
      scales: {
        x: { time: true, range: () => self.xr },
        y: log
          ? { distr: 3, log: 10, range: (u, min, max) => self.yRange(min, max) }
          : { range: (u, min, max) => self.yRange(min, max) },
      },
      axes: [
        {
          stroke: AXIS,
          font: FONT,
          grid: { stroke: GRID, width: 1 },
          ticks: { stroke: GRID, width: 1, size: 4 },
          space: 64,
          size: 30,
          values: (u, ticks, i, space, incr) => ticks.map((t) => formatTimeTick(t, incr)),
        },
        yAxis,
      ],
      series: [
        {},
        ...this.names.map((name, i) => ({
          label: name,
          stroke: this.colors[i],
          width: 1.5,
          spanGaps: false,
          show: !this.hidden.has(name),
        })),
      ],
      hooks: {
        drawClear: [(u) => this.drawBands(u)],
        draw: [(u) => this.drawOverlay(u, thresholds)],
        setCursor: [() => this.legendValues()],
        setSelect: [(u) => this.zoom(u)],
      },
    };
  }

  yRange(min, max) {
    const { log, thresholds = [] } = this.o;
    // No data arrives as (null, null) or (Infinity, -Infinity); log scales need min > 0.
    if (min == null || max == null || !Number.isFinite(min) || !Number.isFinite(max) || min > max || (log && min <= 0)) {
      min = log ? 0.001 : 0;
      max = 1;
    }
    for (const t of thresholds) {
      if (log && !(t.value > 0)) continue;
      min = Math.min(min, t.value);
      max = Math.max(max, t.value);
    }
    if (log) return uPlot.rangeLog(min, max, 10, true);
    if (min === 0 && max === 0) return [0, 1];
    const r = uPlot.rangeNum(min, max, 0.1, true);
    // A ratio inside 0..1 stays inside 0..100 %.
    if (this.o.unit === 'ratio' && min >= 0 && max <= 1) return [Math.max(r[0], 0), Math.min(r[1], 1)];
    return r;
  }

  drawBands(u) {
    let drawn = 0;
    const c = u.ctx;
    const { left, top, width, height } = u.bbox;
    c.save();
    c.beginPath();
    c.rect(left, top, width, height);
    c.clip();
    for (const b of this.bands) {
      const x0 = u.valToPos(b.from / 1000, 'x', true);
      const x1 = u.valToPos(b.to / 1000, 'x', true);
      if (x1 < left || x0 > left + width) continue;
      drawn++;
      c.fillStyle = BAND_FILL;
      c.fillRect(x0, top, Math.max(x1 - x0, uPlot.pxRatio), height);
      c.fillStyle = BAND_EDGE;
      c.fillRect(x0, top, uPlot.pxRatio, height);
    }
    c.restore();
    if (drawn !== this.drawnBands) {
      this.drawnBands = drawn;
      this.o.onBands?.(drawn);
    }
  }

  drawOverlay(u, thresholds) {
    const c = u.ctx;
    const pr = uPlot.pxRatio;
    const { left, top, width, height } = u.bbox;
    c.save();
    c.beginPath();
    c.rect(left, top, width, height);
    c.clip();
    c.font = `${SMALL * pr}px system-ui, sans-serif`;
    c.textAlign = 'left';
    c.textBaseline = 'top';
    if (this.bands.length) {
      c.fillStyle = BAND_TEXT;
      // Titles of runs close together go on lines of their own instead of over each other.
      const lineEnds = [];
      for (const b of this.bands) {
        const x0 = u.valToPos(b.from / 1000, 'x', true);
        const w = c.measureText(b.title).width;
        // Inside the plot: a band that starts near the right edge has its title end there.
        const x = Math.max(left + 2 * pr, Math.min(x0 + 4 * pr, left + width - w - 4 * pr));
        let line = lineEnds.findIndex((end) => end < x);
        if (line < 0) line = lineEnds.length;
        lineEnds[line] = x + w + 6 * pr;
        c.fillText(b.title, x, top + (3 + line * (SMALL + 2)) * pr);
      }
    }
    if (thresholds.length) {
      const [lo, hi] = [u.scales.y.min, u.scales.y.max];
      c.textAlign = 'right';
      c.textBaseline = 'bottom';
      c.setLineDash([6 * pr, 4 * pr]);
      c.lineWidth = pr;
      c.strokeStyle = THRESHOLD;
      c.fillStyle = THRESHOLD;
      for (const t of thresholds) {
        if (t.value < lo || t.value > hi) continue;
        const y = Math.round(u.valToPos(t.value, 'y', true)) + 0.5;
        c.beginPath();
        c.moveTo(left, y);
        c.lineTo(left + width, y);
        c.stroke();
        c.fillText(t.label, left + width - 4 * pr, y - 2 * pr);
      }
    }
    c.restore();
  }

  zoom(u) {
    const { left, width } = u.select;
    if (width < 4 || !this.o.onZoom) return;
    const a = u.posToVal(left, 'x');
    const b = u.posToVal(left + width, 'x');
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    this.o.onZoom(Math.round(a * 1000), Math.round(b * 1000));
  }

  buildLegend() {
    const ul = this.legend;
    ul.textContent = '';
    this.vals = [null];
    this.names.forEach((name, k) => {
      const i = k + 1;
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.setAttribute('aria-pressed', String(!this.hidden.has(name)));
      b.title = 'Show or hide ' + name;
      const sw = document.createElement('span');
      sw.className = 'sw';
      sw.style.background = this.colors[k];
      const label = document.createElement('span');
      label.className = 'nm';
      label.textContent = name;
      const val = document.createElement('span');
      val.className = 'v';
      b.append(sw, label, val);
      b.addEventListener('click', () => {
        const show = this.hidden.has(name);
        if (show) this.hidden.delete(name);
        else this.hidden.add(name);
        b.setAttribute('aria-pressed', String(show));
        this.u?.setSeries(i, { show });
      });
      li.append(b);
      ul.append(li);
      this.vals.push(val);
    });
    this.idx = undefined;
    this.legendValues();
  }

  legendValues() {
    const u = this.u;
    if (!u) return;
    const idx = u.cursor.idx;
    if (idx === this.idx) return;
    this.idx = idx;
    const unit = this.o.unit;
    for (let i = 1; i < this.vals.length; i++) {
      const v = idx == null ? this.last[i] : this.data[i][idx];
      this.vals[i].textContent = formatValue(unit, v);
    }
  }
}
