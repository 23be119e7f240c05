// The durable Node peer of the hot-path benchmark: the shared server of node-common.mjs, but
// every accepted call is written to SQLite through better-sqlite3 (WAL, synchronous=FULL,
// one commit per call) before the 2xx is sent — the guarantee dropfix-server gives, done the way
// a Node service usually does it. Never shipped.
// Usage: node bench/node-sqlite.mjs APP_ID SECRET DB_PATH -> prints "listening on http://HOST:PORT"
import Database from 'better-sqlite3';
import { serve } from './node-common.mjs';

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

const put = (verified) => (verified ? upsertVerified : upsertUnverified);
serve(appId, secret, (id, verified, t, now) => {
  put(verified).run(id, t.plan ?? null, t.mrr ?? null, t.email ?? null, now);
});
