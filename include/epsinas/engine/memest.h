/* memest.h — how much memory a forward pass may take, before it runs.
 *
 * An upper bound of the peak bytes one pass of graph g on n images
 * allocates in the given engine, from the same liveness the engines use
 * (a tensor is freed after its last reader). The service answers 413 and
 * the CLI exits 2 when it is over --max-request-memory, instead of letting
 * a small request (a huge padding, many branches) exhaust the machine. */
#ifndef EPSINAS_MEMEST_H
#define EPSINAS_MEMEST_H

#include "epsinas/engine/engine.h"
#include "epsinas/core/error.h"
#include "epsinas/core/graph.h"

/* The default of --max-request-memory (4 GiB), also the CLI's budget. */
#define EPS_MEMEST_DEFAULT_LIMIT (4LL << 30)

/* Peak bytes, or -1 when g cannot be analysed (out of memory). */
long long eps_memest_forward(const eps_graph *g, int n, eps_engine_kind engine);

/* 0 when the estimate is within limit_bytes (0 = no limit); else
 * EPS_ELIMIT with a message naming the estimate and the limit. */
int eps_memest_check(const eps_graph *g, int n, eps_engine_kind engine, long long limit_bytes, eps_error *err);

#endif
