// Main-thread cost of one board refresh, and the bytes of JS + CSS the dashboard transfers.
//   MONITOR_URL=http://127.0.0.1:9191 node tests/browser/measure.mjs [board] [runs]
// (MEASURE_HEIGHT=1000 measures a 1400×1000 window instead, where only on-screen panels redraw.)
// Loads #/<board>?from=now-1h&to=now&refresh=off in a 1400×3200 viewport (every panel on
// screen, so every panel redraws), waits for every panel, then clicks Refresh
// (data-testid="refresh") `runs` times (default 10). Per refresh: CDP Performance metrics
// (TaskDuration, ScriptDuration, LayoutDuration, RecalcStyleDuration) before and after it
// settles (body[data-refreshes] moves on once every panel is drawn), and the wall time.
import { chromium } from 'playwright-core';

const BASE = (process.env.MONITOR_URL || '').replace(/\/+$/, '');
const BOARD = process.argv[2] || 'race';
const RUNS = +(process.argv[3] || 10);
if (!BASE) {
  console.error('MONITOR_URL is not set');
  process.exit(2);
}

let browser = null;
const watchdog = setTimeout(async () => {
  console.error('measure: gave up after 180 s');
  await Promise.race([browser?.close(), new Promise((r) => setTimeout(r, 5000))]).catch(() => {});
  process.exit(1);
}, 180_000);

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const pad = (v, n = 9) => String(v).padStart(n);
let code = 0;

try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  // Tall enough for every panel to be on screen: panels off screen do not redraw, and the
  // point is the cost of refreshing the whole board.
  const page = await browser.newPage({ viewport: { width: 1400, height: +(process.env.MEASURE_HEIGHT || 3200) } });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const encoding = new Map();
  cdp.on('Network.responseReceived', (e) => {
    encoding.set(e.response.url, e.response.headers['content-encoding'] || e.response.headers['Content-Encoding'] || 'identity');
  });
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));

  await page.goto(`${BASE}/#/${BOARD}?from=now-1h&to=now&refresh=off`);
  await page.waitForFunction(() => {
    const ps = [...document.querySelectorAll('section.panel[data-panel]')];
    // Drawn, or (MEASURE_HEIGHT smaller than the board) waiting off screen for its turn.
    return ps.length && ps.every((p) => p.dataset.state === 'ok' || p.dataset.state === 'empty' || p.dataset.deferred) && +document.body.dataset.refreshes >= 1;
  }, null, { timeout: 90_000, polling: 250 });
  const states = await page.$$eval('section.panel[data-panel]', (ps) => ps.map((p) => `${p.dataset.panel}:${p.dataset.state}:${p.dataset.series}`));
  const empty = states.filter((s) => !s.includes(':ok:'));
  console.log(`board ${BOARD}: ${states.length} panels${empty.length ? `; empty: ${empty.map((s) => s.split(':')[0]).join(', ')}` : ', all with data'}`);
  console.log(`range info: ${await page.textContent('#range-info')}`);
  await cdp.send('Performance.enable', { timeDomain: 'threadTicks' }).catch(() => cdp.send('Performance.enable'));
  const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));

  const rows = [];
  for (let i = 0; i < RUNS; i++) {
    await page.waitForTimeout(400);
    const a = await metrics();
    const wall = await page.evaluate(() => new Promise((resolve, reject) => {
      const n = +document.body.dataset.refreshes;
      const t0 = performance.now();
      const obs = new MutationObserver(() => {
        if (+document.body.dataset.refreshes > n && !document.body.dataset.busy) {
          obs.disconnect();
          // One more frame: what the refresh painted is part of it.
          requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - t0), 0));
        }
      });
      obs.observe(document.body, { attributes: true });
      document.querySelector('[data-testid="refresh"]').click();
      setTimeout(() => reject(new Error('refresh did not finish in 30 s')), 30_000);
    }));
    const b = await metrics();
    const d = (k) => ((b[k] ?? 0) - (a[k] ?? 0)) * 1000;
    rows.push({ task: d('TaskDuration'), script: d('ScriptDuration'), layout: d('LayoutDuration'), style: d('RecalcStyleDuration'), wall });
  }
  console.log(`\none refresh of ${BOARD} (1 h range), ${RUNS} runs, ms of main thread:`);
  console.log(`${'run'.padStart(5)}${pad('task')}${pad('script')}${pad('layout')}${pad('style')}${pad('wall')}`);
  rows.forEach((r, i) => console.log(`${pad(i + 1, 5)}${pad(r.task.toFixed(1))}${pad(r.script.toFixed(1))}${pad(r.layout.toFixed(1))}${pad(r.style.toFixed(1))}${pad(r.wall.toFixed(1))}`));
  for (const [label, f] of [['median', median], ['max', (a) => Math.max(...a)]]) {
    console.log(`${label.padStart(6)}${pad(f(rows.map((r) => r.task)).toFixed(1), 8)}${pad(f(rows.map((r) => r.script)).toFixed(1))}${pad(f(rows.map((r) => r.layout)).toFixed(1))}${pad(f(rows.map((r) => r.style)).toFixed(1))}${pad(f(rows.map((r) => r.wall)).toFixed(1))}`);
  }

  // What the page transferred for JS and CSS (encoded body bytes, as served).
  const res = await page.evaluate(() => performance.getEntriesByType('resource')
    .filter((e) => /\.(m?js|css)(\?|$)/.test(e.name))
    .map((e) => ({ name: e.name, encoded: e.encodedBodySize, decoded: e.decodedBodySize })));
  console.log('\nJS + CSS transferred (encoded body bytes):');
  let total = 0;
  for (const r of res) {
    total += r.encoded;
    const path = new URL(r.name).pathname;
    console.log(`${pad(r.encoded, 8)} ${pad(r.decoded, 8)} decoded  ${(encoding.get(r.name) || '?').padEnd(8)} ${path}`);
  }
  console.log(`${pad(total, 8)} total (${(total / 1024).toFixed(1)} KiB)`);
  if (!res.every((r) => encoding.get(r.name) && encoding.get(r.name) !== 'identity')) {
    console.log('note: some files were served uncompressed; `gzip -9 -c file | wc -c` gives the compressed size');
  }
} catch (e) {
  console.error(`measure failed: ${e.stack || e.message}`);
  code = 1;
} finally {
  await browser?.close().catch(() => {});
  clearTimeout(watchdog);
}
process.exit(code);
