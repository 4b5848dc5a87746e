/* eps_http.c — the HTTP front of `epsinas serve` (see http.h, openapi.yaml).
 * Owns the libmicrohttpd daemon and its listening socket, per-request
 * state (body buffer, pending score items), routing, validation, the JSON
 * error shape, CORS, bearer auth, the access log (through log.h), and the glue between the
 * cache (single flight) and the job queue. A request that needs compute is
 * suspended and resumed by whichever thread finishes its last item. */
#include "epsinas/service/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "epsinas/service/cache.h"
#include "epsinas/engine/engine.h"
#include "epsinas/service/http_jobs.h"
#include "epsinas/service/http_static.h"
#include "epsinas/service/log.h"
#include "epsinas/service/jobs.h"
#include "epsinas/service/metrics.h"
#include "epsinas/service/queue.h"
#include "epsinas/service/request.h"
#include "epsinas/service/redis.h"
#include "epsinas/spaces/space.h"
#include "epsinas/core/util.h"

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    if (!eps_log_enabled(EPS_LOG_WARN)) return;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    eps_log_emit(EPS_LOG_WARN, msg, NULL);
}

/* ------------------------------------------------------------ server */

/* 15 significant digits: exact for the weights users type (1e-07, not
 * 9.9999999999999995e-08) and far below the metric's float32 noise. */
#define JFLAGS (JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(17)) /* doubles round-trip */
#define MAX_BY_ARCH 16     /* results returned by GET /v1/scores/{hash} */
#define ID_MAX 256         /* longest echoed "id" string */

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


static void memo_put(eps_server *s, const char *body, size_t len, const eps_cache_key *k, const char *id_json,
                     const eps_named_batch *nb, long long params, long long macs)
{
    if (!s->memo || len > MEMO_BODY_MAX) return;
    uint64_t h = eps_fnv1a(EPS_FNV1A_OFFSET, body, len);
    char *b = malloc(len), *kt = strdup(k->text), *id = strdup(id_json);
    if (!b || !kt || !id) {
        free(b);
        free(kt);
        free(id);
        return;
    }
    memcpy(b, body, len);
    memo_slot *m = &s->memo[h & (MEMO_SLOTS - 1)];
    pthread_mutex_t *mu = &s->memo_mu[h & (MEMO_LOCKS - 1)];
    pthread_mutex_lock(mu);
    free(m->body);
    free(m->key.text);
    free(m->id_json);
    m->h = h;
    m->body = b;
    m->len = len;
    m->key = *k;
    m->key.text = kt;
    m->id_json = id;
    m->nb = nb;
    m->params = params;
    m->macs = macs;
    pthread_mutex_unlock(mu);
}

/* On a hit fills *k (k->text malloc'd) and *id_json (malloc'd). */
static int memo_get(eps_server *s, const char *body, size_t len, eps_cache_key *k, char **id_json,
                    const eps_named_batch **nb, long long *params, long long *macs)
{
    if (!s->memo || len > MEMO_BODY_MAX) return 0;
    uint64_t h = eps_fnv1a(EPS_FNV1A_OFFSET, body, len);
    memo_slot *m = &s->memo[h & (MEMO_SLOTS - 1)];
    pthread_mutex_t *mu = &s->memo_mu[h & (MEMO_LOCKS - 1)];
    int hit = 0;
    pthread_mutex_lock(mu);
    if (m->body && m->h == h && m->len == len && !memcmp(m->body, body, len)) {
        *k = m->key;
        k->text = strdup(m->key.text);
        *id_json = strdup(m->id_json);
        *nb = m->nb;
        *params = m->params;
        *macs = m->macs;
        hit = k->text && *id_json;
        if (!hit) {
            free(k->text);
            free(*id_json);
        }
    }
    pthread_mutex_unlock(mu);
    return hit;
}


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

static double ms_since(int64_t t0) { return (double)(eps_now_ns() - t0) / 1e6; }

/* ------------------------------------------------------------ responses */

static void add_common_headers(req *r, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Request-Id", r->rid);
    /* Every response when CORS is on, allowed origin or not: a shared cache
     * must not serve one origin's answer (without the allow header) to
     * another. */
    if (r->s->n_cors || r->s->cors_any) MHD_add_response_header(resp, "Vary", "Origin");
    /* Draining: the client learns from this answer not to send another
     * request on the connection, instead of seeing it reset. Ambiguous
     * framing (Transfer-Encoding with Content-Length): RFC 9112 6.1 says
     * close after answering. */
    if (r->close || atomic_load(&r->s->draining)) MHD_add_response_header(resp, "Connection", "close");
    if (r->origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin);
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
    }
}

/* Takes ownership of body (malloc'd, may be NULL when len == 0). */
/* Queues resp (owned) with status, or keeps it for the next call while the
 * request body is still unread: libmicrohttpd closes the connection after a
 * response queued before the (empty) body was read. */
static enum MHD_Result queue_response(req *r, int status, struct MHD_Response *resp)
{
    r->status = status;
    if (r->defer) {
        r->deferred = resp;
        r->deferred_status = status;
        return MHD_YES;
    }
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_body(req *r, int status, const char *ctype, char *body, size_t len,
                                 const char *h1, const char *v1, const char *h2, const char *v2)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, len ? body : (void *)"", len ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (!len) free(body);
    if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
    add_common_headers(r, resp);
    if (h1) MHD_add_response_header(resp, h1, v1);
    if (h2) MHD_add_response_header(resp, h2, v2);
    r->resp_bytes = len;
    return queue_response(r, status, resp);
}

static enum MHD_Result send_static(req *r, int status, const char *ctype, const char *body, size_t len)
{
    char *copy = NULL;
    if (len) {
        copy = malloc(len);
        if (!copy) return MHD_NO;
        memcpy(copy, body, len);
    }
    return send_body(r, status, ctype, copy, len, NULL, NULL, NULL, NULL);
}

static char *dumps_exact(json_t *o);

static enum MHD_Result send_json(req *r, int status, json_t *j, const char *h1, const char *v1, const char *h2,
                                 const char *v2)
{
    char *s = dumps_exact(j);
    json_decref(j);
    if (!s) return MHD_NO;
    size_t n = strlen(s);
    return send_body(r, status, "application/json", s, n, h1, v1, h2, v2);
}

/* The one error shape: {"error", "code", "field"?, "line"?, "column"?}. */
static json_t *error_obj(const char *code, const char *msg, const char *field, long line, long column)
{
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(msg));
    json_object_set_new(o, "code", json_string(code));
    if (field && *field) json_object_set_new(o, "field", json_string(field));
    if (line > 0) json_object_set_new(o, "line", json_integer(line));
    if (column > 0) json_object_set_new(o, "column", json_integer(column));
    return o;
}

static enum MHD_Result send_error(req *r, int status, const char *code, const char *msg, const char *field)
{
    const char *h = NULL, *v = NULL;
    if (status == 429 || status == 503) h = "Retry-After", v = "1";
    if (status == 401) h = "WWW-Authenticate", v = "Bearer realm=\"epsinas\"";
    return send_json(r, status, error_obj(code, msg, field, 0, 0), h, v, NULL, NULL);
}

/* ------------------------------------------------------------ connections */

/* One open connection (MHD socket context). `since` is when the request
 * now being received started (connection open, or the end of the previous
 * response); `receiving` is 0 while we compute or answer. A connection that
 * has been receiving for longer than --request-timeout-ms is shut down by
 * the reaper: an idle timeout alone is reset by every trickled byte. */
typedef struct conn_ctx {
    _Atomic int64_t since;
    atomic_int receiving;
    MHD_socket fd;
    struct conn_ctx *prev, *next;
} conn_ctx;

static conn_ctx *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void conn_receiving(struct MHD_Connection *c, int on)
{
    conn_ctx *x = conn_of(c);
    if (!x) return;
    if (on) atomic_store(&x->since, eps_now_ns());
    atomic_store(&x->receiving, on);
}

/* MHD calls CLOSED before it closes the socket, so under conn_mu a listed
 * fd is still this connection's: the reaper never shuts down a reused fd. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    eps_server *s = cls;
    conn_ctx *x = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || !(x = calloc(1, sizeof *x))) return;
        x->fd = ci->connect_fd;
        atomic_store(&x->since, eps_now_ns());
        atomic_store(&x->receiving, 1);
        pthread_mutex_lock(&s->conn_mu);
        x->next = s->conns;
        if (s->conns) s->conns->prev = x;
        s->conns = x;
        pthread_mutex_unlock(&s->conn_mu);
        *socket_context = x;
        return;
    }
    if (!x) return;
    pthread_mutex_lock(&s->conn_mu);
    if (x->prev) x->prev->next = x->next;
    else s->conns = x->next;
    if (x->next) x->next->prev = x->prev;
    pthread_mutex_unlock(&s->conn_mu);
    free(x);
    *socket_context = NULL;
}

static void *reaper_main(void *arg)
{
    eps_server *s = arg;
    pthread_mutex_lock(&s->conn_mu);
    while (!s->reaper_stop) {
        struct timespec ts;
        eps_deadline_in(&ts, 250);
        pthread_cond_timedwait(&s->reaper_cv, &s->conn_mu, &ts);
        int64_t limit = eps_now_ns() - s->request_timeout_ms * 1000000LL;
        for (conn_ctx *x = s->conns; x; x = x->next)
            if (atomic_load(&x->receiving) && atomic_load(&x->since) < limit) {
                atomic_store(&x->receiving, 0); /* once */
                shutdown(x->fd, SHUT_RDWR);     /* MHD sees EOF and closes it */
            }
    }
    pthread_mutex_unlock(&s->conn_mu);
    return NULL;
}

/* ------------------------------------------------------------ routing */

enum { R_NONE = -1, R_SCORE, R_BATCH, R_SCORES, R_SPACES, R_BATCHES, R_LIVE, R_READY, R_META, R_METRICS, R_JOBS };

static const struct {
    const char *path;
    int prefix;
    int route;
    eps_endpoint ep;
    int post;   /* 1: POST endpoint, 0: GET/HEAD endpoint, 2: several (eps_http_jobs checks) */
} routes[] = {
    {"/v1/score", 0, R_SCORE, EPS_EP_SCORE, 1},
    {"/v1/score/batch", 0, R_BATCH, EPS_EP_SCORE_BATCH, 1},
    {"/v1/scores/", 1, R_SCORES, EPS_EP_SCORES, 0},
    {"/v1/spaces", 0, R_SPACES, EPS_EP_SPACES, 0},
    {"/v1/batches", 0, R_BATCHES, EPS_EP_BATCHES, 0},
    {"/v2/health/live", 0, R_LIVE, EPS_EP_LIVE, 0},
    {"/livez", 0, R_LIVE, EPS_EP_LIVE, 0},
    {"/v2/health/ready", 0, R_READY, EPS_EP_READY, 0},
    {"/readyz", 0, R_READY, EPS_EP_READY, 0},
    {"/v2", 0, R_META, EPS_EP_META, 0},
    {"/metrics", 0, R_METRICS, EPS_EP_METRICS, 0},
    {"/v1/jobs", 0, R_JOBS, EPS_EP_OTHER, 2},
    {"/v1/jobs/", 1, R_JOBS, EPS_EP_OTHER, 2},
};
#define N_ROUTES (int)(sizeof routes / sizeof routes[0])

static int find_route(const char *url)
{
    for (int i = 0; i < N_ROUTES; i++) {
        if (routes[i].prefix ? !strncmp(url, routes[i].path, strlen(routes[i].path)) && url[strlen(routes[i].path)]
                             : !strcmp(url, routes[i].path))
            return i;
    }
    return -1;
}

static const char *allow_for(int ri)
{
    if (routes[ri].post == 2) return "GET, HEAD, POST, DELETE, OPTIONS";
    return routes[ri].post ? "POST, OPTIONS" : "GET, HEAD, OPTIONS";
}

/* ------------------------------------------------------------ helpers */

static int ct_is_json(const char *ct)
{
    if (!ct) return 0;
    while (*ct == ' ' || *ct == '\t') ct++;
    if (strncasecmp(ct, "application/json", 16)) return 0;
    char c = ct[16];
    return c == 0 || c == ';' || c == ' ' || c == '\t';
}

static int token_ok(const eps_server *s, const char *auth)
{
    if (!auth || strncasecmp(auth, "Bearer ", 7)) return 0;
    const char *t = auth + 7;
    while (*t == ' ') t++;
    size_t a = strlen(t), b = strlen(s->token);
    /* constant time in the token's content */
    unsigned char diff = (unsigned char)(a != b);
    for (size_t i = 0; i < b; i++) diff |= (unsigned char)(s->token[i] ^ (i < a ? t[i] : 0));
    return diff == 0;
}

static void set_origin(req *r, const char *origin)
{
    eps_server *s = r->s;
    if (!origin || (!s->n_cors && !s->cors_any)) return;
    int ok = s->cors_any;
    for (int i = 0; !ok && i < s->n_cors; i++) ok = !strcmp(s->cors[i], origin);
    if (!ok || strlen(origin) >= sizeof r->origin_buf) return;
    snprintf(r->origin_buf, sizeof r->origin_buf, "%s", origin);
    r->origin = r->origin_buf;
}

static void set_request_id(req *r, const char *given)
{
    int ok = given && *given && strlen(given) <= 128;
    for (const char *p = given; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             strchr("-_.:/+=", *p);
    if (ok) {
        snprintf(r->rid, sizeof r->rid, "%s", given);
        return;
    }
    unsigned long long n = atomic_fetch_add(&r->s->rid_counter, 1);
    uint64_t x = r->s->rid_seed ^ (n * 0x9e3779b97f4a7c15ULL);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    snprintf(r->rid, sizeof r->rid, "%016llx", (unsigned long long)x);
}

/* Deepest [ / { nesting outside strings, stopping early past max. */
static int too_deep(const char *p, size_t n, long long max)
{
    long long depth = 0;
    int in_str = 0, esc = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (esc) esc = 0;
            else if (c == '\\') esc = 1;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max) return 1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static int space_index(const eps_space *sp)
{
    const eps_space *const *all = eps_space_all();
    for (int i = 0; all[i]; i++)
        if (all[i] == sp) return i;
    return -1;
}

/* ------------------------------------------------------------ scoring jobs */

typedef struct sjob {
    eps_job job;
    eps_server *s;
    eps_cache_flight *flight;
    eps_arch arch;
    double w[2];
    const eps_named_batch *nb;
    int batch_size;
    eps_image_shape shape; /* the network's input: nb is drawn at it (nb201 imagenet16-120: 3x16x16) */
    char batch_hash[17];  /* content hash of nb at batch_size and shape (part of the cache key) */
    eps_engine_kind engine;
    int rc;
    eps_error err;
    char *blob;
    size_t blob_len;
    int from_backend; /* blob was read from the shared tier, not computed */
} sjob;

/* Set while score_done resolves waiters with a value read from the shared
 * tier (item_resolved runs on the same thread): those answers are cache hits. */
static _Thread_local int resolving_backend_hit;

/* Shortest decimal text that reads back as exactly v (15..17 digits): a
 * score must round-trip (sweep --server writes the same CSV as a local
 * sweep) without printing 1e-7 as 9.9999999999999995e-08. */
static void exact_real(char *buf, size_t n, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eEn")) strncat(buf, ".0", n - strlen(buf) - 1); /* stays a JSON real */
}

typedef struct exact_reals {
    double *v;
    size_t n, cap;
} exact_reals;

static int has_mark_byte(const char *p, size_t n) { return memchr(p, 1, n) != NULL; }

/* -2 when a string or key under j holds the placeholder byte, else 0. */
static int check_no_mark(json_t *j)
{
    if (json_is_string(j)) return has_mark_byte(json_string_value(j), json_string_length(j)) ? -2 : 0;
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_object(j)) {
        json_object_foreach(j, key, v) if (has_mark_byte(key, strlen(key)) || check_no_mark(v)) return -2;
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) if (check_no_mark(v)) return -2;
    }
    return 0;
}

/* A placeholder string "\x01N" for real v (N = its index in r), or NULL
 * on allocation failure. */
static json_t *mark_of(const json_t *v, exact_reals *r)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        double *nv = realloc(r->v, nc * sizeof *nv);
        if (!nv) return NULL;
        r->v = nv, r->cap = nc;
    }
    char mark[24];
    snprintf(mark, sizeof mark, "\x01%zu", r->n);
    r->v[r->n++] = json_real_value(v);
    return json_string(mark);
}

/* Replaces every real under j by its placeholder. -1 on allocation failure. */
static int mark_reals(json_t *j, exact_reals *r)
{
    const char *key;
    json_t *v, *m;
    size_t i;
    if (json_is_object(j)) {
        json_object_foreach(j, key, v) {
            if (!json_is_real(v)) {
                if (mark_reals(v, r)) return -1;
            } else if (!(m = mark_of(v, r)) || json_object_set_new(j, key, m)) {
                return -1;
            }
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            if (!json_is_real(v)) {
                if (mark_reals(v, r)) return -1;
            } else if (!(m = mark_of(v, r)) || json_array_set_new(j, i, m)) {
                return -1;
            }
        }
    }
    return 0;
}

/* json_dumps(o, JFLAGS) with every real in exact_real form (o's reals are
 * replaced by placeholders on the way: o is consumed for reading). Caller
 * frees. */
static char *dumps_exact(json_t *o)
{
    exact_reals r = {0};
    int rc = check_no_mark(o); /* before anything is replaced */
    if (rc == 0) rc = mark_reals(o, &r);
    if (rc == -2) {
        free(r.v);
        return json_dumps(o, JFLAGS);
    }
    if (rc) {
        free(r.v);
        return NULL;
    }
    char *text = json_dumps(o, JFLAGS);
    if (!text || !r.n) {
        free(r.v);
        return text;
    }
    size_t cap = strlen(text) + r.n * 32 + 1, w = 0;
    char *out = malloc(cap);
    if (!out) {
        free(text);
        free(r.v);
        return NULL;
    }
    for (const char *p = text; *p;) {
        /* JSON_ENSURE_ASCII writes a placeholder as "\u0001N" */
        if (!strncmp(p, "\"\\u0001", 7)) {
            char *q;
            unsigned long idx = strtoul(p + 7, &q, 10);
            if (*q == '"' && idx < r.n) {
                char num[40];
                exact_real(num, sizeof num, r.v[idx]);
                w += (size_t)snprintf(out + w, cap - w, "%s", num);
                p = q + 1;
                continue;
            }
        }
        out[w++] = *p++;
    }
    out[w] = 0;
    free(text);
    free(r.v);
    return out;
}

static void score_work(eps_job *j)
{
    sjob *sj = j->ctx;
    size_t blen = 0;
    char *b = eps_cache_backend_get(sj->s->cache, sj->flight, &blen);
    if (b) {
        sj->blob = b;
        sj->blob_len = blen;
        sj->from_backend = 1;
        return;
    }
    eps_metrics_queue_wait((double)(j->t_start_ns - j->t_submit_ns) / 1e9);
    eps_batch v; /* the batch's spec at batch_size and shape: a view, or generated anew (ramp, tokens, other shapes) */
    int owned = 0;
    if ((sj->rc = eps_batch_at(&sj->nb->batch, sj->batch_size, sj->shape, &v, &owned, &sj->err)) < 0) return;
    eps_run_opts opts = {.engine = sj->engine, .cancel = &j->cancel, .stop_early = 1};
    eps_score sc;
    int64_t t0 = eps_now_ns();
    eps_metrics_computation();
    sj->rc = eps_arch_score(&sj->arch, &v, sj->w, &opts, &sc, &sj->err);
    if (owned) eps_batch_free(&v);
    if (sj->rc < 0) return;
    eps_metrics_score(space_index(sj->arch.space), (double)(eps_now_ns() - t0) / 1e9);
    json_t *o = json_object();
    json_object_set_new(o, "space", json_string(sj->arch.space->name));
    json_object_set_new(o, "hash", json_string(sj->arch.hash));
    json_object_set_new(o, "canonical", json_string(sj->arch.canonical ? sj->arch.canonical : ""));
    if (sj->arch.dataset) json_object_set_new(o, "dataset", json_string(sj->arch.dataset));
    json_t *enc = eps_arch_encodings(&sj->arch); /* from the canonical form: one cache entry serves every spelling */
    if (enc) json_object_set_new(o, "encodings", enc);
    json_object_set_new(o, "epsilon", num_or_null(sc.epsilon));
    json_object_set_new(o, "nan_reason", isnan(sc.epsilon) ? json_string(sc.nan_reason) : json_null());
    json_object_set_new(o, "params", json_integer(sj->arch.params));
    json_object_set_new(o, "macs", json_integer(sj->arch.macs));
    json_object_set_new(o, "weights", json_pack("[ff]", sj->w[0], sj->w[1]));
    json_object_set_new(o, "batch_hash", json_string(sj->batch_hash));
    json_object_set_new(o, "batch_size", json_integer(sj->batch_size));
    json_object_set_new(o, "engine", json_string(eps_engine_name(sj->engine)));
    sj->blob = dumps_exact(o);
    json_decref(o);
    if (!sj->blob) sj->rc = eps_error_set(&sj->err, EPS_ENOMEM, "", "out of memory");
    else sj->blob_len = strlen(sj->blob);
}

static char *err_json(const char *code, const char *msg, const char *field, size_t *len)
{
    json_t *o = error_obj(code, msg, field, 0, 0);
    char *s = json_dumps(o, JFLAGS);
    json_decref(o);
    *len = s ? strlen(s) : 0;
    return s;
}

static void score_done(eps_job *j, eps_job_status st)
{
    sjob *sj = j->ctx;
    int status = 0;
    const char *code = NULL, *msg = NULL, *field = NULL;
    char msgbuf[600];
    if (st == EPS_JOB_EXPIRED) {
        status = 504, code = "deadline_exceeded", msg = "the request's deadline passed while it waited in the queue";
    } else if (st == EPS_JOB_CANCELED) {
        status = 503, code = "shutting_down", msg = "the server is shutting down; the job was not run";
    } else if (sj->rc == EPS_ECANCELED) {
        int past = j->deadline_ns && j->t_end_ns >= j->deadline_ns;
        if (past) status = 504, code = "deadline_exceeded", msg = "the request's deadline passed while it was computed";
        else status = 503, code = "shutting_down", msg = "the server is shutting down; the job was cancelled";
    } else if (sj->rc < 0) {
        status = sj->rc == EPS_EINVAL ? 400 : sj->rc == EPS_ELIMIT ? 413 : 500;
        code = eps_error_code_name(sj->rc);
        snprintf(msgbuf, sizeof msgbuf, "%s", sj->err.msg);
        msg = msgbuf;
        field = sj->err.field;
    }
    if (status == 504) eps_metrics_reject(EPS_REJ_DEADLINE);
    if (status) {
        size_t n = 0;
        char *e = err_json(code, msg, field, &n);
        eps_cache_finish(sj->s->cache, sj->flight, status, e ? e : "{}", e ? n : 2);
        free(e);
    } else {
        resolving_backend_hit = sj->from_backend;
        eps_cache_finish(sj->s->cache, sj->flight, 0, sj->blob, sj->blob_len);
        resolving_backend_hit = 0;
    }
    eps_arch_free(&sj->arch);
    free(sj->blob);
    free(sj);
}

/* ------------------------------------------------------------ items */

static void item_resolved(eps_cache_waiter *w, int status, const char *val, size_t len)
{
    req *r = w->ctx;
    item *it = &r->items[w->index];
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, val, len);
        copy[len] = 0;
    }
    pthread_mutex_lock(&r->mu);
    it->val = copy;
    it->status = copy ? (status == 0 ? 200 : status) : 500;
    it->cached = status == 0 && resolving_backend_hit;
    int resume = --r->pending == 0 && r->suspended;
    if (resume) r->suspended = 0;
    pthread_mutex_unlock(&r->mu);
    if (resume) {
        pthread_mutex_lock(&r->s->mu);
        r->s->suspended--;
        pthread_mutex_unlock(&r->s->mu);
        MHD_resume_connection(r->conn);
    }
}

/* Characters (code points) of a valid UTF-8 string: JSON Schema's
 * maxLength counts these, not bytes. */
static size_t utf8_chars(const char *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)p[i] & 0xC0) != 0x80;
    return c;
}

static void item_fail(item *it, int status, const char *code, const char *msg, const char *field)
{
    size_t n;
    it->val = err_json(code, msg, field, &n);
    it->status = it->val ? status : 500;
}

/* Validates one score request object and starts (or joins, or answers from
 * cache) its computation. Never fails the whole request: errors land in it. */
static void start_item(req *r, int idx, json_t *o)
{
    eps_server *s = r->s;
    item *it = &r->items[idx];
    it->w.fn = item_resolved;
    it->w.ctx = r;
    it->w.index = idx;
    eps_error err;
    eps_error_clear(&err);
    if (!json_is_object(o)) return item_fail(it, 400, "invalid_input", "a score request must be a JSON object", "");
    json_t *id = json_object_get(o, "id");
    if (id && !json_is_null(id)) {
        if (!(json_is_string(id) && utf8_chars(json_string_value(id), json_string_length(id)) <= ID_MAX) &&
            !json_is_integer(id))
            return item_fail(it, 400, "invalid_input", "'id' must be a string (at most 256 characters) or an integer",
                             "id");
        it->id = json_incref(id);
    }
    if (eps_request_check_fields(o, eps_request_common_fields, &err) < 0)
        return item_fail(it, 400, "invalid_input", err.msg, err.field);
    eps_score_req q;
    if (eps_score_req_prepare(o, s->batches, s->n_batches, s->max_request_memory, &q, &err) < 0) {
        json_t *eo = error_obj(eps_error_code_name(err.code), err.msg, err.field, err.line, err.column);
        it->val = json_dumps(eo, JFLAGS);
        json_decref(eo);
        it->status = it->val ? eps_score_req_status(err.code) : 500;
        return;
    }
    sjob *sj = calloc(1, sizeof *sj);
    if (!sj) {
        eps_arch_free(&q.arch);
        return item_fail(it, 500, "out_of_memory", "out of memory", "");
    }
    const eps_named_batch *nb = q.nb;
    double *w = q.w;
    int bs = q.batch_size;
    eps_engine_kind engine = q.engine;
    sj->arch = q.arch;
    it->nb = nb;
    it->params = sj->arch.params;
    it->macs = sj->arch.macs;
    sj->w[0] = w[0], sj->w[1] = w[1];
    sj->nb = nb;
    sj->batch_size = bs;
    sj->shape = q.shape;
    sj->engine = engine;
    sj->s = s;
    memcpy(sj->batch_hash, q.batch_hash, sizeof sj->batch_hash);

    eps_cache_key key;
    if (eps_cache_key_for_arch(&key, &sj->arch, w, sj->batch_hash, bs, eps_engine_name(engine)) < 0) {
        eps_arch_free(&sj->arch);
        free(sj);
        return item_fail(it, 500, "out_of_memory", "out of memory", "");
    }
    if (!r->is_batch && r->body) {
        char *idj = it->id ? json_dumps(it->id, JSON_ENCODE_ANY | JFLAGS) : NULL;
        memo_put(s, r->body, r->len, &key, idj ? idj : "null", nb, sj->arch.params, sj->arch.macs);
        free(idj);
    }
    char *val = NULL;
    size_t vlen = 0;
    pthread_mutex_lock(&r->mu);
    r->pending++; /* before the waiter can be attached and resolved */
    pthread_mutex_unlock(&r->mu);
    eps_cache_result cr = eps_cache_lookup(s->cache, &key, &it->w, &val, &vlen, &sj->flight);
    eps_cache_key_free(&key);
    if (cr == EPS_CACHE_HIT || (cr == EPS_CACHE_LEAD && !sj->flight)) {
        pthread_mutex_lock(&r->mu);
        r->pending--;
        pthread_mutex_unlock(&r->mu);
        eps_arch_free(&sj->arch);
        free(sj);
        if (cr == EPS_CACHE_HIT) {
            it->val = val;
            it->status = 200;
            it->cached = 1;
        } else {
            item_fail(it, 500, "out_of_memory", "out of memory", "");
        }
        return;
    }
    if (cr == EPS_CACHE_JOINED) { /* an identical job is running: its result resolves us */
        eps_arch_free(&sj->arch);
        free(sj);
        return;
    }
    sj->job.work = score_work;
    sj->job.done = score_done;
    sj->job.ctx = sj;
    sj->job.deadline_ns = r->t0 + s->deadline_ms * 1000000LL;
    int rc = atomic_load(&s->draining) ? EPS_ECANCELED : eps_queue_submit(s->q, &sj->job);
    if (rc == 0) return;
    /* Refused: fail the flight, which resolves us and anyone who joined. */
    size_t n;
    char *e;
    int st;
    if (rc == EPS_ELIMIT) {
        eps_metrics_reject(EPS_REJ_QUEUE_FULL);
        st = 429;
        e = err_json("queue_full", "the compute queue is full; retry later", "", &n);
    } else {
        eps_metrics_reject(EPS_REJ_DRAINING);
        st = 503;
        e = err_json("draining", "the server is shutting down", "", &n);
    }
    eps_cache_finish(s->cache, sj->flight, st, e ? e : "{}", e ? n : 2);
    free(e);
    eps_arch_free(&sj->arch);
    free(sj);
}

/* Result object for a resolved item (200): the cached blob plus the
 * request's own fields. NULL on a bad blob. */
static json_t *item_result(req *r, item *it)
{
    json_t *blob = json_loads(it->val, 0, NULL);
    if (!json_is_object(blob)) {
        json_decref(blob);
        return NULL;
    }
    json_t *o = json_object();
    json_object_set(o, "id", it->id ? it->id : json_null());
    json_object_update(o, blob);
    json_decref(blob);
    json_object_set_new(o, "params", json_integer(it->params));
    json_object_set_new(o, "macs", json_integer(it->macs));
    json_object_set_new(o, "batch", json_string(it->nb->name));
    json_object_set_new(o, "cached", json_boolean(it->cached));
    json_object_set_new(o, "elapsed_ms", json_real(ms_since(r->t0)));
    return o;
}

/* A single result as text: {"id":ID, <blob fields>, "batch":NAME,
 * "cached":B, "elapsed_ms":T}. The blob is a compact JSON object written
 * by score_work and batch names are [A-Za-z0-9._-], so splicing is safe and
 * saves a parse/serialise round trip on every cache hit. */
static enum MHD_Result send_result(req *r, const char *blob, size_t blen, const char *id_json, const char *batch,
                                   int cached, long long params, long long macs)
{
    if (blen < 2 || blob[0] != '{' || blob[blen - 1] != '}')
        return send_error(r, 500, "internal_error", "corrupt cached result", "");
    /* the request's own params/MACs replace the blob's (see item.params) */
    json_t *bo = json_loadb(blob, blen, 0, NULL);
    if (!json_is_object(bo)) {
        json_decref(bo);
        return send_error(r, 500, "internal_error", "corrupt cached result", "");
    }
    json_object_set_new(bo, "params", json_integer(params));
    json_object_set_new(bo, "macs", json_integer(macs));
    char *own = dumps_exact(bo);
    json_decref(bo);
    if (!own) return MHD_NO;
    blob = own;
    blen = strlen(own);
    size_t cap = blen + strlen(id_json) + strlen(batch) + 96;
    char *out = malloc(cap);
    if (!out) return MHD_NO;
    int n = snprintf(out, cap, "{\"id\":%s,%.*s%s\"batch\":\"%s\",\"cached\":%s,\"elapsed_ms\":%.3f}", id_json,
                     (int)(blen - 2), blob + 1, blen > 2 ? "," : "", batch, cached ? "true" : "false", ms_since(r->t0));
    free(own);
    if (n < 0 || (size_t)n >= cap) {
        free(out);
        return send_error(r, 500, "internal_error", "result too large", "");
    }
    return send_body(r, 200, "application/json", out, (size_t)n, NULL, NULL, NULL, NULL);
}

static enum MHD_Result respond_items(req *r)
{
    if (!r->is_batch) {
        item *it = &r->items[0];
        if (it->status == 200) {
            char *idj = it->id ? json_dumps(it->id, JSON_ENCODE_ANY | JFLAGS) : NULL;
            enum MHD_Result ret =
                send_result(r, it->val, strlen(it->val), idj ? idj : "null", it->nb->name, it->cached, it->params, it->macs);
            free(idj);
            return ret;
        }
        json_t *e = it->val ? json_loads(it->val, 0, NULL) : NULL;
        if (!e) return send_error(r, 500, "internal_error", "lost error detail", "");
        const char *h = NULL, *v = NULL;
        if (it->status == 429 || it->status == 503) h = "Retry-After", v = "1";
        return send_json(r, it->status, e, h, v, NULL, NULL);
    }
    json_t *arr = json_array();
    int ok = 0, failed = 0;
    for (int i = 0; i < r->n_items; i++) {
        item *it = &r->items[i];
        json_t *o = NULL;
        if (it->status == 200) o = item_result(r, it);
        if (o) {
            ok++;
        } else {
            failed++;
            json_t *e = it->val ? json_loads(it->val, 0, NULL) : NULL;
            if (!json_is_object(e)) {
                json_decref(e);
                e = error_obj("internal_error", "lost error detail", NULL, 0, 0);
            }
            o = json_object();
            json_object_set(o, "id", it->id ? it->id : json_null());
            json_object_set_new(o, "status", json_integer(it->status == 200 ? 500 : it->status));
            json_object_update(o, e);
            json_decref(e);
        }
        json_array_append_new(arr, o);
    }
    json_t *top = json_object();
    json_object_set_new(top, "results", arr);
    json_object_set_new(top, "succeeded", json_integer(ok));
    json_object_set_new(top, "failed", json_integer(failed));
    json_object_set_new(top, "elapsed_ms", json_real(ms_since(r->t0)));
    return send_json(r, 200, top, NULL, NULL, NULL, NULL);
}

/* ------------------------------------------------------------ jobs */

/* /v1/jobs*: eps_http_jobs builds the response; queue it like send_body. */
static enum MHD_Result send_jobs(req *r, const char *method)
{
    int status = 500;
    struct MHD_Response *resp =
        eps_http_jobs_handle(r->s->hj, r->conn, method, r->path, r->body, r->len, &status);
    if (!resp) return send_error(r, 500, "out_of_memory", "out of memory", "");
    add_common_headers(r, resp);
    return queue_response(r, status, resp);
}

/* ------------------------------------------------------------ dashboard */

/* / and /assets/...: eps_http_static answers; its 404/405 get our JSON. */
static enum MHD_Result send_dashboard(req *r, const char *url, const char *method)
{
    int status = 500;
    const char *inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "If-None-Match");
    struct MHD_Response *resp = eps_http_static_handle(method, url, inm, &status);
    if (resp) {
        add_common_headers(r, resp);
        return queue_response(r, status, resp);
    }
    if (status == 405)
        return send_json(r, 405, error_obj("method_not_allowed", "the dashboard is read with GET or HEAD", NULL, 0, 0),
                         "Allow", "GET, HEAD", NULL, NULL);
    if (status == 404) return send_error(r, 404, "not_found", "no such dashboard file", "");
    return send_error(r, 500, "out_of_memory", "out of memory", "");
}

/* ------------------------------------------------------------ POST bodies */

/* Start of the number token that ends at or just before byte `pos` (jansson
 * reports the position after the token, sometimes after one more byte). */
static size_t number_start(const char *b, size_t len, size_t pos)
{
    if (pos > len) pos = len;
    while (pos > 0 && !strchr("0123456789+-.eE", b[pos - 1])) pos--;
    while (pos > 0 && strchr("0123456789+-.eE", b[pos - 1])) pos--;
    return pos;
}

/* Path ("items[2].weights[0]") of the value starting at byte `end` of a
 * JSON text that is valid up to there; keys are copied raw (escapes kept),
 * at most 40 bytes each. out is always terminated. */
static void json_path_at(const char *b, size_t end, char *out, size_t cap)
{
    enum { MAXD = 64 };
    char kind[MAXD];
    long idx[MAXD];
    const char *key[MAXD], *last = NULL;
    size_t klen[MAXD], lastlen = 0;
    int d = 0;
    for (size_t i = 0; i < end; i++) {
        char ch = b[i];
        if (ch == '"') {
            size_t st = ++i;
            while (i < end && b[i] != '"') i += b[i] == '\\' ? 2 : 1;
            last = b + st, lastlen = (i < end ? i : end) - st;
        } else if (ch == ':') {
            if (d > 0 && d <= MAXD) key[d - 1] = last, klen[d - 1] = lastlen;
        } else if (ch == '{' || ch == '[') {
            if (d < MAXD) kind[d] = ch, idx[d] = 0, key[d] = NULL, klen[d] = 0;
            d++;
        } else if (ch == '}' || ch == ']') {
            if (d > 0) d--;
        } else if (ch == ',' && d > 0 && d <= MAXD && kind[d - 1] == '[') {
            idx[d - 1]++;
        }
    }
    size_t n = 0;
    out[0] = 0;
    for (int j = 0; j < d && j < MAXD && n < cap; j++) {
        int k;
        if (kind[j] == '[')
            k = snprintf(out + n, cap - n, "[%ld]", idx[j]);
        else if (key[j]) {
            size_t kl = klen[j] > 40 ? 40 : klen[j];
            while (kl > 0 && kl < klen[j] && ((unsigned char)key[j][kl] & 0xC0) == 0x80) kl--; /* whole UTF-8 chars */
            k = snprintf(out + n, cap - n, "%s%.*s", n ? "." : "", (int)kl, key[j]);
        }
        else
            k = 0;
        if (k < 0) break;
        n += (size_t)k;
    }
    if (n >= cap) out[cap - 1] = 0;
}

static enum MHD_Result handle_post(req *r)
{
    eps_server *s = r->s;
    if (r->route == R_JOBS) return send_jobs(r, "POST");
    if (r->route == R_SCORE && r->body) {
        eps_cache_key k;
        char *idj = NULL, *val = NULL;
        size_t vlen = 0;
        const eps_named_batch *nb = NULL;
        long long params = 0, macs = 0;
        if (memo_get(s, r->body, r->len, &k, &idj, &nb, &params, &macs)) {
            int hit = eps_cache_peek(s->cache, &k, &val, &vlen) == EPS_CACHE_HIT;
            free(k.text);
            enum MHD_Result ret = MHD_YES;
            if (hit) ret = send_result(r, val, vlen, idj, nb->name, 1, params, macs);
            free(val);
            free(idj);
            if (hit) return ret;
        }
    }
    if (too_deep(r->body, r->len, s->json_depth)) {
        char msg[120];
        snprintf(msg, sizeof msg, "JSON nested deeper than %lld levels", s->json_depth);
        return send_error(r, 400, "json_too_deep", msg, "");
    }
    json_error_t je;
    json_t *root = json_loadb(r->body ? r->body : "", r->len, JSON_REJECT_DUPLICATES, &je);
    if (!root && json_error_code(&je) == json_error_numeric_overflow) {
        /* valid JSON, but a number out of range: name the field */
        char path[160], msg[400];
        json_path_at(r->body, number_start(r->body, r->len, (size_t)je.position), path, sizeof path);
        snprintf(msg, sizeof msg, "the number at '%s' is out of range (%s)", *path ? path : "(top level)", je.text);
        return send_error(r, 400, "invalid_input", msg, path);
    }
    if (!root) {
        char msg[256];
        snprintf(msg, sizeof msg, "invalid JSON: %s", je.text);
        return send_json(r, 400, error_obj("invalid_json", msg, NULL, je.line > 0 ? je.line : 1, je.column > 0 ? je.column : 1),
                         NULL, NULL, NULL, NULL);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return send_error(r, 400, "invalid_input", "the request body must be a JSON object", "");
    }
    json_t *list = NULL;
    if (r->route == R_BATCH) {
        list = json_object_get(root, "items");
        if (!json_is_array(list) || json_array_size(list) == 0) {
            json_decref(root);
            return send_error(r, 400, "invalid_input", "'items' must be a non-empty array of score requests",
                              "items");
        }
        if ((long long)json_array_size(list) > s->max_items) {
            char msg[120];
            snprintf(msg, sizeof msg, "%zu items; at most %lld per request", json_array_size(list), s->max_items);
            json_decref(root);
            eps_metrics_reject(EPS_REJ_TOO_LARGE);
            return send_error(r, 413, "too_large", msg, "items");
        }
        const char *k;
        json_t *v;
        json_object_foreach(root, k, v) {
            if (strcmp(k, "items") && strncmp(k, "x-", 2)) {
                char name[48], msg[160];
                size_t n = strlen(k) < 40 ? strlen(k) : 40;
                while (n > 0 && k[n] && ((unsigned char)k[n] & 0xC0) == 0x80) n--; /* whole UTF-8 characters */
                snprintf(name, sizeof name, "%.*s", (int)n, k);
                snprintf(msg, sizeof msg, "unknown field '%s' (a batch holds 'items'; extensions start with 'x-')", name);
                json_decref(root);
                return send_error(r, 400, "invalid_input", msg, name);
            }
        }
        r->is_batch = 1;
        r->n_items = (int)json_array_size(list);
    } else {
        r->n_items = 1;
    }
    r->items = calloc((size_t)r->n_items, sizeof *r->items);
    if (!r->items) {
        json_decref(root);
        return send_error(r, 500, "out_of_memory", "out of memory", "");
    }
    r->async = 1;
    pthread_mutex_lock(&r->mu);
    r->pending = 1; /* guard: nobody resumes before we decide to suspend */
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->n_items; i++) start_item(r, i, list ? json_array_get(list, (size_t)i) : root);
    json_decref(root);
    free(r->body);
    r->body = NULL;
    pthread_mutex_lock(&r->mu);
    int wait = --r->pending > 0;
    if (wait) {
        r->suspended = 1;
        pthread_mutex_lock(&s->mu);
        s->suspended++;
        pthread_mutex_unlock(&s->mu);
        MHD_suspend_connection(r->conn);
    }
    pthread_mutex_unlock(&r->mu);
    if (wait) return MHD_YES;
    return respond_items(r);
}

/* ------------------------------------------------------------ GET */

static enum MHD_Result handle_scores(req *r, const char *url)
{
    const char *h = url + strlen("/v1/scores/");
    size_t n = strlen(h);
    int ok = n == 32;
    for (size_t i = 0; ok && i < n; i++) ok = (h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f');
    if (!ok) return send_error(r, 400, "invalid_input", "the hash must be 32 lowercase hex characters", "hash");
    char *vals[MAX_BY_ARCH];
    int k = eps_cache_by_arch(r->s->cache, h, vals, MAX_BY_ARCH);
    if (k == 0) return send_error(r, 404, "not_found", "no cached result for this architecture hash", "hash");
    json_t *arr = json_array();
    for (int i = 0; i < k; i++) {
        json_t *o = json_loads(vals[i], 0, NULL);
        free(vals[i]);
        if (!o) continue;
        json_object_set_new(o, "cached", json_true());
        json_array_append_new(arr, o);
    }
    json_t *top = json_object();
    json_object_set_new(top, "hash", json_string(h));
    json_object_set_new(top, "results", arr);
    return send_json(r, 200, top, NULL, NULL, NULL, NULL);
}

static enum MHD_Result handle_get(req *r, const char *url)
{
    eps_server *s = r->s;
    switch (r->route) {
    case R_LIVE: return send_static(r, 200, NULL, "", 0);
    case R_READY:
        return atomic_load(&s->draining) ? send_static(r, 503, NULL, "", 0) : send_static(r, 200, NULL, "", 0);
    case R_META: return send_static(r, 200, "application/json", s->meta_json, s->meta_len);
    case R_SPACES: return send_static(r, 200, "application/json", s->spaces_json, s->spaces_len);
    case R_BATCHES: return send_static(r, 200, "application/json", s->batches_json, s->batches_len);
    case R_SCORES: return handle_scores(r, url);
    case R_METRICS: {
        eps_cache_stats cs;
        eps_cache_get_stats(s->cache, &cs);
        eps_metrics_gauges g = {eps_queue_depth(s->q), cs.entries, cs.bytes, cs.hits, cs.misses, cs.evictions};
        size_t n = 0;
        char *m = eps_metrics_render(&g, &n);
        if (m) m = eps_http_jobs_metrics(s->jobs, m, &n);
        if (!m) return send_error(r, 500, "out_of_memory", "out of memory", "");
        return send_body(r, 200, "text/plain; version=0.0.4; charset=utf-8", m, n, NULL, NULL, NULL, NULL);
    }
    }
    return send_error(r, 404, "not_found", "no such endpoint", "");
}

/* ------------------------------------------------------------ MHD callbacks */

/* Most bytes of an over-limit body read (and dropped) so the client can
 * read the 413; past it the connection is closed. */
static unsigned long long discard_bound(const eps_server *s) { return (unsigned long long)s->body_limit * 4 + 65536; }

#define URL_MAX 8192         /* longest request target */
#define HEADERS_MAX 32768     /* header names + values, all lines */
#define CONN_MEMORY (256 * 1024) /* per-connection pool: a head past our limits, and room to answer */
#define EPS_STR2(x) #x
#define EPS_STR(x) EPS_STR2(x)

static enum MHD_Result header_bytes(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

static enum MHD_Result first_call(req *r, const char *url, const char *method)
{
    eps_server *s = r->s;
    struct MHD_Connection *c = r->conn;
    set_request_id(r, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id"));
    set_origin(r, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin"));
    /* Our limits sit below the connection memory pool (CONN_MEMORY), so
     * these get our JSON; only heads past the pool get the library's page. */
    if (strlen(url) > URL_MAX) {
        r->close = 1;
        return send_error(r, 414, "uri_too_long", "request target longer than " EPS_STR(URL_MAX) " bytes", "");
    }
    size_t head = 0;
    MHD_get_connection_values(c, MHD_HEADER_KIND, header_bytes, &head);
    if (head > HEADERS_MAX) {
        r->close = 1;
        return send_error(r, 431, "headers_too_large", "request headers larger than " EPS_STR(HEADERS_MAX) " bytes", "");
    }
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");
    if (te && MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length")) r->close = 1;
    if (!strcmp(r->version, "HTTP/1.1") && !MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host")) {
        r->close = 1;
        return send_error(r, 400, "invalid_request", "HTTP/1.1 request without a Host header (RFC 9112 3.2)", "Host");
    }
    if (eps_http_static_owns(url)) return send_dashboard(r, url, method);
    int ri = find_route(url);
    if (ri < 0) {
        r->ep = EPS_EP_OTHER;
        return send_error(r, 404, "not_found", "no such endpoint (see GET /v2 and openapi.yaml)", "");
    }
    r->route = routes[ri].route;
    r->ep = routes[ri].ep;
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int is_post = !strcmp(method, "POST");
    if (!strcmp(method, "OPTIONS")) {
        const char *acrm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Method");
        if (r->origin && acrm)
            return send_body(r, 204, NULL, NULL, 0, "Access-Control-Allow-Methods", allow_for(ri),
                             "Access-Control-Allow-Headers", "Content-Type, Authorization, X-Request-Id");
        return send_body(r, 204, NULL, NULL, 0, "Allow", allow_for(ri), NULL, NULL);
    }
    if (routes[ri].post != 2 && (routes[ri].post ? !is_post : !is_get)) {
        char msg[120];
        snprintf(msg, sizeof msg, "method %.16s not allowed here (allowed: %s)", method, allow_for(ri));
        const char *allow = allow_for(ri);
        return send_json(r, 405, error_obj("method_not_allowed", msg, NULL, 0, 0), "Allow", allow, NULL, NULL);
    }
    if (s->token[0] && !strncmp(url, "/v1/", 4) &&
        !token_ok(s, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"))) {
        eps_metrics_reject(EPS_REJ_UNAUTHORIZED);
        return send_error(r, 401, "unauthorized", "missing or wrong 'Authorization: Bearer <token>'", "");
    }
    if (r->route == R_JOBS && !is_post) return send_jobs(r, method);
    if (!is_post) return handle_get(r, url);
    if (atomic_load(&s->draining)) {
        eps_metrics_reject(EPS_REJ_DRAINING);
        return send_error(r, 503, "draining", "the server is shutting down", "");
    }
    if (!ct_is_json(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type")))
        return send_error(r, 415, "unsupported_media_type", "the body must be sent as 'Content-Type: application/json'",
                          "");
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        int over = errno || end == cl || (long long)n > s->body_limit || n > (unsigned long long)s->body_limit;
        /* A client that did not ask "Expect: 100-continue" is sending the
         * body already: closing on it unread resets the connection and the
         * client never sees the 413. Read and drop a body up to a bound
         * (the one chunked bodies get), then answer. */
        if (over && !errno && end != cl && n <= discard_bound(s) &&
            !MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect")) {
            r->too_large = 1;
            r->close = 1;
            return MHD_YES;
        }
        if (over) {
            char msg[120];
            snprintf(msg, sizeof msg, "request body larger than the %lld-byte limit", s->body_limit);
            eps_metrics_reject(EPS_REJ_TOO_LARGE);
            return send_error(r, 413, "too_large", msg, "");
        }
    }
    return MHD_YES; /* wait for the body */
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    eps_server *s = cls;
    req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->s = s;
        r->conn = conn;
        r->t0 = eps_now_ns();
        r->route = R_NONE;
        r->ep = EPS_EP_OTHER;
        pthread_mutex_init(&r->mu, NULL);
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->version, sizeof r->version, "%s", version);
        snprintf(r->path, sizeof r->path, "%s", url);
        *con_cls = r;
        pthread_mutex_lock(&s->mu);
        s->inflight++;
        pthread_mutex_unlock(&s->mu);
        eps_metrics_inflight_add(1);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        r->defer = !MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding") &&
                   (!cl || !strcmp(cl, "0"));
        enum MHD_Result ret = first_call(r, url, method);
        if (r->status || r->deferred) conn_receiving(conn, 0); /* answered from the head */
        r->defer = 0;
        return ret;
    }
    if (r->deferred) {
        if (*upload_size) { /* a body after all: drop it */
            *upload_size = 0;
            return MHD_YES;
        }
        struct MHD_Response *resp = r->deferred;
        r->deferred = NULL;
        enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->deferred_status, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    if (r->async) return respond_items(r); /* resumed: every item resolved */
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (!r->too_large && r->len + n > (size_t)s->body_limit) {
            r->too_large = 1;
            free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
        }
        if (r->too_large) {
            /* Chunked body past the limit: drop it without buffering, but
             * give up on the connection if the client keeps going. */
            r->discarded += n;
            return r->discarded > discard_bound(s) ? MHD_NO : MHD_YES;
        }
        if (r->len + n > r->cap) {
            size_t nc = r->cap ? r->cap : 4096;
            while (nc < r->len + n) nc *= 2;
            if (nc > (size_t)s->body_limit) nc = (size_t)s->body_limit;
            char *nb = realloc(r->body, nc);
            if (!nb) return MHD_NO;
            r->body = nb;
            r->cap = nc;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        return MHD_YES;
    }
    conn_receiving(conn, 0); /* the whole request is in */
    if (r->too_large) {
        char msg[120];
        snprintf(msg, sizeof msg, "request body larger than the %lld-byte limit", s->body_limit);
        eps_metrics_reject(EPS_REJ_TOO_LARGE);
        return send_error(r, 413, "too_large", msg, "");
    }
    return handle_post(r);
}

/* Copies src into dst (n bytes, NUL-terminated, truncated) with control
 * characters, quotes, backslashes and non-ASCII bytes written as \xNN, so a
 * logged field can never end the line or forge another field. */
static void log_escape(char *dst, size_t n, const char *src)
{
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p && k + 5 < n; p++) {
        if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') k += (size_t)snprintf(dst + k, n - k, "\\x%02x", *p);
        else dst[k++] = (char)*p;
    }
    dst[k] = 0;
}

static void access_log(req *r, struct MHD_Connection *conn)
{
    if (!eps_log_enabled(EPS_LOG_INFO)) return;
    char addr[INET6_ADDRSTRLEN] = "-";
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET) inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
    }
    double ms = ms_since(r->t0);
    /* method and path come from the client (the path percent-decoded):
     * escaped in both formats (JSON strings must be valid UTF-8 too). */
    char method[4 * sizeof r->method + 1], path[4 * sizeof r->path + 1], rid[4 * sizeof r->rid + 1];
    log_escape(method, sizeof method, r->method);
    log_escape(path, sizeof path, r->path);
    log_escape(rid, sizeof rid, r->rid);
    if (eps_log_is_json()) {
        json_t *x = json_pack("{s:s,s:s,s:s,s:s,s:i,s:I,s:f}", "request_id", rid, "remote", addr, "method", method,
                              "path", path, "status", r->status, "bytes", (json_int_t)r->resp_bytes, "duration_ms",
                              ms);
        eps_log_emit(EPS_LOG_INFO, "access", x);
        json_decref(x);
        return;
    }
    char msg[1800];
    snprintf(msg, sizeof msg, "access rid=%s remote=%s method=%s path=\"%s\" status=%d bytes=%zu ms=%.3f", rid, addr,
             method, path, r->status, r->resp_bytes, ms);
    eps_log_emit(EPS_LOG_INFO, msg, NULL);
}
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode tc)
{
    (void)tc;
    eps_server *s = cls;
    req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    if (r->deferred) MHD_destroy_response(r->deferred);
    conn_receiving(conn, 1); /* the next request's clock starts now */
    if (r->status) eps_metrics_request(r->ep, r->status, ms_since(r->t0) / 1e3);
    access_log(r, conn);
    for (int i = 0; i < r->n_items; i++) {
        json_decref(r->items[i].id);
        free(r->items[i].val);
    }
    free(r->items);
    free(r->body);
    pthread_mutex_destroy(&r->mu);
    free(r);
    eps_metrics_inflight_add(-1);
    pthread_mutex_lock(&s->mu);
    s->inflight--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------ lifecycle */

/* The name of the batch a request without "batch" uses in space x for
 * dataset ds (NULL: the space's own default). */
static const char *default_batch_name(const eps_server *s, const eps_space *x, const char *ds)
{
    const eps_named_batch *nb =
        eps_named_batch_pick(s->batches, s->n_batches, NULL, eps_space_default_batch(x, ds), x->batch_kind);
    return nb ? nb->name : eps_space_default_batch(x, ds);
}

static int build_static_docs(eps_server *s)
{
    json_t *sp = json_array(), *defaults = json_object();
    for (const eps_space *const *p = eps_space_all(); *p; p++) {
        const eps_space *x = *p;
        json_t *ops = json_array(), *fields = json_array();
        for (const char *const *o = x->op_names; o && *o; o++) json_array_append_new(ops, json_string(*o));
        for (const char *const *f = x->fields; f && *f; f++) json_array_append_new(fields, json_string(*f));
        json_t *o = json_pack("{s:s,s:s,s:[f,f],s:s,s:o,s:o,s:s,s:s}", "name", x->name, "title",
                              x->title ? x->title : x->name, "weights", x->w1, x->w2, "batch_kind",
                              x->batch_kind == EPS_BATCH_IMAGES ? "images" : "tokens", "ops", ops, "fields", fields, "limits",
                              x->limits ? x->limits : "", "default_batch", default_batch_name(s, x, NULL));
        if (o && x->datasets) {
            json_t *d = json_object(), *list = json_array();
            for (const eps_space_dataset *e = x->datasets; e->dataset; e++) {
                json_object_set_new(d, e->dataset, json_string(default_batch_name(s, x, e->dataset)));
                /* what "dataset" selects: the network's input shape (the first is the default) */
                json_array_append_new(list, json_pack("{s:s,s:[i,i,i],s:i,s:s,s:b}", "name", e->dataset, "input", e->c,
                                                      e->h, e->w, "classes", e->classes, "default_batch",
                                                      default_batch_name(s, x, e->dataset), "default",
                                                      e == x->datasets));
            }
            json_object_set_new(o, "dataset_batches", d);
            json_object_set_new(o, "datasets", list);
        }
        json_object_set_new(defaults, x->name, json_string(default_batch_name(s, x, NULL)));
        json_array_append_new(sp, o);
    }
    json_t *doc = json_pack("{s:o,s:[s,s],s:{s:I,s:I,s:I,s:I}}", "spaces", sp, "engines", "fast", "dense", "limits",
                            "body_bytes", (json_int_t)s->body_limit, "max_batch_items", (json_int_t)s->max_items,
                            "json_depth", (json_int_t)s->json_depth, "deadline_ms", (json_int_t)s->deadline_ms);
    json_t *bl = json_array();
    for (int i = 0; i < s->n_batches; i++) {
        const eps_batch *b = &s->batches[i].batch;
        const char *what = eps_batch_describe(b->source);
        json_t *shape = b->kind == EPS_BATCH_IMAGES ? json_pack("[i,i,i]", b->c, b->h, b->w) : json_pack("[i]", b->steps);
        json_array_append_new(bl, json_pack("{s:s,s:s,s:s,s:i,s:o,s:s,s:s,s:b,s:b}", "name", s->batches[i].name,
                                            "source", b->source, "kind",
                                            b->kind == EPS_BATCH_IMAGES ? "images" : "tokens", "size", b->n, "shape",
                                            shape, "hash", b->hash, "generator", what ? what : "", "builtin",
                                            s->batches[i].builtin, "prefix_stable", eps_batch_prefix_stable(b)));
    }
    json_t *bdoc = json_pack("{s:o,s:o}", "batches", bl, "defaults", defaults);
    json_t *meta = json_pack("{s:s,s:s,s:[s,s,s,s]}", "name", "epsinas", "version", EPS_VERSION, "extensions",
                             "score", "score_batch", "scores_by_hash", "metrics");
    if (!doc || !bdoc || !meta) {
        json_decref(doc);
        json_decref(bdoc);
        json_decref(meta);
        return -1;
    }
    s->spaces_json = json_dumps(doc, JFLAGS);
    s->batches_json = json_dumps(bdoc, JFLAGS);
    s->meta_json = json_dumps(meta, JFLAGS);
    json_decref(doc);
    json_decref(bdoc);
    json_decref(meta);
    if (!s->spaces_json || !s->batches_json || !s->meta_json) return -1;
    s->spaces_len = strlen(s->spaces_json);
    s->batches_len = strlen(s->batches_json);
    s->meta_len = strlen(s->meta_json);
    return 0;
}

static int parse_cors(eps_server *s, const char *list)
{
    if (!list || !*list) return 0;
    char *copy = strdup(list);
    if (!copy) return -1;
    int cap = 1;
    for (const char *p = list; *p; p++) cap += *p == ',';
    s->cors = calloc((size_t)cap, sizeof *s->cors);
    if (!s->cors) {
        free(copy);
        return -1;
    }
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        size_t n = strlen(t);
        while (n && t[n - 1] == ' ') t[--n] = 0;
        if (!n) continue;
        if (!strcmp(t, "*")) s->cors_any = 1;
        else s->cors[s->n_cors++] = strdup(t);
    }
    free(copy);
    return 0;
}

static int bind_socket(const char *addr, int port, int *fd_out, int *port_out, eps_error *err)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(addr, ps, &hints, &res);
    if (rc != 0 || !res)
        return eps_error_set(err, EPS_EINVAL, "--listen", "--listen: '%.60s' is not a numeric IPv4/IPv6 address", addr);
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return eps_error_set(err, EPS_EIO, "--listen", "socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        freeaddrinfo(res);
        close(fd);
        return eps_error_set(err, EPS_EIO, "--port", "cannot listen on %s port %d: %s", addr, port, strerror(e));
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return 0;
}

static void free_server(eps_server *s)
{
    eps_http_jobs_free(s->hj);
    eps_jobs_stop(s->jobs); /* waits for its items in flight, so before the queue goes */
    if (s->q) eps_queue_free(s->q);
    if (s->cache) eps_cache_free(s->cache);
    if (s->listen_fd >= 0) close(s->listen_fd);
    for (int i = 0; i < s->n_cors; i++) free(s->cors[i]);
    free(s->cors);
    free(s->spaces_json);
    free(s->batches_json);
    free(s->meta_json);
    if (s->memo) {
        for (int i = 0; i < MEMO_SLOTS; i++) {
            free(s->memo[i].body);
            free(s->memo[i].key.text);
            free(s->memo[i].id_json);
        }
        free(s->memo);
    }
    for (int i = 0; i < MEMO_LOCKS; i++) pthread_mutex_destroy(&s->memo_mu[i]);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->reaper_cv);
    pthread_mutex_destroy(&s->conn_mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int start_jobs(eps_server *s, const eps_config *cfg, eps_error *err)
{
    const char *tag = cfg->replica_tag ? cfg->replica_tag : "";
    for (const char *p = tag; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return eps_error_set(err, EPS_EINVAL, "--replica-tag", "--replica-tag: '%.16s' must be [a-z0-9]", tag);
    long window = cfg->job_window > 0 ? (long)cfg->job_window : (long)cfg->workers;
    if (window > cfg->queue_capacity) window = (long)cfg->queue_capacity;
    eps_jobs_config jc = {cfg->data_dir, (long)cfg->max_jobs, (long)cfg->max_job_items, (long)cfg->job_retention_s,
                          (int)window, tag, cfg->max_request_memory};
    int rc = eps_jobs_start(&jc, s->q, s->cache, s->batches, s->n_batches, &s->jobs, err);
    if (rc == 0 && eps_http_jobs_new(s->jobs, &s->hj) < 0)
        rc = eps_error_set(err, EPS_ENOMEM, "", "cannot start the job event ticker");
    /* GET /v2 lists the job limits */
    json_t *meta = rc == 0 ? json_loads(s->meta_json, 0, NULL) : NULL;
    if (meta) {
        json_array_append_new(json_object_get(meta, "extensions"), json_string("jobs"));
        json_object_set_new(meta, "jobs",
                            json_pack("{s:I,s:I,s:I,s:i,s:b,s:s}", "max_jobs", (json_int_t)cfg->max_jobs,
                                      "max_job_items", (json_int_t)cfg->max_job_items, "job_retention_s",
                                      (json_int_t)cfg->job_retention_s, "window", (int)window, "persistent",
                                      cfg->data_dir && *cfg->data_dir, "replica_tag", tag));
        char *m = json_dumps(meta, JFLAGS);
        json_decref(meta);
        if (m) {
            free(s->meta_json);
            s->meta_json = m;
            s->meta_len = strlen(m);
        }
    }
    return rc;
}

int eps_server_start(const eps_config *cfg, const eps_named_batch *batches, int n, eps_server **out, eps_error *err)
{
    *out = NULL;
    eps_server *s = calloc(1, sizeof *s);
    if (!s) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    s->listen_fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->conn_mu, NULL);
    s->request_timeout_ms = cfg->request_timeout_ms;
    for (int i = 0; i < MEMO_LOCKS; i++) pthread_mutex_init(&s->memo_mu[i], NULL);
    s->memo = cfg->cache_entries > 0 ? calloc(MEMO_SLOTS, sizeof *s->memo) : NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_cond_init(&s->reaper_cv, &ca);
    pthread_condattr_destroy(&ca);
    s->batches = batches;
    s->n_batches = n;
    s->body_limit = cfg->body_limit;
    s->max_items = cfg->max_batch_items;
    s->json_depth = cfg->json_depth;
    s->deadline_ms = cfg->deadline_ms;
    s->max_request_memory = cfg->max_request_memory;
    snprintf(s->token, sizeof s->token, "%s", cfg->api_token ? cfg->api_token : "");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->rid_seed = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);

    const eps_space *const *all = eps_space_all();
    const char *names[EPS_METRICS_MAX_SPACES];
    int ns = 0;
    for (; all[ns] && ns < EPS_METRICS_MAX_SPACES; ns++) names[ns] = all[ns]->name;
    eps_metrics_init(names, ns);

    int rc;
    if (parse_cors(s, cfg->cors_origins) < 0 || build_static_docs(s) < 0) {
        free_server(s);
        return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    }
    eps_cache_backend rb; /* the cache owns it once eps_cache_new succeeds */
    if ((rc = eps_redis_backend_config(cfg, &rb, err)) < 0 ||
        (rc = eps_cache_new(cfg->cache_entries, cfg->cache_bytes, rc > 0 ? &rb : NULL, &s->cache, err)) < 0 ||
        (rc = eps_queue_start((int)cfg->workers, (int)cfg->queue_capacity, &s->q, err)) < 0 ||
        (rc = start_jobs(s, cfg, err)) < 0 ||
        (rc = bind_socket(cfg->listen, (int)cfg->port, &s->listen_fd, &s->port, err)) < 0) {
        free_server(s);
        return rc;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES) flags |= MHD_USE_EPOLL;
    else flags |= MHD_USE_POLL;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
                            MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_connections_per_ip,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads, MHD_OPTION_END);
    if (!s->d) {
        free_server(s);
        return eps_error_set(err, EPS_EIO, "", "libmicrohttpd failed to start");
    }
    if (pthread_create(&s->reaper, NULL, reaper_main, s) == 0) s->reaper_started = 1;
    else eps_log(EPS_LOG_WARN, "no reaper thread: --request-timeout-ms not enforced");
    *out = s;
    return 0;
}

int eps_server_port(const eps_server *s) { return s->port; }

void eps_server_begin_drain(eps_server *s)
{
    /* Close the listening socket before anyone can see "draining": once a
     * readiness probe answers 503, a new connection is refused, never left
     * in the kernel's backlog to be reset later. */
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) {
        close(fd);
        if (fd == s->listen_fd) s->listen_fd = -1;
    }
    atomic_store(&s->draining, 1);
    eps_jobs_drain(s->jobs);     /* stop submitting; unfinished jobs resume at the next start */
    eps_http_jobs_drain(s->hj);  /* end event streams so the drain does not wait on them */
}

static long wait_inflight(eps_server *s, long timeout_ms)
{
    struct timespec ts;
    eps_deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (s->inflight > 0)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0) break;
    long n = s->inflight;
    pthread_mutex_unlock(&s->mu);
    return n;
}

long eps_server_drain(eps_server *s, long timeout_ms)
{
    long left = wait_inflight(s, timeout_ms);
    if (left > 0) {
        eps_log(EPS_LOG_WARN, "shutdown timeout: %ld requests still in flight; cancelling their jobs", left);
        eps_queue_cancel_all(s->q);
        eps_queue_wait_idle(s->q, 5000);
        wait_inflight(s, 2000);
    }
    return left;
}

int eps_server_stop(eps_server *s)
{
    if (!s) return 0;
    pthread_mutex_lock(&s->mu);
    long susp = s->suspended;
    pthread_mutex_unlock(&s->mu);
    if (susp > 0) {
        /* libmicrohttpd cannot stop with suspended connections; only a job
         * that ignores its cancel flag gets here. Leave the rest to exit(). */
        eps_log(EPS_LOG_ERROR, "%ld connections still waiting for jobs at exit", susp);
        return -1;
    }
    if (s->reaper_started) {
        pthread_mutex_lock(&s->conn_mu);
        s->reaper_stop = 1;
        pthread_cond_signal(&s->reaper_cv);
        pthread_mutex_unlock(&s->conn_mu);
        pthread_join(s->reaper, NULL);
    }
    MHD_stop_daemon(s->d);
    free_server(s);
    return 0;
}
