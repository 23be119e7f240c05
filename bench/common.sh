# Sourced by the benchmark scripts (from the repository root): the tools they need, the binary
# they measure, a private work dir whose servers are stopped and files removed on exit, and the
# helpers their measurements share.
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
# wait_line FILE PATTERN: waits up to 60 s for PATTERN in FILE (a server's output); fails with
# the file's text when it does not come.
wait_line() {
  for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; exit 1
}
# A wrk latency (us, ms or s) on stdin, in milliseconds.
to_ms() { awk '{ v=$1; if (v ~ /us$/) { sub(/us$/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v } else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000 } }'; }
# cpu_secs PID: CPU seconds (user + system) the process has used so far.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }
# rss_kb PID: the process's resident memory in KB.
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# runs_share_ok RESULTS COLUMN: mix_share_ok for every run of a whole benchmark: whether each row
# of RESULTS (tab-separated, the setup's name first) has the mix's 20 % (+-1 point) of non-2xx
# answers in COLUMN (0-based, the name is 0); prints the runs that do not, or that all do.
runs_share_ok() {
  python3 - "$1" "$2" <<'PY'
import sys
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
col = int(sys.argv[2])
bad = [(r[0], float(r[col])) for r in rows if abs(float(r[col]) - 20.0) > 1.0]
if bad:
    print(f"\nFAIL: non-2xx share differs from the mix's 20%: {bad}")
    sys.exit(1)
print("\nnon-2xx share is the mix's 20% on every run")
PY
}
# new_ids_lua APP PREFIX: the wrk Lua script of unsigned identify calls for APP, each with a user
# id never sent before (PREFIX-<thread>-<n>): 202 and a new row each while strict mode is off.
new_ids_lua() {
  cat <<LUA
local counter = 0
local id = 0
setup = function(thread) id = id + 1; thread:set("tid", id) end
init = function() tid = tid or 0 end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local body = string.format('{"app_id":"$1","user_id":"$2-%d-%d","traits":{"plan":"pro","mrr":49}}', tid, counter)
  return wrk.format(nil, "/v1/identify", nil, body)
end
LUA
}
