/* util_golden.c — runs the committed PyTorch goldens (tests/golden/NAME.json)
 * through our engines: every case is a request object plus batch, batch
 * size, weights and the reference's epsilon, params and output ranges. */
#include "util_golden.h"

const eps_engine_kind eps_golden_engines[2] = {EPS_ENGINE_FAST, EPS_ENGINE_DENSE};

#include <math.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epsinas/spaces/space.h"
#include "util.h"

/* A small cache of loaded batches: goldens reuse a handful. spec may
 * contain $SHARED; NULL when it needs the shared data and that is absent.
 * Images are drawn at the shape of the case's network (nb201 datasets). */
typedef struct { char spec[600]; int n; eps_image_shape sh; eps_batch b; } cached_batch;
static cached_batch cache[16];
static int ncache;

static const eps_batch *get_batch_at(const char *spec, int n, eps_image_shape sh)
{
    for (int i = 0; i < ncache; i++)
        if (cache[i].n == n && !strcmp(cache[i].spec, spec) && cache[i].sh.c == sh.c && cache[i].sh.h == sh.h &&
            cache[i].sh.w == sh.w)
            return &cache[i].b;
    char *path = eps_t_subst_shared(spec);
    if (!path) return NULL;
    if (ncache == 16) eps_golden_free_batches();
    cached_batch *c = &cache[ncache];
    eps_error err = {0};
    if (eps_batch_load_shape(path, n, sh, &c->b, &err)) fail_msg("batch %s (%d): %s", path, n, err.msg);
    free(path);
    snprintf(c->spec, sizeof c->spec, "%s", spec);
    c->n = n;
    c->sh = sh;
    ncache++;
    return &c->b;
}

/* The case's batch at the input shape of network a. */
static const eps_batch *batch_for(const char *spec, int n, const eps_arch *a)
{
    eps_image_shape sh = EPS_IMAGE_SHAPE_CIFAR;
    eps_arch_input_shape(a, &sh);
    return get_batch_at(spec, n, sh);
}

void eps_golden_free_batches(void)
{
    for (int i = 0; i < ncache; i++) eps_batch_free(&cache[i].b);
    ncache = 0;
}

/* Raw output statistics: relative 1e-3 of the pass's own scale (float32
 * summation order differs from PyTorch's), NaN only against NaN. */
static int stat_close(double ours, double ref, double scale)
{
    return eps_t_close(ours, ref, 1e-3, 1e-4 * scale + 1e-38);
}

/* Runs one golden case on one engine; returns 1 when it matched, -1 when it
 * did not (printed), 0 when its batch needs the shared data. */
int eps_golden_case(const json_t *c, json_t *req, eps_engine_kind engine, const char *label)
{
    const char *bspec = json_string_value(json_object_get(c, "batch"));
    int n = (int)json_integer_value(json_object_get(c, "batch_size"));
    eps_arch a;
    eps_error e = {0};
    if (eps_arch_from_json(req, &a, &e)) fail_msg("%s: %s", label, e.msg);
    const eps_batch *b = batch_for(bspec, n, &a);
    if (!b) {
        eps_arch_free(&a);
        return 0;
    }
    long long want_params = json_integer_value(json_object_get(c, "params"));
    if (a.params != want_params) fail_msg("%s: params %lld, reference %lld", label, a.params, want_params);
    double w[2] = {eps_t_num(json_array_get(json_object_get(c, "weights"), 0)),
                   eps_t_num(json_array_get(json_object_get(c, "weights"), 1))};
    eps_run_opts opts = {.engine = engine};
    eps_score s;
    if (eps_arch_score(&a, b, w, &opts, &s, &e)) fail_msg("%s (%s engine): %s", label, eps_engine_name(engine), e.msg);
    double ref = eps_t_num(json_object_get(c, "epsilon"));
    int ok;
    if (json_is_true(json_object_get(c, "noise"))) {
        /* the reference's own float32 epsilon is rounding noise (far from its
         * float64 forward, spec §8): any float32 result must land near the
         * float64 value, at the scale of that noise */
        ref = eps_t_num(json_object_get(c, "epsilon_f64"));
        ok = !isnan(s.epsilon) && fabs(s.epsilon - ref) <= 1e-4;
    } else {
        ok = eps_t_close(s.epsilon, ref, 1e-4, 1e-5);
    }
    int rc = 1;
    if (!ok) {
        print_error("MISMATCH %s (%s engine): epsilon %.9g, reference %.9g (ours: '%s', ref: '%s')\n", label,
                    eps_engine_name(engine), s.epsilon, ref, s.nan_reason,
                    json_string_value(json_object_get(c, "nan_reason")));
        rc = -1;
    }
    for (int k = 0; k < 2; k++) {
        json_t *y = json_array_get(json_object_get(c, "y"), (size_t)k);
        double mn = eps_t_num(json_object_get(y, "min")), mx = eps_t_num(json_object_get(y, "max"));
        double scale = fmax(fabs(mn), fabs(mx));
        if (!stat_close(s.ymin[k], mn, scale) || !stat_close(s.ymax[k], mx, scale) ||
            !stat_close(s.ymean[k], eps_t_num(json_object_get(y, "mean")), scale))
        {
            print_error("MISMATCH %s (%s engine): pass %d output min/max/mean %.9g %.9g %.9g, reference %.9g %.9g "
                        "%.9g\n",
                        label, eps_engine_name(engine), k + 1, s.ymin[k], s.ymax[k], s.ymean[k], mn, mx,
                        eps_t_num(json_object_get(y, "mean")));
            rc = -1;
        }
    }
    eps_arch_free(&a);
    return rc;
}

/* The request object of a case: "request" if present, else the case itself. */
static json_t *case_request(json_t *c)
{
    json_t *r = json_object_get(c, "request");
    return r ? json_incref(r) : json_incref(c);
}

static int range_close(double ours, double ref, double scale)
{
    if (isnan(ref)) return isnan(ours);
    return fabs(ours - ref) <= 1e-3 * fabs(ref) + 1e-4 * scale;
}

int eps_golden_run(const char *file, const eps_golden_filter *f, eps_golden_stats *st)
{
    json_t *root = eps_t_load_json(file);
    json_t *cases = json_object_get(root, "cases");
    assert_true(json_is_array(cases));
    size_t i;
    json_t *c;
    memset(st, 0, sizeof *st);
    json_array_foreach(cases, i, c) {
        const char *bspec = json_string_value(json_object_get(c, "batch"));
        int bs = (int)json_integer_value(json_object_get(c, "batch_size"));
        assert_non_null(bspec);
        if (f->max_batch && bs > f->max_batch) continue;
        if (f->only_batch_prefix && strncmp(bspec, f->only_batch_prefix, strlen(f->only_batch_prefix))) continue;
        if (f->skip_batch_prefix && !strncmp(bspec, f->skip_batch_prefix, strlen(f->skip_batch_prefix))) continue;
        if (f->every > 1 && (st->seen++ % f->every) != 0) continue;
        json_t *req = case_request(c);
        eps_arch a;
        eps_error err = {0};
        if (eps_arch_from_json(req, &a, &err)) {
            print_error("case %zu: %s\n", i, err.msg);
            fail();
        }
        json_decref(req);
        const eps_batch *batch = batch_for(bspec, bs, &a);
        if (!batch) {
            st->skipped++;
            eps_arch_free(&a);
            continue;
        }
        json_t *jw = json_object_get(c, "weights");
        double w[2] = {eps_t_num(json_array_get(jw, 0)), eps_t_num(json_array_get(jw, 1))};
        eps_run_opts ro = {.engine = f->engine};
        eps_score sc;
        if (eps_arch_score(&a, batch, w, &ro, &sc, &err)) {
            print_error("case %zu: %s\n", i, err.msg);
            fail();
        }
        double ref = eps_t_num(json_object_get(c, "epsilon"));
        long long params = json_integer_value(json_object_get(c, "params"));
        /* macs: the reference's Conv2d + Linear count, where the golden has it (nb201 datasets) */
        const json_t *jm = json_object_get(c, "macs");
        int ok = eps_t_close(sc.epsilon, ref, 1e-4, 1e-5) && a.params == params &&
                 (!jm || a.macs == json_integer_value(jm));
        json_t *y = json_object_get(c, "y");
        for (int p = 0; p < 2 && ok && json_is_array(y); p++) {
            json_t *yp = json_array_get(y, (size_t)p);
            double rmin = eps_t_num(json_object_get(yp, "min")), rmax = eps_t_num(json_object_get(yp, "max"));
            double scale = fmax(fabs(rmin), fabs(rmax));
            ok = range_close(sc.ymin[p], rmin, scale) && range_close(sc.ymax[p], rmax, scale);
            if (!ok) print_error("  pass %d: ours [%.9g, %.9g] reference [%.9g, %.9g]\n", p, sc.ymin[p], sc.ymax[p], rmin, rmax);
        }
        if (!ok) {
            print_error("case %zu (%s, %s/%d, w=%g,%g, %s): epsilon ours %.9g ref %.9g (%s); params ours %lld ref %lld; "
                        "macs ours %lld ref %lld\n",
                        i, a.canonical, bspec, bs, w[0], w[1], eps_engine_name(f->engine), sc.epsilon, ref, sc.nan_reason,
                        a.params, params, a.macs, jm ? (long long)json_integer_value(jm) : -1LL);
            st->failed++;
        }
        st->checked++;
        st->nan += isnan(ref);
        eps_arch_free(&a);
    }
    json_decref(root);
    eps_golden_free_batches();
    return st->failed;
}

void eps_golden_run_requests(const char *file, size_t min_cases, size_t stride, eps_engine_kind engine,
                             json_t *(*request_of)(const json_t *c))
{
    json_t *d = eps_t_load_json(file);
    json_t *cases = json_object_get(d, "cases");
    assert_true(json_array_size(cases) >= min_cases);
    size_t i;
    json_t *c;
    int ran = 0, skipped = 0, bad = 0;
    json_array_foreach(cases, i, c) {
        if (i % stride) continue;
        char label[200];
        snprintf(label, sizeof label, "case %zu '%s' on %s/%lld", i, json_string_value(json_object_get(c, "name")),
                 json_string_value(json_object_get(c, "batch")), json_integer_value(json_object_get(c, "batch_size")));
        json_t *req = request_of(c);
        int r = eps_golden_case(c, req, engine, label);
        json_decref(req);
        ran += r != 0;
        skipped += r == 0;
        bad += r < 0;
    }
    eps_golden_free_batches();
    json_decref(d);
    if (skipped) print_message("# %d golden cases need shared data (absent) and were not run\n", skipped);
    if (bad) fail_msg("%d of %d golden cases differ from the reference (%s engine)", bad, ran, eps_engine_name(engine));
    assert_true(ran > 0);
}
