/* eps_util.c — hashing, clocks, CPU count and file reading (core/util.h),
 * kept in one place so every stage measures time and reads files alike. */
#include "epsinas/core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

uint64_t eps_fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

uint64_t eps_fnv1a_str(const char *s) { return eps_fnv1a(EPS_FNV1A_OFFSET, s, strlen(s)); }

int64_t eps_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

double eps_now_ms(void) { return (double)eps_now_ns() / 1e6; }
double eps_now_s(void) { return (double)eps_now_ns() / 1e9; }

void eps_deadline_in(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

long eps_wait_zero(pthread_mutex_t *mu, pthread_cond_t *cv, const long *count, long timeout_ms)
{
    struct timespec ts;
    eps_deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(mu);
    while (*count > 0)
        if (pthread_cond_timedwait(cv, mu, &ts) != 0) break;
    long n = *count;
    pthread_mutex_unlock(mu);
    return n;
}

void eps_flag_raise(pthread_mutex_t *mu, pthread_cond_t *cv, int *flag)
{
    pthread_mutex_lock(mu);
    *flag = 1;
    pthread_cond_broadcast(cv);
    pthread_mutex_unlock(mu);
}

int eps_cpu_count(int max)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > max ? max : (int)n;
}

int eps_read_file(const char *path, size_t max, const char *field, char **out, size_t *len, eps_error *err)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return eps_error_set(err, EPS_EIO, field, "cannot open '%.300s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return eps_error_set(err, EPS_EIO, field, "'%.300s' is a directory", path);
    }
    /* Chunks, not st_size: pipes and /proc report 0. At most max+1 bytes
     * are read, so an endless pipe cannot exhaust memory. */
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t want = cap - n;
        if (n + want > max + 1) want = max + 1 - n;
        size_t got = fread(buf + n, 1, want, f);
        n += got;
        if (got < want || n > max) break;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int io_error = ferror(f);
    fclose(f);
    if (!buf) return eps_error_set(err, EPS_ENOMEM, field, "out of memory reading '%.300s'", path);
    if (io_error || n > max) {
        free(buf);
        if (io_error) return eps_error_set(err, EPS_EIO, field, "cannot read '%.300s'", path);
        return eps_error_set(err, EPS_ELIMIT, field, "'%.300s' is larger than the limit of %zu bytes", path, max);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}
