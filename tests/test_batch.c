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
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3, 16, 16), }", 4 * 768 * 4, 2, "shape"},
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_hostile),
    };
    return cmocka_run_group_tests_name("batch", tests, NULL, NULL);
}
