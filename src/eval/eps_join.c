/* eps_join.c — the join of a scores table with a truth table (eval, select):
 * keys normalised (integer indices, JSON recipes in sorted compact form),
 * a repeated score key must repeat its score, every truth row with a score is
 * one matched row; and the column look-ups the search commands share. */
#include "epsinas/eval/join.h"
#include "epsinas/core/util.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* Lists a table's columns for "no column X" messages. */
static void list_columns(const eps_table *t, char *buf, size_t n)
{
    buf[0] = 0;
    for (int c = 0; c < t->ncols && strlen(buf) + 4 < n; c++) {
        if (c) strncat(buf, ", ", n - strlen(buf) - 1);
        strncat(buf, t->header[c], n - strlen(buf) - 1);
    }
}

int eps_join_need_col(const eps_table *t, const char *name, const char *flag, int *col, eps_error *err)
{
    *col = eps_table_col(t, name);
    if (*col >= 0) return 0;
    char cols[300];
    list_columns(t, cols, sizeof cols);
    return eps_error_set(err, EPS_EINVAL, "", "%s: no column '%.60s'%s%s (columns: %s)", t->name, name, flag ? "; use " : "",
                  flag ? flag : "", cols);
}

/* ---- string map: join key -> row ---------------------------------------- */

typedef struct {
    const char **key;
    long *row;
    size_t cap; /* power of two */
} strmap;

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
    size_t i = (size_t)eps_fnv1a_str(key) & (m->cap - 1);
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
    size_t i = (size_t)eps_fnv1a_str(key) & (m->cap - 1);
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


void eps_join_free(eps_join *j)
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

int eps_join_pick_target(const eps_table *t, const char *want, int key_col, int *col, eps_error *err)
{
    if (want) return eps_join_need_col(t, want, NULL, col, err);
    int after = eps_table_col(t, "arch");
    if (after < 0) after = key_col;
    for (int c = after + 1; c < t->ncols; c++) {
        if (!strcmp(t->header[c], "index") || !strcmp(t->header[c], "arch") || c == key_col) continue;
        if (column_numeric(t, c)) {
            *col = c;
            return 0;
        }
    }
    return eps_error_set(err, EPS_EINVAL, "", "%s: no numeric column after '%s' to use as the target; name one with --target",
                  t->name, t->header[after]);
}

/* Truth-row driven: every truth row whose key has a score is one matched
 * row, so duplicate truth rows (NLP recipes trained twice) each count. */
int eps_join_load(eps_join *j, eps_error *err)
{
    int rc;
    if ((rc = eps_table_read(j->scores_path, &j->st, err)) < 0) return rc;
    if ((rc = eps_table_read(j->truth_path, &j->tt, err)) < 0) return rc;
    j->n_scores = j->st.nrows;
    j->n_truth = j->tt.nrows;
    if (j->st.nrows == 0) return eps_error_set(err, EPS_EINVAL, "", "%s: header only, no rows", j->st.name);
    if (j->tt.nrows == 0) return eps_error_set(err, EPS_EINVAL, "", "%s: header only, no rows", j->tt.name);
    const char *defkey = j->by_index ? "index" : "arch";
    int sk, tk, sc, tc;
    if ((rc = eps_join_need_col(&j->st, j->scores_key ? j->scores_key : defkey,
                                j->by_index ? NULL : "--scores-arch-column NAME", &sk, err)) < 0) return rc;
    if ((rc = eps_join_need_col(&j->st, j->score_col ? j->score_col : "epsilon",
                                j->score_col ? NULL : "--score-column NAME", &sc, err)) < 0) return rc;
    if ((rc = eps_join_need_col(&j->tt, j->truth_key ? j->truth_key : defkey,
                                j->by_index ? NULL : "--truth-arch-column NAME", &tk, err)) < 0) return rc;
    if ((rc = eps_join_pick_target(&j->tt, j->target, tk, &tc, err)) < 0) return rc;
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
    int out = 0;
    if (!skeys || !sval || !used || !j->score || !j->target_v || !j->trow || !tkeys || strmap_init(&sm, ns) < 0 ||
        strmap_init(&tm, nt) < 0) {
        out = eps_error_set(err, EPS_ENOMEM, "", "out of memory joining %ld x %ld rows", ns, nt);
        goto done;
    }
    for (long r = 0; r < ns; r++) {
        const char *cell = eps_table_cell(&j->st, r, sk);
        skeys[r] = join_key(cell, j->by_index);
        if (!skeys[r]) {
            out = eps_error_set(err, EPS_EINVAL, "", "%s:%ld: column '%s': '%.40s' is not an integer index", j->st.name,
                         j->st.line[r], j->st.header[sk], cell);
            goto done;
        }
        const char *vs = eps_table_cell(&j->st, r, sc);
        if (eps_table_number(vs, &sval[r]) < 0) {
            out = eps_error_set(err, EPS_EINVAL, "", "%s:%ld: column '%s': '%.40s' is not a number (empty or nan for NaN)",
                         j->st.name, j->st.line[r], j->st.header[sc], vs);
            goto done;
        }
        long prev = strmap_put(&sm, skeys[r], r);
        if (prev >= 0) {
            double a = sval[prev], b = sval[r];
            if (!(a == b || (isnan(a) && isnan(b)))) {
                out = eps_error_set(err, EPS_EINVAL, "", "%s:%ld: '%.60s' is already on line %ld with a different %s (%g vs %g)",
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
            out = eps_error_set(err, EPS_EINVAL, "", "%s:%ld: column '%s': '%.40s' is not an integer index", j->tt.name,
                         j->tt.line[r], j->tt.header[tk], cell);
            goto done;
        }
        double tv;
        const char *vs = eps_table_cell(&j->tt, r, tc);
        if (eps_table_number(vs, &tv) < 0) {
            out = eps_error_set(err, EPS_EINVAL, "", "%s:%ld: column '%s': '%.40s' is not a number (empty or nan for NaN)",
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
        out = eps_error_set(err, EPS_EINVAL, "",
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

