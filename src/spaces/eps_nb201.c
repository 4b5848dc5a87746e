/* eps_nb201.c — NAS-Bench-201: arch-string parsing with positioned errors,
 * canonical (live-edge) form, enumeration, the C=16/N=5 one-output network
 * (spec §3) and the "nb201" space registration. */
#include "epsinas/spaces/nb201.h"

#include <stdio.h>
#include <string.h>

#include "epsinas/core/md5.h"
#include "epsinas/spaces/encodings.h"
#include "epsinas/spaces/space.h"

const char *const eps_nb201_op_names[] = {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", NULL};

/* edge e -> (source, target) in string order */
static const int edge_src[EPS_NB201_EDGES] = {0, 0, 1, 0, 1, 2};
static const int edge_dst[EPS_NB201_EDGES] = {1, 2, 2, 3, 3, 3};

#define PARSE_ERR(pos, ...) \
    (eps_error_set(err, EPS_EINVAL, "arch", __VA_ARGS__), err ? (err->column = (long)(pos) + 1) : 0, EPS_EINVAL)

int eps_nb201_parse(const char *s, size_t len, eps_nb201_cell *cell, eps_error *err)
{
    if (len == 0) return PARSE_ERR(0, "arch string is empty; expected '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'");
    if (len > EPS_NB201_STR_MAX)
        return PARSE_ERR(EPS_NB201_STR_MAX, "arch string is %zu bytes long; an NB201 cell is at most %d", len,
                         EPS_NB201_STR_MAX);
    size_t i = 0;
    int e = 0;
    for (int node = 1; node <= 3; node++) {
        if (node > 1) {
            if (i >= len || s[i] != '+')
                return PARSE_ERR(i, "position %zu: expected '+' before the edges into node %d", i + 1, node);
            i++;
        }
        if (i >= len || s[i] != '|') return PARSE_ERR(i, "position %zu: expected '|' to open node %d", i + 1, node);
        i++;
        for (int src = 0; src < node; src++, e++) {
            if (i >= len || s[i] == '+')
                return PARSE_ERR(i, "position %zu: node %d has only %d incoming edge%s, expected %d", i + 1, node, src,
                                 src == 1 ? "" : "s", node);
            size_t start = i;
            while (i < len && s[i] != '~' && s[i] != '|' && s[i] != '+') {
                if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
                    return PARSE_ERR(i, "position %zu: unexpected byte 0x%02x (arch strings are printable ASCII)",
                                     i + 1, (unsigned char)s[i]);
                i++;
            }
            int op = -1;
            for (int k = 0; eps_nb201_op_names[k]; k++)
                if (strlen(eps_nb201_op_names[k]) == i - start && !memcmp(s + start, eps_nb201_op_names[k], i - start))
                    op = k;
            if (op < 0)
                return PARSE_ERR(start,
                                 "position %zu: unknown op '%.*s' on edge %d->%d (expected none, skip_connect, "
                                 "nor_conv_1x1, nor_conv_3x3 or avg_pool_3x3)",
                                 start + 1, (int)(i - start > 40 ? 40 : i - start), s + start, src, node);
            if (i >= len || s[i] != '~')
                return PARSE_ERR(i, "position %zu: expected '~%d' after '%s' on edge into node %d", i + 1, src,
                                 eps_nb201_op_names[op], node);
            i++;
            if (i >= len || s[i] < '0' || s[i] > '9')
                return PARSE_ERR(i, "position %zu: expected source node %d after '~'", i + 1, src);
            if (s[i] - '0' != src || (i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9')) {
                size_t j = i;
                while (j < len && s[j] >= '0' && s[j] <= '9' && j - i < 9) j++;
                return PARSE_ERR(i, "position %zu: source '%.*s' out of order: the edges into node %d come from 0..%d in order, expected %d here",
                                 i + 1, (int)(j - i), s + i, node, node - 1, src);
            }
            i++;
            if (i >= len || s[i] != '|')
                return PARSE_ERR(i, "position %zu: expected '|' after edge %d->%d%s", i + 1, src, node,
                                 (i < len && s[i] == '+') ? " (too few edges into this node)" : "");
            i++;
            cell->op[e] = (unsigned char)op;
        }
        if (node < 3 && i < len && s[i] != '+')
            return PARSE_ERR(i, "position %zu: node %d has %d incoming edges; expected '+' here", i + 1, node, node);
    }
    if (i != len) return PARSE_ERR(i, "position %zu: trailing characters after the cell", i + 1);
    return 0;
}

void eps_nb201_format(const eps_nb201_cell *cell, char *buf)
{
    char *p = buf;
    int e = 0;
    for (int node = 1; node <= 3; node++) {
        if (node > 1) *p++ = '+';
        *p++ = '|';
        for (int src = 0; src < node; src++, e++) p += sprintf(p, "%s~%d|", eps_nb201_op_names[cell->op[e]], src);
    }
    *p = 0;
}

void eps_nb201_canonical(const eps_nb201_cell *cell, eps_nb201_cell *out)
{
    *out = *cell;
    /* forward: a node is nonzero if some live edge comes from a nonzero node */
    int nonzero[4] = {1, 0, 0, 0};
    for (int e = 0; e < EPS_NB201_EDGES; e++) {
        if (!nonzero[edge_src[e]]) out->op[e] = EPS_NB201_NONE;
        if (out->op[e] != EPS_NB201_NONE) nonzero[edge_dst[e]] = 1;
    }
    /* backward: a node matters if a live edge leads from it to one that matters */
    int useful[4] = {0, 0, 0, 1};
    for (int e = EPS_NB201_EDGES - 1; e >= 0; e--) {
        if (!useful[edge_dst[e]]) out->op[e] = EPS_NB201_NONE;
        if (out->op[e] != EPS_NB201_NONE) useful[edge_src[e]] = 1;
    }
}

void eps_nb201_from_index(int index, eps_nb201_cell *cell)
{
    for (int e = 0; e < EPS_NB201_EDGES; e++, index /= EPS_NB201_OPS) cell->op[e] = (unsigned char)(index % EPS_NB201_OPS);
}

int eps_nb201_has_parameterless_path(const eps_nb201_cell *cell)
{
    int reach[4] = {1, 0, 0, 0};
    for (int e = 0; e < EPS_NB201_EDGES; e++)
        if (reach[edge_src[e]] && (cell->op[e] == EPS_NB201_SKIP || cell->op[e] == EPS_NB201_AVGPOOL))
            reach[edge_dst[e]] = 1;
    return reach[3];
}

/* ReLU -> Conv kxk -> BN */
static int relu_conv_bn(eps_graph *g, int x, int out_c, int k, int stride, eps_error *err)
{
    int r = eps_g_relu(g, x, err);
    if (r < 0) return r;
    r = eps_g_conv(g, r, out_c, k, stride, k / 2, 0, err);
    if (r < 0) return r;
    return eps_g_bn(g, r, err);
}

static int cell_op(eps_graph *g, int x, int op, int c, eps_error *err)
{
    switch (op) {
    case EPS_NB201_SKIP: return x;
    case EPS_NB201_CONV1X1: return relu_conv_bn(g, x, c, 1, 1, err);
    case EPS_NB201_CONV3X3: return relu_conv_bn(g, x, c, 3, 1, err);
    case EPS_NB201_AVGPOOL: return eps_g_avgpool(g, x, 3, 1, 1, 0, err);
    default: return eps_g_zero(g, x, err);
    }
}

static int build_cell(eps_graph *g, int x, const eps_nb201_cell *cell, int c, eps_error *err)
{
    int node[4] = {x, -1, -1, -1};
    for (int dst = 1, e = 0; dst <= 3; dst++) {
        int terms[3], n = 0;
        for (int src = 0; src < dst; src++, e++) {
            int t = cell_op(g, node[src], cell->op[e], c, err);
            if (t < 0) return t;
            terms[n++] = t;
        }
        node[dst] = n == 1 ? terms[0] : eps_g_add(g, n, terms, err);
        if (node[dst] < 0) return node[dst];
    }
    return node[3];
}

static int resblock(eps_graph *g, int x, int out_c, eps_error *err)
{
    int a = relu_conv_bn(g, x, out_c, 3, 2, err);
    if (a < 0) return a;
    int b = relu_conv_bn(g, a, out_c, 3, 1, err);
    if (b < 0) return b;
    int s = eps_g_avgpool(g, x, 2, 2, 0, 0, err);
    if (s < 0) return s;
    s = eps_g_conv(g, s, out_c, 1, 1, 0, 0, err);
    if (s < 0) return s;
    int sum[2] = {s, b};
    return eps_g_add(g, 2, sum, err);
}

int eps_nb201_build(const eps_nb201_cell *cell, eps_graph *g, eps_error *err)
{
    int rc = eps_graph_init(g, 3, 32, 32, err);
    if (rc < 0) return rc;
    int x = eps_g_conv(g, 0, 16, 3, 1, 1, 0, err);
    if (x >= 0) x = eps_g_bn(g, x, err);
    const int widths[3] = {16, 32, 64};
    for (int stage = 0; stage < 3 && x >= 0; stage++) {
        if (stage > 0) x = resblock(g, x, widths[stage], err);
        for (int k = 0; k < 5 && x >= 0; k++) x = build_cell(g, x, cell, widths[stage], err);
    }
    if (x >= 0) x = eps_g_bn(g, x, err);
    if (x >= 0) x = eps_g_relu(g, x, err);
    if (x >= 0) x = eps_g_gap(g, x, err);
    if (x >= 0) x = eps_g_linear(g, x, 1, 1, err);
    if (x < 0) {
        eps_graph_free(g);
        return x;
    }
    g->output = x;
    return 0;
}

/* ---- the "nb201" space ---- */

static int nb201_from_json(const json_t *req, eps_arch *out, eps_error *err)
{
    eps_nb201_cell cell, canon;
    int rc = eps_nb201_cell_from_request(req, &cell, err); /* arch, op_indices or nni */
    if (rc < 0) return rc;
    /* params and MACs are those of the network as written (dead convs still
     * have weights); the engines run the canonical network, which computes
     * the same values. */
    rc = eps_nb201_build(&cell, &out->graph, err);
    if (rc < 0) return rc;
    out->params = eps_graph_params(&out->graph);
    out->macs = eps_graph_macs(&out->graph);
    eps_graph_free(&out->graph);
    eps_nb201_canonical(&cell, &canon);
    rc = eps_nb201_build(&canon, &out->graph, err);
    if (rc < 0) return rc;
    char buf[EPS_NB201_STR_MAX];
    eps_nb201_format(&canon, buf);
    out->canonical = strdup(buf);
    if (!out->canonical) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    eps_md5_hex(buf, strlen(buf), out->hash);
    return 0;
}

static json_t *nb201_encodings(const eps_arch *a)
{
    eps_nb201_cell cell;
    if (!a->canonical || eps_nb201_parse(a->canonical, strlen(a->canonical), &cell, NULL) < 0) return NULL;
    return eps_nb201_encodings(&cell);
}

/* Request fields this space reads (see eps_space.fields); the cell is in
 * exactly one of arch, op_indices, nni (encodings.h). */
static const char *const nb201_fields[] = {"arch", "op_indices", "nni", NULL};

const eps_space eps_nb201_space = {
    .name = "nb201",
    .title = "NAS-Bench-201 (C=16, N=5, one output)",
    .w1 = 1e-7,
    .w2 = 1.0,
    .batch_kind = EPS_BATCH_IMAGES,
    .op_names = eps_nb201_op_names,
    .fields = nb201_fields,
    .limits = "arch: a cell string of at most 160 bytes; op_indices: 6 ints; nni: 6 keys",
    .from_json = nb201_from_json,
    .encodings = nb201_encodings,
};
