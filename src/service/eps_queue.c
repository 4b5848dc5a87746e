/* eps_queue.c — bounded job queue over libuv's thread pool (see queue.h).
 * Owns the loop thread, its uv_loop, the pending list (jobs submitted by
 * other threads, not yet handed to libuv) and the in-flight list (handed to
 * libuv, done() not yet called; touched only on the loop thread). */
#include "epsinas/service/queue.h"
#include "epsinas/core/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct eps_queue {
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t deadline_timer;
    pthread_t thread;
    int capacity;

    pthread_mutex_t mu;
    pthread_cond_t idle;
    eps_job *pending_head, *pending_tail; /* guarded by mu */
    long count;                           /* queued + running, guarded by mu */
    int canceling;                        /* guarded by mu */
    int quitting;                         /* guarded by mu */

    eps_job *inflight; /* loop thread only */
    int timer_on;      /* loop thread only */
    int closed;        /* loop thread only */
};


static void inflight_remove(eps_queue *q, eps_job *j)
{
    if (j->prev) j->prev->next = j->next;
    else q->inflight = j->next;
    if (j->next) j->next->prev = j->prev;
    j->next = j->prev = NULL;
}

static void maybe_close(eps_queue *q)
{
    pthread_mutex_lock(&q->mu);
    int quit = q->quitting && q->count == 0;
    pthread_mutex_unlock(&q->mu);
    if (!quit || q->closed) return;
    q->closed = 1;
    uv_close((uv_handle_t *)&q->wake, NULL);
    uv_close((uv_handle_t *)&q->deadline_timer, NULL);
}

static void finish(eps_queue *q, eps_job *j, eps_job_status s)
{
    pthread_mutex_lock(&q->mu);
    q->count--;
    if (q->count == 0) pthread_cond_broadcast(&q->idle);
    pthread_mutex_unlock(&q->mu);
    j->done(j, s); /* may free j */
}

static void work_cb(uv_work_t *req)
{
    eps_job *j = req->data;
    j->t_start_ns = eps_now_ns();
    if (j->deadline_ns && j->t_start_ns >= j->deadline_ns) {
        j->expired = 1;
    } else if (!j->cancel) {
        j->work(j);
    }
    j->t_end_ns = eps_now_ns();
}

static void after_cb(uv_work_t *req, int status)
{
    eps_job *j = req->data;
    eps_queue *q = j->q;
    inflight_remove(q, j);
    if (!q->inflight && q->timer_on) {
        uv_timer_stop(&q->deadline_timer);
        q->timer_on = 0;
    }
    eps_job_status s = j->expired ? EPS_JOB_EXPIRED : status == UV_ECANCELED ? EPS_JOB_CANCELED : EPS_JOB_RAN;
    if (s == EPS_JOB_CANCELED) j->t_start_ns = j->t_end_ns = eps_now_ns();
    finish(q, j, s);
    maybe_close(q);
}

/* A job past its deadline that no worker has taken yet is taken back from
 * libuv's queue (uv_cancel succeeds only then) and expires now, without
 * waiting behind a long job for a worker; a running one gets `cancel`.
 * work_cb still expires a job it picks up late (a tick between timer runs). */
static void deadline_cb(uv_timer_t *t)
{
    eps_queue *q = t->data;
    int64_t now = eps_now_ns();
    for (eps_job *j = q->inflight; j; j = j->next) {
        if (!j->deadline_ns || now < j->deadline_ns || j->deadline_seen) continue;
        j->deadline_seen = 1;
        if (uv_cancel((uv_req_t *)&j->req) == 0) j->expired = 1; /* work_cb will never run */
        else j->cancel = 1;
    }
}

static void wake_cb(uv_async_t *a)
{
    eps_queue *q = a->data;
    pthread_mutex_lock(&q->mu);
    eps_job *list = q->pending_head;
    q->pending_head = q->pending_tail = NULL;
    int canceling = q->canceling;
    pthread_mutex_unlock(&q->mu);

    while (list) {
        eps_job *j = list;
        list = j->next;
        j->next = j->prev = NULL;
        if (canceling) {
            j->t_start_ns = j->t_end_ns = eps_now_ns();
            finish(q, j, EPS_JOB_CANCELED);
            continue;
        }
        j->req.data = j;
        j->next = q->inflight;
        if (q->inflight) q->inflight->prev = j;
        q->inflight = j;
        if (uv_queue_work(&q->loop, &j->req, work_cb, after_cb) != 0) {
            inflight_remove(q, j);
            j->t_start_ns = j->t_end_ns = eps_now_ns();
            finish(q, j, EPS_JOB_CANCELED);
        }
    }
    if (canceling) {
        for (eps_job *j = q->inflight, *next; j; j = next) {
            next = j->next;   /* uv_cancel does not call after_cb synchronously */
            j->cancel = 1;
            uv_cancel((uv_req_t *)&j->req);
        }
    }
    if (q->inflight && !q->timer_on && !q->closed) {
        uv_timer_start(&q->deadline_timer, deadline_cb, 5, 5);
        q->timer_on = 1;
    }
    maybe_close(q);
}

static void *loop_main(void *arg)
{
    eps_queue *q = arg;
    uv_run(&q->loop, UV_RUN_DEFAULT);
    return NULL;
}

int eps_queue_start(int workers, int capacity, eps_queue **out, eps_error *err)
{
    *out = NULL;
    if (workers < 1 || capacity < 1)
        return eps_error_set(err, EPS_EINVAL, "workers", "workers and capacity must be >= 1");
    /* libuv reads this once, when the first work item is queued. */
    char buf[16];
    snprintf(buf, sizeof buf, "%d", workers);
    setenv("UV_THREADPOOL_SIZE", buf, 1);

    eps_queue *q = calloc(1, sizeof *q);
    if (!q) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    q->capacity = capacity;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->idle, &ca);
    pthread_condattr_destroy(&ca);
    int rc = uv_loop_init(&q->loop);
    if (rc == 0) rc = uv_async_init(&q->loop, &q->wake, wake_cb);
    if (rc == 0) rc = uv_timer_init(&q->loop, &q->deadline_timer);
    if (rc != 0) {
        free(q);
        return eps_error_set(err, EPS_EINTERNAL, "", "libuv init failed: %s", uv_strerror(rc));
    }
    q->wake.data = q;
    q->deadline_timer.data = q;
    if (pthread_create(&q->thread, NULL, loop_main, q) != 0) {
        uv_close((uv_handle_t *)&q->wake, NULL);
        uv_close((uv_handle_t *)&q->deadline_timer, NULL);
        uv_run(&q->loop, UV_RUN_DEFAULT);
        uv_loop_close(&q->loop);
        free(q);
        return eps_error_set(err, EPS_EINTERNAL, "", "cannot start the queue thread");
    }
    *out = q;
    return 0;
}

int eps_queue_submit(eps_queue *q, eps_job *j)
{
    pthread_mutex_lock(&q->mu);
    if (q->canceling) {
        pthread_mutex_unlock(&q->mu);
        return EPS_ECANCELED;
    }
    if (q->count >= q->capacity) {
        pthread_mutex_unlock(&q->mu);
        return EPS_ELIMIT;
    }
    q->count++;
    j->q = q;
    j->cancel = 0;
    j->expired = 0;
    j->deadline_seen = 0;
    j->next = j->prev = NULL;
    j->t_submit_ns = eps_now_ns();
    j->t_start_ns = j->t_end_ns = 0;
    if (q->pending_tail) q->pending_tail->next = j;
    else q->pending_head = j;
    q->pending_tail = j;
    pthread_mutex_unlock(&q->mu);
    uv_async_send(&q->wake);
    return 0;
}

long eps_queue_depth(eps_queue *q)
{
    pthread_mutex_lock(&q->mu);
    long n = q->count;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void eps_queue_cancel_all(eps_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->canceling = 1;
    pthread_mutex_unlock(&q->mu);
    uv_async_send(&q->wake);
}

long eps_queue_wait_idle(eps_queue *q, int64_t timeout_ms)
{
    return eps_wait_zero(&q->mu, &q->idle, &q->count, (long)timeout_ms);
}

void eps_queue_free(eps_queue *q)
{
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->canceling = 1;
    q->quitting = 1;
    pthread_mutex_unlock(&q->mu);
    uv_async_send(&q->wake);
    pthread_join(q->thread, NULL);
    uv_loop_close(&q->loop);
    pthread_cond_destroy(&q->idle);
    pthread_mutex_destroy(&q->mu);
    free(q);
}
