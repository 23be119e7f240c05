// The peer in the load benchmark: what a customer might write instead of DropFix, in Node.
// node:http + crypto.createHmac + timingSafeEqual, the same decision rules for the seed form
// (202 unsigned, 200 valid, 401 mismatch / expired / future / milliseconds / malformed /
// missing signedAt, 400 bad JSON), users kept in an in-memory Map (no durability at all).
// Usage: node bench/node-reference.mjs APP_ID SECRET  -> prints "listening on http://HOST:PORT"
import { createServer } from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';

const [appId, secret] = process.argv.slice(2);
const users = new Map();

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
    const d = decide(body, Math.floor(Date.now() / 1000));
    if (d.code) return reject(res, d.status, d.code);
    const id = String(body.user_id);
    const verified = d.status === 200;
    const previous = users.get(id);
    if (!(previous?.verified && !verified)) users.set(id, { ...body.traits, verified });
    reply(res, d.status, { verified, user_id: id, method: verified ? 'seed_hmac' : null });
  });
});
server.listen(0, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
