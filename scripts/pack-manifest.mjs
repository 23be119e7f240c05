// npm's `prepack` and `postpack` hooks (package.json) run this, so that the tarball `npm pack`
// (and so `npm publish` and an install from git) makes carries no install-time script: the
// checkout needs `prepare` (npm runs only that hook when it installs from git, to build dist/ in
// the clone), but a package installed from the tarball must run nothing (npm 11 warns about any
// such script not covered by `allowScripts`). `disable` renames `prepare` to `_prepare` in
// package.json just before npm reads the files to pack; `enable` renames it back afterwards, as
// the `pinst` tool does for `postinstall`. The file is rewritten only when the key is there, with
// the formatting npm itself uses (two spaces, final newline).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const [from, to] = { disable: ['prepare', '_prepare'], enable: ['_prepare', 'prepare'] }[process.argv[2]] ?? [];
if (!from) {
  console.error('usage: node scripts/pack-manifest.mjs disable|enable');
  process.exit(2);
}
const file = fileURLToPath(new URL('../package.json', import.meta.url));
const manifest = JSON.parse(readFileSync(file, 'utf8'));
if (manifest.scripts && from in manifest.scripts) {
  // Same key order: rebuild the object with the one key renamed.
  manifest.scripts = Object.fromEntries(Object.entries(manifest.scripts).map(([k, v]) => [k === from ? to : k, v]));
  writeFileSync(file, `${JSON.stringify(manifest, null, 2)}\n`);
}
