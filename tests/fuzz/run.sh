#!/bin/sh
# Runs the libFuzzer harnesses built by `make fuzz-build` (tests/fuzz/README.md).
#   run.sh fuzz SECONDS [NAME...]   each harness for SECONDS
#   run.sh smoke SECONDS [NAME...]  first replay tests/fuzz/regressions/NAME and
#                                   the seed corpus with the plain replay build,
#                                   then fuzz each for SECONDS
# The working corpus grows in $FUZZ_BUILD/corpus/NAME (seeded from
# tests/fuzz/corpus/NAME); a crash is saved in $FUZZ_BUILD/crashes/NAME/ —
# copy it to tests/fuzz/regressions/NAME/ with the fix. Closing line:
# "fuzz: N passed, N failed".
set -u
mode=${1:?usage: run.sh fuzz|smoke SECONDS [NAME...]}
secs=${2:?seconds}
shift 2
root=$(cd "$(dirname "$0")/../.." && pwd)
B="$root/${FUZZ_BUILD:-build-fuzz}"
names="$*"
[ -n "$names" ] || names=$(cd "$root/tests/fuzz" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OPENBLAS_NUM_THREADS=1
pass=0; fail=0; failed=""
t0=$(date +%s)
note() { printf '%-10s %-7s %s\n' "$1" "$2" "$3"; }

if [ "$mode" = smoke ]; then
  for n in $names; do
    log="$B/logs/replay_$n.log"; mkdir -p "$B/logs"
    if timeout -k 5 600 "$B/replay_$n" "$root/tests/fuzz/regressions/$n" "$root/tests/fuzz/corpus/$n" >"$log" 2>&1; then
      pass=$((pass + 1)); note "$n" replay "ok: $(tail -n 1 "$log")"
    else
      fail=$((fail + 1)); failed="$failed replay_$n"; note "$n" replay "FAIL (log $log)"
      grep -E 'ERROR|SUMMARY|runtime error|invariant|#[0-9]+ ' "$log" | head -n 25 | sed 's/^/    | /'
    fi
  done
fi

for n in $names; do
  corpus="$B/corpus/$n"; crashes="$B/crashes/$n"; log="$B/logs/fuzz_$n.log"
  mkdir -p "$corpus" "$crashes" "$B/logs"
  dict=""; [ -f "$root/tests/fuzz/dict/$n.dict" ] && dict="-dict=$root/tests/fuzz/dict/$n.dict"
  # -timeout: one input; -rss_limit_mb: the 2-core/24 GB machine is shared
  timeout -k 10 $((secs + 120)) "$B/fuzz_$n" -max_total_time="$secs" -timeout=25 -rss_limit_mb=3072 \
    -print_final_stats=1 -artifact_prefix="$crashes/" $dict "$corpus" "$root/tests/fuzz/corpus/$n" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
  if [ "$rc" -eq 0 ]; then
    pass=$((pass + 1)); note "$n" fuzz "ok: ${execs:-?} runs in ${secs}s, $cov"
  else
    fail=$((fail + 1)); failed="$failed fuzz_$n"; note "$n" fuzz "FAIL rc=$rc (log $log; input in $crashes/)"
    grep -E 'ERROR|SUMMARY|runtime error|invariant|Test unit written|#[0-9]+ 0x' "$log" | head -n 30 | sed 's/^/    | /'
  fi
done
echo
echo "fuzz $mode took $(( $(date +%s) - t0 )) s"
[ -n "$failed" ] && echo "failed:$failed"
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
