# Sourced by the load benchmarks and tests/reliability/soak.sh: `mix APP SECRET [IDS] [VALID
# UNSIGNED WRONG EXPIRED]` prints the wrk Lua script of a load mix over IDS distinct user ids
# (default 1000), weighted per kind (default a quarter each): valid seed signatures (200),
# unsigned calls (202), wrong signatures (401) and expired ones (401). Ids are `user-<n>` with n
# spread over ID_SPACE (default IDS), so a mix can address a sample of a large stored population
# (ID_OFFSET, default 0, shifts the sample: a warm-up mix over other users of the same
# population). The requests cycle through the bodies in a fixed interleaved order, so every window
# of the run has the same mix. Signatures are made when it runs, so they stay fresh for the run.
mix() { # APP SECRET [IDS] [VALID UNSIGNED WRONG EXPIRED]
  node - "$1" "$2" "${3:-1000}" "${4:-1}" "${5:-1}" "${6:-1}" "${7:-1}" "${ID_SPACE:-${3:-1000}}" "${ID_OFFSET:-0}" <<'JS'
const { createHmac } = require('node:crypto');
const [app, secret, idsArg, ...rest] = process.argv.slice(2);
const [valid, unsigned, wrong, expired, space, offset] = rest.map(Number);
const ids = Number(idsArg);
const now = Math.floor(Date.now() / 1000);
const kinds = [...Array(valid).fill('valid'), ...Array(unsigned).fill('unsigned'),
               ...Array(wrong).fill('wrong'), ...Array(expired).fill('expired')];
const step = Math.max(1, Math.floor(space / ids));
const bodies = [];
for (let i = 0; i < ids; i++) {
  const n = i * step + offset;
  const id = `user-${n}`;
  const sig = createHmac('sha256', secret).update(id).digest('hex');
  const traits = { plan: 'pro', mrr: 49, email: `u${i}@example.com` };
  const kind = kinds[i % kinds.length];
  if (kind === 'valid') bodies.push({ app_id: app, user_id: id, traits, hash: sig, signedAt: now });
  else if (kind === 'unsigned') bodies.push({ app_id: app, user_id: `anon-${n}`, traits });
  else if (kind === 'wrong') bodies.push({ app_id: app, user_id: id, traits, hash: sig.replace(/^./, (c) => (c === 'a' ? 'b' : 'a')), signedAt: now });
  else bodies.push({ app_id: app, user_id: id, traits, hash: sig, signedAt: now - 3600 });
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
