/* test_jobs.c — sweep jobs end to end against the real binary on loopback:
 * a 300-cell NB201 job equals `epsinas sweep` on the same cells, cancel,
 * the SSE stream read by libcurl, results paging with ?after, kill -9 of
 * the server mid-job and a restart on the same --data-dir (every row
 * exactly once), invalid jobs (400 naming item and field), limits
 * (413/429). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

/* The server process, the HTTP client and the OpenAPI check are
 * tests/util_server.c (shared with test_http.c). */

/* A jobs API request: a JSON body when body is set, an Accept header when
 * accept is. */
static void jreq(const eps_t_srv *s, const char *method, const char *path, const char *body, const char *accept,
                 eps_t_hresp *r)
{
    char ah[100];
    const char *hdrs[2] = {NULL, NULL};
    if (accept) {
        snprintf(ah, sizeof ah, "Accept: %s", accept);
        hdrs[0] = ah;
    }
    eps_t_hreq(s, method, path, body ? "application/json" : NULL, body, hdrs, r);
}

static long jint(const json_t *j, const char *k) { return (long)json_integer_value(json_object_get(j, k)); }

/* {"items":[cells first..first+n-1]<extra>} (malloc'd). */
static char *items_body(int first, int n, const char *extra)
{
    size_t cap = (size_t)n * 140 + 256;
    char *b = malloc(cap), arch[160];
    size_t k = (size_t)snprintf(b, cap, "{\"items\":[");
    for (int i = 0; i < n; i++) {
        eps_t_nb201_arch(first + i, arch);
        k += (size_t)snprintf(b + k, cap - k, "%s{\"space\":\"nb201\",\"arch\":\"%s\"}", i ? "," : "", arch);
    }
    snprintf(b + k, cap - k, "]%s}", extra ? extra : "");
    return b;
}

/* POSTs a job, asserts 202 + Location, returns its id (static buffer). */
static const char *submit(const eps_t_srv *s, const char *body)
{
    static char id[64];
    eps_t_hresp r;
    jreq(s, "POST", "/v1/jobs", body, NULL, &r);
    if (r.status != 202) print_message("submit: %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, 202);
    assert_non_null(r.json);
    snprintf(id, sizeof id, "%s", eps_t_jstr(r.json, "id"));
    char loc[128];
    snprintf(loc, sizeof loc, "/v1/jobs/%s", id);
    assert_string_equal(r.location, loc);
    assert_string_equal(eps_t_jstr(r.json, "status"), "queued");
    eps_t_hresp_free(&r);
    return id;
}

static json_t *get_job(const eps_t_srv *s, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    eps_t_hresp r;
    jreq(s, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = json_incref(r.json);
    eps_t_hresp_free(&r);
    return j;
}

/* Polls (bounded, 60 s) until the job's status is final; returns it. */
static json_t *await_final(const eps_t_srv *s, const char *id)
{
    for (int i = 0; i < 6000; i++) {
        json_t *j = get_job(s, id);
        const char *st = eps_t_jstr(j, "status");
        if (strcmp(st, "queued") && strcmp(st, "running")) return j;
        json_decref(j);
        poll(NULL, 0, 10);
    }
    fail_msg("job %s did not finish within 60 s", id);
    return NULL;
}

static char *results_csv(const eps_t_srv *s, const char *id, long after)
{
    char path[160];
    if (after >= 0) snprintf(path, sizeof path, "/v1/jobs/%s/results?after=%ld", id, after);
    else snprintf(path, sizeof path, "/v1/jobs/%s/results", id);
    eps_t_hresp r;
    jreq(s, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(!strncmp(r.ctype, "text/csv", 8));
    char *b = r.body ? strdup(r.body) : strdup("");
    eps_t_hresp_free(&r);
    return b;
}

/* Parses CSV data lines (after the header) into per-index lines; asserts
 * every index appears at most once and returns the count. */
static long csv_rows(char *csv, char **by_idx, long n)
{
    long rows = 0;
    char *save = NULL;
    char *line = strtok_r(csv, "\n", &save);
    assert_non_null(line);
    assert_string_equal(line, "index,arch,epsilon,nan_reason,params,macs,hash");
    while ((line = strtok_r(NULL, "\n", &save))) {
        long idx = atol(line);
        assert_true(idx >= 0 && idx < n);
        if (by_idx[idx]) print_message("duplicate row %ld\n", idx);
        assert_null(by_idx[idx]);
        by_idx[idx] = line;
        rows++;
    }
    return rows;
}

/* Splits a CSV line without quoted fields in place; returns the count. */
static int split_fields(char *line, char **f, int max)
{
    int k = 0;
    for (char *t = line; k < max;) {
        f[k++] = t;
        t = strchr(t, ',');
        if (!t) break;
        *t++ = 0;
    }
    return k;
}

/* ------------------------------------------------------------ tests */

#define N_CELLS 300

/* The job's rows equal the CLI sweep's: same columns (plus hash), epsilon to
 * the service's 15 significant digits. */
static void test_matches_sweep(void **state)
{
    (void)state;
    char path[400], cmd[1400];
    snprintf(path, sizeof path, "%s/cells.txt", eps_t_dir());
    FILE *f = fopen(path, "w");
    char arch[160];
    for (int i = 0; i < N_CELLS; i++) {
        eps_t_nb201_arch(i, arch);
        fprintf(f, "%s\n", arch);
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s sweep --space nb201 --archs %s --out %s/sweep.csv --batch-size 16 --threads 2 2>&1",
             eps_t_bin(), path, eps_t_dir());
    int code = -1;
    char *out = eps_t_run(cmd, &code);
    if (code != 0) print_message("sweep: %s\n", out);
    assert_int_equal(code, 0);
    free(out);
    snprintf(path, sizeof path, "%s/sweep.csv", eps_t_dir());
    char *sweep = eps_t_read_file(path);
    assert_non_null(sweep);

    eps_t_srv s;
    char args[400];
    snprintf(args, sizeof args, "--workers 2 --batch-size 16 --data-dir %s/d1", eps_t_dir());
    assert_int_equal(eps_t_srv_start(&s, args), 0);
    char *body = items_body(0, N_CELLS, ",\"label\":\"sweep-300\"");
    char id[64];
    snprintf(id, sizeof id, "%s", submit(&s, body));
    free(body);
    json_t *j = await_final(&s, id);
    assert_string_equal(eps_t_jstr(j, "status"), "succeeded");
    assert_int_equal(jint(j, "total"), N_CELLS);
    assert_int_equal(jint(j, "done"), N_CELLS);
    assert_int_equal(jint(j, "errors"), 0);
    assert_string_equal(eps_t_jstr(j, "label"), "sweep-300");
    long nan_job = jint(j, "nan");
    json_decref(j);
    char *csv = results_csv(&s, id, -1);
    char *ours[N_CELLS] = {0}, *theirs[N_CELLS] = {0};
    assert_int_equal(csv_rows(csv, ours, N_CELLS), N_CELLS);
    /* the sweep's file: header without hash */
    long nan_sweep = 0;
    char *save = NULL, *line = strtok_r(sweep, "\n", &save);
    assert_string_equal(line, "index,arch,epsilon,nan_reason,params,macs");
    while ((line = strtok_r(NULL, "\n", &save))) theirs[atol(line)] = line;
    for (int i = 0; i < N_CELLS; i++) {
        assert_non_null(theirs[i]);
        /* index,arch,epsilon,nan_reason,params,macs[,hash]: nb201 archs have no commas */
        char *fa[8] = {0}, *fb[8] = {0};
        assert_int_equal(split_fields(theirs[i], fa, 8), 6);
        assert_int_equal(split_fields(ours[i], fb, 8), 7);
        assert_string_equal(fa[0], fb[0]);
        assert_string_equal(fa[1], fb[1]);
        if (!strcmp(fa[2], "nan")) {
            nan_sweep++;
            assert_string_equal(fb[2], "nan");
        } else {
            double ea = atof(fa[2]), eb = atof(fb[2]);
            if (!eps_t_close(eb, ea, 1e-13, 0)) print_message("row %d: sweep %s job %s\n", i, fa[2], fb[2]);
            assert_true(eps_t_close(eb, ea, 1e-13, 0));
        }
        assert_string_equal(fa[3], fb[3]);
        assert_string_equal(fa[4], fb[4]);
        assert_string_equal(fa[5], fb[5]);
        assert_int_equal(strlen(fb[6]), 32);
    }
    assert_int_equal(nan_sweep, nan_job);
    free(csv);
    free(sweep);

    /* NDJSON of the same job, and paging with after: rows > 99 only */
    char p2[160];
    snprintf(p2, sizeof p2, "/v1/jobs/%s/results?after=99", id);
    eps_t_hresp r;
    jreq(&s, "GET", p2, NULL, "application/x-ndjson", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "application/x-ndjson");
    long n = 0, expect = 100;
    for (char *t = strtok_r(r.body, "\n", &save); t; t = strtok_r(NULL, "\n", &save), n++) {
        json_t *o = json_loads(t, 0, NULL);
        assert_non_null(o);
        assert_int_equal(jint(o, "index"), expect++);
        json_decref(o);
    }
    assert_int_equal(n, N_CELLS - 100);
    eps_t_hresp_free(&r);
    char *tail = results_csv(&s, id, N_CELLS - 1); /* past the end: header only */
    assert_string_equal(tail, "index,arch,epsilon,nan_reason,params,macs,hash\n");
    free(tail);

    /* listed, and the job's results filled the cache: a /v1/score of cell 7 is a hit */
    jreq(&s, "GET", "/v1/jobs", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(eps_t_jstr(json_array_get(json_object_get(r.json, "jobs"), 0), "id"), id);
    eps_t_hresp_free(&r);
    eps_t_nb201_arch(7, arch);
    char sb[300];
    snprintf(sb, sizeof sb, "{\"space\":\"nb201\",\"arch\":\"%s\"}", arch);
    jreq(&s, "POST", "/v1/score", sb, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "cached")));
    eps_t_hresp_free(&r);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* ------------------------------------------------------------ SSE + cancel */

typedef struct {
    const eps_t_srv *s;
    char id[64];
    char *buf;
    size_t len;
    int progress, ended;
    char end_status[32];
    pthread_mutex_t mu;
    pthread_cond_t cv;
} sse_reader;

/* Parses complete "event: X\ndata: {...}\n\n" blocks as they arrive. */
static size_t on_sse(char *p, size_t sz, size_t n, void *ud)
{
    sse_reader *R = ud;
    size_t k = sz * n;
    pthread_mutex_lock(&R->mu);
    char *nb = realloc(R->buf, R->len + k + 1);
    if (!nb) {
        pthread_mutex_unlock(&R->mu);
        return 0;
    }
    R->buf = nb;
    memcpy(R->buf + R->len, p, k);
    R->len += k;
    R->buf[R->len] = 0;
    char *blk;
    while ((blk = strstr(R->buf, "\n\n"))) {
        *blk = 0;
        char ev[32] = "";
        const char *data = strstr(R->buf, "data: ");
        sscanf(R->buf, "event: %31s", ev);
        json_t *d = data ? json_loads(data + 6, 0, NULL) : NULL;
        if (!strcmp(ev, "progress") && d) R->progress++;
        if (!strcmp(ev, "end") && d) {
            R->ended = 1;
            snprintf(R->end_status, sizeof R->end_status, "%s", eps_t_jstr(d, "status"));
        }
        json_decref(d);
        size_t rest = R->len - (size_t)(blk + 2 - R->buf);
        memmove(R->buf, blk + 2, rest + 1);
        R->len = rest;
    }
    pthread_cond_broadcast(&R->cv);
    pthread_mutex_unlock(&R->mu);
    return k;
}

static void *sse_main(void *arg)
{
    sse_reader *R = arg;
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s/v1/jobs/%s/events", R->s->base, R->id);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_sse);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, R);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    pthread_mutex_lock(&R->mu);
    R->ended |= 2; /* stream closed */
    pthread_cond_broadcast(&R->cv);
    pthread_mutex_unlock(&R->mu);
    return NULL;
}

static void test_sse_cancel(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, "--workers 2 --batch-size 64"), 0); /* no --data-dir: in memory */
    char id[64];
    snprintf(id, sizeof id, "%s", submit(&s, "{\"space\":\"nb201\",\"all\":true}"));
    sse_reader R = {.s = &s};
    snprintf(R.id, sizeof R.id, "%s", id);
    pthread_mutex_init(&R.mu, NULL);
    pthread_cond_init(&R.cv, NULL);
    pthread_t t;
    pthread_create(&t, NULL, sse_main, &R);
    /* wait (bounded by the reader's 60 s timeout) for two progress events */
    pthread_mutex_lock(&R.mu);
    while (R.progress < 2 && !R.ended) pthread_cond_wait(&R.cv, &R.mu);
    int progress = R.progress;
    pthread_mutex_unlock(&R.mu);
    assert_true(progress >= 2);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    eps_t_hresp r;
    jreq(&s, "DELETE", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    eps_t_hresp_free(&r);
    pthread_join(t, NULL);
    assert_true(R.ended & 1);
    assert_string_equal(R.end_status, "cancelled");
    free(R.buf);
    json_t *j = get_job(&s, id);
    assert_string_equal(eps_t_jstr(j, "status"), "cancelled");
    long done = jint(j, "done");
    assert_true(done > 0 && done < 15625);
    json_decref(j);
    /* the rows so far stay readable, each once; paging with after continues exactly */
    char *csv = results_csv(&s, id, -1);
    char **by = calloc(15625, sizeof *by);
    assert_int_equal(csv_rows(csv, by, 15625), done);
    long mid = -1, seen = 0;
    for (long i = 0; i < 15625; i++)
        if (by[i] && ++seen == done / 2) mid = i;
    char *rest = results_csv(&s, id, mid);
    char **by2 = calloc(15625, sizeof *by2);
    assert_int_equal(csv_rows(rest, by2, 15625), done - done / 2);
    for (long i = 0; i < 15625; i++) assert_true(!by2[i] || (i > mid && by[i]));
    free(by);
    free(by2);
    free(csv);
    free(rest);
    /* cancelling again is harmless; unknown ids are 404 */
    jreq(&s, "DELETE", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    eps_t_hresp_free(&r);
    jreq(&s, "GET", "/v1/jobs/nosuchjob/results", NULL, NULL, &r);
    eps_t_expect_error(&r, 404, "not_found", "id");
    eps_t_hresp_free(&r);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* ------------------------------------------------------------ kill -9 */

/* Long enough that the kill lands mid-job with margin, short under ASan. */
#define N_KILL_MAX 4000

static void test_kill9_resume(void **state)
{
    (void)state;
    eps_t_srv s;
    char args[400];
    int N_KILL = eps_t_asan() ? 600 : N_KILL_MAX;
    snprintf(args, sizeof args, "--workers 1 --batch-size %d --data-dir %s/d2", eps_t_asan() ? 64 : 256, eps_t_dir());
    assert_int_equal(eps_t_srv_start(&s, args), 0);
    char *body = items_body(1000, N_KILL, NULL);
    char id[64];
    snprintf(id, sizeof id, "%s", submit(&s, body));
    free(body);
    long done = 0;
    for (int i = 0; i < 3000 && done < 40; i++) {
        json_t *j = get_job(&s, id);
        done = jint(j, "done");
        json_decref(j);
        if (done < 40) poll(NULL, 0, 10);
    }
    assert_true(done >= 40);
    eps_t_srv_kill9(&s);
    assert_true(done < N_KILL); /* it really died mid-job */
    assert_int_equal(eps_t_srv_start(&s, args), 0);
    json_t *j = await_final(&s, id);
    assert_string_equal(eps_t_jstr(j, "status"), "succeeded");
    assert_int_equal(jint(j, "done"), N_KILL);
    json_decref(j);
    char *csv = results_csv(&s, id, -1);
    char *by[N_KILL_MAX] = {0};
    assert_int_equal(csv_rows(csv, by, N_KILL), N_KILL); /* each index < N_KILL exactly once */
    for (int i = 0; i < N_KILL; i++) {
        char arch[160], want[200];
        eps_t_nb201_arch(1000 + i, arch);
        snprintf(want, sizeof want, "%d,%s,", i, arch);
        assert_true(!strncmp(by[i], want, strlen(want)));
    }
    free(csv);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* ------------------------------------------------------------ validation, limits */

static void test_invalid_and_limits(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, "--workers 1 --batch-size 64 --max-jobs 1 --max-job-items 400"), 0);
    eps_t_hresp r;
    char arch[160], body[1200];
    eps_t_nb201_arch(3, arch);
    snprintf(body, sizeof body, "{\"items\":[{\"space\":\"nb201\",\"arch\":\"%s\"},{\"space\":\"nb201\",\"arch\":\"|bogus~0|\"}]}", arch);
    jreq(&s, "POST", "/v1/jobs", body, NULL, &r);
    eps_t_expect_error(&r, 400, "invalid_input", "items[1].arch");
    assert_non_null(strstr(eps_t_jstr(r.json, "error"), "item 1"));
    eps_t_hresp_free(&r);
    snprintf(body, sizeof body, "{\"items\":[{\"space\":\"nb201\",\"arch\":\"%s\",\"batch_size\":0}]}", arch);
    jreq(&s, "POST", "/v1/jobs", body, NULL, &r);
    eps_t_expect_error(&r, 400, "invalid_input", "items[0].batch_size");
    eps_t_hresp_free(&r);
    snprintf(body, sizeof body, "{\"items\":[{\"space\":\"nb201\",\"arch\":\"%s\"}],\"weights\":[1,1]}", arch);
    jreq(&s, "POST", "/v1/jobs", body, NULL, &r); /* shared fields are checked per item */
    eps_t_expect_error(&r, 400, "invalid_input", "items[0].weights");
    eps_t_hresp_free(&r);
    jreq(&s, "POST", "/v1/jobs", "{\"space\":\"graph\",\"all\":true}", NULL, &r);
    eps_t_expect_error(&r, 400, "invalid_input", "space");
    assert_non_null(strstr(eps_t_jstr(r.json, "error"), "not enumerable"));
    eps_t_hresp_free(&r);
    jreq(&s, "POST", "/v1/jobs", "{\"items\":[", NULL, &r);
    eps_t_expect_error(&r, 400, "invalid_json", NULL);
    eps_t_hresp_free(&r);
    jreq(&s, "POST", "/v1/jobs", "{\"items\":[]}", NULL, &r);
    eps_t_expect_error(&r, 400, "invalid_input", "items");
    eps_t_hresp_free(&r);
    jreq(&s, "POST", "/v1/jobs", "{\"items\":[{}], \"colour\":1}", NULL, &r);
    eps_t_expect_error(&r, 400, "invalid_input", "colour");
    eps_t_hresp_free(&r);
    /* 15,625 cells > --max-job-items 400 */
    jreq(&s, "POST", "/v1/jobs", "{\"space\":\"nb201\",\"all\":true}", NULL, &r);
    eps_t_expect_error(&r, 413, "too_large", "all");
    eps_t_hresp_free(&r);
    char *big = items_body(0, 401, NULL);
    jreq(&s, "POST", "/v1/jobs", big, NULL, &r);
    free(big);
    eps_t_expect_error(&r, 413, "too_large", "items");
    eps_t_hresp_free(&r);
    /* --max-jobs 1: a second job while the first runs is 429 */
    big = items_body(2000, 400, NULL);
    char id[64];
    snprintf(id, sizeof id, "%s", submit(&s, big));
    jreq(&s, "POST", "/v1/jobs", big, NULL, &r);
    eps_t_expect_error(&r, 429, "too_many_jobs", NULL);
    assert_string_equal(r.retry_after, "1");
    eps_t_hresp_free(&r);
    free(big);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    jreq(&s, "PUT", path, "{}", NULL, &r);
    eps_t_expect_error(&r, 405, "method_not_allowed", NULL);
    eps_t_hresp_free(&r);
    jreq(&s, "DELETE", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    eps_t_hresp_free(&r);
    json_decref(await_final(&s, id));
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* Every job item passes the same checks as a /v1/score request (one
 * function, eps_score_req_prepare): the same request gives the same status
 * and message, the job's field prefixed with items[0]. */
static void test_items_checked_as_score(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\"weights\":[1e-50,1]",  /* finite but not a normal float32 */
        "\"weights\":[1,1]",      "\"weights\":\"1,2\"",      "\"engine\":\"turbo\"",
        "\"batch\":\"nope\"",    "\"batch\":7",               "\"batch_size\":0",
        "\"batch_size\":2.5",     "\"batch_size\":\"x\"",     "\"arch\":\"|bogus~0|\"",
        "\"dataset\":\"imagenet\"", "\"dataset\":16",
    };
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, "--workers 1 --batch-size 64"), 0);
    char arch[160], item[600], body[800];
    eps_t_nb201_arch(7, arch);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* the bad-arch case brings its own arch (duplicate keys are refused) */
        if (strstr(bad[i], "\"arch\"")) snprintf(item, sizeof item, "{\"space\":\"nb201\",%s}", bad[i]);
        else snprintf(item, sizeof item, "{\"space\":\"nb201\",\"arch\":\"%s\",%s}", arch, bad[i]);
        eps_t_hresp one, job;
        eps_t_post_json(&s, "/v1/score", item, &one);
        snprintf(body, sizeof body, "{\"items\":[%s]}", item);
        jreq(&s, "POST", "/v1/jobs", body, NULL, &job);
        const char *code = eps_t_expect_error(&one, 400, NULL, NULL);
        eps_t_expect_error(&job, 400, code, NULL);
        const char *f1 = eps_t_jstr(one.json, "field");
        char want_field[96], want_msg[700];
        snprintf(want_field, sizeof want_field, "items[0]%s%s", f1 && *f1 ? "." : "", f1 ? f1 : "");
        snprintf(want_msg, sizeof want_msg, "item 0: %s", eps_t_jstr(one.json, "error"));
        if (!eps_t_jstr(job.json, "field") || strcmp(eps_t_jstr(job.json, "field"), want_field) ||
            strcmp(eps_t_jstr(job.json, "error"), want_msg))
            fail_msg("%s: /v1/score says %s, the job says %s", bad[i], one.body, job.body);
        eps_t_hresp_free(&one);
        eps_t_hresp_free(&job);
    }
    /* An integral real batch size is an integer for both (JSON Schema). */
    snprintf(body, sizeof body, "{\"items\":[{\"space\":\"nb201\",\"arch\":\"%s\",\"batch_size\":32.0}]}", arch);
    json_t *j = await_final(&s, submit(&s, body));
    assert_string_equal(eps_t_jstr(j, "status"), "succeeded");
    json_decref(j);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* A job's shared "dataset" reaches every item (issue 13 item 3): rows carry
 * the ImageNet16-120 hash and the epsilon /v1/score answers for it, and a
 * dataset for a space without datasets is refused before anything runs. */
static void test_shared_dataset(void **state)
{
    (void)state;
    eps_t_srv s;
    assert_int_equal(eps_t_srv_start(&s, "--workers 1 --batch-size 32"), 0);
    enum { N = 12 };
    char *body = items_body(100, N, ",\"dataset\":\"imagenet16-120\"");
    char id[64];
    snprintf(id, sizeof id, "%s", submit(&s, body));
    free(body);
    json_t *j = await_final(&s, id);
    assert_string_equal(eps_t_jstr(j, "status"), "succeeded");
    json_decref(j);
    char *csv = results_csv(&s, id, -1);
    char *by_idx[N] = {0};
    assert_int_equal(csv_rows(csv, by_idx, N), N);
    for (int i = 0; i < N; i++) {
        char arch[160], one[400], *f[8] = {0};
        eps_t_nb201_arch(100 + i, arch);
        snprintf(one, sizeof one, "{\"space\":\"nb201\",\"arch\":\"%s\",\"dataset\":\"imagenet16-120\"}", arch);
        eps_t_hresp r;
        eps_t_post_json(&s, "/v1/score", one, &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(split_fields(by_idx[i], f, 8), 7);
        assert_string_equal(f[6], eps_t_jstr(r.json, "hash"));
        assert_string_equal(eps_t_jstr(r.json, "dataset"), "imagenet16-120");
        assert_true(json_is_true(json_object_get(r.json, "cached"))); /* the job's own entry */
        if (strcmp(f[2], "nan")) assert_true(fabs(atof(f[2]) - json_number_value(json_object_get(r.json, "epsilon"))) <= 1e-12);
        else assert_true(json_is_null(json_object_get(r.json, "epsilon")));
        eps_t_hresp_free(&r);
    }
    free(csv);
    eps_t_hresp r;
    jreq(&s, "POST", "/v1/jobs",
         "{\"items\":[{\"space\":\"nb101\",\"matrix\":[[0,1],[0,0]],\"ops\":[\"input\",\"output\"]}],"
         "\"dataset\":\"cifar10\"}",
         NULL, &r);
    eps_t_expect_error(&r, 400, "invalid_input", "items[0].dataset");
    eps_t_hresp_free(&r);
    assert_int_equal(eps_t_srv_stop(&s), 0);
}

/* openapi.yaml is valid and every response saved above matches it. */
static void test_openapi(void **state)
{
    (void)state;
    eps_t_validate_saved(20);
}

static int setup(void **state)
{
    (void)state;
    return eps_t_server_setup("jobs");
}

static int teardown(void **state)
{
    (void)state;
    return eps_t_server_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_sweep),
        cmocka_unit_test(test_sse_cancel),
        cmocka_unit_test(test_kill9_resume),
        cmocka_unit_test(test_invalid_and_limits),
        cmocka_unit_test(test_items_checked_as_score),
        cmocka_unit_test(test_shared_dataset),
        cmocka_unit_test(test_openapi),
    };
    return cmocka_run_group_tests_name("jobs", tests, setup, teardown);
}
