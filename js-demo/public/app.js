// The demo page's behaviour. Step 2 of "Secure your identify() call": DropFix.init and
// DropFix.identify with the values Acme's backend signed (window.DEMO). The controls send
// variations a user could make in DevTools and show what the verifier answers and stores.
const demo = window.DEMO;
const $ = (id) => document.getElementById(id);

// Called through the loader stub: if the SDK has not arrived yet, the calls are queued.
DropFix.init({ appId: demo.appId, endpoint: demo.endpoint, debug: true });

$('plan').value = demo.user.plan;
$('mrr').value = demo.user.mrr;

const FIXES = {
  signature_mismatch: "The signature was made for a different user id (or with another workspace's secret). A user cannot sign as someone else without Acme's secret key.",
  signature_expired: 'Signatures expire after 5 minutes: Acme must sign on each login or page load, never cache one.',
  signed_at_in_future: "The backend's clock is ahead of DropFix's: sync it with NTP.",
  signed_at_not_seconds: 'signedAt must be Unix seconds, not milliseconds.',
  signature_required: 'The workspace is in strict mode: unsigned calls are refused. Sign every user on the backend.',
  claims_mismatch: "What the browser sent (user id, plan or MRR) differs from what Acme's backend signed in the token: tampering caught, nothing stored.",
  signed_claims_required: 'The workspace requires signed claims (a JWT), not the plain user-id hash.',
};

function show(state, text, note = '') {
  const el = $('result');
  el.className = state;
  el.dataset.state = state;
  el.textContent = text;
  $('note').textContent = note;
}

async function showStored(userId) {
  if (!demo.canShowStored) return;
  const r = await fetch(`/api/stored?user=${encodeURIComponent(userId)}`);
  $('stored').textContent = r.status === 404 ? `nothing stored for user ${userId}` : JSON.stringify(await r.json(), null, 2);
}

async function freshSignatures(stale = false) {
  const r = await fetch(`/api/sign${stale ? '?stale=1' : ''}`);
  return r.json();
}

/** One identify call; `how` says which signature to attach. */
async function identify({ userId = demo.user.id, how = 'seed', signed = demo, tampered = false } = {}) {
  const useClaims = $('claims').checked;
  const traits = {
    name: demo.user.name,
    email: demo.user.email,
    plan: $('plan').value,
    mrr: Number($('mrr').value),
    signup_date: demo.user.signup_date,
  };
  if (how === 'seed' && useClaims) {
    traits.signature = signed.token;
  } else if (how === 'seed') {
    traits.hash = signed.seed.dropfix_hash;
    traits.signedAt = signed.seed.dropfix_signed_at;
  }
  const shown = { ...traits };
  for (const k of ['hash', 'signature']) if (shown[k]) shown[k] = `${shown[k].slice(0, 16)}…`;
  $('call').textContent = `DropFix.identify(${JSON.stringify(userId)}, ${JSON.stringify(shown, null, 2)})`;
  show('pending', 'Sending…');
  try {
    const r = await DropFix.identify(userId, traits);
    if (r.verified) {
      const edited = traits.plan !== demo.user.plan || traits.mrr !== demo.user.mrr;
      const note =
        edited && r.method === 'seed_hmac'
          ? 'Honest note: this plan/MRR was edited in the browser, yet DropFix says verified. The seed form signs only the user id, so it cannot catch a tampered plan or MRR. Tick "use signed claims" to put them under the signature.'
          : '';
      show('verified', `✔ 200 verified (${r.method}) for user ${r.userId}`, note);
    } else {
      show('unverified', `⚠ 202 accepted but NOT verified: user ${r.userId} is stored as unverified (no signature)`);
    }
  } catch (e) {
    const state = e.status === 401 ? 'rejected' : 'error';
    show(state, `✖ ${e.status || 'not sent'} ${e.code}: ${e.message}`, FIXES[e.code] ?? '');
  }
  await showStored(userId);
}

$('send').onclick = async () => identify({ signed: { ...demo, ...(await freshSignatures()) } });
// My own fresh signature, attached to someone else's user id.
$('other').onclick = async () => identify({ userId: demo.otherUserId, signed: { ...demo, ...(await freshSignatures()) } });
$('unsigned').onclick = () => identify({ how: 'none' });
$('stale').onclick = async () => identify({ signed: { ...demo, ...(await freshSignatures(true)) } });
$('logout').onsubmit = () => DropFix.reset();

if (demo.autoIdentify) identify();
else show('idle', 'Not sent yet: use a button below.');
// Which calls the loader stub is holding because the SDK has not arrived yet (the e2e test reads it).
window.queuedBeforeSdk = Array.isArray(DropFix._q) ? DropFix._q.map(([method]) => method) : [];
