/* eps_request.c — one score request object -> arch, batch, batch size,
 * weights and engine, checked once for /v1/score and for job items (see
 * request.h). Messages name the field, as the API's error shape wants. */
#include "epsinas/service/request.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "epsinas/engine/memest.h"
#include "epsinas/service/json_exact.h"
#include "epsinas/service/metrics.h"
#include "epsinas/core/util.h"

int eps_score_req_status(int code) { return code == EPS_EINVAL ? 400 : code == EPS_ELIMIT ? 413 : 500; }

/* 'engine' and 'weights' (before the architecture: they need no parsing). */
static int engine_and_weights(const json_t *o, eps_score_req *r, int *have_w, eps_error *err)
{
    r->engine = EPS_ENGINE_FAST;
    json_t *je = json_object_get(o, "engine");
    if (je && (!json_is_string(je) || eps_engine_parse(json_string_value(je), &r->engine) != 0))
        return eps_error_set(err, EPS_EINVAL, "engine", "'engine' must be \"fast\" or \"dense\"");
    json_t *jw = json_object_get(o, "weights");
    *have_w = jw != NULL;
    if (!jw) return 0;
    if (!json_is_array(jw) || json_array_size(jw) != 2 || !json_is_number(json_array_get(jw, 0)) ||
        !json_is_number(json_array_get(jw, 1)))
        return eps_error_set(err, EPS_EINVAL, "weights", "'weights' must be an array of two numbers [w1, w2]");
    r->w[0] = json_number_value(json_array_get(jw, 0));
    r->w[1] = json_number_value(json_array_get(jw, 1));
    return eps_weights_check(r->w, "weights", err);
}

/* 'batch' by name, then 'batch_size' within it, then the kind the space needs. */
static int batch_and_size(const json_t *o, const eps_named_batch *batches, int n_batches, eps_score_req *r,
                          eps_error *err)
{
    const eps_space *sp = r->arch.space;
    /* no "batch": the space's default (per dataset where it has them) */
    json_t *jb = json_object_get(o, "batch");
    if (jb && !json_is_string(jb)) return eps_error_set(err, EPS_EINVAL, "batch", "'batch' must be a string");
    const char *bname = jb ? json_string_value(jb) : NULL;
    const char *dflt = eps_space_default_batch(sp, r->arch.dataset);
    r->nb = eps_named_batch_pick(batches, n_batches, bname, dflt, sp->batch_kind);
    if (!r->nb) {
        char names[400] = "";
        for (int i = 0; i < n_batches; i++) {
            if (i) strncat(names, ", ", sizeof names - strlen(names) - 1);
            strncat(names, batches[i].name, sizeof names - strlen(names) - 1);
        }
        return eps_error_set(err, EPS_EINVAL, "batch", "unknown batch '%.64s' (loaded: %s; see GET /v1/batches)",
                             bname ? bname : dflt, names);
    }
    const eps_batch *b = &r->nb->batch;
    r->batch_size = b->n;
    json_t *jbs = json_object_get(o, "batch_size");
    if (jbs) {
        /* JSON Schema's integer includes integral reals (64.0) */
        double v = json_is_integer(jbs) ? (double)json_integer_value(jbs) : json_is_real(jbs) ? json_real_value(jbs) : NAN;
        if (!(v >= 1 && v <= b->n && v == floor(v)))
            return eps_error_set(err, EPS_EINVAL, "batch_size",
                                 "'batch_size' must be an integer in 1..%d (the size of batch '%s')", b->n,
                                 r->nb->name);
        r->batch_size = (int)v;
    }
    if (sp->batch_kind != b->kind)
        return eps_error_set(err, EPS_EINVAL, "batch", "space '%s' needs %s batch; '%s' holds %s", sp->name,
                             sp->batch_kind == EPS_BATCH_IMAGES ? "an image" : "a token", r->nb->name,
                             b->kind == EPS_BATCH_IMAGES ? "images" : "tokens");
    return 0;
}

int eps_score_req_prepare(const json_t *o, const eps_named_batch *batches, int n_batches, long long max_memory,
                          eps_score_req *r, eps_error *err)
{
    memset(r, 0, sizeof *r);
    if (!json_is_object(o)) return eps_error_set(err, EPS_EINVAL, "", "a score request must be a JSON object");
    int have_w = 0, rc;
    if ((rc = engine_and_weights(o, r, &have_w, err)) < 0) return rc;
    if ((rc = eps_arch_from_json(o, &r->arch, err)) < 0) {
        if (err && !*err->field) snprintf(err->field, sizeof err->field, "arch");
        return rc;
    }
    if (json_object_get(o, "dataset") && !r->arch.dataset) /* a job's shared 'dataset' reaches every item */
        rc = eps_error_set(err, EPS_EINVAL, "dataset", "space '%s' has no datasets ('dataset' is for nb201)",
                           r->arch.space->name);
    if (rc == 0 && (rc = batch_and_size(o, batches, n_batches, r, err)) == 0 && r->arch.graph.n > 0) /* before any work */
        rc = eps_memest_check(&r->arch.graph, r->batch_size, r->engine, max_memory, err);
    if (rc == 0) {
        r->shape = (eps_image_shape){r->nb->batch.c, r->nb->batch.h, r->nb->batch.w};
        eps_arch_input_shape(&r->arch, &r->shape); /* generators are drawn at it, files must have it */
        rc = eps_named_batch_hash_at(r->nb, r->batch_size, r->shape, r->batch_hash, err);
    }
    if (rc < 0) {
        eps_arch_free(&r->arch);
        return rc;
    }
    if (!have_w) r->w[0] = r->arch.space->w1, r->w[1] = r->arch.space->w2;
    return 0;
}

char *eps_score_result_json(const eps_score_req *q, const eps_score *sc)
{
    const eps_arch *a = &q->arch;
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "space", json_string(a->space->name));
    json_object_set_new(o, "hash", json_string(a->hash));
    json_object_set_new(o, "canonical", json_string(a->canonical ? a->canonical : ""));
    if (a->dataset) json_object_set_new(o, "dataset", json_string(a->dataset));
    json_t *enc = eps_arch_encodings(a); /* from the canonical form: one cache entry serves every spelling */
    if (enc) json_object_set_new(o, "encodings", enc);
    json_object_set_new(o, "epsilon", isfinite(sc->epsilon) ? json_real(sc->epsilon) : json_null());
    json_object_set_new(o, "nan_reason", isnan(sc->epsilon) ? json_string(sc->nan_reason) : json_null());
    json_object_set_new(o, "params", json_integer(a->params));
    json_object_set_new(o, "macs", json_integer(a->macs));
    json_object_set_new(o, "weights", json_pack("[ff]", q->w[0], q->w[1]));
    json_object_set_new(o, "batch_hash", json_string(q->batch_hash));
    json_object_set_new(o, "batch_size", json_integer(q->batch_size));
    json_object_set_new(o, "engine", json_string(eps_engine_name(q->engine)));
    char *text = eps_json_dumps_exact(o);
    json_decref(o);
    return text;
}

int eps_score_req_compute(const eps_score_req *q, const atomic_int *cancel, char **json, double *compute_s,
                          eps_error *err)
{
    *json = NULL;
    eps_batch v; /* the batch's spec at batch_size and shape: a view, or generated anew (ramp, tokens, other shapes) */
    int owned = 0, rc = eps_batch_at(&q->nb->batch, q->batch_size, q->shape, &v, &owned, err);
    if (rc < 0) return rc;
    eps_run_opts opts = {.engine = q->engine, .cancel = cancel, .stop_early = 1};
    eps_score sc;
    int64_t t0 = eps_now_ns();
    eps_metrics_computation();
    rc = eps_arch_score(&q->arch, &v, q->w, &opts, &sc, err);
    if (compute_s) *compute_s = (double)(eps_now_ns() - t0) / 1e9;
    if (owned) eps_batch_free(&v);
    if (rc < 0) return rc;
    *json = eps_score_result_json(q, &sc);
    return *json ? 0 : eps_error_set(err, EPS_ENOMEM, "", "out of memory");
}
