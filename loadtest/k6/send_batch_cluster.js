// send_batch.js spread over several gateway nodes (loadtest/run --cluster): BASES is a comma
// list of node base URLs; each VU keeps to one node (VU n → node n mod count), as clients behind a
// load balancer with sticky connections would. Same bodies and recipients as send_batch.js.
import http from 'k6/http';
import { SharedArray } from 'k6/data';
import { Counter } from 'k6/metrics';
import { messageBody, ok, options as base, PARAMS, pushUser } from './lib.js';

export { handleSummary } from './lib.js';
export const options = base();
const BATCH = parseInt(__ENV.BATCH || '500', 10);
const BASES = (__ENV.BASES || __ENV.BASE || 'http://127.0.0.1:8080').split(',');
const recipients = new Counter('recipients');

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
  const node = BASES[__VU % BASES.length];
  const body = bodies[Math.floor(Math.random() * bodies.length)];
  const res = http.post(`${node}/v1/messages`, body, Object.assign({ tags: { name: 'send_batch' } }, PARAMS));
  if (ok(res)) recipients.add(BATCH);
}
