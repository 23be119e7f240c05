// Starts the real dropfix-server binary on 127.0.0.1:0 with a temporary data dir, for the JS
// tests that need a verifier. Builds it with cargo if it is missing.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

export function serverBinary() {
  const bin = join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'debug', 'dropfix-server');
  if (!existsSync(bin)) {
    execFileSync('cargo', ['build', '--quiet', '-p', 'dropfix-server'], { cwd: root, stdio: 'inherit' });
  }
  return bin;
}

/**
 * A throwaway certificate for localhost and 127.0.0.1 (openssl): `{ cert, key }` file paths, in
 * `dir`. Self-signed, so it is its own CA for clients told to trust it.
 */
export function makeCertificate(dir) {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

/**
 * `{ url, appId, secret, dataDir, adminToken, admin(method, path, body), stop() }`. With `tls`
 * (`{ cert, key }` from makeCertificate) it serves HTTPS, and `admin` trusts that certificate.
 */
export async function startVerifier({ tls } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'dropfix-verifier-'));
  const adminToken = `dfadm_${randomBytes(16).toString('hex')}`;
  const tlsArgs = tls ? ['--tls-cert', tls.cert, '--tls-key', tls.key] : [];
  const child = spawn(serverBinary(), ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--admin-token', adminToken, ...tlsArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const info = await new Promise((resolve, reject) => {
    let out = '';
    const found = {};
    const timer = setTimeout(() => reject(new Error(`verifier did not start:\n${out}\n${stderr}`)), 60_000);
    child.stdout.on('data', (d) => {
      out += d;
      const dev = out.match(/dev workspace app_id=(\S+) secret=(\S+)/);
      if (dev) [found.appId, found.secret] = [dev[1], dev[2]];
      const listening = out.match(/dropfix-server listening on (https?:\/\/\S+)/);
      if (listening) {
        clearTimeout(timer);
        resolve({ ...found, url: listening[1] });
      }
    });
    child.on('exit', (code) => reject(new Error(`verifier exited with ${code}:\n${stderr}`)));
  });
  const admin = async (method, path, body) => {
    if (tls) {
      // Node's fetch cannot be given a CA per call: node:https can.
      const ca = readFileSync(tls.cert);
      return new Promise((resolve, reject) => {
        const req = httpsRequest(`${info.url}${path}`, {
          method, ca, headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
        }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });
    }
    const res = await fetch(`${info.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  return { ...info, dataDir, adminToken, admin, stop };
}
