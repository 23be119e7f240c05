#!/usr/bin/env bash
# Every figure in BENCHMARKS.md, in one command (about 25 minutes on 2 cores without the 10 M
# growth row, loopback only):
#   1. core verification vs the SHA-256 floor (criterion), and a token's verification by
#      algorithm: HS256 next to the public-key tokens of issuers (ES256, EdDSA, RS256, PS256),
#   2. the verifier under load vs the Node reference, durable vs in-memory store (wrk),
#   3. the browser SDK's gzipped bytes and time to the first identify request (headless Chromium),
#   4. the durable hot path vs our own floor and the two Node peers, and its growth with 10 k and
#      1 M stored users on both stores, ids uniform and Zipf (bench/growth.sh; 10 M with
#      GROWTH_10M=1: a 1.7 GB SQLite file and a 3.7 GB database, about 10 more minutes),
#   5. PostgreSQL: one and two verifiers on one database, batched vs one row per transaction,
#   6. the 60 s soak figures quoted in section 2 (also in RELIABILITY.md).
# Installs what it needs the way the test command does (scripts/setup.sh), plus wrk.
# Knobs: ROUNDS (load rounds, 3), SDK_RUNS (page loads, 20), GROWTH_10M=1, SKIP_SOAK=1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
command -v wrk >/dev/null || { sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }; sudo_ apt-get install -y -qq wrk >/dev/null; }
section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

section "1. core: verification vs the floor"
cargo bench -p dropfix-core --bench verify -- --warm-up-time 2 --measurement-time 5
cargo bench -p dropfix-server --bench issuer_tokens -- --warm-up-time 2 --measurement-time 5
section "2. verifier under load vs the Node reference"
ROUNDS="${ROUNDS:-3}" bench/load.sh
section "3. browser SDK"
npm run --silent build
scripts/size.sh
node bench/sdk.mjs "${SDK_RUNS:-20}"
section "4. the durable hot path vs our floor, and growth with stored users"
bench/hotpath.sh
SIZES="10000 1000000 $([ "${GROWTH_10M:-0}" = 1 ] && echo 10000000)" bench/growth.sh
section "5. PostgreSQL"
ROUNDS=2 bench/pg.sh
section "5b. PostgreSQL behind a transaction pooler"
ROUNDS=5 bench/pg-pooler.sh
if [ "${SKIP_SOAK:-0}" != 1 ]; then
  section "6. soak"
  tests/reliability/soak.sh
fi
