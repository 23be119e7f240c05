#!/usr/bin/env bash
# A throwaway PostgreSQL cluster that serves TLS with a certificate from a throwaway CA, for the
# test suite's TLS run. Prints (last line on stdout) the URL of its test role with
# sslmode=verify-full and sslrootcert=<that CA>.
#
#   url="$(scripts/postgres-tls.sh start)"; ...; scripts/postgres-tls.sh stop
#
# The cluster (Debian's pg_createcluster, the newest installed version, named dropfix_tls, on
# 127.0.0.1:$DROPFIX_TEST_PG_TLS_PORT, default 5441) is created fresh by `start` and removed,
# with its certificates, by `stop`. Needs root (or sudo) and Debian's postgresql package
# (scripts/postgres.sh installs it) and openssl.
set -euo pipefail

NAME=dropfix_tls
PORT="${DROPFIX_TEST_PG_TLS_PORT:-5441}"
ROLE="${DROPFIX_TEST_PG_ROLE:-dropfix_test}"
PASSWORD="${DROPFIX_TEST_PG_PASSWORD:-dropfix_test_password}"
CERTS=/tmp/dropfix-pg-tls

log() { echo "postgres-tls.sh: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -n -u postgres "$@"; fi; }

version="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
remove() {
  if pg_lsclusters -h 2>/dev/null | awk -v n="$NAME" '$2 == n { found = 1 } END { exit !found }'; then
    as_root pg_dropcluster --stop "$version" "$NAME" >&2
  fi
  as_root rm -rf "$CERTS"
}

case "${1:-start}" in
  stop) remove; log "removed"; exit 0 ;;
  start) ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

remove
as_root mkdir -p "$CERTS"
as_root chmod 755 "$CERTS"
# The CA, and a server certificate for localhost and 127.0.0.1 signed by it.
as_root openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=DropFix test PostgreSQL CA" -keyout "$CERTS/ca.key" -out "$CERTS/ca.pem" 2>/dev/null
as_root openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=localhost" -keyout "$CERTS/server.key" -out "$CERTS/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' | as_root tee "$CERTS/ext.cnf" >/dev/null
as_root openssl x509 -req -in "$CERTS/server.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca.key" \
  -CAcreateserial -days 2 -extfile "$CERTS/ext.cnf" -out "$CERTS/server.pem" 2>/dev/null
as_root chown postgres:postgres "$CERTS/server.key" "$CERTS/server.pem"
as_root chmod 600 "$CERTS/server.key"
as_root chmod 644 "$CERTS/ca.pem"

log "creating cluster $version/$NAME on port $PORT with ssl=on"
as_root pg_createcluster "$version" "$NAME" --port "$PORT" >&2
conf="/etc/postgresql/$version/$NAME/conf.d/dropfix-tls.conf"
as_root tee "$conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
ssl = on
ssl_cert_file = '$CERTS/server.pem'
ssl_key_file = '$CERTS/server.key'
max_connections = 100
CONF
# TCP connections only over TLS: a client that does not use it is refused.
as_root tee "/etc/postgresql/$version/$NAME/pg_hba.conf" >/dev/null <<HBA
local   all all                peer
hostssl all all 127.0.0.1/32   scram-sha-256
hostssl all all ::1/128        scram-sha-256
HBA
as_root pg_ctlcluster "$version" "$NAME" start >&2
for _ in $(seq 1 50); do
  as_postgres psql -p "$PORT" -Atc "select 1" >/dev/null 2>&1 && break
  sleep 0.2
done
as_postgres psql -p "$PORT" -v ON_ERROR_STOP=1 -q >&2 <<SQL
CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
SQL
log "ready: $ROLE on localhost:$PORT, TLS only, certificate from the CA $CERTS/ca.pem"
echo "postgres://$ROLE:$PASSWORD@localhost:$PORT/postgres?sslmode=verify-full&sslrootcert=$CERTS/ca.pem"
