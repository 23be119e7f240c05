// The console (Security, Team and the other workspace pages) end to end, in headless Chromium through playwright-core,
// against a real dropfix-server on its embedded store. The account and workspace are made with
// the CLI, as an operator would; identify calls are signed here with Node's HMAC, as a
// customer's backend would. Every console page gets an axe-core scan (no serious or critical
// findings) and a screenshot in test-output/console/. DROPFIX_SERVER_BIN picks the server binary
// (default: the debug build in the target dir, built if missing).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './demo.mjs';
import { serverBinary } from '../../tests/js/verifier.mjs';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const shots = fileURLToPath(new URL('../../test-output/console/', import.meta.url));
const EMAIL = 'owner@acme.example';
const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;

let bin, dataDir, server, url, appId, firstSecret, browser, page;

const cli = (args, input) => execFileSync(bin, [...args, '--data-dir', dataDir], { input, encoding: 'utf8' });

before(async () => {
  rmSync(shots, { recursive: true, force: true });
  mkdirSync(shots, { recursive: true });
  bin = process.env.DROPFIX_SERVER_BIN ?? serverBinary();
  dataDir = mkdtempSync(join(tmpdir(), 'dropfix-console-'));
  chmodSync(dataDir, 0o700);
  const ws = JSON.parse(cli(['workspace', 'create', '--name', 'Acme Analytics', '--strict', 'report_only', '--json']));
  [appId, firstSecret] = [ws.app_id, ws.secret];
  cli(['user', 'create', '--email', EMAIL, '--password-stdin', '--workspace', appId, '--role', 'owner'], `${PASSWORD}\n`);
  server = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--admin-token', `dfadm_${randomBytes(16).toString('hex')}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  server.stderr.on('data', (d) => (stderr += d));
  url = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    server.on('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
  });
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  page = await context.newPage();
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const sign = (secret, userId) => createHmac('sha256', secret).update(userId).digest('hex');
async function identify(body) {
  const res = await fetch(`${url}/v1/identify`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}
const signedCall = (secret, userId) => identify({ app_id: appId, user_id: userId, signature: sign(secret, userId), signedAt: Math.floor(Date.now() / 1000) });

/** axe-core in the page (evaluated through the devtools protocol, so the console's CSP stays on). */
async function scan(name, on = page) {
  await on.evaluate(AXE);
  const result = await on.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `${name}: axe found ${JSON.stringify(bad, null, 1)}`);
}
async function shot(name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}
const security = () => `${url}/console/w/${appId}/security`;
const count = (key) => page.locator(`[data-count="${key}"]`).innerText().then(Number);

/** Reloads `href` until `ready()` holds (counts reach the store within a few seconds). */
async function pollPage(href, ready, what) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    await page.goto(href);
    if (await ready()) return;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await page.waitForTimeout(500);
  }
}

let newKey, newSecret, rolledSecret;

test('log in with the keyboard', async () => {
  await page.goto(`${url}/console`);
  assert.match(page.url(), /\/console\/login$/);
  await scan('login');
  await shot('01-login');
  await page.keyboard.press('Tab'); // skip link
  await page.focus('#email');
  await page.keyboard.type(EMAIL);
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await Promise.all([page.waitForURL(/\/console\/workspaces$/), page.keyboard.press('Enter')]);
  await scan('workspaces');
  await shot('02-workspaces');
  await Promise.all([page.waitForURL(/\/security$/), page.click('text=Acme Analytics')]);
  await scan('security');
  await shot('03-security');
  // The protection level comes first; report-only accepts unsigned calls.
  assert.equal(await page.locator('[data-testid="protection-level"]').innerText(), 'Unsigned calls accepted');
  const firstSection = await page.locator('main section').first().innerText();
  assert.match(firstSection, /^Protection level/);
  // A key's secret is explained in words, with the action that gets one.
  const note = await page.locator('[data-testid="secret-note"]').first().innerText();
  assert.match(note, /shown once, when its key is created or rolled/);
  assert.match(note, /roll key 1/);
  assert.ok(!(await page.content()).includes('••'), 'no bullets where the secret would be');
});

test('the Security page fits a 390 px wide screen', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(security());
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 390, `page is ${overflow}px wide at 390px`);
  await shot('04-security-390px');
  await page.setViewportSize({ width: 1100, height: 900 });
});

test('create a key: the secret is shown once, masked after reload', async () => {
  await page.goto(security());
  await page.fill('#label', 'api-prod');
  await Promise.all([page.waitForLoadState('load'), page.click('button:text("Create key")')]);
  newSecret = await page.inputValue('#secret');
  assert.match(newSecret, /^dfsk_/);
  newKey = Number((await page.locator('label[for="secret"]').innerText()).match(/Secret key (\d+)/)[1]);
  assert.ok(await page.locator('button[data-copy="secret"]').isVisible());
  await scan('secret');
  await shot('05-secret-shown-once');
  // The address bar already points at the Security page: a reload shows it, masked.
  assert.equal(page.url(), security());
  await page.reload();
  const html = await page.content();
  assert.ok(!html.includes(newSecret), 'the secret is on the page after a reload');
  assert.ok(html.includes('api-prod'));
  await shot('06-masked-after-reload');
});

test('a call signed with the new key verifies', async () => {
  const r = await signedCall(newSecret, 'user-signed-1');
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.verified, true);
});

test('roll the new key with 1 h of grace: both keys verify', async () => {
  await page.goto(`${url}/console/w/${appId}/keys/${newKey}/roll`);
  const text = await page.locator('main').innerText();
  assert.match(text, new RegExp(`calls signed with key ${newKey} stop verifying at`));
  await page.check('#c-1h');
  await scan('roll-confirm');
  await shot('07-roll-confirm');
  await Promise.all([page.waitForLoadState('load'), page.click(`button:text("Roll key ${newKey}")`)]);
  rolledSecret = await page.inputValue('#secret');
  assert.notEqual(rolledSecret, newSecret);
  assert.match(await page.locator('main').innerText(), /both keys verify until/);
  await shot('08-rolled-new-secret');
  assert.equal((await signedCall(newSecret, 'user-old-key')).status, 200);
  assert.equal((await signedCall(rolledSecret, 'user-rolled-key')).status, 200);
  await page.goto(security());
  assert.match(await page.locator('table').first().innerText(), /verifies until/);
});

test('report-only: unsigned calls move the would-reject count', async () => {
  await page.goto(security());
  const before = await count('would_reject-1h');
  for (let i = 0; i < 3; i++) {
    const r = await identify({ app_id: appId, user_id: `anon-${i}` });
    assert.equal(r.status, 202);
  }
  await pollPage(security(), async () => (await count('would_reject-1h')) >= before + 3, 'the would-reject count');
  assert.ok((await count('verified-1h')) >= 3);
  await shot('09-would-reject-counts');
});

test('strict on goes through a confirmation; then unsigned calls are refused', async () => {
  await page.goto(security());
  await page.check('#strict-on');
  await Promise.all([page.waitForLoadState('load'), page.click('button:text("Save strict mode")')]);
  const text = await page.locator('main').innerText();
  assert.match(text, /In the last 24 hours 3 calls were accepted without a valid signature/);
  await scan('strict-confirm');
  await shot('10-strict-confirm');
  await Promise.all([page.waitForURL(/security\?done=strict/), page.click('button:has-text("Turn strict mode on")')]);
  assert.equal(await page.locator('[data-testid="strict-now"]').innerText(), 'on');
  // Strict on verifies the user id only: the page says so. The seed-form calls so far sent no
  // plan or MRR, so nothing is recommended yet.
  assert.equal(await page.locator('[data-testid="protection-level"]').innerText(), 'User id verified');
  assert.match(await page.locator('[data-protection]').innerText(), /plan, MRR, email and name sent beside it can be changed in the browser/);
  assert.equal(await page.locator('[data-testid="recommend-claims"]').count(), 0);
  // A DevTools call that keeps the seed hash and sends plan and MRR of its own: stored verified
  // with them (the seed form cannot tell), so the page now recommends signed claims.
  const forgedPlan = await identify({ app_id: appId, user_id: 'devtools', signature: sign(rolledSecret, 'devtools'), signedAt: Math.floor(Date.now() / 1000), traits: { plan: 'enterprise', mrr: 100000 } });
  assert.equal(forgedPlan.status, 200);
  assert.equal(forgedPlan.json.verified, true);
  await pollPage(security(), async () => (await page.locator('[data-testid="recommend-claims"]').count()) === 1, 'the recommendation');
  assert.match(await page.locator('[data-testid="recommend-claims"]').innerText(), /1 of the \d+ verified calls in the last 7 days carried plan or MRR/);
  await scan('security-strict-on');
  await shot('11-strict-on');
  const r = await identify({ app_id: appId, user_id: 'anon-after-strict' });
  assert.equal(r.status, 401);
  assert.equal(r.json.error.code, 'signature_required');
});

test('a forged call shows in recent rejections with its fix', async () => {
  const forged = sign('dfsk_someone_elses_secret', 'mallory');
  const r = await identify({ app_id: appId, user_id: 'mallory', signature: forged, signedAt: Math.floor(Date.now() / 1000) });
  assert.equal(r.status, 401);
  const rejections = `${url}/console/w/${appId}/rejections`;
  await pollPage(rejections, async () => (await page.locator('main').innerText()).includes('signature_mismatch'), 'the forged call');
  const row = page.locator('tr', { hasText: 'mallory' }).first();
  const text = await row.innerText();
  assert.match(text, /signature_mismatch/);
  assert.match(text, /sign the exact user id string/);
  assert.ok(!(await page.content()).includes(forged), 'the signature is shown');
  // The report-only rows (from the report-only test above) do not claim strict mode.
  const reportOnly = page.locator('tr', { hasText: 'report-only: accepted unverified' }).first();
  assert.match(await reportOnly.innerText(), /report-only: this call had no signature/);
  assert.doesNotMatch(await reportOnly.innerText(), /is in strict mode/);
  // Codes are never broken mid-word, even on a phone.
  await page.setViewportSize({ width: 390, height: 900 });
  const broken = await page.$$eval('td code', (codes) => codes.filter((c) => c.getClientRects().length > 1).map((c) => c.textContent));
  await page.setViewportSize({ width: 1100, height: 900 });
  assert.deepEqual(broken, [], 'codes broken across lines');
  await scan('rejections');
  await shot('12-recent-rejections');
});

test('check a signature names the problem', async () => {
  await page.goto(`${url}/console/w/${appId}/check`);
  await page.fill('#user_id', '42');
  await page.fill('#signature', sign(rolledSecret, '42'));
  await page.fill('#signed_at', String(Math.floor(Date.now() / 1000) - 3600));
  await Promise.all([page.waitForLoadState('load'), page.click('button:text("Check")')]);
  const text = await page.locator('main').innerText();
  assert.match(text, /signature_expired/);
  // One verdict line before the details per key.
  const verdict = await page.locator('[data-testid="verdict"]').innerText();
  assert.match(verdict, /^Refused\. Refused \(401 signature_expired\) with key \d+/);
  assert.ok(text.indexOf(verdict) < text.indexOf('Details per key'), text);
  await page.fill('#signed_at', String(Math.floor(Date.now() / 1000)));
  await Promise.all([page.waitForLoadState('load'), page.click('button:text("Check")')]);
  assert.match(await page.locator('[data-testid="verdict"]').innerText(), /^Verifies\. Verifies with key \d+/);
  await scan('check');
  await shot('13-check-signature');
});

test('users: list, one user, export', async () => {
  await page.goto(`${url}/console/w/${appId}/users?show=verified`);
  assert.match(await page.locator('main').innerText(), /user-signed-1/);
  const headers = await page.locator('main table th').allInnerTexts();
  assert.deepEqual(headers.slice(0, 6), ['User id', 'Name', 'Email', 'Plan', 'Verified', 'Last seen']);
  await scan('users');
  await shot('14-users');
  await Promise.all([page.waitForLoadState('load'), page.click('text=user-signed-1')]);
  assert.match(await page.locator('main').innerText(), /seed_hmac/);
  await scan('user');
  await shot('15-user');
  const csv = await page.request.get(`${url}/console/w/${appId}/users/export.csv`);
  assert.equal(csv.status(), 200);
  const text = await csv.text();
  assert.match(text, /"user-signed-1",true,/);
  assert.match(text, /,\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\r\n/, 'times in ISO 8601 UTC');
  // All users: the unsigned ones too (report-only calls above), their values as claims.
  await page.goto(`${url}/console/w/${appId}/users`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('a[href$="export.csv?show=all"]')]);
  const all = readFileSync(await download.path(), 'utf8');
  assert.match(all, /^user_id,verified,name,email,plan,mrr,signup_date,claimed_name/);
  assert.match(all, /"anon-0",false,/);
});

test('confirmation and error pages pass the scan too', async () => {
  await page.goto(`${url}/console/w/${appId}/keys/${newKey}/retire`);
  assert.match(await page.locator('main').innerText(), /stops it verifying now/);
  await scan('retire-confirm');
  await shot('16-retire-confirm');
  await page.goto(`${url}/console/w/${appId}/users/user-signed-1/delete`);
  await scan('delete-user-confirm');
  await page.goto(`${url}/console/w/app_not_mine/security`);
  assert.match(await page.locator('h1').innerText(), /Not found/);
  await scan('not-found');
});

test('team: the owner invites a viewer, who joins in another browser, looks only, and loses access when removed', async () => {
  const VIEWER = 'vera@acme.example';
  const VIEWER_PASSWORD = `pw-${randomBytes(12).toString('hex')}`;
  const team = `${url}/console/w/${appId}/team`;
  await page.goto(team);
  assert.match(await page.locator('[data-member="owner@acme.example"]').innerText(), /owner/);
  await scan('team');
  await page.fill('#invite-email', VIEWER);
  await page.check('#invite-role-viewer');
  await Promise.all([page.waitForLoadState('load'), page.click('button:text("Create invitation link")')]);
  const link = await page.inputValue('#invite-link');
  assert.match(link, new RegExp(`^${url}/console/invite/[0-9a-f]{64}$`));
  assert.match(await page.locator('main').innerText(), /shown once/);
  await scan('invite-link');
  await shot('17a-invite-link');

  // The invited person, in a browser of their own (no cookie of the owner's).
  const theirs = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const them = await theirs.newPage();
  try {
    await them.goto(link);
    assert.match(await them.locator('main').innerText(), /as viewer of Acme Analytics/);
    await scan('accept-invitation', them);
    await them.fill('#password', VIEWER_PASSWORD);
    await them.fill('#password2', VIEWER_PASSWORD);
    await Promise.all([them.waitForLoadState('load'), them.click('button:has-text("Join")')]);
    assert.match(await them.locator('main').innerText(), /vera@acme\.example is now viewer of Acme Analytics/);
    // The link worked once.
    await them.goto(link);
    assert.match(await them.locator('h1').innerText(), /Invitation not valid/);
    // They log in and see the workspace, read-only.
    await them.goto(`${url}/console/login`);
    await them.fill('#email', VIEWER);
    await them.fill('#password', VIEWER_PASSWORD);
    await Promise.all([them.waitForURL(/\/console\/workspaces$/), them.click('button:text("Log in")')]);
    await Promise.all([them.waitForURL(/\/security$/), them.click('text=Acme Analytics')]);
    assert.equal(await them.locator('form[action$="/strict"]').count(), 0, 'no strict-mode form for a viewer');
    await them.goto(team);
    assert.equal(await them.locator('#invite-email').count(), 0, 'no invite form for a viewer');
    assert.equal(await them.locator('button:has-text("Save role")').count(), 0);
    // A change forced through anyway (their session's cookie, the console's own origin) is 403.
    for (const [path, form] of [['role', { email: VIEWER, role: 'owner' }], ['invite', { email: 'x@acme.example', role: 'owner' }], ['remove', { email: EMAIL }]]) {
      const forced = await theirs.request.post(`${team}/${path}`, { form, headers: { Origin: url }, maxRedirects: 0 });
      assert.equal(forced.status(), 403, path);
    }

    // The owner sees them with their last login, and removes them.
    await page.goto(team);
    const row = page.locator('[data-member="vera@acme.example"]');
    assert.match(await row.innerText(), /viewer/);
    assert.doesNotMatch(await row.innerText(), /never/);
    await shot('17b-team');
    await Promise.all([page.waitForLoadState('load'), row.locator('a:has-text("Remove")').click()]);
    await scan('team-remove-confirm');
    await Promise.all([page.waitForURL(/team\?done=removed/), page.click('button:text("Remove from this workspace")')]);
    assert.equal(await page.locator('[data-member="vera@acme.example"]').count(), 0);
    // Their open session loses the workspace on its next request.
    await them.goto(`${url}/console/w/${appId}/security`);
    assert.match(await them.locator('h1').innerText(), /Not found/);
    await them.goto(`${url}/console/workspaces`);
    assert.doesNotMatch(await them.locator('main').innerText(), /Acme Analytics/);
  } finally {
    await theirs.close();
  }
  // The last owner cannot demote themselves.
  await page.goto(team);
  assert.match(await page.locator('[data-member="owner@acme.example"]').innerText(), /Last owner/);
});

test('every change is in the audit log', async () => {
  await page.goto(`${url}/console/w/${appId}/audit`);
  const text = await page.locator('main').innerText();
  for (const action of ['key.create', 'key.roll', 'workspace.update', 'users.export', 'member.invite', 'member.join', 'member.remove']) assert.ok(text.includes(action), action);
  assert.ok(text.includes(EMAIL));
  for (const s of [firstSecret, newSecret, rolledSecret]) assert.ok(!text.includes(s), 'a secret in the audit log');
  await scan('audit');
  await shot('17-audit-log');
});

test('log out: the session no longer works', async () => {
  await page.goto(security());
  await Promise.all([page.waitForURL(/\/console\/login$/), page.click('button:text("Log out")')]);
  await page.goto(security());
  assert.match(page.url(), /\/console\/login$/);
  await shot('18-logged-out');
});
