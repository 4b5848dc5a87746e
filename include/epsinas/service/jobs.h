/* jobs.h — sweep jobs: validate a job, queue it, run it through the
 * service's compute queue and cache, persist rows (jobstore.h), resume
 * unfinished jobs at start, cancel, expire finished jobs.
 *
 * One runner thread runs one job at a time. It keeps at most `window` items
 * in flight on the shared eps_queue (the service's worker pool), so an
 * interactive /v1/score waits behind at most that many job items instead of
 * a whole space (fairness without a second queue). Items go through the
 * score cache like any request: hits are not recomputed, and what a job
 * computes fills the cache. */
#ifndef EPSINAS_JOBS_H
#define EPSINAS_JOBS_H
#include <jansson.h>
#include "epsinas/core/batch.h"
#include "epsinas/service/cache.h"
#include "epsinas/core/error.h"
#include "epsinas/service/queue.h"

typedef struct eps_jobs eps_jobs;

typedef struct eps_jobs_config {
    const char *data_dir;   /* NULL/"" -> jobs kept in memory only */
    long max_jobs;          /* queued + running jobs */
    long max_items;         /* items per job */
    long retention_s;       /* finished jobs are deleted after this */
    int window;             /* items in flight at once */
    const char *id_prefix;  /* replica tag put in front of job ids ("" = none) */
    long long max_request_memory; /* per item, as /v1/score (0 = no limit) */
} eps_jobs_config;

/* A named batch as the server loaded it (http.h's eps_named_batch). */
struct eps_named_batch;

int eps_jobs_start(const eps_jobs_config *cfg, eps_queue *q, eps_cache *cache, const struct eps_named_batch *batches,
                   int n_batches, eps_jobs **out, eps_error *err);
/* Stops the runner (unfinished jobs stay "running" in the store and resume
 * at the next start) and frees everything. */
void eps_jobs_stop(eps_jobs *J);
/* Stops submitting items (server draining); eps_jobs_stop still needed. */
void eps_jobs_drain(eps_jobs *J);

/* Validates and queues a job from a POST body. On success *job is the job
 * object (caller decrefs) and *status 202; on error err names the item and
 * field and *status is 400/413/429/500. */
int eps_jobs_submit(eps_jobs *J, const char *body, size_t len, json_t **job, int *status, eps_error *err);
/* The job object, or NULL when unknown. Caller decrefs. */
json_t *eps_jobs_get(eps_jobs *J, const char *id);
/* Newest first, at most max. Caller decrefs. */
json_t *eps_jobs_list(eps_jobs *J, int max);
/* Cancels; returns the job object or NULL when unknown. */
json_t *eps_jobs_cancel(eps_jobs *J, const char *id);
/* Result rows with after < idx, at most limit, in index order. While a job
 * runs only its completed prefix is visible, so paging with after never
 * skips a row that completes later. Returns count (0 = no more), or < 0. */
int eps_jobs_rows(eps_jobs *J, const char *id, long after, int limit, void (*fn)(void *ctx, const void *row),
                  void *ctx);
/* Change counter for progress streams; bumps on every committed batch of
 * rows and every status change. */
unsigned long eps_jobs_generation(eps_jobs *J);
/* Metrics: jobs per status (queued, running, succeeded, failed, cancelled),
 * items done by jobs since start, items in flight. */
void eps_jobs_stats(eps_jobs *J, long by_status[5], unsigned long long *items_done, long *in_flight);
#endif
