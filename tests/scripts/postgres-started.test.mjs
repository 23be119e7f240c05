// scripts/test.sh stops the PostgreSQL cluster it started, and only that one: scripts/postgres.sh
// writes a cluster it started to DROPFIX_PG_STARTED_FILE, and `--stop-started FILE` stops the
// cluster named there. Run here against a stand-in `pg_ctlcluster` (first on PATH) that records
// its arguments, so no real cluster is touched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

function withFakeCluster(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'dropfix-pg-stop-'));
  const calls = join(dir, 'calls.log');
  const fake = join(dir, 'pg_ctlcluster');
  writeFileSync(fake, `#!/usr/bin/env bash\necho "$*" >> "${calls}"\n`);
  chmodSync(fake, 0o755);
  // As root the script runs pg_ctlcluster itself; otherwise through `sudo -n`, which a test
  // cannot stand in for.
  const root_ = process.getuid?.() === 0;
  try {
    fn({
      root: root_,
      stop: (file) =>
        spawnSync('bash', ['scripts/postgres.sh', '--stop-started', file], {
          cwd: root,
          encoding: 'utf8',
          env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
        }),
      calls: () => (existsSync(calls) ? readFileSync(calls, 'utf8').trim().split('\n') : []),
      file: (text) => {
        const f = join(dir, `started-${Math.random()}`);
        if (text !== undefined) writeFileSync(f, text);
        return f;
      },
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('--stop-started stops the cluster the run started, and nothing when it started none', (t) => {
  withFakeCluster(({ root: isRoot, stop, calls, file }) => {
    if (!isRoot) {
      t.skip('needs root: the script stops clusters through sudo otherwise');
      return;
    }
    for (const none of [file(''), file()]) {
      const r = stop(none);
      assert.equal(r.status, 0, r.stderr);
    }
    assert.deepEqual(calls(), [], 'a cluster that was already running (or no file) is left alone');
    const r = stop(file('15 main\n'));
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(calls(), ['15 main stop']);
    assert.match(r.stderr, /stopping cluster 15\/main/);
  });
});

test('test.sh records what postgres.sh started and stops it when it exits', () => {
  const testSh = readFileSync(join(root, 'scripts/test.sh'), 'utf8');
  assert.match(testSh, /DROPFIX_PG_STARTED_FILE="\$pg_started" scripts\/postgres\.sh/);
  assert.match(testSh, /trap '[^']*scripts\/postgres\.sh --stop-started "\$pg_started"/);
  const pg = readFileSync(join(root, 'scripts/postgres.sh'), 'utf8');
  // Written only on the paths that start (or install) a cluster.
  assert.match(pg, /pg_ctlcluster "\$1" "\$2" start >&2\n  installed=1/);
});
