// A route handler (Node.js runtime): signs the logged-in user with the secret from
// DROPFIX_SECRET_KEY, the default of signUser and signClaims.
import { signClaims, signUser } from 'dropfix/server';
import { notLoggedIn, sessionUser } from '../../session';

export async function GET(): Promise<Response> {
  const userId = await sessionUser();
  if (userId === null) return notLoggedIn();
  const { dropfix_hash, dropfix_signed_at } = signUser(userId);
  const token = signClaims(userId, { plan: 'pro', mrr: 49 });
  return Response.json({ userId, hash: dropfix_hash, signedAt: dropfix_signed_at, token });
}
