// A mixed IM-like day: mostly one-to-one sends, some group sends, session churn (login,
// background, foreground, disconnect) with token reports, and status queries, by weight.
import { SharedArray } from 'k6/data';
import http from 'k6/http';
import { Counter } from 'k6/metrics';
import {
  anyUser, BASE, messageBody, ok, options as base, PARAMS, post, put,
} from './lib.js';

export { handleSummary } from './lib.js';
export const options = base();
const CERT = parseInt(__ENV.CERTIFICATE_ID || '1001', 10);
const GROUP = 50;
const recipients = new Counter('recipients');
const tokenReports = new Counter('token_reports');

const groupBodies = new SharedArray('group bodies', () => {
  const out = [];
  for (let b = 0; b < 32; b += 1) {
    const to = [];
    for (let k = 0; k < GROUP; k += 1) to.push(anyUser());
    out.push(messageBody(to));
  }
  return out;
});

// Each VU owns one device and walks it through a valid cycle of session events.
const CYCLE = ['login', 'token', 'background', 'foreground', 'disconnect'];
let step = 0;

function churn() {
  const user = `day_${__VU}`;
  const device = `dayd_${__VU}`;
  const what = CYCLE[step % CYCLE.length];
  step += 1;
  if (what === 'token') {
    const body = JSON.stringify({
      user, platform: 'Android', device, certificate_id: CERT, token: `day${__VU}`.padEnd(64, 'Z'),
    });
    if (ok(put('/v1/push-tokens', body, { name: 'token' }))) tokenReports.add(1);
    return;
  }
  const body = JSON.stringify({ events: [{ user, platform: 'Android', device, action: what }] });
  ok(post('/v1/sessions/events', body, { name: 'events' }));
}

export default function () {
  const r = Math.random();
  if (r < 0.6) {
    if (ok(post('/v1/messages', messageBody([anyUser()]), { name: 'send_single' }))) {
      recipients.add(1);
    }
  } else if (r < 0.65) {
    const body = groupBodies[Math.floor(Math.random() * groupBodies.length)];
    if (ok(post('/v1/messages', body, { name: 'send_group' }))) recipients.add(GROUP);
  } else if (r < 0.9) {
    churn();
  } else {
    ok(http.get(`${BASE}/v1/users/${anyUser()}`, Object.assign({ tags: { name: 'status' } }, PARAMS)));
  }
}
