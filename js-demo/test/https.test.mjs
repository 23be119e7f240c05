// The demo against a verifier that serves HTTPS itself (`serve --tls-cert --tls-key`), in
// headless Chromium: the page's identify() reaches it over HTTP/2 (ALPN), is verified, and is
// stored. The certificate is a throwaway one that the demo's backend trusts
// (NODE_EXTRA_CA_CERTS) and the browser context is told to accept.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack } from './demo.mjs';
import { makeCertificate } from '../../tests/js/verifier.mjs';

let certDir, stack, verifier, demoUrl, browser;

before(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'dropfix-tls-'));
  stack = await startStack({ tls: makeCertificate(certDir) });
  ({ verifier, demoUrl, browser } = stack);
  assert.match(verifier.url, /^https:\/\//);
});

after(async () => {
  await stack?.stop();
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
