/* test_eval.c — the evaluation toolkit: rank statistics and the paper's
 * table against scipy/numpy (tests/golden/eval.json, written by
 * tests/reference/eval_fixtures.py), the CSV reader, selection and search
 * properties, and the eval/select/search/search-weights CLIs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "epsinas/eval/eval.h"
#include "epsinas/eval/table.h"
#include "util.h"

#define TOL 1e-9

/* ---- helpers ----------------------------------------------------------- */

/* Data set of a golden "stats" entry: literal arrays or the splitmix64
 * recipe documented in eval_fixtures.py gen_data(). Caller frees both. */
static long golden_data(const json_t *set, double **x, double **y)
{
    const json_t *gen = json_object_get(set, "gen");
    if (gen) {
        long n = (long)json_integer_value(json_object_get(gen, "n"));
        uint64_t xmod = (uint64_t)json_integer_value(json_object_get(gen, "xmod"));
        uint64_t ymod = (uint64_t)json_integer_value(json_object_get(gen, "ymod"));
        double k = (double)json_integer_value(json_object_get(gen, "k"));
        eps_eval_rng r = {(uint64_t)json_integer_value(json_object_get(gen, "seed"))};
        *x = malloc((size_t)n * sizeof **x);
        *y = malloc((size_t)n * sizeof **y);
        assert_non_null(*x);
        assert_non_null(*y);
        for (long i = 0; i < n; i++) {
            uint64_t z1 = eps_eval_rng_next(&r), z2 = eps_eval_rng_next(&r);
            (*x)[i] = (double)(z1 % xmod);
            (*y)[i] = (double)(z2 % ymod) + k * (*x)[i];
        }
        return n;
    }
    const json_t *jx = json_object_get(set, "x"), *jy = json_object_get(set, "y");
    long n = (long)json_array_size(jx);
    assert_int_equal(n, (long)json_array_size(jy));
    *x = malloc((size_t)(n ? n : 1) * sizeof **x);
    *y = malloc((size_t)(n ? n : 1) * sizeof **y);
    for (long i = 0; i < n; i++) {
        (*x)[i] = eps_t_num(json_array_get(jx, (size_t)i));
        (*y)[i] = eps_t_num(json_array_get(jy, (size_t)i));
    }
    return n;
}

static void expect_close(const char *what, const char *set, double ours, double ref)
{
    if (!eps_t_close(ours, ref, TOL, TOL)) {
        print_error("%s / %s: ours %.17g, scipy %.17g\n", set, what, ours, ref);
        fail();
    }
}

static void expect_table(const char *set, const eps_eval_table *t, const json_t *ref)
{
    expect_close("rho", set, t->rho, eps_t_num(json_object_get(ref, "rho")));
    expect_close("tau", set, t->tau, eps_t_num(json_object_get(ref, "tau")));
    expect_close("rho_top10", set, t->rho_top, eps_t_num(json_object_get(ref, "rho_top10")));
    expect_close("tau_top10", set, t->tau_top, eps_t_num(json_object_get(ref, "tau_top10")));
    expect_close("top10_top10", set, t->top10_top10, eps_t_num(json_object_get(ref, "top10_top10")));
    expect_close("target_p90", set, t->target_p90, eps_t_num(json_object_get(ref, "target_p90")));
    expect_close("target_p95", set, t->target_p95, eps_t_num(json_object_get(ref, "target_p95")));
    expect_close("score_p90", set, t->score_p90, eps_t_num(json_object_get(ref, "score_p90")));
    assert_int_equal(t->n, json_integer_value(json_object_get(ref, "n")));
    assert_int_equal(t->n_nan_score, json_integer_value(json_object_get(ref, "n_nan_score")));
    assert_int_equal(t->n_nan_target, json_integer_value(json_object_get(ref, "n_nan_target")));
    assert_int_equal(t->n_top, json_integer_value(json_object_get(ref, "n_top10")));
    assert_int_equal(t->n_score_top, json_integer_value(json_object_get(ref, "n_score_top")));
    assert_int_equal(t->n_both_top, json_integer_value(json_object_get(ref, "n_both_top")));
    assert_int_equal(t->top64_k, json_integer_value(json_object_get(ref, "top64_k")));
    assert_int_equal(t->top64_top5, json_integer_value(json_object_get(ref, "top64_top5")));
}

/* ---- statistics vs scipy ------------------------------------------------ */

static void test_stats_golden(void **state)
{
    (void)state;
    json_t *g = eps_t_load_json("tests/golden/eval.json");
    const json_t *sets = json_object_get(g, "stats");
    assert_true(json_array_size(sets) >= 10);
    size_t i;
    const json_t *set;
    json_array_foreach(sets, i, set) {
        const char *name = json_string_value(json_object_get(set, "name"));
        double *x, *y;
        long n = golden_data(set, &x, &y);
        /* rho, tau on the rows where both are numbers */
        double *cx = malloc((size_t)(n ? n : 1) * sizeof *cx), *cy = malloc((size_t)(n ? n : 1) * sizeof *cy);
        double *ky = malloc((size_t)(n ? n : 1) * sizeof *ky);
        long m = 0, k = 0;
        for (long r = 0; r < n; r++) {
            if (!isnan(y[r])) ky[k++] = y[r];
            if (isnan(x[r]) || isnan(y[r])) continue;
            cx[m] = x[r];
            cy[m] = y[r];
            m++;
        }
        double rho, tau, p;
        assert_int_equal(eps_eval_spearman(cx, cy, m, &rho, NULL), 0);
        assert_int_equal(eps_eval_kendall(cx, cy, m, &tau, NULL), 0);
        expect_close("spearman", name, rho, eps_t_num(json_object_get(set, "spearman")));
        expect_close("kendall", name, tau, eps_t_num(json_object_get(set, "kendall")));
        static const char *pk[3] = {"p90", "p95", "p10"};
        static const double pq[3] = {90, 95, 10};
        for (int q = 0; q < 3; q++) {
            assert_int_equal(eps_eval_percentile(ky, k, pq[q], &p, NULL), 0);
            expect_close(pk[q], name, p, eps_t_num(json_object_get(set, pk[q])));
        }
        eps_eval_table t;
        assert_int_equal(eps_eval_table_compute(x, y, n, 0, &t, NULL), 0);
        expect_table(name, &t, json_object_get(set, "table"));
        assert_int_equal(eps_eval_table_compute(x, y, n, 1, &t, NULL), 0);
        expect_table(name, &t, json_object_get(set, "table_min"));
        free(x);
        free(y);
        free(cx);
        free(cy);
        free(ky);
    }
    json_decref(g);
}

/* Hand-checkable facts that do not need the golden file. */
static void test_stats_basic(void **state)
{
    (void)state;
    double x[5] = {1, 2, 3, 4, 5}, y[5] = {5, 6, 7, 8, 7}, r[5];
    assert_int_equal(eps_eval_rank((double[]){3, 1, 3, 2}, 4, r, NULL), 0);
    assert_true(r[0] == 3.5 && r[1] == 1 && r[2] == 3.5 && r[3] == 2);
    double rho, tau;
    eps_eval_spearman(x, x, 5, &rho, NULL);
    eps_eval_kendall(x, x, 5, &tau, NULL);
    assert_true(fabs(rho - 1.0) < 1e-15 && fabs(tau - 1.0) < 1e-15);
    /* y: one tie (7, 7); concordant 8, discordant 1 of 10 pairs, tau-b =
     * (8 - 1) / sqrt(10 * 9) */
    eps_eval_kendall(x, y, 5, &tau, NULL);
    assert_true(fabs(tau - 7.0 / sqrt(90.0)) < 1e-15);
    double c[3] = {2, 2, 2};
    eps_eval_spearman(c, x, 3, &rho, NULL);
    eps_eval_kendall(x, c, 3, &tau, NULL);
    assert_true(isnan(rho) && isnan(tau));
    /* numpy.percentile([1,2,3,4], 90) = 3.7 */
    double s[4] = {1, 2, 3, 4};
    assert_true(fabs(eps_eval_percentile_sorted(s, 4, 90) - 3.7) < 1e-15);
    assert_true(eps_eval_percentile_sorted(s, 4, 100) == 4 && eps_eval_percentile_sorted(s, 4, 0) == 1);
    assert_true(isnan(eps_eval_percentile_sorted(s, 0, 50)));
}

/* Kendall's O(n log n) count against the O(n^2) definition on random data
 * with ties (n kept small enough for the quadratic loop). */
static void test_kendall_bruteforce(void **state)
{
    (void)state;
    int reps = eps_t_asan() ? 3 : 20;
    for (int rep = 0; rep < reps; rep++) {
        eps_eval_rng g = {(uint64_t)rep + 100};
        long n = 2 + (long)eps_eval_rng_below(&g, 300);
        double *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
        for (long i = 0; i < n; i++) {
            x[i] = (double)eps_eval_rng_below(&g, 1 + (uint64_t)rep % 17);
            y[i] = (double)eps_eval_rng_below(&g, 1 + (uint64_t)rep % 11 * 3);
        }
        long long con = 0, dis = 0, tx = 0, ty = 0;
        for (long i = 0; i < n; i++)
            for (long j = i + 1; j < n; j++) {
                double dx = x[i] - x[j], dy = y[i] - y[j];
                if (dx == 0 && dy == 0) continue;
                if (dx == 0) tx++;
                else if (dy == 0) ty++;
                else if ((dx > 0) == (dy > 0)) con++;
                else dis++;
            }
        double want = (con + dis + tx) && (con + dis + ty) ? (double)(con - dis) / sqrt((double)(con + dis + tx)) /
                                                                 sqrt((double)(con + dis + ty))
                                                           : NAN;
        double tau;
        assert_int_equal(eps_eval_kendall(x, y, n, &tau, NULL), 0);
        if (!eps_t_close(tau, want, 1e-12, 1e-12)) {
            print_error("rep %d n %ld: tau %.17g, brute force %.17g\n", rep, n, tau, want);
            fail();
        }
        free(x);
        free(y);
    }
}

static void test_rng(void **state)
{
    (void)state;
    /* splitmix64 seeded with 0: the published first outputs. */
    eps_eval_rng r = {0};
    assert_true(eps_eval_rng_next(&r) == 0xE220A8397B1DCDAFULL);
    assert_true(eps_eval_rng_next(&r) == 0x6E789E6AA1B965F4ULL);
    /* below(): in range, every value reached. */
    int seen[7] = {0};
    for (int i = 0; i < 700; i++) {
        uint64_t v = eps_eval_rng_below(&r, 7);
        assert_true(v < 7);
        seen[v]++;
    }
    for (int i = 0; i < 7; i++) assert_true(seen[i] > 50);
    eps_eval_rng a = eps_eval_rng_for(1, 0), b = eps_eval_rng_for(1, 1), c = eps_eval_rng_for(1, 0);
    assert_true(a.state != b.state && a.state == c.state);
}

/* ---- selection ------------------------------------------------------------ */

static void test_select_golden(void **state)
{
    (void)state;
    json_t *g = eps_t_load_json("tests/golden/eval.json");
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(g, "select"), i, c) {
        const json_t *gen = json_object_get(c, "gen");
        double *x, *y;
        json_t *set = json_pack("{s:O}", "gen", gen);
        long n = golden_data(set, &x, &y);
        json_decref(set);
        long ns = (long)json_integer_value(json_object_get(gen, "nan_score_every"));
        long nt = (long)json_integer_value(json_object_get(gen, "nan_target_every"));
        for (long r = 0; r < n; r++) {
            if (r % ns == 0) x[r] = NAN;
            if (r % nt == 0) y[r] = NAN;
        }
        eps_eval_select s;
        int sample = (int)json_integer_value(json_object_get(c, "sample"));
        int runs = (int)json_integer_value(json_object_get(c, "runs"));
        uint64_t seed = (uint64_t)json_integer_value(json_object_get(c, "seed"));
        int mn = json_is_true(json_object_get(c, "minimize"));
        assert_int_equal(eps_eval_select_run(x, y, n, sample, runs, seed, mn, &s, NULL), 0);
        const json_t *ref = json_object_get(c, "result");
        expect_close("chosen_mean", "select", s.chosen_mean, eps_t_num(json_object_get(ref, "chosen_mean")));
        expect_close("chosen_std", "select", s.chosen_std, eps_t_num(json_object_get(ref, "chosen_std")));
        expect_close("optimum_mean", "select", s.optimum_mean, eps_t_num(json_object_get(ref, "optimum_mean")));
        expect_close("optimum_std", "select", s.optimum_std, eps_t_num(json_object_get(ref, "optimum_std")));
        expect_close("random_mean", "select", s.random_mean, eps_t_num(json_object_get(ref, "random_mean")));
        expect_close("random_std", "select", s.random_std, eps_t_num(json_object_get(ref, "random_std")));
        expect_close("rank_mean", "select", s.rank_mean, eps_t_num(json_object_get(ref, "rank_mean")));
        expect_close("rank_std", "select", s.rank_std, eps_t_num(json_object_get(ref, "rank_std")));
        assert_int_equal(s.chosen_is_optimum, json_integer_value(json_object_get(ref, "chosen_is_optimum")));
        assert_int_equal(s.pool, json_integer_value(json_object_get(ref, "pool")));
        free(x);
        free(y);
    }
    json_decref(g);
}

static void test_select_properties(void **state)
{
    (void)state;
    double t[50], perfect[50], nan_s[50];
    for (int i = 0; i < 50; i++) t[i] = (i * 37) % 50, perfect[i] = t[i] * 2, nan_s[i] = NAN;
    eps_eval_select s;
    /* A perfect score always finds the sample's optimum. */
    assert_int_equal(eps_eval_select_run(perfect, t, 50, 10, 200, 3, 0, &s, NULL), 0);
    assert_true(s.chosen_mean == s.optimum_mean && s.rank_mean == 1 && s.chosen_is_optimum == 200);
    /* Sample = pool: the optimum is the global best every time. */
    assert_int_equal(eps_eval_select_run(nan_s, t, 50, 50, 5, 3, 0, &s, NULL), 0);
    assert_true(s.optimum_mean == 49 && s.optimum_std == 0);
    /* All-NaN scores: the chosen one is the first drawn = the random pick. */
    assert_true(s.chosen_mean == s.random_mean);
    eps_error e = {0};
    assert_int_equal(eps_eval_select_run(perfect, t, 50, 51, 5, 3, 0, &s, &e), EPS_EINVAL);
    assert_non_null(strstr(e.msg, "--n"));
}

/* ---- CSV reader ------------------------------------------------------------ */

static void test_table_parse(void **state)
{
    (void)state;
    eps_table t;
    eps_error e = {0};
    const char *ok = "\xEF\xBB\xBF" "a,b,c\r\n1,\"x, \"\"y\"\"\nz\",3\r\n\r\n4,,\"\"\n5,6,7";
    assert_int_equal(eps_table_parse(ok, strlen(ok), "ok.csv", &t, &e), 0);
    assert_int_equal(t.ncols, 3);
    assert_int_equal(t.nrows, 3);
    assert_string_equal(t.header[0], "a");
    assert_string_equal(eps_table_cell(&t, 0, 1), "x, \"y\"\nz");
    assert_string_equal(eps_table_cell(&t, 1, 1), "");
    assert_string_equal(eps_table_cell(&t, 1, 2), "");
    assert_string_equal(eps_table_cell(&t, 2, 2), "7");
    assert_int_equal(t.line[0], 2);
    assert_int_equal(t.line[1], 5); /* the quoted newline and a blank line before it */
    assert_int_equal(eps_table_col(&t, "c"), 2);
    assert_int_equal(eps_table_col(&t, "d"), -1);
    eps_table_free(&t);

    static const struct { const char *text, *want; } bad[] = {
        {"", "x.csv:1: empty file"},
        {"\n\n", "x.csv:1: empty file"},
        {"a,b\n1,2\n3\n", "x.csv:3: 1 field, the header has 2"},
        {"a,b\n1,2,3\n", "x.csv:2: more than 2 fields"},
        {"a,b\n1,\"2\n3,4\n", "x.csv:2: unterminated quoted field"},
        {"a,b\n1,\"2\"x\n", "x.csv:2: unexpected character after a closing quote"},
        {"a,b\n1,2\"\n", "x.csv:2: quote inside an unquoted field"},
        {"a,a\n1,2\n", "x.csv:1: duplicate column name 'a'"},
        {"a,\n1,2\n", "x.csv:1: header column 2 has no name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eps_error_clear(&e);
        int rc = eps_table_parse(bad[i].text, strlen(bad[i].text), "x.csv", &t, &e);
        if (rc != EPS_EINVAL || strncmp(e.msg, bad[i].want, strlen(bad[i].want))) {
            print_error("case %zu: rc %d msg '%s', want '%s'\n", i, rc, e.msg, bad[i].want);
            fail();
        }
        assert_null(t.cells);
    }
    /* NUL byte and the column limit */
    eps_error_clear(&e);
    assert_int_equal(eps_table_parse("a\n\0\n", 4, "x.csv", &t, &e), EPS_EINVAL);
    assert_non_null(strstr(e.msg, "NUL"));
    char *wide = malloc(300 * 2 + 2);
    for (int i = 0; i < 300; i++) wide[2 * i] = 'a', wide[2 * i + 1] = ',';
    wide[599] = '\n';
    wide[600] = 0;
    assert_int_equal(eps_table_parse(wide, 600, "w.csv", &t, &e), EPS_ELIMIT);
    assert_non_null(strstr(e.msg, "w.csv:1: more than 256 columns"));
    free(wide);
    /* record length limit */
    size_t big = (size_t)EPS_TABLE_MAX_RECORD + 100;
    char *long_rec = malloc(big + 8);
    memcpy(long_rec, "a\n", 2);
    memset(long_rec + 2, 'x', big);
    long_rec[big + 2] = '\n';
    assert_int_equal(eps_table_parse(long_rec, big + 3, "l.csv", &t, &e), EPS_ELIMIT);
    assert_non_null(strstr(e.msg, "l.csv:2: record longer"));
    free(long_rec);
    /* missing file */
    assert_int_equal(eps_table_read("/nonexistent/x.csv", &t, &e), EPS_EIO);
    assert_non_null(strstr(e.msg, "/nonexistent/x.csv"));
}

static void test_table_number(void **state)
{
    (void)state;
    double v = 0;
    assert_int_equal(eps_table_number("", &v), 1);
    assert_true(isnan(v));
    assert_int_equal(eps_table_number(" NaN ", &v), 1);
    assert_int_equal(eps_table_number("1.5e-3", &v), 0);
    assert_true(v == 1.5e-3);
    assert_int_equal(eps_table_number(" -2 ", &v), 0);
    assert_true(v == -2);
    assert_int_equal(eps_table_number("inf", &v), 0);
    assert_true(isinf(v));
    assert_int_equal(eps_table_number("1.5x", &v), -1);
    assert_int_equal(eps_table_number("abc", &v), -1);
    assert_int_equal(eps_table_number("nan(123)", &v), -1);
}

/* The real NLP table: quoted JSON with doubled quotes in the last column. */
static void test_table_wikitext(void **state)
{
    (void)state;
    char path[4096];
    eps_t_shared_file(path, sizeof path, "data/nlp/wikitext2_final.csv",
                      "shared data directory absent (EPS_SHARED / ../shared)");
    eps_table t;
    eps_error e = {0};
    assert_int_equal(eps_table_read(path, &t, &e), 0);
    assert_int_equal(t.nrows, 345);
    int c = eps_table_col(&t, "recepie_json");
    assert_true(c >= 0);
    for (long r = 0; r < t.nrows; r++) {
        json_error_t je;
        json_t *j = json_loads(eps_table_cell(&t, r, c), 0, &je);
        assert_true(json_is_object(j));
        json_decref(j);
    }
    eps_table_free(&t);
}

/* ---- search ----------------------------------------------------------------- */

typedef struct {
    long n;
    int code[15625];
    double target[15625];
    double score[15625];
    long calls;
} fixture_pool;

static int fixture_score(void *ctx, long i, double *s, eps_error *err)
{
    (void)err;
    fixture_pool *p = ctx;
    p->calls++;
    *s = p->score[i];
    return 0;
}

/* The synthetic NB201 table (tests/data/eval/nb201_*.csv; index = cell code). */
static fixture_pool *load_fixture_pool(void)
{
    fixture_pool *p = calloc(1, sizeof *p);
    char path[4096];
    eps_table t, s;
    snprintf(path, sizeof path, "%s/tests/data/eval/nb201_truth.csv", eps_t_root());
    assert_int_equal(eps_table_read(path, &t, NULL), 0);
    snprintf(path, sizeof path, "%s/tests/data/eval/nb201_scores.csv", eps_t_root());
    assert_int_equal(eps_table_read(path, &s, NULL), 0);
    assert_int_equal(t.nrows, s.nrows);
    for (long r = 0; r < t.nrows; r++) {
        p->code[r] = atoi(eps_table_cell(&t, r, 0));
        assert_int_equal(eps_table_number(eps_table_cell(&t, r, 2), &p->target[r]), 0);
        assert_string_equal(eps_table_cell(&t, r, 0), eps_table_cell(&s, r, 0));
        assert_true(eps_table_number(eps_table_cell(&s, r, 2), &p->score[r]) >= 0);
    }
    p->n = t.nrows;
    eps_table_free(&t);
    eps_table_free(&s);
    return p;
}

static void test_search_properties(void **state)
{
    (void)state;
    fixture_pool *fp = load_fixture_pool();
    eps_search_pool pool = {fp->n, fp->code, fp->target, 0, fixture_score, fp};
    double gmax = -INFINITY;
    for (long i = 0; i < fp->n; i++) gmax = fmax(gmax, fp->target[i]);
    int runs = eps_t_asan() ? 5 : 30;
    long budget = 150;
    double *c1 = malloc((size_t)runs * budget * sizeof *c1), *c2 = malloc((size_t)runs * budget * sizeof *c2);
    for (int algo = 0; algo < 2; algo++)
        for (int warm = 0; warm < 2; warm++) {
            eps_search_opts o = {algo, warm ? 300 : 0, budget, runs, 42, 64, 10};
            assert_int_equal(eps_search_run(&pool, &o, c1, NULL), 0);
            assert_int_equal(eps_search_run(&pool, &o, c2, NULL), 0);
            assert_memory_equal(c1, c2, (size_t)runs * budget * sizeof *c1); /* deterministic */
            for (int r = 0; r < runs; r++)
                for (long s = 0; s < budget; s++) {
                    double v = c1[r * budget + s];
                    assert_true(v <= gmax);
                    if (s) assert_true(v >= c1[r * budget + s - 1]); /* best so far never drops */
                }
            o.seed = 43;
            assert_int_equal(eps_search_run(&pool, &o, c2, NULL), 0);
            assert_true(memcmp(c1, c2, (size_t)runs * budget * sizeof *c1) != 0);
        }
    /* Random search, warm-up = the whole pool, a perfect score: the first
     * look-up is the global optimum. */
    for (long i = 0; i < fp->n; i++) fp->score[i] = fp->target[i];
    eps_search_opts o = {EPS_SEARCH_RANDOM, 100000, 1, runs, 1, 64, 10};
    assert_int_equal(eps_search_run(&pool, &o, c1, NULL), 0);
    for (int r = 0; r < runs; r++) assert_true(c1[r] == gmax);
    /* Minimising: the curve is the best (lowest) so far. */
    eps_search_pool mp = pool;
    mp.minimize = 1;
    double gmin = INFINITY;
    for (long i = 0; i < fp->n; i++) gmin = fmin(gmin, fp->target[i]);
    for (long i = 0; i < fp->n; i++) fp->score[i] = -fp->target[i];
    o.algo = EPS_SEARCH_EVOLUTION;
    o.budget = 100;
    assert_int_equal(eps_search_run(&mp, &o, c1, NULL), 0);
    for (int r = 0; r < runs; r++) {
        assert_true(c1[r * 100] == gmin);
        for (long s = 1; s < 100; s++) assert_true(c1[r * 100 + s] <= c1[r * 100 + s - 1]);
    }
    /* Budget beyond the pool: random search flattens at the optimum. */
    fixture_pool *small = calloc(1, sizeof *small);
    for (int i = 0; i < 5; i++) small->code[i] = i * 7, small->target[i] = i, small->score[i] = NAN;
    eps_search_pool sp = {5, small->code, small->target, 0, fixture_score, small};
    eps_search_opts so = {EPS_SEARCH_RANDOM, 0, 20, 3, 9, 64, 10};
    assert_int_equal(eps_search_run(&sp, &so, c1, NULL), 0);
    for (int r = 0; r < 3; r++) assert_true(c1[r * 20 + 4] == 4 && c1[r * 20 + 19] == 4);
    /* Evolution on a pool with no neighbours in it still terminates. */
    so.algo = EPS_SEARCH_EVOLUTION;
    assert_int_equal(eps_search_run(&sp, &so, c1, NULL), 0);
    eps_error e = {0};
    so.budget = 0;
    assert_int_equal(eps_search_run(&sp, &so, c1, &e), EPS_EINVAL);
    assert_non_null(strstr(e.msg, "--budget"));
    free(small);
    free(c1);
    free(c2);
    free(fp);
}

/* Warm-up scoring is free but only for the drawn candidates: the score
 * callback is asked at most once per architecture. */
static void test_search_score_calls(void **state)
{
    (void)state;
    fixture_pool *fp = load_fixture_pool();
    eps_search_pool pool = {fp->n, fp->code, fp->target, 0, fixture_score, fp};
    double *c = malloc(5 * 50 * sizeof *c);
    eps_search_opts o = {EPS_SEARCH_EVOLUTION, 100, 50, 5, 7, 64, 10};
    assert_int_equal(eps_search_run(&pool, &o, c, NULL), 0);
    assert_true(fp->calls >= 100 && fp->calls <= 500);
    assert_true(fp->calls <= fp->n);
    free(c);
    free(fp);
}

/* ---- CLI ------------------------------------------------------------------- */

static char *run(const char *args, int *code)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s", eps_t_root(), eps_t_bin(), args);
    return eps_t_run(cmd, code);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_cli_help(void **state)
{
    (void)state;
    const char *cmds[] = {"eval", "select", "search", "search-weights"};
    for (int i = 0; i < 4; i++) {
        char a[64];
        int code;
        snprintf(a, sizeof a, "%s --help", cmds[i]);
        char *out = run(a, &code);
        assert_int_equal(code, 0);
        assert_non_null(strstr(out, "usage: epsinas"));
        assert_non_null(strstr(out, cmds[i]));
        free(out);
    }
    int code;
    char *out = run("--help", &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "search-weights"));
    free(out);
}

/* ---- the batch study's statistics on a hand-computed fixture ------------ */

/* tests/data/eval/study_{scores,truth}.csv: 30 scored rows with target
 * 1..30 and score = target, except targets 28, 29, 30 scored 100, 300, 200
 * (one swapped pair), plus two NaN-score rows with targets 0 and 31.
 * By hand:
 *   rho   = 1 - 6 * 2 / (30 * (30^2 - 1)) = 1 - 12/26970
 *   tau   = (434 - 1) / 435 (one discordant pair of C(30,2) = 435)
 *   top-10%: p90 of 1..30 = 27.1 -> targets 28, 29, 30 with score ranks
 *            1, 3, 2: rho = 1 - 6 * 2 / (3 * 8) = 0.5, tau = (2 - 1) / 3
 *   top-10%/top-10%: score p90 = 27 + 0.1 * 73 = 34.3, the 3 rows above it
 *            are the 3 top rows: 100 %; top-64/top-5%: p95 = 28.55 -> 2
 *   NaN last (32 rows): the NaN rows share rank 1.5; target ranks 1 (0)
 *            and 32 (31); centred sums Sxy = 4493/2, Sxx = 5455/2,
 *            Syy = 2728: rho = 4493 / sqrt(5455 * 5456). */
static void test_study_fixture(void **state)
{
    (void)state;
    const double rho = 1.0 - 12.0 / 26970.0, tau = 433.0 / 435.0, nan_last = 4493.0 / sqrt(5455.0 * 5456.0);
    double score[32], target[32];
    for (int i = 0; i < 27; i++) score[i] = target[i] = i + 1;
    score[27] = 100, score[28] = 300, score[29] = 200;
    target[27] = 28, target[28] = 29, target[29] = 30;
    score[30] = score[31] = NAN;
    target[30] = 0, target[31] = 31;
    eps_eval_table t;
    assert_int_equal(eps_eval_table_compute(score, target, 32, 0, &t, NULL), 0);
    assert_int_equal(t.n, 30);
    assert_int_equal(t.n_nan_score, 2);
    expect_close("rho", "study", t.rho, rho);
    expect_close("tau", "study", t.tau, tau);
    assert_int_equal(t.n_top, 3);
    expect_close("rho_top", "study", t.rho_top, 0.5);
    expect_close("tau_top", "study", t.tau_top, 1.0 / 3.0);
    expect_close("top10_top10", "study", t.top10_top10, 100.0);
    assert_int_equal(t.top64_top5, 2);
    assert_int_equal(t.n_nan_last, 32);
    expect_close("rho_nan_last", "study", t.rho_nan_last, nan_last);
    /* a NaN target leaves the row out of both figures */
    target[31] = NAN;
    double r;
    long used;
    assert_int_equal(eps_eval_spearman_nan_last(score, target, 32, &r, &used, NULL), 0);
    assert_int_equal(used, 31);
    /* NaN-last never drops a row: all NaN scores -> constant -> NaN (scipy) */
    for (int i = 0; i < 32; i++) score[i] = NAN;
    assert_int_equal(eps_eval_spearman_nan_last(score, target, 32, &r, &used, NULL), 0);
    assert_true(isnan(r));

    /* the same through `epsinas eval`, text and JSON */
    int code;
    char *out = run("eval --scores tests/data/eval/study_scores.csv --truth tests/data/eval/study_truth.csv --json", &code);
    assert_int_equal(code, 0);
    json_t *o = json_loads(out, 0, NULL);
    assert_non_null(o);
    expect_close("cli rho", "study", json_real_value(json_object_get(o, "rho")), rho);
    expect_close("cli rho_nan_last", "study", json_real_value(json_object_get(o, "rho_nan_last")), nan_last);
    assert_int_equal(json_integer_value(json_object_get(o, "n_nan_last")), 32);
    json_decref(o);
    free(out);
    out = run("eval --scores tests/data/eval/study_scores.csv --truth tests/data/eval/study_truth.csv", &code);
    assert_int_equal(code, 0);
    if (!strstr(out, "NaN ranked last  0.8236")) fail_msg("text output lacks the NaN-last rho:\n%s", out);
    free(out);
}

/* Bad input: exit 2 and ONE line on stderr that names the problem. */
static void test_cli_errors(void **state)
{
    (void)state;
    static const struct { const char *args, *want; } cases[] = {
        {"eval --scores tests/data/eval/empty.csv --truth tests/data/eval/truth_small.csv",
         "tests/data/eval/empty.csv:1: empty file"},
        {"eval --scores tests/data/eval/scores_small.csv --truth tests/data/eval/empty.csv", "empty.csv:1: empty file"},
        {"eval --scores tests/data/eval/scores_small.csv --truth tests/data/eval/truth_noarch.csv",
         "truth_noarch.csv: no column 'arch'"},
        {"eval --scores tests/data/eval/scores_small.csv --truth tests/data/eval/truth_small.csv --target nope",
         "truth_small.csv: no column 'nope'"},
        {"eval --scores tests/data/eval/scores_small.csv --truth tests/data/eval/truth_small.csv --score-column x",
         "scores_small.csv: no column 'x'"},
        {"eval --scores tests/data/eval/scores_small.csv --truth tests/data/eval/truth_nooverlap.csv",
         "no architecture in common"},
        {"eval --scores tests/data/eval/scores_badnum.csv --truth tests/data/eval/truth_small.csv",
         "scores_badnum.csv:3: column 'epsilon': 'zero point one' is not a number"},
        {"eval --scores tests/data/eval/scores_badquote.csv --truth tests/data/eval/truth_small.csv",
         "scores_badquote.csv:3: unterminated quoted field"},
        {"eval --scores tests/data/eval/scores_fields.csv --truth tests/data/eval/truth_small.csv",
         "scores_fields.csv:3: 5 fields, the header has 6"},
        {"eval --scores tests/data/eval/missing.csv --truth tests/data/eval/truth_small.csv", "cannot open 'tests/data/eval/missing.csv'"},
        {"eval --truth tests/data/eval/truth_small.csv", "missing --scores"},
        {"eval --scores a --truth b --bogus", "unknown option '--bogus'"},
        {"eval --scores a --truth b --join name", "--join must be"},
        {"select --scores tests/data/eval/scores_small.csv --truth tests/data/eval/truth_small.csv",
         "missing --n"},
        {"select --scores tests/data/eval/scores_small.csv --truth tests/data/eval/truth_small.csv --n 50",
         "--n must be in 1..11"},
        {"select --scores tests/data/eval/scores_small.csv --truth tests/data/eval/truth_small.csv --n x",
         "--n must be an integer"},
        {"search --truth tests/data/eval/truth_small.csv --scores tests/data/eval/scores_small.csv",
         "truth_small.csv:2: column 'arch'"},
        {"search --space nb101 --truth tests/data/eval/nb201_truth.csv", "--space 'nb101' is not supported"},
        {"search --truth tests/data/eval/nb201_truth.csv --algo greedy", "unknown algorithm 'greedy'"},
        {"search --truth tests/data/eval/nb201_truth.csv --budget 0", "--budget must be an integer in 1..1000000"},
        {"search --truth tests/data/eval/nb201_truth.csv --scores tests/data/eval/truth_noarch.csv",
         "truth_noarch.csv: no column 'arch'"},
        {"search", "missing --truth"},
        {"search-weights --window 3:1", "--window must be A:B"},
        {"search-weights --archs tests/data/eval/truth_noarch.csv", "neither one architecture per line"},
        {"search-weights --sample 0", "--sample must be an integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char a[2048];
        int code;
        snprintf(a, sizeof a, "%s 2>&1 >/dev/null", cases[i].args);
        char *err = run(a, &code);
        if (code != 2 || count_lines(err) != 1 || !strstr(err, cases[i].want)) {
            print_error("case %zu (%s): exit %d, stderr '%s', want exit 2 and '%s'\n", i, cases[i].args, code, err,
                        cases[i].want);
            fail();
        }
        free(err);
    }
}

/* eval --json on the CSV fixtures against scipy (join done in Python). */
static void test_cli_eval_golden(void **state)
{
    (void)state;
    json_t *g = eps_t_load_json("tests/golden/eval.json");
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(g, "cli"), i, c) {
        char a[4096] = "eval --json";
        size_t k;
        const json_t *arg;
        json_array_foreach(json_object_get(c, "args"), k, arg) {
            strncat(a, " '", sizeof a - strlen(a) - 1);
            strncat(a, json_string_value(arg), sizeof a - strlen(a) - 1);
            strncat(a, "'", sizeof a - strlen(a) - 1);
        }
        int code;
        char *out = run(a, &code);
        const char *name = json_string_value(json_object_get(c, "name"));
        if (code != 0) {
            print_error("%s: exit %d: %s\n", name, code, out);
            fail();
        }
        json_error_t je;
        json_t *o = json_loads(out, 0, &je);
        assert_non_null(o);
        const json_t *rows = json_object_get(o, "rows");
        assert_int_equal(json_integer_value(json_object_get(rows, "matched")),
                         json_integer_value(json_object_get(c, "matched")));
        assert_int_equal(json_integer_value(json_object_get(rows, "unmatched_scores")),
                         json_integer_value(json_object_get(c, "unmatched_scores")));
        assert_int_equal(json_integer_value(json_object_get(rows, "unmatched_truth")),
                         json_integer_value(json_object_get(c, "unmatched_truth")));
        const json_t *t = json_object_get(c, "table");
        assert_int_equal(json_integer_value(json_object_get(rows, "used")), json_integer_value(json_object_get(t, "n")));
        assert_int_equal(json_integer_value(json_object_get(rows, "nan_score")),
                         json_integer_value(json_object_get(t, "n_nan_score")));
        assert_int_equal(json_integer_value(json_object_get(rows, "nan_target")),
                         json_integer_value(json_object_get(t, "n_nan_target")));
        static const char *keys[] = {"rho", "tau", "rho_top10", "tau_top10", "top10_top10"};
        for (int q = 0; q < 5; q++)
            expect_close(keys[q], name, eps_t_num(json_object_get(o, keys[q])), eps_t_num(json_object_get(t, keys[q])));
        assert_int_equal(json_integer_value(json_object_get(o, "top64_top5")),
                         json_integer_value(json_object_get(t, "top64_top5")));
        assert_int_equal(json_integer_value(json_object_get(o, "n_top10")),
                         json_integer_value(json_object_get(t, "n_top10")));
        json_decref(o);
        free(out);
    }
    json_decref(g);
}

/* The human table and the SVG plot. */
static void test_cli_eval_text_plot(void **state)
{
    (void)state;
    int code;
    char svg[256], a[512];
    snprintf(svg, sizeof svg, "/tmp/eps_test_eval_scatter_%d.svg", (int)getpid());
    snprintf(a, sizeof a,
             "eval --scores tests/data/eval/nb201_scores.csv --truth tests/data/eval/nb201_truth.csv --plot %s", svg);
    char *out = run(a, &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "target cifar10_test (higher is better)"));
    assert_non_null(strstr(out, "top-64/top-5%"));
    free(out);
    char *buf = eps_t_read_file(svg);
    assert_non_null(buf);
    assert_non_null(strstr(buf, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_non_null(strstr(buf, "NaN scores not shown"));
    assert_non_null(strstr(buf, "<circle"));
    assert_non_null(strstr(buf, "</svg>"));
    assert_null(strstr(buf, "href")); /* self-contained */
    free(buf);
    remove(svg);
}

static void test_cli_select(void **state)
{
    (void)state;
    int code;
    const char *a = "select --scores tests/data/eval/nb201_scores.csv --truth tests/data/eval/nb201_truth.csv "
                    "--n 20 --runs 100 --seed 5 --json";
    char *o1 = run(a, &code);
    assert_int_equal(code, 0);
    char *o2 = run(a, &code);
    assert_string_equal(o1, o2); /* deterministic for a seed */
    json_error_t je;
    json_t *j = json_loads(o1, 0, &je);
    assert_non_null(j);
    double chosen = eps_t_num(json_object_get(json_object_get(j, "chosen"), "mean"));
    double opt = eps_t_num(json_object_get(json_object_get(j, "optimum"), "mean"));
    double rnd = eps_t_num(json_object_get(json_object_get(j, "random"), "mean"));
    /* the synthetic score is informative: better than random, at most the optimum */
    assert_true(chosen > rnd && chosen <= opt);
    assert_int_equal(json_integer_value(json_object_get(j, "pool")), 600);
    json_decref(j);
    free(o1);
    free(o2);
}

static void test_cli_search(void **state)
{
    (void)state;
    int code;
    char csv[256], svg[256], a[1024];
    snprintf(csv, sizeof csv, "/tmp/eps_test_curves_%d.csv", (int)getpid());
    snprintf(svg, sizeof svg, "/tmp/eps_test_curves_%d.svg", (int)getpid());
    snprintf(a, sizeof a,
             "search --truth tests/data/eval/nb201_truth.csv --scores tests/data/eval/nb201_scores.csv "
             "--algo random,evolution --warmup 0,200 --budget 100 --runs 20 --seed 3 --out %s --plot %s",
             csv, svg);
    char *out = run(a, &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "search space: 600 architectures"));
    assert_non_null(strstr(out, "evolution, warm-up 200"));
    assert_non_null(strstr(out, "\n    100"));
    free(out);
    eps_table t;
    assert_int_equal(eps_table_read(csv, &t, NULL), 0);
    assert_int_equal(t.nrows, 4 * 100);
    assert_int_equal(eps_table_col(&t, "q75"), 5);
    eps_table_free(&t);
    char *buf = eps_t_read_file(svg);
    assert_non_null(buf);
    assert_non_null(strstr(buf, "<polyline"));
    assert_non_null(strstr(buf, "random, no warm-up"));
    assert_non_null(strstr(buf, "</svg>"));
    free(buf);
    remove(csv);
    remove(svg);
}

/* search-weights on two cells: a conv-only cell underflows at w = 1e-7
 * (NaN, spec section 7), a cell with a skip path does not. */
static void test_cli_search_weights(void **state)
{
    (void)state;
    int code;
    char *out = run("search-weights --archs tests/data/eval/nb201_two_archs.txt --window -7:-6 --threads 1 --json",
                    &code);
    assert_int_equal(code, 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    const json_t *pairs = json_object_get(j, "pairs");
    assert_int_equal(json_array_size(pairs), 1);
    const json_t *p0 = json_array_get(pairs, 0);
    assert_true(json_real_value(json_object_get(p0, "w1")) == 1e-7);
    assert_true(json_real_value(json_object_get(p0, "w2")) == 1e-6);
    assert_true(json_real_value(json_object_get(p0, "nan_fraction")) == 0.5);
    assert_true(json_is_null(json_object_get(j, "rule_pair")));
    json_decref(j);
    free(out);
    out = run("search-weights --archs tests/data/eval/nb201_two_archs.txt --window -3:-1 --threads 2", &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "rule (first pair by a, then b, with < 10% NaN): (0.001, 0.01)"));
    free(out);
}

/* search without --scores: the warm-up candidates are scored by the library. */
static void test_cli_search_scoring(void **state)
{
    (void)state;
    int code;
    char *out = run("search --truth tests/data/eval/nb201_truth.csv --algo random --warmup 2 --runs 1 --budget 5 "
                    "--threads 1 2>&1",
                    &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "scored 2 warm-up candidates"));
    assert_non_null(strstr(out, "search space: 600 architectures"));
    free(out);
}

/* Real data (skipped without ../shared): the NLP join on canonical JSON
 * (345 rows, 291 distinct recipes) with a scores file built from it. */
static void test_cli_nlp_join_real(void **state)
{
    (void)state;
    char path[4096];
    eps_t_shared_file(path, sizeof path, "data/nlp/wikitext2_final.csv",
                      "shared data directory absent (EPS_SHARED / ../shared)");
    eps_table t;
    assert_int_equal(eps_table_read(path, &t, NULL), 0);
    int rc_col = eps_table_col(&t, "recepie_json"), p_col = eps_table_col(&t, "num_params");
    char sp[256];
    snprintf(sp, sizeof sp, "/tmp/eps_test_nlp_scores_%d.csv", (int)getpid());
    FILE *f = fopen(sp, "w");
    assert_non_null(f);
    fprintf(f, "index,arch,epsilon\n");
    /* Score = parameter count, re-serialised recipe (different key order
     * and spacing than the truth file) so the join must canonicalise. */
    for (long r = 0; r < t.nrows; r++) {
        json_t *j = json_loads(eps_table_cell(&t, r, rc_col), 0, NULL);
        char *s = json_dumps(j, JSON_INDENT(1));
        fprintf(f, "%ld,\"", r);
        for (char *p = s; *p; p++) {
            if (*p == '"') fputc('"', f);
            fputc(*p, f);
        }
        fprintf(f, "\",%s\n", eps_table_cell(&t, r, p_col));
        free(s);
        json_decref(j);
    }
    fclose(f);
    eps_table_free(&t);
    char a[8800];
    snprintf(a, sizeof a,
             "eval --json --scores %s --truth '%s' --truth-arch-column recepie_json --target final_test_loss "
             "--minimize",
             sp, path);
    int code;
    char *out = run(a, &code);
    assert_int_equal(code, 0);
    json_t *o = json_loads(out, 0, NULL);
    assert_non_null(o);
    const json_t *rows = json_object_get(o, "rows");
    assert_int_equal(json_integer_value(json_object_get(rows, "matched")), 345);
    assert_int_equal(json_integer_value(json_object_get(rows, "unmatched_truth")), 0);
    assert_int_equal(json_integer_value(json_object_get(rows, "nan_target")), 4);
    assert_int_equal(json_integer_value(json_object_get(rows, "used")), 341);
    json_decref(o);
    free(out);
    remove(sp);
}

EPS_T_MAIN(NULL, NULL,
        cmocka_unit_test(test_stats_basic),
        cmocka_unit_test(test_study_fixture),
        cmocka_unit_test(test_stats_golden),
        cmocka_unit_test(test_kendall_bruteforce),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_select_golden),
        cmocka_unit_test(test_select_properties),
        cmocka_unit_test(test_table_parse),
        cmocka_unit_test(test_table_number),
        cmocka_unit_test(test_table_wikitext),
        cmocka_unit_test(test_search_properties),
        cmocka_unit_test(test_search_score_calls),
        cmocka_unit_test(test_cli_help),
        cmocka_unit_test(test_cli_errors),
        cmocka_unit_test(test_cli_eval_golden),
        cmocka_unit_test(test_cli_eval_text_plot),
        cmocka_unit_test(test_cli_select),
        cmocka_unit_test(test_cli_search),
        cmocka_unit_test(test_cli_search_weights),
        cmocka_unit_test(test_cli_search_scoring),
        cmocka_unit_test(test_cli_nlp_join_real))
