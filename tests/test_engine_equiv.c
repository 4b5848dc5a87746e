/* test_engine_equiv.c — the single-plane engine against the dense one:
 * op by op on graphs that use every op (ggml style), and epsilon on 300
 * random NB201 cells (dense runs the cell as written, fast the canonical
 * form, so this also checks that dropping dead edges is exact); max pooling
 * bit for bit (NaN, infinities, signed zeros, ties) and NB101 cells heavy in
 * max pools op by op; and the fast engine's optional re-running of
 * producers across phases changes no bit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "epsinas/engine/engine.h"
#include "epsinas/spaces/nb101.h"
#include "epsinas/spaces/nb201.h"
#include "epsinas/spaces/space.h"
#include "util.h"

/* ---- op-by-op ---- */

typedef struct {
    float **out; /* per node, dense copy (owned) */
    int n;
} trace_buf;

static void record(void *ctx, int node, const float *x, int n, int c, int h, int w)
{
    trace_buf *t = ctx;
    size_t sz = (size_t)n * c * h * w;
    free(t->out[node]);
    t->out[node] = malloc(sizeof(float) * sz);
    memcpy(t->out[node], x, sizeof(float) * sz);
}

/* The first fast value further than rtol |dense| + rtol/10 max|dense| from
 * the dense one, or -1; *scale: max|dense|. */
static long first_far_tol(const float *fast, const float *dense, size_t n, double *scale, double rtol)
{
    *scale = 0;
    for (size_t k = 0; k < n; k++)
        if (fabs(dense[k]) > *scale) *scale = fabs(dense[k]);
    for (size_t k = 0; k < n; k++)
        if (!(fabs((double)fast[k] - dense[k]) <= rtol * fabs(dense[k]) + 0.1 * rtol * *scale + 1e-30)) return (long)k;
    return -1;
}

static long first_far(const float *fast, const float *dense, size_t n, double *scale)
{
    return first_far_tol(fast, dense, n, scale, 1e-4);
}

/* Every node of g, fast against dense, within rtol (1e-4 unless the
 * network is deep enough for float32 rounding to add up past it). */
static void compare_traces_tol(const eps_graph *g, const eps_batch *b, float w, double rtol)
{
    trace_buf td = {calloc((size_t)g->n, sizeof(float *)), g->n}, tf = {calloc((size_t)g->n, sizeof(float *)), g->n};
    eps_run_opts od = {.engine = EPS_ENGINE_DENSE, .trace = record, .trace_ctx = &td};
    eps_run_opts of = {.engine = EPS_ENGINE_FAST, .trace = record, .trace_ctx = &tf};
    size_t ny = (size_t)b->n * eps_graph_output_size(g);
    float *yd = malloc(sizeof(float) * ny), *yf = malloc(sizeof(float) * ny);
    eps_error err = {0};
    assert_int_equal(eps_engine_forward(g, b, w, &od, yd, &err), 0);
    assert_int_equal(eps_engine_forward(g, b, w, &of, yf, &err), 0);
    int compared = 0;
    for (int i = 1; i < g->n; i++) {
        if (!td.out[i]) continue;
        if (!tf.out[i]) { print_error("node %d (%s) not traced by the fast engine\n", i, eps_op_name(g->nodes[i].op)); fail(); }
        const eps_node *nd = &g->nodes[i];
        size_t sz = (size_t)b->n * nd->c * nd->h * nd->w;
        double scale;
        long k = first_far_tol(tf.out[i], td.out[i], sz, &scale, rtol);
        if (k >= 0) {
            print_error("node %d (%s) element %ld: fast %.9g dense %.9g (scale %g, w=%g)\n", i, eps_op_name(nd->op), k,
                        tf.out[i][k], td.out[i][k], scale, w);
            fail();
        }
        compared++;
    }
    for (size_t k = 0; k < ny; k++) assert_true(eps_t_close(yf[k], yd[k], rtol, 1e-6 + 0.1 * rtol * fabs(yd[0])));
    assert_true(compared > 3);
    for (int i = 0; i < g->n; i++) free(td.out[i]), free(tf.out[i]);
    free(td.out);
    free(tf.out);
    free(yd);
    free(yf);
}

static void compare_traces(const eps_graph *g, const eps_batch *b, float w) { compare_traces_tol(g, b, w, 1e-4); }

#define OK(x) ({ int _r = (x); if (_r < 0) { print_error("%s: %s\n", #x, err.msg); fail(); } _r; })

/* Every op of the IR, with concat + slice making piecewise-identical channels,
 * grouped and dilated convs, strides, both pools, flatten + linear. */
static void build_all_ops(eps_graph *g)
{
    eps_error err = {0};
    assert_int_equal(eps_graph_init(g, 3, 12, 12, &err), 0);
    int a = OK(eps_g_conv(g, 0, 8, 3, 1, 1, 0, &err));
    a = OK(eps_g_bn(g, a, &err));
    int r = OK(eps_g_relu(g, a, &err));
    int b = OK(eps_g_conv(g, r, 4, 1, 1, 0, 0, &err));
    b = OK(eps_g_bn(g, b, &err));
    int p = OK(eps_g_maxpool(g, r, 3, 1, 1, &err));
    int cat[3] = {b, p, r};
    int c = OK(eps_g_concat(g, 3, cat, &err)); /* 4 + 8 + 8 = 20 channels, three groups */
    int s = OK(eps_g_slice(g, c, 10, &err));     /* cuts the second group */
    int s2 = OK(eps_g_slice(g, p, 10 > 8 ? 8 : 10, &err));
    (void)s2;
    int z = OK(eps_g_zero(g, s, &err));
    int sum[3] = {s, z, s};
    int ad = OK(eps_g_add(g, 3, sum, &err));
    eps_node gc = {.op = EPS_OP_CONV2D, .n_in = 1, .in = {ad}, .out_c = 10, .kernel = 3, .stride = 1, .pad = 2,
                   .dilation = 2, .groups = 5};
    int d = OK(eps_graph_add(g, &gc, &err));
    d = OK(eps_g_bn(g, d, &err));
    int ap = OK(eps_g_avgpool(g, d, 3, 2, 1, 0, &err));
    int ap2 = OK(eps_g_avgpool(g, d, 3, 2, 1, 1, &err));
    int sum2[2] = {ap, ap2};
    int e = OK(eps_g_add(g, 2, sum2, &err));
    int mp = OK(eps_g_maxpool(g, e, 2, 2, 0, &err));
    int f = OK(eps_g_flatten(g, mp, &err));
    int l = OK(eps_g_linear(g, f, 6, 1, &err));
    l = OK(eps_g_relu(g, l, &err));
    int id = OK(eps_g_identity(g, l, &err));
    int gp = OK(eps_g_gap(g, d, &err)); /* 10 x 1 x 1 */
    int f2 = OK(eps_g_flatten(g, gp, &err));
    int l2 = OK(eps_g_linear(g, f2, 6, 0, &err));
    int sum3[2] = {id, l2};
    int h = OK(eps_g_add(g, 2, sum3, &err));
    h = OK(eps_g_bn(g, h, &err));
    OK(eps_g_linear(g, h, 1, 1, &err));
}

/* 6 images of 12x12 for the all-ops graph: a gaussian batch, cropped. */
static void load_crop12(eps_batch *b)
{
    eps_error err = {0};
    assert_int_equal(eps_batch_load("gaussian:7", 6, b, &err), 0);
    float *crop = malloc(sizeof(float) * 6 * 3 * 12 * 12);
    for (int i = 0; i < 6 * 3; i++)
        for (int y = 0; y < 12; y++)
            for (int x = 0; x < 12; x++) crop[(i * 12 + y) * 12 + x] = b->data[(i * 32 + y) * 32 + x];
    free(b->data);
    b->data = crop;
    b->h = b->w = 12;
}

static void test_all_ops_op_by_op(void **state)
{
    (void)state;
    eps_graph g;
    build_all_ops(&g);
    eps_batch b;
    load_crop12(&b);
    const float ws[] = {1.0f, 0.37f, 1e-3f};
    for (size_t k = 0; k < sizeof ws / sizeof *ws; k++) compare_traces(&g, &b, ws[k]);
    eps_batch_free(&b);
    eps_graph_free(&g);
}

static void test_nb201_op_by_op(void **state)
{
    (void)state;
    const char *archs[] = {
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
        "|none~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|",
    };
    eps_batch b;
    eps_error err = {0};
    assert_int_equal(eps_batch_load("gaussian:3", 3, &b, &err), 0);
    for (size_t i = 0; i < sizeof archs / sizeof *archs; i++) {
        eps_nb201_cell c;
        eps_graph g;
        assert_int_equal(eps_nb201_parse(archs[i], strlen(archs[i]), &c, &err), 0);
        assert_int_equal(eps_nb201_build(&c, &g, &err), 0);
        compare_traces(&g, &b, 1.0f);
        compare_traces(&g, &b, 1e-3f);
        eps_graph_free(&g);
    }
    eps_batch_free(&b);
}

/* ---- the vector box-sum kernels, every shape and input transform ----
 * Traced runs materialise every node, so they never see the transforms the
 * fast engine fuses into its box sums (a ReLU or a BatchNorm applied while
 * loading a row). Here each graph's output IS the tensor under test (no
 * head), so an untraced run compares the fused kernel's every value. */

/* n x 3 x H x W images, deterministic, of mixed sign and scale. */
static void make_batch(eps_batch *b, int n, int H, int W)
{
    memset(b, 0, sizeof *b);
    b->kind = EPS_BATCH_IMAGES;
    b->n = n, b->c = 3, b->h = H, b->w = W;
    size_t sz = (size_t)n * 3 * H * W;
    b->data = malloc(sizeof(float) * sz);
    uint64_t r = 0x2545F4914F6CDD1DULL ^ (uint64_t)(H * 131 + W);
    for (size_t k = 0; k < sz; k++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        b->data[k] = (float)((double)(r >> 11) / 9007199254740992.0 - 0.4) * (1.0f + (float)(k % 7));
    }
    eps_batch_set_hash(b);
}

/* g's output on b at weight w from both engines (caller frees *yd, *yf);
 * returns the number of values. */
static size_t run_both(const eps_graph *g, const eps_batch *b, float w, float **yd, float **yf)
{
    size_t ny = (size_t)b->n * eps_graph_output_size(g);
    *yd = malloc(sizeof(float) * ny), *yf = malloc(sizeof(float) * ny);
    eps_error err = {0};
    eps_run_opts od = {.engine = EPS_ENGINE_DENSE}, of = {.engine = EPS_ENGINE_FAST};
    assert_int_equal(eps_engine_forward(g, b, w, &od, *yd, &err), 0);
    assert_int_equal(eps_engine_forward(g, b, w, &of, *yf, &err), 0);
    return ny;
}

static void compare_outputs(const eps_graph *g, const eps_batch *b, float w, const char *what)
{
    float *yd, *yf;
    size_t ny = run_both(g, b, w, &yd, &yf);
    double scale;
    long k = first_far(yf, yd, ny, &scale);
    if (k >= 0) {
        print_error("%s, %dx%d, w=%g, value %ld: fast %.9g dense %.9g\n", what, b->h, b->w, w, k, yf[k], yd[k]);
        fail();
    }
    free(yd);
    free(yf);
}

static void test_box3_kernels(void **state)
{
    (void)state;
    /* the vector widths (8 two rows a vector, 16, 32, 64), odd heights,
     * and shapes no vector kernel takes */
    const int shapes[][2] = {{8, 8}, {5, 8}, {6, 8}, {16, 16}, {3, 16}, {32, 32}, {9, 32}, {4, 64}, {7, 12}};
    const float ws[] = {1.0f, 0.37f, 1e-7f};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        eps_batch b;
        make_batch(&b, 4, shapes[si][0], shapes[si][1]);
        for (int kind = 0; kind < 12; kind++) {
            eps_graph g;
            eps_error err = {0};
            assert_int_equal(eps_graph_init(&g, 3, b.h, b.w, &err), 0);
            int x = OK(eps_g_conv(&g, 0, 4, 3, 1, 1, 0, &err)); /* plain input, scaled */
            const char *what = "conv of the input";
            if (kind == 1) { /* avg pool of a plain tensor */
                x = OK(eps_g_avgpool(&g, x, 3, 1, 1, 0, &err));
                what = "avg pool";
            } else if (kind == 2) { /* avg pool of a BatchNorm output, then of its ReLU */
                x = OK(eps_g_bn(&g, x, &err));
                int a = OK(eps_g_avgpool(&g, x, 3, 1, 1, 0, &err));
                int r = OK(eps_g_relu(&g, x, &err));
                int c = OK(eps_g_avgpool(&g, r, 3, 1, 1, 0, &err));
                int s[2] = {a, c};
                x = OK(eps_g_add(&g, 2, s, &err));
                what = "avg pool of BN, of ReLU(BN)";
            } else if (kind == 3) { /* conv of ReLU(BN): affine + relu + scale */
                x = OK(eps_g_bn(&g, x, &err));
                x = OK(eps_g_relu(&g, x, &err));
                x = OK(eps_g_conv(&g, x, 4, 3, 1, 1, 0, &err));
                what = "conv of ReLU(BN)";
            } else if (kind == 4) { /* conv of BN (affine + scale) and of ReLU (relu + scale) */
                int n = OK(eps_g_bn(&g, x, &err));
                int a = OK(eps_g_conv(&g, n, 4, 3, 1, 1, 0, &err));
                int r = OK(eps_g_relu(&g, x, &err));
                int c = OK(eps_g_conv(&g, r, 4, 3, 1, 1, 0, &err));
                int s[2] = {a, c};
                x = OK(eps_g_add(&g, 2, s, &err));
                what = "conv of BN, conv of ReLU";
            } else if (kind == 5) { /* a conv over three groups: accumulating output */
                int n = OK(eps_g_bn(&g, x, &err));
                int r = OK(eps_g_relu(&g, n, &err));
                int cat[3] = {x, n, r};
                x = OK(eps_g_concat(&g, 3, cat, &err));
                x = OK(eps_g_conv(&g, x, 2, 3, 1, 1, 0, &err));
                what = "conv over concatenated groups";
            } else if (kind == 6) { /* adds folded into an avg pool: x + BN(x) -> pool -> x + BN(x) + pool */
                int n = OK(eps_g_bn(&g, x, &err));
                int s2[2] = {x, n};
                int a = OK(eps_g_add(&g, 2, s2, &err));
                int pl = OK(eps_g_avgpool(&g, a, 3, 1, 1, 0, &err));
                int s3[3] = {x, n, pl};
                x = OK(eps_g_add(&g, 3, s3, &err));
                what = "x + BN(x) -> avg pool -> x + BN(x) + pool";
            } else if (kind == 7) { /* plain sums: (x + y) -> pool -> x + y + pool, and x + pool */
                int y2 = OK(eps_g_avgpool(&g, x, 3, 1, 1, 0, &err));
                int s2[2] = {x, y2};
                int a = OK(eps_g_add(&g, 2, s2, &err));
                int pl = OK(eps_g_avgpool(&g, a, 3, 1, 1, 0, &err));
                int s3[3] = {x, y2, pl};
                int o3 = OK(eps_g_add(&g, 3, s3, &err));
                int pl2 = OK(eps_g_avgpool(&g, o3, 3, 1, 1, 0, &err));
                int s4[2] = {x, pl2};
                x = OK(eps_g_add(&g, 2, s4, &err));
                what = "(x + y) -> pool -> x + y + pool -> pool -> x + pool";
            } else if (kind == 8) { /* an add folded into a ReLU-conv: x + BN(x), x + y */
                int n = OK(eps_g_bn(&g, x, &err));
                int s2[2] = {x, n};
                int a = OK(eps_g_add(&g, 2, s2, &err));
                int r = OK(eps_g_relu(&g, a, &err));
                int c = OK(eps_g_conv(&g, r, 4, 3, 1, 1, 0, &err));
                int y2 = OK(eps_g_avgpool(&g, x, 3, 1, 1, 0, &err));
                int s3[2] = {x, y2};
                int a2 = OK(eps_g_add(&g, 2, s3, &err));
                int r2 = OK(eps_g_relu(&g, a2, &err));
                int c2 = OK(eps_g_conv(&g, r2, 4, 3, 1, 1, 0, &err));
                int s4[2] = {c, c2};
                x = OK(eps_g_add(&g, 2, s4, &err));
                what = "ReLU-conv of x + BN(x), of x + y";
            } else if (kind == 9) { /* a lazy first term: BN(x) + x -> pool -> BN(x) + x + pool, BN(x) + pool */
                int n = OK(eps_g_bn(&g, x, &err));
                int s2[2] = {n, x};
                int a = OK(eps_g_add(&g, 2, s2, &err));
                int pl = OK(eps_g_avgpool(&g, a, 3, 1, 1, 0, &err));
                int s3[3] = {n, x, pl};
                int o3 = OK(eps_g_add(&g, 3, s3, &err));
                int pl2 = OK(eps_g_avgpool(&g, o3, 3, 1, 1, 0, &err));
                int s4[2] = {n, pl2};
                int o4 = OK(eps_g_add(&g, 2, s4, &err));
                int s5[2] = {n, o4};
                int a5 = OK(eps_g_add(&g, 2, s5, &err));
                int r5 = OK(eps_g_relu(&g, a5, &err));
                x = OK(eps_g_conv(&g, r5, 4, 3, 1, 1, 0, &err));
                what = "BN(x) + x -> pool -> BN(x) + x + pool -> pool -> BN(x) + pool -> ReLU-conv of BN(x) + that";
            } else if (kind == 10) { /* the pool is the add's last term but runs before its other terms */
                int pl = OK(eps_g_avgpool(&g, x, 3, 1, 1, 0, &err));
                int r = OK(eps_g_relu(&g, x, &err));
                int c = OK(eps_g_conv(&g, r, 4, 3, 1, 1, 0, &err));
                int s2[2] = {c, pl};
                x = OK(eps_g_add(&g, 2, s2, &err));
                what = "ReLU-conv(x) + avg pool(x), the pool computed first";
            } else if (kind == 11) { /* the pool folded into x + pool is also read, shared, by a later phase */
                int pl = OK(eps_g_avgpool(&g, x, 3, 1, 1, 0, &err));
                int s2[2] = {x, pl};
                int b2 = OK(eps_g_add(&g, 2, s2, &err));
                int z = OK(eps_g_zero(&g, pl, &err));
                int s3[2] = {z, pl};
                int sh = OK(eps_g_add(&g, 2, s3, &err));
                int s4[2] = {b2, sh};
                x = OK(eps_g_add(&g, 2, s4, &err));
                what = "(x + pool) + (zero + pool), the pool re-run in the next phase";
            }
            for (size_t k = 0; k < sizeof ws / sizeof *ws; k++) compare_outputs(&g, &b, ws[k], what);
            eps_graph_free(&g);
        }
        eps_batch_free(&b);
    }
}

/* Average pooling divides by multiplying with the reciprocal and one
 * correction, exact except near the subnormal range, where the kernel must
 * notice and divide. Pooled straight from the input, values of every
 * magnitude down to the subnormals must equal, bit for bit, the fast
 * engine's sums ((left + centre) + right, then (up + centre) + down)
 * divided by the window's count. */
static float box3_divided(const float *x, int H, int W, int r, int c)
{
    float row[3];
    int nr = 0, nc = 0;
    for (int dy = -1; dy <= 1; dy++) {
        int y = r + dy;
        if (y < 0 || y >= H) continue;
        float h = 0.0f;
        nc = 0;
        for (int dx = -1; dx <= 1; dx++) {
            int xx = c + dx;
            if (xx < 0 || xx >= W) continue;
            h = nc++ ? h + x[y * W + xx] : x[y * W + xx];
        }
        row[nr++] = h;
    }
    float v = row[0];
    for (int k = 1; k < nr; k++) v += row[k];
    return v / (float)(nr * nc);
}

static void test_avgpool_subnormal_exact(void **state)
{
    (void)state;
    const int shapes[][2] = {{8, 8}, {16, 16}, {32, 32}, {4, 64}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        eps_batch b;
        make_batch(&b, 4, shapes[si][0], shapes[si][1]);
        int H = b.h, W = b.w;
        size_t sz = (size_t)b.n * b.c * H * W;
        /* each image plane its own scale, 2^-100 .. 2^-155: some windows sum
         * to normal values, some quotients are subnormal */
        for (size_t k = 0; k < sz; k++) b.data[k] = ldexpf(b.data[k], -100 - 5 * (int)(k / ((size_t)H * W)));
        eps_batch_set_hash(&b);
        float *twice = malloc(sizeof(float) * sz);
        for (size_t k = 0; k < sz; k++) twice[k] = b.data[k] + b.data[k];
        for (int fused = 0; fused < 2; fused++) {
            /* fused: x + avgpool(x + x), both adds folded into the pooling */
            eps_graph g;
            eps_error err = {0};
            assert_int_equal(eps_graph_init(&g, 3, H, W, &err), 0);
            if (fused) {
                int xx[2] = {0, 0};
                int s2 = OK(eps_g_add(&g, 2, xx, &err));
                int pl = OK(eps_g_avgpool(&g, s2, 3, 1, 1, 0, &err));
                int xp[2] = {0, pl};
                OK(eps_g_add(&g, 2, xp, &err));
            } else {
                OK(eps_g_avgpool(&g, 0, 3, 1, 1, 0, &err));
            }
            float *yf = malloc(sizeof(float) * sz);
            eps_run_opts of = {.engine = EPS_ENGINE_FAST};
            assert_int_equal(eps_engine_forward(&g, &b, 1.0f, &of, yf, &err), 0);
            size_t subnormal = 0;
            for (size_t k = 0; k < sz; k++) {
                size_t plane = k / ((size_t)H * W), q = k % ((size_t)H * W);
                float want = box3_divided((fused ? twice : b.data) + plane * H * W, H, W, (int)q / W, (int)q % W);
                subnormal += want != 0.0f && fabsf(want) < FLT_MIN;
                if (fused) want = b.data[k] + want;
                if (memcmp(&want, &yf[k], sizeof(float)) != 0 && !(want == 0.0f && yf[k] == 0.0f)) {
                    print_error("%dx%d%s value %zu: fast %a, sum / count %a\n", H, W, fused ? " (fused adds)" : "", k,
                                yf[k], want);
                    fail();
                }
            }
            assert_true(subnormal > 0);
            free(yf);
            eps_graph_free(&g);
        }
        free(twice);
        eps_batch_free(&b);
    }
}

/* ---- epsilon on random cells ---- */

static uint64_t rng = 20230208;
static uint64_t next_rand(void)
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void epsilon_both(const eps_nb201_cell *c, const eps_batch *b, const double w[2], double *dense, double *fast)
{
    eps_error err = {0};
    eps_graph full;
    assert_int_equal(eps_nb201_build(c, &full, &err), 0);
    char buf[EPS_NB201_STR_MAX];
    eps_nb201_format(c, buf);
    json_t *req = json_pack("{s:s,s:s}", "space", "nb201", "arch", buf);
    eps_arch a;
    assert_int_equal(eps_arch_from_json(req, &a, &err), 0);
    json_decref(req);
    eps_score sf, sd;
    eps_run_opts of = {.engine = EPS_ENGINE_FAST};
    assert_int_equal(eps_arch_score(&a, b, w, &of, &sf, &err), 0);
    /* dense on the network exactly as written, not the canonical one */
    eps_graph_free(&a.graph);
    a.graph = full;
    eps_run_opts od = {.engine = EPS_ENGINE_DENSE};
    assert_int_equal(eps_arch_score(&a, b, w, &od, &sd, &err), 0);
    eps_arch_free(&a);
    *dense = sd.epsilon;
    *fast = sf.epsilon;
}

static void test_random_nb201_epsilon(void **state)
{
    (void)state;
    eps_batch b;
    eps_error err = {0};
    assert_int_equal(eps_batch_load("gaussian:11", 4, &b, &err), 0);
    int n = eps_t_asan() ? 40 : 300, nans = 0;
    const double wdef[2] = {1e-7, 1.0}, wwide[2] = {1e-3, 1.0};
    for (int i = 0; i < n; i++) {
        eps_nb201_cell c;
        eps_nb201_from_index((int)(next_rand() % EPS_NB201_COUNT), &c);
        const double *w = (i % 3 == 2) ? wwide : wdef;
        double d, f;
        epsilon_both(&c, &b, w, &d, &f);
        if (!eps_t_close(f, d, 1e-4, 1e-5)) {
            char buf[EPS_NB201_STR_MAX];
            eps_nb201_format(&c, buf);
            print_error("%s (w=%g,%g): fast %.9g dense %.9g\n", buf, w[0], w[1], f, d);
            fail();
        }
        nans += isnan(d);
    }
    print_message("%d random cells agree (%d NaN in both)\n", n, nans);
    /* a cell whose output shares a chunk buffer, so the next phase re-runs
     * jobs that adds were folded into (fuse_phase) */
    const char *rerun = "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|none~1|avg_pool_3x3~2|";
    eps_nb201_cell c;
    assert_int_equal(eps_nb201_parse(rerun, strlen(rerun), &c, &err), 0);
    double d, f;
    epsilon_both(&c, &b, wdef, &d, &f);
    if (!eps_t_close(f, d, 1e-4, 1e-5) || isnan(f)) {
        print_error("%s: fast %.9g dense %.9g\n", rerun, f, d);
        fail();
    }
    eps_batch_free(&b);
}

/* ---- max pooling, bit for bit ----
 * The fast engine's vector max pools must pick the very value the dense
 * engine's scan picks: the same maximum, the same zero when +0 and -0 tie,
 * -inf padding that never wins, and a NaN wherever a window holds one. */

/* n x 3 x H x W images with ties, signed zeros, infinities and (when nan)
 * a few NaNs in some images only. */
static void make_max_batch(eps_batch *b, int n, int H, int W, int nan)
{
    memset(b, 0, sizeof *b);
    b->kind = EPS_BATCH_IMAGES;
    b->n = n, b->c = 3, b->h = H, b->w = W;
    size_t sz = (size_t)n * 3 * H * W, isz = (size_t)3 * H * W;
    b->data = malloc(sizeof(float) * sz);
    uint64_t r = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(H * 977 + W * 31 + nan);
    const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, 1.0f, -1.0f};
    for (size_t k = 0; k < sz; k++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        unsigned u = (unsigned)(r >> 40) % 16;
        float v = u < 6 ? special[u] : (float)((int)((r >> 20) % 9) - 4) * 0.25f; /* many exact ties */
        if (nan && (k / isz) % 2 == 1 && (r >> 8) % 23 == 0) v = NAN;
        b->data[k] = v;
    }
    eps_batch_set_hash(b);
}

/* Equal bits, or both NaN. */
static long first_unequal(const float *a, const float *b, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (isnan(a[k]) && isnan(b[k])) continue;
        if (memcmp(&a[k], &b[k], sizeof(float))) return (long)k;
    }
    return -1;
}

static void compare_bits(const eps_graph *g, const eps_batch *b, float w, const char *what)
{
    float *yd, *yf;
    size_t ny = run_both(g, b, w, &yd, &yf);
    long k = first_unequal(yf, yd, ny);
    if (k >= 0) {
        print_error("%s, %dx%d, value %ld: fast %.9g (0x%08x) dense %.9g (0x%08x)\n", what, b->h, b->w, k, yf[k],
                    *(unsigned *)&yf[k], yd[k], *(unsigned *)&yd[k]);
        fail();
    }
    free(yd);
    free(yf);
}

static void test_maxpool_bits(void **state)
{
    (void)state;
    /* the 32x32 / 16x16 / 8x8 of NB101, odd sizes, single rows and columns */
    const int shapes[][2] = {{32, 32}, {16, 16}, {8, 8}, {5, 7}, {1, 9}, {9, 1}, {1, 1}, {2, 2}, {7, 12}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int nan = 0; nan < 2; nan++) {
            eps_batch b;
            make_max_batch(&b, 4, shapes[si][0], shapes[si][1], nan);
            for (int kind = 0; kind < 4; kind++) {
                eps_graph g;
                eps_error err = {0};
                assert_int_equal(eps_graph_init(&g, 3, b.h, b.w, &err), 0);
                const char *what = "";
                int x = 0;
                if (kind == 0) { /* 3x3 stride 1 pad 1 of the input: three groups */
                    x = OK(eps_g_maxpool(&g, 0, 3, 1, 1, &err));
                    what = "max pool 3x3/1/1";
                } else if (kind == 1) {
                    if (b.h < 2 || b.w < 2) {
                        eps_graph_free(&g);
                        continue;
                    }
                    x = OK(eps_g_maxpool(&g, 0, 2, 2, 0, &err));
                    what = "max pool 2x2/2";
                } else if (kind == 2) { /* a pool of a pool (the second one sees the first one's -0 picks) */
                    x = OK(eps_g_maxpool(&g, 0, 3, 1, 1, &err));
                    x = OK(eps_g_maxpool(&g, x, 3, 1, 1, &err));
                    what = "max pool of a max pool";
                } else { /* shapes no vector kernel takes: stride 2 with padding, 3x3 stride 2 */
                    x = OK(eps_g_maxpool(&g, 0, 3, 2, 1, &err));
                    what = "max pool 3x3/2/1";
                }
                (void)x;
                compare_bits(&g, &b, 1.0f, what);
                eps_graph_free(&g);
            }
            eps_batch_free(&b);
        }
}

/* A max pool of a lazily applied BatchNorm and ReLU, and ReLU outputs read
 * by a max pool and an add (materialised in one pass): within the usual
 * tolerance of the dense engine, op by op. */
static void test_maxpool_of_bn_relu(void **state)
{
    (void)state;
    eps_error err = {0};
    eps_graph g;
    assert_int_equal(eps_graph_init(&g, 3, 16, 16, &err), 0);
    int c = OK(eps_g_conv(&g, 0, 8, 3, 1, 1, 0, &err));
    int n = OK(eps_g_bn(&g, c, &err));
    int p0 = OK(eps_g_maxpool(&g, n, 3, 1, 1, &err));
    int r = OK(eps_g_relu(&g, n, &err));
    int p1 = OK(eps_g_maxpool(&g, r, 3, 1, 1, &err));
    int s2[3] = {p0, p1, r};
    int a = OK(eps_g_add(&g, 3, s2, &err));
    int d = OK(eps_g_maxpool(&g, a, 2, 2, 0, &err));
    int f = OK(eps_g_flatten(&g, d, &err));
    OK(eps_g_linear(&g, f, 1, 1, &err));
    eps_batch b;
    make_batch(&b, 4, 16, 16);
    compare_traces(&g, &b, 1e-4f);
    compare_traces(&g, &b, 10.0f);
    eps_batch_free(&b);
    eps_graph_free(&g);
}

/* NB101 cells with two to four max pools, projections of one cell input to
 * different widths (one plane, shared) and concatenations, op by op at the
 * space's weights on a small real-shaped batch. Two images per BatchNorm
 * and ~30 of them in a row amplify float32 rounding (the engines sum in
 * different orders; on main already ~2e-4 relative deep in stack 3), so
 * the tolerance is 2e-3 relative: a wrong pick, border or view is off by
 * far more. */
static void test_nb101_maxpool_op_by_op(void **state)
{
    (void)state;
    const char *cells[][2] = {
        {"[[0,1,1,0,0,0,0],[0,0,1,0,1,0,0],[0,0,0,1,1,0,0],[0,0,0,0,1,0,0],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]]",
         "[\"input\",\"maxpool3x3\",\"maxpool3x3\",\"conv3x3-bn-relu\",\"conv1x1-bn-relu\",\"maxpool3x3\",\"output\"]"},
        {"[[0,1,0,1,0,1,0],[0,0,1,0,0,1,0],[0,0,0,0,1,0,0],[0,0,0,0,1,0,0],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]]",
         "[\"input\",\"conv1x1-bn-relu\",\"maxpool3x3\",\"conv1x1-bn-relu\",\"maxpool3x3\",\"maxpool3x3\",\"output\"]"},
        {"[[0,1,1,0,0,1],[0,0,1,1,0,0],[0,0,0,1,0,0],[0,0,0,0,1,1],[0,0,0,0,0,1],[0,0,0,0,0,0]]",
         "[\"input\",\"maxpool3x3\",\"maxpool3x3\",\"maxpool3x3\",\"maxpool3x3\",\"output\"]"},
        {"[[0,1,1,1,0,0,1],[0,0,0,0,1,0,0],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,1],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]]",
         "[\"input\",\"conv3x3-bn-relu\",\"maxpool3x3\",\"conv1x1-bn-relu\",\"maxpool3x3\",\"maxpool3x3\",\"output\"]"},
        /* make bench's fewest-MACs cell (#361460): max pools of max pools */
        {"[[0,1,0,0,0,0,0],[0,0,1,0,1,0,1],[0,0,0,1,0,0,1],[0,0,0,0,0,0,1],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]]",
         "[\"input\",\"maxpool3x3\",\"maxpool3x3\",\"conv1x1-bn-relu\",\"maxpool3x3\",\"maxpool3x3\",\"output\"]"},
    };
    eps_batch b;
    eps_error err = {0};
    assert_int_equal(eps_batch_load("gaussian:11", 2, &b, &err), 0);
    for (size_t i = 0; i < sizeof cells / sizeof *cells; i++) {
        json_t *m = json_loads(cells[i][0], 0, NULL), *o = json_loads(cells[i][1], 0, NULL);
        assert_non_null(m);
        assert_non_null(o);
        eps_nb101_spec s;
        eps_graph g;
        if (eps_nb101_from_json(m, o, &s, &err)) fail_msg("cell %zu: %s", i, err.msg);
        assert_int_equal(eps_nb101_build(&s, &g, &err), 0);
        compare_traces_tol(&g, &b, 1e-4f, 2e-3);
        compare_traces_tol(&g, &b, 10.0f, 2e-3);
        eps_graph_free(&g);
        json_decref(m);
        json_decref(o);
    }
    eps_batch_free(&b);
}

/* ---- re-running producers in later phases is exact ---- */

/* fast-engine output of g at weight w with the given recompute limit */
static float *fast_out(const eps_graph *g, const eps_batch *b, float w, int max_cost)
{
    eps_error err = {0};
    eps_engine_fast_set_recompute(max_cost);
    float *y = malloc(sizeof(float) * (size_t)b->n * eps_graph_output_size(g));
    eps_run_opts of = {.engine = EPS_ENGINE_FAST};
    int rc = eps_engine_forward(g, b, w, &of, y, &err);
    eps_engine_fast_set_recompute(0);
    assert_int_equal(rc, 0);
    return y;
}

static void assert_same_outputs(const eps_graph *g, const eps_batch *b, float w, const char *what)
{
    size_t n = (size_t)b->n * eps_graph_output_size(g);
    float *y0 = fast_out(g, b, w, 0);
    for (int cost = 1; cost <= 64; cost *= 4) {
        float *y1 = fast_out(g, b, w, cost);
        if (memcmp(y0, y1, sizeof(float) * n)) {
            print_error("%s (w=%g): recompute limit %d changes the output\n", what, w, cost);
            fail();
        }
        free(y1);
    }
    free(y0);
}

static void test_recompute_identical(void **state)
{
    (void)state;
    eps_error err = {0};
    eps_graph g;
    build_all_ops(&g);
    eps_batch b;
    load_crop12(&b);
    const float ws[] = {1.0f, 0.37f, 1e-3f};
    for (size_t k = 0; k < sizeof ws / sizeof *ws; k++) assert_same_outputs(&g, &b, ws[k], "all-ops graph");
    eps_batch_free(&b);
    eps_graph_free(&g);

    assert_int_equal(eps_batch_load("gaussian:5", 8, &b, &err), 0);
    uint64_t keep = rng;
    rng = 77;
    for (int i = 0; i < (eps_t_asan() ? 8 : 40); i++) {
        eps_nb201_cell c;
        eps_nb201_from_index((int)(next_rand() % EPS_NB201_COUNT), &c);
        assert_int_equal(eps_nb201_build(&c, &g, &err), 0);
        char buf[EPS_NB201_STR_MAX];
        eps_nb201_format(&c, buf);
        assert_same_outputs(&g, &b, 1.0f, buf);
        assert_same_outputs(&g, &b, 1e-7f, buf);
        eps_graph_free(&g);
    }
    rng = keep;
    eps_batch_free(&b);
}

/* ---- the per-thread plane pool stays bounded ---- */

static void test_pool_bounded(void **state)
{
    (void)state;
    eps_error err = {0};
    eps_nb201_cell c;
    const char *arch = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_3x3~2|";
    assert_int_equal(eps_nb201_parse(arch, strlen(arch), &c, &err), 0);
    eps_graph g;
    assert_int_equal(eps_nb201_build(&c, &g, &err), 0);
    eps_engine_fast_release_thread_cache();
    size_t peak = 0, most = 0;
    int drops = 0, n_sizes = eps_t_asan() ? 6 : 64;
    for (int k = 0; k < n_sizes && !(drops && k > 40); k++) {
        eps_batch b;
        assert_int_equal(eps_batch_load("ramp", 256 - 2 * k, &b, &err), 0); /* a new plane size each time */
        float *y = malloc(sizeof(float) * (size_t)b.n);
        eps_run_opts of = {.engine = EPS_ENGINE_FAST};
        size_t before = eps_engine_fast_thread_cache_bytes();
        assert_int_equal(eps_engine_forward(&g, &b, 1.0f, &of, y, &err), 0);
        size_t after = eps_engine_fast_thread_cache_bytes();
        if (k == 0) peak = after; /* what one run at batch 256 needs */
        if (after < before) drops++;
        if (after > most) most = after;
        free(y);
        eps_batch_free(&b);
    }
    print_message("one run: %zu MB; most held: %zu MB; trimmed %d times\n", peak >> 20, most >> 20, drops);
    assert_true(most <= ((size_t)256 << 20) + peak);
    if (!eps_t_asan()) assert_true(drops > 0); /* without the bound the pool would pass 500 MB */
    eps_engine_fast_release_thread_cache();
    assert_int_equal((long long)eps_engine_fast_thread_cache_bytes(), 0);
    eps_graph_free(&g);
}

/* One full-size case: batch 256 of the ramp. */
static void test_b256(void **state)
{
    (void)state;
    eps_batch b;
    eps_error err = {0};
    assert_int_equal(eps_batch_load("ramp", 256, &b, &err), 0);
    const char *arch = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|";
    eps_nb201_cell c;
    assert_int_equal(eps_nb201_parse(arch, strlen(arch), &c, &err), 0);
    double d, f;
    const double w[2] = {1e-7, 1.0};
    epsilon_both(&c, &b, w, &d, &f);
    assert_false(isnan(d));
    assert_true(eps_t_close(f, d, 1e-4, 1e-5));
    eps_batch_free(&b);
}

EPS_T_MAIN(NULL, NULL,
        cmocka_unit_test(test_all_ops_op_by_op),
        cmocka_unit_test(test_nb201_op_by_op),
        cmocka_unit_test(test_box3_kernels),
        cmocka_unit_test(test_avgpool_subnormal_exact),
        cmocka_unit_test(test_maxpool_bits),
        cmocka_unit_test(test_maxpool_of_bn_relu),
        cmocka_unit_test(test_nb101_maxpool_op_by_op),
        cmocka_unit_test(test_random_nb201_epsilon),
        cmocka_unit_test(test_b256),
        cmocka_unit_test(test_recompute_identical),
        cmocka_unit_test(test_pool_bounded))
