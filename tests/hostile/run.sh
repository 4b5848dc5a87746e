#!/usr/bin/env bash
# tests/hostile/run.sh — the hostile-client suite (make test-hostile): raw
# sockets against the real binary on loopback (tests/hostile/hostile.py, run
# with Debian's /usr/bin/python3, standard library only). Needs ~2,100 fds
# for the slowloris tests: raises the soft limit when the hard one allows.
# Usage: tests/hostile/run.sh [EPSINAS_BIN]   (default build/epsinas)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-${EPS_BIN:-build/epsinas}}
[ -x "$bin" ] || { echo "tests/hostile/run.sh: no binary at $bin (make first)" >&2; exit 2; }
want=8192
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ]; then ulimit -n "$want"; else ulimit -n "$hard"; fi
exec timeout 600 /usr/bin/python3 "$here/hostile.py" "$bin"
