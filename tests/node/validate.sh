#!/bin/sh
# Installs the pinned validators (npm ci, from package-lock.json) into
# tests/node/node_modules when missing or stale, then runs validate.mjs.
# Exit 77 = node/npm not installed (the caller skips, saying why).
# Usage: tests/node/validate.sh [RESPONSES_DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v node >/dev/null 2>&1 || { echo "validate.sh: node not installed" >&2; exit 77; }
command -v npm >/dev/null 2>&1 || { echo "validate.sh: npm not installed" >&2; exit 77; }
stamp="$here/node_modules/.epsinas-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$here/package-lock.json" "$stamp"; then
  (cd "$here" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
  cp "$here/package-lock.json" "$stamp"
fi
exec node "$here/validate.mjs" "$root/openapi.yaml" "$@"
