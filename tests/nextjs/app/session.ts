// Who is logged in. A real app asks its auth library (a verified session); this example reads a
// plain `session_user` cookie that the test sets. What matters is the rule it stands for: sign
// the user of the server-side session, never a user id the browser sends.
import { cookies } from 'next/headers';

export async function sessionUser(): Promise<string | null> {
  return (await cookies()).get('session_user')?.value || null;
}

export const notLoggedIn = (): Response => Response.json({ error: 'not logged in' }, { status: 401 });
