/* search.h — running the searches of eval.h and the weight-pair scan on
 * NAS-Bench-201 cells through the library (src/eval/eps_search.c): a small
 * thread pool, the look-up table of trainable cells scored on demand, the
 * curves' summaries and their CSV, and one architecture's epsilon for every
 * weight pair from one pass per weight. */
#ifndef EPSINAS_EVAL_SEARCH_H
#define EPSINAS_EVAL_SEARCH_H

#include <stdint.h>

#include "epsinas/core/batch.h"
#include "epsinas/core/error.h"
#include "epsinas/eval/eval.h"
#include "epsinas/eval/table.h"
#include "epsinas/spaces/nb201.h"

/* ---- a parallel for ----------------------------------------------------- */

/* One item of parallel work: returns 0 or a negative EPS_E* code. */
typedef int (*eps_work_fn)(void *ctx, long i, eps_error *err);
/* Runs fn(ctx, i) for i in 0..n-1 on `threads` threads (1..64, the caller's
 * included); after the first failure no new item starts and its error is
 * returned. With n >= 1000, progress ("WHAT: done / n (s)") every 500 items
 * on stderr. Each worker releases the fast engine's plane cache on exit. */
int eps_search_parallel(eps_work_fn fn, void *ctx, long n, int threads, const char *what, eps_error *err);

/* ---- the NB201 cells a search can "train" --------------------------------- */

/* Index of a cell: sum op[e] * 5^e (eps_nb201_from_index's inverse). */
int eps_search_nb201_code(const eps_nb201_cell *c);

typedef struct eps_search_cells {
    long n;
    int *code;
    double *target;
    double *score;
    unsigned char *have;    /* score[i] is known */
    const eps_batch *batch; /* to score on demand; NULL with --scores */
    long *todo;             /* pool indices to score up front */
} eps_search_cells;

/* Fills c (arrays the caller's, freed with eps_search_cells_free) with the
 * distinct cells of truth table tt (column tk: the arch string, tc: the
 * target) whose target is a number; *nan_target and *dups count the rows
 * left out. EPS_EINVAL names file:line:column of a bad cell or number. */
int eps_search_cells_from_truth(const eps_table *tt, int tk, int tc, eps_search_cells *c, long *nan_target,
                                long *dups, eps_error *err);
/* Takes the scores of table st (sk: arch, sc: score) for c's cells; a cell
 * without a row keeps NaN (ranked lowest) and is counted in *unscored.
 * EPS_EINVAL on a bad row, or when no cell has a row (naming truth_name). */
int eps_search_cells_set_scores(eps_search_cells *c, const eps_table *st, int sk, int sc, const char *truth_name,
                                long *unscored, eps_error *err);
/* eps_search_score_fn over c: the known score, else epsilon of cell i on
 * c->batch (fast engine, the space's default weights). */
int eps_search_cells_score(void *ctx, long i, double *score, eps_error *err);
/* eps_work_fn over c: scores cell c->todo[k]. */
int eps_search_cells_score_todo(void *ctx, long k, eps_error *err);
void eps_search_cells_free(eps_search_cells *c);

/* ---- curves -------------------------------------------------------------- */

typedef struct eps_search_curve {
    char label[64];
    eps_search_algo algo;
    long warmup;
    double *curve;                  /* runs x budget */
    double *med, *q25, *q75, *mean; /* budget each */
} eps_search_curve;

/* med, q25, q75 and mean over runs at every step; tmp holds runs doubles. */
void eps_search_curve_summary(eps_search_curve *c, int runs, long budget, double *tmp);
/* Writes every step of n curves as CSV: algo,warmup,step,median,q25,q75,mean
 * (17 significant digits). 0 or EPS_EIO naming path. */
int eps_search_curves_write(const char *path, const eps_search_curve *c, int n, long budget, eps_error *err);

/* ---- the weight-pair scan (search-weights) ------------------------------- */

#define EPS_WSCAN_MAX_EXP 32

typedef struct eps_wscan {
    long n;
    int *code;
    const eps_batch *batch;
    int nexp;
    double w[EPS_WSCAN_MAX_EXP]; /* candidate weights 10^k */
    int npairs;
    int pa[EPS_WSCAN_MAX_EXP * EPS_WSCAN_MAX_EXP], pb[EPS_WSCAN_MAX_EXP * EPS_WSCAN_MAX_EXP];
    double *eps;                 /* npairs x n */
} eps_wscan;

/* eps_work_fn over an eps_wscan: architecture i, one forward pass per
 * candidate weight, then epsilon for every pair from the cached outputs
 * (what eps_arch_score computes per pair, with nexp instead of 2 x npairs
 * passes) into eps[p * n + i]. */
int eps_wscan_one(void *ctx, long i, eps_error *err);

#endif
