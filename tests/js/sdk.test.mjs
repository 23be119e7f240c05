// The browser SDK's behaviour, run in Node against the built ESM bundle with a stub fetch:
// the wire body, validation before sending (same codes as the verifier, from the shared
// vectors), errors, retries with backoff, Retry-After, no retry on 4xx, reset().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { DropFix, DropFixError } from 'dropfix';

const wasm = readFileSync(new URL('../../dist/dropfix_wasm_bg.wasm', import.meta.url));
const vectors = JSON.parse(readFileSync(new URL('../vectors/seed.json', import.meta.url), 'utf8'));

/** A fetch that answers from `responses` in turn and records each request. */
function stubFetch(responses) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init, body: JSON.parse(init.body) });
    const next = responses.shift();
    if (next instanceof Error) throw next;
    const { status, body = {}, headers = {} } = next;
    return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
  };
  return { fetch, calls };
}

const ok = (user) => ({ status: 200, body: { verified: true, user_id: user, method: 'seed_hmac' } });

function init(fetch, extra = {}) {
  DropFix.reset();
  DropFix.init({ appId: 'app_test', endpoint: 'http://verifier.test/', wasm, fetch, ...extra });
}

test('identify sends the wire body of PROTOCOL.md and resolves { verified, userId, method }', async () => {
  const { fetch, calls } = stubFetch([ok('42')]);
  init(fetch);
  const r = await DropFix.identify(42, { name: 'Ada', plan: 'pro', mrr: 49, hash: 'ab'.repeat(32), signedAt: 1732406400 });
  assert.deepEqual(r, { verified: true, userId: '42', method: 'seed_hmac' });
  assert.equal(calls.length, 1);
  assert.equal(calls[0].url, 'http://verifier.test/v1/identify?app_id=app_test');
  assert.equal(calls[0].init.method, 'POST');
  assert.equal(calls[0].init.keepalive, true);
  assert.deepEqual(calls[0].body, {
    app_id: 'app_test',
    user_id: '42',
    traits: { name: 'Ada', plan: 'pro', mrr: 49 },
    signature: 'ab'.repeat(32),
    signed_at: 1732406400,
  });
});

test('the shared vectors: valid calls go out as their wire body; invalid ones fail with the same code and send nothing', async () => {
  let checkedValid = 0;
  let checkedInvalid = 0;
  for (const c of vectors.decision_cases) {
    const req = c.request;
    if (typeof req !== 'object' || req === null || req.app_id !== 'app_vectors') continue;
    const traits = { ...(req.traits ?? {}) };
    if (req.signature !== undefined) traits.signature = req.signature;
    if (req.hash !== undefined) traits.hash = req.hash;
    if (req.signed_at !== undefined) traits.signedAt = req.signed_at;
    if (req.signedAt !== undefined) traits.signedAt = req.signedAt;
    const { fetch, calls } = stubFetch([{ status: 202, body: { verified: false, user_id: String(req.user_id), method: null } }]);
    DropFix.reset();
    DropFix.init({ appId: req.app_id, endpoint: 'http://verifier.test', wasm, fetch, maxRetries: 0 });
    const call = DropFix.identify(req.user_id, traits);
    if (c.expect.outcome === 'invalid') {
      await assert.rejects(call, (e) => e instanceof DropFixError && e.code === c.expect.code && e.status === 0, c.name);
      assert.equal(calls.length, 0, `${c.name}: nothing sent`);
      checkedInvalid++;
    } else {
      await call;
      const sent = calls[0].body;
      assert.equal(sent.user_id, String(req.user_id), c.name);
      assert.equal(sent.signature, req.signature ?? req.hash, c.name);
      assert.equal(sent.signed_at, req.signed_at ?? req.signedAt, c.name);
      checkedValid++;
    }
  }
  assert.ok(checkedValid >= 20 && checkedInvalid >= 4, `${checkedValid} valid, ${checkedInvalid} invalid`);
});

test('a secret key is refused in init and in traits, and nothing is sent', async () => {
  const { fetch, calls } = stubFetch([]);
  assert.throws(() => DropFix.init({ appId: 'app_test', secret: vectors.secret, fetch }), (e) => e.code === 'secret_not_allowed');
  init(fetch);
  await assert.rejects(DropFix.identify('u', { note: vectors.secret }), (e) => e.code === 'secret_not_allowed' && !e.message.includes(vectors.secret));
  await assert.rejects(DropFix.identify('u', { signature: vectors.secret, signedAt: 1 }), (e) => e.code === 'secret_not_allowed');
  assert.equal(calls.length, 0);
});

test('init() without a usable appId throws invalid_config synchronously, and identify() then rejects with not_initialized', async () => {
  const { fetch, calls } = stubFetch([ok('u')]);
  init(fetch);
  for (const bad of [{ appId: '' }, {}, { appId: 42 }, undefined]) {
    assert.throws(() => DropFix.init(bad === undefined ? bad : { ...bad, wasm, fetch }), (e) => e instanceof DropFixError && e.code === 'invalid_config' && e.field === 'appId');
    // The earlier, valid configuration is forgotten: no call goes out with the old app id.
    await assert.rejects(DropFix.identify('u'), (e) => e instanceof DropFixError && e.code === 'not_initialized');
  }
  assert.equal(calls.length, 0);
  init(fetch);
  assert.deepEqual(await DropFix.identify('u'), { verified: true, userId: 'u', method: 'seed_hmac' });
});

test('4xx is not retried and rejects with status, code, message and field', async () => {
  const { fetch, calls } = stubFetch([
    { status: 401, body: { error: { code: 'signature_mismatch', message: 'the signature does not match' } } },
  ]);
  init(fetch);
  await assert.rejects(DropFix.identify('u', { hash: 'a'.repeat(64), signedAt: 1 }), (e) => {
    assert.ok(e instanceof DropFixError);
    assert.equal(e.status, 401);
    assert.equal(e.code, 'signature_mismatch');
    assert.match(e.message, /does not match/);
    return true;
  });
  assert.equal(calls.length, 1);
});

test('network errors and 5xx are retried with backoff, bounded', async () => {
  const { fetch, calls } = stubFetch([new TypeError('connection refused'), { status: 503, body: {} }, ok('u')]);
  init(fetch);
  const r = await DropFix.identify('u');
  assert.equal(r.verified, true);
  assert.equal(calls.length, 3);

  const failing = stubFetch([new TypeError('down'), new TypeError('down'), new TypeError('down')]);
  init(failing.fetch, { maxRetries: 2 });
  await assert.rejects(DropFix.identify('u'), (e) => e.code === 'network_error' && e.status === 0);
  assert.equal(failing.calls.length, 3, 'one try and two retries');
});

/** Identifies through one 429 answer (`body`, Retry-After `retryAfter`) and then a 200. */
async function throughA429(retryAfter, body) {
  const { fetch, calls } = stubFetch([{ status: 429, body, headers: { 'Retry-After': retryAfter } }, ok('u')]);
  init(fetch);
  const started = Date.now();
  await DropFix.identify('u');
  return { waited: Date.now() - started, calls };
}

test('429 honours Retry-After', async () => {
  const { waited, calls } = await throughA429('1', { error: { code: 'rate_limited', message: 'slow down' } });
  assert.ok(waited >= 950, 'waited for Retry-After');
  assert.equal(calls.length, 2);
});

test('429 with a Retry-After beyond a minute rejects at once instead of holding the queue', async () => {
  const { fetch, calls } = stubFetch([{ status: 429, body: { error: { code: 'rate_limited', message: 'slow down' } }, headers: { 'Retry-After': '3600' } }]);
  init(fetch);
  const started = Date.now();
  await assert.rejects(DropFix.identify('u'), (e) => e instanceof DropFixError && e.status === 429 && e.code === 'rate_limited');
  assert.ok(Date.now() - started < 500);
  assert.equal(calls.length, 1);
});

test('429 honours Retry-After given as an HTTP date', async () => {
  const at = new Date(Date.now() + 2000).toUTCString();
  const { waited, calls } = await throughA429(at, {});
  // HTTP dates have one-second resolution: the wait is between 1 and 2 s.
  assert.ok(waited >= 950, 'waited for the date');
  assert.equal(calls.length, 2);
});

test('other 4xx (400, 403, 413) are not retried', async () => {
  for (const status of [400, 403, 413]) {
    const { fetch, calls } = stubFetch([{ status, body: { error: { code: `c${status}`, message: 'no', field: 'traits.plan' } } }]);
    init(fetch);
    await assert.rejects(DropFix.identify('u'), (e) => e.status === status && e.code === `c${status}` && e.field === 'traits.plan');
    assert.equal(calls.length, 1, String(status));
  }
});

test('reset() drops a call that is waiting to retry', async () => {
  const { fetch, calls } = stubFetch([{ status: 503, body: {} }, ok('u')]);
  init(fetch);
  const pending = DropFix.identify('u');
  await new Promise((r) => setTimeout(r, 20));
  DropFix.reset();
  await assert.rejects(pending, (e) => e.code === 'reset');
  assert.equal(calls.length, 1);
});

test('debug mode explains milliseconds, stale signatures and a signature reused for another user', async () => {
  const warnings = [];
  const original = console.warn;
  console.warn = (...args) => warnings.push(args.join(' '));
  try {
    const { fetch } = stubFetch([ok('a'), ok('a'), ok('b'), ok('c'), ok('d')]);
    init(fetch, { debug: true });
    const sig = 'c'.repeat(64);
    const now = Math.floor(Date.now() / 1000);
    await DropFix.identify('a', { hash: sig, signedAt: Date.now() });
    await DropFix.identify('a', { hash: sig, signedAt: now - 900 });
    await DropFix.identify('b', { hash: sig, signedAt: now });
    await DropFix.identify('c');
    assert.doesNotMatch(warnings.join('\n'), /earlier session/);
    DropFix.reset(); // logout; the next login's page sends the old signature and signedAt again
    await DropFix.identify('d', { hash: sig, signedAt: now });
  } finally {
    console.warn = original;
  }
  const text = warnings.join('\n');
  assert.match(text, /milliseconds/);
  assert.match(text, /900 s old/);
  assert.match(text, /same signature was sent for user "a" and "b"/);
  assert.match(text, /without a signature/);
  assert.match(text, /already sent before DropFix.reset\(\) \(an earlier/);
});

test('identify before init rejects clearly', async () => {
  const fresh = await import(`../../dist/dropfix.mjs?fresh=${Date.now()}`);
  await assert.rejects(fresh.DropFix.identify('u'), (e) => e.code === 'not_initialized');
});

test('identify calls are sent one at a time, in call order', async () => {
  const events = [];
  const fetch = async (url, init) => {
    const user = JSON.parse(init.body).user_id;
    events.push(`start ${user}`);
    await new Promise((r) => setTimeout(r, user === 'first' ? 50 : 0));
    events.push(`end ${user}`);
    return new Response(JSON.stringify({ verified: false, user_id: user, method: null }), { status: 202 });
  };
  init(fetch);
  await Promise.all([DropFix.identify('first'), DropFix.identify('second')]);
  assert.deepEqual(events, ['start first', 'end first', 'start second', 'end second']);
});

test('debug mode: the same user logging in again (seed form: same hash, fresh signedAt) is not called cached', async () => {
  const warnings = [];
  const original = console.warn;
  console.warn = (...args) => warnings.push(args.join(' '));
  try {
    const { fetch } = stubFetch([ok('ada'), ok('ada'), ok('ada')]);
    init(fetch, { debug: true });
    const hash = 'd'.repeat(64); // the seed form's hash depends on the user id only
    const now = Math.floor(Date.now() / 1000);
    await DropFix.identify('ada', { hash, signedAt: now - 20 });
    DropFix.reset(); // logout, then the same user logs in again and the backend signs afresh
    await DropFix.identify('ada', { hash, signedAt: now });
    assert.doesNotMatch(warnings.join('\n'), /earlier/);
    DropFix.reset(); // a page that replays the very same values is another matter
    await DropFix.identify('ada', { hash, signedAt: now });
    assert.match(warnings.join('\n'), /already sent before DropFix.reset\(\)/);
  } finally {
    console.warn = original;
  }
});

test('reset() aborts the request in flight and the next user does not wait behind it', async () => {
  const signals = [];
  const fetch = (url, init) => {
    const user = JSON.parse(init.body).user_id;
    signals.push(init.signal);
    // The old user's request hangs and, like some custom fetches, ignores its signal.
    if (user === 'old') return new Promise(() => {});
    return Promise.resolve(new Response(JSON.stringify({ verified: false, user_id: user, method: null }), { status: 202 }));
  };
  init(fetch);
  const old = DropFix.identify('old');
  const queuedOld = DropFix.identify('old-2');
  await new Promise((r) => setTimeout(r, 20));
  DropFix.reset();
  const started = Date.now();
  assert.deepEqual(await DropFix.identify('new'), { verified: false, userId: 'new', method: null });
  assert.ok(Date.now() - started < 500);
  await assert.rejects(old, (e) => e instanceof DropFixError && e.code === 'reset');
  await assert.rejects(queuedOld, (e) => e.code === 'reset');
  assert.equal(signals[0].aborted, true, 'the hung request was aborted');
  assert.equal(signals.length, 2, "old-2 was never sent");
});

test('a request with no answer rejects with timeout after timeoutMs, not retried', async () => {
  let calls = 0;
  const fetch = () => {
    calls++;
    return new Promise(() => {});
  };
  init(fetch, { timeoutMs: 300 });
  const started = Date.now();
  await assert.rejects(DropFix.identify('u'), (e) => e instanceof DropFixError && e.code === 'timeout' && e.status === 0);
  const took = Date.now() - started;
  assert.ok(took >= 280 && took < 1500, `${took} ms`);
  assert.equal(calls, 1);
});

test('a body that never finishes is under the same timeout', async () => {
  const fetch = async () => ({ ok: true, status: 200, headers: new Headers(), json: () => new Promise(() => {}) });
  init(fetch, { timeoutMs: 300 });
  await assert.rejects(DropFix.identify('u'), (e) => e.code === 'timeout');
});

test('a failed wasm load rejects with sdk_load_failed; init() again loads at once', async () => {
  const fresh = await import(`../../dist/dropfix.mjs?load=${Date.now()}`);
  const { fetch } = stubFetch([ok('u')]);
  fresh.DropFix.init({ appId: 'app_test', endpoint: 'http://verifier.test', wasm: new Uint8Array([0, 97, 115, 109]), fetch });
  await assert.rejects(fresh.DropFix.identify('u'), (e) => e instanceof fresh.DropFixError && e.code === 'sdk_load_failed' && /wasm/.test(e.message));
  fresh.DropFix.init({ appId: 'app_test', endpoint: 'http://verifier.test', wasm, fetch });
  const started = Date.now();
  assert.equal((await fresh.DropFix.identify('u')).verified, true);
  assert.ok(Date.now() - started < 500, 'no backoff wait after init()');
});

test('timeoutMs beyond what setTimeout holds does not fire at once', async () => {
  const { fetch } = stubFetch([ok('u')]);
  init(fetch, { timeoutMs: Infinity });
  assert.equal((await DropFix.identify('u')).verified, true);
});

test('a failed wasm download is retried by a later call, with backoff, and then succeeds', async (t) => {
  let requests = 0;
  let up = false;
  const server = createServer((req, res) => {
    requests++;
    if (!up) return res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': 'application/wasm' }).end(wasm);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const fresh = await import(`../../dist/dropfix.mjs?backoff=${Date.now()}`);
  const { fetch } = stubFetch([ok('u')]);
  const url = `http://127.0.0.1:${server.address().port}/dropfix_wasm_bg.wasm`;
  fresh.DropFix.init({ appId: 'app_test', endpoint: 'http://verifier.test', wasm: url, fetch, timeoutMs: 500 });
  const isLoadFailure = (e) => e instanceof fresh.DropFixError && e.code === 'sdk_load_failed' && e.status === 404;
  await assert.rejects(fresh.DropFix.identify('u'), isLoadFailure);
  // The next try is 1 s after the failure, longer than this call's timeout: it fails at once
  // without a download.
  const started = Date.now();
  await assert.rejects(fresh.DropFix.identify('u'), isLoadFailure);
  assert.ok(Date.now() - started < 200);
  assert.equal(requests, 1);
  up = true;
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await fresh.DropFix.identify('u')).verified, true);
  assert.equal(requests, 2);
});
