// The durable Node peer of the hot-path benchmark: node:http + crypto like node-reference.mjs,
// but every accepted call is written to SQLite through better-sqlite3 (WAL, synchronous=FULL,
// one commit per call) before the 2xx is sent — the guarantee dropfix-server gives, done the way
// a Node service usually does it. Never shipped.
// Usage: node bench/node-sqlite.mjs APP_ID SECRET DB_PATH -> prints "listening on http://HOST:PORT"
import { createServer } from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';
import Database from 'better-sqlite3';

const [appId, secret, dbPath] = process.argv.slice(2);
const db = new Database(dbPath);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec(`CREATE TABLE IF NOT EXISTS users (
  user_id TEXT PRIMARY KEY, verified INTEGER NOT NULL, plan TEXT, mrr REAL, email TEXT,
  unverified_claims TEXT, last_seen INTEGER NOT NULL) WITHOUT ROWID`);
// Verified: trusted values replace. Unverified: never overwrite a verified user's values.
const upsertVerified = db.prepare(`INSERT INTO users (user_id, verified, plan, mrr, email, last_seen)
  VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET verified = 1, plan = excluded.plan,
  mrr = excluded.mrr, email = excluded.email, last_seen = excluded.last_seen`);
const upsertUnverified = db.prepare(`INSERT INTO users (user_id, verified, plan, mrr, email, last_seen)
  VALUES (?, 0, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET
  plan = CASE WHEN verified = 1 THEN plan ELSE excluded.plan END,
  mrr = CASE WHEN verified = 1 THEN mrr ELSE excluded.mrr END,
  email = CASE WHEN verified = 1 THEN email ELSE excluded.email END,
  unverified_claims = CASE WHEN verified = 1 THEN json_object('plan', excluded.plan, 'mrr', excluded.mrr) ELSE NULL END,
  last_seen = excluded.last_seen`);

function reply(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
const reject = (res, status, code) => reply(res, status, { error: { code, message: code } });

function decide(body, now) {
  const sig = body.signature ?? body.hash;
  const at = body.signed_at ?? body.signedAt;
  if (sig === undefined) return { status: 202 };
  if (typeof sig !== 'string' || !/^[0-9a-fA-F]{64}$/.test(sig)) return { status: 401, code: 'signature_malformed' };
  if (at === undefined) return { status: 401, code: 'signed_at_missing' };
  if (at >= 1e11) return { status: 401, code: 'signed_at_not_seconds' };
  const expected = createHmac('sha256', secret).update(String(body.user_id)).digest();
  if (!timingSafeEqual(expected, Buffer.from(sig, 'hex'))) return { status: 401, code: 'signature_mismatch' };
  if (now - at > 300) return { status: 401, code: 'signature_expired' };
  if (at - now > 60) return { status: 401, code: 'signed_at_in_future' };
  return { status: 200 };
}

const server = createServer((req, res) => {
  if (req.method !== 'POST' || !req.url.startsWith('/v1/identify')) return reject(res, 404, 'not_found');
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size <= 16384) chunks.push(c);
  });
  req.on('end', () => {
    if (size > 16384) return reject(res, 413, 'body_too_large');
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks));
    } catch {
      return reject(res, 400, 'invalid_json');
    }
    if (body?.app_id !== appId) return reject(res, 401, 'unknown_app');
    if (typeof body.user_id !== 'string' && !Number.isInteger(body.user_id)) return reject(res, 400, 'invalid_type');
    const now = Math.floor(Date.now() / 1000);
    const d = decide(body, now);
    if (d.code) return reject(res, d.status, d.code);
    const id = String(body.user_id);
    const verified = d.status === 200;
    const t = body.traits ?? {};
    (verified ? upsertVerified : upsertUnverified).run(id, t.plan ?? null, t.mrr ?? null, t.email ?? null, now);
    reply(res, d.status, { verified, user_id: id, method: verified ? 'seed_hmac' : null });
  });
});
server.listen(0, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
