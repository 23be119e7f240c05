#!/usr/bin/env bash
# Timing report for seed::verify (see tests/reliability/timing.rs). Not part of CI: it reports,
# it does not assert. Knobs: TIMING_ROUNDS (default 2000), TIMING_BATCH (default 500).
# Run it on a quiet machine; pinning to one core helps: taskset -c 1 tests/reliability/timing.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo run --quiet --release -p dropfix-tests --example timing
