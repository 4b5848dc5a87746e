/* test_gspace.c — the generic layer-graph space: validation errors and limits
 * (tests/data/gspace/invalid.json + generated oversize graphs), the canonical
 * form (tests/data/gspace/canonical.json), the batch-shape error, an NB201
 * network written as a graph against eps_nb201_build, and goldens from the
 * PyTorch reference (tests/golden/graph.json) on the dense and fast engines. */
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
#include "epsinas/spaces/gspace.h"
#include "epsinas/spaces/nb201.h"
#include "epsinas/core/score.h"
#include "epsinas/spaces/space.h"
#include "util.h"
#include "util_golden.h"

/* ---------------------------------------------------------------- goldens */

/* ---------------------------------------------------------------- validation */

static void test_invalid(void **state)
{
    (void)state;
    eps_t_rejects("tests/data/gspace/invalid.json", 40, 0);
}

/* A chain input -> relu -> relu ... of n nodes ending in gap + linear. */
static json_t *relu_chain(int n)
{
    json_t *nodes = json_array();
    char prev[32] = "input", name[32];
    for (int i = 0; i < n - 2; i++) {
        snprintf(name, sizeof name, "r%d", i);
        json_array_append_new(nodes, json_pack("{s:s,s:s,s:[s]}", "name", name, "op", "relu", "inputs", prev));
        snprintf(prev, sizeof prev, "%s", name);
    }
    json_array_append_new(nodes, json_pack("{s:s,s:s,s:[s]}", "name", "gap", "op", "global_avgpool", "inputs", prev));
    json_array_append_new(nodes, json_pack("{s:s,s:s,s:[s],s:i}", "name", "fc", "op", "linear", "inputs", "gap",
                                           "out_features", 1));
    return json_pack("{s:s,s:o}", "space", "graph", "nodes", nodes);
}

static void test_node_limit(void **state)
{
    (void)state;
    eps_arch a;
    eps_error e = {0};
    json_t *ok = relu_chain(EPS_GSPACE_MAX_NODES);
    assert_int_equal(eps_arch_from_json(ok, &a, &e), 0);
    assert_int_equal(a.graph.n, EPS_GSPACE_MAX_NODES + 1);
    eps_arch_free(&a);
    json_t *big = relu_chain(EPS_GSPACE_MAX_NODES + 1);
    assert_int_equal(eps_arch_from_json(big, &a, &e), EPS_ELIMIT);
    assert_string_equal(e.field, "nodes");
    assert_non_null(strstr(e.msg, "513 nodes; the limit is 512"));
    json_decref(ok);
    json_decref(big);
    /* fan-in exactly at the limit is accepted */
    json_t *fan = relu_chain(3);
    json_t *add = json_pack("{s:s,s:s,s:[]}", "name", "sum", "op", "add", "inputs");
    for (int i = 0; i < EPS_GSPACE_MAX_FANIN; i++) json_array_append_new(json_object_get(add, "inputs"), json_string("r0"));
    json_array_insert_new(json_object_get(fan, "nodes"), 1, add);
    json_object_set_new(json_array_get(json_object_get(fan, "nodes"), 2), "inputs", json_pack("[s]", "sum"));
    assert_int_equal(eps_arch_from_json(fan, &a, &e), 0);
    eps_arch_free(&a);
    json_decref(fan);
}

static void test_canonical(void **state)
{
    (void)state;
    json_t *d = eps_t_load_json("tests/data/gspace/canonical.json");
    json_t *groups = json_object_get(d, "groups");
    char hashes[16][33];
    size_t gi;
    json_t *grp;
    assert_true(json_array_size(groups) <= 16);
    json_array_foreach(groups, gi, grp) {
        const char *want = json_string_value(json_object_get(grp, "canonical"));
        size_t ri;
        json_t *req;
        json_array_foreach(json_object_get(grp, "requests"), ri, req) {
            eps_arch a;
            eps_error e = {0};
            if (eps_arch_from_json(req, &a, &e))
                fail_msg("group '%s' request %zu: %s", json_string_value(json_object_get(grp, "name")), ri, e.msg);
            if (want && strcmp(a.canonical, want))
                fail_msg("group %zu request %zu:\n got  %s\n want %s", gi, ri, a.canonical, want);
            assert_int_equal(strlen(a.hash), 32);
            if (ri == 0) memcpy(hashes[gi], a.hash, 33);
            else assert_string_equal(a.hash, hashes[gi]);
            /* the canonical text is itself a request with the same canonical text */
            json_t *back = json_loads(a.canonical, 0, NULL);
            assert_non_null(back);
            json_object_set_new(back, "space", json_string("graph"));
            eps_arch b;
            assert_int_equal(eps_arch_from_json(back, &b, &e), 0);
            assert_string_equal(b.canonical, a.canonical);
            eps_arch_free(&b);
            json_decref(back);
            eps_arch_free(&a);
        }
        for (size_t k = 0; k < gi; k++) assert_string_not_equal(hashes[k], hashes[gi]);
    }
    json_decref(d);
}

/* The declared input must match the batch at score time: the error names
 * the "input" field and both shapes. */
static void test_batch_mismatch(void **state)
{
    (void)state;
    json_t *req = json_pack("{s:s, s:{s:i,s:i,s:i}, s:[{s:s,s:s,s:[s]},{s:s,s:s,s:[s],s:i}]}", "space", "graph", "input",
                            "channels", 3, "height", 16, "width", 16, "nodes", "name", "g", "op", "global_avgpool",
                            "inputs", "input", "name", "fc", "op", "linear", "inputs", "g", "out_features", 1);
    eps_arch a;
    eps_error e = {0};
    assert_int_equal(eps_arch_from_json(req, &a, &e), 0);
    assert_int_equal(a.params, 3 + 1);
    eps_batch b;
    assert_int_equal(eps_batch_load("ramp", 8, &b, &e), 0);
    eps_score s;
    for (int eng = 0; eng < 2; eng++) {
        eps_run_opts o = {.engine = eng ? EPS_ENGINE_DENSE : EPS_ENGINE_FAST};
        assert_int_equal(eps_arch_score(&a, &b, NULL, &o, &s, &e), EPS_EINVAL);
        assert_string_equal(e.field, "input");
        assert_non_null(strstr(e.msg, "the graph's input is 3x16x16"));
        assert_non_null(strstr(e.msg, "batch 'ramp' has 3x32x32 images"));
    }
    eps_batch_free(&b);
    eps_arch_free(&a);
    json_decref(req);
}

/* ---------------------------------------------------------------- NB201 as a graph */

typedef struct { json_t *nodes; int k; } gb;

static const char *gnode(gb *g, const char *op, const char *in, json_t *extra)
{
    char name[32];
    snprintf(name, sizeof name, "n%d", g->k++);
    json_t *n = extra ? extra : json_object();
    json_object_set_new(n, "name", json_string(name));
    json_object_set_new(n, "op", json_string(op));
    if (in) json_object_set_new(n, "inputs", json_pack("[s]", in));
    json_array_append_new(g->nodes, n);
    return json_string_value(json_object_get(n, "name"));
}

static const char *g_conv(gb *g, const char *x, int c, int k, int stride)
{
    return gnode(g, "conv2d", x,
                 json_pack("{s:i,s:i,s:i,s:i,s:b}", "out_channels", c, "kernel", k, "stride", stride, "padding", k / 2,
                           "bias", 0));
}

static const char *g_rcb(gb *g, const char *x, int c, int k, int stride)
{
    const char *r = gnode(g, "relu", x, NULL);
    return gnode(g, "batchnorm", g_conv(g, r, c, k, stride), NULL);
}

static const char *g_add(gb *g, int n, const char **xs)
{
    json_t *ins = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(ins, json_string(xs[i]));
    return gnode(g, "add", NULL, json_pack("{s:o}", "inputs", ins));
}

/* Test helper: the NB201 network (spec §3) of a cell, as a graph request,
 * written from the spec in the same node order as a straightforward builder. */
static json_t *nb201_as_graph(const eps_nb201_cell *cell)
{
    gb g = {json_array(), 0};
    const char *x = gnode(&g, "batchnorm", g_conv(&g, "input", 16, 3, 1), NULL);
    const int widths[3] = {16, 32, 64};
    for (int st = 0; st < 3; st++) {
        int c = widths[st];
        if (st > 0) {
            const char *a = g_rcb(&g, x, c, 3, 2);
            const char *b = g_rcb(&g, a, c, 3, 1);
            const char *s = gnode(&g, "avgpool", x,
                                  json_pack("{s:i,s:i,s:i,s:b}", "kernel", 2, "stride", 2, "padding", 0,
                                            "count_include_pad", 0));
            s = g_conv(&g, s, c, 1, 1);
            const char *two[2] = {s, b};
            x = g_add(&g, 2, two);
        }
        for (int k = 0; k < 5; k++) {
            const char *node[4] = {x};
            for (int dst = 1, e = 0; dst <= 3; dst++) {
                const char *terms[3];
                for (int src = 0; src < dst; src++, e++) {
                    const char *in = node[src];
                    switch (cell->op[e]) {
                    case EPS_NB201_SKIP: terms[src] = in; break;
                    case EPS_NB201_CONV1X1: terms[src] = g_rcb(&g, in, c, 1, 1); break;
                    case EPS_NB201_CONV3X3: terms[src] = g_rcb(&g, in, c, 3, 1); break;
                    case EPS_NB201_AVGPOOL:
                        terms[src] = gnode(&g, "avgpool", in,
                                           json_pack("{s:i,s:i,s:i,s:b}", "kernel", 3, "stride", 1, "padding", 1,
                                                     "count_include_pad", 0));
                        break;
                    default: terms[src] = gnode(&g, "zero", in, NULL); break;
                    }
                }
                node[dst] = dst == 1 ? terms[0] : g_add(&g, dst, terms);
            }
            x = node[3];
        }
    }
    x = gnode(&g, "relu", gnode(&g, "batchnorm", x, NULL), NULL);
    x = gnode(&g, "global_avgpool", x, NULL);
    gnode(&g, "linear", x, json_pack("{s:i,s:b}", "out_features", 1, "bias", 1));
    return json_pack("{s:s,s:o}", "space", "graph", "nodes", g.nodes);
}

static void test_nb201_as_graph(void **state)
{
    (void)state;
    const char *archs[] = {
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
        "|none~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|",
        "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    };
    eps_batch b;
    eps_error e = {0};
    assert_int_equal(eps_batch_load("ramp", eps_t_asan() ? 8 : 32, &b, &e), 0);
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) {
        eps_nb201_cell cell;
        assert_int_equal(eps_nb201_parse(archs[i], strlen(archs[i]), &cell, &e), 0);
        json_t *greq = nb201_as_graph(&cell);
        json_t *nreq = json_pack("{s:s,s:s}", "space", "nb201", "arch", archs[i]);
        eps_arch ga, na;
        if (eps_arch_from_json(greq, &ga, &e)) fail_msg("%s as graph: %s", archs[i], e.msg);
        assert_int_equal(eps_arch_from_json(nreq, &na, &e), 0);
        assert_int_equal(ga.params, na.params);
        assert_int_equal(ga.macs, na.macs);
        /* the generic space's default weights are NB201's */
        assert_true(ga.space->w1 == na.space->w1 && ga.space->w2 == na.space->w2);
        for (int eng = 0; eng < 2; eng++) {
            eps_run_opts o = {.engine = eng ? EPS_ENGINE_DENSE : EPS_ENGINE_FAST};
            eps_score sg, sn;
            if (eps_arch_score(&ga, &b, NULL, &o, &sg, &e)) fail_msg("graph: %s", e.msg);
            if (eps_arch_score(&na, &b, NULL, &o, &sn, &e)) fail_msg("nb201: %s", e.msg);
            /* bit-identical: same IR, same engine */
            if (!(isnan(sg.epsilon) ? isnan(sn.epsilon) : sg.epsilon == sn.epsilon))
                fail_msg("%s (%s): graph epsilon %.17g, nb201 %.17g", archs[i], eps_engine_name(o.engine), sg.epsilon,
                         sn.epsilon);
            for (int k = 0; k < 2; k++) {
                assert_memory_equal(&sg.ymin[k], &sn.ymin[k], sizeof(float));
                assert_memory_equal(&sg.ymax[k], &sn.ymax[k], sizeof(float));
            }
        }
        eps_arch_free(&ga);
        eps_arch_free(&na);
        json_decref(greq);
        json_decref(nreq);
    }
    eps_batch_free(&b);
}

static json_t *request_of_case(const json_t *c) { return json_incref(json_object_get(c, "request")); }

static void goldens(eps_engine_kind engine)
{
    eps_golden_run_requests("tests/golden/graph.json", 10, eps_t_asan() ? 5 : 1, engine, request_of_case);
}

static void test_goldens(void **state) { goldens(*(const eps_engine_kind *)*state); }

EPS_T_MAIN(NULL, NULL,
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_node_limit),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_batch_mismatch),
        cmocka_unit_test(test_nb201_as_graph),
        EPS_GOLDEN_TESTS(test_goldens))
