/* encodings.h — the cell encodings other NAS tools use, both ways, with
 * errors naming the field and the position.
 *
 * NB201 (space "nb201"), besides our arch string:
 *   "op_indices": NASLib's 6 ints, one per edge (1,2),(1,3),(1,4),(2,3),
 *                 (2,4),(3,4) of its 1-based nodes, codes 0=skip_connect,
 *                 1=none, 2=nor_conv_3x3, 3=nor_conv_1x1, 4=avg_pool_3x3.
 *                 The arch string is
 *                 |op(t0)~0|+|op(t1)~0|op(t3)~1|+|op(t2)~0|op(t4)~1|op(t5)~2|
 *   "nni":        NNI's dict {"0_1":..,"0_2":..,"0_3":..,"1_2":..,"1_3":..,
 *                 "2_3":..} (edge i->j), values none, skip_connect,
 *                 conv_1x1, conv_3x3, avg_pool_3x3.
 * NB101 (space "nb101"), besides "matrix" + "ops":
 *   "naslib":     NASLib's tuple: the n x n adjacency row-major, then n op
 *                 codes 0=input, 1=output, 2=maxpool3x3, 3=conv1x1-bn-relu,
 *                 4=conv3x3-bn-relu. NASLib samples 7-vertex cells and does
 *                 not pad: a cell that computes with fewer vertices keeps
 *                 its dead vertices in the 7 x 7 form (all 267 rows of the
 *                 zero-cost benchmark subset are 56 ints, and every one of
 *                 them prunes to 2..6 vertices). Its convert_tuple_to_spec reads any
 *                 n*n + n, so 6, 12, 20, 30, 42 or 56 ints are accepted. The
 *                 tuple is unpruned like matrix/ops and goes through the same
 *                 pruning, so it gets the same hash. The tuple we answer is
 *                 that of the pruned spec (n*n + n ints).
 * A request gives exactly one encoding of its space. */
#ifndef EPSINAS_ENCODINGS_H
#define EPSINAS_ENCODINGS_H

#include <jansson.h>
#include "epsinas/core/error.h"
#include "epsinas/spaces/nb101.h"
#include "epsinas/spaces/nb201.h"

/* NASLib op code of each of our NB201 ops (eps_nb201_op order), and the
 * position in op_indices of each edge in our string order. */
extern const int eps_nb201_naslib_code[EPS_NB201_OPS];
extern const int eps_nb201_naslib_edge[EPS_NB201_EDGES];
/* NNI's names of our ops (eps_nb201_op order) and its edge keys in our
 * string order. */
extern const char *const eps_nb201_nni_op[EPS_NB201_OPS];
extern const char *const eps_nb201_nni_key[EPS_NB201_EDGES];

/* Reads the one NB201 encoding the request holds (arch, op_indices or
 * nni) into *cell. EPS_EINVAL naming the field (and both fields when two
 * are given) otherwise. */
int eps_nb201_cell_from_request(const json_t *req, eps_nb201_cell *cell, eps_error *err);
int eps_nb201_from_op_indices(const json_t *v, eps_nb201_cell *cell, eps_error *err);
int eps_nb201_from_nni(const json_t *v, eps_nb201_cell *cell, eps_error *err);
void eps_nb201_to_op_indices(const eps_nb201_cell *cell, int out[EPS_NB201_EDGES]);
/* New references (caller owns); NULL on OOM. */
json_t *eps_nb201_op_indices_json(const eps_nb201_cell *cell);
json_t *eps_nb201_nni_json(const eps_nb201_cell *cell);
/* {"arch":..,"op_indices":[..],"nni":{..}} of the cell as given. */
json_t *eps_nb201_encodings(const eps_nb201_cell *cell);

/* Reads the one NB101 encoding the request holds (matrix + ops, or naslib),
 * parsed, pruned and edge-checked like eps_nb101_from_json. */
int eps_nb101_spec_from_request(const json_t *req, eps_nb101_spec *spec, eps_error *err);
/* Parses a NASLib tuple (unpruned; not pruned here). */
int eps_nb101_from_naslib(const json_t *v, eps_nb101_spec *spec, eps_error *err);
/* New reference: the spec's tuple, n*n + n ints (caller owns). */
json_t *eps_nb101_naslib_json(const eps_nb101_spec *spec);
/* {"matrix":..,"ops":..,"naslib":[..],"hash":".."} of the spec as given. */
json_t *eps_nb101_encodings(const eps_nb101_spec *spec);

#endif
