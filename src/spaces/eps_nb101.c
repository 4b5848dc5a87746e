/* eps_nb101.c — the NAS-Bench-101 space (spec §4; see nb101.h for the
 * request format, pruning, hash and parameter conventions). Owns: parsing
 * and validation of cell specs (matrix + ops, or NASLib's tuple), NAS-Bench-101's pruning and module hash,
 * the network builder and the "nb101" space registration. */
#include "epsinas/spaces/nb101.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epsinas/core/md5.h"
#include "epsinas/spaces/space.h"

const char *const eps_nb101_op_names[] = {"conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", NULL};

static const char *label_name(int l)
{
    if (l == EPS_NB101_INPUT) return "input";
    if (l == EPS_NB101_OUTPUT) return "output";
    return eps_nb101_op_names[l];
}

int eps_nb101_parse(const json_t *matrix, const json_t *ops, eps_nb101_spec *out, eps_error *err)
{
    memset(out, 0, sizeof *out);
    if (!matrix) return eps_error_set(err, EPS_EINVAL, "matrix", "missing field 'matrix' (square 0/1 adjacency matrix)");
    if (!json_is_array(matrix))
        return eps_error_set(err, EPS_EINVAL, "matrix", "'matrix' must be an array of rows (arrays of 0/1)");
    size_t n = json_array_size(matrix);
    if (n < 2 || n > EPS_NB101_MAX_VERTICES)
        return eps_error_set(err, EPS_EINVAL, "matrix", "matrix has %zu rows; NAS-Bench-101 cells have 2 to %d vertices",
                             n, EPS_NB101_MAX_VERTICES);
    for (size_t i = 0; i < n; i++) {
        const json_t *row = json_array_get(matrix, i);
        if (!json_is_array(row))
            return eps_error_set(err, EPS_EINVAL, "matrix", "matrix row %zu is not an array", i);
        if (json_array_size(row) != n)
            return eps_error_set(err, EPS_EINVAL, "matrix", "matrix row %zu has %zu entries, expected %zu (matrix must be square)",
                                 i, json_array_size(row), n);
        for (size_t j = 0; j < n; j++) {
            const json_t *v = json_array_get(row, j);
            if (!json_is_integer(v) || (json_integer_value(v) != 0 && json_integer_value(v) != 1))
                return eps_error_set(err, EPS_EINVAL, "matrix", "matrix[%zu][%zu] must be the integer 0 or 1", i, j);
            if (json_integer_value(v) && j <= i)
                return eps_error_set(err, EPS_EINVAL, "matrix",
                                     "matrix[%zu][%zu] = 1 is %s the diagonal: the matrix must be strictly upper-triangular "
                                     "(edges go from a lower to a higher vertex)",
                                     i, j, j == i ? "on" : "below");
            out->adj[i][j] = (unsigned char)json_integer_value(v);
        }
    }
    out->n = (int)n;
    if (!ops) return eps_error_set(err, EPS_EINVAL, "ops", "missing field 'ops' (list of vertex ops)");
    if (!json_is_array(ops)) return eps_error_set(err, EPS_EINVAL, "ops", "'ops' must be an array of strings");
    if (json_array_size(ops) != n)
        return eps_error_set(err, EPS_EINVAL, "ops", "ops has %zu entries but matrix has %zu vertices",
                             json_array_size(ops), n);
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(ops, i);
        if (!json_is_string(o)) return eps_error_set(err, EPS_EINVAL, "ops", "ops[%zu] is not a string", i);
        const char *s = json_string_value(o);
        if (i == 0 || i == n - 1) {
            const char *want = i == 0 ? "input" : "output";
            if (strcmp(s, want))
                return eps_error_set(err, EPS_EINVAL, "ops", "ops[%zu] is '%.40s'; the %s vertex must be '%s'", i, s,
                                     i == 0 ? "first" : "last", want);
            out->label[i] = (signed char)(i == 0 ? EPS_NB101_INPUT : EPS_NB101_OUTPUT);
            continue;
        }
        int l = -1;
        for (int k = 0; eps_nb101_op_names[k]; k++)
            if (!strcmp(s, eps_nb101_op_names[k])) l = k;
        if (l < 0)
            return eps_error_set(err, EPS_EINVAL, "ops",
                                 "ops[%zu] is '%.40s', not an interior op (expected conv3x3-bn-relu, conv1x1-bn-relu "
                                 "or maxpool3x3)",
                                 i, s);
        out->label[i] = (signed char)l;
    }
    return 0;
}

int eps_nb101_edges(const eps_nb101_spec *s)
{
    int e = 0;
    for (int i = 0; i < s->n; i++)
        for (int j = 0; j < s->n; j++) e += s->adj[i][j];
    return e;
}

int eps_nb101_prune(const eps_nb101_spec *in, eps_nb101_spec *out, eps_error *err)
{
    int n = in->n;
    /* Edges only go forward, so one sweep each way is a full DFS. */
    int from_in[EPS_NB101_MAX_VERTICES] = {0}, to_out[EPS_NB101_MAX_VERTICES] = {0};
    from_in[0] = 1;
    for (int v = 1; v < n; v++)
        for (int u = 0; u < v; u++)
            if (from_in[u] && in->adj[u][v]) from_in[v] = 1;
    to_out[n - 1] = 1;
    for (int v = n - 2; v >= 0; v--)
        for (int u = v + 1; u < n; u++)
            if (to_out[u] && in->adj[v][u]) to_out[v] = 1;
    if (!from_in[n - 1])
        return eps_error_set(err, EPS_EINVAL, "matrix",
                             "no path from the input (vertex 0) to the output (vertex %d): the cell computes nothing", n - 1);
    int keep[EPS_NB101_MAX_VERTICES], k = 0;
    for (int v = 0; v < n; v++)
        if (from_in[v] && to_out[v]) keep[k++] = v;
    eps_nb101_spec r;
    memset(&r, 0, sizeof r);
    r.n = k;
    for (int i = 0; i < k; i++) {
        r.label[i] = in->label[keep[i]];
        for (int j = 0; j < k; j++) r.adj[i][j] = in->adj[keep[i]][keep[j]];
    }
    int e = eps_nb101_edges(&r);
    if (e > EPS_NB101_MAX_EDGES) {
        int e0 = eps_nb101_edges(in);
        if (e0 != e)
            return eps_error_set(err, EPS_EINVAL, "matrix", "matrix has %d edges (%d after pruning); NAS-Bench-101 allows at most %d",
                                 e0, e, EPS_NB101_MAX_EDGES);
        return eps_error_set(err, EPS_EINVAL, "matrix", "matrix has %d edges; NAS-Bench-101 allows at most %d", e,
                             EPS_NB101_MAX_EDGES);
    }
    *out = r;
    return 0;
}

int eps_nb101_from_json(const json_t *matrix, const json_t *ops, eps_nb101_spec *out, eps_error *err)
{
    int rc = eps_nb101_parse(matrix, ops, out, err);
    if (rc < 0) return rc;
    return eps_nb101_prune(out, out, err);
}

static int cmp_hex(const void *a, const void *b) { return memcmp(a, b, 32); }

/* graph_util.hash_module: start from md5(str((out_degree, in_degree, label)))
 * per vertex, refine n times with md5(sorted in-neighbour hashes joined +
 * "|" + sorted out-neighbour hashes joined + "|" + own hash), then
 * md5(str(sorted(hashes))) — the Python list repr "['..', '..']". */
void eps_nb101_hash(const eps_nb101_spec *s, char out[33])
{
    enum { V = EPS_NB101_MAX_VERTICES };
    int n = s->n;
    char h[V][33], nh[V][33];
    for (int v = 0; v < n; v++) {
        int indeg = 0, outdeg = 0;
        for (int u = 0; u < n; u++) indeg += s->adj[u][v], outdeg += s->adj[v][u];
        char t[48];
        int len = snprintf(t, sizeof t, "(%d, %d, %d)", outdeg, indeg, s->label[v]);
        eps_md5_hex(t, (size_t)len, h[v]);
    }
    for (int it = 0; it < n; it++) {
        for (int v = 0; v < n; v++) {
            char ins[V][32], outs[V][32];
            int ni = 0, no = 0;
            for (int u = 0; u < n; u++) {
                if (s->adj[u][v]) memcpy(ins[ni++], h[u], 32);
                if (s->adj[v][u]) memcpy(outs[no++], h[u], 32);
            }
            qsort(ins, (size_t)ni, 32, cmp_hex);
            qsort(outs, (size_t)no, 32, cmp_hex);
            eps_md5_ctx c;
            eps_md5_init(&c);
            for (int i = 0; i < ni; i++) eps_md5_update(&c, ins[i], 32);
            eps_md5_update(&c, "|", 1);
            for (int i = 0; i < no; i++) eps_md5_update(&c, outs[i], 32);
            eps_md5_update(&c, "|", 1);
            eps_md5_update(&c, h[v], 32);
            unsigned char d[16];
            eps_md5_final(&c, d);
            eps_md5_to_hex(d, nh[v]);
        }
        memcpy(h, nh, sizeof h);
    }
    char sorted[V][32];
    for (int v = 0; v < n; v++) memcpy(sorted[v], h[v], 32);
    qsort(sorted, (size_t)n, 32, cmp_hex);
    eps_md5_ctx c;
    eps_md5_init(&c);
    eps_md5_update(&c, "[", 1);
    for (int v = 0; v < n; v++) {
        if (v) eps_md5_update(&c, ", ", 2);
        eps_md5_update(&c, "'", 1);
        eps_md5_update(&c, sorted[v], 32);
        eps_md5_update(&c, "'", 1);
    }
    eps_md5_update(&c, "]", 1);
    unsigned char d[16];
    eps_md5_final(&c, d);
    eps_md5_to_hex(d, out);
}

char *eps_nb101_canonical(const eps_nb101_spec *s)
{
    /* at most 7 rows of 7 digits + ops names: well under 512 bytes */
    char buf[512];
    size_t p = 0;
    p += (size_t)snprintf(buf + p, sizeof buf - p, "{\"matrix\":[");
    for (int i = 0; i < s->n; i++) {
        p += (size_t)snprintf(buf + p, sizeof buf - p, "%s[", i ? "," : "");
        for (int j = 0; j < s->n; j++) p += (size_t)snprintf(buf + p, sizeof buf - p, "%s%d", j ? "," : "", s->adj[i][j]);
        p += (size_t)snprintf(buf + p, sizeof buf - p, "]");
    }
    p += (size_t)snprintf(buf + p, sizeof buf - p, "],\"ops\":[");
    for (int i = 0; i < s->n; i++)
        p += (size_t)snprintf(buf + p, sizeof buf - p, "%s\"%s\"", i ? "," : "", label_name(s->label[i]));
    snprintf(buf + p, sizeof buf - p, "]}");
    return strdup(buf);
}

void eps_nb101_vertex_channels(const eps_nb101_spec *s, int cin, int cout, int *ch)
{
    int n = s->n;
    for (int v = 0; v < n; v++) ch[v] = 0;
    ch[0] = cin;
    ch[n - 1] = cout;
    if (n == 2) return;
    int fan = 0; /* interior vertices feeding the output */
    for (int v = 1; v < n - 1; v++) fan += s->adj[v][n - 1];
    if (fan == 0) return; /* only possible for unpruned specs */
    int base = cout / fan, extra = cout % fan;
    for (int v = 1; v < n - 1; v++)
        if (s->adj[v][n - 1]) {
            ch[v] = base + (extra > 0);
            if (extra > 0) extra--;
        }
    for (int v = n - 3; v >= 1; v--)
        if (!s->adj[v][n - 1])
            for (int d = v + 1; d < n - 1; d++)
                if (s->adj[v][d] && ch[d] > ch[v]) ch[v] = ch[d];
}

/* Conv1x1 -> BN -> ReLU to c channels (NAS-Bench-101's projection). */
static int conv_bn_relu(eps_graph *g, int x, int c, int k, eps_error *err)
{
    int r = eps_g_conv(g, x, c, k, 1, k / 2, 0, err);
    if (r >= 0) r = eps_g_bn(g, r, err);
    if (r >= 0) r = eps_g_relu(g, r, err);
    return r;
}

/* One cell on node x (cin channels) -> cout channels; returns the output node. */
static int build_cell(const eps_nb101_spec *s, eps_graph *g, int x, int cin, int cout, eps_error *err)
{
    int n = s->n, ch[EPS_NB101_MAX_VERTICES], t_node[EPS_NB101_MAX_VERTICES];
    eps_nb101_vertex_channels(s, cin, cout, ch);
    t_node[0] = x;
    int cat[EPS_NB101_MAX_VERTICES], ncat = 0;
    for (int t = 1; t < n - 1; t++) {
        int add[EPS_NB101_MAX_VERTICES], na = 0;
        /* interior predecessors first, then the projected input, as in
         * NAS-Bench-101's build_module (the sum order is part of rounding) */
        for (int src = 1; src < t; src++) {
            if (!s->adj[src][t]) continue;
            int r = t_node[src];
            if (ch[src] != ch[t]) r = eps_g_slice(g, r, ch[t], err);
            if (r < 0) return r;
            add[na++] = r;
        }
        if (s->adj[0][t]) {
            int r = conv_bn_relu(g, x, ch[t], 1, err);
            if (r < 0) return r;
            add[na++] = r;
        }
        if (na == 0) return eps_error_set(err, EPS_EINTERNAL, "matrix", "vertex %d has no input (spec not pruned)", t);
        int vin = na == 1 ? add[0] : eps_g_add(g, na, add, err);
        if (vin < 0) return vin;
        int r;
        switch (s->label[t]) {
        case EPS_NB101_CONV3X3: r = conv_bn_relu(g, vin, ch[t], 3, err); break;
        case EPS_NB101_CONV1X1: r = conv_bn_relu(g, vin, ch[t], 1, err); break;
        case EPS_NB101_MAXPOOL: r = eps_g_maxpool(g, vin, 3, 1, 1, err); break;
        default: return eps_error_set(err, EPS_EINTERNAL, "ops", "vertex %d has label %d", t, s->label[t]);
        }
        if (r < 0) return r;
        t_node[t] = r;
        if (s->adj[t][n - 1]) cat[ncat++] = r;
    }
    int out;
    if (ncat == 0) {
        if (!s->adj[0][n - 1]) return eps_error_set(err, EPS_EINTERNAL, "matrix", "output has no input (spec not pruned)");
        return conv_bn_relu(g, x, cout, 1, err);
    }
    out = ncat == 1 ? cat[0] : eps_g_concat(g, ncat, cat, err);
    if (out < 0) return out;
    if (s->adj[0][n - 1]) {
        int p = conv_bn_relu(g, x, cout, 1, err);
        if (p < 0) return p;
        int two[2] = {out, p};
        out = eps_g_add(g, 2, two, err);
    }
    return out;
}

int eps_nb101_build(const eps_nb101_spec *s, eps_graph *g, eps_error *err)
{
    int rc = eps_graph_init(g, 3, 32, 32, err);
    if (rc < 0) return rc;
    int c = EPS_NB101_STEM_CHANNELS, cin = c;
    int x = conv_bn_relu(g, 0, c, 3, err);
    for (int st = 0; x >= 0 && st < EPS_NB101_STACKS; st++) {
        if (st > 0) {
            x = eps_g_maxpool(g, x, 2, 2, 0, err);
            c *= 2;
        }
        for (int k = 0; x >= 0 && k < EPS_NB101_CELLS_PER_STACK; k++) {
            x = build_cell(s, g, x, cin, c, err);
            cin = c;
        }
    }
    return eps_g_finish_one_output(g, x, err);
}

/* ---------------------------------------------- NASLib tuples (nb101.h) */

#define NB101_CODES "0=input, 1=output, 2=maxpool3x3, 3=conv1x1-bn-relu, 4=conv3x3-bn-relu"

/* NASLib op code -> our label, and back. */
static const int naslib_label[5] = {EPS_NB101_INPUT, EPS_NB101_OUTPUT, EPS_NB101_MAXPOOL, EPS_NB101_CONV1X1,
                                    EPS_NB101_CONV3X3};
static const char *const naslib_op_name[5] = {"input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu"};

static int naslib_code(int label)
{
    for (int c = 0; c < 5; c++)
        if (naslib_label[c] == label) return c;
    return -1;
}

int eps_nb101_from_naslib(const json_t *v, eps_nb101_spec *s, eps_error *err)
{
    memset(s, 0, sizeof *s);
    if (!json_is_array(v))
        return eps_error_set(err, EPS_EINVAL, "naslib",
                             "naslib must be an array of integers: the n x n adjacency row-major, then n op codes (" NB101_CODES
                             "); 56 for NASLib's 7-vertex cells");
    size_t len = json_array_size(v);
    int n = 0;
    for (int k = 2; k <= EPS_NB101_MAX_VERTICES; k++)
        if ((size_t)(k * k + k) == len) n = k;
    if (!n)
        return eps_error_set(err, EPS_EINVAL, "naslib",
                             "naslib has %zu entries; a NASLib NB101 tuple has n*n + n for n vertices: 56 for NASLib's "
                             "7-vertex cells (6, 12, 20, 30 or 42 for 2..6)",
                             len);
    for (size_t i = 0; i < len; i++)
        if (!json_is_integer(json_array_get(v, i)))
            return eps_error_set(err, EPS_EINVAL, "naslib", "naslib[%zu]: not an integer", i);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            size_t at = (size_t)(i * n + j);
            json_int_t x = json_integer_value(json_array_get(v, at));
            if (x != 0 && x != 1)
                return eps_error_set(err, EPS_EINVAL, "naslib", "naslib[%zu]: matrix[%d][%d] is %lld, not 0 or 1", at, i, j,
                                     (long long)x);
            if (x && j <= i)
                return eps_error_set(err, EPS_EINVAL, "naslib",
                                     "naslib[%zu]: matrix[%d][%d] = 1 is %s the diagonal: the matrix must be strictly "
                                     "upper-triangular (edges go from a lower to a higher vertex)",
                                     at, i, j, j == i ? "on" : "below");
            s->adj[i][j] = (unsigned char)x;
        }
    for (int i = 0; i < n; i++) {
        size_t at = (size_t)(n * n + i);
        json_int_t c = json_integer_value(json_array_get(v, at));
        if (c < 0 || c > 4)
            return eps_error_set(err, EPS_EINVAL, "naslib", "naslib[%zu]: op code %lld is not 0..4 (" NB101_CODES ")", at,
                                 (long long)c);
        int want = i == 0 ? 0 : i == n - 1 ? 1 : -1;
        if (want >= 0 && c != want)
            return eps_error_set(err, EPS_EINVAL, "naslib", "naslib[%zu]: op code %lld (%s) at vertex %d; the %s vertex must be %d (%s)",
                                 at, (long long)c, naslib_op_name[c], i, i == 0 ? "first" : "last", want, naslib_op_name[want]);
        if (want < 0 && c < 2)
            return eps_error_set(err, EPS_EINVAL, "naslib",
                                 "naslib[%zu]: op code %lld (%s) at interior vertex %d; interior ops are 2=maxpool3x3, "
                                 "3=conv1x1-bn-relu, 4=conv3x3-bn-relu",
                                 at, (long long)c, naslib_op_name[c], i);
        s->label[i] = (signed char)naslib_label[c];
    }
    s->n = n;
    return 0;
}

int eps_nb101_spec_from_request(const json_t *req, eps_nb101_spec *s, eps_error *err)
{
    static const char *const names[] = {"matrix", "naslib", NULL}, *const ops_naslib[] = {"ops", "naslib", NULL};
    const char *a;
    int rc = eps_request_one_of(req, names, "matrix + ops, naslib", &a, err);
    if (rc == 0) rc = eps_request_one_of(req, ops_naslib, "matrix + ops, naslib", &a, err);
    if (rc < 0) return rc;
    const json_t *t = json_object_get(req, "naslib");
    if (!t) return eps_nb101_from_json(json_object_get(req, "matrix"), json_object_get(req, "ops"), s, err);
    rc = eps_nb101_from_naslib(t, s, err);
    if (rc < 0) return rc;
    rc = eps_nb101_prune(s, s, err);
    if (rc < 0 && err) { /* the pruning speaks of 'matrix': here it is the tuple's */
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        eps_error_set(err, rc, "naslib", "naslib: %s", m);
    }
    return rc;
}

json_t *eps_nb101_naslib_json(const eps_nb101_spec *s)
{
    json_t *a = json_array();
    for (int i = 0; a && i < s->n * s->n; i++)
        if (json_array_append_new(a, json_integer(s->adj[i / s->n][i % s->n]))) goto oom;
    for (int i = 0; a && i < s->n; i++)
        if (json_array_append_new(a, json_integer(naslib_code(s->label[i])))) goto oom;
    return a;
oom:
    json_decref(a);
    return NULL;
}

json_t *eps_nb101_encodings(const eps_nb101_spec *s)
{
    json_t *m = json_array(), *ops = json_array(), *t = eps_nb101_naslib_json(s);
    int bad = !m || !ops || !t;
    for (int i = 0; !bad && i < s->n; i++) {
        json_t *row = json_array();
        bad |= !row || json_array_append_new(m, row);
        for (int j = 0; !bad && j < s->n; j++) bad |= json_array_append_new(row, json_integer(s->adj[i][j]));
        bad |= json_array_append_new(ops, json_string(naslib_op_name[naslib_code(s->label[i])]));
    }
    char hash[33];
    eps_nb101_hash(s, hash);
    if (bad) {
        json_decref(m);
        json_decref(ops);
        json_decref(t);
        return NULL;
    }
    return json_pack("{s:o, s:o, s:o, s:s}", "matrix", m, "ops", ops, "naslib", t, "hash", hash);
}

/* ---------------------------------------------------------------- space */

static int nb101_from_json(const json_t *req, eps_arch *out, eps_error *err)
{
    eps_nb101_spec s;
    int rc = eps_nb101_spec_from_request(req, &s, err); /* matrix + ops, or naslib */
    if (rc < 0) return rc;
    out->canonical = eps_nb101_canonical(&s);
    if (!out->canonical) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    eps_nb101_hash(&s, out->hash);
    rc = eps_nb101_build(&s, &out->graph, err);
    if (rc < 0) return rc;
    out->params = eps_graph_params(&out->graph);
    out->macs = eps_graph_macs(&out->graph);
    return 0;
}

static json_t *nb101_encodings(const eps_arch *a)
{
    json_t *c = a->canonical ? json_loads(a->canonical, 0, NULL) : NULL;
    eps_nb101_spec s;
    int rc = c ? eps_nb101_parse(json_object_get(c, "matrix"), json_object_get(c, "ops"), &s, NULL) : -1;
    json_decref(c);
    return rc < 0 ? NULL : eps_nb101_encodings(&s);
}

/* Request fields this space reads (see eps_space.fields); the cell is
 * matrix + ops or naslib (nb101.h). */
static const char *const nb101_fields[] = {"matrix", "ops", "naslib", NULL};

const eps_space eps_nb101_space = {
    .name = "nb101",
    .title = "NAS-Bench-101",
    .w1 = 1e-4,
    .w2 = 10,
    .batch_kind = EPS_BATCH_IMAGES,
    .default_batch = "leaves:1",
    .op_names = eps_nb101_op_names,
    .fields = nb101_fields,
    .limits = "2-7 vertices, at most 9 edges after pruning, 3 x 32 x 32 images; naslib: n*n + n ints (56 for 7 vertices)",
    .from_json = nb101_from_json,
    .encodings = nb101_encodings,
};
