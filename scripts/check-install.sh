#!/bin/sh
# make check-install: `make install` into a temporary prefix, then builds and
# runs a small program against the installed library through pkg-config
# alone (the way a user's project would), and runs the installed binary.
# The program scores one NB201 cell; the binary must agree with it.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
make -s BUILD="$BUILD" PREFIX="$prefix" install >/dev/null
for f in bin/epsinas lib/libepsinas.a lib/pkgconfig/epsinas.pc include/epsinas/spaces/space.h; do
  [ -f "$prefix/$f" ] || { echo "check-install: $f was not installed" >&2; exit 1; }
done
cat > "$tmp/use.c" <<'C'
#include <stdio.h>
#include <jansson.h>
#include "epsinas/spaces/space.h"
int main(void) {
    const char *cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|";
    json_t *req = json_pack("{s:s, s:s}", "space", "nb201", "arch", cell);
    eps_arch a; eps_error err; eps_image_shape shape; eps_batch b; eps_score sc;
    if (!req || eps_arch_from_json(req, &a, &err) != 0) { fprintf(stderr, "parse: %s\n", err.msg); return 1; }
    /* 1: the network takes images of that shape (0: token spaces). */
    if (eps_arch_input_shape(&a, &shape) != 1 || eps_batch_load_shape("ramp", 8, shape, &b, &err) != 0) {
        fprintf(stderr, "batch: %s\n", err.msg); return 1; }
    if (eps_arch_score(&a, &b, NULL, NULL, &sc, &err) != 0) { fprintf(stderr, "score: %s\n", err.msg); return 1; }
    printf("%.15g\n", sc.epsilon);
    eps_batch_free(&b); eps_arch_free(&a); json_decref(req);
    return 0;
}
C
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror "$tmp/use.c" $(pkg-config --cflags epsinas) $(pkg-config --libs epsinas) -o "$tmp/use"
lib_eps=$("$tmp/use")
bin_eps=$("$prefix/bin/epsinas" score --space nb201 --batch-size 8 --batch ramp \
  --arch '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|' --json |
  sed -n 's/.*"epsilon": *\([-0-9.eE+]*\).*/\1/p')
awk -v a="$lib_eps" -v b="$bin_eps" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b != "" && d <= 1e-12 * (b < 0 ? -b : b) + 1e-15) }' || {
  echo "check-install: the library says $lib_eps, the installed binary $bin_eps" >&2; exit 1; }
echo "check-install: ok (installed under a temporary prefix; pkg-config build scores $lib_eps, the binary agrees)"
