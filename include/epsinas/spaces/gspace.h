/* gspace.h — the generic layer-graph space ("graph"): any feed-forward
 * network over image batches written as a JSON list of layers.
 *
 * Request:
 *   {"space": "graph",
 *    "input":  {"channels": 3, "height": 32, "width": 32},   (optional, this default)
 *    "nodes":  [{"name": "c1", "op": "conv2d", "inputs": ["input"], "out_channels": 16,
 *                "kernel": 3, "padding": 1, "bias": false}, ...],
 *    "output": "fc"}                                            (optional, default: last node)
 * Nodes are listed in topological order: "inputs" names the batch ("input")
 * or earlier nodes. Names: 1..47 bytes, unique, not "input".
 * Ops and their fields (defaults as PyTorch's, [] = optional):
 *   conv2d          out_channels, kernel, [stride 1], [padding 0], [groups 1],
 *                   [dilation 1], [bias true]        square kernels, 1 input
 *   batchnorm       batch statistics, eps 1e-5 (gamma = w, beta = 0)
 *   relu, identity, zero (x * 0), flatten (C x H x W -> C*H*W features),
 *   global_avgpool  (-> C x 1 x 1)
 *   avgpool         kernel, [stride = kernel], [padding 0], [count_include_pad true]
 *   maxpool         kernel, [stride = kernel], [padding 0]   (padding is -inf)
 *   linear          out_features, [bias true]  input must be C x 1 x 1
 *   add             1..32 inputs of one shape;  concat: 1..32 inputs, same H x W
 * Unknown fields in a node are errors (typos would silently change the
 * network); unknown top-level fields are left to the caller (batch, ...).
 * Errors name the field as "nodes[3].kernel", "nodes[3].inputs[1]", "input.height",
 * "output" and say which node.
 *
 * The output node must produce exactly one value per image.
 *
 * canonical: the request minus "space", re-serialised with every default
 * filled in, only the fields of each op, keys sorted, compact (no spaces):
 * whitespace, key order and omitted defaults do not change it; node order
 * and names do. hash: MD5 hex of the canonical text.
 * Default weights (1e-7, 1), as NAS-Bench-201: a generic network has no
 * paper setting of its own, and NB201's cells are what a graph most often
 * re-expresses (weights in the request override them). */
#ifndef EPSINAS_GSPACE_H
#define EPSINAS_GSPACE_H

#include <jansson.h>
#include "epsinas/core/error.h"
#include "epsinas/core/graph.h"

#define EPS_GSPACE_MAX_NODES 512
#define EPS_GSPACE_MAX_CHANNELS 4096            /* any node's channels / linear features out */
#define EPS_GSPACE_MAX_SPATIAL 256              /* any node's height and width */
#define EPS_GSPACE_MAX_MACS 20000000000LL       /* total multiply-accumulates per image */
#define EPS_GSPACE_MAX_FANIN 32                 /* inputs of add / concat */
#define EPS_GSPACE_MAX_FEATURES (1 << 20)       /* flatten output (linear input) */
#define EPS_GSPACE_MAX_NODE_VALUES (1 << 21)    /* c*h*w of any node, per image (memory) */
#define EPS_GSPACE_MAX_PARAM 256                /* kernel, stride, padding, dilation */

/* Parses and validates req (the whole request object) into g (caller frees
 * with eps_graph_free; on error g is left empty) and, when canonical is
 * non-NULL, the canonical text (malloc'd, caller frees). */
int eps_gspace_parse(const json_t *req, eps_graph *g, char **canonical, eps_error *err);

extern const char *const eps_gspace_op_names[]; /* NULL-terminated */

#endif
