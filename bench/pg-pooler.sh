#!/usr/bin/env bash
# One verifier on PostgreSQL through PgBouncer in transaction mode against the same verifier
# build connected directly (BENCHMARKS.md, "PostgreSQL behind a transaction pooler"), loopback
# only, alternated in one run (ROUNDS x 2 x SECONDS_PER_RUN): every call is a new user id (an
# unsigned identify call, 202, stored as a new row by the batched upsert), so each request is a
# write. Both verifiers use the same database and flags; the pooled one has nothing but the
# pooler's URL. FAILS when any answer is not 2xx. PostgreSQL comes from scripts/postgres.sh and
# PgBouncer from scripts/pgbouncer.sh (stopped on exit).
# Knobs: ROUNDS (5), SECONDS_PER_RUN (5), CONNECTIONS (64), DROPFIX_BIN (default: this tree's
# release build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-5}"; SECS="${SECONDS_PER_RUN:-5}"; CONN="${CONNECTIONS:-64}"
source bench/common.sh
need_wrk
URL="$(scripts/postgres.sh 2>/dev/null | tail -1)"
DB="dropfix_bench_pooler_$$"
psql -q "$URL" -c "CREATE DATABASE $DB" >/dev/null
# Not under $WORK: PgBouncer runs as the postgres user when started as root.
export DROPFIX_TEST_PGBOUNCER_DIR="/tmp/dropfix-pgbouncer-bench-$$"
trap 'scripts/pgbouncer.sh stop >/dev/null 2>&1 || true; bench_cleanup; psql -q "$URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
POOLER="$(scripts/pgbouncer.sh start "$URL" | tail -1)"
DIRECT_URL="${URL%/*}/$DB"; POOLED_URL="${POOLER%/*}/$DB"
export DROPFIX_MASTER_KEYS="$("$BIN" master-key generate --id mk1)"
declare -A URL_OF
start() { # NAME DATABASE_URL EXTRA_ARGS...
  local name="$1" db="$2"; shift 2
  mkdir -m 700 "$WORK/$name"
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/$name" --admin-token bench-token-bench-token \
    --rate-limit-per-ip 0 --rate-limit-per-app 0 --database-url "$db" "$@" \
    >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=($!)
  wait_line "$WORK/$name.out" "listening on"
  URL_OF[$name]="$(grep -o 'http://[^ ]*' "$WORK/$name.out" | head -1)"
}
start direct "$DIRECT_URL" --create-dev-workspace
start pooled "$POOLED_URL"
APP="$(grep -o 'app_id=[^ ]*' "$WORK/direct.out" | cut -d= -f2)"
# It says so once, when its probe notification has not come within 5 s.
wait_line "$WORK/pooled.err" "by the 1 s poll only"

RESULTS="$WORK/results.tsv"
measure() { # NAME ROUND
  new_ids_lua "$APP" "$1-r$2" >"$WORK/$1-$2.lua"
  wrk -t1 -c"$CONN" -d"${SECS}s" --latency -s "$WORK/$1-$2.lua" "${URL_OF[$1]}" >"$WORK/wrk-$1-$2.txt"
  python3 - "$1" "$WORK/wrk-$1-$2.txt" >>"$RESULTS" <<'PY'
import re, sys
name, out = sys.argv[1:]
t = open(out).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)", t, re.M); v = float(m.group(1))
p99 = v / 1000 if m.group(2) == "us" else v if m.group(2) == "ms" else v * 1000
print(f"{name}\t{rps}\t{p99}\t{int(bad.group(1)) if bad else 0}")
PY
  tail -1 "$RESULTS" | awk -F'\t' '{ printf "  %-7s %8.0f req/s   p99 %7.2f ms   non-2xx %d\n", $1, $2, $3, $4 }'
}
echo "machine: $(nproc) cores; $CONN connections, ${SECS}s per run, $ROUNDS rounds; every call a new user id"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r"
  if [ $((r % 2)) = 1 ]; then measure direct "$r"; measure pooled "$r"; else measure pooled "$r"; measure direct "$r"; fi
done
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
by = {}
for r in rows: by.setdefault(r[0], []).append(r)
med = lambda n, i: statistics.median(float(r[i]) for r in by[n])
print("\nmedians over rounds")
for n in ("direct", "pooled"):
    print(f"  {n:7} {med(n,1):8.0f} req/s   p99 {med(n,2):7.2f} ms")
print(f"\npooled / direct req/s (medians): {med('pooled',1)/med('direct',1):.2f}x   (aim >= 0.8x)")
bad = sum(int(r[3]) for r in rows)
if bad:
    print(f"FAIL: {bad} answers were not 2xx"); sys.exit(1)
PY
