/* eps_gspace.c — the generic layer-graph space "graph" (see gspace.h for the
 * request format, limits and canonical form). Owns: parsing and validating
 * layer lists, shape inference with per-field errors, the canonical text,
 * and the "graph" space registration. The network itself goes into the
 * graph IR (graph.h), which both engines run. */
#include "epsinas/spaces/gspace.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epsinas/core/md5.h"
#include "epsinas/spaces/space.h"

typedef enum { P_INT, P_BOOL } ptype;

typedef struct pdef {
    const char *key;
    ptype type;
    int required;
    int def;        /* default; -1 for "stride = kernel" */
    int lo, hi;
} pdef;

#define MAXP 7

typedef struct opdef {
    const char *name;
    eps_op op;
    int multi;      /* add / concat: 1..MAX_FANIN inputs, else exactly 1 */
    pdef p[MAXP];
} opdef;

#define PK(k, req, def, lo, hi) {k, P_INT, req, def, lo, hi}
#define PB(k, def) {k, P_BOOL, 0, def, 0, 1}

static const opdef OPS[] = {
    {"conv2d", EPS_OP_CONV2D, 0,
     {PK("out_channels", 1, 0, 1, EPS_GSPACE_MAX_CHANNELS), PK("kernel", 1, 0, 1, EPS_GSPACE_MAX_PARAM),
      PK("stride", 0, 1, 1, EPS_GSPACE_MAX_PARAM), PK("padding", 0, 0, 0, EPS_GSPACE_MAX_PARAM),
      PK("groups", 0, 1, 1, EPS_GSPACE_MAX_CHANNELS), PK("dilation", 0, 1, 1, EPS_GSPACE_MAX_PARAM), PB("bias", 1)}},
    {"batchnorm", EPS_OP_BATCHNORM, 0, {{0}}},
    {"relu", EPS_OP_RELU, 0, {{0}}},
    {"avgpool", EPS_OP_AVGPOOL, 0,
     {PK("kernel", 1, 0, 1, EPS_GSPACE_MAX_PARAM), PK("stride", 0, -1, 1, EPS_GSPACE_MAX_PARAM),
      PK("padding", 0, 0, 0, EPS_GSPACE_MAX_PARAM), PB("count_include_pad", 1)}},
    {"maxpool", EPS_OP_MAXPOOL, 0,
     {PK("kernel", 1, 0, 1, EPS_GSPACE_MAX_PARAM), PK("stride", 0, -1, 1, EPS_GSPACE_MAX_PARAM),
      PK("padding", 0, 0, 0, EPS_GSPACE_MAX_PARAM)}},
    {"global_avgpool", EPS_OP_GLOBAL_AVGPOOL, 0, {{0}}},
    {"linear", EPS_OP_LINEAR, 0, {PK("out_features", 1, 0, 1, EPS_GSPACE_MAX_CHANNELS), PB("bias", 1)}},
    {"add", EPS_OP_ADD, 1, {{0}}},
    {"concat", EPS_OP_CONCAT, 1, {{0}}},
    {"identity", EPS_OP_IDENTITY, 0, {{0}}},
    {"zero", EPS_OP_ZERO, 0, {{0}}},
    {"flatten", EPS_OP_FLATTEN, 0, {{0}}},
};
#define NOPS (int)(sizeof OPS / sizeof OPS[0])

const char *const eps_gspace_op_names[] = {"conv2d", "batchnorm", "relu", "avgpool", "maxpool", "global_avgpool",
                                           "linear", "add", "concat", "identity", "zero", "flatten", NULL};

/* Error with field "nodes[i].key" (key may be NULL -> "nodes[i]"). */
__attribute__((format(printf, 5, 6))) static int nerr(eps_error *err, int code, int i, const char *key,
                                                      const char *fmt, ...)
{
    char field[64], msg[512];
    if (key) snprintf(field, sizeof field, "nodes[%d].%s", i, key);
    else snprintf(field, sizeof field, "nodes[%d]", i);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return eps_error_set(err, code, field, "%s", msg);
}

static const char *node_label(const json_t *nodes, int i)
{
    const char *s = json_string_value(json_object_get(json_array_get(nodes, (size_t)i), "name"));
    return s ? s : "?";
}

static int get_int(const json_t *obj, const char *key, const char *field, int def, int lo, int hi, int *out,
                   eps_error *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v) return *out = def, 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        int code = json_is_integer(v) && json_integer_value(v) > hi ? EPS_ELIMIT : EPS_EINVAL;
        return eps_error_set(err, code, field, "input %s must be an integer from %d to %d", key, lo, hi);
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int parse_input(const json_t *req, int *c, int *h, int *w, eps_error *err)
{
    const json_t *in = json_object_get(req, "input");
    *c = 3, *h = 32, *w = 32;
    if (!in) return 0;
    if (!json_is_object(in))
        return eps_error_set(err, EPS_EINVAL, "input", "'input' must be an object {\"channels\",\"height\",\"width\"}");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v) {
        if (strcmp(k, "channels") && strcmp(k, "height") && strcmp(k, "width"))
            return eps_error_set(err, EPS_EINVAL, "input", "input has no field '%.40s' (fields: channels, height, width)", k);
    }
    int rc = get_int(in, "channels", "input.channels", 3, 1, EPS_GSPACE_MAX_CHANNELS, c, err);
    if (!rc) rc = get_int(in, "height", "input.height", 32, 1, EPS_GSPACE_MAX_SPATIAL, h, err);
    if (!rc) rc = get_int(in, "width", "input.width", 32, 1, EPS_GSPACE_MAX_SPATIAL, w, err);
    return rc;
}

static int out_size(int in, int k, int s, int p, int d)
{
    long num = (long)in + 2L * p - (long)d * (k - 1) - 1;
    return num < 0 ? 0 : (int)(num / s + 1);
}

/* parse_node's steps: each returns 0 or a negative code with err naming
 * nodes[i] and the field. */

/* The node's name: 1..63 bytes, no control character, not "input", unused. */
static int node_name(const json_t *j, int i, const json_t *names, const char **out, eps_error *err)
{
    const json_t *nm = json_object_get(j, "name");
    if (!nm) return nerr(err, EPS_EINVAL, i, "name", "missing field 'name'");
    if (!json_is_string(nm)) return nerr(err, EPS_EINVAL, i, "name", "name must be a string");
    const char *name = json_string_value(nm);
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen >= EPS_GRAPH_NAME_LEN || nlen != json_string_length(nm))
        return nerr(err, EPS_EINVAL, i, "name", "name must be 1 to %d bytes without NUL", EPS_GRAPH_NAME_LEN - 1);
    for (size_t k = 0; k < nlen; k++)
        if ((unsigned char)name[k] < 0x20)
            return nerr(err, EPS_EINVAL, i, "name", "name contains a control character");
    if (!strcmp(name, "input"))
        return nerr(err, EPS_EINVAL, i, "name", "'input' is reserved for the batch; pick another name");
    if (json_object_get((json_t *)names, name)) {
        int prev = (int)json_integer_value(json_object_get((json_t *)names, name));
        return nerr(err, EPS_EINVAL, i, "name", "name '%s' is already used by nodes[%d]", name, prev - 1);
    }
    *out = name;
    return 0;
}

/* The node's op, and no field the op does not take. */
static int node_op(const json_t *j, int i, const char *name, const opdef **out, eps_error *err)
{
    const json_t *opj = json_object_get(j, "op");
    if (!opj) return nerr(err, EPS_EINVAL, i, "op", "node '%s' has no 'op'", name);
    const opdef *od = NULL;
    for (int k = 0; k < NOPS && json_is_string(opj); k++)
        if (!strcmp(OPS[k].name, json_string_value(opj))) od = &OPS[k];
    if (!od)
        return nerr(err, EPS_EINVAL, i, "op",
                    "node '%s': unknown op '%.40s' (expected conv2d, batchnorm, relu, avgpool, maxpool, "
                    "global_avgpool, linear, add, concat, identity, zero or flatten)",
                    name, json_is_string(opj) ? json_string_value(opj) : "(not a string)");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)j, key, val) {
        if (!strcmp(key, "name") || !strcmp(key, "op") || !strcmp(key, "inputs")) continue;
        int ok = 0;
        for (int k = 0; k < MAXP && od->p[k].key; k++) ok |= !strcmp(od->p[k].key, key);
        if (!ok) {
            char allowed[256] = "name, op, inputs";
            for (int k = 0; k < MAXP && od->p[k].key; k++) {
                strncat(allowed, ", ", sizeof allowed - strlen(allowed) - 1);
                strncat(allowed, od->p[k].key, sizeof allowed - strlen(allowed) - 1);
            }
            char kf[48];
            snprintf(kf, sizeof kf, "%.40s", key);
            return nerr(err, EPS_EINVAL, i, kf, "node '%s': op %s has no field '%s' (fields: %s)", name, od->name, kf,
                        allowed);
        }
    }
    *out = od;
    return 0;
}

/* The node's inputs: names of earlier nodes (or "input"), as many as op
 * takes, into nd->in / nd->n_in. */
static int node_inputs(const json_t *nodes, const json_t *j, int i, const char *name, const opdef *od,
                       const json_t *names, eps_node *nd, eps_error *err)
{
    const json_t *ins = json_object_get(j, "inputs");
    if (!ins) return nerr(err, EPS_EINVAL, i, "inputs", "node '%s' has no 'inputs' (a list of node names)", name);
    if (!json_is_array(ins)) return nerr(err, EPS_EINVAL, i, "inputs", "node '%s': inputs must be a list of node names", name);
    size_t nin = json_array_size(ins);
    if (od->multi ? (nin < 1 || nin > EPS_GSPACE_MAX_FANIN) : nin != 1) {
        if (od->multi && nin > EPS_GSPACE_MAX_FANIN)
            return nerr(err, EPS_ELIMIT, i, "inputs", "node '%s': %s of %zu inputs exceeds the fan-in limit %d", name,
                        od->name, nin, EPS_GSPACE_MAX_FANIN);
        return nerr(err, EPS_EINVAL, i, "inputs", "node '%s': %s takes %s, got %zu", name, od->name,
                    od->multi ? "1 to 32 inputs" : "exactly 1 input", nin);
    }
    nd->n_in = (int)nin;
    for (size_t k = 0; k < nin; k++) {
        const json_t *s = json_array_get(ins, k);
        char f[40];
        snprintf(f, sizeof f, "inputs[%zu]", k);
        if (!json_is_string(s)) return nerr(err, EPS_EINVAL, i, f, "node '%s': inputs must be node names (strings)", name);
        const char *src = json_string_value(s);
        if (!strcmp(src, "input")) {
            nd->in[k] = 0;
            continue;
        }
        const json_t *idx = json_object_get((json_t *)names, src);
        if (!idx) {
            int later = -1;
            for (size_t m = (size_t)i + 1; m < json_array_size(nodes) && later < 0; m++)
                if (!strcmp(node_label(nodes, (int)m), src)) later = (int)m;
            if (later >= 0)
                return nerr(err, EPS_EINVAL, i, f,
                            "node '%s' reads '%.47s', which is defined later (nodes[%d]); list nodes in topological order",
                            name, src, later);
            return nerr(err, EPS_EINVAL, i, f, "node '%s' reads '%.47s', which is not a node (nor \"input\")", name, src);
        }
        nd->in[k] = (int)json_integer_value(idx);
    }
    return 0;
}

/* The op's hyper-parameters into pv (defaults filled, "stride = kernel"). */
static int node_params(const json_t *j, int i, const char *name, const opdef *od, int pv[MAXP], eps_error *err)
{
    for (int k = 0; k < MAXP && od->p[k].key; k++) {
        const pdef *p = &od->p[k];
        const json_t *v = json_object_get(j, p->key);
        if (!v) {
            if (p->required) return nerr(err, EPS_EINVAL, i, p->key, "node '%s': %s needs '%s'", name, od->name, p->key);
            pv[k] = p->def;
            continue;
        }
        if (p->type == P_BOOL) {
            if (!json_is_boolean(v)) return nerr(err, EPS_EINVAL, i, p->key, "node '%s': %s must be true or false", name, p->key);
            pv[k] = json_is_true(v);
        } else {
            if (!json_is_integer(v) || json_integer_value(v) < p->lo || json_integer_value(v) > p->hi) {
                int big = json_is_integer(v) && json_integer_value(v) > p->hi;
                return nerr(err, big ? EPS_ELIMIT : EPS_EINVAL, i, p->key, "node '%s': %s must be an integer from %d to %d",
                            name, p->key, p->lo, p->hi);
            }
            pv[k] = (int)json_integer_value(v);
        }
    }
    for (int k = 0; k < MAXP && od->p[k].key; k++) /* "stride = kernel" default */
        if (pv[k] == -1) pv[k] = pv[0];
    return 0;
}

/* Copies pv into nd and checks that the op fits its inputs' shapes. */
static int node_shape(const eps_graph *g, int i, const char *name, const opdef *od, const int pv[MAXP], eps_node *nd,
                      eps_error *err)
{
    const eps_node *x = &g->nodes[nd->in[0]];
    const char *xname = nd->in[0] ? x->name : "input";
    switch (od->op) {
    case EPS_OP_CONV2D:
        nd->out_c = pv[0], nd->kernel = pv[1], nd->stride = pv[2], nd->pad = pv[3], nd->groups = pv[4];
        nd->dilation = pv[5], nd->bias = pv[6];
        if (x->c % nd->groups || nd->out_c % nd->groups)
            return nerr(err, EPS_EINVAL, i, "groups", "node '%s': groups=%d must divide in_channels=%d (from '%s') and out_channels=%d",
                        name, nd->groups, x->c, xname, nd->out_c);
        if (out_size(x->h, nd->kernel, 1, nd->pad, nd->dilation) < 1 || out_size(x->w, nd->kernel, 1, nd->pad, nd->dilation) < 1)
            return nerr(err, EPS_EINVAL, i, "kernel",
                        "node '%s': kernel %d (dilation %d) does not fit the %dx%d input from '%s' padded by %d", name,
                        nd->kernel, nd->dilation, x->h, x->w, xname, nd->pad);
        break;
    case EPS_OP_AVGPOOL:
    case EPS_OP_MAXPOOL:
        nd->kernel = pv[0], nd->stride = pv[1], nd->pad = pv[2];
        nd->count_include_pad = od->op == EPS_OP_AVGPOOL ? pv[3] : 0;
        if (2 * nd->pad > nd->kernel)
            return nerr(err, EPS_EINVAL, i, "padding", "node '%s': padding %d must be at most half the kernel %d", name,
                        nd->pad, nd->kernel);
        if (out_size(x->h, nd->kernel, 1, nd->pad, 1) < 1 || out_size(x->w, nd->kernel, 1, nd->pad, 1) < 1)
            return nerr(err, EPS_EINVAL, i, "kernel", "node '%s': kernel %d does not fit the %dx%d input from '%s' padded by %d",
                        name, nd->kernel, x->h, x->w, xname, nd->pad);
        break;
    case EPS_OP_LINEAR:
        nd->out_c = pv[0], nd->bias = pv[1];
        if (x->h != 1 || x->w != 1)
            return nerr(err, EPS_EINVAL, i, "inputs",
                        "node '%s': linear needs a flat input (C x 1 x 1) but '%s' produces %dx%dx%d; add a flatten or "
                        "global_avgpool node",
                        name, xname, x->c, x->h, x->w);
        break;
    case EPS_OP_ADD:
    case EPS_OP_CONCAT:
        for (int k = 1; k < nd->n_in; k++) {
            const eps_node *y = &g->nodes[nd->in[k]];
            const char *yname = nd->in[k] ? y->name : "input";
            int bad = od->op == EPS_OP_ADD ? (y->c != x->c || y->h != x->h || y->w != x->w) : (y->h != x->h || y->w != x->w);
            if (bad) {
                char f[40];
                snprintf(f, sizeof f, "inputs[%d]", k);
                return nerr(err, EPS_EINVAL, i, f, "node '%s': %s input '%s' is %dx%dx%d but '%s' is %dx%dx%d%s", name, od->name,
                            yname, y->c, y->h, y->w, xname, x->c, x->h, x->w,
                            od->op == EPS_OP_ADD ? " (add needs equal shapes)" : " (concat needs equal height and width)");
            }
        }
        break;
    case EPS_OP_FLATTEN:
        if ((long long)x->c * x->h * x->w > EPS_GSPACE_MAX_FEATURES)
            return nerr(err, EPS_ELIMIT, i, NULL, "node '%s': flatten of %dx%dx%d gives more than %d features", name, x->c,
                        x->h, x->w, EPS_GSPACE_MAX_FEATURES);
        break;
    default:
        break;
    }
    return 0;
}

/* The size limits of the node as the IR inferred it (o), and the MACs so far. */
static int node_limits(const eps_node *o, int i, const char *name, const opdef *od, int in_c, long long *macs,
                       eps_error *err)
{
    if (o->c > EPS_GSPACE_MAX_CHANNELS && od->op != EPS_OP_FLATTEN)
        return nerr(err, EPS_ELIMIT, i, NULL, "node '%s' produces %d channels; the limit is %d", name, o->c,
                    EPS_GSPACE_MAX_CHANNELS);
    if (o->h > EPS_GSPACE_MAX_SPATIAL || o->w > EPS_GSPACE_MAX_SPATIAL)
        return nerr(err, EPS_ELIMIT, i, "padding", "node '%s' produces %dx%d positions; the limit is %d per side", name, o->h,
                    o->w, EPS_GSPACE_MAX_SPATIAL);
    if ((long long)o->c * o->h * o->w > EPS_GSPACE_MAX_NODE_VALUES)
        return nerr(err, EPS_ELIMIT, i, NULL, "node '%s' produces %dx%dx%d = %lld values per image; the limit is %d", name,
                    o->c, o->h, o->w, (long long)o->c * o->h * o->w, EPS_GSPACE_MAX_NODE_VALUES);
    if (o->op == EPS_OP_CONV2D)
        *macs += (long long)o->out_c * o->h * o->w * (in_c / o->groups) * o->kernel * o->kernel;
    else if (o->op == EPS_OP_LINEAR)
        *macs += (long long)o->out_c * in_c;
    if (*macs > EPS_GSPACE_MAX_MACS)
        return nerr(err, EPS_ELIMIT, i, NULL, "the network exceeds %lld multiply-accumulates per image at node '%s'",
                    EPS_GSPACE_MAX_MACS, name);
    return 0;
}

/* Appends the node's normal form (every parameter spelled out) to canon. */
static int node_canon(json_t *canon, const json_t *ins, const char *name, const opdef *od, const int pv[MAXP],
                      eps_error *err)
{
    size_t nin = json_array_size(ins);
    {
        json_t *cj = json_object();
        json_t *ci = json_array();
        int bad = !cj || !ci;
        for (size_t k = 0; !bad && k < nin; k++) bad |= json_array_append(ci, json_array_get(ins, k));
        bad |= json_object_set_new(cj, "inputs", ci) | json_object_set_new(cj, "name", json_string(name)) |
               json_object_set_new(cj, "op", json_string(od->name));
        for (int k = 0; k < MAXP && od->p[k].key; k++)
            bad |= json_object_set_new(cj, od->p[k].key, od->p[k].type == P_BOOL ? json_boolean(pv[k]) : json_integer(pv[k]));
        bad |= json_array_append_new(canon, cj);
        if (bad) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    }
    return 0;
}

/* Validates node i (its JSON j), infers its shape and appends it to g.
 * names maps name -> graph index; canon receives the node's normal form. */
static int parse_node(const json_t *nodes, int i, eps_graph *g, json_t *names, long long *macs, json_t *canon,
                      eps_error *err)
{
    const json_t *j = json_array_get(nodes, (size_t)i);
    if (!json_is_object(j)) return nerr(err, EPS_EINVAL, i, NULL, "each node must be an object");
    const char *name = "";
    const opdef *od = NULL;
    int rc = node_name(j, i, names, &name, err);
    if (!rc) rc = node_op(j, i, name, &od, err);
    if (rc) return rc;
    eps_node nd;
    memset(&nd, 0, sizeof nd);
    nd.op = od->op;
    snprintf(nd.name, sizeof nd.name, "%s", name);
    int pv[MAXP] = {0};
    rc = node_inputs(nodes, j, i, name, od, names, &nd, err);
    if (!rc) rc = node_params(j, i, name, od, pv, err);
    if (!rc) rc = node_shape(g, i, name, od, pv, &nd, err);
    if (rc) return rc;
    int in_c = g->nodes[nd.in[0]].c; /* read now: eps_graph_add may move the node array */
    int idx = eps_graph_add(g, &nd, err);
    if (idx < 0) { /* the IR's own checks: re-address the error to the node */
        char m[400];
        snprintf(m, sizeof m, "%.300s", err ? err->msg : "");
        return nerr(err, idx, i, NULL, "node '%s': %s", name, m);
    }
    rc = node_limits(&g->nodes[idx], i, name, od, in_c, macs, err);
    if (rc) return rc;
    if (json_object_set_new(names, name, json_integer(idx))) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    return canon ? node_canon(canon, json_object_get(j, "inputs"), name, od, pv, err) : 0;
}

int eps_gspace_parse(const json_t *req, eps_graph *g, char **canonical, eps_error *err)
{
    memset(g, 0, sizeof *g);
    if (canonical) *canonical = NULL;
    int c, h, w;
    int rc = parse_input(req, &c, &h, &w, err);
    if (rc < 0) return rc;
    const json_t *nodes = json_object_get(req, "nodes");
    if (!nodes) return eps_error_set(err, EPS_EINVAL, "nodes", "missing field 'nodes' (a list of layers)");
    if (!json_is_array(nodes)) return eps_error_set(err, EPS_EINVAL, "nodes", "'nodes' must be a list of layer objects");
    size_t n = json_array_size(nodes);
    if (n == 0) return eps_error_set(err, EPS_EINVAL, "nodes", "'nodes' is empty");
    if (n > EPS_GSPACE_MAX_NODES)
        return eps_error_set(err, EPS_ELIMIT, "nodes", "the graph has %zu nodes; the limit is %d", n, EPS_GSPACE_MAX_NODES);
    rc = eps_graph_init(g, c, h, w, err);
    if (rc < 0) return rc;
    json_t *names = json_object();
    json_t *cnodes = canonical ? json_array() : NULL;
    long long macs = 0;
    if (!names || (canonical && !cnodes)) rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) rc = parse_node(nodes, (int)i, g, names, &macs, cnodes, err);
    /* output */
    const json_t *oj = json_object_get(req, "output");
    const char *oname = NULL;
    if (rc == 0) {
        if (!oj) {
            oname = node_label(nodes, (int)n - 1);
        } else if (!json_is_string(oj)) {
            rc = eps_error_set(err, EPS_EINVAL, "output", "'output' must be a node name");
        } else {
            oname = json_string_value(oj);
            if (!json_object_get(names, oname))
                rc = eps_error_set(err, EPS_EINVAL, "output", "output '%.47s' is not a node%s", oname,
                                   strcmp(oname, "input") ? "" : " (the batch itself cannot be the output)");
        }
    }
    if (rc == 0) {
        g->output = (int)json_integer_value(json_object_get(names, oname));
        const eps_node *o = &g->nodes[g->output];
        long long vals = (long long)o->c * o->h * o->w;
        if (vals != 1)
            rc = eps_error_set(err, EPS_EINVAL, "output",
                               "output '%s' produces %lld values per image; epsinas needs exactly 1 (its shape is "
                               "%dx%dx%d: end with global_avgpool + linear(out_features 1))",
                               oname, vals, o->c, o->h, o->w);
    }
    if (rc == 0 && canonical) {
        json_t *cj = json_pack("{s:{s:i,s:i,s:i}, s:O, s:s}", "input", "channels", c, "height", h, "width", w, "nodes",
                               cnodes, "output", oname);
        *canonical = cj ? json_dumps(cj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(cj);
        if (!*canonical) rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    }
    json_decref(names);
    json_decref(cnodes);
    if (rc < 0) eps_graph_free(g);
    return rc;
}

/* ---------------------------------------------------------------- space */

static int graph_from_json(const json_t *req, eps_arch *out, eps_error *err)
{
    int rc = eps_gspace_parse(req, &out->graph, &out->canonical, err);
    if (rc < 0) return rc;
    eps_md5_hex(out->canonical, strlen(out->canonical), out->hash);
    out->params = eps_graph_params(&out->graph);
    out->macs = eps_graph_macs(&out->graph);
    return 0;
}

/* Checks the batch against the declared input first, so the error names the
 * request field to change rather than an engine-level shape. */
static int graph_forward(const eps_arch *a, const eps_batch *b, float w, const eps_run_opts *opts, float *y,
                         eps_error *err)
{
    const eps_node *in = &a->graph.nodes[0];
    if (b->c != in->c || b->h != in->h || b->w != in->w)
        return eps_error_set(err, EPS_EINVAL, "input",
                             "the graph's input is %dx%dx%d (channels x height x width) but batch '%.200s' has %dx%dx%d images; "
                             "set \"input\" to match the batch",
                             in->c, in->h, in->w, b->source, b->c, b->h, b->w);
    return eps_engine_forward(&a->graph, b, w, opts, y, err);
}

/* Request fields this space reads (see eps_space.fields). */
static const char *const graph_fields[] = {"input", "nodes", "output", NULL};

const eps_space eps_graph_space = {
    .name = "graph",
    .title = "generic layer graph",
    .w1 = 1e-7,
    .w2 = 1,
    .batch_kind = EPS_BATCH_IMAGES,
    .default_batch = "ramp",
    .op_names = eps_gspace_op_names,
    .fields = graph_fields,
    .limits = "at most 512 nodes, 4096 channels, 256x256 positions, 2M values per node per image, fan-in 32, "
              "20 GMAC per image",
    .from_json = graph_from_json,
    .forward = graph_forward,
};
