#!/usr/bin/env bash
# npm's `prepack` and `prepare` hooks (package.json), so that what npm packs always carries dist/
# (the browser bundles and both wasm builds), which is never committed. `prepack` covers
# `npm pack` and `npm publish`; an install from git packs the clone without running `prepack`
# (npm runs only `prepare` there), hence `prepare` too, which npm also runs after a plain
# `npm install` in this checkout and for `npm install /path/to/this/checkout`. (The tarball's
# package.json carries no `prepare`: scripts/pack-manifest.mjs renames it while npm packs, so a
# tarball installs without running any script.)
#
# Builds with scripts/build-npm.sh only when dist/ is missing or older than what it is built
# from, so packing right after `npm run build` (scripts/test.sh, the packed-tarball test) costs
# nothing. An install from git needs what the build needs: Rust with the wasm32
# target (build-npm.sh installs the pinned wasm-bindgen CLI and the npm dev tools itself).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the package's `files` ships out of dist/.
outputs=(dist/dropfix.mjs dist/dropfix.global.js dist/dropfix_wasm_bg.wasm dist/node/dropfix_wasm.js
  dist/node/dropfix_wasm_bg.wasm dist/node/dropfix_wasm_base64.js)
# What those are built from.
inputs=(js wasm core Cargo.toml Cargo.lock scripts/build-npm.sh)

why=""
for out in "${outputs[@]}"; do
  if [ ! -f "$out" ]; then
    why="$out is missing"
    break
  fi
  newer="$(find "${inputs[@]}" -type f -newer "$out" -not -path '*/target/*' -print -quit 2>/dev/null || true)"
  if [ -n "$newer" ]; then
    why="$newer changed after $out was built"
    break
  fi
done

if [ -z "$why" ]; then
  echo "prepack: dist/ is up to date" >&2
  exit 0
fi
echo "prepack: building dist/ ($why)" >&2
bash scripts/build-npm.sh
