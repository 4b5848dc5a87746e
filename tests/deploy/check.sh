#!/bin/sh
# check.sh — the deployment manifests checked by real validators, offline:
# deploy/docker-compose.yml by docker-compose's `config` (the Compose file
# schema), every deploy/k8s/*.yaml by kubernetes-models (the Kubernetes API
# schemas, pinned in package-lock.json). Prints one closing line.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
missing=""
[ -x /usr/bin/docker-compose ] || missing="docker-compose"
# node/npm may come from elsewhere (an image with its own node): accept the binaries.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
stamp="$here/node_modules/.epsinas-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$here/package-lock.json" "$stamp"; then
  (cd "$here" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
  cp "$here/package-lock.json" "$stamp"
fi
pass=0; fail=0
# The Debian docker-compose (1.29, Python); not the docker CLI plugin.
if /usr/bin/docker-compose -f "$root/deploy/docker-compose.yml" config -q; then
  echo "ok deploy/docker-compose.yml: valid Compose file"; pass=$((pass + 1))
else
  echo "not ok deploy/docker-compose.yml"; fail=$((fail + 1))
fi
if node "$here/validate-k8s.mjs" "$root"/deploy/k8s/*.yaml; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
