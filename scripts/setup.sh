#!/usr/bin/env bash
# Installs what `scripts/run.sh` (--run) or `scripts/test.sh` (--test) needs, skipping whatever is
# already there, so both commands work on a fresh machine. Reachable registries only: crates.io,
# npm, PyPI and Debian's apt (see README "Toolchain").
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:---test}"
log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Debian packages: Ruby (+ ruby-jwt, rbnacl) for the seed/JWT interop tests, Chromium for browser tests.
if [ "$mode" = "--test" ]; then
  missing=()
  command -v ruby >/dev/null || missing+=(ruby)
  ruby -e 'require "jwt"' >/dev/null 2>&1 || missing+=(ruby-jwt)
  # ruby-jwt signs EdDSA through rbnacl (tests/issuer_interop.rs).
  ruby -e 'require "rbnacl"' >/dev/null 2>&1 || missing+=(ruby-rbnacl)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
  command -v python3 >/dev/null || missing+=(python3)
  # tests/docs/readme-commands.sh runs the README's operator commands, which use both.
  command -v jq >/dev/null || missing+=(jq)
  command -v openssl >/dev/null || missing+=(openssl)
  # tests/tls.rs and docs/DEPLOY.md speak HTTPS to the verifier with it.
  command -v curl >/dev/null || missing+=(curl)
  # tests/deploy/check.sh checks deploy/'s configurations with the programs that run them.
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v caddy >/dev/null || missing+=(caddy)
  # ... and deploy/prometheus's alert rules and the Grafana dashboard's queries with promtool.
  # Debian ships it in the prometheus package, which also installs the Prometheus server (started
  # as a service where systemd runs); only promtool is used.
  command -v promtool >/dev/null || missing+=(prometheus)
  # The PostgreSQL tests also run through a transaction-mode pooler (scripts/pgbouncer.sh).
  command -v pgbouncer >/dev/null || missing+=(pgbouncer)
  # Debian splits ensurepip (which `python3 -m venv` needs) into python3-venv.
  python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# --- Python: PyJWT and schemathesis in a virtual environment (.venv, git-ignored), never in the
# system Python (as root that would change what every other program on the machine imports).
# scripts/test.sh points the tests at .venv/bin/python with DROPFIX_PYTHON.
if [ "$mode" = "--test" ]; then
  reqs=scripts/requirements-test.txt
  if [ ! -x .venv/bin/python ]; then
    log "python3 -m venv .venv"
    python3 -m venv .venv
  fi
  # Reinstall only when the pinned list changed since the last install.
  if ! cmp -s "$reqs" .venv/.dropfix-requirements; then
    log "pip install -r $reqs (into .venv)"
    .venv/bin/python -m pip install -q --disable-pip-version-check -r "$reqs"
    cp "$reqs" .venv/.dropfix-requirements
  fi
fi

# --- Rust: the wasm target and the wasm-bindgen CLI pinned to the version in Cargo.lock.
rustup target list --installed | grep -qx wasm32-unknown-unknown \
  || { log "rustup target add wasm32-unknown-unknown"; rustup target add wasm32-unknown-unknown; }
if [ "$mode" = "--test" ]; then
  # Mutation testing of dropfix-core (scripts/test.sh); the version the figures were measured with.
  cargo mutants --version >/dev/null 2>&1 \
    || { log "cargo install cargo-mutants"; cargo install cargo-mutants --version 27.1.0 --locked; }
  rustup component list --installed | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
fi
scripts/install-wasm-bindgen.sh

# --- npm: the package's dev tools (esbuild, binaryen, playwright-core) and the test fixtures.
npm_ci() { # npm ci in $1 unless its node_modules is already installed from the current lockfile
  local dir="$1"
  [ -f "$dir/package-lock.json" ] || return 0
  if [ ! -f "$dir/node_modules/.package-lock.json" ] \
    || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
npm_ci .
npm_ci js-demo
[ "$mode" = "--test" ] && npm_ci tests/jwt
# The Next.js example's next, react and typescript (tests/nextjs; about 390 MB, kept between runs).
[ "$mode" = "--test" ] && npm_ci tests/nextjs
log "ready ($mode)"
