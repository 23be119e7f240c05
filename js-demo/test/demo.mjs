// What the demo's browser tests run against: the demo app (../server.mjs) on a free port, pointed
// at a verifier from tests/js/verifier.mjs, and headless Chromium (Debian's chromium through
// playwright-core).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startVerifier } from '../../tests/js/verifier.mjs';

const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** Headless Chromium, for every browser test of the demo. */
export function launchChromium() {
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
}

/**
 * A verifier (`tls` as startVerifier takes it; the demo's backend then trusts its certificate),
 * the demo pointed at it, and a browser: `{ verifier, demoUrl, browser, stop() }`. stop() ends
 * what was started; a start that fails part way ends what it had started before throwing.
 */
export async function startStack({ tls } = {}) {
  const stack = {
    async stop() {
      await stack.browser?.close();
      await stack.demo?.stop();
      await stack.verifier?.stop();
    },
  };
  try {
    stack.verifier = await startVerifier({ tls });
    stack.demo = await startDemo(stack.verifier, tls ? { NODE_EXTRA_CA_CERTS: tls.cert } : {});
    stack.demoUrl = stack.demo.url;
    stack.browser = await launchChromium();
  } catch (e) {
    await stack.stop();
    throw e;
  }
  return stack;
}

/** The demo app for `verifier`, `extraEnv` added to its environment: `{ url, stop() }`. */
async function startDemo(verifier, extraEnv) {
  const child = spawn('node', [fileURLToPath(new URL('../server.mjs', import.meta.url))], {
    env: {
      ...process.env,
      DROPFIX_APP_ID: verifier.appId,
      DROPFIX_SECRET_KEY: verifier.secret,
      DROPFIX_ENDPOINT: verifier.url,
      DROPFIX_ADMIN_TOKEN: verifier.adminToken,
      PORT: '0',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/demo listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`demo exited with ${code}: ${out}`)));
  });
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  };
  return { url, stop };
}
