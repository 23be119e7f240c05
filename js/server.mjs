// `dropfix/server`: signing on the customer's Node backend, with the same Rust core as the
// verifier (compiled to wasm with the `node-signing` feature). Step 1 of "Secure your identify()
// call": after login, sign the user and hand the result to your frontend.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const core = require('../dist/node/dropfix_wasm.js');

const DEFAULT_TTL_SECONDS = 300;

function secretFrom(options) {
  const secret = options?.secret ?? process.env.DROPFIX_SECRET_KEY;
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
  return { dropfix_hash: core.signUser(secretFrom(options), id), dropfix_signed_at: nowSeconds(options) };
}

/**
 * Signed claims: an HS256 token over the user id, the time and the trusted traits, to pass as
 * `signature`. Expires after `ttlSeconds` (default 300).
 */
export function signClaims(userId, claims = {}, options = {}) {
  const id = userIdString(userId);
  const iat = nowSeconds(options);
  const ttl = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  const { plan, mrr, email, name } = claims ?? {};
  return core.signClaims(secretFrom(options), id, iat, iat + ttl, { plan, mrr, email, name });
}
