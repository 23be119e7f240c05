// `dropfix/server` on edge runtimes (issue 32): under the `edge-light` (Next.js, Vercel) and
// `workerd` (Cloudflare) conditions it signs with the same wasm core, taken precompiled from the
// bundler (`.wasm?module`) since those runtimes refuse to compile wasm at run time. Here Node
// plays that runtime (edge/hooks.mjs: the precompiled module, wasm compilation refused after it,
// no `node:` modules for the package, and a module from another realm as Next's sandbox gives),
// and everything it signs must equal the shared vectors and the Node entry, byte for byte,
// errors included. Next.js itself runs the edge route in tests/nextjs/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { claimsKey, signClaims, signUser } from 'dropfix/server';

const root = fileURLToPath(new URL('../../', import.meta.url));
const vectors = JSON.parse(readFileSync(new URL('../vectors/seed.json', import.meta.url), 'utf8'));
const secret = vectors.secret;
const now = vectors.now;

/** What the edge variant must sign: every vector, then ids, traits and mistakes of all kinds. */
const cases = [
  ...vectors.hmac_cases.map((c) => ({ fn: 'signUser', userId: c.user_id, options: { secret: c.secret, now } })),
  ...vectors.claims_keys.filter((c) => c.secret.trim() !== '').map((c) => ({ fn: 'claimsKey', secret: c.secret })),
  { fn: 'signClaims', userId: '42', claims: { plan: 'pro', mrr: 49 }, options: { secret, now } },
  { fn: 'signClaims', userId: 'ünïcødé-ユーザー-🙂', claims: { email: 'ada@example.com', name: 'Ada “L”', signup_date: '2024-03-01' }, options: { secret, now, ttlSeconds: 60 } },
  { fn: 'signClaims', userId: 7, claims: { team_size: 5, beta: true, note: null, ratio: 0.25, big: 1e21, neg: -3 }, options: { secret, now } },
  { fn: 'signClaims', userId: 'u', claims: { plan: undefined }, options: { secret: `${secret}\n`, now } },
  { fn: 'signUser', userId: 9007199254740991, options: { secret, now } },
  { fn: 'signUser', userId: 'x'.repeat(256), options: { secret, now: 0 } },
  // Refusals: the same error, code and field.
  { fn: 'signClaims', userId: '42', claims: { verified: true }, options: { secret, now } },
  { fn: 'signClaims', userId: '42', claims: { sub: 'bob' }, options: { secret, now } },
  { fn: 'signClaims', userId: '42', claims: { mrr: 'lots', 'bad name': 1 }, options: { secret, now } },
  { fn: 'signClaims', userId: '42', claims: { nested: { a: 1 } }, options: { secret, now } },
  { fn: 'signUser', userId: '', options: { secret, now } },
  { fn: 'signUser', userId: 1.5, options: { secret, now } },
  { fn: 'signUser', userId: '42', options: { secret: '  ', now } },
  { fn: 'signUser', userId: '42', options: { secret, now: Date.now() } },
];

/** The same cases through the Node entry, in this process. */
function signHere() {
  const run = (f) => {
    try {
      return f();
    } catch (e) {
      return { error: { message: e.message, code: e.code, field: e.field } };
    }
  };
  const out = cases.map((c) =>
    c.fn === 'signUser' ? run(() => signUser(c.userId, c.options))
    : c.fn === 'claimsKey' ? run(() => claimsKey(c.secret))
    : run(() => signClaims(c.userId, c.claims, c.options)),
  );
  return JSON.parse(JSON.stringify(out));
}

/** The cases signed by a Node process resolving the package with `conditions`, as an edge runtime. */
function signOnEdge(conditions, env = {}) {
  const r = spawnSync(
    process.execPath,
    [...conditions.map((c) => `--conditions=${c}`), '--import', './tests/js/edge/register.mjs', 'tests/js/edge/sign.mjs'],
    { cwd: root, input: JSON.stringify(cases), encoding: 'utf8', env: { ...process.env, ...env } },
  );
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const expected = signHere();

test('the Node entry itself: the vectors hold (the reference the edge variant is compared to)', () => {
  vectors.hmac_cases.forEach((c, i) => assert.equal(expected[i].dropfix_hash, c.signature.toLowerCase(), c.name));
  const keys = vectors.claims_keys.filter((c) => c.secret.trim() !== '');
  keys.forEach((c, i) => assert.equal(expected[vectors.hmac_cases.length + i], c.claims_key));
  const token = expected[vectors.hmac_cases.length + keys.length];
  const [h, p, s] = token.split('.');
  assert.equal(s, createHmac('sha256', vectors.claims_token.claims_key).update(`${h}.${p}`).digest('base64url'));
  assert.ok(expected.filter((o) => o.error).length >= 8, 'the refusals are refused');
});

for (const [name, conditions, env] of [
  ['edge-light (Next.js edge routes and middleware, Vercel)', ['edge-light'], {}],
  ['workerd (Cloudflare Workers)', ['workerd', 'worker', 'browser'], {}],
  ["edge-light, the module compiled in another realm (Next.js's edge sandbox)", ['edge-light'], { DROPFIX_TEST_OTHER_REALM: '1' }],
]) {
  test(`${name}: the precompiled core signs every vector and case exactly as the Node entry`, () => {
    const { core, out } = signOnEdge(conditions, env);
    assert.equal(core, new URL('js/core-edge.mjs', `file://${root}`).href);
    assert.deepEqual(out, expected);
  });
}

test('a runtime that refuses to compile wasm and matched no edge condition gets a clear error, not a crash', () => {
  const refuse = "WebAssembly.Module = function () { throw new WebAssembly.CompileError('Wasm code generation disallowed by embedder'); };";
  const script = `${refuse}
    const { signUser } = await import('dropfix/server');
    try { signUser('42', { secret: 's' }); console.log('signed'); } catch (e) { console.log(e.message); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /refuses to compile WebAssembly.*'edge-light' or 'workerd'.*disallowed by embedder/s);
});

test('bundled for the browser (the `browser` condition), dropfix/server signs nothing and says where signing belongs', () => {
  const script = `const m = await import('dropfix/server');
    const out = {};
    for (const f of ['signUser', 'claimsKey', 'signClaims']) {
      try { m[f]('42', {}, { secret: 'dfsk_x' }); out[f] = 'signed'; } catch (e) { out[f] = e.message; }
    }
    console.log(JSON.stringify(out));`;
  // Wrangler and Next.js's edge builds list `browser` too, after their own condition: those still sign.
  for (const [conditions, signs] of [[['browser'], false], [['edge-light', 'browser'], true], [['workerd', 'worker', 'browser'], true]]) {
    const r = spawnSync(
      process.execPath,
      [...conditions.map((c) => `--conditions=${c}`), '--import', './tests/js/edge/register.mjs', '--input-type=module', '-e', script],
      { cwd: root, encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    for (const [f, outcome] of Object.entries(JSON.parse(r.stdout))) {
      if (signs) assert.doesNotMatch(outcome, /bundled for the browser/, `${conditions} ${f}`);
      else assert.match(outcome, /bundled for the browser.*must stay on your server/, `${conditions} ${f}`);
    }
  }
});
