// 500-recipient batch sends to PushOnline users with tokens: the routing figure (recipients/s)
// and the load on the vendor path (every recipient becomes a notification to the emulator).
import { SharedArray } from 'k6/data';
import { Counter } from 'k6/metrics';
import { messageBody, ok, options as base, post, pushUser } from './lib.js';

export { handleSummary } from './lib.js';
export const options = base();
const BATCH = parseInt(__ENV.BATCH || '500', 10);
const recipients = new Counter('recipients');

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
  const res = post('/v1/messages', body, { name: 'send_batch' });
  if (ok(res)) recipients.add(BATCH);
}
