#!/bin/sh
# batch-study.sh — which built-in batch should each space use by default
# (issue 14, docs/batches.md)? Scores the dev data of every space with every
# candidate batch and prints ONE markdown table: space x batch -> rows scored,
# NaN count, Spearman rho, Kendall tau, rho on the top-10%, and rho with NaN
# ranked last (whole data). Seeded generators run with every seed in $SEEDS
# and are reported as "mean [min, max]" across seeds; a per-seed table
# follows. Spaces whose data is absent are skipped with a reason.
#
# Usage: scripts/batch-study.sh [epsinas binary] [shared dir] [work dir]
# Env:   SEEDS="1 2 3 4 5"  THREADS=2  GENERATORS="gaussian smooth pink leaves levels"  REUSE=1 (keep score CSVs that are
#        already complete: only the table is recomputed)
set -eu
BIN=${1:-build/epsinas}
SHARED=${2:-../shared}
WORK=${3:-build/batch-study}
SEEDS=${SEEDS:-1 2 3 4 5}
THREADS=${THREADS:-2}
REUSE=${REUSE:-0}
D="$SHARED/data"
CIFAR="$D/cifar10/cifar10_test_sample260.bin"
GENERATORS=${GENERATORS:-gaussian smooth pink leaves levels}
mkdir -p "$WORK"
RESULTS="$WORK/results.tsv"
: > "$RESULTS"
t_all=$(date +%s)

command -v jq >/dev/null || { echo "batch-study: jq is needed (apt-get install jq)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "batch-study: $BIN is not built (make)" >&2; exit 2; }

# One sweep + eval; appends "space<TAB>family<TAB>batch<TAB>n<TAB>nan<TAB>rho<TAB>tau<TAB>rho_top<TAB>rho_nan_last<TAB>s".
# run SPACE_LABEL SPACE ARCHS TRUTH FAMILY BATCH [eval options...]
run() {
  label=$1 space=$2 archs=$3 truth=$4 family=$5 batch=$6
  shift 6
  csv="$WORK/$label.$(printf %s "$batch" | tr -c 'A-Za-z0-9_.-' _).csv"
  want=$(wc -l < "$archs")
  t0=$(date +%s)
  if [ "$REUSE" != 1 ] || [ ! -f "$csv" ] || [ "$(($(wc -l < "$csv") - 1))" -ne "$want" ]; then
    rm -f "$csv"
    "$BIN" sweep --space "$space" --archs "$archs" --out "$csv" --threads "$THREADS" --batch "$batch" 2>"$WORK/sweep.err" ||
      { cat "$WORK/sweep.err" >&2; exit 1; }
  fi
  "$BIN" eval --scores "$csv" --truth "$truth" --json "$@" > "$WORK/eval.json"
  s=$(($(date +%s) - t0))
  jq -r --arg l "$label" --arg f "$family" --arg b "$batch" --arg s "$s" \
    '[$l, $f, $b, .rows.used, .rows.nan_score, .rho, .tau, .rho_top10, (.rho_nan_last // "nan"), $s] | map(tostring) | join("\t")' \
    "$WORK/eval.json" >> "$RESULTS"
  printf 'batch-study: %-9s %-34s %4ss\n' "$label" "$batch" "$s" >&2
}

# Every image candidate on one image space.
images() {
  label=$1 space=$2 archs=$3 truth=$4
  shift 4
  run "$label" "$space" "$archs" "$truth" ramp ramp "$@"
  for g in $GENERATORS; do
    for seed in $SEEDS; do run "$label" "$space" "$archs" "$truth" "$g" "$g:$seed" "$@"; done
  done
  if [ -f "$CIFAR" ]; then run "$label" "$space" "$archs" "$truth" cifar10 "cifar10:$CIFAR" "$@"
  else echo "batch-study: $CIFAR not found: no real-image reference" >&2; fi
}

if [ -f "$D/nb201/dev_accuracy.csv" ]; then
  tail -n +2 "$D/nb201/dev_accuracy.csv" | cut -d, -f2 > "$WORK/nb201.archs"
  images nb201 nb201 "$WORK/nb201.archs" "$D/nb201/dev_accuracy.csv" --target cifar10_test
else echo "batch-study: skipping nb201: $D/nb201/dev_accuracy.csv not found" >&2; fi

nb101_truth() { # JSON rows -> archs file + truth CSV (arch = compact {matrix, ops})
  jq -c '.[] | {matrix, ops}' "$1" > "$2.archs"
  { echo arch,acc; jq -r ".[] | [({matrix, ops} | tojson), ($3)] | @csv" "$1"; } > "$2.truth.csv"
}
if [ -f "$D/nb101/naslib_zc_subset_dev.json" ]; then
  nb101_truth "$D/nb101/naslib_zc_subset_dev.json" "$WORK/nb101dev" .val_accuracy
  images nb101-dev nb101 "$WORK/nb101dev.archs" "$WORK/nb101dev.truth.csv" --target acc
else echo "batch-study: skipping nb101-dev: $D/nb101/naslib_zc_subset_dev.json not found" >&2; fi
if [ -f "$D/nb101/nb101_30_archs.json" ]; then
  nb101_truth "$D/nb101/nb101_30_archs.json" "$WORK/nb101t30" \
    '(.final_test_accuracy_runs | add / length)'
  images nb101-30 nb101 "$WORK/nb101t30.archs" "$WORK/nb101t30.truth.csv" --target acc
else echo "batch-study: skipping nb101-30: $D/nb101/nb101_30_archs.json not found" >&2; fi

NLP="$D/nlp/wikitext2_final.csv"
if [ -f "$NLP" ] && command -v python3 >/dev/null; then
  # the recipes one per line (a CSV field with quotes: python's csv module, no third-party packages)
  python3 -c 'import csv, sys
for r in csv.DictReader(open(sys.argv[1], newline="")): print(r["recepie_json"].replace("\n", " "))' "$NLP" > "$WORK/nlp.archs"
  for seed in $SEEDS; do
    run nlp nlp "$WORK/nlp.archs" "$NLP" tokens "tokens:$seed" --truth-arch-column recepie_json \
      --target final_test_loss --minimize
  done
else echo "batch-study: skipping nlp: $NLP (or python3 for its CSV) not found" >&2; fi

# ---- the table: families with several seeds as mean [min, max] ----------
echo "| space | batch | seeds | n scored | NaN | Spearman rho | Kendall tau | top-10% rho | rho, NaN last |"
echo "|---|---|---|---|---|---|---|---|---|"
awk -F'\t' '
function f(x) { return x == "nan" || x == "null" ? "nan" : sprintf("%.3f", x) }
function agg(k, c,   s, lo, hi, i, v, nn) {
  s = 0; nn = 0
  for (i = 1; i <= cnt[k]; i++) {
    v = val[k, c, i]; if (v == "nan" || v == "null") continue
    v += 0; s += v; nn++
    if (nn == 1 || v < lo) lo = v
    if (nn == 1 || v > hi) hi = v
  }
  if (nn == 0) return "nan"
  if (c <= 5) return lo == hi ? sprintf("%d", lo) : sprintf("%d-%d", lo, hi)
  if (cnt[k] == 1) return f(s)
  return sprintf("%.3f [%.3f, %.3f]", s / nn, lo, hi) (nn < cnt[k] ? " (" cnt[k] - nn " nan)" : "")
}
{
  k = $1 SUBSEP $2
  if (!(k in cnt)) { order[++nk] = k; space[k] = $1; fam[k] = $2; first[k] = $3 }
  cnt[k]++
  for (c = 4; c <= 9; c++) val[k, c, cnt[k]] = $c
  last[k] = $3
}
END {
  for (i = 1; i <= nk; i++) {
    k = order[i]
    name = cnt[k] == 1 ? first[k] : fam[k] ":SEED"
    if (fam[k] == "cifar10") name = "cifar10 (260-image sample)"
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", space[k], name, cnt[k] == 1 ? "-" : cnt[k],
      agg(k, 4), agg(k, 5), agg(k, 6), agg(k, 7), agg(k, 8), agg(k, 9)
  }
}' "$RESULTS"
echo
echo "Per seed (Spearman rho):"
echo
echo "| space | batch | rho | tau | top-10% rho | seconds |"
echo "|---|---|---|---|---|---|"
awk -F'\t' 'function f(x) { return x == "nan" || x == "null" ? "nan" : sprintf("%.3f", x) }
$2 != "ramp" && $2 != "cifar10" { printf "| %s | %s | %s | %s | %s | %s |\n", $1, $3, f($6), f($7), f($8), $10 }' "$RESULTS"
echo
echo "study took $(($(date +%s) - t_all)) s (sweeps with --threads $THREADS)"
