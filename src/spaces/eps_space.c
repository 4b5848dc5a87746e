/* eps_space.c — the search-space registry and the scoring driver shared by
 * the CLI, the sweep and the service: request -> eps_arch -> two forward
 * passes -> epsilon. */
#include "epsinas/spaces/space.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every space module exports one eps_space; add new ones here. */
static const eps_space *const spaces[] = {
    &eps_nb201_space,
    &eps_nb101_space,
    &eps_graph_space,
    &eps_nlp_space,
    NULL,
};

const eps_space *const *eps_space_all(void) { return spaces; }

const eps_space *eps_space_find(const char *name)
{
    if (!name) return NULL;
    for (int i = 0; spaces[i]; i++)
        if (!strcmp(spaces[i]->name, name)) return spaces[i];
    return NULL;
}

const char *eps_space_default_batch(const eps_space *s, const char *dataset)
{
    for (const eps_space_dataset *d = s->datasets; d && dataset && d->dataset; d++)
        if (!strcmp(d->dataset, dataset)) return d->batch;
    return s->default_batch ? s->default_batch : s->batch_kind == EPS_BATCH_TOKENS ? "tokens:1" : "ramp";
}

const eps_space_dataset *eps_space_dataset_find(const eps_space *s, const char *name)
{
    if (!s || !s->datasets || !s->datasets[0].dataset) return NULL;
    if (!name) return &s->datasets[0];
    for (const eps_space_dataset *d = s->datasets; d->dataset; d++)
        if (!strcmp(d->dataset, name)) return d;
    return NULL;
}

void eps_space_dataset_names(const eps_space *s, char *buf, size_t size)
{
    if (!size) return;
    buf[0] = 0;
    for (const eps_space_dataset *d = s ? s->datasets : NULL; d && d->dataset; d++) {
        if (d != s->datasets) strncat(buf, ", ", size - strlen(buf) - 1);
        strncat(buf, d->dataset, size - strlen(buf) - 1);
    }
}

int eps_arch_input_shape(const eps_arch *a, eps_image_shape *shape)
{
    if (!a || a->graph.n <= 0) return 0;
    *shape = (eps_image_shape){a->graph.nodes[0].c, a->graph.nodes[0].h, a->graph.nodes[0].w};
    return 1;
}

const char *const eps_request_common_fields[] = {"space", "id", "engine", "weights", "batch", "batch_size", NULL};

static int listed(const char *const *list, const char *k)
{
    for (int i = 0; list && list[i]; i++)
        if (!strcmp(list[i], k)) return 1;
    return 0;
}

int eps_request_check_fields(const json_t *req, const char *const *common, eps_error *err)
{
    if (!json_is_object(req)) return 0;
    const eps_space *s = eps_space_find(json_string_value(json_object_get(req, "space")));
    if (!s) return 0;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)req, k, v) {
        if (!strcmp(k, "space") || !strncmp(k, "x-", 2) || listed(common, k) || listed(s->fields, k)) continue;
        char known[256] = "";
        for (int pass = 0; pass < 2; pass++)
            for (const char *const *l = pass ? s->fields : common; l && *l; l++) {
                if (*known) strncat(known, ", ", sizeof known - strlen(known) - 1);
                strncat(known, *l, sizeof known - strlen(known) - 1);
            }
        char name[48]; /* the name cut to whole UTF-8 characters: it goes into JSON */
        size_t n = strlen(k) < 40 ? strlen(k) : 40;
        while (n > 0 && k[n] && ((unsigned char)k[n] & 0xC0) == 0x80) n--;
        snprintf(name, sizeof name, "%.*s", (int)n, k);
        return eps_error_set(err, EPS_EINVAL, name,
                             "unknown field '%s' for space '%s' (accepted: %s; client extensions start with 'x-')",
                             name, s->name, known);
    }
    return 0;
}

int eps_request_one_of(const json_t *req, const char *const *names, const char *choices, const char **which,
                       eps_error *err)
{
    *which = NULL;
    for (int i = 0; names[i]; i++) {
        if (!json_object_get(req, names[i])) continue;
        if (!*which) {
            *which = names[i];
            continue;
        }
        char field[64];
        snprintf(field, sizeof field, "%s,%s", *which, names[i]);
        return eps_error_set(err, EPS_EINVAL, field, "both '%s' and '%s' are given; a request holds exactly one of %s",
                             *which, names[i], choices);
    }
    return 0;
}

int eps_weights_check(const double w[2], const char *field, eps_error *err)
{
    for (int i = 0; i < 2; i++)
        if (!isfinite(w[i]) || !(w[i] >= FLT_MIN && w[i] <= FLT_MAX))
            return eps_error_set(err, EPS_EINVAL, field,
                                 "weight %d is %.6g: weights must be two different finite numbers, positive and "
                                 "normal in float32 (%.6g to %.6g)",
                                 i + 1, w[i], (double)FLT_MIN, (double)FLT_MAX);
    if ((float)w[0] == (float)w[1])
        return eps_error_set(err, EPS_EINVAL, field, "weights must be two different finite numbers (also as float32), got %.9g and %.9g",
                             w[0], w[1]);
    return 0;
}

int eps_arch_from_json(const json_t *req, eps_arch *out, eps_error *err)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(req))
        return eps_error_set(err, EPS_EINVAL, "", "request must be a JSON object");
    json_t *sp = json_object_get(req, "space");
    if (!sp) return eps_error_set(err, EPS_EINVAL, "space", "missing field 'space' (one of nb201, nb101, nlp, graph)");
    if (!json_is_string(sp)) return eps_error_set(err, EPS_EINVAL, "space", "'space' must be a string");
    const eps_space *s = eps_space_find(json_string_value(sp));
    if (!s) {
        char names[128] = "";
        for (int i = 0; spaces[i]; i++) {
            if (i) strncat(names, ", ", sizeof names - strlen(names) - 1);
            strncat(names, spaces[i]->name, sizeof names - strlen(names) - 1);
        }
        return eps_error_set(err, EPS_EINVAL, "space", "unknown space '%.40s' (expected one of: %s)",
                             json_string_value(sp), names);
    }
    out->space = s;
    int rc = s->from_json(req, out, err);
    if (rc < 0) {
        eps_arch_free(out);
        return rc;
    }
    out->space = s;
    return 0;
}

void eps_arch_free(eps_arch *a)
{
    if (!a) return;
    free(a->canonical);
    eps_graph_free(&a->graph);
    if (a->impl && a->space && a->space->free_impl) a->space->free_impl(a->impl);
    memset(a, 0, sizeof *a);
}

json_t *eps_arch_encodings(const eps_arch *a)
{
    return a && a->space && a->space->encodings ? a->space->encodings(a) : NULL;
}

long eps_arch_output_count(const eps_arch *a, const eps_batch *b)
{
    if (a->space && a->space->output_count) return a->space->output_count(a, b);
    return (long)b->n * (long)eps_graph_output_size(&a->graph);
}

int eps_arch_forward(const eps_arch *a, const eps_batch *b, float w, const eps_run_opts *opts, float *y,
                     eps_error *err)
{
    if (a->space && a->space->forward) return a->space->forward(a, b, w, opts, y, err);
    return eps_engine_forward(&a->graph, b, w, opts, y, err);
}

int eps_arch_score(const eps_arch *a, const eps_batch *b, const double *weights, const eps_run_opts *opts,
                   eps_score *out, eps_error *err)
{
    memset(out, 0, sizeof *out);
    double w[2] = {a->space ? a->space->w1 : 0, a->space ? a->space->w2 : 0};
    if (weights) w[0] = weights[0], w[1] = weights[1];
    if (!(isfinite(w[0]) && isfinite(w[1])) || w[0] == w[1])
        return eps_error_set(err, EPS_EINVAL, "weights", "weights must be two different finite numbers");
    if (a->space && a->space->batch_kind != b->kind)
        return eps_error_set(err, EPS_EINVAL, "batch", "space '%s' needs %s batch, '%s' is %s", a->space->name,
                             a->space->batch_kind == EPS_BATCH_IMAGES ? "an image" : "a token",
                             b->source, b->kind == EPS_BATCH_IMAGES ? "images" : "tokens");
    long n = eps_arch_output_count(a, b);
    if (n <= 0) return eps_error_set(err, EPS_EINTERNAL, "", "network has no outputs");
    float *y = malloc(sizeof(float) * (size_t)n * 2);
    if (!y) return eps_error_set(err, EPS_ENOMEM, "", "out of memory for %ld outputs", n);
    int rc = eps_arch_forward(a, b, (float)w[0], opts, y, err);
    /* A constant (or all-NaN) first pass makes epsilon NaN whatever the
     * second gives: callers that only need epsilon may skip the second. */
    int skip = 0;
    if (rc == 0 && opts && opts->stop_early) {
        float lo = NAN, hi = NAN;
        for (long i = 0; i < n; i++)
            if (!isnan(y[i])) {
                if (isnan(lo) || y[i] < lo) lo = y[i];
                if (isnan(hi) || y[i] > hi) hi = y[i];
            }
        skip = isnan(lo) || hi - lo == 0.0f;
    }
    if (rc == 0 && !skip) rc = eps_arch_forward(a, b, (float)w[1], opts, y + n, err);
    if (rc == 0 && skip)
        for (long i = 0; i < n; i++) y[n + i] = NAN;
    if (rc == 0) {
        eps_score_epsilon(y, y + n, n, w, out);
    }
    free(y);
    return rc;
}
