/* eps_engine.c — engine selection. */
#include "epsinas/engine/engine.h"

#include <string.h>

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
