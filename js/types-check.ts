// Compiled by `npm test` (tsc --noEmit): the public declarations type-check as a consumer uses them.
import { DropFix, DropFixError, type IdentifyResult } from './index.js';
import { generateKeyPair, jwkThumbprint, signClaims, signUser, type KeyPair } from './server.js';

DropFix.init({ appId: 'app_x', endpoint: 'https://verify.example.com', debug: true });
const signed = signUser(42, { secret: 'dfsk_x', now: 1732406400 });
const token: string = signClaims('42', { plan: 'pro', mrr: 49 }, { ttlSeconds: 60 });
const pending: Promise<IdentifyResult> = DropFix.identify('42', {
  name: 'Ada',
  plan: 'pro',
  mrr: 49,
  hash: signed.dropfix_hash,
  signedAt: signed.dropfix_signed_at,
  team: 'core',
});
pending.then(
  (r) => r.verified && r.method === 'seed_hmac',
  (e: unknown) => e instanceof DropFixError && e.status === 401 && e.code === 'signature_mismatch',
);
void token;

// Public-key tokens: a generated key pair, its JWK to register, a token signed with it.
const pair: KeyPair = generateKeyPair({ alg: 'EdDSA' });
const kid: string = jwkThumbprint(pair.publicJwk);
const pkToken: string = signClaims(42, { plan: 'pro' }, {
  privateKey: pair.privateKey, kid, alg: pair.alg, iss: 'https://backend.example.com', aud: ['dropfix'],
});
// @ts-expect-error HS256 is not a public-key algorithm.
signClaims('42', {}, { privateKey: pair.privateKey, alg: 'HS256' });
void pkToken;
