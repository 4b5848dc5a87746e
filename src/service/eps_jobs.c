/* eps_jobs.c — sweep jobs (see jobs.h): validation, the runner thread,
 * lifecycle (queued -> running -> succeeded | failed | cancelled), resume
 * after a restart, retention. Owns the in-memory job list; rows and specs
 * live in the jobstore (SQLite). Items are scored through the service's
 * cache and queue exactly like /v1/score items. */
#include "epsinas/service/jobs.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "epsinas/service/log.h"
#include "epsinas/service/jobstore.h"
#include "epsinas/service/metrics.h"
#include "epsinas/service/request.h"
#include "epsinas/spaces/nb101_enum.h"
#include "epsinas/spaces/nb201.h"
#include "epsinas/spaces/space.h"
#include "epsinas/core/util.h"

#define JFLAGS (JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15))
#define N_STATUS 5
enum { JS_QUEUED, JS_RUNNING, JS_SUCCEEDED, JS_FAILED, JS_CANCELLED };
static const char *const status_names[N_STATUS] = {"queued", "running", "succeeded", "failed", "cancelled"};

/* ------------------------------------------------------------ enumerable spaces */

/* {"space": S, "all": true}: item idx of an enumerable space. Adding a space
 * is one line here (NB101: once its module can enumerate cells). */
typedef struct enum_space {
    const char *space;
    long count;
    json_t *(*item)(long idx); /* the request object of item idx (new ref) */
} enum_space;

static json_t *nb201_item(long idx)
{
    eps_nb201_cell c;
    char buf[EPS_NB201_STR_MAX];
    eps_nb201_from_index((int)idx, &c);
    eps_nb201_format(&c, buf);
    return json_pack("{s:s,s:s}", "space", "nb201", "arch", buf);
}

/* NB101: the enumeration runs once per process, on the first job that
 * needs it (10-15 s, ~423k cells kept for the life of the process). */
static eps_nb101_cell *nb101_cells;
static long nb101_n;
static pthread_once_t nb101_once = PTHREAD_ONCE_INIT;
static void nb101_enumerate_once(void)
{
    eps_error e = {0};
    if (eps_nb101_enumerate(EPS_NB101_MAX_VERTICES, 0, &nb101_cells, &nb101_n, &e)) nb101_n = 0;
}

static json_t *nb101_item(long idx)
{
    pthread_once(&nb101_once, nb101_enumerate_once);
    if (idx < 0 || idx >= nb101_n) return NULL;
    char *canon = eps_nb101_canonical(&nb101_cells[idx].spec);
    json_t *o = canon ? json_loads(canon, 0, NULL) : NULL;
    free(canon);
    if (json_is_object(o)) json_object_set_new(o, "space", json_string("nb101"));
    return o;
}

static const enum_space enumerable[] = {
    {"nb201", EPS_NB201_COUNT, nb201_item},
    {"nb101", EPS_NB101_COUNT, nb101_item},
};

static const enum_space *find_enum(const char *space)
{
    for (size_t i = 0; i < sizeof enumerable / sizeof enumerable[0]; i++)
        if (!strcmp(enumerable[i].space, space)) return &enumerable[i];
    return NULL;
}

/* Request fields a job may set once for all its items. */
static const char *const shared_keys[] = {"batch", "batch_size", "weights", "engine", "dataset", NULL};

/* ------------------------------------------------------------ state */

typedef struct jjob {
    eps_jobrec rec;          /* label, spec owned */
    int st;                  /* JS_* */
    json_t *items;           /* the items array, or NULL for all */
    json_t *shared;          /* shared fields (object, owned) */
    const enum_space *en;    /* for all */
    volatile int cancel;
    long contig;             /* rows 0..contig-1 are all stored (while running) */
    double run_t0;           /* when this process started running it */
    long run_done0;
    struct jjob *next;       /* oldest first */
} jjob;

typedef struct jitem {
    eps_cache_waiter w;
    eps_jobs *J;
    long idx;
    char *arch_text;
    char hash[33];           /* the item's own arch: a cached value may come from an */
    long long params, macs;  /* equivalent spelling (same canonical, other dead edges) */
    int status;              /* 0 = result in val; else an HTTP error status */
    char *val;
    struct jitem *next;
} jitem;

struct eps_jobs {
    eps_jobs_config cfg;
    eps_queue *q;
    eps_cache *cache;
    const eps_named_batch *batches;
    int n_batches;
    eps_jobstore *st;
    pthread_t th;
    int th_started;
    pthread_mutex_t mu;      /* guards everything below and every jjob's mutable fields */
    pthread_cond_t cv;
    int stop;
    jjob *jobs;
    jitem *done;             /* resolved items the runner has not stored yet */
    long in_flight;
    unsigned long gen;
    unsigned long long items_done;
    unsigned long long id_counter;
};

static double now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int status_of(const char *s)
{
    for (int i = 0; i < N_STATUS; i++)
        if (!strcmp(s, status_names[i])) return i;
    return JS_FAILED;
}

static void set_status(jjob *j, int st)
{
    j->st = st;
    snprintf(j->rec.status, sizeof j->rec.status, "%s", status_names[st]);
}

static void free_job(jjob *j)
{
    free(j->rec.label);
    free(j->rec.spec);
    json_decref(j->items);
    json_decref(j->shared);
    free(j);
}

/* ------------------------------------------------------------ validation */

/* Item idx's request object: the item (or the enumerated cell) plus the
 * job's shared fields it does not set itself. New ref or NULL. */
static json_t *item_request(const jjob *j, long idx)
{
    json_t *o = j->en ? j->en->item(idx) : json_deep_copy(json_array_get(j->items, (size_t)idx));
    if (!json_is_object(o)) return o;
    const char *k;
    json_t *v;
    json_object_foreach(j->shared, k, v) if (!json_object_get(o, k)) json_object_set(o, k, v);
    return o;
}

/* Builds a jjob from a (parsed) spec; err names the field. */
static int job_from_spec(eps_jobs *J, json_t *spec, jjob *j, eps_error *err)
{
    if (!json_is_object(spec)) return eps_error_set(err, EPS_EINVAL, "", "the request body must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach(spec, k, v)
    {
        int known = !strcmp(k, "space") || !strcmp(k, "all") || !strcmp(k, "items") || !strcmp(k, "label");
        for (int i = 0; shared_keys[i]; i++) known |= !strcmp(k, shared_keys[i]);
        if (!known) return eps_error_set(err, EPS_EINVAL, k, "unknown field '%.40s' in a job", k);
    }
    json_t *label = json_object_get(spec, "label");
    if (label && !(json_is_string(label) && json_string_length(label) <= 256))
        return eps_error_set(err, EPS_EINVAL, "label", "'label' must be a string of at most 256 bytes");
    j->shared = json_object();
    for (int i = 0; shared_keys[i]; i++)
        if ((v = json_object_get(spec, shared_keys[i]))) json_object_set(j->shared, shared_keys[i], v);
    json_t *items = json_object_get(spec, "items"), *all = json_object_get(spec, "all");
    json_t *space = json_object_get(spec, "space");
    if (items && all) return eps_error_set(err, EPS_EINVAL, "items", "give either 'items' or 'all', not both");
    if (all) {
        if (!json_is_true(all)) return eps_error_set(err, EPS_EINVAL, "all", "'all' must be true");
        if (!json_is_string(space))
            return eps_error_set(err, EPS_EINVAL, "space", "'all' needs 'space' (an enumerable space, e.g. \"nb201\")");
        const char *sn = json_string_value(space);
        if (!eps_space_find(sn)) return eps_error_set(err, EPS_EINVAL, "space", "unknown space '%.40s'", sn);
        j->en = find_enum(sn);
        if (!j->en)
            return eps_error_set(err, EPS_EINVAL, "space",
                                 "space '%.40s' is not enumerable: list its architectures in 'items'", sn);
        j->rec.total = j->en->count;
    } else {
        if (!json_is_array(items) || json_array_size(items) == 0)
            return eps_error_set(err, EPS_EINVAL, "items",
                                 "a job needs 'items' (a non-empty array of score requests) or 'space' + 'all': true");
        if (space) return eps_error_set(err, EPS_EINVAL, "space", "'space' goes inside each item (or use 'all')");
        j->items = json_incref(items);
        j->rec.total = (long)json_array_size(items);
    }
    if (j->rec.total > J->cfg.max_items)
        return eps_error_set(err, EPS_ELIMIT, j->en ? "all" : "items", "%ld items; at most %ld per job",
                             j->rec.total, J->cfg.max_items);
    return 0;
}

/* Validates every item up front (for 'all', one item: the cells of an
 * enumerable space are valid by construction; the shared fields are not). */
static int validate_items(eps_jobs *J, const jjob *j, eps_error *err)
{
    long n = j->en ? 1 : j->rec.total;
    for (long i = 0; i < n; i++) {
        json_t *o = item_request(j, i);
        eps_score_req p;
        eps_error e;
        eps_error_clear(&e);
        int rc = eps_score_req_prepare(o, J->batches, J->n_batches, J->cfg.max_request_memory, &p, &e);
        json_decref(o);
        if (rc < 0) {
            if (j->en) return eps_error_set(err, rc, e.field, "%s", e.msg);
            char field[64];
            snprintf(field, sizeof field, "items[%ld]%s%.30s", i, *e.field ? "." : "", e.field);
            return eps_error_set(err, rc, field, "item %ld: %s", i, e.msg);
        }
        eps_arch_free(&p.arch);
    }
    return 0;
}

/* ------------------------------------------------------------ job objects */

static json_t *time_or_null(double t)
{
    if (t <= 0) return json_null();
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    char buf[40];
    size_t k = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, sizeof buf - k, ".%03dZ", (int)((t - (double)s) * 1000));
    return json_string(buf);
}

/* Under J->mu. */
static json_t *job_json(const jjob *j)
{
    double rate = 0, eta = -1;
    if (j->st == JS_RUNNING && j->run_t0 > 0) {
        double dt = now_unix() - j->run_t0;
        if (dt > 0.2) rate = (double)(j->rec.done - j->run_done0) / dt;
        if (rate > 0) eta = (double)(j->rec.total - j->rec.done) / rate;
    } else if (j->st >= JS_SUCCEEDED && j->rec.finished_at > j->rec.started_at && j->rec.started_at > 0) {
        rate = (double)j->rec.done / (j->rec.finished_at - j->rec.started_at);
        eta = 0;
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(j->rec.id));
    json_object_set_new(o, "label", j->rec.label ? json_string(j->rec.label) : json_null());
    json_object_set_new(o, "status", json_string(status_names[j->st]));
    json_object_set_new(o, "space", j->en ? json_string(j->en->space) : json_null());
    json_object_set_new(o, "total", json_integer(j->rec.total));
    json_object_set_new(o, "done", json_integer(j->rec.done));
    json_object_set_new(o, "nan", json_integer(j->rec.nan));
    json_object_set_new(o, "errors", json_integer(j->rec.errors));
    json_object_set_new(o, "rate_per_s", json_real(rate));
    json_object_set_new(o, "eta_s", eta >= 0 ? json_real(eta) : json_null());
    json_object_set_new(o, "created_at", time_or_null(j->rec.created_at));
    json_object_set_new(o, "started_at", time_or_null(j->rec.started_at));
    json_object_set_new(o, "finished_at", time_or_null(j->rec.finished_at));
    char loc[96];
    snprintf(loc, sizeof loc, "/v1/jobs/%s/results", j->rec.id);
    json_object_set_new(o, "results", json_string(loc));
    return o;
}

static jjob *find_job(eps_jobs *J, const char *id)
{
    for (jjob *j = J->jobs; j; j = j->next)
        if (!strcmp(j->rec.id, id)) return j;
    return NULL;
}

json_t *eps_jobs_get(eps_jobs *J, const char *id)
{
    pthread_mutex_lock(&J->mu);
    jjob *j = find_job(J, id);
    json_t *o = j ? job_json(j) : NULL;
    pthread_mutex_unlock(&J->mu);
    return o;
}

json_t *eps_jobs_list(eps_jobs *J, int max)
{
    pthread_mutex_lock(&J->mu);
    int n = 0;
    for (jjob *j = J->jobs; j; j = j->next) n++;
    jjob **v = calloc((size_t)(n ? n : 1), sizeof *v);
    json_t *arr = json_array();
    if (v) {
        int k = 0;
        for (jjob *j = J->jobs; j; j = j->next) v[k++] = j;
        for (int i = n - 1; i >= 0 && n - 1 - i < max; i--) json_array_append_new(arr, job_json(v[i]));
    }
    pthread_mutex_unlock(&J->mu);
    free(v);
    json_t *o = json_object();
    json_object_set_new(o, "jobs", arr);
    json_object_set_new(o, "total", json_integer(n));
    return o;
}

unsigned long eps_jobs_generation(eps_jobs *J)
{
    pthread_mutex_lock(&J->mu);
    unsigned long g = J->gen;
    pthread_mutex_unlock(&J->mu);
    return g;
}

void eps_jobs_stats(eps_jobs *J, long by_status[5], unsigned long long *items_done, long *in_flight)
{
    for (int i = 0; i < N_STATUS; i++) by_status[i] = 0;
    pthread_mutex_lock(&J->mu);
    for (jjob *j = J->jobs; j; j = j->next) by_status[j->st]++;
    *items_done = J->items_done;
    *in_flight = J->in_flight;
    pthread_mutex_unlock(&J->mu);
}

/* ------------------------------------------------------------ submit / cancel */

static void make_id(eps_jobs *J, char *buf, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40) ^
                 (++J->id_counter * 0x9e3779b97f4a7c15ULL);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    const char *p = J->cfg.id_prefix ? J->cfg.id_prefix : "";
    snprintf(buf, n, "%s%s%016llx", p, *p ? "-" : "", (unsigned long long)x);
}

static void append_job(eps_jobs *J, jjob *j)
{
    jjob **pp = &J->jobs;
    while (*pp) pp = &(*pp)->next;
    *pp = j;
}

int eps_jobs_submit(eps_jobs *J, const char *body, size_t len, json_t **out, int *status, eps_error *err)
{
    *out = NULL;
    *status = 400;
    json_error_t je;
    json_t *spec = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    if (!spec) {
        eps_error_set(err, EPS_EINVAL, "", "invalid JSON: %s", je.text);
        if (err) err->line = je.line > 0 ? je.line : 1, err->column = je.column > 0 ? je.column : 1;
        return EPS_EINVAL;
    }
    jjob *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(spec);
        *status = 500;
        return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    }
    int rc = job_from_spec(J, spec, j, err);
    if (rc == 0) rc = validate_items(J, j, err);
    if (rc < 0) {
        *status = rc == EPS_ELIMIT ? 413 : rc == EPS_EINVAL ? 400 : 500;
        json_decref(spec);
        free_job(j);
        return rc;
    }
    json_t *label = json_object_get(spec, "label");
    j->rec.label = label ? strdup(json_string_value(label)) : NULL;
    j->rec.spec = json_dumps(spec, JFLAGS);
    json_decref(spec);
    set_status(j, JS_QUEUED);
    j->rec.created_at = now_unix();
    pthread_mutex_lock(&J->mu);
    long active = 0;
    for (jjob *x = J->jobs; x; x = x->next) active += x->st <= JS_RUNNING;
    if (active >= J->cfg.max_jobs) {
        pthread_mutex_unlock(&J->mu);
        free_job(j);
        *status = 429;
        return eps_error_set(err, EPS_ELIMIT, "", "%ld jobs are queued or running (the --max-jobs limit); retry later",
                             active);
    }
    make_id(J, j->rec.id, sizeof j->rec.id);
    rc = j->rec.spec ? eps_jobstore_create(J->st, &j->rec, err) : eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    if (rc < 0) {
        pthread_mutex_unlock(&J->mu);
        free_job(j);
        *status = 500;
        return rc;
    }
    append_job(J, j);
    J->gen++;
    *out = job_json(j);
    pthread_cond_broadcast(&J->cv);
    pthread_mutex_unlock(&J->mu);
    *status = 202;
    return 0;
}

json_t *eps_jobs_cancel(eps_jobs *J, const char *id)
{
    pthread_mutex_lock(&J->mu);
    jjob *j = find_job(J, id);
    json_t *o = NULL;
    if (j) {
        j->cancel = 1; /* also stops a run the runner is just starting */
        if (j->st == JS_QUEUED) {
            set_status(j, JS_CANCELLED);
            j->rec.finished_at = now_unix();
            eps_jobstore_set_status(J->st, &j->rec, NULL);
            J->gen++;
        } /* running: the runner stops submitting; in-flight items finish and are kept */
        o = job_json(j);
        pthread_cond_broadcast(&J->cv);
    }
    pthread_mutex_unlock(&J->mu);
    return o;
}

int eps_jobs_rows(eps_jobs *J, const char *id, long after, int limit, void (*fn)(void *ctx, const void *row),
                  void *ctx)
{
    pthread_mutex_lock(&J->mu);
    jjob *j = find_job(J, id);
    long before = j ? (j->st == JS_RUNNING ? j->contig : j->rec.total) : -1;
    pthread_mutex_unlock(&J->mu);
    if (!j) return EPS_EINVAL;
    if (after + 1 >= before) return 0;
    return eps_jobstore_rows(J->st, id, after, before, limit, (void (*)(void *, const eps_jobrow *))fn, ctx);
}

/* ------------------------------------------------------------ computing items */

typedef struct jwork {
    eps_job job;
    eps_jobs *J;
    eps_cache_flight *flight;
    eps_score_req p;
    int rc;
    eps_error err;
    char *blob;
    size_t blob_len;
} jwork;

/* The cached value has the exact shape score_work in eps_http.c writes, so
 * a /v1/score hit on a job's result answers the same bytes. */
static void job_work(eps_job *qj)
{
    jwork *w = qj->ctx;
    size_t blen = 0;
    char *b = eps_cache_backend_get(w->J->cache, w->flight, &blen);
    if (b) {
        w->blob = b;
        w->blob_len = blen;
        return;
    }
    eps_run_opts opts = {.engine = w->p.engine, .cancel = &qj->cancel, .stop_early = 1};
    eps_batch v; /* the spec at bs, as /v1/score scores it */
    int owned = 0;
    if ((w->rc = eps_batch_at_size(&w->p.nb->batch, w->p.batch_size, &v, &owned, &w->err)) < 0) return;
    eps_score sc;
    eps_metrics_computation();
    w->rc = eps_arch_score(&w->p.arch, &v, w->p.w, &opts, &sc, &w->err);
    if (owned) eps_batch_free(&v);
    if (w->rc < 0) return;
    const eps_arch *a = &w->p.arch;
    json_t *o = json_object();
    json_object_set_new(o, "space", json_string(a->space->name));
    json_object_set_new(o, "hash", json_string(a->hash));
    json_object_set_new(o, "canonical", json_string(a->canonical ? a->canonical : ""));
    json_t *enc = eps_arch_encodings(a); /* the same bytes as score_work writes */
    if (enc) json_object_set_new(o, "encodings", enc);
    json_object_set_new(o, "epsilon", isfinite(sc.epsilon) ? json_real(sc.epsilon) : json_null());
    json_object_set_new(o, "nan_reason", isnan(sc.epsilon) ? json_string(sc.nan_reason) : json_null());
    json_object_set_new(o, "params", json_integer(a->params));
    json_object_set_new(o, "macs", json_integer(a->macs));
    json_object_set_new(o, "weights", json_pack("[ff]", w->p.w[0], w->p.w[1]));
    json_object_set_new(o, "batch_hash", json_string(w->p.batch_hash));
    json_object_set_new(o, "batch_size", json_integer(w->p.batch_size));
    json_object_set_new(o, "engine", json_string(eps_engine_name(w->p.engine)));
    w->blob = json_dumps(o, JFLAGS);
    json_decref(o);
    if (!w->blob) w->rc = eps_error_set(&w->err, EPS_ENOMEM, "", "out of memory");
    else w->blob_len = strlen(w->blob);
}

static void finish_error(eps_cache *c, eps_cache_flight *f, int status, const char *code, const char *msg,
                         const char *field)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "error", msg, "code", code, "field", field ? field : "");
    char *e = o ? json_dumps(o, JFLAGS) : NULL;
    json_decref(o);
    eps_cache_finish(c, f, status, e ? e : "{}", e ? strlen(e) : 2);
    free(e);
}

static void job_done(eps_job *qj, eps_job_status s)
{
    jwork *w = qj->ctx;
    eps_cache *c = w->J->cache;
    if (s != EPS_JOB_RAN || w->rc == EPS_ECANCELED)
        finish_error(c, w->flight, 503, "cancelled", "the item was not computed (shutdown); it is retried", "");
    else if (w->rc < 0)
        finish_error(c, w->flight, w->rc == EPS_EINVAL ? 400 : w->rc == EPS_ELIMIT ? 413 : 500,
                     eps_error_code_name(w->rc), w->err.msg, w->err.field);
    else
        eps_cache_finish(c, w->flight, 0, w->blob, w->blob_len);
    eps_arch_free(&w->p.arch);
    free(w->blob);
    free(w);
}

/* Waiter callback (any thread): hand the item back to the runner. */
static void item_resolved(eps_cache_waiter *w, int status, const char *val, size_t len)
{
    jitem *it = w->ctx;
    eps_jobs *J = it->J;
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, val, len);
        copy[len] = 0;
    }
    pthread_mutex_lock(&J->mu);
    it->status = copy ? status : 500;
    it->val = copy;
    it->next = J->done;
    J->done = it;
    pthread_cond_broadcast(&J->cv);
    pthread_mutex_unlock(&J->mu);
}

static void item_now(jitem *it, int status, char *val)
{
    eps_jobs *J = it->J;
    pthread_mutex_lock(&J->mu);
    it->status = status;
    it->val = val;
    it->next = J->done;
    J->done = it;
    pthread_mutex_unlock(&J->mu);
}

/* Starts item idx: a cache hit resolves at once, an identical computation
 * in flight is joined, otherwise one queue job computes it. */
static void start_one(eps_jobs *J, jjob *j, long idx)
{
    jitem *it = calloc(1, sizeof *it);
    if (!it) return; /* not counted in flight: the runner retries it via its done map */
    it->J = J;
    it->idx = idx;
    it->w.fn = item_resolved;
    it->w.ctx = it;
    pthread_mutex_lock(&J->mu);
    J->in_flight++;
    pthread_mutex_unlock(&J->mu);
    json_t *req = item_request(j, idx);
    json_t *a = json_object_get(req, "arch");
    int had_arch = a != NULL;
    it->arch_text = json_is_string(a) ? strdup(json_string_value(a)) : a ? json_dumps(a, JFLAGS | JSON_SORT_KEYS)
                                                                          : strdup("");
    eps_score_req p;
    eps_error err;
    eps_error_clear(&err);
    int rc = eps_score_req_prepare(req, J->batches, J->n_batches, J->cfg.max_request_memory, &p, &err);
    json_decref(req);
    if (rc < 0) {
        json_t *o = json_pack("{s:s,s:s,s:s}", "error", err.msg, "code", eps_error_code_name(rc), "field", err.field);
        item_now(it, 400, o ? json_dumps(o, JFLAGS) : NULL);
        json_decref(o);
        return;
    }
    memcpy(it->hash, p.arch.hash, sizeof it->hash);
    if (!had_arch && p.arch.canonical) { /* no 'arch' (nb101 matrix/ops...): the canonical text, as sweep writes */
        char *c = strdup(p.arch.canonical);
        if (c) free(it->arch_text), it->arch_text = c;
    }
    it->params = p.arch.params;
    it->macs = p.arch.macs;
    eps_cache_key key;
    if (eps_cache_key_make(&key, p.arch.space->name, p.arch.canonical ? p.arch.canonical : "", p.arch.hash, p.w,
                           p.batch_hash, p.batch_size, eps_engine_name(p.engine), EPS_VERSION) < 0) {
        eps_arch_free(&p.arch);
        item_now(it, 503, NULL); /* out of memory: retried */
        return;
    }
    char *val = NULL;
    size_t vlen = 0;
    eps_cache_flight *flight = NULL;
    eps_cache_result cr = eps_cache_lookup(J->cache, &key, &it->w, &val, &vlen, &flight);
    eps_cache_key_free(&key);
    if (cr == EPS_CACHE_HIT || (cr == EPS_CACHE_LEAD && !flight)) {
        eps_arch_free(&p.arch);
        item_now(it, cr == EPS_CACHE_HIT ? 0 : 503, val);
        return;
    }
    if (cr == EPS_CACHE_JOINED) {
        eps_arch_free(&p.arch);
        return;
    }
    jwork *w = calloc(1, sizeof *w);
    if (w) {
        w->J = J;
        w->flight = flight;
        w->p = p;
        w->job.work = job_work;
        w->job.done = job_done;
        w->job.ctx = w;
        rc = eps_queue_submit(J->q, &w->job);
        if (rc == 0) return;
        free(w);
    }
    eps_arch_free(&p.arch);
    /* queue full (interactive work has it) or shutting down: retried later */
    finish_error(J->cache, flight, 503, "queue_full", "the compute queue is full", "");
}

/* ------------------------------------------------------------ runner */

/* A resolved item as a row (strings point into buf / it). 1 = row, 0 = retry. */
static int item_row(jitem *it, eps_jobrow *r, char *eps, size_t en, json_t **hold)
{
    memset(r, 0, sizeof *r);
    r->idx = it->idx;
    r->arch = it->arch_text ? it->arch_text : "";
    *hold = NULL;
    if (it->status == 429 || it->status == 503 || it->status == 504 || (it->status == 0 && !it->val)) return 0;
    json_t *o = it->val ? json_loads(it->val, 0, NULL) : NULL;
    *hold = o;
    if (it->status != 0) {
        const char *m = json_string_value(json_object_get(o, "error"));
        r->error = m ? m : "error";
        r->epsilon = "";
        return 1;
    }
    json_t *e = json_object_get(o, "epsilon");
    if (json_is_number(e)) snprintf(eps, en, "%.15g", json_number_value(e));
    else snprintf(eps, en, "nan");
    r->epsilon = eps;
    r->nan_reason = json_string_value(json_object_get(o, "nan_reason"));
    r->hash = it->hash;
    r->params = it->params;
    r->macs = it->macs;
    return 1;
}

/* Stores a list of resolved items in one transaction; the ones to retry
 * go to retry[]. Returns 0 or a negative code (database failure). */
static int store_items(eps_jobs *J, jjob *j, jitem *list, unsigned char *have, long *retry, long *n_retry)
{
    int n = 0, rc = 0;
    for (jitem *it = list; it; it = it->next) n++;
    eps_jobrow *rows = calloc((size_t)n + 1, sizeof *rows);
    char (*eps)[40] = calloc((size_t)n + 1, sizeof *eps);
    json_t **hold = calloc((size_t)n + 1, sizeof *hold);
    int k = 0;
    long nan = 0, errs = 0;
    if (!rows || !eps || !hold) rc = EPS_ENOMEM;
    for (jitem *it = list; !rc && it; it = it->next) {
        if (!item_row(it, &rows[k], eps[k], sizeof eps[k], &hold[k]) || have[it->idx]) {
            if (!have[it->idx]) retry[(*n_retry)++] = it->idx;
            json_decref(hold[k]);
            hold[k] = NULL;
            continue;
        }
        nan += rows[k].error == NULL && !strcmp(rows[k].epsilon, "nan");
        errs += rows[k].error != NULL;
        k++;
    }
    long added = 0;
    eps_error err;
    if (!rc && k) rc = eps_jobstore_add_rows(J->st, j->rec.id, rows, k, &added, &err);
    if (rc < 0) eps_log(EPS_LOG_ERROR, "job %s: %s", j->rec.id, rc == EPS_ENOMEM ? "out of memory" : err.msg);
    pthread_mutex_lock(&J->mu);
    if (!rc) {
        for (int i = 0; i < k; i++) have[rows[i].idx] = 1;
        while (j->contig < j->rec.total && have[j->contig]) j->contig++;
        j->rec.done += added;
        j->rec.nan += nan;
        j->rec.errors += errs;
        J->items_done += (unsigned long long)added;
        J->gen++;
    }
    pthread_mutex_unlock(&J->mu);
    for (int i = 0; i < k; i++) json_decref(hold[i]);
    free(rows);
    free(eps);
    free(hold);
    for (jitem *it = list, *nx; it; it = nx) {
        nx = it->next;
        free(it->arch_text);
        free(it->val);
        free(it);
    }
    return rc;
}

static void timed_wait(eps_jobs *J, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&J->cv, &J->mu, &ts);
}

static void persist_status(eps_jobs *J, jjob *j, int st)
{
    pthread_mutex_lock(&J->mu);
    set_status(j, st);
    if (st == JS_RUNNING) {
        if (j->rec.started_at <= 0) j->rec.started_at = now_unix();
        j->run_t0 = now_unix();
        j->run_done0 = j->rec.done;
    }
    if (st > JS_RUNNING) {
        j->rec.finished_at = now_unix();
        json_decref(j->items); /* a finished job needs only its record: keep memory per job small */
        j->items = NULL;
    }
    eps_jobrec rec = j->rec;
    J->gen++;
    pthread_cond_broadcast(&J->cv);
    pthread_mutex_unlock(&J->mu);
    eps_error err;
    if (eps_jobstore_set_status(J->st, &rec, &err) < 0) eps_log(EPS_LOG_ERROR, "job %s: %s", rec.id, err.msg);
}

static void run_job(eps_jobs *J, jjob *j)
{
    long total = j->rec.total;
    unsigned char *have = calloc((size_t)total, 1);
    long *retry = calloc((size_t)J->cfg.window * 2 + 8, sizeof *retry);
    eps_error err;
    if (!have || !retry || eps_jobstore_done_map(J->st, j->rec.id, have, total, &err) < 0) {
        free(have);
        free(retry);
        persist_status(J, j, JS_FAILED);
        return;
    }
    pthread_mutex_lock(&J->mu);
    j->contig = 0;
    while (j->contig < total && have[j->contig]) j->contig++;
    pthread_mutex_unlock(&J->mu);
    persist_status(J, j, JS_RUNNING);
    eps_log(EPS_LOG_INFO, "job %s: running (%ld of %ld items already stored)", j->rec.id, j->rec.done, total);
    long next = 0, n_retry = 0;
    int failed = 0;
    int64_t backoff_until = 0;
    for (;;) {
        pthread_mutex_lock(&J->mu);
        jitem *list = J->done;
        J->done = NULL;
        long resolved = 0;
        for (jitem *it = list; it; it = it->next) resolved++;
        J->in_flight -= resolved;
        long inflight = J->in_flight;
        int stop = J->stop || j->cancel || failed;
        pthread_mutex_unlock(&J->mu);
        long before = n_retry;
        if (list && store_items(J, j, list, have, retry, &n_retry) < 0) failed = 1;
        if (n_retry > before) backoff_until = eps_now_ns() + 20 * 1000000LL; /* queue busy: let interactive work in */
        if (stop) {
            if (inflight == 0) break;
        } else {
            while (inflight < J->cfg.window && eps_now_ns() >= backoff_until && (n_retry || next < total)) {
                long idx = n_retry ? retry[--n_retry] : next++;
                if (have[idx]) continue;
                start_one(J, j, idx);
                inflight++;
            }
            if (next >= total && !n_retry && inflight == 0) {
                pthread_mutex_lock(&J->mu);
                int empty = J->done == NULL;
                pthread_mutex_unlock(&J->mu);
                if (empty) break;
                continue;
            }
        }
        pthread_mutex_lock(&J->mu);
        if (!J->done) timed_wait(J, n_retry ? 20 : 500);
        pthread_mutex_unlock(&J->mu);
    }
    free(have);
    free(retry);
    pthread_mutex_lock(&J->mu);
    int stopping = J->stop, cancelled = j->cancel;
    pthread_mutex_unlock(&J->mu);
    if (failed) persist_status(J, j, JS_FAILED);
    else if (cancelled) persist_status(J, j, JS_CANCELLED);
    else if (!stopping) persist_status(J, j, JS_SUCCEEDED);
    /* stopping: stays "running" in the store and resumes at the next start */
    eps_log(EPS_LOG_INFO, "job %s: %s (%ld/%ld rows)", j->rec.id, j->rec.status, j->rec.done, total);
}

/* Deletes finished jobs older than the retention time, and the oldest
 * finished ones beyond MAX_FINISHED (memory and disk stay bounded even
 * under a flood of small jobs). Under J->mu. */
#define MAX_FINISHED 1000
static void expire_jobs(eps_jobs *J)
{
    double now = now_unix();
    long finished = 0;
    for (jjob *j = J->jobs; j; j = j->next) finished += j->st > JS_RUNNING;
    for (jjob **pp = &J->jobs; *pp;) {
        jjob *j = *pp;
        int old = j->rec.finished_at > 0 && now - j->rec.finished_at > (double)J->cfg.retention_s;
        if (j->st > JS_RUNNING && (old || finished > MAX_FINISHED)) {
            finished--;
            *pp = j->next;
            eps_error err;
            if (eps_jobstore_delete(J->st, j->rec.id, &err) < 0) eps_log(EPS_LOG_WARN, "%s", err.msg);
            free_job(j);
            J->gen++;
            continue;
        }
        pp = &j->next;
    }
}

static void *runner_main(void *arg)
{
    eps_jobs *J = arg;
    pthread_mutex_lock(&J->mu);
    while (!J->stop) {
        expire_jobs(J);
        jjob *j = J->jobs;
        while (j && !(j->st <= JS_RUNNING)) j = j->next;
        if (!j) {
            timed_wait(J, 1000);
            continue;
        }
        pthread_mutex_unlock(&J->mu);
        run_job(J, j);
        pthread_mutex_lock(&J->mu);
    }
    pthread_mutex_unlock(&J->mu);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

typedef struct load_ctx {
    eps_jobs *J;
    int bad;
} load_ctx;

static void load_one(void *ctx, const eps_jobrec *r)
{
    load_ctx *L = ctx;
    jjob *j = calloc(1, sizeof *j);
    if (!j) return;
    j->rec = *r;
    j->rec.label = r->label ? strdup(r->label) : NULL;
    j->rec.spec = r->spec ? strdup(r->spec) : NULL;
    j->st = status_of(r->status);
    json_t *spec = r->spec ? json_loads(r->spec, 0, NULL) : NULL;
    eps_error err;
    long done = j->rec.done, nan = j->rec.nan, errs = j->rec.errors;
    if (!spec || job_from_spec(L->J, spec, j, &err) < 0) {
        L->bad++;
        if (j->st <= JS_RUNNING) set_status(j, JS_FAILED);
    }
    j->rec.total = r->total;
    j->rec.done = done, j->rec.nan = nan, j->rec.errors = errs;
    if (j->st > JS_RUNNING) {
        json_decref(j->items);
        j->items = NULL;
    }
    json_decref(spec);
    append_job(L->J, j);
}

int eps_jobs_start(const eps_jobs_config *cfg, eps_queue *q, eps_cache *cache, const struct eps_named_batch *batches,
                   int n_batches, eps_jobs **out, eps_error *err)
{
    *out = NULL;
    eps_jobs *J = calloc(1, sizeof *J);
    if (!J) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    J->cfg = *cfg;
    if (J->cfg.window < 1) J->cfg.window = 1;
    J->q = q;
    J->cache = cache;
    J->batches = batches;
    J->n_batches = n_batches;
    pthread_mutex_init(&J->mu, NULL);
    pthread_cond_init(&J->cv, NULL);
    int rc = eps_jobstore_open(cfg->data_dir, &J->st, err);
    load_ctx L = {J, 0};
    if (rc == 0) rc = eps_jobstore_each_job(J->st, load_one, &L, err);
    if (rc == 0 && pthread_create(&J->th, NULL, runner_main, J) != 0)
        rc = eps_error_set(err, EPS_EINTERNAL, "", "cannot start the job runner thread");
    if (rc < 0) {
        eps_jobs_stop(J);
        return rc;
    }
    J->th_started = 1;
    long n = 0, pending = 0;
    for (jjob *j = J->jobs; j; j = j->next) n++, pending += j->st <= JS_RUNNING;
    if (n) eps_log(EPS_LOG_INFO, "jobs: %ld in the store, %ld to resume", n, pending);
    *out = J;
    return 0;
}

void eps_jobs_drain(eps_jobs *J)
{
    if (!J) return;
    pthread_mutex_lock(&J->mu);
    J->stop = 1;
    pthread_cond_broadcast(&J->cv);
    pthread_mutex_unlock(&J->mu);
}

void eps_jobs_stop(eps_jobs *J)
{
    if (!J) return;
    pthread_mutex_lock(&J->mu);
    J->stop = 1;
    pthread_cond_broadcast(&J->cv);
    pthread_mutex_unlock(&J->mu);
    if (J->th_started) pthread_join(J->th, NULL);
    while (J->jobs) {
        jjob *j = J->jobs;
        J->jobs = j->next;
        free_job(j);
    }
    eps_jobstore_close(J->st);
    pthread_cond_destroy(&J->cv);
    pthread_mutex_destroy(&J->mu);
    free(J);
}
