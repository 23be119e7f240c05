#!/usr/bin/env bash
# Makes a PostgreSQL available for the test suite and prints its URL on stdout (last line).
#
#   export DROPFIX_TEST_DATABASE_URL="$(scripts/postgres.sh)"
#
# Order: DROPFIX_TEST_DATABASE_URL if it is already set and answers; else the machine's own
# cluster (started with pg_ctlcluster if stopped, installed from Debian's `postgresql` package if
# absent). On the machine's cluster it creates (or resets the password of) a login role with
# CREATEDB for the tests: every test creates its own database and drops it afterwards.
# Progress goes to stderr; needs root (or sudo) only when it has to install or start PostgreSQL.
#
# With DROPFIX_PG_STARTED_FILE set, a cluster this script started (or installed) is written to
# that file ("VERSION NAME"), so that the caller can stop what it started and only that:
#
#   scripts/postgres.sh --stop-started FILE    # stops the cluster named in FILE, if any
set -euo pipefail

ROLE="${DROPFIX_TEST_PG_ROLE:-dropfix_test}"
PASSWORD="${DROPFIX_TEST_PG_PASSWORD:-dropfix_test_password}"
HOST=127.0.0.1
PORT="${DROPFIX_TEST_PG_PORT:-5432}"

log() { echo "postgres.sh: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -n -u postgres "$@"; fi
}

# A URL given by the caller wins when it answers (CI with a service container, a developer's own
# server). pg_isready is not needed for that: bash's /dev/tcp checks the port.
reachable() { # host port
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

if [ "${1:-}" = --stop-started ]; then
  started="$(cat "${2:?--stop-started needs the file DROPFIX_PG_STARTED_FILE named}" 2>/dev/null || true)"
  if [ -n "$started" ]; then
    # shellcheck disable=SC2086
    set -- $started
    log "stopping cluster $1/$2 (started for this run)"
    as_root pg_ctlcluster "$1" "$2" stop >&2
  fi
  exit 0
fi
started_file="${DROPFIX_PG_STARTED_FILE:-}"

if [ -n "${DROPFIX_TEST_DATABASE_URL:-}" ]; then
  log "using DROPFIX_TEST_DATABASE_URL from the environment"
  echo "$DROPFIX_TEST_DATABASE_URL"
  exit 0
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "PostgreSQL is not installed: installing Debian's postgresql package"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2
  installed=1
fi

# The first cluster on $PORT (any installed version); create one if the package made none.
cluster="$(pg_lsclusters -h 2>/dev/null | awk -v p="$PORT" '$3 == p { print $1 " " $2; exit }')"
if [ -z "$cluster" ]; then
  version="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
  log "no cluster on port $PORT: creating $version/main"
  as_root pg_createcluster "$version" main --port "$PORT" >&2
  cluster="$version main"
fi
# shellcheck disable=SC2086
set -- $cluster
status="$(pg_lsclusters -h | awk -v v="$1" -v c="$2" '$1 == v && $2 == c { print $4 }')"
if [ "$status" != online ]; then
  log "starting cluster $1/$2"
  as_root pg_ctlcluster "$1" "$2" start >&2
  installed=1
fi
# Started (or installed, which starts it) by this run: the caller may stop it afterwards.
if [ -n "$started_file" ] && [ -n "${installed:-}" ]; then
  echo "$1 $2" >"$started_file"
fi
for _ in $(seq 1 50); do
  reachable "$HOST" "$PORT" && break
  sleep 0.2
done
reachable "$HOST" "$PORT" || { log "PostgreSQL does not answer on $HOST:$PORT"; exit 1; }

# The test role: LOGIN, CREATEDB, a password (the tests connect over TCP with md5/scram, which
# Debian's pg_hba.conf allows for 127.0.0.1).
as_postgres psql -v ON_ERROR_STOP=1 -q -d postgres >&2 <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END
\$\$;
SQL
# Tests that start many stores at once (each with a pool and a listener) need connections.
max="$(as_postgres psql -tA -d postgres -c 'SHOW max_connections')"
log "ready: role $ROLE on $HOST:$PORT (max_connections=$max)"
echo "postgres://$ROLE:$PASSWORD@$HOST:$PORT/postgres"
