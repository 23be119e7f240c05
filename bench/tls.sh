#!/usr/bin/env bash
# What HTTPS costs the verifier (loopback only, bounded in time: about ROUNDS x 4 x
# SECONDS_PER_RUN): one release build served twice, plain HTTP and HTTPS (a throwaway ECDSA P-256
# certificate; rustls, TLS 1.3), each on its own embedded store, driven alternately by wrk with
# the hot-path mix of bench/mix.sh, in two ways:
#   keep-alive   wrk -c64 keeps its connections: the per-request cost of TLS (record encryption);
#   new-conn     every request on a new connection (Connection: close): the handshake's cost.
# Reports req/s and the server's own CPU per request (user + system from /proc), and the ratios
# HTTPS / HTTP; fails when a run's share of non-2xx answers is not the mix's 20 % (rate limits are
# set far above the load, off in effect). Knobs: ROUNDS (3), SECONDS_PER_RUN (5), CONNECTIONS (64), DROPFIX_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"; SECS="${SECONDS_PER_RUN:-5}"; CONN="${CONNECTIONS:-64}"
source bench/common.sh
need_wrk
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
declare -A PID_OF URL_OF
start() { # NAME ARGS...
  local name="$1"; shift
  mkdir -m 700 "$WORK/$name"
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/$name" --admin-token bench \
    --rate-limit-per-ip 1000000 --rate-limit-per-app 10000000 "$@" >"$WORK/$name.out" 2>/dev/null &
  PIDS+=($!); PID_OF[$name]=$!
  for _ in $(seq 1 600); do grep -q "listening on" "$WORK/$name.out" && break; sleep 0.1; done
  URL_OF[$name]="$(grep -o 'https\?://[^ ]*' "$WORK/$name.out" | head -1)"
}
start http
start https --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"
source bench/mix.sh
for name in http https; do
  app="$(grep -o 'app_id=[^ ]*' "$WORK/$name.out" | cut -d= -f2)"
  secret="$(grep -o 'secret=[^ ]*' "$WORK/$name.out" | cut -d= -f2)"
  mix "$app" "$secret" 2000 7 1 1 1 >"$WORK/mix-$name.lua"
done
run() { # NAME MODE
  local name="$1" mode="$2" out="$WORK/wrk.txt" cpu0 cpu1 extra=() conns="$CONN"
  if [ "$mode" = new-conn ]; then extra=(-H "Connection: close"); conns=16; fi
  cpu0="$(cpu_secs "${PID_OF[$name]}")"
  wrk -t1 -c"$conns" -d"${SECS}s" "${extra[@]}" -s "$WORK/mix-$name.lua" "${URL_OF[$name]}" >"$out"
  cpu1="$(cpu_secs "${PID_OF[$name]}")"
  mix_share_ok "$out" >/dev/null || { echo "FAIL: $name $mode: non-2xx share $(mix_share_ok "$out")% is not the mix's 20%" >&2; exit 1; }
  local rps total us
  rps="$(awk '/^Requests\/sec/ {print $2}' "$out")"
  total="$(awk '/requests in/ {print $1}' "$out")"
  us="$(awk -v n="$total" -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", (b - a) * 1e6 / n }')"
  printf '%s\t%s\t%s\t%s\n' "$name" "$mode" "$rps" "$us" >>"$WORK/results.tsv"
  printf '  %-6s %-10s %9.0f req/s   %7.2f us CPU/request\n' "$name" "$mode" "$rps" "$us"
}
echo "machine: $(nproc) cores; ${SECS}s per run, $ROUNDS rounds; keep-alive: wrk -c$CONN; new-conn: wrk -c16, Connection: close"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r"
  for mode in keep-alive new-conn; do
    run http "$mode"
    run https "$mode"
  done
done
python3 - "$WORK/results.tsv" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    name, mode, rps, us = line.split('\t')
    by.setdefault((name, mode), []).append((float(rps), float(us)))
med = lambda k, i: statistics.median(r[i] for r in by[k])
print("\nmedians, HTTPS / HTTP")
for mode in ("keep-alive", "new-conn"):
    h, s = ("http", mode), ("https", mode)
    print(f"  {mode:10}  req/s {med(h,0):8.0f} -> {med(s,0):8.0f} ({med(s,0)/med(h,0):.2f})   "
          f"CPU per request {med(h,1):6.2f} -> {med(s,1):6.2f} us ({med(s,1)/med(h,1):.2f}x)")
print("  (goal: keep-alive HTTPS within 1.3x of HTTP CPU per request)")
PY
