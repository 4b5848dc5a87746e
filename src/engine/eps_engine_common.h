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

#endif
