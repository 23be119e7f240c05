// Run by tests/js/edge.test.mjs under edge conditions (see hooks.mjs): signs the cases read from
// stdin with `dropfix/server` and prints the results as JSON, errors as `{ error }`.
import { readFileSync } from 'node:fs';
import { claimsKey, signClaims, signUser } from 'dropfix/server';

const cases = JSON.parse(readFileSync(0, 'utf8'));
const run = (f) => {
  try {
    return f();
  } catch (e) {
    return { error: { message: e.message, code: e.code, field: e.field } };
  }
};
const out = cases.map((c) => {
  switch (c.fn) {
    case 'signUser':
      return run(() => signUser(c.userId, c.options));
    case 'claimsKey':
      return run(() => claimsKey(c.secret));
    case 'signClaims':
      return run(() => signClaims(c.userId, c.claims, c.options));
    default:
      throw new Error(`unknown fn ${c.fn}`);
  }
});
// Which core `#core` resolved to under this process's conditions.
process.stdout.write(JSON.stringify({ core: import.meta.resolve('#core'), out }));
