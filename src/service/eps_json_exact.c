/* eps_json_exact.c — JSON text with exact, shortest reals (json_exact.h).
 * jansson prints reals at a fixed precision; here every real of a document
 * is swapped for a placeholder string, the document dumped, and each
 * placeholder replaced by the shortest text that reads back as the same
 * double. */
#include "epsinas/service/json_exact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void eps_json_exact_real(char *buf, size_t n, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eEn")) strncat(buf, ".0", n - strlen(buf) - 1); /* stays a JSON real */
}

typedef struct exact_reals {
    double *v;
    size_t n, cap;
} exact_reals;

static int has_mark_byte(const char *p, size_t n) { return memchr(p, 1, n) != NULL; }

/* -2 when a string or key under j holds the placeholder byte, else 0. */
static int check_no_mark(json_t *j)
{
    if (json_is_string(j)) return has_mark_byte(json_string_value(j), json_string_length(j)) ? -2 : 0;
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_object(j)) {
        json_object_foreach(j, key, v) if (has_mark_byte(key, strlen(key)) || check_no_mark(v)) return -2;
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) if (check_no_mark(v)) return -2;
    }
    return 0;
}

/* A placeholder string "\x01N" for real v (N = its index in r), or NULL
 * on allocation failure. */
static json_t *mark_of(const json_t *v, exact_reals *r)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        double *nv = realloc(r->v, nc * sizeof *nv);
        if (!nv) return NULL;
        r->v = nv, r->cap = nc;
    }
    char mark[24];
    snprintf(mark, sizeof mark, "\x01%zu", r->n);
    r->v[r->n++] = json_real_value(v);
    return json_string(mark);
}

/* Replaces every real under j by its placeholder. -1 on allocation failure. */
static int mark_reals(json_t *j, exact_reals *r)
{
    const char *key;
    json_t *v, *m;
    size_t i;
    if (json_is_object(j)) {
        json_object_foreach(j, key, v) {
            if (!json_is_real(v)) {
                if (mark_reals(v, r)) return -1;
            } else if (!(m = mark_of(v, r)) || json_object_set_new(j, key, m)) {
                return -1;
            }
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            if (!json_is_real(v)) {
                if (mark_reals(v, r)) return -1;
            } else if (!(m = mark_of(v, r)) || json_array_set_new(j, i, m)) {
                return -1;
            }
        }
    }
    return 0;
}

/* json_dumps(o, EPS_JSON_FLAGS) with every real in eps_json_exact_real form (o's reals are
 * replaced by placeholders on the way: o is consumed for reading). Caller
 * frees. */
char *eps_json_dumps_exact(json_t *o)
{
    exact_reals r = {0};
    int rc = check_no_mark(o); /* before anything is replaced */
    if (rc == 0) rc = mark_reals(o, &r);
    if (rc == -2) {
        free(r.v);
        return json_dumps(o, EPS_JSON_FLAGS);
    }
    if (rc) {
        free(r.v);
        return NULL;
    }
    char *text = json_dumps(o, EPS_JSON_FLAGS);
    if (!text || !r.n) {
        free(r.v);
        return text;
    }
    size_t cap = strlen(text) + r.n * 32 + 1, w = 0;
    char *out = malloc(cap);
    if (!out) {
        free(text);
        free(r.v);
        return NULL;
    }
    for (const char *p = text; *p;) {
        /* JSON_ENSURE_ASCII writes a placeholder as "\u0001N" */
        if (!strncmp(p, "\"\\u0001", 7)) {
            char *q;
            unsigned long idx = strtoul(p + 7, &q, 10);
            if (*q == '"' && idx < r.n) {
                char num[40];
                eps_json_exact_real(num, sizeof num, r.v[idx]);
                w += (size_t)snprintf(out + w, cap - w, "%s", num);
                p = q + 1;
                continue;
            }
        }
        out[w++] = *p++;
    }
    out[w] = 0;
    free(text);
    free(r.v);
    return out;
}
