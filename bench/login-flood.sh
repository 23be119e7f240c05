#!/usr/bin/env bash
# Memory of a verifier under a console login flood (loopback only, bounded in time):
# bench/login_flood.py posts wrong logins over CONNECTIONS keep-alive connections, a new email on
# every request, the way an attacker would try to fill the
# login limiter, and the server's RSS is read before, right after and RECOVER seconds after.
# Two floods, each on a fresh server:
#   long-emails   the issue's reproduction: 60,000-byte unique emails from one client;
#   many-clients  unique short emails, each from a new client address (X-Forwarded-For through a
#                 --trusted-proxy 127.0.0.1), the worst case for the per-client maps and for
#                 concurrent argon2 checks.
# Knobs: SECONDS_PER_RUN (15), CONNECTIONS (8), RECOVER (15), FLOODS (both), DROPFIX_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${SECONDS_PER_RUN:-15}"; CONN="${CONNECTIONS:-8}"; RECOVER="${RECOVER:-15}"
FLOODS="${FLOODS:-long-emails many-clients}"
source bench/common.sh
rss() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
for flood in $FLOODS; do
  rm -rf "$WORK/data"; mkdir -m 700 "$WORK/data"
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --admin-token bench \
    --trusted-proxy 127.0.0.1 >"$WORK/out" 2>"$WORK/err" &
  PID=$!; PIDS+=($PID)
  for _ in $(seq 1 600); do grep -q "listening on" "$WORK/out" && break; sleep 0.1; done
  URL="$(grep -o 'http://[^ ]*' "$WORK/out" | head -1)"
  case "$flood" in
    long-emails) LEN=60000; XFF=0 ;;
    *) LEN=8; XFF=1 ;;
  esac
  before="$(rss)"
  answers="$(python3 bench/login_flood.py "$URL" "$SECS" "$CONN" "$LEN" "$XFF")"
  during="$(rss)"
  sleep "$RECOVER"
  printf '%-13s answers %s; RSS %s kB before -> %s kB right after -> %s kB %ss later\n' "$flood" \
    "$answers" "$before" "$during" "$(rss)" "$RECOVER"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
done
