// The browser SDK: DropFix.init / identify / reset, shared by the ESM build (index.js) and the
// script-tag build (global.js). Validation and the wire body come from the wasm core
// (`buildIdentify`), so a bad call fails here with the message the verifier would give; this file
// only does loading, transport, retries and debug explanations. It never signs and never takes a
// secret.

const MAX_AGE_SECS = 300;
const MAX_FUTURE_SECS = 60;
const MILLISECONDS_THRESHOLD = 100_000_000_000;
// A 429 asking for a longer wait than this is not retried (the call rejects with the 429): the
// calls queued behind it should not hang for minutes, and retrying sooner would ignore the server.
const MAX_RETRY_AFTER_MS = 60_000;
// One request (an identify POST or the wasm download) that has not answered in this time is
// aborted: a hung connection must not hold the calls queued behind it forever.
const DEFAULT_TIMEOUT_MS = 10_000;
// A failed wasm load is tried again by a later call, no sooner than this after the last failure,
// doubling up to a cap: a page does not hammer a CDN that is down, yet recovers without a reload.
const LOAD_RETRY_MS = 1000;
const MAX_LOAD_RETRY_MS = 30_000;
const CSP_FIX =
  "the page's Content-Security-Policy blocks WebAssembly: add 'wasm-unsafe-eval' to script-src " +
  "(script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' plus the verifier's origin)";
// How long a failed request waits for the browser's report that the page's CSP blocked it (the
// securitypolicyviolation event may come just after the fetch has failed). Only a failed request
// waits, and not at all once its origin has been seen blocked.
const CSP_EVENT_WAIT_MS = 250;

const originOf = (url) => {
  try {
    return new URL(url, globalThis.location?.href).origin;
  } catch {
    return null;
  }
};

/** An identify call that did not succeed: `status` is 0 when no answer could be read. */
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
    'Common causes: a secret with a trailing newline or hex/base64-decoded; the email or a ' +
    'reformatted number signed instead of the exact user id; another workspace\'s app id. ' +
    '`dropfix-server debug-signature` names the mistake.',
  signature_expired:
    'Sign on every login or page load; do not cache a signature (localStorage, a cached page).',
  signed_at_in_future: "The backend's clock is ahead: sync it with NTP.",
  signed_at_not_seconds: 'Use Unix seconds: Math.floor(Date.now() / 1000), not Date.now().',
  signed_at_missing: 'Pass signedAt (dropfix_signed_at from your backend) next to the signature.',
  signature_required:
    'This workspace is in strict mode: every identify() needs a signature from your backend.',
  claims_mismatch:
    'The traits passed to identify() differ from the signed token (plan, mrr, email, name or ' +
    'the user id): pass the same values your backend signed.',
  unknown_app:
    'The appId passed to DropFix.init names no workspace on this verifier: copy it from the ' +
    "console's Security page or `dropfix-server workspace list` (and check the endpoint).",
};
// A token whose MAC fails is answered with the seed form's mismatch message; this one is about
// tokens.
const TOKEN_MISMATCH =
  'the signed-claims token does not verify: it was changed after signing or signed with another ' +
  'key. Sign it on your server (HS256) with the claims key (DROPFIX_CLAIMS_KEY, dfck_...) and ' +
  'pass it unchanged.';
const isToken = (s) => /^[\w-]+\.[\w-]+\.[\w-]+$/.test(s);

const fail = (code, message, status) => new DropFixError({ code, message, status });
const resetError = () => fail('reset', 'DropFix.reset() was called; call dropped');

/** Resolves after `ms`, or at once when `signal` aborts (the caller then checks the signal). */
const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done);
  });

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
 * Builds the SDK object. `loadWasm(module)` instantiates the compiled wasm and returns its
 * exports (with `buildIdentify`); `defaultWasm()` and `defaultEndpoint()` give the wasm URL and
 * the verifier URL when init() names none.
 */
export function createDropFix({ loadWasm, defaultWasm, defaultEndpoint }) {
  let config = null;
  // The wasm core's load (kept once it succeeded), and the failures since the last success.
  let loading = null;
  let loadFailures = 0;
  let nextLoadAt = 0;
  let loadError;
  // Everything of the current user: reset() aborts its controller (requests in flight, retry
  // waits) and starts a new session with its own queue, so the next user never waits behind a
  // call of the previous one. Within a session calls are sent one after another, in call order,
  // so a later call (a plan change) never lands before an earlier one.
  const newSession = () => {
    const ctl = new AbortController();
    // Rejects when this session ends, for racing the waits of its calls.
    const over = new Promise((_, reject) => ctl.signal.addEventListener('abort', () => reject(resetError())));
    over.catch(() => {});
    return { ctl, over, queue: Promise.resolve() };
  };
  let session = newSession();
  // signature -> user id, for the "signature reused for another user" debug hint, and (debug mode
  // only) the signature and signedAt pairs sent before the last reset(), for the "cached" hint.
  let seenSignatures = new Map();
  let earlierSessions = new Set();
  // The verifier's debug hints already shown (each once per page).
  const hintsSaid = new Set();

  const log = (...args) => {
    if (config?.debug) console.warn('[DropFix]', ...args);
  };

  // The connections this page's Content-Security-Policy refused, as the browser reports them
  // (blocked URL and directive). A fetch the CSP blocks fails exactly like one that found no
  // server; this report is what tells them apart, so a forgotten connect-src does not read as a
  // verifier outage (and is not retried: the policy will refuse again).
  let violations = [];
  let violationWaiters = [];
  let watchingCsp = false;
  function watchCsp() {
    const target = globalThis.document ?? globalThis;
    if (watchingCsp || typeof target.addEventListener !== 'function') return;
    watchingCsp = true;
    target.addEventListener('securitypolicyviolation', (e) => {
      // A report-only policy blocks nothing.
      if (e.disposition === 'report') return;
      const v = { origin: originOf(e.blockedURI), directive: e.effectiveDirective || e.violatedDirective };
      violations = [...violations.slice(-9), v];
      for (const waiter of violationWaiters) waiter(v);
    });
  }

  /** The CSP report of a connection to `url`'s origin, waiting briefly for it after a failure. */
  function cspViolation(url) {
    const origin = originOf(url);
    const match = (v) => v.origin === origin && /^(connect-src|default-src)/.test(v.directive);
    const seen = violations.find(match);
    if (seen || !watchingCsp) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const done = (v) => {
        clearTimeout(timer);
        violationWaiters = violationWaiters.filter((w) => w !== waiter);
        resolve(v);
      };
      const waiter = (v) => match(v) && done(v);
      const timer = setTimeout(done, CSP_EVENT_WAIT_MS);
      violationWaiters.push(waiter);
    });
  }

  /** `csp_blocked` naming the directive and the line that allows the blocked origin. */
  const cspConnectError = (what, v) =>
    fail(
      'csp_blocked',
      `the page's Content-Security-Policy blocks ${what} (${v.directive}): add ${v.origin} to ` +
        `connect-src, e.g. \`connect-src 'self' ${v.origin}\``,
    );

  /**
   * One request, aborted after the timeout or when `signal` (the session) aborts; it settles
   * even if a custom fetch ignores its signal. `read` (the body) runs under the same timeout.
   */
  async function request(fetchFn, url, init, signal, read) {
    const ctl = new AbortController();
    let timedOut = false;
    const abort = () => ctl.abort();
    const timer = setTimeout(() => {
      timedOut = true;
      abort();
    }, config.timeoutMs);
    signal?.addEventListener('abort', abort);
    const aborted = new Promise((_, reject) =>
      ctl.signal.addEventListener('abort', () =>
        reject(
          timedOut
            ? fail('timeout', `no answer from ${url} within ${config.timeoutMs} ms`)
            : resetError(),
        ),
      ),
    );
    aborted.catch(() => {});
    try {
      return await Promise.race([
        (async () => {
          const res = await fetchFn(url, { ...init, signal: ctl.signal });
          return [res, await read(res)];
        })(),
        aborted,
      ]);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
    }
  }

  /** Fetches (under the timeout) and compiles the wasm, then hands the module to `loadWasm`. */
  async function load() {
    let source = config.wasm ?? defaultWasm();
    const isUrl = typeof source === 'string' || source instanceof URL;
    const url = isUrl ? String(source) : 'the wasm passed to init()';
    try {
      if (isUrl) {
        let status;
        // The download and the compilation (streaming when the server sends application/wasm)
        // are both under the timeout.
        [, source] = await request(globalThis.fetch, url, {}, null, (r) => {
          status = r.status;
          if (!r.ok) return null;
          return r.headers.get('Content-Type') === 'application/wasm' ? WebAssembly.compileStreaming(r) : r.arrayBuffer();
        });
        if (!source) throw fail('sdk_load_failed', `could not load the DropFix wasm from ${url}: HTTP ${status}`, status);
      }
      if (source instanceof Response) source = source.arrayBuffer();
      source = await source;
      return loadWasm(source instanceof WebAssembly.Module ? source : await WebAssembly.compile(source));
    } catch (e) {
      if (e instanceof DropFixError) throw e;
      const blocked = isUrl && (await cspViolation(url));
      if (blocked) throw cspConnectError(`the DropFix wasm download from ${url}`, blocked);
      const message = String(e?.message ?? e);
      // Without 'wasm-unsafe-eval' in script-src, compiling throws a CompileError that names
      // the Content Security Policy (Chromium, WebKit: 'unsafe-eval'; Firefox: CSP).
      if (/Content.Security.Policy|unsafe-eval|\bCSP\b/i.test(message)) throw fail('csp_blocked', `${CSP_FIX}. ${message}`);
      throw fail('sdk_load_failed', `could not load the DropFix wasm from ${url}: ${message}`);
    }
  }

  /** The wasm core: loaded once; after a failure a later call tries again, with backoff. */
  function getCore() {
    if (!loading) {
      const wait = nextLoadAt - Date.now();
      // A call does not wait longer for the next try than for a request: it fails at once.
      if (wait > config.timeoutMs) return Promise.reject(loadError);
      loading = (wait > 0 ? sleep(wait) : Promise.resolve())
        .then(load)
        .then(
          (c) => {
            loadFailures = 0;
            return c;
          },
          (e) => {
            loadFailures++;
            nextLoadAt = Date.now() + Math.min(MAX_LOAD_RETRY_MS, LOAD_RETRY_MS * 2 ** (loadFailures - 1));
            loading = null;
            throw (loadError = e);
          },
        );
    }
    return loading;
  }

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
    // The seed form's hash depends only on the user id, so the same user logging in again sends
    // the same hash: only the same hash *with the same signedAt* (or the same token, whose iat is
    // inside it) was really reused from an earlier session.
    const sent = `${body.signature} ${at}`;
    if (earlierSessions.has(sent)) {
      log(
        'this signature and signedAt were already sent before DropFix.reset() (an earlier ' +
          'session): they look cached (localStorage, a cached page). Sign on your server at each ' +
          'login and pass the fresh values.',
      );
    }
    const previous = seenSignatures.get(body.signature);
    if (previous !== undefined && previous[0] !== body.user_id) {
      log(
        `the same signature was sent for user ${JSON.stringify(previous[0])} and ` +
          `${JSON.stringify(body.user_id)}: a signature belongs to one user id; sign each user ` +
          'on your server and call DropFix.reset() on logout.',
      );
    }
    seenSignatures.set(body.signature, [body.user_id, sent]);
  }

  /** Why the verifier call failed: a CORS refusal (not retried) or the network (retried). */
  async function unreachable(url, err, signal) {
    // The browser hides why a CORS request failed. A no-cors request (no preflight, unreadable
    // answer) tells the two cases apart: if it gets an answer, the verifier is up and refused this
    // page's origin (the preflight got 403), and retrying cannot help. (A proxy's error page
    // without CORS headers, or a connection dropped mid-call by a verifier that is up again by
    // the time of the check, reads as a refusal too: the message says "most likely", and these
    // are rarer than the misconfiguration, which otherwise costs four blind tries.)
    const origin = globalThis.location?.origin;
    if (origin) {
      try {
        await request(config.fetch, url, { mode: 'no-cors', credentials: 'omit' }, signal, () => 0);
        const app = config.appId;
        return fail(
          'origin_not_allowed',
          `the verifier at ${config.endpoint} answered but the browser refused the call (CORS): ` +
            `most likely this page's origin ${origin} is not allowed for ${app}. Add it: ` +
            `\`dropfix-server workspace set ${app} --allowed-origin ${origin}\` (repeat ` +
            "--allowed-origin for each origin to keep) or the console's Security page (Allowed origins).",
        );
      } catch {
        if (signal.aborted) return resetError();
      }
    }
    return fail(
      'network_error',
      `could not reach the DropFix verifier at ${config.endpoint}: ${err?.message ?? err}`,
    );
  }

  async function send(body, signal) {
    // In debug mode the verifier is asked to explain (`hints`: a trait stored otherwise than meant).
    const url = `${config.endpoint}/v1/identify?app_id=${encodeURIComponent(config.appId)}${config.debug ? '&explain=1' : ''}`;
    const payload = JSON.stringify(body);
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) throw resetError();
      let res, json;
      try {
        [res, json] = await request(
          config.fetch,
          url,
          {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: payload,
            keepalive: true,
            credentials: 'omit',
            mode: 'cors',
          },
          signal,
          // A 2xx is stored whatever its body says; a proxy that mangles the body (or an error
          // page that is not JSON) must not turn the answer into a different error.
          (r) => r.json().catch(() => ({})),
        );
      } catch (err) {
        if (err instanceof DropFixError) throw err;
        const blocked = await cspViolation(url);
        if (blocked) throw cspConnectError(`calls to the DropFix verifier at ${config.endpoint}`, blocked);
        const e = await unreachable(url, err, signal);
        if (e.code !== 'network_error' || attempt >= config.maxRetries) throw e;
        await sleep(backoff(attempt), signal);
        continue;
      }
      if (res.ok) {
        for (const hint of Array.isArray(json?.hints) ? json.hints : []) {
          const said = `${hint?.field}: ${hint?.message}`;
          if (!hintsSaid.has(said)) log((hintsSaid.add(said), said));
        }
        return { verified: json?.verified === true, userId: json?.user_id ?? body.user_id, method: json?.method ?? null };
      }
      // 429: wait at least what Retry-After says (plus jitter, so throttled tabs do not return
      // in lockstep); a wait beyond MAX_RETRY_AFTER_MS is not attempted.
      const asked = res.status === 429 ? retryAfterMs(res.headers.get('Retry-After')) : NaN;
      const retryable = res.status >= 500 || (res.status === 429 && !(asked > MAX_RETRY_AFTER_MS));
      if (retryable && attempt < config.maxRetries) {
        await sleep(Number.isNaN(asked) ? backoff(attempt) : asked + Math.random() * 250, signal);
        continue;
      }
      const error = json?.error ?? {};
      const token = error.code === 'signature_mismatch' && isToken(body.signature);
      throw new DropFixError({
        status: res.status,
        code: error.code ?? `http_${res.status}`,
        message: token ? TOKEN_MISMATCH : (error.message ?? `the verifier answered ${res.status}`),
        field: error.field,
      });
    }
  }

  const DropFix = {
    /** `{ appId, endpoint?, debug?, maxRetries?, timeoutMs?, wasm?, fetch? }` */
    init(opts) {
      // A refused init() throws (README "Errors") and leaves no earlier configuration behind:
      // identify() then rejects with not_initialized rather than call with the old app id.
      config = undefined;
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
        // setTimeout fires at once past 2^31 - 1 ms.
        timeoutMs: opts.timeoutMs > 0 ? Math.min(opts.timeoutMs, 2 ** 31 - 1) : DEFAULT_TIMEOUT_MS,
        wasm: opts.wasm,
        fetch: opts.fetch,
      };
      // Outside a browser (server-side rendering) there is no page to identify: init() is
      // harmless and identify() rejects with `not_in_browser`, unless the caller brings its own
      // fetch (tests, other runtimes).
      if (!config.fetch && !globalThis.location) return;
      config.fetch ??= globalThis.fetch.bind(globalThis);
      watchCsp();
      // init() again after a failed load tries at once; the load starts now so that the first
      // identify() does not wait for it.
      nextLoadAt = 0;
      getCore().catch(() => {});
    },

    /** Resolves `{ verified, userId, method }` on 2xx; rejects with a DropFixError otherwise. */
    async identify(userId, traits) {
      try {
        if (!config) {
          throw fail('not_initialized', 'call DropFix.init({ appId }) before identify()');
        }
        if (!config.fetch) {
          throw fail(
            'not_in_browser',
            'identify() runs in the browser, not in server-side code: call it after login in the ' +
              'page (e.g. in a useEffect)',
          );
        }
        const mine = session;
        const { buildIdentify } = await Promise.race([getCore(), mine.over]);
        let body;
        try {
          body = buildIdentify(config.appId, userId, traits ?? null);
        } catch (e) {
          throw new DropFixError({ code: e?.code ?? 'invalid_call', field: e?.field, message: e?.message ?? String(e) });
        }
        explainBeforeSend(body);
        const result = mine.queue.then(() => send(body, mine.ctl.signal));
        mine.queue = result.catch(() => {});
        return await result;
      } catch (e) {
        if (e.code !== 'reset') log(`${e.status ? `${e.status} ` : ''}${e.code}: ${e.message}`, (e.message !== TOKEN_MISMATCH && FIXES[e.code]) || '');
        throw e;
      }
    },

    /** On logout or user switch: aborts the calls in flight and queued, forgets what was sent. */
    reset() {
      session.ctl.abort();
      session = newSession();
      if (config?.debug) for (const [, sent] of seenSignatures.values()) earlierSessions.add(sent);
      seenSignatures = new Map();
    },
  };
  return DropFix;
}
