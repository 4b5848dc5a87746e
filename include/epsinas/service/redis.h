/* redis.h — the shared second cache tier of `epsinas serve` (hiredis).
 *
 * An eps_cache_backend whose get is `GET key` and whose put is
 * `SET key value EX ttl`, so every replica of a fleet sees the scores any
 * of them computed. Redis being down, slow or returning garbage never fails
 * a request: the operation becomes a miss (get) or a dropped write (put),
 * is counted in eps_redis_errors_total(), and after a connection error no
 * connection is attempted again until a backoff (100 ms doubling to 2 s)
 * has passed, so an unreachable Redis costs requests at most one timeout
 * per backoff period rather than one per request.
 *
 * The process must ignore SIGPIPE (serve does): hiredis writes with write(2).
 * All functions are thread-safe. */
#ifndef EPSINAS_REDIS_H
#define EPSINAS_REDIS_H

#include "epsinas/service/cache.h"
#include "epsinas/service/config.h"
#include "epsinas/core/error.h"

#define EPS_REDIS_MAX_VALUE (1 << 20) /* larger values are neither stored nor accepted */
#define EPS_REDIS_MAX_POOL 64

typedef struct eps_redis_url {
    char host[256];     /* name or numeric address (IPv6 without brackets) */
    int port;           /* default 6379 */
    int db;             /* SELECT index, default 0 */
    char user[128];     /* ACL user, "" = default user */
    char password[256]; /* "" = no AUTH */
} eps_redis_url;

/* Parses redis://[[user]:password@]host[:port][/db] (IPv6 hosts in
 * brackets). On error the message names `field` (e.g. "--redis-url") and
 * never repeats the URL, which may hold a password. */
int eps_redis_parse_url(const char *url, const char *field, eps_redis_url *out, eps_error *err);

/* Creates the backend (no connection is made yet: Redis need not be up at
 * start-up). ttl_s 0 = keys never expire. pool = connections, one per
 * concurrent caller at most (1..EPS_REDIS_MAX_POOL). *out is owned by the
 * caller until handed to eps_cache_new, which then owns it (destroy()). */
int eps_redis_backend_new(const char *url, long long ttl_s, long long timeout_ms, int pool, eps_cache_backend *out,
                          eps_error *err);

/* The same from the service configuration: returns 1 with *out filled when
 * cfg->redis_url is set, 0 (nothing created) when it is empty, or a
 * negative code (bad URL: EPS_EINVAL naming --redis-url). */
int eps_redis_backend_config(const eps_config *cfg, eps_cache_backend *out, eps_error *err);

/* Process-wide count of get/put operations that could not be completed
 * against Redis (connection or protocol errors, timeouts, error replies,
 * invalid stored values, and operations skipped during a backoff). */
unsigned long long eps_redis_errors_total(void);

#endif
