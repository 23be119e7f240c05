#!/usr/bin/env bash
# A throwaway PgBouncer in transaction mode (what Supabase's port 6543, Heroku's and many
# Kubernetes poolers hand out) in front of the test PostgreSQL, for the suite's pooler run.
#
#   url="$(scripts/pgbouncer.sh start "$(scripts/postgres.sh)")"; ...; scripts/pgbouncer.sh stop
#
# `start SERVER_URL` writes a configuration in a directory of its own (/tmp/dropfix-pgbouncer,
# or $DROPFIX_TEST_PGBOUNCER_DIR): pool_mode = transaction, every database of SERVER_URL's server
# reachable by name (so each test's own database is), the test role's password in its userlist
# (scram-sha-256 both ways), on 127.0.0.1 at a free port. It prints (last line on stdout) the
# same URL with the pooler's port. `stop` ends the PgBouncer it started (by the pid file it
# wrote) and removes the directory. Needs Debian's pgbouncer package (scripts/setup.sh --test).
set -euo pipefail

DIR="${DROPFIX_TEST_PGBOUNCER_DIR:-/tmp/dropfix-pgbouncer}"
log() { echo "pgbouncer.sh: $*" >&2; }

stop() {
  if [ -f "$DIR/pgbouncer.pid" ]; then
    pid="$(cat "$DIR/pgbouncer.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$DIR"
}

case "${1:-}" in
  stop) stop; log "stopped"; exit 0 ;;
  start) [ -n "${2:-}" ] || { echo "usage: $0 start SERVER_URL | stop" >&2; exit 2; } ;;
  *) echo "usage: $0 start SERVER_URL | stop" >&2; exit 2 ;;
esac
command -v pgbouncer >/dev/null || { log "pgbouncer is not installed (apt-get install pgbouncer; scripts/setup.sh --test does)"; exit 1; }

# postgres://user:password@host:port/db[?...]
url="$2"
rest="${url#*://}"
userinfo="${rest%%@*}"; hostpart="${rest#*@}"
user="${userinfo%%:*}"; password="${userinfo#*:}"
hostport="${hostpart%%/*}"; tail="${hostpart#*/}"
host="${hostport%%:*}"; port="${hostport##*:}"
[ "$port" != "$hostport" ] || port=5432

stop
mkdir -p "$DIR"
chmod 700 "$DIR"
# A free port: the kernel's pick for a socket bound to port 0, released just before PgBouncer
# binds it (another program taking it in between makes the start fail, and it is retried).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

printf '"%s" "%s"\n' "$user" "$password" >"$DIR/userlist.txt"
chmod 600 "$DIR/userlist.txt"
run_as=""
# PgBouncer refuses to run as root; as root it drops to the postgres user.
if [ "$(id -u)" = 0 ]; then run_as="user = postgres"; chown -R postgres "$DIR"; fi

for attempt in 1 2 3 4 5; do
  listen_port="$(free_port)"
  cat >"$DIR/pgbouncer.ini" <<INI
[databases]
* = host=$host port=$port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen_port
unix_socket_dir =
pool_mode = transaction
auth_type = scram-sha-256
auth_file = $DIR/userlist.txt
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
; Enough server connections for tests that open several stores (a pool and a listener each).
default_pool_size = 40
max_client_conn = 400
; Statements prepared by name must not work here by accident (1.21+ would track them when
; this is set; 1.18, Debian 12's, has no such support at all).
max_prepared_statements = 0
ignore_startup_parameters = extra_float_digits,options
; After a failed server login PgBouncer waits this long before the next (15 s by default): the
; outage tests refuse connections to their database, then expect the store back within seconds.
server_login_retry = 1
$run_as
INI
  [ -z "$run_as" ] || chown postgres "$DIR/pgbouncer.ini"
  # 1.18 does not know max_prepared_statements: leave it out there.
  if ! pgbouncer --version | awk 'NR == 1 { split($2, v, "."); exit !(v[1] > 1 || v[2] >= 21) }'; then
    sed -i '/max_prepared_statements/d' "$DIR/pgbouncer.ini"
  fi
  pgbouncer -d "$DIR/pgbouncer.ini" >&2 || true
  for _ in $(seq 1 50); do
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$listen_port" 2>/dev/null && break
    sleep 0.1
  done
  if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$listen_port" 2>/dev/null; then
    log "ready: transaction mode on 127.0.0.1:$listen_port in front of $host:$port (log: $DIR/pgbouncer.log)"
    echo "postgres://$userinfo@127.0.0.1:$listen_port/$tail"
    exit 0
  fi
  log "attempt $attempt: PgBouncer did not start on port $listen_port: $(tail -3 "$DIR/pgbouncer.log" 2>/dev/null)"
done
stop
exit 1
