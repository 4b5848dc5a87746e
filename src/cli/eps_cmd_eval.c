/* eps_cmd_eval.c — the evaluation subcommands: `epsinas eval` (the paper's
 * correlation table, spec §6), `select` (Table 3), `search` (random search
 * and ageing evolution with an epsinas warm-up over a look-up table) and
 * `search-weights` (which constant pair (w1, w2) to use), plus their SVG
 * plots. The numbers come from eps_eval.c; this file owns argument parsing,
 * joining score and truth tables, scoring through the library, and output. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "epsinas/core/batch.h"
#include "epsinas/engine/engine.h"
#include "epsinas/eval/eval.h"
#include "epsinas/spaces/nb201.h"
#include "epsinas/core/score.h"
#include "epsinas/spaces/space.h"
#include "epsinas/eval/table.h"

/* ======================================================================
 * small helpers
 * ====================================================================== */

/* Prints "epsinas CMD: message" as ONE line (control characters from file
 * contents become spaces) and returns the exit code for err's class. */
static int report(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int report(const char *cmd, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
    fprintf(stderr, "epsinas %s: %s\n", cmd, msg);
    return code == EPS_ENOMEM || code == EPS_EINTERNAL ? 1 : 2;
}

static int report_err(const char *cmd, const eps_error *e)
{
    return report(cmd, e->code ? e->code : EPS_EINTERNAL, "%s", e->msg[0] ? e->msg : "error");
}

/* One command-line option: "--name VALUE", "--name=VALUE" or a flag. */
typedef struct {
    const char *name;
    int has_arg;
    const char **val; /* has_arg: set to the value */
    int *flag;        /* !has_arg: set to 1 */
} opt_spec;

/* Returns -1 when parsed, else the exit code (0 after --help, 2 on error). */
static int parse_opts(const char *cmd, int argc, char **argv, const opt_spec *specs, void (*help)(FILE *))
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help(stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0)
            return report(cmd, EPS_EINVAL, "unexpected argument '%.80s' (options start with --; try --help)", a);
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const opt_spec *s = NULL;
        for (int k = 0; specs[k].name; k++)
            if (strlen(specs[k].name) == nlen && !strncmp(specs[k].name, a, nlen)) s = &specs[k];
        if (!s) return report(cmd, EPS_EINVAL, "unknown option '%.*s' (try --help)", (int)(nlen > 60 ? 60 : nlen), a);
        if (s->has_arg) {
            if (eq) {
                *s->val = eq + 1;
            } else {
                if (i + 1 >= argc) return report(cmd, EPS_EINVAL, "option %s needs a value", s->name);
                *s->val = argv[++i];
            }
        } else {
            if (eq) return report(cmd, EPS_EINVAL, "option %s takes no value", s->name);
            *s->flag = 1;
        }
    }
    return -1;
}

/* Parses an integer option in [lo, hi]; returns 0 or prints and returns 2. */
static int parse_long(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return report(cmd, EPS_EINVAL, "%s must be an integer in %ld..%ld, got '%.40s'", flag, lo, hi, s);
    *out = v;
    return 0;
}

static int parse_u64(const char *cmd, const char *flag, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || *s == '-')
        return report(cmd, EPS_EINVAL, "%s must be a non-negative integer, got '%.40s'", flag, s);
    *out = v;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : n;
}

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17) | JSON_PRESERVE_ORDER);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
}

/* Lists a table's columns for "no column X" messages. */
static void list_columns(const eps_table *t, char *buf, size_t n)
{
    buf[0] = 0;
    for (int c = 0; c < t->ncols && strlen(buf) + 4 < n; c++) {
        if (c) strncat(buf, ", ", n - strlen(buf) - 1);
        strncat(buf, t->header[c], n - strlen(buf) - 1);
    }
}

/* Finds column name; returns -1, or prints and returns the exit code. */
static int need_col(const char *cmd, const eps_table *t, const char *name, const char *flag, int *col)
{
    *col = eps_table_col(t, name);
    if (*col >= 0) return -1;
    char cols[300];
    list_columns(t, cols, sizeof cols);
    return report(cmd, EPS_EINVAL, "%s: no column '%.60s'%s%s (columns: %s)", t->name, name, flag ? "; use " : "",
                  flag ? flag : "", cols);
}

/* ======================================================================
 * string map: join key -> row
 * ====================================================================== */

typedef struct {
    const char **key;
    long *row;
    size_t cap; /* power of two */
} strmap;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static int strmap_init(strmap *m, long n)
{
    size_t cap = 16;
    while (cap < (size_t)n * 2 + 16) cap *= 2;
    m->key = calloc(cap, sizeof *m->key);
    m->row = malloc(cap * sizeof *m->row);
    m->cap = cap;
    return m->key && m->row ? 0 : -1;
}

static void strmap_free(strmap *m)
{
    free(m->key);
    free(m->row);
    memset(m, 0, sizeof *m);
}

/* Returns the row already stored under key, or inserts row and returns -1. */
static long strmap_put(strmap *m, const char *key, long row)
{
    size_t i = (size_t)fnv1a(key) & (m->cap - 1);
    while (m->key[i]) {
        if (!strcmp(m->key[i], key)) return m->row[i];
        i = (i + 1) & (m->cap - 1);
    }
    m->key[i] = key;
    m->row[i] = row;
    return -1;
}

static long strmap_get(const strmap *m, const char *key)
{
    size_t i = (size_t)fnv1a(key) & (m->cap - 1);
    while (m->key[i]) {
        if (!strcmp(m->key[i], key)) return m->row[i];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

/* Join key of a cell. With by_index the cell is an integer, normalised
 * ("007" = "7"). A value that looks like a JSON object (NAS-Bench-NLP
 * recipes) is re-serialised compact with sorted keys, so key order and
 * spacing do not matter. Returns a malloc'd string (caller frees) or NULL
 * when an index is not an integer (or out of memory). */
static char *join_key(const char *cell, int by_index)
{
    if (by_index) {
        char *end;
        errno = 0;
        long long v = strtoll(cell, &end, 10);
        while (*end == ' ') end++;
        if (!*cell || *end || errno) return NULL;
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", v);
        return strdup(buf);
    }
    const char *p = cell;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p == '{') {
        json_error_t je;
        json_t *j = json_loads(p, JSON_REJECT_DUPLICATES, &je);
        if (j && json_is_object(j)) {
            char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
            json_decref(j);
            if (s) return s;
        } else if (j) {
            json_decref(j);
        }
    }
    return strdup(cell);
}

/* ======================================================================
 * the join of a scores table with a truth table
 * ====================================================================== */

typedef struct {
    /* inputs */
    const char *scores_path, *truth_path;
    const char *scores_key, *truth_key; /* NULL: "arch" (or "index" with by_index) */
    const char *score_col;              /* NULL: "epsilon" */
    const char *target;                 /* NULL: first numeric column after the arch column */
    int by_index;
    /* outputs */
    eps_table st, tt;
    const char *target_name;
    long n;                        /* matched truth rows */
    double *score, *target_v;      /* n each */
    long *trow;                    /* truth row of each matched row */
    long n_scores, n_truth;        /* data rows */
    long unmatched_scores;         /* distinct score keys no truth row has */
    long unmatched_truth;          /* truth rows without a score */
    long dup_truth;                /* truth rows whose key an earlier truth row has */
    long first_unmatched_score, first_unmatched_truth;
} eval_join;

static void join_free(eval_join *j)
{
    eps_table_free(&j->st);
    eps_table_free(&j->tt);
    free(j->score);
    free(j->target_v);
    free(j->trow);
    j->score = j->target_v = NULL;
    j->trow = NULL;
}

/* Is every non-empty cell of column c a number, with at least one non-NaN? */
static int column_numeric(const eps_table *t, int c)
{
    int any = 0;
    for (long r = 0; r < t->nrows; r++) {
        double v;
        int k = eps_table_number(eps_table_cell(t, r, c), &v);
        if (k < 0) return 0;
        if (k == 0) any = 1;
    }
    return any;
}

/* The target column: want, or the first numeric one after 'arch' (else
 * after the key column). Returns -1, or prints and returns the exit code. */
static int pick_target(const char *cmd, const eps_table *t, const char *want, int key_col, int *col)
{
    if (want) return need_col(cmd, t, want, NULL, col);
    int after = eps_table_col(t, "arch");
    if (after < 0) after = key_col;
    for (int c = after + 1; c < t->ncols; c++) {
        if (!strcmp(t->header[c], "index") || !strcmp(t->header[c], "arch") || c == key_col) continue;
        if (column_numeric(t, c)) {
            *col = c;
            return -1;
        }
    }
    return report(cmd, EPS_EINVAL, "%s: no numeric column after '%s' to use as the target; name one with --target",
                  t->name, t->header[after]);
}

/* Reads both tables and joins them (truth-row driven: every truth row whose
 * key has a score is one matched row, so duplicate truth rows (NLP recipes
 * trained twice) each count). Returns -1 on success, else an exit code
 * (message printed). */
static int join_load(const char *cmd, eval_join *j)
{
    eps_error e = {0};
    if (!j->scores_path) return report(cmd, EPS_EINVAL, "missing --scores FILE (a CSV written by 'epsinas sweep')");
    if (!j->truth_path) return report(cmd, EPS_EINVAL, "missing --truth FILE (a CSV with the trained accuracy/loss)");
    if (eps_table_read(j->scores_path, &j->st, &e) < 0) return report_err(cmd, &e);
    if (eps_table_read(j->truth_path, &j->tt, &e) < 0) return report_err(cmd, &e);
    j->n_scores = j->st.nrows;
    j->n_truth = j->tt.nrows;
    if (j->st.nrows == 0) return report(cmd, EPS_EINVAL, "%s: header only, no rows", j->st.name);
    if (j->tt.nrows == 0) return report(cmd, EPS_EINVAL, "%s: header only, no rows", j->tt.name);
    const char *defkey = j->by_index ? "index" : "arch";
    int sk, tk, sc, tc;
    int rc;
    if ((rc = need_col(cmd, &j->st, j->scores_key ? j->scores_key : defkey,
                       j->by_index ? NULL : "--scores-arch-column NAME", &sk)) >= 0) return rc;
    if ((rc = need_col(cmd, &j->st, j->score_col ? j->score_col : "epsilon", j->score_col ? NULL : "--score-column NAME",
                       &sc)) >= 0) return rc;
    if ((rc = need_col(cmd, &j->tt, j->truth_key ? j->truth_key : defkey,
                       j->by_index ? NULL : "--truth-arch-column NAME", &tk)) >= 0) return rc;
    if ((rc = pick_target(cmd, &j->tt, j->target, tk, &tc)) >= 0) return rc;
    j->target_name = j->tt.header[tc];

    long ns = j->st.nrows, nt = j->tt.nrows;
    char **skeys = calloc((size_t)ns, sizeof *skeys);
    double *sval = malloc((size_t)ns * sizeof *sval);
    unsigned char *used = calloc((size_t)ns, 1);
    j->score = malloc((size_t)nt * sizeof(double));
    j->target_v = malloc((size_t)nt * sizeof(double));
    j->trow = malloc((size_t)nt * sizeof(long));
    strmap sm = {0}, tm = {0};
    char **tkeys = calloc((size_t)nt, sizeof *tkeys);
    int out = -1;
    if (!skeys || !sval || !used || !j->score || !j->target_v || !j->trow || !tkeys || strmap_init(&sm, ns) < 0 ||
        strmap_init(&tm, nt) < 0) {
        out = report(cmd, EPS_ENOMEM, "out of memory joining %ld x %ld rows", ns, nt);
        goto done;
    }
    for (long r = 0; r < ns; r++) {
        const char *cell = eps_table_cell(&j->st, r, sk);
        skeys[r] = join_key(cell, j->by_index);
        if (!skeys[r]) {
            out = report(cmd, EPS_EINVAL, "%s:%ld: column '%s': '%.40s' is not an integer index", j->st.name,
                         j->st.line[r], j->st.header[sk], cell);
            goto done;
        }
        const char *vs = eps_table_cell(&j->st, r, sc);
        if (eps_table_number(vs, &sval[r]) < 0) {
            out = report(cmd, EPS_EINVAL, "%s:%ld: column '%s': '%.40s' is not a number (empty or nan for NaN)",
                         j->st.name, j->st.line[r], j->st.header[sc], vs);
            goto done;
        }
        long prev = strmap_put(&sm, skeys[r], r);
        if (prev >= 0) {
            double a = sval[prev], b = sval[r];
            if (!(a == b || (isnan(a) && isnan(b)))) {
                out = report(cmd, EPS_EINVAL, "%s:%ld: '%.60s' is already on line %ld with a different %s (%g vs %g)",
                             j->st.name, j->st.line[r], cell, j->st.line[prev], j->st.header[sc], b, a);
                goto done;
            }
            used[r] = 2; /* a repeat: not counted as a distinct key */
        }
    }
    j->first_unmatched_score = j->first_unmatched_truth = -1;
    for (long r = 0; r < nt; r++) {
        const char *cell = eps_table_cell(&j->tt, r, tk);
        tkeys[r] = join_key(cell, j->by_index);
        if (!tkeys[r]) {
            out = report(cmd, EPS_EINVAL, "%s:%ld: column '%s': '%.40s' is not an integer index", j->tt.name,
                         j->tt.line[r], j->tt.header[tk], cell);
            goto done;
        }
        double tv;
        const char *vs = eps_table_cell(&j->tt, r, tc);
        if (eps_table_number(vs, &tv) < 0) {
            out = report(cmd, EPS_EINVAL, "%s:%ld: column '%s': '%.40s' is not a number (empty or nan for NaN)",
                         j->tt.name, j->tt.line[r], j->tt.header[tc], vs);
            goto done;
        }
        if (strmap_put(&tm, tkeys[r], r) >= 0) j->dup_truth++;
        long s = strmap_get(&sm, tkeys[r]);
        if (s < 0) {
            j->unmatched_truth++;
            if (j->first_unmatched_truth < 0) j->first_unmatched_truth = r;
            continue;
        }
        if (used[s] == 0) used[s] = 1;
        j->score[j->n] = sval[s];
        j->target_v[j->n] = tv;
        j->trow[j->n] = r;
        j->n++;
    }
    for (long r = 0; r < ns; r++)
        if (used[r] == 0) {
            j->unmatched_scores++;
            if (j->first_unmatched_score < 0) j->first_unmatched_score = r;
        }
    if (j->n == 0) {
        out = report(cmd, EPS_EINVAL,
                     "no architecture in common: %s column '%s' (e.g. line %ld '%.50s') vs %s column '%s' (e.g. line "
                     "%ld '%.50s')%s",
                     j->st.name, j->st.header[sk], j->st.line[0], eps_table_cell(&j->st, 0, sk), j->tt.name,
                     j->tt.header[tk], j->tt.line[0], eps_table_cell(&j->tt, 0, tk),
                     j->by_index ? "" : "; wrong column? see --scores-arch-column, --truth-arch-column, --join index");
        goto done;
    }
done:
    if (skeys)
        for (long r = 0; r < ns; r++) free(skeys[r]);
    if (tkeys)
        for (long r = 0; r < nt; r++) free(tkeys[r]);
    free(skeys);
    free(tkeys);
    free(sval);
    free(used);
    strmap_free(&sm);
    strmap_free(&tm);
    return out;
}

/* Options common to eval and select. */
#define JOIN_OPTS(j, join_s, minimize)                                                                     \
    {"--scores", 1, &(j).scores_path, NULL}, {"--truth", 1, &(j).truth_path, NULL},                     \
        {"--target", 1, &(j).target, NULL}, {"--minimize", 0, NULL, &(minimize)},                         \
        {"--join", 1, &(join_s), NULL}, {"--truth-arch-column", 1, &(j).truth_key, NULL},                 \
        {"--scores-arch-column", 1, &(j).scores_key, NULL}, {"--score-column", 1, &(j).score_col, NULL}

static int join_mode(const char *cmd, const char *s, eval_join *j)
{
    if (!s || !strcmp(s, "arch")) return -1;
    if (!strcmp(s, "index")) {
        j->by_index = 1;
        return -1;
    }
    return report(cmd, EPS_EINVAL, "--join must be 'arch' or 'index', got '%.40s'", s);
}

#define JOIN_HELP                                                                                          \
    "  --scores FILE             scores CSV ('epsinas sweep' output: index,arch,epsilon,...;\n"            \
    "                            epsilon empty or nan = NaN)\n"                                            \
    "  --truth FILE              truth CSV, e.g. ../shared/data/nb201/dev_accuracy.csv\n"                  \
    "  --target COLUMN           truth column to predict (default: the first numeric column\n"             \
    "                            after 'arch', e.g. cifar10_test)\n"                                       \
    "  --minimize                the target is a loss (lower is better), e.g. final_test_loss\n"           \
    "  --join arch|index         join on the architecture (default) or on the 'index' column\n"            \
    "  --truth-arch-column NAME  truth column holding the architecture (default arch;\n"                   \
    "                            NAS-Bench-NLP: recepie_json)\n"                                           \
    "  --scores-arch-column NAME scores column holding the architecture (default arch)\n"                  \
    "  --score-column NAME       scores column holding the score (default epsilon)\n"                      \
    "Architectures are joined by exact string; values that are JSON objects (NLP\n"                        \
    "recipes) are compared in compact sorted-key form. Every truth row with a score\n"                     \
    "is one row (a recipe trained twice counts twice).\n"

/* ======================================================================
 * SVG
 * ====================================================================== */

static void svg_text_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20) fputc(*s, f);
        }
    }
}

/* "Nice" tick step (1, 2 or 5 x 10^k) giving about `want` ticks over span. */
static double nice_step(double span, int want)
{
    if (!(span > 0)) return 1;
    double raw = span / want;
    double p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

typedef struct {
    double x0, x1, y0, y1;       /* data range */
    double left, top, w, h;      /* plot area in px */
} svg_frame;

static double fx(const svg_frame *fr, double x) { return fr->left + (x - fr->x0) / (fr->x1 - fr->x0) * fr->w; }
static double fy(const svg_frame *fr, double y) { return fr->top + fr->h - (y - fr->y0) / (fr->y1 - fr->y0) * fr->h; }

static void svg_begin(FILE *f, int width, int height, const char *title, const char *subtitle)
{
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"13\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">",
            width, height, width, height, width / 2);
    svg_text_escaped(f, title);
    fprintf(f, "</text>\n");
    if (subtitle && *subtitle) {
        fprintf(f, "<text x=\"%d\" y=\"44\" text-anchor=\"middle\" fill=\"#444\">", width / 2);
        svg_text_escaped(f, subtitle);
        fprintf(f, "</text>\n");
    }
}

/* Expands [lo, hi] to whole tick steps and fixes degenerate ranges. */
static void nice_range(double *lo, double *hi, int want, double *step)
{
    if (!isfinite(*lo) || !isfinite(*hi)) *lo = 0, *hi = 1;
    if (*hi <= *lo) {
        double c = *lo, d = fabs(c) > 0 ? fabs(c) * 0.05 : 0.5;
        *lo = c - d;
        *hi = c + d;
    }
    *step = nice_step(*hi - *lo, want);
    *lo = floor(*lo / *step) * *step;
    *hi = ceil(*hi / *step) * *step;
}

static void fmt_tick(char *buf, size_t n, double v, double step)
{
    if (fabs(v) < step * 1e-9) v = 0;
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6 || fabs(v) >= 1e6) snprintf(buf, n, "%.3g", v);
    else snprintf(buf, n, "%.*f", dec, v);
}

/* Axes with ticks. xlog 0: linear x, ticks every xstep. xlog 1: x holds
 * log10 of the data, ticks every xstep decades labelled "1eK". xlog 2: x
 * holds log10 of the data over less than ~1.5 decades: ticks at multiples
 * of the LINEAR step xstep, placed at their log10 and labelled plainly. */
static void svg_axes(FILE *f, const svg_frame *fr, double xstep, double ystep, int xlog, const char *xlabel,
                     const char *ylabel)
{
    double xpos[64];
    char xlab[64][32];
    int nx = 0;
    if (xlog == 2) {
        double lo = pow(10, fr->x0), hi = pow(10, fr->x1);
        for (double v = ceil(lo / xstep - 1e-9) * xstep; v <= hi * (1 + 1e-12) && nx < 64; v += xstep) {
            xpos[nx] = log10(v);
            fmt_tick(xlab[nx], sizeof xlab[nx], v, xstep);
            nx++;
        }
    } else {
        for (double v = fr->x0; v <= fr->x1 + xstep * 1e-6 && nx < 64; v += xstep) {
            xpos[nx] = v;
            if (xlog) snprintf(xlab[nx], sizeof xlab[nx], "1e%d", (int)round(v));
            else fmt_tick(xlab[nx], sizeof xlab[nx], v, xstep);
            nx++;
        }
    }
    fprintf(f, "<g stroke=\"#ddd\" stroke-width=\"1\">\n");
    for (double v = fr->y0; v <= fr->y1 + ystep * 1e-6; v += ystep)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", fr->left, fy(fr, v), fr->left + fr->w,
                fy(fr, v));
    for (int k = 0; k < nx; k++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", fx(fr, xpos[k]), fr->top,
                fx(fr, xpos[k]), fr->top + fr->h);
    fprintf(f, "</g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n",
            fr->left, fr->top, fr->w, fr->h);
    char buf[64];
    fprintf(f, "<g fill=\"#222\">\n");
    for (double v = fr->y0; v <= fr->y1 + ystep * 1e-6; v += ystep) {
        fmt_tick(buf, sizeof buf, v, ystep);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                fr->left - 5, fy(fr, v), fr->left, fy(fr, v), fr->left - 8, fy(fr, v) + 4, buf);
    }
    for (int k = 0; k < nx; k++)
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                fx(fr, xpos[k]), fr->top + fr->h, fx(fr, xpos[k]), fr->top + fr->h + 5, fx(fr, xpos[k]),
                fr->top + fr->h + 20, xlab[k]);
    fprintf(f, "</g>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", fr->left + fr->w / 2, fr->top + fr->h + 42);
    svg_text_escaped(f, xlabel);
    fprintf(f, "</text>\n<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\">",
            fr->left - 58, fr->top + fr->h / 2);
    svg_text_escaped(f, ylabel);
    fprintf(f, "</text>\n");
}

static FILE *open_out(const char *cmd, const char *path, int *rc)
{
    FILE *f = fopen(path, "w");
    if (!f) *rc = report(cmd, EPS_EIO, "cannot write %s: %s", path, strerror(errno));
    return f;
}

static int close_out(const char *cmd, FILE *f, const char *path)
{
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    return bad ? report(cmd, EPS_EIO, "error writing %s", path) : -1;
}

/* Scatter of log10(score) vs target. Rows with NaN or non-positive scores
 * are counted in the subtitle, not drawn. Returns -1 or an exit code. */
static int plot_scatter(const char *cmd, const char *path, const eval_join *j, const eps_eval_table *t)
{
    long n_nan = 0, n_nonpos = 0, n_tnan = 0, m = 0;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (long i = 0; i < j->n; i++) {
        double s = j->score[i], v = j->target_v[i];
        if (isnan(s)) { n_nan++; continue; }
        if (isnan(v)) { n_tnan++; continue; }
        if (!(s > 0) || !isfinite(s)) { n_nonpos++; continue; }
        double lx = log10(s);
        if (lx < x0) x0 = lx;
        if (lx > x1) x1 = lx;
        if (v < y0) y0 = v;
        if (v > y1) y1 = v;
        m++;
    }
    int rc = -1;
    FILE *f = open_out(cmd, path, &rc);
    if (!f) return rc;
    char title[256], sub[256];
    snprintf(title, sizeof title, "epsinas score vs %s: %ld shown, %ld NaN score%s not shown", j->target_name, m, n_nan,
             n_nan == 1 ? "" : "s");
    if (n_nonpos)
        snprintf(sub, sizeof sub, "Spearman rho %.3f, Kendall tau %.3f (n = %ld); %ld scores <= 0 not shown", t->rho,
                 t->tau, t->n, n_nonpos);
    else
        snprintf(sub, sizeof sub, "Spearman rho %.3f, Kendall tau %.3f (n = %ld)", t->rho, t->tau, t->n);
    svg_begin(f, 760, 560, title, sub);
    svg_frame fr = {0, 1, 0, 1, 90, 60, 640, 420};
    double xs, ys;
    if (m == 0) x0 = -1, x1 = 0, y0 = 0, y1 = 1;
    double span = x1 - x0;
    int xmode = 1;
    if (span >= 1.5) {
        x0 = floor(x0);
        x1 = ceil(x1);
        xs = span > 10 ? ceil((x1 - x0) / 8) : 1;
    } else {
        /* Less than 1.5 decades: "nice" linear values on the log axis. */
        double lo = pow(10, x0), hi = pow(10, x1);
        nice_range(&lo, &hi, 5, &xs);
        if (lo <= 0) lo = xs;
        x0 = log10(lo);
        x1 = log10(hi);
        xmode = 2;
    }
    nice_range(&y0, &y1, 6, &ys);
    fr.x0 = x0, fr.x1 = x1, fr.y0 = y0, fr.y1 = y1;
    svg_axes(f, &fr, xs, ys, xmode, "epsinas score (log scale)", j->target_name);
    fprintf(f, "<g fill=\"#1f77b4\" fill-opacity=\"0.45\">\n");
    for (long i = 0; i < j->n; i++) {
        double s = j->score[i], v = j->target_v[i];
        if (isnan(s) || isnan(v) || !(s > 0) || !isfinite(s)) continue;
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\"/>\n", fx(&fr, log10(s)), fy(&fr, v));
    }
    fprintf(f, "</g>\n</svg>\n");
    return close_out(cmd, f, path);
}

/* ======================================================================
 * epsinas eval
 * ====================================================================== */

static void eval_help(FILE *f)
{
    fprintf(f,
            "usage: epsinas eval --scores SCORES.csv --truth TRUTH.csv [--target COLUMN] [--minimize]\n"
            "                    [--json] [--plot FILE.svg]\n\n"
            "How well the scores rank architectures by their trained result: the paper's table\n"
            "(spec section 6), on the rows where both score and target are numbers:\n"
            "  rho, tau          Spearman rho (average ranks for ties) and Kendall tau-b,\n"
            "                    as scipy.stats.spearmanr / kendalltau\n"
            "  NaN ranked last   Spearman rho over every row with a target, NaN scores tied\n"
            "                    below all others (as NAS libraries report a whole space;\n"
            "                    JSON rho_nan_last)\n"
            "  top-10%%           rho, tau on the rows whose target is above its 90th percentile\n"
            "  top-10%%/top-10%%   |target > p90 and score > p90| / |score > p90| x 100\n"
            "  top-64/top-5%%     of the 64 highest scores, how many have target > p95\n"
            "Percentiles as numpy.percentile (linear interpolation).\n"
            "With --minimize (a loss: NAS-Bench-NLP final_test_loss) rho and tau are reported\n"
            "against the loss itself (so a good score gives a NEGATIVE rho, as in the paper),\n"
            "and 'top' means lowest loss: the top-k statistics use -target.\n\n"
            "options:\n" JOIN_HELP
            "  --json                    machine-readable output (null = undefined)\n"
            "  --plot FILE.svg           scatter plot of log10(score) vs target\n\n"
            "examples:\n"
            "  epsinas eval --scores nb201.csv --truth ../shared/data/nb201/dev_accuracy.csv\n"
            "  epsinas eval --scores nlp.csv --truth ../shared/data/nlp/wikitext2_final.csv \\\n"
            "      --truth-arch-column recepie_json --target final_test_loss --minimize\n");
}

static void fmt_stat(char *buf, size_t n, double v, const char *fmt)
{
    if (isnan(v)) snprintf(buf, n, "n/a");
    else snprintf(buf, n, fmt, v);
}

int eps_cmd_eval(int argc, char **argv)
{
    const char *cmd = "eval";
    eval_join j = {0};
    int minimize = 0, json = 0;
    const char *join_s = NULL, *plot = NULL;
    const opt_spec specs[] = {JOIN_OPTS(j, join_s, minimize),
                              {"--json", 0, NULL, &json},
                              {"--plot", 1, &plot, NULL},
                              {NULL, 0, NULL, NULL}};
    int rc = parse_opts(cmd, argc, argv, specs, eval_help);
    if (rc >= 0) return rc;
    if ((rc = join_mode(cmd, join_s, &j)) >= 0) return rc;
    if ((rc = join_load(cmd, &j)) >= 0) {
        join_free(&j);
        return rc;
    }
    eps_eval_table t;
    eps_error e = {0};
    if (eps_eval_table_compute(j.score, j.target_v, j.n, minimize, &t, &e) < 0) {
        rc = report_err(cmd, &e);
        join_free(&j);
        return rc;
    }
    long scored = j.n - t.n_nan_score;
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "scores", json_string(j.st.name));
        json_object_set_new(o, "truth", json_string(j.tt.name));
        json_object_set_new(o, "target", json_string(j.target_name));
        json_object_set_new(o, "minimize", json_boolean(minimize));
        json_object_set_new(o, "join", json_string(j.by_index ? "index" : "arch"));
        json_t *rows = json_object();
        json_object_set_new(rows, "scores", json_integer(j.n_scores));
        json_object_set_new(rows, "truth", json_integer(j.n_truth));
        json_object_set_new(rows, "matched", json_integer(j.n));
        json_object_set_new(rows, "unmatched_scores", json_integer(j.unmatched_scores));
        json_object_set_new(rows, "unmatched_truth", json_integer(j.unmatched_truth));
        json_object_set_new(rows, "duplicate_truth", json_integer(j.dup_truth));
        json_object_set_new(rows, "scored", json_integer(scored));
        json_object_set_new(rows, "nan_score", json_integer(t.n_nan_score));
        json_object_set_new(rows, "nan_target", json_integer(t.n_nan_target));
        json_object_set_new(rows, "used", json_integer(t.n));
        json_object_set_new(o, "rows", rows);
        json_object_set_new(o, "rho", jnum(t.rho));
        json_object_set_new(o, "tau", jnum(t.tau));
        json_object_set_new(o, "rho_nan_last", jnum(t.rho_nan_last));
        json_object_set_new(o, "n_nan_last", json_integer(t.n_nan_last));
        json_object_set_new(o, "rho_top10", jnum(t.rho_top));
        json_object_set_new(o, "tau_top10", jnum(t.tau_top));
        json_object_set_new(o, "n_top10", json_integer(t.n_top));
        json_object_set_new(o, "top10_top10", jnum(t.top10_top10));
        json_object_set_new(o, "n_score_top10", json_integer(t.n_score_top));
        json_object_set_new(o, "n_both_top10", json_integer(t.n_both_top));
        json_object_set_new(o, "top64_top5", json_integer(t.top64_top5));
        json_object_set_new(o, "top64_k", json_integer(t.top64_k));
        json_t *th = json_object();
        json_object_set_new(th, "target_p90", jnum(t.target_p90));
        json_object_set_new(th, "target_p95", jnum(t.target_p95));
        json_object_set_new(th, "score_p90", jnum(t.score_p90));
        json_object_set_new(th, "units", json_string(minimize ? "negated target (better = higher)" : "target"));
        json_object_set_new(o, "thresholds", th);
        print_json(o);
        json_decref(o);
    } else {
        char a[32], b[32];
        printf("scores %s (%ld rows) vs truth %s (%ld rows), joined on %s\n", j.st.name, j.n_scores, j.tt.name,
               j.n_truth, j.by_index ? "index" : "architecture");
        printf("target %s (%s is better)\n", j.target_name, minimize ? "lower" : "higher");
        printf("rows: %ld matched (%ld score rows and %ld truth rows unmatched)\n", j.n, j.unmatched_scores,
               j.unmatched_truth);
        if (j.dup_truth) printf("      %ld truth rows repeat an earlier architecture (each counted)\n", j.dup_truth);
        printf("      %ld scored, %ld NaN score, %ld NaN target -> %ld used\n\n", scored, t.n_nan_score,
               t.n_nan_target, t.n);
        printf("                   rho      tau\n");
        fmt_stat(a, sizeof a, t.rho, "%7.4f");
        fmt_stat(b, sizeof b, t.tau, "%7.4f");
        printf("global         %7s  %7s\n", a, b);
        fmt_stat(a, sizeof a, t.rho_nan_last, "%7.4f");
        printf("NaN ranked last %6s           (all %ld rows with a target; NAS libraries' convention)\n", a,
               t.n_nan_last);
        fmt_stat(a, sizeof a, t.rho_top, "%7.4f");
        fmt_stat(b, sizeof b, t.tau_top, "%7.4f");
        printf("top-10%%        %7s  %7s   (%ld rows with %s %s %.6g)\n", a, b, t.n_top, j.target_name,
               minimize ? "<" : ">", minimize ? -t.target_p90 : t.target_p90);
        fmt_stat(a, sizeof a, t.top10_top10, "%.2f");
        printf("top-10%%/top-10%%  %s %%  (%ld of the %ld rows with score > p90)\n", a, t.n_both_top, t.n_score_top);
        printf("top-64/top-5%%    %ld of the %ld highest-scored  (%s %s %.6g)\n", t.top64_top5, t.top64_k,
               j.target_name, minimize ? "<" : ">", minimize ? -t.target_p95 : t.target_p95);
    }
    rc = 0;
    if (plot) {
        int prc = plot_scatter(cmd, plot, &j, &t);
        if (prc >= 0) rc = prc;
    }
    join_free(&j);
    return rc;
}

/* ======================================================================
 * epsinas select
 * ====================================================================== */

static void select_help(FILE *f)
{
    fprintf(f,
            "usage: epsinas select --scores S.csv --truth T.csv --n N [--runs R] [--seed K] [--json]\n\n"
            "The paper's Table 3: R times, draw N distinct architectures at random from the\n"
            "joined rows (rows with a NaN target are left out; a NaN score counts as the\n"
            "lowest), keep the one with the highest score, and look up its trained result.\n"
            "Reports mean and std (numpy.std, ddof 0) over runs of: the chosen one's target,\n"
            "the best target in the sample (optimum), a uniformly random member's target,\n"
            "and the chosen one's rank by target within its sample (1 = best).\n"
            "Deterministic for a seed: run r draws with splitmix64 seeded from (seed, r)\n"
            "(see include/epsinas/eval/eval.h); ties in score go to the earliest drawn.\n\n"
            "options:\n" JOIN_HELP
            "  --n N                     sample size (e.g. 10, 100, 1000)\n"
            "  --runs R                  repetitions (default 500)\n"
            "  --seed K                  seed (default 1)\n"
            "  --json                    machine-readable output\n");
}

int eps_cmd_select(int argc, char **argv)
{
    const char *cmd = "select";
    eval_join j = {0};
    int minimize = 0, json = 0;
    const char *join_s = NULL, *n_s = NULL, *runs_s = "500", *seed_s = "1";
    const opt_spec specs[] = {JOIN_OPTS(j, join_s, minimize),
                              {"--n", 1, &n_s, NULL},
                              {"--runs", 1, &runs_s, NULL},
                              {"--seed", 1, &seed_s, NULL},
                              {"--json", 0, NULL, &json},
                              {NULL, 0, NULL, NULL}};
    int rc = parse_opts(cmd, argc, argv, specs, select_help);
    if (rc >= 0) return rc;
    long n = 0, runs = 0;
    uint64_t seed = 0;
    if (!n_s) return report(cmd, EPS_EINVAL, "missing --n N (architectures per sample)");
    if ((rc = parse_long(cmd, "--n", n_s, 1, 100000000, &n)) != 0) return rc;
    if ((rc = parse_long(cmd, "--runs", runs_s, 1, 10000000, &runs)) != 0) return rc;
    if ((rc = parse_u64(cmd, "--seed", seed_s, &seed)) != 0) return rc;
    if ((rc = join_mode(cmd, join_s, &j)) >= 0) return rc;
    if ((rc = join_load(cmd, &j)) >= 0) {
        join_free(&j);
        return rc;
    }
    eps_eval_select s;
    eps_error e = {0};
    if (eps_eval_select_run(j.score, j.target_v, j.n, (int)n, (int)runs, seed, minimize, &s, &e) < 0) {
        rc = report_err(cmd, &e);
        join_free(&j);
        return rc;
    }
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "target", json_string(j.target_name));
        json_object_set_new(o, "minimize", json_boolean(minimize));
        json_object_set_new(o, "pool", json_integer(s.pool));
        json_object_set_new(o, "n", json_integer(n));
        json_object_set_new(o, "runs", json_integer(runs));
        json_object_set_new(o, "seed", json_integer((json_int_t)seed));
        const char *names[4] = {"chosen", "optimum", "random", "rank"};
        double vals[4][2] = {{s.chosen_mean, s.chosen_std},
                             {s.optimum_mean, s.optimum_std},
                             {s.random_mean, s.random_std},
                             {s.rank_mean, s.rank_std}};
        for (int k = 0; k < 4; k++) {
            json_t *v = json_object();
            json_object_set_new(v, "mean", jnum(vals[k][0]));
            json_object_set_new(v, "std", jnum(vals[k][1]));
            json_object_set_new(o, names[k], v);
        }
        json_object_set_new(o, "chosen_is_optimum", json_integer(s.chosen_is_optimum));
        print_json(o);
        json_decref(o);
    } else {
        printf("%s (%s is better): %ld runs, %ld of %ld architectures per sample, seed %llu\n", j.target_name,
               minimize ? "lower" : "higher", runs, n, s.pool, (unsigned long long)seed);
        printf("  chosen by epsinas  %10.4f +- %.4f\n", s.chosen_mean, s.chosen_std);
        printf("  optimum of sample  %10.4f +- %.4f\n", s.optimum_mean, s.optimum_std);
        printf("  random member      %10.4f +- %.4f\n", s.random_mean, s.random_std);
        printf("  rank of chosen     %10.2f +- %.2f   (1 = best of %ld; best in %ld of %ld runs)\n", s.rank_mean,
               s.rank_std, n, s.chosen_is_optimum, runs);
    }
    join_free(&j);
    return 0;
}

/* ======================================================================
 * scoring NB201 cells through the library (search warm-up, search-weights)
 * ====================================================================== */

static int nb201_code(const eps_nb201_cell *c)
{
    int code = 0, p = 1;
    for (int e = 0; e < EPS_NB201_EDGES; e++, p *= EPS_NB201_OPS) code += c->op[e] * p;
    return code;
}

static int arch_for_code(int code, eps_arch *a, eps_error *err)
{
    eps_nb201_cell cell;
    char s[EPS_NB201_STR_MAX];
    eps_nb201_from_index(code, &cell);
    eps_nb201_format(&cell, s);
    json_t *req = json_pack("{s:s, s:s}", "space", "nb201", "arch", s);
    if (!req) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    int rc = eps_arch_from_json(req, a, err);
    json_decref(req);
    return rc;
}

static long arch_outputs(const eps_arch *a, const eps_batch *b)
{
    if (a->space && a->space->output_count) return a->space->output_count(a, b);
    return (long)b->n * (long)eps_graph_output_size(&a->graph);
}

static int arch_forward(const eps_arch *a, const eps_batch *b, float w, const eps_run_opts *o, float *y,
                        eps_error *err)
{
    if (a->space && a->space->forward) return a->space->forward(a, b, w, o, y, err);
    return eps_engine_forward(&a->graph, b, w, o, y, err);
}

/* A batch of parallel work over items 0..n-1: fn(ctx, i, err). */
typedef int (*work_fn)(void *ctx, long i, eps_error *err);
typedef struct {
    work_fn fn;
    void *ctx;
    long n;
    long next; /* shared, under mu */
    int rc;
    eps_error err;
    pthread_mutex_t mu;
    long done;
    double t0;
    const char *what;
    int progress;
} work_pool;

/* Defined in eps_engine_fast.c (not in engine.h yet): frees the calling
 * thread's plane cache, which would otherwise leak when a worker exits. */

static void *work_thread(void *arg)
{
    work_pool *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        long i = w->rc < 0 ? w->n : w->next++;
        pthread_mutex_unlock(&w->mu);
        if (i >= w->n) break;
        eps_error e = {0};
        int rc = w->fn(w->ctx, i, &e);
        pthread_mutex_lock(&w->mu);
        if (rc < 0 && w->rc == 0) {
            w->rc = rc;
            w->err = e;
        }
        w->done++;
        if (w->progress && (w->done % 500 == 0))
            fprintf(stderr, "  %s: %ld / %ld (%.1f s)\n", w->what, w->done, w->n, now_s() - w->t0);
        pthread_mutex_unlock(&w->mu);
    }
    eps_engine_fast_release_thread_cache();
    return NULL;
}

static int run_parallel(work_fn fn, void *ctx, long n, int threads, const char *what, eps_error *err)
{
    work_pool w = {.fn = fn, .ctx = ctx, .n = n, .t0 = now_s(), .what = what, .progress = n >= 1000};
    pthread_mutex_init(&w.mu, NULL);
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    pthread_t th[64];
    int started = 0;
    for (int t = 1; t < threads; t++)
        if (pthread_create(&th[started], NULL, work_thread, &w) == 0) started++;
    work_thread(&w);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&w.mu);
    if (w.rc < 0 && err) *err = w.err;
    return w.rc;
}

static int load_batch(const char *cmd, const char *spec, const char *size_s, eps_batch *b)
{
    long bs = 0;
    int rc;
    if ((rc = parse_long(cmd, "--batch-size", size_s, 1, EPS_BATCH_MAX, &bs)) != 0) return rc;
    eps_error e = {0};
    if (eps_batch_load(spec, (int)bs, b, &e) < 0) return report_err(cmd, &e);
    if (b->kind != EPS_BATCH_IMAGES) {
        eps_batch_free(b);
        return report(cmd, EPS_EINVAL, "--batch '%.60s' is a token batch; NAS-Bench-201 needs images", spec);
    }
    return -1;
}

/* ======================================================================
 * epsinas search
 * ====================================================================== */

typedef struct {
    long n;
    int *code;
    double *target;
    double *score;
    unsigned char *have;    /* score[i] is known */
    const eps_batch *batch; /* to score on demand; NULL with --scores */
    long *todo;             /* pool indices to score up front */
} nb201_pool;

/* Epsilon of pool architecture i with the space's default weights. */
static int pool_score_arch(nb201_pool *p, long i, eps_error *err)
{
    eps_arch a;
    int rc = arch_for_code(p->code[i], &a, err);
    if (rc < 0) return rc;
    eps_run_opts o = {.engine = EPS_ENGINE_FAST};
    eps_score sc;
    rc = eps_arch_score(&a, p->batch, NULL, &o, &sc, err);
    eps_arch_free(&a);
    if (rc == 0) {
        p->score[i] = sc.epsilon;
        p->have[i] = 1;
    }
    return rc;
}

static int pool_score_cb(void *ctx, long i, double *score, eps_error *err)
{
    nb201_pool *p = ctx;
    if (!p->have[i] && p->batch) {
        int rc = pool_score_arch(p, i, err);
        if (rc < 0) return rc;
    }
    *score = p->score[i];
    return 0;
}

static int score_todo(void *ctx, long k, eps_error *err)
{
    nb201_pool *p = ctx;
    return pool_score_arch(p, p->todo[k], err);
}

static void search_help(FILE *f)
{
    fprintf(f,
            "usage: epsinas search --space nb201 --truth T.csv [--algo random|evolution|random,evolution]\n"
            "                      [--warmup 3000] [--budget 300] [--runs 100] [--seed 1]\n"
            "                      [--scores S.csv] [--out CURVES.csv] [--plot FILE.svg]\n\n"
            "Architecture search where 'training' = looking the architecture up in the truth\n"
            "table; only the table's architectures can be trained, so the search space is\n"
            "restricted to them. The curve is the best target found after each look-up;\n"
            "printed: median and quartiles over runs at steps 10, 20, 50, 100, ... budget.\n\n"
            "warm-up (the paper's): score --warmup random architectures with epsinas (free),\n"
            "  random search: look them up best-scored first, then unseen random ones;\n"
            "  evolution: the initial population is the top --population of them by score.\n"
            "  --warmup 0 gives the plain algorithms. A list (0,3000) runs each.\n"
            "ageing (regularised) evolution: population 64, tournament 10 drawn with\n"
            "  replacement, the best is the parent, the child changes one of the 6 edges to\n"
            "  a different op; a child outside the truth table cannot be trained, so the\n"
            "  mutation is re-drawn (= uniform over the parent's neighbours in the table;\n"
            "  none: a random table architecture). The oldest member dies.\n\n"
            "options:\n"
            "  --space nb201             the only space with a cell mutation (default nb201)\n"
            "  --truth FILE              truth CSV (columns arch and the target)\n"
            "  --target COLUMN           default: the first numeric column after arch\n"
            "  --minimize                lower target is better\n"
            "  --truth-arch-column NAME  default arch\n"
            "  --scores FILE             epsinas scores (sweep CSV: arch, epsilon; an architecture\n"
            "                            without a row counts as NaN = lowest). Without it the\n"
            "                            warm-up candidates are scored here (ramp batch, fast\n"
            "                            engine, the space's weights; see --batch, --batch-size)\n"
            "  --scores-arch-column NAME, --score-column NAME   as in eval\n"
            "  --algo LIST               random, evolution or both (default random,evolution)\n"
            "  --warmup LIST             warm-up sizes (default 3000; 0 = none)\n"
            "  --budget N                look-ups per run (default 300)\n"
            "  --runs R                  runs per curve (default 100); run r uses seed (K, r)\n"
            "  --seed K                  default 1\n"
            "  --population P            default 64\n"
            "  --tournament T            default 10\n"
            "  --batch SPEC              default ramp; --batch-size N default 256\n"
            "  --threads N               scoring threads (default 0 = all CPUs)\n"
            "  --out FILE.csv            every step: algo,warmup,step,median,q25,q75,mean\n"
            "  --plot FILE.svg           best-so-far curves with quartile bands\n");
}

static int split_list(const char *cmd, const char *flag, const char *s, char items[][32], int max)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == 0 || l >= 32 || n >= max) {
            report(cmd, EPS_EINVAL, "%s: bad list '%.60s' (comma-separated, at most %d items)", flag, s, max);
            return -1;
        }
        memcpy(items[n], p, l);
        items[n][l] = 0;
        n++;
        p = c ? c + 1 : p + l;
    }
    if (n == 0) {
        report(cmd, EPS_EINVAL, "%s: empty list", flag);
        return -1;
    }
    return n;
}

typedef struct {
    char label[64];
    eps_search_algo algo;
    long warmup;
    double *curve;  /* runs x budget */
    double *med, *q25, *q75, *mean; /* budget each */
} search_cfg;

static void curve_summary(search_cfg *c, int runs, long budget, double *tmp)
{
    for (long s = 0; s < budget; s++) {
        double sum = 0;
        for (int r = 0; r < runs; r++) {
            tmp[r] = c->curve[(size_t)r * (size_t)budget + (size_t)s];
            sum += tmp[r];
        }
        /* insertion sort: runs is small and rows are nearly sorted step to step */
        for (int a = 1; a < runs; a++) {
            double v = tmp[a];
            int b = a - 1;
            while (b >= 0 && tmp[b] > v) {
                tmp[b + 1] = tmp[b];
                b--;
            }
            tmp[b + 1] = v;
        }
        c->med[s] = eps_eval_percentile_sorted(tmp, runs, 50);
        c->q25[s] = eps_eval_percentile_sorted(tmp, runs, 25);
        c->q75[s] = eps_eval_percentile_sorted(tmp, runs, 75);
        c->mean[s] = sum / runs;
    }
}

static const char *const curve_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

static int plot_curves(const char *cmd, const char *path, search_cfg *cfg, int ncfg, long budget, int runs,
                       const char *target, int minimize)
{
    int rc = -1;
    FILE *f = open_out(cmd, path, &rc);
    if (!f) return rc;
    /* The first few look-ups are far from the rest: the y range is taken
     * from step 10 on, where the curves are informative (clipped before). */
    long from = budget > 20 ? 9 : 0;
    double y0 = INFINITY, y1 = -INFINITY;
    for (int c = 0; c < ncfg; c++)
        for (long s = from; s < budget; s++) {
            y0 = fmin(y0, fmin(cfg[c].q25[s], cfg[c].q75[s]));
            y1 = fmax(y1, fmax(cfg[c].q25[s], cfg[c].q75[s]));
        }
    char title[192], sub[192];
    snprintf(title, sizeof title, "Best %s found vs look-ups (%s is better)", target, minimize ? "lower" : "higher");
    snprintf(sub, sizeof sub, "median over %d runs, band = 25%%-75%%", runs);
    svg_begin(f, 760, 560, title, sub);
    double xs, ys, x0 = 0, x1 = (double)budget;
    nice_range(&x0, &x1, 6, &xs);
    nice_range(&y0, &y1, 6, &ys);
    svg_frame fr = {x0, x1, y0, y1, 90, 60, 640, 420};
    svg_axes(f, &fr, xs, ys, 0, "architectures looked up (trained)", target);
    fprintf(f, "<defs><clipPath id=\"area\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath></defs>\n",
            fr.left, fr.top, fr.w, fr.h);
    fprintf(f, "<g clip-path=\"url(#area)\">\n");
    for (int c = 0; c < ncfg; c++) {
        const char *col = curve_colors[c % 6];
        fprintf(f, "<path fill=\"%s\" fill-opacity=\"0.18\" stroke=\"none\" d=\"", col);
        for (long s = 0; s < budget; s++) fprintf(f, "%c%.1f %.1f", s ? 'L' : 'M', fx(&fr, s + 1), fy(&fr, cfg[c].q75[s]));
        for (long s = budget - 1; s >= 0; s--) fprintf(f, "L%.1f %.1f", fx(&fr, s + 1), fy(&fr, cfg[c].q25[s]));
        fprintf(f, "Z\"/>\n<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (long s = 0; s < budget; s++) fprintf(f, "%.1f,%.1f ", fx(&fr, s + 1), fy(&fr, cfg[c].med[s]));
        fprintf(f, "\"/>\n");
    }
    fprintf(f, "</g>\n");
    /* legend, bottom right inside the plot */
    double lx = fr.left + fr.w - 230, ly = fr.top + fr.h - 14 - 20.0 * ncfg;
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"220\" height=\"%.1f\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#999\"/>\n",
            lx, ly, 20.0 * ncfg + 8);
    for (int c = 0; c < ncfg; c++) {
        double yy = ly + 16 + 20.0 * c;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>", lx + 8,
                yy - 4, lx + 36, yy - 4, curve_colors[c % 6]);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", lx + 44, yy);
        svg_text_escaped(f, cfg[c].label);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</svg>\n");
    return close_out(cmd, f, path);
}

int eps_cmd_search(int argc, char **argv)
{
    const char *cmd = "search";
    const char *space = "nb201", *truth = NULL, *target = NULL, *truth_col = "arch", *scores = NULL;
    const char *scores_col = "arch", *score_col = "epsilon", *algo_s = "random,evolution", *warm_s = "3000";
    const char *budget_s = "300", *runs_s = "100", *seed_s = "1", *pop_s = "64", *tour_s = "10";
    const char *batch_s = "ramp", *bsize_s = "256", *threads_s = "0", *out_s = NULL, *plot_s = NULL;
    int minimize = 0;
    const opt_spec specs[] = {{"--space", 1, &space, NULL},         {"--truth", 1, &truth, NULL},
                              {"--target", 1, &target, NULL},       {"--minimize", 0, NULL, &minimize},
                              {"--truth-arch-column", 1, &truth_col, NULL},
                              {"--scores", 1, &scores, NULL},       {"--scores-arch-column", 1, &scores_col, NULL},
                              {"--score-column", 1, &score_col, NULL},
                              {"--algo", 1, &algo_s, NULL},         {"--warmup", 1, &warm_s, NULL},
                              {"--budget", 1, &budget_s, NULL},     {"--runs", 1, &runs_s, NULL},
                              {"--seed", 1, &seed_s, NULL},         {"--population", 1, &pop_s, NULL},
                              {"--tournament", 1, &tour_s, NULL},   {"--batch", 1, &batch_s, NULL},
                              {"--batch-size", 1, &bsize_s, NULL},  {"--threads", 1, &threads_s, NULL},
                              {"--out", 1, &out_s, NULL},           {"--plot", 1, &plot_s, NULL},
                              {NULL, 0, NULL, NULL}};
    int rc = parse_opts(cmd, argc, argv, specs, search_help);
    if (rc >= 0) return rc;
    if (strcmp(space, "nb201"))
        return report(cmd, EPS_EINVAL, "--space '%.40s' is not supported (only nb201 has a cell mutation)", space);
    if (!truth) return report(cmd, EPS_EINVAL, "missing --truth FILE (the look-up table, e.g. dev_accuracy.csv)");
    long budget = 0, runs = 0, pop = 0, tour = 0, threads = 0;
    uint64_t seed = 0;
    if ((rc = parse_long(cmd, "--budget", budget_s, 1, 1000000, &budget)) != 0) return rc;
    if ((rc = parse_long(cmd, "--runs", runs_s, 1, 100000, &runs)) != 0) return rc;
    if ((rc = parse_long(cmd, "--population", pop_s, 1, 100000, &pop)) != 0) return rc;
    if ((rc = parse_long(cmd, "--tournament", tour_s, 1, 100000, &tour)) != 0) return rc;
    if ((rc = parse_long(cmd, "--threads", threads_s, 0, 64, &threads)) != 0) return rc;
    if (threads == 0) threads = cpu_count();
    if ((rc = parse_u64(cmd, "--seed", seed_s, &seed)) != 0) return rc;
    char algos[4][32], warms[8][32];
    int na = split_list(cmd, "--algo", algo_s, algos, 4);
    if (na < 0) return 2;
    int nw = split_list(cmd, "--warmup", warm_s, warms, 8);
    if (nw < 0) return 2;
    /* Every curve value is kept (runs x budget doubles per configuration). */
    if ((double)budget * (double)runs * na * nw > 2e7)
        return report(cmd, EPS_ELIMIT,
                      "--budget x --runs x configurations = %.0f curve points is over the limit of 2e7",
                      (double)budget * (double)runs * na * nw);
    search_cfg cfg[32];
    int ncfg = 0;
    memset(cfg, 0, sizeof cfg);
    for (int a = 0; a < na; a++) {
        eps_search_algo al;
        if (!strcmp(algos[a], "random")) al = EPS_SEARCH_RANDOM;
        else if (!strcmp(algos[a], "evolution") || !strcmp(algos[a], "rea")) al = EPS_SEARCH_EVOLUTION;
        else return report(cmd, EPS_EINVAL, "--algo: unknown algorithm '%s' (random or evolution)", algos[a]);
        for (int w = 0; w < nw; w++) {
            long wv = 0;
            if ((rc = parse_long(cmd, "--warmup", warms[w], 0, 1000000, &wv)) != 0) return rc;
            cfg[ncfg].algo = al;
            cfg[ncfg].warmup = wv;
            snprintf(cfg[ncfg].label, sizeof cfg[ncfg].label, "%s, %s", al == EPS_SEARCH_RANDOM ? "random" : "evolution",
                     wv ? "" : "no warm-up");
            if (wv) snprintf(cfg[ncfg].label, sizeof cfg[ncfg].label, "%s, warm-up %ld",
                             al == EPS_SEARCH_RANDOM ? "random" : "evolution", wv);
            ncfg++;
        }
    }

    eps_table tt = {0}, st = {0};
    eps_error e = {0};
    nb201_pool pool = {0};
    double *tmp = NULL;
    eps_batch batch = {0};
    int have_batch = 0;
    int *lookup = NULL;
    if (eps_table_read(truth, &tt, &e) < 0) {
        rc = report_err(cmd, &e);
        goto out;
    }
    if (tt.nrows == 0) {
        rc = report(cmd, EPS_EINVAL, "%s: header only, no rows", tt.name);
        goto out;
    }
    int tk, tc;
    if ((rc = need_col(cmd, &tt, truth_col, "--truth-arch-column NAME", &tk)) >= 0) goto out;
    if ((rc = pick_target(cmd, &tt, target, tk, &tc)) >= 0) goto out;
    rc = -1;
    pool.code = malloc((size_t)tt.nrows * sizeof *pool.code);
    pool.target = malloc((size_t)tt.nrows * sizeof *pool.target);
    pool.score = malloc((size_t)tt.nrows * sizeof *pool.score);
    pool.have = calloc((size_t)tt.nrows, 1);
    lookup = malloc(EPS_NB201_COUNT * sizeof *lookup);
    tmp = malloc((size_t)runs * sizeof *tmp);
    if (!pool.code || !pool.target || !pool.score || !pool.have || !lookup || !tmp) {
        rc = report(cmd, EPS_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < EPS_NB201_COUNT; i++) lookup[i] = -1;
    long nan_target = 0, dups = 0;
    for (long r = 0; r < tt.nrows; r++) {
        const char *as = eps_table_cell(&tt, r, tk);
        eps_nb201_cell cell;
        eps_error pe = {0};
        if (eps_nb201_parse(as, strlen(as), &cell, &pe) < 0) {
            rc = report(cmd, EPS_EINVAL, "%s:%ld: column '%s': %s", tt.name, tt.line[r], tt.header[tk], pe.msg);
            goto out;
        }
        double v;
        const char *vs = eps_table_cell(&tt, r, tc);
        if (eps_table_number(vs, &v) < 0) {
            rc = report(cmd, EPS_EINVAL, "%s:%ld: column '%s': '%.40s' is not a number", tt.name, tt.line[r],
                        tt.header[tc], vs);
            goto out;
        }
        if (isnan(v)) {
            nan_target++;
            continue;
        }
        int code = nb201_code(&cell);
        if (lookup[code] >= 0) {
            dups++;
            continue;
        }
        lookup[code] = (int)pool.n;
        pool.code[pool.n] = code;
        pool.target[pool.n] = v;
        pool.score[pool.n] = NAN;
        pool.n++;
    }
    if (pool.n == 0) {
        rc = report(cmd, EPS_EINVAL, "%s: no architecture with a numeric '%s'", tt.name, tt.header[tc]);
        goto out;
    }
    long unscored = 0;
    if (scores) {
        if (eps_table_read(scores, &st, &e) < 0) {
            rc = report_err(cmd, &e);
            goto out;
        }
        int sk, sc;
        if ((rc = need_col(cmd, &st, scores_col, "--scores-arch-column NAME", &sk)) >= 0) goto out;
        if ((rc = need_col(cmd, &st, score_col, "--score-column NAME", &sc)) >= 0) goto out;
        rc = -1;
        unsigned char *seen = calloc((size_t)pool.n, 1);
        if (!seen) {
            rc = report(cmd, EPS_ENOMEM, "out of memory");
            goto out;
        }
        for (long r = 0; r < st.nrows; r++) {
            const char *as = eps_table_cell(&st, r, sk);
            eps_nb201_cell cell;
            eps_error pe = {0};
            if (eps_nb201_parse(as, strlen(as), &cell, &pe) < 0) {
                rc = report(cmd, EPS_EINVAL, "%s:%ld: column '%s': %s", st.name, st.line[r], st.header[sk], pe.msg);
                break;
            }
            double v;
            const char *vs = eps_table_cell(&st, r, sc);
            if (eps_table_number(vs, &v) < 0) {
                rc = report(cmd, EPS_EINVAL, "%s:%ld: column '%s': '%.40s' is not a number", st.name, st.line[r],
                            st.header[sc], vs);
                break;
            }
            int i = lookup[nb201_code(&cell)];
            if (i >= 0 && !seen[i]) {
                pool.score[i] = v;
                seen[i] = 1;
            }
        }
        for (long i = 0; i < pool.n; i++) pool.have[i] = 1; /* absent = NaN = ranked lowest */
        for (long i = 0; i < pool.n; i++) unscored += !seen[i];
        free(seen);
        if (rc >= 0) goto out;
        if (unscored == pool.n) {
            rc = report(cmd, EPS_EINVAL, "no architecture in common between %s and %s", st.name, tt.name);
            goto out;
        }
    } else {
        /* Score exactly the warm-up candidates (they depend only on the
         * seed), in parallel, before the searches ask for them. */
        unsigned char *mark = calloc((size_t)pool.n, 1);
        pool.todo = malloc((size_t)pool.n * sizeof *pool.todo);
        if (!mark || !pool.todo) {
            free(mark);
            rc = report(cmd, EPS_ENOMEM, "out of memory");
            goto out;
        }
        for (int c = 0; c < ncfg; c++) {
            eps_search_opts so = {cfg[c].algo, cfg[c].warmup, budget, (int)runs, seed, (int)pop, (int)tour};
            if (eps_search_warmup_marks(pool.n, &so, mark, &e) < 0) {
                free(mark);
                rc = report_err(cmd, &e);
                goto out;
            }
        }
        long ntodo = 0;
        for (long i = 0; i < pool.n; i++)
            if (mark[i]) pool.todo[ntodo++] = i;
        free(mark);
        if (ntodo) {
            if ((rc = load_batch(cmd, batch_s, bsize_s, &batch)) >= 0) goto out;
            have_batch = 1;
            pool.batch = &batch;
            double t0 = now_s();
            if (run_parallel(score_todo, &pool, ntodo, (int)threads, "scoring", &e) < 0) {
                rc = report_err(cmd, &e);
                goto out;
            }
            fprintf(stderr, "scored %ld warm-up candidates in %.1f s (%s batch of %d, fast engine, %ld threads)\n",
                    ntodo, now_s() - t0, batch_s, batch.n, threads);
        }
    }

    long nan_scores = 0;
    for (long i = 0; i < pool.n; i++) nan_scores += pool.have[i] && isnan(pool.score[i]);
    printf("search space: %ld architectures of %s with a numeric %s (%ld NaN-target rows and %ld repeats "
           "skipped); %ld NaN scores%s",
           pool.n, tt.name, tt.header[tc], nan_target, dups, nan_scores, unscored ? " (" : "\n");
    if (unscored) printf("%ld without a row in %s, ranked lowest)\n", unscored, scores);
    printf("budget %ld look-ups, %ld runs, seed %llu, %s is better\n\n", budget, runs, (unsigned long long)seed,
           minimize ? "lower" : "higher");

    eps_search_pool sp = {pool.n, pool.code, pool.target, minimize, pool_score_cb, &pool};
    for (int c = 0; c < ncfg; c++) {
        cfg[c].curve = malloc((size_t)runs * (size_t)budget * sizeof(double));
        cfg[c].med = malloc((size_t)budget * sizeof(double));
        cfg[c].q25 = malloc((size_t)budget * sizeof(double));
        cfg[c].q75 = malloc((size_t)budget * sizeof(double));
        cfg[c].mean = malloc((size_t)budget * sizeof(double));
        if (!cfg[c].curve || !cfg[c].med || !cfg[c].q25 || !cfg[c].q75 || !cfg[c].mean) {
            rc = report(cmd, EPS_ENOMEM, "out of memory for %ld x %ld curve values", runs, budget);
            goto out;
        }
        eps_search_opts so = {cfg[c].algo, cfg[c].warmup, budget, (int)runs, seed, (int)pop, (int)tour};
        if (eps_search_run(&sp, &so, cfg[c].curve, &e) < 0) {
            rc = report_err(cmd, &e);
            goto out;
        }
        curve_summary(&cfg[c], (int)runs, budget, tmp);
    }

    long steps[64];
    int nsteps = 0;
    for (long dec = 10; dec <= budget && nsteps < 60; dec *= 10) {
        static const int mult[3] = {1, 2, 5};
        for (int k = 0; k < 3; k++)
            if (dec * mult[k] <= budget) steps[nsteps++] = dec * mult[k];
    }
    if (nsteps == 0 || steps[nsteps - 1] != budget) steps[nsteps++] = budget;
    printf("best %s so far: median [25%%, 75%%] over runs\n", tt.header[tc]);
    printf("%7s", "step");
    for (int c = 0; c < ncfg; c++) printf("  %-28s", cfg[c].label);
    printf("\n");
    for (int k = 0; k < nsteps; k++) {
        printf("%7ld", steps[k]);
        for (int c = 0; c < ncfg; c++) {
            char cell[64];
            long s = steps[k] - 1;
            snprintf(cell, sizeof cell, "%.3f [%.3f, %.3f]", cfg[c].med[s], cfg[c].q25[s], cfg[c].q75[s]);
            printf("  %-28s", cell);
        }
        printf("\n");
    }
    if (out_s) {
        FILE *f = open_out(cmd, out_s, &rc);
        if (!f) goto out;
        fprintf(f, "algo,warmup,step,median,q25,q75,mean\n");
        for (int c = 0; c < ncfg; c++)
            for (long s = 0; s < budget; s++)
                fprintf(f, "%s,%ld,%ld,%.17g,%.17g,%.17g,%.17g\n",
                        cfg[c].algo == EPS_SEARCH_RANDOM ? "random" : "evolution", cfg[c].warmup, s + 1, cfg[c].med[s],
                        cfg[c].q25[s], cfg[c].q75[s], cfg[c].mean[s]);
        if ((rc = close_out(cmd, f, out_s)) >= 0) goto out;
    }
    if (plot_s && (rc = plot_curves(cmd, plot_s, cfg, ncfg, budget, (int)runs, tt.header[tc], minimize)) >= 0)
        goto out;
    rc = 0;
out:
    for (int c = 0; c < ncfg; c++) {
        free(cfg[c].curve);
        free(cfg[c].med);
        free(cfg[c].q25);
        free(cfg[c].q75);
        free(cfg[c].mean);
    }
    if (have_batch) eps_batch_free(&batch);
    free(pool.code);
    free(pool.target);
    free(pool.score);
    free(pool.have);
    free(pool.todo);
    free(lookup);
    free(tmp);
    eps_table_free(&tt);
    eps_table_free(&st);
    return rc < 0 ? 0 : rc;
}

/* ======================================================================
 * epsinas search-weights
 * ====================================================================== */

#define SW_MAX_EXP 32

typedef struct {
    long n;
    int *code;
    const eps_batch *batch;
    int nexp;
    double w[SW_MAX_EXP];  /* candidate weights 10^k */
    int npairs;
    int pa[SW_MAX_EXP * SW_MAX_EXP], pb[SW_MAX_EXP * SW_MAX_EXP];
    double *eps;           /* npairs x n */
} sw_job;

/* One architecture: one forward pass per candidate weight, then epsilon for
 * every pair from the cached outputs (what eps_arch_score computes per pair,
 * with nexp instead of 2 x npairs passes). */
static int sw_one(void *ctx, long i, eps_error *err)
{
    sw_job *s = ctx;
    eps_arch a;
    int rc = arch_for_code(s->code[i], &a, err);
    if (rc < 0) return rc;
    long no = arch_outputs(&a, s->batch);
    float *y = malloc((size_t)no * (size_t)s->nexp * sizeof *y);
    if (!y) {
        eps_arch_free(&a);
        return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    }
    eps_run_opts o = {.engine = EPS_ENGINE_FAST};
    for (int k = 0; k < s->nexp && rc == 0; k++) rc = arch_forward(&a, s->batch, (float)s->w[k], &o, y + (size_t)k * no, err);
    if (rc == 0)
        for (int p = 0; p < s->npairs; p++) {
            double w[2] = {s->w[s->pa[p]], s->w[s->pb[p]]};
            eps_score sc;
            eps_score_epsilon(y + (size_t)s->pa[p] * no, y + (size_t)s->pb[p] * no, no, w, &sc);
            s->eps[(size_t)p * s->n + i] = sc.epsilon;
        }
    free(y);
    eps_arch_free(&a);
    return rc;
}

static void sw_help(FILE *f)
{
    fprintf(f,
            "usage: epsinas search-weights --space nb201 [--archs FILE] [--truth T.csv] [--sample 200]\n"
            "                              [--window -8:1] [--batch ramp] [--batch-size 256]\n"
            "                              [--seed 1] [--threads N] [--json]\n\n"
            "Which constant pair (w1, w2) to use: for every pair (10^a, 10^b), a < b, with integer\n"
            "exponents in the window, scores a sample of architectures and reports the fraction\n"
            "of NaN scores and, with a truth table, Spearman rho (over the non-NaN rows).\n"
            "The paper's rule picks the first pair with under 10%% NaN, pairs taken in order of\n"
            "increasing a, then increasing b: (1e-8,1e-7), (1e-8,1e-6), ..., (1e-7,1e-6), ...\n"
            "Also printed: the pair with the best rho.\n"
            "Each architecture is run once per weight (fast engine); epsilon of each pair is\n"
            "computed from those outputs exactly as 'epsinas score --weights' would.\n\n"
            "options:\n"
            "  --space nb201             the space (nb201 only)\n"
            "  --archs FILE              architectures, one per line (or a CSV with an arch column)\n"
            "  --truth FILE              truth CSV (arch + target); without --archs the sample is\n"
            "                            drawn from it. With neither: from all 15,625 cells.\n"
            "  --target COLUMN, --minimize, --truth-arch-column NAME   as in eval\n"
            "  --sample N                architectures to score (default 200; a fixed-seed sample)\n"
            "  --seed K                  sample seed (default 1)\n"
            "  --window A:B              exponent window (default -8:1)\n"
            "  --batch SPEC              default ramp; --batch-size N default 256\n"
            "  --threads N               scoring threads (default 0 = all CPUs)\n"
            "  --json                    machine-readable output\n");
}

int eps_cmd_search_weights(int argc, char **argv)
{
    const char *cmd = "search-weights";
    const char *space = "nb201", *archs_s = NULL, *truth = NULL, *target = NULL, *truth_col = "arch";
    const char *sample_s = "200", *seed_s = "1", *window_s = "-8:1", *batch_s = "ramp", *bsize_s = "256";
    const char *threads_s = "0";
    int minimize = 0, json = 0;
    const opt_spec specs[] = {{"--space", 1, &space, NULL},        {"--archs", 1, &archs_s, NULL},
                              {"--truth", 1, &truth, NULL},        {"--target", 1, &target, NULL},
                              {"--minimize", 0, NULL, &minimize},  {"--truth-arch-column", 1, &truth_col, NULL},
                              {"--sample", 1, &sample_s, NULL},    {"--seed", 1, &seed_s, NULL},
                              {"--window", 1, &window_s, NULL},    {"--batch", 1, &batch_s, NULL},
                              {"--batch-size", 1, &bsize_s, NULL}, {"--threads", 1, &threads_s, NULL},
                              {"--json", 0, NULL, &json},          {NULL, 0, NULL, NULL}};
    int rc = parse_opts(cmd, argc, argv, specs, sw_help);
    if (rc >= 0) return rc;
    if (strcmp(space, "nb201"))
        return report(cmd, EPS_EINVAL, "--space '%.40s' is not supported here (nb201)", space);
    long sample = 0, threads = 0;
    uint64_t seed = 0;
    if ((rc = parse_long(cmd, "--sample", sample_s, 1, EPS_NB201_COUNT, &sample)) != 0) return rc;
    if ((rc = parse_long(cmd, "--threads", threads_s, 0, 64, &threads)) != 0) return rc;
    if (threads == 0) threads = cpu_count();
    if ((rc = parse_u64(cmd, "--seed", seed_s, &seed)) != 0) return rc;
    int wa, wb;
    char wend;
    if (sscanf(window_s, "%d:%d%c", &wa, &wb, &wend) != 2 || wa >= wb || wa < -30 || wb > 30 || wb - wa + 1 > SW_MAX_EXP)
        return report(cmd, EPS_EINVAL, "--window must be A:B, integers with -30 <= A < B <= 30, got '%.40s'", window_s);

    /* Candidates: code + target (NaN when unknown). */
    eps_table tt = {0}, at = {0};
    eps_error e = {0};
    int *cand = malloc(EPS_NB201_COUNT * sizeof *cand);
    double *tval = malloc(EPS_NB201_COUNT * sizeof *tval); /* target by code */
    sw_job job = {0};
    eps_batch batch = {0};
    int have_batch = 0;
    double *col = NULL, *tcol = NULL;
    json_t *jo = NULL;
    rc = -1;
    if (!cand || !tval) {
        rc = report(cmd, EPS_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < EPS_NB201_COUNT; i++) tval[i] = NAN;
    const char *target_name = NULL;
    long ncand = 0;
    if (truth) {
        if (eps_table_read(truth, &tt, &e) < 0) {
            rc = report_err(cmd, &e);
            goto out;
        }
        if (tt.nrows == 0) {
            rc = report(cmd, EPS_EINVAL, "%s: header only, no rows", tt.name);
            goto out;
        }
        int tk, tc;
        if ((rc = need_col(cmd, &tt, truth_col, "--truth-arch-column NAME", &tk)) >= 0) goto out;
        if ((rc = pick_target(cmd, &tt, target, tk, &tc)) >= 0) goto out;
        rc = -1;
        target_name = tt.header[tc];
        for (long r = 0; r < tt.nrows; r++) {
            const char *as = eps_table_cell(&tt, r, tk);
            eps_nb201_cell cell;
            eps_error pe = {0};
            if (eps_nb201_parse(as, strlen(as), &cell, &pe) < 0) {
                rc = report(cmd, EPS_EINVAL, "%s:%ld: column '%s': %s", tt.name, tt.line[r], tt.header[tk], pe.msg);
                goto out;
            }
            double v;
            const char *vs = eps_table_cell(&tt, r, tc);
            if (eps_table_number(vs, &v) < 0) {
                rc = report(cmd, EPS_EINVAL, "%s:%ld: column '%s': '%.40s' is not a number", tt.name, tt.line[r],
                            tt.header[tc], vs);
                goto out;
            }
            int code = nb201_code(&cell);
            if (isnan(tval[code]) && !isnan(v)) {
                tval[code] = v;
                if (!archs_s) cand[ncand++] = code;
            }
        }
    }
    if (archs_s) {
        if (eps_table_read(archs_s, &at, &e) < 0) {
            rc = report_err(cmd, &e);
            goto out;
        }
        /* A plain list has no header: the first line is an architecture. */
        int ak = eps_table_col(&at, "arch");
        int plain = ak < 0;
        if (plain && at.ncols != 1) {
            rc = report(cmd, EPS_EINVAL, "%s: neither one architecture per line nor a CSV with an 'arch' column",
                        at.name);
            goto out;
        }
        long total = at.nrows + (plain ? 1 : 0);
        unsigned char *seen = calloc(EPS_NB201_COUNT, 1);
        if (!seen) {
            rc = report(cmd, EPS_ENOMEM, "out of memory");
            goto out;
        }
        for (long r = 0; r < total; r++) {
            const char *as = plain ? (r == 0 ? at.header[0] : eps_table_cell(&at, r - 1, 0))
                                   : eps_table_cell(&at, r, ak);
            long line = plain ? (r == 0 ? 1 : at.line[r - 1]) : at.line[r];
            eps_nb201_cell cell;
            eps_error pe = {0};
            if (eps_nb201_parse(as, strlen(as), &cell, &pe) < 0) {
                rc = report(cmd, EPS_EINVAL, "%s:%ld: %s", at.name, line, pe.msg);
                break;
            }
            int code = nb201_code(&cell);
            if (!seen[code]) {
                seen[code] = 1;
                cand[ncand++] = code;
            }
        }
        free(seen);
        if (rc >= 0) goto out;
    }
    if (!truth && !archs_s) {
        for (int i = 0; i < EPS_NB201_COUNT; i++) cand[ncand++] = i;
    }
    if (ncand == 0) {
        rc = report(cmd, EPS_EINVAL, "no architectures to score");
        goto out;
    }
    /* Fixed-seed sample: partial Fisher-Yates with eps_eval_rng_for(seed, 0). */
    long n = sample < ncand ? sample : ncand;
    eps_eval_rng g = eps_eval_rng_for(seed, 0);
    for (long k = 0; k < n; k++) {
        long j = k + (long)eps_eval_rng_below(&g, (uint64_t)(ncand - k));
        int t = cand[k];
        cand[k] = cand[j];
        cand[j] = t;
    }
    if ((rc = load_batch(cmd, batch_s, bsize_s, &batch)) >= 0) goto out;
    have_batch = 1;
    rc = -1;
    job.n = n;
    job.code = cand;
    job.batch = &batch;
    job.nexp = wb - wa + 1;
    for (int k = 0; k < job.nexp; k++) {
        char buf[16];
        snprintf(buf, sizeof buf, "1e%d", wa + k);
        job.w[k] = strtod(buf, NULL); /* the literal 1e-7, not pow()'s rounding */
    }
    for (int a = 0; a < job.nexp; a++)
        for (int b = a + 1; b < job.nexp; b++) {
            job.pa[job.npairs] = a;
            job.pb[job.npairs] = b;
            job.npairs++;
        }
    job.eps = malloc((size_t)job.npairs * (size_t)n * sizeof(double));
    col = malloc((size_t)n * sizeof *col);
    tcol = malloc((size_t)n * sizeof *tcol);
    if (!job.eps || !col || !tcol) {
        rc = report(cmd, EPS_ENOMEM, "out of memory");
        goto out;
    }
    double t0 = now_s();
    if (run_parallel(sw_one, &job, n, (int)threads, "architectures", &e) < 0) {
        rc = report_err(cmd, &e);
        goto out;
    }
    double elapsed = now_s() - t0;
    int rule = -1, best = -1;
    double best_rho = NAN;
    double *nanfrac = malloc((size_t)job.npairs * sizeof *nanfrac), *rho = malloc((size_t)job.npairs * sizeof *rho);
    long *nused = malloc((size_t)job.npairs * sizeof *nused);
    if (!nanfrac || !rho || !nused) {
        free(nanfrac);
        free(rho);
        free(nused);
        rc = report(cmd, EPS_ENOMEM, "out of memory");
        goto out;
    }
    for (int p = 0; p < job.npairs; p++) {
        long nn = 0, m = 0;
        for (long i = 0; i < n; i++) {
            double s = job.eps[(size_t)p * n + i];
            if (isnan(s)) {
                nn++;
                continue;
            }
            double tv = tval[cand[i]];
            if (truth && !isnan(tv)) {
                col[m] = s;
                tcol[m] = tv;
                m++;
            }
        }
        nanfrac[p] = (double)nn / (double)n;
        rho[p] = NAN;
        nused[p] = m;
        if (truth && eps_eval_spearman(col, tcol, m, &rho[p], &e) < 0) {
            rc = report_err(cmd, &e);
            break;
        }
        if (rule < 0 && nanfrac[p] < 0.10) rule = p;
        double key = minimize ? -rho[p] : rho[p];
        if (!isnan(key) && (best < 0 || key > (minimize ? -best_rho : best_rho))) {
            best = p;
            best_rho = rho[p];
        }
    }
    if (rc < 0) {
        if (json) {
            jo = json_object();
            json_object_set_new(jo, "space", json_string("nb201"));
            json_object_set_new(jo, "sample", json_integer(n));
            json_object_set_new(jo, "seed", json_integer((json_int_t)seed));
            json_object_set_new(jo, "batch", json_string(batch.source));
            json_object_set_new(jo, "batch_size", json_integer(batch.n));
            json_object_set_new(jo, "target", target_name ? json_string(target_name) : json_null());
            json_t *arr = json_array();
            for (int p = 0; p < job.npairs; p++) {
                json_t *o = json_object();
                json_object_set_new(o, "w1", json_real(job.w[job.pa[p]]));
                json_object_set_new(o, "w2", json_real(job.w[job.pb[p]]));
                json_object_set_new(o, "nan_fraction", json_real(nanfrac[p]));
                json_object_set_new(o, "rho", jnum(rho[p]));
                json_object_set_new(o, "n_rho", json_integer(nused[p]));
                json_array_append_new(arr, o);
            }
            json_object_set_new(jo, "pairs", arr);
            json_t *r = rule >= 0 ? json_pack("[f,f]", job.w[job.pa[rule]], job.w[job.pb[rule]]) : json_null();
            json_object_set_new(jo, "rule_pair", r);
            json_t *bp = best >= 0 ? json_pack("[f,f]", job.w[job.pa[best]], job.w[job.pb[best]]) : json_null();
            json_object_set_new(jo, "best_rho_pair", bp);
            json_object_set_new(jo, "seconds", json_real(elapsed));
            print_json(jo);
        } else {
            printf("%ld NB201 architectures (seed %llu), %s batch of %d, %d weight pairs, %.1f s\n", n,
                   (unsigned long long)seed, batch.source, batch.n, job.npairs, elapsed);
            printf("%10s %10s %8s %9s%s\n", "w1", "w2", "NaN %", "rho", truth ? "  (n)" : "");
            for (int p = 0; p < job.npairs; p++) {
                char r[32];
                fmt_stat(r, sizeof r, rho[p], "%.4f");
                printf("%10.0e %10.0e %8.1f %9s", job.w[job.pa[p]], job.w[job.pb[p]], nanfrac[p] * 100, r);
                if (truth) printf("  (%ld)", nused[p]);
                printf("%s%s\n", p == rule ? "  <- rule: first with < 10% NaN" : "", p == best ? "  <- best rho" : "");
            }
            if (rule >= 0) printf("rule (first pair by a, then b, with < 10%% NaN): (%g, %g)\n", job.w[job.pa[rule]],
                                  job.w[job.pb[rule]]);
            else printf("rule: no pair has under 10%% NaN\n");
            if (best >= 0) printf("best rho: (%g, %g), rho %.4f\n", job.w[job.pa[best]], job.w[job.pb[best]], best_rho);
        }
        rc = 0;
    }
    free(nanfrac);
    free(rho);
    free(nused);
out:
    json_decref(jo);
    if (have_batch) eps_batch_free(&batch);
    free(job.eps);
    free(col);
    free(tcol);
    free(cand);
    free(tval);
    eps_table_free(&tt);
    eps_table_free(&at);
    return rc < 0 ? 0 : rc;
}
