/* eps_memest.c — peak-memory estimate of a forward pass (memest.h). It
 * mirrors the dense engine's allocations: one buffer per live node output,
 * freed after its last reader, plus the im2col scratch of the largest
 * convolution; the fast engine keeps one plane per channel group instead of
 * one per channel, bounded here by its plane count per node. */
#include "epsinas/engine/memest.h"

#include <stdlib.h>

#include "eps_engine_common.h"

#define COL_FLOATS (1LL << 22) /* the dense engine's im2col chunk (DENSE_COL_FLOATS) */

/* Bytes of node i's output buffer. */
static long long node_bytes(const eps_graph *g, int i, int n, eps_engine_kind engine)
{
    const eps_node *nd = &g->nodes[i];
    long long hw = (long long)nd->h * nd->w;
    if (engine == EPS_ENGINE_DENSE) return 4LL * n * nd->c * hw;
    /* fast: one B x H x W plane per distinct channel group; a concat or an
     * add of k inputs holds at most k groups of each, a grouped conv one
     * per group. Doubled for the per-phase chunk buffers. */
    long long planes = nd->n_in > 1 ? nd->n_in : 1;
    if (nd->op == EPS_OP_CONV2D && nd->groups > 1) planes *= nd->groups;
    if (planes > nd->c) planes = nd->c > 0 ? nd->c : 1;
    return 2LL * 4LL * n * planes * hw;
}

/* The largest convolution's im2col, output and weight scratch (dense). */
static long long conv_scratch(const eps_graph *g)
{
    long long peak = 0;
    for (int i = 1; i < g->n; i++) {
        const eps_node *nd = &g->nodes[i];
        if (nd->op != EPS_OP_CONV2D) continue;
        const eps_node *xn = &g->nodes[nd->in[0]];
        long long K = (long long)(xn->c / nd->groups) * nd->kernel * nd->kernel, P = (long long)nd->h * nd->w;
        long long cog = nd->out_c / nd->groups;
        long long col = K * P > COL_FLOATS ? K * P : COL_FLOATS, tmp = cog * P > COL_FLOATS ? cog * P : COL_FLOATS;
        long long s = 4 * (col + tmp + K * cog);
        if (s > peak) peak = s;
    }
    return peak;
}

long long eps_memest_forward(const eps_graph *g, int n, eps_engine_kind engine)
{
    int *last = eps_engine_last_use(g);
    if (!last) return -1;
    long long live = 0, peak = 0;
    for (int i = 1; i < g->n; i++) {
        if (last[i] < 0 && i != g->output) continue; /* dead: never allocated */
        live += node_bytes(g, i, n, engine);
        if (live > peak) peak = live;
        const eps_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_in; k++) {
            int src = nd->in[k];
            /* free once: an input read twice by the same node is one buffer */
            int seen = 0;
            for (int q = 0; q < k; q++) seen |= nd->in[q] == src;
            if (!seen && src > 0 && last[src] == i && src != g->output) live -= node_bytes(g, src, n, engine);
        }
    }
    free(last);
    const eps_node *in = &g->nodes[0];
    long long batch = 4LL * n * in->c * in->h * in->w;
    return peak + batch + (engine == EPS_ENGINE_DENSE ? conv_scratch(g) : 0);
}

int eps_memest_check(const eps_graph *g, int n, eps_engine_kind engine, long long limit_bytes, eps_error *err)
{
    if (limit_bytes <= 0) return 0;
    long long est = eps_memest_forward(g, n, engine);
    if (est < 0) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    if (est <= limit_bytes) return 0;
    return eps_error_set(err, EPS_ELIMIT, "batch_size",
                         "this network on %d images needs about %.1f MiB in the %s engine, over the %.0f MiB limit "
                         "(--max-request-memory); use a smaller batch_size or network",
                         n, est / 1048576.0, eps_engine_name(engine), limit_bytes / 1048576.0);
}
