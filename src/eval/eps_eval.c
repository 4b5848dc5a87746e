/* eps_eval.c — rank statistics as scipy computes them, the paper's
 * evaluation table (spec §6), the selection experiment (Table 3) and the
 * look-up searches (random, ageing evolution) behind `epsinas eval`,
 * `select` and `search` (see include/epsinas/eval/eval.h). */
#include "epsinas/eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "epsinas/spaces/nb201.h"

/* ---- statistics ------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double eps_eval_percentile_sorted(const double *a, long n, double q)
{
    if (n < 1) return NAN;
    /* numpy 1.2x 'linear': virtual index = n*q + (alpha + q*(1-alpha-beta)) - 1
     * with alpha = beta = 1, q as a fraction; then _lerp(prev, next, gamma). */
    double qf = q / 100.0;
    double vi = ((double)n * qf + (1.0 + qf * -1.0)) - 1.0;
    if (vi >= (double)(n - 1)) return a[n - 1];
    if (vi < 0) return a[0];
    double fl = floor(vi);
    long lo = (long)fl;
    long hi = lo + 1;
    double g = vi - fl;
    double x0 = a[lo], x1 = a[hi];
    double d = x1 - x0;
    /* numpy's _lerp: a + d*t, but b - d*(1-t) where t >= 0.5 (exact ends). */
    return g >= 0.5 ? x1 - d * (1.0 - g) : x0 + d * g;
}

int eps_eval_percentile(const double *x, long n, double q, double *out, eps_error *err)
{
    if (n < 1) {
        *out = NAN;
        return 0;
    }
    double *s = malloc((size_t)n * sizeof *s);
    if (!s) return eps_error_set(err, EPS_ENOMEM, "", "out of memory for %ld values", n);
    for (long i = 0; i < n; i++) {
        if (isnan(x[i])) {
            free(s);
            return eps_error_set(err, EPS_EINVAL, "", "percentile of data with NaN (row %ld)", i + 1);
        }
        s[i] = x[i];
    }
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    *out = eps_eval_percentile_sorted(s, n, q);
    free(s);
    return 0;
}

typedef struct { double v; long i; } vi_pair;

static int cmp_vi(const void *a, const void *b)
{
    const vi_pair *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

int eps_eval_rank(const double *x, long n, double *ranks, eps_error *err)
{
    if (n <= 0) return 0;
    vi_pair *p = malloc((size_t)n * sizeof *p);
    if (!p) return eps_error_set(err, EPS_ENOMEM, "", "out of memory for %ld ranks", n);
    for (long i = 0; i < n; i++) p[i] = (vi_pair){x[i], i};
    qsort(p, (size_t)n, sizeof *p, cmp_vi);
    for (long i = 0; i < n;) {
        long j = i + 1;
        while (j < n && p[j].v == p[i].v) j++;
        double r = 0.5 * (double)(i + 1 + j); /* mean of i+1 .. j */
        for (long k = i; k < j; k++) ranks[p[k].i] = r;
        i = j;
    }
    free(p);
    return 0;
}

static int is_constant(const double *x, long n)
{
    for (long i = 1; i < n; i++)
        if (x[i] != x[0]) return 0;
    return 1;
}

double eps_eval_pearson(const double *x, const double *y, long n)
{
    if (n < 2) return NAN;
    double mx = 0, my = 0;
    for (long i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= (double)n;
    my /= (double)n;
    double sxx = 0, syy = 0, sxy = 0;
    for (long i = 0; i < n; i++) {
        double dx = x[i] - mx, dy = y[i] - my;
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    if (sxx == 0 || syy == 0) return NAN;
    /* numpy.corrcoef's order: cov / std_x / std_y, each with 1/(n-1). */
    double f = 1.0 / (double)(n - 1);
    double r = (sxy * f) / sqrt(sxx * f) / sqrt(syy * f);
    return r > 1 ? 1 : r < -1 ? -1 : r;
}

int eps_eval_spearman(const double *x, const double *y, long n, double *rho, eps_error *err)
{
    *rho = NAN;
    /* scipy: n <= 1 or a constant input -> NaN (ConstantInputWarning). */
    if (n < 2 || is_constant(x, n) || is_constant(y, n)) return 0;
    double *rx = malloc((size_t)n * sizeof *rx), *ry = malloc((size_t)n * sizeof *ry);
    int rc = 0;
    if (!rx || !ry) {
        rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory for %ld ranks", n);
    } else if ((rc = eps_eval_rank(x, n, rx, err)) == 0 && (rc = eps_eval_rank(y, n, ry, err)) == 0) {
        *rho = eps_eval_pearson(rx, ry, n);
    }
    free(rx);
    free(ry);
    return rc;
}

int eps_eval_spearman_nan_last(const double *score, const double *target, long n, double *rho, long *used,
                               eps_error *err)
{
    *rho = NAN;
    *used = 0;
    double *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x), *y = malloc((size_t)(n > 0 ? n : 1) * sizeof *y);
    int rc = 0;
    if (!x || !y) {
        rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory for %ld rows", n);
        goto done;
    }
    long m = 0;
    for (long i = 0; i < n; i++) {
        if (isnan(target[i])) continue;
        /* below every number: the NaN rows tie for the lowest ranks */
        x[m] = isnan(score[i]) ? -INFINITY : score[i];
        y[m] = target[i];
        m++;
    }
    *used = m;
    rc = eps_eval_spearman(x, y, m, rho, err);
done:
    free(x);
    free(y);
    return rc;
}

typedef struct { double x, y; } xy_pair;

static int cmp_xy(const void *a, const void *b)
{
    const xy_pair *p = a, *q = b;
    if (p->x != q->x) return p->x < q->x ? -1 : 1;
    return (p->y > q->y) - (p->y < q->y);
}

/* Sorts a[0..n) ascending with tmp as scratch; returns the number of pairs
 * i < j with a[i] > a[j] (strict: equal values are not inversions). */
static long long merge_count(double *a, double *tmp, long n)
{
    long long inv = 0;
    for (long width = 1; width < n; width *= 2) {
        for (long lo = 0; lo < n; lo += 2 * width) {
            long mid = lo + width < n ? lo + width : n;
            long hi = lo + 2 * width < n ? lo + 2 * width : n;
            long i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                if (a[j] < a[i]) {
                    inv += mid - i;
                    tmp[k++] = a[j++];
                } else {
                    tmp[k++] = a[i++];
                }
            }
            while (i < mid) tmp[k++] = a[i++];
            while (j < hi) tmp[k++] = a[j++];
        }
        memcpy(a, tmp, (size_t)n * sizeof *a);
    }
    return inv;
}

int eps_eval_kendall(const double *x, const double *y, long n, double *tau, eps_error *err)
{
    *tau = NAN;
    if (n < 2) return 0;
    xy_pair *p = malloc((size_t)n * sizeof *p);
    double *ys = malloc((size_t)n * sizeof *ys), *tmp = malloc((size_t)n * sizeof *tmp);
    if (!p || !ys || !tmp) {
        free(p);
        free(ys);
        free(tmp);
        return eps_error_set(err, EPS_ENOMEM, "", "out of memory for Kendall tau over %ld rows", n);
    }
    for (long i = 0; i < n; i++) p[i] = (xy_pair){x[i], y[i]};
    qsort(p, (size_t)n, sizeof *p, cmp_xy);
    long long xtie = 0, ntie = 0, ytie = 0;
    for (long i = 0; i < n;) {
        long j = i + 1;
        while (j < n && p[j].x == p[i].x) j++;
        long long c = j - i;
        xtie += c * (c - 1) / 2;
        i = j;
    }
    for (long i = 0; i < n;) {
        long j = i + 1;
        while (j < n && p[j].x == p[i].x && p[j].y == p[i].y) j++;
        long long c = j - i;
        ntie += c * (c - 1) / 2;
        i = j;
    }
    for (long i = 0; i < n; i++) ys[i] = p[i].y;
    /* Sorted by (x, y): an inversion of y is exactly a discordant pair. */
    long long dis = merge_count(ys, tmp, n);
    for (long i = 0; i < n;) {
        long j = i + 1;
        while (j < n && ys[j] == ys[i]) j++;
        long long c = j - i;
        ytie += c * (c - 1) / 2;
        i = j;
    }
    free(p);
    free(ys);
    free(tmp);
    long long tot = (long long)n * (n - 1) / 2;
    if (xtie == tot || ytie == tot) return 0;
    long long con_minus_dis = tot - xtie - ytie + ntie - 2 * dis;
    double t = (double)con_minus_dis / sqrt((double)(tot - xtie)) / sqrt((double)(tot - ytie));
    *tau = t > 1 ? 1 : t < -1 ? -1 : t;
    return 0;
}

/* ---- the paper's table ------------------------------------------------ */

static int cmp_score_desc(const void *a, const void *b)
{
    const vi_pair *x = a, *y = b;
    if (x->v > y->v) return -1;
    if (x->v < y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

int eps_eval_table_compute(const double *score, const double *target, long n, int minimize,
                           eps_eval_table *out, eps_error *err)
{
    memset(out, 0, sizeof *out);
    out->n_in = n;
    out->minimize = minimize ? 1 : 0;
    out->rho = out->tau = out->rho_top = out->tau_top = NAN;
    out->target_p90 = out->target_p95 = out->score_p90 = out->top10_top10 = out->rho_nan_last = NAN;
    if (n < 0 || n > EPS_EVAL_MAX_ROWS)
        return eps_error_set(err, EPS_ELIMIT, "", "%ld rows (at most %ld)", n, EPS_EVAL_MAX_ROWS);
    size_t sz = (size_t)(n ? n : 1) * sizeof(double);
    double *s = malloc(sz), *t = malloc(sz), *b = malloc(sz), *sorted = malloc(sz);
    double *ss = malloc(sz), *ts = malloc(sz);
    vi_pair *ord = malloc((size_t)(n ? n : 1) * sizeof *ord);
    int rc = 0;
    if (!s || !t || !b || !sorted || !ss || !ts || !ord) {
        rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory for %ld rows", n);
        goto done;
    }
    long m = 0;
    for (long i = 0; i < n; i++) {
        if (isnan(score[i])) {
            out->n_nan_score++;
            continue;
        }
        if (isnan(target[i])) {
            out->n_nan_target++;
            continue;
        }
        s[m] = score[i];
        t[m] = target[i];
        b[m] = minimize ? -target[i] : target[i];
        m++;
    }
    out->n = m;
    if ((rc = eps_eval_spearman_nan_last(score, target, n, &out->rho_nan_last, &out->n_nan_last, err)) < 0) goto done;
    if (m == 0) goto done;
    if ((rc = eps_eval_spearman(s, t, m, &out->rho, err)) < 0) goto done;
    if ((rc = eps_eval_kendall(s, t, m, &out->tau, err)) < 0) goto done;

    memcpy(sorted, b, (size_t)m * sizeof *sorted);
    qsort(sorted, (size_t)m, sizeof *sorted, cmp_double);
    out->target_p90 = eps_eval_percentile_sorted(sorted, m, 90);
    out->target_p95 = eps_eval_percentile_sorted(sorted, m, 95);
    memcpy(sorted, s, (size_t)m * sizeof *sorted);
    qsort(sorted, (size_t)m, sizeof *sorted, cmp_double);
    out->score_p90 = eps_eval_percentile_sorted(sorted, m, 90);

    long k = 0;
    for (long i = 0; i < m; i++) {
        int top = b[i] > out->target_p90;
        if (top) {
            ss[k] = s[i];
            ts[k] = t[i];
            k++;
        }
        if (s[i] > out->score_p90) {
            out->n_score_top++;
            if (top) out->n_both_top++;
        }
    }
    out->n_top = k;
    if ((rc = eps_eval_spearman(ss, ts, k, &out->rho_top, err)) < 0) goto done;
    if ((rc = eps_eval_kendall(ss, ts, k, &out->tau_top, err)) < 0) goto done;
    if (out->n_score_top > 0) out->top10_top10 = (double)out->n_both_top / (double)out->n_score_top * 100.0;

    for (long i = 0; i < m; i++) ord[i] = (vi_pair){s[i], i};
    qsort(ord, (size_t)m, sizeof *ord, cmp_score_desc);
    out->top64_k = m < 64 ? m : 64;
    for (long i = 0; i < out->top64_k; i++)
        if (b[ord[i].i] > out->target_p95) out->top64_top5++;

done:
    free(s);
    free(t);
    free(b);
    free(sorted);
    free(ss);
    free(ts);
    free(ord);
    return rc;
}

/* ---- randomness ------------------------------------------------------- */

uint64_t eps_eval_rng_next(eps_eval_rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t eps_eval_rng_below(eps_eval_rng *r, uint64_t bound)
{
    if (bound <= 1) return 0;
    uint64_t threshold = (0 - bound) % bound; /* 2^64 mod bound */
    for (;;) {
        uint64_t v = eps_eval_rng_next(r);
        if (v >= threshold) return v % bound;
    }
}

eps_eval_rng eps_eval_rng_for(uint64_t seed, uint64_t run)
{
    eps_eval_rng a = {seed};
    uint64_t s = eps_eval_rng_next(&a);
    eps_eval_rng b = {s ^ (run * 0xD1B54A32D192ED03ULL)};
    eps_eval_rng out = {eps_eval_rng_next(&b)};
    return out;
}

/* ---- selection -------------------------------------------------------- */

static void mean_std(const double *x, long n, double *mean, double *std)
{
    if (n < 1) {
        *mean = *std = NAN;
        return;
    }
    double m = 0;
    for (long i = 0; i < n; i++) m += x[i];
    m /= (double)n;
    double v = 0;
    for (long i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    *mean = m;
    *std = sqrt(v / (double)n);
}

/* "a scores higher than b" with NaN lowest. */
static int score_gt(double a, double b)
{
    if (isnan(a)) return 0;
    if (isnan(b)) return 1;
    return a > b;
}

int eps_eval_select_run(const double *score, const double *target, long n, int sample, int runs,
                        uint64_t seed, int minimize, eps_eval_select *out, eps_error *err)
{
    memset(out, 0, sizeof *out);
    out->sample = sample;
    out->runs = runs;
    out->chosen_mean = out->chosen_std = out->optimum_mean = out->optimum_std = NAN;
    out->random_mean = out->random_std = out->rank_mean = out->rank_std = NAN;
    if (n < 0 || n > EPS_EVAL_MAX_ROWS)
        return eps_error_set(err, EPS_ELIMIT, "", "%ld rows (at most %ld)", n, EPS_EVAL_MAX_ROWS);
    if (runs < 1 || runs > 10000000)
        return eps_error_set(err, EPS_EINVAL, "--runs", "--runs must be in 1..10000000, got %d", runs);
    long *pool = malloc((size_t)(n ? n : 1) * sizeof *pool);
    long *swap = malloc((size_t)(sample > 0 ? sample : 1) * sizeof *swap);
    double *acc = malloc((size_t)runs * 4 * sizeof *acc);
    int rc = 0;
    if (!pool || !swap || !acc) {
        rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory");
        goto done;
    }
    long m = 0;
    for (long i = 0; i < n; i++)
        if (!isnan(target[i])) pool[m++] = i;
    out->pool = m;
    if (sample < 1 || sample > m) {
        rc = eps_error_set(err, EPS_EINVAL, "--n",
                           "--n must be in 1..%ld (the joined rows with a target), got %d", m, sample);
        goto done;
    }
    double *chosen = acc, *best = acc + runs, *rnd = acc + 2 * runs, *rank = acc + 3 * runs;
    for (int r = 0; r < runs; r++) {
        eps_eval_rng g = eps_eval_rng_for(seed, (uint64_t)r);
        long ci = -1, bi = -1;
        for (int k = 0; k < sample; k++) {
            long j = k + (long)eps_eval_rng_below(&g, (uint64_t)(m - k));
            long tmp = pool[k];
            pool[k] = pool[j];
            pool[j] = tmp;
            swap[k] = j;
            long row = pool[k];
            if (ci < 0 || score_gt(score[row], score[ci])) ci = row;
            double bv = minimize ? -target[row] : target[row];
            if (bi < 0 || bv > (minimize ? -target[bi] : target[bi])) bi = row;
        }
        double cb = minimize ? -target[ci] : target[ci];
        long better = 0;
        for (int k = 0; k < sample; k++) {
            double v = minimize ? -target[pool[k]] : target[pool[k]];
            if (v > cb) better++;
        }
        chosen[r] = target[ci];
        best[r] = target[bi];
        rnd[r] = target[pool[0]];
        rank[r] = (double)(better + 1);
        if (better == 0) out->chosen_is_optimum++;
        /* Undo the swaps so every run starts from the same pool order:
         * run r's draw then depends only on (seed, r). */
        for (int k = sample - 1; k >= 0; k--) {
            long j = swap[k];
            long tmp = pool[k];
            pool[k] = pool[j];
            pool[j] = tmp;
        }
    }
    mean_std(chosen, runs, &out->chosen_mean, &out->chosen_std);
    mean_std(best, runs, &out->optimum_mean, &out->optimum_std);
    mean_std(rnd, runs, &out->random_mean, &out->random_std);
    mean_std(rank, runs, &out->rank_mean, &out->rank_std);
done:
    free(pool);
    free(swap);
    free(acc);
    return rc;
}

/* ---- search ----------------------------------------------------------- */

typedef struct {
    const eps_search_pool *pool;
    double *score;         /* cache, per pool index */
    unsigned char *have;
} score_cache;

static int get_score(score_cache *c, long i, double *out, eps_error *err)
{
    if (!c->have[i]) {
        double v = NAN;
        int rc = c->pool->score ? c->pool->score(c->pool->score_ctx, i, &v, err) : 0;
        if (rc < 0) return rc;
        c->score[i] = v;
        c->have[i] = 1;
    }
    *out = c->score[i];
    return 0;
}

typedef struct {
    double s;
    long order;
    long idx;
} cand;

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (score_gt(x->s, y->s)) return -1;
    if (score_gt(y->s, x->s)) return 1;
    return (x->order > y->order) - (x->order < y->order);
}

int eps_search_run(const eps_search_pool *pool, const eps_search_opts *o, double *curve, eps_error *err)
{
    long n = pool->n;
    if (n < 1) return eps_error_set(err, EPS_EINVAL, "--truth", "no architecture can be looked up (empty pool)");
    if (n > EPS_NB201_COUNT) return eps_error_set(err, EPS_ELIMIT, "--truth", "pool of %ld > %d cells", n, EPS_NB201_COUNT);
    if (o->budget < 1 || o->budget > 1000000)
        return eps_error_set(err, EPS_EINVAL, "--budget", "--budget must be in 1..1000000, got %ld", o->budget);
    if (o->warmup < 0 || o->warmup > 1000000)
        return eps_error_set(err, EPS_EINVAL, "--warmup", "--warmup must be in 0..1000000, got %ld", o->warmup);
    if (o->runs < 1 || o->runs > 100000)
        return eps_error_set(err, EPS_EINVAL, "--runs", "--runs must be in 1..100000, got %d", o->runs);
    if (o->algo == EPS_SEARCH_EVOLUTION && (o->population < 1 || o->population > 100000 || o->tournament < 1 ||
                                            o->tournament > 100000))
        return eps_error_set(err, EPS_EINVAL, "--population", "population and tournament must be in 1..100000");
    int lookup[EPS_NB201_COUNT];
    for (int i = 0; i < EPS_NB201_COUNT; i++) lookup[i] = -1;
    for (long i = 0; i < n; i++) {
        if (pool->code[i] < 0 || pool->code[i] >= EPS_NB201_COUNT)
            return eps_error_set(err, EPS_EINVAL, "", "architecture %ld: cell code %d out of range", i, pool->code[i]);
        if (isnan(pool->target[i]))
            return eps_error_set(err, EPS_EINVAL, "", "architecture %ld: target is NaN", i);
        if (lookup[pool->code[i]] < 0) lookup[pool->code[i]] = (int)i;
    }
    static const int pow5[EPS_NB201_EDGES] = {1, 5, 25, 125, 625, 3125};
    long warm = o->warmup < n ? o->warmup : n;
    int P = o->population;
    score_cache sc = {pool, calloc((size_t)n, sizeof(double)), calloc((size_t)n, 1)};
    long *perm = malloc((size_t)n * sizeof *perm);
    cand *cands = malloc((size_t)(warm ? warm : 1) * sizeof *cands);
    long *popq = malloc((size_t)(P > 0 ? P : 1) * sizeof *popq);
    int rc = 0;
    if (!sc.score || !sc.have || !perm || !cands || !popq) {
        rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory");
        goto done;
    }
    for (int r = 0; r < o->runs; r++) {
        eps_eval_rng g = eps_eval_rng_for(o->seed, (uint64_t)r);
        double *cv = curve + (size_t)r * (size_t)o->budget;
        for (long i = 0; i < n; i++) perm[i] = i;
        long drawn = 0; /* perm[0..drawn) are drawn (partial Fisher-Yates) */
#define DRAW()                                                                \
    do {                                                                      \
        long j_ = drawn + (long)eps_eval_rng_below(&g, (uint64_t)(n - drawn)); \
        long t_ = perm[drawn];                                                \
        perm[drawn] = perm[j_];                                               \
        perm[j_] = t_;                                                        \
        drawn++;                                                              \
    } while (0)
        long evals = 0;
        double best = NAN, bestb = -INFINITY;
#define EVAL(idx)                                                                  \
    do {                                                                           \
        double t_ = pool->target[(idx)];                                           \
        double b_ = pool->minimize ? -t_ : t_;                                     \
        if (evals == 0 || b_ > bestb) bestb = b_, best = t_;                       \
        cv[evals++] = best;                                                        \
    } while (0)
        for (long k = 0; k < warm; k++) {
            DRAW();
            cands[k].idx = perm[k];
            cands[k].order = k;
            if ((rc = get_score(&sc, perm[k], &cands[k].s, err)) < 0) goto done;
        }
        qsort(cands, (size_t)warm, sizeof *cands, cmp_cand);
        if (o->algo == EPS_SEARCH_RANDOM) {
            for (long k = 0; k < warm && evals < o->budget; k++) EVAL(cands[k].idx);
            while (evals < o->budget && drawn < n) {
                DRAW();
                EVAL(perm[drawn - 1]);
            }
        } else {
            int head = 0, size = 0; /* ring buffer: oldest at head */
            long init = P < n ? P : n;
            for (long k = 0; k < init && evals < o->budget; k++) {
                long idx;
                if (k < warm) {
                    idx = cands[k].idx;
                } else {
                    DRAW();
                    idx = perm[drawn - 1];
                }
                EVAL(idx);
                popq[(head + size++) % P] = idx;
            }
            while (evals < o->budget) {
                long parent = -1;
                for (int k = 0; k < o->tournament; k++) {
                    long c = popq[(head + (int)eps_eval_rng_below(&g, (uint64_t)size)) % P];
                    double cb = pool->minimize ? -pool->target[c] : pool->target[c];
                    double pb = parent < 0 ? 0 : pool->minimize ? -pool->target[parent] : pool->target[parent];
                    if (parent < 0 || cb > pb) parent = c;
                }
                int code = pool->code[parent];
                long nb[EPS_NB201_EDGES * (EPS_NB201_OPS - 1)];
                int nnb = 0;
                for (int e = 0; e < EPS_NB201_EDGES; e++) {
                    int cur = (code / pow5[e]) % EPS_NB201_OPS;
                    for (int op = 0; op < EPS_NB201_OPS; op++) {
                        if (op == cur) continue;
                        int c2 = code + (op - cur) * pow5[e];
                        if (lookup[c2] >= 0) nb[nnb++] = lookup[c2];
                    }
                }
                long child = nnb ? nb[eps_eval_rng_below(&g, (uint64_t)nnb)]
                                 : (long)eps_eval_rng_below(&g, (uint64_t)n);
                EVAL(child);
                if (size == P) {
                    popq[head] = child; /* the oldest dies, the child takes the slot at the tail */
                    head = (head + 1) % P;
                } else {
                    popq[(head + size++) % P] = child;
                }
            }
        }
        for (long k = evals; k < o->budget; k++) cv[k] = best;
#undef DRAW
#undef EVAL
    }
done:
    free(sc.score);
    free(sc.have);
    free(perm);
    free(cands);
    free(popq);
    return rc;
}

long eps_search_warmup_marks(long n, const eps_search_opts *o, unsigned char *mark, eps_error *err)
{
    if (n < 1 || n > EPS_NB201_COUNT) return eps_error_set(err, EPS_EINVAL, "", "pool of %ld architectures", n);
    long warm = o->warmup < n ? o->warmup : n, marked = 0;
    if (warm <= 0) return 0;
    long *perm = malloc((size_t)n * sizeof *perm);
    if (!perm) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    /* The same draws as eps_search_run's warm-up, in the same order. */
    for (int r = 0; r < o->runs; r++) {
        eps_eval_rng g = eps_eval_rng_for(o->seed, (uint64_t)r);
        for (long i = 0; i < n; i++) perm[i] = i;
        for (long k = 0; k < warm; k++) {
            long j = k + (long)eps_eval_rng_below(&g, (uint64_t)(n - k));
            long t = perm[k];
            perm[k] = perm[j];
            perm[j] = t;
            if (!mark[perm[k]]) {
                mark[perm[k]] = 1;
                marked++;
            }
        }
        if (marked == n) break;
    }
    free(perm);
    return marked;
}
