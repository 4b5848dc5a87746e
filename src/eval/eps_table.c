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

/* The reader's position: text[p..len) still to read, fields unquoted into
 * buf[0..w), each field's start in fields. */
typedef struct {
    const char *text, *name;
    size_t len, p, w;
    char *buf;
    long line;
    offs fields;
    eps_error *err;
} scan;

static int is_end_of_record(const scan *S)
{
    const char *t = S->text;
    return S->p >= S->len || t[S->p] == '\n' || (t[S->p] == '\r' && (S->p + 1 >= S->len || t[S->p + 1] == '\n'));
}

/* A quoted field from its opening quote; *end_record: it ended the record. */
static int scan_quoted(scan *S, int *end_record)
{
    long qline = S->line;
    S->p++;
    for (;;) {
        if (S->p >= S->len) return fail(S->err, EPS_EINVAL, S->name, qline, "unterminated quoted field");
        char c = S->text[S->p];
        if (c == '"') {
            if (S->p + 1 < S->len && S->text[S->p + 1] == '"') {
                S->buf[S->w++] = '"';
                S->p += 2;
                continue;
            }
            S->p++;
            break;
        }
        if (c == '\0') return fail(S->err, EPS_EINVAL, S->name, S->line, "NUL byte (not a text file)");
        if (c == '\n') S->line++;
        S->buf[S->w++] = c;
        S->p++;
    }
    if (S->p < S->len && S->text[S->p] == ',') {
        S->p++;
        return 0;
    }
    if (is_end_of_record(S)) {
        *end_record = 1;
        return 0;
    }
    return fail(S->err, EPS_EINVAL, S->name, S->line, "unexpected character after a closing quote");
}

static int scan_plain(scan *S, int *end_record)
{
    for (;;) {
        if (is_end_of_record(S)) {
            *end_record = 1;
            return 0;
        }
        char c = S->text[S->p];
        if (c == ',') {
            S->p++;
            return 0;
        }
        if (c == '"')
            return fail(S->err, EPS_EINVAL, S->name, S->line,
                        "quote inside an unquoted field (quote the whole field and double inner quotes)");
        if (c == '\0') return fail(S->err, EPS_EINVAL, S->name, S->line, "NUL byte (not a text file)");
        S->buf[S->w++] = c;
        S->p++;
    }
}

/* One record (not blank) starting at S->p on line rec_line: its fields
 * appended to S->fields, their count in *nf. ncols: the header's count, or
 * -1 while reading the header. */
static int scan_record(scan *S, long rec_line, int ncols, int *nf)
{
    size_t rec_start = S->p;
    char msg[128];
    for (*nf = 0;;) { /* one field per iteration */
        if (ncols >= 0 && *nf >= ncols) {
            snprintf(msg, sizeof msg, "more than %d fields (the header has %d)", ncols, ncols);
            return fail(S->err, EPS_EINVAL, S->name, rec_line, msg);
        }
        if (*nf >= EPS_TABLE_MAX_COLS) return fail(S->err, EPS_ELIMIT, S->name, rec_line, "more than 256 columns");
        if (offs_push(&S->fields, S->w) < 0) return fail(S->err, EPS_ENOMEM, S->name, rec_line, "out of memory");
        ++*nf;
        int end_record = 0;
        int rc = S->p < S->len && S->text[S->p] == '"' ? scan_quoted(S, &end_record) : scan_plain(S, &end_record);
        if (rc) return rc;
        S->buf[S->w++] = '\0';
        if (S->p - rec_start > (size_t)EPS_TABLE_MAX_RECORD)
            return fail(S->err, EPS_ELIMIT, S->name, rec_line, "record longer than 1 MiB");
        if (end_record) {
            if (S->p < S->len && S->text[S->p] == '\r') S->p++;
            if (S->p < S->len && S->text[S->p] == '\n') S->p++, S->line++;
            return 0;
        }
        /* A ',' right before the end of the text still opens an empty field. */
    }
}

/* Appends a data record's first line number to lines. */
static int push_line(scan *S, long rec_line, long **lines, size_t *n, size_t *cap)
{
    if ((long)*n >= EPS_TABLE_MAX_ROWS) return fail(S->err, EPS_ELIMIT, S->name, rec_line, "more than 20,000,000 rows");
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        long *nl = realloc(*lines, c * sizeof *nl);
        if (!nl) return fail(S->err, EPS_ENOMEM, S->name, rec_line, "out of memory");
        *lines = nl;
        *cap = c;
    }
    (*lines)[(*n)++] = rec_line;
    return 0;
}

/* Every header column named, no name twice. */
static int check_header(const eps_table *t, eps_error *err)
{
    char msg[256];
    for (int a = 0; a < t->ncols; a++) {
        if (!t->header[a][0]) {
            snprintf(msg, sizeof msg, "header column %d has no name", a + 1);
            return fail(err, EPS_EINVAL, t->name, 1, msg);
        }
        for (int b = 0; b < a; b++)
            if (!strcmp(t->header[a], t->header[b])) {
                snprintf(msg, sizeof msg, "duplicate column name '%.64s' in the header", t->header[a]);
                return fail(err, EPS_EINVAL, t->name, 1, msg);
            }
    }
    return 0;
}

/* All records: the header's field count in *ncols, the data records' first
 * lines in *lines. */
static int scan_all(scan *S, int *ncols, long **lines, size_t *nlines)
{
    size_t caplines = 0;
    char msg[128];
    *ncols = -1;
    while (S->p < S->len) {
        long rec_line = S->line;
        const char *t = S->text;
        /* Blank line (LF or CRLF): skipped. */
        if (t[S->p] == '\n' || (t[S->p] == '\r' && S->p + 1 < S->len && t[S->p + 1] == '\n')) {
            S->p += t[S->p] == '\r' ? 2 : 1;
            S->line++;
            continue;
        }
        int nf, rc = scan_record(S, rec_line, *ncols, &nf);
        if (rc) return rc;
        if (*ncols < 0) {
            *ncols = nf;
            continue;
        }
        if (nf != *ncols) {
            snprintf(msg, sizeof msg, "%d field%s, the header has %d", nf, nf == 1 ? "" : "s", *ncols);
            return fail(S->err, EPS_EINVAL, S->name, rec_line, msg);
        }
        if ((rc = push_line(S, rec_line, lines, nlines, &caplines))) return rc;
    }
    if (*ncols < 0) return fail(S->err, EPS_EINVAL, S->name, 1, "empty file (no header line)");
    return 0;
}

int eps_table_parse(const char *text, size_t len, const char *name, eps_table *t, eps_error *err)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name ? name : "<csv>");
    if (len > (size_t)EPS_TABLE_MAX_BYTES) return fail(err, EPS_ELIMIT, t->name, 0, "file larger than 512 MiB");
    scan S = {.text = text, .name = t->name, .len = len, .line = 1, .err = err};
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) S.p = 3;
    /* Each field gains at most one NUL and quoting only shrinks text. */
    S.buf = malloc(len + 2);
    if (!S.buf) return fail(err, EPS_ENOMEM, t->name, 0, "out of memory");
    long *lines = NULL;
    size_t nlines = 0;
    int ncols;
    int rc = scan_all(&S, &ncols, &lines, &nlines);
    if (rc == 0) {
        t->buf = S.buf, S.buf = NULL;
        t->line = lines, lines = NULL;
        t->ncols = ncols;
        t->nrows = (long)nlines;
        t->header = malloc((size_t)ncols * sizeof(char *));
        t->cells = malloc((nlines ? nlines : 1) * (size_t)ncols * sizeof(char *));
        if (!t->header || !t->cells) rc = fail(err, EPS_ENOMEM, t->name, 0, "out of memory");
    }
    if (rc == 0) {
        for (int c = 0; c < ncols; c++) t->header[c] = t->buf + S.fields.off[c];
        for (size_t i = 0; i < nlines * (size_t)ncols; i++) t->cells[i] = t->buf + S.fields.off[ncols + i];
        rc = check_header(t, err);
    }
    free(S.buf);
    free(lines);
    free(S.fields.off);
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
