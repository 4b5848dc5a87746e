/* test_nlp.c — the NAS-Bench-NLP space: recipe validation (tests/data/nlp/
 * invalid.json plus generated oversized recipes), canonical form and hash,
 * parameter counts against every completed WikiText-2 record, token
 * batches (synthetic and file, checked against the Python reference's
 * numbers), goldens from the PyTorch reference (tests/golden/nlp.json) on
 * the fast engine (all) and the dense engine (the cheapest cases), and fast
 * vs dense on more recipes and weights on a smaller batch. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "epsinas/core/batch.h"
#include "epsinas/engine/engine.h"
#include "epsinas/spaces/nlp.h"
#include "epsinas/core/score.h"
#include "epsinas/spaces/space.h"
#include "util.h"

#define RNN "{\"f\": {\"op\": \"linear\", \"input\": [\"x\", \"h_prev_0\"]}, " \
            "\"h_new_0\": {\"op\": \"activation_tanh\", \"input\": [\"f\"]}}"

/* ---------------------------------------------------------------- helpers */

static int arch_of(const json_t *recipe, long long vocab, eps_arch *a, eps_error *e)
{
    json_t *req = json_pack("{s:s, s:O}", "space", "nlp", "recipe", recipe);
    if (vocab > 0) json_object_set_new(req, "vocab_size", json_integer(vocab));
    memset(e, 0, sizeof *e);
    int rc = eps_arch_from_json(req, a, e);
    json_decref(req);
    return rc;
}

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j) fail_msg("bad JSON in test: %s", je.text);
    return j;
}

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* "tokens-file:REL" in the goldens is relative to the repo root. */
static void batch_spec(const char *golden_spec, char *out, size_t n)
{
    if (!strncmp(golden_spec, "tokens-file:", 12) && golden_spec[12] != '/')
        snprintf(out, n, "tokens-file:%s/%s", eps_t_root(), golden_spec + 12);
    else
        snprintf(out, n, "%s", golden_spec);
}

static json_t *golden(void) { return eps_t_load_json("tests/golden/nlp.json"); }

/* ---------------------------------------------------------------- validation */

static void test_invalid_fixtures(void **state)
{
    (void)state;
    eps_t_rejects("tests/data/nlp/invalid.json", 30, 0);
}

/* A chain of `n` nodes: node_i = tanh(node_{i-1}), node_0 = linear(x, h_prev_0). */
static json_t *chain(int n, int name_len)
{
    json_t *r = json_object();
    char prev[128] = "", name[128];
    for (int i = 0; i < n; i++) {
        if (i == n - 1) snprintf(name, sizeof name, "h_new_0");
        else snprintf(name, sizeof name, "n%0*d", name_len - 1, i);
        json_t *nd = i == 0 ? json_pack("{s:s, s:[s,s]}", "op", "linear", "input", "x", "h_prev_0")
                            : json_pack("{s:s, s:[s]}", "op", "activation_tanh", "input", prev);
        json_object_set_new(r, name, nd);
        snprintf(prev, sizeof prev, "%s", name);
    }
    return r;
}

static void test_limits(void **state)
{
    (void)state;
    eps_arch a;
    eps_error e;
    /* 10,000 nodes: rejected by count before anything else. */
    json_t *r = chain(10000, 6);
    int rc = arch_of(r, 0, &a, &e);
    assert_int_equal(rc, EPS_ELIMIT);
    assert_string_equal(e.field, "recipe");
    assert_non_null(strstr(e.msg, "recipe has 10000 nodes (limit 256)"));
    json_decref(r);
    /* 256 nodes with the longest names is accepted; 257 is not. */
    r = chain(256, EPS_NLP_NAME_MAX);
    rc = arch_of(r, 0, &a, &e);
    if (rc) fail_msg("256 nodes rejected: %s", e.msg);
    assert_int_equal(((eps_nlp_model *)a.impl)->n_nodes, 256);
    eps_arch_free(&a);
    json_decref(r);
    r = chain(257, 4);
    assert_int_equal(arch_of(r, 0, &a, &e), EPS_ELIMIT);
    json_decref(r);
    /* Canonical text over 64 KiB (an absurd op string). */
    char *big = malloc(70000);
    memset(big, 'a', 69999);
    big[69999] = 0;
    r = json_pack("{s:{s:s, s:[s,s]}, s:{s:s, s:[s]}}", "f", "op", big, "input", "x", "h_prev_0", "h_new_0", "op",
                  "activation_tanh", "input", "f");
    rc = arch_of(r, 0, &a, &e);
    assert_int_equal(rc, EPS_ELIMIT);
    assert_non_null(strstr(e.msg, "limit 65536"));
    json_decref(r);
    /* A recipe string over the raw limit. */
    json_t *s = json_string(big);
    rc = arch_of(s, 0, &a, &e);
    assert_int_equal(rc, EPS_EINVAL); /* 70 KB is under the raw limit: it fails as JSON */
    json_decref(s);
    free(big);
    big = malloc(300000);
    memset(big, ' ', 299999);
    big[299999] = 0;
    s = json_string(big);
    rc = arch_of(s, 0, &a, &e);
    assert_int_equal(rc, EPS_ELIMIT);
    assert_string_equal(e.field, "recipe");
    json_decref(s);
    free(big);
    /* Name longer than the limit. */
    r = parse("{\"n23456789012345678901234567890123456789012345678901\": {\"op\": \"linear\", \"input\": [\"x\", "
              "\"h_prev_0\"]}, \"h_new_0\": {\"op\": \"activation_tanh\", \"input\": "
              "[\"n23456789012345678901234567890123456789012345678901\"]}}");
    assert_int_equal(arch_of(r, 0, &a, &e), EPS_EINVAL);
    assert_non_null(strstr(e.msg, "1 to 48 characters"));
    json_decref(r);
}

/* ---------------------------------------------------------------- canonical form */

static void test_canonical(void **state)
{
    (void)state;
    eps_arch a, b, c;
    eps_error e;
    json_t *r1 = parse(RNN);
    json_t *r2 = parse("{ \"h_new_0\":{\"input\":[\"f\"],\"op\":\"activation_tanh\"},\n"
                       "  \"f\" : {\"input\" : [\"x\",\"h_prev_0\"], \"op\":\"linear\"} }");
    json_t *r3 = json_string(RNN);
    assert_int_equal(arch_of(r1, 0, &a, &e), 0);
    assert_int_equal(arch_of(r2, 0, &b, &e), 0);
    assert_int_equal(arch_of(r3, 0, &c, &e), 0);
    /* a request fragment: the recipe and every other field that changes the network */
    assert_string_equal(a.canonical, "{\"recipe\":{\"f\":{\"input\":[\"x\",\"h_prev_0\"],\"op\":\"linear\"},"
                                     "\"h_new_0\":{\"input\":[\"f\"],\"op\":\"activation_tanh\"}},\"vocab_size\":33278}");
    assert_string_equal(a.canonical, b.canonical);
    assert_string_equal(a.canonical, c.canonical);
    assert_int_equal(strlen(a.hash), 32);
    assert_string_equal(a.hash, b.hash);
    assert_string_equal(a.hash, c.hash);
    assert_int_equal(a.params, 15066078);
    assert_int_equal(a.macs, 1720000); /* 600*(400+600) + 600*(600+600) + 400*(600+400) */
    assert_ptr_equal(a.space, eps_space_find("nlp"));
    eps_nlp_model *m = a.impl;
    assert_int_equal(m->n_hidden, 1);
    assert_int_equal(m->n_nodes, 2);
    assert_string_equal(m->nodes[m->h_new[0]].name, "h_new_0");
    eps_arch_free(&a);
    eps_arch_free(&b);
    eps_arch_free(&c);
    /* Input order is part of the recipe. */
    json_t *r4 = parse("{\"f\": {\"op\": \"linear\", \"input\": [\"h_prev_0\", \"x\"]}, "
                       "\"h_new_0\": {\"op\": \"activation_tanh\", \"input\": [\"f\"]}}");
    assert_int_equal(arch_of(r4, 0, &a, &e), 0);
    assert_int_equal(arch_of(r1, 0, &b, &e), 0);
    assert_string_not_equal(a.hash, b.hash);
    assert_int_equal(a.params, b.params);
    eps_arch_free(&a);
    eps_arch_free(&b);
    /* vocab_size changes the embedding and decoder bias only. */
    assert_int_equal(arch_of(r1, 10000, &a, &e), 0);
    assert_int_equal(a.params, 15066078 - 23278LL * 401);
    eps_arch_free(&a);
    /* Dead nodes are counted in params (weights + one bias per layer) but
     * not in MACs. */
    json_t *r5 = parse("{\"a\": {\"op\": \"linear\", \"input\": [\"x\", \"h_prev_0\"]}, "
                       "\"dead\": {\"op\": \"linear\", \"input\": [\"x\", \"a\"]}, "
                       "\"h_new_0\": {\"op\": \"activation_tanh\", \"input\": [\"a\"]}}");
    assert_int_equal(arch_of(r5, 0, &a, &e), 0);
    assert_int_equal(a.params, 15066078 + 1720000 + 600 + 600 + 400);
    assert_int_equal(a.macs, 1720000);
    eps_arch_free(&a);
    json_decref(r1);
    json_decref(r2);
    json_decref(r3);
    json_decref(r4);
    json_decref(r5);
}

/* ---------------------------------------------------------------- params vs CSV */

/* Minimal RFC 4180 reader: returns the next record's fields (malloc'd,
 * caller frees each and the array) or NULL at end of input. */
static char **csv_next(const char **p, int *nf)
{
    const char *s = *p;
    if (!*s) return NULL;
    char **f = NULL;
    *nf = 0;
    for (;;) {
        size_t cap = 64, n = 0;
        char *v = malloc(cap);
        if (*s == '"') {
            s++;
            for (;;) {
                if (!*s) break;
                if (*s == '"') {
                    if (s[1] == '"') s++;
                    else { s++; break; }
                }
                if (n + 2 > cap) v = realloc(v, cap *= 2);
                v[n++] = *s++;
            }
        }
        while (*s && *s != ',' && *s != '\n' && *s != '\r') {
            if (n + 2 > cap) v = realloc(v, cap *= 2);
            v[n++] = *s++;
        }
        v[n] = 0;
        f = realloc(f, sizeof *f * (size_t)(*nf + 1));
        f[(*nf)++] = v;
        if (*s == ',') { s++; continue; }
        while (*s == '\r' || *s == '\n') s++;
        break;
    }
    *p = s;
    return f;
}

static void free_fields(char **f, int n)
{
    for (int i = 0; i < n; i++) free(f[i]);
    free(f);
}

static void test_params_csv(void **state)
{
    (void)state;
    char path[4096];
    eps_t_shared_file(path, sizeof path, "data/nlp/wikitext2_final.csv",
                      "shared data absent (EPS_SHARED / ../shared): no WikiText-2 CSV to check param counts");
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        print_message("SKIP: %s is missing\n", path);
        skip();
    }
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    rewind(fp);
    char *text = malloc((size_t)len + 1);
    assert_int_equal(fread(text, 1, (size_t)len, fp), (size_t)len);
    text[len] = 0;
    fclose(fp);
    const char *p = text;
    int nf, col_params = -1, col_status = -1, col_json = -1, checked = 0, failed = 0;
    char **h = csv_next(&p, &nf);
    for (int i = 0; i < nf; i++) {
        if (!strcmp(h[i], "num_params")) col_params = i;
        if (!strcmp(h[i], "status")) col_status = i;
        if (!strcmp(h[i], "recepie_json")) col_json = i;
    }
    free_fields(h, nf);
    assert_true(col_params >= 0 && col_status >= 0 && col_json >= 0);
    char **f;
    int rows = 0;
    while ((f = csv_next(&p, &nf))) {
        assert_true(nf > col_json);
        rows++;
        json_t *r = parse(f[col_json]);
        eps_arch a;
        eps_error e;
        /* Every recipe (also the ones whose training diverged) must validate. */
        int rc = arch_of(r, EPS_NLP_DEFAULT_VOCAB, &a, &e);
        if (rc) fail_msg("record %s rejected: %s: %s", f[0], e.field, e.msg);
        if (!strcmp(f[col_status], "OK")) {
            checked++;
            if (a.params != atoll(f[col_params])) {
                failed++;
                print_message("record %s: params %lld, CSV %s\n", f[0], a.params, f[col_params]);
            }
        }
        eps_arch_free(&a);
        json_decref(r);
        free_fields(f, nf);
    }
    free(text);
    print_message("# %d records, %d completed, %d param counts differ\n", rows, checked, failed);
    assert_int_equal(rows, 345);
    assert_int_equal(checked, 341);
    assert_int_equal(failed, 0);
}

/* ---------------------------------------------------------------- token batches */

static void check_tokens_golden(const char *spec_in_golden, const json_t *g)
{
    char spec[4200];
    batch_spec(spec_in_golden, spec, sizeof spec);
    int n = (int)json_integer_value(json_object_get(g, "batch_size"));
    eps_batch b;
    eps_error e = {0};
    int rc = eps_tokens_load(spec, n, &b, &e);
    if (rc) fail_msg("%s: %s", spec, e.msg);
    assert_int_equal(b.kind, EPS_BATCH_TOKENS);
    assert_int_equal(b.n, n);
    assert_int_equal(b.steps, json_integer_value(json_object_get(g, "steps")));
    assert_int_equal(b.vocab, json_integer_value(json_object_get(g, "vocab")));
    long long sum = 0;
    int mx = -1;
    for (long i = 0; i < (long)b.n * b.steps; i++) {
        sum += b.tokens[i];
        if (b.tokens[i] > mx) mx = b.tokens[i];
    }
    assert_int_equal(sum, json_integer_value(json_object_get(g, "sum")));
    assert_int_equal(mx, json_integer_value(json_object_get(g, "max")));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(g, "head"), i, v) assert_int_equal(b.tokens[i], json_integer_value(v));
    json_array_foreach(json_object_get(g, "at"), i, v) {
        int t = (int)json_integer_value(json_array_get(v, 0)), s = (int)json_integer_value(json_array_get(v, 1));
        assert_int_equal(b.tokens[(size_t)t * b.n + s], json_integer_value(json_array_get(v, 2)));
    }
    /* eps_batch_load dispatches to the same loader. */
    eps_batch b2;
    rc = eps_batch_load(spec, n, &b2, &e);
    if (rc) fail_msg("eps_batch_load(%s): %s", spec, e.msg);
    assert_int_equal(b2.kind, EPS_BATCH_TOKENS);
    assert_string_equal(b.hash, b2.hash);
    assert_memory_equal(b.tokens, b2.tokens, sizeof(int32_t) * (size_t)n * b.steps);
    eps_batch_free(&b);
    eps_batch_free(&b2);
}

static void test_tokens_golden(void **state)
{
    (void)state;
    json_t *g = golden();
    json_t *toks = json_object_get(g, "tokens");
    assert_true(json_object_size(toks) >= 2);
    const char *k;
    json_t *v;
    json_object_foreach(toks, k, v) check_tokens_golden(k, v);
    /* Embedding values, bit for bit. */
    size_t i;
    json_array_foreach(json_object_get(g, "embedding"), i, v) {
        long long r = json_integer_value(json_array_get(v, 0));
        int j = (int)json_integer_value(json_array_get(v, 1));
        assert_true(eps_nlp_embedding(EPS_NLP_EMB_SEED, r, j) == (float)json_number_value(json_array_get(v, 2)));
    }
    json_decref(g);
}

static char *write_tmp(const char *content, size_t n)
{
    char *path = strdup("/tmp/eps_nlp_tokXXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, n), (ssize_t)n);
    close(fd);
    return path;
}

static void test_tokens_file_rules(void **state)
{
    (void)state;
    /* 40 x "a b\n\nc\n" + "d" (no newline): 6 tokens a repeat (a b <eos>
     * <eos> c <eos>), then d <eos> = 242 tokens, vocab a b <eos> c d. With 2
     * streams nbatch = 121: stream 1 starts at token 121 (= b) only if the
     * unterminated last line got its <eos>. */
    char text[512] = "";
    for (int i = 0; i < 40; i++) strcat(text, "a b\n\nc\n");
    strcat(text, "d");
    char *path = write_tmp(text, strlen(text));
    char spec[256];
    snprintf(spec, sizeof spec, "tokens-file:%s", path);
    eps_batch b;
    eps_error e;
    assert_int_equal(eps_tokens_load(spec, 2, &b, &e), 0);
    assert_int_equal(b.vocab, 5);
    assert_int_equal(b.tokens[0], 0);              /* t0 s0: a */
    assert_int_equal(b.tokens[1], 1);              /* t0 s1: token 121 = b */
    assert_int_equal(b.tokens[2 * 2 + 0], 2);      /* t2 s0: <eos> */
    assert_int_equal(b.tokens[3 * 2 + 0], 2);      /* t3 s0: <eos> of the empty line */
    assert_int_equal(b.tokens[4 * 2 + 0], 3);      /* t4 s0: c */
    assert_int_equal(b.tokens[69 * 2 + 1], 3);     /* t69 s1: token 190 = c */
    assert_string_equal(b.source, spec);
    assert_int_equal(strlen(b.hash), 16);
    eps_batch_free(&b);
    /* Tabs, CR and runs of spaces separate words; only \n ends a line. */
    unlink(path);
    free(path);
    char text2[2048] = "";
    for (int i = 0; i < 40; i++) strcat(text2, "  a\tb\r\n\n c \n");
    strcat(text2, "d");
    path = write_tmp(text2, strlen(text2));
    snprintf(spec, sizeof spec, "tokens-file:%s", path);
    eps_batch b2;
    assert_int_equal(eps_tokens_load(spec, 2, &b2, &e), 0);
    assert_int_equal(b2.vocab, 5);
    assert_int_equal(b2.tokens[1], 1);
    assert_int_equal(b2.tokens[69 * 2 + 1], 3);
    eps_batch_free(&b2);
    unlink(path);
    free(path);
    /* Too short: 242 tokens cannot fill 4 streams x 70 steps. */
    path = write_tmp(text, strlen(text));
    snprintf(spec, sizeof spec, "tokens-file:%s", path);
    assert_int_equal(eps_tokens_load(spec, 4, &b, &e), EPS_EINVAL);
    assert_non_null(strstr(e.msg, "has 242 tokens"));
    assert_non_null(strstr(e.msg, "need at least 280"));
    assert_null(b.tokens);
    unlink(path);
    free(path);
    /* A word over the limit. */
    char *longw = malloc(EPS_TOKENS_WORD_MAX + 10);
    memset(longw, 'w', EPS_TOKENS_WORD_MAX + 9);
    longw[EPS_TOKENS_WORD_MAX + 9] = '\n';
    path = write_tmp(longw, EPS_TOKENS_WORD_MAX + 10);
    snprintf(spec, sizeof spec, "tokens-file:%s", path);
    assert_int_equal(eps_tokens_load(spec, 2, &b, &e), EPS_ELIMIT);
    assert_non_null(strstr(e.msg, "line 1: word longer than 1024 bytes"));
    unlink(path);
    free(path);
    free(longw);
    /* Missing file, directory, empty path, bad seeds, bad stream count. */
    assert_int_equal(eps_tokens_load("tokens-file:/nonexistent/eps.txt", 2, &b, &e), EPS_EIO);
    assert_non_null(strstr(e.msg, "cannot open"));
    assert_int_equal(eps_tokens_load("tokens-file:/tmp", 2, &b, &e), EPS_EINVAL);
    assert_non_null(strstr(e.msg, "not a regular file"));
    assert_int_equal(eps_tokens_load("tokens-file:", 2, &b, &e), EPS_EINVAL);
    assert_int_equal(eps_tokens_load("tokens:", 2, &b, &e), EPS_EINVAL);
    assert_int_equal(eps_tokens_load("tokens:-1", 2, &b, &e), EPS_EINVAL);
    assert_int_equal(eps_tokens_load("tokens:1x", 2, &b, &e), EPS_EINVAL);
    assert_int_equal(eps_tokens_load("tokens:18446744073709551616", 2, &b, &e), EPS_EINVAL);
    assert_int_equal(eps_tokens_load("tokens:18446744073709551615", 2, &b, &e), 0);
    eps_batch_free(&b);
    assert_int_equal(eps_tokens_load("tokens:1", 0, &b, &e), EPS_EINVAL);
    assert_string_equal(e.field, "batch_size");
    assert_int_equal(eps_tokens_load("ramp", 2, &b, &e), EPS_EINVAL);
    /* A stream does not depend on how many are loaded. */
    eps_batch s4, s8;
    assert_int_equal(eps_tokens_load("tokens:7", 4, &s4, &e), 0);
    assert_int_equal(eps_tokens_load("tokens:7", 8, &s8, &e), 0);
    for (int t = 0; t < EPS_NLP_STEPS; t++)
        for (int s = 0; s < 4; s++) assert_int_equal(s4.tokens[t * 4 + s], s8.tokens[t * 8 + s]);
    eps_batch_free(&s4);
    eps_batch_free(&s8);
}

/* ---------------------------------------------------------------- forward */

static void test_forward_errors(void **state)
{
    (void)state;
    json_t *r = parse(RNN);
    eps_arch a;
    eps_error e;
    assert_int_equal(arch_of(r, 100, &a, &e), 0);
    eps_batch b;
    assert_int_equal(eps_tokens_load("tokens:1", 4, &b, &e), 0);
    eps_score s;
    /* Token ids reach 9999; vocab_size 100 cannot embed them. */
    int rc = eps_arch_score(&a, &b, NULL, NULL, &s, &e);
    assert_int_equal(rc, EPS_EINVAL);
    assert_string_equal(e.field, "vocab_size");
    assert_non_null(strstr(e.msg, "outside vocab_size 100"));
    eps_arch_free(&a);
    assert_int_equal(arch_of(r, 0, &a, &e), 0);
    /* Cancellation between steps, on both engines. */
    atomic_int cancel = 1;
    for (int eng = 0; eng < 2; eng++) {
        eps_run_opts o = {.engine = eng ? EPS_ENGINE_DENSE : EPS_ENGINE_FAST, .cancel = &cancel};
        rc = eps_arch_score(&a, &b, NULL, &o, &s, &e);
        assert_int_equal(rc, EPS_ECANCELED);
    }
    /* An image batch is refused. */
    eps_batch img;
    assert_int_equal(eps_batch_load("ramp", 4, &img, &e), 0);
    assert_int_equal(eps_arch_score(&a, &img, NULL, NULL, &s, &e), EPS_EINVAL);
    assert_string_equal(e.field, "batch");
    float y[4];
    assert_int_equal(eps_nlp_forward(a.impl, &img, 1e-3f, NULL, y, &e), EPS_EINVAL);
    eps_batch_free(&img);
    eps_batch_free(&b);
    eps_arch_free(&a);
    json_decref(r);
}

static void check_case(const json_t *c, eps_engine_kind engine, double *secs)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    char spec[4200];
    batch_spec(json_string_value(json_object_get(c, "batch")), spec, sizeof spec);
    int n = (int)json_integer_value(json_object_get(c, "batch_size"));
    eps_arch a;
    eps_error e;
    if (arch_of(json_object_get(c, "recipe"), json_integer_value(json_object_get(c, "vocab_size")), &a, &e))
        fail_msg("%s: %s: %s", name, e.field, e.msg);
    assert_int_equal(a.params, json_integer_value(json_object_get(c, "params")));
    eps_batch b;
    if (eps_batch_load(spec, n, &b, &e)) fail_msg("%s: %s", spec, e.msg);
    double w[2];
    for (int k = 0; k < 2; k++) w[k] = json_number_value(json_array_get(json_object_get(c, "weights"), k));
    eps_run_opts o = {.engine = engine};
    eps_score s;
    double t0 = seconds();
    if (eps_arch_score(&a, &b, w, &o, &s, &e)) fail_msg("%s: %s", name, e.msg);
    if (secs) *secs += seconds() - t0;
    double ref = eps_t_num(json_object_get(c, "epsilon"));
    if (!eps_t_close(s.epsilon, ref, 1e-4, 1e-5))
        fail_msg("%s on %s (%s): epsilon %.9g, reference %.9g", name, spec, eps_engine_name(engine), s.epsilon, ref);
    /* Raw output range per pass: relative only (values reach 1e-10). */
    for (int k = 0; k < 2; k++) {
        const json_t *st = json_array_get(json_object_get(c, "y"), (size_t)k);
        double rmin = eps_t_num(json_object_get(st, "min")), rmax = eps_t_num(json_object_get(st, "max"));
        if (!eps_t_close(s.ymin[k], rmin, 1e-4, 0) || !eps_t_close(s.ymax[k], rmax, 1e-4, 0))
            fail_msg("%s (%s) pass %d: y range [%.9g, %.9g], reference [%.9g, %.9g]", name, eps_engine_name(engine), k,
                     s.ymin[k], s.ymax[k], rmin, rmax);
    }
    eps_batch_free(&b);
    eps_arch_free(&a);
}

static void test_golden_fast(void **state)
{
    (void)state;
    json_t *g = golden();
    json_t *cases = json_object_get(g, "cases");
    assert_true(json_array_size(cases) >= 15);
    size_t i;
    json_t *c;
    double secs = 0;
    int n = 0;
    json_array_foreach(cases, i, c) {
        check_case(c, EPS_ENGINE_FAST, &secs);
        n++;
        if (eps_t_asan() && n >= 4) break;
    }
    print_message("# fast engine: %d golden cases in %.2f s\n", n, secs);
    json_decref(g);
}

/* The dense engine costs ~1 s per 100 M MACs on this 2-core machine: run it
 * on the cheapest golden cases only (by linear MACs per token). */
static void test_golden_dense(void **state)
{
    (void)state;
    if (eps_t_asan()) {
        print_message("SKIP: dense NLP goldens are too slow under ASan (fast vs dense runs a small batch)\n");
        skip();
    }
    json_t *g = golden();
    json_t *cases = json_object_get(g, "cases");
    size_t i;
    json_t *c;
    double secs = 0;
    int n = 0;
    json_array_foreach(cases, i, c) {
        const char *batch = json_string_value(json_object_get(c, "batch"));
        const char *name = json_string_value(json_object_get(c, "name"));
        /* the plain RNN on both batches */
        if (strncmp(name, "example_0", 9) || !batch) continue;
        check_case(c, EPS_ENGINE_DENSE, &secs);
        n++;
    }
    print_message("# dense engine: %d golden cases in %.2f s\n", n, secs);
    assert_int_equal(n, 2);
    json_decref(g);
}

/* Fast vs dense on the golden recipes of up to 7 M linear MACs per token
 * (all but the two biggest), at weights other than the goldens' (negative
 * ones reach the negative side of leaky_relu and sigmoid), on 4 streams.
 * The default weights are left to the full-batch goldens: at w = 1e-5 the
 * outputs span ~1e-3 of their magnitude, so float32 rounding alone moves
 * epsilon by ~1e-4 relative on a batch this small. */
/* OpenBLAS picks its sgemm kernel by CPU: its blocked, FMA-contracted sums
 * round differently from the fast engine's plain ones, and a few recipes
 * amplify that (example_2 at w=(0.01,-0.03): 1.2e-3 relative with the
 * SkylakeX kernel, 1e-5 with the Prescott one). The PyTorch goldens above
 * keep the 1e-4 bound; this bound covers every kernel seen here. */
#define FAST_DENSE_RTOL 3e-3

static void test_fast_vs_dense(void **state)
{
    (void)state;
    json_t *g = golden();
    json_t *cases = json_object_get(g, "cases");
    eps_batch b;
    eps_error e;
    assert_int_equal(eps_tokens_load("tokens:3", 4, &b, &e), 0);
    const double weights[2][2] = {{-1e-3, 2e-3}, {0.01, -0.03}};
    size_t i;
    json_t *c;
    int n = 0, limit = eps_t_asan() ? 2 : 1000;
    double worst = 0, secs = 0;
    json_array_foreach(cases, i, c) {
        if (strcmp(json_string_value(json_object_get(c, "batch")), "tokens:1")) continue;
        if (n >= limit) break;
        const char *name = json_string_value(json_object_get(c, "name"));
        eps_arch a;
        if (arch_of(json_object_get(c, "recipe"), 0, &a, &e)) fail_msg("%s: %s", name, e.msg);
        if (a.macs > 7000000) {
            eps_arch_free(&a);
            continue;
        }
        for (int k = 0; k < 2; k++) {
            eps_score sf, sd;
            eps_run_opts of = {.engine = EPS_ENGINE_FAST}, od = {.engine = EPS_ENGINE_DENSE};
            assert_int_equal(eps_arch_score(&a, &b, weights[k], &of, &sf, &e), 0);
            double t0 = seconds();
            assert_int_equal(eps_arch_score(&a, &b, weights[k], &od, &sd, &e), 0);
            secs += seconds() - t0;
            if (!eps_t_close(sf.epsilon, sd.epsilon, FAST_DENSE_RTOL, 1e-5))
                fail_msg("%s w=(%g, %g): fast %.9g, dense %.9g", name, weights[k][0], weights[k][1], sf.epsilon,
                         sd.epsilon);
            double d = fabs(sf.epsilon - sd.epsilon) / (fabs(sd.epsilon) + 1e-30);
            if (isfinite(d) && d > worst) worst = d;
        }
        eps_arch_free(&a);
        n++;
    }
    print_message("# fast vs dense: %d recipes x 2 weight pairs, worst relative diff %.3g, dense %.1f s\n", n, worst,
                  secs);
    assert_true(n >= 2);
    eps_batch_free(&b);
    json_decref(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_fixtures), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_canonical),        cmocka_unit_test(test_params_csv),
        cmocka_unit_test(test_tokens_golden),    cmocka_unit_test(test_tokens_file_rules),
        cmocka_unit_test(test_forward_errors),   cmocka_unit_test(test_golden_fast),
        cmocka_unit_test(test_golden_dense),     cmocka_unit_test(test_fast_vs_dense),
    };
    return cmocka_run_group_tests_name("nlp", tests, NULL, NULL);
}
