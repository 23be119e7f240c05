#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what is missing, then runs the format check,
# clippy, every Rust test (core, server, cross-language), the wasm bridge tests under Node, the
# npm package's tests (including the packed-tarball consumer test in headless Chromium) and the
# demo's browser end-to-end tests. Every step runs even if an earlier one failed; a summary
# closes the run and the exit status is non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

scripts/setup.sh --test || { echo "setup failed" >&2; exit 1; }
# The Python programs (PyJWT interop, the seed snippet) run in the venv setup.sh filled.
export DROPFIX_PYTHON="${DROPFIX_PYTHON:-$PWD/.venv/bin/python}"

results=()
failed=0
# Each step is bounded (STEP_LIMIT seconds, 40 minutes unless set): a step that hangs fails
# with a line saying so and the run goes on, instead of the whole run outliving CI's limit.
STEP_LIMIT="${STEP_LIMIT:-2400}"
step() { # step NAME COMMAND...
  local name="$1"; shift
  printf '\n\033[1;34m==> %s\033[0m\n' "$name"
  local start=$SECONDS rc=0
  timeout --kill-after=30 "$STEP_LIMIT" "$@" || rc=$?
  [ "$rc" = 124 ] && echo "test.sh: '$name' did not finish within $STEP_LIMIT s and was stopped" >&2
  if [ "$rc" = 0 ]; then
    results+=("PASS  $(printf '%4ss' $((SECONDS - start)))  $name")
  else
    results+=("FAIL  $(printf '%4ss' $((SECONDS - start)))  $name")
    failed=1
  fi
}

step "cargo fmt --check" cargo fmt --all -- --check
step "clippy (host, all targets, -D warnings)" cargo clippy --workspace --all-targets -- -D warnings
step "clippy (dropfix-wasm for wasm32, browser and node-signing builds, -D warnings)" \
  bash -c 'cargo clippy -p dropfix-wasm --target wasm32-unknown-unknown --all-targets -- -D warnings &&
    cargo clippy -p dropfix-wasm --target wasm32-unknown-unknown --all-targets --features node-signing -- -D warnings'
step "dropfix-core builds for wasm32-unknown-unknown" \
  cargo build -p dropfix-core --target wasm32-unknown-unknown
# PostgreSQL for the server's PostgreSQL tests (started or installed if needed; they fail without it).
# A cluster this run started is stopped when it ends, whatever happens; one already running stays.
pg_started="$(mktemp "${TMPDIR:-/tmp}/dropfix-pg-started.XXXXXX")"
pg_url="$(DROPFIX_PG_STARTED_FILE="$pg_started" scripts/postgres.sh)" && export DROPFIX_TEST_DATABASE_URL="$pg_url" || echo "scripts/postgres.sh failed: the PostgreSQL tests will fail" >&2
# A transaction-mode PgBouncer in front of it (server/tests/pg_pooler.rs needs it; the step after
# the workspace tests runs the stores through it); stopped when this script ends, before the
# cluster this run started.
pooler_url="$(scripts/pgbouncer.sh start "${pg_url:-}")" && export DROPFIX_TEST_POOLER_URL="$pooler_url" || echo "scripts/pgbouncer.sh failed: the pooler tests will fail" >&2
trap 'scripts/pgbouncer.sh stop >/dev/null 2>&1 || true; scripts/postgres.sh --stop-started "$pg_started" || true; rm -f "$pg_started"' EXIT
step "cargo test (core, server, cross-language)" cargo test --workspace
# The PostgreSQL half of the store behaviour suite, and kill -9 of a verifier under load, with
# every store going through PgBouncer in pool_mode = transaction (no direct URL): about 2 minutes.
step "PostgreSQL through PgBouncer (transaction mode): store behaviour, kill -9 under load" \
  env DROPFIX_TEST_STORES_VIA_POOLER=1 bash -c 'cargo test -p dropfix-server --test store_behaviour postgres &
    a=$!; cargo test -p dropfix-tests --test pg_faults kill_9; b=$?; wait $a && exit $b'
# The PostgreSQL half once more over TLS: a throwaway cluster that accepts TCP only with TLS, its
# certificate from a throwaway CA, reached with sslmode=verify-full (the store behaviour suite,
# verifier instances serving identify calls on it, and a wrong CA refused); removed afterwards.
step "PostgreSQL over TLS (sslmode=verify-full): store behaviour, instances, wrong CA" \
  bash -c 'url="$(scripts/postgres-tls.sh start)" || exit 1
    DROPFIX_TEST_DATABASE_URL="$url" cargo test -p dropfix-server --test store_behaviour --test postgres_instances --test pg_tls
    rc=$?; scripts/postgres-tls.sh stop; exit $rc'
step "OpenAPI: schemathesis against a live server (docs/openapi.yaml)" tests/openapi/schemathesis.sh
step "README and DEPLOY.md: the operator commands run as written" tests/docs/readme-commands.sh
step "deploy/: systemd unit (systemd-analyze), nginx, HAProxy and Caddy configurations, Prometheus alert rules and the Grafana dashboard (promtool) checked" tests/deploy/check.sh
# Every mutant of dropfix-core must be caught by the core's own tests (cargo-mutants exits non-zero
# on any missed mutant or timeout; exclusions live in .cargo/mutants.toml with a reason each). It
# builds in its own copy of the tree, so a CARGO_TARGET_DIR shared with other builds is not used.
step "mutation testing: every mutant of dropfix-core caught (cargo mutants)" \
  env -u CARGO_TARGET_DIR cargo mutants -p dropfix-core
# The server's decision glue is mutation-tested by scripts/mutants-server.sh (about 25 minutes
# here, so not in this command; RELIABILITY.md section 8 has the run). This only checks that its
# selection still finds the glue (a rename would otherwise empty it silently): 63 mutants today.
step "scripts/mutants-server.sh still selects the decision glue (cargo mutants --list)" \
  bash -c 'n="$(scripts/mutants-server.sh --list | grep -c "server/src/\(http\|web\).rs")"; echo "$n mutants"; [ "$n" -ge 50 ]'
step "wasm bridge tests (wasm-bindgen-test, Node)" \
  env CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test -p dropfix-wasm --target wasm32-unknown-unknown --features node-signing
step "build the npm package (wasm, bindings, bundles)" npm run build
step "npm package tests (SDK, no-signing inspection, packed tarball in Chromium)" npm test
step "npm prepack: a pack ships dist/ (no install-time script), building it only when missing or stale; test.sh stops the PostgreSQL it started" node --test tests/npm/ tests/scripts/
# The packed package in a Next.js app (tests/nextjs): Turbopack and webpack builds, next start,
# route handler, edge route and server action signing for the real verifier, a client component
# in Chromium. 69-113 s here (2 cores shared with other work).
STEP_LIMIT=900 step "Next.js example: next build (Turbopack, webpack) + next start, signing on Node and edge, identify in Chromium" \
  node --test --test-timeout=900000 tests/nextjs/
STEP_LIMIT=900 step "demo end-to-end tests (headless Chromium)" npm run test:e2e

printf '\n==> Summary\n'
printf '  %s\n' "${results[@]}"
exit "$failed"
