// Server-side rendering (issue 18, item 7): a framework's server imports the SDK's entry points in
// Node, where there is no window, document or location. Importing must not crash or define a
// global shared by every request; init() is harmless and starts no download; identify() rejects
// with a DropFixError `not_in_browser`. (node --test runs each file in its own process, so this
// one sees Node's globals as an SSR server would.)
import { test } from 'node:test';
import assert from 'node:assert/strict';

test('importing dropfix, dropfix/global and dropfix/loader in Node does not crash', async () => {
  assert.equal(typeof globalThis.window, 'undefined');
  await import('dropfix');
  await import('dropfix/global');
  await import('dropfix/loader');
  assert.equal(typeof globalThis.window, 'undefined');
  assert.equal(globalThis.DropFix, undefined, 'no server-wide global');
});

test('init() is harmless and identify() rejects with not_in_browser, sending and loading nothing', async () => {
  const { DropFix, DropFixError } = await import('dropfix');
  const original = globalThis.fetch;
  const fetched = [];
  globalThis.fetch = async (url) => {
    fetched.push(String(url));
    throw new Error('no network in this test');
  };
  try {
    DropFix.init({ appId: 'app_ssr', endpoint: 'https://verify.example.com', debug: true });
    await assert.rejects(DropFix.identify('42', { plan: 'pro' }), (e) => {
      assert.ok(e instanceof DropFixError);
      assert.equal(e.code, 'not_in_browser');
      assert.equal(e.status, 0);
      assert.match(e.message, /browser/);
      return true;
    });
    DropFix.reset();
    assert.deepEqual(fetched, [], 'no wasm download, no verifier call');
  } finally {
    globalThis.fetch = original;
  }
});
