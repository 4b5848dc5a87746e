/* remote.h — scoring through a running epsinas service (one replica or a
 * load balancer in front of many), for `epsinas sweep --server`.
 *
 * One eps_remote is shared by every sweep thread; each thread scores through
 * its own eps_remote_conn (a libcurl handle with its keep-alive connection).
 * Transient failures (429, 502, 503, 504, connection errors, timeouts) are
 * retried with capped exponential backoff up to max_attempts times; any
 * other answer is final. Every answer must carry the same batch_hash and
 * weights as the first one: a fleet whose replicas were started with
 * different batches would otherwise mix incomparable scores. */
#ifndef EPSINAS_REMOTE_H
#define EPSINAS_REMOTE_H

#include <jansson.h>
#include <stdatomic.h>
#include "epsinas/core/error.h"
#include "epsinas/core/score.h"

typedef struct eps_remote eps_remote;
typedef struct eps_remote_conn eps_remote_conn;

typedef struct eps_remote_opts {
    const char *url;       /* base URL, e.g. http://127.0.0.1:8080 (copied) */
    const char *token;     /* bearer token or NULL (copied) */
    int max_attempts;      /* tries per architecture, >= 1 (0 = default 8) */
    long timeout_ms;       /* per HTTP request (0 = default 60000) */
    long backoff_ms;       /* first retry delay, doubled up to 2 s (0 = 50) */
} eps_remote_opts;

typedef struct eps_remote_stats {
    long requests, retries; /* HTTP requests sent; of them, repeats */
} eps_remote_stats;

/* Creates the shared state; the caller owns *out (eps_remote_free). */
int eps_remote_new(const eps_remote_opts *o, eps_remote **out, eps_error *err);
void eps_remote_free(eps_remote *r);
void eps_remote_get_stats(const eps_remote *r, eps_remote_stats *st);

/* A connection for one thread; caller owns it (eps_remote_conn_free). */
int eps_remote_conn_new(eps_remote *r, eps_remote_conn **out, eps_error *err);
void eps_remote_conn_free(eps_remote_conn *c);

/* Scores one request object (borrowed; POSTed as is to /v1/score). Fills
 * out->epsilon (NaN with out->nan_reason when the service says null) and
 * out->weights. *stop is polled between retries: non-zero -> EPS_ECANCELED.
 * Returns 0, EPS_EINVAL (the service rejected the request: its message),
 * EPS_EIO (still failing after max_attempts), EPS_ECANCELED, or
 * EPS_EINTERNAL (an answer with another batch/weights than the first). */
int eps_remote_score(eps_remote_conn *c, const json_t *req, const atomic_int *stop, eps_score *out,
                     eps_error *err);

#endif
