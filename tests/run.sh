#!/bin/sh
# Runs each test binary in isolation with a timeout and cmocka's TAP output,
# then prints one closing line: "N passed, N failed, N skipped".
# Tests that need ../shared print why they skip.
set -u
TIMEOUT=${EPS_TEST_TIMEOUT:-900}
export CMOCKA_MESSAGE_OUTPUT=TAP
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
export EPS_ROOT="$root"
export EPS_BIN="${EPS_BIN:-$root/${BUILD:-build}/epsinas}"
if [ -z "${EPS_SHARED:-}" ] && [ -d "$root/../shared/data" ]; then export EPS_SHARED="$root/../shared"; fi
pass=0; fail=0; skip=0; failed_bins=""
logdir="$root/${BUILD:-build}/test-logs"; mkdir -p "$logdir"
for t in "$@"; do
  name=$(basename "$t")
  log="$logdir/$name.log"
  start=$(date +%s)
  timeout -k 10 "$TIMEOUT" "$t" >"$log" 2>&1
  rc=$?
  end=$(date +%s)
  # cmocka reports a skipped test as "ok N # SKIP" or "not ok N # SKIP"
  s=$(grep -c -E '^(not )?ok .*# SKIP' "$log"); s=${s:-0}
  p=$(grep '^ok ' "$log" | grep -c -v '# SKIP'); p=${p:-0}
  f=$(grep '^not ok ' "$log" | grep -c -v '# SKIP'); f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crash, timeout or setup failure
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$s" -eq 0 ]; then f=1; fi  # ran nothing
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
  status=ok; [ "$f" -gt 0 ] && { status=FAIL; failed_bins="$failed_bins $name"; }
  printf '%-28s %4s  %3d passed %3d failed %3d skipped  (%ss)\n' "$name" "$status" "$p" "$f" "$s" "$((end - start))"
  grep -E '^# (SKIP|skip)|^not ok|^# ' "$log" | grep -v '^# ok' | head -n 20 | sed 's/^/    /'
  if [ "$f" -gt 0 ]; then tail -n 30 "$log" | sed 's/^/    | /'; fi
done
echo
[ -n "$failed_bins" ] && echo "failed:$failed_bins"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
