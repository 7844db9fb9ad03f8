import { test } from 'node:test';
import assert from 'node:assert/strict';
import { load } from './load.mjs';

const { formatValue: f, formatTicks, formatDurationMs, unitName } = await load('units.js');

test('seconds read as ns / µs / ms / s / min / h', () => {
  assert.equal(f('s', 0.0123), '12.3 ms');
  assert.equal(f('s', 0.000045), '45 µs');
  assert.equal(f('s', 2.5e-8), '25 ns');
  assert.equal(f('s', 2.5), '2.5 s');
  assert.equal(f('s', 0.15), '150 ms');
  assert.equal(f('s', 90), '1.5 min');
  assert.equal(f('s', 7200), '2 h');
  assert.equal(f('s', 0), '0 s');
});

test('bytes in IEC units, Bps per second', () => {
  assert.equal(f('bytes', 512), '512 B');
  assert.equal(f('bytes', 1536), '1.5 KiB');
  assert.equal(f('bytes', 5 * 2 ** 20), '5 MiB');
  assert.equal(f('bytes', 1.25 * 2 ** 30), '1.25 GiB');
  assert.equal(f('Bps', 2048), '2 KiB/s');
  assert.equal(f('Bps', 0), '0 B/s');
});

test('ratio as percent, rates and counts with SI prefixes', () => {
  assert.equal(f('ratio', 0.123), '12.3%');
  assert.equal(f('ratio', 1), '100%');
  assert.equal(f('ratio', 0.0004), '0.04%');
  assert.equal(f('reqps', 20), '20 req/s');
  assert.equal(f('reqps', 1500), '1.5k req/s');
  assert.equal(f('ops', 0.667), '0.667 ops/s');
  assert.equal(f('short', 1234567), '1.23M');
  assert.equal(f('short', 10), '10');
  assert.equal(f('cores', 0.25), '0.25 cores');
});

test('missing values', () => {
  assert.equal(f('s', null), '–');
  assert.equal(f('s', NaN), '–');
  assert.equal(f('s', Infinity), '+Inf');
});

test('axis ticks share one scale and just enough decimals', () => {
  assert.deepEqual(formatTicks('s', [0, 0.05, 0.1, 0.15]), ['0', '50 ms', '100 ms', '150 ms']);
  assert.deepEqual(formatTicks('ops', [0, 2500, 5000, 7500]), ['0', '2.5k ops/s', '5.0k ops/s', '7.5k ops/s']);
  assert.deepEqual(formatTicks('short', [0, 0.5, 1, 1.5]), ['0', '0.5', '1.0', '1.5']);
  assert.deepEqual(formatTicks('short', [0, 20, 40]), ['0', '20', '40']);
  assert.deepEqual(formatTicks('reqps', [-5, 0, 5]), ['-5 req/s', '0', '5 req/s']);
  assert.deepEqual(formatTicks('bytes', [0, 2 ** 20, 2 * 2 ** 20]), ['0', '1 MiB', '2 MiB']);
  assert.deepEqual(formatTicks('ratio', [0.9, 0.95, 1]), ['90%', '95%', '100%']);
  // log axes: each tick alone, filtered ticks (null) empty
  assert.deepEqual(formatTicks('s', [0.001, null, 0.1, 1], true), ['1 ms', '', '100 ms', '1 s']);
});

test('run durations', () => {
  assert.equal(formatDurationMs(4200), '4.2s');
  assert.equal(formatDurationMs(65000), '1m 05s');
  assert.equal(formatDurationMs(3723000), '1h 02m');
  assert.equal(formatDurationMs(42000), '42s');
  assert.equal(formatDurationMs(-1), '–');
});

test('spoken unit names', () => {
  assert.equal(unitName('reqps'), 'requests per second');
  assert.equal(unitName('nope'), '');
});

test('time axis ticks in local time, precision from the tick spacing', async () => {
  const { formatTimeTick } = await load('units.js');
  const at = (y, mo, d, h, mi, s) => new Date(y, mo, d, h, mi, s).getTime() / 1000;
  assert.equal(formatTimeTick(at(2024, 11, 1, 14, 5, 30), 10), '14:05:30');
  assert.equal(formatTimeTick(at(2024, 11, 1, 14, 5, 30), 60), '14:05');
  assert.equal(formatTimeTick(at(2024, 11, 1, 9, 0, 0), 3600), '09:00');
  assert.equal(formatTimeTick(at(2024, 11, 2, 0, 0, 0), 3600), 'Dec 2');
  assert.equal(formatTimeTick(at(2024, 0, 15, 12, 0, 0), 86400), 'Jan 15');
});

test('date and time for lists', async () => {
  const { formatDateTime } = await load('units.js');
  assert.equal(formatDateTime(new Date(2024, 11, 1, 9, 5, 7).getTime()), 'Dec 1 09:05:07');
});

test('byte axes tick at decimal steps of the binary unit shown', async () => {
  const { byteIncrs, formatTicks } = await load('units.js');
  const MiB = 2 ** 20;
  const incrs = byteIncrs(1.0 * MiB, 1.25 * MiB);
  assert.ok(incrs.includes(0.05 * MiB));
  assert.ok(!incrs.includes(50000));
  const ticks = [1.0, 1.05, 1.1, 1.15, 1.2].map((m) => m * MiB);
  assert.deepEqual(formatTicks('bytes', ticks), ['1.00 MiB', '1.05 MiB', '1.10 MiB', '1.15 MiB', '1.20 MiB']);
  assert.ok(byteIncrs(0, 900).every((i) => i >= 1)); // whole bytes below a KiB
  assert.ok(byteIncrs(0, 900).includes(100));
});

test('axis splits: decades on log axes, exact multiples on linear ones, never unbounded', async () => {
  const { logSplits, linSplits } = await load('units.js');
  assert.deepEqual(logSplits(0.001, 10), [0.001, 0.01, 0.1, 1, 10]);
  assert.deepEqual(logSplits(0.002, 0.5), [0.01, 0.1]);
  assert.deepEqual(logSplits(0, 10), []); // a log scale must be > 0
  assert.deepEqual(logSplits(-1, 10), []);
  assert.deepEqual(logSplits(1, Infinity), []);
  assert.deepEqual(linSplits(0, 1, 0.25), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(linSplits(-0.1, 0.35, 0.1), [-0.1, 0, 0.1, 0.2, 0.30000000000000004]);
  assert.deepEqual(linSplits(0, 1e9, 1e-9).length, 200); // bounded
  assert.deepEqual(linSplits(0, 1, 0), []);
  assert.deepEqual(linSplits(0, Infinity, 1), []);
});
