/* test_util.c — core/util.h: FNV-1a against the published test vectors,
 * chaining, the file reader's limit (regular file and pipe), directories
 * and missing files, and the CPU count's bounds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "epsinas/core/util.h"

/* FNV-1a 64 vectors from the FNV reference test suite. */
static const struct {
    const char *in;
    uint64_t h;
} fnv_vectors[] = {
    {"", 0xcbf29ce484222325ULL},
    {"a", 0xaf63dc4c8601ec8cULL},
    {"foobar", 0x85944171f73967e8ULL},
};

static void test_fnv1a_vectors_and_chaining(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof fnv_vectors / sizeof fnv_vectors[0]; i++)
        assert_true(eps_fnv1a_str(fnv_vectors[i].in) == fnv_vectors[i].h);
    uint64_t h = eps_fnv1a(EPS_FNV1A_OFFSET, "foo", 3);
    assert_true(eps_fnv1a(h, "bar", 3) == 0x85944171f73967e8ULL);
}

static void test_read_file_limits(void **state)
{
    (void)state;
    char path[] = "/tmp/eps_util_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0123456789", 10), 10);
    close(fd);
    char *buf;
    size_t n;
    eps_error err = {0};
    assert_int_equal(eps_read_file(path, 10, "f", &buf, &n, &err), 0);
    assert_int_equal(n, 10);
    assert_string_equal(buf, "0123456789"); /* NUL-terminated */
    free(buf);
    assert_int_equal(eps_read_file(path, 9, "--spec", &buf, &n, &err), EPS_ELIMIT);
    assert_null(buf);
    assert_string_equal(err.field, "--spec");
    assert_non_null(strstr(err.msg, "larger than the limit of 9 bytes"));
    unlink(path);
    assert_int_equal(eps_read_file(path, 10, "batch", &buf, &n, &err), EPS_EIO);
    assert_non_null(strstr(err.msg, "cannot open"));
    assert_int_equal(eps_read_file("/tmp", 10, "batch", &buf, &n, &err), EPS_EIO);
    assert_non_null(strstr(err.msg, "is a directory"));
}

/* An endless source (a pipe from `yes`) stops at the limit instead of
 * growing without bound. */
static void test_read_file_endless_pipe(void **state)
{
    (void)state;
    char *buf;
    size_t n;
    eps_error err = {0};
    FILE *p = popen("yes 2>/dev/null", "r");
    assert_non_null(p);
    char dev[64];
    snprintf(dev, sizeof dev, "/dev/fd/%d", fileno(p));
    assert_int_equal(eps_read_file(dev, 1 << 20, "f", &buf, &n, &err), EPS_ELIMIT);
    pclose(p);
}

static void test_cpu_count_bounds(void **state)
{
    (void)state;
    assert_true(eps_cpu_count(256) >= 1);
    assert_int_equal(eps_cpu_count(1), 1);
    int64_t a = eps_now_ns(), b = eps_now_ns();
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv1a_vectors_and_chaining),
        cmocka_unit_test(test_read_file_limits),
        cmocka_unit_test(test_read_file_endless_pipe),
        cmocka_unit_test(test_cpu_count_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
