/* test_redis.c — the Redis second cache tier (src/service/eps_redis.c) against a
 * real redis-server started on a free loopback port in a temp dir, plus a
 * listener that never answers (a "slow Redis") and a port nobody listens
 * on (a "down Redis"). Skips with a printed reason when redis-server is
 * not installed (make test-deps installs it). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "epsinas/service/cache.h"
#include "epsinas/service/config.h"
#include "epsinas/service/redis.h"
#include "util.h"

static char g_redis_bin[512];
static char g_dir[256];
static pid_t g_pid;   /* the redis-server, 0 when not running */
static int g_port;
static char g_url[64];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A port that was free a moment ago (the kernel hands out ephemeral ports
 * in sequence, so a reuse before we bind it is unlikely). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &n)) abort();
    close(fd);
    return ntohs(a.sin_port);
}

static int redis_ping(int port)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisSetTimeout(c, tv);
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return ok;
}

/* Runs one command on the test's own connection; returns the reply (caller frees). */
static redisReply *redis_cmd(const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", g_port, tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisSetTimeout(c, tv);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(r);
    return r;
}

static int redis_start(int port)
{
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    char log[300];
    snprintf(log, sizeof log, "%s/redis.log", g_dir);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        execl(g_redis_bin, g_redis_bin, "--port", portbuf, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
              "--dir", g_dir, "--daemonize", "no", "--logfile", log, (char *)NULL);
        _exit(127);
    }
    g_pid = pid;
    for (int i = 0; i < 200; i++) { /* up to ~10 s */
        if (redis_ping(port)) return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) break;
        pause_ms(50);
    }
    print_message("redis-server did not start on port %d; log %s\n", port, log);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    g_pid = 0;
    return -1;
}

static void redis_stop(void)
{
    if (!g_pid) return;
    kill(g_pid, SIGKILL);
    waitpid(g_pid, NULL, 0);
    g_pid = 0;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* as serve does: hiredis writes with write(2) */
    if (eps_t_tmpdir(g_dir, sizeof g_dir, "redis")) return -1;
    char *path = eps_t_run("command -v redis-server", NULL);
    if (path) {
        path[strcspn(path, "\n")] = 0;
        snprintf(g_redis_bin, sizeof g_redis_bin, "%s", path);
        free(path);
    }
    if (!g_redis_bin[0]) return 0; /* tests that need it skip */
    g_port = free_port();
    snprintf(g_url, sizeof g_url, "redis://127.0.0.1:%d/0", g_port);
    if (redis_start(g_port)) g_redis_bin[0] = 0;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    redis_stop();
    eps_t_rmtree(g_dir);
    return 0;
}

#define NEED_REDIS()                                                                                  \
    do {                                                                                              \
        if (!g_redis_bin[0] || !g_pid) {                                                              \
            print_message("SKIP: redis-server not installed or not started (make test-deps installs it)\n"); \
            skip();                                                                                   \
        }                                                                                             \
    } while (0)

/* ------------------------------------------------------------ URL parsing */

static void t_parse_url_cases(void **state)
{
    (void)state;
    json_t *doc = eps_t_load_json("tests/data/redis/urls.json");
    json_t *cases = json_object_get(doc, "cases");
    assert_true(json_array_size(cases) > 10);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *url = json_string_value(json_object_get(c, "url"));
        eps_redis_url u;
        eps_error err;
        eps_error_clear(&err);
        int rc = eps_redis_parse_url(url, "--redis-url", &u, &err);
        const char *want_err = json_string_value(json_object_get(c, "error"));
        if (want_err) {
            if (rc != EPS_EINVAL || !strstr(err.msg, want_err))
                fail_msg("%s: want error '%s', got rc %d '%s'", url, want_err, rc, err.msg);
            assert_string_equal(err.field, "--redis-url");
            assert_non_null(strstr(err.msg, "--redis-url"));
            /* the URL (and any password in it) is never echoed */
            if (strlen(url) > 12) assert_null(strstr(err.msg, url + 8));
            continue;
        }
        if (rc != 0) fail_msg("%s: unexpected error %s", url, err.msg);
        assert_string_equal(u.host, json_string_value(json_object_get(c, "host")));
        assert_int_equal(u.port, json_integer_value(json_object_get(c, "port")));
        assert_int_equal(u.db, json_integer_value(json_object_get(c, "db")));
        assert_string_equal(u.user, json_string_value(json_object_get(c, "user")));
        assert_string_equal(u.password, json_string_value(json_object_get(c, "password")));
    }
    json_decref(doc);
}

static void t_config_rows(void **state)
{
    (void)state;
    eps_config cfg;
    eps_error err;
    eps_cache_backend b;
    char *argv0[] = {"serve", NULL};
    eps_error_clear(&err);
    assert_int_equal(eps_config_parse(&cfg, 1, argv0, &err), 0);
    assert_string_equal(cfg.redis_url, "");
    assert_int_equal(cfg.redis_ttl_s, 86400);
    assert_int_equal(cfg.redis_timeout_ms, 50);
    assert_int_equal(eps_redis_backend_config(&cfg, &b, &err), 0); /* off: nothing created */
    eps_config_free(&cfg);

    char *argv1[] = {"serve", "--redis-url", "redis://127.0.0.1:99999", "--redis-ttl-s", "0", NULL};
    eps_error_clear(&err);
    assert_int_equal(eps_config_parse(&cfg, 5, argv1, &err), 0);
    assert_int_equal(cfg.redis_ttl_s, 0);
    assert_int_equal(eps_redis_backend_config(&cfg, &b, &err), EPS_EINVAL);
    assert_string_equal(err.field, "--redis-url");
    eps_config_free(&cfg);

    char *argv2[] = {"serve", "--redis-timeout-ms", "0", NULL};
    eps_error_clear(&err);
    assert_int_equal(eps_config_parse(&cfg, 3, argv2, &err), EPS_EINVAL);
    assert_non_null(strstr(err.msg, "--redis-timeout-ms"));
    eps_config_free(&cfg);

    /* the environment variable is read; a good URL gives a backend */
    setenv("EPSINAS_REDIS_URL", "redis://localhost:6379/2", 1);
    eps_error_clear(&err);
    assert_int_equal(eps_config_parse(&cfg, 1, argv0, &err), 0);
    unsetenv("EPSINAS_REDIS_URL");
    assert_string_equal(cfg.redis_url, "redis://localhost:6379/2");
    assert_int_equal(eps_redis_backend_config(&cfg, &b, &err), 1);
    assert_non_null(b.get);
    b.destroy(b.ctx); /* never connected: start-up does not need Redis */
    eps_config_free(&cfg);
}

/* ------------------------------------------------------------ against redis-server */

static void t_roundtrip_and_ttl(void **state)
{
    (void)state;
    NEED_REDIS();
    eps_cache_backend b;
    eps_error err;
    assert_int_equal(eps_redis_backend_new(g_url, 120, 500, 2, &b, &err), 0);
    unsigned long long e0 = eps_redis_errors_total();
    const char *val = "{\"epsilon\":0.5,\"s\":\"a b\\n%s\"}"; /* %s: sent as bytes, not a format */
    b.put(b.ctx, "epsinas:test:rt", val, strlen(val));
    size_t len = 0;
    char *got = b.get(b.ctx, "epsinas:test:rt", &len);
    assert_non_null(got);
    assert_int_equal(len, strlen(val));
    assert_memory_equal(got, val, len);
    free(got);
    /* absent key: a miss, not an error */
    assert_null(b.get(b.ctx, "epsinas:test:absent", &len));
    assert_int_equal(len, 0);
    assert_int_equal(eps_redis_errors_total(), e0);
    redisReply *r = redis_cmd("TTL %s", "epsinas:test:rt");
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer > 0 && r->integer <= 120);
    freeReplyObject(r);
    b.destroy(b.ctx);

    /* ttl 0: no expiry */
    assert_int_equal(eps_redis_backend_new(g_url, 0, 500, 1, &b, &err), 0);
    b.put(b.ctx, "epsinas:test:forever", val, strlen(val));
    r = redis_cmd("TTL %s", "epsinas:test:forever");
    assert_int_equal(r->integer, -1);
    freeReplyObject(r);
    b.destroy(b.ctx);
}

/* Whatever else sits in Redis under a key must not reach a client. */
static void t_foreign_values_are_misses(void **state)
{
    (void)state;
    NEED_REDIS();
    eps_cache_backend b;
    eps_error err;
    assert_int_equal(eps_redis_backend_new(g_url, 60, 500, 1, &b, &err), 0);
    freeReplyObject(redis_cmd("SET %s %s", "epsinas:test:junk", "not json"));
    freeReplyObject(redis_cmd("SET %s %s", "epsinas:test:arr", "[1,2]"));
    freeReplyObject(redis_cmd("SET %s %s", "epsinas:test:trunc", "{\"epsilon\":"));
    freeReplyObject(redis_cmd("LPUSH %s %s", "epsinas:test:list", "x"));
    const char *keys[] = {"epsinas:test:junk", "epsinas:test:arr", "epsinas:test:trunc", "epsinas:test:list"};
    for (int i = 0; i < 4; i++) {
        unsigned long long e0 = eps_redis_errors_total();
        size_t len = 7;
        assert_null(b.get(b.ctx, keys[i], &len));
        assert_int_equal(len, 0);
        assert_int_equal(eps_redis_errors_total(), e0 + 1);
    }
    /* the connection survives an error reply (WRONGTYPE) */
    const char *val = "{}";
    b.put(b.ctx, "epsinas:test:after", val, 2);
    size_t len;
    char *got = b.get(b.ctx, "epsinas:test:after", &len);
    assert_non_null(got);
    free(got);
    b.destroy(b.ctx);
}

typedef struct {
    eps_cache_backend *b;
    int id, n, bad;
} worker_arg;

static void *hammer(void *p)
{
    worker_arg *a = p;
    char key[64], val[64];
    for (int i = 0; i < a->n; i++) {
        snprintf(key, sizeof key, "epsinas:test:t%d:%d", a->id, i % 17);
        snprintf(val, sizeof val, "{\"t\":%d,\"i\":%d}", a->id, i);
        a->b->put(a->b->ctx, key, val, strlen(val));
        size_t len;
        char *got = a->b->get(a->b->ctx, key, &len);
        if (!got || len != strlen(val) || memcmp(got, val, len)) a->bad++;
        free(got);
    }
    return NULL;
}

/* More threads than connections: each connection is used by one thread at a time. */
static void t_threads_share_the_pool(void **state)
{
    (void)state;
    NEED_REDIS();
    eps_cache_backend b;
    eps_error err;
    assert_int_equal(eps_redis_backend_new(g_url, 60, 2000, 3, &b, &err), 0);
    unsigned long long e0 = eps_redis_errors_total();
    enum { T = 8 };
    pthread_t th[T];
    worker_arg a[T];
    for (int i = 0; i < T; i++) {
        a[i] = (worker_arg){&b, i, eps_t_asan() ? 40 : 300, 0};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &a[i]), 0);
    }
    int bad = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        bad += a[i].bad;
    }
    assert_int_equal(bad, 0);
    assert_int_equal(eps_redis_errors_total(), e0);
    b.destroy(b.ctx);
}

static void waiter_fn(eps_cache_waiter *w, int status, const char *val, size_t len)
{
    (void)val;
    (void)len;
    w->index = status == 0 ? 1 : -1;
}

/* Two caches (two replicas) over one Redis: what one computed, the other
 * finds behind its own (empty) LRU. */
static void t_two_caches_share_results(void **state)
{
    (void)state;
    NEED_REDIS();
    eps_cache_backend ba, bb;
    eps_error err;
    assert_int_equal(eps_redis_backend_new(g_url, 60, 500, 2, &ba, &err), 0);
    assert_int_equal(eps_redis_backend_new(g_url, 60, 500, 2, &bb, &err), 0);
    eps_cache *ca, *cb;
    assert_int_equal(eps_cache_new(100, 1 << 20, &ba, &ca, &err), 0);
    assert_int_equal(eps_cache_new(100, 1 << 20, &bb, &cb, &err), 0);
    eps_cache_key k;
    const double w[2] = {1e-7, 1.0};
    char arch_hash[40];
    snprintf(arch_hash, sizeof arch_hash, "%032lx", (unsigned long)getpid());
    assert_int_equal(eps_cache_key_make(&k, "nb201", "|test|", arch_hash, w, "bh", 256, "fast", "test"), 0);

    eps_cache_waiter wa = {.fn = waiter_fn}, wb = {.fn = waiter_fn};
    eps_cache_flight *fa = NULL, *fb = NULL;
    char *val = NULL;
    size_t len = 0;
    assert_int_equal(eps_cache_lookup(ca, &k, &wa, &val, &len, &fa), EPS_CACHE_LEAD);
    assert_non_null(fa);
    assert_null(eps_cache_backend_get(ca, fa, &len)); /* nobody computed it yet */
    const char *result = "{\"epsilon\":0.25}";
    eps_cache_finish(ca, fa, 0, result, strlen(result));
    assert_int_equal(wa.index, 1);

    assert_int_equal(eps_cache_lookup(cb, &k, &wb, &val, &len, &fb), EPS_CACHE_LEAD);
    char *got = eps_cache_backend_get(cb, fb, &len);
    assert_non_null(got);
    assert_string_equal(got, result);
    eps_cache_finish(cb, fb, 0, got, len);
    free(got);
    /* and it is now in replica b's LRU */
    assert_int_equal(eps_cache_peek(cb, &k, &val, &len), EPS_CACHE_HIT);
    assert_string_equal(val, result);
    free(val);
    redisReply *r = redis_cmd("EXISTS %s", k.id);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    eps_cache_key_free(&k);
    eps_cache_free(ca);
    eps_cache_free(cb);
}

/* ------------------------------------------------------------ failures */

/* Nothing listens: every operation is a counted miss / dropped write, fast. */
static void t_down_redis_is_a_miss(void **state)
{
    (void)state;
    int port = free_port();
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    eps_cache_backend b;
    eps_error err;
    assert_int_equal(eps_redis_backend_new(url, 60, 50, 2, &b, &err), 0);
    unsigned long long e0 = eps_redis_errors_total();
    double t0 = now_ms();
    for (int i = 0; i < 50; i++) {
        size_t len = 3;
        assert_null(b.get(b.ctx, "epsinas:test:x", &len));
        assert_int_equal(len, 0);
        b.put(b.ctx, "epsinas:test:x", "{}", 2);
    }
    assert_int_equal(eps_redis_errors_total(), e0 + 100);
    assert_true(now_ms() - t0 < 2000);
    b.destroy(b.ctx);
}

/* A Redis that accepts but never answers (stopped, overloaded): the first
 * operation waits one timeout, then the backoff keeps the next ones from
 * waiting at all. Without the backoff 20 operations would take >= 20 x 200 ms. */
static void t_slow_redis_times_out_then_backs_off(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0); /* never accepted: the kernel completes the handshake */
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &n), 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(a.sin_port));
    eps_cache_backend b;
    eps_error err;
    assert_int_equal(eps_redis_backend_new(url, 60, 200, 1, &b, &err), 0);
    unsigned long long e0 = eps_redis_errors_total();
    size_t len;
    double t0 = now_ms();
    assert_null(b.get(b.ctx, "epsinas:test:slow", &len));
    double first = now_ms() - t0;
    assert_true(first >= 150);   /* it did wait for the reply... */
    assert_true(first < 3000);   /* ...but only about one timeout */
    t0 = now_ms();
    for (int i = 0; i < 20; i++) {
        assert_null(b.get(b.ctx, "epsinas:test:slow", &len));
        b.put(b.ctx, "epsinas:test:slow", "{}", 2);
    }
    double rest = now_ms() - t0;
    print_message("# slow redis: first get %.0f ms, next 40 operations %.0f ms\n", first, rest);
    assert_true(rest < 2000);
    assert_int_equal(eps_redis_errors_total(), e0 + 41);
    b.destroy(b.ctx);
    close(fd);
}

/* Redis going away and coming back (restart): picked up without a restart of ours. */
static void t_reconnects_after_restart(void **state)
{
    (void)state;
    NEED_REDIS();
    eps_cache_backend b;
    eps_error err;
    assert_int_equal(eps_redis_backend_new(g_url, 60, 100, 2, &b, &err), 0);
    b.put(b.ctx, "epsinas:test:r1", "{\"a\":1}", 7);
    size_t len;
    char *got = b.get(b.ctx, "epsinas:test:r1", &len);
    assert_non_null(got);
    free(got);

    redis_stop();
    unsigned long long e0 = eps_redis_errors_total();
    assert_null(b.get(b.ctx, "epsinas:test:r1", &len));
    assert_true(eps_redis_errors_total() > e0);

    assert_int_equal(redis_start(g_port), 0); /* empty: no persistence */
    int ok = 0;
    double t0 = now_ms();
    while (!ok && now_ms() - t0 < 10000) { /* backoff is at most 2 s */
        b.put(b.ctx, "epsinas:test:r2", "{\"a\":2}", 7);
        got = b.get(b.ctx, "epsinas:test:r2", &len);
        ok = got && len == 7;
        free(got);
        if (!ok) pause_ms(20);
    }
    print_message("# reconnected %.0f ms after the restart\n", now_ms() - t0);
    assert_true(ok);
    b.destroy(b.ctx);
}

EPS_T_MAIN(group_setup, group_teardown,
        cmocka_unit_test(t_parse_url_cases),
        cmocka_unit_test(t_config_rows),
        cmocka_unit_test(t_roundtrip_and_ttl),
        cmocka_unit_test(t_foreign_values_are_misses),
        cmocka_unit_test(t_threads_share_the_pool),
        cmocka_unit_test(t_two_caches_share_results),
        cmocka_unit_test(t_down_redis_is_a_miss),
        cmocka_unit_test(t_slow_redis_times_out_then_backs_off),
        cmocka_unit_test(t_reconnects_after_restart))
