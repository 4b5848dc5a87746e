/* join.h — joining a scores table (a sweep CSV) with a truth table (trained
 * accuracy or loss) on the architecture or the index column, as `epsinas
 * eval` and `select` do (src/eval/eps_join.c); and the column look-ups with
 * messages that name the table and the option to use. */
#ifndef EPSINAS_EVAL_JOIN_H
#define EPSINAS_EVAL_JOIN_H

#include "epsinas/core/error.h"
#include "epsinas/eval/table.h"

typedef struct eps_join {
    /* inputs */
    const char *scores_path, *truth_path;
    const char *scores_key, *truth_key; /* NULL: "arch" (or "index" with by_index) */
    const char *score_col;              /* NULL: "epsilon" */
    const char *target;                 /* NULL: first numeric column after the arch column */
    int by_index;
    /* outputs */
    eps_table st, tt;
    const char *target_name;
    long n;                        /* matched truth rows */
    double *score, *target_v;      /* n each */
    long *trow;                    /* truth row of each matched row */
    long n_scores, n_truth;        /* data rows */
    long unmatched_scores;         /* distinct score keys no truth row has */
    long unmatched_truth;          /* truth rows without a score */
    long dup_truth;                /* truth rows whose key an earlier truth row has */
    long first_unmatched_score, first_unmatched_truth;
} eps_join;

/* Reads j->scores_path and j->truth_path (both set) and joins them. Keys are
 * compared as text; with by_index as integers ("007" = "7"); a cell holding
 * a JSON object (NAS-Bench-NLP recipes) in compact sorted-key form. Returns
 * 0 or a negative EPS_E* code with err naming file:line and column. The
 * outputs are j's (eps_join_free, on success and on error). */
int eps_join_load(eps_join *j, eps_error *err);
void eps_join_free(eps_join *j);

/* *col = the column called name; else EPS_EINVAL listing the columns, and
 * "; use FLAG" when flag is not NULL. */
int eps_join_need_col(const eps_table *t, const char *name, const char *flag, int *col, eps_error *err);
/* *col = the target column: want, or the first numeric one after 'arch'
 * (else after key_col); else EPS_EINVAL asking for --target. */
int eps_join_pick_target(const eps_table *t, const char *want, int key_col, int *col, eps_error *err);

#endif
