#!/usr/bin/env bash
# Prints what a page downloads for the browser SDK, raw and gzipped (-9), for the ESM build and
# the script-tag build (each is its JS plus the wasm). Run `npm run build` first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/dropfix_wasm_bg.wasm ] || { echo "no dist/: run npm run build" >&2; exit 1; }
gz() { gzip -9c "$1" | wc -c; }
raw() { wc -c <"$1"; }
wasm=dist/dropfix_wasm_bg.wasm
printf '%-28s %9s %9s\n' file bytes gzipped
for f in "$wasm" dist/dropfix.mjs dist/dropfix.global.js js/loader.js; do
  printf '%-28s %9d %9d\n' "$f" "$(raw "$f")" "$(gz "$f")"
done
esm=$(( $(gz "$wasm") + $(gz dist/dropfix.mjs) ))
global=$(( $(gz "$wasm") + $(gz dist/dropfix.global.js) ))
printf '\npage total, ESM build:        %6d bytes gzipped (%.1f KB)\n' "$esm" "$(echo "$esm/1000" | bc -l)"
printf 'page total, script-tag build: %6d bytes gzipped (%.1f KB)\n' "$global" "$(echo "$global/1000" | bc -l)"
