// The signing core for edge runtimes (the `edge-light` and `workerd` export conditions: Next.js
// edge routes and middleware, Vercel Edge Functions, Cloudflare Workers). They refuse to compile
// WebAssembly from bytes at run time, but their bundlers turn a `.wasm?module` import into a
// WebAssembly.Module compiled ahead of the request, which may be instantiated synchronously; so
// the API is the same, synchronous one as in Node.
import wasm from '../dist/node/dropfix_wasm_bg.wasm?module';
import { initSync, signUser, claimsKey, signClaims, claimsPayload } from '../dist/node/dropfix_wasm.js';

const api = { signUser, claimsKey, signClaims, claimsPayload };
let ready = false;

/** The WebAssembly.Module the bundler gave, usable by this realm's `instanceof`. */
function compiledModule() {
  if (wasm instanceof WebAssembly.Module) return wasm;
  // Next.js's edge sandbox compiles the module outside the sandbox's realm, where `instanceof`
  // fails (and the glue would then try to compile it as bytes). It is a module all the same, as its
  // tag says; adopting this realm's prototype lets the glue instantiate it.
  if (Object.prototype.toString.call(wasm) === '[object WebAssembly.Module]') {
    return Object.setPrototypeOf(wasm, WebAssembly.Module.prototype);
  }
  throw new Error(
    "DropFix: this bundler did not turn dropfix/server's `.wasm?module` import into a compiled " +
      `WebAssembly.Module (it gave ${Object.prototype.toString.call(wasm)}), and an edge runtime ` +
      'does not compile wasm at run time. Sign in a Node.js route instead, or bundle for ' +
      "Node.js (without the 'edge-light' and 'workerd' conditions).",
  );
}

/** The core's signing functions, the precompiled module instantiated on the first call. */
export function core() {
  if (!ready) {
    initSync({ module: compiledModule() });
    ready = true;
  }
  return api;
}
