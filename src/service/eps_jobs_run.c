/* eps_jobs_run.c — the runner thread of sweep jobs (jobs.h): one job at a
 * time, at most `window` items in flight on the service's queue, each item
 * through the score cache exactly like a /v1/score item (hits are not
 * recomputed, a computation in flight is joined), rows stored in order of
 * completion, retries when the queue is full, and the retention sweep. */
#include "eps_jobs_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "epsinas/service/log.h"
#include "epsinas/service/metrics.h"
#include "epsinas/service/request.h"
#include "epsinas/spaces/space.h"
#include "epsinas/core/util.h"

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

/* The cached value is eps_score_result_json's, as /v1/score writes it, so
 * a /v1/score hit on a job's result answers the same bytes. */
static void job_work(eps_job *qj)
{
    jwork *w = qj->ctx;
    if ((w->blob = eps_cache_backend_get(w->J->cache, w->flight, &w->blob_len))) return;
    if ((w->rc = eps_score_req_compute(&w->p, &qj->cancel, &w->blob, NULL, &w->err)) < 0) return;
    w->blob_len = strlen(w->blob);
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
    json_t *req = eps_jobs_item_request(j, idx);
    json_t *a = json_object_get(req, "arch");
    int had_arch = a != NULL;
    it->arch_text = json_is_string(a) ? strdup(json_string_value(a)) : a ? json_dumps(a, JFLAGS | JSON_SORT_KEYS)
                                                                          : strdup("");
    eps_score_req p;
    eps_error err;
    int rc = eps_jobs_prepare(J, req, &p, &err);
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
    eps_jobs_set_status(j, st);
    if (st == JS_RUNNING) {
        if (j->rec.started_at <= 0) j->rec.started_at = eps_jobs_now_unix();
        j->run_t0 = eps_jobs_now_unix();
        j->run_done0 = j->rec.done;
    }
    if (st > JS_RUNNING) {
        j->rec.finished_at = eps_jobs_now_unix();
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
    double now = eps_jobs_now_unix();
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
            eps_jobs_free_job(j);
            J->gen++;
            continue;
        }
        pp = &j->next;
    }
}

void *eps_jobs_runner_main(void *arg)
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

