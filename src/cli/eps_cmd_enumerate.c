/* eps_cmd_enumerate.c — `epsinas enumerate`: every distinct cell of a space,
 * once, in the documented order (nb101: nb101_enum.h; nb201: the sweep's
 * index order), as CSV 'index,hash,arch' or as request lines that
 * `sweep --archs` takes as they are. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "eps_cli_common.h"
#include "epsinas/spaces/nb101_enum.h"
#include "epsinas/spaces/nb201.h"
#include "epsinas/spaces/space.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: epsinas enumerate --space nb101|nb201 [--format csv|requests] [--out FILE]\n\n"
            "Lists every distinct cell of the space exactly once, in a stable order.\n"
            "  nb101  423,624 cells (NAS-Bench-101's generate_graphs: 2..7 vertices, <= 9 edges, every\n"
            "         vertex on an input->output path, deduplicated by the module hash); order: vertex\n"
            "         count, then NAS-Bench-101's matrix bits (edge (x,y) = bit x + y(y-1)/2), then the\n"
            "         labelling (vertex 1 most significant; conv3x3, conv1x1, maxpool); first occurrence wins\n"
            "  nb201  15,625 cells; index i has op (i / 5^e) %% 5 on edge e (see epsinas sweep --help)\n"
            "  --format csv       'index,hash,arch' with a header; arch is the text 'sweep --all' writes\n"
            "                     (nb101: the canonical {\"matrix\":...,\"ops\":...}; nb201: the cell string)\n"
            "  --format requests  one JSON request per line, {\"space\":...,...}; feed to sweep --archs\n"
            "  --out FILE         default: standard output\n");
}

static void csv_quote(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    char buf[2048];
    size_t k = 0;
    buf[k++] = '"';
    for (; *s && k + 4 < sizeof buf; s++) {
        if (*s == '"') buf[k++] = '"';
        buf[k++] = *s;
    }
    buf[k++] = '"';
    fwrite(buf, 1, k, f);
}

/* One output line for (index, hash, arch text, request object text). */
static void put(FILE *f, int csv, long i, const char *hash, const char *arch, const char *req)
{
    if (csv) {
        fprintf(f, "%ld,%s,", i, hash);
        csv_quote(f, arch);
        fputc('\n', f);
    } else {
        fprintf(f, "%s\n", req);
    }
}

static int enum_nb101(FILE *f, int csv, eps_error *err)
{
    eps_nb101_cell *cells;
    long n;
    int rc = eps_nb101_enumerate(EPS_NB101_MAX_VERTICES, 0, &cells, &n, err);
    if (rc) return rc;
    for (long i = 0; i < n && !rc; i++) {
        char *canon = eps_nb101_canonical(&cells[i].spec);
        if (!canon) {
            rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory");
            break;
        }
        /* canonical is {"matrix":...}: the request is the same object with the space first */
        char req[600];
        snprintf(req, sizeof req, "{\"space\":\"nb101\",%s", canon + 1);
        put(f, csv, i, cells[i].hash, canon, req);
        free(canon);
    }
    free(cells);
    return rc;
}

static int enum_nb201(FILE *f, int csv, eps_error *err)
{
    for (int i = 0; i < EPS_NB201_COUNT; i++) {
        eps_nb201_cell c;
        char s[EPS_NB201_STR_MAX];
        eps_nb201_from_index(i, &c);
        eps_nb201_format(&c, s);
        json_t *req = json_pack("{s:s, s:s}", "space", "nb201", "arch", s);
        eps_arch a;
        int rc = req ? eps_arch_from_json(req, &a, err) : eps_error_set(err, EPS_ENOMEM, "", "out of memory");
        if (rc) {
            json_decref(req);
            return rc;
        }
        char *rt = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(req);
        if (!rt) {
            eps_arch_free(&a);
            return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
        }
        put(f, csv, i, a.hash, s, rt);
        free(rt);
        eps_arch_free(&a);
    }
    return 0;
}

int eps_cmd_enumerate(int argc, char **argv)
{
    const char *space = NULL, *format = "csv", *out = NULL;
    const eps_cli_opt specs[] = {{"--space", 1, &space, NULL}, {"--format", 1, &format, NULL},
                                 {"--out", 1, &out, NULL},     {NULL, 0, NULL, NULL}};
    int prc = eps_cli_parse_opts("enumerate", argc, argv, specs, usage, NULL);
    if (prc >= 0) return prc;
    eps_error err = {0};
    if (!space) eps_error_set(&err, EPS_EINVAL, "--space", "missing --space (nb101 or nb201)");
    else if (strcmp(space, "nb101") && strcmp(space, "nb201"))
        eps_error_set(&err, EPS_EINVAL, "--space", "cannot enumerate space '%.40s' (nb101 or nb201)", space);
    else if (strcmp(format, "csv") && strcmp(format, "requests"))
        eps_error_set(&err, EPS_EINVAL, "--format", "expected 'csv' or 'requests', got '%.40s'", format);
    if (err.code) return eps_cli_fail("enumerate", &err);
    /* write to a temporary and rename: a failed run leaves no partial list */
    char tmp[4200];
    FILE *f = stdout;
    if (out) {
        snprintf(tmp, sizeof tmp, "%.4000s.tmp", out);
        f = fopen(tmp, "w");
        if (!f) {
            eps_error_set(&err, EPS_EIO, "--out", "cannot open '%.300s': %s", tmp, strerror(errno));
            return eps_cli_fail("enumerate", &err);
        }
    }
    int csv = !strcmp(format, "csv");
    if (csv) fputs("index,hash,arch\n", f);
    int rc = !strcmp(space, "nb101") ? enum_nb101(f, csv, &err) : enum_nb201(f, csv, &err);
    if (fflush(f) || ferror(f)) {
        if (!rc) rc = eps_error_set(&err, EPS_EIO, "--out", "write failed: %s", strerror(errno));
    }
    if (out) {
        if (fclose(f) && !rc) rc = eps_error_set(&err, EPS_EIO, "--out", "write failed: %s", strerror(errno));
        if (!rc && rename(tmp, out))
            rc = eps_error_set(&err, EPS_EIO, "--out", "cannot rename to '%.300s': %s", out, strerror(errno));
        if (rc) remove(tmp);
    }
    return rc ? eps_cli_fail("enumerate", &err) : 0;
}
