/* queue.h — bounded compute-job queue in front of libuv's worker pool.
 *
 * One loop thread owns a private uv_loop and hands jobs to uv_queue_work;
 * any thread may submit (mutex-protected list + uv_async_send). Capacity
 * counts queued + running jobs; a full queue rejects at once (HTTP 429).
 * A job whose deadline passed while it waited is not run; a running job
 * past its deadline gets its `cancel` flag set (engines poll it between
 * nodes and return EPS_ECANCELED). */
#ifndef EPSINAS_QUEUE_H
#define EPSINAS_QUEUE_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>
#include "epsinas/core/error.h"

typedef struct eps_queue eps_queue;
typedef struct eps_job eps_job;

typedef enum {
    EPS_JOB_RAN = 0,     /* work() ran (it may still have stopped early on `cancel`) */
    EPS_JOB_EXPIRED,     /* its deadline passed before a worker took it: not run */
    EPS_JOB_CANCELED,    /* the queue was cancelled (shutdown) before it ran */
} eps_job_status;

/* The submitter allocates the job (usually embedded in its own struct), fills
 * work/done/ctx/deadline_ns, and frees it in done(): the queue never frees. */
struct eps_job {
    void (*work)(eps_job *job);                   /* on a worker thread */
    void (*done)(eps_job *job, eps_job_status s); /* on the loop thread, exactly once */
    void *ctx;
    int64_t deadline_ns;       /* CLOCK_MONOTONIC, absolute; 0 = none */
    atomic_int cancel;         /* set by the queue (loop thread), read by the worker;
                                  pass to eps_run_opts.cancel */
    int64_t t_submit_ns, t_start_ns, t_end_ns;
    /* private */
    uv_work_t req;
    eps_job *next, *prev;
    eps_queue *q;
    int expired;
    int deadline_seen; /* loop thread only: deadline_cb acted on it */
};

/* Monotonic clock in nanoseconds. */

/* Starts the loop thread. `workers` sizes libuv's pool (UV_THREADPOOL_SIZE,
 * read once per process: the first queue decides). *out is owned by the
 * caller: eps_queue_free. */
int eps_queue_start(int workers, int capacity, eps_queue **out, eps_error *err);
/* 0, EPS_ELIMIT when the queue is full, EPS_ECANCELED after
 * eps_queue_cancel_all. On error the job is untouched (done() not called). */
int eps_queue_submit(eps_queue *q, eps_job *job);
/* Jobs queued + running. */
long eps_queue_depth(eps_queue *q);
/* Refuses new jobs, un-queues waiting ones (done(CANCELED)) and sets
 * `cancel` on running ones. Returns at once. */
void eps_queue_cancel_all(eps_queue *q);
/* Waits until no job is queued or running, at most timeout_ms.
 * Returns the depth left (0 = drained). */
long eps_queue_wait_idle(eps_queue *q, int64_t timeout_ms);
/* Cancels everything, waits for the workers, stops the loop thread. */
void eps_queue_free(eps_queue *q);

#endif
