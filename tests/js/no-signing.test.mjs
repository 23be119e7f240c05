// "The browser build contains no signing function": the built browser artefacts (the wasm and
// both JS bundles) are inspected for any signing entry point and for SHA-256 itself, and the
// Node build is checked to have them, so the inspection is known to be able to fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const dist = new URL('../../dist/', import.meta.url);
const read = (path) => readFileSync(new URL(path, dist));

/** SHA-256's first round constants, little-endian as a wasm data segment stores them. */
const SHA256_K = Buffer.alloc(16);
[0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5].forEach((k, i) => SHA256_K.writeUInt32LE(k, i * 4));

const SIGNING_NAME = /sign|hmac|sha|secret/i;

function exportsOf(bytes) {
  return WebAssembly.Module.exports(new WebAssembly.Module(bytes)).map((e) => e.name);
}

test('the browser wasm exports no signing function and contains no SHA-256', () => {
  const wasm = read('dropfix_wasm_bg.wasm');
  const names = exportsOf(wasm);
  assert.ok(names.includes('buildIdentify'), names.join(' '));
  assert.deepEqual(names.filter((n) => SIGNING_NAME.test(n)), []);
  assert.equal(wasm.indexOf(SHA256_K), -1, 'SHA-256 round constants found in the browser wasm');
});

test('the browser bundles expose no signing function', async () => {
  for (const file of ['dropfix.mjs', 'dropfix.global.js']) {
    const js = read(file).toString();
    assert.doesNotMatch(js, /signUser|signClaims|createHmac|crypto\.subtle|HMAC/, file);
  }
  const mod = await import(new URL('dropfix.mjs', dist));
  assert.deepEqual(Object.keys(mod).sort(), ['DropFix', 'DropFixError', 'default']);
  assert.deepEqual(Object.keys(mod.DropFix).sort(), ['identify', 'init', 'reset']);
});

test('control: the Node build does sign, so the checks above can fail', () => {
  const wasm = read('node/dropfix_wasm_bg.wasm');
  const names = exportsOf(wasm);
  assert.ok(names.includes('signUser') && names.includes('signClaims'), names.join(' '));
  assert.notEqual(wasm.indexOf(SHA256_K), -1, 'SHA-256 constants expected in the signing build');
});
