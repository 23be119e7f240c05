#!/usr/bin/env bash
# The hot-path benchmark (issue: "the durable hot path near the stack's floor"), loopback only,
# bounded in time (about ROUNDS x 4 x SECONDS_PER_RUN):
#   dropfix-durable   dropfix-server, release, embedded SQLite (2xx only after commit), rate limits
#                     configured but not hit (per IP / per app far above the offered load),
#                     metrics on;
#   floor             bench/floor: hyper + serde_json + keyed HMAC verify, stores nothing;
#   node-memory       bench/node-reference.mjs: node:http + crypto, users in a Map;
#   node-sqlite       bench/node-sqlite.mjs: node:http + crypto + better-sqlite3, one commit per
#                     call (2xx only after commit).
# Driven alternately by wrk (-t1 -c64) with one mix: 70% valid seed signatures, 10% unsigned,
# 10% wrong, 10% expired, over IDS distinct users. Reports req/s, p99 and the server's own CPU
# per request (user + system time from /proc, so wrk's share of the cores does not count), the
# ratios dropfix / floor, and FAILS (exit 1) when any server's share of non-2xx answers is not
# the mix's 20% (+-1 point): a limiter or an error path can never pass as speed.
# Knobs: ROUNDS (3), SECONDS_PER_RUN (5), CONNECTIONS (64), IDS (2000), PREFILL (0: users stored
# in dropfix's database before the run; the growth table is bench/growth.sh's), TARGETS (all four), and
# BEFORE_BIN: another dropfix-server binary (say, a build of the previous commit) run as a fifth
# target, dropfix-before, in the same alternation: how a change's before/after is measured;
# DROPFIX_BIN: the binary run as dropfix-durable (default: this tree's release build);
# WARMUP_SECONDS (5): with PREFILL, calls for other stored users before the measured rounds;
# ZIPF (unset: ids spread evenly): a Zipf exponent, say 1.1, for skewed ids (bench/mix.sh).
# BEFORE_BIN's target runs on a database of its own without the PREFILL: compare growth by
# running this script once per build with DROPFIX_BIN instead.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"; SECS="${SECONDS_PER_RUN:-5}"; CONN="${CONNECTIONS:-64}"; IDS="${IDS:-2000}"
PREFILL="${PREFILL:-0}"; TARGETS="${TARGETS:-dropfix-durable floor node-memory node-sqlite}"
BEFORE_BIN="${BEFORE_BIN:-}"
if [ -n "$BEFORE_BIN" ]; then
  BEFORE_BIN="$(realpath "$BEFORE_BIN")"
  case " $TARGETS " in *" dropfix-before "*) ;; *) TARGETS="dropfix-before $TARGETS" ;; esac
fi
source bench/common.sh
need_wrk
[ -d bench/node_modules/better-sqlite3 ] || (cd bench && npm install --no-audit --no-fund --loglevel=error)
cargo build --quiet --release -p dropfix-bench-floor
FLOOR="${CARGO_TARGET_DIR:-target}/release/dropfix-bench-floor"
declare -A PID_OF
mkdir -m 700 "$WORK/data"
# Rate limits on and configured (1e6/s per IP, 1e7/s per app), never reached by this load.
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --admin-token bench \
  --rate-limit-per-ip 1000000 --rate-limit-per-app 10000000 >"$WORK/durable.out" 2>"$WORK/durable.err" &
PIDS+=($!); PID_OF[dropfix-durable]=$!
wait_line "$WORK/durable.out" "listening on"
APP="$(grep -o 'app_id=[^ ]*' "$WORK/durable.out" | cut -d= -f2)"
SECRET="$(grep -o 'secret=[^ ]*' "$WORK/durable.out" | cut -d= -f2)"
if [ "$PREFILL" -gt 0 ]; then
  # Stored users before the run: written straight into the database (the server is stopped
  # for it), ids user-0 .. user-(PREFILL-1), half of them verified.
  kill "${PID_OF[dropfix-durable]}"; wait "${PID_OF[dropfix-durable]}" 2>/dev/null || true
  python3 - "$WORK/data/dropfix.sqlite3" "$APP" "$PREFILL" <<'PY'
import sqlite3, sys, time
db, app, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = sqlite3.connect(db); now = int(time.time())
# A bulk load, not the server's write path: no journal while loading, rows in key order (ids
# sorted as text) so the B-trees are appended to; the server reopens it in WAL mode.
c.execute("PRAGMA journal_mode=OFF"); c.execute("PRAGMA synchronous=OFF")
c.execute("PRAGMA cache_size=-262144")
ids = sorted(range(n), key=lambda i: f"user-{i}")
rows = ((app, f"user-{i}", i % 2, "seed_hmac" if i % 2 else None, now if i % 2 else None, "pro", 49.0, f"u{i}@example.com", now, now) for i in ids)
c.executemany("INSERT INTO users (app_id, user_id, verified, method, verified_at, plan, mrr, email, first_seen, last_seen) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
c.commit(); c.execute("PRAGMA journal_mode=WAL"); c.close()
PY
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --admin-token bench \
    --rate-limit-per-ip 1000000 --rate-limit-per-app 10000000 >"$WORK/durable.out" 2>"$WORK/durable.err" &
  PIDS+=($!); PID_OF[dropfix-durable]=$!
  wait_line "$WORK/durable.out" "listening on"
fi
if [ -n "$BEFORE_BIN" ]; then
  # Its own data directory and development workspace; the mix is made for its app id and secret.
  mkdir -m 700 "$WORK/before"
  "$BEFORE_BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/before" --admin-token bench \
    --rate-limit-per-ip 1000000 --rate-limit-per-app 10000000 >"$WORK/dropfix-before.out" 2>"$WORK/dropfix-before.err" &
  PIDS+=($!); PID_OF[dropfix-before]=$!
  wait_line "$WORK/dropfix-before.out" "listening on"
fi
"$FLOOR" "$APP" "$SECRET" >"$WORK/floor.out" 2>&1 &
PIDS+=($!); PID_OF[floor]=$!
node bench/node-reference.mjs "$APP" "$SECRET" >"$WORK/node-memory.out" 2>&1 &
PIDS+=($!); PID_OF[node-memory]=$!
node bench/node-sqlite.mjs "$APP" "$SECRET" "$WORK/node.sqlite3" >"$WORK/node-sqlite.out" 2>&1 &
PIDS+=($!); PID_OF[node-sqlite]=$!
for t in floor node-memory node-sqlite; do wait_line "$WORK/$t.out" "listening on"; done
url() { local f="$WORK/$1.out"; [ "$1" = dropfix-durable ] && f="$WORK/durable.out"; grep -o 'http://[^ ]*' "$f" | head -1; }

source bench/mix.sh
ID_SPACE="$(( PREFILL > IDS ? PREFILL : IDS ))" mix "$APP" "$SECRET" "$IDS" 7 1 1 1 >"$WORK/mix.lua"
if [ -n "$BEFORE_BIN" ]; then
  B_APP="$(grep -o 'app_id=[^ ]*' "$WORK/dropfix-before.out" | cut -d= -f2)"
  B_SECRET="$(grep -o 'secret=[^ ]*' "$WORK/dropfix-before.out" | cut -d= -f2)"
  ID_SPACE="$IDS" mix "$B_APP" "$B_SECRET" "$IDS" 7 1 1 1 >"$WORK/mix-dropfix-before.lua"
fi

# Bytes the process caused to be written to storage (WAL, database, checkpoints), from /proc.
io_bytes() { awk '/^write_bytes/ {print $2}' "/proc/$1/io" 2>/dev/null || echo 0; }
RESULTS="$WORK/results.tsv"
run() { # TARGET
  local out="$WORK/wrk-$1.txt" pid="${PID_OF[$1]}" cpu0 cpu1
  cpu0="$(cpu_secs "$pid")"; local io0; io0="$(io_bytes "$pid")"
  local script="$WORK/mix.lua"; [ -f "$WORK/mix-$1.lua" ] && script="$WORK/mix-$1.lua"
  wrk -t1 -c"$CONN" -d"${SECS}s" --latency -s "$script" "$(url "$1")" >"$out"
  cpu1="$(cpu_secs "$pid")"; local io1; io1="$(io_bytes "$pid")"
  local rps p99 total non2xx us share
  rps="$(awk '/^Requests\/sec/ {print $2}' "$out")"
  p99="$(awk '$1=="99%" {print $2}' "$out" | to_ms)"
  total="$(awk '/requests in/ {print $1}' "$out")"
  non2xx="$(awk '/Non-2xx or 3xx responses/ {print $NF}' "$out")"; non2xx="${non2xx:-0}"
  us="$(awk -v n="$total" -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", (b - a) * 1e6 / n }')"
  share="$(awk -v n="$total" -v e="$non2xx" 'BEGIN { printf "%.2f", 100 * e / n }')"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$rps" "$p99" "$us" "$share" "$(rss_kb "$pid")" >>"$RESULTS"
  printf '  %-16s %9.0f req/s   p99 %6.2f ms   %6.2f us CPU/request   non-2xx %5.2f %%   %s B written/request\n' \
    "$1" "$rps" "$p99" "$us" "$share" "$(( (io1 - io0) / total ))"
}
if [ "$PREFILL" -gt 0 ]; then
  # A freshly started server over a large store reads its B-tree pages in as it goes: warm it
  # first with calls for other users of the same population (the measured ids stay cold).
  space="$(( PREFILL > IDS ? PREFILL : IDS ))"
  ID_SPACE="$space" ID_OFFSET="$(( space / IDS / 2 ))" mix "$APP" "$SECRET" "$IDS" 7 1 1 1 >"$WORK/warmup.lua"
  wrk -t1 -c"$CONN" -d"${WARMUP_SECONDS:-5}s" -s "$WORK/warmup.lua" "$(url dropfix-durable)" >/dev/null
fi
echo "machine: $(nproc) cores; wrk -t1 -c$CONN, ${SECS}s per run, $ROUNDS rounds; mix 70/10/10/10 over $IDS ids; $PREFILL users stored before the run"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r"
  for t in $TARGETS; do run "$t"; done
done
if [ "$PREFILL" -gt 0 ]; then
  # The admin user list at this size (median of 5 each: the first page, a page from a mid-table
  # cursor, a page of verified users from it), server RSS, then store bytes per stored user
  # (after a clean stop, which checkpoints the WAL into the database file).
  page_ms() {
    for _ in 1 2 3 4 5; do
      curl -s -o /dev/null -w '%{time_total}\n' -H 'Authorization: Bearer bench' \
        "$(url dropfix-durable)/v1/admin/workspaces/$APP/users?limit=100$1"
    done | sort -n | sed -n 3p | awk '{ printf "%.1f", $1 * 1000 }'
  }
  mid="user-$(( PREFILL / 2 ))"
  echo "admin user list (100 users, median of 5): first page $(page_ms '') ms; mid-table cursor $(page_ms "&after=$mid") ms; verified only, mid-table $(page_ms "&verified=true&after=$mid") ms"
  echo "server RSS after the run: $(rss_kb "${PID_OF[dropfix-durable]}") kB"
  kill "${PID_OF[dropfix-durable]}"; wait "${PID_OF[dropfix-durable]}" 2>/dev/null || true
  python3 - "$WORK/data/dropfix.sqlite3" <<'PY'
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1]); n = c.execute("SELECT count(*) FROM users").fetchone()[0]; c.close()
b = sum(os.path.getsize(sys.argv[1] + s) for s in ("", "-wal") if os.path.exists(sys.argv[1] + s))
print(f"store: {b} bytes for {n} stored users = {b // n} B per user")
PY
fi
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
by = {}
for name, rps, p99, us, share, rss in rows:
    by.setdefault(name, []).append((float(rps), float(p99), float(us), float(share), int(rss or 0)))
med = lambda name, i: statistics.median(r[i] for r in by[name])
print("\nmedians over rounds")
for name in by:
    print(f"  {name:16} {med(name,0):9.0f} req/s   p99 {med(name,1):6.2f} ms   {med(name,2):6.2f} us CPU/request   RSS {max(r[4] for r in by[name])/1024:6.1f} MB")
if 'dropfix-before' in by and 'dropfix-durable' in by:
    print("\nthis build vs BEFORE_BIN (medians)")
    print(f"  CPU per request  {med('dropfix-before',2):6.2f} -> {med('dropfix-durable',2):6.2f} us   req/s {med('dropfix-before',0):8.0f} -> {med('dropfix-durable',0):8.0f}   p99 {med('dropfix-before',1):.2f} -> {med('dropfix-durable',1):.2f} ms")
if 'dropfix-durable' in by and 'floor' in by:
    print("\nratios (medians)")
    print(f"  dropfix CPU per request / floor  {med('dropfix-durable',2)/med('floor',2):.2f}x   (goal <= 1.4x)")
    print(f"  dropfix req/s / floor            {med('dropfix-durable',0)/med('floor',0):.2f}    (goal >= 0.75)")
    print(f"  dropfix p99                      {med('dropfix-durable',1):.2f} ms (goal < 5 ms)")
for peer in ('node-memory', 'node-sqlite'):
    if peer in by and 'dropfix-durable' in by:
        print(f"  dropfix req/s / {peer:12}     {med('dropfix-durable',0)/med(peer,0):.2f}x   CPU per request {med(peer,2)/med('dropfix-durable',2):.2f}x less")
PY
runs_share_ok "$RESULTS" 4
