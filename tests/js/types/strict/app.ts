// A strict app (typescript-eslint's strict presets, many templates): `exactOptionalPropertyTypes`
// and `noUncheckedIndexedAccess`. What such apps pass (a session's optional fields, environment
// variables, values read from records) is `T | undefined`; the SDK treats an explicit `undefined`
// as absent, so the declarations accept it. The refusals still hold.
import { DropFix, type InitOptions, type Traits } from 'dropfix';
import { claimsKey, signClaims, signUser, type Claims, type SignOptions } from 'dropfix/server';

// As @types/node declares it, without depending on @types/node here.
declare const process: { env: Record<string, string | undefined> };

interface Session {
  user: { id: string; name?: string | undefined; email?: string | undefined; plan?: string | undefined };
}
declare const session: Session;
declare const mrrByPlan: Record<string, number>;

DropFix.init({ appId: 'app_x', endpoint: process.env.NEXT_PUBLIC_DROPFIX_ENDPOINT, debug: process.env.NODE_ENV !== 'production' });
DropFix.init({ appId: 'app_x', endpoint: undefined, timeoutMs: undefined, maxRetries: undefined, wasm: undefined, fetch: undefined });
const options: InitOptions = { appId: 'app_x', debug: undefined };
void options;

const signed = signUser(session.user.id, { secret: process.env.DROPFIX_SECRET_KEY, now: undefined });
const key: string = claimsKey(process.env.DROPFIX_SECRET_KEY);
const sign: SignOptions = { secret: process.env['DROPFIX_SECRET_KEY'] };
// noUncheckedIndexedAccess: a record read is `number | undefined`.
const claims: Claims = { plan: session.user.plan, mrr: mrrByPlan[session.user.plan ?? 'free'], email: session.user.email };
const token: string = signClaims(session.user.id, claims, { ...sign, ttlSeconds: undefined });
void key;

void DropFix.identify(session.user.id, {
  name: session.user.name,
  email: session.user.email,
  plan: session.user.plan,
  mrr: mrrByPlan['pro'],
  signature: token,
});
void DropFix.identify(session.user.id, { hash: signed.dropfix_hash, signedAt: signed.dropfix_signed_at, signature: undefined, signed_at: undefined });
const traits: Traits = { signature: undefined, signedAt: undefined, name: undefined };
void traits;

// @ts-expect-error hash and signature are aliases: not both
void DropFix.identify('42', { hash: signed.dropfix_hash, signature: token });
// @ts-expect-error signedAt and signed_at are aliases: not both
void DropFix.identify('42', { hash: signed.dropfix_hash, signedAt: 1, signed_at: 2 });
// @ts-expect-error mrr is a number, also when optional
void DropFix.identify('42', { mrr: '49' as string | undefined });
// @ts-expect-error appId is required and never undefined
DropFix.init({ appId: process.env.DROPFIX_APP_ID });
// @ts-expect-error a secret is a string, not a number
signUser('42', { secret: 42 });
