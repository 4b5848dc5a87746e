/* test_nb201.c — NAS-Bench-201 parsing, canonical form, network size, the
 * NaN set of spec §7 (on the CIFAR and the ImageNet16-120 networks), and the
 * `epsinas score` CLI contract. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epsinas/spaces/nb201.h"
#include "epsinas/spaces/space.h"
#include "util.h"

static void test_roundtrip_all(void **state)
{
    (void)state;
    for (int i = 0; i < EPS_NB201_COUNT; i++) {
        eps_nb201_cell c, d;
        char buf[EPS_NB201_STR_MAX];
        eps_nb201_from_index(i, &c);
        eps_nb201_format(&c, buf);
        eps_error err = {0};
        assert_int_equal(eps_nb201_parse(buf, strlen(buf), &d, &err), 0);
        assert_memory_equal(c.op, d.op, EPS_NB201_EDGES);
    }
}

static void test_bad_archs(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/nb201/bad_archs.txt", eps_t_root());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\n")] = 0;
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = 0;
        const char *arch = strcmp(line, "EMPTY") ? line : "";
        eps_nb201_cell c;
        eps_error err = {0};
        int rc = eps_nb201_parse(arch, strlen(arch), &c, &err);
        if (rc != EPS_EINVAL || !strstr(err.msg, tab + 1)) {
            print_error("arch '%s'\n  expected: %s\n  got (%d): %s\n", arch, tab + 1, rc, err.msg);
            fail();
        }
        assert_string_equal(err.field, "arch");
        assert_true(err.column >= 1);
        cases++;
    }
    fclose(f);
    assert_true(cases >= 15);
}

static void test_huge_string(void **state)
{
    (void)state;
    size_t n = 10u << 20;
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, '|', n);
    s[n] = 0;
    eps_nb201_cell c;
    eps_error err = {0};
    assert_int_equal(eps_nb201_parse(s, n, &c, &err), EPS_EINVAL);
    assert_non_null(strstr(err.msg, "10485760 bytes long"));
    free(s);
}

static long long params_of(const char *arch)
{
    eps_nb201_cell c;
    eps_graph g;
    eps_error err = {0};
    assert_int_equal(eps_nb201_parse(arch, strlen(arch), &c, &err), 0);
    assert_int_equal(eps_nb201_build(&c, &g, &err), 0);
    long long p = eps_graph_params(&g);
    eps_graph_free(&g);
    return p;
}

static void test_params_spec_examples(void **state)
{
    (void)state;
    assert_int_equal(params_of("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"),
                     128721);
    assert_int_equal(params_of("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"),
                     801841);
}

static void canon(const char *in, const char *want)
{
    eps_nb201_cell c, d;
    char buf[EPS_NB201_STR_MAX];
    assert_int_equal(eps_nb201_parse(in, strlen(in), &c, NULL), 0);
    eps_nb201_canonical(&c, &d);
    eps_nb201_format(&d, buf);
    assert_string_equal(buf, want);
}

static void test_canonical(void **state)
{
    (void)state;
    /* node 1 is zero: its out-edges are dead */
    canon("|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|skip_connect~2|",
          "|none~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|skip_connect~2|");
    /* node 2 never reaches node 3: edges into it are dead */
    canon("|skip_connect~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|none~2|",
          "|skip_connect~0|+|none~0|none~1|+|skip_connect~0|avg_pool_3x3~1|none~2|");
    /* everything live stays */
    canon("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
          "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|");
    /* no path at all: all none */
    canon("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|",
          "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|");
}

/* Spec §7: with the default weights, epsilon is NaN exactly for the cells
 * without an input->output path of skip/avg-pool edges. Checked per dataset
 * network (ImageNet16-120: 3x16x16 input, the same rule as CIFAR) on every
 * distinct canonical cell (every 7th under ASan), batch 16 of the ramp
 * drawn at the network's shape; 6,399 of the 15,625 cells are NaN. */
static void nan_set(const char *dataset)
{
    const eps_space_dataset *ds = eps_space_dataset_find(&eps_nb201_space, dataset);
    assert_non_null(ds);
    eps_batch b;
    eps_error err = {0};
    assert_int_equal(eps_batch_load_shape("ramp", 16, (eps_image_shape){ds->c, ds->h, ds->w}, &b, &err), 0);
    static unsigned char seen[EPS_NB201_COUNT];
    memset(seen, 0, sizeof seen);
    int checked = 0, nans = 0, cells_nan = 0, step = eps_t_asan() ? 7 : 1;
    for (int i = 0; i < EPS_NB201_COUNT; i += step) {
        eps_nb201_cell c, d;
        eps_nb201_from_index(i, &c);
        cells_nan += !eps_nb201_has_parameterless_path(&c);
        eps_nb201_canonical(&c, &d);
        int key = 0;
        for (int e = EPS_NB201_EDGES - 1; e >= 0; e--) key = key * EPS_NB201_OPS + d.op[e];
        if (seen[key]) continue;
        seen[key] = 1;
        char buf[EPS_NB201_STR_MAX];
        eps_nb201_format(&d, buf);
        json_t *req = json_pack("{s:s, s:s, s:s}", "space", "nb201", "arch", buf, "dataset", dataset);
        eps_arch a;
        assert_int_equal(eps_arch_from_json(req, &a, &err), 0);
        json_decref(req);
        eps_score sc;
        assert_int_equal(eps_arch_score(&a, &b, NULL, NULL, &sc, &err), 0);
        int want_nan = !eps_nb201_has_parameterless_path(&c);
        if (want_nan != isnan(sc.epsilon)) {
            print_error("%s on %s: epsilon %g, expected %s\n", buf, dataset, sc.epsilon, want_nan ? "NaN" : "a number");
            fail();
        }
        if (want_nan) assert_non_null(strstr(sc.nan_reason, "constant output at w=1e-07"));
        nans += want_nan;
        eps_arch_free(&a);
        checked++;
    }
    print_message("%s: checked %d distinct cells, %d NaN; %d of the cells are NaN by the rule\n", dataset, checked, nans,
                  cells_nan);
    if (step == 1) assert_int_equal(cells_nan, 6399);
    assert_true(checked > (eps_t_asan() ? 1000 : 9000));
    eps_batch_free(&b);
}

static void test_nan_set(void **state)
{
    (void)state;
    nan_set("cifar10");
}

static void test_nan_set_imagenet(void **state)
{
    (void)state;
    nan_set("imagenet16-120");
}

static void test_same_hash_for_equivalent_cells(void **state)
{
    (void)state;
    const char *a1 = "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|skip_connect~2|";
    const char *a2 = "|none~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|";
    eps_arch x, y;
    eps_error err = {0};
    json_t *r1 = json_pack("{s:s,s:s}", "space", "nb201", "arch", a1), *r2 = json_pack("{s:s,s:s}", "space", "nb201", "arch", a2);
    assert_int_equal(eps_arch_from_json(r1, &x, &err), 0);
    assert_int_equal(eps_arch_from_json(r2, &y, &err), 0);
    assert_string_equal(x.hash, y.hash);
    assert_string_equal(x.canonical, y.canonical);
    assert_true(x.params != y.params); /* dead edges still count as parameters */
    eps_arch_free(&x);
    eps_arch_free(&y);
    json_decref(r1);
    json_decref(r2);
}

/* ---- CLI contract ---- */

static char *run_cli(const char *args, int *code)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", eps_t_bin(), args);
    return eps_t_run(cmd, code);
}

static void expect_exit2(const char *args, const char *needle)
{
    int code;
    char *out = run_cli(args, &code);
    if (code != 2 || !strstr(out, needle) || strchr(out, '\n') != out + strlen(out) - 1) {
        print_error("args: %s\n  exit %d, output: %s  expected exit 2, one line containing: %s\n", args, code, out, needle);
        fail();
    }
    free(out);
}

static void test_cli_errors(void **state)
{
    (void)state;
    expect_exit2("score --space nb201 --arch ''", "arch string is empty");
    expect_exit2("score --space nb201 --arch '|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|'", "unknown op 'bogus'");
    expect_exit2("score --space nb201 --arch '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|' --weights 1,1",
                 "two different finite numbers");
    /* issue 17 #8: zero, negative and float32-subnormal weights are refused at the CLI */
    expect_exit2("score --space nb201 --arch '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|' --weights -1e-7,1",
                 "weight 1 is -1e-07");
    expect_exit2("score --space nb201 --arch '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|' --weights 1e-7,1e-41",
                 "positive and normal in float32");
    expect_exit2("sweep --space nb201 --archs /dev/null --out /dev/null --weights 0,1", "weight 1 is 0");
    expect_exit2("score --space nb201 --arch '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|' --batch cifar10:/nonexistent",
                 "cannot open '/nonexistent'");
    expect_exit2("score --space nb201 --arch '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|' --batch-size 1",
                 "--batch-size");
    expect_exit2("score --space nb999 --arch x", "unknown space 'nb999'");
    expect_exit2("score --space nb201 --arch '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|' --bogus", "--bogus");
    expect_exit2("score --space nb201 --arch \"$(printf '|%.0s' $(seq 1 200))\"", "bytes long");
    expect_exit2("bogus", "unknown command");
}

static void test_cli_json(void **state)
{
    (void)state;
    int code;
    char *out = run_cli("score --space nb201 --batch-size 16 --json --arch "
                        "'|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'",
                        &code);
    assert_int_equal(code, 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    assert_non_null(j);
    const char *keys[] = {"epsilon", "nan_reason", "params", "macs", "weights", "batch", "batch_size", "elapsed_ms"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) assert_non_null(json_object_get(j, keys[k]));
    assert_int_equal(json_integer_value(json_object_get(j, "params")), 801841);
    assert_true(json_is_real(json_object_get(j, "epsilon")));
    assert_true(json_is_null(json_object_get(j, "nan_reason")));
    json_decref(j);
    free(out);
    out = run_cli("score --space nb201 --batch-size 16 --json --arch '|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|'",
                  &code);
    assert_int_equal(code, 0);
    j = json_loads(out, 0, &je);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "epsilon")));
    assert_non_null(strstr(json_string_value(json_object_get(j, "nan_reason")), "constant output"));
    json_decref(j);
    free(out);
    out = run_cli("--help", &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "score"));
    free(out);
    out = run_cli("score --help", &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "--batch SPEC"));
    free(out);
}

EPS_T_MAIN(NULL, NULL,
        cmocka_unit_test(test_roundtrip_all),
        cmocka_unit_test(test_bad_archs),
        cmocka_unit_test(test_huge_string),
        cmocka_unit_test(test_params_spec_examples),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_same_hash_for_equivalent_cells),
        cmocka_unit_test(test_cli_errors),
        cmocka_unit_test(test_cli_json),
        cmocka_unit_test(test_nan_set),
        cmocka_unit_test(test_nan_set_imagenet))
