/* test_nb101.c — NAS-Bench-101 space: validation errors (tests/data/nb101/
 * invalid.json), pruning (prune.json), the dataset's module hashes and
 * parameter counts for the 30 shared records, hash invariance under vertex
 * permutation, builder structure, and goldens from the PyTorch reference
 * (tests/golden/nb101.json) on the dense and fast engines. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epsinas/core/batch.h"
#include "epsinas/engine/engine.h"
#include "epsinas/spaces/nb101.h"
#include "epsinas/core/score.h"
#include "epsinas/spaces/space.h"
#include "util.h"
#include "util_golden.h"

/* ---------------------------------------------------------------- helpers */

static int arch_from(json_t *req, eps_arch *a, eps_error *e)
{
    memset(e, 0, sizeof *e);
    return eps_arch_from_json(req, a, e);
}

static json_t *records(void)
{
    const char *sh = eps_t_shared();
    if (!sh) return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/data/nb101/nb101_30_archs.json", sh);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) fail_msg("cannot load %s: %s", path, je.text);
    return j;
}

static json_t *req_of(const json_t *matrix, const json_t *ops)
{
    return json_pack("{s:s, s:O, s:O}", "space", "nb101", "matrix", matrix, "ops", ops);
}

/* ---------------------------------------------------------------- goldens */

/* ---------------------------------------------------------------- validation */

static void test_invalid(void **state)
{
    (void)state;
    eps_t_rejects("tests/data/nb101/invalid.json", 20, 0);
}

static void test_prune(void **state)
{
    (void)state;
    json_t *d = eps_t_load_json("tests/data/nb101/prune.json");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(d, "cases"), i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *m = json_object_get(c, "matrix"), *ops = json_object_get(c, "ops");
        eps_nb101_spec raw, s;
        eps_error e = {0};
        assert_int_equal(eps_nb101_parse(m, ops, &raw, &e), 0);
        if (json_object_get(c, "edges_before"))
            assert_int_equal(eps_nb101_edges(&raw), json_integer_value(json_object_get(c, "edges_before")));
        if (eps_nb101_prune(&raw, &s, &e)) fail_msg("case '%s': %s", name, e.msg);
        assert_int_equal(eps_nb101_edges(&s), json_integer_value(json_object_get(c, "edges_after")));
        char *canon = eps_nb101_canonical(&s);
        if (strcmp(canon, json_string_value(json_object_get(c, "canonical"))))
            fail_msg("case '%s': canonical %s, want %s", name, canon, json_string_value(json_object_get(c, "canonical")));
        /* the arch of the unpruned request is the arch of its pruned form */
        json_t *r1 = req_of(m, ops);
        json_t *pj = json_loads(canon, 0, NULL);
        json_t *r2 = req_of(json_object_get(pj, "matrix"), json_object_get(pj, "ops"));
        eps_arch a1, a2;
        assert_int_equal(arch_from(r1, &a1, &e), 0);
        assert_int_equal(arch_from(r2, &a2, &e), 0);
        assert_string_equal(a1.canonical, canon);
        assert_string_equal(a2.canonical, canon);
        assert_string_equal(a1.hash, a2.hash);
        assert_int_equal(a1.graph.n, a2.graph.n);
        assert_true(a1.params == a2.params && a1.macs == a2.macs);
        eps_arch_free(&a1);
        eps_arch_free(&a2);
        json_decref(r1);
        json_decref(r2);
        json_decref(pj);
        free(canon);
    }
    json_decref(d);
}

/* ---------------------------------------------------------------- dataset records */

static void test_records_hash_params(void **state)
{
    (void)state;
    json_t *recs = records();
    if (!recs) {
        print_message("SKIP: shared data absent (nb101_30_archs.json)\n");
        skip();
    }
    assert_int_equal(json_array_size(recs), 30);
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r) {
        json_t *req = req_of(json_object_get(r, "matrix"), json_object_get(r, "ops"));
        eps_arch a;
        eps_error e;
        if (arch_from(req, &a, &e)) fail_msg("record %zu: %s", i, e.msg);
        const char *want = json_string_value(json_object_get(r, "hash"));
        if (strcmp(a.hash, want)) fail_msg("record %zu: hash %s, want %s", i, a.hash, want);
        /* the dataset counts a 10-class head: 9 more weight rows + 9 biases */
        long long tp = json_integer_value(json_object_get(r, "trainable_parameters"));
        if (a.params + 9 * 512 + 9 != tp)
            fail_msg("record %zu: params %lld + 4617 != %lld", i, a.params, tp);
        assert_true(a.macs > 0);
        eps_arch_free(&a);
        json_decref(req);
    }
    json_decref(recs);
}

/* Applies vertex permutation perm (new index of old vertex v = perm[v]). */
static void permute(const eps_nb101_spec *s, const int *perm, eps_nb101_spec *o)
{
    memset(o, 0, sizeof *o);
    o->n = s->n;
    for (int i = 0; i < s->n; i++) {
        o->label[perm[i]] = s->label[i];
        for (int j = 0; j < s->n; j++) o->adj[perm[i]][perm[j]] = s->adj[i][j];
    }
}

static int upper(const eps_nb101_spec *s)
{
    for (int i = 0; i < s->n; i++)
        for (int j = 0; j <= i; j++)
            if (s->adj[i][j]) return 0;
    return 1;
}

static int next_perm(int *a, int n)
{
    int i = n - 2;
    while (i >= 0 && a[i] >= a[i + 1]) i--;
    if (i < 0) return 0;
    int j = n - 1;
    while (a[j] <= a[i]) j--;
    int t = a[i]; a[i] = a[j]; a[j] = t;
    for (int l = i + 1, r = n - 1; l < r; l++, r--) t = a[l], a[l] = a[r], a[r] = t;
    return 1;
}

/* Every relabelling of the interior vertices that keeps the matrix
 * upper-triangular is the same dataset cell: same hash. Changing one op
 * changes the hash. */
static void test_isomorphism(void **state)
{
    (void)state;
    json_t *recs = records();
    if (!recs) {
        print_message("SKIP: shared data absent (nb101_30_archs.json)\n");
        skip();
    }
    size_t i;
    json_t *r;
    int checked = 0;
    json_array_foreach(recs, i, r) {
        eps_nb101_spec s;
        eps_error e;
        assert_int_equal(eps_nb101_from_json(json_object_get(r, "matrix"), json_object_get(r, "ops"), &s, &e), 0);
        char h0[33];
        eps_nb101_hash(&s, h0);
        int perm[EPS_NB101_MAX_VERTICES];
        for (int v = 0; v < s.n; v++) perm[v] = v;
        int distinct = 0;
        do {
            eps_nb101_spec p;
            permute(&s, perm, &p);
            if (!upper(&p)) continue;
            char h[33];
            eps_nb101_hash(&p, h);
            assert_string_equal(h, h0);
            if (memcmp(&p, &s, sizeof p)) distinct++;
            checked++;
        } while (next_perm(perm + 1, s.n - 2));
        (void)distinct;
        for (int v = 1; v < s.n - 1; v++) {
            eps_nb101_spec m = s;
            m.label[v] = (signed char)((m.label[v] + 1) % 3);
            char h[33];
            eps_nb101_hash(&m, h);
            assert_string_not_equal(h, h0);
        }
    }
    assert_true(checked > 30);
    json_decref(recs);
}

/* ---------------------------------------------------------------- builder */

static void test_vertex_channels(void **state)
{
    (void)state;
    /* three vertices feed the output: 128 = 43 + 43 + 42; vertex 1 only feeds
     * vertex 2 and takes its width; remainder goes to the first ones */
    eps_nb101_spec s = {.n = 6, .label = {-1, 0, 1, 2, 0, -2}};
    s.adj[0][1] = s.adj[1][2] = s.adj[2][5] = s.adj[0][3] = s.adj[3][5] = s.adj[3][4] = s.adj[4][5] = 1;
    int ch[7];
    eps_nb101_vertex_channels(&s, 64, 128, ch);
    int want[6] = {64, 43, 43, 43, 42, 128};
    assert_memory_equal(ch, want, sizeof want);
    eps_nb101_spec two = {.n = 2, .label = {-1, -2}};
    two.adj[0][1] = 1;
    eps_nb101_vertex_channels(&two, 128, 256, ch);
    assert_int_equal(ch[0], 128);
    assert_int_equal(ch[1], 256);
}

static int count_op(const eps_graph *g, eps_op op)
{
    int k = 0;
    for (int i = 0; i < g->n; i++) k += g->nodes[i].op == op;
    return k;
}

static void test_build_structure(void **state)
{
    (void)state;
    eps_error e;
    /* input -> output only: each cell is one projection (conv1x1-BN-ReLU) */
    eps_nb101_spec two = {.n = 2, .label = {-1, -2}};
    two.adj[0][1] = 1;
    eps_graph g;
    assert_int_equal(eps_nb101_build(&two, &g, &e), 0);
    assert_int_equal(count_op(&g, EPS_OP_CONV2D), 1 + 9);
    assert_int_equal(count_op(&g, EPS_OP_MAXPOOL), 2);
    assert_int_equal(count_op(&g, EPS_OP_CONCAT), 0);
    assert_int_equal(eps_graph_output_size(&g), 1);
    const eps_node *o = &g.nodes[g.output];
    assert_int_equal(o->op, EPS_OP_LINEAR);
    assert_int_equal(g.nodes[o->in[0]].c, 512);
    /* stem 3*9*128 + 256; projections 128*128.. per cell + BN; head 513 */
    long long p = 3 * 9 * 128 + 256 + 3 * (128 * 128 + 256) + (128 * 256 + 512) + 2 * (256 * 256 + 512) +
                  (256 * 512 + 1024) + 2 * (512 * 512 + 1024) + 513;
    assert_int_equal(eps_graph_params(&g), p);
    eps_graph_free(&g);
    /* the paper's NB101 weights are the space's defaults (spec §2) */
    const eps_space *sp = eps_space_find("nb101");
    assert_non_null(sp);
    assert_true(sp->w1 == 1e-4 && sp->w2 == 10 && sp->batch_kind == EPS_BATCH_IMAGES);

    /* a split into 3 + input->output projection: concat + add per cell,
     * truncation where a vertex feeds a narrower one */
    eps_nb101_spec s = {.n = 5, .label = {-1, 0, 1, 2, -2}};
    s.adj[0][1] = s.adj[1][2] = s.adj[1][3] = s.adj[1][4] = s.adj[2][4] = s.adj[3][4] = s.adj[0][4] = 1;
    assert_int_equal(eps_nb101_build(&s, &g, &e), 0);
    assert_int_equal(count_op(&g, EPS_OP_CONCAT), 9);
    /* widths per stack (v1, v2, v3): 43,43,42 / 86,85,85 / 171,171,170;
     * v2 and v3 take v1's output, truncated when narrower: 1 + 2 + 1 slices
     * per cell of stacks 1..3 */
    assert_int_equal(count_op(&g, EPS_OP_SLICE), 3 * (1 + 2 + 1));
    for (int i = 0; i < g.n; i++)
        if (g.nodes[i].op == EPS_OP_CONCAT) {
            int c = g.nodes[i].c;
            assert_true(c == 128 || c == 256 || c == 512);
        }
    assert_int_equal(eps_graph_output_size(&g), 1);
    eps_graph_free(&g);
}

/* Dense NB101 forwards cost seconds each (128-512 channels): the dense engine
 * runs every sixth case (all with EPS_NB101_ALL_DENSE=1), the fast
 * engine all of them; under ASan both run a handful. */
static json_t *request_of_case(const json_t *c)
{
    return req_of(json_object_get(c, "matrix"), json_object_get(c, "ops"));
}

static void goldens(eps_engine_kind engine)
{
    size_t stride = eps_t_asan() ? 10 : engine == EPS_ENGINE_DENSE && !getenv("EPS_NB101_ALL_DENSE") ? 6 : 1;
    eps_golden_run_requests("tests/golden/nb101.json", 20, stride, engine, request_of_case);
}

static void test_goldens(void **state) { goldens(*(const eps_engine_kind *)*state); }

EPS_T_MAIN(NULL, NULL,
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_prune),
        cmocka_unit_test(test_records_hash_params),
        cmocka_unit_test(test_isomorphism),
        cmocka_unit_test(test_vertex_channels),
        cmocka_unit_test(test_build_structure),
        EPS_GOLDEN_TESTS(test_goldens))
