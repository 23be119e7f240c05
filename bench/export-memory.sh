#!/usr/bin/env bash
# Memory of the console's CSV export (loopback only, bounded): USERS verified users are written
# straight into an embedded store (server stopped), then the server's peak RSS (VmHWM) is read
# after one export and after PARALLEL exports at once (each by its own viewer account), with the
# status of every answer (200 = a whole file, 429 = refused by the export limits).
# Knobs: USERS (100000), PARALLEL (4), DROPFIX_BIN (default: this tree's release build).
set -euo pipefail
cd "$(dirname "$0")/.."
USERS="${USERS:-100000}"; PARALLEL="${PARALLEL:-4}"
source bench/common.sh
start() {
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --admin-token bench >"$WORK/out" 2>"$WORK/err" &
  PID=$!; PIDS+=($PID)
  for _ in $(seq 1 600); do grep -q "listening on" "$WORK/out" && return 0; sleep 0.1; done
  cat "$WORK/err" >&2; exit 1
}
mkdir -m 700 "$WORK/data"
start
APP="$(grep -o 'app_id=[^ ]*' "$WORK/out" | cut -d= -f2)"
kill "$PID"; wait "$PID" 2>/dev/null || true
python3 - "$WORK/data/dropfix.sqlite3" "$APP" "$USERS" <<'PY'
import sqlite3, sys, time
db, app, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = sqlite3.connect(db); now = int(time.time())
rows = ((app, f"user-{i:07}", 1, "seed_hmac", 1, now, now, f"Name {i}", f"u{i}@example.com", "pro", 49.0, now, now) for i in range(n))
c.executemany("INSERT INTO users (app_id, user_id, verified, method, key_id, verified_at, signed_at, name, email, plan, mrr, first_seen, last_seen) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
c.commit(); c.close()
PY
for i in $(seq 1 "$PARALLEL"); do
  printf 'a viewer password!\n' | "$BIN" user create --email "v$i@example.com" --password-stdin \
    --workspace "$APP" --role viewer --data-dir "$WORK/data" >/dev/null
done
start
URL="$(grep -o 'http://[^ ]*' "$WORK/out" | head -1)"
cookie() {
  curl -s -o /dev/null -D - -H "Origin: $URL" --data-urlencode "email=v$1@example.com" \
    --data-urlencode 'password=a viewer password!' "$URL/console/login" \
    | grep -i '^set-cookie:' | sed -E 's/^[^:]*: *([^;]*).*/\1/'
}
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$PID/status"; }
# Peak RSS since the last reset (writing 5 to clear_refs resets VmHWM to the current RSS).
reset_peak() { echo 5 >"/proc/$PID/clear_refs" 2>/dev/null || true; }
# Logins first: each runs argon2id (19 MiB while it runs), which is not the export's memory.
declare -a COOKIES
for i in $(seq 1 "$PARALLEL"); do COOKIES[$i]="$(cookie "$i")"; done
echo "$USERS verified users; server RSS before exporting $(awk '/^VmRSS/ {print $2}' "/proc/$PID/status") kB"
reset_peak
curl -s -o "$WORK/one.csv" -w 'one export: %{http_code}, %{size_download} bytes' -H "Cookie: ${COOKIES[1]}" "$URL/console/w/$APP/users/export.csv"
echo "; RSS peak during it $(hwm) kB (the store's page cache, up to 64 MiB, fills as it reads)"
reset_peak
pids=()
for i in $(seq 1 "$PARALLEL"); do
  curl -s -o /dev/null -w "%{http_code} " -H "Cookie: ${COOKIES[$i]}" "$URL/console/w/$APP/users/export.csv" &
  pids+=($!)
done
wait "${pids[@]}"
echo
echo "$PARALLEL exports at once (statuses above); RSS peak during them $(hwm) kB"
