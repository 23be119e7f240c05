// The npm package in a Next.js App Router app (TypeScript strict with exactOptionalPropertyTypes
// and noUncheckedIndexedAccess), as a new user meets it (issue 32): only the packed tarball
// installed, no next.config. For Turbopack (Next's default) and webpack: `next build`, then
// `next start`; a route handler (Node.js runtime), an edge route and a server action each sign
// the logged-in user with `dropfix/server` (seed form and signed-claims token); everything they
// sign is sent to a real dropfix-server and must be stored verified; a client component
// identifies in headless Chromium. The README's Next.js snippets are type-checked in the same app.
//
// The app's dependencies (next, react, typescript) are installed from tests/nextjs's lockfile by
// scripts/setup.sh, or here when missing, and kept between runs (node_modules is git-ignored).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startVerifier } from '../js/verifier.mjs';

const app = fileURLToPath(new URL('./', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));
const next = join(app, 'node_modules/next/dist/bin/next');
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const ENV = { ...process.env, NEXT_TELEMETRY_DISABLED: '1' };

let work, verifier, browser;

/** `npm ci` unless node_modules was installed from the current lockfile (as scripts/setup.sh). */
function installDependencies() {
  const stamp = join(app, 'node_modules/.package-lock.json');
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= statSync(join(app, 'package-lock.json')).mtimeMs) return;
  execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, stdio: 'inherit' });
}

/** The package as `npm pack` makes it, unpacked as node_modules/dropfix (it has no dependencies). */
function installPackedDropfix() {
  execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  const target = join(app, 'node_modules/dropfix');
  rmSync(target, { recursive: true, force: true });
  mkdirSync(target);
  execFileSync('tar', ['xzf', join(work, tarball), '-C', target, '--strip-components=1']);
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** How long one `next build` may take (8-35 s here) before it counts as hung. */
const BUILD_LIMIT_MS = 180_000;

/** Ends `child` and everything it started (Next's build workers): its own process group. */
function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * Runs `node next ...args` to completion within `limitMs`; its output is returned, and shown when
 * it fails. A run that outlasts the limit is killed with its workers and rejected with what it
 * printed, so a hung build fails this test instead of the whole test command.
 */
function runNext(args, limitMs = BUILD_LIMIT_MS) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [next, ...args], { cwd: app, env: ENV, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      killGroup(child);
      reject(new Error(`next ${args.join(' ')} did not finish within ${limitMs / 1000} s; it printed:\n${out}`));
    }, limitMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      killGroup(child);
      code === 0 ? resolve(out) : reject(new Error(`next ${args.join(' ')} exited with ${code}:\n${out}`));
    });
  });
}

/** `next start` on a free port with the workspace's settings; resolves once it answers. */
async function startNext() {
  const port = await freePort();
  const env = { ...ENV, DROPFIX_SECRET_KEY: verifier.secret, DROPFIX_APP_ID: verifier.appId, DROPFIX_ENDPOINT: verifier.url };
  const child = spawn(process.execPath, [next, 'start', '-H', '127.0.0.1', '-p', String(port)], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const url = `http://127.0.0.1:${port}`;
  // SIGTERM, and SIGKILL to the whole group if it has not exited within 5 s.
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => killGroup(child), 5_000);
      await exited;
      clearTimeout(timer);
    }
    killGroup(child);
  };
  for (const started = Date.now(); Date.now() - started < 30_000; await new Promise((r) => setTimeout(r, 200))) {
    if (child.exitCode !== null) throw new Error(`next start exited with ${child.exitCode}:\n${out}`);
    try {
      await fetch(url, { signal: AbortSignal.timeout(5_000) });
      return { url, stop, output: () => out };
    } catch {
      // not listening yet
    }
  }
  await stop();
  throw new Error(`next start did not answer within 30 s:\n${out}`);
}

/**
 * The wasm bindings Next.js gives its edge functions (the `wasm` lists of the build's
 * middleware-manifest.json files): what a `.wasm?module` import became, compiled before any request.
 */
function edgeWasmBindings() {
  const found = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name === 'middleware-manifest.json') {
        for (const fn of Object.values(JSON.parse(readFileSync(path, 'utf8')).functions ?? {})) {
          for (const w of fn.wasm ?? []) {
            // Relative to .next/ (webpack) or to the edge output (Turbopack).
            const file = ['.next', '.next/server', '.next/server/edge'].map((d) => join(app, d, w.filePath)).find((f) => existsSync(f));
            found.push({ page: fn.page ?? fn.name, bytes: file && readFileSync(file) });
          }
        }
      }
    }
  };
  walk(join(app, '.next/server'));
  return found;
}

/** Sends what a signer returned to the verifier as the browser SDK would; returns its answer. */
async function identify(userId, fields) {
  const res = await fetch(`${verifier.url}/v1/identify?app_id=${verifier.appId}`, {
    signal: AbortSignal.timeout(30_000),
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ app_id: verifier.appId, user_id: userId, traits: { plan: 'pro', mrr: 49 }, ...fields }),
  });
  return { status: res.status, json: await res.json() };
}

async function stored(userId) {
  const r = await verifier.admin('GET', `/v1/admin/workspaces/${verifier.appId}/users/${encodeURIComponent(userId)}`);
  return r.status === 200 ? { verified: r.json.verified, method: r.json.method, plan: r.json.plan } : { status: r.status };
}

/** GET a signing route as the logged-in `user`; both forms it signed reach the verifier. */
async function checkRoute(t, base, path, user) {
  const res = await fetch(`${base.url}${path}`, { headers: { Cookie: `session_user=${user}` }, signal: AbortSignal.timeout(30_000) });
  assert.equal(res.status, 200, `${path}: ${await res.clone().text()}\n${base.output()}`);
  const signed = await res.json();
  assert.equal(signed.userId, user);
  assert.match(signed.hash, /^[0-9a-f]{64}$/);
  assert.ok(Math.abs(signed.signedAt - Date.now() / 1000) < 60, `signedAt ${signed.signedAt}`);

  const seed = await identify(user, { signature: signed.hash, signed_at: signed.signedAt });
  assert.deepEqual(seed, { status: 200, json: { verified: true, user_id: user, method: 'seed_hmac' } }, `${path} seed form`);
  assert.deepEqual(await stored(user), { verified: true, method: 'seed_hmac', plan: 'pro' });
  const token = await identify(user, { signature: signed.token });
  assert.deepEqual(token, { status: 200, json: { verified: true, user_id: user, method: 'signed_claims' } }, `${path} token`);
  assert.deepEqual(await stored(user), { verified: true, method: 'signed_claims', plan: 'pro' });

  // Control: what it signed is for this user only; the verifier refuses it for another, and
  // stores nothing.
  const other = `${user}-other`;
  assert.equal((await identify(other, { signature: signed.token })).status, 401);
  assert.equal((await identify(other, { signature: signed.hash, signed_at: signed.signedAt })).status, 401);
  assert.deepEqual(await stored(other), { status: 404 });
  t.diagnostic(`${path}: seed form and token stored verified for ${user}`);
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'dropfix-nextjs-'));
  installDependencies();
  installPackedDropfix();
  verifier = await startVerifier();
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await verifier?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
  rmSync(join(app, '.next'), { recursive: true, force: true });
});

test('the app has no next.config: dropfix needs no bundler configuration', () => {
  const configs = readdirSync(app).filter((f) => /^next\.config\./.test(f));
  assert.deepEqual(configs, []);
});

test("the README's Next.js snippets type-check in this app (strict, exactOptionalPropertyTypes)", () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('**Next.js** (App Router'), readme.indexOf('**Script tag**'));
  const blocks = [...section.matchAll(/```tsx?\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.equal(blocks.length, 3, 'a server action, a route handler and a client component');
  // Next to the app's node_modules; removed before anything builds the app.
  const dir = join(app, `.readme-check-${process.pid}`);
  try {
    for (const [file, text] of [
      ['app/actions.ts', blocks[0]],
      ['app/api/dropfix/route.ts', blocks[1]],
      ['app/dropfix.tsx', blocks[2]],
      // `@/auth` stands for the app's auth library.
      ['auth.ts', 'export declare function auth(): Promise<{ user: { id: string; plan?: string | undefined } } | null>;\n'],
      ['tsconfig.json', JSON.stringify({ extends: '../tsconfig.json', compilerOptions: { baseUrl: '.', paths: { '@/*': ['./*'] }, plugins: [] }, include: ['**/*.ts', '**/*.tsx'] })],
    ]) {
      mkdirSync(dirname(join(dir, file)), { recursive: true });
      writeFileSync(join(dir, file), text);
    }
    const r = spawnSync(process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), '-p', dir, '--noEmit'], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const bundler of ['turbopack', 'webpack']) {
  test(`${bundler}: next build and next start; route handler, edge route and server action sign, the verifier stores each verified; a client component identifies in Chromium`, async (t) => {
    rmSync(join(app, '.next'), { recursive: true, force: true });
    let started = Date.now();
    // Turbopack is what a plain `next build` uses (since Next.js 16); webpack is opted into.
    const args = bundler === 'webpack' ? ['build', '--webpack'] : ['build'];
    // A build that hangs (seen once, in CI: `next build --webpack` printed nothing for an hour)
    // is killed and tried once more, and says so; a build that fails is not retried.
    const built = await runNext(args).catch(async (e) => {
      if (!/did not finish within/.test(e.message)) throw e;
      t.diagnostic(`first ${bundler} build hung and was killed; retrying once. ${e.message.slice(0, 2000)}`);
      rmSync(join(app, '.next'), { recursive: true, force: true });
      started = Date.now();
      return runNext(args);
    });
    t.diagnostic(`next build (${bundler}): ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.match(built, new RegExp(`Next\\.js [\\d.]+ \\(${bundler}\\)`, 'i'), built);
    // The edge route's core is the wasm module the build precompiled (js/core-edge.mjs), not
    // bytes compiled at run time, which a real edge runtime refuses.
    const signingWasm = readFileSync(join(app, 'node_modules/dropfix/dist/node/dropfix_wasm_bg.wasm'));
    const bindings = edgeWasmBindings();
    assert.ok(
      bindings.some((b) => b.page.includes('edge-sign') && b.bytes?.equals(signingWasm)),
      `edge wasm bindings: ${bindings.map((b) => `${b.page} (${b.bytes?.length} bytes)`).join(', ')}`,
    );
    started = Date.now();
    const server = await startNext();
    t.after(() => server.stop());
    t.diagnostic(`next start: ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // Nobody logged in: nothing is signed.
    for (const path of ['/api/sign', '/api/edge-sign']) assert.equal((await fetch(`${server.url}${path}`, { signal: AbortSignal.timeout(30_000) })).status, 401, path);
    await checkRoute(t, server, '/api/sign', `route-${bundler}`);
    await checkRoute(t, server, '/api/edge-sign', `edge-${bundler}`);

    // The page: the client component calls the server action, then identifies in the browser.
    const user = `action-${bundler}`;
    const context = await browser.newContext();
    t.after(() => context.close());
    await context.addCookies([{ name: 'session_user', value: user, url: server.url }]);
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    // Chromium's own request for /favicon.ico (the app has none) is no problem of the page's.
    page.on('response', (r) => r.status() >= 400 && !r.url().endsWith('/favicon.ico') && problems.push(`${r.status()} ${r.url()}`));
    page.on('console', (m) => m.type() === 'error' && !m.text().startsWith('Failed to load resource') && problems.push(m.text()));
    await page.goto(server.url);
    const status = page.locator('#status');
    await status.filter({ hasText: /^(done|error)/ }).waitFor({ timeout: 30_000 }).catch((e) => {
      throw new Error(`${e.message}\npage errors: ${problems.join(' | ')}\n${server.output()}`);
    });
    assert.equal(await status.textContent(), `done ${user} true:seed_hmac true:signed_claims`, problems.join(' | '));
    assert.deepEqual(await stored(user), { verified: true, method: 'signed_claims', plan: 'pro' });
    assert.deepEqual(problems, []);
    assert.doesNotMatch(server.output(), /⨯|Error:/, 'next start logged no error');
  });
}
