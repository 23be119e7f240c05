'use server';
// A server action: the client component calls it after login to get the logged-in user's
// signatures (the seed form and a signed-claims token), with the secret passed explicitly from
// the environment (`string | undefined`, accepted under exactOptionalPropertyTypes).
import { signClaims, signUser } from 'dropfix/server';
import { sessionUser } from './session';

export interface Signed {
  userId: string;
  hash: string;
  signedAt: number;
  token: string;
}

export async function signIn(): Promise<Signed> {
  const userId = await sessionUser();
  if (userId === null) throw new Error('not logged in');
  const seed = signUser(userId, { secret: process.env.DROPFIX_SECRET_KEY });
  const token = signClaims(userId, { plan: 'pro', mrr: 49 }, { secret: process.env.DROPFIX_SECRET_KEY, ttlSeconds: 120 });
  return { userId, hash: seed.dropfix_hash, signedAt: seed.dropfix_signed_at, token };
}
