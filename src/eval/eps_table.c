/* eps_table.c — the bounded RFC 4180 CSV reader behind `epsinas eval`,
 * `select` and `search` (see include/epsinas/eval/table.h). One pass over the
 * text; every field is unquoted into one owned buffer. */
#include "epsinas/eval/table.h"
#include "epsinas/core/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

void eps_table_free(eps_table *t)
{
    if (!t) return;
    free(t->header);
    free(t->cells);
    free(t->line);
    free(t->buf);
    memset(t, 0, sizeof *t);
}

/* Growable array of field start offsets into buf (offsets, not pointers,
 * so the array can grow before buf pointers are fixed up). */
typedef struct {
    size_t *off;
    size_t n, cap;
} offs;

static int offs_push(offs *o, size_t v)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 1024;
        size_t *p = realloc(o->off, cap * sizeof *p);
        if (!p) return -1;
        o->off = p;
        o->cap = cap;
    }
    o->off[o->n++] = v;
    return 0;
}

static int fail(eps_error *err, int code, const char *name, long line, const char *what)
{
    int rc = eps_error_set(err, code, "csv", "%s:%ld: %s", name, line, what);
    if (err) err->line = line;
    return rc;
}

int eps_table_parse(const char *text, size_t len, const char *name, eps_table *t, eps_error *err)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name ? name : "<csv>");
    name = t->name;
    if (len > (size_t)EPS_TABLE_MAX_BYTES)
        return fail(err, EPS_ELIMIT, name, 0, "file larger than 512 MiB");
    size_t p = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) p = 3;
    /* Each field gains at most one NUL and quoting only shrinks text. */
    char *buf = malloc(len + 2);
    offs fields = {0};
    long *lines = NULL;
    size_t nlines = 0, caplines = 0;
    if (!buf) return fail(err, EPS_ENOMEM, name, 0, "out of memory");
    size_t w = 0;
    long line = 1;
    int ncols = -1;
    char msg[256];
    int rc = 0;

    while (p < len) {
        long rec_line = line;
        size_t rec_start = p;
        /* Blank line (LF or CRLF): skipped. */
        if (text[p] == '\n' || (text[p] == '\r' && p + 1 < len && text[p + 1] == '\n')) {
            p += text[p] == '\r' ? 2 : 1;
            line++;
            continue;
        }
        int nf = 0;
        for (;;) { /* one field per iteration */
            if (ncols >= 0 && nf >= ncols) {
                snprintf(msg, sizeof msg, "more than %d fields (the header has %d)", ncols, ncols);
                rc = fail(err, EPS_EINVAL, name, rec_line, msg);
                goto out;
            }
            if (nf >= EPS_TABLE_MAX_COLS) {
                rc = fail(err, EPS_ELIMIT, name, rec_line, "more than 256 columns");
                goto out;
            }
            if (offs_push(&fields, w) < 0) {
                rc = fail(err, EPS_ENOMEM, name, rec_line, "out of memory");
                goto out;
            }
            nf++;
            int end_record = 0;
            if (p < len && text[p] == '"') {
                long qline = line;
                p++;
                for (;;) {
                    if (p >= len) {
                        rc = fail(err, EPS_EINVAL, name, qline, "unterminated quoted field");
                        goto out;
                    }
                    char c = text[p];
                    if (c == '"') {
                        if (p + 1 < len && text[p + 1] == '"') {
                            buf[w++] = '"';
                            p += 2;
                            continue;
                        }
                        p++;
                        break;
                    }
                    if (c == '\0') {
                        rc = fail(err, EPS_EINVAL, name, line, "NUL byte (not a text file)");
                        goto out;
                    }
                    if (c == '\n') line++;
                    buf[w++] = c;
                    p++;
                }
                if (p < len && text[p] == ',') {
                    p++;
                } else if (p >= len || text[p] == '\n') {
                    end_record = 1;
                } else if (text[p] == '\r' && (p + 1 >= len || text[p + 1] == '\n')) {
                    end_record = 1;
                } else {
                    rc = fail(err, EPS_EINVAL, name, line, "unexpected character after a closing quote");
                    goto out;
                }
            } else {
                for (;;) {
                    if (p >= len) { end_record = 1; break; }
                    char c = text[p];
                    if (c == ',') { p++; break; }
                    if (c == '\n') { end_record = 1; break; }
                    if (c == '\r' && (p + 1 >= len || text[p + 1] == '\n')) { end_record = 1; break; }
                    if (c == '"') {
                        rc = fail(err, EPS_EINVAL, name, line,
                                  "quote inside an unquoted field (quote the whole field and double inner quotes)");
                        goto out;
                    }
                    if (c == '\0') {
                        rc = fail(err, EPS_EINVAL, name, line, "NUL byte (not a text file)");
                        goto out;
                    }
                    buf[w++] = c;
                    p++;
                }
            }
            buf[w++] = '\0';
            if (p - rec_start > (size_t)EPS_TABLE_MAX_RECORD) {
                rc = fail(err, EPS_ELIMIT, name, rec_line, "record longer than 1 MiB");
                goto out;
            }
            if (end_record) {
                if (p < len && text[p] == '\r') p++;
                if (p < len && text[p] == '\n') {
                    p++;
                    line++;
                }
                break;
            }
            /* A ',' right before the end of the text still opens an empty field. */
        }
        if (ncols < 0) {
            ncols = nf;
        } else {
            if (nf != ncols) {
                snprintf(msg, sizeof msg, "%d field%s, the header has %d", nf, nf == 1 ? "" : "s", ncols);
                rc = fail(err, EPS_EINVAL, name, rec_line, msg);
                goto out;
            }
            if ((long)nlines >= EPS_TABLE_MAX_ROWS) {
                rc = fail(err, EPS_ELIMIT, name, rec_line, "more than 20,000,000 rows");
                goto out;
            }
            if (nlines == caplines) {
                size_t cap = caplines ? caplines * 2 : 1024;
                long *nl = realloc(lines, cap * sizeof *nl);
                if (!nl) {
                    rc = fail(err, EPS_ENOMEM, name, rec_line, "out of memory");
                    goto out;
                }
                lines = nl;
                caplines = cap;
            }
            lines[nlines++] = rec_line;
        }
    }
    if (ncols < 0) {
        rc = fail(err, EPS_EINVAL, name, 1, "empty file (no header line)");
        goto out;
    }

    t->buf = buf;
    t->ncols = ncols;
    t->nrows = (long)nlines;
    t->line = lines;
    t->header = malloc((size_t)ncols * sizeof(char *));
    t->cells = malloc((nlines ? nlines : 1) * (size_t)ncols * sizeof(char *));
    buf = NULL;
    lines = NULL;
    if (!t->header || !t->cells) {
        rc = fail(err, EPS_ENOMEM, name, 0, "out of memory");
        goto out;
    }
    for (int c = 0; c < ncols; c++) t->header[c] = t->buf + fields.off[c];
    for (size_t i = 0; i < nlines * (size_t)ncols; i++) t->cells[i] = t->buf + fields.off[ncols + i];
    for (int a = 0; a < ncols; a++) {
        if (!t->header[a][0]) {
            snprintf(msg, sizeof msg, "header column %d has no name", a + 1);
            rc = fail(err, EPS_EINVAL, name, 1, msg);
            goto out;
        }
        for (int b = 0; b < a; b++)
            if (!strcmp(t->header[a], t->header[b])) {
                snprintf(msg, sizeof msg, "duplicate column name '%.64s' in the header", t->header[a]);
                rc = fail(err, EPS_EINVAL, name, 1, msg);
                goto out;
            }
    }

out:
    free(buf);
    free(lines);
    free(fields.off);
    if (rc < 0) {
        char keep[sizeof t->name];
        memcpy(keep, t->name, sizeof keep);
        eps_table_free(t);
        memcpy(t->name, keep, sizeof keep);
    }
    return rc;
}

int eps_table_read(const char *path, eps_table *t, eps_error *err)
{
    memset(t, 0, sizeof *t);
    char *text;
    size_t n;
    int rc0 = eps_read_file(path, (size_t)EPS_TABLE_MAX_BYTES, "csv", &text, &n, err);
    if (rc0) return rc0;
    int rc = eps_table_parse(text, n, path, t, err);
    free(text);
    return rc;
}

int eps_table_col(const eps_table *t, const char *name)
{
    for (int c = 0; c < t->ncols; c++)
        if (!strcmp(t->header[c], name)) return c;
    return -1;
}

const char *eps_table_cell(const eps_table *t, long row, int col)
{
    if (row < 0 || row >= t->nrows || col < 0 || col >= t->ncols) return "";
    return t->cells[row * t->ncols + col];
}

int eps_table_number(const char *s, double *out)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n == 0) {
        *out = NAN;
        return 1;
    }
    char tmp[64];
    if (n >= sizeof tmp) return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (!strcasecmp(tmp, "nan") || !strcasecmp(tmp, "null") || !strcasecmp(tmp, "na") ||
        !strcasecmp(tmp, "-nan")) {
        *out = NAN;
        return 1;
    }
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (end == tmp || *end) return -1;
    /* strtod accepts "nan(...)" and hex; only plain decimal/inf are numbers here. */
    if (isnan(v)) return -1;
    *out = v;
    return 0;
}

FILE *eps_table_open_out(const char *path, eps_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f) eps_error_set(err, EPS_EIO, "", "cannot write %s: %s", path, strerror(errno));
    return f;
}

int eps_table_close_out(FILE *f, const char *path, eps_error *err)
{
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    return bad ? eps_error_set(err, EPS_EIO, "", "error writing %s", path) : 0;
}
