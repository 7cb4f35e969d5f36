// Baseline: the same request shape as send_single.js against loadtest/bare_http.rs, which
// answers a fixed small JSON. Our single-recipient send throughput is reported as a share of it.
import { Counter } from 'k6/metrics';
import { anyUser, messageBody, ok, options as base, post } from './lib.js';

export { handleSummary } from './lib.js';
export const options = base();
const recipients = new Counter('recipients');

export default function () {
  const res = post('/bare', messageBody([anyUser()]), { name: 'bare' });
  if (ok(res)) recipients.add(1);
}
