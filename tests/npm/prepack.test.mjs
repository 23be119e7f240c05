// `npm pack` (and so `npm publish` and installs from git) must ship dist/, which is never
// committed: package.json's prepack hook builds it when it is missing or stale, and only then.
// Runs the real package.json and scripts/prepack.sh in a throwaway copy of the tree whose
// scripts/build-npm.sh is a stand-in that writes placeholder outputs and counts its runs, so the
// test takes seconds instead of a wasm build.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

function fakeTree() {
  const dir = mkdtempSync(join(tmpdir(), 'dropfix-prepack-'));
  const put = (path, text) => {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  };
  for (const f of ['package.json', 'scripts/prepack.sh', 'scripts/pack-manifest.mjs', 'README.md']) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    copyFileSync(join(root, f), join(dir, f));
  }
  for (const f of ['js/index.d.ts', 'js/server.d.ts', 'js/server.mjs', 'js/core-bytes.mjs', 'js/core-edge.mjs', 'js/loader.js', 'js/sdk.js', 'wasm/src/lib.rs', 'core/src/lib.rs', 'Cargo.toml', 'Cargo.lock']) {
    put(f, '// source\n');
  }
  // The stand-in build: every dist file the package ships, and one line per run in build.log.
  put(
    'scripts/build-npm.sh',
    `set -e
cd "$(dirname "$0")/.."
rm -rf dist && mkdir -p dist/node
for f in dist/dropfix.mjs dist/dropfix.global.js dist/dropfix_wasm_bg.wasm dist/node/dropfix_wasm.js dist/node/dropfix_wasm_bg.wasm dist/node/dropfix_wasm_base64.js; do echo built > "$f"; done
echo run >> build.log
`,
  );
  // Sources older than anything the build writes, as after a checkout followed by a build.
  const past = new Date(Date.now() - 3600_000);
  for (const f of ['js/sdk.js', 'wasm/src/lib.rs', 'core/src/lib.rs', 'Cargo.toml', 'Cargo.lock', 'scripts/build-npm.sh']) utimesSync(join(dir, f), past, past);
  return dir;
}

/** `npm pack --dry-run` in `dir`: the packed file list (and what the hooks printed, as `.log`). */
function pack(dir) {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--loglevel=error'], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const files = JSON.parse(r.stdout)[0].files.map((f) => f.path);
  files.log = r.stderr;
  return files;
}
const builds = (dir) => {
  try {
    return readFileSync(join(dir, 'build.log'), 'utf8').trim().split('\n').length;
  } catch {
    return 0;
  }
};

test('a pack from a fresh clone (no dist/) builds dist/ and ships the browser and Node entries', () => {
  const dir = fakeTree();
  try {
    const files = pack(dir);
    for (const f of ['dist/dropfix.mjs', 'dist/dropfix.global.js', 'dist/dropfix_wasm_bg.wasm', 'dist/node/dropfix_wasm.js', 'dist/node/dropfix_wasm_bg.wasm', 'dist/node/dropfix_wasm_base64.js', 'js/core-bytes.mjs', 'js/core-edge.mjs']) {
      assert.ok(files.includes(f), `${f} missing from the tarball: ${files.join(' ')}`);
    }
    assert.equal(builds(dir), 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('packing again with an up-to-date dist/ does not rebuild; a changed source does', () => {
  const dir = fakeTree();
  try {
    pack(dir);
    assert.equal(builds(dir), 1);
    pack(dir);
    assert.equal(builds(dir), 1, 'dist/ was fresh: no rebuild');
    // An edit after the build (not in the future: npm pack runs both prepack and prepare, and a
    // future mtime would look newer than the rebuild too).
    const now = new Date();
    utimesSync(join(dir, 'js/sdk.js'), now, now);
    pack(dir);
    assert.equal(builds(dir), 2, 'js/sdk.js changed after the build: rebuild');
    rmSync(join(dir, 'dist/dropfix_wasm_bg.wasm'));
    pack(dir);
    assert.equal(builds(dir), 3, 'a missing output: rebuild');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an install from git ships dist/ (npm runs only `prepare` there, not `prepack`)', () => {
  const repo = fakeTree();
  const consumer = mkdtempSync(join(tmpdir(), 'dropfix-git-consumer-'));
  try {
    const git = (...args) => execFileSync('git', ['-c', 'user.email=test@dropfix.test', '-c', 'user.name=test', '-c', 'init.defaultBranch=main', ...args], { cwd: repo, stdio: 'ignore' });
    git('init', '-q');
    git('add', '-A');
    git('commit', '-q', '-m', 'fixture');
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
    const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', `git+file://${repo}`], { cwd: consumer, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const installed = join(consumer, 'node_modules/dropfix');
    for (const f of ['dist/dropfix.mjs', 'dist/dropfix_wasm_bg.wasm', 'dist/node/dropfix_wasm.js']) {
      assert.ok(existsSync(join(installed, f)), `${f} missing from the git install`);
    }
  } finally {
    rmSync(repo, { recursive: true, force: true });
    rmSync(consumer, { recursive: true, force: true });
  }
});

/** The lifecycle scripts npm runs when a package is installed. */
const INSTALL_TIME = ['preinstall', 'install', 'postinstall', 'prepublish', 'preprepare', 'prepare', 'postprepare'];

test('the tarball carries no install-time script, installs without a warning, and the checkout keeps its prepare hook', () => {
  const dir = fakeTree();
  const consumer = mkdtempSync(join(tmpdir(), 'dropfix-tgz-consumer-'));
  try {
    const before = readFileSync(join(dir, 'package.json'), 'utf8');
    assert.ok(JSON.parse(before).scripts.prepare, 'the checkout has a prepare hook (installs from git need it)');
    const r = spawnSync('npm', ['pack', '--json', '--loglevel=error', '--pack-destination', consumer], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(dir, 'package.json'), 'utf8'), before, 'npm pack left package.json as it was');
    const tarball = join(consumer, JSON.parse(r.stdout)[0].filename);
    const packed = JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }));
    assert.deepEqual(INSTALL_TIME.filter((s) => s in packed.scripts), [], JSON.stringify(packed.scripts));
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
    const install = spawnSync('npm', ['install', '--no-audit', '--no-fund', tarball], { cwd: consumer, encoding: 'utf8' });
    assert.equal(install.status, 0, install.stderr);
    assert.doesNotMatch(install.stdout + install.stderr, /install-scripts|allowScripts/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(consumer, { recursive: true, force: true });
  }
});

test('run.sh builds dist/ once on a first run: after the install hook built it, its build step does nothing', () => {
  const dir = fakeTree();
  try {
    // setup.sh's `npm ci` on a fresh clone: the prepare hook builds dist/.
    const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(builds(dir), 1);
    // run.sh's own build step, as it is written there.
    const runSh = readFileSync(join(root, 'scripts/run.sh'), 'utf8');
    assert.doesNotMatch(runSh, /npm run[^\n]*build/, 'run.sh must not rebuild dist/ unconditionally');
    assert.match(runSh, /^bash scripts\/prepack\.sh$/m);
    execFileSync('bash', ['scripts/prepack.sh'], { cwd: dir, stdio: 'ignore' });
    assert.equal(builds(dir), 1, 'dist/ was built twice');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// scripts/test.sh runs `npm run build` before this; run alone after editing js/, wasm/ or core/,
// this packs after a real rebuild and says so.
test('the real tree after `npm run build`: npm pack ships dist/ without rebuilding', () => {
  const files = pack(root);
  assert.ok(files.includes('dist/dropfix.mjs') && files.includes('dist/dropfix_wasm_bg.wasm'), files.join(' '));
  assert.match(files.log, /prepack: dist\/ is up to date/, 'the packed-tarball test (tests/js/package.test.mjs) must not rebuild dist/');
});
