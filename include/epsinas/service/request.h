/* request.h — one score request object -> what to compute (src/service/
 * eps_request.c): the checks /v1/score (eps_http.c) and every job item
 * (eps_jobs.c) share, so both answer the same request with the same error. */
#ifndef EPSINAS_SERVICE_REQUEST_H
#define EPSINAS_SERVICE_REQUEST_H

#include <jansson.h>

#include "epsinas/core/batch.h"
#include "epsinas/core/error.h"
#include "epsinas/engine/engine.h"
#include "epsinas/spaces/space.h"

typedef struct eps_score_req {
    eps_arch arch;             /* the caller's on success (eps_arch_free) */
    const eps_named_batch *nb; /* borrowed from the batches given */
    int batch_size;
    eps_image_shape shape;     /* the network's input: nb is drawn at it (eps_batch_at; nb201 imagenet16-120: 3x16x16) */
    char batch_hash[17];       /* nb's content hash at batch_size and shape (part of the cache key) */
    double w[2];               /* the request's, else the space's defaults */
    eps_engine_kind engine;
} eps_score_req;

/* Validates score request o, in this order: a JSON object; 'engine'; 'weights'
 * (two numbers eps_weights_check accepts); the architecture (the space's
 * parser); 'batch' by name (without one: eps_named_batch_pick of the space's
 * default for the arch's dataset); 'batch_size' (an integer, integral reals
 * included as JSON Schema's integer, in 1..the batch's size); the batch's
 * kind for the space; the pass's memory estimate against max_memory (0 = no
 * limit); the batch's hash at that size and the network's input shape (a
 * file batch of another shape: EPS_EINVAL naming batch and both shapes); a
 * 'dataset' for a space without datasets (a job's shared field) is refused. Fills *r. On error err names the
 * field ("arch" when the space names none; line/column for JSON text) and
 * the code gives the HTTP status (eps_score_req_status). The request's
 * other fields ('id', unknown ones) are the caller's to check. */
int eps_score_req_prepare(const json_t *o, const eps_named_batch *batches, int n_batches, long long max_memory,
                          eps_score_req *r, eps_error *err);
/* 400 for EPS_EINVAL, 413 for EPS_ELIMIT, else 500. */
int eps_score_req_status(int code);
/* The cached value of a computed score: q's architecture (all its
 * encodings), sc's epsilon or NaN reason, and what it was computed with,
 * as one compact JSON object with exact reals (json_exact.h). /v1/score
 * and job items write it alike, so a hit on either's result answers the
 * same bytes. malloc'd text (caller frees), NULL on allocation failure. */
char *eps_score_result_json(const eps_score_req *q, const eps_score *sc);

/* Computes q, as /v1/score and job items both do: its batch drawn at its
 * size and shape (eps_batch_at), both passes (stopping early once epsilon
 * is known), counted in epsinas_computations_total. *json: the result as
 * eps_score_result_json writes it (caller frees; NULL on error); *compute_s
 * (may be NULL): the seconds in the engine. cancel: the queue job's flag,
 * or NULL. Returns 0 or a negative EPS_E* code with err set. */
int eps_score_req_compute(const eps_score_req *q, const atomic_int *cancel, char **json, double *compute_s,
                          eps_error *err);

#endif
