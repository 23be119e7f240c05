// The package as a consumer gets it: `npm pack`, install the tarball in a fresh folder, sign
// with `dropfix/server` in Node, bundle a page that imports `dropfix` with esbuild, and drive it
// in headless Chromium against a real dropfix-server until identify resolves verified. Also the
// script-tag build with the loader stub: calls made before the SDK loaded are delivered in order.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startVerifier } from './verifier.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

let work, consumer, verifier, site, browser;

function serveStatic(dir) {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };
  const server = createServer((req, res) => {
    const pathname = new URL(req.url, 'http://x').pathname;
    const file = pathname === '/' ? 'index.html' : pathname.slice(1);
    try {
      const body = readFileSync(join(dir, file));
      res.writeHead(200, { 'Content-Type': types[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${server.address().port}` })));
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'dropfix-pack-'));
  execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  consumer = join(work, 'consumer');
  mkdirSync(join(consumer, 'public'), { recursive: true });
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', join(work, tarball)], { cwd: consumer, stdio: 'inherit' });

  // A page that imports the package, bundled as a consumer would.
  writeFileSync(
    join(consumer, 'app.js'),
    `import { DropFix, DropFixError } from 'dropfix';
     window.identify = async ({ appId, endpoint, userId, traits }) => {
       DropFix.init({ appId, endpoint });
       try { return { ok: await DropFix.identify(userId, traits) }; }
       catch (e) { return { error: { name: e.name, isDropFixError: e instanceof DropFixError, status: e.status, code: e.code } }; }
     };`,
  );
  execFileSync(join(root, 'node_modules/.bin/esbuild'), ['app.js', '--bundle', '--format=esm', '--outfile=public/app.js', '--log-level=warning'], { cwd: consumer });
  copyFileSync(join(consumer, 'node_modules/dropfix/dist/dropfix_wasm_bg.wasm'), join(consumer, 'public/dropfix_wasm_bg.wasm'));
  writeFileSync(join(consumer, 'public/index.html'), '<!doctype html><script type="module" src="/app.js"></script>');
  copyFileSync(join(consumer, 'node_modules/dropfix/dist/dropfix.global.js'), join(consumer, 'public/dropfix.global.js'));

  verifier = await startVerifier();
  site = await serveStatic(join(consumer, 'public'));
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  site?.server.close();
  await verifier?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Signs in the consumer folder with the installed package, as a customer backend would. */
function signInConsumer(userId) {
  const script = `import { signUser } from 'dropfix/server'; process.stdout.write(JSON.stringify(signUser(${JSON.stringify(userId)})));`;
  const out = execFileSync('node', ['--input-type=module', '-e', script], { cwd: consumer, env: { ...process.env, DROPFIX_SECRET_KEY: verifier.secret } });
  return JSON.parse(out);
}

test('installed tarball: Node signs, the bundled page identifies, the verifier says verified', async () => {
  const { dropfix_hash, dropfix_signed_at } = signInConsumer('consumer-1');
  const page = await browser.newPage();
  await page.goto(`${site.url}/`);
  await page.waitForFunction(() => typeof window.identify === 'function');
  const result = await page.evaluate((args) => window.identify(args), {
    appId: verifier.appId,
    endpoint: verifier.url,
    userId: 'consumer-1',
    traits: { plan: 'pro', mrr: 49, hash: dropfix_hash, signedAt: dropfix_signed_at },
  });
  assert.deepEqual(result, { ok: { verified: true, userId: 'consumer-1', method: 'seed_hmac' } });
  const stored = await verifier.admin('GET', `/v1/admin/workspaces/${verifier.appId}/users/consumer-1`);
  assert.equal(stored.status, 200);
  assert.equal(stored.json.verified, true);
  assert.equal(stored.json.plan, 'pro');

  // Someone else's id with this signature: 401 reaches the page as a DropFixError (CORS headers
  // on errors), and nothing is stored.
  const forged = await page.evaluate((args) => window.identify(args), {
    appId: verifier.appId,
    endpoint: verifier.url,
    userId: 'consumer-2',
    traits: { hash: dropfix_hash, signedAt: dropfix_signed_at },
  });
  assert.deepEqual(forged, { error: { name: 'DropFixError', isDropFixError: true, status: 401, code: 'signature_mismatch' } });
  assert.equal((await verifier.admin('GET', `/v1/admin/workspaces/${verifier.appId}/users/consumer-2`)).status, 404);
  await page.close();
});

test('script tag + loader stub: calls made before the SDK loaded are delivered in order', async () => {
  const loader = readFileSync(join(consumer, 'node_modules/dropfix/js/loader.js'), 'utf8');
  const signed = ['early-1', 'early-2'].map((id) => ({ id, ...signInConsumer(id) }));
  writeFileSync(
    join(consumer, 'public/loader.html'),
    `<!doctype html><script>${loader}</script>
     <script>
       window.results = [];
       DropFix.init({ appId: ${JSON.stringify(verifier.appId)}, endpoint: ${JSON.stringify(verifier.url)} });
       ${signed
         .map((s) => `DropFix.identify(${JSON.stringify(s.id)}, { hash: ${JSON.stringify(s.dropfix_hash)}, signedAt: ${s.dropfix_signed_at} }).then((r) => window.results.push(r.userId + ':' + r.verified), (e) => window.results.push('error:' + e.code));`)
         .join('\n')}
       window.queuedBeforeLoad = DropFix._q.length;
       // The SDK arrives later, as an async script tag would.
       setTimeout(() => { const s = document.createElement('script'); s.src = '/dropfix.global.js'; document.head.appendChild(s); }, 300);
     </script>`,
  );
  const page = await browser.newPage();
  const problems = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(String(e)));
  await page.goto(`${site.url}/loader.html`);
  await page.waitForFunction(() => window.results.length === 2, null, { timeout: 30_000 }).catch((e) => {
    throw new Error(`${e.message}; page errors: ${problems.join(' | ')}`);
  });
  assert.equal(await page.evaluate(() => window.queuedBeforeLoad), 3, 'init and two identify calls were queued');
  assert.deepEqual(await page.evaluate(() => window.results), ['early-1:true', 'early-2:true']);
  const users = await verifier.admin('GET', `/v1/admin/workspaces/${verifier.appId}/users?verified=true`);
  const ids = users.json.users.map((u) => u.user_id);
  assert.ok(ids.includes('early-1') && ids.includes('early-2'), ids.join(','));
  assert.equal(await page.evaluate(() => typeof window.DropFix._q), 'undefined', 'the stub was replaced');
  await page.close();
});
