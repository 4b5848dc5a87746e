/* test_json_exact.c — service/json_exact.h: every real written as the
 * shortest of 15..17 significant digits that reads back as the same
 * double, always as a JSON real; nesting; the fallback when a string holds
 * the placeholder byte. Expected texts were computed in Python with the
 * same rule ('%.{15,16,17}g', first that round-trips, ".0" when bare). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epsinas/service/json_exact.h"

static const struct {
    double v;
    const char *text;
} reals[] = {
    {1e-07, "1e-07"},          /* a weight users type: not 9.9999999999999995e-08 */
    {0.1, "0.1"},
    {1.0, "1.0"},              /* stays a real */
    {-0.0, "-0.0"},            /* the sign survives */
    {0.30000000000000004, "0.30000000000000004"},  /* needs 17 */
    {0.3333333333333333, "0.3333333333333333"},    /* needs 16 */
    {5e-324, "4.94065645841247e-324"},             /* smallest subnormal: 15 read back */
    {2.2250738585072014e-308, "2.2250738585072014e-308"},
    {1e+301, "1e+301"},
    {1.2345678901234568e+17, "1.2345678901234568e+17"},
    {0.507945837391383, "0.507945837391383"},
    {-1.5e-05, "-1.5e-05"},
    {100.0, "100.0"},
};

static void test_each_real(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        char want[96], buf[40];
        snprintf(want, sizeof want, "{\"x\":%s}", reals[i].text);
        json_t *o = json_pack("{s:f}", "x", reals[i].v);
        char *got = eps_json_dumps_exact(o);
        json_decref(o);
        if (!got || strcmp(got, want)) fail_msg("case %zu: got %s, want %s", i, got ? got : "NULL", want);
        eps_json_exact_real(buf, sizeof buf, reals[i].v);
        assert_string_equal(buf, reals[i].text);
        double back = strtod(buf, NULL);
        assert_memory_equal(&back, &reals[i].v, sizeof back); /* bit for bit, -0.0 included */
        free(got);
    }
}

static void test_nesting_and_other_values(void **state)
{
    (void)state;
    json_t *o = json_pack("[f,[f,{s:f,s:i}],s,i,b,n]", 1.5, 0.1, "k", 1e-07, "n", 3, "s", 2, 1);
    char *got = eps_json_dumps_exact(o);
    json_decref(o);
    assert_non_null(got);
    assert_string_equal(got, "[1.5,[0.1,{\"k\":1e-07,\"n\":3}],\"s\",2,true,null]");
    free(got);
    o = json_object(); /* no reals at all: plain text */
    got = eps_json_dumps_exact(o);
    json_decref(o);
    assert_string_equal(got, "{}");
    free(got);
}

/* A string (or key) with the placeholder byte: the plain 17-digit text,
 * never a string mistaken for a number. */
static void test_placeholder_byte_falls_back(void **state)
{
    (void)state;
    json_t *o = json_pack("{s:s,s:f}", "a", "\x01" "0", "b", 0.1);
    char *got = eps_json_dumps_exact(o);
    char *plain = json_dumps(o, EPS_JSON_FLAGS);
    json_decref(o);
    assert_non_null(got);
    assert_string_equal(got, plain);
    assert_non_null(strstr(got, "\"\\u00010\""));
    assert_non_null(strstr(got, "0.10000000000000001"));
    free(got);
    free(plain);
    o = json_pack("{s:f}", "\x01key", 0.5);
    got = eps_json_dumps_exact(o);
    json_decref(o);
    assert_string_equal(got, "{\"\\u0001key\":0.5}");
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_real),
        cmocka_unit_test(test_nesting_and_other_values),
        cmocka_unit_test(test_placeholder_byte_falls_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
