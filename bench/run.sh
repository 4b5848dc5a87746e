#!/bin/sh
# make bench: per-architecture time of the dense engine, the fast engine and
# the PyTorch reference (tests/reference/nb201_ref.py) measured side by side
# in this run, on the NB201 cells with the fewest, median and most MACs;
# the wall time of a full NB201 sweep on all cores; and, when
# bench/http_bench.sh exists, service cache-hit requests/s next to nginx;
# bench/jobs_bench.sh: the whole space as one HTTP job vs that sweep, and
# /v1/score latency while a job runs vs idle.
# NB101: the enumeration time and the real full sweep of the 423,624 cells
# (about 32 min on 2 cores, measured 2026-12-02), or with BENCH_NB101_SAMPLE=N
# a 1-in-N sample (`sweep --shard 0/N`) extrapolated to the whole space; and fast vs PyTorch (tests/reference/nb101_ref.py) per cell on the
# sample's fewest / median / most MACs cells.
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

# Runs the command; prints its wall time in seconds.
wall_s() {
  t0=$(date +%s.%N)
  "$@" >&2
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

echo "== full NB201 sweep ($threads threads, batch $BS ramp) =="
rm -f "$out/sweep.csv"
sweep_s=$(wall_s "$BIN" sweep --space nb201 --all --out "$out/sweep.csv" --threads "$threads" --batch-size "$BS")

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
# ---------------------------------------------------------------- NB101
echo "== NB101 enumeration =="
enum_s=$(wall_s sh -c '"$0" enumerate --space nb101 > /dev/null' "$BIN")
SAMPLE=${BENCH_NB101_SAMPLE:-}
nb101_batch=$("$BIN" score --help 2>&1 | sed -n 's/^ \+nb101 \+\([a-z0-9:]\+\)$/\1/p' | head -n 1)
if [ -z "$SAMPLE" ]; then
  echo "== full NB101 sweep ($threads threads, default batch ${nb101_batch:-?} at $BS) =="
  rm -f "$out/nb101.csv"
  nb101_s=$(wall_s "$BIN" sweep --space nb101 --all --out "$out/nb101.csv" --threads "$threads" --batch-size "$BS")
  nb101_line=$(printf 'Full NB101 sweep (423,624 cells, %s threads, default batch %s at %s): **%.0f s** wall (%.1f min), measured.' "$threads" "${nb101_batch:-?}" "$BS" "$nb101_s" "$(echo "$nb101_s / 60" | bc -l)")
  # the per-cell comparison below picks from the same fixed 1-in-212 sample
  awk -F, 'NR > 1 && ($1 % 212) == 0' "$out/nb101.csv" > "$out/nb101_sample_rows.csv"
else
  echo "== NB101 sample sweep (1 in $SAMPLE cells, $threads threads, default batch ${nb101_batch:-?} at $BS) =="
  rm -f "$out/nb101_sample.csv"
  samp_s=$(wall_s sh -c '"$0" sweep --space nb101 --all --shard 0/"$1" --out "$2" --threads "$3" --batch-size "$4" 2> "$5"' \
    "$BIN" "$SAMPLE" "$out/nb101_sample.csv" "$threads" "$BS" "$out/nb101_sample.log")
  cat "$out/nb101_sample.log" >&2
  rows=$(($(wc -l < "$out/nb101_sample.csv") - 1))
  # "rows ready in P s (E s enumerating)": P - E is parsing the sample's
  # rows; the last line's seconds are the scoring; both scale with rows
  prep=$(sed -n 's/^sweep: .* rows ready in \([0-9.]*\) s (\([0-9.]*\) s enumerating.*/\1 \2/p' "$out/nb101_sample.log")
  score_s=$(sed -n 's/^sweep: .* already done, \([0-9.]*\) s.*/\1/p' "$out/nb101_sample.log")
  est=$(echo "${prep#* } + (${prep% *} - ${prep#* } + $score_s) * 423624 / $rows" | bc -l)
  nb101_line=$(printf 'NB101 sweep, ESTIMATED: a sample of %d cells (every %dth index, `sweep --shard 0/%d`) took %.1f s wall on %s threads (%.1f s enumerating, %.1f s parsing, %.1f s scoring), so the 423,624 cells would take about **%.0f s** (%.1f h) wall; without BENCH_NB101_SAMPLE the bench measures the whole sweep.' "$rows" "$SAMPLE" "$SAMPLE" "$samp_s" "$threads" "${prep#* }" "$(echo "${prep% *} - ${prep#* }" | bc -l)" "$score_s" "$est" "$(echo "$est / 3600" | bc -l)")
  tail -n +2 "$out/nb101_sample.csv" > "$out/nb101_sample_rows.csv"
fi
# fewest / median / most MACs of the sample: "macs<TAB>index<TAB>matrix<TAB>ops"
"$PY" - "$out/nb101_sample_rows.csv" > "$out/nb101_picks.txt" <<'PYEOF'
import csv, json, sys
rows = sorted((int(r[5]), int(r[0]), r[1]) for r in csv.reader(open(sys.argv[1])))
for k in (0, (len(rows) - 1) // 2, len(rows) - 1):
    macs, idx, arch = rows[k]
    a = json.loads(arch)
    print("%d\t%d\t%s\t%s" % (macs, idx, json.dumps(a["matrix"], separators=(",", ":")), json.dumps(a["ops"], separators=(",", ":"))))
PYEOF
{
  echo
  echo "NB101 per cell (both on batch $BS ramp; fast: fastest of 21 warm runs on one thread, median next; PyTorch: one run, 2 threads):"
  echo
  echo "| cell (enumeration index) | MACs/image | PyTorch ms | fast ms | fast median ms | fast vs PyTorch |"
  echo "|---|---:|---:|---:|---:|---:|"
} >> "$out/table.md"
for which in min med max; do
  case $which in min) l=1 ;; med) l=2 ;; max) l=3 ;; esac
  line=$(sed -n "${l}p" "$out/nb101_picks.txt")
  macs=$(echo "$line" | cut -f1); idx=$(echo "$line" | cut -f2); m=$(echo "$line" | cut -f3); o=$(echo "$line" | cut -f4)
  echo "== NB101 $which MACs: index $idx =="
  fm=$("$BIN" score --space nb101 --matrix "$m" --ops "$o" --batch ramp --batch-size "$BS" --repeat 21 --json |
    sed 's/.*"elapsed_ms":\([0-9.e+-]*\).*"fastest_ms":\([0-9.e+-]*\).*/\2 \1/')
  f=${fm% *}; fmed=${fm#* }
  if [ "$have_torch" = 1 ]; then
    t=$(cd "$root/tests/reference" && "$PY" nb101_ref.py score --matrix "$m" --ops "$o" --batch ramp --batch-size "$BS" |
      sed 's/.*"seconds": *\([0-9.e+-]*\).*/\1/' | awk '{printf "%.1f", $1 * 1000}')
    r=$(echo "$t / $f" | bc -l | awk '{printf "%.0fx", $1}')
  else t="n/a"; r="n/a"; fi
  printf '| %s #%s | %s | %s | %.2f | %.2f | %s |\n' "$which" "$idx" "$macs" "$t" "$f" "$fmed" "$r" >> "$out/table.md"
done
{
  echo
  printf 'NB101 enumeration (`epsinas enumerate --space nb101`, 423,624 cells): %.1f s.\n' "$enum_s"
  echo "$nb101_line"
} >> "$out/table.md"
if [ -x "$root/bench/http_bench.sh" ]; then
  echo "== service vs nginx =="
  { echo; "$root/bench/http_bench.sh" "$BIN" 2>&1 | tail -n 12; } >> "$out/table.md" || echo "(http bench failed)" >> "$out/table.md"
fi
cp "$out/table.md" "$root/bench/results.md"
echo
cat "$root/bench/results.md"
