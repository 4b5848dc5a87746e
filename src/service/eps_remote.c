/* eps_remote.c — POST /v1/score through libcurl with bounded retries, and
 * the batch/weights consistency check across every answer (remote.h). */
#include "epsinas/service/remote.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REMOTE_MAX_ANSWER (1L << 20) /* a score answer is ~500 bytes */
#define REMOTE_MAX_BACKOFF_MS 2000L

struct eps_remote {
    char *score_url;
    char *auth;                 /* "Authorization: Bearer ..." or NULL */
    eps_remote_opts o;
    pthread_mutex_t mu;         /* guards the reference answer below */
    int have_ref;
    char ref_batch_hash[64];
    double ref_weights[2];
    atomic_long requests, retries;
};

struct eps_remote_conn {
    eps_remote *r;
    CURL *h;
    struct curl_slist *headers;
    char *buf;
    size_t len;
    int overflow;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int eps_remote_new(const eps_remote_opts *o, eps_remote **out, eps_error *err)
{
    *out = NULL;
    if (!o->url || (strncmp(o->url, "http://", 7) && strncmp(o->url, "https://", 8)))
        return eps_error_set(err, EPS_EINVAL, "server", "--server must be an http:// or https:// URL");
    if (strlen(o->url) > 1000) return eps_error_set(err, EPS_EINVAL, "server", "--server URL is over 1000 bytes");
    if (o->token && (strlen(o->token) > 255 || strpbrk(o->token, "\r\n")))
        return eps_error_set(err, EPS_EINVAL, "token", "--token must be one line of at most 255 bytes");
    pthread_once(&curl_once, curl_init_once);
    eps_remote *r = calloc(1, sizeof *r);
    if (!r) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    r->o = *o;
    if (r->o.max_attempts <= 0) r->o.max_attempts = 8;
    if (r->o.timeout_ms <= 0) r->o.timeout_ms = 60000;
    if (r->o.backoff_ms <= 0) r->o.backoff_ms = 50;
    size_t n = strlen(o->url);
    while (n && o->url[n - 1] == '/') n--;
    r->score_url = malloc(n + sizeof "/v1/score");
    if (o->token && *o->token) {
        r->auth = malloc(strlen(o->token) + sizeof "Authorization: Bearer ");
        if (r->auth) sprintf(r->auth, "Authorization: Bearer %s", o->token);
    }
    if (!r->score_url || (o->token && *o->token && !r->auth)) {
        eps_remote_free(r);
        return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    }
    memcpy(r->score_url, o->url, n);
    strcpy(r->score_url + n, "/v1/score");
    r->o.url = r->o.token = NULL; /* not kept: the caller's strings */
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return 0;
}

void eps_remote_free(eps_remote *r)
{
    if (!r) return;
    free(r->score_url);
    free(r->auth);
    free(r);
}

void eps_remote_get_stats(const eps_remote *r, eps_remote_stats *st)
{
    st->requests = atomic_load(&((eps_remote *)r)->requests);
    st->retries = atomic_load(&((eps_remote *)r)->retries);
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *ctx)
{
    eps_remote_conn *c = ctx;
    size_t n = size * nmemb;
    if (c->len + n > REMOTE_MAX_ANSWER) {
        c->overflow = 1;
        return 0; /* aborts the transfer */
    }
    char *nb = realloc(c->buf, c->len + n + 1);
    if (!nb) return 0;
    memcpy(nb + c->len, p, n);
    c->buf = nb;
    c->len += n;
    c->buf[c->len] = 0;
    return n;
}

int eps_remote_conn_new(eps_remote *r, eps_remote_conn **out, eps_error *err)
{
    eps_remote_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->h = curl_easy_init())) {
        free(c);
        return eps_error_set(err, EPS_ENOMEM, "", "out of memory (curl handle)");
    }
    c->r = r;
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    c->headers = curl_slist_append(c->headers, "Expect:"); /* no 100-continue round trip */
    if (r->auth) c->headers = curl_slist_append(c->headers, r->auth);
    curl_easy_setopt(c->h, CURLOPT_URL, r->score_url);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, r->o.timeout_ms);
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_TCP_NODELAY, 1L);
    *out = c;
    return 0;
}

void eps_remote_conn_free(eps_remote_conn *c)
{
    if (!c) return;
    curl_easy_cleanup(c->h);
    curl_slist_free_all(c->headers);
    free(c->buf);
    free(c);
}

static int transient_status(long st) { return st == 429 || st == 502 || st == 503 || st == 504; }

static int transient_curl(CURLcode cc)
{
    return cc == CURLE_COULDNT_CONNECT || cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR ||
           cc == CURLE_GOT_NOTHING || cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_PARTIAL_FILE ||
           cc == CURLE_COULDNT_RESOLVE_HOST;
}

/* Sleeps ms in 20 ms steps, returning early (non-zero) when *stop is set. */
static int sleep_unless_stopped(long ms, const atomic_int *stop)
{
    while (ms > 0) {
        if (stop && atomic_load(stop)) return 1;
        long step = ms < 20 ? ms : 20;
        struct timespec ts = {0, step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return stop && atomic_load(stop);
}

/* The first answer fixes batch_hash and weights; later ones must match. */
static int check_consistent(eps_remote *r, const char *bh, const double w[2], eps_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    if (!r->have_ref) {
        snprintf(r->ref_batch_hash, sizeof r->ref_batch_hash, "%s", bh);
        r->ref_weights[0] = w[0], r->ref_weights[1] = w[1];
        r->have_ref = 1;
    } else if (strcmp(r->ref_batch_hash, bh) || r->ref_weights[0] != w[0] || r->ref_weights[1] != w[1]) {
        rc = eps_error_set(err, EPS_EINTERNAL, "server",
                           "the service answered with batch %s, weights [%g, %g] after batch %s, weights [%g, %g]: "
                           "its replicas are not configured alike; refusing to mix their scores",
                           bh, w[0], w[1], r->ref_batch_hash, r->ref_weights[0], r->ref_weights[1]);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Reads a 200 answer into *out. */
static int parse_answer(eps_remote *r, const char *body, eps_score *out, eps_error *err)
{
    json_error_t je;
    json_t *o = json_loads(body, 0, &je);
    json_t *jeps = json_object_get(o, "epsilon"), *jw = json_object_get(o, "weights");
    json_t *jbh = json_object_get(o, "batch_hash");
    if (!json_is_object(o) || !(json_is_number(jeps) || json_is_null(jeps)) || !json_is_array(jw) ||
        json_array_size(jw) != 2 || !json_is_string(jbh)) {
        json_decref(o);
        return eps_error_set(err, EPS_EINTERNAL, "server", "the service's answer is not a score object: %.120s",
                             body);
    }
    memset(out, 0, sizeof *out);
    out->weights[0] = json_number_value(json_array_get(jw, 0));
    out->weights[1] = json_number_value(json_array_get(jw, 1));
    if (json_is_null(jeps)) {
        out->epsilon = NAN;
        const char *why = json_string_value(json_object_get(o, "nan_reason"));
        snprintf(out->nan_reason, sizeof out->nan_reason, "%s", why ? why : "undefined");
    } else {
        out->epsilon = json_number_value(jeps);
    }
    int rc = check_consistent(r, json_string_value(jbh), out->weights, err);
    json_decref(o);
    return rc;
}

/* The service's error message from a 4xx body, or the raw start of it. */
static void error_message(const char *body, long st, eps_error *err)
{
    json_t *o = body ? json_loads(body, 0, NULL) : NULL;
    /* the service's error object: {"error": message, "code", "field"} */
    const char *msg = json_string_value(json_object_get(o, "error"));
    const char *field = json_string_value(json_object_get(o, "field"));
    if (msg)
        eps_error_set(err, EPS_EINVAL, field ? field : "", "the service answered %ld: %s", st, msg);
    else
        eps_error_set(err, EPS_EINVAL, "", "the service answered %ld: %.120s", st, body ? body : "");
    json_decref(o);
}

int eps_remote_score(eps_remote_conn *c, const json_t *req, const atomic_int *stop, eps_score *out,
                     eps_error *err)
{
    eps_remote *r = c->r;
    char *body = json_dumps(req, JSON_COMPACT);
    if (!body) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
    long delay = r->o.backoff_ms;
    char last[200] = "";
    int rc = EPS_EIO;
    for (int attempt = 1; attempt <= r->o.max_attempts; attempt++) {
        if (attempt > 1) {
            atomic_fetch_add(&r->retries, 1);
            /* jitter in [delay/2, delay]: replicas recovering together are not hit in lockstep */
            long d = delay / 2 + (long)((unsigned)rand() % (unsigned)(delay / 2 + 1));
            if (sleep_unless_stopped(d, stop)) {
                rc = eps_error_set(err, EPS_ECANCELED, "", "interrupted");
                goto done;
            }
            delay = delay * 2 > REMOTE_MAX_BACKOFF_MS ? REMOTE_MAX_BACKOFF_MS : delay * 2;
        }
        c->len = 0;
        c->overflow = 0;
        atomic_fetch_add(&r->requests, 1);
        CURLcode cc = curl_easy_perform(c->h);
        long st = 0;
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &st);
        if (cc == CURLE_OK && st == 200) {
            rc = parse_answer(r, c->buf ? c->buf : "", out, err);
            goto done;
        }
        if (cc == CURLE_OK && !transient_status(st)) {
            error_message(c->buf, st, err);
            rc = EPS_EINVAL;
            goto done;
        }
        if (cc != CURLE_OK && !transient_curl(cc)) {
            rc = eps_error_set(err, EPS_EIO, "server", "%s: %s", r->score_url,
                               c->overflow ? "answer over 1 MiB" : curl_easy_strerror(cc));
            goto done;
        }
        if (cc == CURLE_OK) snprintf(last, sizeof last, "HTTP %ld", st);
        else snprintf(last, sizeof last, "%s", curl_easy_strerror(cc));
    }
    rc = eps_error_set(err, EPS_EIO, "server", "%s: still failing after %d attempts (last: %s)", r->score_url,
                       r->o.max_attempts, last);
done:
    free(body);
    return rc;
}
