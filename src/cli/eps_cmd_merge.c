/* eps_cmd_merge.c — `epsinas merge`: joins the CSVs of a sharded sweep
 * (`sweep --shard K/N`) into one, sorted by the global index, and checks
 * that every index 0..count-1 appears exactly once. Owns no state beyond
 * the lines it reads; the output is written to a temporary and renamed, so
 * a failed merge never leaves a partial file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eps_cli_common.h"

#define MERGE_HEADER "index,arch,epsilon,nan_reason,params,macs\n"
#define MERGE_MAX_ROWS 50000000L
#define MERGE_LIST 10 /* indices named in an error */

typedef struct mline {
    long index;
    char *text; /* the whole line with its newline; owned */
} mline;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: epsinas merge --out FILE.csv [--count N] SHARD.csv...\n\n"
            "Merges sweep CSVs (e.g. the shards of 'epsinas sweep --shard K/N') into FILE.csv, rows\n"
            "sorted by index, one header. Every index 0..N-1 must appear exactly once (N = --count, else\n"
            "the largest index + 1); otherwise exits 2 naming the missing or duplicate indices.\n");
}

static int cmp_line(const void *a, const void *b)
{
    const mline *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

/* Appends the rows of one shard to *v. */
static int read_shard(const char *path, mline **v, long *n, long *cap, eps_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f) return eps_error_set(err, EPS_EIO, "", "cannot open '%.300s': %s", path, strerror(errno));
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        if (line[len - 1] != '\n') {
            rc = eps_error_set(err, EPS_EINVAL, "", "%.300s:%ld: incomplete last line (an interrupted sweep: re-run it to resume)",
                               path, lineno);
            break;
        }
        if (lineno == 1) {
            if (strcmp(line, MERGE_HEADER)) {
                rc = eps_error_set(err, EPS_EINVAL, "", "%.300s: not an epsinas sweep CSV (header differs)", path);
                break;
            }
            continue;
        }
        char *end;
        errno = 0;
        long idx = strtol(line, &end, 10);
        if (errno || end == line || *end != ',' || idx < 0 || line[0] == '-' || line[0] == '+') {
            rc = eps_error_set(err, EPS_EINVAL, "", "%.300s:%ld: row does not start with an index", path, lineno);
            break;
        }
        if (*n >= MERGE_MAX_ROWS) {
            rc = eps_error_set(err, EPS_ELIMIT, "", "more than %ld rows", MERGE_MAX_ROWS);
            break;
        }
        if (*n == *cap) {
            long nc = *cap ? *cap * 2 : 4096;
            mline *nv = realloc(*v, sizeof *nv * (size_t)nc);
            if (!nv) {
                rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory");
                break;
            }
            *v = nv;
            *cap = nc;
        }
        (*v)[*n].index = idx;
        (*v)[*n].text = strdup(line);
        if (!(*v)[*n].text) {
            rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory");
            break;
        }
        (*n)++;
    }
    if (!rc && lineno == 0) rc = eps_error_set(err, EPS_EINVAL, "", "%.300s is empty (no header)", path);
    free(line);
    fclose(f);
    return rc;
}

/* Appends " i" to a bounded list; counts the rest. */
static void note(char *buf, size_t cap, int *k, long i)
{
    if (*k < MERGE_LIST) {
        size_t p = strlen(buf);
        snprintf(buf + p, cap - p, "%s%ld", *k ? ", " : "", i);
    }
    (*k)++;
}

/* After sorting: every index 0..count-1 exactly once. */
static int check_indices(const mline *v, long n, long count, eps_error *err)
{
    char miss[256] = "", dup[256] = "";
    int nmiss = 0, ndup = 0;
    long want = 0;
    for (long i = 0; i < n; i++) {
        long idx = v[i].index;
        if (i > 0 && idx == v[i - 1].index) {
            if (i < 2 || v[i - 2].index != idx) note(dup, sizeof dup, &ndup, idx);
            continue;
        }
        if (idx >= count) {
            return eps_error_set(err, EPS_EINVAL, "--count", "index %ld is beyond --count %ld", idx, count);
        }
        for (; want < idx; want++) note(miss, sizeof miss, &nmiss, want);
        want = idx + 1;
    }
    for (; want < count; want++) note(miss, sizeof miss, &nmiss, want);
    if (!nmiss && !ndup) return 0;
    char m[600] = "";
    if (nmiss)
        snprintf(m, sizeof m, "%d missing ind%s: %s%s", nmiss, nmiss == 1 ? "ex" : "ices", miss,
                 nmiss > MERGE_LIST ? ", ..." : "");
    if (ndup) {
        size_t p = strlen(m);
        snprintf(m + p, sizeof m - p, "%s%d duplicate ind%s: %s%s", nmiss ? "; " : "", ndup, ndup == 1 ? "ex" : "ices", dup,
                 ndup > MERGE_LIST ? ", ..." : "");
    }
    return eps_error_set(err, EPS_EINVAL, "", "%s", m);
}

static int write_out(const char *out, const mline *v, long n, eps_error *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%.4000s.tmp", out);
    FILE *f = fopen(tmp, "w");
    if (!f) return eps_error_set(err, EPS_EIO, "--out", "cannot open '%.300s': %s", tmp, strerror(errno));
    fputs(MERGE_HEADER, f);
    for (long i = 0; i < n; i++) fputs(v[i].text, f);
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, out)) {
        remove(tmp);
        return eps_error_set(err, EPS_EIO, "--out", "cannot write '%.300s': %s", out, strerror(errno));
    }
    return 0;
}

int eps_cmd_merge(int argc, char **argv)
{
    const char *out = NULL, *count_s = NULL;
    const eps_cli_opt specs[] = {{"--out", 1, &out, NULL}, {"--count", 1, &count_s, NULL}, {NULL, 0, NULL, NULL}};
    int nfiles = 0, prc = eps_cli_parse_opts("merge", argc, argv, specs, usage, &nfiles);
    if (prc >= 0) return prc;
    long count = -1;
    eps_error err = {0};
    if (eps_cli_int("--count", count_s, 1, MERGE_MAX_ROWS, &count, &err)) return eps_cli_fail("merge", &err);
    if (!out) eps_error_set(&err, EPS_EINVAL, "--out", "missing --out FILE.csv");
    else if (nfiles == 0) eps_error_set(&err, EPS_EINVAL, "", "no shard CSVs given");
    if (err.code) return eps_cli_fail("merge", &err);
    mline *v = NULL;
    long n = 0, cap = 0;
    int rc = 0;
    for (int i = 1; i <= nfiles && !rc; i++) rc = read_shard(argv[i], &v, &n, &cap, &err);
    if (!rc) {
        qsort(v, (size_t)n, sizeof *v, cmp_line);
        if (count < 0) count = n ? v[n - 1].index + 1 : 0;
        if (count == 0) rc = eps_error_set(&err, EPS_EINVAL, "", "the shards hold no rows");
        else rc = check_indices(v, n, count, &err);
    }
    if (!rc) rc = write_out(out, v, n, &err);
    for (long i = 0; i < n; i++) free(v[i].text);
    free(v);
    if (rc) return eps_cli_fail("merge", &err);
    fprintf(stderr, "merge: %ld rows from %d files -> %s\n", n, nfiles, out);
    return 0;
}
