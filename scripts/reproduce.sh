#!/bin/sh
# Reproduces the README's NB201 table: the 3,000 dev architectures of
# ../shared/data/nb201/dev_accuracy.csv scored on the CIFAR-10 sample batch
# and on the ramp, then the paper's statistics against the three targets.
# Usage: scripts/reproduce.sh [epsinas binary] [shared dir] [output dir]
set -eu
BIN=${1:-build/epsinas}
SHARED=${2:-../shared}
out=${3:-repro}
truth="$SHARED/data/nb201/dev_accuracy.csv"
if [ ! -f "$truth" ]; then
  echo "reproduce: $truth not found (the shared data is not beside this checkout)" >&2
  exit 2
fi
mkdir -p "$out"
tail -n +2 "$truth" | cut -d, -f2 > "$out/dev_archs.txt"
"$BIN" sweep --space nb201 --archs "$out/dev_archs.txt" --out "$out/dev_cifar.csv" \
  --batch "cifar10:$SHARED/data/cifar10/cifar10_test_sample260.bin"
"$BIN" sweep --space nb201 --archs "$out/dev_archs.txt" --out "$out/dev_ramp.csv"
for target in cifar10_test cifar100_test imagenet16_test; do
  for batch in cifar ramp; do
    echo "== $batch batch, $target"
    "$BIN" eval --scores "$out/dev_$batch.csv" --truth "$truth" --target "$target"
  done
done
