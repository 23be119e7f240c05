#!/usr/bin/env bash
# Soak test (not in CI; see RELIABILITY.md for recorded figures).
#
# 60 s of bounded loopback load (wrk: 2 threads, 16 connections, keep-alive) against the release
# server binary, half seed-signed (200) and half unsigned (202) identify calls over a bounded set
# of users, while slow clients (slowloris) open connections that send their headers one byte at a
# time. It passes when:
#   - wrk saw no socket errors and no non-2xx responses,
#   - RSS stays flat: the last sample is within SOAK_RSS_SLACK_KIB (default 16 MiB) of the sample
#     taken 10 s into the run (after warm-up), and the series is printed,
#   - every slow client was cut by the server (header-read/idle timeout) within the run, while
#     the normal traffic went on (the report says after how long, and whether the server said
#     anything, e.g. 408, before closing),
#   - /healthz is 200 afterwards.
#
# Usage: tests/reliability/soak.sh            (knobs: SOAK_SECONDS, SOAK_CONNECTIONS,
#        SOAK_SLOW_CLIENTS, SOAK_RSS_SLACK_KIB, SOAK_SAMPLE_SECONDS)
# Needs wrk (apt-get install wrk), node and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_TOTAL="${SOAK_SECONDS:-60}"
CONNECTIONS="${SOAK_CONNECTIONS:-16}"
SLOW_CLIENTS="${SOAK_SLOW_CLIENTS:-50}"
RSS_SLACK_KIB="${SOAK_RSS_SLACK_KIB:-16384}"
SAMPLE_EVERY="${SOAK_SAMPLE_SECONDS:-5}"
ADMIN_TOKEN="dfadm_soak_admin_token_0123456789abcdef"

command -v wrk >/dev/null || { echo "soak.sh needs wrk: apt-get install wrk" >&2; exit 2; }

cargo build --quiet --release -p dropfix-server
BIN="${CARGO_TARGET_DIR:-target}/release/dropfix-server"

source tests/support/server.sh
start_server --listen 127.0.0.1:0 --data-dir "$WORK/data" --admin-token "$ADMIN_TOKEN" \
  --rate-limit-per-ip 0 --rate-limit-per-app 0
APP_ID="$(grep -o 'app_id=[^ ]*' "$WORK/server.out" | head -1 | cut -d= -f2)"
SECRET="$(grep -o 'secret=[^ ]*' "$WORK/server.out" | head -1 | cut -d= -f2)"
[ -n "$APP_ID" ] && [ -n "$SECRET" ] || { echo "could not read server start-up lines" >&2; exit 1; }
echo "server pid $SERVER_PID on $ADDR, app $APP_ID"

# Request bodies (bench/mix.sh): 4000, alternately seed-signed (signedAt = now, valid for the
# 300 s window that covers the run) and unsigned, each for its own user.
source bench/mix.sh
mix "$APP_ID" "$SECRET" 4000 1 1 0 0 >"$WORK/load.lua"

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }

# Slow clients: each connects, sends a partial request head one byte every 2 s and never
# finishes it. Reports how many the server cut, after how long, and whether any got a response.
cat >"$WORK/slowloris.py" <<'EOF'
import socket, sys, threading, time
host, port = sys.argv[1].rsplit(":", 1)
n, limit = int(sys.argv[2]), float(sys.argv[3])
head = b"POST /v1/identify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: " + b"a" * 10000
results = []
def slow(i):
    s = socket.create_connection((host, int(port)))
    start = time.monotonic()
    got_response = False
    try:
        for b in head:
            if time.monotonic() - start > limit:
                results.append(("still open", time.monotonic() - start, False))
                return
            s.sendall(bytes([b]))
            s.settimeout(2.0)
            try:
                data = s.recv(4096)
                if data:
                    got_response = data.startswith(b"HTTP/")
                results.append(("cut", time.monotonic() - start, got_response))
                return
            except socket.timeout:
                pass
    except (BrokenPipeError, ConnectionResetError):
        results.append(("cut", time.monotonic() - start, got_response))
    finally:
        s.close()
threads = [threading.Thread(target=slow, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join()
cut = [r for r in results if r[0] == "cut"]
times = sorted(r[1] for r in cut)
print(f"slow clients: {len(cut)}/{n} cut by the server", end="")
if times:
    print(f", after {times[0]:.1f}..{times[-1]:.1f} s (median {times[len(times)//2]:.1f} s)", end="")
print(f"; {sum(1 for r in results if r[2])} got an HTTP response (e.g. 408)")
sys.exit(0 if len(cut) == n else 1)
EOF

echo "rss at start: $(rss_kib) KiB"
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_TOTAL}s" --latency -s "$WORK/load.lua" "http://$ADDR" >"$WORK/wrk.out" 2>&1 &
WRK_PID=$!
python3 "$WORK/slowloris.py" "$ADDR" "$SLOW_CLIENTS" "$SECONDS_TOTAL" >"$WORK/slow.out" 2>&1 &
SLOW_PID=$!

SERIES=()
BASELINE=""
for ((t = SAMPLE_EVERY; t <= SECONDS_TOTAL; t += SAMPLE_EVERY)); do
  sleep "$SAMPLE_EVERY"
  r="$(rss_kib)"
  SERIES+=("${t}s:${r}")
  if [ -z "$BASELINE" ] && [ "$t" -ge 10 ]; then BASELINE="$r"; fi
done
wait "$WRK_PID"
SLOW_OK=0
wait "$SLOW_PID" || SLOW_OK=1
FINAL="$(rss_kib)"

echo
echo "== wrk"
cat "$WORK/wrk.out"
echo
echo "== RSS series (KiB, every ${SAMPLE_EVERY} s)"
echo "${SERIES[*]}"
echo "baseline (10 s) ${BASELINE} KiB, end ${FINAL} KiB, growth $((FINAL - BASELINE)) KiB (limit ${RSS_SLACK_KIB})"
echo
echo "== slow clients"
cat "$WORK/slow.out"

HEALTH="$(python3 -c "import urllib.request,sys; print(urllib.request.urlopen('http://$ADDR/healthz').status)")"
echo "healthz after the soak: $HEALTH"

fail=0
if grep -q "Socket errors" "$WORK/wrk.out"; then echo "FAIL: socket errors"; fail=1; fi
if grep -q "Non-2xx" "$WORK/wrk.out"; then echo "FAIL: non-2xx responses"; fail=1; fi
if [ $((FINAL - BASELINE)) -gt "$RSS_SLACK_KIB" ]; then echo "FAIL: RSS grew"; fail=1; fi
if [ "$SLOW_OK" -ne 0 ]; then echo "FAIL: slow clients were not all cut"; fail=1; fi
if [ "$HEALTH" != "200" ]; then echo "FAIL: healthz"; fail=1; fi
[ "$fail" -eq 0 ] && echo "PASS"
exit "$fail"
