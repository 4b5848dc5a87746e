/* eps_jobstore.c — SQLite persistence of sweep jobs (see jobstore.h).
 * Owns the one sqlite3 connection, the schema and every statement. */
#include "epsinas/service/jobstore.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct eps_jobstore {
    sqlite3 *db;
    pthread_mutex_t mu;
};

/* auto_vacuum must be set before the first table exists; it lets
 * eps_jobstore_delete give pages of expired jobs back to the file system. */
static const char *const schema =
    "PRAGMA auto_vacuum=INCREMENTAL;"
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;" /* WAL + NORMAL: a process crash loses no committed row */
    "PRAGMA busy_timeout=5000;"
    "CREATE TABLE IF NOT EXISTS jobs(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, label TEXT,"
    " spec TEXT NOT NULL, status TEXT NOT NULL, total INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0,"
    " nan INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0, created_at REAL, started_at REAL,"
    " finished_at REAL);"
    "CREATE TABLE IF NOT EXISTS results(job_id TEXT NOT NULL, idx INTEGER NOT NULL, arch TEXT, epsilon TEXT,"
    " nan_reason TEXT, params INTEGER, macs INTEGER, hash TEXT, error TEXT, UNIQUE(job_id, idx));";

static int db_err(eps_jobstore *st, eps_error *err, const char *what)
{
    return eps_error_set(err, EPS_EIO, "", "job database: %s: %s", what, sqlite3_errmsg(st->db));
}

int eps_jobstore_open(const char *dir, eps_jobstore **out, eps_error *err)
{
    *out = NULL;
    char path[4200];
    if (dir && *dir) {
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return eps_error_set(err, EPS_EIO, "--data-dir", "--data-dir: cannot create '%.200s': %s", dir,
                                 strerror(errno));
        snprintf(path, sizeof path, "%s/jobs.db", dir);
    } else {
        snprintf(path, sizeof path, ":memory:");
    }
    eps_jobstore *st = calloc(1, sizeof *st);
    if (!st) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    pthread_mutex_init(&st->mu, NULL);
    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    char *emsg = NULL;
    if (rc == SQLITE_OK) rc = sqlite3_exec(st->db, schema, NULL, NULL, &emsg);
    if (rc != SQLITE_OK) {
        eps_error_set(err, EPS_EIO, "--data-dir", "--data-dir: cannot open job database '%.200s': %s", path,
                      emsg ? emsg : st->db ? sqlite3_errmsg(st->db) : "out of memory");
        sqlite3_free(emsg);
        eps_jobstore_close(st);
        return EPS_EIO;
    }
    *out = st;
    return 0;
}

void eps_jobstore_close(eps_jobstore *st)
{
    if (!st) return;
    sqlite3_close(st->db);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v) sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(s, i);
}

static void bind_time(sqlite3_stmt *s, int i, double t)
{
    if (t > 0) sqlite3_bind_double(s, i, t);
    else sqlite3_bind_null(s, i);
}

/* Runs one statement to completion under the lock, its parameters bound in
 * order as types says: 's' text (NULL: null), 'i' 64-bit integer, 't' a
 * time (0: null). what names it in errors. */
static int exec_bound(eps_jobstore *st, eps_error *err, const char *what, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *s = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
        rc = db_err(st, err, what);
    } else {
        for (int i = 0; types[i]; i++) {
            if (types[i] == 's') bind_text(s, i + 1, va_arg(ap, const char *));
            else if (types[i] == 'i') sqlite3_bind_int64(s, i + 1, va_arg(ap, long long));
            else bind_time(s, i + 1, va_arg(ap, double));
        }
        if (sqlite3_step(s) != SQLITE_DONE) rc = db_err(st, err, what);
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->mu);
    va_end(ap);
    return rc;
}

int eps_jobstore_create(eps_jobstore *st, const eps_jobrec *j, eps_error *err)
{
    return exec_bound(st, err, "insert job",
                      "INSERT INTO jobs(id,label,spec,status,total,created_at) VALUES(?,?,?,?,?,?)", "ssssit", j->id,
                      j->label, j->spec, j->status, (long long)j->total, j->created_at);
}

int eps_jobstore_set_status(eps_jobstore *st, const eps_jobrec *j, eps_error *err)
{
    return exec_bound(st, err, "update job", "UPDATE jobs SET status=?, started_at=?, finished_at=? WHERE id=?",
                      "stts", j->status, j->started_at, j->finished_at, j->id);
}

int eps_jobstore_add_rows(eps_jobstore *st, const char *id, const eps_jobrow *rows, int n, long *added,
                          eps_error *err)
{
    *added = 0;
    if (n <= 0) return 0;
    long d = 0, dn = 0, de = 0;
    int rc = 0;
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *ins = NULL, *upd = NULL;
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_err(st, err, "begin");
        goto out;
    }
    if (sqlite3_prepare_v2(st->db,
                           "INSERT OR IGNORE INTO results(job_id,idx,arch,epsilon,nan_reason,params,macs,hash,error)"
                           " VALUES(?,?,?,?,?,?,?,?,?)",
                           -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->db, "UPDATE jobs SET done=done+?, nan=nan+?, errors=errors+? WHERE id=?", -1, &upd,
                           NULL) != SQLITE_OK) {
        rc = db_err(st, err, "prepare rows");
        goto rollback;
    }
    for (int i = 0; i < n; i++) {
        const eps_jobrow *r = &rows[i];
        sqlite3_reset(ins);
        bind_text(ins, 1, id);
        sqlite3_bind_int64(ins, 2, r->idx);
        bind_text(ins, 3, r->arch);
        bind_text(ins, 4, r->epsilon);
        bind_text(ins, 5, r->nan_reason);
        sqlite3_bind_int64(ins, 6, r->params);
        sqlite3_bind_int64(ins, 7, r->macs);
        bind_text(ins, 8, r->hash);
        bind_text(ins, 9, r->error);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            rc = db_err(st, err, "insert row");
            goto rollback;
        }
        if (sqlite3_changes(st->db) == 1) {
            d++;
            if (r->error) de++;
            else if (r->epsilon && !strcmp(r->epsilon, "nan")) dn++;
        }
    }
    sqlite3_bind_int64(upd, 1, d);
    sqlite3_bind_int64(upd, 2, dn);
    sqlite3_bind_int64(upd, 3, de);
    bind_text(upd, 4, id);
    if (sqlite3_step(upd) != SQLITE_DONE) {
        rc = db_err(st, err, "update counters");
        goto rollback;
    }
    if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_err(st, err, "commit");
        goto rollback;
    }
    *added = d;
    goto out;
rollback:
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_finalize(ins);
    sqlite3_finalize(upd);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

static const char *col_text(sqlite3_stmt *s, int i) { return (const char *)sqlite3_column_text(s, i); }

int eps_jobstore_each_job(eps_jobstore *st, void (*fn)(void *ctx, const eps_jobrec *j), void *ctx, eps_error *err)
{
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *s = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT id,label,spec,status,total,done,nan,errors,created_at,started_at,finished_at"
                           " FROM jobs ORDER BY seq",
                           -1, &s, NULL) != SQLITE_OK) {
        rc = db_err(st, err, "prepare list");
    } else {
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            eps_jobrec j = {0};
            snprintf(j.id, sizeof j.id, "%s", col_text(s, 0) ? col_text(s, 0) : "");
            j.label = (char *)col_text(s, 1);
            j.spec = (char *)col_text(s, 2);
            snprintf(j.status, sizeof j.status, "%s", col_text(s, 3) ? col_text(s, 3) : "");
            j.total = (long)sqlite3_column_int64(s, 4);
            j.done = (long)sqlite3_column_int64(s, 5);
            j.nan = (long)sqlite3_column_int64(s, 6);
            j.errors = (long)sqlite3_column_int64(s, 7);
            j.created_at = sqlite3_column_double(s, 8);
            j.started_at = sqlite3_column_double(s, 9);
            j.finished_at = sqlite3_column_double(s, 10);
            fn(ctx, &j);
        }
        rc = rc == SQLITE_DONE ? 0 : db_err(st, err, "list jobs");
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int eps_jobstore_done_map(eps_jobstore *st, const char *id, unsigned char *have, long total, eps_error *err)
{
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *s = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT idx FROM results WHERE job_id=?", -1, &s, NULL) != SQLITE_OK) {
        rc = db_err(st, err, "prepare done map");
    } else {
        bind_text(s, 1, id);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            long i = (long)sqlite3_column_int64(s, 0);
            if (i >= 0 && i < total) have[i] = 1;
        }
        rc = rc == SQLITE_DONE ? 0 : db_err(st, err, "done map");
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int eps_jobstore_rows(eps_jobstore *st, const char *id, long after, long before, int limit,
                      void (*fn)(void *ctx, const eps_jobrow *r), void *ctx)
{
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *s = NULL;
    int n = 0, rc;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT idx,arch,epsilon,nan_reason,params,macs,hash,error FROM results"
                           " WHERE job_id=? AND idx>? AND idx<? ORDER BY idx LIMIT ?",
                           -1, &s, NULL) != SQLITE_OK) {
        pthread_mutex_unlock(&st->mu);
        return EPS_EIO;
    }
    bind_text(s, 1, id);
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int64(s, 3, before);
    sqlite3_bind_int(s, 4, limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        eps_jobrow r = {(long)sqlite3_column_int64(s, 0), col_text(s, 1), col_text(s, 2), col_text(s, 3),
                        col_text(s, 6), col_text(s, 7), sqlite3_column_int64(s, 4), sqlite3_column_int64(s, 5)};
        fn(ctx, &r);
        n++;
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->mu);
    return rc == SQLITE_DONE ? n : EPS_EIO;
}

int eps_jobstore_delete(eps_jobstore *st, const char *id, eps_error *err)
{
    pthread_mutex_lock(&st->mu);
    int rc = 0;
    sqlite3_stmt *a = NULL, *b = NULL;
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->db, "DELETE FROM results WHERE job_id=?", -1, &a, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->db, "DELETE FROM jobs WHERE id=?", -1, &b, NULL) != SQLITE_OK) {
        rc = db_err(st, err, "delete job");
    } else {
        bind_text(a, 1, id);
        bind_text(b, 1, id);
        if (sqlite3_step(a) != SQLITE_DONE || sqlite3_step(b) != SQLITE_DONE) rc = db_err(st, err, "delete job");
    }
    sqlite3_finalize(a);
    sqlite3_finalize(b);
    sqlite3_exec(st->db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL);
    if (!rc) sqlite3_exec(st->db, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
    pthread_mutex_unlock(&st->mu);
    return rc;
}
