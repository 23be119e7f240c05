#!/usr/bin/env bash
# The main job: the verifier (dropfix-server, release build) on its embedded store in
# ./dropfix-data, and the demo customer app (js-demo) signing users and calling identify() in the
# browser. Prints the URL; Ctrl-C stops both.
#
# The demo's workspace is created once; its app id and secret (shown only at creation) and the
# admin token are kept in ./dropfix-data/demo.env, as a customer keeps them in their own env.
# A console account for the demo workspace is made the same way; its login is printed too.
# Knobs: DROPFIX_LISTEN (default 127.0.0.1:8787), DEMO_PORT (default 3000), DROPFIX_DATA_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --run

LISTEN="${DROPFIX_LISTEN:-127.0.0.1:8787}"
DEMO_PORT="${DEMO_PORT:-3000}"
DATA="${DROPFIX_DATA_DIR:-./dropfix-data}"

echo "building the verifier (release) and the npm package" >&2
cargo build --quiet --release -p dropfix-server
# Builds dist/ only when it is missing or stale: on a first run setup.sh's `npm ci` has just
# built it (the package's `prepare` hook), and building it again would double the wait.
bash scripts/prepack.sh
BIN="${CARGO_TARGET_DIR:-target}/release/dropfix-server"

mkdir -p -m 700 "$DATA"
chmod 700 "$DATA"
ENV_FILE="$DATA/demo.env"
# A demo.env whose workspace is not in the store (the database was deleted by hand) is useless:
# its app id would get 401 unknown_app. Keep it aside and create the workspace again.
if [ -f "$ENV_FILE" ]; then
  saved_app="$(sed -n 's/^DROPFIX_APP_ID=//p' "$ENV_FILE")"
  if ! "$BIN" workspace list --data-dir "$DATA" --json | grep -q "\"app_id\":\"$saved_app\""; then
    echo "workspace $saved_app from $ENV_FILE is not in the store: creating a new one" >&2
    mv "$ENV_FILE" "$ENV_FILE.old"
  fi
fi
if [ ! -f "$ENV_FILE" ]; then
  created="$("$BIN" workspace create --name demo --data-dir "$DATA" --json)"
  app_id="$(node -e 'console.log(JSON.parse(process.argv[1]).app_id)' "$created")"
  secret="$(node -e 'console.log(JSON.parse(process.argv[1]).secret)' "$created")"
  (umask 077 && cat >"$ENV_FILE" <<ENV
DROPFIX_APP_ID=$app_id
DROPFIX_SECRET_KEY=$secret
DROPFIX_ADMIN_TOKEN=dfadm_$(node -e 'console.log(require("crypto").randomBytes(24).toString("hex"))')
ENV
  )
fi
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a
# A console account (owner of the demo workspace) for the console's Security page, made once with the
# CLI as an operator would; its password is generated and kept in demo.env beside the secret.
if [ -z "${DROPFIX_CONSOLE_PASSWORD:-}" ]; then
  console_email="demo@acme.example"
  console_password="$(node -e 'console.log(require("crypto").randomBytes(12).toString("hex"))')"
  if printf '%s\n' "$console_password" | "$BIN" user create --email "$console_email" --password-stdin \
    --workspace "$DROPFIX_APP_ID" --role owner --data-dir "$DATA" >/dev/null; then
    (umask 077 && printf 'DROPFIX_CONSOLE_EMAIL=%s\nDROPFIX_CONSOLE_PASSWORD=%s\n' \
      "$console_email" "$console_password" >>"$ENV_FILE")
    DROPFIX_CONSOLE_EMAIL="$console_email"
    DROPFIX_CONSOLE_PASSWORD="$console_password"
  else
    echo "could not create the console account $console_email (see above); create one with" \
      "\`$BIN user create --data-dir $DATA ...\`" >&2
  fi
fi

wait_for() { # FILE PATTERN PID LOG: until FILE has PATTERN; fail with LOG if PID exits first
  for _ in $(seq 1 100); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { cat "$4" >&2; exit 1; }
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2
  exit 1
}

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped" >&2
}
trap stop INT TERM EXIT

LOG="$DATA/server.log"
# The admin token reaches the server through the exported DROPFIX_ADMIN_TOKEN, not --admin-token,
# so that it does not show in `ps` for other users of the machine.
# --drain-secs 0: no balancer in front, so Ctrl-C stops at once.
"$BIN" serve --listen "$LISTEN" --data-dir "$DATA" --drain-secs 0 >"$DATA/server.out" 2>"$LOG" &
pids+=($!)
wait_for "$DATA/server.out" "listening on" "${pids[0]}" "$LOG"
ENDPOINT="$(grep -o 'http://[^ ]*' "$DATA/server.out" | head -1)"

DROPFIX_ENDPOINT="$ENDPOINT" PORT="$DEMO_PORT" node js-demo/server.mjs >"$DATA/demo.out" 2>&1 &
pids+=($!)
wait_for "$DATA/demo.out" "demo listening on" "${pids[1]}" "$DATA/demo.out"
DEMO_URL="$(grep -o 'http://[^ ]*' "$DATA/demo.out" | head -1)"

cat <<INFO

  DropFix verifier   $ENDPOINT   (store: $DATA/dropfix.sqlite3, log: $LOG)
  workspace          app_id=$DROPFIX_APP_ID   (secret and admin token in $ENV_FILE)
  demo app           $DEMO_URL   <- open this
  console            $ENDPOINT/console   (Security page, per workspace)
                     login: ${DROPFIX_CONSOLE_EMAIL:-none} / ${DROPFIX_CONSOLE_PASSWORD:-none}

  What DropFix stored (admin API):
    (. $ENV_FILE; curl -s -H "Authorization: Bearer \$DROPFIX_ADMIN_TOKEN" $ENDPOINT/v1/admin/workspaces/\$DROPFIX_APP_ID/users)
  Ctrl-C stops both.

INFO
wait -n "${pids[@]}"
