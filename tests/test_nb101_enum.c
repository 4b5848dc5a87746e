/* test_nb101_enum.c — the NAS-Bench-101 enumeration: the published count
 * (423,624 distinct hashes), sub-counts derived independently by
 * tests/reference/nb101_count.py (a Python brute force of generate_graphs),
 * validity and order of every cell, the 30 official hashes and the NASLib
 * subset's hashes all present, and the `enumerate` command's contract. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epsinas/spaces/nb101_enum.h"
#include "epsinas/spaces/space.h"
#include "util.h"

static eps_nb101_cell *all_cells;
static long n_all;
static char (*sorted_hashes)[33];

static int cmp_hash(const void *a, const void *b) { return strcmp(a, b); }

/* The full enumeration, once for the whole group (about 10 s at -O3). Under
 * ASan it is skipped and the full-space tests say so. */
static int setup(void **state)
{
    (void)state;
    if (eps_t_asan()) return 0;
    eps_error e = {0};
    if (eps_nb101_enumerate(EPS_NB101_MAX_VERTICES, 0, &all_cells, &n_all, &e)) return -1;
    sorted_hashes = malloc(sizeof *sorted_hashes * (size_t)n_all);
    if (!sorted_hashes) return -1;
    for (long i = 0; i < n_all; i++) memcpy(sorted_hashes[i], all_cells[i].hash, 33);
    qsort(sorted_hashes, (size_t)n_all, 33, cmp_hash);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(all_cells);
    free(sorted_hashes);
    return 0;
}

static void need_full(void)
{
    if (!all_cells) {
        print_message("SKIP: full NB101 enumeration not run under ASan (the sub-count test covers <= 5 vertices)\n");
        skip();
    }
}

/* Cumulative distinct hashes for 2..k vertices, from
 * `/usr/bin/python3 tests/reference/nb101_count.py 6` (hashlib md5, numpy-
 * free re-statement of generate_graphs): 1, 7, 91, 2532, 64542. */
static void test_subcounts(void **state)
{
    (void)state;
    static const long want[] = {0, 0, 1, 7, 91, 2532, 64542};
    int top = eps_t_asan() ? 5 : 6;
    for (int k = 2; k <= top; k++) {
        eps_nb101_cell *c;
        long n;
        eps_error e = {0};
        assert_int_equal(eps_nb101_enumerate(k, 0, &c, &n, &e), 0);
        if (n != want[k]) fail_msg("%d vertices: %ld cells, want %ld", k, n, want[k]);
        free(c);
    }
    eps_nb101_cell *c;
    long n;
    eps_error e = {0};
    assert_int_equal(eps_nb101_enumerate(1, 0, &c, &n, &e), EPS_EINVAL);
    assert_int_equal(eps_nb101_enumerate(8, 0, &c, &n, &e), EPS_EINVAL);
    /* a limit gives the same prefix */
    eps_nb101_cell *p;
    long np;
    assert_int_equal(eps_nb101_enumerate(5, 100, &p, &np, &e), 0);
    assert_int_equal(np, 100);
    assert_int_equal(eps_nb101_enumerate(5, 0, &c, &n, &e), 0);
    for (long i = 0; i < np; i++) assert_string_equal(p[i].hash, c[i].hash);
    free(p);
    free(c);
}

static void test_full_count_distinct_valid(void **state)
{
    (void)state;
    need_full();
    assert_int_equal(n_all, EPS_NB101_COUNT);
    for (long i = 1; i < n_all; i++)
        if (!strcmp(sorted_hashes[i], sorted_hashes[i - 1])) fail_msg("hash %s twice", sorted_hashes[i]);
    int prev_n = 2;
    for (long i = 0; i < n_all; i++) {
        const eps_nb101_spec *s = &all_cells[i].spec;
        if (s->n < prev_n) fail_msg("cell %ld: %d vertices after %d (order is by vertex count)", i, s->n, prev_n);
        prev_n = s->n;
        /* valid as is: pruning changes nothing, <= 9 edges, hash recomputes */
        eps_nb101_spec pr;
        eps_error e = {0};
        if (eps_nb101_prune(s, &pr, &e)) fail_msg("cell %ld: %s", i, e.msg);
        if (pr.n != s->n) fail_msg("cell %ld: pruning drops a vertex", i);
        if (s->label[0] != EPS_NB101_INPUT || s->label[s->n - 1] != EPS_NB101_OUTPUT) fail_msg("cell %ld: labels", i);
        if (i % 97 == 0) {
            char h[33];
            eps_nb101_hash(s, h);
            assert_string_equal(h, all_cells[i].hash);
        }
    }
}

static int has_hash(const char *h) { return bsearch(h, sorted_hashes, (size_t)n_all, 33, cmp_hash) != NULL; }

/* Hash (after pruning, as the service computes it) of a matrix/ops pair. */
static void hash_of(const json_t *matrix, const json_t *ops, char out[33], const char *what, size_t i)
{
    json_t *req = json_pack("{s:s, s:O, s:O}", "space", "nb101", "matrix", matrix, "ops", ops);
    eps_arch a;
    eps_error e = {0};
    if (eps_arch_from_json(req, &a, &e)) fail_msg("%s %zu: %s", what, i, e.msg);
    memcpy(out, a.hash, 33);
    eps_arch_free(&a);
    json_decref(req);
}

/* The records of a file in ../shared/data/nb101 (skips without it, or
 * without the full enumeration). */
static json_t *shared_records(const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "data/nb101/%s", name);
    need_full(); /* before loading: a skip leaves nothing allocated */
    return eps_t_shared_json(rel, name);
}

static void test_official_hashes_present(void **state)
{
    (void)state;
    json_t *recs = shared_records("nb101_30_archs.json");
    assert_int_equal(json_array_size(recs), 30);
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r) {
        const char *want = json_string_value(json_object_get(r, "hash"));
        char h[33];
        hash_of(json_object_get(r, "matrix"), json_object_get(r, "ops"), h, "record", i);
        assert_string_equal(h, want);
        if (!has_hash(want)) fail_msg("official hash %s (record %zu) not enumerated", want, i);
    }
    json_decref(recs);
}

static void test_naslib_subset_present(void **state)
{
    (void)state;
    json_t *recs = shared_records("naslib_zc_subset_dev.json");
    assert_true(json_array_size(recs) > 0);
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r) {
        char h[33];
        hash_of(json_object_get(r, "matrix"), json_object_get(r, "ops"), h, "naslib cell", i);
        if (!has_hash(h)) fail_msg("naslib cell %zu (hash %s) not enumerated", i, h);
    }
    json_decref(recs);
}

/* The command: request lines for nb201 (all 15,625, each accepted by the
 * space), csv header and errors. nb101's full listing is exercised through
 * the library above (the CLI adds only formatting, tested on nb201). */
static void test_cli(void **state)
{
    (void)state;
    char cmd[1024];
    int code;
    snprintf(cmd, sizeof cmd, "%s enumerate --space nb201 --format requests", eps_t_bin());
    char *o = eps_t_run(cmd, &code);
    assert_int_equal(code, 0);
    long lines = 0;
    for (char *p = o, *nl; (nl = strchr(p, '\n')); p = nl + 1, lines++) {
        *nl = 0;
        if (lines % 1000 == 0) {
            json_error_t je;
            json_t *req = json_loads(p, 0, &je);
            assert_non_null(req);
            eps_arch a;
            eps_error e = {0};
            if (eps_arch_from_json(req, &a, &e)) fail_msg("line %ld: %s", lines, e.msg);
            eps_arch_free(&a);
            json_decref(req);
        }
    }
    free(o);
    assert_int_equal(lines, 15625);
    snprintf(cmd, sizeof cmd, "%s enumerate --space nb201 | head -2", eps_t_bin());
    o = eps_t_run(cmd, &code);
    assert_non_null(strstr(o, "index,hash,arch\n0,"));
    assert_non_null(strstr(o, ",|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n"));
    free(o);
    static const char *bad[] = {"enumerate", "enumerate --space nlp", "enumerate --space nb101 --format xml",
                                "enumerate --space nb201 extra", "enumerate --space nb201 --out /nonexistent/dir/x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(cmd, sizeof cmd, "%s %s 2>&1", eps_t_bin(), bad[i]);
        o = eps_t_run(cmd, &code);
        if (code != 2) fail_msg("'%s' exited %d, want 2 (%s)", bad[i], code, o);
        assert_non_null(strstr(o, "epsinas enumerate: "));
        free(o);
    }
}

EPS_T_MAIN(setup, teardown,
        cmocka_unit_test(test_subcounts),
        cmocka_unit_test(test_full_count_distinct_valid),
        cmocka_unit_test(test_official_hashes_present),
        cmocka_unit_test(test_naslib_subset_present),
        cmocka_unit_test(test_cli))
