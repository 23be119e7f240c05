// ESM entry of the browser SDK: `import { DropFix } from 'dropfix'`.
// The wasm file ships next to this bundle (dist/dropfix_wasm_bg.wasm); bundlers that follow
// `new URL(..., import.meta.url)` (Vite, webpack 5, Parcel) copy it. With esbuild, copy it next
// to your bundle or pass `DropFix.init({ appId, wasm: '/path/to/dropfix_wasm_bg.wasm' })`.
// Importing this module has no side effect, so server-side rendering can import it; identify()
// there rejects with `not_in_browser`.
import { initSync, buildIdentify } from '../dist/web/dropfix_wasm.js';
import { createDropFix, DropFixError } from './sdk.js';

// The SDK fetches and compiles the module itself (timeout, retry, error codes); instantiating an
// already compiled module is cheap, so the glue's synchronous path is enough.
function loadWasm(module) {
  initSync({ module });
  return { buildIdentify };
}

export const DropFix = createDropFix({
  loadWasm,
  defaultWasm: () => new URL('./dropfix_wasm_bg.wasm', import.meta.url),
  defaultEndpoint: () => globalThis.location?.origin ?? 'http://127.0.0.1:8787',
});
export { DropFixError };
export default DropFix;
