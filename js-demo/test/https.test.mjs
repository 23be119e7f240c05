// The demo against a verifier that serves HTTPS itself (`serve --tls-cert --tls-key`), in
// headless Chromium: the page's identify() reaches it over HTTP/2 (ALPN), is verified, and is
// stored. The certificate is a throwaway one that the demo's backend trusts
// (NODE_EXTRA_CA_CERTS) and the browser context is told to accept.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { makeCertificate, startVerifier } from '../../tests/js/verifier.mjs';

const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

let certDir, tls, verifier, demo, demoUrl, browser;

before(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'dropfix-tls-'));
  tls = makeCertificate(certDir);
  verifier = await startVerifier({ tls });
  assert.match(verifier.url, /^https:\/\//);
  demo = spawn('node', [fileURLToPath(new URL('../server.mjs', import.meta.url))], {
    env: {
      ...process.env,
      DROPFIX_APP_ID: verifier.appId,
      DROPFIX_SECRET_KEY: verifier.secret,
      DROPFIX_ENDPOINT: verifier.url,
      DROPFIX_ADMIN_TOKEN: verifier.adminToken,
      NODE_EXTRA_CA_CERTS: tls.cert,
      PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  demoUrl = await new Promise((resolve, reject) => {
    let out = '';
    demo.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/demo listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    demo.on('exit', (code) => reject(new Error(`demo exited with ${code}: ${out}`)));
  });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  if (demo && demo.exitCode === null) {
    const exited = new Promise((r) => demo.once('exit', r));
    demo.kill('SIGTERM');
    await exited;
  }
  await verifier?.stop();
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

test('identify from the browser to an HTTPS verifier is verified, over HTTP/2, and stored', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  // The protocol of each answer, as Chromium's network layer saw it.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const protocols = [];
  cdp.on('Network.responseReceived', (e) => {
    if (e.response.url.includes('/v1/identify')) protocols.push(e.response.protocol);
  });
  await page.goto(`${demoUrl}/`);
  await Promise.all([page.waitForURL(/\/app/), page.click('button[data-user="1001"]')]);
  await page.waitForFunction(() => !['pending', undefined].includes(document.getElementById('result').dataset.state), null, { timeout: 20_000 });
  const state = await page.evaluate(() => document.getElementById('result').dataset.state);
  assert.equal(state, 'verified', await page.evaluate(() => document.getElementById('result').textContent));
  assert.ok(protocols.length > 0 && protocols.every((p) => p === 'h2'), JSON.stringify(protocols));
  const r = await verifier.admin('GET', `/v1/admin/workspaces/${verifier.appId}/users/1001`);
  assert.equal(r.status, 200);
  assert.equal(r.json.verified, true);
  await context.close();
});
