/* eps_metrics.c — process-wide Prometheus metrics for `epsinas serve`.
 * Owns the counters and histograms (relaxed C11 atomics: each sample is
 * independent, and a scrape may see one histogram a few samples ahead of
 * another, which Prometheus tolerates) and the text rendering. */
#include "epsinas/service/metrics.h"
#include "epsinas/service/redis.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NB 17 /* finite buckets */
static const double bounds[NB] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                  0.5,    1,     2.5,    5,     10,   30,    60,   120};

typedef struct {
    atomic_ullong bucket[NB + 1]; /* non-cumulative; last = +Inf */
    atomic_ullong sum_ns;
    atomic_ullong count;
} histo;

#define CODE_MIN 100
#define CODE_N 500

static struct {
    atomic_ullong requests[EPS_EP__COUNT][CODE_N];
    histo req_dur[EPS_EP__COUNT];
    histo score_dur[EPS_METRICS_MAX_SPACES];
    const char *space_names[EPS_METRICS_MAX_SPACES];
    int n_spaces;
    histo queue_wait;
    atomic_ullong rejected[EPS_REJ__COUNT];
    atomic_ullong computations;
    atomic_long inflight;
} M;

static const char *const ep_names[EPS_EP__COUNT] = {
    "/v1/score", "/v1/score/batch", "/v1/scores", "/v1/spaces", "/v1/batches",
    "/v2/health/live", "/v2/health/ready", "/v2", "/metrics", "other",
};
static const char *const rej_names[EPS_REJ__COUNT] = {"queue_full", "deadline", "draining", "too_large",
                                                      "unauthorized"};

const char *eps_endpoint_name(eps_endpoint ep) { return ep >= 0 && ep < EPS_EP__COUNT ? ep_names[ep] : "other"; }

void eps_metrics_init(const char *const *space_names, int n_spaces)
{
    memset(&M, 0, sizeof M);
    if (n_spaces > EPS_METRICS_MAX_SPACES) n_spaces = EPS_METRICS_MAX_SPACES;
    for (int i = 0; i < n_spaces; i++) M.space_names[i] = space_names[i];
    M.n_spaces = n_spaces;
}

static void observe(histo *h, double s)
{
    if (!(s >= 0)) s = 0;
    int b = 0;
    while (b < NB && s > bounds[b]) b++;
    atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (unsigned long long)(s * 1e9), memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void eps_metrics_request(eps_endpoint ep, int status, double seconds)
{
    if (ep < 0 || ep >= EPS_EP__COUNT) ep = EPS_EP_OTHER;
    if (status >= CODE_MIN && status < CODE_MIN + CODE_N)
        atomic_fetch_add_explicit(&M.requests[ep][status - CODE_MIN], 1, memory_order_relaxed);
    observe(&M.req_dur[ep], seconds);
}

void eps_metrics_score(int space_index, double seconds)
{
    if (space_index >= 0 && space_index < M.n_spaces) observe(&M.score_dur[space_index], seconds);
}

void eps_metrics_queue_wait(double seconds) { observe(&M.queue_wait, seconds); }

void eps_metrics_reject(eps_reject_reason r)
{
    if (r >= 0 && r < EPS_REJ__COUNT) atomic_fetch_add_explicit(&M.rejected[r], 1, memory_order_relaxed);
}

void eps_metrics_computation(void) { atomic_fetch_add_explicit(&M.computations, 1, memory_order_relaxed); }
void eps_metrics_inflight_add(int d) { atomic_fetch_add_explicit(&M.inflight, d, memory_order_relaxed); }
long eps_metrics_inflight(void) { return atomic_load(&M.inflight); }
unsigned long long eps_metrics_computations(void) { return atomic_load(&M.computations); }

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

__attribute__((format(printf, 2, 3))) static void put(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if ((size_t)k < b->cap - b->n) { b->n += (size_t)k; return; }
        size_t nc = b->cap * 2 + (size_t)k;
        char *np = realloc(b->p, nc);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = nc;
    }
}

static void put_histo(sbuf *b, const char *name, const char *label, const histo *h)
{
    unsigned long long cum = 0;
    const char *sep = *label ? "," : "";
    for (int i = 0; i <= NB; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        if (i < NB) put(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, label, sep, bounds[i], cum);
        else put(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, label, sep, cum);
    }
    /* count = the +Inf bucket, so the exposition stays self-consistent */
    put(b, "%s_sum%s%s%s %.9f\n", name, *label ? "{" : "", label, *label ? "}" : "",
        (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
    put(b, "%s_count%s%s%s %llu\n", name, *label ? "{" : "", label, *label ? "}" : "", cum);
}

/* One unlabelled series with its HELP and TYPE lines. */
static void put_one(sbuf *b, const char *name, const char *type, const char *help, long long v)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name, type, name, v);
}

char *eps_metrics_render(const eps_metrics_gauges *g, size_t *len)
{
    sbuf b = {malloc(16384), 0, 16384, 0};
    if (!b.p) return NULL;
    char label[128];
    put(&b, "# HELP epsinas_build_info Build information.\n# TYPE epsinas_build_info gauge\n");
    put(&b, "epsinas_build_info{version=\"%s\"} 1\n", EPS_VERSION);

    put(&b, "# HELP epsinas_requests_total HTTP requests by endpoint and status code.\n"
            "# TYPE epsinas_requests_total counter\n");
    for (int e = 0; e < EPS_EP__COUNT; e++)
        for (int c = 0; c < CODE_N; c++) {
            unsigned long long v = atomic_load_explicit(&M.requests[e][c], memory_order_relaxed);
            if (v) put(&b, "epsinas_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n", ep_names[e], c + CODE_MIN, v);
        }

    put(&b, "# HELP epsinas_request_duration_seconds HTTP request latency by endpoint.\n"
            "# TYPE epsinas_request_duration_seconds histogram\n");
    for (int e = 0; e < EPS_EP__COUNT; e++) {
        snprintf(label, sizeof label, "endpoint=\"%s\"", ep_names[e]);
        put_histo(&b, "epsinas_request_duration_seconds", label, &M.req_dur[e]);
    }

    put(&b, "# HELP epsinas_score_duration_seconds Time to compute one score (both passes) by space.\n"
            "# TYPE epsinas_score_duration_seconds histogram\n");
    for (int s = 0; s < M.n_spaces; s++) {
        snprintf(label, sizeof label, "space=\"%s\"", M.space_names[s]);
        put_histo(&b, "epsinas_score_duration_seconds", label, &M.score_dur[s]);
    }

    put(&b, "# HELP epsinas_queue_wait_seconds Time a compute job waited before a worker took it.\n"
            "# TYPE epsinas_queue_wait_seconds histogram\n");
    put_histo(&b, "epsinas_queue_wait_seconds", "", &M.queue_wait);

    put_one(&b, "epsinas_queue_depth", "gauge", "Compute jobs queued or running.", g ? g->queue_depth : 0);
    put_one(&b, "epsinas_inflight_requests", "gauge", "Requests being handled (including those waiting for a job).",
            eps_metrics_inflight());

    put(&b, "# HELP epsinas_rejected_total Requests refused by backpressure or policy, by reason.\n"
            "# TYPE epsinas_rejected_total counter\n");
    for (int r = 0; r < EPS_REJ__COUNT; r++)
        put(&b, "epsinas_rejected_total{reason=\"%s\"} %llu\n", rej_names[r],
            atomic_load_explicit(&M.rejected[r], memory_order_relaxed));

    const struct { const char *name, *type, *help; long long v; } scalars[] = {
        {"epsinas_cache_hits_total", "counter", "Score lookups answered from the cache.", g ? (long long)g->cache_hits : 0},
        {"epsinas_cache_misses_total", "counter", "Score lookups not in the cache.", g ? (long long)g->cache_misses : 0},
        {"epsinas_cache_evictions_total", "counter", "Cache entries evicted to respect the bounds.",
         g ? (long long)g->cache_evictions : 0},
        {"epsinas_cache_entries", "gauge", "Results in the cache.", g ? (long long)g->cache_entries : 0},
        {"epsinas_cache_bytes", "gauge", "Memory accounted to the cache.", g ? (long long)g->cache_bytes : 0},
        {"epsinas_computations_total", "counter",
         "Scores actually computed (single flight: concurrent identical misses count once).",
         (long long)eps_metrics_computations()},
        {"epsinas_cache_backend_errors_total", "counter",
         "Shared cache (Redis) reads/writes that failed or were skipped; each was a miss or a dropped write.",
         (long long)eps_redis_errors_total()},
    };
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
        put_one(&b, scalars[i].name, scalars[i].type, scalars[i].help, scalars[i].v);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (len) *len = b.n;
    return b.p;
}
