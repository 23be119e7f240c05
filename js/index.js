// ESM entry of the browser SDK: `import { DropFix } from 'dropfix'`.
// The wasm file ships next to this bundle (dist/dropfix_wasm_bg.wasm); bundlers that follow
// `new URL(..., import.meta.url)` (Vite, webpack 5, Parcel) copy it. With esbuild, copy it next
// to your bundle or pass `DropFix.init({ appId, wasm: '/path/to/dropfix_wasm_bg.wasm' })`.
import initWasm, { buildIdentify } from '../dist/web/dropfix_wasm.js';
import { createDropFix, DropFixError } from './sdk.js';

async function loadWasm(source) {
  await initWasm({ module_or_path: source ?? new URL('./dropfix_wasm_bg.wasm', import.meta.url) });
  return { buildIdentify };
}

function defaultEndpoint() {
  return globalThis.location?.origin ?? 'http://127.0.0.1:8787';
}

export const DropFix = createDropFix({ loadWasm, defaultEndpoint });
export { DropFixError };
export default DropFix;
