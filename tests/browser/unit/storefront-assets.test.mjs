import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { dir } from './storefront-load.mjs';

const root = new URL('../', dir);
const html = readFileSync(new URL('index.html', root), 'utf8');
const files = readdirSync(dir);

test('every script and style is named after its content and linked from index.html', () => {
  for (const f of files) {
    const m = /^[a-z][a-z0-9-]*\.([0-9a-f]{10})\.(js|css)$/.exec(f);
    assert.ok(m, `${f} is not <name>.<hash>.<ext>: run node tests/browser/storefront-hash.mjs`);
    const sha = createHash('sha256').update(readFileSync(new URL(f, dir))).digest('hex');
    assert.ok(sha.startsWith(m[1]), `${f}: content hash is ${sha.slice(0, 10)}: run node tests/browser/storefront-hash.mjs`);
    assert.ok(html.includes(`"/assets/${f}"`), `index.html does not link /assets/${f}`);
  }
  for (const [, ref] of html.matchAll(/(?:href|src)="([^"]+)"/g)) {
    assert.ok(ref.startsWith('/') || ref.startsWith('#'), `${ref}: absolute URLs only (deep links reload)`);
    assert.ok(!/^\/\//.test(ref), `${ref}: nothing from another host`);
  }
});

test('nothing is loaded from another host', () => {
  for (const f of files) {
    const text = readFileSync(new URL(f, dir), 'utf8');
    assert.ok(!/https?:\/\//.test(text.replace(/http:\/\/www\.w3\.org\/[\w/]+/g, '')), `${f} names a remote URL`);
    assert.ok(!/@import|url\(/.test(text) || f.endsWith('.js'), `${f} imports or loads a resource`);
  }
});

test('JS and CSS together stay under 35 KB gzipped', () => {
  const total = files.reduce((n, f) => n + gzipSync(readFileSync(new URL(f, dir)), { level: 9 }).length, 0);
  assert.ok(total <= 35 * 1024, `${total} bytes gzipped`);
});
