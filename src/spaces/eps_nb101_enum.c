/* eps_nb101_enum.c — enumerates the NAS-Bench-101 space (see nb101_enum.h
 * for the space, the order and why it is fast). Owns: the canonical-
 * representative filter (matrix minimality, labelling minimality under the
 * matrix's automorphisms) and the hash dedup table. */
#include "epsinas/spaces/nb101_enum.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { V = EPS_NB101_MAX_VERTICES, MAX_PERMS = 120 };

/* NAS-Bench-101's gen_is_edge_fn: edge (x,y), x<y, is bit x + y(y-1)/2. */
static int edge_bit(int x, int y) { return x + y * (y - 1) / 2; }

/* All permutations of the interior vertices 1..n-2 (0 and n-1 fixed),
 * in lexicographic order, the identity first. Returns the count. */
static int interior_perms(int n, int perms[MAX_PERMS][V])
{
    int p[V], k = 0;
    for (int i = 0; i < n; i++) p[i] = i;
    for (;;) {
        memcpy(perms[k++], p, sizeof p);
        /* next permutation of p[1..n-2] */
        int i = n - 3;
        while (i >= 1 && p[i] > p[i + 1]) i--;
        if (i < 1) break;
        int j = n - 2;
        while (p[j] < p[i]) j--;
        int t = p[i]; p[i] = p[j]; p[j] = t;
        for (int a = i + 1, b = n - 2; a < b; a++, b--) t = p[a], p[a] = p[b], p[b] = t;
    }
    return k;
}

static int is_full(int n, uint32_t bits)
{
    int has_out[V] = {0}, has_in[V] = {0};
    for (int y = 1; y < n; y++)
        for (int x = 0; x < y; x++)
            if (bits >> edge_bit(x, y) & 1) has_out[x] = has_in[y] = 1;
    for (int v = 0; v < n; v++)
        if ((v < n - 1 && !has_out[v]) || (v > 0 && !has_in[v])) return 0;
    return 1;
}

/* Bits of the matrix relabelled by p (vertex v becomes p[v]), or
 * UINT32_MAX when p maps an edge backwards (not upper-triangular). */
static uint32_t permute_bits(int n, uint32_t bits, const int *p)
{
    uint32_t r = 0;
    for (int y = 1; y < n; y++)
        for (int x = 0; x < y; x++)
            if (bits >> edge_bit(x, y) & 1) {
                if (p[x] > p[y]) return UINT32_MAX;
                r |= 1u << edge_bit(p[x], p[y]);
            }
    return r;
}

/* ------------------------------------------------------- hash dedup set */

typedef struct hset {
    unsigned char (*keys)[16];
    unsigned char *used;
    size_t cap, n;
} hset;

static int hex_nibble(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

/* Inserts the 32-hex hash; 1 when new, 0 when present, EPS_ENOMEM. */
static int hset_add(hset *h, const char *hex)
{
    if ((h->n + 1) * 2 > h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 1 << 16;
        hset g = {calloc(nc, 16), calloc(nc, 1), nc, 0};
        if (!g.keys || !g.used) {
            free(g.keys);
            free(g.used);
            return EPS_ENOMEM;
        }
        for (size_t i = 0; i < h->cap; i++) {
            if (!h->used[i]) continue;
            size_t s;
            memcpy(&s, h->keys[i], sizeof s);
            for (s &= nc - 1; g.used[s]; s = (s + 1) & (nc - 1)) {}
            memcpy(g.keys[s], h->keys[i], 16);
            g.used[s] = 1;
        }
        g.n = h->n;
        free(h->keys);
        free(h->used);
        *h = g;
    }
    unsigned char k[16];
    for (int i = 0; i < 16; i++) k[i] = (unsigned char)(hex_nibble(hex[2 * i]) << 4 | hex_nibble(hex[2 * i + 1]));
    size_t s;
    memcpy(&s, k, sizeof s); /* md5 bytes are already uniform */
    for (s &= h->cap - 1; h->used[s]; s = (s + 1) & (h->cap - 1))
        if (!memcmp(h->keys[s], k, 16)) return 0;
    memcpy(h->keys[s], k, 16);
    h->used[s] = 1;
    h->n++;
    return 1;
}

/* ------------------------------------------------------------ enumerate */

typedef struct out_buf {
    eps_nb101_cell *v;
    long n, cap;
} out_buf;

static int emit(out_buf *o, hset *h, const eps_nb101_spec *s)
{
    char hash[33];
    eps_nb101_hash(s, hash);
    int rc = hset_add(h, hash);
    if (rc <= 0) return rc;
    if (o->n == o->cap) {
        long nc = o->cap ? o->cap * 2 : 4096;
        eps_nb101_cell *nv = realloc(o->v, sizeof *nv * (size_t)nc);
        if (!nv) return EPS_ENOMEM;
        o->v = nv;
        o->cap = nc;
    }
    o->v[o->n].spec = *s;
    memcpy(o->v[o->n].hash, hash, 33);
    o->n++;
    return 0;
}

/* Emits the labellings of one canonical matrix that are minimal under its
 * automorphisms (auts[0..na), identity excluded). */
static int emit_labellings(out_buf *o, hset *h, int n, uint32_t bits, int auts[MAX_PERMS][V], int na, long limit)
{
    eps_nb101_spec s;
    memset(&s, 0, sizeof s);
    s.n = n;
    for (int y = 1; y < n; y++)
        for (int x = 0; x < y; x++) s.adj[x][y] = (unsigned char)(bits >> edge_bit(x, y) & 1);
    s.label[0] = EPS_NB101_INPUT;
    s.label[n - 1] = EPS_NB101_OUTPUT;
    int m = n - 2, total = 1;
    for (int i = 0; i < m; i++) total *= 3;
    for (int L = 0; L < total && (limit <= 0 || o->n < limit); L++) {
        int lab[V];
        for (int i = m, t = L; i >= 1; i--, t /= 3) lab[i] = t % 3; /* vertex 1 most significant */
        int minimal = 1;
        for (int a = 0; a < na && minimal; a++) {
            int pl[V];
            for (int v = 1; v <= m; v++) pl[auts[a][v]] = lab[v];
            for (int v = 1; v <= m; v++)
                if (pl[v] != lab[v]) {
                    if (pl[v] < lab[v]) minimal = 0;
                    break;
                }
        }
        if (!minimal) continue;
        for (int v = 1; v <= m; v++) s.label[v] = (signed char)lab[v];
        int rc = emit(o, h, &s);
        if (rc < 0) return rc;
    }
    return 0;
}

int eps_nb101_enumerate(int max_vertices, long limit, eps_nb101_cell **out, long *n_out, eps_error *err)
{
    *out = NULL;
    *n_out = 0;
    if (max_vertices < 2 || max_vertices > V)
        return eps_error_set(err, EPS_EINVAL, "max_vertices", "max_vertices %d is not 2..%d", max_vertices, V);
    out_buf o = {0};
    hset h = {0};
    static int perms[MAX_PERMS][V], auts[MAX_PERMS][V];
    int rc = 0;
    for (int n = 2; n <= max_vertices && !rc && (limit <= 0 || o.n < limit); n++) {
        int np = interior_perms(n, perms);
        int ebits = n * (n - 1) / 2;
        for (uint32_t bits = 0; bits < (1u << ebits) && !rc && (limit <= 0 || o.n < limit); bits++) {
            if (__builtin_popcount(bits) > EPS_NB101_MAX_EDGES || !is_full(n, bits)) continue;
            int canonical = 1, na = 0;
            for (int k = 1; k < np; k++) { /* perms[0] is the identity */
                uint32_t pb = permute_bits(n, bits, perms[k]);
                if (pb < bits) {
                    canonical = 0;
                    break;
                }
                if (pb == bits) memcpy(auts[na++], perms[k], sizeof perms[k]);
            }
            if (canonical) rc = emit_labellings(&o, &h, n, bits, auts, na, limit);
        }
    }
    free(h.keys);
    free(h.used);
    if (rc < 0) {
        free(o.v);
        return eps_error_set(err, EPS_ENOMEM, "", "out of memory enumerating NAS-Bench-101");
    }
    *out = o.v;
    *n_out = o.n;
    return 0;
}
