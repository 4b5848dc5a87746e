/* eps_cli_common.c — argument parsing, error reporting and output helpers
 * shared by the CLI subcommands. */
#include "eps_cli_common.h"

#include "epsinas/spaces/space.h"
#include "epsinas/core/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPS_CLI_SPEC_MAX (16L << 20)

int eps_cli_exit_code(int code)
{
    switch (code) {
    case EPS_OK: return 0;
    case EPS_EINVAL:
    case EPS_ELIMIT:
    case EPS_EIO: return 2;
    case EPS_ECANCELED: return 130;
    default: return 1; /* EPS_ENOMEM, EPS_EINTERNAL, anything unknown */
    }
}

int eps_cli_fail(const char *cmd, const eps_error *err)
{
    if (err->field[0]) fprintf(stderr, "epsinas %s: %s: %s\n", cmd, err->field, err->msg);
    else fprintf(stderr, "epsinas %s: %s\n", cmd, err->msg);
    return eps_cli_exit_code(err->code ? err->code : EPS_EINTERNAL);
}

int eps_cli_int(const char *flag, const char *s, long lo, long hi, long *out, eps_error *err)
{
    if (!s) return 0;
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
    if (!s) return 0;
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

int eps_cli_engine(const char *s, eps_engine_kind *out, eps_error *err)
{
    if (!s || !eps_engine_parse(s, out)) return 0;
    return eps_error_set(err, EPS_EINVAL, "--engine", "expected 'fast' or 'dense', got '%.40s'", s);
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

int eps_cli_request_dataset(json_t *req, const char *name, eps_error *err)
{
    if (!name) return 0;
    const char *sn = json_string_value(json_object_get(req, "space"));
    const eps_space *s = eps_space_find(sn);
    char names[128];
    eps_space_dataset_names(s, names, sizeof names);
    if (s && !s->datasets)
        return eps_error_set(err, EPS_EINVAL, "--dataset", "space '%s' has no datasets (--dataset is for nb201)", s->name);
    if (s && !eps_space_dataset_find(s, name))
        return eps_error_set(err, EPS_EINVAL, "--dataset", "unknown dataset '%.40s' for space %s (expected one of %s)",
                             name, s->name, names);
    json_t *v = json_string(name);
    if (!v) return eps_error_set(err, EPS_EINVAL, "--dataset", "the dataset name is not valid UTF-8");
    json_object_set_new(req, "dataset", v);
    return 0;
}

void eps_cli_dataset_help(FILE *f)
{
    for (const eps_space *const *p = eps_space_all(); *p; p++) {
        if (!(*p)->datasets) continue;
        fprintf(f, "  --dataset NAME      %s network for dataset NAME (default %s):\n", (*p)->name, (*p)->datasets[0].dataset);
        for (const eps_space_dataset *d = (*p)->datasets; d->dataset; d++)
            fprintf(f, "                        %-15s input %dx%dx%d (%d classes; the network has one output)\n",
                    d->dataset, d->c, d->h, d->w, d->classes);
        fprintf(f, "                      generated batches are drawn at the input shape; a file batch must have it\n");
    }
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

/* ---- the evaluation commands' helpers ---------------------------------- */

int eps_cli_report(const char *cmd, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
    fprintf(stderr, "epsinas %s: %s\n", cmd, msg);
    return eps_cli_exit_code(code ? code : EPS_EINTERNAL);
}

int eps_cli_report_err(const char *cmd, const eps_error *e)
{
    return eps_cli_report(cmd, e->code ? e->code : EPS_EINTERNAL, "%s", e->msg[0] ? e->msg : "error");
}

int eps_cli_parse_opts(const char *cmd, int argc, char **argv, const eps_cli_opt *specs, void (*help)(FILE *),
                       int *npos)
{
    int np = 0, only_pos = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!only_pos && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            help(stdout);
            return 0;
        }
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (only_pos || strncmp(a, "--", 2) != 0) {
            if (!npos)
                return eps_cli_report(cmd, EPS_EINVAL, "unexpected argument '%.80s' (options start with --; try --help)",
                                      a);
            argv[++np] = a; /* never past i: the slots before it are read */
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const eps_cli_opt *s = NULL;
        for (int k = 0; specs[k].name; k++)
            if (strlen(specs[k].name) == nlen && !strncmp(specs[k].name, a, nlen)) s = &specs[k];
        if (!s)
            return eps_cli_report(cmd, EPS_EINVAL, "unknown option '%.*s' (try --help)", (int)(nlen > 60 ? 60 : nlen), a);
        if (s->has_arg) {
            if (eq) {
                *s->val = eq + 1;
            } else {
                if (i + 1 >= argc) return eps_cli_report(cmd, EPS_EINVAL, "option %s needs a value", s->name);
                *s->val = argv[++i];
            }
        } else {
            if (eq) return eps_cli_report(cmd, EPS_EINVAL, "option %s takes no value", s->name);
            *s->flag = 1;
        }
    }
    if (npos) *npos = np;
    return -1;
}

int eps_cli_parse_long(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return eps_cli_report(cmd, EPS_EINVAL, "%s must be an integer in %ld..%ld, got '%.40s'", flag, lo, hi, s);
    *out = v;
    return 0;
}

int eps_cli_parse_u64(const char *cmd, const char *flag, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || *s == '-')
        return eps_cli_report(cmd, EPS_EINVAL, "%s must be a non-negative integer, got '%.40s'", flag, s);
    *out = v;
    return 0;
}

json_t *eps_cli_jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

void eps_cli_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17) | JSON_PRESERVE_ORDER);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
}

void eps_cli_fmt_stat(char *buf, size_t n, double v, const char *fmt)
{
    if (isnan(v)) snprintf(buf, n, "n/a");
    else snprintf(buf, n, fmt, v);
}
