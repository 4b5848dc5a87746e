/* nb201.h — NAS-Bench-201 cells: parse, canonicalise, enumerate, build. */
#ifndef EPSINAS_NB201_H
#define EPSINAS_NB201_H

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
/* Builds the C=16, N=5, one-output network (spec §3). */
int eps_nb201_build(const eps_nb201_cell *cell, eps_graph *g, eps_error *err);

#endif
