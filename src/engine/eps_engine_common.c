/* eps_engine_common.c — what both engines share so they agree: the
 * liveness of a graph's nodes and BatchNorm's coefficients. */
#include "eps_engine_common.h"

#include <math.h>
#include <stdlib.h>

void eps_bn_coeffs(double sum, double sumsq_centered, long count, float gamma, float *alpha, float *beta)
{
    double mean = sum / (double)count;
    double var = sumsq_centered / (double)count; /* biased, as BN training statistics */
    float invstd = (float)(1.0 / sqrt(var + 1e-5));
    *alpha = invstd * gamma;
    *beta = 0.0f - (float)mean * *alpha;
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

void eps_maxpool_plane(const float *restrict x, float *restrict y, int H, int W, int OH, int OW, int k, int s, int p)
{
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            float m = -INFINITY;
            for (int ky = 0; ky < k; ky++) {
                int iy = oy * s - p + ky;
                if (iy < 0 || iy >= H) continue;
                for (int kx = 0; kx < k; kx++) {
                    int ix = ox * s - p + kx;
                    if (ix < 0 || ix >= W) continue;
                    float v = x[iy * W + ix];
                    if (v > m || isnan(v)) m = v;
                }
            }
            y[oy * OW + ox] = m;
        }
}
