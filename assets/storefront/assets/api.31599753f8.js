// The API client: the envelope read into one result shape, bearer tokens, and silent refresh
// (rotation) before an access token expires or after a 401; the session ends only when the
// refresh itself fails. No DOM: fetch, storage and clock are given (unit-tested with fakes).

/** Claims of a JWT (no verification; the server does that), or null. */
export function claims(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

/** Whether a session's access token says ADMIN. */
export const isAdmin = (session) => (claims(session?.accessToken || '')?.auth || '').split(',').includes('ROLE_ADMIN');

const NETWORK = { ok: false, status: 0, code: 'NETWORK', message: '서버에 연결할 수 없습니다. 잠시 후 다시 시도해주세요.', errors: [] };

/** A fetch Response as { ok, status, code, message, data, errors }. */
export async function read(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (res.ok && body && 'data' in body) return { ok: true, status: res.status, code: body.code, data: body.data };
  return {
    ok: false,
    status: res.status,
    code: body?.code || `HTTP${res.status}`,
    message: body?.message || `요청을 처리하지 못했습니다 (${res.status}).`,
    errors: Array.isArray(body?.errors) ? body.errors : [],
  };
}

/**
 * A client. `store` has get() → session|null and set(session|null); a session is
 * { accessToken, refreshToken, user }. `onExpired` runs when a refresh fails.
 * `skewMs`: refresh this long before the access token's exp.
 */
export function createClient({ fetch, store, now = () => Date.now(), onExpired = () => {}, skewMs = 5000 }) {
  let refreshing = null;

  async function send(path, { method = 'GET', body, token, signal } = {}) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    try {
      const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
      return await read(res);
    } catch (e) {
      if (e?.name === 'AbortError') return { ok: false, status: 0, code: 'ABORTED', message: '', errors: [] };
      return { ...NETWORK };
    }
  }

  /** Exchanges the refresh token for a new pair; one exchange at a time. */
  function refresh() {
    if (!refreshing) {
      refreshing = (async () => {
        const session = store.get();
        if (!session?.refreshToken) return false;
        const r = await send('/api/v1/auth/refresh', { method: 'POST', body: { refreshToken: session.refreshToken } });
        if (r.ok && r.data?.accessToken) {
          store.set({ accessToken: r.data.accessToken, refreshToken: r.data.refreshToken, user: r.data.user || session.user });
          return true;
        }
        // A network failure keeps the session: the user is not logged out by a blip.
        if (r.status === 0) return false;
        store.set(null);
        onExpired();
        return false;
      })().finally(() => {
        refreshing = null;
      });
    }
    return refreshing;
  }

  // Early by skewMs, or by a third of the token's life when that is shorter.
  const expiresSoon = (token) => {
    const c = claims(token);
    if (typeof c?.exp !== 'number') return false;
    const life = typeof c.iat === 'number' ? (c.exp - c.iat) * 1000 : Infinity;
    return c.exp * 1000 - now() < Math.min(skewMs, life / 3);
  };

  /**
   * Sends a request. `auth`: 'none' (public, no header: stale tokens never matter there) or
   * 'required' (bearer; refreshed before it expires, and once more after a 401).
   */
  async function request(path, { auth = 'none', ...opts } = {}) {
    if (auth === 'none') return send(path, opts);
    let session = store.get();
    if (!session) return { ok: false, status: 401, code: 'C003', message: '로그인이 필요한 서비스입니다.', errors: [] };
    if (expiresSoon(session.accessToken)) {
      await refresh();
      session = store.get();
      if (!session) return { ok: false, status: 401, code: 'SESSION', message: '세션이 만료되었습니다. 다시 로그인해주세요.', errors: [] };
    }
    const first = await send(path, { ...opts, token: session.accessToken });
    if (first.status !== 401) return first;
    const renewed = await refresh();
    if (!renewed) {
      return store.get() ? first : { ok: false, status: 401, code: 'SESSION', message: '세션이 만료되었습니다. 다시 로그인해주세요.', errors: [] };
    }
    return send(path, { ...opts, token: store.get().accessToken });
  }

  return { request, refresh, send };
}
