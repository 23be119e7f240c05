// dropfix/server (Node signing through the core compiled to wasm) against the shared vector
// file, which is generated with Python's hmac, independent of the Rust core.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { claimsKey, signClaims, signUser } from 'dropfix/server';

const vectors = JSON.parse(readFileSync(new URL('../vectors/seed.json', import.meta.url), 'utf8'));

test('signUser matches every hmac case of the shared vectors', () => {
  assert.ok(vectors.hmac_cases.length >= 10);
  for (const c of vectors.hmac_cases) {
    const { dropfix_hash, dropfix_signed_at } = signUser(c.user_id, { secret: c.secret, now: vectors.now });
    assert.equal(dropfix_hash, c.signature.toLowerCase(), c.name);
    assert.equal(dropfix_signed_at, vectors.now);
  }
});

test('signUser reads DROPFIX_SECRET_KEY, trims an env-file newline, and numbers sign as decimal strings', () => {
  process.env.DROPFIX_SECRET_KEY = `${vectors.secret}\n`;
  try {
    const expected = createHmac('sha256', vectors.secret).update('42').digest('hex');
    assert.equal(signUser(42).dropfix_hash, expected);
    assert.equal(signUser('42').dropfix_hash, expected);
    const now = Math.floor(Date.now() / 1000);
    assert.ok(Math.abs(signUser('42').dropfix_signed_at - now) <= 1);
  } finally {
    delete process.env.DROPFIX_SECRET_KEY;
  }
});

test('signUser refuses what would fail at the verifier', () => {
  assert.throws(() => signUser('42'), /no secret key/);
  assert.throws(() => signUser('', { secret: 's' }), TypeError);
  assert.throws(() => signUser(1.5, { secret: 's' }), TypeError);
  assert.throws(() => signUser('42', { secret: 's', now: Date.now() }), /milliseconds/);
});

test('signClaims issues an HS256 token over sub, iat, exp and the trusted traits', () => {
  const token = signClaims('42', { plan: 'pro', mrr: 49, email: 'ada@example.com' }, { secret: vectors.secret, now: vectors.now });
  const [h, p, s] = token.split('.');
  assert.deepEqual(JSON.parse(Buffer.from(h, 'base64url')), { alg: 'HS256', typ: 'JWT' });
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  assert.equal(claims.sub, '42');
  assert.equal(claims.iat, vectors.now);
  assert.equal(claims.exp, vectors.now + 300);
  assert.equal(claims.plan, 'pro');
  assert.equal(claims.mrr, 49);
  // Keyed with the claims key derived from the secret (computed independently in
  // tests/vectors/generate.py), never with the secret itself.
  assert.equal(vectors.claims_token.secret, vectors.secret);
  const mac = createHmac('sha256', vectors.claims_token.claims_key).update(`${h}.${p}`).digest('base64url');
  assert.equal(s, mac, 'signature is HMAC-SHA256(claims key, header.payload)');
  assert.notEqual(s, createHmac('sha256', vectors.secret).update(`${h}.${p}`).digest('base64url'));
});

test('claimsKey derives the claims key of every vector secret', () => {
  assert.ok(vectors.claims_keys.length >= 4);
  for (const c of vectors.claims_keys) {
    if (c.secret.trim() === '') continue; // an empty secret is refused before deriving
    assert.equal(claimsKey(c.secret), c.claims_key);
  }
  process.env.DROPFIX_SECRET_KEY = `${vectors.secret}\n`;
  try {
    assert.equal(claimsKey(), vectors.claims_token.claims_key, 'reads and trims DROPFIX_SECRET_KEY');
  } finally {
    delete process.env.DROPFIX_SECRET_KEY;
  }
});

test('signClaims signs signup_date and custom traits, and refuses reserved names', () => {
  const token = signClaims('42', { signup_date: '2024-03-01', team_size: 5, beta: true }, { secret: vectors.secret, now: vectors.now });
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
  assert.equal(claims.signup_date, '2024-03-01');
  assert.equal(claims.team_size, 5);
  assert.equal(claims.beta, true);
  assert.throws(() => signClaims('42', { verified: true }, { secret: vectors.secret }), (e) => e.code === 'reserved_trait');
});

test('signClaims refuses traits named like registered claims, naming the trait (a second sub or nbf would be read by other JWT consumers)', () => {
  for (const name of ['sub', 'iat', 'exp', 'nbf', 'iss', 'aud', 'jti', 'Sub']) {
    assert.throws(
      () => signClaims('alice', { [name]: name === 'sub' ? 'bob' : 4102444800 }, { secret: vectors.secret, now: vectors.now }),
      (e) => e.code === 'reserved_trait' && e.field === `claims.${name}` && /sub, iat, exp, nbf/.test(e.message),
      name,
    );
  }
  // What it signs has one of each.
  const token = signClaims('alice', { plan: 'pro' }, { secret: vectors.secret, now: vectors.now, ttlSeconds: 60 });
  const payload = Buffer.from(token.split('.')[1], 'base64url').toString();
  for (const claim of ['"sub"', '"iat"', '"exp"']) assert.equal(payload.split(claim).length, 2, payload);
});
