/* util.h — the small helpers every stage needs once: FNV-1a hashing, the
 * monotonic clock, absolute deadlines for condition waits, the CPU count and
 * reading a whole file under a size limit (src/core/eps_util.c). */
#ifndef EPSINAS_CORE_UTIL_H
#define EPSINAS_CORE_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "epsinas/core/error.h"

/* FNV-1a 64: start from EPS_FNV1A_OFFSET, chain calls by passing the last
 * result as h. Used for content hashes (batches) and hash tables; not for
 * anything an attacker must not be able to collide. */
#define EPS_FNV1A_OFFSET 0xcbf29ce484222325ULL
uint64_t eps_fnv1a(uint64_t h, const void *data, size_t n);
uint64_t eps_fnv1a_str(const char *s);

/* CLOCK_MONOTONIC in nanoseconds, milliseconds and seconds. */
int64_t eps_now_ns(void);
double eps_now_ms(void);
double eps_now_s(void);
/* *ts = now + ms on CLOCK_MONOTONIC, for pthread_cond_timedwait on a
 * condition variable created with that clock. */
void eps_deadline_in(struct timespec *ts, long ms);
/* Waits on cv (a CLOCK_MONOTONIC condition variable, mu not held) until
 * *count, guarded by mu, is 0 or timeout_ms passed; returns *count then. */
long eps_wait_zero(pthread_mutex_t *mu, pthread_cond_t *cv, const long *count, long timeout_ms);
/* Sets *flag = 1 under mu and wakes every waiter on cv: how a thread that
 * waits on cv is told to stop. */
void eps_flag_raise(pthread_mutex_t *mu, pthread_cond_t *cv, int *flag);

/* Online CPUs, at least 1 and at most max. */
int eps_cpu_count(int max);

/* Reads all of path (a regular file or a pipe; not a directory) into a
 * NUL-terminated buffer, refusing more than max bytes. field names the
 * option or request field in errors. *out is the caller's (free). */
int eps_read_file(const char *path, size_t max, const char *field, char **out, size_t *len, eps_error *err);

#endif
