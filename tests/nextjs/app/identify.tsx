'use client';
// A client component: after login it asks the server action for the user's signatures and
// identifies in the browser, with the seed form and then with the signed-claims token. The
// effect's cleanup ignores a result that arrives after unmount.
import { useEffect, useState } from 'react';
import { DropFix, DropFixError } from 'dropfix';
import { signIn } from './actions';

interface Profile {
  // Optional fields as auth libraries type them.
  name?: string | undefined;
  email?: string | undefined;
}

export function Identify({ appId, endpoint, profile }: { appId: string; endpoint: string | undefined; profile: Profile }) {
  const [status, setStatus] = useState('pending');
  useEffect(() => {
    let cancelled = false;
    DropFix.init({ appId, endpoint, debug: true });
    const traits = { name: profile.name, email: profile.email, plan: 'pro', mrr: 49 };
    (async () => {
      const signed = await signIn();
      const seed = await DropFix.identify(signed.userId, { ...traits, hash: signed.hash, signedAt: signed.signedAt });
      const claims = await DropFix.identify(signed.userId, { ...traits, signature: signed.token });
      return `done ${seed.userId} ${seed.verified}:${seed.method} ${claims.verified}:${claims.method}`;
    })().then(
      (s) => !cancelled && setStatus(s),
      (e: unknown) => !cancelled && setStatus(`error ${e instanceof DropFixError ? `${e.code}: ${e.message}` : String(e)}`),
    );
    return () => {
      cancelled = true;
    };
  }, [appId, endpoint, profile.name, profile.email]);
  return <p id="status">{status}</p>;
}
