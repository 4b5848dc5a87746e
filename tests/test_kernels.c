/* test_kernels.c — every AVX-512 kernel of the fast engine against its
 * portable twin, called directly (issue 18 item 3): the 3x3 box sums of
 * convolutions and average pools in every row width, mode, input
 * transform and fused add; the stride-2 window sums; the BatchNorm
 * statistics loop. Inputs are random normal floats, subnormals, signed
 * zeros and large values. Results must be bit-identical, except the two
 * documented differences: the sign of an exact zero in a box sum (no later
 * operation can observe it), and the statistics' sum of squares, which the
 * vector loop adds with one FMA rounding. Each vector call's return value
 * and the engine's per-thread counter prove that the vector path ran; in a
 * build without AVX-512 (make check-portable) the tests say so and skip. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/eps_fast.h"
#include "epsinas/core/batch.h"
#include "epsinas/engine/engine.h"
#include "epsinas/spaces/nb201.h"

#ifdef BOX3_AVX512

enum { IN_NORMAL, IN_SUBNORMAL, IN_MIXED, IN_KINDS };
static const char *const in_name[IN_KINDS] = {"normal", "subnormal", "mixed"};

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static float from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() >> 8) / 16777216.0f; }

/* One value of the given kind: normals in [-2, 2) with exact zeros of both
 * signs; subnormals of both signs with a few tiny normals and zeros; or a
 * mix of those with values near 1e20. */
static float sample(int kind)
{
    uint32_t r = next_u32() % 64;
    if (r == 0) return 0.0f;
    if (r == 1) return -0.0f;
    if (kind == IN_SUBNORMAL || (kind == IN_MIXED && r < 24)) {
        uint32_t sign = (next_u32() & 1u) << 31;
        if (r < 6) return from_bits(sign | (1u << 23) | (next_u32() & 0x7fffffu)); /* smallest normals */
        return from_bits(sign | (next_u32() & 0x7fffffu));
    }
    if (kind == IN_MIXED && r < 28) return uniform(-1e20f, 1e20f);
    return uniform(-2.0f, 2.0f);
}

static float *values(size_t n, int kind)
{
    float *x = malloc(sizeof(float) * n);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = sample(kind);
    return x;
}

static size_t compared; /* values checked bit for bit, over the whole run */

/* Bit-identical, but for the sign of a zero; NaN matches NaN. */
static void expect_same(const float *vec, const float *ref, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t a, b;
        memcpy(&a, &vec[i], 4), memcpy(&b, &ref[i], 4);
        int same = a == b || (vec[i] == 0.0f && ref[i] == 0.0f) || (isnan(vec[i]) && isnan(ref[i]));
        if (!same)
            fail_msg("%s: value %zu: vector %.9g (0x%08x), scalar %.9g (0x%08x)", what, i, vec[i], a, ref[i], b);
    }
    compared += n;
}

static const int widths[] = {8, 16, 32, 64};

/* ---- 3x3 box sums of convolutions: BOX_SCALE and BOX_ACCUM ---- */

static void box3_conv_case(int H, int W, int nimg, box_mode mode, int affine, int relu, int kind, float w, float cnt)
{
    size_t hw = (size_t)H * W, n = hw * (size_t)nimg;
    float *x = values(n, kind), *prior = values(n, IN_NORMAL);
    float *yv = malloc(sizeof(float) * n), *ys = malloc(sizeof(float) * n);
    float *tmp = malloc(sizeof(float) * hw), *scaled = malloc(sizeof(float) * hw);
    memcpy(yv, prior, sizeof(float) * n), memcpy(ys, prior, sizeof(float) * n);
    grp g = {.count = (int)cnt, .affine = affine, .alpha = affine ? 0.75f : 1.0f, .beta = affine ? -0.125f : 0.0f};
    xform f = {.affine = affine, .relu = relu, .scale = 1, .al = g.alpha, .be = g.beta, .w = w};
    unsigned long calls = eps_fast_avx512_calls();
    int r = eps_fast_box3_avx512(x, yv, nimg, H, W, &f, mode, cnt, NULL, NULL, NULL);
    char what[160];
    snprintf(what, sizeof what, "box3 %s %dx%d x%d affine=%d relu=%d %s w=%g cnt=%g",
             mode == BOX_SCALE ? "scale" : "accum", H, W, nimg, affine, relu, in_name[kind], w, cnt);
    if (r != 0) fail_msg("%s: the vector kernel declined (%d)", what, r);
    assert_int_equal(eps_fast_avx512_calls(), calls + 1);
    for (int b = 0; b < nimg; b++)
        eps_fast_conv3_image(x + b * hw, ys + b * hw, tmp, scaled, H, W, w, cnt, mode == BOX_ACCUM, relu, &g);
    expect_same(yv, ys, n, what);
    free(x), free(prior), free(yv), free(ys), free(tmp), free(scaled);
}

static void test_box3_conv(void **state)
{
    (void)state;
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
        for (int mode = BOX_SCALE; mode <= BOX_ACCUM; mode++)
            for (int xf = 0; xf < 4; xf++)
                for (int kind = 0; kind < IN_KINDS; kind++) {
                    int W = widths[wi], H = W == 8 ? 6 : W / 2 + 2;
                    box3_conv_case(H, W, 3, (box_mode)mode, xf & 1, xf >> 1, kind, kind == IN_NORMAL ? 1e-3f : 0.7f,
                                   (float)(1 + xf));
                }
}

/* ---- average pools: BOX_RECIP, plain and with fused adds ---- */

/* Divisors of a 3x3 / stride 1 / pad 1 average pool without padded taps. */
static void pool_divisors(int H, int W, float *div, float *rdiv)
{
    for (int oy = 0; oy < H; oy++)
        for (int ox = 0; ox < W; ox++) {
            float d = (float)(eps_fast_window_count(oy, 1, 1, 3, H) * eps_fast_window_count(ox, 1, 1, 3, W));
            div[oy * W + ox] = d, rdiv[oy * W + ox] = 1.0f / d;
        }
}

static grp lazy(int affine, float al, float be) { return (grp){.count = 1, .affine = affine, .alpha = al, .beta = be}; }

/* The fused input a + lazy(a2) (first term lazy too when aff0), as the
 * engine's separate add job computes it. */
static void ref_input(float *q, const float *a, const b3io *io, size_t n)
{
    grp g0 = lazy(io->aff0, io->al0, io->be0), g1 = lazy(io->aff2, io->al2, io->be2);
    if (!g0.affine) {
        eps_fast_add_pair(q, a, io->a2, &g1, n);
    } else {
        eps_fast_add_group(q, a, &g0, n, 1);
        eps_fast_add_group(q, io->a2, &g1, n, 0);
    }
}

/* The fused output: (e0 + lazy(e1)) + v, or e0 + v, as the add job would. */
static void ref_output(float *q, const float *v, const b3io *io, size_t n)
{
    const grp plain = {.count = 1};
    grp g0 = lazy(io->affe0, io->ale0, io->bee0), g1 = lazy(io->affe, io->ale, io->bee);
    if (!io->e1 && !g0.affine) {
        eps_fast_add_pair(q, io->e0, v, &plain, n);
        return;
    }
    if (io->e1 && !g0.affine) {
        eps_fast_add_pair(q, io->e0, io->e1, &g1, n);
    } else {
        eps_fast_add_group(q, io->e0, &g0, n, 1);
        if (io->e1) eps_fast_add_group(q, io->e1, &g1, n, 0);
    }
    eps_fast_add_group(q, v, &plain, n, 0);
}

typedef struct { int in2, epi; } fusion; /* in2: 0 none, 1 plain, 2 lazy a2, 3 both lazy; epi: 0 none, 1..5 */

static b3io make_io(fusion fu, const float *a2, const float *e0, const float *e1)
{
    b3io io = {.al0 = 1, .al2 = 1, .ale0 = 1, .ale = 1};
    if (fu.in2) {
        io.a2 = a2;
        io.aff2 = fu.in2 >= 2, io.aff0 = fu.in2 == 3;
        if (io.aff2) io.al2 = 1.5f, io.be2 = 0.25f;
        if (io.aff0) io.al0 = -0.5f, io.be0 = 0.0625f;
    }
    /* epi 1: e0 + v; 2: (e0 + e1) + v; 3: (e0 + lazy(e1)) + v; 4: lazy(e0) + v; 5: (lazy(e0) + lazy(e1)) + v */
    if (fu.epi) {
        io.e0 = e0;
        if (fu.epi == 2 || fu.epi == 3 || fu.epi == 5) io.e1 = e1;
        io.affe = fu.epi == 3 || fu.epi == 5, io.affe0 = fu.epi >= 4;
        if (io.affe) io.ale = 0.375f, io.bee = -1.0f;
        if (io.affe0) io.ale0 = 2.0f, io.bee0 = 0.5f;
    }
    return io;
}

/* Returns what the vector kernel returned (0 done, 1 redo with BOX_DIV). */
static int avgpool_case(int H, int W, int nimg, int affine, int relu, fusion fu, int kind)
{
    size_t hw = (size_t)H * W, n = hw * (size_t)nimg;
    float *x = values(n, kind), *a2 = values(n, kind), *e0 = values(n, IN_NORMAL), *e1 = values(n, IN_NORMAL);
    float *div = malloc(sizeof(float) * hw), *rdiv = malloc(sizeof(float) * hw);
    float *yv = malloc(sizeof(float) * n), *ys = malloc(sizeof(float) * n);
    float *in = malloc(sizeof(float) * n), *v = malloc(sizeof(float) * hw), *tmp = malloc(sizeof(float) * hw);
    pool_divisors(H, W, div, rdiv);
    b3io io = make_io(fu, a2, e0, e1);
    grp g = lazy(affine, 0.75f, -0.125f);
    xform f = {.affine = affine, .relu = relu, .al = g.alpha, .be = g.beta};
    unsigned long calls = eps_fast_avx512_calls();
    int r = eps_fast_box3_avx512(x, yv, nimg, H, W, &f, BOX_RECIP, 1.0f, div, rdiv, fu.in2 || fu.epi ? &io : NULL);
    char what[160];
    snprintf(what, sizeof what, "avgpool %dx%d x%d affine=%d relu=%d in2=%d epi=%d %s", H, W, nimg, affine, relu,
             fu.in2, fu.epi, in_name[kind]);
    if (r < 0) fail_msg("%s: the vector kernel declined (%d)", what, r);
    assert_int_equal(eps_fast_avx512_calls(), calls + 1);
    if (fu.in2) ref_input(in, x, &io, n);
    else eps_fast_load_row(in, x, n, &g, relu);
    for (int b = 0; b < nimg; b++) {
        /* BOX_DIV: the correctly rounded quotient BOX_RECIP must equal */
        eps_fast_box3_img(in + b * hw, tmp, fu.epi ? v : ys + b * hw, H, W, 1.0f, BOX_DIV, div, NULL);
        if (fu.epi) {
            b3io ib = io;
            ib.e0 = e0 + b * hw, ib.e1 = io.e1 ? e1 + b * hw : NULL;
            ref_output(ys + b * hw, v, &ib, hw);
        }
    }
    if (r == 0) expect_same(yv, ys, n, what);
    free(x), free(a2), free(e0), free(e1), free(div), free(rdiv), free(yv), free(ys), free(in), free(v), free(tmp);
    return r;
}

static void test_box3_avgpool(void **state)
{
    (void)state;
    int redo[IN_KINDS] = {0}, cases[IN_KINDS] = {0};
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
        for (int kind = 0; kind < IN_KINDS; kind++) {
            int W = widths[wi], H = W == 8 ? 8 : W / 2;
            for (int xf = 0; xf < 4; xf++, cases[kind]++)
                redo[kind] += avgpool_case(H, W, 2, xf & 1, xf >> 1, (fusion){0, 0}, kind);
            for (int in2 = 0; in2 < 4; in2++)
                for (int epi = 0; epi < 6; epi++, cases[kind]++)
                    if (in2 || epi) redo[kind] += avgpool_case(H, W, 2, 0, 0, (fusion){in2, epi}, kind);
        }
    for (int k = 0; k < IN_KINDS; k++)
        print_message("# avgpool, %s inputs: %d cases, %d handed back for exact division\n", in_name[k], cases[k],
                      redo[k]);
    /* normal inputs never need the division; all-subnormal inputs must (the
     * reciprocal is not exact there): both directions of the check ran */
    assert_int_equal(redo[IN_NORMAL], 0);
    assert_true(redo[IN_SUBNORMAL] > 0);
}

/* ---- the fused-input convolution box sum (ReLU, times w) ---- */

static void test_box3_conv_fused_input(void **state)
{
    (void)state;
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
        for (int in2 = 1; in2 < 4; in2++)
            for (int kind = 0; kind < IN_KINDS; kind++) {
                int W = widths[wi], H = W == 8 ? 4 : W / 4 + 2, nimg = 2;
                size_t hw = (size_t)H * W, n = hw * nimg;
                float *x = values(n, kind), *a2 = values(n, kind), *in = malloc(sizeof(float) * n);
                float *yv = malloc(sizeof(float) * n), *ys = malloc(sizeof(float) * n);
                float *tmp = malloc(sizeof(float) * hw), *scaled = malloc(sizeof(float) * hw), w = 0.3f, cnt = 5.0f;
                b3io io = make_io((fusion){in2, 0}, a2, NULL, NULL);
                xform f = {.relu = 1, .scale = 1, .w = w};
                char what[128];
                snprintf(what, sizeof what, "conv fused input %dx%d in2=%d %s", H, W, in2, in_name[kind]);
                if (eps_fast_box3_avx512(x, yv, nimg, H, W, &f, BOX_SCALE, cnt, NULL, NULL, &io) != 0)
                    fail_msg("%s: the vector kernel declined", what);
                ref_input(in, x, &io, n);
                const grp plain = {.count = 5};
                for (int b = 0; b < nimg; b++)
                    eps_fast_conv3_image(in + b * hw, ys + b * hw, tmp, scaled, H, W, w, cnt, 0, 1, &plain);
                expect_same(yv, ys, n, what);
                free(x), free(a2), free(in), free(yv), free(ys), free(tmp), free(scaled);
            }
}

/* ---- stride-2 window sums (NB201's reductions) ---- */

static void test_wsum_s2(void **state)
{
    (void)state;
    static const struct { int H, W, k, p; } shapes[] = {{32, 32, 3, 1}, {32, 32, 2, 0}, {16, 16, 3, 1}, {16, 16, 2, 0}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int xf = 0; xf < 8; xf++)
            for (int kind = 0; kind < IN_KINDS; kind++) {
                int H = shapes[si].H, W = shapes[si].W, k = shapes[si].k, p = shapes[si].p, OH = H / 2, OW = W / 2;
                size_t hw = (size_t)H * W, ohw = (size_t)OH * OW;
                float *x = values(hw, kind), *ld = malloc(sizeof(float) * hw), *tmp = malloc(sizeof(float) * H * OW);
                float *yv = malloc(sizeof(float) * ohw), *ys = malloc(sizeof(float) * ohw), w = 0.6f;
                int affine = xf & 1, relu = (xf >> 1) & 1, scale = xf >> 2;
                grp g = lazy(affine, -1.25f, 0.5f);
                xform f = {.affine = affine, .relu = relu, .scale = scale, .al = g.alpha, .be = g.beta, .w = w};
                char what[128];
                snprintf(what, sizeof what, "wsum s2 %dx%d k=%d affine=%d relu=%d scale=%d %s", H, W, k, affine, relu,
                         scale, in_name[kind]);
                unsigned long calls = eps_fast_avx512_calls();
                if (eps_fast_wsum_s2_avx512(x, yv, H, W, OH, OW, k, 2, p, 1, &f) != 0)
                    fail_msg("%s: the vector kernel declined", what);
                assert_int_equal(eps_fast_avx512_calls(), calls + 1);
                if (scale) eps_fast_load_scaled(ld, x, hw, &g, relu, w);
                else eps_fast_load_row(ld, x, hw, &g, relu);
                eps_fast_window_sum(ld, ys, tmp, H, W, OH, OW, k, 2, p, 1, NULL);
                expect_same(yv, ys, ohw, what);
                free(x), free(ld), free(tmp), free(yv), free(ys);
            }
    /* other shapes are declined, so the engine's portable loop runs */
    xform f = {0};
    static float in64[64 * 64], out32[32 * 32];
    assert_int_equal(eps_fast_wsum_s2_avx512(in64, out32, 64, 64, 32, 32, 3, 2, 1, 1, &f), -1);
}

/* ---- BatchNorm statistics ---- */

static void test_stats_loop(void **state)
{
    (void)state;
    for (int kind = 0; kind < IN_KINDS; kind++)
        for (int track = 0; track < 2; track++)
            for (int with_nan = 0; with_nan < 2; with_nan++) {
                size_t n = (size_t)NACC * 37;
                float *x = values(n, kind);
                if (with_nan) x[5 * NACC + 3] = NAN;
                statacc sv = {.K = x[0], .track_max = track}, ss = sv;
                unsigned long calls = eps_fast_avx512_calls();
                eps_fast_stats_loop_avx512(&sv, x, n, track);
                assert_int_equal(eps_fast_avx512_calls(), calls + 1);
                eps_fast_stats_loop_scalar(&ss, x, n, track);
                char what[96];
                snprintf(what, sizeof what, "stats %s track_max=%d nan=%d", in_name[kind], track, with_nan);
                for (int j = 0; j < NACC; j++) {
                    /* the sum: the same additions in the same order */
                    if (memcmp(&sv.a1[j], &ss.a1[j], sizeof(double)) && !(isnan(sv.a1[j]) && isnan(ss.a1[j])))
                        fail_msg("%s: a1[%d] %.17g vs %.17g", what, j, sv.a1[j], ss.a1[j]);
                    /* the sum of squares: one FMA rounding per term instead of two */
                    double d = fabs(sv.a2[j] - ss.a2[j]), tol = 1e-14 * fabs(ss.a2[j]) + 1e-300;
                    if (!(d <= tol) && !(isnan(sv.a2[j]) && isnan(ss.a2[j])))
                        fail_msg("%s: a2[%d] %.17g vs %.17g", what, j, sv.a2[j], ss.a2[j]);
                }
                expect_same(sv.mx, ss.mx, NACC, what);
                free(x);
            }
}

/* ---- the engine itself takes the vector path ---- */

static void test_engine_runs_vector_kernels(void **state)
{
    (void)state;
    eps_nb201_cell cell;
    eps_graph g;
    eps_batch b;
    eps_error err;
    const char *arch = "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|";
    assert_int_equal(eps_nb201_parse(arch, strlen(arch), &cell, &err), 0);
    assert_int_equal(eps_nb201_build(&cell, &g, &err), 0);
    assert_int_equal(eps_batch_load("ramp", 4, &b, &err), 0);
    float *y = malloc(sizeof(float) * 4 * (size_t)eps_graph_output_size(&g));
    unsigned long calls = eps_fast_avx512_calls();
    assert_int_equal(eps_engine_fast_forward(&g, &b, 1e-3f, NULL, y, &err), 0);
    unsigned long used = eps_fast_avx512_calls() - calls;
    print_message("# one NB201 forward pass: %lu AVX-512 kernel calls\n", used);
    assert_true(used > 0);
    free(y);
    eps_batch_free(&b);
    eps_graph_free(&g);
}

static int report(void **state)
{
    (void)state;
    print_message("# %zu vector results compared with their scalar twins\n", compared);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_box3_conv),
        cmocka_unit_test(test_box3_avgpool),
        cmocka_unit_test(test_box3_conv_fused_input),
        cmocka_unit_test(test_wsum_s2),
        cmocka_unit_test(test_stats_loop),
        cmocka_unit_test(test_engine_runs_vector_kernels),
    };
    return cmocka_run_group_tests(tests, NULL, report);
}

#else /* a build without AVX-512: nothing to compare */

static void test_no_vector_kernels(void **state)
{
    (void)state;
    print_message("# SKIP: built without AVX-512 (portable build): the engine runs only the portable kernels\n");
    assert_int_equal(eps_fast_avx512_calls(), 0);
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_no_vector_kernels)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
