#!/bin/sh
# Compares two sweep CSVs (index,arch,epsilon,nan_reason,params,macs) by
# architecture: the NaN sets must be equal and every other epsilon within
# |a - b| <= 1e-4 * |a| + 1e-5 (a: the first file, the reference).
# Prints one summary line; exit 0 when they agree, 1 when not, 2 on bad input.
#   scripts/compare-sweeps.sh dense.csv fast.csv
set -eu
[ $# -eq 2 ] || { echo "usage: $0 REFERENCE.csv CANDIDATE.csv" >&2; exit 2; }
for f in "$1" "$2"; do [ -r "$f" ] || { echo "$0: cannot read $f" >&2; exit 2; }; done
awk -F, '
  FNR == 1 { next }                      # header
  NR == FNR { ref[$2] = $3; n_ref++; next }
  {
    n++
    if (!($2 in ref)) { missing++; if (missing <= 5) print "not in reference: " $2; next }
    a = ref[$2]; b = $3; seen[$2] = 1
    an = (a == "" || a == "nan"); bn = (b == "" || b == "nan")
    if (an || bn) {
      if (an && bn) nan_both++
      else { nan_diff++; if (nan_diff <= 5) print "NaN in one only: " $2 " ref=" a " got=" b }
      next
    }
    d = a - b; if (d < 0) d = -d
    t = 1e-4 * (a < 0 ? -a : a) + 1e-5
    if (d / t > worst) worst = d / t
    if (d > t) { bad++; if (bad <= 5) print "outside tolerance: " $2 " ref=" a " got=" b }
    else ok++
  }
  END {
    for (k in ref) if (!(k in seen)) unmatched++
    printf "%d architectures: %d NaN in both, %d NaN in one only, %d within tolerance, %d outside (worst |d|/tol %.3g), %d missing, %d reference rows unmatched\n",
      n, nan_both, nan_diff, ok, bad, worst, missing, unmatched
    exit (nan_diff || bad || missing || unmatched || n == 0) ? 1 : 0
  }' "$1" "$2"
