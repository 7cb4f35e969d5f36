// Single-recipient sends: POST /v1/messages to one preloaded user picked at random (mixed
// states, so some go online, most become a notification, some are skipped with a reason).
import { Counter } from 'k6/metrics';
import { anyUser, messageBody, ok, options as base, post } from './lib.js';

export { handleSummary } from './lib.js';
export const options = base();
const recipients = new Counter('recipients');

export default function () {
  const res = post('/v1/messages', messageBody([anyUser()]), { name: 'send_single' });
  if (ok(res)) recipients.add(1);
}
