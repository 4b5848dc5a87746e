/* eps_http.c — the HTTP front of `epsinas serve` (see http.h, openapi.yaml):
 * routing, validation of the request head and body, the JSON error shape,
 * CORS, bearer auth, the responses, the MHD request callbacks and the access
 * log (through log.h). Score items are eps_http_score.c's; start, drain and
 * connection tracking eps_http_server.c's (eps_http_internal.h). A request
 * that needs compute is suspended and resumed by whichever thread finishes
 * its last item. */
#include "eps_http_internal.h"

#include <arpa/inet.h>
#include <strings.h>
#include <sys/socket.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epsinas/service/http_static.h"
#include "epsinas/service/log.h"

#define MAX_BY_ARCH 16     /* results returned by GET /v1/scores/{hash} */

void eps_http_mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    if (!eps_log_enabled(EPS_LOG_WARN)) return;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    eps_log_emit(EPS_LOG_WARN, msg, NULL);
}

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

enum MHD_Result eps_http_send_body(req *r, int status, const char *ctype, char *body, size_t len,
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
    return eps_http_send_body(r, status, ctype, copy, len, NULL, NULL, NULL, NULL);
}


enum MHD_Result eps_http_send_json(req *r, int status, json_t *j, const char *h1, const char *v1, const char *h2,
                                   const char *v2)
{
    char *s = eps_json_dumps_exact(j);
    json_decref(j);
    if (!s) return MHD_NO;
    size_t n = strlen(s);
    return eps_http_send_body(r, status, "application/json", s, n, h1, v1, h2, v2);
}

/* The one error shape: {"error", "code", "field"?, "line"?, "column"?}. */
json_t *eps_http_error_obj(const char *code, const char *msg, const char *field, long line, long column)
{
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(msg));
    json_object_set_new(o, "code", json_string(code));
    if (field && *field) json_object_set_new(o, "field", json_string(field));
    if (line > 0) json_object_set_new(o, "line", json_integer(line));
    if (column > 0) json_object_set_new(o, "column", json_integer(column));
    return o;
}

enum MHD_Result eps_http_send_error(req *r, int status, const char *code, const char *msg, const char *field)
{
    const char *h = NULL, *v = NULL;
    if (status == 429 || status == 503) h = "Retry-After", v = "1";
    if (status == 401) h = "WWW-Authenticate", v = "Bearer realm=\"epsinas\"";
    return eps_http_send_json(r, status, eps_http_error_obj(code, msg, field, 0, 0), h, v, NULL, NULL);
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

/* ------------------------------------------------------------ jobs */

/* /v1/jobs*: eps_http_jobs builds the response; queue it like eps_http_send_body. */
static enum MHD_Result send_jobs(req *r, const char *method)
{
    int status = 500;
    struct MHD_Response *resp =
        eps_http_jobs_handle(r->s->hj, r->conn, method, r->path, r->body, r->len, &status);
    if (!resp) return eps_http_send_error(r, 500, "out_of_memory", "out of memory", "");
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
        return eps_http_send_json(r, 405, eps_http_error_obj("method_not_allowed", "the dashboard is read with GET or HEAD", NULL, 0, 0),
                         "Allow", "GET, HEAD", NULL, NULL);
    if (status == 404) return eps_http_send_error(r, 404, "not_found", "no such dashboard file", "");
    return eps_http_send_error(r, 500, "out_of_memory", "out of memory", "");
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
        if (eps_http_memo_get(s, r->body, r->len, &k, &idj, &nb, &params, &macs)) {
            int hit = eps_cache_peek(s->cache, &k, &val, &vlen) == EPS_CACHE_HIT;
            free(k.text);
            enum MHD_Result ret = MHD_YES;
            if (hit) ret = eps_http_send_result(r, val, vlen, idj, nb->name, 1, params, macs);
            free(val);
            free(idj);
            if (hit) return ret;
        }
    }
    if (too_deep(r->body, r->len, s->json_depth)) {
        char msg[120];
        snprintf(msg, sizeof msg, "JSON nested deeper than %lld levels", s->json_depth);
        return eps_http_send_error(r, 400, "json_too_deep", msg, "");
    }
    json_error_t je;
    json_t *root = json_loadb(r->body ? r->body : "", r->len, JSON_REJECT_DUPLICATES, &je);
    if (!root && json_error_code(&je) == json_error_numeric_overflow) {
        /* valid JSON, but a number out of range: name the field */
        char path[160], msg[400];
        json_path_at(r->body, number_start(r->body, r->len, (size_t)je.position), path, sizeof path);
        snprintf(msg, sizeof msg, "the number at '%s' is out of range (%s)", *path ? path : "(top level)", je.text);
        return eps_http_send_error(r, 400, "invalid_input", msg, path);
    }
    if (!root) {
        char msg[256];
        snprintf(msg, sizeof msg, "invalid JSON: %s", je.text);
        return eps_http_send_json(r, 400, eps_http_error_obj("invalid_json", msg, NULL, je.line > 0 ? je.line : 1, je.column > 0 ? je.column : 1),
                         NULL, NULL, NULL, NULL);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return eps_http_send_error(r, 400, "invalid_input", "the request body must be a JSON object", "");
    }
    json_t *list = NULL;
    if (r->route == R_BATCH) {
        list = json_object_get(root, "items");
        if (!json_is_array(list) || json_array_size(list) == 0) {
            json_decref(root);
            return eps_http_send_error(r, 400, "invalid_input", "'items' must be a non-empty array of score requests",
                              "items");
        }
        if ((long long)json_array_size(list) > s->max_items) {
            char msg[120];
            snprintf(msg, sizeof msg, "%zu items; at most %lld per request", json_array_size(list), s->max_items);
            json_decref(root);
            eps_metrics_reject(EPS_REJ_TOO_LARGE);
            return eps_http_send_error(r, 413, "too_large", msg, "items");
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
                return eps_http_send_error(r, 400, "invalid_input", msg, name);
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
        return eps_http_send_error(r, 500, "out_of_memory", "out of memory", "");
    }
    r->async = 1;
    pthread_mutex_lock(&r->mu);
    r->pending = 1; /* guard: nobody resumes before we decide to suspend */
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->n_items; i++) eps_http_start_item(r, i, list ? json_array_get(list, (size_t)i) : root);
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
    return eps_http_respond_items(r);
}

/* ------------------------------------------------------------ GET */

static enum MHD_Result handle_scores(req *r, const char *url)
{
    const char *h = url + strlen("/v1/scores/");
    size_t n = strlen(h);
    int ok = n == 32;
    for (size_t i = 0; ok && i < n; i++) ok = (h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f');
    if (!ok) return eps_http_send_error(r, 400, "invalid_input", "the hash must be 32 lowercase hex characters", "hash");
    char *vals[MAX_BY_ARCH];
    int k = eps_cache_by_arch(r->s->cache, h, vals, MAX_BY_ARCH);
    if (k == 0) return eps_http_send_error(r, 404, "not_found", "no cached result for this architecture hash", "hash");
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
    return eps_http_send_json(r, 200, top, NULL, NULL, NULL, NULL);
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
        if (!m) return eps_http_send_error(r, 500, "out_of_memory", "out of memory", "");
        return eps_http_send_body(r, 200, "text/plain; version=0.0.4; charset=utf-8", m, n, NULL, NULL, NULL, NULL);
    }
    }
    return eps_http_send_error(r, 404, "not_found", "no such endpoint", "");
}

/* ------------------------------------------------------------ MHD callbacks */

/* Most bytes of an over-limit body read (and dropped) so the client can
 * read the 413; past it the connection is closed. */
static unsigned long long discard_bound(const eps_server *s) { return (unsigned long long)s->body_limit * 4 + 65536; }

#define URL_MAX 8192         /* longest request target */
#define HEADERS_MAX 32768     /* header names + values, all lines */
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
        return eps_http_send_error(r, 414, "uri_too_long", "request target longer than " EPS_STR(URL_MAX) " bytes", "");
    }
    size_t head = 0;
    MHD_get_connection_values(c, MHD_HEADER_KIND, header_bytes, &head);
    if (head > HEADERS_MAX) {
        r->close = 1;
        return eps_http_send_error(r, 431, "headers_too_large", "request headers larger than " EPS_STR(HEADERS_MAX) " bytes", "");
    }
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");
    if (te && MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length")) r->close = 1;
    if (!strcmp(r->version, "HTTP/1.1") && !MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host")) {
        r->close = 1;
        return eps_http_send_error(r, 400, "invalid_request", "HTTP/1.1 request without a Host header (RFC 9112 3.2)", "Host");
    }
    if (eps_http_static_owns(url)) return send_dashboard(r, url, method);
    int ri = find_route(url);
    if (ri < 0) {
        r->ep = EPS_EP_OTHER;
        return eps_http_send_error(r, 404, "not_found", "no such endpoint (see GET /v2 and openapi.yaml)", "");
    }
    r->route = routes[ri].route;
    r->ep = routes[ri].ep;
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int is_post = !strcmp(method, "POST");
    if (!strcmp(method, "OPTIONS")) {
        const char *acrm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Method");
        if (r->origin && acrm)
            return eps_http_send_body(r, 204, NULL, NULL, 0, "Access-Control-Allow-Methods", allow_for(ri),
                             "Access-Control-Allow-Headers", "Content-Type, Authorization, X-Request-Id");
        return eps_http_send_body(r, 204, NULL, NULL, 0, "Allow", allow_for(ri), NULL, NULL);
    }
    if (routes[ri].post != 2 && (routes[ri].post ? !is_post : !is_get)) {
        char msg[120];
        snprintf(msg, sizeof msg, "method %.16s not allowed here (allowed: %s)", method, allow_for(ri));
        const char *allow = allow_for(ri);
        return eps_http_send_json(r, 405, eps_http_error_obj("method_not_allowed", msg, NULL, 0, 0), "Allow", allow, NULL, NULL);
    }
    if (s->token[0] && !strncmp(url, "/v1/", 4) &&
        !token_ok(s, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"))) {
        eps_metrics_reject(EPS_REJ_UNAUTHORIZED);
        return eps_http_send_error(r, 401, "unauthorized", "missing or wrong 'Authorization: Bearer <token>'", "");
    }
    if (r->route == R_JOBS && !is_post) return send_jobs(r, method);
    if (!is_post) return handle_get(r, url);
    if (atomic_load(&s->draining)) {
        eps_metrics_reject(EPS_REJ_DRAINING);
        return eps_http_send_error(r, 503, "draining", "the server is shutting down", "");
    }
    if (!ct_is_json(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type")))
        return eps_http_send_error(r, 415, "unsupported_media_type", "the body must be sent as 'Content-Type: application/json'",
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
            return eps_http_send_error(r, 413, "too_large", msg, "");
        }
    }
    return MHD_YES; /* wait for the body */
}

enum MHD_Result eps_http_on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
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
        if (r->status || r->deferred) eps_http_conn_receiving(conn, 0); /* answered from the head */
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
    if (r->async) return eps_http_respond_items(r); /* resumed: every item resolved */
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
    eps_http_conn_receiving(conn, 0); /* the whole request is in */
    if (r->too_large) {
        char msg[120];
        snprintf(msg, sizeof msg, "request body larger than the %lld-byte limit", s->body_limit);
        eps_metrics_reject(EPS_REJ_TOO_LARGE);
        return eps_http_send_error(r, 413, "too_large", msg, "");
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
void eps_http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode tc)
{
    (void)tc;
    eps_server *s = cls;
    req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    if (r->deferred) MHD_destroy_response(r->deferred);
    eps_http_conn_receiving(conn, 1); /* the next request's clock starts now */
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
