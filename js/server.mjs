// `dropfix/server`: signing on the customer's Node backend, with the same Rust core as the
// verifier (compiled to wasm with the `node-signing` feature). Step 1 of "Secure your identify()
// call": after login, sign the user and hand the result to your frontend.
//
// Which key signs what: the seed form (`signUser`) is an HMAC keyed with the workspace secret
// (DROPFIX_SECRET_KEY). Signed-claims tokens are keyed with the workspace's claims key
// (`dfck_...`), which is derived from the secret; `signClaims` takes the secret and derives it,
// and `claimsKey(secret)` returns it for backends that sign with their own JWT library. Keeping
// the two keys apart is what stops a seed hash from ever passing as a token.
//
// Runtimes: this module imports nothing from `node:`, so it also runs on edge runtimes and Deno.
// `#core` (package.json "imports") picks how the wasm arrives: inside a module as bytes (Node,
// Deno, any bundler: js/core-bytes.mjs), or precompiled by the bundler of an edge runtime, which
// refuses to compile wasm at run time (`edge-light`, `workerd`: js/core-edge.mjs). Helpers that
// need Node's own modules belong in a Node-only entry, not here.
import { core } from '#core';
//
// Public-key tokens (`signClaims` with `{ privateKey }`, `generateKeyPair`) live in ./keys.mjs: the
// workspace registers only the public key, so DropFix holds nothing that can sign. They use
// node:crypto, looked up when first called (not imported), so this module stays edge-safe.
import { signWithPrivateKey } from './keys.mjs';

export { generateKeyPair, jwkThumbprint } from './keys.mjs';

const DEFAULT_TTL_SECONDS = 300;

function secretFrom(options) {
  const secret = options?.secret ?? globalThis.process?.env?.DROPFIX_SECRET_KEY;
  if (typeof secret !== 'string' || secret.trim() === '') {
    throw new Error('DropFix: no secret key; pass { secret } or set DROPFIX_SECRET_KEY');
  }
  // Generated secrets never contain whitespace; a trailing newline from an env file is the
  // commonest signature_mismatch, so it is dropped here.
  return secret.trim();
}

function userIdString(userId) {
  if (typeof userId === 'string' && userId.length > 0) return userId;
  if (typeof userId === 'number' && Number.isSafeInteger(userId)) return String(userId);
  throw new TypeError('DropFix: userId must be a non-empty string or a safe integer');
}

function nowSeconds(options) {
  const now = options?.now ?? Math.floor(Date.now() / 1000);
  if (!Number.isInteger(now) || now > 100_000_000_000) {
    throw new TypeError('DropFix: now must be Unix seconds (an integer), not milliseconds');
  }
  return now;
}

/** Seed form: `{ dropfix_hash, dropfix_signed_at }` exactly like the page's Node snippet. */
export function signUser(userId, options = {}) {
  const id = userIdString(userId);
  return { dropfix_hash: core().signUser(secretFrom(options), id), dropfix_signed_at: nowSeconds(options) };
}

/**
 * The workspace's claims key (`dfck_` + 64 hex digits), derived from the secret: the HS256 key for
 * signing tokens with an ordinary JWT library, e.g.
 * `jwt.sign({ sub, plan }, claimsKey(), { algorithm: 'HS256', expiresIn: 300 })`.
 * It is a secret like the workspace secret: keep it on the server.
 */
export function claimsKey(secret) {
  return core().claimsKey(secretFrom(secret === undefined ? {} : { secret }));
}

/**
 * Signed claims: an HS256 token over the user id, the time and the trusted traits (any of them,
 * standard or custom), to pass as `signature`. Takes the workspace secret and signs with the
 * claims key derived from it. Expires after `ttlSeconds` (default 300).
 *
 * With `{ privateKey }` (and optional `kid`, `alg`, `iss`, `aud`) it is a public-key token
 * instead, signed with that key (see ./keys.mjs); no secret is read.
 */
export function signClaims(userId, claims = {}, options = {}) {
  const id = userIdString(userId);
  const iat = nowSeconds(options);
  const ttl = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  if (options.privateKey !== undefined) {
    return signWithPrivateKey(core(), id, claims, iat, iat + ttl, options);
  }
  return core().signClaims(secretFrom(options), id, iat, iat + ttl, claims ?? {});
}
