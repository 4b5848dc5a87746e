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

static char g_dir[256];
static pid_t g_live[16];
static int g_n_live;

static void forget_pid(pid_t pid)
{
    for (int i = 0; i < g_n_live; i++)
        if (g_live[i] == pid) g_live[i] = g_live[--g_n_live];
}

/* ------------------------------------------------------------ server process (as in test_http.c) */

typedef struct {
    pid_t pid;
    int port;
    int out_fd;
    char base[64];
    char log[300];
} srv;

static int srv_start(srv *s, const char *args)
{
    memset(s, 0, sizeof *s);
    static int n_srv;
    snprintf(s->log, sizeof s->log, "%s/server%d.log", g_dir, ++n_srv);
    char *copy = strdup(args ? args : "");
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)eps_t_bin();
    argv[argc++] = "serve";
    argv[argc++] = "--listen";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--port";
    argv[argc++] = "0";
    for (char *save = NULL, *t = strtok_r(copy, " ", &save); t && argc < 62; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    argv[argc] = NULL;
    int p[2];
    if (pipe(p) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(p[1], 1);
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) dup2(fd, 2);
        close(p[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    free(copy);
    s->pid = pid;
    if (g_n_live < 16) g_live[g_n_live++] = pid;
    s->out_fd = p[0];
    char line[256];
    size_t n = 0;
    for (int tries = 0; tries < 600 && n < sizeof line - 1; tries++) {
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t k = read(p[0], line + n, 1);
        if (k <= 0) break;
        if (line[n] == '\n') {
            line[n] = 0;
            char *colon = strrchr(line, ':');
            if (strncmp(line, "listening on ", 13) || !colon) break;
            s->port = atoi(colon + 1);
            snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
            return 0;
        }
        n++;
    }
    print_message("server did not start; log %s\n", s->log);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    forget_pid(pid);
    return -1;
}

static int srv_wait(srv *s, int timeout_ms)
{
    int st;
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            forget_pid(s->pid);
            close(s->out_fd);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        }
        poll(NULL, 0, 20);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    forget_pid(s->pid);
    close(s->out_fd);
    return -1;
}

static int srv_stop(srv *s)
{
    kill(s->pid, SIGTERM);
    return srv_wait(s, 30000);
}

static void srv_kill9(srv *s)
{
    kill(s->pid, SIGKILL);
    srv_wait(s, 10000);
}

/* ------------------------------------------------------------ HTTP client */

typedef struct {
    long status;
    int curl_rc;
    char *body;
    size_t len;
    char ctype[128], location[160], retry_after[32];
    json_t *json;
} hresp;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    hresp *r = ud;
    size_t k = sz * n;
    if (r->len + k > (16u << 20)) return 0;
    char *nb = realloc(r->body, r->len + k + 1);
    if (!nb) return 0;
    memcpy(nb + r->len, p, k);
    r->len += k;
    nb[r->len] = 0;
    r->body = nb;
    return k;
}

static void grab(const char *line, size_t n, const char *name, char *dst, size_t dn)
{
    size_t ln = strlen(name);
    if (n <= ln + 1 || strncasecmp(line, name, ln) || line[ln] != ':') return;
    const char *v = line + ln + 1;
    size_t vn = n - ln - 1;
    while (vn && (*v == ' ')) v++, vn--;
    while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n')) vn--;
    snprintf(dst, dn, "%.*s", (int)vn, v);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    hresp *r = ud;
    size_t k = sz * n;
    grab(p, k, "Content-Type", r->ctype, sizeof r->ctype);
    grab(p, k, "Location", r->location, sizeof r->location);
    grab(p, k, "Retry-After", r->retry_after, sizeof r->retry_after);
    return k;
}

static void hresp_free(hresp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

static void save(const char *method, const char *path, const hresp *r);

static void hreq(const srv *s, const char *method, const char *path, const char *body, const char *accept, hresp *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    if (body) hl = curl_slist_append(hl, "Content-Type: application/json");
    char ah[100];
    if (accept) {
        snprintf(ah, sizeof ah, "Accept: %s", accept);
        hl = curl_slist_append(hl, ah);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    r->curl_rc = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    if (r->body && !strncmp(r->ctype, "application/json", 16)) r->json = json_loadb(r->body, r->len, 0, NULL);
    if (r->curl_rc == 0) save(method, path, r);
}

/* Saves {method, path, status, content_type, body} for the OpenAPI check
 * (path without the query: the validator matches path templates). */
static int g_saved;
static void save(const char *method, const char *path, const hresp *r)
{
    char p[256];
    snprintf(p, sizeof p, "%.*s", (int)strcspn(path, "?"), path);
    json_t *body = r->json ? json_incref(r->json) : r->len ? json_string(r->body) : json_null();
    if (!body) body = json_string("<non-UTF-8 body>");
    json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:o}", "method", method, "path", p, "status", (int)r->status,
                          "content_type", r->ctype, "body", body);
    char fn[512];
    snprintf(fn, sizeof fn, "%s/resp/%04d.json", g_dir, g_saved++);
    json_dump_file(o, fn, JSON_COMPACT);
    json_decref(o);
}

static const char *jstr(const json_t *j, const char *k) { return json_string_value(json_object_get(j, k)); }
static long jint(const json_t *j, const char *k) { return (long)json_integer_value(json_object_get(j, k)); }

static void expect_error(const hresp *r, long status, const char *code, const char *field)
{
    if (r->status != status || !r->json) print_message("expected %ld, got %ld: %s\n", status, r->status, r->body);
    assert_int_equal(r->status, status);
    assert_non_null(r->json);
    assert_non_null(jstr(r->json, "error"));
    if (code) assert_string_equal(jstr(r->json, "code"), code);
    if (field) {
        assert_non_null(jstr(r->json, "field"));
        assert_string_equal(jstr(r->json, "field"), field);
    }
}

static void nb201_arch(int index, char *buf)
{
    static const char *const ops[] = {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"};
    int o[6];
    for (int e = 0; e < 6; e++, index /= 5) o[e] = index % 5;
    sprintf(buf, "|%s~0|+|%s~0|%s~1|+|%s~0|%s~1|%s~2|", ops[o[0]], ops[o[1]], ops[o[2]], ops[o[3]], ops[o[4]], ops[o[5]]);
}

/* {"items":[cells first..first+n-1]<extra>} (malloc'd). */
static char *items_body(int first, int n, const char *extra)
{
    size_t cap = (size_t)n * 140 + 256;
    char *b = malloc(cap), arch[160];
    size_t k = (size_t)snprintf(b, cap, "{\"items\":[");
    for (int i = 0; i < n; i++) {
        nb201_arch(first + i, arch);
        k += (size_t)snprintf(b + k, cap - k, "%s{\"space\":\"nb201\",\"arch\":\"%s\"}", i ? "," : "", arch);
    }
    snprintf(b + k, cap - k, "]%s}", extra ? extra : "");
    return b;
}

/* POSTs a job, asserts 202 + Location, returns its id (static buffer). */
static const char *submit(const srv *s, const char *body)
{
    static char id[64];
    hresp r;
    hreq(s, "POST", "/v1/jobs", body, NULL, &r);
    if (r.status != 202) print_message("submit: %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, 202);
    assert_non_null(r.json);
    snprintf(id, sizeof id, "%s", jstr(r.json, "id"));
    char loc[128];
    snprintf(loc, sizeof loc, "/v1/jobs/%s", id);
    assert_string_equal(r.location, loc);
    assert_string_equal(jstr(r.json, "status"), "queued");
    hresp_free(&r);
    return id;
}

static json_t *get_job(const srv *s, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    hresp r;
    hreq(s, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = json_incref(r.json);
    hresp_free(&r);
    return j;
}

/* Polls (bounded, 60 s) until the job's status is final; returns it. */
static json_t *await_final(const srv *s, const char *id)
{
    for (int i = 0; i < 6000; i++) {
        json_t *j = get_job(s, id);
        const char *st = jstr(j, "status");
        if (strcmp(st, "queued") && strcmp(st, "running")) return j;
        json_decref(j);
        poll(NULL, 0, 10);
    }
    fail_msg("job %s did not finish within 60 s", id);
    return NULL;
}

static char *results_csv(const srv *s, const char *id, long after)
{
    char path[160];
    if (after >= 0) snprintf(path, sizeof path, "/v1/jobs/%s/results?after=%ld", id, after);
    else snprintf(path, sizeof path, "/v1/jobs/%s/results", id);
    hresp r;
    hreq(s, "GET", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(!strncmp(r.ctype, "text/csv", 8));
    char *b = r.body ? strdup(r.body) : strdup("");
    hresp_free(&r);
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
    snprintf(path, sizeof path, "%s/cells.txt", g_dir);
    FILE *f = fopen(path, "w");
    char arch[160];
    for (int i = 0; i < N_CELLS; i++) {
        nb201_arch(i, arch);
        fprintf(f, "%s\n", arch);
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s sweep --space nb201 --archs %s --out %s/sweep.csv --batch-size 16 --threads 2 2>&1",
             eps_t_bin(), path, g_dir);
    int code = -1;
    char *out = eps_t_run(cmd, &code);
    if (code != 0) print_message("sweep: %s\n", out);
    assert_int_equal(code, 0);
    free(out);
    snprintf(path, sizeof path, "%s/sweep.csv", g_dir);
    char *sweep = eps_t_read_file(path);
    assert_non_null(sweep);

    srv s;
    char args[400];
    snprintf(args, sizeof args, "--workers 2 --batch-size 16 --data-dir %s/d1", g_dir);
    assert_int_equal(srv_start(&s, args), 0);
    char *body = items_body(0, N_CELLS, ",\"label\":\"sweep-300\"");
    char id[64];
    snprintf(id, sizeof id, "%s", submit(&s, body));
    free(body);
    json_t *j = await_final(&s, id);
    assert_string_equal(jstr(j, "status"), "succeeded");
    assert_int_equal(jint(j, "total"), N_CELLS);
    assert_int_equal(jint(j, "done"), N_CELLS);
    assert_int_equal(jint(j, "errors"), 0);
    assert_string_equal(jstr(j, "label"), "sweep-300");
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
    hresp r;
    hreq(&s, "GET", p2, NULL, "application/x-ndjson", &r);
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
    hresp_free(&r);
    char *tail = results_csv(&s, id, N_CELLS - 1); /* past the end: header only */
    assert_string_equal(tail, "index,arch,epsilon,nan_reason,params,macs,hash\n");
    free(tail);

    /* listed, and the job's results filled the cache: a /v1/score of cell 7 is a hit */
    hreq(&s, "GET", "/v1/jobs", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(json_array_get(json_object_get(r.json, "jobs"), 0), "id"), id);
    hresp_free(&r);
    nb201_arch(7, arch);
    char sb[300];
    snprintf(sb, sizeof sb, "{\"space\":\"nb201\",\"arch\":\"%s\"}", arch);
    hreq(&s, "POST", "/v1/score", sb, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "cached")));
    hresp_free(&r);
    assert_int_equal(srv_stop(&s), 0);
}

/* ------------------------------------------------------------ SSE + cancel */

typedef struct {
    const srv *s;
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
            snprintf(R->end_status, sizeof R->end_status, "%s", jstr(d, "status"));
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
    srv s;
    assert_int_equal(srv_start(&s, "--workers 2 --batch-size 64"), 0); /* no --data-dir: in memory */
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
    hresp r;
    hreq(&s, "DELETE", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    hresp_free(&r);
    pthread_join(t, NULL);
    assert_true(R.ended & 1);
    assert_string_equal(R.end_status, "cancelled");
    free(R.buf);
    json_t *j = get_job(&s, id);
    assert_string_equal(jstr(j, "status"), "cancelled");
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
    hreq(&s, "DELETE", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    hresp_free(&r);
    hreq(&s, "GET", "/v1/jobs/nosuchjob/results", NULL, NULL, &r);
    expect_error(&r, 404, "not_found", "id");
    hresp_free(&r);
    assert_int_equal(srv_stop(&s), 0);
}

/* ------------------------------------------------------------ kill -9 */

/* Long enough that the kill lands mid-job with margin, short under ASan. */
#define N_KILL_MAX 4000

static void test_kill9_resume(void **state)
{
    (void)state;
    srv s;
    char args[400];
    int N_KILL = eps_t_asan() ? 600 : N_KILL_MAX;
    snprintf(args, sizeof args, "--workers 1 --batch-size %d --data-dir %s/d2", eps_t_asan() ? 64 : 256, g_dir);
    assert_int_equal(srv_start(&s, args), 0);
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
    srv_kill9(&s);
    assert_true(done < N_KILL); /* it really died mid-job */
    assert_int_equal(srv_start(&s, args), 0);
    json_t *j = await_final(&s, id);
    assert_string_equal(jstr(j, "status"), "succeeded");
    assert_int_equal(jint(j, "done"), N_KILL);
    json_decref(j);
    char *csv = results_csv(&s, id, -1);
    char *by[N_KILL_MAX] = {0};
    assert_int_equal(csv_rows(csv, by, N_KILL), N_KILL); /* each index < N_KILL exactly once */
    for (int i = 0; i < N_KILL; i++) {
        char arch[160], want[200];
        nb201_arch(1000 + i, arch);
        snprintf(want, sizeof want, "%d,%s,", i, arch);
        assert_true(!strncmp(by[i], want, strlen(want)));
    }
    free(csv);
    assert_int_equal(srv_stop(&s), 0);
}

/* ------------------------------------------------------------ validation, limits */

static void test_invalid_and_limits(void **state)
{
    (void)state;
    srv s;
    assert_int_equal(srv_start(&s, "--workers 1 --batch-size 64 --max-jobs 1 --max-job-items 400"), 0);
    hresp r;
    char arch[160], body[1200];
    nb201_arch(3, arch);
    snprintf(body, sizeof body, "{\"items\":[{\"space\":\"nb201\",\"arch\":\"%s\"},{\"space\":\"nb201\",\"arch\":\"|bogus~0|\"}]}", arch);
    hreq(&s, "POST", "/v1/jobs", body, NULL, &r);
    expect_error(&r, 400, "invalid_input", "items[1].arch");
    assert_non_null(strstr(jstr(r.json, "error"), "item 1"));
    hresp_free(&r);
    snprintf(body, sizeof body, "{\"items\":[{\"space\":\"nb201\",\"arch\":\"%s\",\"batch_size\":0}]}", arch);
    hreq(&s, "POST", "/v1/jobs", body, NULL, &r);
    expect_error(&r, 400, "invalid_input", "items[0].batch_size");
    hresp_free(&r);
    snprintf(body, sizeof body, "{\"items\":[{\"space\":\"nb201\",\"arch\":\"%s\"}],\"weights\":[1,1]}", arch);
    hreq(&s, "POST", "/v1/jobs", body, NULL, &r); /* shared fields are checked per item */
    expect_error(&r, 400, "invalid_input", "items[0].weights");
    hresp_free(&r);
    hreq(&s, "POST", "/v1/jobs", "{\"space\":\"graph\",\"all\":true}", NULL, &r);
    expect_error(&r, 400, "invalid_input", "space");
    assert_non_null(strstr(jstr(r.json, "error"), "not enumerable"));
    hresp_free(&r);
    hreq(&s, "POST", "/v1/jobs", "{\"items\":[", NULL, &r);
    expect_error(&r, 400, "invalid_json", NULL);
    hresp_free(&r);
    hreq(&s, "POST", "/v1/jobs", "{\"items\":[]}", NULL, &r);
    expect_error(&r, 400, "invalid_input", "items");
    hresp_free(&r);
    hreq(&s, "POST", "/v1/jobs", "{\"items\":[{}], \"colour\":1}", NULL, &r);
    expect_error(&r, 400, "invalid_input", "colour");
    hresp_free(&r);
    /* 15,625 cells > --max-job-items 400 */
    hreq(&s, "POST", "/v1/jobs", "{\"space\":\"nb201\",\"all\":true}", NULL, &r);
    expect_error(&r, 413, "too_large", "all");
    hresp_free(&r);
    char *big = items_body(0, 401, NULL);
    hreq(&s, "POST", "/v1/jobs", big, NULL, &r);
    free(big);
    expect_error(&r, 413, "too_large", "items");
    hresp_free(&r);
    /* --max-jobs 1: a second job while the first runs is 429 */
    big = items_body(2000, 400, NULL);
    char id[64];
    snprintf(id, sizeof id, "%s", submit(&s, big));
    hreq(&s, "POST", "/v1/jobs", big, NULL, &r);
    expect_error(&r, 429, "too_many_jobs", NULL);
    assert_string_equal(r.retry_after, "1");
    hresp_free(&r);
    free(big);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    hreq(&s, "PUT", path, "{}", NULL, &r);
    expect_error(&r, 405, "method_not_allowed", NULL);
    hresp_free(&r);
    hreq(&s, "DELETE", path, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    hresp_free(&r);
    json_decref(await_final(&s, id));
    assert_int_equal(srv_stop(&s), 0);
}

/* openapi.yaml is valid and every response saved above matches it. */
static void test_openapi(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/node/validate.sh' '%s/resp' 2>&1", eps_t_root(), g_dir);
    int rc;
    char *out = eps_t_run(cmd, &rc);
    print_message("%s", out);
    if (rc == 77) {
        free(out);
        print_message("SKIP: node/npm not installed: cannot validate openapi.yaml\n");
        skip();
    }
    assert_non_null(strstr(out, " 0 invalid"));
    assert_true(g_saved > 20);
    assert_int_equal(rc, 0);
    free(out);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/epsinas-test-jobs-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    char d[300];
    snprintf(d, sizeof d, "%s/resp", g_dir);
    mkdir(d, 0755);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    if (access(eps_t_bin(), X_OK) != 0) {
        fprintf(stderr, "epsinas binary not found at %s (set EPS_BIN)\n", eps_t_bin());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    while (g_n_live > 0) {
        pid_t pid = g_live[--g_n_live];
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (!getenv("EPS_KEEP_TMP")) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0) return -1;
    }
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_sweep),
        cmocka_unit_test(test_sse_cancel),
        cmocka_unit_test(test_kill9_resume),
        cmocka_unit_test(test_invalid_and_limits),
        cmocka_unit_test(test_openapi),
    };
    return cmocka_run_group_tests_name("jobs", tests, setup, teardown);
}
