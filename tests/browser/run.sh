#!/bin/sh
# run.sh — the browser tests (make test-browser): installs playwright-core
# from tests/browser/package-lock.json when it changed, then runs
# dashboard.mjs, which starts the real server(s) on loopback and drives
# Debian's chromium headless. Screenshots go to $BUILD/browser/.
# Ends with the line "browser: N passed, N failed".
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export EPS_BIN="${EPS_BIN:-$root/build/epsinas}"
case $EPS_BIN in /*) ;; *) EPS_BIN="$root/$EPS_BIN" ;; esac
export EPS_SHOTS="${EPS_SHOTS:-$root/${BUILD:-build}/browser}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || { echo "test-browser: $CHROMIUM not found (scripts/install-deps.sh browser installs it)" >&2; exit 1; }
cd "$here"
lock=$(sha256sum package-lock.json | cut -c1-64)
if [ ! -f node_modules/.lock-hash ] || [ "$(cat node_modules/.lock-hash)" != "$lock" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock" >node_modules/.lock-hash
fi
mkdir -p "$EPS_SHOTS"
exec node dashboard.mjs
