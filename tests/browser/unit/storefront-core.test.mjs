import { test } from 'node:test';
import assert from 'node:assert/strict';
import { load } from './storefront-load.mjs';

const c = await load('core');

test('numbers and percentages of a coupon', () => {
  assert.equal(c.remaining({ totalQuantity: 10, issuedQuantity: 3 }), 7);
  assert.equal(c.remaining({ totalQuantity: 10, issuedQuantity: 12 }), 0);
  assert.equal(c.issuedPercent({ totalQuantity: 1000, issuedQuantity: 999 }), 99, 'rounded down: 100 only when sold out');
  assert.equal(c.issuedPercent({ totalQuantity: 3, issuedQuantity: 3 }), 100);
  assert.equal(c.issuedPercent({ totalQuantity: 0, issuedQuantity: 0 }), 0);
  assert.equal(c.num(1234567), '1,234,567');
  assert.equal(c.num(12), '12');
});

test('wire times are shown as written, never shifted by the browser zone', () => {
  assert.equal(c.fmtDateTime('2026-01-26T07:01:56'), '2026.01.26 07:01');
  assert.equal(c.fmtDateTime(null), '-');
  assert.equal(c.toWire('2026-01-02T03:04'), '2026-01-02T03:04:00');
  assert.equal(c.toWire('2026-01-02T03:04:05'), '2026-01-02T03:04:05');
  assert.equal(c.toWire(''), '');
  assert.equal(c.localInput(new Date(2026, 0, 2, 3, 4)), '2026-01-02T03:04');
});

test('badges for every status', () => {
  assert.deepEqual(c.badge('ISSUING'), ['발급 중', 'on']);
  assert.deepEqual(c.badge('READY'), ['발급 예정', 'soon']);
  assert.deepEqual(c.badge('EXHAUSTED'), ['품절', 'out']);
  assert.deepEqual(c.badge('EXPIRED'), ['종료', 'off']);
  assert.equal(c.badge('EXPIRED')[0], '종료');
  assert.deepEqual(c.badge('USED'), ['사용 완료', 'off']);
  assert.equal(c.FILTERS.map(([v]) => v).join(), 'ALL,ISSUING,READY,CLOSED');
  assert.equal(c.FILTERS.map(([, l]) => l).join(), '전체,발급 중,예정,종료');
  assert.equal(c.MY_FILTERS.map(([v]) => v).join(), 'ALL,AVAILABLE,USED,EXPIRED');
});

test('the issue button follows the coupon and the user', () => {
  const on = { status: 'ISSUING', totalQuantity: 5, issuedQuantity: 1, startAt: '2026-01-01T00:00:00' };
  assert.equal(c.issueState(on, { loggedIn: false }).action, 'login');
  assert.deepEqual(c.issueState(on, { loggedIn: true }), { label: '쿠폰 발급받기', disabled: false, reason: '', action: 'issue' });
  assert.equal(c.issueState(on, { loggedIn: true, pending: true }).disabled, true);
  assert.equal(c.issueState(on, { loggedIn: true, issued: true }).label, '발급 완료');
  const out = c.issueState({ ...on, status: 'EXHAUSTED', issuedQuantity: 5 }, { loggedIn: true });
  assert.equal(out.label, '품절');
  assert.equal(out.disabled, true);
  assert.match(out.reason, /소진/);
  const ready = c.issueState({ ...on, status: 'READY', startAt: '2030-05-06T07:08:09' }, { loggedIn: false });
  assert.equal(ready.disabled, true, 'not in period: disabled even when logged out');
  assert.match(ready.reason, /2030\.05\.06 07:08부터/);
  assert.equal(c.issueState({ ...on, status: 'EXPIRED' }, { loggedIn: true }).label, '발급 종료');
  assert.equal(c.issueState({ ...on, issuedQuantity: 5 }, { loggedIn: true }).label, '품절', 'sold out by numbers');
});

test('sign-up validation matches the API limits', () => {
  const ok = { name: '홍길동', email: 'a@b.kr', password: 'password1', confirm: 'password1' };
  assert.deepEqual(c.validateSignup(ok), {});
  assert.ok(c.validateSignup({ ...ok, name: ' ' }).name);
  assert.deepEqual(c.validateSignup({ ...ok, name: '가'.repeat(50) }), {});
  assert.ok(c.validateSignup({ ...ok, name: '가'.repeat(51) }).name);
  assert.ok(c.validateSignup({ ...ok, email: 'nope' }).email);
  assert.ok(c.validateSignup({ ...ok, email: `${'a'.repeat(60)}@${'b'.repeat(40)}.kr` }).email, 'over 100 characters');
  assert.ok(c.validateSignup({ ...ok, password: 'short12', confirm: 'short12' }).password);
  assert.deepEqual(c.validateSignup({ ...ok, password: '😀😀😀😀😀😀😀😀', confirm: '😀😀😀😀😀😀😀😀' }), {}, '8 characters, not UTF-16 units');
  const long = '가'.repeat(25); // 75 bytes
  assert.match(c.validateSignup({ ...ok, password: long, confirm: long }).password, /72/);
  assert.deepEqual(c.validateSignup({ ...ok, password: 'a'.repeat(72), confirm: 'a'.repeat(72) }), {});
  assert.equal(c.validateSignup({ ...ok, confirm: 'other' }).confirm, '비밀번호가 일치하지 않습니다.');
  assert.deepEqual(Object.keys(c.validateSignup({})).sort(), ['confirm', 'email', 'name', 'password']);
});

test('log-in and coupon validation', () => {
  assert.deepEqual(c.validateLogin({ email: 'a@b.kr', password: 'x' }), {});
  assert.deepEqual(Object.keys(c.validateLogin({})).sort(), ['email', 'password']);
  const f = { brand: 'NIKE', title: 't', summary: 's', description: 'd', totalQuantity: '10', startAt: '2026-01-01T00:00', endAt: '2026-01-02T00:00' };
  assert.deepEqual(c.validateCoupon(f), {});
  assert.ok(c.validateCoupon({ ...f, brand: 'x'.repeat(31) }).brand);
  assert.ok(c.validateCoupon({ ...f, totalQuantity: '0' }).totalQuantity);
  assert.ok(c.validateCoupon({ ...f, totalQuantity: '1.5' }).totalQuantity);
  assert.ok(c.validateCoupon({ ...f, endAt: f.startAt }).endAt, 'start must be before end');
});

test('API errors by field; pages merged without repeats', () => {
  assert.deepEqual(c.fieldErrors([{ field: 'email', reason: 'a' }, { field: 'email', reason: 'b' }, { field: 'name' }]), { email: 'a', name: '올바르지 않은 값입니다.' });
  assert.deepEqual(c.fieldErrors(undefined), {});
  assert.deepEqual(c.mergeById([{ id: 1 }, { id: 2 }], [{ id: 2 }, { id: 3 }, { id: 3 }]).map((x) => x.id), [1, 2, 3]);
  assert.equal(c.nextPage({ last: false, number: 2 }), 3);
  assert.equal(c.nextPage({ last: true, number: 2 }), null);
});

test('routes and safe redirects', () => {
  assert.deepEqual(c.route('/'), { name: 'main' });
  assert.deepEqual(c.route('/coupon/19'), { name: 'detail', id: '19' });
  assert.deepEqual(c.route('/coupons/19/'), { name: 'detail', id: '19' });
  assert.deepEqual(c.route('/mypage'), { name: 'mypage' });
  assert.deepEqual(c.route('/admin'), { name: 'admin' });
  assert.deepEqual(c.route('/nope/x'), { name: 'notfound' });
  assert.equal(c.safeNext('/coupon/3'), '/coupon/3');
  assert.equal(c.safeNext('//evil.example'), '/');
  assert.equal(c.safeNext('https://evil.example'), '/');
  assert.equal(c.safeNext(null), '/');
});

test('debounce calls once after the pause', async () => {
  const calls = [];
  const d = c.debounce((v) => calls.push(v), 20);
  d(1); d(2); d(3);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(calls, [3]);
  d(4);
  d.cancel();
  await new Promise((r) => setTimeout(r, 40));
  assert.deepEqual(calls, [3]);
});
