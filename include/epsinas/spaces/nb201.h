/* nb201.h — NAS-Bench-201 cells: parse (our string, NASLib op_indices, NNI
 * dicts), canonicalise, enumerate, build. */
#ifndef EPSINAS_NB201_H
#define EPSINAS_NB201_H

#include <jansson.h>
#include <stddef.h>
#include "epsinas/core/error.h"
#include "epsinas/core/graph.h"

#define EPS_NB201_EDGES 6
#define EPS_NB201_OPS 5
#define EPS_NB201_COUNT 15625
#define EPS_NB201_STR_MAX 160

/* Edge e in string order: (1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2). */
typedef enum { EPS_NB201_NONE = 0, EPS_NB201_SKIP, EPS_NB201_CONV1X1,
               EPS_NB201_CONV3X3, EPS_NB201_AVGPOOL } eps_nb201_op;

typedef struct eps_nb201_cell { unsigned char op[EPS_NB201_EDGES]; } eps_nb201_cell;

extern const char *const eps_nb201_op_names[]; /* indexed by eps_nb201_op, NULL-terminated */

/* Parses "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|". Errors name the character
 * position (1-based) and what was expected. */
int eps_nb201_parse(const char *s, size_t len, eps_nb201_cell *cell, eps_error *err);
/* Writes the arch string (at most EPS_NB201_STR_MAX bytes incl. NUL). */
void eps_nb201_format(const eps_nb201_cell *cell, char *buf);
/* Dead edges (out of always-zero nodes, into nodes that never reach the
 * output) become none: cells with the same live edges compute the same. */
void eps_nb201_canonical(const eps_nb201_cell *cell, eps_nb201_cell *out);
/* Our enumeration order for --all: index i -> edge e has op (i / 5^e) % 5. */
void eps_nb201_from_index(int index, eps_nb201_cell *cell);
/* True when the cell has an input->output path of only skip/avg-pool edges. */
int eps_nb201_has_parameterless_path(const eps_nb201_cell *cell);
/* Builds the C=16, N=5, one-output network (spec §3) for 3x32x32 input
 * (CIFAR-10/100); _at: for 3 x side x side input (ImageNet16-120: 16). The
 * layers and parameters do not depend on the input size, the MACs do. */
int eps_nb201_build(const eps_nb201_cell *cell, eps_graph *g, eps_error *err);
int eps_nb201_build_at(const eps_nb201_cell *cell, int side, eps_graph *g, eps_error *err);

/* Datasets (request field "dataset", default cifar10): name, input shape,
 * classes and default batch, in eps_nb201_space.datasets. The canonical
 * form is the cell string for cifar10 and "<cell>;dataset=<name>" for the
 * others, so two datasets never share a hash or a cached score while every
 * CIFAR-10 hash stays the plain cell's MD5. */
#define EPS_NB201_DATASET_SEP ";dataset="

/* Encodings of other NAS tools (request fields besides "arch"; a request
 * holds exactly one of arch, op_indices, nni):
 *   "op_indices": NASLib's 6 ints, one per edge (1,2),(1,3),(1,4),(2,3),
 *                 (2,4),(3,4) of its 1-based nodes, codes 0=skip_connect,
 *                 1=none, 2=nor_conv_3x3, 3=nor_conv_1x1, 4=avg_pool_3x3.
 *                 The arch string is
 *                 |op(t0)~0|+|op(t1)~0|op(t3)~1|+|op(t2)~0|op(t4)~1|op(t5)~2|
 *   "nni":        NNI's dict {"0_1":..,"0_2":..,"0_3":..,"1_2":..,"1_3":..,
 *                 "2_3":..} (edge i->j), values none, skip_connect,
 *                 conv_1x1, conv_3x3, avg_pool_3x3.
 * Errors name the field and the position (op_indices[2], nni.1_3). */

/* NASLib op code of each of our ops (eps_nb201_op order), and the position
 * in op_indices of each edge in our string order. */
extern const int eps_nb201_naslib_code[EPS_NB201_OPS];
extern const int eps_nb201_naslib_edge[EPS_NB201_EDGES];
/* NNI's names of our ops (eps_nb201_op order) and its edge keys in our
 * string order. */
extern const char *const eps_nb201_nni_op[EPS_NB201_OPS];
extern const char *const eps_nb201_nni_key[EPS_NB201_EDGES];

/* Reads the one encoding the request holds (arch, op_indices or nni) into
 * *cell; EPS_EINVAL naming the field (both fields when two are given). */
int eps_nb201_cell_from_request(const json_t *req, eps_nb201_cell *cell, eps_error *err);
int eps_nb201_from_op_indices(const json_t *v, eps_nb201_cell *cell, eps_error *err);
int eps_nb201_from_nni(const json_t *v, eps_nb201_cell *cell, eps_error *err);
void eps_nb201_to_op_indices(const eps_nb201_cell *cell, int out[EPS_NB201_EDGES]);
/* New references (caller owns); NULL on OOM. */
json_t *eps_nb201_op_indices_json(const eps_nb201_cell *cell);
json_t *eps_nb201_nni_json(const eps_nb201_cell *cell);
/* {"arch":..,"op_indices":[..],"nni":{..}} of the cell as given (caller owns). */
json_t *eps_nb201_encodings(const eps_nb201_cell *cell);

#endif
