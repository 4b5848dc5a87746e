/* cache.h — score cache of the service: in-process LRU + single flight +
 * an index by architecture hash, with room for a shared second tier.
 *
 * Values are opaque serialized results (the service stores compact JSON).
 * Keys are built by eps_cache_key_make from everything that changes a score:
 * space, canonical architecture, weights, batch content hash, batch size,
 * engine and engine version. Lookup order for a request: local LRU
 * (eps_cache_lookup, on the HTTP thread), then the backend
 * (eps_cache_backend_get, on the worker that would compute), then compute;
 * eps_cache_finish writes both tiers and wakes every waiter.
 * All functions are thread-safe. */
#ifndef EPSINAS_CACHE_H
#define EPSINAS_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include "epsinas/core/error.h"

/* Second tier (e.g. Redis) behind the LRU. Both calls may block (they run on
 * compute workers), must be thread-safe, and must never fail a request:
 * a backend error is a miss / a dropped write. */
typedef struct eps_cache_backend {
    void *ctx;
    /* Returns a malloc'd copy of the value for `key` (caller frees) and its
     * length in *len, or NULL when absent or unreachable. */
    char *(*get)(void *ctx, const char *key, size_t *len);
    void (*put)(void *ctx, const char *key, const char *val, size_t len);
    void (*destroy)(void *ctx);
} eps_cache_backend;

typedef struct eps_cache_key {
    char *text;          /* owned: the full key material, compared on lookup */
    uint64_t h;          /* bucket hash */
    char id[48];         /* "epsinas:v1:" + 32 hex: the backend key */
    char arch_hash[33];  /* eps_arch.hash, for the by-architecture index */
} eps_cache_key;

typedef struct eps_cache eps_cache;
typedef struct eps_cache_flight eps_cache_flight;

/* A request waiting for a result. fn is called exactly once, on the thread
 * that calls eps_cache_finish, with status 0 and the value, or the
 * leader's non-zero status and its (error) payload; val is only valid
 * during the call. The waiter is owned by its caller and must stay alive
 * until fn runs. */
typedef struct eps_cache_waiter {
    void (*fn)(struct eps_cache_waiter *w, int status, const char *val, size_t len);
    void *ctx;
    long index;
    struct eps_cache_waiter *next; /* private */
} eps_cache_waiter;

typedef enum {
    EPS_CACHE_HIT = 0,   /* *val filled (malloc'd copy, caller frees) */
    EPS_CACHE_JOINED,    /* an identical computation is running: w will be called */
    EPS_CACHE_LEAD,      /* caller must compute and call eps_cache_finish(*flight); w is attached.
                          * *flight NULL = out of memory: w is NOT attached */
} eps_cache_result;

typedef struct eps_cache_stats {
    long entries;
    long long bytes;
    unsigned long long hits, misses, evictions, flights_joined;
} eps_cache_stats;

/* Builds the key (caller frees with eps_cache_key_free). weights are the
 * effective ones; engine_version changes whenever results may change. */
int eps_cache_key_make(eps_cache_key *k, const char *space, const char *canonical, const char *arch_hash,
                       const double weights[2], const char *batch_hash, int batch_size, const char *engine,
                       const char *engine_version);
void eps_cache_key_free(eps_cache_key *k);

/* The key of scoring a parsed architecture: space, canonical text (which
 * covers every result-affecting space field) and hash come from the arch,
 * the engine version is this build's. What the service and the tests use. */
struct eps_arch;
int eps_cache_key_for_arch(eps_cache_key *k, const struct eps_arch *a, const double weights[2],
                           const char *batch_hash, int batch_size, const char *engine);

/* max_entries 0 disables storing (single flight still works). backend may
 * be NULL; the cache takes ownership of it (destroy() on free). */
int eps_cache_new(long max_entries, long long max_bytes, const eps_cache_backend *backend, eps_cache **out,
                  eps_error *err);
void eps_cache_free(eps_cache *c);

eps_cache_result eps_cache_lookup(eps_cache *c, const eps_cache_key *k, eps_cache_waiter *w, char **val,
                                  size_t *len, eps_cache_flight **flight);
/* Local lookup only: EPS_CACHE_HIT with *val (malloc'd, caller frees), or
 * -1 on a miss (no flight is created, the miss is not counted). */
int eps_cache_peek(eps_cache *c, const eps_cache_key *k, char **val, size_t *len);
/* Second-tier lookup for a leader (blocking; call from a worker). NULL when
 * there is no backend or no value. Caller frees. */
char *eps_cache_backend_get(eps_cache *c, const eps_cache_flight *f, size_t *len);
/* Ends a flight: status 0 stores val in the LRU and the backend; then every
 * waiter's fn runs (outside the lock) and the flight is freed. */
void eps_cache_finish(eps_cache *c, eps_cache_flight *f, int status, const char *val, size_t len);

/* Up to max most recently used values for an architecture hash (most recent
 * first) as malloc'd strings in vals[] (caller frees each). Returns count. */
int eps_cache_by_arch(eps_cache *c, const char *arch_hash, char **vals, int max);

void eps_cache_get_stats(eps_cache *c, eps_cache_stats *s);

#endif
