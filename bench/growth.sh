#!/usr/bin/env bash
# Growth with stored users (BENCHMARKS.md "Growth with stored users"), on both backends, loopback
# only, bounded in time: for each store in STORES, each size N in SIZES and each workload in
# ZIPFS, one release dropfix-server (rate limits configured but never reached, metrics on) on a
# store of its own prefilled with N users, then the 70/10/10/10 mix of bench/mix.sh over IDS
# ids of those users (wrk -t1 -c$CONNECTIONS --latency). Every workload starts from a fresh
# prefill: a run's writes would make the next run's calls repeats within a minute.
#   sqlite     the embedded store: the verifier is stopped, N rows bulk-loaded into its file
#              (python3's sqlite3, no journal, rows in key order), the verifier restarted;
#   postgres   a database of its own per run in the PostgreSQL of scripts/postgres.sh (dropped
#              at exit), the verifier on it with --create-dev-workspace; rows loaded with COPY,
#              then VACUUM (ANALYZE) users and CHECKPOINT, the verifier left running.
# The prefilled users are user-0 .. user-(N-1), each with exactly what the mix sends for it
# (plan 'pro', mrr 49, email u<n>@example.com, custom '{}'), half of them verified by the
# workspace's key (seed_hmac; chosen by a hash of n, not by its parity, which the mix's id step
# would follow), seen first 30 days and last one day ago: so every first valid call of the run is
# a real change (last_seen, verified_at, signed_at; the promotion of an unverified user) and gets
# written, as the repeat identify of a returning user. The prefill is checked (rows, verified
# share, a sample) and timed.
# Before the measured run, a warm-up of WARMUP_SECONDS over other users of the same population
# (uniform: the ids between the measured ones, as bench/hotpath.sh; Zipf: another draw of the
# same distribution, whose hot users are the measured hot users: warmed and written as in a
# steady state; where the measured ids are the whole population (N <= 2 x IDS, uniform) there
# are no other users: the warm-up then sends only the mix's rejected calls, which store nothing).
# Per (store, N, workload, round): req/s, p99, the verifier's CPU per request (user + system
# from /proc/<pid>/stat) and bytes it wrote per 2xx answer (/proc/<pid>/io write_bytes); on
# PostgreSQL also every postgres process's CPU and write_bytes per 2xx answer (backends,
# walwriter, checkpointer, ...: processes that exist at both ends, plus those started during
# the run) and the bytes a CHECKPOINT right after the round writes per 2xx answer (the pages the
# round dirtied; SQLite checkpoints in its commit path, inside the round); then the verifier's
# RSS after the run (PostgreSQL's shared_buffers is printed instead of its processes' RSS, which
# count shared memory once per process), the store's bytes per stored user (SQLite: database +
# WAL after a clean stop; PostgreSQL: pg_total_relation_size('users'); divided by the rows
# stored, N plus the mix's new anon-<n> users) and the admin user list (100 users, median of 5:
# first page, mid-table cursor, verified users from mid-table), and how many prefilled users the
# measured calls reached (wrk sends the mix's bodies in order: a short or slow run reaches only
# the first ones). Prints the table (tab-separated and readable) and FAILS (exit 1) when a run's
# share of non-2xx answers is not the mix's 20% (+-1 point), when the prefill is not what it
# should be, or when the run did not write exactly the prefilled users its calls reached (each
# must get a last_seen from this run). Each run takes about its prefill + WARMUP_SECONDS +
# ROUNDS x SECONDS_PER_RUN + 20 s (the SQLite verifier's two stops take 5 s each); a signal
# stops it at once, and every server is stopped and every database dropped on the way out.
# Knobs: STORES ("sqlite postgres"), SIZES ("10000 1000000 10000000"), ZIPFS ("0 1.1": 0 = ids
# spread evenly over the N users, s > 0 = drawn from a Zipf of exponent s, bench/mix.sh's ZIPF),
# IDS (200000: bodies in the mix, at most N), ROUNDS (1; later rounds call the same users again
# within a minute, so they measure repeat calls that write nothing), SECONDS_PER_RUN (10),
# WARMUP_SECONDS (5), CONNECTIONS (64), DROPFIX_BIN (default: this tree's release build),
# PREFILL_TIMEOUT (3600 s per prefill step), OUT (a file to copy the tab-separated table to),
# PG_DB_SETTINGS (none: space-separated name=value settings for the PostgreSQL database's
# sessions, set as superuser with ALTER DATABASE, say "wal_compression=lz4"), KEEP_PG (1: leave running a PostgreSQL cluster that scripts/postgres.sh had to start; by
# default it is stopped at exit).
set -euo pipefail
cd "$(dirname "$0")/.."
STORES="${STORES:-sqlite postgres}"; SIZES="${SIZES:-10000 1000000 10000000}"; ZIPFS="${ZIPFS:-0 1.1}"
ROUNDS="${ROUNDS:-1}"; SECS="${SECONDS_PER_RUN:-10}"; WARMUP="${WARMUP_SECONDS:-5}"
CONN="${CONNECTIONS:-64}"; IDS_MAX="${IDS:-200000}"; PREFILL_TIMEOUT="${PREFILL_TIMEOUT:-3600}"
OUT="${OUT:-}"
for s in $STORES; do
  case "$s" in sqlite|postgres) ;; *) echo "STORES: unknown store '$s' (sqlite, postgres)" >&2; exit 2 ;; esac
done
for n in $SIZES $IDS_MAX $ROUNDS $SECS $CONN; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "not a positive whole number: '$n'" >&2; exit 2; }
done
[[ "$WARMUP" =~ ^[0-9]+$ ]] || { echo "WARMUP_SECONDS: not a whole number: '$WARMUP'" >&2; exit 2; }
for z in $ZIPFS; do [[ "$z" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "ZIPFS: not a number: '$z'" >&2; exit 2; }; done
source bench/common.sh
need_wrk
source bench/mix.sh

as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -n -u postgres "$@"; fi; }
DBS=() # PostgreSQL databases created, dropped on exit
URL=""; PG_STARTED=""
growth_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for db in "${DBS[@]}"; do
    psql -q "$URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  if [ -n "$PG_STARTED" ] && [ "${KEEP_PG:-0}" != 1 ]; then
    # Only a cluster scripts/postgres.sh started for this run.
    scripts/postgres.sh --stop-started "$WORK/pg-started" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap growth_cleanup EXIT
trap 'exit 143' TERM INT

case " $STORES " in *" postgres "*)
  URL="$(DROPFIX_PG_STARTED_FILE="$WORK/pg-started" scripts/postgres.sh 2>"$WORK/postgres.err" | tail -1)" \
    || { cat "$WORK/postgres.err" >&2; exit 1; }
  PG_STARTED="$(cat "$WORK/pg-started" 2>/dev/null || true)"
  MASTER_KEYS="$("$BIN" master-key generate --id mk1)"
  SHARED_BUFFERS="$(psql -tA "$URL" -c 'SHOW shared_buffers')"
  PG_SETTINGS="$(psql -tA -F= "$URL" -c "SELECT name, current_setting(name) FROM pg_settings WHERE name IN ('server_version', 'shared_buffers', 'synchronous_commit', 'full_page_writes', 'checkpoint_timeout', 'max_wal_size', 'wal_compression') ORDER BY name" | tr '\n' ' ')"
  ;;
esac
# CHECKPOINT needs superuser (or pg_checkpoint), which the test role is not: as postgres then.
pg_checkpoint() {
  timeout 600 psql -q "$URL" -c CHECKPOINT 2>/dev/null || as_postgres timeout 600 psql -q -d postgres -c CHECKPOINT
}

# snap VERIFIER_PID FILE [DATABASE]: CPU ticks and write_bytes of the verifier and of every
# postgres process (by pid) as JSON, except the client backends of databases other than DATABASE
# (the shared processes, walwriter, checkpointer, background writer, autovacuum, stay in: their
# work for other clients of the cluster cannot be told apart); "others": those backends.
snap() {
  python3 - "$1" "$2" "${3:-}" <<'PY'
import json, os, sys
def read(pid):
    st = open(f"/proc/{pid}/stat").read()
    f = st[st.rindex(")") + 2:].split()
    io = dict(l.split(": ") for l in open(f"/proc/{pid}/io").read().splitlines())
    return [int(f[11]) + int(f[12]), int(io["write_bytes"])]
pg, others = {}, []
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        if open(f"/proc/{p}/comm").read().strip() != "postgres":
            continue
        # A client backend's title: "postgres: 15/main: USER DATABASE HOST(PORT) STATE".
        title = open(f"/proc/{p}/cmdline").read().replace("\0", " ").split(": ")
        words = title[2].split() if len(title) > 2 else []
        if sys.argv[3] and len(words) >= 3 and ("(" in words[2] or words[2] == "[local]") and words[1] != sys.argv[3]:
            others.append(p)
            continue
        pg[p] = read(p)
    except (OSError, IndexError):
        pass
json.dump({"v": read(sys.argv[1]), "pg": pg, "others": others}, open(sys.argv[2], "w"))
PY
}
# run_wrk OUT ARGS...: wrk in the background, so that a signal stops the run at once (bash runs
# its traps only between foreground commands).
run_wrk() {
  local out="$1"; shift
  wrk "$@" >"$out" & local w=$!
  PIDS+=("$w"); wait "$w"
  local keep=(); for p in "${PIDS[@]}"; do [ "$p" = "$w" ] || keep+=("$p"); done; PIDS=("${keep[@]}")
}
# stop_pid PID: SIGTERM (a clean stop, after the verifier's 5 s drain), up to 60 s, then SIGKILL.
stop_pid() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=(); for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; PIDS=("${keep[@]}")
}
# start_verifier DIR ARGS...: sets VPID and VURL.
start_verifier() {
  local dir="$1"; shift
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$dir/data" --admin-token bench \
    --rate-limit-per-ip 1000000 --rate-limit-per-app 10000000 "$@" >"$dir/verifier.out" 2>"$dir/verifier.err" &
  VPID=$!; PIDS+=("$VPID")
  wait_line "$dir/verifier.out" "listening on"
  VURL="$(grep -o 'http://[^ ]*' "$dir/verifier.out" | head -1)"
}
# reach MEASURED_LUA MEASURED_TOTAL WARMUP_LUA WARMUP_TOTAL WARMUP_VALID: which prefilled users
# the runs' valid calls reached. wrk -t1 sends body i mod #bodies for i = 1, 2, ... (bench/mix.sh;
# weights 7 1 1 1: body i is a valid call when i % 10 < 7), so after TOTAL answers bodies 1..TOTAL
# were answered and up to CONNECTIONS more may have been sent. Prints: distinct users in the
# measured mix's valid bodies, of them verified before the run, users reached by the measured
# calls, of them verified, of them also reached by the warm-up, and the range of prefilled users
# the whole run (warm-up included) must have written: from the answered bodies to the sent ones.
reach() {
  python3 - "$@" "$CONN" <<'PY'
import re, sys
m_lua, m_total, w_lua, w_total, w_valid, conn = sys.argv[1:]
def ids(lua, count, valid=True):
    if not valid or count <= 0:
        return set()
    bodies = [l for l in open(lua) if l.startswith("  [==[")]
    nb = len(bodies)
    out = set()
    for j in (range(nb) if count >= nb else (i % nb for i in range(1, count + 1))):
        if j % 10 < 7:
            out.add(int(re.search(r'"user_id":"user-(\d+)"', bodies[j]).group(1)))
    return out
verified = lambda s: sum(1 for n in s if ((n * 2246822519) & 0xFFFFFFFF) >> 31)
m_total, w_total, conn, w_valid = int(m_total), int(w_total), int(conn), w_valid == "1"
all_m = ids(m_lua, 1 << 62)
m = ids(m_lua, m_total); w = ids(w_lua, w_total, w_valid)
lo = len(m | w)
hi = len(ids(m_lua, m_total + conn) | ids(w_lua, w_total + conn if w_total else 0, w_valid))
print(len(all_m), verified(all_m), len(m), verified(m), len(m & w), lo, hi)
PY
}

# The rows of the prefill (python3; stdin of both loaders): ids sorted as text (the key order),
# verified when the top bit of (n * 2246822519) mod 2^32 is set.
#   prefill_rows FORMAT APP N NOW KEY_ID   FORMAT: sqlite (executemany in-process) or copy
PREFILL_PY='
import sys, time
def rows(app, n, now, key_id):
    day, month = now - 86400, now - 30 * 86400
    for s in sorted(f"user-{i}" for i in range(n)):
        i = int(s[5:])
        v = ((i * 2246822519) & 0xFFFFFFFF) >> 31
        yield (app, s, v, "seed_hmac" if v else None, key_id if v else None, day if v else None,
               day if v else None, "pro", 49.0, f"u{i}@example.com", "{}", month, day)
COLS = "app_id, user_id, verified, method, key_id, verified_at, signed_at, plan, mrr, email, custom, first_seen, last_seen"
'
prefill_sqlite() { # DB APP N NOW
  timeout "$PREFILL_TIMEOUT" python3 -c "$PREFILL_PY"'
import sqlite3
db, app, n, now = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = sqlite3.connect(db)
key_id = c.execute("SELECT id FROM keys WHERE app_id = ? ORDER BY id LIMIT 1", (app,)).fetchone()[0]
# A bulk load, not the server write path: no journal, rows in key order so the B-trees are
# appended to; the server reopens it in WAL mode.
c.execute("PRAGMA journal_mode=OFF"); c.execute("PRAGMA synchronous=OFF")
c.execute("PRAGMA cache_size=-262144")
c.executemany(f"INSERT INTO users ({COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows(app, n, now, key_id))
c.commit(); c.execute("PRAGMA journal_mode=WAL"); c.close()
' "$@"
}
copy_rows() { # APP N NOW KEY_ID: COPY text format on stdout
  python3 -c "$PREFILL_PY"'
out = sys.stdout
app, n, now, key_id = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
f = lambda x: "\\N" if x is None else ("t" if x is True else str(x))
for r in rows(app, n, now, key_id):
    out.write("\t".join(f(x) if i != 2 else ("t" if x else "f") for i, x in enumerate(r)) + "\n")
' "$@"
}
COPY_COLS="$(python3 -c "$PREFILL_PY"'
print(COLS)')"

RESULTS="$WORK/results.tsv"; : >"$RESULTS"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo); verifier $BIN"
echo "wrk -t1 -c$CONN, warm-up ${WARMUP}s, $ROUNDS x ${SECS}s measured; mix 70/10/10/10 over min(N, $IDS_MAX) ids"
[ -n "$URL" ] && echo "postgres: $PG_SETTINGS${PG_STARTED:+(cluster $PG_STARTED started for this run)}"
k=0
for store in $STORES; do
for n in $SIZES; do
for z in $ZIPFS; do
  k=$((k + 1))
  if awk -v z="$z" 'BEGIN { exit !(z > 0) }'; then wl="zipf$z"; else wl=uniform; fi
  ids=$(( n < IDS_MAX ? n : IDS_MAX )); step=$(( n / ids ))
  label="$store/$n/$wl"
  echo; echo "== $label: $n stored users, mix over $ids ids"
  dir="$WORK/run-$k"; mkdir -m 700 "$dir" "$dir/data"
  vargs=(); db=""
  if [ "$store" = postgres ]; then
    db="dropfix_growth_$$_$k"
    psql -q "$URL" -c "CREATE DATABASE $db" >/dev/null; DBS+=("$db")
    # PG_DB_SETTINGS: superuser-only settings for this database's sessions (say wal_compression=lz4).
    for setting in ${PG_DB_SETTINGS:-}; do
      as_postgres psql -q -d postgres -c "ALTER DATABASE $db SET ${setting%%=*} = '${setting#*=}'" >/dev/null
    done
    DB_URL="${URL%/*}/$db"
    vargs=(--database-url "$DB_URL" --create-dev-workspace)
    export DROPFIX_MASTER_KEYS="$MASTER_KEYS"
  else
    unset DROPFIX_MASTER_KEYS
  fi
  start_verifier "$dir" "${vargs[@]}"
  APP="$(grep -o 'app_id=[^ ]*' "$dir/verifier.out" | cut -d= -f2)"
  SECRET="$(grep -o 'secret=[^ ]*' "$dir/verifier.out" | cut -d= -f2)"

  # The prefill, timed.
  now="$(date +%s)"
  secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
  if [ "$store" = sqlite ]; then
    ts="$(date +%s.%N)"; stop_pid "$VPID"
    t0="$(date +%s.%N)"
    prefill_sqlite "$dir/data/dropfix.sqlite3" "$APP" "$n" "$now"
    t1="$(date +%s.%N)"
    start_verifier "$dir" "${vargs[@]}"
    t2="$(date +%s.%N)"
    prefill_s="$(secs_between "$t0" "$t1")"
    echo "prefill: $prefill_s s bulk load (and the verifier's stop $(secs_between "$ts" "$t0") s, restart $(secs_between "$t1" "$t2") s)"
    check_sql() { sqlite3 -readonly -separator ' | ' "$dir/data/dropfix.sqlite3" "$1"; }
  else
    t0="$(date +%s.%N)"
    key_id="$(psql -tA "$DB_URL" -c "SELECT id FROM keys WHERE app_id = '$APP' ORDER BY id LIMIT 1")"
    copy_rows "$APP" "$n" "$now" "$key_id" \
      | timeout "$PREFILL_TIMEOUT" psql -v ON_ERROR_STOP=1 -q "$DB_URL" -c "COPY users ($COPY_COLS) FROM STDIN"
    t1="$(date +%s.%N)"
    timeout "$PREFILL_TIMEOUT" psql -v ON_ERROR_STOP=1 -q "$DB_URL" -c "VACUUM (ANALYZE) users"
    t2="$(date +%s.%N)"
    pg_checkpoint >/dev/null
    t3="$(date +%s.%N)"
    prefill_s="$(secs_between "$t0" "$t3")"
    echo "prefill: $prefill_s s (COPY $(secs_between "$t0" "$t1") s, VACUUM (ANALYZE) $(secs_between "$t1" "$t2") s, CHECKPOINT $(secs_between "$t2" "$t3") s)"
    check_sql() { psql -tA -F ' | ' "$DB_URL" -c "$1"; }
  fi
  # The prefill as stored: counts, then two rows (one verified, one not).
  got="$(check_sql "SELECT count(*), sum(CASE WHEN verified THEN 1 ELSE 0 END), sum(CASE WHEN method = 'seed_hmac' AND key_id = (SELECT min(id) FROM keys) AND verified_at = $now - 86400 AND signed_at = verified_at THEN 1 ELSE 0 END), sum(CASE WHEN NOT verified AND method IS NULL AND key_id IS NULL AND verified_at IS NULL AND signed_at IS NULL THEN 1 ELSE 0 END), sum(CASE WHEN plan = 'pro' AND mrr = 49 AND email = 'u' || substr(user_id, 6) || '@example.com' AND custom = '{}' AND first_seen = $now - 2592000 AND last_seen = $now - 86400 THEN 1 ELSE 0 END) FROM users")"
  echo "prefill check (rows | verified | verified rows as a seed call stores them | unverified rows bare | traits and times as the mix's): $got"
  read -r rows_n _ vers _ ok_v _ ok_u _ ok_t <<<"$got"
  if [ "$rows_n" != "$n" ] || [ "$((ok_v + ok_u))" != "$n" ] || [ "$ok_t" != "$n" ] || [ "$ok_v" != "$vers" ]; then
    echo "FAIL: the prefill did not store what it should" >&2; exit 1
  fi
  check_sql "SELECT user_id, verified, method, key_id, verified_at, signed_at, plan, mrr, email, custom, first_seen, last_seen FROM users WHERE user_id IN ('user-0', 'user-1', 'user-2', 'user-3') ORDER BY user_id" | sed 's/^/  /'

  # The mixes: measured (offset 0) and warm-up.
  ZIPF="$z" ID_SPACE="$n" ID_OFFSET=0 mix "$APP" "$SECRET" "$ids" 7 1 1 1 >"$dir/mix.lua"
  warm_valid=1
  if [ "$wl" != uniform ]; then
    warm_note="another draw of the same Zipf"
    ZIPF="$z" ID_SPACE="$n" ID_OFFSET="$(( step / 2 > 1 ? step / 2 : 1 ))" mix "$APP" "$SECRET" "$ids" 7 1 1 1 >"$dir/warmup.lua"
  elif [ "$step" -ge 2 ]; then
    warm_note="the ids between the measured ones"
    ZIPF=0 ID_SPACE="$n" ID_OFFSET="$(( step / 2 ))" mix "$APP" "$SECRET" "$ids" 7 1 1 1 >"$dir/warmup.lua"
  else
    warm_note="rejected calls only (the measured ids are the whole population)"
    ZIPF=0 ID_SPACE="$n" ID_OFFSET=0 mix "$APP" "$SECRET" "$ids" 0 0 1 1 >"$dir/warmup.lua"; warm_valid=0
  fi
  echo "warm-up: ${WARMUP}s, $warm_note"
  t_warm="$(date +%s)"; w_total=0
  if [ "$WARMUP" -gt 0 ]; then
    run_wrk "$dir/warmup.txt" -t1 -c"$CONN" -d"${WARMUP}s" -s "$dir/warmup.lua" "$VURL"
    w_total="$(awk '/requests in/ { print $1 }' "$dir/warmup.txt")"
  fi

  : >"$dir/rows.tsv"; m_total=0
  for r in $(seq 1 "$ROUNDS"); do
    out="$dir/wrk-$r.txt"
    snap "$VPID" "$dir/s0.json" "$db"
    run_wrk "$out" -t1 -c"$CONN" -d"${SECS}s" --latency -s "$dir/mix.lua" "$VURL"
    snap "$VPID" "$dir/s1.json" "$db"
    rss="$(rss_kb "$VPID")"
    if [ "$store" = postgres ]; then
      pg_checkpoint >/dev/null; snap "$VPID" "$dir/s2.json" "$db"
    else
      cp "$dir/s1.json" "$dir/s2.json"
    fi
    python3 - "$label/r$r" "$store" "$n" "$wl" "$r" "$prefill_s" "$rss" "$out" "$dir"/s{0,1,2}.json >>"$dir/rows.tsv" <<'PY'
import json, os, re, sys
label, store, n, wl, rnd, prefill, rss, out, s0, s1, s2 = sys.argv[1:]
t = open(out).read()
if not re.search(r"99%\s+[\d.]+(us|ms|s)\b", t):
    sys.exit(f"{label}: wrk measured nothing:\n{t}")
def ms(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s); v = float(m.group(1))
    return v / 1000 if m.group(2) == "us" else v if m.group(2) == "ms" else v * 1000
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p99 = ms(re.search(r"^\s*99%\s+(\S+)", t, re.M).group(1))
total = int(re.search(r"(\d+) requests in", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t); bad = int(bad.group(1)) if bad else 0
ok = max(total - bad, 1)
hz = os.sysconf("SC_CLK_TCK")
a, b, c = (json.load(open(f)) for f in (s0, s1, s2))
v_us = (b["v"][0] - a["v"][0]) / hz * 1e6 / total
v_b = (b["v"][1] - a["v"][1]) / ok
def pg_delta(x, y, i):
    # Processes at both ends, plus those started in between (all of theirs is in the window).
    return sum(v[i] - x["pg"].get(p, [0, 0])[i] for p, v in y["pg"].items())
if store == "postgres" and a["pg"]:
    pg_us, pg_b, ck_b = f"{pg_delta(a, b, 0) / hz * 1e6 / ok:.1f}", f"{pg_delta(a, b, 1) / ok:.0f}", f"{pg_delta(b, c, 1) / ok:.0f}"
    others = set(a["others"]) | set(b["others"])
    if others:
        print(f"  note: {len(others)} backends of other databases on this PostgreSQL during the round (left out; the shared processes' figures include their work)", file=sys.stderr)
else:
    pg_us = pg_b = ck_b = "-"
print("\t".join([label, store, n, wl, rnd, prefill, f"{rps:.0f}", f"{p99:.2f}", f"{v_us:.1f}",
                 f"{v_b:.0f}", pg_us, pg_b, ck_b, f"{100 * bad / total:.2f}", f"{int(rss) / 1024:.0f}", str(total)]))
PY
    tail -1 "$dir/rows.tsv" | awk -F'\t' '{ printf "  round %s: %s req/s   p99 %s ms   verifier %s us CPU/request, %s B written/2xx   postgres %s us CPU/2xx, %s B written/2xx (+%s at the next CHECKPOINT)   non-2xx %s %%   verifier RSS %s MB\n", $5, $7, $8, $9, $10, $11, $12, $13, $14, $15 }'
    t="$(tail -1 "$dir/rows.tsv" | cut -f16)"; m_total=$(( t > m_total ? t : m_total ))
  done

  # The admin user list at this size (median of 5 each), then the store's size and what the
  # run wrote: every prefilled user a valid call reached has a last_seen from this run.
  page_ms() {
    for _ in 1 2 3 4 5; do
      curl -s --max-time 10 -o /dev/null -w '%{time_total}\n' -H 'Authorization: Bearer bench' \
        "$VURL/v1/admin/workspaces/$APP/users?limit=100$1" || echo 10
    done | sort -n | sed -n 3p | awk '{ printf "%.1f", $1 * 1000 }'
  }
  mid="user-$(( n / 2 ))"
  list="$(page_ms '')/$(page_ms "&after=$mid")/$(page_ms "&verified=true&after=$mid")"
  echo "admin user list (100 users, median of 5), first / mid-table / verified mid-table: $list ms"
  if [ "$store" = sqlite ]; then
    stop_pid "$VPID"
    f="$dir/data/dropfix.sqlite3"
    db_b="$(stat -c %s "$f")"; wal_b="$( [ -f "$f-wal" ] && stat -c %s "$f-wal" || echo 0)"
    bytes=$(( db_b + wal_b )); parts="database $db_b + WAL $wal_b"
  else
    read -r bytes parts <<<"$(psql -tA -F ' ' "$DB_URL" -c "SELECT pg_total_relation_size('users'), 'table ' || pg_relation_size('users') || ' + indexes ' || pg_indexes_size('users') || ' + TOAST ' || (pg_total_relation_size('users') - pg_relation_size('users') - pg_indexes_size('users'))")"
    stop_pid "$VPID"
  fi
  read -r stored _ written <<<"$(check_sql "SELECT count(*), sum(CASE WHEN user_id LIKE 'user-%' AND last_seen >= $t_warm THEN 1 ELSE 0 END) FROM users")"
  read -r in_mix in_mix_v reached reached_v overlap lo hi <<<"$(reach "$dir/mix.lua" "$m_total" "$dir/warmup.lua" "$w_total" "$warm_valid")"
  per_user=$(( bytes / stored ))
  echo "mix: $in_mix distinct prefilled users in its valid calls ($in_mix_v verified before the run); the measured calls reached $reached of them ($reached_v verified before the run, $overlap also reached by the warm-up)"
  echo "store: $bytes bytes ($parts) for $stored stored users = $per_user B per user; prefilled users written by the run (warm-up included): $written (expected $lo-$hi from the calls answered and sent)"
  if [ "${written:-0}" -lt "$lo" ] || [ "${written:-0}" -gt "$hi" ]; then
    echo "FAIL: $label wrote $written prefilled users; its calls reached $lo-$hi" >&2; exit 1
  fi
  if [ "$store" = postgres ]; then
    psql -q "$URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  fi
  rm -rf "$dir/data"
  cut -f1-15 "$dir/rows.tsv" | awk -v a="$per_user" -v b="$list" -v c="$reached" '{ print $0 "\t" c "\t" a "\t" b }' >>"$RESULTS"
  rm -rf "$dir"
done; done; done

HEADER="run	store	users	workload	round	prefill_s	req_s	p99_ms	verifier_us_per_req	verifier_B_per_2xx	pg_us_per_2xx	pg_B_per_2xx	pg_ckpt_B_per_2xx	non2xx_pct	verifier_rss_MB	users_reached	store_B_per_user	admin_list_ms"
echo; echo "tab-separated:"
{ echo "$HEADER"; cat "$RESULTS"; } | tee ${OUT:+"$OUT"}
python3 - "$RESULTS" "${SHARED_BUFFERS:-}" <<'PY'
import sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
print("\n| store | stored users | workload | round | prefill | req/s | p99 | verifier CPU/request | verifier written/2xx | PostgreSQL CPU/2xx | PostgreSQL written/2xx (+ next checkpoint) | verifier RSS | users reached | store/user | admin list first/mid/verified |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
kb = lambda b: f"{float(b) / 1024:.1f} KB"
for (_, store, n, wl, rnd, pre, rps, p99, vus, vb, pus, pb, ckb, share, rss, reached, per, lst) in rows:
    pg_cpu = f"{pus} us" if pus != "-" else "-"
    pg_w = f"{kb(pb)} (+ {kb(ckb)})" if pb != "-" else "-"
    print(f"| {store} | {int(n):,} | {wl} | {rnd} | {pre} s | {int(rps):,} | {p99} ms | {vus} us | {kb(vb)} | {pg_cpu} | {pg_w} | {rss} MB | {int(reached):,} | {per} B | {lst} ms |")
if sys.argv[2]:
    print(f"\n(PostgreSQL shared_buffers: {sys.argv[2]}; its processes' RSS counts that shared memory once per process, so it is not summed.)")
PY
runs_share_ok "$RESULTS" 13
