// End-to-end, in headless Chromium (Debian's chromium through playwright-core): the demo app,
// its backend signing with dropfix/server, the SDK from the package, and a real dropfix-server
// on its embedded store. Every case checks the store through the admin API, not only the page.
// Screenshots of each state go to test-output/e2e/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startStack } from './demo.mjs';

const shots = fileURLToPath(new URL('../../test-output/e2e/', import.meta.url));

let stack, verifier, demoUrl, browser;

before(async () => {
  rmSync(shots, { recursive: true, force: true }); // only this run's screenshots
  mkdirSync(shots, { recursive: true });
  stack = await startStack();
  ({ verifier, demoUrl, browser } = stack);
});

after(() => stack?.stop());

const stored = async (userId) => {
  const r = await verifier.admin('GET', `/v1/admin/workspaces/${verifier.appId}/users/${encodeURIComponent(userId)}`);
  return r.status === 404 ? null : r.json;
};
const userCount = async () => (await verifier.admin('GET', `/v1/admin/workspaces/${verifier.appId}/users?limit=1000`)).json.users.length;
const setWorkspace = async (patch) => assert.equal((await verifier.admin('PATCH', `/v1/admin/workspaces/${verifier.appId}`, patch)).status, 200);

/**
 * Collects the page's console errors and uncaught exceptions into `page.consoleErrors`, from the
 * first request on (a favicon answered 401/404 is one too).
 */
function watchConsole(page) {
  page.consoleErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') page.consoleErrors.push(`${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => page.consoleErrors.push(`uncaught: ${e.message}`));
  return page;
}

/**
 * No console error but the ones listed: Chromium logs every 4xx fetch as "Failed to load
 * resource", so a test that provokes a 401 from the verifier names that one.
 */
function assertNoConsoleErrors(page, ...allowed) {
  const unexpected = page.consoleErrors.filter((e) => !allowed.some((re) => re.test(e)));
  assert.deepEqual(unexpected, [], 'console errors');
}
const VERIFIER_401 = /status of 401 .*\/v1\/identify/;

/** Logs in as `userId` in a fresh browser context; `query` goes on the app page URL. */
async function login(userId, query = '', contextOptions = {}) {
  const context = await browser.newContext(contextOptions);
  const page = watchConsole(await context.newPage());
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
  assertNoConsoleErrors(page);
  await page.context().close();
});

test('no signature -> 202, stored as unverified', async () => {
  const page = await login('1004', '?auto=0');
  const a = await click(page, 'unsigned');
  assert.equal(a.state, 'unverified', a.text);
  assert.match(a.text, /user 1004 is stored as unverified/);
  await page.screenshot({ path: `${shots}02-unverified.png`, fullPage: true });
  const u = await stored('1004');
  assert.equal(u.verified, false);
  assert.equal(u.method, null);
  assertNoConsoleErrors(page);
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
  assertNoConsoleErrors(page, VERIFIER_401);
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
    // The fix names the console's Security page and links to it: the console on the verifier.
    const link = await page.getAttribute('#settings-link', 'href');
    assert.equal(link, `${verifier.url.replace(/\/+$/, '')}/console`);
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

test('unsigned call for a verified user: the banner says the record stayed verified and where the claims went', async () => {
  const page = await login('1001');
  assert.equal((await answer(page)).state, 'verified');
  await page.fill('#plan', 'enterprise');
  const a = await click(page, 'unsigned');
  assert.equal(a.state, 'unverified', a.text);
  assert.match(a.text, /202 accepted as unverified/);
  assert.match(a.text, /User 1001 stays verified/);
  assert.doesNotMatch(a.text, /stored as unverified/, 'the record is not unverified');
  assert.match(a.note, /verified record and its trusted plan and MRR were kept/);
  assert.match(a.note, /unverified_claims/);
  await page.screenshot({ path: `${shots}10-unsigned-for-verified-user.png`, fullPage: true });
  // The banner matches the store.
  const u = await stored('1001');
  assert.equal(u.verified, true);
  assert.equal(u.plan, 'pro');
  assert.equal(u.unverified_claims.plan, 'enterprise');
  assert.match(await page.textContent('#stored'), /"unverified_claims"/);
  assertNoConsoleErrors(page);
  await page.context().close();
});

test('at 390 px (a phone) each field stays on one line with its label and nothing overflows', async () => {
  const page = await login('1003', '?auto=0', { viewport: { width: 390, height: 844 } });
  await page.screenshot({ path: `${shots}11-390px.png`, fullPage: true });
  const layout = await page.evaluate(() => {
    const box = (el) => el.getBoundingClientRect().toJSON();
    return {
      scrollWidth: document.documentElement.scrollWidth,
      fields: ['plan', 'mrr', 'claims'].map((id) => {
        const input = document.getElementById(id);
        return { id, input: box(input), label: box(input.closest('label')) };
      }),
    };
  });
  assert.ok(layout.scrollWidth <= 390, `page scrolls sideways: ${layout.scrollWidth} px`);
  for (const { id, input, label } of layout.fields.slice(0, 2)) {
    // A label that wraps between its text and its input is two lines tall.
    assert.ok(label.height <= input.height + 4, `${id}: label wraps (${label.height} px tall, input ${input.height} px)`);
    assert.ok(label.right <= 390 && input.right <= 390, `${id}: off screen`);
  }
  assertNoConsoleErrors(page);
  await page.context().close();
});

// --- The demo's own sessions, over plain HTTP (what a curious user would try with curl).

/** POST /login as `userId`; returns the Set-Cookie header. */
async function httpLogin(userId, headers = {}) {
  const r = await fetch(`${demoUrl}/login`, {
    method: 'POST',
    body: new URLSearchParams({ user: userId }),
    headers,
    redirect: 'manual',
  });
  assert.equal(r.status, 303);
  return r.headers.get('set-cookie');
}
const cookiePair = (setCookie) => setCookie.split(';')[0];
const demoGet = (path, cookie) => fetch(`${demoUrl}${path}`, { headers: cookie ? { cookie } : {}, redirect: 'manual' });

test('the session cookie is a random id, HttpOnly and SameSite, new on every login', async () => {
  const first = await httpLogin('1001');
  const second = await httpLogin('1001');
  for (const c of [first, second]) {
    assert.match(c, /^acme_session=[A-Za-z0-9_-]{43};/, c);
    assert.match(c, /; HttpOnly/);
    assert.match(c, /; SameSite=(Lax|Strict)/);
    assert.doesNotMatch(cookiePair(c), /1001/, 'the cookie does not carry the user id');
  }
  assert.notEqual(cookiePair(first), cookiePair(second));
  for (const c of [first, second]) assert.equal((await demoGet('/app', cookiePair(c))).status, 200);
});

test("another user's record is not reachable through a query parameter or an edited cookie", async () => {
  // The victim has a record (an unsigned call is enough to store one).
  const r = await fetch(`${verifier.url}/v1/identify`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ app_id: verifier.appId, user_id: '1002', traits: { plan: 'business', email: 'grace@acme.test' } }),
  });
  assert.equal(r.status, 202);
  assert.equal((await stored('1002')).plan, 'business');

  const mine = cookiePair(await httpLogin('1001'));
  for (const path of ['/api/stored?user=1002', '/api/stored?user=1002&user=1002', '/api/stored?user%3D1002']) {
    const res = await demoGet(path, mine);
    const body = await res.text();
    assert.ok([200, 404].includes(res.status), `${path}: ${res.status}`);
    assert.doesNotMatch(body, /1002|grace@acme|business/, `${path} leaked user 1002: ${body}`);
    if (res.status === 200) assert.equal(JSON.parse(body).user_id, '1001');
  }
  // The old cookie was the bare user id; an edited or made-up cookie is no session at all.
  for (const cookie of ['acme_session=1002', `acme_session=${'A'.repeat(43)}`, 'acme_session=', `${mine}x`]) {
    const stored = await demoGet('/api/stored', cookie);
    assert.equal(stored.status, 401, `${cookie} -> ${stored.status}`);
    assert.doesNotMatch(await stored.text(), /1002|grace@acme/);
    const app = await demoGet('/app', cookie);
    assert.equal(app.status, 302, `${cookie}: /app without a session`);
    assert.equal(app.headers.get('location'), '/');
    assert.equal((await demoGet('/api/sign', cookie)).status, 401, 'no signatures without a session');
  }
});

test('logout ends the session on the server; a cross-site form cannot log in or out', async () => {
  const session = cookiePair(await httpLogin('1003'));
  assert.equal((await demoGet('/api/sign', session)).status, 200);
  const crossSite = await fetch(`${demoUrl}/logout`, { method: 'POST', headers: { cookie: session, origin: 'https://evil.example' }, redirect: 'manual' });
  assert.equal(crossSite.status, 403, 'logout from another site');
  assert.equal((await demoGet('/api/sign', session)).status, 200, 'still logged in');
  const out = await fetch(`${demoUrl}/logout`, { method: 'POST', headers: { cookie: session }, redirect: 'manual' });
  assert.equal(out.status, 303);
  assert.match(out.headers.get('set-cookie'), /^acme_session=;.*Max-Age=0/);
  // A copy of the cookie kept by someone else is dead too, not just cleared in this browser.
  assert.equal((await demoGet('/api/sign', session)).status, 401);
  assert.equal((await demoGet('/app', session)).status, 302);
  const loginCrossSite = await fetch(`${demoUrl}/login`, {
    method: 'POST',
    body: new URLSearchParams({ user: '1001' }),
    headers: { origin: 'https://evil.example' },
    redirect: 'manual',
  });
  assert.equal(loginCrossSite.status, 403);
  assert.equal(loginCrossSite.headers.get('set-cookie'), null);
});
