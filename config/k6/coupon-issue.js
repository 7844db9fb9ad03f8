// The race scenario for k6, to compare with `fastpick load race`.
// Every VU waits for a common start, then issues one coupon with its own token.
//
//   fastpick seed users --count 1000 --out users.csv
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e COUPON_ID=19 -e USERS=users.csv config/k6/coupon-issue.js
import http from 'k6/http';
import { check, sleep } from 'k6';
import { SharedArray } from 'k6/data';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const COUPON_ID = Number(__ENV.COUPON_ID || 19);
const VUS = Number(__ENV.VUS || 1000);
const START_DELAY_S = Number(__ENV.START_DELAY_S || 10);

// users.csv from `fastpick seed users`: a header, then one user a line; no field holds a comma.
const tokens = new SharedArray('tokens', () => {
  const lines = open(__ENV.USERS || 'users.csv').split('\n').filter((l) => l.trim() !== '');
  const header = lines[0].split(',').map((h) => h.trim());
  let column = header.indexOf('token');
  if (column < 0) column = header.indexOf('accessToken');
  return lines.slice(1).map((l) => l.split(',')[column].trim());
});

export const options = {
  scenarios: {
    race: { executor: 'per-vu-iterations', vus: VUS, iterations: 1, maxDuration: '3m' },
  },
  // Sold-out and already-issued answers are expected 400s; judge the checks instead of http_req_failed.
  thresholds: { 'checks{check:correct}': ['rate>0.95'] },
};

export function setup() {
  return { startAt: Date.now() + START_DELAY_S * 1000 };
}

export default function (data) {
  const wait = data.startAt - Date.now();
  if (wait > 0) sleep(wait / 1000);
  const token = tokens[(__VU - 1) % tokens.length];
  const res = http.post(`${BASE_URL}/api/v1/coupon-issues`, JSON.stringify({ couponId: COUPON_ID }), {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
  });
  let code = '';
  try {
    code = res.json('code');
  } catch (_) {
    code = '';
  }
  const correct = res.status === 200 || res.status === 202 || (res.status === 400 && (code === 'CP04' || code === 'CP05'));
  check(res, { correct: () => correct }, { check: 'correct' });
  check(res, { 'no 5xx, no connection error': (r) => r.status !== 0 && r.status < 500 });
}
