/* eps_search.c — the searches of eval.h and the weight-pair scan, run on
 * NAS-Bench-201 cells through the library: a thread pool, the look-up table
 * of trainable cells (loaded from the truth and scores tables, scored on
 * demand with the fast engine), the curves' summaries and CSV. The commands
 * around them (argument handling, printing) are src/cli/eps_cmd_search.c. */
#include "epsinas/eval/search.h"
#include "epsinas/core/score.h"
#include "epsinas/core/util.h"
#include "epsinas/engine/engine.h"
#include "epsinas/spaces/space.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ---- NB201 cells through the library ------------------------------------ */

int eps_search_nb201_code(const eps_nb201_cell *c)
{
    int code = 0, p = 1;
    for (int e = 0; e < EPS_NB201_EDGES; e++, p *= EPS_NB201_OPS) code += c->op[e] * p;
    return code;
}

static int arch_for_code(int code, eps_arch *a, eps_error *err)
{
    eps_nb201_cell cell;
    char s[EPS_NB201_STR_MAX];
    eps_nb201_from_index(code, &cell);
    eps_nb201_format(&cell, s);
    json_t *req = json_pack("{s:s, s:s}", "space", "nb201", "arch", s);
    if (!req) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    int rc = eps_arch_from_json(req, a, err);
    json_decref(req);
    return rc;
}

typedef struct {
    eps_work_fn fn;
    void *ctx;
    long n;
    long next; /* shared, under mu */
    int rc;
    eps_error err;
    pthread_mutex_t mu;
    long done;
    double t0;
    const char *what;
    int progress;
} work_pool;

static void *work_thread(void *arg)
{
    work_pool *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        long i = w->rc < 0 ? w->n : w->next++;
        pthread_mutex_unlock(&w->mu);
        if (i >= w->n) break;
        eps_error e = {0};
        int rc = w->fn(w->ctx, i, &e);
        pthread_mutex_lock(&w->mu);
        if (rc < 0 && w->rc == 0) {
            w->rc = rc;
            w->err = e;
        }
        w->done++;
        if (w->progress && (w->done % 500 == 0))
            fprintf(stderr, "  %s: %ld / %ld (%.1f s)\n", w->what, w->done, w->n, eps_now_s() - w->t0);
        pthread_mutex_unlock(&w->mu);
    }
    eps_engine_fast_release_thread_cache(); /* else the thread's planes leak */
    return NULL;
}

int eps_search_parallel(eps_work_fn fn, void *ctx, long n, int threads, const char *what, eps_error *err)
{
    work_pool w = {.fn = fn, .ctx = ctx, .n = n, .t0 = eps_now_s(), .what = what, .progress = n >= 1000};
    pthread_mutex_init(&w.mu, NULL);
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    pthread_t th[64];
    int started = 0;
    for (int t = 1; t < threads; t++)
        if (pthread_create(&th[started], NULL, work_thread, &w) == 0) started++;
    work_thread(&w);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&w.mu);
    if (w.rc < 0 && err) *err = w.err;
    return w.rc;
}

/* ---- the look-up table ----------------------------------------------------- */

/* Row r of t: the NB201 cell in column ac and the number in column vc;
 * errors name the file, line and column. */
static int row_cell_value(const eps_table *t, long r, int ac, int vc, eps_nb201_cell *cell, double *v, eps_error *err)
{
    const char *as = eps_table_cell(t, r, ac);
    eps_error pe = {0};
    if (eps_nb201_parse(as, strlen(as), cell, &pe) < 0)
        return eps_error_set(err, EPS_EINVAL, "", "%s:%ld: column '%s': %s", t->name, t->line[r], t->header[ac], pe.msg);
    const char *vs = eps_table_cell(t, r, vc);
    if (eps_table_number(vs, v) < 0)
        return eps_error_set(err, EPS_EINVAL, "", "%s:%ld: column '%s': '%.40s' is not a number", t->name, t->line[r],
                             t->header[vc], vs);
    return 0;
}

int eps_search_cells_from_truth(const eps_table *tt, int tk, int tc, eps_search_cells *c, long *nan_target,
                                long *dups, eps_error *err)
{
    int *lookup = malloc(EPS_NB201_COUNT * sizeof *lookup);
    c->code = malloc((size_t)tt->nrows * sizeof *c->code);
    c->target = malloc((size_t)tt->nrows * sizeof *c->target);
    c->score = malloc((size_t)tt->nrows * sizeof *c->score);
    c->have = calloc((size_t)tt->nrows, 1);
    int rc = 0;
    if (!c->code || !c->target || !c->score || !c->have || !lookup) {
        rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory");
        goto out;
    }
    for (int i = 0; i < EPS_NB201_COUNT; i++) lookup[i] = -1;
    *nan_target = *dups = 0;
    for (long r = 0; r < tt->nrows; r++) {
        eps_nb201_cell cell;
        double v;
        if ((rc = row_cell_value(tt, r, tk, tc, &cell, &v, err)) < 0) goto out;
        if (isnan(v)) {
            (*nan_target)++;
            continue;
        }
        int code = eps_search_nb201_code(&cell);
        if (lookup[code] >= 0) {
            (*dups)++;
            continue;
        }
        lookup[code] = (int)c->n;
        c->code[c->n] = code;
        c->target[c->n] = v;
        c->score[c->n] = NAN;
        c->n++;
    }
    if (c->n == 0)
        rc = eps_error_set(err, EPS_EINVAL, "", "%s: no architecture with a numeric '%s'", tt->name, tt->header[tc]);
out:
    free(lookup);
    return rc;
}

int eps_search_cells_set_scores(eps_search_cells *c, const eps_table *st, int sk, int sc, const char *truth_name,
                                long *unscored, eps_error *err)
{
    int *lookup = malloc(EPS_NB201_COUNT * sizeof *lookup);
    unsigned char *seen = calloc((size_t)c->n, 1);
    int rc = 0;
    if (!lookup || !seen) {
        rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory");
        goto out;
    }
    for (int i = 0; i < EPS_NB201_COUNT; i++) lookup[i] = -1;
    for (long i = 0; i < c->n; i++) lookup[c->code[i]] = (int)i;
    for (long r = 0; r < st->nrows; r++) {
        eps_nb201_cell cell;
        double v;
        if ((rc = row_cell_value(st, r, sk, sc, &cell, &v, err)) < 0) break;
        int i = lookup[eps_search_nb201_code(&cell)];
        if (i >= 0 && !seen[i]) {
            c->score[i] = v;
            seen[i] = 1;
        }
    }
    for (long i = 0; i < c->n; i++) c->have[i] = 1; /* absent = NaN = ranked lowest */
    *unscored = 0;
    for (long i = 0; i < c->n; i++) *unscored += !seen[i];
    if (rc == 0 && *unscored == c->n)
        rc = eps_error_set(err, EPS_EINVAL, "", "no architecture in common between %s and %s", st->name, truth_name);
out:
    free(lookup);
    free(seen);
    return rc;
}

/* Epsilon of pool architecture i with the space's default weights. */
static int pool_score_arch(eps_search_cells *p, long i, eps_error *err)
{
    eps_arch a;
    int rc = arch_for_code(p->code[i], &a, err);
    if (rc < 0) return rc;
    eps_run_opts o = {.engine = EPS_ENGINE_FAST};
    eps_score sc;
    rc = eps_arch_score(&a, p->batch, NULL, &o, &sc, err);
    eps_arch_free(&a);
    if (rc == 0) {
        p->score[i] = sc.epsilon;
        p->have[i] = 1;
    }
    return rc;
}

int eps_search_cells_score(void *ctx, long i, double *score, eps_error *err)
{
    eps_search_cells *p = ctx;
    if (!p->have[i] && p->batch) {
        int rc = pool_score_arch(p, i, err);
        if (rc < 0) return rc;
    }
    *score = p->score[i];
    return 0;
}

int eps_search_cells_score_todo(void *ctx, long k, eps_error *err)
{
    eps_search_cells *p = ctx;
    return pool_score_arch(p, p->todo[k], err);
}

void eps_search_cells_free(eps_search_cells *c)
{
    free(c->code);
    free(c->target);
    free(c->score);
    free(c->have);
    free(c->todo);
    memset(c, 0, sizeof *c);
}

/* ---- curves ---------------------------------------------------------------- */

void eps_search_curve_summary(eps_search_curve *c, int runs, long budget, double *tmp)
{
    for (long s = 0; s < budget; s++) {
        double sum = 0;
        for (int r = 0; r < runs; r++) {
            tmp[r] = c->curve[(size_t)r * (size_t)budget + (size_t)s];
            sum += tmp[r];
        }
        /* insertion sort: runs is small and rows are nearly sorted step to step */
        for (int a = 1; a < runs; a++) {
            double v = tmp[a];
            int b = a - 1;
            while (b >= 0 && tmp[b] > v) {
                tmp[b + 1] = tmp[b];
                b--;
            }
            tmp[b + 1] = v;
        }
        c->med[s] = eps_eval_percentile_sorted(tmp, runs, 50);
        c->q25[s] = eps_eval_percentile_sorted(tmp, runs, 25);
        c->q75[s] = eps_eval_percentile_sorted(tmp, runs, 75);
        c->mean[s] = sum / runs;
    }
}

int eps_search_curves_write(const char *path, const eps_search_curve *c, int n, long budget, eps_error *err)
{
    FILE *f = eps_table_open_out(path, err);
    if (!f) return err ? err->code : EPS_EIO;
    fprintf(f, "algo,warmup,step,median,q25,q75,mean\n");
    for (int k = 0; k < n; k++)
        for (long s = 0; s < budget; s++)
            fprintf(f, "%s,%ld,%ld,%.17g,%.17g,%.17g,%.17g\n", c[k].algo == EPS_SEARCH_RANDOM ? "random" : "evolution",
                    c[k].warmup, s + 1, c[k].med[s], c[k].q25[s], c[k].q75[s], c[k].mean[s]);
    return eps_table_close_out(f, path, err);
}

/* ---- the weight-pair scan ---------------------------------------------------- */

int eps_wscan_one(void *ctx, long i, eps_error *err)
{
    eps_wscan *s = ctx;
    eps_arch a;
    int rc = arch_for_code(s->code[i], &a, err);
    if (rc < 0) return rc;
    long no = eps_arch_output_count(&a, s->batch);
    float *y = malloc((size_t)no * (size_t)s->nexp * sizeof *y);
    if (!y) {
        eps_arch_free(&a);
        return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    }
    eps_run_opts o = {.engine = EPS_ENGINE_FAST};
    for (int k = 0; k < s->nexp && rc == 0; k++) rc = eps_arch_forward(&a, s->batch, (float)s->w[k], &o, y + (size_t)k * no, err);
    if (rc == 0)
        for (int p = 0; p < s->npairs; p++) {
            double w[2] = {s->w[s->pa[p]], s->w[s->pb[p]]};
            eps_score sc;
            eps_score_epsilon(y + (size_t)s->pa[p] * no, y + (size_t)s->pb[p] * no, no, w, &sc);
            s->eps[(size_t)p * s->n + i] = sc.epsilon;
        }
    free(y);
    eps_arch_free(&a);
    return rc;
}
