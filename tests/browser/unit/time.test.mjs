import { test } from 'node:test';
import assert from 'node:assert/strict';
import { load } from './load.mjs';

const t = await load('time.js');
const NOW = 1733080000000;

test('Prometheus durations', () => {
  assert.equal(t.parseDuration('15s'), 15);
  assert.equal(t.parseDuration('1m30s'), 90);
  assert.equal(t.parseDuration('500ms'), 0.5);
  assert.equal(t.parseDuration('2h'), 7200);
  assert.equal(t.parseDuration('1d'), 86400);
  assert.ok(Number.isNaN(t.parseDuration('')));
  assert.ok(Number.isNaN(t.parseDuration('5x')));
  assert.ok(Number.isNaN(t.parseDuration('1m junk')));
  assert.equal(t.promDuration(60), '60s');
  assert.equal(t.promDuration(1.5), '1500ms');
  assert.equal(t.shortDuration(60), '1m');
  assert.equal(t.shortDuration(15), '15s');
  assert.equal(t.shortDuration(7200), '2h');
});

test('relative and absolute times', () => {
  assert.equal(t.parseTime('now', NOW), NOW);
  assert.equal(t.parseTime('now-5m', NOW), NOW - 300000);
  assert.equal(t.parseTime('now-24h', NOW), NOW - 86400000);
  assert.equal(t.parseTime('now-1h30m', NOW), NOW - 5400000);
  assert.equal(t.parseTime('now+1m', NOW), NOW + 60000);
  assert.equal(t.parseTime('1733070000000', NOW), 1733070000000);
  assert.ok(Number.isNaN(t.parseTime('yesterday', NOW)));
  assert.ok(Number.isNaN(t.parseTime('now-', NOW)));
  assert.ok(Number.isNaN(t.parseTime(undefined, NOW)));
  assert.equal(t.isRelative('now-5m'), true);
  assert.equal(t.isRelative('1733070000000'), false);
});

test('ranges resolve; empty or inverted ranges are rejected', () => {
  assert.deepEqual(t.resolveRange('now-15m', 'now', NOW), { fromMs: NOW - 900000, toMs: NOW, live: true });
  assert.deepEqual(t.resolveRange('1000', '2000', NOW), { fromMs: 1000, toMs: 2000, live: false });
  assert.equal(t.resolveRange('now', 'now-5m', NOW), null);
  assert.equal(t.resolveRange('2000', '2000', NOW), null);
  assert.equal(t.resolveRange('garbage', 'now', NOW), null);
});

test('hash defaults: race board, last 15 minutes, live refresh', () => {
  assert.deepEqual(t.parseHash(''), { view: 'race', from: 'now-15m', to: 'now', refresh: 'live', expr: '' });
  assert.deepEqual(t.parseHash('#/nowhere?from=junk&to=now&refresh=fast'), { view: 'race', from: 'now-15m', to: 'now', refresh: 'live', expr: '' });
  assert.equal(t.parseHash('#/system').view, 'system');
  assert.equal(t.parseHash('#/search/').view, 'search');
  const s = t.parseHash('#/race?from=now-15m&to=now&refresh=1s');
  assert.deepEqual(s, { view: 'race', from: 'now-15m', to: 'now', refresh: '1s', expr: '' });
  // An inverted range falls back to the default.
  assert.equal(t.parseHash('#/race?from=2000&to=1000').from, 'now-15m');
});

test('URL state round trip', () => {
  const states = [
    { view: 'race', from: 'now-15m', to: 'now', refresh: 'live', expr: '' },
    { view: 'search', from: 'now-24h', to: 'now', refresh: 'off', expr: '' },
    { view: 'system', from: '1733070000000', to: '1733080000000', refresh: '5s', expr: '' },
    { view: 'explore', from: 'now-1h', to: 'now', refresh: '1m', expr: 'sum by (status) (rate(http_server_requests_seconds_count{uri="/api/v1/coupons", status=~"5.."}[60s])) / 2 + 1 & #' },
    { view: 'explore', from: 'now-5m', to: 'now', refresh: 'live', expr: 'up' },
  ];
  for (const s of states) {
    const h = t.buildHash(s);
    assert.ok(h.startsWith(`#/${s.view}?`), h);
    assert.deepEqual(t.parseHash(h), s, h);
    assert.equal(t.buildHash(t.parseHash(h)), h);
  }
  assert.equal(t.buildHash(states[0]), '#/race?from=now-15m&to=now');
  assert.equal(t.buildHash(states[1]), '#/search?from=now-24h&to=now&refresh=off');
  // expr only belongs to explore
  assert.equal(t.parseHash('#/race?expr=up').expr, '');
});

test('refresh period: live = scrape interval, none for off or absolute ranges', () => {
  const s = (o) => ({ view: 'race', from: 'now-15m', to: 'now', refresh: 'live', expr: '', ...o });
  assert.equal(t.refreshMs(s({}), 1), 1000);
  assert.equal(t.refreshMs(s({}), 15), 15000);
  assert.equal(t.refreshMs(s({ refresh: '30s' }), 1), 30000);
  assert.equal(t.refreshMs(s({ refresh: '1m' }), 1), 60000);
  assert.equal(t.refreshMs(s({ refresh: 'off' }), 1), 0);
  assert.equal(t.refreshMs(s({ from: '1000', to: '2000' }), 1), 0);
  assert.equal(t.refreshMs(s({ refresh: '100ms' }), 1), 1000); // at most once a second
});

test('datetime-local inputs are local time, round trip to the second', () => {
  const ms = new Date(2024, 11, 1, 9, 5, 7).getTime();
  assert.equal(t.toLocalInput(ms), '2024-12-01T09:05:07');
  assert.equal(t.fromLocalInput('2024-12-01T09:05:07'), ms);
  assert.equal(t.fromLocalInput('2024-12-01T09:05'), ms - 7000);
  assert.ok(Number.isNaN(t.fromLocalInput('')));
  assert.ok(Number.isNaN(t.fromLocalInput('12/01/2024')));
});
