// An edge route: the same signing on the edge runtime (no fs, no node: modules, no wasm
// compilation at run time). The seed form reads DROPFIX_SECRET_KEY itself; the token is given the
// secret explicitly.
import { signClaims, signUser } from 'dropfix/server';
import { notLoggedIn, sessionUser } from '../../session';

export const runtime = 'edge';

export async function GET(): Promise<Response> {
  const userId = await sessionUser();
  if (userId === null) return notLoggedIn();
  const { dropfix_hash, dropfix_signed_at } = signUser(userId);
  const token = signClaims(userId, { plan: 'pro', mrr: 49 }, { secret: process.env.DROPFIX_SECRET_KEY });
  return Response.json({ userId, hash: dropfix_hash, signedAt: dropfix_signed_at, token });
}
