#!/usr/bin/env bash
# Where the verifier's CPU goes under the load mix of bench/load.sh: a release build with line
# tables (in target/profile-build, so the normal release build is untouched), the durable store,
# `wrk -t1 -c64` for 10 s, `perf record` (flat, no call graphs) on the server for 8 s of it.
# Prints req/s and the share of samples by thread and by area (kernel networking, scheduling,
# libc malloc/memmove, SQLite, hyper, serde, tokio, the core). Loopback only, about 30 s.
# Installs wrk and perf (Debian: linux-perf) when missing; run as root or with
# kernel.perf_event_paranoid <= 1.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
command -v wrk >/dev/null || sudo_ apt-get install -y -qq wrk >/dev/null
command -v perf >/dev/null || sudo_ apt-get install -y -qq linux-perf >/dev/null
export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/profile-build"
cargo build --quiet --release -p dropfix-server
WORK="$(mktemp -d)"; chmod 700 "$WORK"
SERVER=
cleanup() { [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true; wait 2>/dev/null || true; [ -n "${KEEP_PERF:-}" ] && cp "$WORK/perf.data" "$KEEP_PERF"; rm -rf "$WORK"; }
trap cleanup EXIT

"$CARGO_TARGET_DIR/release/dropfix-server" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" \
  --admin-token bench --rate-limit-per-ip 0 --rate-limit-per-app 0 >"$WORK/out" 2>"$WORK/err" &
SERVER=$!
for _ in $(seq 1 300); do grep -q "listening on" "$WORK/out" && break; sleep 0.1; done
APP="$(grep -o 'app_id=[^ ]*' "$WORK/out" | cut -d= -f2)"
SECRET="$(grep -o 'secret=[^ ]*' "$WORK/out" | cut -d= -f2)"
URL="$(grep -o 'http://[^ ]*' "$WORK/out" | head -1)"
source bench/mix.sh
mix "$APP" "$SECRET" >"$WORK/mix.lua"

wrk -t1 -c64 -d3s -s "$WORK/mix.lua" "$URL" >/dev/null # warm-up
perf record -q -F 1999 -p "$SERVER" -o "$WORK/perf.data" -- sleep 8 2>/dev/null &
PERF=$!
wrk -t1 -c64 -d10s -s "$WORK/mix.lua" "$URL" | awk '/^Requests\/sec/ { print "load: " $2 " req/s (while profiled)" }'
wait "$PERF" || true

echo "by thread:"
perf report -i "$WORK/perf.data" --no-children --sort comm 2>/dev/null | awk '!/^#/ && NF { print "  " $2 " " $1 }'
echo "by area:"
perf report -i "$WORK/perf.data" --no-children --sort dso,symbol 2>/dev/null | awk '
  /^#/ || !NF { next }
  { p = $1; sub("%", "", p); s = $0; g = "other (unresolved, std, small crates)" }
  s ~ /kernel/ {
    if (s ~ /tcp|ip_|inet|skb|net_|softirq|sock|_iter|loopback|bbr|__dev|sk_|eth_/) g = "kernel: networking"
    else if (s ~ /task_switch|schedule|spin_unlock|futex|wake|enqueue|dequeue|pick_next|update_curr|select_task/) g = "kernel: scheduling, wake-ups"
    else g = "kernel: syscalls, fsync, other"
  }
  s !~ /kernel/ {
    if (s ~ /libc/) g = "libc: malloc, free, memmove"
    else if (s ~ /sqlite/) g = "SQLite"
    else if (s ~ /hyper|httparse/) g = "hyper, httparse"
    else if (s ~ /serde/) g = "serde_json"
    else if (s ~ /tokio/) g = "tokio"
    else if (s ~ /dropfix_core/) g = "dropfix-core"
    else if (s ~ /dropfix_server/) g = "dropfix-server (handlers, store glue)"
  }
  { t[g] += p }
  END { for (k in t) printf "  %5.1f%%  %s\n", t[k], k }' | sort -rn
