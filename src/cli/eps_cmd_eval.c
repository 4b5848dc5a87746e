/* eps_cmd_eval.c — `epsinas eval` (the paper's correlation table, spec §6)
 * and `select` (Table 3): their options, help and output. The join of the
 * score and truth tables is src/eval/eps_join.c, the numbers eps_eval.c,
 * the plot eps_plot.c; `search` and `search-weights` are eps_cmd_search.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "eps_cli_common.h"
#include "epsinas/eval/eval.h"
#include "epsinas/eval/join.h"
#include "epsinas/eval/plot.h"

/* Options common to eval and select. */
#define JOIN_OPTS(j, join_s, minimize)                                                                     \
    {"--scores", 1, &(j).scores_path, NULL}, {"--truth", 1, &(j).truth_path, NULL},                     \
        {"--target", 1, &(j).target, NULL}, {"--minimize", 0, NULL, &(minimize)},                         \
        {"--join", 1, &(join_s), NULL}, {"--truth-arch-column", 1, &(j).truth_key, NULL},                 \
        {"--scores-arch-column", 1, &(j).scores_key, NULL}, {"--score-column", 1, &(j).score_col, NULL}

static int join_mode(const char *cmd, const char *s, eps_join *j)
{
    if (!s || !strcmp(s, "arch")) return -1;
    if (!strcmp(s, "index")) {
        j->by_index = 1;
        return -1;
    }
    return eps_cli_report(cmd, EPS_EINVAL, "--join must be 'arch' or 'index', got '%.40s'", s);
}

/* The join both commands read; -1 when loaded, else the exit code (printed,
 * j freed). */
static int load_join(const char *cmd, eps_join *j)
{
    if (!j->scores_path) return eps_cli_report(cmd, EPS_EINVAL, "missing --scores FILE (a CSV written by 'epsinas sweep')");
    if (!j->truth_path)
        return eps_cli_report(cmd, EPS_EINVAL, "missing --truth FILE (a CSV with the trained accuracy/loss)");
    eps_error e = {0};
    if (eps_join_load(j, &e) == 0) return -1;
    eps_join_free(j);
    return eps_cli_report_err(cmd, &e);
}

#define JOIN_HELP                                                                                          \
    "  --scores FILE             scores CSV ('epsinas sweep' output: index,arch,epsilon,...;\n"            \
    "                            epsilon empty or nan = NaN)\n"                                            \
    "  --truth FILE              truth CSV, e.g. ../shared/data/nb201/dev_accuracy.csv\n"                  \
    "  --target COLUMN           truth column to predict (default: the first numeric column\n"             \
    "                            after 'arch', e.g. cifar10_test)\n"                                       \
    "  --minimize                the target is a loss (lower is better), e.g. final_test_loss\n"           \
    "  --join arch|index         join on the architecture (default) or on the 'index' column\n"            \
    "  --truth-arch-column NAME  truth column holding the architecture (default arch;\n"                   \
    "                            NAS-Bench-NLP: recepie_json)\n"                                           \
    "  --scores-arch-column NAME scores column holding the architecture (default arch)\n"                  \
    "  --score-column NAME       scores column holding the score (default epsilon)\n"                      \
    "Architectures are joined by exact string; values that are JSON objects (NLP\n"                        \
    "recipes) are compared in compact sorted-key form. Every truth row with a score\n"                     \
    "is one row (a recipe trained twice counts twice).\n"

/* ======================================================================
 * epsinas eval
 * ====================================================================== */

static void eval_help(FILE *f)
{
    fprintf(f,
            "usage: epsinas eval --scores SCORES.csv --truth TRUTH.csv [--target COLUMN] [--minimize]\n"
            "                    [--json] [--plot FILE.svg]\n\n"
            "How well the scores rank architectures by their trained result: the paper's table\n"
            "(spec section 6), on the rows where both score and target are numbers:\n"
            "  rho, tau          Spearman rho (average ranks for ties) and Kendall tau-b,\n"
            "                    as scipy.stats.spearmanr / kendalltau\n"
            "  NaN ranked last   Spearman rho over every row with a target, NaN scores tied\n"
            "                    below all others (as NAS libraries report a whole space;\n"
            "                    JSON rho_nan_last)\n"
            "  top-10%%           rho, tau on the rows whose target is above its 90th percentile\n"
            "  top-10%%/top-10%%   |target > p90 and score > p90| / |score > p90| x 100\n"
            "  top-64/top-5%%     of the 64 highest scores, how many have target > p95\n"
            "Percentiles as numpy.percentile (linear interpolation).\n"
            "With --minimize (a loss: NAS-Bench-NLP final_test_loss) rho and tau are reported\n"
            "against the loss itself (so a good score gives a NEGATIVE rho, as in the paper),\n"
            "and 'top' means lowest loss: the top-k statistics use -target.\n\n"
            "options:\n" JOIN_HELP
            "  --json                    machine-readable output (null = undefined)\n"
            "  --plot FILE.svg           scatter plot of log10(score) vs target\n\n"
            "examples:\n"
            "  epsinas eval --scores nb201.csv --truth ../shared/data/nb201/dev_accuracy.csv\n"
            "  epsinas eval --scores nlp.csv --truth ../shared/data/nlp/wikitext2_final.csv \\\n"
            "      --truth-arch-column recepie_json --target final_test_loss --minimize\n");
}

int eps_cmd_eval(int argc, char **argv)
{
    const char *cmd = "eval";
    eps_join j = {0};
    int minimize = 0, json = 0;
    const char *join_s = NULL, *plot = NULL;
    const eps_cli_opt specs[] = {JOIN_OPTS(j, join_s, minimize),
                              {"--json", 0, NULL, &json},
                              {"--plot", 1, &plot, NULL},
                              {NULL, 0, NULL, NULL}};
    int rc = eps_cli_parse_opts(cmd, argc, argv, specs, eval_help, NULL);
    if (rc >= 0) return rc;
    if ((rc = join_mode(cmd, join_s, &j)) >= 0) return rc;
    if ((rc = load_join(cmd, &j)) >= 0) return rc;
    eps_eval_table t;
    eps_error e = {0};
    if (eps_eval_table_compute(j.score, j.target_v, j.n, minimize, &t, &e) < 0) {
        rc = eps_cli_report_err(cmd, &e);
        eps_join_free(&j);
        return rc;
    }
    long scored = j.n - t.n_nan_score;
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "scores", json_string(j.st.name));
        json_object_set_new(o, "truth", json_string(j.tt.name));
        json_object_set_new(o, "target", json_string(j.target_name));
        json_object_set_new(o, "minimize", json_boolean(minimize));
        json_object_set_new(o, "join", json_string(j.by_index ? "index" : "arch"));
        json_t *rows = json_object();
        json_object_set_new(rows, "scores", json_integer(j.n_scores));
        json_object_set_new(rows, "truth", json_integer(j.n_truth));
        json_object_set_new(rows, "matched", json_integer(j.n));
        json_object_set_new(rows, "unmatched_scores", json_integer(j.unmatched_scores));
        json_object_set_new(rows, "unmatched_truth", json_integer(j.unmatched_truth));
        json_object_set_new(rows, "duplicate_truth", json_integer(j.dup_truth));
        json_object_set_new(rows, "scored", json_integer(scored));
        json_object_set_new(rows, "nan_score", json_integer(t.n_nan_score));
        json_object_set_new(rows, "nan_target", json_integer(t.n_nan_target));
        json_object_set_new(rows, "used", json_integer(t.n));
        json_object_set_new(o, "rows", rows);
        json_object_set_new(o, "rho", eps_cli_jnum(t.rho));
        json_object_set_new(o, "tau", eps_cli_jnum(t.tau));
        json_object_set_new(o, "rho_nan_last", eps_cli_jnum(t.rho_nan_last));
        json_object_set_new(o, "n_nan_last", json_integer(t.n_nan_last));
        json_object_set_new(o, "rho_top10", eps_cli_jnum(t.rho_top));
        json_object_set_new(o, "tau_top10", eps_cli_jnum(t.tau_top));
        json_object_set_new(o, "n_top10", json_integer(t.n_top));
        json_object_set_new(o, "top10_top10", eps_cli_jnum(t.top10_top10));
        json_object_set_new(o, "n_score_top10", json_integer(t.n_score_top));
        json_object_set_new(o, "n_both_top10", json_integer(t.n_both_top));
        json_object_set_new(o, "top64_top5", json_integer(t.top64_top5));
        json_object_set_new(o, "top64_k", json_integer(t.top64_k));
        json_t *th = json_object();
        json_object_set_new(th, "target_p90", eps_cli_jnum(t.target_p90));
        json_object_set_new(th, "target_p95", eps_cli_jnum(t.target_p95));
        json_object_set_new(th, "score_p90", eps_cli_jnum(t.score_p90));
        json_object_set_new(th, "units", json_string(minimize ? "negated target (better = higher)" : "target"));
        json_object_set_new(o, "thresholds", th);
        eps_cli_print_json(o);
        json_decref(o);
    } else {
        char a[32], b[32];
        printf("scores %s (%ld rows) vs truth %s (%ld rows), joined on %s\n", j.st.name, j.n_scores, j.tt.name,
               j.n_truth, j.by_index ? "index" : "architecture");
        printf("target %s (%s is better)\n", j.target_name, minimize ? "lower" : "higher");
        printf("rows: %ld matched (%ld score rows and %ld truth rows unmatched)\n", j.n, j.unmatched_scores,
               j.unmatched_truth);
        if (j.dup_truth) printf("      %ld truth rows repeat an earlier architecture (each counted)\n", j.dup_truth);
        printf("      %ld scored, %ld NaN score, %ld NaN target -> %ld used\n\n", scored, t.n_nan_score,
               t.n_nan_target, t.n);
        printf("                   rho      tau\n");
        eps_cli_fmt_stat(a, sizeof a, t.rho, "%7.4f");
        eps_cli_fmt_stat(b, sizeof b, t.tau, "%7.4f");
        printf("global         %7s  %7s\n", a, b);
        eps_cli_fmt_stat(a, sizeof a, t.rho_nan_last, "%7.4f");
        printf("NaN ranked last %6s           (all %ld rows with a target; NAS libraries' convention)\n", a,
               t.n_nan_last);
        eps_cli_fmt_stat(a, sizeof a, t.rho_top, "%7.4f");
        eps_cli_fmt_stat(b, sizeof b, t.tau_top, "%7.4f");
        printf("top-10%%        %7s  %7s   (%ld rows with %s %s %.6g)\n", a, b, t.n_top, j.target_name,
               minimize ? "<" : ">", minimize ? -t.target_p90 : t.target_p90);
        eps_cli_fmt_stat(a, sizeof a, t.top10_top10, "%.2f");
        printf("top-10%%/top-10%%  %s %%  (%ld of the %ld rows with score > p90)\n", a, t.n_both_top, t.n_score_top);
        printf("top-64/top-5%%    %ld of the %ld highest-scored  (%s %s %.6g)\n", t.top64_top5, t.top64_k,
               j.target_name, minimize ? "<" : ">", minimize ? -t.target_p95 : t.target_p95);
    }
    rc = 0;
    if (plot) {
        if (eps_plot_scatter(plot, j.score, j.target_v, j.n, j.target_name, &t, &e) < 0) rc = eps_cli_report_err(cmd, &e);
    }
    eps_join_free(&j);
    return rc;
}

/* ======================================================================
 * epsinas select
 * ====================================================================== */

static void select_help(FILE *f)
{
    fprintf(f,
            "usage: epsinas select --scores S.csv --truth T.csv --n N [--runs R] [--seed K] [--json]\n\n"
            "The paper's Table 3: R times, draw N distinct architectures at random from the\n"
            "joined rows (rows with a NaN target are left out; a NaN score counts as the\n"
            "lowest), keep the one with the highest score, and look up its trained result.\n"
            "Reports mean and std (numpy.std, ddof 0) over runs of: the chosen one's target,\n"
            "the best target in the sample (optimum), a uniformly random member's target,\n"
            "and the chosen one's rank by target within its sample (1 = best).\n"
            "Deterministic for a seed: run r draws with splitmix64 seeded from (seed, r)\n"
            "(see include/epsinas/eval/eval.h); ties in score go to the earliest drawn.\n\n"
            "options:\n" JOIN_HELP
            "  --n N                     sample size (e.g. 10, 100, 1000)\n"
            "  --runs R                  repetitions (default 500)\n"
            "  --seed K                  seed (default 1)\n"
            "  --json                    machine-readable output\n");
}

int eps_cmd_select(int argc, char **argv)
{
    const char *cmd = "select";
    eps_join j = {0};
    int minimize = 0, json = 0;
    const char *join_s = NULL, *n_s = NULL, *runs_s = "500", *seed_s = "1";
    const eps_cli_opt specs[] = {JOIN_OPTS(j, join_s, minimize),
                              {"--n", 1, &n_s, NULL},
                              {"--runs", 1, &runs_s, NULL},
                              {"--seed", 1, &seed_s, NULL},
                              {"--json", 0, NULL, &json},
                              {NULL, 0, NULL, NULL}};
    int rc = eps_cli_parse_opts(cmd, argc, argv, specs, select_help, NULL);
    if (rc >= 0) return rc;
    long n = 0, runs = 0;
    uint64_t seed = 0;
    if (!n_s) return eps_cli_report(cmd, EPS_EINVAL, "missing --n N (architectures per sample)");
    if ((rc = eps_cli_parse_long(cmd, "--n", n_s, 1, 100000000, &n)) != 0) return rc;
    if ((rc = eps_cli_parse_long(cmd, "--runs", runs_s, 1, 10000000, &runs)) != 0) return rc;
    if ((rc = eps_cli_parse_u64(cmd, "--seed", seed_s, &seed)) != 0) return rc;
    if ((rc = join_mode(cmd, join_s, &j)) >= 0) return rc;
    if ((rc = load_join(cmd, &j)) >= 0) return rc;
    eps_eval_select s;
    eps_error e = {0};
    if (eps_eval_select_run(j.score, j.target_v, j.n, (int)n, (int)runs, seed, minimize, &s, &e) < 0) {
        rc = eps_cli_report_err(cmd, &e);
        eps_join_free(&j);
        return rc;
    }
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "target", json_string(j.target_name));
        json_object_set_new(o, "minimize", json_boolean(minimize));
        json_object_set_new(o, "pool", json_integer(s.pool));
        json_object_set_new(o, "n", json_integer(n));
        json_object_set_new(o, "runs", json_integer(runs));
        json_object_set_new(o, "seed", json_integer((json_int_t)seed));
        const char *names[4] = {"chosen", "optimum", "random", "rank"};
        double vals[4][2] = {{s.chosen_mean, s.chosen_std},
                             {s.optimum_mean, s.optimum_std},
                             {s.random_mean, s.random_std},
                             {s.rank_mean, s.rank_std}};
        for (int k = 0; k < 4; k++) {
            json_t *v = json_object();
            json_object_set_new(v, "mean", eps_cli_jnum(vals[k][0]));
            json_object_set_new(v, "std", eps_cli_jnum(vals[k][1]));
            json_object_set_new(o, names[k], v);
        }
        json_object_set_new(o, "chosen_is_optimum", json_integer(s.chosen_is_optimum));
        eps_cli_print_json(o);
        json_decref(o);
    } else {
        printf("%s (%s is better): %ld runs, %ld of %ld architectures per sample, seed %llu\n", j.target_name,
               minimize ? "lower" : "higher", runs, n, s.pool, (unsigned long long)seed);
        printf("  chosen by epsinas  %10.4f +- %.4f\n", s.chosen_mean, s.chosen_std);
        printf("  optimum of sample  %10.4f +- %.4f\n", s.optimum_mean, s.optimum_std);
        printf("  random member      %10.4f +- %.4f\n", s.random_mean, s.random_std);
        printf("  rank of chosen     %10.2f +- %.2f   (1 = best of %ld; best in %ld of %ld runs)\n", s.rank_mean,
               s.rank_std, n, s.chosen_is_optimum, runs);
    }
    eps_join_free(&j);
    return 0;
}
