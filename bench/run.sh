#!/bin/sh
# make bench: per-architecture time of the dense engine, the fast engine and
# the PyTorch reference (tests/reference/nb201_ref.py) measured side by side
# in this run, on the NB201 cells with the fewest, median and most MACs;
# the wall time of a full NB201 sweep on all cores; and, when
# bench/http_bench.sh exists, service cache-hit requests/s next to nginx;
# bench/jobs_bench.sh: the whole space as one HTTP job vs that sweep, and
# /v1/score latency while a job runs vs idle.
# Prints one table and writes it to bench/results.md.
set -eu
BIN=${1:-build/epsinas}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bench/out"
mkdir -p "$out"
PY=/usr/bin/python3
have_torch=0
if [ -x "$PY" ] && "$PY" -c "import torch" 2>/dev/null; then have_torch=1; fi
threads=$(nproc)
BS=${EPS_BENCH_BATCH:-256}

echo "== full NB201 sweep ($threads threads, batch $BS ramp) =="
rm -f "$out/sweep.csv"
s0=$(date +%s.%N)
"$BIN" sweep --space nb201 --all --out "$out/sweep.csv" --threads "$threads" --batch-size "$BS"
s1=$(date +%s.%N)
sweep_s=$(echo "$s1 - $s0" | bc -l)

# fewest / median / most MACs (ties broken by index)
tail -n +2 "$out/sweep.csv" | awk -F, '{print $NF "," $1 "," $2}' | sort -t, -k1,1n -k2,2n > "$out/by_macs.txt"
n=$(wc -l < "$out/by_macs.txt")
pick() { sed -n "${1}p" "$out/by_macs.txt" | cut -d, -f3; }
a_min=$(pick 1); a_med=$(pick $(( (n + 1) / 2 ))); a_max=$(pick "$n")

# fast: "FASTEST MEDIAN" of 21 warm runs in one process
fast_ms() {
  "$BIN" score --space nb201 --arch "$1" --batch-size "$BS" --repeat 21 --json |
    sed 's/.*"elapsed_ms":\([0-9.e+-]*\).*"fastest_ms":\([0-9.e+-]*\).*/\2 \1/'
}
dense_ms() { OPENBLAS_NUM_THREADS=$threads "$BIN" score --space nb201 --arch "$1" --engine dense --batch-size "$BS" --json | sed 's/.*"elapsed_ms":\([0-9.e+-]*\).*/\1/'; }
torch_ms() {
  if [ "$have_torch" = 1 ]; then
    (cd "$root/tests/reference" && "$PY" nb201_ref.py time --arch "$1" --batch ramp --batch-size "$BS" --repeat 3) |
      sed 's/.*"seconds_per_arch": *\([0-9.e+-]*\).*/\1/' | awk '{printf "%.1f", $1 * 1000}'
  else echo "n/a"; fi
}
macs_of() { grep -F ",$1" "$out/by_macs.txt" | head -1 | cut -d, -f1; }

{
  echo "# epsinas benchmark"
  echo
  echo "$(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), batch $BS (ramp), both passes (w1, w2) per architecture including building the network; times are the fastest of several runs on both sides (this VM's speed drifts by +-30% over minutes): epsinas fast: fastest of 21 warm runs on one thread (their median in the next column); PyTorch $( [ $have_torch = 1 ] && $PY -c 'import torch; print(torch.__version__)' || echo absent): fastest of 3 runs with 2 threads; dense: one run with OpenBLAS on all cores."
  echo
  echo "| cell | MACs/image | PyTorch ms | dense ms | fast ms | fast median ms | fast vs PyTorch | fast vs dense |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
} > "$out/table.md"
for which in min med max; do
  eval a=\$a_$which
  echo "== $which MACs: $a =="
  t=$(torch_ms "$a"); d=$(dense_ms "$a"); fm=$(fast_ms "$a"); f=${fm% *}; fmed=${fm#* }
  r1=$( [ "$t" = "n/a" ] && echo "n/a" || echo "$t / $f" | bc -l | awk '{printf "%.0fx", $1}')
  r2=$(echo "$d / $f" | bc -l | awk '{printf "%.0fx", $1}')
  printf '| %s `%s` | %s | %s | %.1f | %.2f | %.2f | %s | %s |\n' "$which" "$a" "$(macs_of "$a")" "$t" "$d" "$f" "$fmed" "$r1" "$r2" >> "$out/table.md"
done
{
  echo
  printf 'Full NB201 sweep (15,625 cells, %s threads, batch %s): **%.1f s** wall.\n' "$threads" "$BS" "$sweep_s"
  tail -n +2 "$out/sweep.csv" | awk -F, '$3=="nan"{n++} END {printf "NaN: %d of %d.\n", n, NR}'
} >> "$out/table.md"
if [ -x "$root/bench/jobs_bench.sh" ]; then
  echo "== sweep jobs: whole space as one job, /v1/score latency under a job =="
  "$root/bench/jobs_bench.sh" "$BIN" "$threads" "$BS" "$sweep_s" "$out/sweep.csv" >> "$out/table.md" ||
    echo "(jobs bench failed)" >> "$out/table.md"
fi
if [ -x "$root/bench/http_bench.sh" ]; then
  echo "== service vs nginx =="
  { echo; "$root/bench/http_bench.sh" "$BIN" 2>&1 | tail -n 12; } >> "$out/table.md" || echo "(http bench failed)" >> "$out/table.md"
fi
cp "$out/table.md" "$root/bench/results.md"
echo
cat "$root/bench/results.md"
