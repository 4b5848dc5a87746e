/* test_queue.c — the bounded job queue (issue 17 defect 4): a job waiting
 * behind a long one expires at its own deadline, not when a worker frees
 * up. One worker is held by a job that ignores `cancel` until the test
 * releases it, so the only way the second job can finish is the deadline. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "epsinas/core/util.h"
#include "epsinas/service/queue.h"

typedef struct tjob {
    eps_job job;
    atomic_int *release;      /* the long job spins until *release */
    atomic_int status;        /* eps_job_status + 1 once done() ran */
    atomic_llong done_ns;
} tjob;

static void long_work(eps_job *j)
{
    tjob *t = j->ctx;
    while (!atomic_load(t->release)) { /* deliberately deaf to j->cancel */
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void short_work(eps_job *j) { (void)j; }

static void on_done(eps_job *j, eps_job_status s)
{
    tjob *t = j->ctx;
    atomic_store(&t->done_ns, eps_now_ns());
    atomic_store(&t->status, (int)s + 1);
}

static void test_queued_job_expires_at_its_deadline(void **state)
{
    (void)state;
    eps_queue *q;
    eps_error e;
    assert_int_equal(eps_queue_start(1, 8, &q, &e), 0);
    atomic_int release = 0;
    tjob a = {0}, b = {0};
    a.release = &release;
    a.job.work = long_work, a.job.done = on_done, a.job.ctx = &a;
    b.job.work = short_work, b.job.done = on_done, b.job.ctx = &b;
    int64_t t0 = eps_now_ns();
    b.job.deadline_ns = t0 + 200 * 1000000LL;
    assert_int_equal(eps_queue_submit(q, &a.job), 0);
    assert_int_equal(eps_queue_submit(q, &b.job), 0);
    /* b must be done while a still holds the only worker: poll (bounded) */
    int64_t give_up = t0 + 20 * 1000000000LL;
    while (!atomic_load(&b.status) && eps_now_ns() < give_up) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    int b_status = atomic_load(&b.status), a_status = atomic_load(&a.status);
    double after_ms = (double)(atomic_load(&b.done_ns) - t0) / 1e6;
    atomic_store(&release, 1);
    /* done() runs just after the queue's count drops: wait for a's own */
    give_up = eps_now_ns() + 20 * 1000000000LL;
    while (!atomic_load(&a.status) && eps_now_ns() < give_up) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    print_message("# queued job expired after %.0f ms (deadline 200 ms), long job still running: %s\n", after_ms,
                  a_status ? "no" : "yes");
    assert_int_equal(b_status, EPS_JOB_EXPIRED + 1);
    assert_int_equal(a_status, 0); /* it really was still running */
    assert_int_equal(atomic_load(&a.status), EPS_JOB_RAN + 1);
    eps_queue_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queued_job_expires_at_its_deadline),
    };
    return cmocka_run_group_tests_name("queue", tests, NULL, NULL);
}
