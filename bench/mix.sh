# Sourced by bench/load.sh and bench/profile.sh: `mix APP SECRET` prints the wrk Lua script of
# the load mix (a quarter each of valid seed signatures, unsigned calls, wrong signatures and
# expired ones, over 1000 users).
# Signatures are made when it runs, so they stay fresh for the run.
mix() { # APP SECRET
  node - "$1" "$2" <<'JS'
const { createHmac } = require('node:crypto');
const [app, secret] = process.argv.slice(2);
const now = Math.floor(Date.now() / 1000);
const bodies = [];
for (let i = 0; i < 1000; i++) {
  const id = `user-${i}`;
  const sig = createHmac('sha256', secret).update(id).digest('hex');
  const traits = { plan: 'pro', mrr: 49, email: `u${i}@example.com` };
  bodies.push({ app_id: app, user_id: id, traits, hash: sig, signedAt: now });
  bodies.push({ app_id: app, user_id: `anon-${i}`, traits });
  bodies.push({ app_id: app, user_id: id, traits, hash: sig.replace(/^./, (c) => (c === 'a' ? 'b' : 'a')), signedAt: now });
  bodies.push({ app_id: app, user_id: id, traits, hash: sig, signedAt: now - 3600 });
}
console.log('local bodies = {');
for (const b of bodies) console.log(`  [==[${JSON.stringify(b)}]==],`);
console.log(`}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i + 1
  return wrk.format(nil, "/v1/identify", nil, bodies[(i % #bodies) + 1])
end`);
JS
}
