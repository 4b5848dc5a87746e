/* eps_engine_common.h — helpers shared by the two engines (private). */
#ifndef EPS_ENGINE_COMMON_H
#define EPS_ENGINE_COMMON_H

#include "epsinas/core/graph.h"

/* For each node, the index of the last node that reads it, or -1 when no
 * node on a path to the output reads it. Caller frees. NULL on OOM. */
int *eps_engine_last_use(const eps_graph *g);

/* BatchNorm as PyTorch's CPU kernel does it (spec §1): per-channel mean and
 * biased variance accumulated in double over `count` values, then
 * y = x * alpha + beta in float32 with alpha = gamma / sqrt(var + 1e-5),
 * beta = -mean * alpha. Both engines use it so they round alike. */
void eps_bn_coeffs(double sum, double sumsq_centered, long count, float gamma, float *alpha, float *beta);

/* Max pooling of one H x W plane as PyTorch's CPU kernel picks (the dense
 * engine's, and the fast engine's for planes holding a NaN): each window
 * scanned row by row from -inf, taking v when v > acc or v is NaN, so the
 * first maximum wins and a NaN propagates; out-of-bounds taps skipped. */
void eps_maxpool_plane(const float *restrict x, float *restrict y, int H, int W, int OH, int OW, int k, int s, int p);

#endif
