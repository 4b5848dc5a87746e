/* jobstore.h — SQLite persistence of sweep jobs: specs, status and result rows.
 *
 * One database file <data-dir>/jobs.db in WAL mode (or an in-memory database
 * when no data dir is given: jobs then die with the process). Result rows
 * have UNIQUE(job_id, idx), so a row replayed after a crash is ignored, and
 * each batch of rows is one small transaction together with the job's
 * counters: a kill -9 loses at most the rows not yet committed, never
 * duplicates one. One connection behind a mutex; every call is thread-safe
 * and short (readers page with LIMIT, nobody holds the lock across calls). */
#ifndef EPSINAS_JOBSTORE_H
#define EPSINAS_JOBSTORE_H
#include <stddef.h>
#include "epsinas/core/error.h"

typedef struct eps_jobstore eps_jobstore;

/* A job's persisted state (strings owned by whoever filled it). */
typedef struct eps_jobrec {
    char id[48];
    char *label;       /* may be NULL */
    char *spec;        /* the normalised POST body (JSON text) */
    char status[16];   /* queued | running | succeeded | failed | cancelled */
    long total, done, nan, errors;
    double created_at, started_at, finished_at; /* unix seconds; 0 = not yet */
} eps_jobrec;

/* One result row; epsilon is text ("%.17g", "nan", or "" for an error). */
typedef struct eps_jobrow {
    long idx;
    const char *arch, *epsilon, *nan_reason, *hash, *error;
    long long params, macs;
} eps_jobrow;

/* dir NULL or "" -> in-memory. Creates dir/jobs.db when missing. */
int eps_jobstore_open(const char *dir, eps_jobstore **out, eps_error *err);
void eps_jobstore_close(eps_jobstore *st);

int eps_jobstore_create(eps_jobstore *st, const eps_jobrec *j, eps_error *err);
/* Writes status and the three timestamps. */
int eps_jobstore_set_status(eps_jobstore *st, const eps_jobrec *j, eps_error *err);
/* Inserts rows (duplicates ignored) and adds what was new to the job's
 * done/nan/errors counters, in one transaction. *added: rows new. */
int eps_jobstore_add_rows(eps_jobstore *st, const char *id, const eps_jobrow *rows, int n, long *added,
                          eps_error *err);
/* Calls fn for every job (oldest first); the record is only valid in fn. */
int eps_jobstore_each_job(eps_jobstore *st, void (*fn)(void *ctx, const eps_jobrec *j), void *ctx,
                          eps_error *err);
/* Sets have[idx] = 1 for every stored row of the job (have: total bytes). */
int eps_jobstore_done_map(eps_jobstore *st, const char *id, unsigned char *have, long total, eps_error *err);
/* Rows with after < idx < before in index order, at most limit; returns the
 * count or a negative code. Row strings are only valid in fn. */
int eps_jobstore_rows(eps_jobstore *st, const char *id, long after, long before, int limit,
                      void (*fn)(void *ctx, const eps_jobrow *r), void *ctx);
/* Deletes a job and its rows, then gives freed pages back to the file. */
int eps_jobstore_delete(eps_jobstore *st, const char *id, eps_error *err);
#endif
