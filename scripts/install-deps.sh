#!/bin/sh
# Installs the Debian packages epsinas needs to build, test and run, if any
# are missing. Idempotent and quiet when everything is present.
# Usage: scripts/install-deps.sh [build|test|bench|all|fuzz|web|browser]
#   web: node + npm for the dashboard (make builds web/dist when they are here)
#   browser: Debian's chromium for make test-browser (playwright-core drives it)
set -eu
want="build-essential pkg-config libopenblas-dev libjansson-dev libmicrohttpd-dev libuv1-dev libhiredis-dev libcurl4-openssl-dev libsqlite3-dev"
case "${1:-build}" in
  build) ;;
  test) want="$want libcmocka-dev libcurl4-openssl-dev curl redis-server nginx-light wrk nodejs npm python3-yaml" ;;
  fuzz) want="$want clang libclang-rt-dev" ;;  # libFuzzer + sanitizer runtimes (make fuzz)
  web) want="nodejs npm" ;;
  browser) want="nodejs npm chromium fonts-dejavu-core" ;;
  bench|all) want="$want bc libcmocka-dev libcurl4-openssl-dev curl redis-server nginx-light wrk nodejs npm python3-torch python3-numpy python3-scipy" ;;
  *) echo "install-deps: unknown set '$1' (build|test|bench|all|fuzz|web|browser)" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
  # nodejs/npm may come from elsewhere (an image with its own node): accept the binary.
  case "$p" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
  esac
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "install-deps: need root (or sudo) to install:$missing" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
