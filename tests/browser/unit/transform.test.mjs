import { test } from 'node:test';
import assert from 'node:assert/strict';
import { load } from './load.mjs';

const T = await load('transform.js');
const { parseDuration } = await load('time.js');

const col = (a) => Array.from(a);

test('step: Grafana maxDataPoints = max(scrape, ceil(range / width)), whole seconds', () => {
  assert.equal(T.computeStep(900, 650, 1), 2); // 15 min on 650 px
  assert.equal(T.computeStep(86400, 600, 15), 144); // 24 h
  assert.equal(T.computeStep(300, 1000, 15), 15); // the scrape interval is the floor
  assert.equal(T.computeStep(300, 1000, 1), 1);
  assert.equal(T.computeStep(3600, 700, 1), 6); // ceil(5.14)
  assert.equal(T.computeStep(10, 1000, 0.5), 1); // never below one second
  assert.equal(T.computeStep(100, 0, 1), 100); // no width: one point
});

test('$__rate_interval = max(step + scrape, 4 × scrape)', () => {
  assert.equal(T.rateInterval(1, 1), 4);
  assert.equal(T.rateInterval(2, 1), 4);
  assert.equal(T.rateInterval(6, 1), 7);
  assert.equal(T.rateInterval(15, 15), 60);
  assert.equal(T.rateInterval(144, 15), 159);
});

test('scrape interval: smallest active target interval, 15 s when none', () => {
  const targets = [{ scrapeInterval: '15s' }, { scrapeInterval: '1s' }, { scrapeInterval: '1m' }];
  assert.equal(T.scrapeIntervalOf(targets, parseDuration), 1);
  assert.equal(T.scrapeIntervalOf([{ scrapeInterval: '30s' }], parseDuration), 30);
  assert.equal(T.scrapeIntervalOf([], parseDuration), 15);
  assert.equal(T.scrapeIntervalOf(undefined, parseDuration), 15);
  assert.equal(T.scrapeIntervalOf([{ scrapeInterval: 'bogus' }], parseDuration), 15);
});

test('substitute replaces $__rate_interval and ${__rate_interval}, leaves others', () => {
  const v = { __rate_interval: '60s' };
  assert.equal(
    T.substitute('sum(rate(a[$__rate_interval])) / sum(rate(b[${__rate_interval}]))', v),
    'sum(rate(a[60s])) / sum(rate(b[60s]))',
  );
  assert.equal(T.substitute('rate(a[$__interval])', v), 'rate(a[$__interval])');
  assert.equal(T.substitute('up', v), 'up');
});

test('legend templates', () => {
  const m = { __name__: 'x', strategy: 'db-lock', outcome: 'issued', cmd: 'get' };
  assert.equal(T.legendName('{{strategy}} {{outcome}}', m), 'db-lock issued');
  assert.equal(T.legendName('{{ strategy }}/{{outcome}}', m), 'db-lock/issued');
  assert.equal(T.legendName('waiting for {{mode}}', m), 'waiting for');
  assert.equal(T.legendName('p99', m), 'p99');
  assert.equal(T.legendName('{{missing}}', { __name__: 'up', job: 'a' }), 'up{job="a"}');
  assert.equal(T.legendName('', { __name__: 'up', job: 'a', instance: 'h:1' }), 'up{instance="h:1", job="a"}');
  assert.equal(T.seriesName({}), '{}');
  assert.equal(T.seriesName({ job: 'a' }), '{job="a"}');
});

test('sample values: NaN and ±Inf are gaps; ≤ 0 is a gap on log scales', () => {
  assert.equal(T.sampleValue('1.5'), 1.5);
  assert.equal(T.sampleValue('NaN'), null);
  assert.equal(T.sampleValue('+Inf'), null);
  assert.equal(T.sampleValue('-Inf'), null);
  assert.equal(T.sampleValue('0'), 0);
  assert.equal(T.sampleValue('0', true), null);
  assert.equal(T.sampleValue('-1', true), null);
  assert.equal(T.sampleValue('1e-3', true), 0.001);
});

test('matrix → aligned columns: union of timestamps, nulls where a series has no sample', () => {
  const a = { values: [[10, '1'], [11, '2'], [12, '3']] };
  const b = { values: [[11, '20'], [12.5, '25'], [13, 'NaN']] };
  const [xs, ya, yb] = T.alignSeries([a, b]);
  assert.ok(xs instanceof Float64Array);
  assert.deepEqual(col(xs), [10, 11, 12, 12.5, 13]);
  assert.deepEqual(ya, [1, 2, 3, null, null]);
  assert.deepEqual(yb, [null, 20, null, 25, null]);
});

test('stale series: a series that stops has nulls after its last sample', () => {
  const live = { values: [[0, '1'], [1, '1'], [2, '1'], [3, '1']] };
  const stale = { values: [[0, '5'], [1, '6']] };
  const [xs, y1, y2] = T.alignSeries([live, stale], { step: 1 });
  assert.deepEqual(col(xs), [0, 1, 2, 3]);
  assert.deepEqual(y1, [1, 1, 1, 1]);
  assert.deepEqual(y2, [5, 6, null, null]);
});

test('a gap in every series gets one all-null timestamp so lines break', () => {
  const s = { values: [[0, '1'], [5, '2'], [10, '3'], [35, '4']] };
  const [xs, ys] = T.alignSeries([s], { step: 5 });
  assert.deepEqual(col(xs), [0, 5, 10, 15, 35]);
  assert.deepEqual(ys, [1, 2, 3, null, 4]);
  // Without a step nothing is inserted.
  assert.deepEqual(col(T.alignSeries([s])[0]), [0, 5, 10, 35]);
});

test('alignment on a log scale drops zeros; empty input gives empty columns', () => {
  const [, ys] = T.alignSeries([{ values: [[1, '0'], [2, '0.5']] }], { log: true });
  assert.deepEqual(ys, [null, 0.5]);
  const empty = T.alignSeries([]);
  assert.equal(empty.length, 1);
  assert.equal(empty[0].length, 0);
  const none = T.alignSeries([{ values: [] }]);
  assert.deepEqual(none[1], []);
});

test('countPoints and lastValue', () => {
  assert.equal(T.countPoints([null, 1, null, 2]), 2);
  assert.equal(T.countPoints([null, 1, null, 2], true), 1);
  assert.equal(T.countPoints([null, null]), 0);
  assert.equal(T.lastValue([1, 2, null]), 2);
  assert.equal(T.lastValue([null, null]), null);
  assert.equal(T.lastValue([0]), 0);
});

test('annotations are clipped to the range and filtered by board', () => {
  const list = [
    { id: 'a', time: 1000, timeEnd: 5000, title: 'early', board: 'race' },
    { id: 'b', time: 9000, timeEnd: null, title: 'running', board: 'race' },
    { id: 'c', time: 4000, timeEnd: 6000, title: 'search run', board: 'search' },
    { id: 'd', time: 4500, timeEnd: 4600, title: 'everywhere' },
    { id: 'e', time: 100, timeEnd: 200, title: 'before' },
    { id: 'f', time: 20000, timeEnd: 21000, title: 'after', board: 'race' },
  ];
  const out = T.clipAnnotations(list, { fromMs: 3000, toMs: 12000, nowMs: 11000, board: 'race' });
  assert.deepEqual(out.map((a) => a.id), ['a', 'd', 'b']);
  const [a, d, b] = out;
  assert.equal(a.from, 3000); // clipped start
  assert.equal(a.to, 5000);
  assert.equal(a.startMs, 1000);
  assert.equal(a.running, false);
  assert.equal(d.from, 4500);
  assert.equal(d.to, 4600);
  assert.equal(b.running, true);
  assert.equal(b.endMs, null);
  assert.equal(b.to, 11000); // running: until now
  const clipped = T.clipAnnotations(list, { fromMs: 3000, toMs: 10000, nowMs: 11000, board: 'race' });
  assert.equal(clipped.find((x) => x.id === 'b').to, 10000); // …but not past the range end
  const search = T.clipAnnotations(list, { fromMs: 0, toMs: 30000, nowMs: 30000, board: 'search' });
  assert.deepEqual(search.map((x) => x.id), ['e', 'c', 'd']);
  assert.deepEqual(T.clipAnnotations(null, { fromMs: 0, toMs: 1, nowMs: 1, board: 'x' }), []);
});

test('series colours: same name, same colour on every panel; distinct within a panel', () => {
  const p1 = T.colorsFor(['db-lock issued', 'redis-lua issued', 'p99']);
  const p2 = T.colorsFor(['p99', 'db-lock issued']);
  assert.equal(p1[0], p2[1]);
  assert.equal(new Set(p1).size, 3);
  const many = T.colorsFor(Array.from({ length: T.PALETTE.length }, (_, i) => `s${i}`));
  assert.equal(new Set(many).size, T.PALETTE.length);
  const st = T.colorsFor(['200', '404', '500', '5xx']);
  assert.equal(st[2], st[3]);
  assert.notEqual(st[1], st[2]);
});

test('a panel\'s queries go as one request and come back apart', () => {
  assert.equal(T.combineQueries(['up']), 'up');
  const c = T.combineQueries(['sum(rate(a[4s]))', 'max(b) > 0']);
  assert.equal(c, 'label_replace(sum(rate(a[4s])), "fp_query", "0", "", "") or label_replace(max(b) > 0, "fp_query", "1", "", "")');
  const result = [
    { metric: { fp_query: '1', mode: 'x' }, values: [[1, '2']] },
    { metric: { fp_query: '0' }, values: [[1, '1']] },
    { metric: { fp_query: '1', mode: 'y' }, values: [[1, '3']] },
  ];
  const split = T.splitCombined(result, 2);
  assert.equal(split.length, 2);
  assert.deepEqual(split[0].result.map((r) => r.metric), [{}]);
  assert.deepEqual(split[1].result.map((r) => r.metric), [{ mode: 'x' }, { mode: 'y' }]);
  // one query: nothing to strip
  const one = T.splitCombined([{ metric: { fp_query: 'keep' }, values: [] }], 1);
  assert.deepEqual(one[0].result[0].metric, { fp_query: 'keep' });
  assert.deepEqual(T.splitCombined(undefined, 3).map((r) => r.result.length), [0, 0, 0]);
});
