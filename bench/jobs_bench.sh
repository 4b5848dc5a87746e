#!/bin/bash
# bench/jobs_bench.sh — `make bench`, sweep jobs part (called by bench/run.sh):
#   1. the whole NB201 space as one job (POST /v1/jobs {"space":"nb201","all":true})
#      on a fresh server (--workers THREADS, no cache carried over), wall time
#      from the POST until status succeeded, next to the `epsinas sweep --all`
#      wall time measured in the same bench run (SWEEP_S), and the ratio;
#      every row's epsilon checked against that sweep's CSV;
#   2. /v1/score latency p50/p99 for cache misses (100 sequential requests,
#      new weights each) with the server idle, then while a job runs.
# Usage: bench/jobs_bench.sh BIN THREADS BATCH SWEEP_S SWEEP_CSV   (prints Markdown)
set -eu
BIN=$1; THREADS=$2; BS=$3; SWEEP_S=$4; SWEEP_CSV=$5
tmp=$(mktemp -d /tmp/eps-jobs-bench.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$BIN" serve --listen 127.0.0.1 --port 0 --workers "$THREADS" --batch-size "$BS" --data-dir "$tmp/data" \
  >"$tmp/out" 2>"$tmp/log" &
pid=$!
for _ in $(seq 300); do grep -q '^listening on' "$tmp/out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/out")
[ -n "$port" ] || { echo "jobs bench: server did not start" >&2; exit 1; }
base="http://127.0.0.1:$port"
A='|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'

submit() { curl -fsS -H 'Content-Type: application/json' -d "$1" "$base/v1/jobs" | sed 's/.*"id":"\([^"]*\)".*/\1/'; }
status() { curl -fsS "$base/v1/jobs/$1" | sed 's/.*"status":"\([a-z]*\)".*/\1/'; }
# latency TAG: p50 and p99 (ms) of 100 cache-miss scores
latency() {
  for k in $(seq 1 100); do
    curl -s -o /dev/null -w '%{time_total}\n' -H 'Content-Type: application/json' \
      -d "{\"space\":\"nb201\",\"arch\":\"$A\",\"weights\":[1e-7,1.$1$k]}" "$base/v1/score"
  done | sort -n >"$tmp/lat"
  echo "$(sed -n 50p "$tmp/lat") $(sed -n 99p "$tmp/lat")" | awk '{printf "%.1f %.1f", $1 * 1000, $2 * 1000}'
}

t0=$(date +%s.%N)
id=$(submit '{"space":"nb201","all":true,"label":"bench"}')
while [ "$(status "$id")" != succeeded ]; do sleep 0.1; done
t1=$(date +%s.%N)
job_s=$(echo "$t1 - $t0" | bc -l)
curl -fsS "$base/v1/jobs/$id/results" >"$tmp/job.csv"
check=$(awk -F, 'NR == FNR { if (FNR > 1) e[$1] = $3; next }
  FNR > 1 { n++; x = e[$1]; if (x == "nan" || $3 == "nan") { if (x != $3) bad++ }
            else { d = x - $3; if (d < 0) d = -d; a = x < 0 ? -x : x; if (d > 1e-13 * a) bad++ } }
  END { printf "%d rows, %d epsilon mismatches vs the sweep", n, bad + 0 }' "$SWEEP_CSV" "$tmp/job.csv")
ratio=$(echo "$job_s / $SWEEP_S" | bc -l)

idle=$(latency 1)
id2=$(submit '{"space":"nb201","all":true,"weights":[1e-7,3.5],"label":"bench-load"}')
while [ "$(status "$id2")" = queued ]; do sleep 0.05; done
busy=$(latency 2)
st2=$(status "$id2")
curl -fsS -X DELETE "$base/v1/jobs/$id2" >/dev/null

printf '\nNB201 as one job (%s workers, batch %s): **%.1f s** wall vs `epsinas sweep --all` %.1f s in this run: **%.2fx** (%s).\n' \
  "$THREADS" "$BS" "$job_s" "$SWEEP_S" "$ratio" "$check"
set -- $idle; ip50=$1; ip99=$2
set -- $busy; bp50=$1; bp99=$2
printf '/v1/score cache miss, 100 sequential: idle p50 %s ms, p99 %s ms; while a job runs (still %s at the end) p50 %s ms, p99 %s ms (p99 %.2fx idle).\n' \
  "$ip50" "$ip99" "$st2" "$bp50" "$bp99" "$(echo "$bp99 / $ip99" | bc -l)"
