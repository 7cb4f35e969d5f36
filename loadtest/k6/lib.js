// Shared settings and helpers of the k6 scenarios. loadtest/run passes everything through -e:
//   BASE       gateway base URL            API_TOKEN  bearer token of the IM-cluster API
//   DEVICES    preloaded devices (user u{i}, device a{i}; i%10>=2 are PushOnline with a token)
//   VUS        virtual users               DURATION   e.g. 10s
//   SUMMARY_OUT  where handleSummary writes the full JSON summary
import http from 'k6/http';
import { check } from 'k6';

export const BASE = __ENV.BASE || 'http://127.0.0.1:8080';
export const DEVICES = Math.max(10, parseInt(__ENV.DEVICES || '10000', 10));
export const VUS = parseInt(__ENV.VUS || '32', 10);
export const DURATION = __ENV.DURATION || '10s';
export const PARAMS = {
  headers: {
    Authorization: `Bearer ${__ENV.API_TOKEN || ''}`,
    'Content-Type': 'application/json',
  },
};

// Error-rate thresholds every scenario carries; k6 exits 99 when one fails.
export function options(extra) {
  return {
    scenarios: {
      main: { executor: 'constant-vus', vus: VUS, duration: DURATION, gracefulStop: '5s' },
    },
    thresholds: Object.assign(
      { http_req_failed: ['rate<0.01'], checks: ['rate>0.99'] },
      extra || {},
    ),
    summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
    discardResponseBodies: true,
  };
}

// Any preloaded user (mixed states: 10% Online, 10% Offline, 80% PushOnline with a token).
export function anyUser() {
  return `u${Math.floor(Math.random() * DEVICES)}`;
}

// A preloaded user that is PushOnline with a token (i % 10 in 2..9).
export function pushUser() {
  const tens = Math.floor(DEVICES / 10);
  const i = Math.floor(Math.random() * tens) * 10 + 2 + Math.floor(Math.random() * 8);
  return `u${i < DEVICES ? i : 2}`;
}

export function messageBody(to) {
  return JSON.stringify({
    to,
    from: 'carol',
    text: 'loadtest message',
    offline_push: { title: 'carol', desc: 'loadtest message' },
  });
}

export function post(path, body, tags) {
  return http.post(`${BASE}${path}`, body, Object.assign({ tags }, PARAMS));
}

export function put(path, body, tags) {
  return http.put(`${BASE}${path}`, body, Object.assign({ tags }, PARAMS));
}

export function ok(res) {
  return check(res, { 'status 200': (r) => r.status === 200 });
}

function fmt(v) {
  return v === undefined ? '-' : v.toFixed(2);
}

export function handleSummary(data) {
  const out = {};
  if (__ENV.SUMMARY_OUT) out[__ENV.SUMMARY_OUT] = JSON.stringify(data);
  const m = data.metrics;
  const d = m.http_req_duration ? m.http_req_duration.values : {};
  const line = [
    `${__ENV.SCENARIO || 'k6'}:`,
    `${fmt(m.http_reqs && m.http_reqs.values.rate)} req/s`,
    `p50 ${fmt(d.med)} ms`,
    `p99 ${fmt(d['p(99)'])} ms`,
    `failed ${fmt(m.http_req_failed && 100 * m.http_req_failed.values.rate)}%`,
  ].join(' ');
  out.stdout = `${line}\n`;
  return out;
}
