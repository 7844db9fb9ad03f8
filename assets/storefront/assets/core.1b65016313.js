// Pure helpers of the storefront: routes, labels, numbers, dates, validation. No DOM, no
// network; unit-tested by tests/browser/unit/storefront-core.test.mjs.

/** Main list tabs: label and the API's filterType. */
export const FILTERS = [['ALL', '전체'], ['ISSUING', '발급 중'], ['READY', '예정'], ['CLOSED', '종료']];
/** My-coupon tabs: label and the API's status. */
export const MY_FILTERS = [['ALL', '전체'], ['AVAILABLE', '사용 가능'], ['USED', '사용 완료'], ['EXPIRED', '기간 만료']];

const BADGES = {
  ISSUING: ['발급 중', 'on'],
  READY: ['발급 예정', 'soon'],
  EXHAUSTED: ['품절', 'out'],
  EXPIRED: ['종료', 'off'],
  DISABLED: ['중지', 'off'],
  AVAILABLE: ['사용 가능', 'on'],
  USED: ['사용 완료', 'off'],
};

/** The badge of a coupon or my-coupon status: [label, tone]. */
export const badge = (status) => BADGES[status] || [status || '-', 'off'];

/** Coupons left; never negative. */
export const remaining = (c) => Math.max(0, (c.totalQuantity || 0) - (c.issuedQuantity || 0));

/** Issued share in whole percent, rounded down so 100 means sold out. */
export function issuedPercent(c) {
  const total = c.totalQuantity || 0;
  if (total <= 0) return 0;
  return Math.min(100, Math.floor(((c.issuedQuantity || 0) * 100) / total));
}

/** 1234 → "1,234". */
export const num = (n) => String(Math.trunc(n || 0)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/**
 * The wire's "yyyy-MM-ddTHH:mm:ss" (the server's local time, no zone) as "yyyy.MM.dd HH:mm",
 * without going through Date so the browser's zone never shifts it.
 */
export function fmtDateTime(wire) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(wire || '');
  return m ? `${m[1]}.${m[2]}.${m[3]} ${m[4]}:${m[5]}` : '-';
}

/** A datetime-local input's value ("yyyy-MM-ddTHH:mm[:ss]") in the wire format. */
export function toWire(local) {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(:\d{2})?/.exec(local || '');
  return m ? m[1] + (m[2] || ':00') : '';
}

/** A Date as a datetime-local value in the browser's zone. */
export function localInput(date) {
  const p = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}T${p(date.getHours())}:${p(date.getMinutes())}`;
}

/**
 * The detail page's issue button: { label, disabled, reason, action } where action is
 * 'login', 'issue' or null.
 */
export function issueState(c, { loggedIn, issued, pending }) {
  if (issued) return { label: '발급 완료', disabled: true, reason: '이미 발급받은 쿠폰입니다. 내 쿠폰에서 확인하세요.', action: null };
  if (c.status === 'EXHAUSTED' || remaining(c) <= 0) return { label: '품절', disabled: true, reason: '준비된 수량이 모두 소진되었습니다.', action: null };
  if (c.status === 'READY') return { label: '발급 예정', disabled: true, reason: `발급 기간이 아닙니다. ${fmtDateTime(c.startAt)}부터 발급받을 수 있습니다.`, action: null };
  if (c.status === 'EXPIRED') return { label: '발급 종료', disabled: true, reason: '발급 기간이 종료되었습니다.', action: null };
  if (c.status === 'DISABLED') return { label: '발급 중지', disabled: true, reason: '발급이 중지된 쿠폰입니다.', action: null };
  if (!loggedIn) return { label: '로그인하고 발급받기', disabled: false, reason: '로그인이 필요한 서비스입니다.', action: 'login' };
  if (pending) return { label: '발급 중…', disabled: true, reason: '', action: null };
  return { label: '쿠폰 발급받기', disabled: false, reason: '', action: 'issue' };
}

/** UTF-8 length in bytes (bcrypt's 72-byte limit counts these). */
export const utf8Bytes = (s) => new TextEncoder().encode(s).length;
/** Characters as people (and the API) count them, not UTF-16 units. */
export const chars = (s) => [...s].length;

/** The server's e-mail rule, in short: local@domain.tld without spaces. */
export function isEmail(v) {
  const at = v.lastIndexOf('@');
  if (at < 1) return false;
  const local = v.slice(0, at);
  const domain = v.slice(at + 1);
  return !/[\s@()<>,;:\\"[\]]/.test(local) && !local.startsWith('.') && !local.endsWith('.') && !local.includes('..')
    && /^[^\s@.]+(\.[^\s@.]+)+$/.test(domain) && chars(local) <= 64;
}

function emailError(email) {
  if (!email.trim()) return '이메일을 입력해주세요.';
  if (chars(email) > 100) return '이메일은 100자 이하로 입력해주세요.';
  if (!isEmail(email)) return '올바른 이메일 형식이 아닙니다.';
  return '';
}

const clean = (errors) => Object.fromEntries(Object.entries(errors).filter(([, v]) => v));

/** Sign-up form errors by field (empty object when valid); the API's limits. */
export function validateSignup({ name = '', email = '', password = '', confirm = '' }) {
  return clean({
    name: !name.trim() ? '이름을 입력해주세요.' : chars(name) > 50 ? '이름은 50자 이하로 입력해주세요.' : '',
    email: emailError(email),
    password: !password.trim() ? '비밀번호를 입력해주세요.'
      : chars(password) < 8 ? '비밀번호는 8자 이상이어야 합니다.'
        : utf8Bytes(password) > 72 ? '비밀번호가 너무 깁니다 (UTF-8 72바이트 이하).' : '',
    confirm: !confirm ? '비밀번호를 한 번 더 입력해주세요.' : confirm !== password ? '비밀번호가 일치하지 않습니다.' : '',
  });
}

/** Log-in form errors by field. */
export function validateLogin({ email = '', password = '' }) {
  return clean({ email: emailError(email), password: password.trim() ? '' : '비밀번호를 입력해주세요.' });
}

/** Admin create-coupon form errors by field; values as the inputs hold them. */
export function validateCoupon(f) {
  const text = (v, max, what) => (!String(v || '').trim() ? `${what}을(를) 입력해주세요.` : chars(v) > max ? `${what}은(는) ${max}자 이하로 입력해주세요.` : '');
  const qty = Number(f.totalQuantity);
  const start = toWire(f.startAt);
  const end = toWire(f.endAt);
  return clean({
    brand: text(f.brand, 30, '브랜드'),
    title: text(f.title, 100, '제목'),
    summary: text(f.summary, 200, '요약'),
    description: text(f.description, 100000, '상세 설명'),
    totalQuantity: Number.isInteger(qty) && qty >= 1 && qty <= 2147483647 ? '' : '수량은 1 이상의 정수로 입력해주세요.',
    startAt: start ? '' : '시작일을 입력해주세요.',
    endAt: !end ? '종료일을 입력해주세요.' : start && end <= start ? '종료일은 시작일보다 이후여야 합니다.' : '',
  });
}

/** The API's `errors[]` ({field, reason}) by field, first reason wins. */
export function fieldErrors(errors) {
  const out = {};
  for (const e of errors || []) if (e && e.field && !out[e.field]) out[e.field] = e.reason || '올바르지 않은 값입니다.';
  return out;
}

/** Appends a page's items to a list, skipping ids already shown. */
export function mergeById(list, items, key = 'id') {
  const seen = new Set(list.map((x) => x[key]));
  return list.concat(items.filter((x) => !seen.has(x[key]) && seen.add(x[key])));
}

/** The next page to ask for after a Spring page, or null after the last. */
export const nextPage = (page) => (page && !page.last ? page.number + 1 : null);

/** A path as a route: { name, id? }. */
export function route(path) {
  const p = path.replace(/\/+$/, '') || '/';
  if (p === '/') return { name: 'main' };
  const m = /^\/coupons?\/([^/]+)$/.exec(p);
  if (m) return { name: 'detail', id: decodeURIComponent(m[1]) };
  const simple = { '/login': 'login', '/signup': 'signup', '/mypage': 'mypage', '/admin': 'admin' }[p];
  return { name: simple || 'notfound' };
}

/** A local `next` target that cannot leave the site; '/' otherwise. */
export const safeNext = (next) => (typeof next === 'string' && /^\/(?![/\\])/.test(next) ? next : '/');

/** Calls fn once calls stop for `ms`; `.cancel()` drops a pending call. */
export function debounce(fn, ms) {
  let t = 0;
  const d = (...a) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...a), ms);
  };
  d.cancel = () => clearTimeout(t);
  return d;
}
