/* eps_cmd_score.c — `epsinas score`: one architecture, one line of output. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "eps_cli_common.h"
#include "epsinas/engine/memest.h"
#include "epsinas/spaces/space.h"
#include "epsinas/core/util.h"

static void score_usage(FILE *f)
{
    fprintf(f,
            "usage: epsinas score --space SPACE (architecture options) [options]\n\n"
            "Scores one architecture and prints epsilon (higher predicts higher accuracy),\n"
            "the parameter count and MACs per image.\n\n"
            "architecture (by space):\n"
            "  --space nb201 --arch STR       NAS-Bench-201 cell, e.g. '|nor_conv_3x3~0|+|...|'\n"
            "  --space nb201 --op-indices L   NASLib op_indices: 6 codes on edges (1,2),(1,3),(1,4),(2,3),\n"
            "                                 (2,4),(3,4); 0=skip_connect 1=none 2=nor_conv_3x3\n"
            "                                 3=nor_conv_1x1 4=avg_pool_3x3, e.g. '[2,2,0,4,2,1]'\n"
            "  --space nb201 --nni JSON       NNI dict {\"0_1\":op,...,\"2_3\":op} (edge i->j), ops none\n"
            "                                 skip_connect conv_1x1 conv_3x3 avg_pool_3x3\n"
            "  --space nb101 --matrix JSON --ops JSON   or  --spec FILE\n"
            "  --space nb101 --naslib L       NASLib tuple: 7x7 adjacency row-major, then 7 op codes\n"
            "                                 0=input 1=output 2=maxpool3x3 3=conv1x1-bn-relu\n"
            "                                 4=conv3x3-bn-relu (56 ints; n*n+n for n vertices)\n"
            "                                 L: a JSON array, or a Python tuple '(0, 1, ...)'\n"
            "  (give one encoding; the output names the cell in every encoding of its space)\n"
            "  --space graph --spec FILE      generic layer graph (see README)\n"
            "  --space nlp --recipe FILE      NAS-Bench-NLP recipe\n"
            "  --spec FILE                    any request object {\"space\": ..., ...}\n\n"
            "options:\n");
    eps_cli_dataset_help(f);
    eps_cli_batch_help(f);
    fprintf(f,
            "  --weights A,B       the two constant weights (default: the space's, nb201 1e-7,1)\n"
            "  --engine fast|dense fast = exact single-plane engine (default); dense = full tensors\n"
            "  --json              one JSON object instead of text\n"
            "  --repeat N          score N times (warm engine): elapsed_ms is the median,\n"
            "                      fastest_ms (JSON) the fastest run\n\n"
            "exit status: 0 scored (epsilon may be null with a reason), 2 bad input, 1 internal error\n");
}


static int cmp_ms(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* --repeat N: the parse, build and both passes N more times, warm; the
 * median and the fastest run. */
static int score_repeat(const json_t *req, const eps_batch *batch, const double *w, const eps_run_opts *ro, long repeat,
                        eps_score *sc, double *median_ms, double *fastest_ms, eps_error *err)
{
    double *t = malloc(sizeof(double) * (size_t)repeat);
    if (!t) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    int rc = 0;
    for (long r = 0; r < repeat && rc == 0; r++) {
        double t1 = eps_now_ms();
        eps_arch a2;
        rc = eps_arch_from_json(req, &a2, err);
        if (rc == 0) {
            rc = eps_arch_score(&a2, batch, w, ro, sc, err);
            eps_arch_free(&a2);
        }
        t[r] = eps_now_ms() - t1;
    }
    if (rc == 0) {
        qsort(t, (size_t)repeat, sizeof *t, cmp_ms);
        *median_ms = t[repeat / 2];
        *fastest_ms = t[0];
    }
    free(t);
    return rc;
}

static void print_json(const eps_arch *a, const eps_score *sc, const eps_batch *batch, eps_engine_kind engine,
                       double elapsed, long repeat, double fastest)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:s?, s:I, s:I, s:[f,f], s:s, s:s, s:i, s:s, s:f}", "space",
                          a->space->name, "arch", a->canonical, "hash", a->hash, "epsilon",
                          isnan(sc->epsilon) ? json_null() : json_real(sc->epsilon), "nan_reason",
                          isnan(sc->epsilon) ? sc->nan_reason : NULL, "params", (json_int_t)a->params, "macs",
                          (json_int_t)a->macs, "weights", sc->weights[0], sc->weights[1], "batch", batch->source,
                          "batch_hash", batch->hash, "batch_size", batch->n, "engine", eps_engine_name(engine),
                          "elapsed_ms", elapsed);
    if (!json_object_get(o, "nan_reason")) json_object_set_new(o, "nan_reason", json_null());
    if (a->dataset) json_object_set_new(o, "dataset", json_string(a->dataset));
    if (repeat > 1) json_object_set_new(o, "fastest_ms", json_real(fastest));
    json_t *enc = eps_arch_encodings(a);
    if (enc) json_object_set_new(o, "encodings", enc);
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    puts(s);
    free(s);
    json_decref(o);
}

static void print_text(const eps_arch *a, const eps_score *sc, const eps_batch *batch, eps_engine_kind engine,
                       double elapsed, long repeat, double fastest)
{
    if (isnan(sc->epsilon)) printf("epsilon     nan (%s)\n", sc->nan_reason);
    else printf("epsilon     %.9g\n", sc->epsilon);
    printf("params      %lld\nmacs        %lld\nweights     %g, %g\nbatch       %s (%d, hash %s)\n"
           "engine      %s\nhash        %s\nelapsed     %.1f ms\n",
           a->params, a->macs, sc->weights[0], sc->weights[1], batch->source, batch->n, batch->hash,
           eps_engine_name(engine), a->hash, elapsed);
    if (repeat > 1) printf("fastest     %.1f ms (of %ld runs)\n", fastest, repeat);
    if (a->dataset) printf("dataset     %s\n", a->dataset);
    json_t *enc = eps_arch_encodings(a);
    const char *k;
    json_t *v;
    json_object_foreach(enc, k, v) {
        if (!strcmp(k, "hash")) continue;
        char *t = json_is_string(v) ? strdup(json_string_value(v)) : json_dumps(v, JSON_COMPACT);
        printf("%-11s %s\n", k, t ? t : "");
        free(t);
    }
    json_decref(enc);
}

int eps_cmd_score(int argc, char **argv)
{
    const char *space = NULL, *arch = NULL, *matrix = NULL, *ops = NULL, *spec = NULL, *recipe = NULL;
    const char *op_indices = NULL, *nni = NULL, *naslib = NULL, *dataset = NULL;
    const char *batch_spec = NULL, *bs_s = NULL, *weights_s = NULL, *engine_s = NULL, *repeat_s = NULL;
    int json_out = 0;
    const eps_cli_opt specs[] = {
        {"--space", 1, &space, NULL},           {"--arch", 1, &arch, NULL},
        {"--matrix", 1, &matrix, NULL},         {"--ops", 1, &ops, NULL},
        {"--spec", 1, &spec, NULL},             {"--recipe", 1, &recipe, NULL},
        {"--op-indices", 1, &op_indices, NULL}, {"--nni", 1, &nni, NULL},
        {"--naslib", 1, &naslib, NULL},         {"--dataset", 1, &dataset, NULL},
        {"--batch", 1, &batch_spec, NULL},      {"--batch-size", 1, &bs_s, NULL},
        {"--weights", 1, &weights_s, NULL},     {"--engine", 1, &engine_s, NULL},
        {"--repeat", 1, &repeat_s, NULL},       {"--json", 0, NULL, &json_out},
        {NULL, 0, NULL, NULL}};
    int prc = eps_cli_parse_opts("score", argc, argv, specs, score_usage, NULL);
    if (prc >= 0) return prc;
    long bs = 256, repeat = 1;
    double w[2];
    int have_w = weights_s != NULL;
    eps_run_opts ro = {.engine = EPS_ENGINE_FAST};
    eps_error err = {0};
    if (eps_cli_int("--batch-size", bs_s, 2, EPS_BATCH_MAX, &bs, &err) ||
        eps_cli_int("--repeat", repeat_s, 1, 1000, &repeat, &err) || eps_cli_weights(weights_s, w, &err) ||
        eps_cli_engine(engine_s, &ro.engine, &err))
        return eps_cli_fail("score", &err);
    if (!space && !spec) {
        eps_error_set(&err, EPS_EINVAL, "--space", "missing --space (nb201, nb101, graph, nlp) or --spec FILE");
        return eps_cli_fail("score", &err);
    }
    json_t *req = NULL;
    if (eps_cli_request(space, arch, matrix, ops, spec, recipe, &req, &err)) return eps_cli_fail("score", &err);
    if (eps_cli_request_encoding(req, "--op-indices", "op_indices", op_indices, &err) ||
        eps_cli_request_encoding(req, "--nni", "nni", nni, &err) ||
        eps_cli_request_encoding(req, "--naslib", "naslib", naslib, &err) ||
        eps_cli_request_dataset(req, dataset, &err)) {
        json_decref(req);
        return eps_cli_fail("score", &err);
    }
    double t0 = eps_now_ms();
    eps_arch arch_v;
    int rc = eps_arch_from_json(req, &arch_v, &err);
    if (rc) {
        json_decref(req);
        return eps_cli_fail("score", &err);
    }
    /* the service's default budget: refuse before allocating, not at 20 GB */
    if (arch_v.graph.n > 0 &&
        (rc = eps_memest_check(&arch_v.graph, (int)bs, ro.engine, EPS_MEMEST_DEFAULT_LIMIT, &err)) < 0) {
        eps_arch_free(&arch_v);
        json_decref(req);
        return eps_cli_fail("score", &err);
    }
    if (!batch_spec) batch_spec = eps_space_default_batch(arch_v.space, arch_v.dataset);
    eps_batch batch;
    eps_image_shape shape = EPS_IMAGE_SHAPE_CIFAR; /* drawn at the network's input (tokens: ignored) */
    eps_arch_input_shape(&arch_v, &shape);
    if (eps_batch_load_shape(batch_spec, (int)bs, shape, &batch, &err)) {
        eps_arch_free(&arch_v);
        json_decref(req);
        return eps_cli_fail("score", &err);
    }
    if (ro.engine == EPS_ENGINE_FAST) eps_engine_blas_quiet();
    eps_score sc;
    rc = eps_arch_score(&arch_v, &batch, have_w ? w : NULL, &ro, &sc, &err);
    double elapsed = eps_now_ms() - t0, fastest = elapsed;
    if (rc == 0 && repeat > 1) rc = score_repeat(req, &batch, have_w ? w : NULL, &ro, repeat, &sc, &elapsed, &fastest, &err);
    if (rc == 0 && json_out) print_json(&arch_v, &sc, &batch, ro.engine, elapsed, repeat, fastest);
    else if (rc == 0) print_text(&arch_v, &sc, &batch, ro.engine, elapsed, repeat, fastest);
    eps_batch_free(&batch);
    eps_arch_free(&arch_v);
    json_decref(req);
    return rc ? eps_cli_fail("score", &err) : 0;
}
