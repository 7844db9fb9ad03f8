// Names the storefront's JS and CSS after their content (assets/storefront/assets/
// <name>.<first 10 hex digits of SHA-256>.<ext>), so the proxy may cache them for a year, and
// rewrites the imports between them and index.html's references. Edit a file under any of
// its names, then run:   node tests/browser/storefront-hash.mjs [--check]
// --check changes nothing and exits 1 when a name or reference is out of date.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../assets/storefront/', import.meta.url));
const DIR = `${ROOT}assets/`;
const check = process.argv.includes('--check');
const NAME = /^([a-z][a-z0-9-]*)(?:\.[0-9a-f]{10})?\.(js|css)$/;
const sha = (text) => createHash('sha256').update(text).digest('hex').slice(0, 10);
const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let names = {};
for (const f of readdirSync(DIR)) {
  const m = NAME.exec(f);
  if (!m) continue;
  const key = `${m[1]}.${m[2]}`;
  if (names[key]) throw new Error(`two files for ${key}: ${names[key]} and ${f}`);
  names[key] = f;
}

/** The text with every reference to a sibling (./x.js, /assets/x.css, hashed or not) current. */
function relink(text, prefix) {
  for (const [key, file] of Object.entries(names)) {
    const [stem, ext] = key.split('.');
    text = text.replace(new RegExp(`${esc(prefix)}${esc(stem)}(?:\\.[0-9a-f]{10})?\\.${ext}(?![\\w.])`, 'g'), prefix + file);
  }
  return text;
}

let stale = [];
for (let round = 0; round < 10; round++) {
  let changed = false;
  for (const [key, file] of Object.entries(names)) {
    const old = readFileSync(DIR + file, 'utf8');
    const text = relink(old, './');
    const [stem, ext] = key.split('.');
    const want = `${stem}.${sha(text)}.${ext}`;
    if (text === old && want === file) continue;
    changed = true;
    stale.push(file);
    if (check) continue;
    writeFileSync(DIR + file, text);
    if (want !== file) renameSync(DIR + file, DIR + want);
    names[key] = want;
  }
  if (!changed || check) break;
}
const html = readFileSync(`${ROOT}index.html`, 'utf8');
const linked = relink(html, '/assets/');
if (linked !== html) {
  stale.push('index.html');
  if (!check) writeFileSync(`${ROOT}index.html`, linked);
}
stale = [...new Set(stale)];
if (check && stale.length) {
  console.error(`out of date: ${stale.join(', ')}; run node tests/browser/storefront-hash.mjs`);
  process.exit(1);
}
console.log(Object.values(names).sort().join('\n'));
