// Acme Analytics, a demo DropFix customer. Its backend does Step 1 of "Secure your identify()
// call" (sign the logged-in user with `dropfix/server`), its page does Step 2 (load the SDK,
// DropFix.identify). Plain node:http, no framework: the point is the integration, not the app.
//
// Env: DROPFIX_APP_ID, DROPFIX_SECRET_KEY (the workspace), DROPFIX_ENDPOINT (the verifier),
// DROPFIX_ADMIN_TOKEN (optional: lets the page show what DropFix stored), PORT (default 3000,
// 0 = any free port), HOST (default 127.0.0.1).
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signClaims, signUser } from 'dropfix/server';

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = dirname(createRequire(import.meta.url).resolve('dropfix/package.json'));

const config = {
  appId: required('DROPFIX_APP_ID'),
  secret: required('DROPFIX_SECRET_KEY'),
  endpoint: (process.env.DROPFIX_ENDPOINT ?? 'http://127.0.0.1:8787').replace(/\/+$/, ''),
  adminToken: process.env.DROPFIX_ADMIN_TOKEN,
  port: Number(process.env.PORT ?? 3000),
  host: process.env.HOST ?? '127.0.0.1',
};

function required(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`demo: set ${name} (scripts/run.sh does this for you)`);
    process.exit(2);
  }
  return v;
}

/** The customer's own user table. */
const USERS = {
  '1001': { id: '1001', name: 'Ada Lovelace', email: 'ada@acme.test', plan: 'pro', mrr: 49, signup_date: '2024-03-01' },
  '1002': { id: '1002', name: 'Grace Hopper', email: 'grace@acme.test', plan: 'business', mrr: 299, signup_date: '2023-11-15' },
  '1003': { id: '1003', name: 'Linus Torvalds', email: 'linus@acme.test', plan: 'starter', mrr: 19, signup_date: '2025-01-20' },
  '1004': { id: '1004', name: 'Margaret Hamilton', email: 'margaret@acme.test', plan: 'free', mrr: 0, signup_date: '2025-06-02' },
};

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// Sessions. The cookie carries only a random session id (256 bits from the CSPRNG); which user it
// belongs to is known to this server alone, in `sessions`. A cookie holding the user id itself
// would let anyone become any user by editing it, and this demo is what customers copy.
const SESSION_COOKIE = 'acme_session';
// 32 bytes in base64url are 43 characters; anything else is not one of ours.
const SESSION_ID_IN_COOKIE = new RegExp(String.raw`(?:^|;\s*)${SESSION_COOKIE}=([A-Za-z0-9_-]{43})(?:;|$)`);
const SESSION_TTL_MS = 8 * 60 * 60 * 1000;
// A cap so that a client looping on POST /login cannot grow the map without bound; the oldest
// session goes first (a Map iterates in insertion order).
const MAX_SESSIONS = 10_000;
/** session id -> { userId, expires } */
const sessions = new Map();

function createSession(userId) {
  while (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value);
  const id = randomBytes(32).toString('base64url');
  sessions.set(id, { userId, expires: Date.now() + SESSION_TTL_MS });
  return id;
}

function sessionId(req) {
  const m = SESSION_ID_IN_COOKIE.exec(req.headers.cookie ?? '');
  return m?.[1];
}

/** The logged-in user, or undefined (no cookie, an unknown or expired session id). */
function sessionUser(req) {
  const id = sessionId(req);
  const session = id && sessions.get(id);
  if (!session) return undefined;
  if (session.expires <= Date.now()) {
    sessions.delete(id);
    return undefined;
  }
  return USERS[session.userId];
}

// HttpOnly: page scripts (or an XSS) cannot read it. SameSite=Lax: other sites' forms cannot
// post with it, while a link to the app still arrives logged in. Behind HTTPS, add `Secure`.
const sessionCookie = (id, maxAgeSecs) =>
  `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSecs}`;

/** A state-changing POST must come from this app's own pages (login CSRF, forced logout). */
function sameOrigin(req) {
  const origin = req.headers.origin;
  return origin === undefined || origin === `http://${req.headers.host}` || origin === `https://${req.headers.host}`;
}

/** Step 1, on the backend: both signature forms for the logged-in user. */
function signFor(user, now) {
  const options = { secret: config.secret, ...(now === undefined ? {} : { now }) };
  return {
    seed: signUser(user.id, options),
    token: signClaims(user.id, { plan: user.plan, mrr: user.mrr, email: user.email, name: user.name }, options),
  };
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', ...headers });
  res.end(body);
}

const json = (res, status, body) => send(res, status, 'application/json', JSON.stringify(body));

function loginPage() {
  const buttons = Object.values(USERS)
    .map((u) => `<button name="user" value="${u.id}" data-user="${u.id}">${escape(u.name)} <small>${u.plan} · $${u.mrr}/mo</small></button>`)
    .join('\n');
  return readFileSync(join(here, 'public/login.html'), 'utf8').replace('{{USERS}}', buttons);
}

function appPage(user, url) {
  const demo = {
    appId: config.appId,
    endpoint: config.endpoint,
    user,
    ...signFor(user),
    otherUserId: Object.keys(USERS).find((id) => id !== user.id),
    autoIdentify: url.searchParams.get('auto') !== '0',
    canShowStored: Boolean(config.adminToken),
  };
  // Tests can make the SDK arrive late, to exercise the loader stub's queue.
  const delay = Number(url.searchParams.get('sdkDelay') ?? 0);
  const loader = readFileSync(join(pkgDir, 'js/loader.js'), 'utf8');
  return readFileSync(join(here, 'public/app.html'), 'utf8')
    .replace('{{LOADER}}', loader)
    .replace('{{DEMO}}', JSON.stringify(demo).replace(/</g, '\\u003c'))
    .replace('{{SDK_SRC}}', `/sdk/dropfix.global.js${delay ? `?delay=${delay}` : ''}`)
    .replace('{{NAME}}', escape(user.name));
}

// The tab icon, served without a session: a browser asks for it on every page, the login page
// included, and a 401/404 for it is a console error.
const FAVICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2a9d4b"/><path d="M4 8.5l2.5 2.5L12 5" stroke="#fff" stroke-width="2" fill="none"/></svg>';

const SDK_FILES = {
  '/sdk/dropfix.global.js': ['dist/dropfix.global.js', 'text/javascript'],
  '/sdk/dropfix_wasm_bg.wasm': ['dist/dropfix_wasm_bg.wasm', 'application/wasm'],
};

async function readBody(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 4096) break;
  }
  return body;
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://demo');
  const user = sessionUser(req);
  if (req.method === 'GET' && url.pathname === '/') {
    if (user) return send(res, 302, 'text/plain', '', { Location: '/app' });
    return send(res, 200, 'text/html', loginPage());
  }
  if (req.method === 'POST' && (url.pathname === '/login' || url.pathname === '/logout') && !sameOrigin(req)) {
    return send(res, 403, 'text/plain', 'cross-site request refused');
  }
  if (req.method === 'POST' && url.pathname === '/login') {
    const id = new URLSearchParams(await readBody(req)).get('user');
    if (!Object.hasOwn(USERS, id ?? '')) return send(res, 400, 'text/plain', 'unknown user');
    // A new id on every login (never reuse one the browser already had: session fixation).
    const old = sessionId(req);
    if (old) sessions.delete(old);
    return send(res, 303, 'text/plain', '', { Location: '/app', 'Set-Cookie': sessionCookie(createSession(id), SESSION_TTL_MS / 1000) });
  }
  if (req.method === 'POST' && url.pathname === '/logout') {
    const id = sessionId(req);
    if (id) sessions.delete(id);
    return send(res, 303, 'text/plain', '', { Location: '/', 'Set-Cookie': sessionCookie('', 0) });
  }
  if (req.method === 'GET' && url.pathname === '/app') {
    if (!user) return send(res, 302, 'text/plain', '', { Location: '/' });
    return send(res, 200, 'text/html', appPage(user, url));
  }
  if (req.method === 'GET' && (url.pathname === '/favicon.svg' || url.pathname === '/favicon.ico')) {
    return send(res, 200, 'image/svg+xml', FAVICON, { 'Cache-Control': 'max-age=86400' });
  }
  if (req.method === 'GET' && url.pathname === '/app.js') {
    return send(res, 200, 'text/javascript', readFileSync(join(here, 'public/app.js')));
  }
  if (req.method === 'GET' && SDK_FILES[url.pathname]) {
    const [file, type] = SDK_FILES[url.pathname];
    const delay = Number(url.searchParams.get('delay') ?? 0);
    if (delay > 0) await new Promise((r) => setTimeout(r, Math.min(delay, 10_000)));
    return send(res, 200, type, readFileSync(join(pkgDir, file)));
  }
  if (!user) return json(res, 401, { error: 'log in first' });
  // Fresh signatures for the logged-in user (the page re-signs before each send, as a real app
  // would on each page load), or deliberately stale ones for the "stale signature" control.
  if (req.method === 'GET' && url.pathname === '/api/sign') {
    const stale = url.searchParams.get('stale') === '1';
    return json(res, 200, signFor(user, stale ? Math.floor(Date.now() / 1000) - 600 : undefined));
  }
  // What DropFix stored for the logged-in user, and only that user: the record comes through the
  // verifier's admin API, which can read every user, so the id is the session's, never the
  // request's (no `?user=`).
  if (req.method === 'GET' && url.pathname === '/api/stored') {
    if (!config.adminToken) return json(res, 404, { error: 'DROPFIX_ADMIN_TOKEN not set' });
    const r = await fetch(`${config.endpoint}/v1/admin/workspaces/${encodeURIComponent(config.appId)}/users/${encodeURIComponent(user.id)}`, {
      headers: { Authorization: `Bearer ${config.adminToken}` },
    });
    return json(res, r.status, await r.json());
  }
  return send(res, 404, 'text/plain', 'not found');
}

const server = createServer((req, res) => {
  handle(req, res).catch((e) => {
    console.error('demo:', e);
    if (!res.headersSent) send(res, 500, 'text/plain', 'internal error');
  });
});
server.listen(config.port, config.host, () => {
  const { port } = server.address();
  console.log(`demo listening on http://${config.host}:${port}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
