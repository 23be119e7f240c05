#!/usr/bin/env bash
# Checks the files in deploy/ with the tools that will run them (each installed by
# scripts/setup.sh --test; Debian's packages):
#   - the systemd unit: `systemd-analyze verify` prints nothing (no unknown key, no bad value),
#     and `systemd-analyze security --offline` rates its exposure at most 2.0 ("OK");
#   - nginx.conf: `nginx -t`; haproxy.cfg: `haproxy -c`; Caddyfile: `caddy validate`,
#     each on a copy whose certificate paths point at a throwaway certificate (nothing is started);
#   - prometheus/dropfix-alerts.yml: `promtool check rules`; grafana/dropfix.json: valid JSON whose
#     every query parses as PromQL (`promtool check rules` on them as recording rules, Grafana's
#     $variables replaced by values). That the metric names exist is server/tests/metrics.rs's.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

# The unit, with ExecStart pointing at a built binary (verify checks that it is executable).
# Only where systemd is installed (a container image may have none).
if command -v systemd-analyze >/dev/null; then
  cargo build --quiet -p dropfix-server
  bin="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/dropfix-server"
  sed "s#/usr/local/bin/dropfix-server#$bin#" deploy/dropfix.service >"$work/dropfix.service"
  out="$(systemd-analyze verify "$work/dropfix.service" 2>&1)" || { echo "$out" >&2; exit 1; }
  [ -z "$out" ] || { echo "systemd-analyze verify complained:" >&2; echo "$out" >&2; exit 1; }
  exposure="$(systemd-analyze security --offline=true "$work/dropfix.service" 2>/dev/null \
    | awk '/Overall exposure level/ { print $(NF-2) }')"
  echo "dropfix.service: verify clean, exposure $exposure"
  awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }' \
    || { echo "dropfix.service exposure $exposure is above 2.0" >&2; exit 1; }
else
  echo "dropfix.service: NOT checked (no systemd-analyze on this machine)"
fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=verify.example.com -keyout "$work/privkey.pem" -out "$work/fullchain.pem" 2>/dev/null
cat "$work/fullchain.pem" "$work/privkey.pem" >"$work/dropfix.pem"

sed -e "s#/etc/dropfix/#$work/#g" -e "s#/tmp/dropfix-nginx.pid#$work/nginx.pid#" deploy/nginx.conf >"$work/nginx.conf"
nginx -t -q -c "$work/nginx.conf" -e "$work/nginx-error.log" -g "error_log $work/nginx-error.log;" 2>&1 \
  || { cat "$work/nginx-error.log" >&2 2>/dev/null; exit 1; }
echo "nginx.conf: nginx -t ok"

sed "s#/etc/haproxy/dropfix.pem#$work/dropfix.pem#" deploy/haproxy.cfg >"$work/haproxy.cfg"
haproxy -c -q -f "$work/haproxy.cfg"
echo "haproxy.cfg: haproxy -c ok"

(cd "$work" && HOME="$work" XDG_DATA_HOME="$work" XDG_CONFIG_HOME="$work" \
  caddy validate --config "$root/deploy/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1) \
  || { cat "$work/caddy.log" >&2; exit 1; }
echo "Caddyfile: caddy validate ok"

promtool check rules deploy/prometheus/dropfix-alerts.yml >"$work/promtool.log" 2>&1 \
  || { cat "$work/promtool.log" >&2; exit 1; }
echo "prometheus/dropfix-alerts.yml: promtool check rules ok" \
  "($(grep -o '[0-9]* rules found' "$work/promtool.log"))"

# Each panel query as a recording rule, so promtool parses it.
jq -r '"groups:\n  - name: dashboard\n    rules:",
  (.panels[] | .id as $id | .targets[] |
    "      - record: dashboard:panel_\($id):\(.refId)\n        expr: \(.expr | tojson)")' \
  deploy/grafana/dropfix.json \
  | sed -e 's/\$__rate_interval/5m/g' -e 's/\$instance/.*/g' >"$work/dashboard-rules.yml"
promtool check rules "$work/dashboard-rules.yml" >"$work/promtool.log" 2>&1 \
  || { cat "$work/promtool.log" >&2; exit 1; }
echo "grafana/dropfix.json: every query parses" \
  "($(grep -o '[0-9]* rules found' "$work/promtool.log"))"
