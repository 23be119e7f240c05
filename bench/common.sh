# Sourced by the benchmark scripts (from the repository root): the tools they need, the binary
# they measure, and a private work dir whose servers are stopped and files removed on exit.
#   DROPFIX_BIN   another dropfix-server binary to measure (default: this tree's release build,
#                 built here)
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need_wrk() { command -v wrk >/dev/null || sudo_ apt-get install -y -qq wrk >/dev/null; }
if [ -z "${DROPFIX_BIN:-}" ]; then cargo build --quiet --release -p dropfix-server; fi
BIN="$(realpath "${DROPFIX_BIN:-${CARGO_TARGET_DIR:-target}/release/dropfix-server}")"
WORK="$(mktemp -d)"; chmod 700 "$WORK"
PIDS=() # every process started, stopped on exit
bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap bench_cleanup EXIT
# mix_share_ok WRK_OUTPUT: whether its share of non-2xx answers is bench/mix.sh's 20 % (+-1
# point), so an error path or a limiter cannot pass as speed; prints the share.
mix_share_ok() {
  awk '/requests in/ { n = $1 } /Non-2xx or 3xx responses/ { e = $NF }
       END { s = 100 * e / n; printf "%.2f", s; exit !(s >= 19 && s <= 21) }' "$1"
}
