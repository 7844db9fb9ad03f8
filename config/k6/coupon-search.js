// The search scenario for k6, to compare with `fastpick load search`: the original script's
// stages, checks (by their names) and thresholds.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 config/k6/coupon-search.js
import http from 'k6/http';
import { check, sleep } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const KEYWORDS = ['29CM', 'BALANCE', 'HOKA', 'KITSUNE', 'LAST', 'NEW', 'NIKE', 'OFF', 'PATAGONIA', 'SOTO',
  '기강해이', '단독', '로우', '방지', '백팩', '스니커즈', '에디션', '재킷', '조던', '티셔츠', '팬츠'];
const FILTERS = ['ALL', 'READY', 'ISSUING', 'CLOSED'];

export const options = {
  stages: [
    { duration: '30s', target: 30 },
    { duration: '1m', target: 50 },
    { duration: '1m', target: 100 },
    { duration: '30s', target: 0 },
  ],
  thresholds: { http_req_duration: ['p(99)<2500'], http_req_failed: ['rate<0.01'] },
};

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

export default function () {
  const word = Math.random() < 0.7 ? pick(KEYWORDS) : `GHOST_${Date.now()}_${Math.floor(Math.random() * 1000)}`;
  const res = http.get(`${BASE_URL}/api/v1/coupons?search=${encodeURIComponent(word)}&filterType=${pick(FILTERS)}`);
  check(res, {
    'is status 200': (r) => r.status === 200,
    'response contains data': (r) => {
      try {
        return r.json() !== null;
      } catch (_) {
        return false;
      }
    },
  });
  sleep(0.1 + Math.random() * 0.2);
}
