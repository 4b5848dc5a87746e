/* eps_nb201.c — NAS-Bench-201: arch-string parsing with positioned errors,
 * the NASLib (op_indices) and NNI encodings both ways, canonical (live-edge)
 * form, enumeration, the C=16/N=5 one-output network (spec §3) at each
 * dataset's input size, and the "nb201" space registration with its table
 * of datasets. */
#include "epsinas/spaces/nb201.h"

#include <stdio.h>
#include <string.h>

#include "epsinas/core/md5.h"
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
    return eps_nb201_build_at(cell, 32, g, err);
}

int eps_nb201_build_at(const eps_nb201_cell *cell, int side, eps_graph *g, eps_error *err)
{
    int rc = eps_graph_init(g, 3, side, side, err);
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
    return eps_g_finish_one_output(g, x, err);
}

/* ---- encodings of other NAS tools (nb201.h): NASLib op_indices, NNI dicts ---- */

const int eps_nb201_naslib_code[EPS_NB201_OPS] = {1, 0, 3, 2, 4};
const int eps_nb201_naslib_edge[EPS_NB201_EDGES] = {0, 1, 3, 2, 4, 5};
const char *const eps_nb201_nni_op[EPS_NB201_OPS] = {"none", "skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3"};
const char *const eps_nb201_nni_key[EPS_NB201_EDGES] = {"0_1", "0_2", "1_2", "0_3", "1_3", "2_3"};

#define NB201_CODES "0=skip_connect, 1=none, 2=nor_conv_3x3, 3=nor_conv_1x1, 4=avg_pool_3x3"
#define NB201_NNI_OPS "none, skip_connect, conv_1x1, conv_3x3, avg_pool_3x3"
#define NB201_NNI_KEYS "0_1, 0_2, 0_3, 1_2, 1_3, 2_3"

int eps_nb201_from_op_indices(const json_t *v, eps_nb201_cell *cell, eps_error *err)
{
    if (!json_is_array(v))
        return eps_error_set(err, EPS_EINVAL, "op_indices",
                             "op_indices must be an array of 6 integers (NASLib codes " NB201_CODES ")");
    size_t n = json_array_size(v);
    if (n != EPS_NB201_EDGES)
        return eps_error_set(err, EPS_EINVAL, "op_indices",
                             "op_indices has %zu entries; NASLib's NB201 op_indices has 6, one per edge (1,2), (1,3), "
                             "(1,4), (2,3), (2,4), (3,4)",
                             n);
    int code[EPS_NB201_EDGES];
    for (int t = 0; t < EPS_NB201_EDGES; t++) { /* in array order: the first bad entry is named */
        const json_t *x = json_array_get(v, (size_t)t);
        if (!json_is_integer(x))
            return eps_error_set(err, EPS_EINVAL, "op_indices", "op_indices[%d]: not an integer (NASLib codes " NB201_CODES ")", t);
        json_int_t c = json_integer_value(x);
        if (c < 0 || c > 4)
            return eps_error_set(err, EPS_EINVAL, "op_indices", "op_indices[%d]: op code %lld is not 0..4 (" NB201_CODES ")", t,
                                 (long long)c);
        code[t] = (int)c;
    }
    for (int e = 0; e < EPS_NB201_EDGES; e++)
        for (int op = 0; op < EPS_NB201_OPS; op++)
            if (eps_nb201_naslib_code[op] == code[eps_nb201_naslib_edge[e]]) cell->op[e] = (unsigned char)op;
    return 0;
}

/* How much of a user's string (len bytes) goes into a message: at most 40
 * bytes, cut to whole UTF-8 characters (the message goes into JSON), and
 * nothing when it holds a control byte or NUL. */
static int quotable(const char *s, size_t len)
{
    size_t n = len < 40 ? len : 40;
    while (n > 0 && n < len && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20) return 0;
    return (int)n;
}

int eps_nb201_from_nni(const json_t *v, eps_nb201_cell *cell, eps_error *err)
{
    if (!json_is_object(v))
        return eps_error_set(err, EPS_EINVAL, "nni",
                             "nni must be an object with the keys " NB201_NNI_KEYS " (edge i->j), values " NB201_NNI_OPS);
    for (int e = 0; e < EPS_NB201_EDGES; e++)
        if (!json_object_get(v, eps_nb201_nni_key[e]))
            return eps_error_set(err, EPS_EINVAL, "nni", "nni: missing key '%s' (edge %c->%c; keys " NB201_NNI_KEYS ")",
                                 eps_nb201_nni_key[e], eps_nb201_nni_key[e][0], eps_nb201_nni_key[e][2]);
    const char *k;
    const json_t *x;
    json_object_foreach((json_t *)v, k, x) {
        int e = -1;
        for (int i = 0; i < EPS_NB201_EDGES; i++)
            if (!strcmp(k, eps_nb201_nni_key[i])) e = i;
        if (e < 0)
            return eps_error_set(err, EPS_EINVAL, "nni", "nni: unknown key '%.*s' (the keys are " NB201_NNI_KEYS ")",
                                 quotable(k, strlen(k)), k);
        if (!json_is_string(x))
            return eps_error_set(err, EPS_EINVAL, "nni", "nni.%s: not a string (ops " NB201_NNI_OPS ")", k);
        int op = -1;
        for (int i = 0; i < EPS_NB201_OPS; i++)
            if (!strcmp(json_string_value(x), eps_nb201_nni_op[i]) &&
                strlen(eps_nb201_nni_op[i]) == json_string_length(x))
                op = i;
        if (op < 0)
            return eps_error_set(err, EPS_EINVAL, "nni", "nni.%s: unknown op '%.*s' (expected " NB201_NNI_OPS ")", k,
                                 quotable(json_string_value(x), json_string_length(x)), json_string_value(x));
        cell->op[e] = (unsigned char)op;
    }
    return 0;
}

int eps_nb201_cell_from_request(const json_t *req, eps_nb201_cell *cell, eps_error *err)
{
    static const char *const names[] = {"arch", "op_indices", "nni", NULL};
    const char *a = NULL;
    int rc = eps_request_one_of(req, names, "arch, op_indices, nni", &a, err);
    if (rc < 0) return rc;
    if (!a)
        return eps_error_set(err, EPS_EINVAL, "arch",
                             "missing field 'arch' (an NB201 cell string like '|nor_conv_3x3~0|+|...|'), or give the cell "
                             "as 'op_indices' (NASLib, 6 ints) or 'nni' (NNI dict)");
    const json_t *v = json_object_get(req, a);
    if (!strcmp(a, "op_indices")) return eps_nb201_from_op_indices(v, cell, err);
    if (!strcmp(a, "nni")) return eps_nb201_from_nni(v, cell, err);
    if (!json_is_string(v)) return eps_error_set(err, EPS_EINVAL, "arch", "'arch' must be a string");
    return eps_nb201_parse(json_string_value(v), json_string_length(v), cell, err);
}

void eps_nb201_to_op_indices(const eps_nb201_cell *cell, int out[EPS_NB201_EDGES])
{
    for (int e = 0; e < EPS_NB201_EDGES; e++) out[eps_nb201_naslib_edge[e]] = eps_nb201_naslib_code[cell->op[e]];
}

json_t *eps_nb201_op_indices_json(const eps_nb201_cell *cell)
{
    int t[EPS_NB201_EDGES];
    eps_nb201_to_op_indices(cell, t);
    json_t *a = json_array();
    for (int i = 0; a && i < EPS_NB201_EDGES; i++)
        if (json_array_append_new(a, json_integer(t[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

json_t *eps_nb201_nni_json(const eps_nb201_cell *cell)
{
    json_t *o = json_object();
    /* keys in NNI's own order (by source, then target) */
    static const int order[EPS_NB201_EDGES] = {0, 1, 3, 2, 4, 5};
    for (int i = 0; o && i < EPS_NB201_EDGES; i++) {
        int e = order[i];
        if (json_object_set_new(o, eps_nb201_nni_key[e], json_string(eps_nb201_nni_op[cell->op[e]]))) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

json_t *eps_nb201_encodings(const eps_nb201_cell *cell)
{
    char buf[EPS_NB201_STR_MAX];
    eps_nb201_format(cell, buf);
    json_t *ti = eps_nb201_op_indices_json(cell), *nni = eps_nb201_nni_json(cell);
    if (!ti || !nni) {
        json_decref(ti);
        json_decref(nni);
        return NULL;
    }
    return json_pack("{s:s, s:o, s:o}", "arch", buf, "op_indices", ti, "nni", nni);
}

/* ---- the "nb201" space ---- */

/* The request's "dataset" (absent: the default, cifar10). */
static int dataset_from_request(const json_t *req, const eps_space_dataset **out, eps_error *err)
{
    const json_t *v = json_object_get(req, "dataset");
    char names[128];
    eps_space_dataset_names(&eps_nb201_space, names, sizeof names);
    if (v && !json_is_string(v))
        return eps_error_set(err, EPS_EINVAL, "dataset", "'dataset' must be a string, one of %s", names);
    *out = eps_space_dataset_find(&eps_nb201_space, v ? json_string_value(v) : NULL);
    if (!*out) {
        const char *s = json_string_value(v);
        size_t n = strlen(s) < 40 ? strlen(s) : 40; /* cut to whole UTF-8 characters: it goes into JSON */
        while (n > 0 && s[n] && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
        int printable = 1;
        for (size_t i = 0; i < n; i++) printable &= (unsigned char)s[i] >= 0x20;
        return eps_error_set(err, EPS_EINVAL, "dataset", "unknown dataset '%.*s' for space nb201 (expected one of %s)",
                             printable ? (int)n : 0, s, names);
    }
    return 0;
}

static int nb201_from_json(const json_t *req, eps_arch *out, eps_error *err)
{
    eps_nb201_cell cell, canon;
    int rc = eps_nb201_cell_from_request(req, &cell, err); /* arch, op_indices or nni */
    if (rc < 0) return rc;
    const eps_space_dataset *ds;
    if ((rc = dataset_from_request(req, &ds, err)) < 0) return rc;
    out->dataset = ds->dataset;
    /* params and MACs are those of the network as written (dead convs still
     * have weights); the engines run the canonical network, which computes
     * the same values. */
    rc = eps_nb201_build_at(&cell, ds->h, &out->graph, err);
    if (rc < 0) return rc;
    out->params = eps_graph_params(&out->graph);
    out->macs = eps_graph_macs(&out->graph);
    eps_graph_free(&out->graph);
    eps_nb201_canonical(&cell, &canon);
    rc = eps_nb201_build_at(&canon, ds->h, &out->graph, err);
    if (rc < 0) return rc;
    char buf[EPS_NB201_STR_MAX + 64];
    eps_nb201_format(&canon, buf);
    if (ds != &eps_nb201_space.datasets[0]) /* the default dataset keeps the plain cell (and its hash) */
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", EPS_NB201_DATASET_SEP, ds->dataset);
    out->canonical = strdup(buf);
    if (!out->canonical) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    eps_md5_hex(buf, strlen(buf), out->hash);
    return 0;
}

static json_t *nb201_encodings(const eps_arch *a)
{
    /* the canonical text starts with the cell string, which ends at its only
     * "~2|" (whatever else the canonical form may come to carry after it) */
    const char *end = a->canonical ? strstr(a->canonical, "~2|") : NULL;
    eps_nb201_cell cell;
    if (!end || eps_nb201_parse(a->canonical, (size_t)(end + 3 - a->canonical), &cell, NULL) < 0) return NULL;
    return eps_nb201_encodings(&cell);
}

/* Request fields this space reads (see eps_space.fields); the cell is in
 * exactly one of arch, op_indices, nni (nb201.h). */
static const char *const nb201_fields[] = {"arch", "op_indices", "nni", "dataset", NULL};

/* NB201's datasets, the first the default: the input shape the network
 * takes (ImageNet16-120 is 16x16; same cell, C=16, N=5, one output: the
 * classes do not change the network, spec §1/§3) and the default batch
 * (docs/batches.md: the study ran on CIFAR-10 accuracy; CIFAR-100 and
 * ImageNet16-120 share it until measured on their own). */
#define EPS_NB201_DEFAULT_BATCH "ramp"
static const eps_space_dataset nb201_datasets[] = {
    {"cifar10", EPS_NB201_DEFAULT_BATCH, 3, 32, 32, 10},
    {"cifar100", EPS_NB201_DEFAULT_BATCH, 3, 32, 32, 100},
    {"imagenet16-120", EPS_NB201_DEFAULT_BATCH, 3, 16, 16, 120},
    {NULL, NULL, 0, 0, 0, 0},
};

const eps_space eps_nb201_space = {
    .name = "nb201",
    .title = "NAS-Bench-201 (C=16, N=5, one output)",
    .w1 = 1e-7,
    .w2 = 1.0,
    .batch_kind = EPS_BATCH_IMAGES,
    .default_batch = EPS_NB201_DEFAULT_BATCH,
    .datasets = nb201_datasets,
    .op_names = eps_nb201_op_names,
    .fields = nb201_fields,
    .limits = "arch: a cell string of at most 160 bytes; op_indices: 6 ints; nni: 6 keys; dataset: cifar10, cifar100 "
              "or imagenet16-120",
    .from_json = nb201_from_json,
    .encodings = nb201_encodings,
};
