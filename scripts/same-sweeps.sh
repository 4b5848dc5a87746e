#!/bin/sh
# Behaviour unchanged across a refactoring: builds REV (a git revision, in a
# throwaway worktree) and this tree, natively and for x86-64-v2 (the portable
# build without the AVX-512 kernels), sweeps all 15,625 NB201 cells with
# each binary on the ramp batch and on gaussian:1, and compares the CSVs
# byte for byte (rows sorted by index: the sweep writes them as they finish).
#   scripts/same-sweeps.sh REV [BATCH...]      e.g. scripts/same-sweeps.sh 1c129cf^
# Prints one line per (build, batch); exit 1 when any pair differs.
# About 4 sweeps of ~2 min each per build kind on 2 cores, plus the builds.
set -eu
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 REV [BATCH...]" >&2; exit 2; }
rev=$1; shift
batches=${*:-ramp gaussian:1}
work=${SAME_SWEEPS_DIR:-build-same-sweeps}
mkdir -p "$work"
wt="$work/rev"
rm -rf "$wt"; git worktree prune
git worktree add --detach "$wt" "$rev" >/dev/null
trap 'git worktree remove --force "$wt" >/dev/null 2>&1 || true' EXIT
fail=0
for kind in native portable; do
  case $kind in native) arch=-march=native ;; portable) arch=-march=x86-64-v2 ;; esac
  make -s -j2 BUILD="build-$kind" ARCH_FLAGS="$arch" "build-$kind/epsinas" >/dev/null
  make -s -C "$wt" -j2 BUILD="build-$kind" ARCH_FLAGS="$arch" "build-$kind/epsinas" >/dev/null
  for b in $batches; do
    tag=$(echo "$b" | tr ':/' '__')
    for side in old new; do
      case $side in old) bin="$wt/build-$kind/epsinas" ;; new) bin="build-$kind/epsinas" ;; esac
      csv="$work/$kind-$tag-$side.csv"
      rm -f "$csv"
      "$bin" sweep --space nb201 --all --batch "$b" --out "$csv.tmp" --threads "$(nproc)" 2>/dev/null
      { head -n 1 "$csv.tmp"; tail -n +2 "$csv.tmp" | sort -t, -k1,1n; } > "$csv"; rm -f "$csv.tmp"
    done
    rows=$(($(wc -l < "$work/$kind-$tag-new.csv") - 1))
    if cmp -s "$work/$kind-$tag-old.csv" "$work/$kind-$tag-new.csv"; then
      echo "same-sweeps: $kind $b: $rows rows, byte-identical to $rev"
    else
      echo "same-sweeps: $kind $b: DIFFERENT from $rev ($(cmp "$work/$kind-$tag-old.csv" "$work/$kind-$tag-new.csv" | head -n 1))"
      fail=1
    fi
  done
done
exit $fail
