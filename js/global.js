// Script-tag build (dist/dropfix.global.js): defines window.DropFix and replays the calls the
// loader stub (loader.js) queued before this file arrived, in order. The wasm file is fetched
// from next to this script unless init() passes `wasm`. Outside a browser (a server-side
// rendering import of `dropfix/global`) it does nothing: a global shared by every request of a
// server would be wrong, and there is no page to identify.
import { initSync, buildIdentify } from '../dist/web/dropfix_wasm.js';
import { createDropFix, DropFixError } from './sdk.js';

// The SDK fetches and compiles the module itself (timeout, retry, error codes); instantiating an
// already compiled module is cheap, so the glue's synchronous path is enough.
function loadWasm(module) {
  initSync({ module });
  return { buildIdentify };
}

if (typeof window !== 'undefined') {
  const scriptSrc = document.currentScript?.src ?? location.href;
  const existing = window.DropFix;
  const alreadyLoaded = existing && !Array.isArray(existing._q) && typeof existing.identify === 'function';
  // Loading the script twice must not replace a configured SDK with a blank one.
  if (!alreadyLoaded) {
    const DropFix = createDropFix({
      loadWasm,
      defaultWasm: () => new URL('dropfix_wasm_bg.wasm', scriptSrc),
      defaultEndpoint: () => location.origin,
    });
    DropFix.DropFixError = DropFixError;
    window.DropFix = DropFix;
    replay(DropFix, existing?._q ?? []);
  }
}

function replay(DropFix, queued) {
  for (const [method, args, resolve, reject] of queued) {
    try {
      const result = DropFix[method](...args);
      if (resolve) Promise.resolve(result).then(resolve, reject);
    } catch (e) {
      if (reject) reject(e);
      else console.error('[DropFix]', e);
    }
  }
}
