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
  signature_required: "The workspace is in strict mode: unsigned calls are refused. Sign every user on the backend, or switch strict mode on the console's Security page.",
  claims_mismatch: "What the browser sent (user id, plan or MRR) differs from what Acme's backend signed in the token: tampering caught, nothing stored.",
  signed_claims_required: "The workspace requires signed claims (a JWT), not the plain user-id hash (the switch is on the console's Security page).",
};

function show(state, text, note = '') {
  const el = $('result');
  el.className = state;
  el.dataset.state = state;
  el.textContent = text;
  $('note').textContent = note;
  // Messages that send the developer to the console's Security page link to it: the console
  // served by the verifier.
  if ((text + note).includes("console's Security page")) {
    const a = document.createElement('a');
    a.href = `${demo.endpoint.replace(/\/+$/, '')}/console`;
    a.textContent = "Open the console's Security page";
    a.id = 'settings-link';
    $('note').append(' ', a);
  }
}

/** Shows and returns what DropFix stored for the logged-in user (null: nothing, or unknown). */
async function showStored() {
  if (!demo.canShowStored) return null;
  // The demo's backend answers for the session's user only; there is no way to ask for another.
  const r = await fetch('/api/stored');
  const record = r.ok ? await r.json() : null;
  $('stored').textContent = r.status === 404 ? `nothing stored for user ${demo.user.id}` : JSON.stringify(record ?? (await r.text()), null, 2);
  return record;
}

/**
 * What a 202 (accepted, not verified) did to the record. A user verified earlier stays verified:
 * DropFix keeps the trusted values and puts what this unsigned call claimed aside.
 */
function unverifiedText(userId, record) {
  if (record?.verified) {
    return [
      `⚠ 202 accepted as unverified: this call had no signature, so DropFix did not trust it. User ${userId} stays verified (${record.method}).`,
      'The verified record and its trusted plan and MRR were kept; the unsigned values were stored aside in unverified_claims.',
    ];
  }
  if (record) return [`⚠ 202 accepted but NOT verified: user ${userId} is stored as unverified (no signature).`, ''];
  return [
    `⚠ 202 accepted but NOT verified (no signature) for user ${userId}.`,
    'If this user was verified before, DropFix keeps that record and its trusted values and stores these claims aside as unverified_claims; otherwise the user is stored as unverified.',
  ];
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
      // The record is only ours to read when the call was for the logged-in user.
      const record = r.userId === demo.user.id ? await showStored() : null;
      show('unverified', ...unverifiedText(r.userId, record));
      return;
    }
  } catch (e) {
    const state = e.status === 401 ? 'rejected' : 'error';
    show(state, `✖ ${e.status || 'not sent'} ${e.code}: ${e.message}`, FIXES[e.code] ?? '');
  }
  await showStored();
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
