// The package's TypeScript declarations as a consumer's tsc (strict, with
// exactOptionalPropertyTypes and noUncheckedIndexedAccess) sees them: each folder under
// tests/js/types/ is compiled in a temporary project whose node_modules/dropfix is this package,
// so `dropfix` and `/// <reference types="dropfix/global" />` resolve through package.json's
// exports as they do after `npm install`. The `@ts-expect-error` lines in them must be errors
// (tsc fails on one that is not), so the refusals are tested as well as the acceptances.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tsc = join(root, 'node_modules/.bin/tsc');

function compile(project, extraSource) {
  const dir = mkdtempSync(join(tmpdir(), `dropfix-types-${project}-`));
  try {
    cpSync(join(root, 'tests/js/types', project), dir, { recursive: true });
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(root, join(dir, 'node_modules/dropfix'), 'dir');
    writeFileSync(join(dir, 'package.json'), '{ "name": "consumer", "private": true, "type": "module" }');
    if (extraSource) writeFileSync(join(dir, extraSource.file), extraSource.text);
    const r = spawnSync(tsc, ['-p', dir], { encoding: 'utf8' });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('an ESM app: accepted calls compile, refused ones (aliases twice, unknown codes, window.DropFix) do not', () => {
  const r = compile('esm');
  assert.equal(r.status, 0, r.output);
});

test('a script-tag page: `dropfix/global` declares window.DropFix with the same checks', () => {
  const r = compile('global');
  assert.equal(r.status, 0, r.output);
});

test('a strict app (exactOptionalPropertyTypes, noUncheckedIndexedAccess): explicit undefined, env values and record reads compile', () => {
  const r = compile('strict');
  assert.equal(r.status, 0, r.output);
});

test('control: tsc does report a wrong call in these projects', () => {
  const r = compile('esm', {
    file: 'app.ts',
    text: "import { DropFix } from 'dropfix';\nvoid DropFix.identify('42', { hash: 'a', signature: 'b' });\n",
  });
  assert.notEqual(r.status, 0);
  assert.match(r.output, /app\.ts/);
});
