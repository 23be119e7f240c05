// What both Node peers of the benchmarks share (bench/node-reference.mjs in memory,
// bench/node-sqlite.mjs durable): node:http + crypto.createHmac + timingSafeEqual, the seed form's
// decision rules (202 unsigned, 200 valid, 401 mismatch / expired / future / milliseconds /
// malformed / missing signedAt, 400 bad JSON, 413 over 16 KiB). `store(id, verified, traits, now)`
// records an accepted call before the answer is sent. Prints "listening on http://HOST:PORT".
import { createServer } from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';

function reply(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
const reject = (res, status, code) => reply(res, status, { error: { code, message: code } });

function decide(secret, body, now) {
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

export function serve(appId, secret, store) {
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
      const d = decide(secret, body, now);
      if (d.code) return reject(res, d.status, d.code);
      const id = String(body.user_id);
      const verified = d.status === 200;
      store(id, verified, body.traits ?? {}, now);
      reply(res, d.status, { verified, user_id: id, method: verified ? 'seed_hmac' : null });
    });
  });
  server.listen(0, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
  process.on('SIGTERM', () => process.exit(0));
}
