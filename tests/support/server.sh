# Sourced by the shell tests that run the real server (tests/reliability/conn-flood.sh and
# soak.sh, tests/openapi/schemathesis.sh), from the repository root; the Rust tests' equivalent
# is tests/support/mod.rs. Makes a private work dir, removed on exit with the server stopped, and
# defines `start_server ARGS...`: runs `"$BIN" serve ARGS...` with its stdout and stderr in
# $WORK/server.out and $WORK/server.err, waits for its listening line (failing with its stderr
# if it exits first), and sets SERVER_PID and ADDR (host:port).
WORK="$(mktemp -d)"
SERVER_PID=""
server_cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap server_cleanup EXIT
start_server() { # ARGS...
  "$BIN" serve "$@" >"$WORK/server.out" 2>"$WORK/server.err" &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    grep -q "dropfix-server listening on http://" "$WORK/server.out" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; exit 1; }
    sleep 0.1
  done
  ADDR="$(grep -o 'listening on http://[^ ]*' "$WORK/server.out" | sed 's|listening on http://||')"
  [ -n "$ADDR" ] || { echo "could not read the listening line" >&2; exit 1; }
}
