/* eps_cli_common.c — argument parsing shared by the CLI subcommands. */
#include "eps_cli_common.h"

#include "epsinas/spaces/space.h"
#include "epsinas/core/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPS_CLI_SPEC_MAX (16L << 20)

int eps_cli_fail(const char *cmd, const eps_error *err)
{
    if (err->field[0]) fprintf(stderr, "epsinas %s: %s: %s\n", cmd, err->field, err->msg);
    else fprintf(stderr, "epsinas %s: %s\n", cmd, err->msg);
    switch (err->code) {
    case EPS_EINVAL:
    case EPS_ELIMIT:
    case EPS_EIO: return 2;
    default: return 1;
    }
}

int eps_cli_int(const char *flag, const char *s, long lo, long hi, long *out, eps_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return eps_error_set(err, EPS_EINVAL, flag, "'%.40s' is not an integer in [%ld, %ld]", s, lo, hi);
    *out = v;
    return 0;
}

int eps_cli_weights(const char *s, double w[2], eps_error *err)
{
    char *end;
    errno = 0;
    w[0] = strtod(s, &end);
    if (errno || end == s || *end != ',') goto bad;
    const char *s2 = end + 1;
    w[1] = strtod(s2, &end);
    if (errno || end == s2 || *end) goto bad;
    return eps_weights_check(w, "--weights", err);
bad:
    return eps_error_set(err, EPS_EINVAL, "--weights", "expected two numbers 'A,B' (e.g. 1e-7,1), got '%.60s'", s);
}

int eps_cli_json_file(const char *flag, const char *path, size_t max, json_t **out, eps_error *err)
{
    char *buf;
    size_t n;
    int rc = eps_read_file(path, max, flag, &buf, &n, err);
    if (rc) return rc;
    json_error_t je;
    *out = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
    free(buf);
    if (!*out) return eps_error_set(err, EPS_EINVAL, flag, "'%.300s' line %d column %d: %s", path, je.line, je.column, je.text);
    return 0;
}

static int parse_json_arg(const char *flag, const char *text, json_t **out, eps_error *err)
{
    json_error_t je;
    *out = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!*out) return eps_error_set(err, EPS_EINVAL, flag, "invalid JSON at column %d: %s", je.column, je.text);
    return 0;
}

int eps_cli_request(const char *space, const char *arch, const char *matrix, const char *ops, const char *spec,
                    const char *recipe, json_t **out, eps_error *err)
{
    json_t *req = NULL;
    int rc = 0;
    if (spec) {
        rc = eps_cli_json_file("--spec", spec, EPS_CLI_SPEC_MAX, &req, err);
        if (rc) return rc;
        if (!json_is_object(req)) {
            json_decref(req);
            return eps_error_set(err, EPS_EINVAL, "--spec", "'%.300s' must hold a JSON object", spec);
        }
    } else {
        req = json_object();
    }
    if (space && json_object_set_new(req, "space", json_string(space))) rc = EPS_ENOMEM;
    if (!rc && arch) {
        json_t *a = json_string(arch);
        if (!a) rc = eps_error_set(err, EPS_EINVAL, "--arch", "the architecture string is not valid UTF-8");
        else json_object_set_new(req, "arch", a);
    }
    json_t *v;
    if (!rc && matrix) {
        rc = parse_json_arg("--matrix", matrix, &v, err);
        if (!rc) json_object_set_new(req, "matrix", v);
    }
    if (!rc && ops) {
        rc = parse_json_arg("--ops", ops, &v, err);
        if (!rc) json_object_set_new(req, "ops", v);
    }
    if (!rc && recipe) {
        rc = eps_cli_json_file("--recipe", recipe, EPS_CLI_SPEC_MAX, &v, err);
        if (!rc) json_object_set_new(req, "recipe", v);
    }
    /* A --spec file names the architecture only (weights, batch and engine
     * are flags): any other field would be silently ignored, so refuse it. */
    if (!rc && spec && eps_request_check_fields(req, NULL, err) < 0) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "'%.150s': %.300s", spec, err->msg);
        rc = eps_error_set(err, EPS_EINVAL, "--spec", "%s", m);
    }
    if (rc) {
        if (rc == EPS_ENOMEM) eps_error_set(err, rc, "", "out of memory");
        json_decref(req);
        return rc;
    }
    *out = req;
    return 0;
}

void eps_cli_batch_help(FILE *f)
{
    fprintf(f, "  --batch SPEC        the input batch; default: the space's (docs/batches.md):\n");
    for (const eps_space *const *p = eps_space_all(); *p; p++) {
        fprintf(f, "                        %-6s %s", (*p)->name, eps_space_default_batch(*p, NULL));
        for (const eps_space_dataset *d = (*p)->datasets; d && d->dataset; d++)
            fprintf(f, "%s%s %s", d == (*p)->datasets ? "  (dataset " : ", ", d->dataset, d->batch);
        fprintf(f, "%s\n", (*p)->datasets ? ")" : "");
    }
    fprintf(f, "                      SPEC is one of:\n");
    for (const eps_batch_generator *g = eps_batch_generators(); g->prefix; g++)
        fprintf(f, "                        %-16s %s\n", g->usage, g->sentence);
    fprintf(f, "  --batch-size N      images (token streams) B, default 256: the spec generated at B, which for\n"
               "                      every source but ramp and token files is the first B of a larger batch\n"
               "                      (the service's batch_size means the same)\n");
}

void eps_cli_tuple_to_array(char *t)
{
    char *a = t, *b = t + strlen(t);
    while (*a == ' ' || *a == '\t') a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
    if (b - a >= 2 && *a == '(' && b[-1] == ')') *a = '[', b[-1] = ']';
}

int eps_cli_request_encoding(json_t *req, const char *flag, const char *field, const char *text, eps_error *err)
{
    if (!text) return 0;
    char *t = strdup(text);
    if (!t) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    eps_cli_tuple_to_array(t);
    json_t *v;
    int rc = parse_json_arg(flag, t, &v, err);
    free(t);
    if (rc) return rc;
    if (json_object_set_new(req, field, v)) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    return 0;
}
