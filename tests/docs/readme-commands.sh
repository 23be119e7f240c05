#!/usr/bin/env bash
# Runs the operator commands of the READMEs exactly as written, so the docs cannot drift from the
# binary. A command block is checked when the line before its ```sh fence is
# `<!-- readme-check: operator -->`; the blocks run in document order (README.md,
# server/README.md, docs/DEPLOY.md, docs/SEALING.md, then docs/ISSUERS.md) in one bash with `set -euo pipefail`, so a variable set in one is seen by
# the next, in an empty temporary directory (the default ./dropfix-data lands there) with
# `dropfix-server` on PATH, as after `cargo install --path server`.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"

for tool in jq openssl curl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: scripts/setup.sh --test installs it" >&2; exit 1; }
done
# DROPFIX_SERVER_BIN checks another build (e.g. a release binary) instead of this checkout's.
if [ -n "${DROPFIX_SERVER_BIN:-}" ]; then
  bin="$(realpath "$DROPFIX_SERVER_BIN")"
else
  cargo build --quiet -p dropfix-server
  bin="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/dropfix-server"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/dropfix-readme.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin" "$work/run"
ln -s "$bin" "$work/bin/dropfix-server"

# The marked blocks, each preceded by a comment naming where it came from.
extract() { # FILE
  awk -v file="$1" '
    /^<!-- readme-check: operator -->$/ { armed = 1; next }
    armed && /^```sh$/ { inside = 1; armed = 0; printf "\n# --- %s:%d\n", file, NR + 1; next }
    inside && /^```$/ { inside = 0; blocks++; next }
    inside { print; next }
    { armed = 0 }
    END { if (inside) { print "unterminated block in " file > "/dev/stderr"; exit 1 } }
  ' "$1"
}
script="$work/commands.sh"
{
  echo 'set -euo pipefail'
  echo 'set -x'
  for f in README.md server/README.md docs/DEPLOY.md docs/SEALING.md docs/ISSUERS.md; do extract "$root/$f"; done
} >"$script"
blocks="$(grep -c '^# --- ' "$script" || true)"
# Fewer blocks than this means the markers were lost and the docs went unchecked.
[ "$blocks" -ge 3 ] || { echo "found $blocks marked blocks, expected at least 3" >&2; exit 1; }
echo "running $blocks README blocks:" >&2
sed 's/^/  | /' "$script" >&2

# A clean environment: nothing from this shell may make a documented command work by accident.
(cd "$work/run" && env -i HOME="$work/run" PATH="$work/bin:/usr/local/bin:/usr/bin:/bin" LANG=C.UTF-8 \
  TMPDIR="${TMPDIR:-/tmp}" bash "$script")

# The commands did what the docs say, not merely exit 0.
listing="$(cd "$work/run" && "$bin" workspace list --json)"
echo "$listing" | jq -e '.workspaces[] | select(.name == "acme")
  | .strict == "report_only" and .require_signed_claims == true
    and (.allowed_origins | index("http://localhost:*") != null)
    and (.keys | length) == 1' >/dev/null \
  || { echo "the README's commands did not leave the workspace they describe:" >&2; echo "$listing" >&2; exit 1; }
# docs/ISSUERS.md: a workspace that trusts a public key and holds no secret key.
echo "$listing" | jq -e '.workspaces[] | select(.name == "acme-keys")
  | (.keys | length) == 0 and .require_signed_claims == true
    and (.token_issuers | length) == 1 and .token_issuers[0].keys[0].kid == "backend-2026"
    and (.token_issuers[0].keys[0] | has("d") | not)' >/dev/null \
  || { echo "docs/ISSUERS.md's commands did not leave the workspace they describe:" >&2; echo "$listing" >&2; exit 1; }
echo "README operator commands: $blocks blocks ran as written" >&2
