#!/usr/bin/env bash
# Installs the wasm-bindgen CLI at exactly the wasm-bindgen version in Cargo.lock (the CLI and the
# library must match), unless that version is already on PATH. No `--locked`: the registry here
# lacks one of the CLI's locked dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$version" ] || { echo "wasm-bindgen not found in Cargo.lock" >&2; exit 1; }
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
  echo "[setup] cargo install wasm-bindgen-cli --version $version (about 3 minutes)" >&2
  cargo install wasm-bindgen-cli --version "$version"
fi
