// The storefront: history-API routes, one view per screen, built with the DOM (no framework).
// Screens: main (/), detail (/coupon/:id), login, signup, my coupons (/mypage), admin create.
import {
  FILTERS, MY_FILTERS, badge, debounce, fieldErrors, fmtDateTime, issueState, issuedPercent, localInput,
  mergeById, nextPage, num, remaining, route, safeNext, toWire, validateCoupon, validateLogin, validateSignup,
} from './core.1b65016313.js';
import { createClient, isAdmin } from './api.31599753f8.js';

const PAGE_SIZE = 12;
const KEY = 'fastpick.session';
const main = document.getElementById('main');
const toasts = document.getElementById('toasts');
const account = document.getElementById('account');

/** Builds an element: h('a', { href, class, onclick }, ...children). */
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  el.append(...kids.flat().filter((k) => k != null && k !== false));
  return el;
}

const store = {
  get() {
    try {
      return JSON.parse(localStorage.getItem(KEY));
    } catch {
      return null;
    }
  },
  set(session) {
    if (session) localStorage.setItem(KEY, JSON.stringify(session));
    else localStorage.removeItem(KEY);
    renderAccount();
  },
};

let notice = '';
const api = createClient({
  fetch: (...a) => fetch(...a),
  store,
  onExpired() {
    notice = '세션이 만료되었습니다. 다시 로그인해주세요.';
    navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, true);
  },
});

// ---- page lifecycle: each view gets a signal; leaving the page aborts its work and toasts.
let page = new AbortController();

function toast(text, tone = 'ok') {
  const el = h('div', { class: `toast ${tone}`, text });
  toasts.append(el);
  // Never over the issue button: move to the bottom when the button is under the toasts.
  const b = document.querySelector('[data-testid=issue]')?.getBoundingClientRect();
  const z = toasts.getBoundingClientRect();
  toasts.classList.toggle('low', !!b && b.bottom > z.top && b.top < z.bottom);
  const t = setTimeout(() => el.remove(), 3500);
  page.signal.addEventListener('abort', () => clearTimeout(t));
}

function navigate(path, replace = false) {
  history[replace ? 'replaceState' : 'pushState'](null, '', path);
  render(true);
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[href]');
  if (!a || e.defaultPrevented || e.button || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
addEventListener('popstate', () => render(true));
addEventListener('storage', (e) => e.key === KEY && renderAccount());

function renderAccount() {
  const s = store.get();
  account.replaceChildren(...[s
    ? [
      h('span', { class: 'who', text: `${s.user?.name || ''} 님` }),
      isAdmin(s) && h('a', { href: '/admin', text: '쿠폰 만들기' }),
      h('button', {
        type: 'button',
        class: 'link',
        text: '로그아웃',
        onclick() {
          store.set(null);
          navigate('/');
          toast('로그아웃되었습니다.');
        },
      }),
    ]
    : [h('a', { href: '/login', text: '로그인' }), h('a', { href: '/signup', text: '회원가입' })]].flat().filter(Boolean));
}

const VIEWS = { main: viewMain, detail: viewDetail, login: viewLogin, signup: viewSignup, mypage: viewMy, admin: viewAdmin, notfound: viewNotFound };

function render(moved) {
  page.abort();
  page = new AbortController();
  toasts.replaceChildren();
  toasts.classList.remove('low');
  const r = route(location.pathname);
  document.body.dataset.route = r.name;
  main.replaceChildren();
  VIEWS[r.name](r, page.signal);
  const title = main.querySelector('h1');
  document.title = `${title && r.name !== 'main' ? `${title.textContent} · ` : ''}FastPick`;
  if (moved) {
    scrollTo(0, 0);
    title?.setAttribute('tabindex', '-1');
    title?.focus({ preventScroll: true });
  }
}

// ---- shared pieces

function statusBadge(status) {
  const [label, tone] = badge(status);
  return h('span', { class: `badge ${tone}`, text: label });
}

/** Toggle buttons for filters; calls pick(value). */
function tabs(label, options, current, pick) {
  const group = h('div', { class: 'tabs', role: 'group', 'aria-label': label });
  for (const [value, text] of options) {
    group.append(h('button', {
      type: 'button',
      'data-filter': value,
      'aria-pressed': String(value === current),
      text,
      onclick() {
        for (const b of group.children) b.setAttribute('aria-pressed', String(b === this));
        pick(value);
      },
    }));
  }
  return group;
}

function searchBox(id, label, placeholder, value, onInput) {
  const input = h('input', { id, type: 'search', name: 'q', maxlength: '50', placeholder, value, autocomplete: 'off', enterkeyhint: 'search' });
  const run = debounce(() => onInput(input.value.trim()), 300);
  input.addEventListener('input', run);
  return h('form', {
    role: 'search',
    class: 'search',
    onsubmit(e) {
      e.preventDefault();
      run.cancel();
      onInput(input.value.trim());
    },
  }, h('label', { for: id, class: 'sr', text: label }), input, h('button', { type: 'submit', text: '검색' }));
}

/**
 * An infinite list: pages from load(n, signal) (an API result with a Spring page), items
 * drawn by draw(item), more pages when the end of the list scrolls into view (or on the
 * button). Returns { el, reset() }.
 */
function pagedList({ signal, load, draw, key = 'id', empty, label, onPage }) {
  const list = h('ul', { class: 'cards', 'aria-label': label, 'data-state': 'loading', 'aria-busy': 'true' });
  const status = h('div', { class: 'more', 'aria-live': 'polite' });
  let items = [];
  let next = 0;
  let busy = false;
  let run = 0;
  let ctl = null;

  const skeletons = () => Array.from({ length: 6 }, () => h('li', { class: 'card skeleton', 'aria-hidden': 'true' }));

  async function more() {
    if (busy || next == null) return;
    busy = true;
    const mine = ++run;
    const n = next;
    ctl = new AbortController();
    signal.addEventListener('abort', () => ctl.abort(), { once: true });
    if (n > 0) status.replaceChildren(h('p', { class: 'muted', text: '불러오는 중…' }));
    const r = await load(n, ctl.signal);
    if (mine !== run || signal.aborted) return;
    busy = false;
    if (!r.ok) {
      if (r.code === 'ABORTED' || r.code === 'SESSION') return;
      if (n === 0) list.replaceChildren();
      list.dataset.state = n === 0 ? 'error' : list.dataset.state;
      list.removeAttribute('aria-busy');
      status.replaceChildren(h('div', { class: 'error', role: 'alert' },
        h('p', { text: `쿠폰을 불러오지 못했습니다. ${r.message || ''}`.trim() }),
        h('button', { type: 'button', text: '다시 시도', onclick: more })));
      return;
    }
    const pageData = r.data;
    if (n === 0) list.replaceChildren();
    const before = items.length;
    items = mergeById(items, pageData.content || [], key);
    list.append(...items.slice(before).map(draw));
    list.removeAttribute('aria-busy');
    if (n === 0 && items.length && !window.__firstCard) {
      window.__firstCard = performance.now();
      performance.mark('first-card');
    }
    next = nextPage(pageData);
    list.dataset.state = items.length ? 'ok' : 'empty';
    list.dataset.page = String(pageData.number);
    onPage?.(pageData);
    if (!items.length) status.replaceChildren(h('p', { class: 'empty', text: empty }));
    else if (next == null) status.replaceChildren(h('p', { class: 'end muted', text: `모두 ${num(items.length)}개를 불러왔습니다.` }));
    else {
      status.replaceChildren(h('button', { type: 'button', class: 'secondary', 'data-more': '', text: '더 보기', onclick: more }));
      // The observer speaks only on a change: when the end is still in reach, read on.
      requestAnimationFrame(() => status.getBoundingClientRect().top < innerHeight + 600 && more());
    }
  }

  const io = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) more();
  }, { rootMargin: '600px 0px' });
  io.observe(status);
  signal.addEventListener('abort', () => io.disconnect(), { once: true });

  function reset() {
    run++;
    ctl?.abort();
    busy = false;
    items = [];
    next = 0;
    list.dataset.state = 'loading';
    list.setAttribute('aria-busy', 'true');
    list.replaceChildren(...skeletons());
    status.replaceChildren();
    more();
  }
  return { el: h('div', null, list, status), reset };
}

function couponCard(c) {
  const pct = issuedPercent(c);
  return h('li', { class: 'card', 'data-id': c.id, 'data-status': c.status },
    h('a', { href: `/coupon/${c.id}` },
      h('div', { class: 'row' }, h('span', { class: 'brand', text: c.brand }), statusBadge(c.status)),
      h('h3', { class: 'title', text: c.title }),
      c.summary && h('p', { class: 'summary', text: c.summary }),
      h('div', { class: 'bar', 'aria-hidden': 'true' }, h('span', { style: `width:${pct}%` })),
      h('p', { class: 'qty' }, '남은 수량 ', h('b', { text: `${num(remaining(c))}개` }), ` · ${pct}% 발급`)));
}

function setUrl(params) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v && v !== 'ALL')).toString();
  history.replaceState(null, '', location.pathname + (q ? `?${q}` : ''));
}

// ---- screens

function viewMain(_, signal) {
  const params = new URLSearchParams(location.search);
  let q = params.get('q') || '';
  let f = FILTERS.some(([v]) => v === params.get('f')) ? params.get('f') : 'ALL';
  const list = pagedList({
    signal,
    label: '쿠폰 목록',
    empty: '조건에 맞는 쿠폰이 없습니다. 다른 검색어나 탭을 골라 보세요.',
    load: (n, s) => api.request(`/api/v1/coupons?${new URLSearchParams({ search: q, filterType: f, page: n, size: PAGE_SIZE })}`, { signal: s }),
    draw: couponCard,
  });
  const change = () => {
    setUrl({ q, f });
    list.reset();
  };
  main.append(
    h('section', { class: 'hero' },
      h('h1', { text: '오늘의 선착순 쿠폰' }),
      h('p', { text: '한정 수량으로 준비한 브랜드 쿠폰을 가장 먼저 받아 가세요.' })),
    searchBox('q', '쿠폰 검색', '브랜드나 쿠폰 이름 (예: nike 백팩)', q, (v) => {
      if (v !== q) { q = v; change(); }
    }),
    tabs('발급 상태', FILTERS, f, (v) => { f = v; change(); }),
    h('h2', { class: 'sr', text: '쿠폰 목록' }),
    list.el,
  );
  list.reset();
}

function viewDetail({ id }, signal) {
  const box = h('article', { class: 'detail', 'aria-busy': 'true' }, h('p', { class: 'muted', text: '쿠폰을 불러오는 중…' }));
  main.append(h('p', { class: 'back' }, h('a', { href: '/', text: '← 쿠폰 목록' })), box);
  const notFound = () => {
    box.dataset.state = 'notfound';
    box.removeAttribute('aria-busy');
    box.replaceChildren(h('h1', { text: '존재하지 않는 쿠폰입니다.' }), h('p', null, h('a', { href: '/', text: '다른 쿠폰 보러 가기' })));
  };
  if (!/^\d{1,18}$/.test(id)) return notFound();
  let issued = false;
  let pending = false;
  let coupon = null;
  const msg = h('p', { id: 'issue-msg', class: 'reason', 'aria-live': 'polite' });

  async function load() {
    const r = await api.request(`/api/v1/coupons/${id}`, { signal });
    if (signal.aborted || r.code === 'ABORTED') return;
    if (!r.ok) {
      // A 4xx will not change on a retry: say so at once.
      if (r.status >= 400 && r.status < 500) return notFound();
      box.dataset.state = 'error';
      box.removeAttribute('aria-busy');
      box.replaceChildren(h('h1', { text: '쿠폰을 불러오지 못했습니다.' }), h('p', { role: 'alert', text: r.message }),
        h('button', { type: 'button', text: '다시 시도', onclick: load }));
      return;
    }
    const first = !coupon;
    coupon = r.data;
    draw(first);
  }

  async function checkIssued() {
    if (!store.get() || !coupon) return;
    const r = await api.request(`/api/v1/my/coupons?${new URLSearchParams({ search: coupon.title, size: 100 })}`, { auth: 'required', signal });
    if (r.ok && r.data.content.some((c) => String(c.couponId) === String(id))) {
      issued = true;
      drawButton();
    }
  }

  const button = h('button', { type: 'button', class: 'primary wide', 'data-testid': 'issue', onclick: act });
  function drawButton() {
    const s = issueState(coupon, { loggedIn: !!store.get(), issued, pending });
    button.textContent = s.label;
    button.disabled = s.disabled;
    button.dataset.action = s.action || '';
    button.setAttribute('aria-describedby', 'issue-msg');
    if (!msg.dataset.api) msg.textContent = s.reason;
  }

  async function act() {
    const s = issueState(coupon, { loggedIn: !!store.get(), issued, pending });
    if (s.action === 'login') return navigate(`/login?next=${encodeURIComponent(location.pathname)}`);
    if (s.action !== 'issue') return;
    pending = true;
    delete msg.dataset.api;
    msg.removeAttribute('role');
    drawButton();
    const r = await api.request('/api/v1/coupon-issues', { method: 'POST', body: { couponId: Number(id) }, auth: 'required', signal });
    if (signal.aborted) return;
    pending = false;
    if (r.ok) {
      issued = true;
      msg.dataset.api = 'ok';
      msg.textContent = '쿠폰이 발급되었습니다. 내 쿠폰에서 확인하세요.';
      toast('쿠폰이 발급되었습니다.');
    } else if (r.code !== 'SESSION') {
      if (r.code === 'CP05') issued = true;
      msg.dataset.api = r.code;
      msg.setAttribute('role', 'alert');
      msg.textContent = r.message;
    }
    drawButton();
    if (r.code !== 'SESSION') load();
  }

  function draw(first) {
    const c = coupon;
    const pct = issuedPercent(c);
    if (first) {
      box.dataset.state = 'ok';
      box.removeAttribute('aria-busy');
      box.replaceChildren(
        h('div', { class: 'row' }, h('span', { class: 'brand', text: c.brand }), h('span', { class: 'status-slot' })),
        h('h1', { text: c.title }),
        h('p', { class: 'desc', text: c.description || '이 쿠폰의 상세 설명이 준비 중입니다.' }),
        h('dl', { class: 'facts' }),
        h('div', { class: 'issue' }, button, msg),
        h('section', { class: 'info', 'aria-labelledby': 'info-h' }, h('h2', { id: 'info-h', text: '유의 사항' }),
          h('ul', null,
            h('li', { text: '계정당 1회만 발급받을 수 있습니다.' }),
            h('li', { text: '한정 수량이라 조기에 소진될 수 있습니다.' }),
            h('li', { text: '발급 기간이 지난 쿠폰은 다시 발급되지 않습니다.' }))));
      document.title = `${c.title} · FastPick`;
      checkIssued();
    }
    box.querySelector('.status-slot').replaceChildren(statusBadge(c.status));
    box.querySelector('.facts').replaceChildren(
      ...[['총 수량', `${num(c.totalQuantity)}개`], ['남은 수량', `${num(remaining(c))}개`], ['발급률', `${pct}%`],
        ['발급 기간', `${fmtDateTime(c.startAt)} ~ ${fmtDateTime(c.endAt)}`]]
        .map(([k, v]) => h('div', null, h('dt', { text: k }), h('dd', { text: v }))));
    drawButton();
  }
  load();
}

/** A labelled input with its error line. */
function field(name, label, attrs = {}) {
  const id = `f-${name}`;
  const tag = attrs.tag || 'input';
  delete attrs.tag;
  const input = h(tag, { id, name, 'aria-describedby': `${id}-err`, ...attrs });
  return h('div', { class: 'field' }, h('label', { for: id, text: label }), input, h('p', { id: `${id}-err`, class: 'err' }));
}

/** Shows errors next to their fields; focuses the first. Returns whether there were any. */
function showErrors(form, errors) {
  let first = null;
  for (const el of form.querySelectorAll('[name]')) {
    const err = form.querySelector(`#${el.id}-err`);
    if (!err) continue;
    const text = errors[el.name] || '';
    err.textContent = text;
    if (text) el.setAttribute('aria-invalid', 'true');
    else el.removeAttribute('aria-invalid');
    if (text && !first) first = el;
  }
  first?.focus();
  return !!first;
}

const values = (form) => Object.fromEntries(new FormData(form));

function authForm({ title, fields, submit, busy, other, send, check }) {
  const formErr = h('p', { class: 'form-err', role: 'alert' });
  const button = h('button', { type: 'submit', class: 'primary wide', text: submit });
  const form = h('form', { class: 'auth', novalidate: true }, ...fields, formErr, button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formErr.textContent = '';
    const v = values(form);
    if (showErrors(form, check(v))) return;
    button.disabled = true;
    button.textContent = busy;
    const r = await send(v);
    button.disabled = false;
    button.textContent = submit;
    if (r.ok) {
      store.set({ accessToken: r.data.accessToken, refreshToken: r.data.refreshToken, user: r.data.user });
      notice = '';
      return navigate(safeNext(new URLSearchParams(location.search).get('next')), true);
    }
    const byField = fieldErrors(r.errors);
    if (r.code === 'U002') byField.email = r.message;
    if (!showErrors(form, byField)) formErr.textContent = r.message;
  });
  const box = h('section', { class: 'narrow' }, h('h1', { text: title }));
  if (notice) box.append(h('p', { class: 'notice', role: 'alert', text: notice }));
  box.append(form, other);
  main.append(box);
}

function viewLogin() {
  const next = new URLSearchParams(location.search).get('next');
  const q = next ? `?next=${encodeURIComponent(safeNext(next))}` : '';
  authForm({
    title: '로그인',
    fields: [field('email', '이메일', { type: 'email', autocomplete: 'email', maxlength: '100', required: true }),
      field('password', '비밀번호', { type: 'password', autocomplete: 'current-password', required: true })],
    submit: '로그인',
    busy: '로그인 중…',
    check: validateLogin,
    send: (v) => api.request('/api/v1/auth/login', { method: 'POST', body: { email: v.email, password: v.password } }),
    other: h('p', { class: 'muted' }, '회원이 아니신가요? ', h('a', { href: `/signup${q}`, text: '회원가입' })),
  });
}

function viewSignup() {
  authForm({
    title: '회원가입',
    fields: [field('name', '이름', { autocomplete: 'name', maxlength: '50', required: true }),
      field('email', '이메일', { type: 'email', autocomplete: 'email', maxlength: '100', required: true }),
      field('password', '비밀번호 (8자 이상)', { type: 'password', autocomplete: 'new-password', required: true }),
      field('confirm', '비밀번호 확인', { type: 'password', autocomplete: 'new-password', required: true })],
    submit: '가입하기',
    busy: '가입 중…',
    check: validateSignup,
    send: (v) => api.request('/api/v1/auth/signup', { method: 'POST', body: { email: v.email, password: v.password, name: v.name } }),
    other: h('p', { class: 'muted' }, '이미 계정이 있으신가요? ', h('a', { href: '/login', text: '로그인' })),
  });
}

function needLogin() {
  if (store.get()) return false;
  notice = '로그인이 필요한 서비스입니다.';
  navigate(`/login?next=${encodeURIComponent(location.pathname)}`, true);
  return true;
}

function viewMy(_, signal) {
  if (needLogin()) return;
  let q = '';
  let f = 'ALL';
  const count = h('p', { class: 'count', 'aria-live': 'polite' });
  const list = pagedList({
    signal,
    label: '내 쿠폰 목록',
    key: 'id',
    empty: '쿠폰이 없습니다.',
    load: (n, s) => api.request(`/api/v1/my/coupons?${new URLSearchParams({ search: q, status: f, page: n, size: PAGE_SIZE })}`, { auth: 'required', signal: s }),
    draw: (c) => h('li', { class: 'card', 'data-id': c.couponId, 'data-status': c.status },
      h('a', { href: `/coupon/${c.couponId}` },
        h('div', { class: 'row' }, h('span', { class: 'brand', text: c.brand }), statusBadge(c.status)),
        h('h3', { class: 'title', text: c.title }),
        c.summary && h('p', { class: 'summary', text: c.summary }),
        h('p', { class: 'qty', text: `유효기간 ${fmtDateTime(c.expireAt)} 까지` }))),
    onPage(p) {
      const what = f === 'ALL' && !q ? '보유 쿠폰' : '찾은 쿠폰';
      count.replaceChildren(`${what} `, h('b', { 'data-count': p.totalElements, text: num(p.totalElements) }), '개');
    },
  });
  main.append(
    h('h1', { text: '내 쿠폰' }),
    h('p', { class: 'muted', text: `${store.get()?.user?.name || ''} 님의 쿠폰함입니다.` }),
    count,
    searchBox('my-q', '내 쿠폰 제목 검색', '쿠폰 제목 검색', '', (v) => { q = v; list.reset(); }),
    tabs('쿠폰 상태', MY_FILTERS, f, (v) => { f = v; list.reset(); }),
    list.el,
  );
  list.reset();
}

function viewAdmin(_, signal) {
  if (needLogin()) return;
  const now = new Date();
  const result = h('div', { class: 'result', 'aria-live': 'polite' });
  const button = h('button', { type: 'submit', class: 'primary wide', text: '쿠폰 만들기' });
  const form = h('form', { class: 'auth', novalidate: true },
    field('brand', '브랜드 (30자 이하)', { maxlength: '30', required: true }),
    field('title', '제목 (100자 이하)', { maxlength: '100', required: true }),
    field('summary', '요약 (200자 이하)', { maxlength: '200', required: true }),
    field('description', '상세 설명', { tag: 'textarea', rows: '4', required: true }),
    field('totalQuantity', '총 수량', { type: 'number', min: '1', step: '1', inputmode: 'numeric', value: '100', required: true }),
    field('startAt', '발급 시작 (서버 시각)', { type: 'datetime-local', step: '1', value: localInput(now), required: true }),
    field('endAt', '발급 종료', { type: 'datetime-local', step: '1', value: localInput(new Date(+now + 7 * 864e5)), required: true }),
    button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    result.replaceChildren();
    const v = values(form);
    if (showErrors(form, validateCoupon(v))) return;
    button.disabled = true;
    const body = { ...v, totalQuantity: Number(v.totalQuantity), startAt: toWire(v.startAt), endAt: toWire(v.endAt) };
    const r = await api.request('/api/v1/admin/coupons', { method: 'POST', body, auth: 'required', signal });
    button.disabled = false;
    if (signal.aborted || r.code === 'SESSION') return;
    if (r.ok) {
      result.replaceChildren(h('p', { class: 'ok', role: 'status' }, `쿠폰을 만들었습니다 (번호 ${r.data}). `, h('a', { href: `/coupon/${r.data}`, text: '만든 쿠폰 보기' })));
      toast('쿠폰을 만들었습니다.');
      return;
    }
    if (r.status === 403) {
      result.replaceChildren(h('div', { class: 'error', role: 'alert', 'data-code': r.code },
        h('p', null, h('b', { text: '관리자만 쿠폰을 만들 수 있습니다.' })), h('p', { text: `${r.message} (403 ${r.code})` })));
      return;
    }
    if (!showErrors(form, fieldErrors(r.errors))) result.replaceChildren(h('p', { class: 'error', role: 'alert', text: r.message }));
  });
  main.append(h('section', { class: 'narrow' }, h('h1', { text: '쿠폰 만들기' }),
    !isAdmin(store.get()) && h('p', { class: 'notice', text: '관리자(ADMIN) 계정만 쿠폰을 만들 수 있습니다. 지금 계정으로는 서버가 거절합니다.' }),
    form, result));
}

function viewNotFound() {
  main.append(h('section', { class: 'narrow' }, h('h1', { text: '페이지를 찾을 수 없습니다.' }), h('p', null, h('a', { href: '/', text: '쿠폰 목록으로' }))));
}

renderAccount();
render(false);
