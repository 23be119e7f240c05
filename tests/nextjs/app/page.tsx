// The page: a server component that renders the client component with the public settings read
// at request time (the app id is public; the secret stays on the server).
import { connection } from 'next/server';
import { Identify } from './identify';

export default async function Page() {
  await connection();
  return (
    <main>
      <h1>DropFix in Next.js</h1>
      <Identify appId={process.env.DROPFIX_APP_ID ?? ''} endpoint={process.env.DROPFIX_ENDPOINT} profile={{ name: undefined, email: 'ada@example.com' }} />
    </main>
  );
}
