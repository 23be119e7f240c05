#!/usr/bin/env bash
# Tests a live dropfix-server against docs/openapi.yaml with schemathesis: every response must
# match the documented status codes and schemas, and nothing may answer 5xx. The server runs on
# 127.0.0.1:0 with an in-memory store and its own admin token; schemathesis sends that token, so
# the admin API is tested past its 401. Stops the server and removes its files on exit.
#
# Bounded in time: DROPFIX_SCHEMATHESIS_EXAMPLES cases per operation (default 25) and a fixed
# seed (DROPFIX_SCHEMATHESIS_SEED) so that CI runs are reproducible; vary the seed locally to
# explore more. Needs schemathesis in .venv (scripts/setup.sh --test installs it).
set -euo pipefail
cd "$(dirname "$0")/../.."

ST="${DROPFIX_SCHEMATHESIS:-$PWD/.venv/bin/schemathesis}"
[ -x "$ST" ] || { echo "schemathesis not found at $ST: run scripts/setup.sh --test" >&2; exit 1; }
EXAMPLES="${DROPFIX_SCHEMATHESIS_EXAMPLES:-25}"
SEED="${DROPFIX_SCHEMATHESIS_SEED:-20261125}"

# DROPFIX_SERVER_BIN tests another build (e.g. a release binary) instead of this checkout's.
if [ -n "${DROPFIX_SERVER_BIN:-}" ]; then
  BIN="$DROPFIX_SERVER_BIN"
else
  cargo build --quiet -p dropfix-server
  BIN="${CARGO_TARGET_DIR:-target}/debug/dropfix-server"
fi

source tests/support/server.sh
admin_token="dfadm_$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
mkdir -m 700 "$WORK/data"
# The token goes through the environment, not argv, as server/README.md recommends.
DROPFIX_ADMIN_TOKEN="$admin_token" start_server --listen 127.0.0.1:0 --data-dir "$WORK/data" \
  --ephemeral
url="http://$ADDR"
app_id="$(grep -o 'app_id=[^ ]*' "$WORK/server.out" | cut -d= -f2)"
[ -n "$app_id" ] || { echo "server did not start:"; cat "$WORK/server.out" "$WORK/server.err"; exit 1; } >&2
echo "dropfix-server at $url, dev workspace $app_id" >&2

# The spec's examples name a placeholder app id; the copy under test names this server's dev
# workspace, so that the example calls reach a real workspace (200/202 answers, admin reads of
# an existing workspace) instead of only 401 unknown_app / 404.
sed "s/app_3b6c1f0e9a2d4c57/$app_id/g" docs/openapi.yaml >"$WORK/openapi.yaml"

status=0
# One worker: with several, hypothesis parses lambda sources from threads, which CPython 3.11
# sometimes fails with "SystemError: AST constructor recursion depth mismatch" (a runner crash,
# not a server finding). Run from the temporary dir: schemathesis keeps a cache of past failures (.schemathesis/) in
# its working directory and replays them, which would make one checkout's runs differ from CI's.
(cd "$WORK" && "$ST" run "$WORK/openapi.yaml" \
  --url "$url" \
  --header "Authorization: Bearer $admin_token" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$EXAMPLES" \
  --seed "$SEED" \
  --workers 1 \
  --request-timeout 10 \
  --no-color \
  --output-sanitize true) \
  || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server stderr (last 40 lines)" >&2
  tail -n 40 "$WORK/server.err" >&2
fi
exit "$status"
