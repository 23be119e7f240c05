#!/usr/bin/env bash
# What a client of one verifier sees while its PostgreSQL primary crashes and a synchronous
# standby is promoted (docs/SCALING.md, "Failover"). Loopback only; everything it starts lives in
# a private directory and is stopped and removed on exit.
#
#   1. a primary and a streaming standby (pg_basebackup), the standby synchronous
#      (synchronous_standby_names), both throwaway clusters of the machine's PostgreSQL;
#   2. one verifier whose --database-url names both hosts with target_session_attrs=read-write;
#   3. CLIENTS clients each send identify calls with new user ids, one at a time, and record
#      every answer; after LEAD seconds the primary is crashed (pg_ctl stop -m immediate) and
#      PROMOTE_AFTER seconds later the standby promoted; calls go on for TAIL seconds more;
#   4. then: every acknowledged (2xx) id is looked up on the new primary, the longest time
#      without a 2xx and the answers in it are reported, /healthz is sampled throughout, a strict
#      mode change is made on the new primary and timed until the verifier enforces it, and the
#      verifier's log lines at WARN and ERROR during the failover are counted.
# FAILS when an acknowledged id is missing on the new primary or a non-503 error is answered.
# Knobs: CLIENTS (8), LEAD (3), PROMOTE_AFTER (1.2), TAIL (4), DROPFIX_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS="${CLIENTS:-8}"; LEAD="${LEAD:-3}"; PROMOTE_AFTER="${PROMOTE_AFTER:-1.2}"; TAIL="${TAIL:-4}"
source bench/common.sh
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# PostgreSQL runs as its own user when this runs as root: its directories are not under $WORK.
PGWORK="$(mktemp -d /tmp/dropfix-failover.XXXXXX)"; chmod 755 "$PGWORK"
[ "$(id -u)" = 0 ] && chown postgres "$PGWORK"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P1="$(free_port)"; P2="$(free_port)"
cleanup() {
  for d in primary standby; do
    [ -d "$PGWORK/$d" ] && as_postgres "$PGBIN/pg_ctl" -D "$PGWORK/$d" -m immediate stop >/dev/null 2>&1 || true
  done
  rm -rf "$PGWORK"
  bench_cleanup
}
trap cleanup EXIT

echo "primary :$P1, synchronous standby :$P2 ($("$PGBIN/postgres" --version))"
as_postgres "$PGBIN/initdb" -D "$PGWORK/primary" -A trust -U postgres >/dev/null
cat >>"$PGWORK/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $P1
unix_socket_directories = '$PGWORK'
wal_level = replica
max_wal_senders = 4
synchronous_standby_names = 'standby'
fsync = on
CONF
echo "host replication all 127.0.0.1/32 trust" >>"$PGWORK/primary/pg_hba.conf"
as_postgres "$PGBIN/pg_ctl" -D "$PGWORK/primary" -l "$PGWORK/primary.log" -w start >/dev/null
as_postgres "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$P1" -U postgres -D "$PGWORK/standby" -R \
  -d "host=127.0.0.1 port=$P1 user=postgres application_name=standby" >/dev/null
# The copy carries the primary's settings: its own port, and no synchronous standby of its own
# once promoted (else every commit on it would wait for one that does not exist).
sed -i -e "s/^port = .*/port = $P2/" -e "s/^synchronous_standby_names = .*/synchronous_standby_names = ''/" \
  "$PGWORK/standby/postgresql.conf"
as_postgres "$PGBIN/pg_ctl" -D "$PGWORK/standby" -l "$PGWORK/standby.log" -w start >/dev/null
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }
psql "host=127.0.0.1 port=$P1 user=postgres" -c "CREATE ROLE dropfix LOGIN" -c "CREATE DATABASE dropfix OWNER dropfix"
sync_state="$(psql -At "host=127.0.0.1 port=$P1 user=postgres" -c "SELECT sync_state FROM pg_stat_replication")"
echo "standby replication: $sync_state"
[ "$sync_state" = sync ] || { echo "FAIL: the standby is not synchronous" >&2; exit 1; }

URL="postgres://dropfix@127.0.0.1:$P1,127.0.0.1:$P2/dropfix?target_session_attrs=read-write"
export DROPFIX_MASTER_KEYS="$("$BIN" master-key generate --id mk1)"
mkdir -m 700 "$WORK/data"
RUST_LOG="${RUST_LOG:-info}" "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --database-url "$URL" \
  --create-dev-workspace --rate-limit-per-ip 0 --rate-limit-per-app 0 --db-timeout-secs 2 \
  >"$WORK/serve.out" 2>"$WORK/serve.err" &
PIDS+=($!)
wait_line "$WORK/serve.out" "listening on"
VERIFIER="$(grep -o 'http://[^ ]*' "$WORK/serve.out" | head -1)"
APP="$(grep -o 'app_id=[^ ]*' "$WORK/serve.out" | cut -d= -f2)"

# The clients, the crash, the promotion, the strict-mode change: one Python program, so that
# every timestamp is on one clock.
python3 -u - "$VERIFIER" "$APP" "$CLIENTS" "$LEAD" "$PROMOTE_AFTER" "$TAIL" "$WORK" "$PGBIN" "$PGWORK" "$P2" "$BIN" "$URL" <<'PY'
import http.client, json, os, subprocess, sys, threading, time, urllib.parse

verifier, app, clients, lead, promote_after, tail, work, pgbin, pgwork, p2, binary, url = sys.argv[1:]
clients, lead, promote_after, tail = int(clients), float(lead), float(promote_after), float(tail)
host = urllib.parse.urlsplit(verifier)
as_pg = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
answers = []          # (time, status, user id)
health = []           # (time, status)
lock = threading.Lock()
stop = threading.Event()
t0 = time.monotonic()

def client(n):
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
    i = 0
    while not stop.is_set():
        i += 1
        uid = f"c{n}-{i}"
        body = json.dumps({"app_id": app, "user_id": uid, "traits": {"plan": "pro"}})
        try:
            conn.request("POST", "/v1/identify", body, {"Content-Type": "application/json"})
            r = conn.getresponse(); r.read(); status = r.status
        except Exception:
            conn.close(); conn = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
            status = 0
        with lock:
            answers.append((time.monotonic() - t0, status, uid))

def healthz():
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
    while not stop.is_set():
        try:
            conn.request("GET", "/healthz"); r = conn.getresponse(); r.read(); status = r.status
        except Exception:
            conn.close(); conn = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
            status = 0
        health.append((time.monotonic() - t0, status))
        time.sleep(0.05)

threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
threads.append(threading.Thread(target=healthz))
for t in threads: t.start()
time.sleep(lead)
print(f"{len(answers)} answers before the crash", flush=True)
crash = time.monotonic() - t0
subprocess.run(as_pg + [f"{pgbin}/pg_ctl", "-D", f"{pgwork}/primary", "-m", "immediate", "stop"],
               check=True, stdout=subprocess.DEVNULL)
print("primary crashed", flush=True)
time.sleep(promote_after)
subprocess.run(as_pg + [f"{pgbin}/pg_ctl", "-D", f"{pgwork}/standby", "-w", "promote"],
               check=True, stdout=subprocess.DEVNULL)
promoted = time.monotonic() - t0
print("standby promoted", flush=True)
time.sleep(tail)
stop.set()
for t in threads: t.join()
print("clients stopped", flush=True)

ok = [a for a in answers if 200 <= a[1] < 300]
by_status = {}
for a in answers: by_status[a[1]] = by_status.get(a[1], 0) + 1
# The longest stretch without a 2xx, and what was answered in it.
times = sorted(a[0] for a in ok)
gap, gap_at = max(((b - a, a) for a, b in zip(times, times[1:])), default=(0, 0))
in_gap = {}
for a in answers:
    if gap_at < a[0] < gap_at + gap: in_gap[a[1]] = in_gap.get(a[1], 0) + 1
after = [a for a in ok if a[0] > promoted]
first_ok_after = min(a[0] for a in after) - promoted if after else float("nan")
unhealthy = [h for h in health if h[1] != 200]
hz_codes = sorted({h[1] for h in unhealthy})
hz_span = (max(h[0] for h in unhealthy) - min(h[0] for h in unhealthy)) if unhealthy else 0

# Every acknowledged id on the new primary (the standby).
new_primary = f"host=127.0.0.1 port={p2} user=postgres dbname=dropfix"
ids = "\n".join(a[2] for a in ok)
out = subprocess.run(["psql", "-X", "-At", new_primary, "-c",
                      "CREATE TEMP TABLE acked (id text); COPY acked FROM STDIN; "
                      "SELECT count(*) FROM acked a WHERE NOT EXISTS "
                      "(SELECT 1 FROM users u WHERE u.user_id = a.id)"],
                     input=ids + "\n", capture_output=True, text=True, check=True)
missing = int(out.stdout.strip().split("\n")[-1])
print("acknowledged ids looked up", flush=True)

# A config change made on the new primary, timed until this verifier enforces it (an unsigned
# call refused 401 once strict mode is on).
direct = f"postgres://dropfix@127.0.0.1:{p2}/dropfix"
env = dict(os.environ, DROPFIX_DATABASE_URL=direct)
subprocess.run([binary, "workspace", "set", app, "--strict", "on"], env=env, check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
changed = time.monotonic()
conn = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
while True:
    body = json.dumps({"app_id": app, "user_id": "after-change"})
    conn.request("POST", "/v1/identify", body, {"Content-Type": "application/json"})
    r = conn.getresponse(); r.read()
    if r.status == 401: break
    if time.monotonic() - changed > 10: raise SystemExit("FAIL: strict mode did not reach the verifier in 10 s")
    time.sleep(0.002)
reached_ms = (time.monotonic() - changed) * 1000

print(f"crash at {crash:.2f} s, promoted at {promoted:.2f} s ({promoted - crash:.2f} s later)")
print(f"answers: {len(answers)} ({', '.join(f'{k}: {v}' for k, v in sorted(by_status.items()))})")
print(f"acknowledged (2xx): {len(ok)}; missing on the new primary: {missing}")
print(f"longest time without a 2xx: {gap:.2f} s (answered in it: "
      f"{', '.join(f'{k}: {v}' for k, v in sorted(in_gap.items())) or 'nothing'})")
print(f"first 2xx after the promotion: {first_ok_after * 1000:.0f} ms")
print(f"/healthz not 200 for {hz_span:.2f} s (codes {hz_codes})")
print(f"strict mode set on the new primary reached the verifier in {reached_ms:.0f} ms")
bad = {k: v for k, v in by_status.items() if not (200 <= k < 300 or k == 503)}
with open(f"{work}/verdict", "w") as f:
    f.write("ok" if missing == 0 and not bad else f"missing {missing}, other answers {bad}")
PY
errors="$(grep -c '"level":"ERROR"\| ERROR ' "$WORK/serve.err" || true)"
warns="$(grep -c '"level":"WARN"\| WARN ' "$WORK/serve.err" || true)"
echo "verifier log during the run: $errors ERROR and $warns WARN lines:"
grep ' ERROR \| WARN \|"level":"ERROR"\|"level":"WARN"' "$WORK/serve.err" | cut -c1-220 | sed 's/^/  /' | head -20
verdict="$(cat "$WORK/verdict")"
[ "$verdict" = ok ] || { echo "FAIL: $verdict" >&2; exit 1; }
