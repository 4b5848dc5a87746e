/* plot.h — the SVG plots of the evaluation commands (src/eval/eps_plot.c). */
#ifndef EPSINAS_EVAL_PLOT_H
#define EPSINAS_EVAL_PLOT_H

#include "epsinas/core/error.h"
#include "epsinas/eval/eval.h"

/* Scatter of log10(score[i]) vs target[i], i < n, titled with t's rho and
 * tau. Rows with a NaN or non-positive score (or a NaN target) are counted
 * in the title, not drawn. Writes path; 0 or EPS_EIO naming it. */
int eps_plot_scatter(const char *path, const double *score, const double *target, long n, const char *target_name,
                     const eps_eval_table *t, eps_error *err);

/* One search curve: median and quartiles of the best target after each
 * look-up, budget values each (borrowed). */
typedef struct eps_plot_band {
    const char *label;
    const double *med, *q25, *q75;
} eps_plot_band;

/* Median curves with 25%-75% bands of n configurations over `runs` runs;
 * the y range is taken from step 10 on. Writes path; 0 or EPS_EIO. */
int eps_plot_curves(const char *path, const eps_plot_band *bands, int n, long budget, int runs, const char *target,
                    int minimize, eps_error *err);

#endif
