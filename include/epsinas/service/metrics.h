/* metrics.h — the service's Prometheus metrics (text exposition 0.0.4).
 *
 * Counters and histograms are lock-free atomics, updated from the HTTP
 * threads and the compute workers; gauges owned by other modules (queue
 * depth, cache size) are passed in at render time. */
#ifndef EPSINAS_METRICS_H
#define EPSINAS_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    EPS_EP_SCORE = 0,     /* POST /v1/score */
    EPS_EP_SCORE_BATCH,   /* POST /v1/score/batch */
    EPS_EP_SCORES,        /* GET /v1/scores/{hash} */
    EPS_EP_SPACES,        /* GET /v1/spaces */
    EPS_EP_BATCHES,       /* GET /v1/batches */
    EPS_EP_LIVE,          /* /v2/health/live, /livez */
    EPS_EP_READY,         /* /v2/health/ready, /readyz */
    EPS_EP_META,          /* GET /v2 */
    EPS_EP_METRICS,       /* GET /metrics */
    EPS_EP_OTHER,         /* anything else (404s) */
    EPS_EP__COUNT
} eps_endpoint;

typedef enum {
    EPS_REJ_QUEUE_FULL = 0, /* 429 */
    EPS_REJ_DEADLINE,       /* 504 */
    EPS_REJ_DRAINING,       /* 503 */
    EPS_REJ_TOO_LARGE,      /* 413 */
    EPS_REJ_UNAUTHORIZED,   /* 401 */
    EPS_REJ__COUNT
} eps_reject_reason;

#define EPS_METRICS_MAX_SPACES 16

/* Gauges sampled by the caller when rendering. */
typedef struct eps_metrics_gauges {
    long queue_depth;        /* jobs queued + running */
    long cache_entries;
    long long cache_bytes;
    unsigned long long cache_hits, cache_misses, cache_evictions;
} eps_metrics_gauges;

/* Initialises the global metrics; space_names (up to EPS_METRICS_MAX_SPACES)
 * label epsinas_score_duration_seconds. Call once before the threads start. */
void eps_metrics_init(const char *const *space_names, int n_spaces);
const char *eps_endpoint_name(eps_endpoint ep);

void eps_metrics_request(eps_endpoint ep, int status, double seconds);
void eps_metrics_score(int space_index, double seconds);
void eps_metrics_queue_wait(double seconds);
void eps_metrics_reject(eps_reject_reason r);
void eps_metrics_computation(void);
void eps_metrics_inflight_add(int delta);
long eps_metrics_inflight(void);
unsigned long long eps_metrics_computations(void);

/* Renders everything into a malloc'd NUL-terminated buffer (caller frees);
 * *len receives its length. NULL when out of memory. */
char *eps_metrics_render(const eps_metrics_gauges *g, size_t *len);

#endif
