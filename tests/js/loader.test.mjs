// The loader stub (js/loader.js) and the script-tag build (dist/dropfix.global.js), run as classic
// scripts in this Node process with a stub fetch: calls made before the SDK arrives are queued,
// then replayed in call order once it loads; each queued identify() still settles its own promise
// (a bad call rejects with the same code and sends nothing). The same flow runs in Chromium
// against the real verifier in package.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runInThisContext } from 'node:vm';

const read = (path) => readFileSync(new URL(path, import.meta.url));
const wasm = read('../../dist/dropfix_wasm_bg.wasm');
const vectors = JSON.parse(read('../vectors/seed.json'));

// What a page gives a classic script.
globalThis.window = globalThis;
globalThis.document = { currentScript: null };
globalThis.location = { href: 'http://page.test/', origin: 'http://page.test' };

test('queued init and identify calls are replayed in order once the SDK loads', async () => {
  const sent = [];
  const fetch = async (url, init) => {
    const body = JSON.parse(init.body);
    sent.push(body.user_id);
    const json = { verified: false, user_id: body.user_id, method: null };
    return { ok: true, status: 202, headers: { get: () => null }, json: async () => json };
  };

  runInThisContext(read('../../js/loader.js').toString(), { filename: 'loader.js' });
  const stub = window.DropFix;
  assert.ok(Array.isArray(stub._q));
  const settled = [];
  const track = (name, p) => p.then((r) => settled.push(`${name} ok ${r.userId}`), (e) => settled.push(`${name} ${e.name} ${e.code}`));
  stub.init({ appId: 'app_test', endpoint: 'http://verifier.test', wasm, fetch, maxRetries: 0 });
  const calls = [
    track('first', stub.identify('first', { plan: 'pro' })),
    track('secret', stub.identify('leaky', { note: vectors.secret })),
    track('third', stub.identify(3)),
  ];
  assert.equal(stub._q.length, 4, 'init and three identify calls queued');
  assert.deepEqual(sent, [], 'nothing is sent before the SDK loads');

  const sdk = read('../../dist/dropfix.global.js').toString();
  runInThisContext(sdk, { filename: 'dropfix.global.js' });
  await Promise.all(calls);
  assert.deepEqual(sent, ['first', '3'], 'sent in call order; the call carrying a secret was not sent');
  // Sending is in call order; a call refused before sending settles without waiting its turn.
  assert.deepEqual(settled.sort(), ['first ok first', 'secret DropFixError secret_not_allowed', 'third ok 3']);

  const real = window.DropFix;
  assert.notEqual(real, stub);
  assert.equal(real._q, undefined);
  assert.equal(typeof real.DropFixError, 'function');

  // Loading the script twice keeps the configured SDK; calls now go straight out.
  runInThisContext(sdk, { filename: 'dropfix.global.js' });
  assert.equal(window.DropFix, real);
  assert.deepEqual(await real.identify('after'), { verified: false, userId: 'after', method: null });
  assert.deepEqual(sent, ['first', '3', 'after']);
});
