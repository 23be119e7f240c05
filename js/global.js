// Script-tag build (dist/dropfix.global.js): defines window.DropFix and replays the calls the
// loader stub (loader.js) queued before this file arrived, in order. The wasm file is fetched
// from next to this script unless init() passes `wasm`.
import initWasm, { buildIdentify } from '../dist/web/dropfix_wasm.js';
import { createDropFix, DropFixError } from './sdk.js';

const scriptSrc = document.currentScript?.src ?? location.href;

async function loadWasm(source) {
  await initWasm({ module_or_path: source ?? new URL('dropfix_wasm_bg.wasm', scriptSrc) });
  return { buildIdentify };
}

const DropFix = createDropFix({ loadWasm, defaultEndpoint: () => location.origin });
DropFix.DropFixError = DropFixError;

const queued = window.DropFix?._q ?? [];
window.DropFix = DropFix;
for (const [method, args, resolve, reject] of queued) {
  try {
    const result = DropFix[method](...args);
    if (resolve) Promise.resolve(result).then(resolve, reject);
  } catch (e) {
    if (reject) reject(e);
    else console.error('[DropFix]', e);
  }
}
