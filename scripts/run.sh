#!/bin/sh
# Starts the scoring service in the foreground (`make run`):
#   epsinas serve --port ${PORT:-8080} with every space's default batch
#   built in (docs/batches.md), plus `cifar10-sample` (256 real CIFAR-10 test images) when
#   ../shared/data/cifar10/cifar10_test_sample260.bin exists.
# The dashboard is at / (embedded in the binary).
# Jobs (/v1/jobs) are kept in ./var/ (EPSINAS_DATA_DIR overrides; git-ignored).
# Extra arguments are passed on to `epsinas serve` (see `epsinas serve --help`).
# Usage: scripts/run.sh [path/to/epsinas] [serve options...]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/epsinas}
[ $# -gt 0 ] && shift
if [ ! -x "$bin" ]; then
  echo "run.sh: $bin not found; build it with 'make'" >&2
  exit 2
fi
data=${EPSINAS_DATA_DIR:-$root/var}
sample="$root/../shared/data/cifar10/cifar10_test_sample260.bin"
echo "run.sh: the dashboard will be at http://localhost:${PORT:-8080}/" >&2
if [ -f "$sample" ]; then
  exec "$bin" serve --port "${PORT:-8080}" --data-dir "$data" --batch "cifar10-sample=cifar10:$sample" "$@"
fi
exec "$bin" serve --port "${PORT:-8080}" --data-dir "$data" "$@"
