/* eps_http_server.c — the life of the HTTP front: eps_server_start (the
 * documents served as is, CORS list, listening socket, job queue, cache,
 * jobs, the daemon), the drain and the stop; and the tracking of open
 * connections with the reaper thread that enforces --request-timeout-ms. */
#include "eps_http_internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epsinas/engine/engine.h"
#include "epsinas/service/http_static.h"
#include "epsinas/service/log.h"
#include "epsinas/service/redis.h"
#include "epsinas/spaces/space.h"

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

void eps_http_conn_receiving(struct MHD_Connection *c, int on)
{
    conn_ctx *x = conn_of(c);
    if (!x) return;
    if (on) atomic_store(&x->since, eps_now_ns());
    atomic_store(&x->receiving, on);
}

/* MHD calls CLOSED before it closes the socket, so under conn_mu a listed
 * fd is still this connection's: the reaper never shuts down a reused fd. */
void eps_http_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
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

void *eps_http_reaper_main(void *arg)
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
    s->spaces_json = json_dumps(doc, EPS_JSON_FLAGS);
    s->batches_json = json_dumps(bdoc, EPS_JSON_FLAGS);
    s->meta_json = json_dumps(meta, EPS_JSON_FLAGS);
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
        char *m = json_dumps(meta, EPS_JSON_FLAGS);
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
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, eps_http_on_request, s, MHD_OPTION_EXTERNAL_LOGGER, eps_http_mhd_logger, NULL,
                            MHD_OPTION_LISTEN_SOCKET, s->listen_fd,
                            MHD_OPTION_NOTIFY_COMPLETED, eps_http_on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, eps_http_on_connection, s, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_connections_per_ip,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads, MHD_OPTION_END);
    if (!s->d) {
        free_server(s);
        return eps_error_set(err, EPS_EIO, "", "libmicrohttpd failed to start");
    }
    if (pthread_create(&s->reaper, NULL, eps_http_reaper_main, s) == 0) s->reaper_started = 1;
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
    return eps_wait_zero(&s->mu, &s->cv, &s->inflight, timeout_ms);
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
