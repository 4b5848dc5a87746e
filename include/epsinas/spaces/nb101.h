/* nb101.h — NAS-Bench-101 cells: parse + validate, prune, module hash,
 * canonical text, build the one-output network (spec §4).
 *
 * Request fields (space "nb101"):
 *   "matrix": [[0,1,...],...]  square, 2..7 vertices, strictly upper-triangular,
 *                              entries the integers 0 or 1
 *   "ops":    ["input", op..., "output"], interior ops among
 *             conv3x3-bn-relu, conv1x1-bn-relu, maxpool3x3
 * Other request fields are ignored here.
 *
 * Pruning follows NAS-Bench-101's ModelSpec._prune(): a vertex is kept when
 * it is reachable from the input AND reaches the output; the rest go with
 * their edges. A spec whose input does not reach its output is rejected.
 * The 9-edge limit applies to the PRUNED spec, as NAS-Bench-101's API checks
 * it (an unpruned matrix may carry more edges into dead vertices).
 *
 * arch fields:
 *   canonical  compact JSON of the pruned spec, keys in this order:
 *              {"matrix":[[0,1],[0,0]],"ops":["input","output"]}
 *              (no spaces). The pruned spec fixes the network exactly; the
 *              vertex order matters for the network (channel split remainder,
 *              concat order), so isomorphic specs keep different canonical
 *              texts although they share a hash.
 *   hash       NAS-Bench-101's hash_module() of the pruned spec, i.e. the
 *              dataset key; invariant under vertex permutation.
 *   params     trainable parameters of the one-output network. The dataset's
 *              `trainable_parameters` = params + 9*512 + 9 (10-class head).
 *              That identity holds for all 30 test records only with NO bias
 *              in any conv (stem, cell ops, projections) — NAS-Bench-101's TF
 *              code uses use_bias=False before every BN — and a bias only in
 *              the final Linear; so that is what we build.
 *
 * Network (3 x 32 x 32 input): stem Conv3x3(3->128, pad 1, no bias) -> BN ->
 * ReLU; 3 stacks x 3 cells at 128, 256, 512 channels with MaxPool 2x2 stride 2
 * before stacks 2 and 3; global average pool; Linear(512 -> 1, bias). */
#ifndef EPSINAS_NB101_H
#define EPSINAS_NB101_H

#include <jansson.h>
#include "epsinas/core/error.h"
#include "epsinas/core/graph.h"

#define EPS_NB101_MAX_VERTICES 7
#define EPS_NB101_MAX_EDGES 9
#define EPS_NB101_STEM_CHANNELS 128
#define EPS_NB101_STACKS 3
#define EPS_NB101_CELLS_PER_STACK 3

/* Vertex labels as NAS-Bench-101's hash uses them. */
enum { EPS_NB101_INPUT = -1, EPS_NB101_OUTPUT = -2,
       EPS_NB101_CONV3X3 = 0, EPS_NB101_CONV1X1 = 1, EPS_NB101_MAXPOOL = 2 };

typedef struct eps_nb101_spec {
    int n;                                                   /* vertices */
    unsigned char adj[EPS_NB101_MAX_VERTICES][EPS_NB101_MAX_VERTICES]; /* adj[src][dst] */
    signed char label[EPS_NB101_MAX_VERTICES];               /* EPS_NB101_* */
} eps_nb101_spec;

/* Interior op names indexed by label 0..2, NULL-terminated. */
extern const char *const eps_nb101_op_names[];

/* Parses and validates the (unpruned) spec: shapes, 0/1 entries, strict
 * upper-triangularity, op names. Errors set field "matrix" or "ops" and name
 * the row/column or index. Does not prune or check the edge limit. */
int eps_nb101_parse(const json_t *matrix, const json_t *ops, eps_nb101_spec *out, eps_error *err);
/* Prunes (see above) into *out (may alias in), then checks the edge limit.
 * EPS_EINVAL when the input does not reach the output or too many edges. */
int eps_nb101_prune(const eps_nb101_spec *in, eps_nb101_spec *out, eps_error *err);
/* parse + prune. */
int eps_nb101_from_json(const json_t *matrix, const json_t *ops, eps_nb101_spec *out, eps_error *err);

int eps_nb101_edges(const eps_nb101_spec *s);
/* NAS-Bench-101 hash_module() -> 32 lowercase hex chars (caller's buffer). */
void eps_nb101_hash(const eps_nb101_spec *s, char out[33]);
/* Canonical compact JSON (see above); malloc'd, caller frees. NULL on OOM. */
char *eps_nb101_canonical(const eps_nb101_spec *s);
/* Channels per vertex for a cell cin -> cout (NAS-Bench-101's
 * compute_vertex_channels); ch receives s->n ints. */
void eps_nb101_vertex_channels(const eps_nb101_spec *s, int cin, int cout, int *ch);
/* Builds the network of a pruned spec into g (initialised here; the caller
 * frees it with eps_graph_free; on error it is already freed). */
int eps_nb101_build(const eps_nb101_spec *s, eps_graph *g, eps_error *err);

/* NASLib's tuple (request field "naslib", instead of matrix + ops): the
 * n x n adjacency row-major, then n op codes 0=input, 1=output,
 * 2=maxpool3x3, 3=conv1x1-bn-relu, 4=conv3x3-bn-relu. NASLib samples
 * 7-vertex cells and does not pad: a cell that computes with fewer vertices
 * keeps its dead vertices in the 7 x 7 form (all 267 rows of its zero-cost
 * subset are 56 ints, and every one prunes to 2..6 vertices). Its
 * convert_tuple_to_spec reads any n*n + n, so 6, 12, 20, 30, 42 or 56 ints
 * are accepted. The tuple is unpruned like matrix/ops and goes through the
 * same pruning, so it gets the same hash; the tuple we answer is that of
 * the pruned spec (n*n + n ints). Errors name the position (naslib[51]). */

/* Reads the one encoding the request holds (matrix + ops, or naslib),
 * parsed, pruned and edge-checked like eps_nb101_from_json. */
int eps_nb101_spec_from_request(const json_t *req, eps_nb101_spec *spec, eps_error *err);
/* Parses a NASLib tuple (unpruned; not pruned here). */
int eps_nb101_from_naslib(const json_t *v, eps_nb101_spec *spec, eps_error *err);
/* New reference: the spec's tuple, n*n + n ints (caller owns). */
json_t *eps_nb101_naslib_json(const eps_nb101_spec *spec);
/* {"matrix":..,"ops":..,"naslib":[..],"hash":".."} of the spec as given (caller owns). */
json_t *eps_nb101_encodings(const eps_nb101_spec *spec);

#endif
