/* test_cachekey.c — the score cache key covers every request field that can
 * change a result (issue 17, defect 1: an NLP request with another
 * vocab_size was answered from the cache with the first one's params).
 * For every space, a base request and one change per result-affecting field
 * (each space's own fields from eps_space.fields, and the common weights,
 * batch, batch_size, engine) must give another key; spellings of the same
 * request (defaults written out, id, x- extensions) the same key. A field
 * added to a space without a case here fails test_every_field_walked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "epsinas/service/cache.h"
#include "epsinas/engine/engine.h"
#include "epsinas/spaces/space.h"

#define NB201_A "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
#define NB201_B "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
#define NNI_A "{\"0_1\":\"conv_3x3\",\"0_2\":\"conv_3x3\",\"0_3\":\"skip_connect\",\"1_2\":\"avg_pool_3x3\",\"1_3\":\"conv_3x3\",\"2_3\":\"skip_connect\"}"
#define NNI_B "{\"0_1\":\"conv_1x1\",\"0_2\":\"conv_3x3\",\"0_3\":\"skip_connect\",\"1_2\":\"avg_pool_3x3\",\"1_3\":\"conv_3x3\",\"2_3\":\"skip_connect\"}"
#define RNN "{\"f\":{\"op\":\"linear\",\"input\":[\"x\",\"h_prev_0\"]},\"h_new_0\":{\"op\":\"activation_tanh\",\"input\":[\"f\"]}}"
#define GNODES(k, out)                                                                                              \
    "[{\"name\":\"c\",\"op\":\"conv2d\",\"inputs\":[\"input\"],\"out_channels\":4,\"kernel\":" k ",\"padding\":1},"  \
    "{\"name\":\"g\",\"op\":\"global_avgpool\",\"inputs\":[\"c\"]},"                                               \
    "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"g\"],\"out_features\":1},"                                  \
    "{\"name\":\"fc2\",\"op\":\"linear\",\"inputs\":[\"g\"],\"out_features\":1}],\"output\":\"" out "\""

/* Base request per space, and per field a changed value (JSON text). */
typedef struct {
    const char *field, *value;
} change;

typedef struct {
    const char *space, *base;
    change changes[8];
} space_case;

static const space_case cases[] = {
    {"nb201",
     "{\"space\":\"nb201\",\"arch\":\"" NB201_A "\"}",
     /* cifar100 is the CIFAR-10 network on the same batch: only the dataset
      * in the canonical form keeps their cached scores apart */
     {{"arch", "\"" NB201_B "\""}, {"dataset", "\"cifar100\""}, {"dataset", "\"imagenet16-120\""}}},
    {"nb101",
     "{\"space\":\"nb101\",\"matrix\":[[0,1,1],[0,0,1],[0,0,0]],\"ops\":[\"input\",\"conv3x3-bn-relu\",\"output\"]}",
     {{"matrix", "[[0,1,0],[0,0,1],[0,0,0]]"}, {"ops", "[\"input\",\"maxpool3x3\",\"output\"]"}}},
    {"graph",
     "{\"space\":\"graph\",\"input\":{\"channels\":3,\"height\":32,\"width\":32},\"nodes\":" GNODES("3", "fc") "}",
     {{"input", "{\"channels\":3,\"height\":16,\"width\":32}"},
      {"nodes", "[{\"name\":\"c\",\"op\":\"conv2d\",\"inputs\":[\"input\"],\"out_channels\":4,\"kernel\":1},"
                "{\"name\":\"g\",\"op\":\"global_avgpool\",\"inputs\":[\"c\"]},"
                "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"g\"],\"out_features\":1},"
                "{\"name\":\"fc2\",\"op\":\"linear\",\"inputs\":[\"g\"],\"out_features\":1}]"},
      {"output", "\"fc2\""}}},
    {"nlp", "{\"space\":\"nlp\",\"recipe\":" RNN "}",
     {{"vocab_size", "1000000"},
      {"recipe", "{\"f\":{\"op\":\"linear\",\"input\":[\"h_prev_0\",\"x\"]},"
                 "\"h_new_0\":{\"op\":\"activation_tanh\",\"input\":[\"f\"]}}"}}},
};

/* Another encoding of the cell replaces the base's (a request holds one):
 * a changed cell in that encoding gives another key. */
typedef struct {
    const char *space, *field, *value, *replaces;
} encoding_change;

static const encoding_change encoding_changes[] = {
    {"nb201", "op_indices", "[3,2,0,4,2,0]", "arch"}, /* NB201_B */
    {"nb201", "nni", NNI_B, "arch"},
    {"nb101", "naslib", "[0,1,1, 0,0,1, 0,0,0, 0,2,1]", "matrix"},
};

/* Changes of the common fields, applied to every space's base request. */
static const change common_changes[] = {
    {"weights", "[1e-6, 2]"},
    {"batch", "\"other\""},
    {"batch_size", "16"},
    {"engine", "\"dense\""},
};

/* Fields that select nothing about the result. */
static const char *const not_result_fields[] = {"space", "id", NULL};

/* The key the service builds (eps_http.c start_item) for a request, with
 * batch names mapped to made-up content hashes. 0 or a negative code. */
static int key_of(const json_t *req, eps_cache_key *k, eps_error *err)
{
    eps_arch a;
    int rc = eps_arch_from_json(req, &a, err);
    if (rc < 0) return rc;
    double w[2] = {a.space->w1, a.space->w2};
    const json_t *jw = json_object_get(req, "weights");
    if (jw) w[0] = json_number_value(json_array_get(jw, 0)), w[1] = json_number_value(json_array_get(jw, 1));
    const char *batch = json_string_value(json_object_get(req, "batch"));
    const char *bhash = batch && !strcmp(batch, "other") ? "00000000000000b2" : "00000000000000b1";
    int bs = json_object_get(req, "batch_size") ? (int)json_integer_value(json_object_get(req, "batch_size")) : 256;
    eps_engine_kind e = EPS_ENGINE_FAST;
    const json_t *je = json_object_get(req, "engine");
    if (je) assert_int_equal(eps_engine_parse(json_string_value(je), &e), 0);
    rc = eps_cache_key_for_arch(k, &a, w, bhash, bs, eps_engine_name(e));
    eps_arch_free(&a);
    return rc;
}

static json_t *with_replacing(const char *base, const char *field, const char *value, const char *replaces)
{
    json_t *req = json_loads(base, 0, NULL);
    assert_non_null(req);
    if (replaces) {
        json_object_del(req, replaces);
        if (!strcmp(replaces, "matrix")) json_object_del(req, "ops"); /* nb101: matrix + ops is one encoding */
    }
    if (field) {
        json_error_t je;
        json_t *v = json_loads(value, JSON_DECODE_ANY, &je);
        if (!v) fail_msg("bad test value for %s: %s", field, je.text);
        json_object_set_new(req, field, v);
    }
    return req;
}

static json_t *with(const char *base, const char *field, const char *value)
{
    return with_replacing(base, field, value, NULL);
}

static void key_text_replacing(const char *base, const char *field, const char *value, const char *replaces,
                               char **out)
{
    json_t *req = with_replacing(base, field, value, replaces);
    eps_cache_key k;
    eps_error e = {0};
    if (key_of(req, &k, &e) < 0) fail_msg("%s with %s=%s: %s (%s)", base, field ? field : "-", value, e.msg, e.field);
    json_decref(req);
    *out = strdup(k.text);
    eps_cache_key_free(&k);
}

static void key_text(const char *base, const char *field, const char *value, char **out)
{
    key_text_replacing(base, field, value, NULL, out);
}

/* Every change gives another key (and the change is still a valid request). */
static void test_every_change_changes_key(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *base;
        key_text(cases[c].base, NULL, NULL, &base);
        for (int i = 0; i < 8 && cases[c].changes[i].field; i++) {
            char *k;
            key_text(cases[c].base, cases[c].changes[i].field, cases[c].changes[i].value, &k);
            if (!strcmp(k, base)) fail_msg("%s: changing '%s' keeps the cache key", cases[c].space, cases[c].changes[i].field);
            free(k);
        }
        for (size_t i = 0; i < sizeof encoding_changes / sizeof encoding_changes[0]; i++) {
            if (strcmp(encoding_changes[i].space, cases[c].space)) continue;
            char *k;
            key_text_replacing(cases[c].base, encoding_changes[i].field, encoding_changes[i].value,
                               encoding_changes[i].replaces, &k);
            if (!strcmp(k, base)) fail_msg("%s: changing '%s' keeps the cache key", cases[c].space, encoding_changes[i].field);
            free(k);
        }
        for (size_t i = 0; i < sizeof common_changes / sizeof common_changes[0]; i++) {
            char *k;
            key_text(cases[c].base, common_changes[i].field, common_changes[i].value, &k);
            if (!strcmp(k, base)) fail_msg("%s: changing '%s' keeps the cache key", cases[c].space, common_changes[i].field);
            free(k);
        }
        free(base);
    }
}

static int has_case(const space_case *c, const char *field)
{
    for (int i = 0; i < 8 && c->changes[i].field; i++)
        if (!strcmp(c->changes[i].field, field)) return 1;
    for (size_t i = 0; i < sizeof common_changes / sizeof common_changes[0]; i++)
        if (!strcmp(common_changes[i].field, field)) return 1;
    for (size_t i = 0; i < sizeof encoding_changes / sizeof encoding_changes[0]; i++)
        if (!strcmp(encoding_changes[i].space, c->space) && !strcmp(encoding_changes[i].field, field)) return 1;
    for (int i = 0; not_result_fields[i]; i++)
        if (!strcmp(not_result_fields[i], field)) return 1;
    return 0;
}

/* Every field a space accepts, and every common field, is walked above. */
static void test_every_field_walked(void **state)
{
    (void)state;
    const eps_space *const *all = eps_space_all();
    for (int s = 0; all[s]; s++) {
        const space_case *c = NULL;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            if (!strcmp(cases[i].space, all[s]->name)) c = &cases[i];
        if (!c) fail_msg("space '%s' has no case in test_cachekey.c", all[s]->name);
        assert_non_null(all[s]->fields);
        for (int f = 0; all[s]->fields[f]; f++)
            if (!has_case(c, all[s]->fields[f]))
                fail_msg("space '%s': field '%s' is accepted but no test changes it", all[s]->name, all[s]->fields[f]);
        for (int f = 0; eps_request_common_fields[f]; f++)
            if (!has_case(c, eps_request_common_fields[f]))
                fail_msg("common field '%s' is accepted but no test changes it", eps_request_common_fields[f]);
    }
}

/* Spellings of one request share a key: defaults written out, an id, an
 * x- extension; and the defect's exact case. */
static void test_same_request_same_key(void **state)
{
    (void)state;
    const char *same[][3] = {
        {"{\"space\":\"nlp\",\"recipe\":" RNN "}", "vocab_size", "33278"},
        {"{\"space\":\"nlp\",\"recipe\":" RNN "}", "id", "\"abc\""},
        {"{\"space\":\"nb201\",\"arch\":\"" NB201_A "\"}", "x-trace", "{\"a\":1}"},
        {"{\"space\":\"nb201\",\"arch\":\"" NB201_A "\"}", "weights", "[1e-7, 1]"},
        {"{\"space\":\"nb201\",\"arch\":\"" NB201_A "\"}", "engine", "\"fast\""},
        {"{\"space\":\"nb201\",\"arch\":\"" NB201_A "\"}", "dataset", "\"cifar10\""}, /* the default */
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        char *a, *b;
        key_text(same[i][0], NULL, NULL, &a);
        key_text(same[i][0], same[i][1], same[i][2], &b);
        if (strcmp(a, b)) fail_msg("%s: '%s' = %s changes the key", same[i][0], same[i][1], same[i][2]);
        free(a);
        free(b);
    }
    /* vocab_size 33278 vs 1000000: different networks, keys and hashes */
    json_t *r1 = with("{\"space\":\"nlp\",\"recipe\":" RNN "}", "vocab_size", "33278");
    json_t *r2 = with("{\"space\":\"nlp\",\"recipe\":" RNN "}", "vocab_size", "1000000");
    eps_arch a1, a2;
    eps_error e;
    assert_int_equal(eps_arch_from_json(r1, &a1, &e), 0);
    assert_int_equal(eps_arch_from_json(r2, &a2, &e), 0);
    assert_int_equal(a1.params, 15066078);
    assert_int_equal(a2.params, 402721600);
    assert_string_not_equal(a1.canonical, a2.canonical);
    assert_string_not_equal(a1.hash, a2.hash);
    eps_arch_free(&a1);
    eps_arch_free(&a2);
    json_decref(r1);
    json_decref(r2);
}

/* The three NB201 datasets: three keys, pairwise different, and one key
 * per dataset whatever the encoding of the cell. */
static void test_datasets_keys(void **state)
{
    (void)state;
    const char *ds[] = {"\"cifar10\"", "\"cifar100\"", "\"imagenet16-120\""};
    char *k[3];
    for (int i = 0; i < 3; i++) {
        key_text("{\"space\":\"nb201\",\"arch\":\"" NB201_A "\"}", "dataset", ds[i], &k[i]);
        char *alt;
        key_text("{\"space\":\"nb201\",\"nni\":" NNI_A "}", "dataset", ds[i], &alt);
        assert_string_equal(k[i], alt);
        free(alt);
    }
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (!strcmp(k[i], k[j])) fail_msg("datasets %s and %s share a cache key", ds[i], ds[j]);
    for (int i = 0; i < 3; i++) free(k[i]);
}

/* Every encoding of one cell (and a spelling with other dead edges) has
 * one key: the key derives from the canonical parsed form. */
static void test_encodings_share_key(void **state)
{
    (void)state;
    const char *spellings[][2] = {
        {"{\"space\":\"nb201\",\"arch\":\"" NB201_A "\"}", "{\"space\":\"nb201\",\"op_indices\":[2,2,0,4,2,0]}"},
        {"{\"space\":\"nb201\",\"arch\":\"" NB201_A "\"}", "{\"space\":\"nb201\",\"nni\":" NNI_A "}"},
        /* node 2 dead either way (its only way out is none): same canonical cell */
        {"{\"space\":\"nb201\",\"op_indices\":[2,2,0,4,2,1]}", "{\"space\":\"nb201\",\"op_indices\":[2,3,0,0,2,1]}"},
        {"{\"space\":\"nb101\",\"matrix\":[[0,1,1],[0,0,1],[0,0,0]],\"ops\":[\"input\",\"conv3x3-bn-relu\",\"output\"]}",
         "{\"space\":\"nb101\",\"naslib\":[0,1,1, 0,0,1, 0,0,0, 0,4,1]}"},
        /* unpruned: a dead vertex in the 7-vertex form */
        {"{\"space\":\"nb101\",\"naslib\":[0,1,1, 0,0,1, 0,0,0, 0,4,1]}",
         "{\"space\":\"nb101\",\"naslib\":[0,1,1,1, 0,0,0,0, 0,0,0,1, 0,0,0,0, 0,2,4,1]}"},
    };
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        char *a, *b;
        key_text(spellings[i][0], NULL, NULL, &a);
        key_text(spellings[i][1], NULL, NULL, &b);
        if (strcmp(a, b)) fail_msg("%s and %s have different keys:\n%s\n%s", spellings[i][0], spellings[i][1], a, b);
        free(a);
        free(b);
    }
}

/* Unknown fields are refused naming the field; x- extensions pass. */
static void test_unknown_fields(void **state)
{
    (void)state;
    eps_error e;
    json_t *r = with("{\"space\":\"nb201\",\"arch\":\"" NB201_A "\"}", "weight", "[1e-6, 2]");
    assert_int_equal(eps_request_check_fields(r, eps_request_common_fields, &e), EPS_EINVAL);
    assert_string_equal(e.field, "weight");
    assert_non_null(strstr(e.msg, "unknown field 'weight'"));
    json_decref(r);
    /* a field of another space is unknown here */
    r = with("{\"space\":\"nb201\",\"arch\":\"" NB201_A "\"}", "vocab_size", "10");
    assert_int_equal(eps_request_check_fields(r, eps_request_common_fields, &e), EPS_EINVAL);
    assert_string_equal(e.field, "vocab_size");
    json_decref(r);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        r = with(cases[c].base, "x-client", "\"t\"");
        for (int i = 0; i < 8 && cases[c].changes[i].field; i++) {
            json_t *v = json_loads(cases[c].changes[i].value, JSON_DECODE_ANY, NULL);
            json_object_set_new(r, cases[c].changes[i].field, v);
        }
        for (int i = 0; eps_request_common_fields[i]; i++)
            if (!json_object_get(r, eps_request_common_fields[i]))
                json_object_set_new(r, eps_request_common_fields[i], json_null());
        assert_int_equal(eps_request_check_fields(r, eps_request_common_fields, &e), 0);
        json_decref(r);
    }
    /* a long multi-byte name is cut at a character boundary */
    r = with("{\"space\":\"nlp\",\"recipe\":" RNN "}", NULL, NULL);
    json_object_set_new(r, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                           "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9x",
                        json_true());
    assert_int_equal(eps_request_check_fields(r, eps_request_common_fields, &e), EPS_EINVAL);
    json_t *s = json_string(e.field);
    assert_non_null(s); /* valid UTF-8 */
    json_decref(s);
    json_decref(r);
}

static void test_weights_check(void **state)
{
    (void)state;
    eps_error e;
    const double ok[][2] = {{1e-7, 1}, {1e-30, 1e30}, {2, 1}, {1.2e-38, 1}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) assert_int_equal(eps_weights_check(ok[i], "weights", &e), 0);
    const double bad[][2] = {{0, 1}, {-1e-7, 1}, {1e-40, 1}, {1e-300, 1}, {1, 1e39}, {1, 1}, {1, 1 + 1e-12}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(eps_weights_check(bad[i], "weights", &e), EPS_EINVAL);
        assert_string_equal(e.field, "weights");
    }
    double nan2[2] = {0.0 / 0.0, 1};
    assert_int_equal(eps_weights_check(nan2, "--weights", &e), EPS_EINVAL);
    assert_string_equal(e.field, "--weights");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_change_changes_key), cmocka_unit_test(test_every_field_walked),
        cmocka_unit_test(test_same_request_same_key),    cmocka_unit_test(test_encodings_share_key),
        cmocka_unit_test(test_unknown_fields),           cmocka_unit_test(test_datasets_keys),
        cmocka_unit_test(test_weights_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
