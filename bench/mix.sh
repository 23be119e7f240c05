# Sourced by the load benchmarks and tests/reliability/soak.sh: `mix APP SECRET [IDS] [VALID
# UNSIGNED WRONG EXPIRED]` prints the wrk Lua script of a load mix over IDS distinct user ids
# (default 1000), weighted per kind (default a quarter each): valid seed signatures (200),
# unsigned calls (202), wrong signatures (401) and expired ones (401). Ids are `user-<n>` with n
# spread over ID_SPACE (default IDS), so a mix can address a sample of a large stored population
# (ID_OFFSET, default 0, shifts the sample: a warm-up mix over other users of the same
# population). The requests cycle through the bodies in a fixed interleaved order, so every window
# of the run has the same mix. Signatures are made when it runs, so they stay fresh for the run.
# With ZIPF=s (say 1.1), the ids are not spread evenly: each body's user is drawn from a Zipf
# distribution of exponent s over the ID_SPACE users (rank r with probability ~ 1/r^s, by the
# inverse of the continuous power law; ranks scattered over the id space by a fixed
# permutation, so the hot users are not neighbours in the key order), as real identify traffic
# is: a few users call often, most rarely. Seeded, so every run draws the same ids.
mix() { # APP SECRET [IDS] [VALID UNSIGNED WRONG EXPIRED]
  node - "$1" "$2" "${3:-1000}" "${4:-1}" "${5:-1}" "${6:-1}" "${7:-1}" "${ID_SPACE:-${3:-1000}}" "${ID_OFFSET:-0}" "${ZIPF:-0}" <<'JS'
const { createHmac } = require('node:crypto');
const [app, secret, idsArg, ...rest] = process.argv.slice(2);
const [valid, unsigned, wrong, expired, space, offset, zipf] = rest.map(Number);
// A small seeded generator (mulberry32): the same draw on every run.
let seed = 0x5eed + offset;
const random = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
// Rank 1..space with P(r) ~ r^-s (inverse CDF of the continuous power law on [1, space + 1)).
const zipfRank = () => {
  const a = 1 - zipf;
  const r = Math.floor(Math.pow((Math.pow(space + 1, a) - 1) * random() + 1, 1 / a));
  return Math.min(Math.max(r, 1), space);
};
const ids = Number(idsArg);
const now = Math.floor(Date.now() / 1000);
const kinds = [...Array(valid).fill('valid'), ...Array(unsigned).fill('unsigned'),
               ...Array(wrong).fill('wrong'), ...Array(expired).fill('expired')];
const step = Math.max(1, Math.floor(space / ids));
const bodies = [];
for (let i = 0; i < ids; i++) {
  // Uniform: evenly spread; Zipf: a drawn rank, scattered by a multiplicative permutation.
  const n = zipf > 0 ? Number((BigInt(zipfRank() - 1) * 2654435761n) % BigInt(space)) : i * step + offset;
  const id = `user-${n}`;
  const sig = createHmac('sha256', secret).update(id).digest('hex');
  const traits = { plan: 'pro', mrr: 49, email: `u${n}@example.com` };
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
