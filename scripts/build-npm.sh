#!/usr/bin/env bash
# Builds the npm package into dist/ (never committed):
#   dist/web/        wasm-bindgen glue (--target web) of the browser build (no signing)
#   dist/dropfix_wasm_bg.wasm   that wasm, optimised with wasm-opt -Oz (npm binaryen)
#   dist/dropfix.mjs            ESM bundle of js/index.js (import { DropFix } from 'dropfix')
#   dist/dropfix.global.js      script-tag bundle of js/global.js (window.DropFix)
#   dist/node/       the node-signing build (--target nodejs) for `dropfix/server`
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/install-wasm-bindgen.sh >&2
[ -x node_modules/.bin/esbuild ] || npm ci --no-audit --no-fund --loglevel=error

PROFILE=wasm-release
TARGET=wasm32-unknown-unknown
WASM="${CARGO_TARGET_DIR:-target}/$TARGET/$PROFILE/dropfix_wasm.wasm"
rm -rf dist
mkdir -p dist/web dist/node

echo "building the browser wasm (no signing)" >&2
cargo build --quiet -p dropfix-wasm --target "$TARGET" --profile "$PROFILE"
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir dist/web --out-name dropfix_wasm "$WASM"
node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
  --strip-debug --strip-producers dist/web/dropfix_wasm_bg.wasm -o dist/dropfix_wasm_bg.wasm
rm dist/web/dropfix_wasm_bg.wasm

echo "building the Node wasm (node-signing)" >&2
cargo build --quiet -p dropfix-wasm --target "$TARGET" --profile "$PROFILE" --features node-signing
wasm-bindgen --target nodejs --no-typescript --out-dir dist/node --out-name dropfix_wasm "$WASM"
node_modules/.bin/wasm-opt -O3 --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
  dist/node/dropfix_wasm_bg.wasm -o dist/node/dropfix_wasm_bg.wasm
# The package is "type": "module"; the nodejs glue is CommonJS.
echo '{ "type": "commonjs" }' > dist/node/package.json

echo "bundling" >&2
node_modules/.bin/esbuild js/index.js --bundle --format=esm --minify --target=es2020 \
  --outfile=dist/dropfix.mjs --log-level=warning
node_modules/.bin/esbuild js/global.js --bundle --format=iife --minify --target=es2020 \
  --define:import.meta.url=undefined --outfile=dist/dropfix.global.js --log-level=warning
echo "built dist/ ($(du -sh dist | cut -f1))" >&2
