/* util_golden.h — golden-file runner shared by the space test suites. */
#ifndef EPS_TEST_UTIL_GOLDEN_H
#define EPS_TEST_UTIL_GOLDEN_H

#include <jansson.h>
#include "epsinas/engine/engine.h"

typedef struct {
    eps_engine_kind engine;
    int max_batch;                 /* skip cases with a larger batch (0: no limit) */
    const char *only_batch_prefix; /* run only batches starting with this (NULL: all) */
    const char *skip_batch_prefix; /* skip batches starting with this (NULL: none) */
    int every;                     /* run every k-th selected case (ASan) */
} eps_golden_filter;

typedef struct { int checked, failed, skipped, nan, seen; } eps_golden_stats;

/* Runs the goldens of `file` (relative to the repo root) that pass the
 * filter; prints each mismatch; returns the number of failures. Cases whose
 * batch needs ../shared when it is absent are counted in st->skipped. */
int eps_golden_run(const char *file, const eps_golden_filter *f, eps_golden_stats *st);
void eps_golden_free_batches(void);
/* Runs one golden case c (request req) on one engine, checking params,
 * epsilon (cases marked "noise" against their float64 value) and both
 * passes' output min/max/mean. Returns 1 when it matched, -1 when it did
 * not (printed), 0 when its batch needs the absent shared data. */
int eps_golden_case(const json_t *c, json_t *req, eps_engine_kind engine, const char *label);
/* Runs every stride-th case of `file` (at least min_cases in it) through
 * eps_golden_case with the request request_of(case) returns (a new
 * reference, released here); reports skipped cases and fails the test on
 * any mismatch or when none ran. */
void eps_golden_run_requests(const char *file, size_t min_cases, size_t stride, eps_engine_kind engine,
                             json_t *(*request_of)(const json_t *c));

/* A golden test on both engines: fn reads its engine from *state, which
 * these two cmocka entries set (named fn_fast and fn_dense). */
extern const eps_engine_kind eps_golden_engines[2]; /* fast, dense */
#define EPS_GOLDEN_TESTS(fn)                                                                    \
    {#fn "_fast", fn, NULL, NULL, (void *)&eps_golden_engines[0]},                              \
    {#fn "_dense", fn, NULL, NULL, (void *)&eps_golden_engines[1]}

#endif
