// Starts the demo app (../server.mjs) on a free port for the browser tests, pointed at a
// verifier from tests/js/verifier.mjs. `extraEnv` adds to its environment.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** `{ url, stop() }` */
export async function startDemo(verifier, extraEnv = {}) {
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
