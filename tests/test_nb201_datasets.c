/* test_nb201_datasets.c — NB201 on CIFAR-10, CIFAR-100 and ImageNet16-120
 * (issue 13 item 3): the "dataset" field (table of bad values), the network
 * per dataset (input shape, params, MACs), the dataset in canonical form and
 * hash, batches drawn at the network's shape and files of another shape
 * refused, and the CLI (score/sweep --dataset). The spec §7 NaN rule on
 * every ImageNet16-120 cell: test_nb201; numbers against PyTorch:
 * test_golden_nb201. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "epsinas/core/md5.h"
#include "epsinas/spaces/nb201.h"
#include "epsinas/spaces/space.h"
#include "util.h"

#define EX2 "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"

static int arch_of(const char *arch, const char *dataset, eps_arch *a, eps_error *err)
{
    json_t *req = json_pack("{s:s, s:s}", "space", "nb201", "arch", arch);
    if (dataset) json_object_set_new(req, "dataset", json_string(dataset));
    int rc = eps_arch_from_json(req, a, err);
    json_decref(req);
    return rc;
}

/* The table: what each dataset's network takes (spec §3; issue 13). */
static void test_table(void **state)
{
    (void)state;
    const struct { const char *name; int c, h, w, classes; } want[] = {
        {"cifar10", 3, 32, 32, 10}, {"cifar100", 3, 32, 32, 100}, {"imagenet16-120", 3, 16, 16, 120}};
    const eps_space_dataset *d = eps_nb201_space.datasets;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++, d++) {
        assert_non_null(d->dataset);
        assert_string_equal(d->dataset, want[i].name);
        assert_int_equal(d->c, want[i].c);
        assert_int_equal(d->h, want[i].h);
        assert_int_equal(d->w, want[i].w);
        assert_int_equal(d->classes, want[i].classes);
        assert_non_null(d->batch);
    }
    assert_null(d->dataset);
    assert_ptr_equal(eps_space_dataset_find(&eps_nb201_space, NULL), &eps_nb201_space.datasets[0]);
    assert_null(eps_space_dataset_find(&eps_nb101_space, NULL));
    assert_null(eps_space_dataset_find(&eps_nb201_space, "imagenet"));
}

/* Per dataset: input shape, one output, params unchanged (the classifier is
 * Linear(64 -> 1) for all), MACs from the input area, canonical and hash. */
static void test_network_per_dataset(void **state)
{
    (void)state;
    eps_arch base, a;
    eps_error err = {0};
    assert_int_equal(arch_of(EX2, NULL, &base, &err), 0);
    /* CIFAR-10 (the default) keeps the plain cell and its MD5 */
    char md5[33];
    eps_md5_hex(EX2, strlen(EX2), md5);
    assert_string_equal(base.hash, md5);
    assert_string_equal(base.canonical, EX2);
    assert_string_equal(base.dataset, "cifar10");
    const struct { const char *dataset, *canonical; int side; long long macs; } cases[] = {
        {"cifar10", EX2, 32, 113950784},
        {"cifar100", EX2 ";dataset=cifar100", 32, 113950784},
        {"imagenet16-120", EX2 ";dataset=imagenet16-120", 16, 28487744}, /* tests/golden/nb201_datasets.json */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(arch_of(EX2, cases[i].dataset, &a, &err), 0);
        eps_image_shape sh;
        assert_int_equal(eps_arch_input_shape(&a, &sh), 1);
        assert_int_equal(sh.c, 3);
        assert_int_equal(sh.h, cases[i].side);
        assert_int_equal(sh.w, cases[i].side);
        assert_int_equal(eps_graph_output_size(&a.graph), 1);
        assert_int_equal(a.params, 801841); /* spec §3 */
        assert_int_equal(a.macs, cases[i].macs);
        assert_string_equal(a.canonical, cases[i].canonical);
        assert_string_equal(a.dataset, cases[i].dataset);
        eps_md5_hex(cases[i].canonical, strlen(cases[i].canonical), md5);
        assert_string_equal(a.hash, md5);
        if (i > 0) assert_string_not_equal(a.hash, base.hash); /* never one cached score for two datasets */
        /* every dataset answers the cell's encodings, without the dataset */
        json_t *enc = eps_arch_encodings(&a);
        assert_non_null(enc);
        assert_string_equal(json_string_value(json_object_get(enc, "arch")), EX2);
        json_decref(enc);
        eps_arch_free(&a);
    }
    eps_arch_free(&base);
}

/* Bad "dataset" values: 400-style errors naming the field and the choices. */
static void test_bad_dataset(void **state)
{
    (void)state;
    const struct { const char *json, *want; } cases[] = {
        {"\"imagenet\"", "unknown dataset 'imagenet' for space nb201 (expected one of cifar10, cifar100, imagenet16-120)"},
        {"\"CIFAR10\"", "unknown dataset 'CIFAR10'"},
        {"\"\"", "unknown dataset ''"},
        {"7", "'dataset' must be a string, one of cifar10, cifar100, imagenet16-120"},
        {"null", "'dataset' must be a string"},
        {"[\"cifar10\"]", "'dataset' must be a string"},
        {"\"cifar10\\u0001\"", "unknown dataset ''"}, /* a control byte is not echoed */
        {"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
         "unknown dataset 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' for"}, /* cut at 40 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *req = json_pack("{s:s, s:s}", "space", "nb201", "arch", EX2);
        json_object_set_new(req, "dataset", json_loads(cases[i].json, JSON_DECODE_ANY, NULL));
        eps_arch a;
        eps_error err = {0};
        int rc = eps_arch_from_json(req, &a, &err);
        json_decref(req);
        if (rc != EPS_EINVAL || !strstr(err.msg, cases[i].want))
            fail_msg("dataset %s: rc %d, '%s'; expected '%s'", cases[i].json, rc, err.msg, cases[i].want);
        assert_string_equal(err.field, "dataset");
    }
    /* other spaces have no "dataset" field */
    json_t *req = json_pack("{s:s, s:[[i,i],[i,i]], s:[s,s], s:s}", "space", "nb101", "matrix", 0, 1, 0, 0, "ops",
                            "input", "output", "dataset", "cifar10");
    eps_error err = {0};
    assert_int_equal(eps_request_check_fields(req, eps_request_common_fields, &err), EPS_EINVAL);
    assert_string_equal(err.field, "dataset");
    json_decref(req);
}

/* A float32 .npy of n images c x h x w under /tmp (eps_t_write_npy); the
 * path in a static buffer. */
static const char *write_npy(int n, int c, int h, int w)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/eps-test-ds-%d.npy", (int)getpid());
    eps_t_write_npy(path, n, c, h, w);
    return path;
}

/* Generators draw at the network's shape; files of another shape are
 * refused naming `batch` and both shapes; a file of the right shape loads. */
static void test_batches_at_shape(void **state)
{
    (void)state;
    eps_error err = {0};
    eps_batch g32, g16, v;
    const eps_image_shape s16 = {3, 16, 16};
    assert_int_equal(eps_batch_load("gaussian:42", 4, &g32, &err), 0);
    assert_int_equal(eps_batch_load_shape("gaussian:42", 4, s16, &g16, &err), 0);
    assert_int_equal(g16.c * 100 + g16.h * 10 + g16.w, 3 * 100 + 16 * 10 + 16);
    /* the same documented stream in NCHW order (tests/reference/epsref.py) */
    assert_memory_equal(g16.data, g32.data, sizeof(float) * 4 * 768);
    assert_string_not_equal(g16.hash, g32.hash);
    /* eps_batch_at: another shape of a generator is drawn anew */
    int owned = 0;
    assert_int_equal(eps_batch_at(&g32, 2, s16, &v, &owned, &err), 0);
    assert_int_equal(owned, 1);
    assert_int_equal(v.n, 2);
    assert_int_equal(v.h, 16);
    assert_memory_equal(v.data, g16.data, sizeof(float) * 2 * 768);
    eps_batch_free(&v);
    /* every generator draws at 16x16 (and ramp stays one level per image) */
    for (const eps_batch_generator *gen = eps_batch_generators(); gen->prefix; gen++) {
        if (!strcmp(gen->prefix, "cifar10:") || !strcmp(gen->prefix, "npy:") || !strncmp(gen->prefix, "tokens", 6))
            continue;
        char spec[32];
        snprintf(spec, sizeof spec, "%s%s", gen->prefix, strchr(gen->prefix, ':') ? "5" : "");
        eps_batch b;
        if (eps_batch_load_shape(spec, 8, s16, &b, &err)) fail_msg("%s at 3x16x16: %s", spec, err.msg);
        int finite = 1;
        for (int k = 0; k < 8 * 768; k++) finite &= isfinite(b.data[k]) != 0;
        assert_true(finite);
        if (!strcmp(spec, "ramp")) assert_true(b.data[5 * 768 + 700] == 5.0f / 8.0f);
        eps_batch_free(&b);
    }
    /* files have their shape */
    const char *p32 = write_npy(4, 3, 32, 32);
    char spec[96];
    snprintf(spec, sizeof spec, "npy:%s", p32);
    eps_batch f;
    assert_int_equal(eps_batch_load_shape(spec, 4, s16, &f, &err), EPS_EINVAL);
    assert_string_equal(err.field, "batch");
    assert_non_null(strstr(err.msg, "holds 3x32x32 images; the network needs 3x16x16"));
    assert_int_equal(eps_batch_load(spec, 4, &f, &err), 0);
    assert_int_equal(eps_batch_at(&f, 4, s16, &v, &owned, &err), EPS_EINVAL);
    assert_non_null(strstr(err.msg, "3x32x32"));
    assert_non_null(strstr(err.msg, "3x16x16"));
    eps_batch_free(&f);
    const char *p16 = write_npy(4, 3, 16, 16);
    snprintf(spec, sizeof spec, "npy:%s", p16);
    assert_int_equal(eps_batch_load_shape(spec, 4, s16, &f, &err), 0);
    assert_true(f.data[4 * 768 - 1] == 3.0f / 8.0f + (767 % 7) * 0.01f); /* eps_t_write_npy's value */
    eps_batch_free(&f);
    assert_int_equal(eps_batch_load(spec, 4, &f, &err), EPS_EINVAL);
    assert_non_null(strstr(err.msg, "holds 3x16x16 images; the network needs 3x32x32"));
    unlink(p16);
    if (eps_t_shared()) {
        char cif[600];
        snprintf(cif, sizeof cif, "cifar10:%s/data/cifar10/cifar10_test_sample260.bin", eps_t_shared());
        assert_int_equal(eps_batch_load_shape(cif, 4, s16, &f, &err), EPS_EINVAL);
        assert_string_equal(err.field, "batch");
        assert_non_null(strstr(err.msg, "holds 3x32x32 images; the network needs 3x16x16"));
    } else {
        print_message("cifar10 file shape check not run: ../shared is absent\n");
    }
    /* limits and channel rules */
    assert_int_equal(eps_batch_load_shape("leaves:1", 2, (eps_image_shape){1, 16, 16}, &f, &err), EPS_EINVAL);
    assert_non_null(strstr(err.msg, "3 channels"));
    assert_int_equal(eps_batch_load_shape("ramp", 4096, (eps_image_shape){3, 256, 256}, &f, &err), EPS_ELIMIT);
    assert_string_equal(err.field, "batch");
    assert_int_equal(eps_batch_load_shape("ramp", 4, (eps_image_shape){3, 0, 16}, &f, &err), EPS_ELIMIT);
    eps_batch_free(&g32);
    eps_batch_free(&g16);
}

/* Scoring a network on a batch of the wrong shape is refused by the engines. */
static void test_engines_check_shape(void **state)
{
    (void)state;
    eps_arch a;
    eps_error err = {0};
    eps_batch b;
    assert_int_equal(arch_of(EX2, "imagenet16-120", &a, &err), 0);
    assert_int_equal(eps_batch_load("ramp", 8, &b, &err), 0);
    for (int e = 0; e < 2; e++) {
        eps_run_opts o = {.engine = e ? EPS_ENGINE_DENSE : EPS_ENGINE_FAST};
        eps_score sc;
        assert_int_equal(eps_arch_score(&a, &b, NULL, &o, &sc, &err), EPS_EINVAL);
        assert_string_equal(err.field, "batch");
    }
    eps_batch_free(&b);
    eps_arch_free(&a);
}

/* ---- CLI ---- */

static char *run_cli(const char *args, int *code)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", eps_t_bin(), args);
    return eps_t_run(cmd, code);
}

static void test_cli(void **state)
{
    (void)state;
    int code;
    /* score --dataset: the dataset's network, on a batch drawn at its shape */
    char *out = run_cli("score --space nb201 --dataset imagenet16-120 --batch-size 16 --json --arch '" EX2 "'", &code);
    assert_int_equal(code, 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "dataset")), "imagenet16-120");
    assert_int_equal(json_integer_value(json_object_get(j, "macs")), 28487744);
    assert_true(json_is_real(json_object_get(j, "epsilon")));
    double eps_cli = json_real_value(json_object_get(j, "epsilon"));
    json_decref(j);
    free(out);
    /* exit 2 with one line naming what is wrong */
    const struct { const char *args, *want; } bad[] = {
        {"score --space nb201 --dataset imagenet --arch '" EX2 "'", "--dataset: unknown dataset 'imagenet'"},
        {"score --space nb101 --dataset cifar10 --matrix '[[0,1],[0,0]]' --ops '[\"input\",\"output\"]'",
         "space 'nb101' has no datasets"},
        {"score --space nb201 --dataset imagenet16-120 --batch npy:/tmp/eps-test-ds-cli.npy --arch '" EX2 "'",
         "holds 3x32x32 images; the network needs 3x16x16"},
        {"sweep --space nb201 --all --dataset cifar1000 --out /dev/null", "--dataset: unknown dataset 'cifar1000'"},
    };
    const char *p = write_npy(4, 3, 32, 32);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mv %s /tmp/eps-test-ds-cli.npy", p);
    assert_int_equal(system(cmd), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        out = run_cli(bad[i].args, &code);
        if (code != 2 || !strstr(out, bad[i].want) || strchr(out, '\n') != out + strlen(out) - 1)
            fail_msg("%s: exit %d, output '%s'; expected exit 2 and one line with '%s'", bad[i].args, code, out,
                     bad[i].want);
        free(out);
    }
    unlink("/tmp/eps-test-ds-cli.npy");
    /* sweep --dataset: the same epsilon as score; a line's own dataset must
     * take the same input shape as the others */
    char dir[] = "/tmp/eps-test-ds-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char archs[64], csv[64];
    snprintf(archs, sizeof archs, "%s/archs.txt", dir);
    snprintf(csv, sizeof csv, "%s/out.csv", dir);
    FILE *f = fopen(archs, "w");
    fprintf(f, "%s\n{\"arch\":\"%s\",\"dataset\":\"imagenet16-120\"}\n", EX2, EX2);
    fclose(f);
    snprintf(cmd, sizeof cmd, "sweep --space nb201 --archs %s --dataset imagenet16-120 --batch-size 16 --threads 1 --out %s",
             archs, csv);
    out = run_cli(cmd, &code);
    assert_int_equal(code, 0);
    free(out);
    char cat[128];
    snprintf(cat, sizeof cat, "cat %s", csv);
    out = eps_t_run(cat, &code);
    char want[64];
    snprintf(want, sizeof want, ",%.17g,,801841,28487744\n", eps_cli);
    char *first = strstr(out, want);
    if (!first || !strstr(first + 1, want)) fail_msg("sweep output lacks two rows with '%s':\n%s", want, out);
    free(out);
    f = fopen(archs, "w");
    fprintf(f, "%s\n{\"arch\":\"%s\",\"dataset\":\"cifar10\"}\n", EX2, EX2);
    fclose(f);
    unlink(csv);
    out = run_cli(cmd, &code);
    if (code != 2 || !strstr(out, "archs.txt:2:") || !strstr(out, "3x32x32") || !strstr(out, "one dataset"))
        fail_msg("mixed shapes: exit %d, '%s'", code, out);
    free(out);
    unlink(archs);
    unlink(csv);
    rmdir(dir);
    /* --help names the datasets and their shapes */
    out = run_cli("score --help", &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "--dataset NAME"));
    assert_non_null(strstr(out, "imagenet16-120  input 3x16x16"));
    free(out);
    out = run_cli("sweep --help", &code);
    assert_non_null(strstr(out, "--dataset NAME"));
    free(out);
}

EPS_T_MAIN(NULL, NULL,
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_network_per_dataset),
        cmocka_unit_test(test_bad_dataset),
        cmocka_unit_test(test_batches_at_shape),
        cmocka_unit_test(test_engines_check_shape),
        cmocka_unit_test(test_cli))
