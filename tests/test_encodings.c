/* test_encodings.c — the NAS tools' encodings (issue 13 items 4-5):
 * NB201 string -> op_indices -> nni -> string gives the same cell, hash,
 * canonical form and params on all 15,625 cells, and the same epsilon
 * (computed separately per spelling) on a fixed sample; NASLib NB101
 * tuples give the dataset's hash and the matrix/ops canonical form on all
 * 267 rows of the shared NASLib subset; the encodings a response carries
 * parse back to the same cell; the bad-encoding table
 * (tests/data/encodings/invalid.json) with exact messages; and the CLI
 * flags and sweep lines through the real binary. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "epsinas/core/batch.h"
#include "epsinas/spaces/nb101.h"
#include "epsinas/spaces/nb201.h"
#include "epsinas/spaces/space.h"
#include "util.h"

/* Parses req (after the service's unknown-field check); fails the test on error. */
static void arch_ok(json_t *req, eps_arch *a)
{
    eps_error e = {0};
    if (eps_request_check_fields(req, eps_request_common_fields, &e) < 0 || eps_arch_from_json(req, a, &e) < 0) {
        char *t = json_dumps(req, JSON_COMPACT);
        fail_msg("%s: %s: %s", t, e.field, e.msg);
    }
    json_decref(req);
}

/* The same cell: hash, canonical text and params (as written) agree. */
static void same_arch(const eps_arch *a, const eps_arch *b, const char *what)
{
    if (strcmp(a->hash, b->hash) || strcmp(a->canonical, b->canonical) || a->params != b->params)
        fail_msg("%s: %s / %s (params %lld) vs %s / %s (params %lld)", what, a->hash, a->canonical, a->params, b->hash,
                 b->canonical, b->params);
}

static json_t *req_with(const char *space, const char *field, json_t *v)
{
    return json_pack("{s:s, s:o}", "space", space, field, v);
}

/* ------------------------------------------------------------------ NB201 */

/* Every cell: string -> op_indices -> nni -> string, and the response's
 * encodings of the canonical cell back to the same arch. */
static void test_nb201_roundtrip_all(void **state)
{
    (void)state;
    for (int i = 0; i < EPS_NB201_COUNT; i++) {
        eps_nb201_cell cell, c2, c3;
        char s[EPS_NB201_STR_MAX], back[EPS_NB201_STR_MAX];
        eps_nb201_from_index(i, &cell);
        eps_nb201_format(&cell, s);
        eps_arch a1, a2, a3;
        arch_ok(json_pack("{s:s, s:s}", "space", "nb201", "arch", s), &a1);

        json_t *ti = eps_nb201_op_indices_json(&cell);
        assert_int_equal(eps_nb201_from_op_indices(ti, &c2, NULL), 0);
        arch_ok(req_with("nb201", "op_indices", ti), &a2);
        same_arch(&a1, &a2, "op_indices");

        json_t *nni = eps_nb201_nni_json(&c2);
        assert_int_equal(eps_nb201_from_nni(nni, &c3, NULL), 0);
        arch_ok(req_with("nb201", "nni", nni), &a3);
        same_arch(&a1, &a3, "nni");
        eps_nb201_format(&c3, back);
        if (strcmp(s, back)) fail_msg("cell %d: %s came back as %s", i, s, back);

        /* the encodings of the canonical cell name it in every form */
        json_t *enc = eps_arch_encodings(&a1);
        assert_non_null(enc);
        assert_string_equal(json_string_value(json_object_get(enc, "arch")), a1.canonical);
        eps_arch b2, b3;
        arch_ok(req_with("nb201", "op_indices", json_incref(json_object_get(enc, "op_indices"))), &b2);
        arch_ok(req_with("nb201", "nni", json_incref(json_object_get(enc, "nni"))), &b3);
        assert_string_equal(b2.canonical, a1.canonical);
        assert_string_equal(b3.canonical, a1.canonical);
        assert_string_equal(b2.hash, a1.hash);
        assert_string_equal(b3.hash, a1.hash);
        json_decref(enc);
        eps_arch_free(&b2);
        eps_arch_free(&b3);
        eps_arch_free(&a1);
        eps_arch_free(&a2);
        eps_arch_free(&a3);
    }
}

/* The mapping itself, on cells whose NASLib/NNI spelling is known by hand. */
static void test_nb201_known(void **state)
{
    (void)state;
    static const struct {
        const char *arch, *op_indices, *nni;
    } known[] = {
        {"|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
         "[2,2,0,4,2,0]",
         "{\"0_1\":\"conv_3x3\",\"0_2\":\"conv_3x3\",\"0_3\":\"skip_connect\",\"1_2\":\"avg_pool_3x3\",\"1_3\":\"conv_3x3\","
         "\"2_3\":\"skip_connect\"}"},
        /* each edge alone: t0..t5 = (1,2),(1,3),(1,4),(2,3),(2,4),(3,4) */
        {"|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|none~2|", "[3,1,1,1,1,1]",
         "{\"0_1\":\"conv_1x1\",\"0_2\":\"none\",\"0_3\":\"none\",\"1_2\":\"none\",\"1_3\":\"none\",\"2_3\":\"none\"}"},
        {"|none~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|", "[1,0,1,1,1,1]",
         "{\"0_1\":\"none\",\"0_2\":\"skip_connect\",\"0_3\":\"none\",\"1_2\":\"none\",\"1_3\":\"none\",\"2_3\":\"none\"}"},
        {"|none~0|+|none~0|none~1|+|avg_pool_3x3~0|none~1|none~2|", "[1,1,4,1,1,1]",
         "{\"0_1\":\"none\",\"0_2\":\"none\",\"0_3\":\"avg_pool_3x3\",\"1_2\":\"none\",\"1_3\":\"none\",\"2_3\":\"none\"}"},
        {"|none~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|none~2|", "[1,1,1,2,1,1]",
         "{\"0_1\":\"none\",\"0_2\":\"none\",\"0_3\":\"none\",\"1_2\":\"conv_3x3\",\"1_3\":\"none\",\"2_3\":\"none\"}"},
        {"|none~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|", "[1,1,1,1,0,1]",
         "{\"0_1\":\"none\",\"0_2\":\"none\",\"0_3\":\"none\",\"1_2\":\"none\",\"1_3\":\"skip_connect\",\"2_3\":\"none\"}"},
        {"|none~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|", "[1,1,1,1,1,3]",
         "{\"0_1\":\"none\",\"0_2\":\"none\",\"0_3\":\"none\",\"1_2\":\"none\",\"1_3\":\"none\",\"2_3\":\"conv_1x1\"}"},
    };
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        eps_nb201_cell c;
        assert_int_equal(eps_nb201_parse(known[k].arch, strlen(known[k].arch), &c, NULL), 0);
        json_t *tj = eps_nb201_op_indices_json(&c), *nj = eps_nb201_nni_json(&c);
        char *t = json_dumps(tj, JSON_COMPACT), *n = json_dumps(nj, JSON_COMPACT);
        assert_string_equal(t, known[k].op_indices);
        assert_string_equal(n, known[k].nni);
        free(t);
        free(n);
        json_decref(tj);
        json_decref(nj);
    }
}

/* Epsilon is computed separately for each spelling (no cache here) and is
 * the same, NaN and reason included. */
static void test_nb201_epsilon_sample(void **state)
{
    (void)state;
    static const int sample[] = {0, 1, 6, 777, 3125, 5000, 7777, 9999, 12345, 15624};
    eps_batch b;
    eps_error e = {0};
    if (eps_batch_load("ramp", 8, &b, &e) < 0) fail_msg("ramp: %s", e.msg);
    int nans = 0;
    for (size_t k = 0; k < sizeof sample / sizeof sample[0]; k++) {
        eps_nb201_cell c, c2;
        char s[EPS_NB201_STR_MAX];
        eps_nb201_from_index(sample[k], &c);
        eps_nb201_format(&c, s);
        json_t *ti = eps_nb201_op_indices_json(&c);
        assert_int_equal(eps_nb201_from_op_indices(ti, &c2, NULL), 0);
        json_t *reqs[3] = {json_pack("{s:s, s:s}", "space", "nb201", "arch", s), req_with("nb201", "op_indices", ti),
                           req_with("nb201", "nni", eps_nb201_nni_json(&c2))};
        eps_score sc[3];
        for (int r = 0; r < 3; r++) {
            eps_arch a;
            arch_ok(reqs[r], &a);
            eps_run_opts ro = {.engine = EPS_ENGINE_FAST};
            if (eps_arch_score(&a, &b, NULL, &ro, &sc[r], &e) < 0) fail_msg("%s: %s", s, e.msg);
            eps_arch_free(&a);
        }
        for (int r = 1; r < 3; r++) {
            if (!eps_t_close(sc[r].epsilon, sc[0].epsilon, 0, 0))
                fail_msg("cell %d spelling %d: epsilon %.17g vs %.17g", sample[k], r, sc[r].epsilon, sc[0].epsilon);
            if (isnan(sc[0].epsilon)) assert_string_equal(sc[r].nan_reason, sc[0].nan_reason);
        }
        nans += isnan(sc[0].epsilon);
    }
    assert_true(nans > 0 && nans < (int)(sizeof sample / sizeof sample[0])); /* both kinds are in the sample */
    eps_batch_free(&b);
}

/* ------------------------------------------------------------------ NB101 */

/* "(0, 1, ...)" as the dataset stores it -> a JSON array. */
static json_t *tuple_json(const char *t)
{
    char *s = strdup(t);
    assert_non_null(s);
    char *open = strchr(s, '('), *close = strrchr(s, ')');
    assert_non_null(open);
    assert_non_null(close);
    *open = '[', *close = ']';
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(j);
    return j;
}

static void test_nb101_naslib_dev(void **state)
{
    (void)state;
    json_t *rows = eps_t_shared_json("data/nb101/naslib_zc_subset_dev.json",
                                     "the NASLib NB101 subset (../shared) is absent: cannot check its tuples");
    assert_int_equal(json_array_size(rows), 267);
    int pruned_to[EPS_NB101_MAX_VERTICES + 1] = {0};
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        json_t *t = tuple_json(json_string_value(json_object_get(row, "naslib_tuple")));
        assert_int_equal(json_array_size(t), 56);
        eps_arch a, b, c;
        arch_ok(req_with("nb101", "naslib", t), &a);
        arch_ok(json_pack("{s:s, s:O, s:O}", "space", "nb101", "matrix", json_object_get(row, "matrix"), "ops",
                          json_object_get(row, "ops")),
                &b);
        same_arch(&a, &b, "naslib vs matrix/ops");
        assert_string_equal(a.hash, json_string_value(json_object_get(row, "nb101_hash")));
        /* the answered tuple (of the pruned spec) parses back to the same cell */
        json_t *enc = eps_arch_encodings(&a);
        assert_non_null(enc);
        assert_string_equal(json_string_value(json_object_get(enc, "hash")), a.hash);
        size_t n = json_array_size(json_object_get(enc, "ops"));
        assert_int_equal(json_array_size(json_object_get(enc, "naslib")), n * n + n);
        pruned_to[n]++;
        arch_ok(req_with("nb101", "naslib", json_incref(json_object_get(enc, "naslib"))), &c);
        same_arch(&a, &c, "answered naslib");
        json_decref(enc);
        eps_arch_free(&a);
        eps_arch_free(&b);
        eps_arch_free(&c);
    }
    /* what nb101.h says of NASLib's form: always 7 vertices, dead ones kept */
    print_message("NASLib rows pruned to n vertices: 2:%d 3:%d 4:%d 5:%d 6:%d 7:%d\n", pruned_to[2], pruned_to[3],
                  pruned_to[4], pruned_to[5], pruned_to[6], pruned_to[7]);
    assert_int_equal(pruned_to[7], 0);
    json_decref(rows);
}

/* A smaller tuple (n*n + n) and the 7-vertex tuple of the same cell with
 * isolated vertices are one cell. */
static void test_nb101_tuple_sizes(void **state)
{
    (void)state;
    eps_arch a, b, c, d;
    arch_ok(json_pack("{s:s, s:[iiiiii]}", "space", "nb101", "naslib", 0, 1, 0, 0, 0, 1), &a);
    arch_ok(json_loads("{\"space\":\"nb101\",\"matrix\":[[0,1],[0,0]],\"ops\":[\"input\",\"output\"]}", 0, NULL), &b);
    same_arch(&a, &b, "2-vertex tuple");
    /* input -> conv3x3 -> output, with 4 isolated vertices before the output */
    json_t *t = json_array();
    for (int k = 0; k < 49; k++) json_array_append_new(t, json_integer(k == 1 || k == 13 ? 1 : 0));
    const int ops[7] = {0, 4, 2, 3, 4, 2, 1};
    for (int k = 0; k < 7; k++) json_array_append_new(t, json_integer(ops[k]));
    arch_ok(req_with("nb101", "naslib", t), &c);
    arch_ok(json_loads("{\"space\":\"nb101\",\"naslib\":[0,1,0, 0,0,1, 0,0,0, 0,4,1]}", 0, NULL), &d);
    same_arch(&c, &d, "padded tuple");
    json_t *enc = eps_arch_encodings(&c);
    char *s = json_dumps(json_object_get(enc, "naslib"), JSON_COMPACT);
    assert_string_equal(s, "[0,1,0,0,0,1,0,0,0,0,4,1]");
    free(s);
    json_decref(enc);
    eps_arch_free(&a);
    eps_arch_free(&b);
    eps_arch_free(&c);
    eps_arch_free(&d);
}

/* ---------------------------------------------------------------- errors */

static void test_invalid_table(void **state)
{
    (void)state;
    eps_t_rejects("tests/data/encodings/invalid.json", 30, EPS_T_COMMON_FIELDS | EPS_T_EXACT);
}

/* ------------------------------------------------------------------- CLI */

static void test_cli(void **state)
{
    (void)state;
    char cmd[2048];
    int code;
    /* a Python tuple, a JSON list and the arch string: one cell */
    const char *spell[] = {
        "--op-indices '(2, 2, 0, 4, 2, 0)'",
        "--nni '{\"0_1\":\"conv_3x3\",\"0_2\":\"conv_3x3\",\"0_3\":\"skip_connect\",\"1_2\":\"avg_pool_3x3\","
        "\"1_3\":\"conv_3x3\",\"2_3\":\"skip_connect\"}'",
        "--arch '|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'",
    };
    double eps[3];
    for (int k = 0; k < 3; k++) {
        snprintf(cmd, sizeof cmd, "%s score --space nb201 --batch-size 8 --json %s", eps_t_bin(), spell[k]);
        char *out = eps_t_run(cmd, &code);
        assert_int_equal(code, 0);
        json_t *j = json_loads(out, 0, NULL);
        if (!j) fail_msg("not JSON: %s", out);
        assert_string_equal(json_string_value(json_object_get(j, "hash")), "714932e0ef01c72a5aef3c5d37c8c2ca");
        json_t *enc = json_object_get(j, "encodings");
        char *t = json_dumps(json_object_get(enc, "op_indices"), JSON_COMPACT);
        assert_string_equal(t, "[2,2,0,4,2,0]");
        free(t);
        eps[k] = json_number_value(json_object_get(j, "epsilon"));
        json_decref(j);
        free(out);
    }
    assert_true(eps[0] == eps[1] && eps[1] == eps[2]);
    /* NASLib's printed tuple for nb101 */
    snprintf(cmd, sizeof cmd, "%s score --space nb101 --batch-size 2 --json --naslib '(0, 1, 0, 0, 0, 1)'", eps_t_bin());
    char *out = eps_t_run(cmd, &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "\"naslib\":[0,1,0,0,0,1]"));
    free(out);
    /* bad input: exit 2, one line on stderr naming the field and position */
    static const char *const bad[][2] = {
        {"--space nb201 --op-indices '[2,2,7,4,2,0]'",
         "epsinas score: op_indices: op_indices[2]: op code 7 is not 0..4 (0=skip_connect, 1=none, 2=nor_conv_3x3, "
         "3=nor_conv_1x1, 4=avg_pool_3x3)\n"},
        {"--space nb201 --op-indices '[2,2'", NULL},
        {"--space nb201 --arch '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|' --nni '{}'",
         "epsinas score: arch,nni: both 'arch' and 'nni' are given; a request holds exactly one of arch, op_indices, "
         "nni\n"},
        {"--space nb101 --naslib '[0,1,0,0,0,9]'",
         "epsinas score: naslib: naslib[5]: op code 9 is not 0..4 (0=input, 1=output, 2=maxpool3x3, 3=conv1x1-bn-relu, "
         "4=conv3x3-bn-relu)\n"},
    };
    char errf[] = "/tmp/epsinas-test-enc-XXXXXX";
    int fd = mkstemp(errf);
    assert_true(fd >= 0);
    close(fd);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(cmd, sizeof cmd, "%s score %s 2>'%s'", eps_t_bin(), bad[k][0], errf);
        free(eps_t_run(cmd, &code));
        assert_int_equal(code, 2);
        char *e = eps_t_read_file(errf);
        assert_non_null(e);
        assert_non_null(strchr(e, '\n'));
        assert_int_equal(strchr(e, '\n')[1], 0); /* one line */
        if (bad[k][1]) assert_string_equal(e, bad[k][1]);
        else assert_non_null(strstr(e, "--op-indices"));
        free(e);
    }
    unlink(errf);
}

/* sweep --archs: a string, a NASLib list, a Python tuple, an nni object and
 * an op_indices request of one cell are one computation with one epsilon. */
static void test_sweep_lines(void **state)
{
    (void)state;
    char dir[64];
    assert_int_equal(eps_t_tmpdir(dir, sizeof dir, "enc"), 0);
    char path[512], cmd[2048];
    snprintf(path, sizeof path, "%s/a.txt", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|\n"
          "[2,2,0,4,2,0]\n"
          "(2, 2, 0, 4, 2, 0)\n"
          "{\"nni\":{\"0_1\":\"conv_3x3\",\"0_2\":\"conv_3x3\",\"0_3\":\"skip_connect\",\"1_2\":\"avg_pool_3x3\","
          "\"1_3\":\"conv_3x3\",\"2_3\":\"skip_connect\"}}\n"
          "{\"space\":\"nb201\",\"op_indices\":[2,2,0,4,2,0]}\n",
          f);
    fclose(f);
    int code;
    snprintf(cmd, sizeof cmd, "cd '%s' && %s sweep --space nb201 --archs a.txt --out a.csv --threads 1 --batch-size 8 2>&1",
             dir, eps_t_bin());
    char *out = eps_t_run(cmd, &code);
    if (code != 0) fail_msg("sweep: %s", out);
    free(out);
    snprintf(path, sizeof path, "%s/a.csv", dir);
    char *csv = eps_t_read_file(path);
    assert_non_null(csv);
    /* index,arch,epsilon,...: five rows, one epsilon */
    char first[64] = "";
    int rows = 0;
    for (char *line = strchr(csv, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        char *p = line + 1, *q = p;
        /* the epsilon is the field after the (possibly quoted) arch */
        q = strchr(q, ',') + 1;
        if (*q == '"') {
            q++;
            while (!(q[0] == '"' && q[1] != '"')) q += q[0] == '"' ? 2 : 1;
            q++;
        } else {
            q = strchr(q, ',');
        }
        assert_int_equal(*q, ',');
        char eps[64];
        snprintf(eps, sizeof eps, "%.*s", (int)(strchr(q + 1, ',') - q - 1), q + 1);
        if (!rows) snprintf(first, sizeof first, "%s", eps);
        else assert_string_equal(eps, first);
        rows++;
    }
    assert_int_equal(rows, 5);
    assert_true(strlen(first) > 0 && strcmp(first, "nan"));
    free(csv);
    /* a bad list line names the line and the position */
    snprintf(path, sizeof path, "%s/b.txt", dir);
    f = fopen(path, "w");
    fputs("[2,2,0,4,2,0]\n[2,2,0,4,2,5]\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd '%s' && %s sweep --space nb201 --archs b.txt --out b.csv --threads 1 2>&1 >/dev/null",
             dir, eps_t_bin());
    out = eps_t_run(cmd, &code);
    assert_int_equal(code, 2);
    assert_non_null(strstr(out, "b.txt:2: op_indices[5]: op code 5 is not 0..4"));
    free(out);
    assert_int_equal(eps_t_rmtree(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nb201_known),
        cmocka_unit_test(test_nb201_roundtrip_all),
        cmocka_unit_test(test_nb201_epsilon_sample),
        cmocka_unit_test(test_nb101_naslib_dev),
        cmocka_unit_test(test_nb101_tuple_sizes),
        cmocka_unit_test(test_invalid_table),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_sweep_lines),
    };
    return cmocka_run_group_tests_name("encodings", tests, NULL, NULL);
}
