/* eps_http_internal.h — what the parts of the HTTP front share (private to
 * src/service/eps_http*.c; the layout check counts it as module http):
 * the server and per-request state, and the functions one part calls in
 * another. eps_http.c: routing, validation, responses and the MHD request
 * callbacks; eps_http_score.c: score items through the cache and the queue,
 * the body memo; eps_http_server.c: start, drain, stop, connection
 * tracking and the request-timeout reaper. */
#ifndef EPSINAS_SERVICE_HTTP_INTERNAL_H
#define EPSINAS_SERVICE_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>

#include "epsinas/core/util.h"
#include "epsinas/service/cache.h"
#include "epsinas/service/http.h"
#include "epsinas/service/http_jobs.h"
#include "epsinas/service/jobs.h"
#include "epsinas/service/json_exact.h"
#include "epsinas/service/metrics.h"
#include "epsinas/service/queue.h"

#define CONN_MEMORY (256 * 1024) /* per-connection pool: a head past our limits, and room to answer */


/* Exact-body memo: the raw bytes of a recently valid POST /v1/score body ->
 * its cache key, echoed id and batch. An identical body (a retry, a
 * dashboard polling) then skips JSON and architecture parsing; a memo hit
 * whose result left the cache falls back to the full path. Direct-mapped,
 * bounded: MEMO_SLOTS x (MEMO_BODY_MAX + key). */
#define MEMO_SLOTS 1024
#define MEMO_BODY_MAX 2048
#define MEMO_LOCKS 16

typedef struct memo_slot {
    uint64_t h;
    char *body;
    size_t len;
    eps_cache_key key;   /* key.text owned */
    char *id_json;       /* owned, "null" when no id */
    const eps_named_batch *nb;
    long long params, macs; /* of the body's own spelling (see item.params) */
} memo_slot;

struct eps_server {
    struct MHD_Daemon *d;
    int listen_fd;
    int port;
    eps_queue *q;
    eps_cache *cache;
    const eps_named_batch *batches;
    int n_batches;
    long long body_limit, max_items, json_depth, deadline_ms, max_request_memory;
    char token[256];
    char **cors;
    int n_cors, cors_any;
    char *spaces_json, *batches_json, *meta_json;
    size_t spaces_len, batches_len, meta_len;
    atomic_int draining;
    atomic_ullong rid_counter;
    uint64_t rid_seed;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long inflight;     /* requests not yet completed (guarded by mu) */
    long suspended;    /* connections suspended now (guarded by mu) */
    memo_slot *memo;   /* MEMO_SLOTS */
    /* request-receive limit: every open connection, and a reaper thread */
    long long request_timeout_ms;
    pthread_mutex_t conn_mu;
    pthread_cond_t reaper_cv;
    struct conn_ctx *conns; /* guarded by conn_mu */
    int reaper_stop, reaper_started;
    pthread_t reaper;
    pthread_mutex_t memo_mu[MEMO_LOCKS];
    eps_jobs *jobs;          /* sweep jobs (eps_jobs.c) */
    eps_http_jobs *hj;       /* their HTTP handlers (eps_http_jobs.c) */
};

typedef struct req req;


/* One score computation a request waits for (the only one of POST
 * /v1/score, or one item of a batch). */
typedef struct item {
    eps_cache_waiter w;  /* w.ctx = the request */
    json_t *id;          /* echoed id (owned ref) or NULL */
    const eps_named_batch *nb;
    int status;          /* 200, or the error's HTTP status; 0 = pending */
    int cached;
    char *val;           /* result blob (200) or error JSON (owned) */
    /* params/MACs of the cell as this request spells it: the cached blob is
     * shared by every spelling of one canonical cell (dead convs still count
     * as parameters), so they are set per request, never taken from it. */
    long long params, macs;
} item;

struct req {
    eps_server *s;
    struct MHD_Connection *conn;
    eps_endpoint ep;
    int route;
    int64_t t0;
    char rid[136];
    char method[12];
    char version[12];
    char path[200];
    const char *origin;  /* allowed Origin to echo (points into s->cors or the request), or NULL */
    char origin_buf[256];
    int defer;           /* no body expected: queue responses on the next call (keeps the connection alive) */
    struct MHD_Response *deferred;
    int deferred_status;
    char *body;
    size_t len, cap, discarded;
    int too_large;
    int close;           /* answer with Connection: close */
    /* async part, guarded by mu */
    pthread_mutex_t mu;
    int pending;         /* outstanding items + 1 guard while the handler runs */
    int suspended;
    int async;           /* waiting for / got items */
    int n_items;
    item *items;
    int is_batch;
    /* outcome */
    int status;
    size_t resp_bytes;
};

static inline double ms_since(int64_t t0) { return (double)(eps_now_ns() - t0) / 1e6; }

/* ---- eps_http.c: responses. Each queues its answer on r (or keeps it
 * until the body is read) and returns MHD's verdict. */
/* Takes ownership of body (malloc'd, may be NULL when len == 0); h1/v1 and
 * h2/v2 are optional extra headers. */
enum MHD_Result eps_http_send_body(req *r, int status, const char *ctype, char *body, size_t len, const char *h1,
                                   const char *v1, const char *h2, const char *v2);
/* Takes ownership of j (decref'd). */
enum MHD_Result eps_http_send_json(req *r, int status, json_t *j, const char *h1, const char *v1, const char *h2,
                                   const char *v2);
enum MHD_Result eps_http_send_error(req *r, int status, const char *code, const char *msg, const char *field);
/* The one error shape: {"error", "code", "field"?, "line"?, "column"?}; new ref. */
json_t *eps_http_error_obj(const char *code, const char *msg, const char *field, long line, long column);
/* The MHD callbacks eps_server_start installs. */
enum MHD_Result eps_http_on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                    const char *version, const char *upload, size_t *upload_size, void **con_cls);
void eps_http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode tc);
void eps_http_mhd_logger(void *cls, const char *fmt, va_list ap);

/* ---- eps_http_score.c */
/* A valid POST /v1/score body seen before: fills *k (k->text malloc'd),
 * *id_json (malloc'd), *nb and the body's params/MACs; 1 on a hit. */
int eps_http_memo_get(eps_server *s, const char *body, size_t len, eps_cache_key *k, char **id_json,
                      const eps_named_batch **nb, long long *params, long long *macs);
/* Validates request object o as item idx of r and starts (or joins, or
 * answers from cache) its computation; errors land in the item. */
void eps_http_start_item(req *r, int idx, json_t *o);
/* Answers r from its resolved items (one result, or a batch's list). */
enum MHD_Result eps_http_respond_items(req *r);
/* One result from a cached blob, with the request's id, batch and params. */
enum MHD_Result eps_http_send_result(req *r, const char *blob, size_t blen, const char *id_json, const char *batch,
                                     int cached, long long params, long long macs);

/* ---- eps_http_server.c: connection tracking */
/* Marks c as receiving a request (its --request-timeout-ms clock restarts)
 * or not (computing or answering). */
void eps_http_conn_receiving(struct MHD_Connection *c, int on);
void eps_http_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                            enum MHD_ConnectionNotificationCode toe);
void *eps_http_reaper_main(void *arg);

#endif
