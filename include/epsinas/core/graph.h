/* graph.h — the graph IR every image search space compiles to.
 *
 * A network is a DAG of nodes in topological order (a node's inputs always
 * have smaller indices). Node 0 is the input batch. Shapes are inferred as
 * nodes are added, so a builder gets an error naming the node at once.
 * Weights are not stored: epsinas fills every weight with one constant
 * (spec §1), so an op is fully described by its kind and hyper-parameters.
 * Both engines (dense and single-plane) execute this IR. */
#ifndef EPSINAS_GRAPH_H
#define EPSINAS_GRAPH_H

#include "epsinas/core/error.h"

#define EPS_GRAPH_MAX_INPUTS 32    /* add/concat fan-in */
#define EPS_GRAPH_NAME_LEN 48

typedef enum eps_op {
    EPS_OP_INPUT = 0,
    EPS_OP_CONV2D,          /* out_c, kernel, stride, pad, dilation, groups, bias */
    EPS_OP_BATCHNORM,       /* batch statistics, eps 1e-5, gamma = w, beta = 0 */
    EPS_OP_RELU,
    EPS_OP_AVGPOOL,         /* kernel, stride, pad, count_include_pad */
    EPS_OP_MAXPOOL,         /* kernel, stride, pad (padding is -inf) */
    EPS_OP_GLOBAL_AVGPOOL,  /* -> C x 1 x 1 */
    EPS_OP_LINEAR,          /* out_c (features) over C*H*W inputs, bias */
    EPS_OP_ADD,             /* n inputs, same shape */
    EPS_OP_CONCAT,          /* n inputs, channel concat, same H, W */
    EPS_OP_SLICE,           /* first out_c channels (NB101 truncation) */
    EPS_OP_IDENTITY,
    EPS_OP_ZERO,            /* x * 0 (keeps the shape; NaN/inf propagate as in x*0) */
    EPS_OP_FLATTEN,         /* C x H x W -> (C*H*W) x 1 x 1 */
    EPS_OP__COUNT
} eps_op;

typedef struct eps_node {
    eps_op op;
    int n_in;
    int in[EPS_GRAPH_MAX_INPUTS];
    /* hyper-parameters (unused ones are 0) */
    int out_c;              /* conv out channels, linear out features, slice width */
    int kernel, stride, pad, dilation, groups;
    int count_include_pad;  /* avgpool */
    int bias;               /* conv/linear have a bias (always 0 in epsinas, counted in params) */
    /* inferred output shape */
    int c, h, w;
    char name[EPS_GRAPH_NAME_LEN]; /* for error messages; may be "" */
} eps_node;

typedef struct eps_graph {
    eps_node *nodes;        /* owned */
    int n, cap;
    int output;             /* index of the output node (default: last added) */
} eps_graph;

/* Initialises g with node 0 = input of shape c x h x w. */
int eps_graph_init(eps_graph *g, int c, int h, int w, eps_error *err);
void eps_graph_free(eps_graph *g);

/* Appends a copy of *node after checking its inputs and inferring its shape.
 * Returns the new node's index (>= 0) or a negative EPS_E* code. Defaults:
 * stride 0 -> 1, dilation 0 -> 1, groups 0 -> 1. */
int eps_graph_add(eps_graph *g, const eps_node *node, eps_error *err);

/* Convenience builders: each returns the new index or a negative code. */
int eps_g_conv(eps_graph *g, int x, int out_c, int kernel, int stride, int pad, int bias, eps_error *err);
int eps_g_bn(eps_graph *g, int x, eps_error *err);
int eps_g_relu(eps_graph *g, int x, eps_error *err);
int eps_g_avgpool(eps_graph *g, int x, int kernel, int stride, int pad, int count_include_pad, eps_error *err);
int eps_g_maxpool(eps_graph *g, int x, int kernel, int stride, int pad, eps_error *err);
int eps_g_gap(eps_graph *g, int x, eps_error *err);
int eps_g_linear(eps_graph *g, int x, int out_features, int bias, eps_error *err);
int eps_g_add(eps_graph *g, int n, const int *xs, eps_error *err);
int eps_g_concat(eps_graph *g, int n, const int *xs, eps_error *err);
int eps_g_slice(eps_graph *g, int x, int channels, eps_error *err);
int eps_g_zero(eps_graph *g, int x, eps_error *err);
int eps_g_identity(eps_graph *g, int x, eps_error *err);
int eps_g_flatten(eps_graph *g, int x, eps_error *err);
/* The benchmark networks' tail: global average pool, then one linear unit
 * with bias, made g's output. x < 0 (an earlier step failed) or a failure
 * here frees g and returns the code; else 0. */
int eps_g_finish_one_output(eps_graph *g, int x, eps_error *err);

/* Trainable parameters as PyTorch counts them: conv kernels (+bias),
 * BN gamma and beta, Linear weight (+bias). */
long long eps_graph_params(const eps_graph *g);
/* Multiply-accumulates per image (conv and linear only). */
long long eps_graph_macs(const eps_graph *g);
/* Output values per image (c*h*w of the output node). */
long long eps_graph_output_size(const eps_graph *g);

const char *eps_op_name(eps_op op);

#endif
