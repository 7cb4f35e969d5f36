// Mixed WebSocket traffic against pushgate's /v1/ws (contract.md, "WebSocket"):
// - `sessions`: virtual users that log in over WebSocket (a UserSig generated here), set a push
//   token, ack every message, ping, go to the background and back, and end either by closing
//   (→ PushOnline) or by `logout` (→ Offline);
// - `senders`: POST /v1/messages to those users while they come and go.
//
//   k6 run -e BASE=http://127.0.0.1:8080 -e SDKAPPID=1400000000 -e KEY=<secret key> \
//          -e API_TOKEN=<api token> [-e CERT=<certificate id>] loadtest/k6/ws.js
//
// Without CERT the sessions skip set_push_token (messages to closed sessions are then skipped
// with reason no_token instead of pushed).

import ws from 'k6/ws';
import http from 'k6/http';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import { check, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';

// The runner reads the scenario's figures from the summary file this writes (SUMMARY_OUT).
export { handleSummary } from './lib.js';

const BASE = __ENV.BASE || 'http://127.0.0.1:8080';
const WS_BASE = BASE.replace(/^http/, 'ws');
const SDKAPPID = __ENV.SDKAPPID || '1400000000';
const KEY = __ENV.KEY || 'change-me';
const API_TOKEN = __ENV.API_TOKEN || '';
const CERT = __ENV.CERT ? Number(__ENV.CERT) : null;
const USERS = Number(__ENV.USERS || 200);

const received = new Counter('pushgate_ws_messages_received');
const errors = new Counter('pushgate_ws_error_frames');
const deliveryMs = new Trend('pushgate_ws_delivery_ms', true);

export const options = {
  scenarios: {
    sessions: {
      executor: 'constant-vus',
      vus: Number(__ENV.VUS || 200),
      duration: __ENV.DURATION || '1m',
      exec: 'session',
    },
    senders: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 200),
      timeUnit: '1s',
      duration: __ENV.DURATION || '1m',
      preAllocatedVUs: 20,
      exec: 'send',
    },
  },
  thresholds: {
    checks: ['rate>0.99'],
    pushgate_ws_error_frames: ['count==0'],
  },
};

// ---- UserSig v2 (spec/usersig-v2.md), with a zlib stream of stored blocks (level 0) ----------

function utf8(s) {
  const out = [];
  for (const ch of unescape(encodeURIComponent(s))) out.push(ch.charCodeAt(0));
  return out;
}

function zlibStored(bytes) {
  const out = [0x78, 0x01];
  for (let i = 0; i < bytes.length || i === 0; i += 65535) {
    const chunk = bytes.slice(i, i + 65535);
    const last = i + 65535 >= bytes.length ? 1 : 0;
    const len = chunk.length;
    out.push(last, len & 0xff, len >> 8, ~len & 0xff, (~len >> 8) & 0xff, ...chunk);
    if (bytes.length === 0) break;
  }
  let a = 1;
  let b = 0;
  for (const x of bytes) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  out.push((b >> 8) & 0xff, b & 0xff, (a >> 8) & 0xff, a & 0xff);
  return new Uint8Array(out).buffer;
}

function userSig(identifier, expire) {
  const time = Math.floor(Date.now() / 1000);
  const content =
    `TLS.identifier:${identifier}\nTLS.sdkappid:${SDKAPPID}\n` +
    `TLS.time:${time}\nTLS.expire:${expire}\n`;
  const sig = crypto.hmac('sha256', KEY, content, 'base64');
  const doc = JSON.stringify({
    'TLS.ver': '2.0',
    'TLS.identifier': identifier,
    'TLS.sdkappid': Number(SDKAPPID),
    'TLS.expire': expire,
    'TLS.time': time,
    'TLS.sig': sig,
  });
  return encoding
    .b64encode(zlibStored(utf8(doc)), 'std')
    .replace(/\+/g, '*')
    .replace(/\//g, '-')
    .replace(/=/g, '_');
}

// ---- the client session ------------------------------------------------------------------------

export function session() {
  const user = `k6-${__VU % USERS}`;
  const device = `d-${__VU}`;
  const url =
    `${WS_BASE}/v1/ws?sdkappid=${SDKAPPID}&identifier=${user}` +
    `&usersig=${userSig(user, 3600)}&platform=Web&device=${device}`;
  const logout = Math.random() < 0.2;
  const res = ws.connect(url, {}, (socket) => {
    socket.on('open', () => {
      if (CERT !== null) {
        socket.send(JSON.stringify({ type: 'set_push_token', certificate_id: CERT, token: `k6-token-${__VU}` }));
      }
      socket.setInterval(() => socket.send(JSON.stringify({ type: 'ping' })), 5000);
      socket.setTimeout(() => socket.send(JSON.stringify({ type: 'background', unread: 1 })), 3000);
      socket.setTimeout(() => socket.send(JSON.stringify({ type: 'foreground' })), 6000);
      socket.setTimeout(() => {
        if (logout) socket.send(JSON.stringify({ type: 'logout' }));
        else socket.close();
      }, 8000 + Math.random() * 4000);
    });
    socket.on('message', (data) => {
      const frame = JSON.parse(data);
      if (frame.type === 'message') {
        received.add(1);
        const sent = Number((frame.text || '').split(' ')[1]);
        if (sent) deliveryMs.add(Date.now() - sent);
        socket.send(JSON.stringify({ type: 'ack', id: frame.id }));
      } else if (frame.type === 'error') {
        errors.add(1);
      } else if (frame.type === 'kicked') {
        socket.close();
      }
    });
  });
  check(res, { 'upgraded (101)': (r) => r && r.status === 101 });
  sleep(Math.random());
}

export function send() {
  const to = [`k6-${Math.floor(Math.random() * USERS)}`];
  const res = http.post(
    `${BASE}/v1/messages`,
    JSON.stringify({ to, from: 'k6-sender', text: `at ${Date.now()}` }),
    { headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${API_TOKEN}` } },
  );
  check(res, { 'message accepted (200)': (r) => r.status === 200 });
}
