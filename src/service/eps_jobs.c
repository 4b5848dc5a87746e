/* eps_jobs.c — sweep jobs (see jobs.h): the job list and the API: submit
 * (validated by eps_jobs_spec.c), cancel, the job objects and their rows,
 * start (resume after a restart) and stop. The runner thread that computes
 * the items is eps_jobs_run.c; lifecycle: queued -> running -> succeeded |
 * failed | cancelled. Rows and specs live in the jobstore (SQLite). */
#include "eps_jobs_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "epsinas/core/util.h"
#include "epsinas/service/log.h"

const char *const eps_jobs_status_names[N_STATUS] = {"queued", "running", "succeeded", "failed", "cancelled"};

/* ------------------------------------------------------------ state */

double eps_jobs_now_unix(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int status_of(const char *s)
{
    for (int i = 0; i < N_STATUS; i++)
        if (!strcmp(s, eps_jobs_status_names[i])) return i;
    return JS_FAILED;
}

void eps_jobs_set_status(jjob *j, int st)
{
    j->st = st;
    snprintf(j->rec.status, sizeof j->rec.status, "%s", eps_jobs_status_names[st]);
}

void eps_jobs_free_job(jjob *j)
{
    free(j->rec.label);
    free(j->rec.spec);
    json_decref(j->items);
    json_decref(j->shared);
    free(j);
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
        double dt = eps_jobs_now_unix() - j->run_t0;
        if (dt > 0.2) rate = (double)(j->rec.done - j->run_done0) / dt;
        if (rate > 0) eta = (double)(j->rec.total - j->rec.done) / rate;
    } else if (j->st >= JS_SUCCEEDED && j->rec.finished_at > j->rec.started_at && j->rec.started_at > 0) {
        rate = (double)j->rec.done / (j->rec.finished_at - j->rec.started_at);
        eta = 0;
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(j->rec.id));
    json_object_set_new(o, "label", j->rec.label ? json_string(j->rec.label) : json_null());
    json_object_set_new(o, "status", json_string(eps_jobs_status_names[j->st]));
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
    int rc = eps_jobs_from_spec(J, spec, j, err);
    if (rc == 0) rc = eps_jobs_validate_items(J, j, err);
    if (rc < 0) {
        *status = rc == EPS_ELIMIT ? 413 : rc == EPS_EINVAL ? 400 : 500;
        json_decref(spec);
        eps_jobs_free_job(j);
        return rc;
    }
    json_t *label = json_object_get(spec, "label");
    j->rec.label = label ? strdup(json_string_value(label)) : NULL;
    j->rec.spec = json_dumps(spec, JFLAGS);
    json_decref(spec);
    eps_jobs_set_status(j, JS_QUEUED);
    j->rec.created_at = eps_jobs_now_unix();
    pthread_mutex_lock(&J->mu);
    long active = 0;
    for (jjob *x = J->jobs; x; x = x->next) active += x->st <= JS_RUNNING;
    if (active >= J->cfg.max_jobs) {
        pthread_mutex_unlock(&J->mu);
        eps_jobs_free_job(j);
        *status = 429;
        return eps_error_set(err, EPS_ELIMIT, "", "%ld jobs are queued or running (the --max-jobs limit); retry later",
                             active);
    }
    make_id(J, j->rec.id, sizeof j->rec.id);
    rc = j->rec.spec ? eps_jobstore_create(J->st, &j->rec, err) : eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    if (rc < 0) {
        pthread_mutex_unlock(&J->mu);
        eps_jobs_free_job(j);
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
            eps_jobs_set_status(j, JS_CANCELLED);
            j->rec.finished_at = eps_jobs_now_unix();
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
    if (!spec || eps_jobs_from_spec(L->J, spec, j, &err) < 0) {
        L->bad++;
        if (j->st <= JS_RUNNING) eps_jobs_set_status(j, JS_FAILED);
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
    if (rc == 0 && pthread_create(&J->th, NULL, eps_jobs_runner_main, J) != 0)
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
    eps_flag_raise(&J->mu, &J->cv, &J->stop);
}

void eps_jobs_stop(eps_jobs *J)
{
    if (!J) return;
    eps_jobs_drain(J);
    if (J->th_started) pthread_join(J->th, NULL);
    while (J->jobs) {
        jjob *j = J->jobs;
        J->jobs = j->next;
        eps_jobs_free_job(j);
    }
    eps_jobstore_close(J->st);
    pthread_cond_destroy(&J->cv);
    pthread_mutex_destroy(&J->mu);
    free(J);
}
