// End-to-end, in headless Chromium (Debian's chromium through playwright-core): the demo app,
// its backend signing with dropfix/server, the SDK from the package, and a real dropfix-server
// on its embedded store. Every case checks the store through the admin API, not only the page.
// Screenshots of each state go to test-output/e2e/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startVerifier } from '../../tests/js/verifier.mjs';

const shots = fileURLToPath(new URL('../../test-output/e2e/', import.meta.url));
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

let verifier, demo, demoUrl, browser;

before(async () => {
  rmSync(shots, { recursive: true, force: true }); // only this run's screenshots
  mkdirSync(shots, { recursive: true });
  verifier = await startVerifier();
  demo = spawn('node', [fileURLToPath(new URL('../server.mjs', import.meta.url))], {
    env: {
      ...process.env,
      DROPFIX_APP_ID: verifier.appId,
      DROPFIX_SECRET_KEY: verifier.secret,
      DROPFIX_ENDPOINT: verifier.url,
      DROPFIX_ADMIN_TOKEN: verifier.adminToken,
      PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  demoUrl = await new Promise((resolve, reject) => {
    let out = '';
    demo.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/demo listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    demo.on('exit', (code) => reject(new Error(`demo exited with ${code}: ${out}`)));
  });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  if (demo && demo.exitCode === null) {
    const exited = new Promise((r) => demo.once('exit', r));
    demo.kill('SIGTERM');
    await exited;
  }
  await verifier?.stop();
});

const stored = async (userId) => {
  const r = await verifier.admin('GET', `/v1/admin/workspaces/${verifier.appId}/users/${encodeURIComponent(userId)}`);
  return r.status === 404 ? null : r.json;
};
const userCount = async () => (await verifier.admin('GET', `/v1/admin/workspaces/${verifier.appId}/users?limit=1000`)).json.users.length;
const setWorkspace = async (patch) => assert.equal((await verifier.admin('PATCH', `/v1/admin/workspaces/${verifier.appId}`, patch)).status, 200);

/** Logs in as `userId` in a fresh browser context; `query` goes on the app page URL. */
async function login(userId, query = '') {
  const context = await browser.newContext();
  const page = await context.newPage();
  if (query) {
    // Log in without loading the app page, so its automatic identify does not run first.
    const r = await context.request.post(`${demoUrl}/login`, { form: { user: userId }, maxRedirects: 0 });
    assert.equal(r.status(), 303);
    await page.goto(`${demoUrl}/app${query}`);
  } else {
    await page.goto(`${demoUrl}/`);
    await Promise.all([page.waitForURL(/\/app/), page.click(`button[data-user="${userId}"]`)]);
  }
  return page;
}

/** Waits for the answer to the call just made; returns `{ state, text, note }`. */
async function answer(page) {
  await page.waitForFunction(() => !['pending', undefined].includes(document.getElementById('result').dataset.state), null, { timeout: 20_000 });
  return page.evaluate(() => ({
    state: document.getElementById('result').dataset.state,
    text: document.getElementById('result').textContent,
    note: document.getElementById('note').textContent,
  }));
}

async function click(page, id) {
  await page.evaluate(() => (document.getElementById('result').dataset.state = 'pending'));
  await page.click(`#${id}`);
  return answer(page);
}

test('log in -> identify is verified and stored with plan and MRR', async () => {
  const page = await login('1001');
  const a = await answer(page);
  assert.equal(a.state, 'verified', a.text);
  assert.match(a.text, /200 verified \(seed_hmac\)/);
  await page.screenshot({ path: `${shots}01-verified.png`, fullPage: true });
  const u = await stored('1001');
  assert.equal(u.verified, true);
  assert.equal(u.method, 'seed_hmac');
  assert.equal(u.plan, 'pro');
  assert.equal(u.mrr, 49);
  await page.context().close();
});

test('no signature -> 202, stored as unverified', async () => {
  const page = await login('1004', '?auto=0');
  const a = await click(page, 'unsigned');
  assert.equal(a.state, 'unverified', a.text);
  await page.screenshot({ path: `${shots}02-unverified.png`, fullPage: true });
  const u = await stored('1004');
  assert.equal(u.verified, false);
  assert.equal(u.method, null);
  await page.context().close();
});

test("another user's id with my signature -> 401 signature_mismatch, nothing stored for that id", async () => {
  const page = await login('1001');
  assert.equal((await answer(page)).state, 'verified');
  const other = await page.evaluate(() => window.DEMO.otherUserId);
  assert.notEqual(other, '1001');
  assert.equal(await stored(other), null, 'precondition: the other id has never been stored');
  const before = await userCount();
  const mineBefore = await stored('1001');
  const a = await click(page, 'other');
  assert.equal(a.state, 'rejected', a.text);
  assert.match(a.text, /401 signature_mismatch/);
  assert.match(a.note, /different user id/);
  await page.screenshot({ path: `${shots}03-other-user-401.png`, fullPage: true });
  assert.equal(await stored(other), null, 'nothing stored for the other id');
  assert.deepEqual(await stored('1001'), mineBefore, 'my own record is untouched too');
  assert.equal(await userCount(), before);
  await page.context().close();
});

test('stale signature -> 401 signature_expired, nothing stored', async () => {
  const page = await login('1002', '?auto=0');
  const before = await userCount();
  const a = await click(page, 'stale');
  assert.equal(a.state, 'rejected', a.text);
  assert.match(a.text, /401 signature_expired/);
  await page.screenshot({ path: `${shots}04-stale-401.png`, fullPage: true });
  assert.equal(await stored('1002'), null);
  assert.equal(await userCount(), before);
  await page.context().close();
});

test('strict mode turned on while running -> unsigned call 401 signature_required', async () => {
  const page = await login('1004', '?auto=0');
  await setWorkspace({ strict: 'on' });
  try {
    const before = await stored('1004');
    const a = await click(page, 'unsigned');
    assert.equal(a.state, 'rejected', a.text);
    assert.match(a.text, /401 signature_required/);
    await page.screenshot({ path: `${shots}05-strict-401.png`, fullPage: true });
    assert.deepEqual(await stored('1004'), before, 'a 401 changes nothing, not even last_seen');
    // Signed calls still verify in strict mode.
    assert.equal((await click(page, 'send')).state, 'verified');
  } finally {
    await setWorkspace({ strict: 'off' });
  }
  await page.context().close();
});

test('tampered plan: the seed form cannot catch it (said plainly); signed claims reject it', async () => {
  const page = await login('1001');
  assert.equal((await answer(page)).state, 'verified');
  await page.fill('#plan', 'enterprise');
  await page.fill('#mrr', '9999');
  const seed = await click(page, 'send');
  assert.equal(seed.state, 'verified', seed.text);
  assert.match(seed.note, /cannot catch a tampered plan/);
  await page.screenshot({ path: `${shots}06-seed-tamper-not-caught.png`, fullPage: true });
  assert.equal((await stored('1001')).plan, 'enterprise', 'the seed form stores what the browser sent');

  // With signed claims the backend's plan and MRR are under the MAC.
  await page.fill('#plan', 'pro');
  await page.fill('#mrr', '49');
  await page.check('#claims');
  const honest = await click(page, 'send');
  assert.equal(honest.state, 'verified', honest.text);
  assert.match(honest.text, /signed_claims/);
  assert.equal(honest.note, '', 'no tamper note when the values are the signed ones');
  await page.screenshot({ path: `${shots}07-claims-verified.png`, fullPage: true });
  let u = await stored('1001');
  assert.equal(u.method, 'signed_claims');
  assert.equal(u.plan, 'pro');
  await page.fill('#plan', 'enterprise');
  await page.fill('#mrr', '9999');
  const tampered = await click(page, 'send');
  assert.equal(tampered.state, 'rejected', tampered.text);
  assert.match(tampered.text, /401 claims_mismatch/);
  await page.screenshot({ path: `${shots}08-claims-tamper-401.png`, fullPage: true });
  u = await stored('1001');
  assert.equal(u.plan, 'pro');
  assert.equal(u.mrr, 49);
  await page.context().close();
});

test('a call made before the SDK finished loading is queued and delivered', async () => {
  assert.equal(await stored('1003'), null, 'precondition: 1003 not stored yet');
  const page = await login('1003', '?sdkDelay=1500');
  const a = await answer(page);
  assert.equal(a.state, 'verified', a.text);
  assert.deepEqual(await page.evaluate(() => window.queuedBeforeSdk), ['init', 'identify'], 'both calls went to the loader stub');
  await page.screenshot({ path: `${shots}09-queued-before-load.png`, fullPage: true });
  const u = await stored('1003');
  assert.equal(u.verified, true);
  assert.equal(u.method, 'seed_hmac');
  assert.equal(u.plan, 'starter');
  assert.equal(u.mrr, 19);
  await page.context().close();
});
