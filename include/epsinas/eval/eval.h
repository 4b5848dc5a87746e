/* eval.h — how good is a zero-cost score: rank statistics (as scipy),
 * the paper's evaluation table (spec §6), the paper's selection experiment
 * (Table 3) and search with a look-up "training" (random search and ageing
 * evolution with an epsinas warm-up).
 *
 * NaN convention: statistics that are undefined (fewer than 2 rows, a
 * constant column, an empty set) are NaN, as scipy returns them.
 * All functions are deterministic; randomness comes from eps_eval_rng
 * (splitmix64, Steele et al. 2014) seeded by the caller. */
#ifndef EPSINAS_EVAL_H
#define EPSINAS_EVAL_H

#include <stdint.h>
#include "epsinas/core/error.h"

#define EPS_EVAL_MAX_ROWS 20000000L

/* ---- statistics ------------------------------------------------------- */

/* numpy.percentile(x, q) with the default 'linear' method, for x sorted
 * ascending, n >= 1, no NaN; reproduces numpy's index and lerp arithmetic
 * bit for bit so that "x > p90" splits ties exactly as numpy does.
 * NaN when n < 1. */
double eps_eval_percentile_sorted(const double *sorted, long n, double q);
/* Same on unsorted data (copies and sorts; NaN entries are an error). */
int eps_eval_percentile(const double *x, long n, double q, double *out, eps_error *err);

/* 1-based ranks, ties get the average rank (scipy.stats.rankdata 'average'). */
int eps_eval_rank(const double *x, long n, double *ranks, eps_error *err);

/* scipy.stats.spearmanr(x, y).statistic: Pearson correlation of the average
 * ranks. NaN for n < 2 or a constant input. x, y must not hold NaN. */
int eps_eval_spearman(const double *x, const double *y, long n, double *rho, eps_error *err);

/* scipy.stats.kendalltau(x, y) (variant 'b'): tau-b by Knight's
 * O(n log n) algorithm (sort by (x, y), count discordant pairs as merge-sort
 * inversions of y, tie corrections from run lengths), clipped to [-1, 1].
 * NaN for n < 2 or when x or y is constant. */
int eps_eval_kendall(const double *x, const double *y, long n, double *tau, eps_error *err);

/* Whole-data Spearman with NaN scores ranked last (the convention of NAS
 * libraries such as NASLib, which score every architecture): rows whose
 * target is NaN are left out; a NaN score counts as lower than every number,
 * so all NaN-score rows tie for the lowest ranks (average rank). *used =
 * rows kept. Same NaN rules as eps_eval_spearman. */
int eps_eval_spearman_nan_last(const double *score, const double *target, long n, double *rho, long *used,
                               eps_error *err);

/* Pearson correlation (NaN for n < 2 or zero variance). */
double eps_eval_pearson(const double *x, const double *y, long n);

/* ---- the paper's table (spec §6) -------------------------------------- */

typedef struct eps_eval_table {
    long n_in;          /* rows given */
    long n;             /* rows used: score and target both non-NaN */
    long n_nan_score;   /* rows dropped because the score is NaN */
    long n_nan_target;  /* rows dropped because the target is NaN (score non-NaN) */
    int minimize;       /* the target is a loss: lower is better */
    double rho, tau;    /* against the raw target (negative for a loss) */
    long n_top;         /* rows whose target is in its best 10% */
    double rho_top, tau_top;  /* rho, tau on those rows, raw target */
    double target_p90;  /* threshold of the best 10% in "better" units (see below) */
    double target_p95;
    double score_p90;
    long n_score_top;   /* rows with score > score_p90 */
    long n_both_top;    /* ... whose target is also in its best 10% */
    double top10_top10; /* n_both_top / n_score_top * 100 (NaN if n_score_top = 0) */
    long top64_k;       /* min(64, n) highest-scored rows */
    long top64_top5;    /* ... whose target is in its best 5% */
    double rho_nan_last; /* eps_eval_spearman_nan_last over every row with a target */
    long n_nan_last;     /* ... rows it used (NaN scores included) */
} eps_eval_table;

/* Computes the table. With minimize, "better" = -target: the best 10% are
 * the rows with -target > percentile(-target, 90) (the lowest losses), and
 * so for the top-5%; rho/tau (global and top-10%) are still reported
 * against the raw target, as the paper reports them for NLP (negative).
 * target_p90/p95 are in "better" units (negated for a loss).
 * The 64 highest-scored rows: score descending, ties in input order
 * (numpy.argsort(-score, kind='stable')). */
int eps_eval_table_compute(const double *score, const double *target, long n, int minimize,
                           eps_eval_table *out, eps_error *err);

/* ---- randomness ------------------------------------------------------- */

typedef struct eps_eval_rng { uint64_t state; } eps_eval_rng;

/* splitmix64: state += 0x9E3779B97F4A7C15, then the two xor-shift-multiply
 * rounds (constants 0xBF58476D1CE4E5B9, 0x94D049BB133111EB). */
uint64_t eps_eval_rng_next(eps_eval_rng *r);
/* Uniform integer in [0, bound) for bound >= 1, by rejection of the
 * biased tail (threshold = 2^64 mod bound), then value % bound. */
uint64_t eps_eval_rng_below(eps_eval_rng *r, uint64_t bound);
/* The generator of run `run` of an experiment seeded with seed: the state is
 * splitmix64's output for (seed, run) so runs are independent streams. */
eps_eval_rng eps_eval_rng_for(uint64_t seed, uint64_t run);

/* ---- selection (paper Table 3) ---------------------------------------- */

typedef struct eps_eval_select {
    long pool;          /* rows drawn from (target non-NaN) */
    int sample, runs;
    double chosen_mean, chosen_std;   /* target of the best-scored of the sample */
    double optimum_mean, optimum_std; /* best target in the sample */
    double random_mean, random_std;   /* target of a uniformly random member */
    double rank_mean, rank_std;       /* 1-based rank of the chosen one by target within its sample */
    long chosen_is_optimum;           /* runs where the chosen one is (one of) the best */
} eps_eval_select;

/* runs times: draw `sample` distinct rows (partial Fisher-Yates over the pool
 * with eps_eval_rng_for(seed, run)); the chosen one has the highest score
 * (NaN = lowest; ties: the earliest drawn); the random pick is the first
 * drawn (uniform over the pool); rank 1 = best target, ties share the best
 * rank (1 + number of strictly better). std is the population std (ddof 0,
 * numpy.std). Rows with NaN target are left out of the pool. */
int eps_eval_select_run(const double *score, const double *target, long n, int sample, int runs,
                        uint64_t seed, int minimize, eps_eval_select *out, eps_error *err);

/* ---- search with look-up training (NAS-Bench-201 cells) --------------- */

typedef enum { EPS_SEARCH_RANDOM = 0, EPS_SEARCH_EVOLUTION = 1 } eps_search_algo;

/* Scores architecture i of the pool (lazily, e.g. by running the engine).
 * Returns 0 and *score (NaN allowed) or a negative EPS_E* code. */
typedef int (*eps_search_score_fn)(void *ctx, long i, double *score, eps_error *err);

typedef struct eps_search_pool {
    long n;                 /* architectures that can be "trained" */
    const int *code;        /* NB201 code per architecture: sum op[e] * 5^e */
    const double *target;   /* truth per architecture, non-NaN */
    int minimize;
    eps_search_score_fn score;
    void *score_ctx;
} eps_search_pool;

typedef struct eps_search_opts {
    eps_search_algo algo;
    long warmup;            /* 0: no warm-up */
    long budget;            /* look-ups ("trainings") per run */
    int runs;
    uint64_t seed;
    int population;         /* evolution: 64 */
    int tournament;         /* evolution: 10 */
} eps_search_opts;

/* Runs the search opts->runs times; curve (runs x budget, caller-allocated)
 * receives the best target seen after each look-up (raw units).
 * Random search: the warm-up draws min(warmup, n) distinct architectures,
 * they are looked up best-scored first (NaN last, ties in draw order), then
 * unseen ones in random order; once the pool is exhausted the curve stays
 * flat. Evolution: the initial population is the top `population` of the
 * warm-up by score (without warm-up: distinct random architectures); each
 * cycle samples `tournament` members with replacement, the best-target one
 * is the parent; the child changes one uniformly chosen edge to one of the
 * 4 other ops. A child outside the pool cannot be trained, so the mutation
 * is re-drawn: equivalently, the child is uniform over the parent's
 * neighbours that are in the pool; with none, a uniformly random pool
 * architecture. The oldest member dies. */
int eps_search_run(const eps_search_pool *pool, const eps_search_opts *opts, double *curve,
                   eps_error *err);

/* Sets mark[i] = 1 (mark: pool->n bytes, caller-zeroed) for every
 * architecture that some run's warm-up draws. The draws depend only on
 * (seed, run), not on scores, so a caller can score exactly these (in
 * parallel) before eps_search_run asks for them. Returns how many are
 * marked, or a negative EPS_E* code. */
long eps_search_warmup_marks(long n, const eps_search_opts *opts, unsigned char *mark, eps_error *err);

#endif
