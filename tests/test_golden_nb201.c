/* test_golden_nb201.c — NB201 epsilon, params and output ranges against the
 * PyTorch reference (tests/golden/nb201.json, tests/reference/nb201_ref.py);
 * the other datasets (ImageNet16-120 at 3x16x16, CIFAR-100) with their MACs
 * against tests/golden/nb201_datasets.json. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "util.h"
#include "util_golden.h"

#define GOLDEN "tests/golden/nb201.json"
#define GOLDEN_DATASETS "tests/golden/nb201_datasets.json"

static void report(const char *what, const eps_golden_stats *st)
{
    print_message("%s: %d cases checked (%d NaN in the reference), %d failed\n", what, st->checked, st->nan, st->failed);
}

static void test_fast_synthetic(void **state)
{
    (void)state;
    eps_golden_filter f = {.engine = EPS_ENGINE_FAST, .skip_batch_prefix = "cifar10:", .every = eps_t_asan() ? 4 : 1};
    eps_golden_stats st;
    eps_golden_run(GOLDEN, &f, &st);
    report("fast engine, ramp/gaussian", &st);
    assert_int_equal(st.failed, 0);
    assert_true(st.checked >= (eps_t_asan() ? 20 : 80));
}

static void test_fast_cifar(void **state)
{
    (void)state;
    if (!eps_t_shared()) {
        print_message("SKIP: ../shared (CIFAR-10 sample) is absent\n");
        skip();
    }
    eps_golden_filter f = {.engine = EPS_ENGINE_FAST, .only_batch_prefix = "cifar10:", .every = eps_t_asan() ? 4 : 1};
    eps_golden_stats st;
    eps_golden_run(GOLDEN, &f, &st);
    report("fast engine, CIFAR-10 sample", &st);
    assert_int_equal(st.failed, 0);
    assert_true(st.checked >= (eps_t_asan() ? 10 : 40));
}

/* The dense engine on the batch-32 goldens (batch 256 takes ~20 s a cell). */
static void test_dense_small(void **state)
{
    (void)state;
    eps_golden_filter f = {.engine = EPS_ENGINE_DENSE, .max_batch = 32, .every = eps_t_asan() ? 5 : 1};
    eps_golden_stats st;
    eps_golden_run(GOLDEN, &f, &st);
    report("dense engine, batch <= 32", &st);
    assert_int_equal(st.failed, 0);
    assert_true(st.checked >= (eps_t_asan() ? 5 : 20));
}

/* Every dataset golden (ramp and gaussian:42 drawn at 16x16 for
 * imagenet16-120) on the fast engine: epsilon, params, MACs, output range. */
static void test_fast_datasets(void **state)
{
    (void)state;
    eps_golden_filter f = {.engine = EPS_ENGINE_FAST, .every = eps_t_asan() ? 3 : 1};
    eps_golden_stats st;
    eps_golden_run(GOLDEN_DATASETS, &f, &st);
    report("fast engine, imagenet16-120 and cifar100", &st);
    assert_int_equal(st.failed, 0);
    assert_true(st.checked >= (eps_t_asan() ? 15 : 50));
    assert_true(st.nan > 0 && st.nan < st.checked); /* both kinds of case ran */
}

/* The dense engine on the batch-32 dataset goldens (every other one). */
static void test_dense_datasets(void **state)
{
    (void)state;
    eps_golden_filter f = {.engine = EPS_ENGINE_DENSE, .max_batch = 32, .every = eps_t_asan() ? 6 : 2};
    eps_golden_stats st;
    eps_golden_run(GOLDEN_DATASETS, &f, &st);
    report("dense engine, dataset goldens at batch <= 32", &st);
    assert_int_equal(st.failed, 0);
    assert_true(st.checked >= (eps_t_asan() ? 3 : 10));
}

EPS_T_MAIN(NULL, NULL,
        cmocka_unit_test(test_fast_synthetic),
        cmocka_unit_test(test_fast_cifar),
        cmocka_unit_test(test_dense_small),
        cmocka_unit_test(test_fast_datasets),
        cmocka_unit_test(test_dense_datasets))
