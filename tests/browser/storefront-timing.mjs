// Time from navigation to the first coupon card, cold (new browser profile, empty cache) and
// warm (same profile, cache filled by an earlier visit), median of RUNS each; and the JS + CSS
// the page loads: bytes on the wire as the browser took them, and as gzip.
//   BASE_URL=http://127.0.0.1:8080 [CARD='ul.cards > li.card:not(.skeleton)'] [RUNS=7] \
//   [PAGE_PATH=/] node tests/browser/storefront-timing.mjs
// Works on any storefront: CARD is a CSS selector of a coupon card (for the original SPA,
// `a[href^="/coupon/"]`). The clock is the page's own (performance.now(), from navigation
// start) read by a MutationObserver the moment the first card is in the DOM. Prints a table,
// then one `RESULT {json}` line for the bench.
import http from 'node:http';
import { chromium } from 'playwright-core';

const BASE = (process.env.BASE_URL || '').replace(/\/+$/, '');
const CARD = process.env.CARD || 'ul.cards > li.card:not(.skeleton)';
const RUNS = Math.max(1, +(process.env.RUNS || 7));
const PATH = process.env.PAGE_PATH || '/';
if (!BASE) {
  console.error('BASE_URL is not set');
  process.exit(2);
}

let browser = null;
const watchdog = setTimeout(async () => {
  console.error('storefront-timing: gave up after 240 s');
  await Promise.race([browser?.close(), new Promise((r) => setTimeout(r, 5000))]).catch(() => {});
  process.exit(1);
}, 240_000);

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Records when the first card appears, on the page's clock. */
function watchFirstCard(selector) {
  const seen = () => {
    if (window.__firstCardSeen == null && document.querySelector(selector)) {
      window.__firstCardSeen = performance.now();
      return true;
    }
    return false;
  };
  new MutationObserver((_, obs) => seen() && obs.disconnect()).observe(document, { childList: true, subtree: true });
}

/** Loads the page once in `context`: ms to first card, and the JS/CSS resources. */
async function once(context) {
  const page = await context.newPage();
  await page.addInitScript(watchFirstCard, CARD);
  await page.goto(BASE + PATH, { waitUntil: 'commit' });
  await page.waitForFunction(() => window.__firstCardSeen != null, null, { timeout: 30_000, polling: 50 });
  const ms = await page.evaluate(() => window.__firstCardSeen);
  await page.waitForLoadState('load');
  const resources = await page.evaluate(() => performance.getEntriesByType('resource')
    .filter((r) => /\.(m?js|css)(\?|$)/.test(new URL(r.name).pathname))
    .map((r) => ({ url: r.name, transfer: r.transferSize, body: r.encodedBodySize })));
  await page.close();
  return { ms, resources };
}

/** The body length of a URL asked for with Accept-Encoding: gzip, as sent (not decoded). */
function gzipBytes(url) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
      let n = 0;
      res.on('data', (c) => { n += c.length; });
      res.on('end', () => resolve({ bytes: n, encoding: res.headers['content-encoding'] || 'identity' }));
    }).on('error', reject);
  });
}

try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const viewport = { width: 1280, height: 900 };
  // A throwaway first load: the server's own caches and the browser's code are warm after it.
  const warmup = await browser.newContext({ viewport });
  await once(warmup);
  await warmup.close();

  const cold = [];
  let coldResources = [];
  for (let i = 0; i < RUNS; i++) {
    const ctx = await browser.newContext({ viewport });
    const r = await once(ctx);
    cold.push(r.ms);
    coldResources = r.resources;
    await ctx.close();
  }
  const ctx = await browser.newContext({ viewport });
  await once(ctx);
  const warm = [];
  let warmResources = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await once(ctx);
    warm.push(r.ms);
    warmResources = r.resources;
  }
  await ctx.close();

  // Files from other hosts (a font CDN, say) fail on a machine without internet: listed, not summed.
  const offsite = [...new Set(coldResources.map((r) => r.url).filter((u) => !u.startsWith(BASE)))];
  const urls = [...new Set(coldResources.map((r) => r.url).filter((u) => u.startsWith(BASE)))];
  const gz = await Promise.all(urls.map(gzipBytes));
  const result = {
    base: BASE,
    path: PATH,
    runs: RUNS,
    coldMedianMs: median(cold),
    warmMedianMs: median(warm),
    cold,
    warm,
    files: urls.map((u, i) => ({ url: u.replace(BASE, ''), gzip: gz[i].bytes, encoding: gz[i].encoding })),
    gzipBytes: gz.reduce((n, g) => n + g.bytes, 0),
    offsite,
    coldWireBytes: coldResources.reduce((n, r) => n + r.transfer, 0),
    warmWireBytes: warmResources.reduce((n, r) => n + r.transfer, 0),
  };
  const f = (ms) => `${ms.toFixed(0)} ms`;
  console.log(`${BASE}${PATH}: navigation → first card (${CARD}), median of ${RUNS}`);
  console.log(`  cold ${f(result.coldMedianMs).padStart(8)}   (${cold.map((x) => x.toFixed(0)).join(' ')})`);
  console.log(`  warm ${f(result.warmMedianMs).padStart(8)}   (${warm.map((x) => x.toFixed(0)).join(' ')})`);
  for (const file of result.files) console.log(`  ${file.url}: ${file.gzip} B (${file.encoding})`);
  for (const url of offsite) console.log(`  from another host (not counted): ${url}`);
  console.log(`  JS+CSS with Accept-Encoding: gzip: ${result.gzipBytes} B; on the wire cold ${result.coldWireBytes} B, warm ${result.warmWireBytes} B`);
  console.log(`RESULT ${JSON.stringify(result)}`);
  await browser.close();
  clearTimeout(watchdog);
} catch (e) {
  console.error(`storefront-timing failed: ${e.stack || e.message}`);
  await browser?.close().catch(() => {});
  process.exit(1);
}
