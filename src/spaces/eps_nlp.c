/* eps_nlp.c — the NAS-Bench-NLP space (spec §5; see nlp.h for the request,
 * validation rules, model, parameter count and engines). Owns: recipe
 * parsing/validation and canonical form, the deterministic embedding, the
 * dense (sgemm) and fast (one scalar per stream) forward engines, and the
 * "nlp" space registration. */
#include "epsinas/spaces/nlp.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epsinas/core/md5.h"
#include "epsinas/spaces/space.h"

const char *const eps_nlp_op_names[] = {
    "linear",          "blend",           "elementwise_prod",      "elementwise_sum",
    "activation_tanh", "activation_sigm", "activation_leaky_relu", NULL,
};

/* Accepted input counts per op (linear 2-3). */
static const int arity_min[EPS_NLP_OP__COUNT] = {2, 3, 2, 2, 1, 1, 1};
static const int arity_max[EPS_NLP_OP__COUNT] = {3, 3, 2, 2, 1, 1, 1};

/* A raw recipe string may carry whitespace the canonical text drops. */
#define RAW_RECIPE_MAX (4 * EPS_NLP_RECIPE_MAX_BYTES)

/* (input, hidden) widths of the three layers. */
static const int layer_in[EPS_NLP_LAYERS] = {EPS_NLP_EMB, EPS_NLP_HIDDEN, EPS_NLP_HIDDEN};
static const int layer_hid[EPS_NLP_LAYERS] = {EPS_NLP_HIDDEN, EPS_NLP_HIDDEN, EPS_NLP_EMB};

/* ------------------------------------------------------------ parsing */

/* "PREFIX<K>" with K a canonical decimal (no sign, no leading zero) below
 * EPS_NLP_MAX_NODES: returns K, -1 when name does not start with prefix,
 * -2 when it does but the rest is not such a number. */
static int indexed_name(const char *name, const char *prefix)
{
    size_t p = strlen(prefix);
    if (strncmp(name, prefix, p)) return -1;
    const char *d = name + p;
    size_t n = strlen(d);
    if (n == 0 || n > 3 || strspn(d, "0123456789") != n || (n > 1 && d[0] == '0')) return -2;
    int k = atoi(d);
    return k < EPS_NLP_MAX_NODES ? k : -2;
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= EPS_NLP_NAME_MAX && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

typedef struct parse_ctx {
    const char **names;         /* sorted node names (borrowed from the JSON) */
    int n;
    int ops[EPS_NLP_MAX_NODES];
    int n_in[EPS_NLP_MAX_NODES];
    int in[EPS_NLP_MAX_NODES][EPS_NLP_MAX_IN]; /* sorted-name index or EPS_NLP_IN_* */
    int color[EPS_NLP_MAX_NODES];            /* 0 new, 1 on stack, 2 done */
    int stack[EPS_NLP_MAX_NODES];
    int depth;
    int order[EPS_NLP_MAX_NODES];            /* topological order (sorted-name indices) */
    int n_order;
    eps_error *err;
} parse_ctx;

static int find_name(const parse_ctx *c, const char *s)
{
    const char **hit = bsearch(&s, c->names, (size_t)c->n, sizeof *c->names, cmp_str);
    return hit ? (int)(hit - c->names) : -1;
}

static void set_field(eps_error *err, const char *name)
{
    if (err) snprintf(err->field, sizeof err->field, "recipe.%s", name);
}

/* Depth-first post-order; a node met again while on the stack closes a
 * cycle, reported as "a -> b -> ... -> a". Depth <= EPS_NLP_MAX_NODES. */
static int visit(parse_ctx *c, int v)
{
    if (c->color[v] == 2) return 0;
    if (c->color[v] == 1) {
        char cyc[400] = "";
        int start = c->depth - 1;
        while (start > 0 && c->stack[start] != v) start--;
        for (int i = start; i < c->depth; i++) {
            size_t l = strlen(cyc);
            snprintf(cyc + l, sizeof cyc - l, "%s -> ", c->names[c->stack[i]]);
        }
        size_t l = strlen(cyc);
        snprintf(cyc + l, sizeof cyc - l, "%s", c->names[v]);
        int rc = eps_error_set(c->err, EPS_EINVAL, "", "recipe has a cycle: %s", cyc);
        set_field(c->err, c->names[v]);
        return rc;
    }
    c->color[v] = 1;
    c->stack[c->depth++] = v;
    for (int i = 0; i < c->n_in[v]; i++)
        if (c->in[v][i] >= 0) {
            int rc = visit(c, c->in[v][i]);
            if (rc < 0) return rc;
        }
    c->depth--;
    c->color[v] = 2;
    c->order[c->n_order++] = v;
    return 0;
}

static int node_error(eps_error *err, int code, const char *name, const char *fmt, const char *a, const char *b)
{
    int rc = eps_error_set(err, code, "", fmt, name, a, b);
    set_field(err, name);
    return rc;
}

/* Checks one node object; fills c->ops/n_in/in for sorted index i. */
static int parse_node(parse_ctx *c, int i, const json_t *node)
{
    const char *name = c->names[i];
    eps_error *err = c->err;
    if (!json_is_object(node))
        return node_error(err, EPS_EINVAL, name, "recipe node '%s' must be an object {\"op\": ..., \"input\": [...]}%s%s", "", "");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)node, key, val) {
        (void)val;
        if (strcmp(key, "op") && strcmp(key, "input"))
            return node_error(err, EPS_EINVAL, name, "recipe node '%s': unknown key '%.40s'%s (expected op, input)", key, "");
    }
    const json_t *op = json_object_get(node, "op");
    if (!json_is_string(op))
        return node_error(err, EPS_EINVAL, name, "recipe node '%s': 'op' must be a string%s%s", "", "");
    int k = 0;
    while (eps_nlp_op_names[k] && strcmp(eps_nlp_op_names[k], json_string_value(op))) k++;
    if (!eps_nlp_op_names[k])
        return node_error(err, EPS_EINVAL, name,
                          "recipe node '%s': unknown op '%.40s'%s (expected linear, blend, elementwise_prod, "
                          "elementwise_sum, activation_tanh, activation_sigm, activation_leaky_relu)",
                          json_string_value(op), "");
    c->ops[i] = k;
    const json_t *in = json_object_get(node, "input");
    if (!json_is_array(in))
        return node_error(err, EPS_EINVAL, name, "recipe node '%s': 'input' must be an array of node names%s%s", "", "");
    size_t n = json_array_size(in);
    if ((int)n < arity_min[k] || (int)n > arity_max[k]) {
        char want[32];
        if (arity_min[k] == arity_max[k]) snprintf(want, sizeof want, "%d", arity_min[k]);
        else snprintf(want, sizeof want, "%d to %d", arity_min[k], arity_max[k]);
        int rc = eps_error_set(err, EPS_EINVAL, "", "recipe node '%s': op %s takes %s inputs, got %zu", name,
                               eps_nlp_op_names[k], want, n);
        set_field(err, name);
        return rc;
    }
    c->n_in[i] = (int)n;
    for (size_t j = 0; j < n; j++) {
        const json_t *s = json_array_get(in, j);
        if (!json_is_string(s))
            return node_error(err, EPS_EINVAL, name, "recipe node '%s': every input must be a string (a node name)%s%s", "", "");
        const char *iname = json_string_value(s);
        int ref;
        int hp = indexed_name(iname, "h_prev_");
        if (!strcmp(iname, "x")) {
            if (k != EPS_NLP_LINEAR)
                return node_error(err, EPS_EINVAL, name,
                                  "recipe node '%s': input x can only feed a linear node (op %s cannot take the "
                                  "layer input, whose width differs from the hidden size)%s",
                                  eps_nlp_op_names[k], "");
            ref = EPS_NLP_IN_X;
        } else if (hp >= 0) {
            ref = EPS_NLP_IN_HPREV(hp);
        } else {
            ref = find_name(c, iname);
            if (ref < 0)
                return node_error(err, EPS_EINVAL, name,
                                  "recipe node '%s': input '%.60s' is not x, h_prev_K or a node of the recipe%s",
                                  iname, "");
        }
        c->in[i][j] = ref;
    }
    return 0;
}

static int parse_recipe(const json_t *recipe, long long vocab, eps_nlp_model *m, char **canonical, eps_error *err)
{
    int rc = 0;
    size_t n = json_object_size(recipe);
    if (n == 0) return eps_error_set(err, EPS_EINVAL, "recipe", "recipe has no nodes (it needs at least h_new_0)");
    if (n > EPS_NLP_MAX_NODES)
        return eps_error_set(err, EPS_ELIMIT, "recipe", "recipe has %zu nodes (limit %d)", n, EPS_NLP_MAX_NODES);
    char *canon = json_dumps(recipe, JSON_COMPACT | JSON_SORT_KEYS);
    if (!canon) return eps_error_set(err, EPS_ENOMEM, "recipe", "out of memory for the recipe text");
    if (strlen(canon) > EPS_NLP_RECIPE_MAX_BYTES) {
        rc = eps_error_set(err, EPS_ELIMIT, "recipe", "recipe text has %zu bytes (limit %d)", strlen(canon),
                           EPS_NLP_RECIPE_MAX_BYTES);
        free(canon);
        return rc;
    }
    parse_ctx *c = calloc(1, sizeof *c);
    const char **names = malloc(sizeof *names * n);
    if (!c || !names) {
        rc = eps_error_set(err, EPS_ENOMEM, "recipe", "out of memory");
        goto out;
    }
    c->names = names, c->n = (int)n, c->err = err;
    {
        size_t i = 0;
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)recipe, key, val) { (void)val; names[i++] = key; }
    }
    qsort(names, n, sizeof *names, cmp_str);
    for (int i = 0; i < c->n; i++) {
        const char *nm = names[i];
        if (!valid_name(nm)) {
            rc = eps_error_set(err, EPS_EINVAL, "recipe", "recipe node name '%.60s' must be 1 to %d characters of "
                               "[A-Za-z0-9_]", nm, EPS_NLP_NAME_MAX);
            goto out;
        }
        if (!strcmp(nm, "x") || indexed_name(nm, "h_prev_") != -1) {
            rc = eps_error_set(err, EPS_EINVAL, "", "recipe node '%s': x and h_prev_K are cell inputs and cannot be "
                               "defined as nodes", nm);
            set_field(err, nm);
            goto out;
        }
        if (indexed_name(nm, "h_new_") == -2 && strspn(nm + 6, "0123456789") == strlen(nm + 6)) {
            rc = eps_error_set(err, EPS_EINVAL, "", "recipe node '%s': output names are h_new_K with K in 0..%d "
                               "written without leading zeros", nm, EPS_NLP_MAX_NODES - 1);
            set_field(err, nm);
            goto out;
        }
    }
    for (int i = 0; i < c->n; i++)
        if ((rc = parse_node(c, i, json_object_get(recipe, names[i]))) < 0) goto out;
    for (int i = 0; i < c->n; i++)
        if ((rc = visit(c, i)) < 0) goto out;

    /* Outputs and hidden states: h_new_K and used h_prev_K pair up, 0..K-1. */
    int has_new[EPS_NLP_MAX_NODES] = {0}, prev_user[EPS_NLP_MAX_NODES];
    int K = 0;
    for (int k = 0; k < EPS_NLP_MAX_NODES; k++) prev_user[k] = -1;
    for (int i = 0; i < c->n; i++) {
        int k = indexed_name(names[i], "h_new_");
        if (k >= 0) has_new[k] = 1, K = k + 1 > K ? k + 1 : K;
        for (int j = 0; j < c->n_in[i]; j++)
            if (c->in[i][j] <= EPS_NLP_IN_HPREV(0)) {
                int h = EPS_NLP_HPREV_INDEX(c->in[i][j]);
                if (prev_user[h] < 0) prev_user[h] = i;
                K = h + 1 > K ? h + 1 : K;
            }
    }
    if (!has_new[0]) {
        rc = eps_error_set(err, EPS_EINVAL, "recipe.h_new_0", "recipe has no node h_new_0 (the cell's output)");
        goto out;
    }
    for (int k = 0; k < K; k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "h_new_%d", k);
        if (!has_new[k] && prev_user[k] >= 0) {
            rc = eps_error_set(err, EPS_EINVAL, "", "recipe has no node %s, but node '%s' uses h_prev_%d (every "
                               "h_prev_K needs its h_new_K)", nm, names[prev_user[k]], k);
        } else if (has_new[k] && prev_user[k] < 0) {
            rc = eps_error_set(err, EPS_EINVAL, "", "recipe node %s: no node uses h_prev_%d (every h_new_K needs "
                               "its h_prev_K)", nm, k);
        } else if (!has_new[k]) {
            rc = eps_error_set(err, EPS_EINVAL, "", "recipe has no %s and no h_prev_%d, but uses hidden state %d: "
                               "hidden states must be numbered 0..K-1 without gaps", nm, k, K - 1);
        } else {
            continue;
        }
        set_field(err, nm);
        goto out;
    }

    /* Build the model in topological order. */
    m->nodes = calloc((size_t)c->n, sizeof *m->nodes);
    m->h_new = calloc((size_t)K, sizeof *m->h_new);
    if (!m->nodes || !m->h_new) {
        rc = eps_error_set(err, EPS_ENOMEM, "recipe", "out of memory");
        goto out;
    }
    int pos_of[EPS_NLP_MAX_NODES];
    for (int p = 0; p < c->n_order; p++) pos_of[c->order[p]] = p;
    for (int p = 0; p < c->n_order; p++) {
        int v = c->order[p];
        eps_nlp_node *nd = &m->nodes[p];
        snprintf(nd->name, sizeof nd->name, "%s", names[v]);
        nd->op = (eps_nlp_op)c->ops[v];
        nd->n_in = c->n_in[v];
        for (int j = 0; j < nd->n_in; j++) nd->in[j] = c->in[v][j] >= 0 ? pos_of[c->in[v][j]] : c->in[v][j];
        int k = indexed_name(names[v], "h_new_");
        if (k >= 0) m->h_new[k] = p, nd->live = 1;
    }
    for (int p = c->n_order - 1; p >= 0; p--)
        if (m->nodes[p].live)
            for (int j = 0; j < m->nodes[p].n_in; j++)
                if (m->nodes[p].in[j] >= 0) m->nodes[m->nodes[p].in[j]].live = 1;
    m->n_nodes = c->n;
    m->n_hidden = K;
    m->vocab_size = vocab;
    m->emb_seed = EPS_NLP_EMB_SEED;
out:
    free(names);
    free(c);
    if (rc < 0) {
        free(canon);
        eps_nlp_model_free(m);
        return rc;
    }
    if (canonical) *canonical = canon;
    else free(canon);
    return 0;
}

int eps_nlp_parse(const json_t *recipe, long long vocab_size, eps_nlp_model *out, char **canonical, eps_error *err)
{
    memset(out, 0, sizeof *out);
    if (canonical) *canonical = NULL;
    if (vocab_size < 1 || vocab_size > EPS_NLP_VOCAB_MAX)
        return eps_error_set(err, EPS_EINVAL, "vocab_size", "vocab_size %lld is out of range [1, %d]", vocab_size,
                             EPS_NLP_VOCAB_MAX);
    if (!recipe) return eps_error_set(err, EPS_EINVAL, "recipe", "missing field 'recipe' (object: node -> {op, input})");
    if (json_is_string(recipe)) {
        size_t len = json_string_length(recipe);
        if (len > RAW_RECIPE_MAX)
            return eps_error_set(err, EPS_ELIMIT, "recipe", "recipe text has %zu bytes (limit %d)", len,
                                 RAW_RECIPE_MAX);
        json_error_t je;
        json_t *parsed = json_loadb(json_string_value(recipe), len, JSON_REJECT_DUPLICATES, &je);
        if (!parsed) {
            int rc = eps_error_set(err, EPS_EINVAL, "recipe", "recipe string is not valid JSON: %s", je.text);
            if (err) err->line = je.line, err->column = je.column;
            return rc;
        }
        int rc = json_is_object(parsed)
                     ? parse_recipe(parsed, vocab_size, out, canonical, err)
                     : eps_error_set(err, EPS_EINVAL, "recipe", "recipe must be a JSON object (node -> {op, input})");
        json_decref(parsed);
        return rc;
    }
    if (!json_is_object(recipe))
        return eps_error_set(err, EPS_EINVAL, "recipe", "recipe must be a JSON object (node -> {op, input})");
    return parse_recipe(recipe, vocab_size, out, canonical, err);
}

void eps_nlp_model_free(eps_nlp_model *m)
{
    if (!m) return;
    free(m->nodes);
    free(m->h_new);
    memset(m, 0, sizeof *m);
}

static long long width_of(int ref, int layer) { return ref == EPS_NLP_IN_X ? layer_in[layer] : layer_hid[layer]; }

long long eps_nlp_params(const eps_nlp_model *m)
{
    long long p = m->vocab_size * EPS_NLP_EMB + m->vocab_size;
    for (int l = 0; l < EPS_NLP_LAYERS; l++)
        for (int i = 0; i < m->n_nodes; i++) {
            const eps_nlp_node *nd = &m->nodes[i];
            if (nd->op != EPS_NLP_LINEAR) continue;
            p += layer_hid[l];
            for (int j = 0; j < nd->n_in; j++) p += (long long)layer_hid[l] * width_of(nd->in[j], l);
        }
    return p;
}

long long eps_nlp_macs(const eps_nlp_model *m)
{
    long long macs = 0;
    for (int l = 0; l < EPS_NLP_LAYERS; l++)
        for (int i = 0; i < m->n_nodes; i++) {
            const eps_nlp_node *nd = &m->nodes[i];
            if (nd->op != EPS_NLP_LINEAR || !nd->live) continue;
            for (int j = 0; j < nd->n_in; j++) macs += (long long)layer_hid[l] * width_of(nd->in[j], l);
        }
    return macs;
}

/* ------------------------------------------------------------ model */

#define GOLDEN 0x9E3779B97F4A7C15ULL

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

float eps_nlp_embedding(uint64_t seed, long long row, int col)
{
    uint64_t k = (uint64_t)row * EPS_NLP_EMB + (uint64_t)col + 1;
    return (float)((double)(mix64(seed + k * GOLDEN) >> 11) * 0x1.0p-53);
}

/* Non-linear ops over n floats; both engines share them so they round alike
 * (float32, as torch: blend = a*b + (1-a)*c, leaky_relu slope 0.01). */
static void apply_op(eps_nlp_op op, size_t n, const float *a, const float *b, const float *c, float *out)
{
    switch (op) {
    case EPS_NLP_BLEND:
        for (size_t i = 0; i < n; i++) {
            float t1 = a[i] * b[i];
            float t2 = (1.0f - a[i]) * c[i];
            out[i] = t1 + t2;
        }
        break;
    case EPS_NLP_PROD:
        for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
        break;
    case EPS_NLP_SUM:
        for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
        break;
    case EPS_NLP_TANH:
        for (size_t i = 0; i < n; i++) out[i] = tanhf(a[i]);
        break;
    case EPS_NLP_SIGM:
        for (size_t i = 0; i < n; i++) out[i] = 1.0f / (1.0f + expf(-a[i]));
        break;
    case EPS_NLP_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) out[i] = a[i] > 0.0f ? a[i] : a[i] * 0.01f;
        break;
    default:
        break;
    }
}

/* Per-forward state. A "vector" has `unit` floats per stream: H (dense) or 1
 * (fast). State buffers per layer and hidden index; node values shared by
 * the layers (a layer is done before the next starts). */
typedef struct run {
    const eps_nlp_model *m;
    int dense;
    int S;
    float w;
    float *hprev[EPS_NLP_LAYERS]; /* K * S * unit(l), initialised to w */
    float *vals;                  /* n_nodes * S * unit_max */
    float *x0;                    /* dense: S * 400 embedding rows; fast: S row sums (as float, unused) */
    double *x0sum;                /* fast: per-stream embedding row sums */
    float *wmat;                  /* dense: 600 * 600 constant weights */
} run;

static size_t unit_of(const run *r, int l) { return r->dense ? (size_t)layer_hid[l] : 1; }

static float *state(const run *r, int l, int k) { return r->hprev[l] + (size_t)k * r->S * unit_of(r, l); }

static float *val(const run *r, int node)
{
    return r->vals + (size_t)node * r->S * (r->dense ? EPS_NLP_HIDDEN : 1);
}

/* Resolves an input reference of layer l to its vector (layer 0's x in the
 * dense engine is the embedding block; layers 1, 2 read layer l-1's h_new_0). */
static const float *input_vec(const run *r, int l, int ref)
{
    if (ref == EPS_NLP_IN_X) return l == 0 ? r->x0 : state(r, l - 1, 0);
    if (ref < 0) return state(r, l, EPS_NLP_HPREV_INDEX(ref));
    return val(r, ref);
}

static void linear_dense(const run *r, int l, const eps_nlp_node *nd, float *out)
{
    int H = layer_hid[l], S = r->S;
    for (int j = 0; j < nd->n_in; j++) {
        int width = (int)width_of(nd->in[j], l);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, H, width, 1.0f, input_vec(r, l, nd->in[j]), width,
                    r->wmat, H, j ? 1.0f : 0.0f, out, H);
    }
    size_t n = (size_t)S * H;
    for (size_t i = 0; i < n; i++) out[i] += r->w;
}

/* W x = w * (sum of x's units): identical units make the sum width * v. */
static void linear_fast(const run *r, int l, const eps_nlp_node *nd, float *out)
{
    for (int s = 0; s < r->S; s++) {
        float acc = 0.0f;
        for (int j = 0; j < nd->n_in; j++) {
            int ref = nd->in[j];
            double sum = (ref == EPS_NLP_IN_X && l == 0) ? r->x0sum[s]
                                                          : (double)width_of(ref, l) * input_vec(r, l, ref)[s];
            float term = (float)((double)r->w * sum);
            acc = j ? acc + term : term;
        }
        out[s] = acc + r->w;
    }
}

static void run_layer(run *r, int l)
{
    const eps_nlp_model *m = r->m;
    size_t n = (size_t)r->S * unit_of(r, l);
    for (int i = 0; i < m->n_nodes; i++) {
        const eps_nlp_node *nd = &m->nodes[i];
        if (!nd->live) continue;
        float *out = val(r, i);
        if (nd->op == EPS_NLP_LINEAR) {
            if (r->dense) linear_dense(r, l, nd, out);
            else linear_fast(r, l, nd, out);
            continue;
        }
        const float *a = input_vec(r, l, nd->in[0]);
        const float *b = nd->n_in > 1 ? input_vec(r, l, nd->in[1]) : NULL;
        const float *c = nd->n_in > 2 ? input_vec(r, l, nd->in[2]) : NULL;
        apply_op(nd->op, n, a, b, c, out);
    }
    /* All outputs are computed from the old states before any is replaced. */
    for (int k = 0; k < m->n_hidden; k++) memcpy(state(r, l, k), val(r, m->h_new[k]), sizeof(float) * n);
}

static void run_free(run *r)
{
    for (int l = 0; l < EPS_NLP_LAYERS; l++) free(r->hprev[l]);
    free(r->vals);
    free(r->x0);
    free(r->x0sum);
    free(r->wmat);
}

/* Streams are independent, so the dense engine runs them in chunks of at
 * most DENSE_CHUNK: its node buffers then stay below
 * 256 nodes x 256 streams x 600 floats (157 MB) whatever the batch size. */
#define DENSE_CHUNK 256

/* Runs streams [s0, s0 + S) of b through all steps into y (step-major over
 * all b->n streams). */
static int run_chunk(const eps_nlp_model *m, const eps_batch *b, int s0, int S, float w, int dense,
                     const eps_run_opts *opts, float *y, eps_error *err)
{
    run r = {.m = m, .dense = dense, .S = S, .w = w};
    int rc = 0;
    for (int l = 0; l < EPS_NLP_LAYERS; l++) {
        size_t n = (size_t)m->n_hidden * S * unit_of(&r, l);
        r.hprev[l] = malloc(sizeof(float) * n);
        if (!r.hprev[l]) goto oom;
        for (size_t i = 0; i < n; i++) r.hprev[l][i] = w;
    }
    r.vals = malloc(sizeof(float) * (size_t)m->n_nodes * S * (dense ? EPS_NLP_HIDDEN : 1));
    if (!r.vals) goto oom;
    if (dense) {
        r.x0 = malloc(sizeof(float) * (size_t)S * EPS_NLP_EMB);
        r.wmat = malloc(sizeof(float) * EPS_NLP_HIDDEN * EPS_NLP_HIDDEN);
        if (!r.x0 || !r.wmat) goto oom;
        for (size_t i = 0; i < (size_t)EPS_NLP_HIDDEN * EPS_NLP_HIDDEN; i++) r.wmat[i] = w;
    } else {
        r.x0sum = malloc(sizeof(double) * (size_t)S);
        if (!r.x0sum) goto oom;
    }
    for (int t = 0; t < b->steps; t++) {
        if (opts && opts->cancel && *opts->cancel) {
            rc = eps_error_set(err, EPS_ECANCELED, "", "nlp forward cancelled at step %d", t);
            goto out;
        }
        const int32_t *tok = b->tokens + (size_t)t * b->n + s0;
        for (int s = 0; s < S; s++) {
            if (dense) {
                for (int j = 0; j < EPS_NLP_EMB; j++)
                    r.x0[(size_t)s * EPS_NLP_EMB + j] = eps_nlp_embedding(m->emb_seed, tok[s], j);
            } else {
                double sum = 0;
                for (int j = 0; j < EPS_NLP_EMB; j++) sum += eps_nlp_embedding(m->emb_seed, tok[s], j);
                r.x0sum[s] = sum;
            }
        }
        for (int l = 0; l < EPS_NLP_LAYERS; l++) run_layer(&r, l);
        const float *out = state(&r, EPS_NLP_LAYERS - 1, 0);
        size_t stride = unit_of(&r, EPS_NLP_LAYERS - 1);
        for (int s = 0; s < S; s++) y[(size_t)t * b->n + s0 + s] = out[(size_t)s * stride];
    }
    goto out;
oom:
    rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory for the nlp forward pass (%d streams)", S);
out:
    run_free(&r);
    return rc;
}

int eps_nlp_forward(const eps_nlp_model *m, const eps_batch *b, float w, const eps_run_opts *opts, float *y,
                    eps_error *err)
{
    if (!b || b->kind != EPS_BATCH_TOKENS || !b->tokens || b->n < 1 || b->steps < 1)
        return eps_error_set(err, EPS_EINVAL, "batch", "the nlp space needs a token batch (tokens:SEED or tokens-file:PATH)");
    size_t total = (size_t)b->n * (size_t)b->steps;
    for (size_t i = 0; i < total; i++)
        if (b->tokens[i] < 0 || b->tokens[i] >= m->vocab_size)
            return eps_error_set(err, EPS_EINVAL, "vocab_size", "batch '%.200s' has token id %d, outside vocab_size %lld",
                                 b->source, (int)b->tokens[i], m->vocab_size);
    int dense = opts && opts->engine == EPS_ENGINE_DENSE;
    int chunk = dense ? DENSE_CHUNK : b->n;
    for (int s0 = 0; s0 < b->n; s0 += chunk) {
        int S = b->n - s0 < chunk ? b->n - s0 : chunk;
        int rc = run_chunk(m, b, s0, S, w, dense, opts, y, err);
        if (rc < 0) return rc;
    }
    return 0;
}

/* ------------------------------------------------------------ space */

static int nlp_from_json(const json_t *req, eps_arch *out, eps_error *err)
{
    long long vocab = EPS_NLP_DEFAULT_VOCAB;
    const json_t *v = json_object_get(req, "vocab_size");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v))
            return eps_error_set(err, EPS_EINVAL, "vocab_size", "vocab_size must be an integer in [1, %d]",
                                 EPS_NLP_VOCAB_MAX);
        vocab = json_integer_value(v);
    }
    eps_nlp_model *m = calloc(1, sizeof *m);
    if (!m) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    char *recipe = NULL;
    int rc = eps_nlp_parse(json_object_get(req, "recipe"), vocab, m, &recipe, err);
    if (rc < 0) {
        free(m);
        return rc;
    }
    out->impl = m;
    /* The canonical text (and so the hash and the cache key) covers every
     * field that changes the network: the recipe and vocab_size (the
     * embedding and decoder sizes), spelled as a request fragment. */
    size_t cap = strlen(recipe) + 48;
    out->canonical = malloc(cap);
    if (out->canonical) snprintf(out->canonical, cap, "{\"recipe\":%s,\"vocab_size\":%lld}", recipe, vocab);
    free(recipe);
    if (!out->canonical) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    eps_md5_hex(out->canonical, strlen(out->canonical), out->hash);
    out->params = eps_nlp_params(m);
    out->macs = eps_nlp_macs(m);
    return 0;
}

static int nlp_forward(const eps_arch *a, const eps_batch *b, float w, const eps_run_opts *opts, float *y,
                       eps_error *err)
{
    if (!a->impl) return eps_error_set(err, EPS_EINTERNAL, "", "nlp arch has no model");
    return eps_nlp_forward(a->impl, b, w, opts, y, err);
}

static long nlp_output_count(const eps_arch *a, const eps_batch *b)
{
    (void)a;
    return b->kind == EPS_BATCH_TOKENS ? (long)b->n * b->steps : 0;
}

static void nlp_free_impl(void *impl)
{
    eps_nlp_model_free(impl);
    free(impl);
}

/* Request fields this space reads (see eps_space.fields). */
static const char *const nlp_fields[] = {"recipe", "vocab_size", NULL};

const eps_space eps_nlp_space = {
    .name = "nlp",
    .title = "NAS-Bench-NLP",
    .w1 = 1e-5,
    .w2 = 1e-3,
    .batch_kind = EPS_BATCH_TOKENS,
    .default_batch = "tokens:1",
    .op_names = eps_nlp_op_names,
    .fields = nlp_fields,
    .limits = "at most 256 recipe nodes, 64 KiB recipe text, vocab_size <= 1000000, token batches of 70 steps",
    .from_json = nlp_from_json,
    .forward = nlp_forward,
    .output_count = nlp_output_count,
    .free_impl = nlp_free_impl,
};
