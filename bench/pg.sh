#!/usr/bin/env bash
# The PostgreSQL figures (docs/SCALING.md, BENCHMARKS.md "PostgreSQL"), loopback only, bounded
# in time (about ROUNDS x 4 x SECONDS_PER_RUN), same 70/10/10/10 mix as bench/hotpath.sh:
#   sqlite       one verifier on the embedded store (the default)
#   pg-1         one verifier on PostgreSQL (batched: one UNNEST upsert per batch)
#   pg-2         two verifiers on the same PostgreSQL, each driven by its own wrk at half the
#                connections (req/s summed)
#   pg-1-row     one verifier on PostgreSQL committing one row per transaction
#                (DROPFIX_BENCH_PG_ROW_COMMITS=1: each call its own transaction, concurrently on the pool: the A/B of batching)
#   pg-1-before  with DROPFIX_BIN_BEFORE set: one verifier of that other build on a database of
#                its own in the same PostgreSQL (an older build refuses a newer schema), for a
#                before/after of a change in one alternated run
# and, for sqlite, pg-1 (and pg-1-before), the same again with every call a new user id
# (`*-new`: unsigned calls, 202, each a new row), which must all be 2xx.
# For each: req/s, p99, the verifiers' CPU per request and PostgreSQL's CPU per stored identify
# (user + system time of every postgres process, from /proc), and FAILS when a setup's share of
# non-2xx answers is not the mix's 20% (+-1 point). Rate limits are off. PostgreSQL comes from
# scripts/postgres.sh (started or installed as the test command does).
# Knobs: ROUNDS (3), SECONDS_PER_RUN (5), CONNECTIONS (64), IDS (2000), DROPFIX_BIN (default:
# this tree's release build), DROPFIX_BIN_BEFORE (none).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"; SECS="${SECONDS_PER_RUN:-5}"; CONN="${CONNECTIONS:-64}"; IDS="${IDS:-2000}"
source bench/common.sh
need_wrk
URL="$(scripts/postgres.sh 2>/dev/null | tail -1)"
DB="dropfix_bench_$$"
psql -q "$URL" -c "CREATE DATABASE $DB" >/dev/null
DB_URL="${URL%/*}/$DB"
pg_cleanup() {
  bench_cleanup
  psql -q "$URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  psql -q "$URL" -c "DROP DATABASE IF EXISTS ${DB}_before WITH (FORCE)" >/dev/null 2>&1 || true
}
trap pg_cleanup EXIT
export DROPFIX_MASTER_KEYS="$("$BIN" master-key generate --id mk1)"
declare -A PID_OF URL_OF
start() { # NAME EXTRA_ARGS...   (extra env through the environment of the call; BUILD=path)
  local name="$1"; shift
  mkdir -m 700 "$WORK/$name"
  "${BUILD:-$BIN}" serve --listen 127.0.0.1:0 --data-dir "$WORK/$name" --admin-token bench \
    --rate-limit-per-ip 0 --rate-limit-per-app 0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=($!); PID_OF[$name]=$!
  wait_line "$WORK/$name.out" "listening on"
  URL_OF[$name]="$(grep -o 'http://[^ ]*' "$WORK/$name.out" | head -1)"
}
start sqlite
start pg-a --database-url "$DB_URL" --create-dev-workspace   # the workspace the mix calls
start pg-b --database-url "$DB_URL"
DROPFIX_BENCH_PG_ROW_COMMITS=1 start pg-row --database-url "$DB_URL"
BEFORE="${DROPFIX_BIN_BEFORE:+$(realpath "$DROPFIX_BIN_BEFORE")}"
if [ -n "$BEFORE" ]; then
  psql -q "$URL" -c "CREATE DATABASE ${DB}_before" >/dev/null
  BUILD="$BEFORE" start pg-before --database-url "${DB_URL}_before" --create-dev-workspace
  APP_B="$(grep -o 'app_id=[^ ]*' "$WORK/pg-before.out" | cut -d= -f2)"
  SECRET_B="$(grep -o 'secret=[^ ]*' "$WORK/pg-before.out" | cut -d= -f2)"
fi
APP="$(grep -o 'app_id=[^ ]*' "$WORK/pg-a.out" | cut -d= -f2)"
SECRET="$(grep -o 'secret=[^ ]*' "$WORK/pg-a.out" | cut -d= -f2)"
APP_S="$(grep -o 'app_id=[^ ]*' "$WORK/sqlite.out" | cut -d= -f2)"
SECRET_S="$(grep -o 'secret=[^ ]*' "$WORK/sqlite.out" | cut -d= -f2)"
source bench/mix.sh
mix "$APP" "$SECRET" "$IDS" 7 1 1 1 >"$WORK/mix-pg.lua"
mix "$APP_S" "$SECRET_S" "$IDS" 7 1 1 1 >"$WORK/mix-sqlite.lua"
[ -n "$BEFORE" ] && mix "$APP_B" "$SECRET_B" "$IDS" 7 1 1 1 >"$WORK/mix-before.lua"

cpu_of() { local t=0; for p in "$@"; do t="$(awk -v t="$t" -v hz="$(getconf CLK_TCK)" '{ print t + ($14 + $15) / hz }' "/proc/$p/stat")"; done; echo "$t"; }
pg_cpu() { cpu_of $(pgrep -x postgres || pgrep -f 'postgres:' ) ; }
RESULTS="$WORK/results.tsv"
measure() { # LABEL LUA "name..."  (one wrk per verifier, connections split)
  local label="$1" lua="$2"; shift 2
  local names=("$@") n="${#names[@]}" pids=() v0 v1 p0 p1
  for nm in "${names[@]}"; do pids+=("${PID_OF[$nm]}"); done
  v0="$(cpu_of "${pids[@]}")"; p0="$(pg_cpu)"
  local outs=() wrks=()
  for nm in "${names[@]}"; do
    wrk -t1 -c"$((CONN / n))" -d"${SECS}s" --latency -s "$lua" "${URL_OF[$nm]}" >"$WORK/wrk-$label-$nm.txt" &
    wrks+=($!)
    outs+=("$WORK/wrk-$label-$nm.txt")
  done
  wait "${wrks[@]}"
  v1="$(cpu_of "${pids[@]}")"; p1="$(pg_cpu)"
  python3 - "$label" "$v0" "$v1" "$p0" "$p1" "${outs[@]}" >>"$RESULTS" <<'PY'
import re, sys
label, v0, v1, p0, p1, *outs = sys.argv[1:]
rps = total = ok = 0.0; p99 = 0.0
def ms(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s); v = float(m.group(1))
    return v / 1000 if m.group(2) == "us" else v if m.group(2) == "ms" else v * 1000
for o in outs:
    t = open(o).read()
    if not re.search(r"99%\s+[\d.]+(us|ms|s)\b", t):
        sys.exit(f"{label}: wrk measured nothing:\n{t}")
    rps += float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    n = float(re.search(r"(\d+) requests in", t).group(1)); total += n
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t); ok += n - (float(bad.group(1)) if bad else 0)
    p99 = max(p99, ms(re.search(r"^\s*99%\s+(\S+)", t, re.M).group(1)))
print("\t".join(map(str, [label, rps, p99, (float(v1) - float(v0)) * 1e6 / total, (float(p1) - float(p0)) * 1e6 / max(ok, 1), 100 * (total - ok) / total])))
PY
  tail -1 "$RESULTS" | awk -F'\t' '{ printf "  %-10s %9.0f req/s   p99 %6.2f ms   verifier %6.2f us CPU/request   postgres %6.2f us CPU/stored identify   non-2xx %.1f %%\n", $1, $2, $3, $4, $5, $6 }'
}
echo "machine: $(nproc) cores; $CONN connections in all, ${SECS}s per run, $ROUNDS rounds; mix 70/10/10/10 over $IDS ids"
new_run() { # LABEL APP NAME ROUND
  new_ids_lua "$2" "$1-r$4" >"$WORK/new-$1-$4.lua"
  measure "$1" "$WORK/new-$1-$4.lua" "$3"
}
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r"
  measure sqlite "$WORK/mix-sqlite.lua" sqlite
  measure pg-1 "$WORK/mix-pg.lua" pg-a
  [ -n "$BEFORE" ] && measure pg-1-before "$WORK/mix-before.lua" pg-before
  measure pg-2 "$WORK/mix-pg.lua" pg-a pg-b
  measure pg-1-row "$WORK/mix-pg.lua" pg-row
  new_run sqlite-new "$APP_S" sqlite "$r"
  new_run pg-1-new "$APP" pg-a "$r"
  [ -n "$BEFORE" ] && new_run pg-1-before-new "$APP_B" pg-before "$r"
done
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
by = {}
for r in rows: by.setdefault(r[0], []).append([float(x) for x in r[1:]])
med = lambda n, i: statistics.median(r[i] for r in by[n])
print("\nmedians over rounds")
for n in by:
    print(f"  {n:10} {med(n,0):9.0f} req/s   p99 {med(n,1):6.2f} ms   verifier {med(n,2):6.2f} us/request   postgres {med(n,3):6.2f} us/stored identify")
print("\nratios (medians)")
print(f"  one verifier on PostgreSQL / embedded store   {med('pg-1',0)/med('sqlite',0):.2f}x   mix (aim >= 0.8x)")
print(f"                                                {med('pg-1-new',0)/med('sqlite-new',0):.2f}x   new ids (aim >= 0.7x)")
if 'pg-1-before' in by:
    print(f"  this build / DROPFIX_BIN_BEFORE, PostgreSQL   {med('pg-1',0)/med('pg-1-before',0):.2f}x   mix, PostgreSQL CPU per stored identify {med('pg-1',3):.1f} vs {med('pg-1-before',3):.1f} us")
    print(f"                                                {med('pg-1-new',0)/med('pg-1-before-new',0):.2f}x   new ids, PostgreSQL CPU per stored identify {med('pg-1-new',3):.1f} vs {med('pg-1-before-new',3):.1f} us")
print(f"  two verifiers / one, on PostgreSQL            {med('pg-2',0)/med('pg-1',0):.2f}x")
print(f"  batched / one row per transaction             {med('pg-1',0)/med('pg-1-row',0):.2f}x req/s, PostgreSQL CPU per stored identify {med('pg-1-row',3)/med('pg-1',3):.2f}x less")
PY
grep -v -- '-new	' "$RESULTS" >"$WORK/mix.tsv"
runs_share_ok "$WORK/mix.tsv" 5
awk -F'\t' '$1 ~ /-new$/ && $6 > 0 { print "FAIL: " $1 " answered non-2xx: " $6 " %"; bad = 1 } END { exit bad }' "$RESULTS"
