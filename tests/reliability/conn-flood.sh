#!/usr/bin/env bash
# Connection flood (not in CI; figures in RELIABILITY.md section 7).
#
# Starts the release server (or $BIN) with a 60 s header timeout, so that memory is measured
# before any connection times out, then tests/reliability/conn-flood.mjs opens CONNECTIONS
# connections from SOURCES loopback addresses, each sending HEADER_KB of a header that never
# ends, and reports the server's RSS while they hold and how long a normal /healthz from another
# address takes. Extra server flags go in SERVER_ARGS (e.g. "--max-connections-per-ip 0").
#
# Usage: tests/reliability/conn-flood.sh   (knobs: CONNECTIONS=2000 HEADER_KB=400 SOURCES=8
#        SERVER_ARGS= BIN=)
set -euo pipefail
cd "$(dirname "$0")/../.."

CONNECTIONS="${CONNECTIONS:-2000}"
HEADER_KB="${HEADER_KB:-400}"
SOURCES="${SOURCES:-8}"
if [ -z "${BIN:-}" ]; then
  cargo build --quiet --release -p dropfix-server
  BIN="${CARGO_TARGET_DIR:-target}/release/dropfix-server"
fi

source tests/support/server.sh

# shellcheck disable=SC2086 # SERVER_ARGS is a list of flags
start_server --listen 127.0.0.1:0 --ephemeral --admin-token dfadm_flood_admin_token \
  --header-timeout-secs 60 ${SERVER_ARGS:-}
ulimit -n 20000 2>/dev/null || true
node tests/reliability/conn-flood.mjs "$ADDR" "$SERVER_PID" "$CONNECTIONS" "$HEADER_KB" "$SOURCES"
