// The signing core for Node, Deno and any runtime that compiles WebAssembly from bytes: the wasm
// travels inside a module as base64, so bundled server code (Next.js with Turbopack or webpack,
// esbuild, ...) needs no file next to it and no bundler configuration. Compiled on first use.
import { initSync, signUser, claimsKey, signClaims, claimsPayload } from '../dist/node/dropfix_wasm.js';
import base64 from '../dist/node/dropfix_wasm_base64.js';

const api = { signUser, claimsKey, signClaims, claimsPayload };
let ready = false;

function bytes() {
  const text = atob(base64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/** The core's signing functions, the wasm compiled and instantiated on the first call. */
export function core() {
  if (!ready) {
    try {
      initSync({ module: new WebAssembly.Module(bytes()) });
    } catch (e) {
      // Edge runtimes (Next.js edge routes and middleware, Vercel, Cloudflare Workers) refuse to
      // compile WebAssembly from bytes; they are given js/core-edge.mjs by the `edge-light` and
      // `workerd` conditions. A runtime that matched neither lands here.
      throw new Error(
        'DropFix: this runtime refuses to compile WebAssembly at run time, so dropfix/server cannot ' +
          "sign here. On an edge runtime, bundle with the 'edge-light' or 'workerd' export " +
          'condition (Next.js and wrangler do), or sign in a Node.js route. ' +
          `(${e?.message ?? e})`,
        { cause: e },
      );
    }
    ready = true;
  }
  return api;
}
