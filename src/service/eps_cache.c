/* eps_cache.c — the service's score cache (see cache.h): a mutex-guarded
 * LRU (chained hash table + recency list) bounded by entries and bytes, the
 * in-flight table that gives single flight, and the architecture-hash index
 * behind GET /v1/scores/{hash}. Owns every stored value (copied in). */
#include "epsinas/service/cache.h"
#include "epsinas/spaces/space.h"
#include "epsinas/core/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char *key;
    uint64_t h;
    char *val;
    size_t len, bytes;
    struct entry *hnext;             /* bucket chain */
    struct entry *lru_prev, *lru_next;
    struct arch_node *arch;
    struct entry *a_prev, *a_next;   /* per-architecture list, most recent first */
} entry;

typedef struct arch_node {
    char hash[33];
    uint64_t h;
    entry *head;
    struct arch_node *hnext;
} arch_node;

struct eps_cache_flight {
    eps_cache_key key;
    eps_cache_waiter *waiters;
    struct eps_cache_flight *hnext;
};

#define FLIGHT_BUCKETS 1024

struct eps_cache {
    pthread_mutex_t mu;
    long max_entries;
    long long max_bytes;
    entry **buckets;
    size_t nbuckets;
    arch_node **abuckets;
    size_t nabuckets;
    long n_arch;
    entry *lru_head, *lru_tail;      /* head = most recent */
    long entries;
    long long bytes;
    unsigned long long hits, misses, evictions, joined;
    eps_cache_flight *flights[FLIGHT_BUCKETS];
    eps_cache_backend backend;
    int has_backend;
};

/* FNV-1a 64 and a second, differently seeded multiply-xorshift hash; the
 * pair gives the 128-bit backend key id. */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t hash2(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    for (size_t i = 0; i < n; i++) h = mix64(h ^ (unsigned char)s[i]) + i;
    return mix64(h);
}

int eps_cache_key_make(eps_cache_key *k, const char *space, const char *canonical, const char *arch_hash,
                       const double w[2], const char *batch_hash, int batch_size, const char *engine,
                       const char *engine_version)
{
    memset(k, 0, sizeof *k);
    int n = snprintf(NULL, 0, "v1\n%s\n%s\n%.17g\n%.17g\n%s\n%d\n%s\n%s", space, canonical, w[0], w[1], batch_hash,
                     batch_size, engine, engine_version);
    if (n < 0) return EPS_EINTERNAL;
    k->text = malloc((size_t)n + 1);
    if (!k->text) return EPS_ENOMEM;
    snprintf(k->text, (size_t)n + 1, "v1\n%s\n%s\n%.17g\n%.17g\n%s\n%d\n%s\n%s", space, canonical, w[0], w[1],
             batch_hash, batch_size, engine, engine_version);
    k->h = eps_fnv1a(EPS_FNV1A_OFFSET, k->text, (size_t)n);
    snprintf(k->id, sizeof k->id, "epsinas:v1:%016llx%016llx", (unsigned long long)k->h,
             (unsigned long long)hash2(k->text, (size_t)n));
    snprintf(k->arch_hash, sizeof k->arch_hash, "%s", arch_hash ? arch_hash : "");
    return 0;
}

int eps_cache_key_for_arch(eps_cache_key *k, const eps_arch *a, const double weights[2], const char *batch_hash,
                           int batch_size, const char *engine)
{
    return eps_cache_key_make(k, a->space->name, a->canonical ? a->canonical : "", a->hash, weights, batch_hash,
                              batch_size, engine, EPS_VERSION);
}

void eps_cache_key_free(eps_cache_key *k)
{
    if (!k) return;
    free(k->text);
    k->text = NULL;
}

int eps_cache_new(long max_entries, long long max_bytes, const eps_cache_backend *backend, eps_cache **out,
                  eps_error *err)
{
    *out = NULL;
    eps_cache *c = calloc(1, sizeof *c);
    if (!c) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    c->max_entries = max_entries < 0 ? 0 : max_entries;
    c->max_bytes = max_bytes < 0 ? 0 : max_bytes;
    c->nbuckets = 1024;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    c->nabuckets = 1024;
    c->abuckets = calloc(c->nabuckets, sizeof *c->abuckets);
    if (!c->buckets || !c->abuckets) {
        free(c->buckets);
        free(c->abuckets);
        free(c);
        return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    }
    pthread_mutex_init(&c->mu, NULL);
    if (backend) {
        c->backend = *backend;
        c->has_backend = 1;
    }
    *out = c;
    return 0;
}

static void lru_unlink(eps_cache *c, entry *e)
{
    if (e->lru_prev) e->lru_prev->lru_next = e->lru_next;
    else c->lru_head = e->lru_next;
    if (e->lru_next) e->lru_next->lru_prev = e->lru_prev;
    else c->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(eps_cache *c, entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head) c->lru_head->lru_prev = e;
    c->lru_head = e;
    if (!c->lru_tail) c->lru_tail = e;
}

static void arch_unlink(eps_cache *c, entry *e)
{
    arch_node *a = e->arch;
    if (!a) return;
    if (e->a_prev) e->a_prev->a_next = e->a_next;
    else a->head = e->a_next;
    if (e->a_next) e->a_next->a_prev = e->a_prev;
    e->a_prev = e->a_next = NULL;
    e->arch = NULL;
    if (a->head) return;
    arch_node **pp = &c->abuckets[a->h & (c->nabuckets - 1)];
    while (*pp != a) pp = &(*pp)->hnext;
    *pp = a->hnext;
    free(a);
    c->n_arch--;
}

static void arch_push_front(eps_cache *c, entry *e, const char *hash)
{
    if (!*hash) return;
    uint64_t h = eps_fnv1a_str(hash);
    arch_node *a = c->abuckets[h & (c->nabuckets - 1)];
    while (a && strcmp(a->hash, hash)) a = a->hnext;
    if (!a) {
        if ((size_t)c->n_arch >= c->nabuckets) { /* grow: rehash all nodes */
            size_t nn = c->nabuckets * 2;
            arch_node **nb = calloc(nn, sizeof *nb);
            if (nb) {
                for (size_t i = 0; i < c->nabuckets; i++)
                    for (arch_node *x = c->abuckets[i], *nx; x; x = nx) {
                        nx = x->hnext;
                        x->hnext = nb[x->h & (nn - 1)];
                        nb[x->h & (nn - 1)] = x;
                    }
                free(c->abuckets);
                c->abuckets = nb;
                c->nabuckets = nn;
            }
        }
        a = calloc(1, sizeof *a);
        if (!a) return; /* the entry is still cached, just not indexed */
        snprintf(a->hash, sizeof a->hash, "%s", hash);
        a->h = h;
        a->hnext = c->abuckets[h & (c->nabuckets - 1)];
        c->abuckets[h & (c->nabuckets - 1)] = a;
        c->n_arch++;
    }
    e->arch = a;
    e->a_prev = NULL;
    e->a_next = a->head;
    if (a->head) a->head->a_prev = e;
    a->head = e;
}

static void arch_touch(eps_cache *c, entry *e)
{
    arch_node *a = e->arch;
    if (!a || a->head == e) return;
    if (e->a_prev) e->a_prev->a_next = e->a_next;
    if (e->a_next) e->a_next->a_prev = e->a_prev;
    e->a_prev = NULL;
    e->a_next = a->head;
    a->head->a_prev = e;
    a->head = e;
    (void)c;
}

static entry *find(eps_cache *c, const char *key, uint64_t h)
{
    for (entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext)
        if (e->h == h && !strcmp(e->key, key)) return e;
    return NULL;
}

static void remove_entry(eps_cache *c, entry *e)
{
    entry **pp = &c->buckets[e->h & (c->nbuckets - 1)];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(c, e);
    arch_unlink(c, e);
    c->entries--;
    c->bytes -= (long long)e->bytes;
    free(e->key);
    free(e->val);
    free(e);
}

static void grow(eps_cache *c)
{
    size_t nn = c->nbuckets * 2;
    entry **nb = calloc(nn, sizeof *nb);
    if (!nb) return; /* chains just get longer */
    for (size_t i = 0; i < c->nbuckets; i++)
        for (entry *e = c->buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = nb[e->h & (nn - 1)];
            nb[e->h & (nn - 1)] = e;
        }
    free(c->buckets);
    c->buckets = nb;
    c->nbuckets = nn;
}

/* Stores a copy; evicts from the LRU tail until both bounds hold. */
static void put_locked(eps_cache *c, const eps_cache_key *k, const char *val, size_t len)
{
    size_t klen = strlen(k->text);
    size_t bytes = sizeof(entry) + klen + 1 + len + 1;
    if (c->max_entries == 0 || (long long)bytes > c->max_bytes) return;
    entry *old = find(c, k->text, k->h);
    if (old) remove_entry(c, old);
    entry *e = calloc(1, sizeof *e);
    char *kc = malloc(klen + 1), *vc = malloc(len + 1);
    if (!e || !kc || !vc) {
        free(e);
        free(kc);
        free(vc);
        return;
    }
    memcpy(kc, k->text, klen + 1);
    memcpy(vc, val, len);
    vc[len] = 0;
    e->key = kc;
    e->val = vc;
    e->len = len;
    e->h = k->h;
    e->bytes = bytes;
    while (c->lru_tail && (c->entries + 1 > c->max_entries || c->bytes + (long long)bytes > c->max_bytes)) {
        remove_entry(c, c->lru_tail);
        c->evictions++;
    }
    if ((size_t)c->entries >= c->nbuckets) grow(c);
    e->hnext = c->buckets[e->h & (c->nbuckets - 1)];
    c->buckets[e->h & (c->nbuckets - 1)] = e;
    lru_push_front(c, e);
    arch_push_front(c, e, k->arch_hash);
    c->entries++;
    c->bytes += (long long)bytes;
}

/* A hit, under c->mu: a malloc'd copy of the value (caller frees; NULL when
 * out of memory, then nothing is counted), the entry moved to the front. */
static char *hit_locked(eps_cache *c, entry *e, size_t *len)
{
    char *copy = malloc(e->len + 1);
    if (!copy) return NULL;
    memcpy(copy, e->val, e->len + 1);
    *len = e->len;
    lru_unlink(c, e);
    lru_push_front(c, e);
    arch_touch(c, e);
    c->hits++;
    return copy;
}

eps_cache_result eps_cache_lookup(eps_cache *c, const eps_cache_key *k, eps_cache_waiter *w, char **val,
                                  size_t *len, eps_cache_flight **flight)
{
    *val = NULL;
    if (flight) *flight = NULL;
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, k->text, k->h);
    char *copy = e ? hit_locked(c, e, len) : NULL;
    if (copy) {
        pthread_mutex_unlock(&c->mu);
        *val = copy;
        return EPS_CACHE_HIT;
    }
    /* a miss, or out of memory for the copy: compute */
    c->misses++;
    w->next = NULL;
    eps_cache_flight **fb = &c->flights[k->h & (FLIGHT_BUCKETS - 1)];
    for (eps_cache_flight *f = *fb; f; f = f->hnext)
        if (f->key.h == k->h && !strcmp(f->key.text, k->text)) {
            w->next = f->waiters;
            f->waiters = w;
            c->joined++;
            pthread_mutex_unlock(&c->mu);
            return EPS_CACHE_JOINED;
        }
    eps_cache_flight *f = calloc(1, sizeof *f);
    char *text = f ? strdup(k->text) : NULL;
    if (!text) {
        free(f);
        pthread_mutex_unlock(&c->mu);
        return EPS_CACHE_LEAD; /* *flight stays NULL: compute without sharing */
    }
    f->key = *k;
    f->key.text = text;
    f->waiters = w;
    f->hnext = *fb;
    *fb = f;
    pthread_mutex_unlock(&c->mu);
    if (flight) *flight = f;
    return EPS_CACHE_LEAD;
}

int eps_cache_peek(eps_cache *c, const eps_cache_key *k, char **val, size_t *len)
{
    *val = NULL;
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, k->text, k->h);
    char *copy = e ? hit_locked(c, e, len) : NULL;
    pthread_mutex_unlock(&c->mu);
    *val = copy;
    return copy ? EPS_CACHE_HIT : -1;
}

char *eps_cache_backend_get(eps_cache *c, const eps_cache_flight *f, size_t *len)
{
    if (!c->has_backend || !c->backend.get || !f) return NULL;
    return c->backend.get(c->backend.ctx, f->key.id, len);
}

void eps_cache_finish(eps_cache *c, eps_cache_flight *f, int status, const char *val, size_t len)
{
    if (!f) return;
    pthread_mutex_lock(&c->mu);
    eps_cache_flight **pp = &c->flights[f->key.h & (FLIGHT_BUCKETS - 1)];
    while (*pp && *pp != f) pp = &(*pp)->hnext;
    if (*pp) *pp = f->hnext;
    if (status == 0 && val) put_locked(c, &f->key, val, len);
    eps_cache_waiter *w = f->waiters;
    f->waiters = NULL;
    pthread_mutex_unlock(&c->mu);
    if (status == 0 && val && c->has_backend && c->backend.put) c->backend.put(c->backend.ctx, f->key.id, val, len);
    while (w) {
        eps_cache_waiter *next = w->next; /* fn may free w */
        w->fn(w, status, val, len);
        w = next;
    }
    free(f->key.text);
    free(f);
}

int eps_cache_by_arch(eps_cache *c, const char *hash, char **vals, int max)
{
    int n = 0;
    uint64_t h = eps_fnv1a_str(hash);
    pthread_mutex_lock(&c->mu);
    arch_node *a = c->abuckets[h & (c->nabuckets - 1)];
    while (a && strcmp(a->hash, hash)) a = a->hnext;
    for (entry *e = a ? a->head : NULL; e && n < max; e = e->a_next) {
        vals[n] = malloc(e->len + 1);
        if (!vals[n]) break;
        memcpy(vals[n], e->val, e->len + 1);
        n++;
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

void eps_cache_get_stats(eps_cache *c, eps_cache_stats *s)
{
    pthread_mutex_lock(&c->mu);
    s->entries = c->entries;
    s->bytes = c->bytes;
    s->hits = c->hits;
    s->misses = c->misses;
    s->evictions = c->evictions;
    s->flights_joined = c->joined;
    pthread_mutex_unlock(&c->mu);
}

void eps_cache_free(eps_cache *c)
{
    if (!c) return;
    while (c->lru_head) remove_entry(c, c->lru_head);
    for (int i = 0; i < FLIGHT_BUCKETS; i++)
        for (eps_cache_flight *f = c->flights[i], *n; f; f = n) {
            n = f->hnext;
            free(f->key.text);
            free(f);
        }
    if (c->has_backend && c->backend.destroy) c->backend.destroy(c->backend.ctx);
    free(c->buckets);
    free(c->abuckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
