/* util_common.c — shared test helpers (see tests/util.h). */
#include "util.h"

#include "epsinas/core/error.h"
#include "epsinas/spaces/space.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

const char *eps_t_root(void)
{
    const char *r = getenv("EPS_ROOT");
    return r && *r ? r : ".";
}

const char *eps_t_shared(void)
{
    static char buf[4096];
    struct stat st;
    const char *e = getenv("EPS_SHARED");
    if (e && *e) {
        snprintf(buf, sizeof buf, "%s/data", e);
        return stat(buf, &st) == 0 ? e : NULL;
    }
    snprintf(buf, sizeof buf, "%s/../shared/data", eps_t_root());
    if (stat(buf, &st) != 0) return NULL;
    snprintf(buf, sizeof buf, "%s/../shared", eps_t_root());
    return buf;
}

char *eps_t_subst_shared(const char *s)
{
    const char *p = strstr(s, "$SHARED");
    if (!p) return strdup(s);
    const char *sh = eps_t_shared();
    if (!sh) return NULL;
    size_t n = strlen(s) + strlen(sh) + 1;
    char *out = malloc(n);
    if (!out) abort();
    snprintf(out, n, "%.*s%s%s", (int)(p - s), s, sh, p + 7);
    return out;
}

void eps_t_shared_file(char *buf, size_t n, const char *rel, const char *why)
{
    const char *sh = eps_t_shared();
    if (!sh) {
        print_message("SKIP: %s\n", why);
        skip();
    }
    snprintf(buf, n, "%s/%s", sh, rel);
}

json_t *eps_t_shared_json(const char *rel, const char *why)
{
    char path[4096];
    eps_t_shared_file(path, sizeof path, rel, why);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) fail_msg("cannot load %s: %s (line %d)", path, je.text, je.line);
    return j;
}

json_t *eps_t_load_json(const char *relpath)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", eps_t_root(), relpath);
    json_error_t e;
    json_t *j = json_load_file(path, JSON_DECODE_ANY, &e);
    if (!j) {
        fprintf(stderr, "cannot load %s: %s (line %d)\n", path, e.text, e.line);
        abort();
    }
    return j;
}

int eps_t_close(double ours, double ref, double rtol, double atol)
{
    if (isnan(ref) || isnan(ours)) return isnan(ref) && isnan(ours);
    return fabs(ours - ref) <= rtol * fabs(ref) + atol;
}

double eps_t_num(const json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

const char *eps_t_bin(void)
{
    const char *b = getenv("EPS_BIN");
    return b && *b ? b : "build/epsinas";
}

/* All of f as a NUL-terminated malloc'd string. */
static char *read_all(FILE *f)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) abort();
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) abort();
        }
    }
    buf[n] = 0;
    return buf;
}

char *eps_t_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = read_all(f);
    fclose(f);
    return s;
}

char *eps_t_run(const char *cmd, int *exit_code)
{
    FILE *f = popen(cmd, "r");
    if (!f) abort();
    char *buf = read_all(f);
    int st = pclose(f);
    if (exit_code) *exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return buf;
}

int eps_t_asan(void)
{
    const char *a = getenv("EPS_ASAN");
    return a && *a && strcmp(a, "0");
}

size_t eps_t_body_write(char *p, size_t sz, size_t n, void *body)
{
    eps_t_body *b = body;
    size_t k = sz * n;
    if (b->len + k > (16u << 20)) return 0;
    char *nb = realloc(b->data, b->len + k + 1);
    if (!nb) return 0;
    memcpy(nb + b->len, p, k);
    b->len += k;
    nb[b->len] = 0;
    b->data = nb;
    return k;
}

void eps_t_write_npy(const char *path, int n, int c, int h, int w)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    char dict[160];
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d, %d, %d), }", n, c,
                      h, w);
    int total = 10 + dl + 1, pad = (16 - total % 16) % 16, hlen = dl + pad + 1; /* header padded to 16 bytes */
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hlen & 0xff, f);
    fputc(hlen >> 8, f);
    fputs(dict, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    for (int i = 0; i < n; i++)
        for (long k = 0; k < (long)c * h * w; k++) {
            float v = (float)i / 8.0f + (float)(k % 7) * 0.01f;
            fwrite(&v, sizeof v, 1, f);
        }
    fclose(f);
}

static void expect_message(const char *name, const char *msg, const json_t *want, int exact)
{
    if (json_is_string(want) && exact) {
        if (strcmp(msg, json_string_value(want))) fail_msg("case '%s':\n got  '%s'\n want '%s'", name, msg, json_string_value(want));
        return;
    }
    if (json_is_string(want)) {
        if (!strstr(msg, json_string_value(want))) fail_msg("case '%s': message '%s' lacks '%s'", name, msg, json_string_value(want));
        return;
    }
    size_t k;
    json_t *sub;
    json_array_foreach(want, k, sub) {
        if (!strstr(msg, json_string_value(sub)))
            fail_msg("case '%s': message '%s' lacks '%s'", name, msg, json_string_value(sub));
    }
}

void eps_t_rejects(const char *relpath, size_t min_cases, int flags)
{
    json_t *d = eps_t_load_json(relpath);
    json_t *cases = json_object_get(d, "cases");
    if (json_array_size(cases) < min_cases)
        fail_msg("%s: %zu cases, want at least %zu", relpath, json_array_size(cases), min_cases);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const json_t *req = json_object_get(c, "request");
        const char *code = json_string_value(json_object_get(c, "code"));
        const char *field = json_string_value(json_object_get(c, "field"));
        eps_arch a;
        memset(&a, 0, sizeof a);
        eps_error e = {0};
        int rc = flags & EPS_T_COMMON_FIELDS ? eps_request_check_fields(req, eps_request_common_fields, &e) : 0;
        if (rc == 0) rc = eps_arch_from_json(req, &a, &e);
        if (rc >= 0) fail_msg("case '%s': accepted", name);
        if (strcmp(eps_error_code_name(rc), code ? code : "invalid_input"))
            fail_msg("case '%s': code %s, want %s (%s)", name, eps_error_code_name(rc), code ? code : "invalid_input", e.msg);
        if (strcmp(e.field, field ? field : "")) fail_msg("case '%s': field '%s', want '%s' (%s)", name, e.field, field, e.msg);
        expect_message(name, e.msg, json_object_get(c, "error"), flags & EPS_T_EXACT);
        if (strchr(e.msg, '\n')) fail_msg("case '%s': the message spans lines: '%s'", name, e.msg);
        if (a.canonical || a.graph.nodes || a.impl) fail_msg("case '%s': the refused arch holds memory", name);
    }
    json_decref(d);
}

int eps_t_tmpdir(char *buf, size_t n, const char *tag)
{
    if ((size_t)snprintf(buf, n, "/tmp/epsinas-test-%s-XXXXXX", tag) >= n) return -1;
    return mkdtemp(buf) ? 0 : -1;
}

int eps_t_rmtree(const char *dir)
{
    if (getenv("EPS_KEEP_TMP")) return 0;
    if (strncmp(dir, "/tmp/epsinas-test-", 18) || strchr(dir, '\'')) return -1; /* never anything else */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}
