#!/usr/bin/env bash
# Mutation testing of the verifier's decision glue: server/src/http.rs, the functions between the
# wire and dropfix-core's decision (routing, origin and CORS handling, content type, the identify
# handler), and the body limits every route reads with (server/src/web.rs, read_body). Each mutant
# is caught only if a server test fails: tests/api.rs (the decision table over real HTTP, with the
# store checked) and tests/hardening.rs (limits, origins, proxies, against the binary).
#
# Not part of ./scripts/test.sh (it checks only that the selection below still finds the glue):
# each mutant rebuilds dropfix-server and its two test binaries; 63 mutants took 23 minutes on
# 2 cores with --in-place (RELIABILITY.md section 8).
# Exits non-zero when a mutant is missed or times out. Results in mutants.out/ (outcomes.json,
# missed.txt, caught.txt, unviable.txt).
#
# Extra arguments go to cargo-mutants: --list shows the mutants without running them; --in-place
# mutates this tree and builds in its target directory (faster: no copy, no fresh build of the
# dependencies; do not edit the tree meanwhile); --jobs N builds N copies at once.
set -euo pipefail
cd "$(dirname "$0")/.."
# As scripts/setup.sh: the version the figures were measured with, when none is installed.
cargo mutants --version >/dev/null 2>&1 || cargo install cargo-mutants --version 27.1.0 --locked
# The decision glue: every function of http.rs and web.rs on the identify path, by mutant name.
GLUE='in (handle|preflight|read_body|identify)$'
GLUE="$GLUE|replace (origin_of|allow_origin|identify_route|is_json_content_type|read_body|identify|preflight) "
exec cargo mutants -p dropfix-server --file server/src/http.rs --file server/src/web.rs --re "$GLUE" "$@" \
  -- --test api --test hardening
