/* eps_http_jobs.c — the /v1/jobs handlers (see http_jobs.h). Owns the
 * streaming responses: results pages read from the job store as the client
 * consumes them (never the whole result in memory), and event streams,
 * which suspend their connection between events; a ticker thread resumes
 * them a few times a second, so a stream never busy-waits or blocks an
 * HTTP thread. */
#include "epsinas/service/http_jobs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "epsinas/service/jobstore.h"
#include "epsinas/service/queue.h"
#include "epsinas/core/util.h"

#define JFLAGS (JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15))
#define PAGE_ROWS 256
#define LIST_MAX 100
#define EVENT_MIN_NS (250 * 1000000LL) /* at most 4 progress events per second */

typedef struct sse sse;
struct sse {
    eps_http_jobs *H;
    struct MHD_Connection *conn;
    char id[48];
    unsigned long sent_gen;
    int64_t last_ns;
    int first, ended, suspended;
    sse *next, *prev;
};

struct eps_http_jobs {
    eps_jobs *J;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sse *streams;
    int stop, draining;
    pthread_t ticker;
};

/* ------------------------------------------------------------ helpers */

static struct MHD_Response *json_resp(json_t *j, int status, int *out_status)
{
    char *s = json_dumps(j, JFLAGS);
    json_decref(j);
    if (!s) return NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(s);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    *out_status = status;
    return r;
}

static struct MHD_Response *error_resp(int status, const char *code, const char *msg, const char *field,
                                       int *out_status)
{
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(msg));
    json_object_set_new(o, "code", json_string(code));
    if (field && *field) json_object_set_new(o, "field", json_string(field));
    struct MHD_Response *r = json_resp(o, status, out_status);
    if (r && (status == 429 || status == 503)) MHD_add_response_header(r, "Retry-After", "1");
    return r;
}

static struct MHD_Response *not_found(int *st)
{
    return error_resp(404, "not_found", "no such job (finished jobs are deleted after --job-retention-s)", "id", st);
}

/* ------------------------------------------------------------ results */

typedef struct rstream {
    eps_jobs *J;
    char id[48];
    long after;
    int ndjson, eof;
    char *buf;
    size_t len, off, cap;
} rstream;

static int put(rstream *s, const char *p, size_t n)
{
    if (s->len + n > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 65536;
        while (nc < s->len + n) nc *= 2;
        char *b = realloc(s->buf, nc);
        if (!b) return -1;
        s->buf = b;
        s->cap = nc;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    return 0;
}

static void put_csv_field(rstream *s, const char *v)
{
    if (!v) return;
    if (!strpbrk(v, ",\"\n\r")) {
        put(s, v, strlen(v));
        return;
    }
    put(s, "\"", 1);
    for (const char *p = v; *p; p++) {
        if (*p == '"') put(s, "\"", 1);
        put(s, p, 1);
    }
    put(s, "\"", 1);
}

static void on_row(void *ctx, const void *row)
{
    rstream *s = ctx;
    const eps_jobrow *r = row;
    char num[64];
    s->after = r->idx;
    if (s->ndjson) {
        json_t *o = json_object();
        json_object_set_new(o, "index", json_integer(r->idx));
        json_object_set_new(o, "arch", json_string(r->arch ? r->arch : ""));
        if (r->error) {
            json_object_set_new(o, "epsilon", json_null());
            json_object_set_new(o, "error", json_string(r->error));
        } else {
            int isnan_ = r->epsilon && !strcmp(r->epsilon, "nan");
            json_object_set_new(o, "epsilon", isnan_ || !r->epsilon ? json_null() : json_real(atof(r->epsilon)));
            json_object_set_new(o, "nan_reason", r->nan_reason ? json_string(r->nan_reason) : json_null());
            json_object_set_new(o, "params", json_integer(r->params));
            json_object_set_new(o, "macs", json_integer(r->macs));
        }
        json_object_set_new(o, "hash", r->hash ? json_string(r->hash) : json_null());
        char *t = json_dumps(o, JFLAGS);
        json_decref(o);
        if (t) {
            put(s, t, strlen(t));
            put(s, "\n", 1);
            free(t);
        }
        return;
    }
    int n = snprintf(num, sizeof num, "%ld,", r->idx);
    put(s, num, (size_t)n);
    put_csv_field(s, r->arch);
    put(s, ",", 1);
    if (r->error) {
        char msg[600];
        snprintf(msg, sizeof msg, "error: %s", r->error);
        put(s, ",", 1);
        put_csv_field(s, msg);
        put(s, ",,", 2);
    } else {
        put_csv_field(s, r->epsilon);
        put(s, ",", 1);
        put_csv_field(s, r->nan_reason);
        n = snprintf(num, sizeof num, ",%lld,%lld", r->params, r->macs);
        put(s, num, (size_t)n);
    }
    put(s, ",", 1);
    put_csv_field(s, r->hash);
    put(s, "\n", 1);
}

static ssize_t results_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    rstream *s = cls;
    if (s->off == s->len) {
        s->off = s->len = 0;
        if (s->eof) return MHD_CONTENT_READER_END_OF_STREAM;
        int n = eps_jobs_rows(s->J, s->id, s->after, PAGE_ROWS, on_row, s);
        if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (n < PAGE_ROWS) s->eof = 1;
        if (s->len == 0) return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t k = s->len - s->off < max ? s->len - s->off : max;
    memcpy(buf, s->buf + s->off, k);
    s->off += k;
    return (ssize_t)k;
}

static void results_free(void *cls)
{
    rstream *s = cls;
    free(s->buf);
    free(s);
}

static int wants_ndjson(struct MHD_Connection *c, const char *fmt)
{
    if (fmt) return !strcmp(fmt, "ndjson");
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    return a && (strstr(a, "application/x-ndjson") || strstr(a, "application/jsonl"));
}

static struct MHD_Response *results(eps_http_jobs *H, struct MHD_Connection *c, const char *id, int *st)
{
    json_t *job = eps_jobs_get(H->J, id);
    if (!job) return not_found(st);
    json_decref(job);
    long after = -1;
    const char *a = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
    if (a) {
        char *end;
        after = strtol(a, &end, 10);
        if (end == a || *end || after < -1)
            return error_resp(400, "invalid_input", "'after' must be an integer >= -1 (the last index you have)",
                              "after", st);
    }
    const char *fmt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
    if (fmt && strcmp(fmt, "csv") && strcmp(fmt, "ndjson"))
        return error_resp(400, "invalid_input", "'format' must be csv or ndjson", "format", st);
    rstream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->J = H->J;
    snprintf(s->id, sizeof s->id, "%s", id);
    s->after = after;
    s->ndjson = wants_ndjson(c, fmt);
    if (!s->ndjson) put(s, "index,arch,epsilon,nan_reason,params,macs,hash\n", 47);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 65536, results_read, s, results_free);
    if (!r) {
        results_free(s);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", s->ndjson ? "application/x-ndjson" : "text/csv; charset=utf-8");
    *st = 200;
    return r;
}

/* ------------------------------------------------------------ events */

static void *ticker_main(void *arg)
{
    eps_http_jobs *H = arg;
    pthread_mutex_lock(&H->mu);
    while (!H->stop) {
        for (sse *e = H->streams; e; e = e->next)
            if (e->suspended) {
                e->suspended = 0;
                MHD_resume_connection(e->conn);
            }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&H->cv, &H->mu, &ts);
    }
    pthread_mutex_unlock(&H->mu);
    return NULL;
}

static ssize_t event_write(char *buf, size_t max, const char *event, json_t *data)
{
    char *d = json_dumps(data, JFLAGS);
    json_decref(data);
    if (!d) return MHD_CONTENT_READER_END_WITH_ERROR;
    int n = snprintf(buf, max, "event: %s\ndata: %s\n\n", event, d);
    free(d);
    return n < 0 || (size_t)n >= max ? MHD_CONTENT_READER_END_WITH_ERROR : n;
}

static ssize_t events_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse *e = cls;
    eps_http_jobs *H = e->H;
    if (e->ended) return MHD_CONTENT_READER_END_OF_STREAM;
    json_t *job = eps_jobs_get(H->J, e->id);
    if (!job) { /* expired while watched */
        e->ended = 1;
        return event_write(buf, max, "end", json_pack("{s:s,s:s}", "id", e->id, "status", "deleted"));
    }
    const char *st = json_string_value(json_object_get(job, "status"));
    int final = st && strcmp(st, "queued") && strcmp(st, "running");
    pthread_mutex_lock(&H->mu);
    int draining = H->draining;
    pthread_mutex_unlock(&H->mu);
    if (final || draining) {
        e->ended = 1;
        if (!final) json_object_set_new(job, "reason", json_string("server shutting down; reconnect"));
        return event_write(buf, max, "end", job);
    }
    unsigned long gen = eps_jobs_generation(H->J);
    int64_t now = eps_now_ns();
    if (e->first || (gen != e->sent_gen && now - e->last_ns >= EVENT_MIN_NS)) {
        e->first = 0;
        e->sent_gen = gen;
        e->last_ns = now;
        json_t *p = json_pack("{s:s,s:O,s:O,s:O,s:O,s:O}", "id", e->id, "status", json_object_get(job, "status"),
                              "done", json_object_get(job, "done"), "total", json_object_get(job, "total"), "rate",
                              json_object_get(job, "rate_per_s"), "eta_s", json_object_get(job, "eta_s"));
        json_decref(job);
        return event_write(buf, max, "progress", p);
    }
    pthread_mutex_lock(&H->mu);
    if (H->draining) { /* drain began since the check above: never leave a stream suspended past it */
        pthread_mutex_unlock(&H->mu);
        e->ended = 1;
        json_object_set_new(job, "reason", json_string("server shutting down; reconnect"));
        return event_write(buf, max, "end", job);
    }
    json_decref(job);
    e->suspended = 1;
    MHD_suspend_connection(e->conn); /* the ticker resumes it */
    pthread_mutex_unlock(&H->mu);
    return 0;
}

static void events_free(void *cls)
{
    sse *e = cls;
    eps_http_jobs *H = e->H;
    pthread_mutex_lock(&H->mu);
    if (e->prev) e->prev->next = e->next;
    else H->streams = e->next;
    if (e->next) e->next->prev = e->prev;
    pthread_mutex_unlock(&H->mu);
    free(e);
}

static struct MHD_Response *events(eps_http_jobs *H, struct MHD_Connection *c, const char *id, int *st)
{
    json_t *job = eps_jobs_get(H->J, id);
    if (!job) return not_found(st);
    json_decref(job);
    sse *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->H = H;
    e->conn = c;
    e->first = 1;
    snprintf(e->id, sizeof e->id, "%s", id);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, events_read, e, events_free);
    if (!r) {
        free(e);
        return NULL;
    }
    pthread_mutex_lock(&H->mu);
    e->next = H->streams;
    if (H->streams) H->streams->prev = e;
    H->streams = e;
    pthread_mutex_unlock(&H->mu);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* nginx: pass events through at once */
    *st = 200;
    return r;
}

/* ------------------------------------------------------------ dispatch */

static int valid_id(const char *id, size_t n)
{
    if (n == 0 || n > 40) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') || (id[i] >= '0' && id[i] <= '9') ||
              id[i] == '-' || id[i] == '_'))
            return 0;
    return 1;
}

static struct MHD_Response *method_not_allowed(const char *method, const char *allow, int *st)
{
    char msg[120];
    snprintf(msg, sizeof msg, "method %.16s not allowed here (allowed: %s)", method, allow);
    struct MHD_Response *r = error_resp(405, "method_not_allowed", msg, "", st);
    if (r) MHD_add_response_header(r, "Allow", allow);
    return r;
}

struct MHD_Response *eps_http_jobs_handle(eps_http_jobs *H, struct MHD_Connection *c, const char *method,
                                          const char *url, const char *body, size_t len, int *st)
{
    const char *rest = url + strlen("/v1/jobs");
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (!*rest || !strcmp(rest, "/")) {
        if (!strcmp(method, "POST")) {
            json_t *job = NULL;
            eps_error err;
            eps_error_clear(&err);
            int status = 500;
            if (eps_jobs_submit(H->J, body, len, &job, &status, &err) < 0) {
                const char *code = status == 413 ? "too_large" : status == 429 ? "too_many_jobs"
                                                   : status == 400 ? "invalid_input" : "internal_error";
                if (err.line > 0) code = "invalid_json";
                return error_resp(status, code, err.msg, err.field, st);
            }
            char loc[96];
            snprintf(loc, sizeof loc, "/v1/jobs/%s", json_string_value(json_object_get(job, "id")));
            struct MHD_Response *r = json_resp(job, 202, st);
            if (r) MHD_add_response_header(r, "Location", loc);
            return r;
        }
        if (!get) return method_not_allowed(method, "GET, POST, OPTIONS", st);
        return json_resp(eps_jobs_list(H->J, LIST_MAX), 200, st);
    }
    if (*rest != '/') return error_resp(404, "not_found", "no such endpoint", "", st);
    const char *id = rest + 1, *slash = strchr(id, '/');
    size_t n = slash ? (size_t)(slash - id) : strlen(id);
    if (!valid_id(id, n)) return error_resp(400, "invalid_input", "malformed job id", "id", st);
    char jid[48];
    snprintf(jid, sizeof jid, "%.*s", (int)n, id);
    const char *sub = slash ? slash + 1 : "";
    if (!*sub) {
        if (!strcmp(method, "DELETE")) {
            json_t *j = eps_jobs_cancel(H->J, jid);
            return j ? json_resp(j, 200, st) : not_found(st);
        }
        if (!get) return method_not_allowed(method, "GET, DELETE, OPTIONS", st);
        json_t *j = eps_jobs_get(H->J, jid);
        return j ? json_resp(j, 200, st) : not_found(st);
    }
    int is_results = !strcmp(sub, "results"), is_events = !strcmp(sub, "events");
    if (!is_results && !is_events) return error_resp(404, "not_found", "no such endpoint", "", st);
    if (!get) return method_not_allowed(method, "GET, HEAD, OPTIONS", st);
    return is_results ? results(H, c, jid, st) : events(H, c, jid, st);
}

/* ------------------------------------------------------------ metrics */

char *eps_http_jobs_metrics(eps_jobs *J, char *m, size_t *n)
{
    static const char *const names[5] = {"queued", "running", "succeeded", "failed", "cancelled"};
    long by[5];
    unsigned long long done = 0;
    long inflight = 0;
    if (!J) return m;
    eps_jobs_stats(J, by, &done, &inflight);
    char extra[1400];
    int k = snprintf(extra, sizeof extra, "# HELP epsinas_jobs Sweep jobs by status.\n# TYPE epsinas_jobs gauge\n");
    for (int i = 0; i < 5; i++)
        k += snprintf(extra + k, sizeof extra - (size_t)k, "epsinas_jobs{status=\"%s\"} %ld\n", names[i], by[i]);
    k += snprintf(extra + k, sizeof extra - (size_t)k,
                  "# HELP epsinas_job_items_done_total Job result rows stored since start.\n"
                  "# TYPE epsinas_job_items_done_total counter\nepsinas_job_items_done_total %llu\n"
                  "# HELP epsinas_job_queue_depth Jobs waiting to run (queued).\n"
                  "# TYPE epsinas_job_queue_depth gauge\nepsinas_job_queue_depth %ld\n"
                  "# HELP epsinas_job_items_in_flight Job items on the compute queue now.\n"
                  "# TYPE epsinas_job_items_in_flight gauge\nepsinas_job_items_in_flight %ld\n",
                  done, by[0], inflight);
    char *nm = realloc(m, *n + (size_t)k + 1);
    if (!nm) {
        free(m);
        return NULL;
    }
    memcpy(nm + *n, extra, (size_t)k + 1);
    *n += (size_t)k;
    return nm;
}

/* ------------------------------------------------------------ lifecycle */

int eps_http_jobs_new(eps_jobs *J, eps_http_jobs **out)
{
    eps_http_jobs *H = calloc(1, sizeof *H);
    if (!H) return EPS_ENOMEM;
    H->J = J;
    pthread_mutex_init(&H->mu, NULL);
    pthread_cond_init(&H->cv, NULL);
    if (pthread_create(&H->ticker, NULL, ticker_main, H) != 0) {
        pthread_cond_destroy(&H->cv);
        pthread_mutex_destroy(&H->mu);
        free(H);
        return EPS_EINTERNAL;
    }
    *out = H;
    return 0;
}

void eps_http_jobs_drain(eps_http_jobs *H)
{
    if (!H) return;
    pthread_mutex_lock(&H->mu);
    H->draining = 1;
    for (sse *e = H->streams; e; e = e->next)
        if (e->suspended) {
            e->suspended = 0;
            MHD_resume_connection(e->conn);
        }
    pthread_mutex_unlock(&H->mu);
}

void eps_http_jobs_free(eps_http_jobs *H)
{
    if (!H) return;
    eps_flag_raise(&H->mu, &H->cv, &H->stop);
    pthread_join(H->ticker, NULL);
    pthread_cond_destroy(&H->cv);
    pthread_mutex_destroy(&H->mu);
    free(H);
}
