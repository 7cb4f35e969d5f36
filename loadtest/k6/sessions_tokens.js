// Session events and token reports, as the IM cluster sends them: each iteration logs a device
// in, reports its push token (durable: answered after the group commit), and disconnects it.
// Each VU cycles over its own 1000 devices, so the registry grows by at most VUS*1000.
import { Counter } from 'k6/metrics';
import { ok, options as base, post, put } from './lib.js';

export { handleSummary } from './lib.js';
export const options = base();
const CERT = parseInt(__ENV.CERTIFICATE_ID || '1001', 10);
const tokenReports = new Counter('token_reports');
const events = new Counter('session_events');

function event(user, device, action) {
  return JSON.stringify({ events: [{ user, platform: 'Android', device, action }] });
}

export default function () {
  const n = __ITER % 1000;
  const user = `k6s_${__VU}_${n}`;
  const device = `k6d_${__VU}_${n}`;
  if (ok(post('/v1/sessions/events', event(user, device, 'login'), { name: 'events' }))) {
    events.add(1);
  }
  const token = `k6t${__VU}x${n}`.padEnd(64, 'Q');
  const body = JSON.stringify({
    user, platform: 'Android', device, certificate_id: CERT, token,
  });
  if (ok(put('/v1/push-tokens', body, { name: 'token' }))) tokenReports.add(1);
  if (ok(post('/v1/sessions/events', event(user, device, 'disconnect'), { name: 'events' }))) {
    events.add(1);
  }
}
