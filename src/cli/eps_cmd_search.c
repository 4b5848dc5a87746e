/* eps_cmd_search.c — `epsinas search` (random search and ageing evolution
 * with an epsinas warm-up over a look-up table) and `search-weights` (which
 * constant pair (w1, w2) to use): their options, help and output. The
 * searches are src/eval/eps_eval.c, the look-up table, the thread pool and
 * the weight scan eps_search.c, the plot eps_plot.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "eps_cli_common.h"
#include "epsinas/core/batch.h"
#include "epsinas/core/util.h"
#include "epsinas/eval/eval.h"
#include "epsinas/eval/join.h"
#include "epsinas/eval/plot.h"
#include "epsinas/eval/search.h"
#include "epsinas/eval/table.h"
#include "epsinas/spaces/nb201.h"

static int load_batch(const char *cmd, const char *spec, const char *size_s, eps_batch *b)
{
    long bs = 0;
    int rc;
    if ((rc = eps_cli_parse_long(cmd, "--batch-size", size_s, 1, EPS_BATCH_MAX, &bs)) != 0) return rc;
    eps_error e = {0};
    if (eps_batch_load(spec, (int)bs, b, &e) < 0) return eps_cli_report_err(cmd, &e);
    if (b->kind != EPS_BATCH_IMAGES) {
        eps_batch_free(b);
        return eps_cli_report(cmd, EPS_EINVAL, "--batch '%.60s' is a token batch; NAS-Bench-201 needs images", spec);
    }
    return -1;
}

/* ---- epsinas search ------------------------------------------------------ */

static void search_help(FILE *f)
{
    fprintf(f,
            "usage: epsinas search --space nb201 --truth T.csv [--algo random|evolution|random,evolution]\n"
            "                      [--warmup 3000] [--budget 300] [--runs 100] [--seed 1]\n"
            "                      [--scores S.csv] [--out CURVES.csv] [--plot FILE.svg]\n\n"
            "Architecture search where 'training' = looking the architecture up in the truth\n"
            "table; only the table's architectures can be trained, so the search space is\n"
            "restricted to them. The curve is the best target found after each look-up;\n"
            "printed: median and quartiles over runs at steps 10, 20, 50, 100, ... budget.\n\n"
            "warm-up (the paper's): score --warmup random architectures with epsinas (free),\n"
            "  random search: look them up best-scored first, then unseen random ones;\n"
            "  evolution: the initial population is the top --population of them by score.\n"
            "  --warmup 0 gives the plain algorithms. A list (0,3000) runs each.\n"
            "ageing (regularised) evolution: population 64, tournament 10 drawn with\n"
            "  replacement, the best is the parent, the child changes one of the 6 edges to\n"
            "  a different op; a child outside the truth table cannot be trained, so the\n"
            "  mutation is re-drawn (= uniform over the parent's neighbours in the table;\n"
            "  none: a random table architecture). The oldest member dies.\n\n"
            "options:\n"
            "  --space nb201             the only space with a cell mutation (default nb201)\n"
            "  --truth FILE              truth CSV (columns arch and the target)\n"
            "  --target COLUMN           default: the first numeric column after arch\n"
            "  --minimize                lower target is better\n"
            "  --truth-arch-column NAME  default arch\n"
            "  --scores FILE             epsinas scores (sweep CSV: arch, epsilon; an architecture\n"
            "                            without a row counts as NaN = lowest). Without it the\n"
            "                            warm-up candidates are scored here (ramp batch, fast\n"
            "                            engine, the space's weights; see --batch, --batch-size)\n"
            "  --scores-arch-column NAME, --score-column NAME   as in eval\n"
            "  --algo LIST               random, evolution or both (default random,evolution)\n"
            "  --warmup LIST             warm-up sizes (default 3000; 0 = none)\n"
            "  --budget N                look-ups per run (default 300)\n"
            "  --runs R                  runs per curve (default 100); run r uses seed (K, r)\n"
            "  --seed K                  default 1\n"
            "  --population P            default 64\n"
            "  --tournament T            default 10\n"
            "  --batch SPEC              default ramp; --batch-size N default 256\n"
            "  --threads N               scoring threads (default 0 = all CPUs)\n"
            "  --out FILE.csv            every step: algo,warmup,step,median,q25,q75,mean\n"
            "  --plot FILE.svg           best-so-far curves with quartile bands\n");
}

static int split_list(const char *cmd, const char *flag, const char *s, char items[][32], int max)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == 0 || l >= 32 || n >= max) {
            eps_cli_report(cmd, EPS_EINVAL, "%s: bad list '%.60s' (comma-separated, at most %d items)", flag, s, max);
            return -1;
        }
        memcpy(items[n], p, l);
        items[n][l] = 0;
        n++;
        p = c ? c + 1 : p + l;
    }
    if (n == 0) {
        eps_cli_report(cmd, EPS_EINVAL, "%s: empty list", flag);
        return -1;
    }
    return n;
}

/* The parsed options of `search`; the curves, one per (algo, warm-up). */
typedef struct {
    const char *space, *truth, *target, *truth_col, *scores, *scores_col, *score_col, *algo_s, *warm_s;
    const char *budget_s, *runs_s, *seed_s, *pop_s, *tour_s, *batch_s, *bsize_s, *threads_s, *out_s, *plot_s;
    int minimize;
    long budget, runs, pop, tour, threads;
    uint64_t seed;
    eps_search_curve cfg[32];
    int ncfg;
} search_args;

/* The numeric options and the configurations; -1 when valid, else the exit
 * code (printed). */
static int search_check(const char *cmd, search_args *A)
{
    int rc;
    if (strcmp(A->space, "nb201"))
        return eps_cli_report(cmd, EPS_EINVAL, "--space '%.40s' is not supported (only nb201 has a cell mutation)",
                              A->space);
    if (!A->truth) return eps_cli_report(cmd, EPS_EINVAL, "missing --truth FILE (the look-up table, e.g. dev_accuracy.csv)");
    if ((rc = eps_cli_parse_long(cmd, "--budget", A->budget_s, 1, 1000000, &A->budget)) != 0) return rc;
    if ((rc = eps_cli_parse_long(cmd, "--runs", A->runs_s, 1, 100000, &A->runs)) != 0) return rc;
    if ((rc = eps_cli_parse_long(cmd, "--population", A->pop_s, 1, 100000, &A->pop)) != 0) return rc;
    if ((rc = eps_cli_parse_long(cmd, "--tournament", A->tour_s, 1, 100000, &A->tour)) != 0) return rc;
    if ((rc = eps_cli_parse_long(cmd, "--threads", A->threads_s, 0, 64, &A->threads)) != 0) return rc;
    if (A->threads == 0) A->threads = eps_cpu_count(64);
    if ((rc = eps_cli_parse_u64(cmd, "--seed", A->seed_s, &A->seed)) != 0) return rc;
    char algos[4][32], warms[8][32];
    int na = split_list(cmd, "--algo", A->algo_s, algos, 4);
    if (na < 0) return 2;
    int nw = split_list(cmd, "--warmup", A->warm_s, warms, 8);
    if (nw < 0) return 2;
    /* Every curve value is kept (runs x budget doubles per configuration). */
    if ((double)A->budget * (double)A->runs * na * nw > 2e7)
        return eps_cli_report(cmd, EPS_ELIMIT,
                              "--budget x --runs x configurations = %.0f curve points is over the limit of 2e7",
                              (double)A->budget * (double)A->runs * na * nw);
    for (int a = 0; a < na; a++) {
        eps_search_algo al;
        if (!strcmp(algos[a], "random")) al = EPS_SEARCH_RANDOM;
        else if (!strcmp(algos[a], "evolution") || !strcmp(algos[a], "rea")) al = EPS_SEARCH_EVOLUTION;
        else return eps_cli_report(cmd, EPS_EINVAL, "--algo: unknown algorithm '%s' (random or evolution)", algos[a]);
        for (int w = 0; w < nw; w++) {
            long wv = 0;
            if ((rc = eps_cli_parse_long(cmd, "--warmup", warms[w], 0, 1000000, &wv)) != 0) return rc;
            eps_search_curve *c = &A->cfg[A->ncfg++];
            c->algo = al;
            c->warmup = wv;
            snprintf(c->label, sizeof c->label, "%s, %s", al == EPS_SEARCH_RANDOM ? "random" : "evolution",
                     wv ? "" : "no warm-up");
            if (wv) snprintf(c->label, sizeof c->label, "%s, warm-up %ld", al == EPS_SEARCH_RANDOM ? "random" : "evolution",
                             wv);
        }
    }
    return -1;
}

static eps_search_opts search_opts(const search_args *A, const eps_search_curve *c)
{
    eps_search_opts so = {c->algo, c->warmup, A->budget, (int)A->runs, A->seed, (int)A->pop, (int)A->tour};
    return so;
}

/* Without --scores: scores exactly the warm-up candidates (they depend only
 * on the seed), in parallel, before the searches ask for them. -1 when done,
 * else the exit code (printed). *batch is the caller's when *have_batch. */
static int search_prescore(const char *cmd, const search_args *A, eps_search_cells *pool, eps_batch *batch,
                           int *have_batch)
{
    eps_error e = {0};
    unsigned char *mark = calloc((size_t)pool->n, 1);
    pool->todo = malloc((size_t)pool->n * sizeof *pool->todo);
    if (!mark || !pool->todo) {
        free(mark);
        return eps_cli_report(cmd, EPS_ENOMEM, "out of memory");
    }
    for (int c = 0; c < A->ncfg; c++) {
        eps_search_opts so = search_opts(A, &A->cfg[c]);
        if (eps_search_warmup_marks(pool->n, &so, mark, &e) < 0) {
            free(mark);
            return eps_cli_report_err(cmd, &e);
        }
    }
    long ntodo = 0;
    for (long i = 0; i < pool->n; i++)
        if (mark[i]) pool->todo[ntodo++] = i;
    free(mark);
    if (!ntodo) return -1;
    int rc;
    if ((rc = load_batch(cmd, A->batch_s, A->bsize_s, batch)) >= 0) return rc;
    *have_batch = 1;
    pool->batch = batch;
    double t0 = eps_now_s();
    if (eps_search_parallel(eps_search_cells_score_todo, pool, ntodo, (int)A->threads, "scoring", &e) < 0)
        return eps_cli_report_err(cmd, &e);
    fprintf(stderr, "scored %ld warm-up candidates in %.1f s (%s batch of %d, fast engine, %ld threads)\n", ntodo,
            eps_now_s() - t0, A->batch_s, batch->n, A->threads);
    return -1;
}

/* The look-up table from --truth, scored from --scores or by the engine.
 * -1 when loaded, else the exit code (printed). */
static int search_load(const char *cmd, const search_args *A, eps_table *tt, eps_table *st, int *tc,
                       eps_search_cells *pool, eps_batch *batch, int *have_batch)
{
    eps_error e = {0};
    int rc, tk;
    if (eps_table_read(A->truth, tt, &e) < 0) return eps_cli_report_err(cmd, &e);
    if (tt->nrows == 0) return eps_cli_report(cmd, EPS_EINVAL, "%s: header only, no rows", tt->name);
    if (eps_join_need_col(tt, A->truth_col, "--truth-arch-column NAME", &tk, &e) < 0 ||
        eps_join_pick_target(tt, A->target, tk, tc, &e) < 0)
        return eps_cli_report_err(cmd, &e);
    long nan_target = 0, dups = 0, unscored = 0;
    if (eps_search_cells_from_truth(tt, tk, *tc, pool, &nan_target, &dups, &e) < 0) return eps_cli_report_err(cmd, &e);
    if (A->scores) {
        int sk, sc;
        if (eps_table_read(A->scores, st, &e) < 0) return eps_cli_report_err(cmd, &e);
        if (eps_join_need_col(st, A->scores_col, "--scores-arch-column NAME", &sk, &e) < 0 ||
            eps_join_need_col(st, A->score_col, "--score-column NAME", &sc, &e) < 0 ||
            eps_search_cells_set_scores(pool, st, sk, sc, tt->name, &unscored, &e) < 0)
            return eps_cli_report_err(cmd, &e);
    } else if ((rc = search_prescore(cmd, A, pool, batch, have_batch)) >= 0) {
        return rc;
    }
    long nan_scores = 0;
    for (long i = 0; i < pool->n; i++) nan_scores += pool->have[i] && isnan(pool->score[i]);
    printf("search space: %ld architectures of %s with a numeric %s (%ld NaN-target rows and %ld repeats "
           "skipped); %ld NaN scores%s",
           pool->n, tt->name, tt->header[*tc], nan_target, dups, nan_scores, unscored ? " (" : "\n");
    if (unscored) printf("%ld without a row in %s, ranked lowest)\n", unscored, A->scores);
    printf("budget %ld look-ups, %ld runs, seed %llu, %s is better\n\n", A->budget, A->runs,
           (unsigned long long)A->seed, A->minimize ? "lower" : "higher");
    return -1;
}

/* Runs every configuration and summarises its curve. -1 or the exit code. */
static int search_curves(const char *cmd, search_args *A, eps_search_cells *pool)
{
    eps_error e = {0};
    double *tmp = malloc((size_t)A->runs * sizeof *tmp);
    if (!tmp) return eps_cli_report(cmd, EPS_ENOMEM, "out of memory");
    eps_search_pool sp = {pool->n, pool->code, pool->target, A->minimize, eps_search_cells_score, pool};
    int rc = -1;
    for (int c = 0; c < A->ncfg && rc < 0; c++) {
        eps_search_curve *cv = &A->cfg[c];
        cv->curve = malloc((size_t)A->runs * (size_t)A->budget * sizeof(double));
        cv->med = malloc((size_t)A->budget * sizeof(double));
        cv->q25 = malloc((size_t)A->budget * sizeof(double));
        cv->q75 = malloc((size_t)A->budget * sizeof(double));
        cv->mean = malloc((size_t)A->budget * sizeof(double));
        if (!cv->curve || !cv->med || !cv->q25 || !cv->q75 || !cv->mean) {
            rc = eps_cli_report(cmd, EPS_ENOMEM, "out of memory for %ld x %ld curve values", A->runs, A->budget);
            break;
        }
        eps_search_opts so = search_opts(A, cv);
        if (eps_search_run(&sp, &so, cv->curve, &e) < 0) {
            rc = eps_cli_report_err(cmd, &e);
            break;
        }
        eps_search_curve_summary(cv, (int)A->runs, A->budget, tmp);
    }
    free(tmp);
    return rc;
}

/* Median [q25, q75] at steps 10, 20, 50, 100, ... and the budget. */
static void search_print(const search_args *A, const char *target)
{
    long steps[64];
    int nsteps = 0;
    for (long dec = 10; dec <= A->budget && nsteps < 60; dec *= 10) {
        static const int mult[3] = {1, 2, 5};
        for (int k = 0; k < 3; k++)
            if (dec * mult[k] <= A->budget) steps[nsteps++] = dec * mult[k];
    }
    if (nsteps == 0 || steps[nsteps - 1] != A->budget) steps[nsteps++] = A->budget;
    printf("best %s so far: median [25%%, 75%%] over runs\n", target);
    printf("%7s", "step");
    for (int c = 0; c < A->ncfg; c++) printf("  %-28s", A->cfg[c].label);
    printf("\n");
    for (int k = 0; k < nsteps; k++) {
        printf("%7ld", steps[k]);
        for (int c = 0; c < A->ncfg; c++) {
            char cell[64];
            long s = steps[k] - 1;
            snprintf(cell, sizeof cell, "%.3f [%.3f, %.3f]", A->cfg[c].med[s], A->cfg[c].q25[s], A->cfg[c].q75[s]);
            printf("  %-28s", cell);
        }
        printf("\n");
    }
}

/* --out and --plot. -1 or the exit code. */
static int search_write(const char *cmd, const search_args *A, const char *target)
{
    eps_error e = {0};
    if (A->out_s && eps_search_curves_write(A->out_s, A->cfg, A->ncfg, A->budget, &e) < 0)
        return eps_cli_report_err(cmd, &e);
    if (A->plot_s) {
        eps_plot_band bands[32];
        for (int c = 0; c < A->ncfg; c++)
            bands[c] = (eps_plot_band){A->cfg[c].label, A->cfg[c].med, A->cfg[c].q25, A->cfg[c].q75};
        if (eps_plot_curves(A->plot_s, bands, A->ncfg, A->budget, (int)A->runs, target, A->minimize, &e) < 0)
            return eps_cli_report_err(cmd, &e);
    }
    return -1;
}

int eps_cmd_search(int argc, char **argv)
{
    const char *cmd = "search";
    search_args A = {.space = "nb201", .truth_col = "arch", .scores_col = "arch", .score_col = "epsilon",
                     .algo_s = "random,evolution", .warm_s = "3000", .budget_s = "300", .runs_s = "100",
                     .seed_s = "1", .pop_s = "64", .tour_s = "10", .batch_s = "ramp", .bsize_s = "256",
                     .threads_s = "0"};
    const eps_cli_opt specs[] = {{"--space", 1, &A.space, NULL},         {"--truth", 1, &A.truth, NULL},
                                 {"--target", 1, &A.target, NULL},       {"--minimize", 0, NULL, &A.minimize},
                                 {"--truth-arch-column", 1, &A.truth_col, NULL},
                                 {"--scores", 1, &A.scores, NULL},       {"--scores-arch-column", 1, &A.scores_col, NULL},
                                 {"--score-column", 1, &A.score_col, NULL},
                                 {"--algo", 1, &A.algo_s, NULL},         {"--warmup", 1, &A.warm_s, NULL},
                                 {"--budget", 1, &A.budget_s, NULL},     {"--runs", 1, &A.runs_s, NULL},
                                 {"--seed", 1, &A.seed_s, NULL},         {"--population", 1, &A.pop_s, NULL},
                                 {"--tournament", 1, &A.tour_s, NULL},   {"--batch", 1, &A.batch_s, NULL},
                                 {"--batch-size", 1, &A.bsize_s, NULL},  {"--threads", 1, &A.threads_s, NULL},
                                 {"--out", 1, &A.out_s, NULL},           {"--plot", 1, &A.plot_s, NULL},
                                 {NULL, 0, NULL, NULL}};
    int rc = eps_cli_parse_opts(cmd, argc, argv, specs, search_help, NULL);
    if (rc >= 0) return rc;
    if ((rc = search_check(cmd, &A)) >= 0) return rc;
    eps_table tt = {0}, st = {0};
    eps_search_cells pool = {0};
    eps_batch batch = {0};
    int have_batch = 0, tc = 0;
    if ((rc = search_load(cmd, &A, &tt, &st, &tc, &pool, &batch, &have_batch)) < 0 &&
        (rc = search_curves(cmd, &A, &pool)) < 0) {
        search_print(&A, tt.header[tc]);
        rc = search_write(cmd, &A, tt.header[tc]);
    }
    for (int c = 0; c < A.ncfg; c++) {
        free(A.cfg[c].curve);
        free(A.cfg[c].med);
        free(A.cfg[c].q25);
        free(A.cfg[c].q75);
        free(A.cfg[c].mean);
    }
    if (have_batch) eps_batch_free(&batch);
    eps_search_cells_free(&pool);
    eps_table_free(&tt);
    eps_table_free(&st);
    return rc < 0 ? 0 : rc;
}

/* ---- epsinas search-weights ----------------------------------------------- */

static void sw_help(FILE *f)
{
    fprintf(f,
            "usage: epsinas search-weights --space nb201 [--archs FILE] [--truth T.csv] [--sample 200]\n"
            "                              [--window -8:1] [--batch ramp] [--batch-size 256]\n"
            "                              [--seed 1] [--threads N] [--json]\n\n"
            "Which constant pair (w1, w2) to use: for every pair (10^a, 10^b), a < b, with integer\n"
            "exponents in the window, scores a sample of architectures and reports the fraction\n"
            "of NaN scores and, with a truth table, Spearman rho (over the non-NaN rows).\n"
            "The paper's rule picks the first pair with under 10%% NaN, pairs taken in order of\n"
            "increasing a, then increasing b: (1e-8,1e-7), (1e-8,1e-6), ..., (1e-7,1e-6), ...\n"
            "Also printed: the pair with the best rho.\n"
            "Each architecture is run once per weight (fast engine); epsilon of each pair is\n"
            "computed from those outputs exactly as 'epsinas score --weights' would.\n\n"
            "options:\n"
            "  --space nb201             the space (nb201 only)\n"
            "  --archs FILE              architectures, one per line (or a CSV with an arch column)\n"
            "  --truth FILE              truth CSV (arch + target); without --archs the sample is\n"
            "                            drawn from it. With neither: from all 15,625 cells.\n"
            "  --target COLUMN, --minimize, --truth-arch-column NAME   as in eval\n"
            "  --sample N                architectures to score (default 200; a fixed-seed sample)\n"
            "  --seed K                  sample seed (default 1)\n"
            "  --window A:B              exponent window (default -8:1)\n"
            "  --batch SPEC              default ramp; --batch-size N default 256\n"
            "  --threads N               scoring threads (default 0 = all CPUs)\n"
            "  --json                    machine-readable output\n");
}

/* The parsed options of `search-weights`. */
typedef struct {
    const char *space, *archs_s, *truth, *target, *truth_col, *sample_s, *seed_s, *window_s, *batch_s, *bsize_s;
    const char *threads_s;
    int minimize, json;
    long sample, threads;
    uint64_t seed;
    int wa, wb; /* exponent window */
} sw_args;

static int sw_check(const char *cmd, sw_args *A)
{
    int rc;
    if (strcmp(A->space, "nb201"))
        return eps_cli_report(cmd, EPS_EINVAL, "--space '%.40s' is not supported here (nb201)", A->space);
    if ((rc = eps_cli_parse_long(cmd, "--sample", A->sample_s, 1, EPS_NB201_COUNT, &A->sample)) != 0) return rc;
    if ((rc = eps_cli_parse_long(cmd, "--threads", A->threads_s, 0, 64, &A->threads)) != 0) return rc;
    if (A->threads == 0) A->threads = eps_cpu_count(64);
    if ((rc = eps_cli_parse_u64(cmd, "--seed", A->seed_s, &A->seed)) != 0) return rc;
    char wend;
    if (sscanf(A->window_s, "%d:%d%c", &A->wa, &A->wb, &wend) != 2 || A->wa >= A->wb || A->wa < -30 || A->wb > 30 ||
        A->wb - A->wa + 1 > EPS_WSCAN_MAX_EXP)
        return eps_cli_report(cmd, EPS_EINVAL, "--window must be A:B, integers with -30 <= A < B <= 30, got '%.40s'",
                              A->window_s);
    return -1;
}

/* The candidates of the sample and their targets. */
typedef struct {
    int *cand;          /* EPS_NB201_COUNT codes, ncand used */
    long ncand;
    double *tval;       /* target by code, NaN when unknown */
    const char *target_name;
    eps_table tt, at;
} sw_pool;

/* The truth table's cells: targets, and candidates unless --archs names
 * them. -1 or the exit code (printed). */
static int sw_from_truth(const char *cmd, const sw_args *A, sw_pool *P)
{
    eps_error e = {0};
    eps_table *tt = &P->tt;
    if (eps_table_read(A->truth, tt, &e) < 0) return eps_cli_report_err(cmd, &e);
    if (tt->nrows == 0) return eps_cli_report(cmd, EPS_EINVAL, "%s: header only, no rows", tt->name);
    int tk, tc;
    if (eps_join_need_col(tt, A->truth_col, "--truth-arch-column NAME", &tk, &e) < 0 ||
        eps_join_pick_target(tt, A->target, tk, &tc, &e) < 0)
        return eps_cli_report_err(cmd, &e);
    P->target_name = tt->header[tc];
    for (long r = 0; r < tt->nrows; r++) {
        const char *as = eps_table_cell(tt, r, tk);
        eps_nb201_cell cell;
        eps_error pe = {0};
        if (eps_nb201_parse(as, strlen(as), &cell, &pe) < 0)
            return eps_cli_report(cmd, EPS_EINVAL, "%s:%ld: column '%s': %s", tt->name, tt->line[r], tt->header[tk],
                                  pe.msg);
        double v;
        const char *vs = eps_table_cell(tt, r, tc);
        if (eps_table_number(vs, &v) < 0)
            return eps_cli_report(cmd, EPS_EINVAL, "%s:%ld: column '%s': '%.40s' is not a number", tt->name,
                                  tt->line[r], tt->header[tc], vs);
        int code = eps_search_nb201_code(&cell);
        if (isnan(P->tval[code]) && !isnan(v)) {
            P->tval[code] = v;
            if (!A->archs_s) P->cand[P->ncand++] = code;
        }
    }
    return -1;
}

/* --archs: one architecture per line, or a CSV with an arch column. */
static int sw_from_archs(const char *cmd, const sw_args *A, sw_pool *P)
{
    eps_error e = {0};
    eps_table *at = &P->at;
    if (eps_table_read(A->archs_s, at, &e) < 0) return eps_cli_report_err(cmd, &e);
    /* A plain list has no header: the first line is an architecture. */
    int ak = eps_table_col(at, "arch");
    int plain = ak < 0;
    if (plain && at->ncols != 1)
        return eps_cli_report(cmd, EPS_EINVAL, "%s: neither one architecture per line nor a CSV with an 'arch' column",
                              at->name);
    long total = at->nrows + (plain ? 1 : 0);
    unsigned char *seen = calloc(EPS_NB201_COUNT, 1);
    if (!seen) return eps_cli_report(cmd, EPS_ENOMEM, "out of memory");
    int rc = -1;
    for (long r = 0; r < total; r++) {
        const char *as = plain ? (r == 0 ? at->header[0] : eps_table_cell(at, r - 1, 0)) : eps_table_cell(at, r, ak);
        long line = plain ? (r == 0 ? 1 : at->line[r - 1]) : at->line[r];
        eps_nb201_cell cell;
        eps_error pe = {0};
        if (eps_nb201_parse(as, strlen(as), &cell, &pe) < 0) {
            rc = eps_cli_report(cmd, EPS_EINVAL, "%s:%ld: %s", at->name, line, pe.msg);
            break;
        }
        int code = eps_search_nb201_code(&cell);
        if (!seen[code]) {
            seen[code] = 1;
            P->cand[P->ncand++] = code;
        }
    }
    free(seen);
    return rc;
}

/* The per-pair statistics of a finished scan. */
typedef struct {
    double *nanfrac, *rho;
    long *nused;
    int rule, best; /* -1: none */
    double best_rho;
} sw_stats;

/* NaN fraction and Spearman rho (rows with a target) of every pair; the
 * paper's rule pair and the best-rho pair. -1 or the exit code. */
static int sw_compute(const char *cmd, const sw_args *A, const sw_pool *P, const eps_wscan *job, sw_stats *S)
{
    eps_error e = {0};
    long n = job->n;
    double *col = malloc((size_t)n * sizeof *col), *tcol = malloc((size_t)n * sizeof *tcol);
    S->nanfrac = malloc((size_t)job->npairs * sizeof *S->nanfrac);
    S->rho = malloc((size_t)job->npairs * sizeof *S->rho);
    S->nused = malloc((size_t)job->npairs * sizeof *S->nused);
    S->rule = S->best = -1;
    S->best_rho = NAN;
    int rc = -1;
    if (!col || !tcol || !S->nanfrac || !S->rho || !S->nused) rc = eps_cli_report(cmd, EPS_ENOMEM, "out of memory");
    for (int p = 0; p < job->npairs && rc < 0; p++) {
        long nn = 0, m = 0;
        for (long i = 0; i < n; i++) {
            double s = job->eps[(size_t)p * n + i];
            if (isnan(s)) {
                nn++;
                continue;
            }
            double tv = P->tval[P->cand[i]];
            if (A->truth && !isnan(tv)) {
                col[m] = s;
                tcol[m] = tv;
                m++;
            }
        }
        S->nanfrac[p] = (double)nn / (double)n;
        S->rho[p] = NAN;
        S->nused[p] = m;
        if (A->truth && eps_eval_spearman(col, tcol, m, &S->rho[p], &e) < 0) {
            rc = eps_cli_report_err(cmd, &e);
            break;
        }
        if (S->rule < 0 && S->nanfrac[p] < 0.10) S->rule = p;
        double key = A->minimize ? -S->rho[p] : S->rho[p];
        if (!isnan(key) && (S->best < 0 || key > (A->minimize ? -S->best_rho : S->best_rho))) {
            S->best = p;
            S->best_rho = S->rho[p];
        }
    }
    free(col);
    free(tcol);
    return rc;
}

static void sw_print_json(const sw_args *A, const sw_pool *P, const eps_batch *batch, const eps_wscan *job,
                          const sw_stats *S, double elapsed)
{
    json_t *jo = json_object();
    json_object_set_new(jo, "space", json_string("nb201"));
    json_object_set_new(jo, "sample", json_integer(job->n));
    json_object_set_new(jo, "seed", json_integer((json_int_t)A->seed));
    json_object_set_new(jo, "batch", json_string(batch->source));
    json_object_set_new(jo, "batch_size", json_integer(batch->n));
    json_object_set_new(jo, "target", P->target_name ? json_string(P->target_name) : json_null());
    json_t *arr = json_array();
    for (int p = 0; p < job->npairs; p++) {
        json_t *o = json_object();
        json_object_set_new(o, "w1", json_real(job->w[job->pa[p]]));
        json_object_set_new(o, "w2", json_real(job->w[job->pb[p]]));
        json_object_set_new(o, "nan_fraction", json_real(S->nanfrac[p]));
        json_object_set_new(o, "rho", eps_cli_jnum(S->rho[p]));
        json_object_set_new(o, "n_rho", json_integer(S->nused[p]));
        json_array_append_new(arr, o);
    }
    json_object_set_new(jo, "pairs", arr);
    int rule = S->rule, best = S->best;
    json_t *r = rule >= 0 ? json_pack("[f,f]", job->w[job->pa[rule]], job->w[job->pb[rule]]) : json_null();
    json_object_set_new(jo, "rule_pair", r);
    json_t *bp = best >= 0 ? json_pack("[f,f]", job->w[job->pa[best]], job->w[job->pb[best]]) : json_null();
    json_object_set_new(jo, "best_rho_pair", bp);
    json_object_set_new(jo, "seconds", json_real(elapsed));
    eps_cli_print_json(jo);
    json_decref(jo);
}

static void sw_print_text(const sw_args *A, const eps_batch *batch, const eps_wscan *job, const sw_stats *S,
                          double elapsed)
{
    int rule = S->rule, best = S->best;
    printf("%ld NB201 architectures (seed %llu), %s batch of %d, %d weight pairs, %.1f s\n", job->n,
           (unsigned long long)A->seed, batch->source, batch->n, job->npairs, elapsed);
    printf("%10s %10s %8s %9s%s\n", "w1", "w2", "NaN %", "rho", A->truth ? "  (n)" : "");
    for (int p = 0; p < job->npairs; p++) {
        char r[32];
        eps_cli_fmt_stat(r, sizeof r, S->rho[p], "%.4f");
        printf("%10.0e %10.0e %8.1f %9s", job->w[job->pa[p]], job->w[job->pb[p]], S->nanfrac[p] * 100, r);
        if (A->truth) printf("  (%ld)", S->nused[p]);
        printf("%s%s\n", p == rule ? "  <- rule: first with < 10% NaN" : "", p == best ? "  <- best rho" : "");
    }
    if (rule >= 0)
        printf("rule (first pair by a, then b, with < 10%% NaN): (%g, %g)\n", job->w[job->pa[rule]],
               job->w[job->pb[rule]]);
    else printf("rule: no pair has under 10%% NaN\n");
    if (best >= 0) printf("best rho: (%g, %g), rho %.4f\n", job->w[job->pa[best]], job->w[job->pb[best]], S->best_rho);
}

/* Draws the sample, scores it for every pair and prints. -1 or the exit code. */
static int sw_scan(const char *cmd, const sw_args *A, sw_pool *P, eps_batch *batch, int *have_batch, eps_wscan *job)
{
    /* Fixed-seed sample: partial Fisher-Yates with eps_eval_rng_for(seed, 0). */
    long n = A->sample < P->ncand ? A->sample : P->ncand;
    eps_eval_rng g = eps_eval_rng_for(A->seed, 0);
    for (long k = 0; k < n; k++) {
        long j = k + (long)eps_eval_rng_below(&g, (uint64_t)(P->ncand - k));
        int t = P->cand[k];
        P->cand[k] = P->cand[j];
        P->cand[j] = t;
    }
    int rc;
    if ((rc = load_batch(cmd, A->batch_s, A->bsize_s, batch)) >= 0) return rc;
    *have_batch = 1;
    job->n = n;
    job->code = P->cand;
    job->batch = batch;
    job->nexp = A->wb - A->wa + 1;
    for (int k = 0; k < job->nexp; k++) {
        char buf[16];
        snprintf(buf, sizeof buf, "1e%d", A->wa + k);
        job->w[k] = strtod(buf, NULL); /* the literal 1e-7, not pow()'s rounding */
    }
    for (int a = 0; a < job->nexp; a++)
        for (int b = a + 1; b < job->nexp; b++) {
            job->pa[job->npairs] = a;
            job->pb[job->npairs] = b;
            job->npairs++;
        }
    job->eps = malloc((size_t)job->npairs * (size_t)n * sizeof(double));
    if (!job->eps) return eps_cli_report(cmd, EPS_ENOMEM, "out of memory");
    eps_error e = {0};
    double t0 = eps_now_s();
    if (eps_search_parallel(eps_wscan_one, job, n, (int)A->threads, "architectures", &e) < 0)
        return eps_cli_report_err(cmd, &e);
    double elapsed = eps_now_s() - t0;
    sw_stats S = {0};
    if ((rc = sw_compute(cmd, A, P, job, &S)) < 0) {
        if (A->json) sw_print_json(A, P, batch, job, &S, elapsed);
        else sw_print_text(A, batch, job, &S, elapsed);
    }
    free(S.nanfrac);
    free(S.rho);
    free(S.nused);
    return rc;
}

int eps_cmd_search_weights(int argc, char **argv)
{
    const char *cmd = "search-weights";
    sw_args A = {.space = "nb201", .truth_col = "arch", .sample_s = "200", .seed_s = "1", .window_s = "-8:1",
                 .batch_s = "ramp", .bsize_s = "256", .threads_s = "0"};
    const eps_cli_opt specs[] = {{"--space", 1, &A.space, NULL},        {"--archs", 1, &A.archs_s, NULL},
                                 {"--truth", 1, &A.truth, NULL},        {"--target", 1, &A.target, NULL},
                                 {"--minimize", 0, NULL, &A.minimize},  {"--truth-arch-column", 1, &A.truth_col, NULL},
                                 {"--sample", 1, &A.sample_s, NULL},    {"--seed", 1, &A.seed_s, NULL},
                                 {"--window", 1, &A.window_s, NULL},    {"--batch", 1, &A.batch_s, NULL},
                                 {"--batch-size", 1, &A.bsize_s, NULL}, {"--threads", 1, &A.threads_s, NULL},
                                 {"--json", 0, NULL, &A.json},          {NULL, 0, NULL, NULL}};
    int rc = eps_cli_parse_opts(cmd, argc, argv, specs, sw_help, NULL);
    if (rc >= 0) return rc;
    if ((rc = sw_check(cmd, &A)) >= 0) return rc;
    sw_pool P = {0};
    eps_wscan job = {0};
    eps_batch batch = {0};
    int have_batch = 0;
    P.cand = malloc(EPS_NB201_COUNT * sizeof *P.cand);
    P.tval = malloc(EPS_NB201_COUNT * sizeof *P.tval);
    rc = -1;
    if (!P.cand || !P.tval) rc = eps_cli_report(cmd, EPS_ENOMEM, "out of memory");
    else
        for (int i = 0; i < EPS_NB201_COUNT; i++) P.tval[i] = NAN;
    if (rc < 0 && A.truth) rc = sw_from_truth(cmd, &A, &P);
    if (rc < 0 && A.archs_s) rc = sw_from_archs(cmd, &A, &P);
    if (rc < 0 && !A.truth && !A.archs_s)
        for (int i = 0; i < EPS_NB201_COUNT; i++) P.cand[P.ncand++] = i;
    if (rc < 0 && P.ncand == 0) rc = eps_cli_report(cmd, EPS_EINVAL, "no architectures to score");
    if (rc < 0) rc = sw_scan(cmd, &A, &P, &batch, &have_batch, &job);
    if (have_batch) eps_batch_free(&batch);
    free(job.eps);
    free(P.cand);
    free(P.tval);
    eps_table_free(&P.tt);
    eps_table_free(&P.at);
    return rc < 0 ? 0 : rc;
}
