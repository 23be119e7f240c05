// The browser SDK in a real page, as a single-page app meets it (issue 18): headless Chromium,
// the ESM build served from dist/, a real dropfix-server, and the network routed to misbehave:
// a request that never answers (reset() and the timeout), a wasm 404 then recovery, a Content
// Security Policy without 'wasm-unsafe-eval', one whose connect-src leaves out the verifier or the
// wasm's origin, and the documented one, an origin the workspace
// does not allow (the real preflight 403), a tampered signed-claims token.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { signClaims, signUser } from 'dropfix/server';
import { startVerifier } from './verifier.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
// The Content Security Policy the README documents for a page that uses the SDK, read from it so
// that the documentation is what is tested.
const documentedCsp = (verifierOrigin) => {
  const line = readFileSync(join(root, 'README.md'), 'utf8').match(/^Content-Security-Policy: (.+)$/m);
  assert.ok(line, 'the README documents a Content-Security-Policy line');
  return line[1].replace('https://verify.example.com', verifierOrigin);
};

const APP_JS = `import { DropFix, DropFixError } from '/dist/dropfix.mjs';
window.DropFix = DropFix;
// Settles a call into plain data for page.evaluate.
window.settle = (p) => p.then(
  (ok) => ({ ok }),
  (e) => ({ error: { name: e.name, isDropFixError: e instanceof DropFixError, status: e.status, code: e.code, message: e.message } }),
);
window.ready = true;`;

let verifier, site, browser;

/** Serves /dist/* from the build, /app.js, and an HTML page with the CSP given as ?csp=. */
function serve() {
  const types = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/') {
      const headers = { 'Content-Type': 'text/html' };
      if (url.searchParams.has('csp')) headers['Content-Security-Policy'] = url.searchParams.get('csp');
      res.writeHead(200, headers).end('<!doctype html><script type="module" src="/app.js"></script>');
    } else if (url.pathname === '/tag') {
      // The script-tag build: the loader stub inline (allowed by a nonce), the SDK async.
      const nonce = 'dropfix-test-nonce';
      const csp = url.searchParams.get('csp').replace("'self'", `'self' 'nonce-${nonce}'`);
      const loader = readFileSync(join(root, 'js/loader.js'), 'utf8');
      res.writeHead(200, { 'Content-Type': 'text/html', 'Content-Security-Policy': csp }).end(
        `<!doctype html><script nonce="${nonce}">${loader}</script>
         <script nonce="${nonce}">DropFix.init(${url.searchParams.get('init')});
           window.result = DropFix.identify('tag-user', ${url.searchParams.get('traits')}).then((r) => r, (e) => ({ code: e.code, message: e.message }));</script>
         <script async src="/dist/dropfix.global.js"></script>`,
      );
    } else if (url.pathname === '/app.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(APP_JS);
    } else if (url.pathname.startsWith('/dist/') && !url.pathname.includes('..')) {
      try {
        const body = readFileSync(join(root, url.pathname));
        res.writeHead(200, { 'Content-Type': types[extname(url.pathname)] ?? 'application/octet-stream' }).end(body);
      } catch {
        res.writeHead(404).end();
      }
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${server.address().port}` })));
}

before(async () => {
  verifier = await startVerifier();
  site = await serve();
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  site?.server.close();
  await verifier?.stop();
});

/** A fresh page with the SDK loaded; `warnings` collects its console output. */
async function openPage(t, query = '') {
  const page = await browser.newPage();
  t.after(() => page.close());
  const warnings = [];
  page.on('console', (m) => warnings.push(m.text()));
  await page.goto(`${site.url}/${query}`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 10_000 });
  return { page, warnings };
}

const signed = (userId) => {
  const s = signUser(userId, { secret: verifier.secret });
  return { hash: s.dropfix_hash, signedAt: s.dropfix_signed_at };
};

async function storedVerified(userId) {
  const r = await verifier.admin('GET', `/v1/admin/workspaces/${verifier.appId}/users/${encodeURIComponent(userId)}`);
  return r.status === 200 && r.json.verified === true;
}

test("reset() aborts the previous user's hung call: the next user is identified at once", async (t) => {
  const { page } = await openPage(t);
  const hung = [];
  await page.route(`${verifier.url}/v1/identify**`, (route) => {
    const request = route.request();
    // Alice's request reaches the network and never gets an answer.
    if (request.method() === 'POST' && JSON.parse(request.postData()).user_id === 'alice') hung.push(request);
    else route.continue();
  });
  await page.evaluate(({ appId, endpoint, alice }) => {
    DropFix.init({ appId, endpoint });
    window.alice = settle(DropFix.identify('alice', alice));
  }, { appId: verifier.appId, endpoint: verifier.url, alice: signed('alice') });
  for (let i = 0; i < 100 && hung.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(hung.length, 1, "alice's request was sent");

  // Logout, login as Bob without a page reload. Bob must not wait behind Alice's hung request.
  const started = Date.now();
  const [alice, bob] = await page.evaluate(async (bobTraits) => {
    DropFix.reset();
    const bob = settle(DropFix.identify('bob', bobTraits));
    const limit = new Promise((r) => setTimeout(() => r({ stalled: true }), 5000));
    return [await Promise.race([window.alice, limit]), await Promise.race([bob, limit])];
  }, signed('bob'));
  assert.deepEqual(bob, { ok: { verified: true, userId: 'bob', method: 'seed_hmac' } });
  assert.ok(Date.now() - started < 3000, `bob took ${Date.now() - started} ms`);
  assert.equal(alice.error?.code, 'reset', JSON.stringify(alice));
  assert.equal(alice.error.isDropFixError, true);
  assert.equal(await storedVerified('bob'), true);
  assert.equal(await storedVerified('alice'), false, "alice's aborted call stored nothing");
});

test('a request that never answers rejects with DropFixError timeout, and the queue moves on', async (t) => {
  const { page } = await openPage(t);
  await page.route(`${verifier.url}/v1/identify**`, (route) => {
    const request = route.request();
    if (request.method() === 'POST' && JSON.parse(request.postData()).user_id === 'stuck') return; // never answered
    route.continue();
  });
  const started = Date.now();
  const [stuck, next] = await page.evaluate(async ({ appId, endpoint, traits }) => {
    DropFix.init({ appId, endpoint, timeoutMs: 1000 });
    // Queued behind the stuck call, in the same session.
    const calls = [settle(DropFix.identify('stuck')), settle(DropFix.identify('next', traits))];
    const limit = new Promise((r) => setTimeout(() => r([{ stalled: true }]), 8000));
    return Promise.race([Promise.all(calls), limit]);
  }, { appId: verifier.appId, endpoint: verifier.url, traits: signed('next') });
  const took = Date.now() - started;
  assert.equal(stuck.error?.code, 'timeout', JSON.stringify(stuck));
  assert.equal(stuck.error.isDropFixError, true);
  assert.equal(stuck.error.status, 0);
  assert.match(stuck.error.message, /1000 ms/);
  assert.deepEqual(next, { ok: { verified: true, userId: 'next', method: 'seed_hmac' } });
  assert.ok(took >= 900 && took < 5000, `took ${took} ms`);
});

test('a wasm 404 rejects with DropFixError sdk_load_failed, and a later call loads it and succeeds', async (t) => {
  const page = await browser.newPage();
  t.after(() => page.close());
  let wasmRequests = 0;
  let broken = true;
  await page.route('**/dropfix_wasm_bg.wasm', (route) => {
    wasmRequests++;
    return broken ? route.fulfill({ status: 404, body: 'not found' }) : route.continue();
  });
  await page.goto(`${site.url}/`);
  await page.waitForFunction(() => window.ready === true);
  const failed = await page.evaluate(({ appId, endpoint }) => {
    DropFix.init({ appId, endpoint });
    return settle(DropFix.identify('w1'));
  }, { appId: verifier.appId, endpoint: verifier.url });
  assert.equal(failed.error?.isDropFixError, true, JSON.stringify(failed));
  assert.equal(failed.error.code, 'sdk_load_failed');
  assert.equal(failed.error.status, 404);
  assert.match(failed.error.message, /dropfix_wasm_bg\.wasm/);
  const triedBefore = wasmRequests;
  assert.ok(triedBefore >= 1);

  broken = false; // the CDN is back
  const recovered = await page.evaluate((traits) => settle(DropFix.identify('w1', traits)), signed('w1'));
  assert.deepEqual(recovered, { ok: { verified: true, userId: 'w1', method: 'seed_hmac' } });
  assert.ok(wasmRequests > triedBefore, 'the load was tried again');
  assert.equal(await storedVerified('w1'), true);
});

/**
 * identify() on a page served with `csp`: the settled call, how long it took, and the
 * securitypolicyviolation reports the page saw (each blocked request is one).
 */
async function identifyUnderCsp(t, csp, traits, userId = 'csp-user') {
  const { page } = await openPage(t, `?csp=${encodeURIComponent(csp)}`);
  return page.evaluate(async ({ appId, endpoint, traits, userId }) => {
    const reports = [];
    document.addEventListener('securitypolicyviolation', (e) => reports.push(`${e.effectiveDirective} ${e.blockedURI}`));
    const started = performance.now();
    DropFix.init({ appId, endpoint });
    const result = await settle(DropFix.identify(userId, traits));
    return { result, ms: performance.now() - started, reports };
  }, { appId: verifier.appId, endpoint: verifier.url, traits, userId });
}

test("a CSP without 'wasm-unsafe-eval' rejects with csp_blocked naming it within 1 s; the documented CSP works", async (t) => {
  const { result: blocked, ms } = await identifyUnderCsp(t, `script-src 'self'; connect-src 'self' ${verifier.url}`);
  assert.equal(blocked.error?.isDropFixError, true, JSON.stringify(blocked));
  assert.equal(blocked.error.code, 'csp_blocked');
  assert.match(blocked.error.message, /'wasm-unsafe-eval'/);
  assert.match(blocked.error.message, /script-src/);
  assert.ok(ms < 1000, `rejected after ${ms} ms`);

  const documented = await openPage(t, `?csp=${encodeURIComponent(documentedCsp(verifier.url))}`);
  const ok = await documented.page.evaluate(({ appId, endpoint, traits }) => {
    DropFix.init({ appId, endpoint });
    return settle(DropFix.identify('csp-user', traits));
  }, { appId: verifier.appId, endpoint: verifier.url, traits: signed('csp-user') });
  assert.deepEqual(ok, { ok: { verified: true, userId: 'csp-user', method: 'seed_hmac' } });
});

test('a CSP whose connect-src leaves out the verifier: csp_blocked within 1 s, one try, naming connect-src and the origin to add (not network_error)', async (t) => {
  const csp = "script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'";
  const { result, ms, reports } = await identifyUnderCsp(t, csp, signed('csp-connect'), 'csp-connect');
  assert.equal(result.error?.isDropFixError, true, JSON.stringify(result));
  assert.equal(result.error.code, 'csp_blocked', result.error.message);
  assert.equal(result.error.status, 0);
  assert.match(result.error.message, /\(connect-src\)/);
  assert.ok(result.error.message.includes(`connect-src 'self' ${verifier.url}`), result.error.message);
  assert.ok(ms < 1000, `rejected after ${ms} ms`);
  // Not retried, and no no-cors probe either: the policy refused one request.
  const toVerifier = reports.filter((r) => r.includes(verifier.url));
  assert.deepEqual(toVerifier.map((r) => r.split(' ')[0]), ['connect-src'], reports.join(' | '));
  assert.equal(await storedVerified('csp-connect'), false);

  // Only default-src: the same diagnosis (connect-src falls back to it).
  const fallback = await identifyUnderCsp(t, "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'", signed('csp-connect'), 'csp-connect');
  assert.equal(fallback.result.error?.code, 'csp_blocked', JSON.stringify(fallback.result));
  assert.ok(fallback.ms < 1000, `rejected after ${fallback.ms} ms`);

  // Control: with the verifier's origin added, the same page and call are verified.
  const fixed = await identifyUnderCsp(t, `${csp} ${verifier.url}`, signed('csp-connect'), 'csp-connect');
  assert.deepEqual(fixed.result, { ok: { verified: true, userId: 'csp-connect', method: 'seed_hmac' } });
});

test("a CSP whose connect-src leaves out where the wasm is served: csp_blocked naming connect-src and that origin, not sdk_load_failed", async (t) => {
  // The wasm comes from this page's origin, which connect-src does not list.
  const { result, ms } = await identifyUnderCsp(t, `script-src 'self' 'wasm-unsafe-eval'; connect-src ${verifier.url}`);
  assert.equal(result.error?.code, 'csp_blocked', JSON.stringify(result));
  assert.match(result.error.message, /wasm download .*\(connect-src\)/);
  assert.ok(result.error.message.includes(`connect-src 'self' ${site.url}`), result.error.message);
  assert.ok(ms < 1000, `rejected after ${ms} ms`);
});

test('debug mode: a custom trait that misspells a standard one (emial) is named once in the console, from the verifier\'s explain answer', async (t) => {
  const { page, warnings } = await openPage(t);
  const results = await page.evaluate(async ({ appId, endpoint, first, second }) => {
    DropFix.init({ appId, endpoint, debug: true });
    return [
      await settle(DropFix.identify('typo-user', { emial: 'ada@example.com', signupDate: '2024-03-01', team: 'core', ...first })),
      await settle(DropFix.identify('typo-user', { emial: 'ada@example.com', team: 'core', ...second })),
    ];
  }, { appId: verifier.appId, endpoint: verifier.url, first: signed('typo-user'), second: signed('typo-user') });
  for (const r of results) assert.deepEqual(r, { ok: { verified: true, userId: 'typo-user', method: 'seed_hmac' } });
  const said = (text) => warnings.filter((w) => w.includes(text)).length;
  assert.equal(said('did you mean email?'), 1, warnings.join('\n'));
  assert.equal(said('did you mean signup_date?'), 1, warnings.join('\n'));
  assert.equal(said('team'), 0, 'a custom trait that is no misspelling is not mentioned');
  // Stored as sent (a custom trait): the hint is advice, not a rewrite.
  const user = await verifier.admin('GET', `/v1/admin/workspaces/${verifier.appId}/users/typo-user`);
  assert.equal(user.json.email, null);
  assert.equal(user.json.custom.emial, 'ada@example.com');

  // Without debug mode: the same call says nothing.
  const quiet = await openPage(t);
  await quiet.page.evaluate(async ({ appId, endpoint, traits }) => {
    DropFix.init({ appId, endpoint });
    await DropFix.identify('typo-user', { emial: 'ada@example.com', ...traits });
  }, { appId: verifier.appId, endpoint: verifier.url, traits: signed('typo-user') });
  assert.equal(quiet.warnings.filter((w) => w.includes('did you mean')).length, 0);
});

test('an origin the workspace does not allow: one try, origin_not_allowed naming the origin and the fix', async (t) => {
  const created = await verifier.admin('POST', '/v1/admin/workspaces', { name: 'elsewhere', allowed_origins: ['https://shop.example'] });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  const appId = created.json.app_id;
  const { page, warnings } = await openPage(t);
  const posts = [];
  page.on('request', (r) => r.url().startsWith(`${verifier.url}/v1/identify`) && r.method() === 'POST' && posts.push(r.url()));
  const started = Date.now();
  const refused = await page.evaluate(({ appId, endpoint }) => {
    DropFix.init({ appId, endpoint, debug: true });
    return settle(DropFix.identify('o1'));
  }, { appId, endpoint: verifier.url });
  const origin = site.url;
  assert.equal(refused.error?.isDropFixError, true, JSON.stringify(refused));
  assert.equal(refused.error.code, 'origin_not_allowed');
  assert.equal(refused.error.status, 0, 'the browser hides the 403');
  assert.ok(refused.error.message.includes(origin), refused.error.message);
  assert.ok(refused.error.message.includes(`dropfix-server workspace set ${appId} --allowed-origin ${origin}`), refused.error.message);
  assert.match(refused.error.message, /console's Security page/);
  assert.equal(posts.length, 1, 'not retried');
  assert.ok(Date.now() - started < 3000, 'no backoff waits');
  assert.ok(warnings.some((w) => w.includes('origin_not_allowed') && w.includes(origin)), warnings.join('\n'));

  // Control: a verifier that is down is a network error, retried (the probe tells them apart).
  const down = await page.evaluate(() => {
    DropFix.init({ appId: 'app_x', endpoint: 'http://127.0.0.1:9', maxRetries: 1 });
    return settle(DropFix.identify('o2'));
  });
  assert.equal(down.error?.code, 'network_error', JSON.stringify(down));

  // Once the origin is allowed, the same page's call goes through.
  const patched = await verifier.admin('PATCH', `/v1/admin/workspaces/${appId}`, { allowed_origins: ['https://shop.example', origin] });
  assert.equal(patched.status, 200, JSON.stringify(patched.json));
  const ok = await page.evaluate(({ appId, endpoint }) => {
    DropFix.init({ appId, endpoint });
    return settle(DropFix.identify('o1'));
  }, { appId, endpoint: verifier.url });
  assert.deepEqual(ok, { ok: { verified: false, userId: 'o1', method: null } });
});

test('a mistyped app id: unknown_app with the fix, not an origin problem', async (t) => {
  // No workspace has the mistyped id, so none lists this page's origin for it: the preflight
  // used to get 403 and the SDK reported origin_not_allowed with a fix that cannot work. The
  // SDK must learn that the app id is wrong: the preflight is allowed and the POST's 401
  // carries CORS headers.
  const { page, warnings } = await openPage(t);
  const posts = [];
  page.on('request', (r) => r.url().startsWith(`${verifier.url}/v1/identify`) && r.method() === 'POST' && posts.push(r.url()));
  const typo = `app_${'0'.repeat(24)}`;
  const result = await page.evaluate(({ appId, endpoint }) => {
    DropFix.init({ appId, endpoint, debug: true });
    return settle(DropFix.identify('u-typo'));
  }, { appId: typo, endpoint: verifier.url });
  assert.equal(result.error?.isDropFixError, true, JSON.stringify(result));
  assert.equal(result.error.code, 'unknown_app', JSON.stringify(result));
  assert.equal(result.error.status, 401);
  assert.doesNotMatch(result.error.message, /allowed-origin/);
  assert.equal(posts.length, 1, 'not retried');
  const hint = warnings.find((w) => w.includes('unknown_app'));
  assert.ok(hint, warnings.join('\n'));
  assert.match(hint, /Security page|workspace list/, hint);
  // Nothing was stored anywhere for it.
  const users = await verifier.admin('GET', `/v1/admin/workspaces/${verifier.appId}/users/u-typo`);
  assert.equal(users.status, 404);
});

test('a tampered signed-claims token is rejected with a message about tokens, not hex digests', async (t) => {
  const { page } = await openPage(t);
  const token = signClaims('t1', { plan: 'pro', mrr: 49 }, { secret: verifier.secret });
  const [header, payload, mac] = token.split('.');
  const forgedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url')), plan: 'enterprise' })).toString('base64url');
  const result = await page.evaluate(({ appId, endpoint, signature }) => {
    DropFix.init({ appId, endpoint });
    return settle(DropFix.identify('t1', { plan: 'enterprise', mrr: 49, signature }));
  }, { appId: verifier.appId, endpoint: verifier.url, signature: `${header}.${forgedPayload}.${mac}` });
  assert.equal(result.error?.status, 401, JSON.stringify(result));
  assert.equal(result.error.code, 'signature_mismatch');
  assert.match(result.error.message, /token/);
  assert.doesNotMatch(result.error.message, /hex digest/);
});

test('the script-tag build under the documented CSP (loader inline with a nonce): calls queued before load are verified', async (t) => {
  const page = await browser.newPage();
  t.after(() => page.close());
  const violations = [];
  page.on('console', (m) => /Content Security Policy|Refused/.test(m.text()) && violations.push(m.text()));
  const query = new URLSearchParams({
    csp: documentedCsp(verifier.url),
    init: JSON.stringify({ appId: verifier.appId, endpoint: verifier.url }),
    traits: JSON.stringify(signed('tag-user')),
  });
  await page.goto(`${site.url}/tag?${query}`);
  const result = await page.evaluate(() => window.result);
  assert.deepEqual(result, { verified: true, userId: 'tag-user', method: 'seed_hmac' }, violations.join('\n'));
  assert.deepEqual(violations, []);
});
