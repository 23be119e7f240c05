// The size budget of what a page downloads for the browser SDK (scripts/size.sh prints the same
// figures): the wasm plus the ESM bundle, and the wasm plus the script-tag bundle, gzipped -9,
// must stay within 25 KB. A change that pulls `core::fmt` or serde back into the browser wasm
// fails here rather than in a benchmark read later.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const BUDGET_BYTES = 25_000;
const gz = (file) => gzipSync(readFileSync(new URL(`../../dist/${file}`, import.meta.url)), { level: 9 }).length;

test(`a page downloads at most ${BUDGET_BYTES} bytes gzipped (wasm + JS)`, (t) => {
  const wasm = gz('dropfix_wasm_bg.wasm');
  for (const bundle of ['dropfix.mjs', 'dropfix.global.js']) {
    const total = wasm + gz(bundle);
    t.diagnostic(`${bundle}: wasm ${wasm} + JS ${gz(bundle)} = ${total} bytes gzipped`);
    assert.ok(total <= BUDGET_BYTES, `${bundle} + wasm = ${total} bytes gzipped, budget ${BUDGET_BYTES}`);
  }
});
