#!/bin/sh
# web-build.sh — builds the dashboard (web/ -> web/dist) when its sources
# changed, then embeds it as C for the binary (scripts/web-embed.sh).
#   scripts/web-build.sh OUT.c
# "Changed" is by content: a SHA-256 over web/'s sources and openapi.yaml
# (the client types are generated from it) is kept in web/dist/.source-hash,
# so a fresh checkout, a container build context or a touched file without
# changes never rebuilds. The build is `npm ci` (only when package-lock.json
# changed) then `npm run build` (generate the client from openapi.yaml,
# tsc --noEmit, vite build).
# When node/npm cannot be had or `npm ci` fails (no registry), the binary
# still builds, serving a "dashboard not built" page; that is remembered
# per source hash so later makes do not retry (make web retries). A type
# error or a failed vite build fails the build: the spec and the UI disagree.
set -eu
out=$1
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
web=web
dist=$web/dist
failed_mark=$(dirname "$out")/.web-failed

mkdir -p "$(dirname "$out")"
# One build at a time across make processes (BUILD dirs share web/dist).
exec 9>"$web/.build.lock"
flock 9

hash=$( { find "$web" \( -path "$web/node_modules" -o -path "$web/dist" -o -name '.*' -o -name 'schema.d.ts' \) -prune \
            -o -type f -print | LC_ALL=C sort | xargs sha256sum; sha256sum openapi.yaml; } | sha256sum | cut -c1-64)

if [ -f "$dist/.source-hash" ] && [ "$(cat "$dist/.source-hash")" = "$hash" ] && [ -f "$dist/index.html" ]; then
  exec scripts/web-embed.sh "$dist" "$out"
fi
missing() {
  echo "web-build: dashboard not built ($1); the binary serves a placeholder page at /" >&2
  echo "$hash" >"$failed_mark"
  exec scripts/web-embed.sh --missing "$out" "$1"
}
if [ -f "$failed_mark" ] && [ "$(cat "$failed_mark")" = "$hash" ] && [ -z "${EPS_WEB_RETRY:-}" ]; then
  echo "web-build: dashboard not built (failed before for these sources; make web retries)" >&2
  exec scripts/web-embed.sh --missing "$out" "an earlier build failed"
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  # Plain `make` never installs (EPS_INSTALL=0): no failure mark, so a later
  # `make run` or `make test` installs node and builds the dashboard.
  if [ "${EPS_INSTALL:-1}" != 1 ]; then
    echo "web-build: dashboard not built: node/npm not found (make run or make test install them)" >&2
    exec scripts/web-embed.sh --missing "$out" "node/npm not found"
  fi
  scripts/install-deps.sh web || missing "nodejs/npm could not be installed"
fi
command -v npm >/dev/null 2>&1 || missing "npm not found"

t0=$(date +%s)
lock=$(sha256sum "$web/package-lock.json" | cut -c1-64)
if [ ! -f "$web/node_modules/.lock-hash" ] || [ "$(cat "$web/node_modules/.lock-hash")" != "$lock" ]; then
  echo "web-build: npm ci (web/package-lock.json changed)"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error) || missing "npm ci failed (registry unreachable?)"
  echo "$lock" >"$web/node_modules/.lock-hash"
fi
echo "web-build: generating the client from openapi.yaml, type check, vite build"
rm -rf "$dist"
(cd "$web" && npm run --silent build) || { echo "web-build: the dashboard does not build (see above)" >&2; exit 1; }
echo "$hash" >"$dist/.source-hash"
rm -f "$failed_mark"
echo "web-build: web/dist built in $(( $(date +%s) - t0 )) s"
exec scripts/web-embed.sh "$dist" "$out"
