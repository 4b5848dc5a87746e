/* eps_engine.c — engine selection and the liveness analysis both engines use. */
#include "epsinas/engine/engine.h"

#include <stdlib.h>
#include <string.h>

#include "eps_engine_common.h"

int eps_engine_parse(const char *s, eps_engine_kind *out)
{
    if (s && !strcmp(s, "fast")) return *out = EPS_ENGINE_FAST, 0;
    if (s && !strcmp(s, "dense")) return *out = EPS_ENGINE_DENSE, 0;
    return EPS_EINVAL;
}

const char *eps_engine_name(eps_engine_kind k) { return k == EPS_ENGINE_DENSE ? "dense" : "fast"; }

extern int blas_thread_shutdown_(void); /* OpenBLAS (pthreads build) */

void eps_engine_blas_quiet(void) { (void)blas_thread_shutdown_(); }

int eps_engine_forward(const eps_graph *g, const eps_batch *b, float w, const eps_run_opts *opts, float *y,
                       eps_error *err)
{
    if (opts && opts->engine == EPS_ENGINE_DENSE) return eps_engine_dense_forward(g, b, w, opts, y, err);
    return eps_engine_fast_forward(g, b, w, opts, y, err);
}

int *eps_engine_last_use(const eps_graph *g)
{
    int *last = malloc(sizeof(int) * (size_t)g->n);
    char *live = calloc((size_t)g->n, 1);
    if (!last || !live) {
        free(last);
        free(live);
        return NULL;
    }
    live[g->output] = 1;
    for (int i = g->n - 1; i > 0; i--)
        if (live[i])
            for (int k = 0; k < g->nodes[i].n_in; k++) live[g->nodes[i].in[k]] = 1;
    for (int i = 0; i < g->n; i++) last[i] = -1;
    for (int i = 1; i < g->n; i++)
        if (live[i])
            for (int k = 0; k < g->nodes[i].n_in; k++) last[g->nodes[i].in[k]] = i;
    free(live);
    return last;
}
