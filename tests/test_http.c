/* test_http.c — `epsinas serve` end to end: starts the real binary on a
 * loopback port (--port 0; reads the "listening on" line), talks HTTP with
 * libcurl, provokes every status code for real, checks caching, single
 * flight, backpressure, deadlines, draining on SIGTERM, a 10,000-request
 * robustness run, and finally validates openapi.yaml and every saved
 * response against it with the pinned node validators (tests/node/). The
 * server start/stop and request helpers are tests/util_server.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define ARCH_A "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
/* No skip/avg-pool path from input to output: epsilon is NaN (spec section 7). */
#define ARCH_NAN "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|"

/* The server process, the HTTP client and the OpenAPI check are
 * tests/util_server.c (shared with test_jobs.c); what only this suite needs: */

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    fclose(f);
    return kb;
}

/* Value of a metric line "name{labels} value" or "name value" (-1 absent). */
static double metric(const eps_t_srv *s, const char *series)
{
    eps_t_hresp r;
    eps_t_hreq_x(NULL, s, "GET", "/metrics", NULL, NULL, 0, NULL, 1, &r);
    double v = -1;
    size_t n = strlen(series);
    for (char *p = r.body; p && *p;) {
        char *nl = strchr(p, '\n');
        if (!strncmp(p, series, n) && p[n] == ' ') v = atof(p + n + 1);
        p = nl ? nl + 1 : NULL;
    }
    eps_t_hresp_free(&r);
    return v;
}

/* Polls until metric(series) == want (bounded); returns the last value. */
static double await_metric(const eps_t_srv *s, const char *series, double want)
{
    double v = -1;
    for (int i = 0; i < 1500; i++) {
        v = metric(s, series);
        if (v == want) return v;
        poll(NULL, 0, 10);
    }
    return v;
}

static char *score_body(const char *arch, const char *extra)
{
    char *b = malloc(4096);
    snprintf(b, 4096, "{\"space\":\"nb201\",\"arch\":\"%s\"%s%s}", arch, extra && *extra ? "," : "", extra ? extra : "");
    return b;
}

/* ------------------------------------------------------------ async requests */

typedef struct {
    const eps_t_srv *s;
    char body[1024];
    eps_t_hresp r;
    pthread_t t;
} async_req;

static void *async_main(void *arg)
{
    async_req *a = arg;
    eps_t_post_json(a->s, "/v1/score", a->body, &a->r);
    return NULL;
}

static void async_start(async_req *a, const eps_t_srv *s, const char *body)
{
    memset(a, 0, sizeof *a);
    a->s = s;
    snprintf(a->body, sizeof a->body, "%s", body);
    assert_int_equal(pthread_create(&a->t, NULL, async_main, a), 0);
}

static void async_join(async_req *a) { pthread_join(a->t, NULL); }

/* ------------------------------------------------------------ tests */

static void test_config_errors(void **state)
{
    (void)state;
    char cmd[1024];
    int rc;
    snprintf(cmd, sizeof cmd, "%s serve --port 70000 2>&1", eps_t_bin());
    char *out = eps_t_run(cmd, &rc);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "--port"));
    assert_non_null(strstr(out, "0..65535"));
    int lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 1); /* one line */
    free(out);
    snprintf(cmd, sizeof cmd, "EPSINAS_QUEUE_CAPACITY=0 %s serve 2>&1", eps_t_bin());
    out = eps_t_run(cmd, &rc);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "EPSINAS_QUEUE_CAPACITY"));
    assert_non_null(strstr(out, "1..1000000"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s serve --body-limit 5G 2>&1", eps_t_bin());
    out = eps_t_run(cmd, &rc);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "--body-limit"));
    assert_non_null(strstr(out, "256M"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s serve --log-format xml 2>&1", eps_t_bin());
    out = eps_t_run(cmd, &rc);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "text|json"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s serve --batch nodefault 2>&1", eps_t_bin());
    out = eps_t_run(cmd, &rc);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "NAME=SPEC"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s serve --frobnicate 1 2>&1", eps_t_bin());
    out = eps_t_run(cmd, &rc);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "--frobnicate"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s serve --help", eps_t_bin());
    out = eps_t_run(cmd, &rc);
    assert_int_equal(rc, 0);
    const char *flags[] = {"--listen", "--port", "--workers", "--queue-capacity", "--cache-entries", "--cache-bytes",
                           "--body-limit", "--max-batch-items", "--json-depth", "--deadline-ms",
                           "--shutdown-timeout-ms", "--cors-origins", "--api-token", "--batch", "--batch-size",
                           "--log-format", "--log-level", "EPSINAS_PORT", NULL};
    for (int i = 0; flags[i]; i++) assert_non_null(strstr(out, flags[i]));
    free(out);
    /* a flag overrides a bad environment value */
    eps_t_srv s;
    const char *env[] = {"EPSINAS_LISTEN=not-an-address", "EPSINAS_LOG_FORMAT=json", NULL};
    assert_int_equal(eps_t_srv_start_env(&s, "", env), 0);
    eps_t_hresp r;
    eps_t_hreq(&s, "GET", "/v2/health/live", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    eps_t_hresp_free(&r);
    assert_int_equal(eps_t_srv_stop(&s), 0);
    /* EPSINAS_LOG_FORMAT=json took effect: the access line is JSON */
    FILE *f = fopen(s.log, "r");
    assert_non_null(f);
    char line[2048];
    int json_access = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        if (j && eps_t_jstr(j, "msg") && !strcmp(eps_t_jstr(j, "msg"), "access") && eps_t_jstr(j, "request_id")) json_access = 1;
        json_decref(j);
    }
    fclose(f);
    assert_true(json_access);
}

static void test_endpoints(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, "--body-limit 64K --json-depth 8 --max-batch-items 8 --cors-origins "
                                    "http://allowed.test,http://other.test"),
                     0);
    eps_t_hresp r;
    const char *probes[] = {"/v2/health/live", "/livez", "/v2/health/ready", "/readyz", NULL};
    for (int i = 0; probes[i]; i++) {
        eps_t_hreq(&s, "GET", probes[i], NULL, NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.len, 0);
        assert_true(strlen(r.rid) > 0);
        eps_t_hresp_free(&r);
    }
    eps_t_hreq(&s, "HEAD", "/v2/health/ready", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    eps_t_hresp_free(&r);
    eps_t_hreq(&s, "GET", "/v2", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(eps_t_jstr(r.json, "name"), "epsinas");
    eps_t_hresp_free(&r);
    eps_t_hreq(&s, "GET", "/v1/spaces", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *sp = json_object_get(r.json, "spaces");
    int has201 = 0;
    for (size_t i = 0; i < json_array_size(sp); i++)
        if (!strcmp(eps_t_jstr(json_array_get(sp, i), "name"), "nb201")) {
            has201 = 1;
            json_t *w = json_object_get(json_array_get(sp, i), "weights");
            assert_true(eps_t_close(json_number_value(json_array_get(w, 0)), 1e-7, 0, 0));
            assert_true(eps_t_close(json_number_value(json_array_get(w, 1)), 1, 0, 0));
        }
    assert_true(has201);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r.json, "limits"), "body_bytes")), 65536);
    eps_t_hresp_free(&r);
    eps_t_hreq(&s, "GET", "/v1/batches", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *b0 = json_array_get(json_object_get(r.json, "batches"), 0);
    assert_string_equal(eps_t_jstr(b0, "name"), "default");
    assert_string_equal(eps_t_jstr(b0, "source"), "ramp");
    assert_int_equal(json_integer_value(json_object_get(b0, "size")), 256);
    assert_int_equal(strlen(eps_t_jstr(b0, "hash")), 16);
    eps_t_hresp_free(&r);

    /* 404, 405 (+Allow), 415, 413 (Content-Length and chunked) */
    eps_t_hreq(&s, "GET", "/v1/nothing", NULL, NULL, NULL, &r);
    eps_t_expect_error(&r, 404, "not_found", NULL);
    eps_t_hresp_free(&r);
    eps_t_hreq(&s, "DELETE", "/v1/score", NULL, NULL, NULL, &r);
    eps_t_expect_error(&r, 405, "method_not_allowed", NULL);
    assert_string_equal(r.allow, "POST, OPTIONS");
    eps_t_hresp_free(&r);
    eps_t_hreq(&s, "POST", "/v1/spaces", "application/json", "{}", NULL, &r);
    eps_t_expect_error(&r, 405, "method_not_allowed", NULL);
    assert_string_equal(r.allow, "GET, HEAD, OPTIONS");
    eps_t_hresp_free(&r);
    eps_t_hreq(&s, "POST", "/v1/score", "text/plain", "{\"space\":\"nb201\"}", NULL, &r);
    eps_t_expect_error(&r, 415, "unsupported_media_type", NULL);
    eps_t_hresp_free(&r);
    eps_t_hreq(&s, "POST", "/v1/score", NULL, NULL, NULL, &r); /* no Content-Type at all */
    eps_t_expect_error(&r, 415, "unsupported_media_type", NULL);
    eps_t_hresp_free(&r);
    size_t big = 200 * 1024;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[big] = 0;
    huge[0] = '{';
    huge[big - 1] = '}';
    eps_t_hreq(&s, "POST", "/v1/score", "application/json", huge, NULL, &r);
    eps_t_expect_error(&r, 413, "too_large", NULL);
    eps_t_hresp_free(&r);
    const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    eps_t_hreq(&s, "POST", "/v1/score", "application/json", huge, chunked, &r);
    eps_t_expect_error(&r, 413, "too_large", NULL);
    eps_t_hresp_free(&r);
    free(huge);

    /* 400: bad JSON with line/column, depth, invalid fields */
    eps_t_post_json(&s, "/v1/score", "{\"space\": \"nb201\",\n  \"arch\": }", &r);
    eps_t_expect_error(&r, 400, "invalid_json", NULL);
    assert_int_equal(json_integer_value(json_object_get(r.json, "line")), 2);
    assert_true(json_integer_value(json_object_get(r.json, "column")) >= 10);
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score", "{\"space\":\"nb201\",\"x\":[[[[[[[[[[[[1]]]]]]]]]]]}", &r);
    eps_t_expect_error(&r, 400, "json_too_deep", NULL);
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score", "[1,2]", &r);
    eps_t_expect_error(&r, 400, "invalid_input", NULL);
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score", "{\"space\":\"nb201\",\"arch\":\"|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|\"}", &r);
    eps_t_expect_error(&r, 400, "invalid_input", "arch");
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score", "{\"space\":\"nb999\",\"arch\":\"x\"}", &r);
    eps_t_expect_error(&r, 400, "invalid_input", "space");
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score", "{\"arch\":\"" ARCH_A "\"}", &r);
    eps_t_expect_error(&r, 400, "invalid_input", "space");
    eps_t_hresp_free(&r);
    const char *bad_fields[][2] = {
        {"\"weights\":[1,1]", "weights"},      {"\"weights\":[1]", "weights"},
        {"\"weights\":\"a\"", "weights"},      {"\"batch\":\"nope\"", "batch"},
        {"\"batch_size\":0", "batch_size"},    {"\"batch_size\":257", "batch_size"},
        {"\"engine\":\"warp\"", "engine"},     {"\"id\":{\"a\":1}", "id"},
    };
    for (size_t i = 0; i < sizeof bad_fields / sizeof bad_fields[0]; i++) {
        char *b = score_body(ARCH_A, bad_fields[i][0]);
        eps_t_post_json(&s, "/v1/score", b, &r);
        eps_t_expect_error(&r, 400, "invalid_input", bad_fields[i][1]);
        eps_t_hresp_free(&r);
        free(b);
    }

    /* a score; the same again (cache hit); a reformatted equivalent (hit) */
    const char *rid_hdr[] = {"X-Request-Id: test-rid-1", NULL};
    eps_t_hreq(&s, "POST", "/v1/score", "application/json", "{\"space\":\"nb201\",\"arch\":\"" ARCH_A "\",\"id\":\"first\"}",
         rid_hdr, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.rid, "test-rid-1");
    assert_string_equal(eps_t_jstr(r.json, "id"), "first");
    assert_false(json_is_true(json_object_get(r.json, "cached")));
    assert_true(json_is_number(json_object_get(r.json, "epsilon")));
    assert_true(json_is_null(json_object_get(r.json, "nan_reason")));
    double eps1 = json_number_value(json_object_get(r.json, "epsilon"));
    assert_true(eps1 > 0 && eps1 < 10);
    char hash[33];
    snprintf(hash, sizeof hash, "%s", eps_t_jstr(r.json, "hash"));
    assert_int_equal(strlen(hash), 32);
    assert_int_equal(json_integer_value(json_object_get(r.json, "params")), 801841);
    assert_int_equal(json_integer_value(json_object_get(r.json, "batch_size")), 256);
    assert_string_equal(eps_t_jstr(r.json, "batch"), "ramp"); /* nb201's default (docs/batches.md) */
    assert_string_equal(eps_t_jstr(r.json, "engine"), "fast");
    eps_t_hresp_free(&r);
    double hits0 = metric(&s, "epsinas_cache_hits_total");
    eps_t_post_json(&s, "/v1/score", "{\"space\":\"nb201\",\"arch\":\"" ARCH_A "\",\"id\":\"first\"}", &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "cached")));
    assert_true(json_number_value(json_object_get(r.json, "epsilon")) == eps1);
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score",
              "\n{ \"id\" : 42 ,\n  \"weights\": [1e-7, 1.0],\t\"engine\":\"fast\", \"arch\" : \"" ARCH_A
              "\" , \"space\":\"nb201\", \"batch\":\"default\" }\n",
              &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "cached")));
    assert_int_equal(json_integer_value(json_object_get(r.json, "id")), 42);
    assert_true(json_number_value(json_object_get(r.json, "epsilon")) == eps1);
    eps_t_hresp_free(&r);
    assert_true(metric(&s, "epsinas_cache_hits_total") == hits0 + 2);

    /* the service computes what the CLI computes (same batch: ramp, 256) */
    {
        char cmd[512];
        int rc;
        snprintf(cmd, sizeof cmd, "%s score --space nb201 --arch '" ARCH_A "' --json", eps_t_bin());
        char *out = eps_t_run(cmd, &rc);
        assert_int_equal(rc, 0);
        json_t *cli = json_loads(out, 0, NULL);
        assert_non_null(cli);
        assert_true(eps_t_close(eps1, json_number_value(json_object_get(cli, "epsilon")), 1e-12, 0));
        assert_string_equal(eps_t_jstr(cli, "hash"), hash);
        json_decref(cli);
        free(out);
    }

    /* the other registered spaces go through the same path */
    eps_t_post_json(&s, "/v1/score",
              "{\"space\":\"nb101\",\"matrix\":[[0,1,1,0],[0,0,0,1],[0,0,0,1],[0,0,0,0]],"
              "\"ops\":[\"input\",\"conv3x3-bn-relu\",\"maxpool3x3\",\"output\"],\"batch_size\":16}",
              &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(eps_t_jstr(r.json, "space"), "nb101");
    assert_true(json_is_number(json_object_get(r.json, "epsilon")));
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score",
              "{\"space\":\"nb101\",\"matrix\":[[0,1],[0,0,0]],\"ops\":[\"input\",\"output\"]}", &r);
    eps_t_expect_error(&r, 400, "invalid_input", NULL);
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score",
              "{\"space\":\"nlp\",\"batch_size\":32,\"recipe\":{\"f\":{\"op\":\"linear\",\"input\":[\"x\",\"h_prev_0\"]},"
              "\"h_new_0\":{\"op\":\"activation_tanh\",\"input\":[\"f\"]}}}",
              &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(eps_t_jstr(r.json, "batch"), "tokens:1"); /* nlp's default (docs/batches.md) */
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score",
              "{\"space\":\"nlp\",\"batch\":\"default\",\"recipe\":{\"f\":{\"op\":\"linear\",\"input\":[\"x\",\"h_prev_0\"]},"
              "\"h_new_0\":{\"op\":\"activation_tanh\",\"input\":[\"f\"]}}}",
              &r);
    eps_t_expect_error(&r, 400, "invalid_input", "batch"); /* an image batch for a token space */
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score",
              "{\"space\":\"graph\",\"nodes\":[{\"name\":\"c\",\"op\":\"conv2d\",\"inputs\":[\"input\"],"
              "\"out_channels\":4,\"kernel\":3,\"padding\":1},{\"name\":\"b\",\"op\":\"batchnorm\",\"inputs\":[\"c\"]},"
              "{\"name\":\"g\",\"op\":\"global_avgpool\",\"inputs\":[\"b\"]},"
              "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"g\"],\"out_features\":1}]}",
              &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(eps_t_jstr(r.json, "space"), "graph");
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score",
              "{\"space\":\"graph\",\"nodes\":[{\"name\":\"c\",\"op\":\"conv2d\",\"inputs\":[\"input\"],"
              "\"out_channels\":4,\"kernel\":0}]}",
              &r);
    eps_t_expect_error(&r, 400, "invalid_input", NULL);
    assert_non_null(strstr(eps_t_jstr(r.json, "field"), "nodes[0]"));
    eps_t_hresp_free(&r);

    /* NaN epsilon -> null with a reason */
    eps_t_post_json(&s, "/v1/score", "{\"space\":\"nb201\",\"arch\":\"" ARCH_NAN "\"}", &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_null(json_object_get(r.json, "epsilon")));
    assert_true(json_string_length(json_object_get(r.json, "nan_reason")) > 0);
    eps_t_hresp_free(&r);

    /* GET /v1/scores/{hash} */
    char path[128];
    snprintf(path, sizeof path, "/v1/scores/%s", hash);
    eps_t_hreq(&s, "GET", path, NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *res = json_object_get(r.json, "results");
    assert_true(json_array_size(res) >= 1);
    assert_string_equal(eps_t_jstr(json_array_get(res, 0), "hash"), hash);
    assert_true(json_number_value(json_object_get(json_array_get(res, 0), "epsilon")) == eps1);
    eps_t_hresp_free(&r);
    eps_t_hreq(&s, "GET", "/v1/scores/0123456789abcdef0123456789abcdef", NULL, NULL, NULL, &r);
    eps_t_expect_error(&r, 404, "not_found", NULL);
    eps_t_hresp_free(&r);
    eps_t_hreq(&s, "GET", "/v1/scores/XYZ", NULL, NULL, NULL, &r);
    eps_t_expect_error(&r, 400, "invalid_input", "hash");
    eps_t_hresp_free(&r);

    /* batch: cached, invalid, new, duplicate of new (one computation) */
    double comp0 = metric(&s, "epsinas_computations_total");
    eps_t_post_json(&s, "/v1/score/batch",
              "{\"items\":[{\"space\":\"nb201\",\"arch\":\"" ARCH_A "\",\"id\":1},"
              "{\"space\":\"nb201\",\"arch\":\"|bogus~0|\",\"id\":2},"
              "{\"space\":\"nb201\",\"arch\":\"|nor_conv_1x1~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|\",\"batch_size\":32,\"id\":3},"
              "{\"space\":\"nb201\",\"arch\":\"|nor_conv_1x1~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|\",\"batch_size\":32,\"id\":4},"
              "7]}",
              &r);
    assert_int_equal(r.status, 200);
    res = json_object_get(r.json, "results");
    assert_int_equal(json_array_size(res), 5);
    for (int i = 0; i < 4; i++) assert_int_equal(json_integer_value(json_object_get(json_array_get(res, i), "id")), i + 1);
    assert_true(json_is_true(json_object_get(json_array_get(res, 0), "cached")));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(res, 1), "status")), 400);
    assert_string_equal(eps_t_jstr(json_array_get(res, 1), "field"), "arch");
    assert_true(json_is_number(json_object_get(json_array_get(res, 2), "epsilon")));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(res, 2), "batch_size")), 32);
    assert_true(json_number_value(json_object_get(json_array_get(res, 2), "epsilon")) ==
                json_number_value(json_object_get(json_array_get(res, 3), "epsilon")));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(res, 4), "status")), 400);
    assert_int_equal(json_integer_value(json_object_get(r.json, "succeeded")), 3);
    assert_int_equal(json_integer_value(json_object_get(r.json, "failed")), 2);
    eps_t_hresp_free(&r);
    assert_true(metric(&s, "epsinas_computations_total") == comp0 + 1);
    eps_t_post_json(&s, "/v1/score/batch", "{\"items\":[1,2,3,4,5,6,7,8,9]}", &r);
    eps_t_expect_error(&r, 413, "too_large", "items");
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score/batch", "{\"items\":[]}", &r);
    eps_t_expect_error(&r, 400, "invalid_input", "items");
    eps_t_hresp_free(&r);

    /* CORS: preflight and simple requests, allowed and not */
    const char *pre_ok[] = {"Origin: http://other.test", "Access-Control-Request-Method: POST",
                            "Access-Control-Request-Headers: content-type", NULL};
    eps_t_hreq(&s, "OPTIONS", "/v1/score", NULL, NULL, pre_ok, &r);
    assert_int_equal(r.status, 204);
    assert_string_equal(r.acao, "http://other.test");
    eps_t_hresp_free(&r);
    const char *pre_bad[] = {"Origin: http://evil.test", "Access-Control-Request-Method: POST", NULL};
    eps_t_hreq(&s, "OPTIONS", "/v1/score", NULL, NULL, pre_bad, &r);
    assert_int_equal(r.acao[0], 0);
    eps_t_hresp_free(&r);
    const char *orig[] = {"Origin: http://allowed.test", NULL};
    eps_t_hreq(&s, "GET", "/v1/spaces", NULL, NULL, orig, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.acao, "http://allowed.test");
    eps_t_hresp_free(&r);

    /* metrics */
    eps_t_hreq(&s, "GET", "/metrics", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "text/plain"));
    const char *series[] = {"epsinas_requests_total{endpoint=\"/v1/score\",code=\"200\"}",
                            "epsinas_requests_total{endpoint=\"/v1/score\",code=\"413\"}",
                            "epsinas_request_duration_seconds_bucket{endpoint=\"/v1/score\",le=\"+Inf\"}",
                            "epsinas_score_duration_seconds_count{space=\"nb201\"}",
                            "epsinas_queue_wait_seconds_count", "epsinas_queue_depth 0",
                            "epsinas_inflight_requests", "epsinas_rejected_total{reason=\"too_large\"}",
                            "epsinas_cache_misses_total", "epsinas_cache_evictions_total 0", "epsinas_cache_entries",
                            "epsinas_build_info{version=\"", NULL};
    for (int i = 0; series[i]; i++) {
        if (!strstr(r.body, series[i])) print_message("missing metric %s\n", series[i]);
        assert_non_null(strstr(r.body, series[i]));
    }
    eps_t_hresp_free(&r);
    assert_int_equal(eps_t_srv_stop(&s), 0);

    /* the access log has one line per request with the request id */
    FILE *f = fopen(s.log, "r");
    assert_non_null(f);
    char line[2048];
    int found = 0, access = 0;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, " access ")) access++;
        if (strstr(line, "rid=test-rid-1") && strstr(line, "status=200")) found = 1;
    }
    fclose(f);
    assert_true(found);
    assert_true(access >= 40);
}

static void test_auth(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, "--api-token s3cret-token"), 0);
    eps_t_hresp r;
    eps_t_hreq(&s, "GET", "/v1/spaces", NULL, NULL, NULL, &r);
    eps_t_expect_error(&r, 401, "unauthorized", NULL);
    assert_non_null(strstr(r.www_auth, "Bearer"));
    eps_t_hresp_free(&r);
    const char *wrong[] = {"Authorization: Bearer s3cret-tokeX", NULL};
    eps_t_hreq(&s, "POST", "/v1/score", "application/json", "{\"space\":\"nb201\",\"arch\":\"" ARCH_A "\"}", wrong, &r);
    eps_t_expect_error(&r, 401, "unauthorized", NULL);
    eps_t_hresp_free(&r);
    const char *right[] = {"Authorization: Bearer s3cret-token", NULL};
    eps_t_hreq(&s, "GET", "/v1/spaces", NULL, NULL, right, &r);
    assert_int_equal(r.status, 200);
    eps_t_hresp_free(&r);
    eps_t_hreq(&s, "POST", "/v1/score", "application/json", "{\"space\":\"nb201\",\"arch\":\"" ARCH_A "\",\"batch_size\":16}",
         right, &r);
    assert_int_equal(r.status, 200);
    eps_t_hresp_free(&r);
    const char *open_paths[] = {"/v2/health/ready", "/livez", "/v2", "/metrics", NULL};
    for (int i = 0; open_paths[i]; i++) {
        eps_t_hreq(&s, "GET", open_paths[i], NULL, NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        eps_t_hresp_free(&r);
    }
    assert_true(metric(&s, "epsinas_rejected_total{reason=\"unauthorized\"}") == 2);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

#define RNN_RECIPE                                                                                                   \
    "{\"f\":{\"op\":\"linear\",\"input\":[\"x\",\"h_prev_0\"]},\"h_new_0\":{\"op\":\"activation_tanh\",\"input\":[\"f\"]}}"

/* Issue 17 defect 1: on a fresh server, the same recipe with vocab_size
 * 33278 then 1000000 is two computations with their own params (the second
 * was answered from the cache with the first one's 15066078). */
static void test_cache_key_vocab(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, ""), 0);
    eps_t_hresp r;
    const long long vocab[] = {33278, 1000000, 33278}, params[] = {15066078, 402721600, 15066078};
    for (int i = 0; i < 3; i++) {
        char body[512];
        snprintf(body, sizeof body, "{\"space\":\"nlp\",\"recipe\":" RNN_RECIPE ",\"vocab_size\":%lld,\"batch_size\":2}",
                 vocab[i]);
        eps_t_post_json(&s, "/v1/score", body, &r);
        if (r.status != 200) print_message("body %s\n", r.body ? r.body : "");
        assert_int_equal(r.status, 200);
        assert_int_equal(json_integer_value(json_object_get(r.json, "params")), params[i]);
        assert_int_equal(json_is_true(json_object_get(r.json, "cached")), i == 2); /* only the repeat is a hit */
        eps_t_hresp_free(&r);
    }
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* Two spellings of one canonical cell share the cached score but not their
 * params: a dead conv still has weights (spec: params as written). Through
 * the cache, the body memo and a batch item alike. */
static void test_cache_params_per_spelling(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, ""), 0);
    eps_t_hresp r;
    const char *body[] = {
        "{\"space\":\"nb201\",\"arch\":\"|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|\",\"batch_size\":4}",
        "{\"space\":\"nb201\",\"arch\":\"|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|\",\"batch_size\":4}",
        "{\"space\":\"nb201\",\"arch\":\"|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|\",\"batch_size\":4}",
    };
    const long long params[] = {558801, 315761, 315761};
    for (int i = 0; i < 3; i++) {
        eps_t_post_json(&s, "/v1/score", body[i], &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(json_is_true(json_object_get(r.json, "cached")), i > 0);
        assert_int_equal(json_integer_value(json_object_get(r.json, "params")), params[i]);
        eps_t_hresp_free(&r);
    }
    char batch[600];
    snprintf(batch, sizeof batch, "{\"items\":[%s]}", body[1]);
    eps_t_post_json(&s, "/v1/score/batch", batch, &r);
    assert_int_equal(r.status, 200);
    json_t *it = json_array_get(json_object_get(r.json, "results"), 0);
    assert_int_equal(json_integer_value(json_object_get(it, "params")), 315761);
    eps_t_hresp_free(&r);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* Issue 13 items 4-5: every encoding of a cell scores as one cell (the
 * second and third spellings are cache hits on the first's entry), every
 * response carries the cell in all encodings of its space, and a bad
 * encoding is a 400 naming the field and the position. */
static void test_encodings(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, ""), 0);
    eps_t_hresp r;
    static const int sample[] = {1, 777, 5000, 15624};
    for (size_t k = 0; k < sizeof sample / sizeof sample[0]; k++) {
        char arch[200], body[1024];
        eps_t_nb201_arch(sample[k], arch);
        snprintf(body, sizeof body, "{\"space\":\"nb201\",\"arch\":\"%s\",\"batch_size\":8}", arch);
        eps_t_post_json(&s, "/v1/score", body, &r);
        assert_int_equal(r.status, 200);
        json_t *first = json_incref(r.json);
        eps_t_hresp_free(&r);
        json_t *enc = json_object_get(first, "encodings");
        assert_string_equal(eps_t_jstr(enc, "arch"), eps_t_jstr(first, "canonical"));
        const char *other[] = {"op_indices", "nni"};
        for (int o = 0; o < 2; o++) {
            char *v = json_dumps(json_object_get(enc, other[o]), JSON_COMPACT);
            snprintf(body, sizeof body, "{\"space\":\"nb201\",\"%s\":%s,\"batch_size\":8}", other[o], v);
            free(v);
            eps_t_post_json(&s, "/v1/score", body, &r);
            assert_int_equal(r.status, 200);
            assert_true(json_is_true(json_object_get(r.json, "cached")));
            assert_string_equal(eps_t_jstr(r.json, "hash"), eps_t_jstr(first, "hash"));
            assert_true(json_equal(json_object_get(r.json, "epsilon"), json_object_get(first, "epsilon")));
            assert_true(json_equal(json_object_get(r.json, "encodings"), enc));
            eps_t_hresp_free(&r);
        }
        json_decref(first);
    }
    /* a NASLib NB101 tuple (one dead vertex): the dataset's hash, then its
     * matrix/ops spelling is a hit on the same entry */
    eps_t_post_json(&s, "/v1/score",
              "{\"space\":\"nb101\",\"batch_size\":2,\"naslib\":[0,1,1,1,1,0,1,0,0,0,0,0,1,1,0,0,0,0,0,0,1,0,0,0,0,1,"
              "1,0,0,0,0,0,0,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,2,4,4,4,1]}",
              &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(eps_t_jstr(r.json, "hash"), "4a0ab8bbe2441a002e07b0f445ec2d63");
    json_t *enc = json_object_get(r.json, "encodings");
    assert_int_equal(json_array_size(json_object_get(enc, "naslib")), 42); /* pruned to 6 vertices */
    char *m = json_dumps(json_object_get(enc, "matrix"), JSON_COMPACT), *o = json_dumps(json_object_get(enc, "ops"), JSON_COMPACT);
    eps_t_hresp_free(&r);
    char body[1024];
    snprintf(body, sizeof body, "{\"space\":\"nb101\",\"batch_size\":2,\"matrix\":%s,\"ops\":%s}", m, o);
    free(m);
    free(o);
    eps_t_post_json(&s, "/v1/score", body, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "cached")));
    assert_string_equal(eps_t_jstr(r.json, "hash"), "4a0ab8bbe2441a002e07b0f445ec2d63");
    eps_t_hresp_free(&r);
    /* a batch item in NNI form carries the encodings too */
    eps_t_post_json(&s, "/v1/score/batch",
              "{\"items\":[{\"space\":\"nb201\",\"batch_size\":8,\"nni\":{\"0_1\":\"conv_3x3\",\"0_2\":\"conv_3x3\","
              "\"0_3\":\"skip_connect\",\"1_2\":\"avg_pool_3x3\",\"1_3\":\"conv_3x3\",\"2_3\":\"skip_connect\"}}]}",
              &r);
    assert_int_equal(r.status, 200);
    json_t *it = json_array_get(json_object_get(r.json, "results"), 0);
    assert_string_equal(eps_t_jstr(it, "canonical"), ARCH_A);
    assert_string_equal(eps_t_jstr(json_object_get(it, "encodings"), "arch"), ARCH_A);
    eps_t_hresp_free(&r);
    /* bad encodings: 400, field and position */
    const char *bad[][3] = {
        {"{\"space\":\"nb201\",\"op_indices\":[2,2,0,4,2,9]}", "op_indices", "op_indices[5]: op code 9 is not 0..4"},
        {"{\"space\":\"nb201\",\"nni\":{\"0_1\":\"conv5x5\"}}", "nni", "nni: missing key '0_2'"},
        {"{\"space\":\"nb201\",\"arch\":\"" ARCH_A "\",\"op_indices\":[2,2,0,4,2,0]}", "arch,op_indices",
         "both 'arch' and 'op_indices' are given"},
        {"{\"space\":\"nb101\",\"naslib\":[0,1,0,0,0,7]}", "naslib", "naslib[5]: op code 7 is not 0..4"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        eps_t_post_json(&s, "/v1/score", bad[k][0], &r);
        eps_t_expect_error(&r, 400, "invalid_input", bad[k][1]);
        if (!strstr(eps_t_jstr(r.json, "error"), bad[k][2])) fail_msg("'%s' lacks '%s'", eps_t_jstr(r.json, "error"), bad[k][2]);
        eps_t_hresp_free(&r);
    }
    /* /v1/spaces lists the fields each space reads */
    eps_t_hreq(&s, "GET", "/v1/spaces", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *sp = json_array_get(json_object_get(r.json, "spaces"), 0);
    char *f = json_dumps(json_object_get(sp, "fields"), JSON_COMPACT);
    assert_string_equal(eps_t_jstr(sp, "name"), "nb201");
    assert_non_null(strstr(f, "\"op_indices\",\"nni\""));
    free(f);
    eps_t_hresp_free(&r);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* Issue 17 defect 8: what used to be accepted silently (or refused
 * wrongly) now answers by the schema. */
static void test_request_strictness(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, ""), 0);
    eps_t_hresp r;
    /* a typo'd field used to score with the default weights */
    const char *bad[][2] = {
        {"\"weight\":[1e-6,2]", "weight"},       {"\"vocab_size\":100", "vocab_size"}, /* not an nb201 field */
        {"\"weights\":[1e-400,1]", "weights"},   {"\"weights\":[0,1]", "weights"},
        {"\"weights\":[-1e-7,1]", "weights"},    {"\"weights\":[1e-40,1]", "weights"},
        {"\"weights\":[1,1e39]", "weights"},     {"\"batch_size\":64.5", "batch_size"},
        {"\"weights\":[1e400,1]", "weights[0]"}, {"\"batch_size\":1e999", "batch_size"},
        {"\"batch_size\":123456789012345678901234567890", "batch_size"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *b = score_body(ARCH_A, bad[i][0]);
        eps_t_post_json(&s, "/v1/score", b, &r);
        eps_t_expect_error(&r, 400, "invalid_input", bad[i][1]);
        eps_t_hresp_free(&r);
        free(b);
    }
    /* accepted: an x- extension, an integral real batch_size, an id of 256
     * two-byte characters (512 bytes) */
    char id[1200] = "\"id\":\"";
    for (int i = 0; i < 256; i++) strcat(id, "\xc3\xa9");
    strcat(id, "\"");
    const char *good[] = {"\"x-client\":{\"trace\":1},\"batch_size\":16", "\"batch_size\":16.0", id};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char *b = score_body(ARCH_A, good[i]);
        eps_t_post_json(&s, "/v1/score", b, &r);
        if (r.status != 200) print_message("body %s\n", r.body ? r.body : "");
        assert_int_equal(r.status, 200);
        eps_t_hresp_free(&r);
        free(b);
    }
    strcpy(id + strlen(id) - 1, "\xc3\xa9\""); /* 257 characters */
    char *b = score_body(ARCH_A, id);
    eps_t_post_json(&s, "/v1/score", b, &r);
    eps_t_expect_error(&r, 400, "invalid_input", "id");
    eps_t_hresp_free(&r);
    free(b);
    /* every batch item is checked; errors name the item */
    eps_t_post_json(&s, "/v1/score/batch",
              "{\"items\":[{\"space\":\"nb201\",\"arch\":\"" ARCH_A "\",\"batch_size\":16},"
              "{\"space\":\"nb201\",\"arch\":\"" ARCH_A "\",\"wieghts\":[1,2],\"id\":7}]}",
              &r);
    assert_int_equal(r.status, 200);
    json_t *res = json_object_get(r.json, "results");
    assert_int_equal(json_array_size(res), 2);
    assert_true(json_is_number(json_object_get(json_array_get(res, 0), "epsilon")));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(res, 1), "status")), 400);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(res, 1), "id")), 7);
    assert_string_equal(eps_t_jstr(json_array_get(res, 1), "field"), "wieghts");
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score/batch",
              "{\"items\":[{\"space\":\"nb201\",\"arch\":\"" ARCH_A "\"},{\"space\":\"nlp\",\"vocab_size\":1e400}]}", &r);
    eps_t_expect_error(&r, 400, "invalid_input", "items[1].vocab_size");
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score/batch", "{\"items\":[{\"space\":\"nb201\",\"arch\":\"" ARCH_A "\"}],\"itmes\":[]}", &r);
    eps_t_expect_error(&r, 400, "invalid_input", "itmes");
    eps_t_hresp_free(&r);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* workers 1, queue 1: a slow dense job fills the queue -> 429; identical
 * concurrent requests join the running job (one computation). */
static void test_backpressure_single_flight(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, "--workers 1 --queue-capacity 1"), 0);
    char *warm = score_body(ARCH_NAN, "\"batch_size\":16");
    eps_t_hresp w;
    eps_t_post_json(&s, "/v1/score", warm, &w);
    assert_int_equal(w.status, 200);
    eps_t_hresp_free(&w);
    double comp0 = metric(&s, "epsinas_computations_total");
    char *slow = score_body(ARCH_A, "\"engine\":\"dense\",\"batch_size\":8");
    async_req lead, join[3];
    async_start(&lead, &s, slow);
    assert_true(await_metric(&s, "epsinas_queue_depth", 1) == 1);
    for (int i = 0; i < 3; i++) async_start(&join[i], &s, slow);
    /* cache hits, probes and metrics never wait behind the queue */
    eps_t_hresp h;
    eps_t_post_json(&s, "/v1/score", warm, &h);
    assert_int_equal(h.status, 200);
    assert_true(json_is_true(json_object_get(h.json, "cached")));
    eps_t_hresp_free(&h);
    eps_t_hreq(&s, "GET", "/readyz", NULL, NULL, NULL, &h);
    assert_int_equal(h.status, 200);
    eps_t_hresp_free(&h);
    /* a different request cannot queue: 429 */
    eps_t_hresp r;
    char *other = score_body("|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
                             "\"engine\":\"dense\",\"batch_size\":8");
    eps_t_post_json(&s, "/v1/score", other, &r);
    eps_t_expect_error(&r, 429, "queue_full", NULL);
    assert_string_equal(r.retry_after, "1");
    eps_t_hresp_free(&r);
    async_join(&lead);
    assert_int_equal(lead.r.status, 200);
    double e = json_number_value(json_object_get(lead.r.json, "epsilon"));
    int joined_uncached = 0;
    for (int i = 0; i < 3; i++) {
        async_join(&join[i]);
        assert_int_equal(join[i].r.status, 200);
        assert_true(json_number_value(json_object_get(join[i].r.json, "epsilon")) == e);
        joined_uncached += !json_is_true(json_object_get(join[i].r.json, "cached"));
        eps_t_hresp_free(&join[i].r);
    }
    eps_t_hresp_free(&lead.r);
    assert_int_equal(joined_uncached, 3); /* they waited on the running job, not on the cache */
    assert_true(metric(&s, "epsinas_computations_total") == comp0 + 1);
    assert_true(metric(&s, "epsinas_rejected_total{reason=\"queue_full\"}") == 1);
    free(slow);
    free(other);
    free(warm);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* --cache-entries 2: the third result evicts the least recently used one,
 * which also leaves the by-hash index. */
static void test_cache_bounds(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, "--cache-entries 2"), 0);
    const char *archs[] = {ARCH_A, ARCH_NAN, "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"};
    char hashes[3][33];
    eps_t_hresp r;
    for (int i = 0; i < 3; i++) {
        char *b = score_body(archs[i], "\"batch_size\":16");
        eps_t_post_json(&s, "/v1/score", b, &r);
        assert_int_equal(r.status, 200);
        snprintf(hashes[i], sizeof hashes[i], "%s", eps_t_jstr(r.json, "hash"));
        eps_t_hresp_free(&r);
        free(b);
    }
    assert_true(metric(&s, "epsinas_cache_evictions_total") == 1);
    assert_true(metric(&s, "epsinas_cache_entries") == 2);
    char path[128];
    snprintf(path, sizeof path, "/v1/scores/%s", hashes[0]);
    eps_t_hreq(&s, "GET", path, NULL, NULL, NULL, &r);
    eps_t_expect_error(&r, 404, "not_found", NULL);
    eps_t_hresp_free(&r);
    snprintf(path, sizeof path, "/v1/scores/%s", hashes[2]);
    eps_t_hreq(&s, "GET", path, NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    eps_t_hresp_free(&r);
    char *b = score_body(archs[0], "\"batch_size\":16");
    eps_t_post_json(&s, "/v1/score", b, &r); /* evicted: computed again */
    assert_int_equal(r.status, 200);
    assert_false(json_is_true(json_object_get(r.json, "cached")));
    eps_t_hresp_free(&r);
    free(b);
    assert_true(metric(&s, "epsinas_cache_evictions_total") == 2);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* A tiny deadline. One worker, one batch request with three distinct dense
 * items (one shared deadline): the first job runs and is cancelled at the
 * deadline; the other two are still queued then, so they are never run.
 * All three answer 504. */
/* Issue 17 defect 4: one dense layer of many seconds (1400 -> 1400 channels,
 * 3x3) and an NB201 request queued behind it on the only worker: both get
 * their 504 near the deadline, not when the layer would have ended (the
 * layer checks the cancel flag per block of output channels; the queued job
 * is taken back from the queue at its deadline). */
/* Issue 17 defect 3: the probe's 8-branch graph (about 18 GiB at batch 256
 * in the dense engine) is refused with 413 before anything is allocated. */
static void test_request_memory_413(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, ""), 0);
    eps_t_hresp r;
    eps_t_post_json(&s, "/v1/score",
              "{\"space\":\"graph\",\"engine\":\"dense\",\"input\":{\"channels\":3,\"height\":32,\"width\":32},"
              "\"nodes\":[{\"name\":\"c\",\"op\":\"conv2d\",\"inputs\":[\"input\"],\"out_channels\":32,\"kernel\":1,"
              "\"padding\":112},{\"name\":\"i1\",\"op\":\"identity\",\"inputs\":[\"c\"]},{\"name\":\"i2\",\"op\":\"identity\",\"inputs\":[\"c\"]},{\"name\":\"i3\",\"op\":\"identity\",\"inputs\":[\"c\"]},{\"name\":\"i4\",\"op\":\"identity\",\"inputs\":[\"c\"]},{\"name\":\"i5\",\"op\":\"identity\",\"inputs\":[\"c\"]},{\"name\":\"i6\",\"op\":\"identity\",\"inputs\":[\"c\"]},{\"name\":\"i7\",\"op\":\"identity\",\"inputs\":[\"c\"]},{\"name\":\"i8\",\"op\":\"identity\",\"inputs\":[\"c\"]},"
              "{\"name\":\"s\",\"op\":\"add\",\"inputs\":[\"i1\",\"i2\",\"i3\",\"i4\",\"i5\",\"i6\",\"i7\",\"i8\"]},"
              "{\"name\":\"p\",\"op\":\"global_avgpool\",\"inputs\":[\"s\"]},"
              "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"p\"],\"out_features\":1}],\"output\":\"fc\"}",
              &r);
    eps_t_expect_error(&r, 413, "too_large", "batch_size");
    assert_non_null(strstr(eps_t_jstr(r.json, "error"), "--max-request-memory"));
    eps_t_hresp_free(&r);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

static void test_deadline_long_layer(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, "--workers 1 --deadline-ms 1500"), 0);
    eps_t_hresp r;
    eps_t_post_json(&s, "/v1/score/batch",
              "{\"items\":[{\"space\":\"graph\",\"engine\":\"dense\",\"batch_size\":64,"
              "\"input\":{\"channels\":3,\"height\":32,\"width\":32},\"nodes\":["
              "{\"name\":\"a\",\"op\":\"conv2d\",\"inputs\":[\"input\"],\"out_channels\":1400,\"kernel\":1},"
              "{\"name\":\"b\",\"op\":\"conv2d\",\"inputs\":[\"a\"],\"out_channels\":1400,\"kernel\":3,\"padding\":1},"
              "{\"name\":\"p\",\"op\":\"global_avgpool\",\"inputs\":[\"b\"]},"
              "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"p\"],\"out_features\":1}],\"output\":\"fc\"},"
              "{\"space\":\"nb201\",\"arch\":\"" ARCH_A "\",\"batch_size\":16}]}",
              &r);
    assert_int_equal(r.status, 200);
    json_t *res = json_object_get(r.json, "results");
    for (int i = 0; i < 2; i++) {
        json_t *it = json_array_get(res, (size_t)i);
        if (json_integer_value(json_object_get(it, "status")) != 504) print_message("item %d: %s\n", i, r.body);
        assert_int_equal(json_integer_value(json_object_get(it, "status")), 504);
    }
    double ms = json_number_value(json_object_get(r.json, "elapsed_ms"));
    print_message("# both 504 after %.0f ms (deadline 1500 ms)\n", ms);
    /* the layer alone takes ~18 s here (4.5 s at batch 16); 8 s leaves room for a slow machine */
    assert_true(ms < 8000);
    eps_t_hresp_free(&r);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

static void test_deadline(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, "--workers 1 --deadline-ms 300"), 0);
    double comp0 = metric(&s, "epsinas_computations_total");
    eps_t_hresp r;
    eps_t_post_json(&s, "/v1/score/batch",
              "{\"items\":[{\"space\":\"nb201\",\"arch\":\"" ARCH_A "\",\"engine\":\"dense\",\"batch_size\":64},"
              "{\"space\":\"nb201\",\"arch\":\"" ARCH_NAN "\",\"engine\":\"dense\",\"batch_size\":64},"
              "{\"space\":\"nb201\",\"arch\":\"|skip_connect~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|\","
              "\"engine\":\"dense\",\"batch_size\":64}]}",
              &r);
    assert_int_equal(r.status, 200);
    json_t *res = json_object_get(r.json, "results");
    assert_int_equal(json_array_size(res), 3);
    int ran = 0, queued = 0;
    for (int i = 0; i < 3; i++) {
        json_t *it = json_array_get(res, (size_t)i);
        assert_int_equal(json_integer_value(json_object_get(it, "status")), 504);
        assert_string_equal(eps_t_jstr(it, "code"), "deadline_exceeded");
        ran += strstr(eps_t_jstr(it, "error"), "computed") != NULL;
        queued += strstr(eps_t_jstr(it, "error"), "queue") != NULL;
    }
    assert_int_equal(ran, 1);
    assert_int_equal(queued, 2);
    /* cancelled long before the ~20 s the dense job needs */
    assert_true(json_number_value(json_object_get(r.json, "elapsed_ms")) < 15000);
    eps_t_hresp_free(&r);
    assert_true(metric(&s, "epsinas_computations_total") == comp0 + 1);
    assert_true(metric(&s, "epsinas_rejected_total{reason=\"deadline\"}") == 3);
    /* a single request: 504 with the error shape */
    char *b1 = score_body(ARCH_A, "\"engine\":\"dense\",\"batch_size\":64");
    eps_t_post_json(&s, "/v1/score", b1, &r);
    eps_t_expect_error(&r, 504, "deadline_exceeded", NULL);
    eps_t_hresp_free(&r);
    /* a fast request still gets through afterwards */
    char *b3 = score_body(ARCH_A, "\"batch_size\":16");
    eps_t_post_json(&s, "/v1/score", b3, &r);
    assert_int_equal(r.status, 200);
    eps_t_hresp_free(&r);
    free(b1);
    free(b3);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* SIGTERM with a request in flight: readiness turns 503 on a kept-alive
 * connection, new work gets 503, new connections are refused, the in-flight
 * request completes, and the process exits 0. */
static void test_drain(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, "--workers 1 --shutdown-timeout-ms 300000 --deadline-ms 300000"), 0);
    CURL *keep = curl_easy_init();
    eps_t_hresp r;
    eps_t_hreq_x(keep, &s, "GET", "/v2/health/ready", NULL, NULL, 0, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    eps_t_hresp_free(&r);
    /* In flight for the whole check: the dense engine at batch 64 takes over
     * a second here (test_deadline relies on the same), far longer than the
     * probes below; at batch 8 a loaded machine finished it, the server
     * exited, and the kept-alive probe found no server. */
    char *slow = score_body(ARCH_A, "\"engine\":\"dense\",\"batch_size\":64");
    async_req a;
    async_start(&a, &s, slow);
    assert_true(await_metric(&s, "epsinas_queue_depth", 1) == 1);
    assert_int_equal(kill(s.pid, SIGTERM), 0);
    long st = 0;
    for (int i = 0; i < 500 && st != 503; i++) {
        eps_t_hreq_x(keep, &s, "GET", "/v2/health/ready", NULL, NULL, 0, NULL, 1, &r);
        assert_int_equal(r.curl_rc, 0);
        st = r.status;
        if (st == 503) eps_t_save_response("GET", "/v2/health/ready", &r);
        eps_t_hresp_free(&r);
        if (st != 503) poll(NULL, 0, 10);
    }
    assert_int_equal(st, 503);
    /* The 503 said "Connection: close" (draining), so curl opens a new
     * connection for the next request, and that is refused: no request is
     * ever sent on a connection the server is about to close. */
    eps_t_hreq_x(keep, &s, "POST", "/v1/score", "application/json", "{\"space\":\"nb201\",\"arch\":\"" ARCH_NAN "\"}", -1,
           NULL, 0, &r);
    assert_int_equal(r.curl_rc, CURLE_COULDNT_CONNECT);
    eps_t_hresp_free(&r);
    eps_t_hreq(&s, "GET", "/livez", NULL, NULL, NULL, &r); /* fresh connection: refused */
    assert_int_equal(r.curl_rc, CURLE_COULDNT_CONNECT);
    eps_t_hresp_free(&r);
    async_join(&a);
    assert_int_equal(a.r.status, 200);
    assert_true(json_is_number(json_object_get(a.r.json, "epsilon")));
    eps_t_hresp_free(&a.r);
    curl_easy_cleanup(keep);
    free(slow);
    assert_int_equal(eps_t_srv_wait(&s, 30000), 0);
}

/* ---- robustness: 10,000 mixed requests, 20% malformed or oversized ---- */

#define ROB_ARCHS 150

typedef struct {
    const eps_t_srv *s;
    int from, to;
    int bad_ok, good_ok, failures;
    char first_fail[512];
} rob_worker;

static pthread_mutex_t rob_mu = PTHREAD_MUTEX_INITIALIZER;
static double rob_eps[ROB_ARCHS];
static int rob_seen[ROB_ARCHS];

static void rob_fail(rob_worker *w, int i, const eps_t_hresp *r)
{
    if (!w->failures++)
        snprintf(w->first_fail, sizeof w->first_fail, "request %d: status %ld curl %d body %.300s", i, r->status,
                 r->curl_rc, r->body ? r->body : "");
}

static void *rob_main(void *arg)
{
    rob_worker *w = arg;
    CURL *h = curl_easy_init();
    size_t big_n = 20 * 1024;
    char *big = malloc(big_n + 1);
    memset(big, ' ', big_n);
    big[0] = '[';
    big[big_n - 1] = ']';
    big[big_n] = 0;
    char arch[128], body[512];
    for (int i = w->from; i < w->to; i++) {
        eps_t_hresp r;
        if (i % 5 == 0) { /* malformed or oversized */
            int kind = (i / 5) % 6;
            switch (kind) {
            case 0: eps_t_hreq_x(h, w->s, "POST", "/v1/score", "application/json", "{\"space\": nb201", -1, NULL, 1, &r); break;
            case 1: eps_t_hreq_x(h, w->s, "POST", "/v1/score", "application/json", big, (long)big_n, NULL, 1, &r); break;
            case 2: eps_t_hreq_x(h, w->s, "POST", "/v1/score", "text/plain", "{}", -1, NULL, 1, &r); break;
            case 3:
                eps_t_hreq_x(h, w->s, "POST", "/v1/score", "application/json", "{\"space\":\"nb201\",\"arch\":\"|x~9|\"}", -1,
                       NULL, 1, &r);
                break;
            case 4:
                eps_t_hreq_x(h, w->s, "POST", "/v1/score", "application/json", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]",
                       -1, NULL, 1, &r);
                break;
            default:
                eps_t_hreq_x(h, w->s, "POST", "/v1/score", "application/json", "{\"space\":\"nb201\",\"arch\":\"\xff\xfe\"}",
                       -1, NULL, 1, &r);
                break;
            }
            if (r.status >= 400 && r.status < 500 && r.json && eps_t_jstr(r.json, "error") && eps_t_jstr(r.json, "code"))
                w->bad_ok++;
            else rob_fail(w, i, &r);
        } else {
            int a = (int)(((unsigned)i * 2654435761u) % ROB_ARCHS);
            eps_t_nb201_arch(a * 97 + 13, arch);
            snprintf(body, sizeof body, "{\"space\":\"nb201\",\"arch\":\"%s\",\"batch_size\":32,\"id\":%d}", arch, i);
            eps_t_hreq_x(h, w->s, "POST", "/v1/score", "application/json", body, -1, NULL, 1, &r);
            json_t *e = r.json ? json_object_get(r.json, "epsilon") : NULL;
            int ok = r.status == 200 && e && (json_is_number(e) || json_is_null(e)) &&
                     json_integer_value(json_object_get(r.json, "id")) == i;
            if (ok) {
                double v = json_is_number(e) ? json_number_value(e) : NAN;
                pthread_mutex_lock(&rob_mu);
                if (!rob_seen[a]) rob_seen[a] = 1, rob_eps[a] = v;
                else if (!(v == rob_eps[a] || (isnan(v) && isnan(rob_eps[a])))) ok = 0;
                pthread_mutex_unlock(&rob_mu);
            }
            if (ok) w->good_ok++;
            else rob_fail(w, i, &r);
        }
        eps_t_hresp_free(&r);
    }
    free(big);
    curl_easy_cleanup(h);
    return NULL;
}

static void rob_run(const eps_t_srv *s, int from, int to, int nthreads, int *good, int *bad)
{
    rob_worker w[8];
    pthread_t t[8];
    int per = (to - from) / nthreads;
    for (int k = 0; k < nthreads; k++) {
        memset(&w[k], 0, sizeof w[k]);
        w[k].s = s;
        w[k].from = from + k * per;
        w[k].to = k == nthreads - 1 ? to : from + (k + 1) * per;
        pthread_create(&t[k], NULL, rob_main, &w[k]);
    }
    for (int k = 0; k < nthreads; k++) {
        pthread_join(t[k], NULL);
        if (w[k].failures) print_message("worker %d: %d failures; first: %s\n", k, w[k].failures, w[k].first_fail);
        assert_int_equal(w[k].failures, 0);
        *good += w[k].good_ok;
        *bad += w[k].bad_ok;
    }
}

static void test_robustness(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, "--body-limit 16K --json-depth 16 --log-level warn"), 0);
    int total = eps_t_asan() ? 2000 : 10000, warm = total / 5;
    int good = 0, bad = 0;
    rob_run(&s, 0, warm, 4, &good, &bad);
    long rss0 = rss_kb(s.pid);
    rob_run(&s, warm, total, 4, &good, &bad);
    long rss1 = rss_kb(s.pid);
    print_message("robustness: %d requests, %d valid scored, %d malformed rejected; RSS %ld -> %ld kB\n", total, good,
                  bad, rss0, rss1);
    assert_int_equal(good + bad, total);
    assert_int_equal(bad, total / 5);
    assert_true(rss0 > 0 && rss1 > 0);
    /* Flat: under 16 MiB growth over 8,000 requests. ASan's quarantine holds
     * freed memory by design, so there LeakSanitizer at the server's exit
     * (srv_stop must see exit code 0) is the check instead. */
    if (!eps_t_asan()) assert_true(rss1 - rss0 < 16 * 1024);
    eps_t_hresp r;
    eps_t_hreq(&s, "GET", "/v2/health/live", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    eps_t_hresp_free(&r);
    assert_true(metric(&s, "epsinas_computations_total") <= ROB_ARCHS);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* ------------------------------------------------------------ default batches */

/* The defaults docs/batches.md states: the rows of its "## Defaults" table,
 * "| space | `spec` | ...". Returns how many were read into sp/spec. */
static int doc_defaults(char sp[][32], char spec[][96], int max)
{
    char path[512];
    snprintf(path, sizeof path, "%s/docs/batches.md", eps_t_root());
    char *doc = eps_t_read_file(path);
    if (!doc) fail_msg("cannot read %s", path);
    char *sec = strstr(doc, "\n## Defaults");
    if (!sec) fail_msg("docs/batches.md has no '## Defaults' section");
    int n = 0;
    for (char *line = strchr(sec + 1, '\n'); line && n < max; line = strchr(line + 1, '\n')) {
        if (!strncmp(line, "\n## ", 4)) break;
        char a[32], b[96];
        if (sscanf(line, "\n| %31[a-z0-9] | `%95[^`]` |", a, b) == 2) {
            snprintf(sp[n], 32, "%s", a);
            snprintf(spec[n], 96, "%s", b);
            n++;
        }
    }
    free(doc);
    return n;
}

/* One request of each space, without a batch. */
static const struct {
    const char *space, *body, *cli;
} default_cases[] = {
    {"nb201", "{\"space\":\"nb201\",\"arch\":\"" ARCH_A "\"", "--space nb201 --arch '" ARCH_A "'"},
    {"nb101",
     "{\"space\":\"nb101\",\"matrix\":[[0,1,1,0],[0,0,0,1],[0,0,0,1],[0,0,0,0]],"
     "\"ops\":[\"input\",\"conv3x3-bn-relu\",\"maxpool3x3\",\"output\"]",
     "--space nb101 --matrix '[[0,1,1,0],[0,0,0,1],[0,0,0,1],[0,0,0,0]]' "
     "--ops '[\"input\",\"conv3x3-bn-relu\",\"maxpool3x3\",\"output\"]'"},
    {"nlp",
     "{\"space\":\"nlp\",\"recipe\":{\"f\":{\"op\":\"linear\",\"input\":[\"x\",\"h_prev_0\"]},"
     "\"h_new_0\":{\"op\":\"activation_tanh\",\"input\":[\"f\"]}}",
     "--space nlp --recipe tests/data/nlp/rnn_recipe.json"},
};

static json_t *cli_score(const char *args)
{
    char cmd[2048];
    int rc;
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' score %s --json", eps_t_root(), eps_t_bin(), args);
    char *out = eps_t_run(cmd, &rc);
    if (rc != 0) fail_msg("'%s' exited %d: %s", cmd, rc, out);
    json_t *j = json_loads(out, 0, NULL);
    free(out);
    assert_non_null(j);
    return j;
}

/* The default batch of every space is the one docs/batches.md names: in
 * GET /v1/spaces and /v1/batches, in a score without "batch", in the CLI
 * (score --help and a score without --batch); batch_size N is the same
 * batch in the service and in `score --batch-size N` (ramp is made anew at
 * N, a prefix-stable default is the first N images); an operator's own
 * "default" batch still wins for image spaces. */
static void test_default_batches(void **state)
{
    (void)state;
    char dsp[8][32], dspec[8][96];
    int nd = doc_defaults(dsp, dspec, 8);
    assert_true(nd >= 4); /* nb201, nb101, graph, nlp */
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, ""), 0);
    eps_t_hresp r, rb;
    eps_t_hreq(&s, "GET", "/v1/spaces", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    eps_t_hreq(&s, "GET", "/v1/batches", NULL, NULL, NULL, &rb);
    assert_int_equal(rb.status, 200);
    json_t *spaces = json_object_get(r.json, "spaces"), *bl = json_object_get(rb.json, "batches");
    for (int d = 0; d < nd; d++) {
        const json_t *sp = NULL;
        for (size_t i = 0; i < json_array_size(spaces); i++)
            if (!strcmp(eps_t_jstr(json_array_get(spaces, i), "name"), dsp[d])) sp = json_array_get(spaces, i);
        if (!sp) fail_msg("docs name space %s, /v1/spaces does not", dsp[d]);
        if (strcmp(eps_t_jstr(sp, "default_batch"), dspec[d]))
            fail_msg("%s: /v1/spaces default_batch %s, docs %s", dsp[d], eps_t_jstr(sp, "default_batch"), dspec[d]);
        assert_string_equal(eps_t_jstr(json_object_get(rb.json, "defaults"), dsp[d]), dspec[d]);
        const json_t *b = NULL;
        for (size_t i = 0; i < json_array_size(bl); i++)
            if (!strcmp(eps_t_jstr(json_array_get(bl, i), "name"), dspec[d])) b = json_array_get(bl, i);
        if (!b) fail_msg("%s: default %s is not in /v1/batches", dsp[d], dspec[d]);
        assert_string_equal(eps_t_jstr(b, "source"), dspec[d]);
        assert_true(json_is_true(json_object_get(b, "builtin")));
        assert_true(strlen(eps_t_jstr(b, "generator")) > 20);
        assert_int_equal(strlen(eps_t_jstr(b, "hash")), 16);
    }
    /* a score without batch: the space's default, the same as the CLI's */
    for (size_t c = 0; c < sizeof default_cases / sizeof default_cases[0]; c++) {
        const char *want = NULL;
        for (int d = 0; d < nd; d++)
            if (!strcmp(dsp[d], default_cases[c].space)) want = dspec[d];
        assert_non_null(want);
        char body[1024];
        snprintf(body, sizeof body, "%s}", default_cases[c].body);
        eps_t_hresp q;
        eps_t_post_json(&s, "/v1/score", body, &q);
        if (q.status != 200) fail_msg("%s: %ld %s", default_cases[c].space, q.status, q.body);
        assert_string_equal(eps_t_jstr(q.json, "batch"), want);
        json_t *cli = cli_score(default_cases[c].cli);
        assert_string_equal(eps_t_jstr(cli, "batch"), want);
        assert_string_equal(eps_t_jstr(cli, "batch_hash"), eps_t_jstr(q.json, "batch_hash"));
        assert_true(eps_t_close(json_number_value(json_object_get(q.json, "epsilon")),
                                json_number_value(json_object_get(cli, "epsilon")), 1e-12, 0));
        json_decref(cli);
        eps_t_hresp_free(&q);
        /* batch_size 16: one batch for both (nb201's ramp is i/16, not the first 16 of ramp(256)) */
        snprintf(body, sizeof body, "%s,\"batch_size\":16}", default_cases[c].body);
        eps_t_post_json(&s, "/v1/score", body, &q);
        if (q.status != 200) fail_msg("%s at 16: %ld %s", default_cases[c].space, q.status, q.body);
        char args[1024];
        snprintf(args, sizeof args, "%s --batch-size 16", default_cases[c].cli);
        cli = cli_score(args);
        assert_string_equal(eps_t_jstr(cli, "batch_hash"), eps_t_jstr(q.json, "batch_hash"));
        assert_true(eps_t_close(json_number_value(json_object_get(q.json, "epsilon")),
                                json_number_value(json_object_get(cli, "epsilon")), 1e-12, 0));
        json_decref(cli);
        eps_t_hresp_free(&q);
    }
    eps_t_hresp_free(&r);
    eps_t_hresp_free(&rb);
    assert_int_equal(eps_t_srv_stop(&s), 0);

    /* score --help prints each space's default */
    int rc;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "'%s' score --help", eps_t_bin());
    char *help = eps_t_run(cmd, &rc);
    assert_int_equal(rc, 0);
    for (int d = 0; d < nd; d++) {
        char line[160];
        snprintf(line, sizeof line, "%-6.31s %.95s", dsp[d], dspec[d]);
        if (!strstr(help, line)) fail_msg("score --help lacks '%s'", line);
    }
    free(help);

    /* the operator's own "default" is what image spaces use without "batch" */
    assert_int_equal(eps_t_srv_start(&s, "--batch default=gaussian:3"), 0);
    char body[1024];
    snprintf(body, sizeof body, "%s}", default_cases[1].body);
    eps_t_post_json(&s, "/v1/score", body, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(eps_t_jstr(r.json, "batch"), "default");
    eps_t_hresp_free(&r);
    eps_t_hreq(&s, "GET", "/v1/spaces", NULL, NULL, NULL, &r);
    assert_string_equal(eps_t_jstr(json_array_get(json_object_get(r.json, "spaces"), 0), "default_batch"), "default");
    eps_t_hresp_free(&r);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* openapi.yaml is valid OpenAPI 3.1 and every saved response matches it. */
/* Issue 13 item 3 through the real server: "dataset" selects the network
 * (ImageNet16-120 at 3x16x16), the named batch is drawn at its shape, a
 * file batch of another shape is a 400 naming batch and both shapes, the
 * dataset is in the cache key (CIFAR-100 scores like CIFAR-10 but is never
 * answered from its entry), /v1/spaces lists the datasets. */
static void test_datasets(void **state)
{
    (void)state;
    char p16[300], p32[300], args[800];
    snprintf(p16, sizeof p16, "%s/img16.npy", eps_t_dir());
    snprintf(p32, sizeof p32, "%s/img32.npy", eps_t_dir());
    eps_t_write_npy(p16, 8, 3, 16, 16);
    eps_t_write_npy(p32, 8, 3, 32, 32);
    snprintf(args, sizeof args, "--batch-size 8 --batch f16=npy:%s --batch f32=npy:%s", p16, p32);
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, args), 0);
    eps_t_hresp r;
    eps_t_hreq(&s, "GET", "/v1/spaces", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *nb201 = NULL, *sp;
    size_t i;
    json_array_foreach(json_object_get(r.json, "spaces"), i, sp) if (!strcmp(eps_t_jstr(sp, "name"), "nb201")) nb201 = sp;
    assert_non_null(nb201);
    json_t *ds = json_object_get(nb201, "datasets");
    assert_int_equal(json_array_size(ds), 3);
    const char *names[] = {"cifar10", "cifar100", "imagenet16-120"};
    const int side[] = {32, 32, 16};
    for (int k = 0; k < 3; k++) {
        json_t *d = json_array_get(ds, (size_t)k);
        assert_string_equal(eps_t_jstr(d, "name"), names[k]);
        assert_int_equal(json_integer_value(json_array_get(json_object_get(d, "input"), 1)), side[k]);
        assert_int_equal(json_integer_value(json_array_get(json_object_get(d, "input"), 2)), side[k]);
        assert_int_equal(json_is_true(json_object_get(d, "default")), k == 0);
    }
    eps_t_hresp_free(&r);
    const char *A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";
    /* the default batch (ramp) at 16x16: the CLI's number, then a cache hit */
    char body[1024], extra[200];
    snprintf(extra, sizeof extra, "\"dataset\":\"imagenet16-120\",\"batch_size\":8");
    char *b = score_body(A, extra);
    eps_t_post_json(&s, "/v1/score", b, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(eps_t_jstr(r.json, "dataset"), "imagenet16-120");
    assert_int_equal(json_integer_value(json_object_get(r.json, "macs")), 28487744);
    assert_false(json_is_true(json_object_get(r.json, "cached")));
    double eps_im = json_real_value(json_object_get(r.json, "epsilon"));
    char hash_im[40];
    snprintf(hash_im, sizeof hash_im, "%s", eps_t_jstr(r.json, "hash"));
    eps_t_hresp_free(&r);
    snprintf(body, sizeof body, "--space nb201 --dataset imagenet16-120 --batch-size 8 --arch '%s'", A);
    json_t *cli = cli_score(body);
    assert_true(json_real_value(json_object_get(cli, "epsilon")) == eps_im);
    json_decref(cli);
    eps_t_post_json(&s, "/v1/score", b, &r);
    assert_true(json_is_true(json_object_get(r.json, "cached")));
    eps_t_hresp_free(&r);
    free(b);
    /* cifar10 and cifar100: one network, one batch, two cache entries and hashes */
    double eps10 = 0;
    char hash10[40] = "";
    for (int k = 0; k < 2; k++) {
        snprintf(extra, sizeof extra, "\"dataset\":\"%s\",\"batch_size\":8", names[k]);
        b = score_body(A, extra);
        eps_t_post_json(&s, "/v1/score", b, &r);
        free(b);
        assert_int_equal(r.status, 200);
        assert_false(json_is_true(json_object_get(r.json, "cached")));
        assert_string_equal(eps_t_jstr(r.json, "dataset"), names[k]);
        assert_string_not_equal(eps_t_jstr(r.json, "hash"), hash_im);
        if (k == 0) {
            eps10 = json_real_value(json_object_get(r.json, "epsilon"));
            snprintf(hash10, sizeof hash10, "%s", eps_t_jstr(r.json, "hash"));
        } else {
            assert_true(json_real_value(json_object_get(r.json, "epsilon")) == eps10);
            assert_string_not_equal(eps_t_jstr(r.json, "hash"), hash10);
        }
        eps_t_hresp_free(&r);
    }
    /* file batches keep their shape */
    const struct { const char *dataset, *batch; long status; const char *want; } files[] = {
        {"imagenet16-120", "f16", 200, NULL},
        {"cifar10", "f32", 200, NULL},
        {"imagenet16-120", "f32", 400, "holds 3x32x32 images; the network needs 3x16x16"},
        {"cifar100", "f16", 400, "holds 3x16x16 images; the network needs 3x32x32"},
    };
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        snprintf(extra, sizeof extra, "\"dataset\":\"%s\",\"batch\":\"%s\"", files[k].dataset, files[k].batch);
        b = score_body(A, extra);
        eps_t_post_json(&s, "/v1/score", b, &r);
        free(b);
        if (files[k].status == 200) {
            assert_int_equal(r.status, 200);
            assert_true(json_is_real(json_object_get(r.json, "epsilon")));
        } else {
            eps_t_expect_error(&r, 400, "invalid_input", "batch");
            if (!strstr(eps_t_jstr(r.json, "error"), files[k].want)) fail_msg("'%s' lacks '%s'", eps_t_jstr(r.json, "error"), files[k].want);
        }
        eps_t_hresp_free(&r);
    }
    /* bad values: 400 naming dataset; other spaces have no dataset field */
    b = score_body(A, "\"dataset\":\"imagenet\"");
    eps_t_post_json(&s, "/v1/score", b, &r);
    free(b);
    eps_t_expect_error(&r, 400, "invalid_input", "dataset");
    assert_non_null(strstr(eps_t_jstr(r.json, "error"), "cifar10, cifar100, imagenet16-120"));
    eps_t_hresp_free(&r);
    eps_t_post_json(&s, "/v1/score",
              "{\"space\":\"nb101\",\"matrix\":[[0,1],[0,0]],\"ops\":[\"input\",\"output\"],\"dataset\":\"cifar10\"}", &r);
    eps_t_expect_error(&r, 400, "invalid_input", "dataset");
    eps_t_hresp_free(&r);
    /* a batch of items on three datasets: each answers its own */
    snprintf(body, sizeof body,
             "{\"items\":[{\"space\":\"nb201\",\"arch\":\"%s\",\"batch_size\":8},"
             "{\"space\":\"nb201\",\"arch\":\"%s\",\"batch_size\":8,\"dataset\":\"cifar100\"},"
             "{\"space\":\"nb201\",\"arch\":\"%s\",\"batch_size\":8,\"dataset\":\"imagenet16-120\"}]}",
             A, A, A);
    eps_t_post_json(&s, "/v1/score/batch", body, &r);
    assert_int_equal(r.status, 200);
    for (int k = 0; k < 3; k++) {
        json_t *it = json_array_get(json_object_get(r.json, "results"), (size_t)k);
        assert_string_equal(eps_t_jstr(it, "dataset"), names[k]);
        assert_true(json_real_value(json_object_get(it, "epsilon")) == (k == 2 ? eps_im : eps10));
    }
    eps_t_hresp_free(&r);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

static void test_openapi(void **state)
{
    (void)state;
    eps_t_validate_saved(50);
}

static int setup(void **state)
{
    (void)state;
    return eps_t_server_setup("http");
}

static int teardown(void **state)
{
    (void)state;
    return eps_t_server_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_cache_key_vocab),
        cmocka_unit_test(test_cache_params_per_spelling),
        cmocka_unit_test(test_request_strictness),
        cmocka_unit_test(test_encodings),
        cmocka_unit_test(test_backpressure_single_flight),
        cmocka_unit_test(test_cache_bounds),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_deadline_long_layer),
        cmocka_unit_test(test_request_memory_413),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_robustness),
        cmocka_unit_test(test_default_batches),
        cmocka_unit_test(test_datasets),
        cmocka_unit_test(test_openapi),
    };
    return cmocka_run_group_tests_name("http", tests, setup, teardown);
}
