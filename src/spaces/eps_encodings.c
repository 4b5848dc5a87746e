/* eps_encodings.c — NASLib and NNI cell encodings for NB201 and NB101 (see
 * encodings.h): reading them from a request with positioned errors, the
 * one-encoding-per-request rule, and writing a cell in every encoding of
 * its space. Owns no network code: it only converts to and from the cells
 * eps_nb201.c and eps_nb101.c build. */
#include "epsinas/spaces/encodings.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ NB201 */

const int eps_nb201_naslib_code[EPS_NB201_OPS] = {1, 0, 3, 2, 4};
const int eps_nb201_naslib_edge[EPS_NB201_EDGES] = {0, 1, 3, 2, 4, 5};
const char *const eps_nb201_nni_op[EPS_NB201_OPS] = {"none", "skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3"};
const char *const eps_nb201_nni_key[EPS_NB201_EDGES] = {"0_1", "0_2", "1_2", "0_3", "1_3", "2_3"};

#define NB201_CODES "0=skip_connect, 1=none, 2=nor_conv_3x3, 3=nor_conv_1x1, 4=avg_pool_3x3"
#define NB201_NNI_OPS "none, skip_connect, conv_1x1, conv_3x3, avg_pool_3x3"
#define NB201_NNI_KEYS "0_1, 0_2, 0_3, 1_2, 1_3, 2_3"

/* The first two of names[] present in req: returns how many (0, 1, 2). */
static int present(const json_t *req, const char *const *names, const char **first, const char **second)
{
    int n = 0;
    *first = *second = NULL;
    for (int i = 0; names[i]; i++)
        if (json_object_get(req, names[i])) {
            if (n == 0) *first = names[i];
            else if (n == 1) *second = names[i];
            n++;
        }
    return n;
}

static int two_given(const char *a, const char *b, const char *choices, eps_error *err)
{
    char field[64];
    snprintf(field, sizeof field, "%s,%s", a, b);
    return eps_error_set(err, EPS_EINVAL, field, "both '%s' and '%s' are given; a request holds exactly one of %s", a, b,
                         choices);
}

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
    const char *a, *b;
    int n = present(req, names, &a, &b);
    if (n == 0)
        return eps_error_set(err, EPS_EINVAL, "arch",
                             "missing field 'arch' (an NB201 cell string like '|nor_conv_3x3~0|+|...|'), or give the cell "
                             "as 'op_indices' (NASLib, 6 ints) or 'nni' (NNI dict)");
    if (n > 1) return two_given(a, b, "arch, op_indices, nni", err);
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

/* ------------------------------------------------------------------ NB101 */

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
    const char *a, *b;
    if (present(req, names, &a, &b) > 1 || present(req, ops_naslib, &a, &b) > 1)
        return two_given(a, b, "matrix + ops, naslib", err);
    const json_t *t = json_object_get(req, "naslib");
    if (!t) return eps_nb101_from_json(json_object_get(req, "matrix"), json_object_get(req, "ops"), s, err);
    int rc = eps_nb101_from_naslib(t, s, err);
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
