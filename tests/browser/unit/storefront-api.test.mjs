import { test } from 'node:test';
import assert from 'node:assert/strict';
import { load } from './storefront-load.mjs';

const api = await load('api');

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (claims) => `${b64({ alg: 'HS256' })}.${b64(claims)}.sig`;
const NOW = 1_800_000_000_000;
const fresh = (n) => jwt({ sub: 'a@b.kr', auth: 'ROLE_USER', exp: NOW / 1000 + 1800, n });
const stale = jwt({ sub: 'a@b.kr', auth: 'ROLE_USER', exp: NOW / 1000 - 1 });

const json = (status, body) => ({ ok: status < 300, status, json: async () => body });
const ok = (data) => json(200, { code: 'S000', message: 'Success', data });
const err = (status, code, message) => json(status, { status, code, message, errors: [] });

/** A fake server: handler(path, init) → response; records calls. */
function setup(handler, session) {
  const calls = [];
  let saved = session;
  let expired = 0;
  const client = api.createClient({
    fetch: async (path, init) => {
      calls.push({ path, auth: init.headers.Authorization || null, body: init.body ? JSON.parse(init.body) : null });
      return handler(path, init);
    },
    store: { get: () => saved, set: (s) => { saved = s; } },
    now: () => NOW,
    onExpired: () => { expired++; },
  });
  return { client, calls, session: () => saved, expired: () => expired };
}

test('claims and the admin role come from the token', () => {
  assert.equal(api.claims(jwt({ sub: '한글@x.kr' })).sub, '한글@x.kr');
  assert.equal(api.claims('garbage'), null);
  assert.equal(api.isAdmin({ accessToken: jwt({ auth: 'ROLE_ADMIN' }) }), true);
  assert.equal(api.isAdmin({ accessToken: jwt({ auth: 'ROLE_USER' }) }), false);
  assert.equal(api.isAdmin(null), false);
});

test('envelopes become results; public calls carry no token', async () => {
  const t = setup((p) => (p.includes('404') ? err(404, 'CP01', '존재하지 않는 쿠폰입니다.') : ok({ id: 1 })), { accessToken: fresh(1), refreshToken: 'r1' });
  assert.deepEqual(await t.client.request('/api/v1/coupons/1'), { ok: true, status: 200, code: 'S000', data: { id: 1 } });
  const r = await t.client.request('/api/v1/coupons/404');
  assert.equal(r.ok, false);
  assert.equal(r.code, 'CP01');
  assert.equal(r.message, '존재하지 않는 쿠폰입니다.');
  assert.ok(t.calls.every((c) => c.auth === null));
});

test('a request without a session is refused locally', async () => {
  const t = setup(() => ok(1), null);
  const r = await t.client.request('/api/v1/my/coupons', { auth: 'required' });
  assert.equal(r.status, 401);
  assert.equal(t.calls.length, 0);
});

test('an access token about to expire is refreshed first (rotation)', async () => {
  const t = setup((p, init) => {
    if (p === '/api/v1/auth/refresh') return ok({ accessToken: fresh(2), refreshToken: 'r2', user: { name: 'n' } });
    return init.headers.Authorization === `Bearer ${fresh(2)}` ? ok('yes') : err(401, 'A002', 'expired');
  }, { accessToken: stale, refreshToken: 'r1', user: { name: 'n' } });
  const r = await t.client.request('/api/v1/my/coupons', { auth: 'required' });
  assert.equal(r.data, 'yes');
  assert.deepEqual(t.calls.map((c) => c.path), ['/api/v1/auth/refresh', '/api/v1/my/coupons']);
  assert.deepEqual(t.calls[0].body, { refreshToken: 'r1' });
  assert.equal(t.session().refreshToken, 'r2');
  assert.equal(t.expired(), 0);
});

test('a 401 triggers one refresh and one retry; concurrent calls share the refresh', async () => {
  let refreshes = 0;
  const t = setup(async (p, init) => {
    if (p === '/api/v1/auth/refresh') {
      refreshes++;
      await new Promise((r) => setTimeout(r, 10));
      return ok({ accessToken: fresh(3), refreshToken: 'r3' });
    }
    return init.headers.Authorization === `Bearer ${fresh(3)}` ? ok(p) : err(401, 'A001', 'invalid');
  }, { accessToken: fresh(1), refreshToken: 'r1', user: { name: 'kept' } });
  const [a, b] = await Promise.all([t.client.request('/a', { auth: 'required' }), t.client.request('/b', { auth: 'required' })]);
  assert.equal(a.data, '/a');
  assert.equal(b.data, '/b');
  assert.equal(refreshes, 1);
  assert.equal(t.session().user.name, 'kept', 'the user survives a refresh answer without one');
});

test('the session ends only when the refresh fails', async () => {
  const t = setup((p) => (p === '/api/v1/auth/refresh' ? err(401, 'A001', 'invalid') : err(401, 'A002', 'expired')),
    { accessToken: fresh(1), refreshToken: 'bad' });
  const r = await t.client.request('/api/v1/my/coupons', { auth: 'required' });
  assert.equal(r.code, 'SESSION');
  assert.equal(t.session(), null);
  assert.equal(t.expired(), 1);

  const blip = setup((p) => { if (p === '/api/v1/auth/refresh') throw new TypeError('offline'); return err(401, 'A002', 'expired'); },
    { accessToken: fresh(1), refreshToken: 'r1' });
  const r2 = await blip.client.request('/x', { auth: 'required' });
  assert.equal(r2.status, 401);
  assert.ok(blip.session(), 'a network failure during refresh keeps the session');
  assert.equal(blip.expired(), 0);
});

test('network failures and non-JSON bodies have messages', async () => {
  const t = setup((p) => { if (p === '/down') throw new TypeError('fail'); return { ok: false, status: 502, json: async () => { throw new Error('html'); } }; }, null);
  const down = await t.client.request('/down');
  assert.equal(down.code, 'NETWORK');
  assert.ok(down.message);
  const bad = await t.client.request('/bad');
  assert.equal(bad.status, 502);
  assert.match(bad.message, /502/);
});

test('a short-lived token is refreshed in its last third, not on every call', async () => {
  const t = setup(() => ok('fine'), { accessToken: jwt({ iat: NOW / 1000 - 1, exp: NOW / 1000 + 2 }), refreshToken: 'r1' });
  await t.client.request('/x', { auth: 'required' });
  assert.deepEqual(t.calls.map((c) => c.path), ['/x'], '2 s left of 3: no refresh yet');
});
