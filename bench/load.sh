#!/usr/bin/env bash
# Load benchmark, loopback only, bounded in time (about ROUNDS x 3 x SECONDS):
#   dropfix-server (release, durable SQLite store), dropfix-server --ephemeral (store off), and
#   the Node reference verifier (bench/node-reference.mjs), driven alternately by wrk with the
#   same request mix: a quarter each of valid seed signatures (200), unsigned (202), wrong
#   signatures (401) and expired ones (401), at CONNECTIONS connections.
# Reports req/s, p50 and p99 per run, min/median per target, and the ratios.
# Knobs: ROUNDS (3), SECONDS (10), CONNECTIONS (64), THREADS (1: the machine has 2 cores and wrk
# shares them with the server; see BENCHMARKS.md), DROPFIX_BIN (default: this tree's release
# build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"; SECS="${SECONDS_PER_RUN:-10}"; CONN="${CONNECTIONS:-64}"; THREADS="${THREADS:-1}"
source bench/common.sh
need_wrk

declare -A PID_OF
start_dropfix() { # NAME EXTRA_ARGS...
  local name="$1"; shift
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/$name" --admin-token bench \
    --rate-limit-per-ip 0 --rate-limit-per-app 0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=($!)
  PID_OF[$name]=$!
  wait_line "$WORK/$name.out" "listening on"
}

start_dropfix durable
start_dropfix ephemeral --ephemeral
APP="$(grep -o 'app_id=[^ ]*' "$WORK/durable.out" | cut -d= -f2)"
SECRET="$(grep -o 'secret=[^ ]*' "$WORK/durable.out" | cut -d= -f2)"
APP_E="$(grep -o 'app_id=[^ ]*' "$WORK/ephemeral.out" | cut -d= -f2)"
SECRET_E="$(grep -o 'secret=[^ ]*' "$WORK/ephemeral.out" | cut -d= -f2)"
node bench/node-reference.mjs "$APP" "$SECRET" >"$WORK/node.out" 2>&1 &
PIDS+=($!)
PID_OF[node]=$!
wait_line "$WORK/node.out" "listening on"
url() { grep -o 'http://[^ ]*' "$WORK/$1.out" | head -1; }

source bench/mix.sh
mix "$APP" "$SECRET" >"$WORK/mix.lua"
mix "$APP_E" "$SECRET_E" >"$WORK/mix-e.lua"

RESULTS="$WORK/results.tsv"
run() { # TARGET URL LUA PROCESS
  local out="$WORK/wrk-$1.txt" pid="${PID_OF[$4]}" cpu0 cpu1
  cpu0="$(cpu_secs "$pid")"
  wrk -t"$THREADS" -c"$CONN" -d"${SECS}s" --latency -s "$3" "$2" >"$out"
  cpu1="$(cpu_secs "$pid")"
  local rps p50 p99 errors
  rps="$(awk '/^Requests\/sec/ {print $2}' "$out")"
  p50="$(awk '$1=="50%" {print $2}' "$out" | to_ms)"
  p99="$(awk '$1=="99%" {print $2}' "$out" | to_ms)"
  errors="$(grep -c 'Socket errors' "$out" || true)"
  local total per_cpu
  total="$(awk '/requests in/ {print $1}' "$out")"
  per_cpu="$(awk -v n="$total" -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.0f", n / (b - a) }')"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$rps" "$p50" "$p99" "$errors" "$per_cpu" >>"$RESULTS"
  printf '  %-22s %10.0f req/s   p50 %6.2f ms   p99 %6.2f ms   %7.0f req per CPU-second%s\n' "$1" "$rps" "$p50" "$p99" "$per_cpu" \
    "$([ "$errors" = 0 ] || echo '   (socket errors!)')"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $CONN connections, wrk -t$THREADS, ${SECS}s per run"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r"
  run dropfix-durable "$(url durable)" "$WORK/mix.lua" durable
  run node-reference "$(url node)" "$WORK/mix.lua" node
  run dropfix-ephemeral "$(url ephemeral)" "$WORK/mix-e.lua" ephemeral
done

python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
by = {}
for name, rps, p50, p99, _, per_cpu in rows:
    by.setdefault(name, []).append((float(rps), float(p50), float(p99), float(per_cpu)))
print("\nsummary (min / median over rounds)")
med, eff = {}, {}
for name, runs in by.items():
    rps = [r[0] for r in runs]; p99 = [r[2] for r in runs]; p50 = [r[1] for r in runs]; cpu = [r[3] for r in runs]
    med[name] = statistics.median(rps); eff[name] = statistics.median(cpu)
    print(f"  {name:22} req/s {min(rps):9.0f} / {statistics.median(rps):9.0f}   p50 {statistics.median(p50):5.2f} ms   p99 {min(p99):5.2f} / {statistics.median(p99):5.2f} ms   req/CPU-s {statistics.median(cpu):7.0f}")
print("\nratios (medians)")
print(f"  dropfix durable / node reference   {med['dropfix-durable'] / med['node-reference']:.2f}x   (goal >= 5x)")
print(f"  dropfix ephemeral / node reference {med['dropfix-ephemeral'] / med['node-reference']:.2f}x")
print(f"  durable / ephemeral                {med['dropfix-durable'] / med['dropfix-ephemeral']:.2f}   (goal >= 0.5)")
print(f"  requests per CPU-second, dropfix durable / node reference {eff['dropfix-durable'] / eff['node-reference']:.2f}x")
PY
