/* test_batch.c — hostile batch files (issue 17 defect 5): headers that lie
 * about their size must give a clear error, never an overflow or a read
 * past the file. Each case writes a small file, loads it through
 * eps_batch_load and checks the error names the batch and says why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "epsinas/core/batch.h"

/* Writes a .npy v1 file: the header dict padded to 16 bytes, then `data`
 * bytes of 0x01. Returns the path (static buffer). */
static const char *write_npy(const char *dict, size_t data)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/eps-test-batch-%d.npy", (int)getpid());
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    size_t dl = strlen(dict), total = 10 + dl + 1;
    size_t pad = (16 - total % 16) % 16, hlen = dl + pad + 1;
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc((int)(hlen & 0xff), f);
    fputc((int)(hlen >> 8), f);
    fputs(dict, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    for (size_t i = 0; i < data; i++) fputc(1, f);
    fclose(f);
    return path;
}

typedef struct npy_case {
    const char *dict;
    size_t data;       /* bytes after the header */
    int n;             /* batch size asked for */
    const char *want;  /* substring of the error; NULL = loads */
} npy_case;

static void test_npy_hostile(void **state)
{
    (void)state;
    const npy_case cases[] = {
        /* the probe's two files: 2^52 and 2^54 images claimed, no data */
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4503599627370496, 3, 32, 32), }", 0, 2, "truncated"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (18014398509481984, 32, 32, 3), }", 0, 2, "truncated"},
        /* the largest count a long holds */
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 3, 32, 32), }", 16, 2, "truncated"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-4, 3, 32, 32), }", 0, 2, "holds -4 images"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3, 32, 32), }", 3 * 3072 * 4, 2, "truncated"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (4, 32, 32, 3), }", 4 * 3072 - 1, 4, "truncated"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (4, 3, 32, 32), }", 4 * 3072 * 8, 2, "dtype"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3, 16, 16), }", 4 * 768 * 4, 2, "holds 3x16x16 images; the network needs 3x32x32"},
        /* well-formed files load */
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 32, 32), }", 2 * 3072 * 4, 2, NULL},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (3, 32, 32, 3), }", 3 * 3072, 2, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = write_npy(cases[i].dict, cases[i].data);
        char spec[96];
        snprintf(spec, sizeof spec, "npy:%s", path);
        eps_batch b;
        eps_error e = {0};
        int rc = eps_batch_load(spec, cases[i].n, &b, &e);
        if (!cases[i].want) {
            if (rc) fail_msg("case %zu: %s", i, e.msg);
            assert_int_equal(b.n, cases[i].n);
            eps_batch_free(&b);
        } else {
            if (rc != EPS_EINVAL) fail_msg("case %zu: rc %d, expected an error containing '%s'", i, rc, cases[i].want);
            if (!strstr(e.msg, cases[i].want)) fail_msg("case %zu: '%s' lacks '%s'", i, e.msg, cases[i].want);
            assert_string_equal(e.field, "batch");
        }
        unlink(path);
    }
}

/* ---- synthetic generators: deterministic, prefix-stable, documented stats ---- */

#include <math.h>

/* Per-plane statistics over an image batch: worst |mean|, worst |std - 1|,
 * mean lag-1 correlation of horizontal neighbours, share of equal
 * horizontal neighbours, min and max value. */
typedef struct { double mean_dev, std_dev, lag1, equal, lo, hi; } plane_stats;

static plane_stats stats_of(const eps_batch *b)
{
    plane_stats st = {0, 0, 0, 0, INFINITY, -INFINITY};
    const int hw = b->h * b->w, planes = b->n * b->c;
    long eq = 0, pairs = 0;
    for (int p = 0; p < planes; p++) {
        const float *x = b->data + (size_t)p * hw;
        double m = 0, v = 0, c = 0;
        for (int k = 0; k < hw; k++) m += x[k];
        m /= hw;
        for (int k = 0; k < hw; k++) v += (x[k] - m) * (x[k] - m);
        for (int y = 0; y < b->h; y++)
            for (int i = 0; i + 1 < b->w; i++) {
                double a = x[y * b->w + i], d = x[y * b->w + i + 1];
                c += (a - m) * (d - m);
                eq += a == d;
                pairs++;
            }
        for (int k = 0; k < hw; k++) st.lo = fmin(st.lo, x[k]), st.hi = fmax(st.hi, x[k]);
        double sd = sqrt(v / hw);
        st.mean_dev = fmax(st.mean_dev, fabs(m));
        st.std_dev = fmax(st.std_dev, fabs(sd - 1));
        st.lag1 += v > 0 ? c / (b->h * (b->w - 1)) / (v / hw) / planes : 0;
    }
    st.equal = (double)eq / (double)pairs;
    return st;
}

typedef struct gen_case {
    const char *spec, *other_seed; /* other_seed: the same generator with another seed, or NULL */
    int prefix_stable;
    double lag1_lo, lag1_hi;       /* documented smoothness: lag-1 correlation range */
    int standardised;              /* every plane mean 0, std 1 */
    double equal_lo;               /* at least this share of equal neighbours */
    double lo, hi;                 /* value range */
} gen_case;

/* CIFAR-10-normalised [0, 1]: (0 - 125.3/255) / (66.7/255) .. (1 - 113.9/255) / (62.1/255) */
#define CIFAR_LO (-125.3 / 63.0 - 0.01)
#define CIFAR_HI ((255 - 113.9) / 62.1 + 0.01)

static void test_generators(void **state)
{
    (void)state;
    const gen_case cases[] = {
        {"ramp", NULL, 0, 0, 0, 0, 1.0, 0, 1}, /* constant planes: no variance */
        {"gaussian:7", "gaussian:8", 1, -0.1, 0.1, 0, 0, -7, 7},
        {"smooth:7", "smooth:8", 1, 0.8, 1.0, 1, 0, -7, 7},
        {"pink:7", "pink:8", 1, 0.5, 0.95, 1, 0, -7, 7},
        {"leaves:7", "leaves:8", 1, 0.3, 1.0, 0, 0.5, CIFAR_LO, CIFAR_HI},
        {"levels:7", "levels:8", 1, 0, 0, 0, 1.0, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const gen_case *g = &cases[i];
        eps_batch a, b, c, v;
        eps_error e = {0};
        if (eps_batch_load(g->spec, 16, &a, &e)) fail_msg("%s: %s", g->spec, e.msg);
        assert_int_equal(eps_batch_load(g->spec, 16, &b, &e), 0);
        /* deterministic: the same bytes and hash from the same spec */
        assert_int_equal(a.n, 16), assert_int_equal(a.c, 3), assert_int_equal(a.h, 32), assert_int_equal(a.w, 32);
        assert_memory_equal(a.data, b.data, sizeof(float) * 16 * 3072);
        assert_string_equal(a.hash, b.hash);
        assert_non_null(eps_batch_describe(g->spec));
        assert_int_equal(eps_batch_prefix_stable(&a), g->prefix_stable);
        /* the spec at 8 is the same batch however it is made */
        assert_int_equal(eps_batch_load(g->spec, 8, &c, &e), 0);
        int owned;
        assert_int_equal(eps_batch_at_size(&a, 8, &v, &owned, &e), 0);
        assert_int_equal(owned, !g->prefix_stable);
        assert_string_equal(v.hash, c.hash);
        assert_memory_equal(v.data, c.data, sizeof(float) * 8 * 3072);
        if (g->prefix_stable) assert_memory_equal(a.data, c.data, sizeof(float) * 8 * 3072);
        if (owned) eps_batch_free(&v);
        /* another seed, another batch */
        if (g->other_seed) {
            eps_batch o;
            assert_int_equal(eps_batch_load(g->other_seed, 16, &o, &e), 0);
            assert_string_not_equal(o.hash, a.hash);
            eps_batch_free(&o);
        }
        plane_stats st = stats_of(&a);
        printf("    %-12s lag1 %.3f equal %.3f mean %.2g std-1 %.2g range [%.3f, %.3f]\n", g->spec, st.lag1, st.equal,
               st.mean_dev, st.std_dev, st.lo, st.hi);
        if (!(st.lag1 >= g->lag1_lo && st.lag1 <= g->lag1_hi))
            fail_msg("%s: lag-1 correlation %.3f outside [%.2f, %.2f]", g->spec, st.lag1, g->lag1_lo, g->lag1_hi);
        if (g->standardised && (st.mean_dev > 1e-6 || st.std_dev > 1e-5))
            fail_msg("%s: a plane is not standardised (|mean| %.3g, |std - 1| %.3g)", g->spec, st.mean_dev, st.std_dev);
        if (st.equal < g->equal_lo) fail_msg("%s: %.3f equal neighbours, expected >= %.2f", g->spec, st.equal, g->equal_lo);
        if (st.lo < g->lo || st.hi > g->hi) fail_msg("%s: values [%g, %g] outside [%g, %g]", g->spec, st.lo, st.hi, g->lo, g->hi);
        eps_batch_free(&a);
        eps_batch_free(&b);
        eps_batch_free(&c);
    }
    /* ramp's image i of 16 is i/16 (the paper's ramp at the batch size) */
    eps_batch r;
    assert_int_equal(eps_batch_load("ramp", 16, &r, NULL), 0);
    assert_true(r.data[5 * 3072 + 100] == 5.0f / 16.0f);
    eps_batch_free(&r);
    /* bad seeds are refused, naming the batch */
    const char *bad[] = {"smooth:", "pink:-1", "leaves:x", "levels:18446744073709551616", "pink:1 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eps_error e = {0};
        eps_batch x;
        if (eps_batch_load(bad[i], 4, &x, &e) != EPS_EINVAL) fail_msg("'%s' was accepted", bad[i]);
        assert_string_equal(e.field, "batch");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_hostile),
        cmocka_unit_test(test_generators),
    };
    return cmocka_run_group_tests_name("batch", tests, NULL, NULL);
}
