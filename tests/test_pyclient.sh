#!/bin/sh
# test_pyclient.sh — make test's entry for the Python client test
# (tests/python/test_client.py, TAP on stdout, counted by tests/run.sh).
# /usr/bin/python3 is Debian's (standard library only is needed); the first
# python3 on PATH may be another one. Skips with the reason when it is absent.
root=$(cd "$(dirname "$0")/.." && pwd)
PY=${EPS_PYTHON:-/usr/bin/python3}
if [ ! -x "$PY" ]; then
  echo "1..1"
  echo "# skip: $PY not found"
  echo "ok 1 # SKIP $PY not found (the Python client test needs Python 3.9+)"
  exit 0
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
  echo "1..1"
  echo "# skip: $PY is older than 3.9"
  echo "ok 1 # SKIP $PY is older than 3.9 ($("$PY" -V 2>&1))"
  exit 0
fi
EPS_ROOT="$root" exec "$PY" "$root/tests/python/test_client.py"
