#!/usr/bin/env bash
# Do console viewers slow identify calls down? (Loopback only, bounded in time: about
# ROUNDS x 2 x SECONDS_PER_RUN after the set-up.)
#
# One embedded-store verifier holding WORKSPACES workspaces with KEYS_PER keys each (1,000 x 5
# by default, plus the development workspace), and a viewer account of one small workspace. Each
# round runs, alternately: identify alone (wrk -t1 -c64, the hot-path mix of bench/mix.sh), then
# the same identify load while VIEWERS connections loop that workspace's Audit page with the
# viewer's session. Reports identify req/s and p50 for both and their ratio (medians over rounds),
# and fails when a run's share of non-2xx answers is not the mix's 20 %. Rate limits are set far
# above the load (off in effect).
# Knobs: WORKSPACES (1000), KEYS_PER (5), VIEWERS (4), ROUNDS (3), SECONDS_PER_RUN (10),
# PAGE (audit; or security, users, rejections), DROPFIX_BIN (default: this tree's release build).
set -euo pipefail
cd "$(dirname "$0")/.."
WORKSPACES="${WORKSPACES:-1000}"; KEYS_PER="${KEYS_PER:-5}"; VIEWERS="${VIEWERS:-4}"
ROUNDS="${ROUNDS:-3}"; SECS="${SECONDS_PER_RUN:-10}"; PAGE="${PAGE:-audit}"
source bench/common.sh
need_wrk
mkdir -m 700 "$WORK/data"
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --admin-token bench \
  --rate-limit-per-ip 1000000 --rate-limit-per-app 10000000 >"$WORK/out" 2>"$WORK/err" &
PID=$!; PIDS+=($PID)
for _ in $(seq 1 600); do grep -q "listening on" "$WORK/out" && break; sleep 0.1; done
URL="$(grep -o 'http://[^ ]*' "$WORK/out" | head -1)"
APP="$(grep -o 'app_id=[^ ]*' "$WORK/out" | cut -d= -f2)"
SECRET="$(grep -o 'secret=[^ ]*' "$WORK/out" | cut -d= -f2)"

echo "setting up $WORKSPACES workspaces x $KEYS_PER keys (admin API)..."
VIEWED="$(python3 - "$URL" "$WORKSPACES" "$KEYS_PER" <<'PY'
import http.client, json, sys, urllib.parse
url, n, keys = urllib.parse.urlparse(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = http.client.HTTPConnection(url.hostname, url.port)
def post(path, body):
    c.request("POST", path, json.dumps(body), {"Authorization": "Bearer bench", "Content-Type": "application/json"})
    r = c.getresponse(); data = r.read()
    assert r.status in (200, 201), (r.status, data)
    return json.loads(data)
first = None
for i in range(n):
    app = post("/v1/admin/workspaces", {"name": f"tenant {i}"})["app_id"]
    first = first or app
    for k in range(keys - 1):
        post(f"/v1/admin/workspaces/{app}/keys", {"label": f"k{k}"})
print(first)
PY
)"
printf 'a viewer password!\n' | "$BIN" user create --email viewer@example.com --password-stdin \
  --workspace "$VIEWED" --role viewer --data-dir "$WORK/data" >/dev/null
COOKIE="$(curl -s -o /dev/null -D - -H "Origin: $URL" \
  --data-urlencode email=viewer@example.com --data-urlencode 'password=a viewer password!' \
  "$URL/console/login" | grep -i '^set-cookie:' | sed -E 's/^[^:]*: *([^;]*).*/\1/')"
[ -n "$COOKIE" ] || { echo "console login failed" >&2; exit 1; }
status="$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "$URL/console/w/$VIEWED/$PAGE")"
[ "$status" = 200 ] || { echo "the $PAGE page answered $status" >&2; exit 1; }

source bench/mix.sh
mix "$APP" "$SECRET" 2000 7 1 1 1 >"$WORK/mix.lua"
run() { # KIND
  local out="$WORK/wrk-$1.txt" vpid=""
  if [ "$1" = with-viewers ]; then
    wrk -t1 -c"$VIEWERS" -d"$((SECS + 1))s" -H "Cookie: $COOKIE" "$URL/console/w/$VIEWED/$PAGE" >"$WORK/viewers.txt" &
    vpid=$!; sleep 0.5
  fi
  wrk -t1 -c64 -d"${SECS}s" --latency -s "$WORK/mix.lua" "$URL" >"$out"
  [ -n "$vpid" ] && wait "$vpid"
  mix_share_ok "$out" >/dev/null || { echo "FAIL: non-2xx share $(mix_share_ok "$out")% is not the mix's 20%" >&2; exit 1; }
  local rps p50 pages=""
  rps="$(awk '/^Requests\/sec/ {print $2}' "$out")"
  p50="$(awk '$1=="50%" {print $2}' "$out" | to_ms)"
  [ -n "$vpid" ] && pages="   viewer pages $(awk '/^Requests\/sec/ {print $2}' "$WORK/viewers.txt")/s"
  printf '%s\t%s\t%s\n' "$1" "$rps" "$p50" >>"$WORK/results.tsv"
  printf '  %-14s identify %9.0f req/s   p50 %6.2f ms%s\n' "$1" "$rps" "$p50" "$pages"
}
echo "machine: $(nproc) cores; $(( WORKSPACES + 1 )) workspaces; $VIEWERS viewer connections on /console/w/<app>/$PAGE; ${SECS}s per run, $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r"
  run alone
  run with-viewers
done
python3 - "$WORK/results.tsv" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    kind, rps, p50 = line.split('\t'); by.setdefault(kind, []).append((float(rps), float(p50)))
med = lambda k, i: statistics.median(r[i] for r in by[k])
print(f"\nmedians: alone {med('alone',0):.0f} req/s (p50 {med('alone',1):.2f} ms); with viewers {med('with-viewers',0):.0f} req/s (p50 {med('with-viewers',1):.2f} ms)")
print(f"identify req/s with viewers / alone: {med('with-viewers',0)/med('alone',0):.2f} (goal >= 0.8)")
PY
