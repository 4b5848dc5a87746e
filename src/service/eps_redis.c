/* eps_redis.c — the Redis second cache tier (see redis.h): URL parsing, a
 * small pool of hiredis connections each guarded by its own mutex, shared
 * reconnect backoff, and the error counter rendered by /metrics. */
#include "epsinas/service/redis.h"

#include <errno.h>
#include <hiredis.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "epsinas/service/log.h"
#include "epsinas/core/util.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

static atomic_ullong g_errors;

unsigned long long eps_redis_errors_total(void) { return atomic_load_explicit(&g_errors, memory_order_relaxed); }

static void count_error(void) { atomic_fetch_add_explicit(&g_errors, 1, memory_order_relaxed); }

typedef struct {
    pthread_mutex_t mu;
    redisContext *c; /* NULL = not connected */
} slot;

typedef struct {
    eps_redis_url url;
    long long ttl_s;
    struct timeval tv;
    int n;
    slot *slots;
    atomic_uint next;
    /* Backoff, shared by every slot: when Redis is gone, one failed connect
     * is enough to know the others would fail too. */
    pthread_mutex_t bmu;
    int64_t retry_at_ns;
    long backoff_ms;
    int down; /* logged as down; flips back on the first success */
} rctx;


/* ------------------------------------------------------------ URL */

static int copy_part(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap) return -1;
    memcpy(dst, s, n);
    dst[n] = 0;
    return 0;
}

static int parse_num(const char *s, size_t n, long lo, long hi, int *out)
{
    if (n == 0 || n > 9) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int eps_redis_parse_url(const char *url, const char *field, eps_redis_url *u, eps_error *err)
{
    static const char form[] = "redis://[[user]:password@]host[:port][/db]";
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (!url || strncmp(url, "redis://", 8))
        return eps_error_set(err, EPS_EINVAL, field, "%s: must start with redis:// (form %s)", field, form);
    const char *p = url + 8;
    const char *end = p + strlen(p);
    const char *slash = strchr(p, '/');
    const char *auth_end = memchr(p, '@', (size_t)((slash ? slash : end) - p));
    if (auth_end) {
        /* the password may itself hold '@': the last one before the path ends it */
        for (const char *q = auth_end; q < (slash ? slash : end); q++)
            if (*q == '@') auth_end = q;
        const char *colon = memchr(p, ':', (size_t)(auth_end - p));
        if (!colon)
            return eps_error_set(err, EPS_EINVAL, field, "%s: credentials must be user:password@ or :password@",
                                 field);
        if (copy_part(u->user, sizeof u->user, p, (size_t)(colon - p)) ||
            copy_part(u->password, sizeof u->password, colon + 1, (size_t)(auth_end - colon - 1)))
            return eps_error_set(err, EPS_EINVAL, field, "%s: user or password too long", field);
        if (!u->password[0]) return eps_error_set(err, EPS_EINVAL, field, "%s: empty password", field);
        p = auth_end + 1;
    }
    const char *hend = slash ? slash : end;
    const char *port_at = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(hend - p));
        if (!rb || rb == p + 1) return eps_error_set(err, EPS_EINVAL, field, "%s: bad [IPv6] host", field);
        if (copy_part(u->host, sizeof u->host, p + 1, (size_t)(rb - p - 1)))
            return eps_error_set(err, EPS_EINVAL, field, "%s: host too long", field);
        if (rb + 1 < hend) {
            if (rb[1] != ':') return eps_error_set(err, EPS_EINVAL, field, "%s: junk after ]", field);
            port_at = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(hend - p));
        const char *he = colon ? colon : hend;
        if (he == p) return eps_error_set(err, EPS_EINVAL, field, "%s: missing host (form %s)", field, form);
        if (copy_part(u->host, sizeof u->host, p, (size_t)(he - p)))
            return eps_error_set(err, EPS_EINVAL, field, "%s: host too long", field);
        for (const char *c = u->host; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
                  *c == '.' || *c == '_'))
                return eps_error_set(err, EPS_EINVAL, field, "%s: host may hold only letters, digits, '-', '.', '_'",
                                     field);
        if (colon) port_at = colon + 1;
    }
    if (port_at && parse_num(port_at, (size_t)(hend - port_at), 1, 65535, &u->port))
        return eps_error_set(err, EPS_EINVAL, field, "%s: port must be 1..65535", field);
    if (slash && slash + 1 < end && parse_num(slash + 1, (size_t)(end - slash - 1), 0, 1000000, &u->db))
        return eps_error_set(err, EPS_EINVAL, field, "%s: database must be a number 0..1000000", field);
    return 0;
}

/* ------------------------------------------------------------ connections */

static int in_backoff(rctx *r)
{
    pthread_mutex_lock(&r->bmu);
    int b = r->retry_at_ns && eps_now_ns() < r->retry_at_ns;
    pthread_mutex_unlock(&r->bmu);
    return b;
}

static void note_failure(rctx *r, const char *what, const char *why)
{
    pthread_mutex_lock(&r->bmu);
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (r->backoff_ms > BACKOFF_MAX_MS) r->backoff_ms = BACKOFF_MAX_MS;
    r->retry_at_ns = eps_now_ns() + (int64_t)r->backoff_ms * 1000000LL;
    int was_down = r->down;
    r->down = 1;
    pthread_mutex_unlock(&r->bmu);
    if (!was_down)
        eps_log(EPS_LOG_WARN, "redis %s:%d unreachable (%s: %s); serving without the shared cache", r->url.host,
                r->url.port, what, why);
}

static void note_success(rctx *r)
{
    pthread_mutex_lock(&r->bmu);
    int was_down = r->down;
    r->down = 0;
    r->backoff_ms = 0;
    r->retry_at_ns = 0;
    pthread_mutex_unlock(&r->bmu);
    if (was_down) eps_log(EPS_LOG_INFO, "redis %s:%d reachable again", r->url.host, r->url.port);
}

/* Runs a command whose reply must be +OK (AUTH, SELECT). */
static int expect_ok(redisContext *c, redisReply *rep)
{
    int ok = rep && rep->type == REDIS_REPLY_STATUS && !c->err;
    if (rep) freeReplyObject(rep);
    return ok ? 0 : -1;
}

/* Connects s->c (slot locked). Returns 0, or -1 after recording the failure. */
static int ensure_conn(rctx *r, slot *s)
{
    if (s->c) return 0;
    if (in_backoff(r)) return -1;
    redisContext *c = redisConnectWithTimeout(r->url.host, r->url.port, r->tv);
    const char *why = !c ? "out of memory" : c->err ? c->errstr : NULL;
    if (!why && redisSetTimeout(c, r->tv) != REDIS_OK) why = "cannot set timeout";
    if (!why) redisEnableKeepAlive(c); /* best effort: a dead peer is found by the command timeout anyway */
    if (!why && r->url.password[0]) {
        redisReply *rep = r->url.user[0] ? redisCommand(c, "AUTH %s %s", r->url.user, r->url.password)
                                         : redisCommand(c, "AUTH %s", r->url.password);
        if (expect_ok(c, rep)) why = "AUTH failed";
    }
    if (!why && r->url.db) {
        redisReply *rep = redisCommand(c, "SELECT %d", r->url.db);
        if (expect_ok(c, rep)) why = "SELECT failed";
    }
    if (why) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s", why); /* errstr dies with the context */
        if (c) redisFree(c);
        note_failure(r, "connect", msg);
        return -1;
    }
    s->c = c;
    return 0;
}

/* A context that timed out or broke may still receive the old reply: it
 * can never be reused. */
static void drop_conn(rctx *r, slot *s, const char *what)
{
    char msg[128];
    const char *why = s->c && s->c->err ? s->c->errstr : "no reply";
    /* SO_RCVTIMEO expiring reads as EAGAIN's text */
    if (strstr(why, "temporarily unavailable")) why = "timed out";
    snprintf(msg, sizeof msg, "%s", why);
    if (s->c) redisFree(s->c);
    s->c = NULL;
    note_failure(r, what, msg);
}

static slot *take_slot(rctx *r)
{
    slot *s = &r->slots[atomic_fetch_add_explicit(&r->next, 1, memory_order_relaxed) % (unsigned)r->n];
    pthread_mutex_lock(&s->mu);
    return s;
}

/* A stored value must be what the service stores (a compact JSON object):
 * anything else in the key space must not reach a client. */
static int valid_value(const char *v, size_t n)
{
    if (n < 2 || n > EPS_REDIS_MAX_VALUE || v[0] != '{' || v[n - 1] != '}') return 0;
    json_t *j = json_loadb(v, n, JSON_REJECT_DUPLICATES, NULL);
    int ok = j && json_is_object(j);
    json_decref(j);
    return ok;
}

static char *r_get(void *ctx, const char *key, size_t *len)
{
    rctx *r = ctx;
    *len = 0;
    slot *s = take_slot(r);
    if (ensure_conn(r, s)) {
        pthread_mutex_unlock(&s->mu);
        count_error();
        return NULL;
    }
    redisReply *rep = redisCommand(s->c, "GET %s", key);
    if (!rep || s->c->err) {
        if (rep) freeReplyObject(rep);
        drop_conn(r, s, "GET");
        pthread_mutex_unlock(&s->mu);
        count_error();
        return NULL;
    }
    pthread_mutex_unlock(&s->mu);
    note_success(r);
    char *out = NULL;
    if (rep->type == REDIS_REPLY_STRING) {
        if (valid_value(rep->str, rep->len) && (out = malloc(rep->len + 1))) {
            memcpy(out, rep->str, rep->len);
            out[rep->len] = 0;
            *len = rep->len;
        } else {
            count_error();
        }
    } else if (rep->type != REDIS_REPLY_NIL) {
        count_error(); /* -ERR (e.g. LOADING, WRONGTYPE): a miss */
    }
    freeReplyObject(rep);
    return out;
}

static void r_put(void *ctx, const char *key, const char *val, size_t len)
{
    rctx *r = ctx;
    if (len > EPS_REDIS_MAX_VALUE) return;
    slot *s = take_slot(r);
    if (ensure_conn(r, s)) {
        pthread_mutex_unlock(&s->mu);
        count_error();
        return;
    }
    redisReply *rep = r->ttl_s > 0 ? redisCommand(s->c, "SET %s %b EX %lld", key, val, len, r->ttl_s)
                                   : redisCommand(s->c, "SET %s %b", key, val, len);
    if (!rep || s->c->err) {
        if (rep) freeReplyObject(rep);
        drop_conn(r, s, "SET");
        pthread_mutex_unlock(&s->mu);
        count_error();
        return;
    }
    pthread_mutex_unlock(&s->mu);
    note_success(r);
    if (rep->type != REDIS_REPLY_STATUS) count_error(); /* e.g. -OOM with maxmemory and noeviction */
    freeReplyObject(rep);
}

static void r_destroy(void *ctx)
{
    rctx *r = ctx;
    if (!r) return;
    for (int i = 0; i < r->n; i++) {
        if (r->slots[i].c) redisFree(r->slots[i].c);
        pthread_mutex_destroy(&r->slots[i].mu);
    }
    free(r->slots);
    pthread_mutex_destroy(&r->bmu);
    free(r);
}

int eps_redis_backend_new(const char *url, long long ttl_s, long long timeout_ms, int pool, eps_cache_backend *out,
                          eps_error *err)
{
    memset(out, 0, sizeof *out);
    if (ttl_s < 0) return eps_error_set(err, EPS_EINVAL, "--redis-ttl-s", "--redis-ttl-s: must be >= 0");
    if (timeout_ms < 1 || timeout_ms > 600000)
        return eps_error_set(err, EPS_EINVAL, "--redis-timeout-ms", "--redis-timeout-ms: must be 1..600000");
    if (pool < 1 || pool > EPS_REDIS_MAX_POOL)
        return eps_error_set(err, EPS_EINVAL, "pool", "redis pool size must be 1..%d", EPS_REDIS_MAX_POOL);
    rctx *r = calloc(1, sizeof *r);
    if (!r) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    int rc = eps_redis_parse_url(url, "--redis-url", &r->url, err);
    if (rc < 0) {
        free(r);
        return rc;
    }
    r->slots = calloc((size_t)pool, sizeof *r->slots);
    if (!r->slots) {
        free(r);
        return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    }
    r->n = pool;
    for (int i = 0; i < pool; i++) pthread_mutex_init(&r->slots[i].mu, NULL);
    pthread_mutex_init(&r->bmu, NULL);
    r->ttl_s = ttl_s;
    r->tv.tv_sec = (time_t)(timeout_ms / 1000);
    r->tv.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;
    out->ctx = r;
    out->get = r_get;
    out->put = r_put;
    out->destroy = r_destroy;
    return 0;
}

int eps_redis_backend_config(const eps_config *cfg, eps_cache_backend *out, eps_error *err)
{
    if (!cfg->redis_url || !cfg->redis_url[0]) return 0;
    /* get runs on the workers and put on whichever thread ends a job:
     * one connection each is enough for them never to wait for one another. */
    long long pool = cfg->workers + 1;
    if (pool > EPS_REDIS_MAX_POOL) pool = EPS_REDIS_MAX_POOL;
    int rc = eps_redis_backend_new(cfg->redis_url, cfg->redis_ttl_s, cfg->redis_timeout_ms, (int)pool, out, err);
    if (rc < 0) return rc;
    eps_log(EPS_LOG_INFO, "shared cache: redis %s:%d db %d, ttl %lld s, timeout %lld ms, %lld connections",
            ((rctx *)out->ctx)->url.host, ((rctx *)out->ctx)->url.port, ((rctx *)out->ctx)->url.db,
            cfg->redis_ttl_s, cfg->redis_timeout_ms, pool);
    return 1;
}
