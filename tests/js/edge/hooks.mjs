// Module hooks that make Node resolve and load `dropfix/server` the way an edge runtime's bundler
// does (Next.js edge routes, Vercel, wrangler), for tests/js/edge.test.mjs (run with
// `--conditions=edge-light` or `--conditions=workerd`):
// - a `.wasm?module` import becomes a WebAssembly.Module compiled ahead of the code that imports
//   it (the bundler's precompilation), in another realm when DROPFIX_TEST_OTHER_REALM is set (as
//   Next.js's edge sandbox does); after that, compiling wasm is refused, as on an edge runtime;
// - a `node:` import from the package is refused: those runtimes have no Node modules.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

let root;
export function initialize(data) {
  ({ root } = data);
}

// The package's own files (the precompiled `?module` stands for the bundler's output, not them).
const fromPackage = (url) => typeof url === 'string' && url.startsWith(root) && !url.includes('/tests/') && !url.endsWith('?module');

export async function resolve(specifier, context, next) {
  if (specifier.startsWith('node:') && fromPackage(context.parentURL)) {
    throw new Error(`${context.parentURL} imports ${specifier}, which an edge runtime does not have`);
  }
  if (specifier.endsWith('.wasm?module')) {
    return { url: new URL(specifier, context.parentURL).href, shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (url.endsWith('.wasm?module')) {
    const base64 = readFileSync(fileURLToPath(url.slice(0, -'?module'.length))).toString('base64');
    return {
      format: 'module',
      shortCircuit: true,
      source: `import { runInNewContext } from 'node:vm';
        const b = atob(${JSON.stringify(base64)});
        const bytes = new Uint8Array(b.length);
        for (let i = 0; i < b.length; i++) bytes[i] = b.charCodeAt(i);
        const compiled = process.env.DROPFIX_TEST_OTHER_REALM
          ? runInNewContext('new WebAssembly.Module(bytes)', { bytes })
          : new WebAssembly.Module(bytes);
        // From here on this runtime refuses to compile wasm, as edge runtimes do.
        const refuse = () => { throw new WebAssembly.CompileError('Wasm code generation disallowed by embedder'); };
        const Module = function Module() { refuse(); };
        Module.prototype = WebAssembly.Module.prototype;
        WebAssembly.Module = Module;
        WebAssembly.compile = async () => refuse();
        WebAssembly.compileStreaming = async () => refuse();
        const instantiate = WebAssembly.instantiate;
        WebAssembly.instantiate = async (m, i) => (m instanceof WebAssembly.Module ? instantiate(m, i) : refuse());
        export default compiled;`,
    };
  }
  return next(url, context);
}
