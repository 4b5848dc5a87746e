/* eps_engine_common.h — helpers shared by the two engines (private). */
#ifndef EPS_ENGINE_COMMON_H
#define EPS_ENGINE_COMMON_H

#include "epsinas/core/graph.h"

/* For each node, the index of the last node that reads it, or -1 when no
 * node on a path to the output reads it. Caller frees. NULL on OOM. */
int *eps_engine_last_use(const eps_graph *g);

#endif
