// 500-recipient batch sends to PushOnline users with tokens: the routing figure (recipients/s)
// and the load on the vendor path (every recipient becomes a notification to the emulator).
// Over several gateway nodes (loadtest/run --cluster), BASES is a comma list of node base URLs and
// each VU keeps to one node (VU n → node n mod count), as clients behind a load balancer with
// sticky connections would; without it every VU sends to BASE.
import http from 'k6/http';
import { SharedArray } from 'k6/data';
import { Counter } from 'k6/metrics';
import { BASE, messageBody, ok, options as base, PARAMS, pushUser } from './lib.js';

export { handleSummary } from './lib.js';
export const options = base();
const BATCH = parseInt(__ENV.BATCH || '500', 10);
const recipients = new Counter('recipients');
const BASES = (__ENV.BASES || BASE).split(',');

// Bodies are built once and shared: building 500 names per request would load k6, not us.
const bodies = new SharedArray('batch bodies', () => {
  const out = [];
  for (let b = 0; b < 64; b += 1) {
    const to = [];
    for (let k = 0; k < BATCH; k += 1) to.push(pushUser());
    out.push(messageBody(to));
  }
  return out;
});

export default function () {
  const body = bodies[Math.floor(Math.random() * bodies.length)];
  const node = BASES[__VU % BASES.length];
  const res = http.post(`${node}/v1/messages`, body, Object.assign({ tags: { name: 'send_batch' } }, PARAMS));
  if (ok(res)) recipients.add(BATCH);
}
