// End-to-end tests of the web console in headless Chromium against a running pushgate.
// Started by run.sh, which provides PUSHGATE_URL, the two tokens and E2E_OUT.
// The steps run in order and share one signed-in page, as an operator would use it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = required('PUSHGATE_URL');
const ADMIN_TOKEN = required('PUSHGATE_ADMIN_TOKEN');
const API_TOKEN = required('PUSHGATE_API_TOKEN');
const OUT = path.resolve(process.env.E2E_OUT || 'target/e2e');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WAIT_MS = 10_000;
// The Xiaomi emulator the gateway sends to (run.sh starts it); the vendor-answer tests need it.
const EMULATOR = process.env.XIAOMI_EMULATOR_URL || '';
const needsEmulator = EMULATOR ? {} : { skip: 'no Xiaomi emulator (XIAOMI_EMULATOR_URL unset)' };

const SECRET = 'e2e-secret-Zq8vK2mP';

// OPPO, vivo and Meizu: what the operator types in the form, how the emulator (run.sh starts
// one per vendor) learns the app, and the classification chats must get by default.
const VENDORS = [
  {
    vendor: 'oppo', label: 'OPPO', emulator: process.env.OPPO_EMULATOR_URL || '',
    fields: { AppKey: 'oppo-e2e-key', MasterSecret: 'oppo-master-Hq3vW9' },
    secretLabel: 'MasterSecret', secretState: '#f-master-state', secretFlag: 'master_secret_set',
    app: { app_id: '', app_key: 'oppo-e2e-key', secret: 'oppo-master-Hq3vW9' },
    settings: { Category: /^IM\b/, 'Notify level': /^2\b/ },
    wire: (m) => [m.category, m.notify_level], expected: ['IM', 2],
  },
  {
    vendor: 'vivo', label: 'vivo', emulator: process.env.VIVO_EMULATOR_URL || '',
    fields: { AppID: '105562603', AppKey: 'vivo-e2e-key', AppSecret: 'vivo-secret-Pn7xT2' },
    secretLabel: 'AppSecret', secretState: '#f-secret-state', secretFlag: 'app_secret_set',
    app: { app_id: '105562603', app_key: 'vivo-e2e-key', secret: 'vivo-secret-Pn7xT2' },
    settings: { Classification: /^1\b/, Category: /^IM\b/ },
    wire: (m) => [m.classification, m.category], expected: [1, 'IM'],
  },
  {
    vendor: 'meizu', label: 'Meizu', emulator: process.env.MEIZU_EMULATOR_URL || '',
    fields: { AppID: '100999', AppSecret: 'meizu-secret-Kd4rB8' },
    secretLabel: 'AppSecret', secretState: '#f-secret-state', secretFlag: 'app_secret_set',
    app: { app_id: '100999', app_key: '', secret: 'meizu-secret-Kd4rB8' },
    settings: { 'Message type': /^1\b/ },
    wire: (m) => [m.noticeBarInfo?.noticeMsgType], expected: [1],
  },
];

function required(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; run the tests through tests/e2e/run.sh`);
  return v;
}

/** Calls the gateway directly, as the IM cluster or a script would. */
async function gateway(method, urlPath, bearer, body) {
  const resp = await fetch(BASE + urlPath, {
    method,
    headers: {
      Authorization: `Bearer ${bearer}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  return { status: resp.status, body: text ? JSON.parse(text) : null };
}

/** Waits until the locator's text matches, then returns that text. */
async function textMatching(locator, pattern, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let last = null;
  for (;;) {
    try {
      await locator.first().waitFor({ state: 'visible', timeout: Math.max(1, deadline - Date.now()) });
      last = (await locator.first().textContent()) ?? '';
      if (pattern.test(last)) return last;
    } catch (err) {
      if (Date.now() >= deadline) throw new Error(`waiting for ${locator} to match ${pattern}: ${err.message}`);
    }
    if (Date.now() >= deadline) {
      throw new Error(`${locator} shows ${JSON.stringify(last)}, expected to match ${pattern}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

let browser;
let page;
const pageProblems = [];
let certId = null;

async function shot(name) {
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
}

before(async () => {
  mkdirSync(OUT, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  // Script errors and CSP violations both surface here; the console must produce none.
  page.on('pageerror', (err) => pageProblems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    // Failed API calls the tests provoke on purpose (a wrong token) are logged by Chromium.
    if (/status of (400|401|404|409)/.test(text)) return;
    pageProblems.push(`console: ${text}`);
  });
});

after(async () => {
  await browser?.close();
});

test('the console is served with a strict content security policy', async () => {
  const resp = await fetch(`${BASE}/console/`);
  assert.equal(resp.status, 200);
  assert.match(resp.headers.get('content-type'), /^text\/html/);
  assert.match(resp.headers.get('content-security-policy'), /script-src 'self'/);
  assert.equal(resp.headers.get('x-content-type-options'), 'nosniff');
  assert.equal((await fetch(`${BASE}/console/secret.txt`)).status, 404);
});

test('sign in: a wrong token is refused, the admin token is accepted and kept for the session only', async () => {
  await page.goto(`${BASE}/console`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await shot('01-sign-in');

  await page.getByLabel('Admin token').fill('not-the-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await textMatching(page.locator('[data-field="token"] .field-error'), /refused/);
  await shot('02-sign-in-refused');

  await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Certificates' }).waitFor();
  const stored = await page.evaluate(() => ({
    session: sessionStorage.getItem('pushgate.adminToken'),
    local: JSON.stringify(localStorage),
  }));
  assert.equal(stored.session, ADMIN_TOKEN);
  assert.ok(!stored.local.includes(ADMIN_TOKEN), 'the token must not be in localStorage');
  await textMatching(page.locator('#refresh-status'), /updated/);
  await shot('03-certificates-empty');
});

test('add a certificate: the generated ID is shown prominently and the secret never is', async () => {
  await page.getByRole('link', { name: 'Add certificate' }).click();
  await page.getByRole('heading', { name: 'Add certificate' }).waitFor();
  assert.equal(await page.getByLabel('Push platform').inputValue(), 'xiaomi');
  await page.getByLabel('Package name').fill('com.example.chat');
  await page.getByLabel('AppID').fill('2882303761517');
  await page.getByLabel('AppSecret').fill(SECRET);
  await page.getByLabel('After a tap on the notification').selectOption('open_activity');
  await page.getByLabel('Intent URI').fill(
    'intent://com.example.chat/detail#Intent;scheme=pushscheme;launchFlags=0x4000000;end',
  );
  await page.getByLabel('Channel ID').fill('high_system');
  await page.getByLabel('QPS').fill('500');
  await shot('04-add-certificate-form');
  await page.getByRole('button', { name: 'Save' }).click();

  const idText = await textMatching(page.locator('#saved-id'), /^\d+$/);
  certId = Number(idText);
  await textMatching(page.locator('#saved-banner'), /Record this ID/);
  await shot('05-certificate-added');

  const fetched = await gateway('GET', `/v1/certificates/${certId}`, ADMIN_TOKEN);
  assert.equal(fetched.status, 200);
  assert.equal(fetched.body.id, certId);
  assert.equal(fetched.body.package_name, 'com.example.chat');
  assert.equal(fetched.body.app_secret_set, true);

  const card = page.locator(`.cert[data-id="${certId}"]`);
  await textMatching(card.locator('.cert-id'), new RegExp(`^${certId}$`));
  await textMatching(card.locator('dd[data-key="AppSecret"]'), /^set$/);
  await textMatching(card.locator('dd[data-key="Package name"]'), /^com\.example\.chat$/);
  const html = await page.content();
  assert.ok(!html.includes(SECRET), 'the AppSecret must never appear in the page');
});

test('a web page URL that is not http or https shows an error beside the URL field', async () => {
  const before = await gateway('GET', '/v1/certificates', ADMIN_TOKEN);
  await page.getByRole('link', { name: 'Add certificate' }).click();
  await page.getByRole('heading', { name: 'Add certificate' }).waitFor();
  await page.getByLabel('Package name').fill('com.example.web');
  await page.getByLabel('AppID').fill('2882303761518');
  await page.getByLabel('AppSecret').fill('another-secret');
  await page.getByLabel('After a tap on the notification').selectOption('open_url');
  await page.getByLabel('Web page URL').fill('ftp://files.example.com/inbox');
  await page.getByRole('button', { name: 'Save' }).click();

  const urlField = page.locator('.field[data-field="click_action.url"]');
  await textMatching(urlField.locator('.field-error'), /must start with http:\/\/ or https:\/\//);
  assert.equal(await page.getByLabel('Web page URL').getAttribute('aria-invalid'), 'true');
  // The message is inside the URL field's own box, not elsewhere on the form.
  assert.equal(await page.locator('.field.invalid').count(), 1);
  await shot('06-validation-error-url');

  const afterList = await gateway('GET', '/v1/certificates', ADMIN_TOKEN);
  assert.equal(afterList.body.certificates.length, before.body.certificates.length, 'nothing was saved');
  await page.getByRole('link', { name: 'Cancel' }).click();
  await page.getByRole('heading', { name: 'Certificates' }).waitFor();
});

test("the gateway's own field errors appear beside the field it names", async () => {
  // The browser only checks that a package name is present; its form is the gateway's rule.
  await page.getByRole('link', { name: 'Add certificate' }).click();
  await page.getByRole('heading', { name: 'Add certificate' }).waitFor();
  await page.getByLabel('Package name').fill('not a package name');
  await page.getByLabel('AppID').fill('2882303761519');
  await page.getByLabel('AppSecret').fill('a-secret');
  await page.getByRole('button', { name: 'Save' }).click();
  const field = page.locator('.field[data-field="package_name"]');
  const message = await textMatching(field.locator('.field-error'), /\S/);
  assert.ok(message.length > 5, `a human sentence beside the field, got ${JSON.stringify(message)}`);
  assert.equal(await page.getByLabel('Package name').getAttribute('aria-invalid'), 'true');
  await shot('06b-validation-error-package-name');
  await page.getByRole('link', { name: 'Cancel' }).click();
  await page.getByRole('heading', { name: 'Certificates' }).waitFor();
});

test('edit the QPS: the form keeps the secret as "set" and the list shows the new value', async () => {
  assert.ok(certId, 'needs the certificate added above');
  const card = page.locator(`.cert[data-id="${certId}"]`);
  await card.getByRole('link', { name: 'Edit' }).click();
  await page.getByRole('heading', { name: `Edit certificate ${certId}` }).waitFor();
  await page.locator('#cert-form[aria-busy="false"]').waitFor();
  assert.equal(await page.getByLabel('Package name').inputValue(), 'com.example.chat');
  assert.equal(await page.getByLabel('QPS').inputValue(), '500');
  assert.equal(await page.locator('#f-secret').inputValue(), '', 'the secret is never filled in');
  await textMatching(page.locator('#f-secret-state'), /^set$/);
  await page.getByLabel('QPS').fill('200');
  await shot('07-edit-certificate');
  await page.getByRole('button', { name: 'Save' }).click();

  await textMatching(page.locator('#saved-id'), new RegExp(`^${certId}$`));
  await textMatching(card.locator('dd[data-key="QPS"]'), /^200$/);
  await shot('08-certificate-edited');
  const fetched = await gateway('GET', `/v1/certificates/${certId}`, ADMIN_TOKEN);
  assert.equal(fetched.body.qps, 200);
  assert.equal(fetched.body.app_secret_set, true, 'leaving the secret empty keeps it');
});

test('live figures refresh without reloading the page', async () => {
  assert.ok(certId);
  await page.evaluate(() => { window.__notReloaded = true; });
  const cert = (await gateway('GET', `/v1/certificates/${certId}`, ADMIN_TOKEN)).body;
  const changed = await gateway('PUT', `/v1/certificates/${certId}`, ADMIN_TOKEN, {
    vendor: cert.vendor,
    package_name: cert.package_name,
    app_id: cert.app_id,
    click_action: cert.click_action,
    channel_id: cert.channel_id,
    qps: 300,
  });
  assert.equal(changed.status, 200);
  const card = page.locator(`.cert[data-id="${certId}"]`);
  await textMatching(card.locator('dd[data-key="QPS"]'), /^300$/, 15_000);
  for (const key of ['sent', 'failed', 'queued', 'rate_limited', 'delivered_to_phone', 'clicked']) {
    await textMatching(card.locator(`[data-figure="${key}"] .figure-value`), /^\d[\d,]*$/);
  }
  await textMatching(card.locator('dd[data-key="quota"]'), /quota|Paused/);
  await textMatching(card.locator('dd[data-key="broken"]'), /^(No|Broken.*)$/);
  assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page was not reloaded');
});

async function sessionEvent(user, action) {
  const r = await gateway('POST', '/v1/sessions/events', API_TOKEN, {
    events: [{ user, platform: 'Android', device: 'd1', action }],
  });
  assert.ok(r.status >= 200 && r.status < 300, `session event ${action}: ${r.status} ${JSON.stringify(r.body)}`);
}

async function diagnose(user) {
  await page.getByRole('link', { name: 'Diagnosis' }).click();
  await page.getByRole('heading', { name: 'Diagnosis', exact: true }).waitFor();
  await page.getByLabel('User ID').fill(user);
  await page.getByRole('button', { name: 'Diagnose' }).click();
  await page.locator(`.diagnosis[data-user="${user}"]`).waitFor();
}

const RED = 'rgb(196, 43, 43)';
const GREEN = 'rgb(23, 128, 61)';

test('diagnosis: a user who never reported a token gets a red "token reported" line with the reason', async () => {
  const user = 'e2e-notoken';
  await sessionEvent(user, 'login');
  await sessionEvent(user, 'disconnect');
  await diagnose(user);

  const line = page.locator('.diagnosis > ul.checklist > .check[data-check="token_reported"]');
  await textMatching(line.locator('.check-name'), /Push token reported/);
  assert.match(await line.getAttribute('class'), /\bbad\b/);
  assert.equal(await line.locator('.mark').textContent(), '✗');
  assert.equal(await line.locator('.check-name').evaluate((el) => getComputedStyle(el).color), RED);
  const detail = (await line.locator('.check-detail').textContent()).trim();
  assert.ok(detail.length > 0, 'the red line says why');
  await textMatching(page.locator('.verdict .badge'), /^Would not push$/);
  await shot('09-diagnosis-token-never-reported');
});

test('diagnosis: a PushOnline user with a reported token gets a green device-state line', async () => {
  assert.ok(certId);
  const user = 'e2e-pushonline';
  await sessionEvent(user, 'login');
  const reported = await gateway('PUT', '/v1/push-tokens', API_TOKEN, {
    user, platform: 'Android', device: 'd1', certificate_id: certId, token: 'regid-e2e-pushonline',
  });
  assert.ok(reported.status >= 200 && reported.status < 300, `push token: ${reported.status} ${JSON.stringify(reported.body)}`);
  await sessionEvent(user, 'disconnect');
  await diagnose(user);

  const line = page.locator('.diagnosis > ul.checklist > .check[data-check="device_state"]');
  await textMatching(line.locator('.check-name'), /Device state/);
  assert.match(await line.getAttribute('class'), /\bok\b/);
  assert.equal(await line.locator('.mark').textContent(), '✓');
  assert.equal(await line.locator('.check-name').evaluate((el) => getComputedStyle(el).color), GREEN);
  const token = page.locator('.diagnosis > ul.checklist > .check[data-check="token_reported"]');
  assert.match(await token.getAttribute('class'), /\bok\b/);
  await textMatching(page.locator('table.devices tr[data-device="d1"] .state'), /^PushOnline$/);
  await shot('10-diagnosis-pushonline');
});

async function sendMessage(user) {
  const r = await gateway('POST', '/v1/messages', API_TOKEN, {
    to: [user], from: 'e2e-sender', text: 'hello from the e2e test',
    offline_push: { title: 'e2e', desc: 'hello from the e2e test' },
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.results[0];
}

test('a notification the vendor accepts counts as sent, live, and shows green in diagnosis', needsEmulator, async () => {
  assert.ok(certId);
  const apps = await fetch(`${EMULATOR}/_emulator/apps`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ package_name: 'com.example.chat', app_secret: SECRET }),
  });
  assert.ok(apps.ok, `emulator apps: ${apps.status}`);

  await page.getByRole('link', { name: 'Certificates' }).click();
  const card = page.locator(`.cert[data-id="${certId}"]`);
  await card.waitFor();
  await page.evaluate(() => { window.__notReloaded = true; });
  const result = await sendMessage('e2e-pushonline');
  assert.equal(result.outcome, 'push_queued', JSON.stringify(result));
  await textMatching(card.locator('[data-figure="sent"] .figure-value'), /^[1-9]/, 20_000);
  assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page was not reloaded');
  await shot('11-certificate-sent-live');

  await diagnose('e2e-pushonline');
  const line = page.locator('.diagnosis > ul.checklist > .check[data-check="last_notification"]');
  assert.match(await line.getAttribute('class'), /\bok\b/);
  await textMatching(line.locator('.check-detail'), /^Delivered/);
  await textMatching(page.locator('table.devices tr[data-device="d1"] .last-notification .badge'), /^Delivered$/);
  await shot('12-diagnosis-delivered');
});

test('a certificate the vendor refuses shows as broken, with the reason', needsEmulator, async () => {
  const created = await gateway('POST', '/v1/certificates', ADMIN_TOKEN, {
    vendor: 'xiaomi',
    package_name: 'com.example.unregistered',
    app_id: '2882303761600',
    app_secret: 'a-secret-xiaomi-does-not-know',
    click_action: { type: 'open_app' },
    qps: 50,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  const user = 'e2e-brokencert';
  await sessionEvent(user, 'login');
  const reported = await gateway('PUT', '/v1/push-tokens', API_TOKEN, {
    user, platform: 'Android', device: 'd1', certificate_id: id, token: 'regid-e2e-broken',
  });
  assert.ok(reported.status < 300, JSON.stringify(reported.body));
  await sessionEvent(user, 'disconnect');
  await sendMessage(user);

  await page.getByRole('link', { name: 'Certificates' }).click();
  const card = page.locator(`.cert[data-id="${id}"]`);
  await textMatching(card.locator('.cert-state'), /^Broken$/, 20_000);
  assert.match(await card.locator('.cert-state').getAttribute('class'), /\bbad\b/);
  await textMatching(card.locator('.cert-reason'), /\S/);
  await textMatching(card.locator('dd[data-key="broken"]'), /^Broken/);
  await textMatching(card.locator('[data-figure="failed"] .figure-value'), /^[1-9]/);
  await shot('13-certificate-broken');

  await diagnose(user);
  const line = page.locator('.diagnosis > ul.checklist > .check[data-check="certificate_healthy"]');
  assert.match(await line.getAttribute('class'), /\bbad\b/);
  await shot('14-diagnosis-broken-certificate');
  await gateway('DELETE', `/v1/certificates/${id}`, ADMIN_TOKEN);
});

let shotNo = 15;

for (const v of VENDORS) {
  const needs = v.emulator ? {} : { skip: `no ${v.label} emulator (${v.vendor.toUpperCase()}_EMULATOR_URL unset)` };
  test(`${v.label}: a certificate added in the form sends a chat through its emulator as IM and the card shows it healthy`, needs, async () => {
    await page.getByRole('link', { name: 'Certificates' }).click();
    await page.getByRole('link', { name: 'Add certificate' }).click();
    await page.getByRole('heading', { name: 'Add certificate' }).waitFor();
    await page.getByLabel('Push platform').selectOption(v.vendor);
    await page.getByLabel('Package name').fill('com.example.chat');
    for (const [label, value] of Object.entries(v.fields)) {
      await page.getByLabel(label).fill(value);
    }
    // Fields of other vendors are hidden, and nothing hidden is sent.
    if (v.vendor !== 'oppo') assert.equal(await page.locator('#f-master').isVisible(), false);
    if (v.vendor === 'oppo') assert.equal(await page.locator('#f-appid').isVisible(), false);
    await page.getByLabel('QPS').fill('100');
    await shot(`${shotNo++}-add-${v.vendor}-certificate`);
    await page.getByRole('button', { name: 'Save' }).click();
    const id = Number(await textMatching(page.locator('#saved-id'), /^\d+$/));

    const fetched = await gateway('GET', `/v1/certificates/${id}`, ADMIN_TOKEN);
    assert.equal(fetched.status, 200);
    assert.equal(fetched.body.vendor, v.vendor);
    assert.equal(fetched.body[v.secretFlag], true);
    const secret = v.fields[v.secretLabel];
    assert.ok(!JSON.stringify(fetched.body).includes(secret), 'no secret in the API answer');

    const card = page.locator(`.cert[data-id="${id}"]`);
    await textMatching(card.locator('.cert-platform'), new RegExp(v.label));
    await textMatching(card.locator(`dd[data-key="${v.secretLabel}"]`), /^set$/);
    // The chat classification, whether the form sent it or left the gateway's default.
    for (const [label, pattern] of Object.entries(v.settings)) {
      await textMatching(card.locator(`dd[data-key="${label}"]`), pattern);
    }

    // The vendor learns the app (as its console would), a user goes PushOnline with a token.
    const apps = await fetch(`${v.emulator}/_emulator/apps`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(v.app),
    });
    assert.ok(apps.ok, `emulator apps: ${apps.status}`);
    const user = `e2e-${v.vendor}`;
    const token = `e2e-${v.vendor}-token-0123456789`;
    await sessionEvent(user, 'login');
    const reported = await gateway('PUT', '/v1/push-tokens', API_TOKEN, {
      user, platform: 'Android', device: 'd1', certificate_id: id, token,
    });
    assert.ok(reported.status < 300, JSON.stringify(reported.body));
    await sessionEvent(user, 'disconnect');
    const result = await sendMessage(user);
    assert.equal(result.outcome, 'push_queued', JSON.stringify(result));

    await textMatching(card.locator('[data-figure="sent"] .figure-value'), /^[1-9]/, 20_000);
    await textMatching(card.locator('.cert-state'), /^Healthy$/);
    assert.match(await card.locator('.cert-state').getAttribute('class'), /\bok\b/);
    await shot(`${shotNo++}-${v.vendor}-certificate-healthy`);
    assert.ok(!(await page.content()).includes(secret), 'the secret never appears in the page');

    const records = await (await fetch(`${v.emulator}/_emulator/received?target=${token}`)).json();
    assert.equal(records.length, 1, JSON.stringify(records));
    assert.equal(records[0].body, 'hello from the e2e test');
    assert.deepEqual(v.wire(records[0].message), v.expected, JSON.stringify(records[0].message));

    // Editing keeps the write-only secret when its field is left empty.
    await card.getByRole('link', { name: 'Edit' }).click();
    await page.getByRole('heading', { name: `Edit certificate ${id}` }).waitFor();
    await page.locator('#cert-form[aria-busy="false"]').waitFor();
    assert.equal(await page.getByLabel('Push platform').inputValue(), v.vendor);
    await textMatching(page.locator(v.secretState), /^set$/);
    await page.getByLabel('QPS').fill('150');
    await page.getByRole('button', { name: 'Save' }).click();
    await textMatching(page.locator('#saved-id'), new RegExp(`^${id}$`));
    await textMatching(card.locator('dd[data-key="QPS"]'), /^150$/);
    const edited = await gateway('GET', `/v1/certificates/${id}`, ADMIN_TOKEN);
    assert.equal(edited.body[v.secretFlag], true, 'leaving the secret empty keeps it');
    assert.equal(edited.body.status.state, 'healthy');
  });
}
// Test-only keys, made here: the gateway parses them when the certificate is saved.
function testRsaPem() {
  return generateKeyPairSync('rsa', { modulusLength: 2048 })
    .privateKey.export({ type: 'pkcs8', format: 'pem' });
}

function testP8() {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .privateKey.export({ type: 'pkcs8', format: 'pem' });
}

/** Whether the page holds any of the key's material: in its markup or in a field's value (a
 * saved form must be emptied). The field placeholders mention "PRIVATE KEY"; the key's body never. */
async function pageHoldsKey(pem) {
  const body = pem.split('\n').filter((l) => l && !l.startsWith('-----'));
  const values = await page.$$eval('input, textarea', (els) => els.map((e) => e.value).join('\n'));
  const html = await page.content();
  return body.some((line) => html.includes(line) || values.includes(line));
}

test('add an FCM certificate by uploading the service-account JSON; the key is never shown', async () => {
  const rsaPem = testRsaPem();
  const account = {
    type: 'service_account',
    project_id: 'e2e-project',
    private_key_id: 'k1',
    private_key: rsaPem,
    client_email: 'pushgate@e2e-project.iam.gserviceaccount.com',
    token_uri: 'https://oauth2.googleapis.com/token',
  };
  await page.getByRole('link', { name: 'Certificates' }).click();
  await page.getByRole('link', { name: 'Add certificate' }).click();
  await page.getByRole('heading', { name: 'Add certificate' }).waitFor();
  await page.getByLabel('Push platform').selectOption('fcm');
  assert.equal(await page.locator('[data-field="app_secret"]').isHidden(), true, 'no AppSecret for FCM');
  await page.getByLabel('Package name').fill('com.example.chat');
  await page.locator('#f-sa-file').setInputFiles({
    name: 'service-account.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(account)),
  });
  await page.waitForFunction(() => document.querySelector('#f-sa').value.includes('e2e-project'));
  await page.getByLabel('Channel ID').fill('im_messages');
  await page.getByLabel('QPS').fill('300');
  await shot('15-add-fcm-certificate');
  await page.getByRole('button', { name: 'Save' }).click();
  const id = Number(await textMatching(page.locator('#saved-id'), /^\d+$/));
  const fetched = await gateway('GET', `/v1/certificates/${id}`, ADMIN_TOKEN);
  assert.equal(fetched.status, 200);
  assert.equal(fetched.body.vendor, 'fcm');
  assert.equal(fetched.body.service_account.project_id, 'e2e-project');
  assert.ok(!JSON.stringify(fetched.body).includes('PRIVATE KEY'));
  const card = page.locator(`.cert[data-id="${id}"]`);
  await textMatching(card.locator('dd[data-key="Project ID"]'), /^e2e-project$/);
  assert.ok(!(await pageHoldsKey(rsaPem)), 'the key must never appear in the page');
  await shot('16-fcm-certificate-added');
  await gateway('DELETE', `/v1/certificates/${id}`, ADMIN_TOKEN);
});

test('add an APNs certificate by pasting the .p8 key; a bad Key ID is shown beside its field', async () => {
  await page.getByRole('link', { name: 'Certificates' }).click();
  await page.getByRole('link', { name: 'Add certificate' }).click();
  await page.getByRole('heading', { name: 'Add certificate' }).waitFor();
  await page.getByLabel('Push platform').selectOption('apns');
  await page.getByLabel('Package name').fill('com.example.chat');
  await page.getByLabel('Key ID').fill('SHORT');
  await page.getByLabel('Team ID').fill('DEF123GHIJ');
  const p8 = testP8();
  await page.locator('#f-p8').fill(p8);
  await page.getByLabel('Environment').selectOption('sandbox');
  await page.getByRole('button', { name: 'Save' }).click();
  await textMatching(page.locator('[data-field="key_id"] .field-error'), /10 letters/);
  await page.getByLabel('Key ID').fill('ABC123DEFG');
  await shot('17-add-apns-certificate');
  await page.getByRole('button', { name: 'Save' }).click();
  const id = Number(await textMatching(page.locator('#saved-id'), /^\d+$/));
  const fetched = await gateway('GET', `/v1/certificates/${id}`, ADMIN_TOKEN);
  assert.equal(fetched.status, 200);
  assert.equal(fetched.body.vendor, 'apns');
  assert.equal(fetched.body.key_id, 'ABC123DEFG');
  assert.equal(fetched.body.environment, 'sandbox');
  assert.equal(fetched.body.private_key_set, true);
  const card = page.locator(`.cert[data-id="${id}"]`);
  await textMatching(card.locator('dd[data-key="Signing key"]'), /^set$/);
  assert.ok(!(await pageHoldsKey(p8)), 'the key must never appear in the page');
  await shot('18-apns-certificate-added');
  await gateway('DELETE', `/v1/certificates/${id}`, ADMIN_TOKEN);
});

test('delete a certificate after confirming', async () => {
  const created = await gateway('POST', '/v1/certificates', ADMIN_TOKEN, {
    vendor: 'xiaomi',
    package_name: 'com.example.old',
    app_id: '2882303761599',
    app_secret: 'old-secret',
    click_action: { type: 'open_app' },
    qps: 100,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  await page.getByRole('link', { name: 'Certificates' }).click();
  const card = page.locator(`.cert[data-id="${id}"]`);
  await card.waitFor();
  await card.getByRole('button', { name: 'Delete', exact: true }).click();
  await card.getByRole('button', { name: 'Delete certificate' }).click();
  await card.waitFor({ state: 'detached' });
  assert.equal((await gateway('GET', `/v1/certificates/${id}`, ADMIN_TOKEN)).status, 404);
  await page.locator(`.cert[data-id="${certId}"]`).waitFor();
});

test('a Huawei and a Honor certificate: each form shows its own fields, each card its health, no secret', async () => {
  const huaweiSecret = 'e2e-huawei-Xy7/+=';
  const callbackUser = 'e2e-receipt-user';
  const callbackKey = 'e2e-receipt-hmac-Zk9=';
  await page.getByRole('link', { name: 'Add certificate' }).click();
  await page.getByRole('heading', { name: 'Add certificate' }).waitFor();
  await page.getByLabel('Push platform').selectOption('huawei');
  assert.equal(await page.getByLabel('Message category').inputValue(), 'IM', 'chats are not marketing');
  assert.equal(await page.getByLabel('Client ID').isVisible(), false);
  assert.equal(await page.getByLabel('Importance').isVisible(), false);
  await page.getByLabel('Package name').fill('com.example.chat');
  await page.getByLabel('AppID').fill('10086');
  await page.getByLabel('AppSecret').fill(huaweiSecret);
  await page.getByLabel('Channel ID').fill('chats');
  await page.getByLabel('Receipt ID').fill('RCP1');
  // Half of the receipt callback pair is refused before it reaches the gateway.
  await page.getByLabel('Receipt callback user name').fill(callbackUser);
  await page.getByLabel('QPS').fill('200');
  await page.getByRole('button', { name: 'Save' }).click();
  await textMatching(page.locator('#f-callback-key-error'), /HMAC key/);
  await page.getByLabel('Receipt callback HMAC key').fill(callbackKey);
  await shot('15-add-huawei-certificate');
  await page.getByRole('button', { name: 'Save' }).click();
  const huaweiId = Number(await textMatching(page.locator('#saved-id'), /^\d+$/));
  const hw = await gateway('GET', `/v1/certificates/${huaweiId}`, ADMIN_TOKEN);
  assert.equal(hw.status, 200);
  assert.equal(hw.body.vendor, 'huawei');
  assert.equal(hw.body.category, 'IM');
  assert.equal(hw.body.channel_id, 'chats');
  assert.equal(hw.body.app_secret_set, true);
  assert.equal(hw.body.receipt_id, 'RCP1');
  assert.equal(hw.body.callback_user_name_set, true);
  assert.equal(hw.body.callback_hmac_key_set, true);
  for (const secret of [huaweiSecret, callbackUser, callbackKey]) {
    assert.ok(!JSON.stringify(hw.body).includes(secret), 'no secret is ever returned');
  }

  const honorSecret = 'e2e-honor-Qw3=';
  await page.getByRole('link', { name: 'Add certificate' }).click();
  await page.getByRole('heading', { name: 'Add certificate' }).waitFor();
  await page.getByLabel('Push platform').selectOption('honor');
  assert.equal(await page.getByLabel('Channel ID').isVisible(), false, 'Honor has no channels');
  assert.equal(await page.getByLabel('Message category').isVisible(), false);
  assert.equal(await page.getByLabel('Receipt ID').isVisible(), false, 'Honor receipts are not taken');
  assert.equal(await page.getByLabel('Importance').inputValue(), 'NORMAL', 'chats are not marketing');
  await page.getByLabel('Package name').fill('com.example.chat');
  await page.getByLabel('AppID').fill('104436');
  await page.getByLabel('Client ID').fill('honor-client-e2e');
  await page.getByLabel('Client secret').fill(honorSecret);
  await page.getByLabel('QPS').fill('100');
  await shot('16-add-honor-certificate');
  await page.getByRole('button', { name: 'Save' }).click();
  const honorId = Number(await textMatching(page.locator('#saved-id'), /^\d+$/));
  const ho = await gateway('GET', `/v1/certificates/${honorId}`, ADMIN_TOKEN);
  assert.equal(ho.status, 200);
  assert.equal(ho.body.vendor, 'honor');
  assert.equal(ho.body.client_id, 'honor-client-e2e');
  assert.equal(ho.body.importance, 'NORMAL');
  assert.equal(ho.body.client_secret_set, true);
  assert.ok(!JSON.stringify(ho.body).includes(honorSecret), 'the secret is never returned');

  const hwCard = page.locator(`.cert[data-id="${huaweiId}"]`);
  await textMatching(hwCard.locator('dd[data-key="Category"]'), /^IM$/);
  await textMatching(hwCard.locator('dd[data-key="AppSecret"]'), /^set$/);
  await textMatching(hwCard.locator('dd[data-key="Receipt ID"]'), /^RCP1$/);
  await textMatching(hwCard.locator('dd[data-key="Receipt callback"]'), /^set$/);
  await textMatching(hwCard.locator('.cert-state'), /^Healthy$/);
  const hoCard = page.locator(`.cert[data-id="${honorId}"]`);
  await textMatching(hoCard.locator('dd[data-key="Client ID"]'), /^honor-client-e2e$/);
  await textMatching(hoCard.locator('dd[data-key="Importance"]'), /^NORMAL$/);
  await textMatching(hoCard.locator('dd[data-key="Client secret"]'), /^set$/);
  await textMatching(hoCard.locator('.cert-state'), /^Healthy$/);
  await shot('17-huawei-and-honor-certificates');
  const html = await page.content();
  for (const secret of [huaweiSecret, honorSecret, callbackUser, callbackKey]) {
    assert.ok(!html.includes(secret), 'no secret in the page');
  }
  for (const id of [huaweiId, honorId]) await gateway('DELETE', `/v1/certificates/${id}`, ADMIN_TOKEN);
});

test('a HarmonyOS NEXT certificate: the v3 API takes the key file, not the AppSecret', async () => {
  const rsaPem = testRsaPem();
  const keyFile = {
    project_id: '736430079244623135',
    key_id: 'e2e-kid-next',
    private_key: rsaPem,
    sub_account: '736430079244623135-sub',
    token_uri: 'https://oauth-login.cloud.huawei.com/oauth2/v3/token',
  };
  await page.getByRole('link', { name: 'Add certificate' }).click();
  await page.getByRole('heading', { name: 'Add certificate' }).waitFor();
  await page.getByLabel('Push platform').selectOption('huawei');
  assert.equal(await page.getByLabel('Devices').inputValue(), 'v1', 'v1 unless asked');
  await page.getByLabel('Devices').selectOption('v3');
  await page.getByLabel('Package name').fill('com.example.chat.next');
  await page.getByLabel('AppID').fill('10087');
  await page.getByLabel('QPS').fill('100');
  // Without the key file: refused beside the key field before it reaches the gateway.
  await page.getByRole('button', { name: 'Save' }).click();
  await textMatching(page.locator('#f-sa-error'), /HarmonyOS NEXT/);
  await page.getByLabel('AppSecret').fill('e2e-next-secret');
  await page.locator('#f-sa-file').setInputFiles({
    name: 'agc-key.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(keyFile)),
  });
  await page.waitForFunction(() => document.querySelector('#f-sa').value.includes('e2e-kid-next'));
  await page.getByRole('button', { name: 'Save' }).click();
  await textMatching(page.locator('#f-sa-error'), /not both/);
  await page.getByLabel('AppSecret').fill('');
  await shot('18-add-harmony-next-certificate');
  await page.getByRole('button', { name: 'Save' }).click();
  const id = Number(await textMatching(page.locator('#saved-id'), /^\d+$/));
  const fetched = await gateway('GET', `/v1/certificates/${id}`, ADMIN_TOKEN);
  assert.equal(fetched.status, 200);
  assert.equal(fetched.body.api_version, 'v3');
  assert.equal(fetched.body.app_secret_set, false);
  assert.equal(fetched.body.service_account.key_id, 'e2e-kid-next');
  assert.equal(fetched.body.service_account.private_key_set, true);
  assert.ok(!JSON.stringify(fetched.body).includes('PRIVATE KEY'));
  const card = page.locator(`.cert[data-id="${id}"]`);
  await textMatching(card.locator('dd[data-key="Send API"]'), /^v3$/);
  await textMatching(card.locator('dd[data-key="Service account"]'), /e2e-kid-next/);
  assert.ok(!(await pageHoldsKey(rsaPem)), 'the key must never appear in the page');
  await gateway('DELETE', `/v1/certificates/${id}`, ADMIN_TOKEN);
});

test('sign out forgets the token', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('pushgate.adminToken')), null);
});

test('the pages raised no script error and no CSP violation', () => {
  assert.deepEqual(pageProblems, []);
});
