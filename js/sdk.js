// The browser SDK: DropFix.init / identify / reset, shared by the ESM build (index.js) and the
// script-tag build (global.js). Validation and the wire body come from the wasm core
// (`buildIdentify`), so a bad call fails here with the message the verifier would give; this file
// only does transport, retries and debug explanations. It never signs and never takes a secret.

const MAX_AGE_SECS = 300;
const MAX_FUTURE_SECS = 60;
const MILLISECONDS_THRESHOLD = 100_000_000_000;
// A 429 asking for a longer wait than this is not retried (the call rejects with the 429): the
// calls queued behind it should not hang for minutes, and retrying sooner would ignore the server.
const MAX_RETRY_AFTER_MS = 60_000;

/** An identify call that did not succeed: `status` is 0 when nothing reached the verifier. */
export class DropFixError extends Error {
  constructor({ status = 0, code, message, field }) {
    super(message);
    this.name = 'DropFixError';
    this.status = status;
    this.code = code;
    if (field) this.field = field;
  }
}

const FIXES = {
  signature_mismatch:
    'Common causes: the secret has a trailing newline or was hex/base64-decoded before use; the ' +
    'backend signed the email or a reformatted number instead of the exact user id; the app id ' +
    'belongs to another workspace. `dropfix-server debug-signature` names the mistake.',
  signature_expired:
    'Sign on every login or page load and pass the fresh dropfix_hash/dropfix_signed_at; do not ' +
    'cache a signature in localStorage or a CDN-cached page.',
  signed_at_in_future: "The backend's clock is ahead: sync it with NTP.",
  signed_at_not_seconds: 'Use Unix seconds: Math.floor(Date.now() / 1000), not Date.now().',
  signed_at_missing: 'Pass signedAt (dropfix_signed_at from your backend) next to the signature.',
  signature_required:
    'This workspace is in strict mode: every identify() needs a signature from your backend.',
  claims_mismatch:
    'The traits passed to identify() differ from the signed token (plan, mrr, email, name or ' +
    'the user id): pass the same values your backend signed.',
  origin_not_allowed: "Add this page's origin to the workspace's allowed origins.",
  unknown_app: 'Check the appId passed to DropFix.init.',
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Exponential backoff with jitter: 250 ms, 500 ms, 1 s ... capped at 8 s, times 0.5..1. */
function backoff(attempt) {
  return Math.min(8000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
}

/** Retry-After as milliseconds (delta-seconds or an HTTP date), or NaN when absent or unreadable. */
function retryAfterMs(header) {
  if (header === null || header.trim() === '') return NaN;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? NaN : Math.max(0, date - Date.now());
}

function looksLikeSecretOption(opts) {
  return ['secret', 'secretKey', 'secret_key', 'apiSecret'].some((k) => k in opts);
}

/**
 * Builds the SDK object. `loadWasm(source)` resolves to the wasm module's exports (with
 * `buildIdentify`); `defaultEndpoint()` gives the verifier URL when init() names none.
 */
export function createDropFix({ loadWasm, defaultEndpoint }) {
  let config = null;
  let wasm = null;
  let session = 0;
  // Identify calls are sent one after another, in call order, so a later call (a plan change)
  // never lands before an earlier one.
  let inOrder = Promise.resolve();
  // signature -> user id, for the "signature reused for another user" debug hint, and (debug mode
  // only) the signatures sent before the last reset(), for the "cached across sessions" hint.
  let seenSignatures = new Map();
  let earlierSessions = new Set();

  const log = (...args) => {
    if (config?.debug) console.warn('[DropFix]', ...args);
  };

  function explainBeforeSend(body) {
    if (!config.debug) return;
    const now = Math.floor(Date.now() / 1000);
    if (body.signature === undefined) {
      log(
        'identify() without a signature: stored as unverified, and rejected once the workspace ' +
          'is in strict mode. Sign the user on your server (Step 1).',
      );
      return;
    }
    const at = body.signed_at;
    if (at !== undefined && at >= MILLISECONDS_THRESHOLD) {
      log(`signedAt ${at} is in milliseconds; use Unix seconds: Math.floor(Date.now() / 1000).`);
    } else if (at !== undefined && now - at > MAX_AGE_SECS) {
      log(
        `signedAt is ${now - at} s old by this browser's clock; signatures expire after ` +
          `${MAX_AGE_SECS} s. If the page reused a cached signature, sign on each load. If this ` +
          "browser's clock is wrong, the verifier's clock decides.",
      );
    } else if (at !== undefined && at - now > MAX_FUTURE_SECS) {
      log(
        `signedAt is ${at - now} s in the future by this browser's clock (server clock ahead, ` +
          'or this clock behind).',
      );
    }
    if (earlierSessions.has(body.signature)) {
      log(
        'this signature was already sent before DropFix.reset() (an earlier session): it looks ' +
          'cached (localStorage, a cached page). Sign on your server at each login and pass the ' +
          'fresh dropfix_hash/dropfix_signed_at.',
      );
    }
    const previous = seenSignatures.get(body.signature);
    if (previous !== undefined && previous !== body.user_id) {
      log(
        `the same signature was sent for user ${JSON.stringify(previous)} and ` +
          `${JSON.stringify(body.user_id)}: a signature belongs to one user id; sign each user ` +
          'on your server and call DropFix.reset() on logout.',
      );
    }
    seenSignatures.set(body.signature, body.user_id);
  }

  async function send(body, mySession) {
    const url = `${config.endpoint}/v1/identify?app_id=${encodeURIComponent(config.appId)}`;
    const payload = JSON.stringify(body);
    for (let attempt = 0; ; attempt++) {
      if (mySession !== session) {
        throw new DropFixError({ code: 'reset', message: 'DropFix.reset() was called; call dropped' });
      }
      let res;
      try {
        res = await config.fetch(url, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: payload,
          keepalive: true,
          credentials: 'omit',
          mode: 'cors',
        });
      } catch (err) {
        if (attempt >= config.maxRetries) {
          throw new DropFixError({
            code: 'network_error',
            message: `could not reach the DropFix verifier at ${config.endpoint}: ${err?.message ?? err}`,
          });
        }
        await sleep(backoff(attempt));
        continue;
      }
      if (res.ok) {
        // A 2xx is stored whatever its body says; a proxy that mangles the body must not turn a
        // stored call into an error.
        const j = await res.json().catch(() => ({}));
        return { verified: j.verified === true, userId: j.user_id ?? body.user_id, method: j.method ?? null };
      }
      // 429: wait at least what Retry-After says (plus jitter, so throttled tabs do not return
      // in lockstep); a wait beyond MAX_RETRY_AFTER_MS is not attempted.
      const asked = res.status === 429 ? retryAfterMs(res.headers.get('Retry-After')) : NaN;
      const retryable = res.status >= 500 || (res.status === 429 && !(asked > MAX_RETRY_AFTER_MS));
      if (retryable && attempt < config.maxRetries) {
        await sleep(Number.isNaN(asked) ? backoff(attempt) : asked + Math.random() * 250);
        continue;
      }
      let error = {};
      try {
        error = (await res.json())?.error ?? {};
      } catch {
        // Not JSON (a proxy's error page): fall back to the status.
      }
      const e = new DropFixError({
        status: res.status,
        code: error.code ?? `http_${res.status}`,
        message: error.message ?? `the verifier answered ${res.status}`,
        field: error.field,
      });
      if (config.debug) log(`${e.status} ${e.code}: ${e.message}`, FIXES[e.code] ?? '');
      throw e;
    }
  }

  const DropFix = {
    /** `{ appId, endpoint?, debug?, maxRetries?, wasm?, fetch? }` */
    init(opts) {
      if (!opts || typeof opts !== 'object' || typeof opts.appId !== 'string' || !opts.appId) {
        throw new DropFixError({ code: 'invalid_config', field: 'appId', message: 'DropFix.init needs { appId: "app_..." }' });
      }
      if (looksLikeSecretOption(opts)) {
        throw new DropFixError({
          code: 'secret_not_allowed',
          message:
            'never put the DropFix secret key in browser code: sign users on your server and ' +
            'pass only the signature to identify()',
        });
      }
      // Without `endpoint` the verifier is assumed at this page's origin (a customer that proxies
      // /v1/identify on its own domain); the verifier does not serve the SDK, so the script's own
      // origin would be no better a guess. README and index.d.ts say so.
      config = {
        appId: opts.appId,
        endpoint: String(opts.endpoint ?? defaultEndpoint()).replace(/\/+$/, ''),
        debug: Boolean(opts.debug),
        maxRetries: Number.isInteger(opts.maxRetries) ? opts.maxRetries : 3,
        fetch: opts.fetch ?? globalThis.fetch.bind(globalThis),
      };
      wasm ??= loadWasm(opts.wasm);
    },

    /** Resolves `{ verified, userId, method }` on 2xx; rejects with a DropFixError otherwise. */
    async identify(userId, traits) {
      if (!config) {
        throw new DropFixError({ code: 'not_initialized', message: 'call DropFix.init({ appId }) before identify()' });
      }
      const mySession = session;
      const core = await wasm;
      let body;
      try {
        body = core.buildIdentify(config.appId, userId, traits ?? null);
      } catch (e) {
        const err = new DropFixError({ code: e?.code ?? 'invalid_call', field: e?.field, message: e?.message ?? String(e) });
        log(`not sent: ${err.message}`);
        throw err;
      }
      explainBeforeSend(body);
      const result = inOrder.then(() => send(body, mySession));
      inOrder = result.catch(() => {});
      return result;
    },

    /** On logout or user switch: drops pending retries and forgets what was sent. */
    reset() {
      session++;
      if (config?.debug) for (const sig of seenSignatures.keys()) earlierSessions.add(sig);
      seenSignatures = new Map();
    },
  };
  return DropFix;
}
