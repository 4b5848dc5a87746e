/* nb101_enum.h — every distinct NAS-Bench-101 cell, once (issue 13).
 *
 * The space is NAS-Bench-101's generate_graphs: for 2..7 vertices, every
 * strictly upper-triangular 0/1 matrix that is a "full" DAG (every vertex
 * but the output has an out-edge, every vertex but the input an in-edge, so
 * every vertex lies on an input->output path and pruning changes nothing)
 * with at most 9 edges, and every labelling of the interior vertices with
 * conv3x3-bn-relu, conv1x1-bn-relu, maxpool3x3; deduplicated by
 * hash_module. There are 423,624 distinct hashes.
 *
 * Order (stable, documented): by vertex count, then by NAS-Bench-101's
 * matrix bits (edge (x,y) is bit x + y(y-1)/2, as gen_is_edge_fn), then by
 * the labelling in itertools.product order (vertex 1 most significant, ops
 * in the order above); the first occurrence of each hash wins, so each cell
 * is the very spec generate_graphs keeps as its bucket's representative.
 *
 * Speed: instead of hashing all ~28M labelled full matrices, a matrix is
 * kept only when no permutation of the interior vertices that stays upper-
 * triangular gives smaller bits, and a labelling only when no automorphism
 * of that matrix gives a smaller labelling: that keeps exactly the first
 * member of each isomorphism class, and only those are md5-hashed (and the
 * hashes are still deduplicated, so a hash shared by two non-isomorphic
 * graphs would count once, as in NAS-Bench-101). */
#ifndef EPSINAS_NB101_ENUM_H
#define EPSINAS_NB101_ENUM_H

#include "epsinas/core/error.h"
#include "epsinas/spaces/nb101.h"

#define EPS_NB101_COUNT 423624

typedef struct eps_nb101_cell {
    eps_nb101_spec spec;
    char hash[33];
} eps_nb101_cell;

/* Enumerates the cells of 2..max_vertices vertices (max_vertices in 2..7;
 * 7 = the whole space) in the order above, stopping after the first limit
 * cells when limit > 0 (the prefix is the same: a sweep of indices < B
 * needs only B cells). *out is malloc'd (caller frees), *n its length.
 * EPS_EINVAL for a bad max_vertices, EPS_ENOMEM. */
int eps_nb101_enumerate(int max_vertices, long limit, eps_nb101_cell **out, long *n, eps_error *err);

#endif
