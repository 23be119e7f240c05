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

// What pushed the budget over once: matching trait names by lowercasing a copy and searching it
// with `str::contains` linked Rust's string-slicing panic (its messages, and the Unicode
// "printable" tables its character escaping reads): about 4.4 KB gzipped for one check that byte
// comparison does with ASCII case folding. The panic handler never shows a message, so none of
// this may be in the page (nor the overflow panic of `[a, b, c].concat()`, see `join` in wasm/).
test('the browser wasm carries no str-slicing or slice-join panic messages, nor Unicode printable tables', () => {
  const wasm = readFileSync(new URL('../../dist/dropfix_wasm_bg.wasm', import.meta.url)).toString('latin1');
  for (const marker of ['is not a char boundary', 'unicode/printable.rs', 'when slicing `', 'attempt to join into collection']) {
    assert.ok(!wasm.includes(marker), `dist/dropfix_wasm_bg.wasm contains "${marker}"`);
  }
});
