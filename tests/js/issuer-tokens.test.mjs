// dropfix/server's public-key tokens (`generateKeyPair`, `signClaims` with `{ privateKey }`)
// against the real verifier: the public key registered with `dropfix-server workspace
// add-issuer` (as the JWK `generateKeyPair` prints, and as the SPKI PEM with --kid), each
// algorithm's token verifies as `issuer_token`, and what the page sends must agree with it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPublicKey, verify as cryptoVerify, constants } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPair, jwkThumbprint, signClaims } from 'dropfix/server';
import { serverBinary, startVerifier } from './verifier.mjs';

const ISS = 'https://backend.example';
const AUD = 'dropfix-app';
const ALGS = ['ES256', 'ES384', 'EdDSA', 'RS256', 'PS256'];

let verifier, work;

before(async () => {
  verifier = await startVerifier();
  work = mkdtempSync(join(tmpdir(), 'dropfix-issuer-keys-'));
});

after(async () => {
  await verifier?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

function addIssuer(name, keyText, extra = []) {
  const file = join(work, `${name}.key`);
  writeFileSync(file, keyText);
  const claims = extra.includes('--iss') ? [] : ['--iss', ISS, '--aud', AUD];
  execFileSync(serverBinary(), ['workspace', 'add-issuer', verifier.appId, '--name', name, '--public-key', file,
    ...claims, '--data-dir', verifier.dataDir, ...extra], { stdio: ['ignore', 'ignore', 'inherit'] });
}

async function identify(userId, traits, signature) {
  const res = await fetch(`${verifier.url}/v1/identify`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ app_id: verifier.appId, user_id: userId, traits, signature }),
  });
  return { status: res.status, body: await res.json() };
}

/**
 * For a call that must verify: retries while the running server has not yet picked up the issuer
 * just added (it reloads within a second), then returns the last answer.
 */
async function identifyOnceKnown(userId, traits, signature) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await identify(userId, traits, signature);
    if (r.status === 200 || Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
}

function decode(token) {
  const [h, p, s] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')), input: `${h}.${p}`, sig: Buffer.from(s, 'base64url') };
}

test('generateKeyPair: PKCS#8 and SPKI PEM, a public JWK with its RFC 7638 thumbprint as kid', () => {
  for (const alg of ALGS) {
    const k = generateKeyPair({ alg });
    assert.match(k.privateKey, /^-----BEGIN PRIVATE KEY-----/);
    assert.match(k.publicKey, /^-----BEGIN PUBLIC KEY-----/);
    assert.equal(k.alg, alg);
    assert.equal(k.publicJwk.alg, alg);
    assert.equal(k.publicJwk.use, 'sig');
    assert.equal(k.publicJwk.kid, k.kid);
    assert.equal(k.publicJwk.d, undefined, 'the public JWK holds no private member');
    assert.equal(k.kid, jwkThumbprint(k.publicJwk));
    // The same key as node:crypto sees it from the PEM.
    const fromPem = createPublicKey(k.publicKey).export({ format: 'jwk' });
    for (const [m, v] of Object.entries(fromPem)) assert.equal(k.publicJwk[m], v, `${alg} ${m}`);
  }
  // RFC 7638 section 3.1's example key and thumbprint.
  const rfc = {
    kty: 'RSA', e: 'AQAB', alg: 'RS256', kid: '2011-04-29',
    n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
  };
  assert.equal(jwkThumbprint(rfc), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  assert.throws(() => generateKeyPair({ alg: 'HS256' }), /alg must be one of/);
  assert.throws(() => generateKeyPair({ alg: 'RS256', modulusLength: 1024 }), /at least 2048/);
});

test('signClaims with a private key: the core payload, iss/aud passed through, a JWS signature node:crypto verifies', () => {
  const now = 1_732_406_400;
  for (const alg of ALGS) {
    const k = generateKeyPair({ alg });
    const token = signClaims(42, { plan: 'pro', mrr: 49, team: 'core' }, { privateKey: k.privateKey, kid: k.kid, alg, iss: ISS, aud: [AUD, 'other'], now, ttlSeconds: 60 });
    const { header, payload, input, sig } = decode(token);
    assert.deepEqual(header, { alg, typ: 'JWT', kid: k.kid });
    assert.deepEqual(payload, { sub: '42', iat: now, exp: now + 60, plan: 'pro', mrr: 49, team: 'core', iss: ISS, aud: [AUD, 'other'] });
    const pub = createPublicKey(k.publicKey);
    const ok = {
      ES256: () => cryptoVerify('sha256', Buffer.from(input), { key: pub, dsaEncoding: 'ieee-p1363' }, sig),
      ES384: () => cryptoVerify('sha384', Buffer.from(input), { key: pub, dsaEncoding: 'ieee-p1363' }, sig),
      EdDSA: () => cryptoVerify(null, Buffer.from(input), pub, sig),
      RS256: () => cryptoVerify('sha256', Buffer.from(input), pub, sig),
      PS256: () => cryptoVerify('sha256', Buffer.from(input), { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, sig),
    }[alg]();
    assert.ok(ok, `${alg} signature verifies`);
    if (alg.startsWith('ES')) assert.equal(sig.length, alg === 'ES256' ? 64 : 96, 'raw r || s, not DER');
  }
  // The alg defaults from the key: RSA -> RS256; PS256 on request; a JWK private key works too.
  const rsa = generateKeyPair({ alg: 'PS256' });
  assert.equal(decode(signClaims('42', {}, { privateKey: rsa.privateKey })).header.alg, 'RS256');
  assert.equal(decode(signClaims('42', {}, { privateKey: rsa.privateKey, alg: 'PS256' })).header.alg, 'PS256');
  const ec = generateKeyPair();
  const jwk = JSON.parse(JSON.stringify(createPublicKey(ec.publicKey).export({ format: 'jwk' })));
  assert.equal(jwk.d, undefined);
  const { header, payload } = decode(signClaims('42', { plan: 'pro' }, { privateKey: ec.privateKey }));
  assert.deepEqual(header, { alg: 'ES256', typ: 'JWT' });
  assert.equal(payload.exp - payload.iat, 300, 'ttlSeconds defaults to 300');
  assert.equal(payload.iss, undefined);
});

test('signClaims with a private key refuses what the verifier would refuse', () => {
  const ec = generateKeyPair();
  const opts = { privateKey: ec.privateKey };
  assert.throws(() => signClaims('42', {}, { ...opts, alg: 'RS256' }), /signs ES256, not RS256/);
  assert.throws(() => signClaims('42', {}, { ...opts, alg: 'HS256' }), /not HS256/);
  assert.throws(() => signClaims('42', {}, { privateKey: ec.publicKey }), /public key|not a readable private key/);
  assert.throws(() => signClaims('42', {}, { privateKey: 'not a key' }), /not a readable private key/);
  assert.throws(() => signClaims('42', {}, { privateKey: '' }), /no private key/);
  assert.throws(() => signClaims('42', {}, { ...opts, ttlSeconds: 0 }), /ttlSeconds/);
  assert.throws(() => signClaims('42', {}, { ...opts, kid: '' }), /kid/);
  assert.throws(() => signClaims('42', {}, { ...opts, aud: [] }), /aud/);
  // The core's trait rules, as for HS256 tokens.
  assert.throws(() => signClaims('42', { verified: true }, opts), (e) => e.code === 'reserved_trait' || /reserved/.test(e.message));
  assert.throws(() => signClaims('42', { mrr: 'lots' }, opts), (e) => e.field === 'claims.mrr');
  const small = execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.throws(() => signClaims('42', {}, { privateKey: small }), /at least 2048 bits/);
  // No secret is read in this mode.
  delete process.env.DROPFIX_SECRET_KEY;
  assert.ok(signClaims('42', {}, opts));
});

test('the verifier verifies each algorithm\'s token, the public key registered as JWK and as PEM', async () => {
  for (const alg of ALGS) {
    const k = generateKeyPair({ alg });
    const asJwk = `jwk-${alg}`;
    addIssuer(asJwk, JSON.stringify(k.publicJwk));
    const sign = (kid, claims = { plan: 'pro', mrr: 49 }) =>
      signClaims('42', claims, { privateKey: k.privateKey, kid, alg, iss: ISS, aud: AUD });
    const token = sign(k.kid);
    let r = await identifyOnceKnown('42', { plan: 'pro', mrr: 49 }, token);
    assert.equal(r.status, 200, `${alg} ${JSON.stringify(r.body)}`);
    assert.deepEqual(r.body, { verified: true, user_id: '42', method: 'issuer_token' }, alg);
    r = await identify('43', {}, token);
    assert.equal(r.status, 401, alg);
    assert.equal(r.body.error.code, 'claims_mismatch', alg);
    r = await identify('42', { plan: 'enterprise' }, token);
    assert.equal(r.body.error.code, 'claims_mismatch', alg);
    r = await identify('42', {}, sign('no-such-kid'));
    assert.equal(r.body.error.code, 'unknown_key_id', alg);
    execFileSync(serverBinary(), ['workspace', 'remove-issuer', verifier.appId, '--name', asJwk, '--data-dir', verifier.dataDir], { stdio: 'ignore' });

    // The SPKI PEM with --kid: a different kid is the operator's choice.
    addIssuer(`pem-${alg}`, k.publicKey, ['--kid', `pem-${alg}`]);
    r = await identifyOnceKnown('42', {}, sign(`pem-${alg}`));
    assert.deepEqual(r.body, { verified: true, user_id: '42', method: 'issuer_token' }, `${alg} PEM`);
    execFileSync(serverBinary(), ['workspace', 'remove-issuer', verifier.appId, '--name', `pem-${alg}`, '--data-dir', verifier.dataDir], { stdio: 'ignore' });
  }
});

test('the guide\'s dropfix/server snippet (docs/ISSUERS.md) signs a token the verifier accepts', async () => {
  const guide = readFileSync(new URL('../../docs/ISSUERS.md', import.meta.url), 'utf8').split('\n');
  const at = guide.indexOf('<!-- test: dropfix-node -->');
  assert.ok(at >= 0 && guide[at + 1].startsWith('```'), 'the marked snippet is in the guide');
  const end = guide.findIndex((l, i) => i > at + 1 && l.startsWith('```'));
  const snippet = guide.slice(at + 2, end).join('\n');
  // As the guide sets it up: the key in ./dropfix-private.pem, registered with kid backend-2026.
  const k = generateKeyPair();
  const dir = mkdtempSync(join(tmpdir(), 'dropfix-guide-'));
  writeFileSync(join(dir, 'dropfix-private.pem'), k.privateKey);
  addIssuer('guide', k.publicKey, ['--kid', 'backend-2026', '--iss', 'https://app.acme.com', '--aud', 'dropfix']);
  // Inside the package, so that `dropfix/server` resolves to this checkout.
  const file = fileURLToPath(new URL(`./.guide-${process.pid}.mjs`, import.meta.url));
  writeFileSync(file, `${snippet}\nconsole.log(dropfixToken({ id: 42, email: 'ada@example.com', plan: 'pro' }))\n`);
  let token;
  try {
    token = execFileSync(process.execPath, [file], { cwd: dir, encoding: 'utf8' }).trim();
  } finally {
    rmSync(file, { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
  const r = await identifyOnceKnown('42', { email: 'ada@example.com', plan: 'pro' }, token);
  assert.deepEqual(r.body, { verified: true, user_id: '42', method: 'issuer_token' });
  assert.equal((await identify('42', { plan: 'enterprise' }, token)).body.error.code, 'claims_mismatch');
});
