/* eps_graph.c — the graph IR: node storage, shape inference, parameter and
 * MAC counts. Engines and search spaces share it (include/epsinas/core/graph.h). */
#include "epsinas/core/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPS_GRAPH_MAX_NODES 100000
#define EPS_GRAPH_MAX_DIM (1 << 20)

static const char *const op_names[EPS_OP__COUNT] = {
    "input", "conv2d", "batchnorm", "relu", "avgpool", "maxpool", "global_avgpool",
    "linear", "add", "concat", "slice", "identity", "zero", "flatten",
};

const char *eps_op_name(eps_op op)
{
    return (op >= 0 && op < EPS_OP__COUNT) ? op_names[op] : "?";
}

int eps_graph_init(eps_graph *g, int c, int h, int w, eps_error *err)
{
    memset(g, 0, sizeof *g);
    if (c <= 0 || h <= 0 || w <= 0 || c > EPS_GRAPH_MAX_DIM || h > EPS_GRAPH_MAX_DIM || w > EPS_GRAPH_MAX_DIM)
        return eps_error_set(err, EPS_EINVAL, "input", "input shape %dx%dx%d is not positive/in range", c, h, w);
    g->cap = 64;
    g->nodes = calloc((size_t)g->cap, sizeof *g->nodes);
    if (!g->nodes) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    g->n = 1;
    g->nodes[0].op = EPS_OP_INPUT;
    g->nodes[0].c = c, g->nodes[0].h = h, g->nodes[0].w = w;
    snprintf(g->nodes[0].name, sizeof g->nodes[0].name, "input");
    g->output = 0;
    return 0;
}

void eps_graph_free(eps_graph *g)
{
    if (!g) return;
    free(g->nodes);
    memset(g, 0, sizeof *g);
}

static int pool_out(int in, int k, int s, int p, int d)
{
    long eff = (long)d * (k - 1) + 1;
    long num = (long)in + 2L * p - eff;
    if (num < 0) return 0;
    return (int)(num / s + 1);
}

#define NODE_ERR(code, ...) eps_error_set(err, code, nd->name[0] ? nd->name : "node", __VA_ARGS__)

int eps_graph_add(eps_graph *g, const eps_node *node, eps_error *err)
{
    if (g->n >= EPS_GRAPH_MAX_NODES) return eps_error_set(err, EPS_ELIMIT, "nodes", "graph has too many nodes");
    eps_node tmp = *node;
    eps_node *nd = &tmp;
    if (nd->op <= EPS_OP_INPUT || nd->op >= EPS_OP__COUNT) return NODE_ERR(EPS_EINVAL, "unknown op %d", (int)nd->op);
    if (nd->stride == 0) nd->stride = 1;
    if (nd->dilation == 0) nd->dilation = 1;
    if (nd->groups == 0) nd->groups = 1;
    int multi = nd->op == EPS_OP_ADD || nd->op == EPS_OP_CONCAT;
    if (multi ? (nd->n_in < 1 || nd->n_in > EPS_GRAPH_MAX_INPUTS) : nd->n_in != 1)
        return NODE_ERR(EPS_EINVAL, "%s takes %s input%s, got %d", eps_op_name(nd->op), multi ? "1 to 32" : "exactly 1",
                        multi ? "s" : "", nd->n_in);
    for (int i = 0; i < nd->n_in; i++)
        if (nd->in[i] < 0 || nd->in[i] >= g->n)
            return NODE_ERR(EPS_EINVAL, "input %d refers to node %d, which does not exist yet", i, nd->in[i]);
    const eps_node *x = &g->nodes[nd->in[0]];
    int c = x->c, h = x->h, w = x->w;
    switch (nd->op) {
    case EPS_OP_CONV2D:
        if (nd->out_c <= 0 || nd->out_c > EPS_GRAPH_MAX_DIM) return NODE_ERR(EPS_EINVAL, "out_channels must be positive");
        if (nd->kernel <= 0 || nd->stride <= 0 || nd->pad < 0 || nd->dilation <= 0 || nd->groups <= 0)
            return NODE_ERR(EPS_EINVAL, "kernel, stride, dilation, groups must be positive and padding >= 0");
        if (c % nd->groups || nd->out_c % nd->groups)
            return NODE_ERR(EPS_EINVAL, "groups=%d must divide in_channels=%d and out_channels=%d", nd->groups, c,
                            nd->out_c);
        h = pool_out(x->h, nd->kernel, nd->stride, nd->pad, nd->dilation);
        w = pool_out(x->w, nd->kernel, nd->stride, nd->pad, nd->dilation);
        c = nd->out_c;
        break;
    case EPS_OP_AVGPOOL:
    case EPS_OP_MAXPOOL:
        if (nd->kernel <= 0 || nd->stride <= 0 || nd->pad < 0)
            return NODE_ERR(EPS_EINVAL, "kernel and stride must be positive and padding >= 0");
        if (nd->pad * 2 > nd->kernel)
            return NODE_ERR(EPS_EINVAL, "padding %d must be at most half the kernel %d", nd->pad, nd->kernel);
        nd->dilation = 1;
        h = pool_out(x->h, nd->kernel, nd->stride, nd->pad, 1);
        w = pool_out(x->w, nd->kernel, nd->stride, nd->pad, 1);
        break;
    case EPS_OP_GLOBAL_AVGPOOL:
        h = w = 1;
        break;
    case EPS_OP_LINEAR:
        if (nd->out_c <= 0 || nd->out_c > EPS_GRAPH_MAX_DIM) return NODE_ERR(EPS_EINVAL, "out_features must be positive");
        if (x->h != 1 || x->w != 1)
            return NODE_ERR(EPS_EINVAL, "linear needs a flat input (C x 1 x 1), got %dx%dx%d: add flatten or global_avgpool",
                            x->c, x->h, x->w);
        c = nd->out_c;
        break;
    case EPS_OP_ADD:
    case EPS_OP_CONCAT:
        for (int i = 1; i < nd->n_in; i++) {
            const eps_node *y = &g->nodes[nd->in[i]];
            if (y->h != h || y->w != w || (nd->op == EPS_OP_ADD && y->c != c))
                return NODE_ERR(EPS_EINVAL, "%s input %d has shape %dx%dx%d, input 0 has %dx%dx%d", eps_op_name(nd->op), i,
                                y->c, y->h, y->w, x->c, x->h, x->w);
            if (nd->op == EPS_OP_CONCAT) c += y->c;
        }
        break;
    case EPS_OP_SLICE:
        if (nd->out_c <= 0 || nd->out_c > c)
            return NODE_ERR(EPS_EINVAL, "slice of %d channels from a %d-channel tensor", nd->out_c, c);
        c = nd->out_c;
        break;
    case EPS_OP_FLATTEN:
        if ((long)c * h * w > EPS_GRAPH_MAX_DIM) return NODE_ERR(EPS_ELIMIT, "flatten of %dx%dx%d is too large", c, h, w);
        c = c * h * w;
        h = w = 1;
        break;
    default:
        break;
    }
    if (h <= 0 || w <= 0) return NODE_ERR(EPS_EINVAL, "output would be empty (input %dx%d is too small)", x->h, x->w);
    nd->c = c, nd->h = h, nd->w = w;
    if (g->n == g->cap) {
        int ncap = g->cap * 2;
        eps_node *nn = realloc(g->nodes, sizeof *nn * (size_t)ncap);
        if (!nn) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
        g->nodes = nn;
        g->cap = ncap;
    }
    g->nodes[g->n] = *nd;
    g->output = g->n;
    return g->n++;
}

static int add1(eps_graph *g, eps_op op, int x, eps_node *n, eps_error *err)
{
    n->op = op;
    n->n_in = 1;
    n->in[0] = x;
    return eps_graph_add(g, n, err);
}

int eps_g_conv(eps_graph *g, int x, int out_c, int kernel, int stride, int pad, int bias, eps_error *err)
{
    eps_node n = {.out_c = out_c, .kernel = kernel, .stride = stride, .pad = pad, .bias = bias};
    return add1(g, EPS_OP_CONV2D, x, &n, err);
}
int eps_g_bn(eps_graph *g, int x, eps_error *err) { return add1(g, EPS_OP_BATCHNORM, x, &(eps_node){0}, err); }
int eps_g_relu(eps_graph *g, int x, eps_error *err) { return add1(g, EPS_OP_RELU, x, &(eps_node){0}, err); }
int eps_g_avgpool(eps_graph *g, int x, int kernel, int stride, int pad, int count_include_pad, eps_error *err)
{
    eps_node n = {.kernel = kernel, .stride = stride, .pad = pad, .count_include_pad = count_include_pad};
    return add1(g, EPS_OP_AVGPOOL, x, &n, err);
}
int eps_g_maxpool(eps_graph *g, int x, int kernel, int stride, int pad, eps_error *err)
{
    eps_node n = {.kernel = kernel, .stride = stride, .pad = pad};
    return add1(g, EPS_OP_MAXPOOL, x, &n, err);
}
int eps_g_gap(eps_graph *g, int x, eps_error *err) { return add1(g, EPS_OP_GLOBAL_AVGPOOL, x, &(eps_node){0}, err); }
int eps_g_linear(eps_graph *g, int x, int out_features, int bias, eps_error *err)
{
    eps_node n = {.out_c = out_features, .bias = bias};
    return add1(g, EPS_OP_LINEAR, x, &n, err);
}
int eps_g_finish_one_output(eps_graph *g, int x, eps_error *err)
{
    if (x >= 0) x = eps_g_gap(g, x, err);
    if (x >= 0) x = eps_g_linear(g, x, 1, 1, err);
    if (x < 0) {
        eps_graph_free(g);
        return x;
    }
    g->output = x;
    return 0;
}
static int addn(eps_graph *g, eps_op op, int n, const int *xs, eps_error *err)
{
    if (n < 1 || n > EPS_GRAPH_MAX_INPUTS)
        return eps_error_set(err, EPS_EINVAL, "inputs", "%s takes 1 to %d inputs, got %d", eps_op_name(op),
                             EPS_GRAPH_MAX_INPUTS, n);
    eps_node nd = {.op = op, .n_in = n};
    memcpy(nd.in, xs, sizeof(int) * (size_t)n);
    return eps_graph_add(g, &nd, err);
}
int eps_g_add(eps_graph *g, int n, const int *xs, eps_error *err) { return addn(g, EPS_OP_ADD, n, xs, err); }
int eps_g_concat(eps_graph *g, int n, const int *xs, eps_error *err) { return addn(g, EPS_OP_CONCAT, n, xs, err); }
int eps_g_slice(eps_graph *g, int x, int channels, eps_error *err)
{
    eps_node n = {.out_c = channels};
    return add1(g, EPS_OP_SLICE, x, &n, err);
}
int eps_g_zero(eps_graph *g, int x, eps_error *err) { return add1(g, EPS_OP_ZERO, x, &(eps_node){0}, err); }
int eps_g_identity(eps_graph *g, int x, eps_error *err) { return add1(g, EPS_OP_IDENTITY, x, &(eps_node){0}, err); }
int eps_g_flatten(eps_graph *g, int x, eps_error *err) { return add1(g, EPS_OP_FLATTEN, x, &(eps_node){0}, err); }

long long eps_graph_params(const eps_graph *g)
{
    long long p = 0;
    for (int i = 1; i < g->n; i++) {
        const eps_node *n = &g->nodes[i];
        int cin = g->nodes[n->in[0]].c;
        switch (n->op) {
        case EPS_OP_CONV2D:
            p += (long long)n->out_c * (cin / n->groups) * n->kernel * n->kernel + (n->bias ? n->out_c : 0);
            break;
        case EPS_OP_BATCHNORM: p += 2LL * n->c; break;
        case EPS_OP_LINEAR: p += (long long)n->out_c * cin + (n->bias ? n->out_c : 0); break;
        default: break;
        }
    }
    return p;
}

long long eps_graph_macs(const eps_graph *g)
{
    long long m = 0;
    for (int i = 1; i < g->n; i++) {
        const eps_node *n = &g->nodes[i];
        int cin = g->nodes[n->in[0]].c;
        if (n->op == EPS_OP_CONV2D)
            m += (long long)n->out_c * n->h * n->w * (cin / n->groups) * n->kernel * n->kernel;
        else if (n->op == EPS_OP_LINEAR)
            m += (long long)n->out_c * cin;
    }
    return m;
}

long long eps_graph_output_size(const eps_graph *g)
{
    const eps_node *o = &g->nodes[g->output];
    return (long long)o->c * o->h * o->w;
}
