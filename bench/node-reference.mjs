// The peer in the load benchmark: what a customer might write instead of DropFix, in Node.
// The shared server of node-common.mjs with users kept in an in-memory Map (no durability at all;
// a verified user's values are never overwritten by an unverified call).
// Usage: node bench/node-reference.mjs APP_ID SECRET  -> prints "listening on http://HOST:PORT"
import { serve } from './node-common.mjs';

const [appId, secret] = process.argv.slice(2);
const users = new Map();
serve(appId, secret, (id, verified, traits) => {
  const previous = users.get(id);
  if (!(previous?.verified && !verified)) users.set(id, { ...traits, verified });
});
