// End-to-end check of the monitor's dashboard in Debian's Chromium (run by the Rust test
// harness after it started app, proxy and monitor and ran a race and a search):
//   MONITOR_URL=http://127.0.0.1:9191 ARTIFACT_DIR=/tmp/shots ALLOW_EMPTY=pg-locks \
//   EXPECT_ANNOTATION='race · db-lock' node tests/browser/dashboard.mjs
// Every panel of every board draws data; no console or page errors; the time picker, drag
// zoom and explore work; the expected run is listed and drawn as a band. Exit 0 or 1.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = (process.env.MONITOR_URL || '').replace(/\/+$/, '');
const ARTIFACTS = process.env.ARTIFACT_DIR || '';
const ALLOW_EMPTY = new Set((process.env.ALLOW_EMPTY || '').split(',').map((s) => s.trim()).filter(Boolean));
const EXPECT_ANNOTATION = process.env.EXPECT_ANNOTATION || '';
const BOARD_TIMEOUT = 60_000;
const TOTAL_TIMEOUT = 240_000;
const LAUNCH = {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
};

if (!BASE) {
  console.error('MONITOR_URL is not set');
  process.exit(2);
}
if (ARTIFACTS) mkdirSync(ARTIFACTS, { recursive: true });

// Explore's bad query. Chromium logs the 400s it gets in the console, by URL, and the
// console events may come after the page shows the error: they are told apart by URL.
const BAD_QUERY = 'sum(';
const BAD_QUERY_PARAM = new URLSearchParams({ query: BAD_QUERY }).toString();
const badQueryAnswer = (e) => /status of 4(00|22)/.test(e) && e.includes(`?${BAD_QUERY_PARAM}&`);

const failures = [];
const errors = [];
const log = (...a) => console.log(`[${((Date.now() - T0) / 1000).toFixed(1)}s]`, ...a);
const fail = (msg) => {
  failures.push(msg);
  console.log(`FAIL: ${msg}`);
};
const T0 = Date.now();

let browser = null;
const watchdog = setTimeout(async () => {
  console.log(`FAIL: the whole check took over ${TOTAL_TIMEOUT / 1000} s; giving up`);
  await Promise.race([browser?.close(), new Promise((r) => setTimeout(r, 5000))]).catch(() => {});
  process.exit(1);
}, TOTAL_TIMEOUT);

const panelStates = (page) => page.$$eval('section.panel[data-panel]', (ps) => ps.map((p) => ({
  id: p.dataset.panel, state: p.dataset.state, series: +p.dataset.series, range: p.dataset.range || '', deferred: !!p.dataset.deferred,
  canvas: !!p.querySelector('canvas'), msg: p.querySelector('.msg:not([hidden])')?.textContent || '',
})));

/**
 * Waits until every panel of the shown board is drawn: ok with series and a canvas (or empty
 * if allowed). With `range`, drawn for that range, and empty is fine too (a narrower range
 * may miss the runs) as long as one panel has data. Panels draw when they are on screen, so
 * this scrolls to the first one not drawn yet, like a reader would.
 */
async function waitPanels(page, what, range = null) {
  const drawn = (s) => s.state === 'ok' && s.series > 0 && s.canvas;
  const good = (s) => (range
    ? s.range === range && (drawn(s) || s.state === 'empty')
    : drawn(s) || (s.state === 'empty' && ALLOW_EMPTY.has(s.id)));
  const deadline = Date.now() + BOARD_TIMEOUT;
  for (;;) {
    const states = await panelStates(page);
    const bad = states.filter((s) => !good(s));
    // Those still waiting to be seen first.
    bad.sort((a, b) => (b.deferred || b.state === 'loading') - (a.deferred || a.state === 'loading'));
    if (states.length && !bad.length && (!range || states.some(drawn))) {
      await page.evaluate(() => window.scrollTo(0, 0));
      return true;
    }
    if (Date.now() > deadline) {
      fail(`${what}: panels not drawn within ${BOARD_TIMEOUT / 1000} s: ${bad.map((s) => `${s.id} (state ${s.state}, ${s.series} series, range ${s.range || '-'}${s.msg ? `: ${s.msg}` : ''})`).join('; ') || '(every panel is empty in that range)'}`);
      return false;
    }
    if (bad.length) await page.locator(`section.panel[data-panel="${bad[0].id}"]`).scrollIntoViewIfNeeded({ timeout: 5000 }).catch(() => {});
    await page.waitForTimeout(250);
  }
}

async function shot(page, name) {
  if (!ARTIFACTS) return;
  await page.screenshot({ path: join(ARTIFACTS, name), fullPage: true }).catch((e) => fail(`screenshot ${name}: ${e.message}`));
}

const hashParams = (page) => new URLSearchParams(new URL(page.url()).hash.replace(/^#\/\w+\??/, ''));

async function main() {
  browser = await chromium.launch(LAUNCH);
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console error: ${m.text()} ${m.location()?.url || ''}`.trim());
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.stack || e.message}`));

  const boards = await (await fetch(`${BASE}/boards.json`)).json().catch((e) => {
    throw new Error(`GET ${BASE}/boards.json: ${e.message}`);
  });

  // 1. Every board draws every panel.
  await page.goto(`${BASE}/#/race?from=now-15m&to=now`, { waitUntil: 'domcontentloaded' });
  for (const board of boards.boards) {
    if (!page.url().includes(`#/${board.id}`)) await page.click(`nav a[data-view="${board.id}"]`);
    log(`board ${board.id}: waiting for ${board.panels.length} panels`);
    await page.waitForFunction(({ n, title }) => document.querySelectorAll('section.panel[data-panel]').length === n
      && document.querySelector('h1')?.textContent === title, { n: board.panels.length, title: board.title }, { timeout: BOARD_TIMEOUT });
    const ids = await page.$$eval('section.panel[data-panel]', (ps) => ps.map((p) => p.dataset.panel));
    const want = board.panels.map((p) => p.id);
    if (ids.join() !== want.join()) fail(`board ${board.id}: panels ${ids.join()} ≠ boards.json ${want.join()}`);
    const ok = await waitPanels(page, `board ${board.id}`);
    // Charts are images with a text alternative.
    const unlabelled = await page.$$eval('section.panel .chart', (cs) => cs.filter((c) => c.getAttribute('role') !== 'img' || !c.getAttribute('aria-label')).length);
    if (unlabelled) fail(`board ${board.id}: ${unlabelled} charts without role=img and aria-label`);
    if (ok) log(`board ${board.id}: all panels drawn`);
    await page.waitForTimeout(300);
    await shot(page, `board-${board.id}.png`);

    // 2. The run is listed and drawn as a band.
    if (board.id === 'race' && EXPECT_ANNOTATION) {
      try {
        await page.waitForFunction((t) => [...document.querySelectorAll('[data-testid="runs"] [data-annotation-id]')].some((li) => li.textContent.includes(t)), EXPECT_ANNOTATION, { timeout: 20_000, polling: 250 });
        log(`runs list shows "${EXPECT_ANNOTATION}"`);
      } catch {
        const listed = await page.$$eval('[data-testid="runs"] [data-annotation-id]', (ls) => ls.map((l) => l.querySelector('strong')?.textContent));
        const note = await page.textContent('[data-testid="runs"] .note').catch(() => '');
        fail(`runs list of the race board lacks "${EXPECT_ANNOTATION}" (lists: ${JSON.stringify(listed)}; ${note})`);
      }
      const bands = await page.$$eval('section.panel[data-state="ok"]', (ps) => ps.map((p) => [p.dataset.panel, +p.dataset.bands]));
      const without = bands.filter(([, n]) => !(n > 0)).map(([id]) => id);
      if (!bands.length || without.length) fail(`race board: panels without a run band drawn: ${without.join(', ') || '(no panels)'}`);
      else log(`run bands drawn on ${bands.length} panels`);
    }

    if (board.id === 'race' && ok) {
      // 3. Time picker: a preset.
      await page.selectOption('#range', 'now-5m');
      try {
        await page.waitForFunction(() => location.hash.includes('from=now-5m') && location.hash.includes('to=now'), null, { timeout: 10_000 });
      } catch {
        fail(`picking "Last 5 minutes" did not change the URL (${page.url()})`);
      }
      if (await waitPanels(page, 'race board after "Last 5 minutes"', 'now-5m..now')) log('preset 5m applied');
      const info = await page.textContent('#range-info');
      if (!/Last 5 minutes/.test(info)) fail(`range info does not say "Last 5 minutes": ${info}`);

      // 4. Time picker: an absolute range, the last 2 minutes as fixed times (a test's lab
      // is only a minute or two old, and the drag below zooms into its second half).
      const abs = await page.evaluate(() => {
        const p = (n) => String(n).padStart(2, '0');
        // As the input writes its value back: Chromium drops ":00" seconds, and playwright
        // refuses a fill whose value reads back differently.
        const f = (ms) => {
          const d = new Date(ms);
          const secs = d.getSeconds() ? `:${p(d.getSeconds())}` : '';
          return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}${secs}`;
        };
        const to = Math.ceil(Date.now() / 1000) * 1000;
        const from = to - 120_000;
        return { from, to, fromIn: f(from), toIn: f(to) };
      });
      await page.click('details.abs summary');
      await page.getByLabel('From', { exact: true }).fill(abs.fromIn);
      await page.getByLabel('To', { exact: true }).fill(abs.toIn);
      await page.getByRole('button', { name: 'Apply' }).click();
      try {
        await page.waitForFunction((a) => location.hash.includes(`from=${a.from}`) && location.hash.includes(`to=${a.to}`), abs, { timeout: 10_000 });
      } catch {
        fail(`absolute range ${abs.fromIn} → ${abs.toIn} did not reach the URL (${page.url()})`);
      }
      if (await waitPanels(page, 'race board after an absolute range', `${abs.from}..${abs.to}`)) log('absolute range applied');
      if (!(await page.isDisabled('#refresh-every'))) fail('auto refresh is still enabled on an absolute range');

      // 5. Drag on a chart zooms to the selection.
      const over = page.locator('section.panel[data-state="ok"] .u-over').first();
      if (!(await over.count())) fail('no chart to drag on');
      else {
        await over.scrollIntoViewIfNeeded();
        const box = await over.boundingBox();
        const y = box.y + box.height / 2;
        // The second half: the runs just before this check are in it.
        await page.mouse.move(box.x + box.width * 0.5, y);
        await page.mouse.down();
        await page.mouse.move(box.x + box.width * 0.75, y, { steps: 5 });
        await page.mouse.move(box.x + box.width * 0.98, y, { steps: 5 });
        await page.mouse.up();
        try {
          await page.waitForFunction((a) => {
            const q = new URLSearchParams(location.hash.split('?')[1] || '');
            const f = +q.get('from');
            const t = +q.get('to');
            return f > a.from && t < a.to && f < t;
          }, abs, { timeout: 10_000 });
          const q = hashParams(page);
          const z = `${q.get('from')}..${q.get('to')}`;
          if (await waitPanels(page, 'race board after a drag zoom', z)) log(`drag zoom applied (${z})`);
        } catch {
          fail(`dragging across a chart did not zoom into ${abs.from}..${abs.to} (${page.url()})`);
        }
      }

      // 6. A panel's Explore link carries its query, $__rate_interval substituted.
      const href = await page.getAttribute('section.panel[data-panel] a.explore', 'href');
      const q = new URLSearchParams((href || '').split('?')[1] || '');
      if (!href?.startsWith('#/explore?') || !q.get('expr') || q.get('expr').includes('$__')) fail(`panel Explore link is wrong: ${href}`);

      // 7. The race runs, all together and each alone: a picture per strategy to compare.
      const listed = await fetch(`${BASE}/api/v1/annotations`).then((r) => r.json()).catch(() => null);
      const races = (listed?.data || []).filter((a) => a.board === 'race' && a.timeEnd);
      const views = [];
      if (races.length) {
        const from = Math.min(...races.map((a) => a.time)) - 15_000;
        const to = Math.max(...races.map((a) => a.timeEnd)) + 15_000;
        views.push({ name: 'race-runs.png', from, to });
      }
      for (const a of races) {
        const pad = Math.max(10_000, (a.timeEnd - a.time) * 0.1);
        const tag = (a.tags?.strategy || a.id).replace(/[^a-z0-9-]/gi, '_');
        views.push({ name: `race-run-${tag}.png`, from: Math.round(a.time - pad), to: Math.round(a.timeEnd + pad) });
      }
      for (const v of views) {
        await page.goto(`${BASE}/#/race?from=${v.from}&to=${v.to}`);
        if (await waitPanels(page, `race board over ${v.name}`, `${v.from}..${v.to}`)) await shot(page, v.name);
      }
      await page.goto(`${BASE}/#/race?from=now-5m&to=now`);
    }
  }

  // 7. Explore: type `up`, run with Ctrl+Enter, see the table and the graph.
  await page.click('nav a[data-view="explore"]');
  const box = page.getByLabel('PromQL query');
  await box.fill('up');
  await box.press('Control+Enter');
  try {
    await page.waitForFunction(() => location.hash.startsWith('#/explore?') && new URLSearchParams(location.hash.split('?')[1]).get('expr') === 'up', null, { timeout: 10_000 });
    await page.waitForFunction(() => {
      const rows = document.querySelectorAll('[data-testid="explore-table"] tbody tr');
      const g = document.querySelector('[data-testid="explore-graph"]');
      return rows.length >= 1 && rows[0].querySelectorAll('td').length >= 2 && g?.querySelector('canvas') && g.dataset.state === 'ok';
    }, null, { timeout: BOARD_TIMEOUT, polling: 250 });
    const rows = await page.$$eval('[data-testid="explore-table"] tbody tr', (r) => r.length);
    log(`explore: ${rows} rows for "up" and a graph`);
  } catch {
    const err = await page.textContent('.error').catch(() => '');
    fail(`explore "up": no table rows and graph (${page.url()})${err ? `: ${err}` : ''}`);
  }
  // A bad query shows the API's error (Chromium logs its 400s in the console: expected).
  await box.fill(BAD_QUERY);
  await page.getByRole('button', { name: 'Run query' }).click();
  try {
    await page.waitForFunction(() => {
      const e = document.querySelector('.explore-view .error');
      return e && !e.hidden && /failed/i.test(e.textContent);
    }, null, { timeout: 20_000 });
  } catch {
    fail('explore: a bad query shows no error');
  }
  await box.fill('up');
  await box.press('Control+Enter');
  await page.waitForFunction(() => document.querySelector('[data-testid="explore-graph"]')?.dataset.state === 'ok' && document.querySelector('.explore-view .error').hidden, null, { timeout: BOARD_TIMEOUT }).catch(() => fail('explore: "up" after an error did not draw again'));
  await page.waitForTimeout(300);
  await shot(page, 'explore.png');
}

try {
  await main();
} catch (e) {
  fail(`unexpected: ${e.stack || e.message}`);
} finally {
  for (const e of errors.filter((e) => !badQueryAnswer(e))) fail(e);
  await browser?.close().catch(() => {});
  clearTimeout(watchdog);
}
if (failures.length) {
  console.log(`\n${failures.length} failure(s):\n- ${failures.join('\n- ')}`);
  process.exit(1);
}
console.log(`dashboard OK in ${((Date.now() - T0) / 1000).toFixed(1)} s${ARTIFACTS ? `; screenshots in ${ARTIFACTS}` : ''}`);
