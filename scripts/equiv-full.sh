#!/bin/sh
# make equiv-full: the fast engine against the dense engine on every NB201
# cell (15,625; 9,445 distinct computations each) at batch 8 of the ramp
# batch, then scripts/compare-sweeps.sh: equal NaN sets and every epsilon
# within 1e-4 |dense| + 1e-5. About 25 minutes on 2 cores, almost all of it
# the dense engine; both sweeps resume where they stopped if interrupted.
set -eu
BIN=${1:-build/epsinas}
BS=${EPS_EQUIV_BATCH:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bench/out/equiv"
mkdir -p "$out"
threads=$(nproc)
"$BIN" sweep --space nb201 --all --batch-size "$BS" --threads "$threads" --out "$out/fast.csv"
OPENBLAS_NUM_THREADS=1 "$BIN" sweep --space nb201 --all --engine dense --batch-size "$BS" --threads "$threads" \
    --out "$out/dense.csv"
"$root/scripts/compare-sweeps.sh" "$out/dense.csv" "$out/fast.csv"
