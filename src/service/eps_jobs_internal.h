/* eps_jobs_internal.h — what the three parts of sweep jobs share (private
 * to src/service/; the API is include/epsinas/service/jobs.h): the job and
 * item records, the jobs object, and the functions one part calls in
 * another. eps_jobs.c owns the job list and the API (submit, cancel, job
 * objects, start/stop), eps_jobs_spec.c turns a job spec into its items and
 * validates them, eps_jobs_run.c is the runner thread computing them. */
#ifndef EPSINAS_SERVICE_JOBS_INTERNAL_H
#define EPSINAS_SERVICE_JOBS_INTERNAL_H

#include <pthread.h>

#include <jansson.h>

#include "epsinas/core/batch.h"
#include "epsinas/core/error.h"
#include "epsinas/service/cache.h"
#include "epsinas/service/jobs.h"
#include "epsinas/service/request.h"
#include "epsinas/service/jobstore.h"
#include "epsinas/service/queue.h"

#define JFLAGS (JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15))
#define N_STATUS 5
enum { JS_QUEUED, JS_RUNNING, JS_SUCCEEDED, JS_FAILED, JS_CANCELLED };
extern const char *const eps_jobs_status_names[N_STATUS];

/* {"space": S, "all": true}: item idx of an enumerable space. Adding a space
 * is one line in eps_jobs_spec.c. */
typedef struct enum_space {
    const char *space;
    long count;
    json_t *(*item)(long idx); /* the request object of item idx (new ref) */
} enum_space;

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

/* ---- eps_jobs.c */
double eps_jobs_now_unix(void);
void eps_jobs_set_status(jjob *j, int st);
void eps_jobs_free_job(jjob *j);

/* ---- eps_jobs_spec.c */
/* Builds j from a (parsed) spec; err names the field. */
int eps_jobs_from_spec(eps_jobs *J, json_t *spec, jjob *j, eps_error *err);
/* Validates every item up front as /v1/score would (for 'all', one item). */
int eps_jobs_validate_items(eps_jobs *J, const jjob *j, eps_error *err);
/* Item idx's request object (new ref or NULL). */
json_t *eps_jobs_item_request(const jjob *j, long idx);
/* eps_score_req_prepare of one item request with the service's batches and
 * memory budget (err cleared first). */
int eps_jobs_prepare(const eps_jobs *J, const json_t *req, eps_score_req *p, eps_error *err);

/* ---- eps_jobs_run.c */
/* The runner thread (arg: the eps_jobs): one job at a time, oldest first. */
void *eps_jobs_runner_main(void *arg);

#endif
