/* test_shard.c — sharded sweeps through the real binary: N shard processes
 * with JOB_COMPLETION_INDEX set (as a Kubernetes Indexed Job runs them),
 * `epsinas merge`, and the result byte-for-byte equal to the single-machine
 * sweep (merged too, which sorts it); nb101 --all with --range; merge and
 * shard errors (missing / duplicate indices named, exit 2). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include "util.h"

static char dir[256];
static char bin[PATH_MAX]; /* absolute: the commands run in dir */

static int setup(void **state)
{
    (void)state;
    if (!realpath(eps_t_bin(), bin)) return -1;
    return eps_t_tmpdir(dir, sizeof dir, "shard");
}

static int teardown(void **state)
{
    (void)state;
    return eps_t_rmtree(dir);
}

/* Runs "cd dir && [env] epsinas args"; returns the exit code, stderr in *msg
 * when msg (caller frees). */
static int run(const char *env, const char *args, char **msg)
{
    char cmd[PATH_MAX + 2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s %s %s 2>&1 >/dev/null", dir, env ? env : "", bin, args);
    int code;
    char *o = eps_t_run(cmd, &code);
    if (msg) *msg = o;
    else free(o);
    return code;
}

static char *slurp(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = eps_t_read_file(path);
    if (!s) fail_msg("cannot read %s", path);
    return s;
}

static long count_lines(const char *s)
{
    long n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* N shards with JOB_COMPLETION_INDEX, merged == the single sweep, merged. */
static void shards_equal_single(const char *pre, const char *sweep_args, int nshards, long rows)
{
    char args[1024], env[64];
    char *msg;
    snprintf(args, sizeof args, "sweep %s --out %ssingle.csv", sweep_args, pre);
    if (run(NULL, args, &msg)) fail_msg("single sweep failed: %s", msg);
    free(msg);
    char files[512] = "";
    for (int k = 0; k < nshards; k++) {
        snprintf(env, sizeof env, "JOB_COMPLETION_INDEX=%d", k);
        snprintf(args, sizeof args, "sweep %s --shards %d --out %sshard%d.csv", sweep_args, nshards, pre, k);
        if (run(env, args, &msg)) fail_msg("shard %d failed: %s", k, msg);
        free(msg);
        /* the shard holds only its own global indices */
        char name[32];
        snprintf(name, sizeof name, "%sshard%d.csv", pre, k);
        char *s = slurp(name);
        for (char *p = strchr(s, '\n') + 1; *p; p = strchr(p, '\n') + 1)
            if (atol(p) % nshards != k) fail_msg("shard %d holds index %ld", k, atol(p));
        free(s);
        size_t l = strlen(files);
        snprintf(files + l, sizeof files - l, " %s", name);
    }
    snprintf(args, sizeof args, "merge --out %smerged.csv%s", pre, files);
    if (run(NULL, args, &msg)) fail_msg("merge failed: %s", msg);
    free(msg);
    snprintf(args, sizeof args, "merge --out %ssorted.csv --count %ld %ssingle.csv", pre, rows, pre);
    if (run(NULL, args, &msg)) fail_msg("merge of the single sweep failed: %s", msg);
    free(msg);
    char na[64], nb[64];
    snprintf(na, sizeof na, "%smerged.csv", pre);
    snprintf(nb, sizeof nb, "%ssorted.csv", pre);
    char *a = slurp(na), *b = slurp(nb);
    assert_int_equal(count_lines(a), rows + 1);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void test_nb201_archs_shards(void **state)
{
    (void)state;
    /* 40 request lines from enumerate, with a repeat (index 39 = index 0) */
    char cmd[PATH_MAX + 1024];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && %s enumerate --space nb201 --format requests | awk 'NR %% 397 == 1' | head -39 > a.txt && "
             "head -1 a.txt >> a.txt",
             dir, bin);
    assert_int_equal(system(cmd), 0);
    shards_equal_single("a_", "--space nb201 --archs a.txt --threads 2 --batch-size 8", 3, 40);
}

static void test_nb101_all_range_shards(void **state)
{
    (void)state;
    shards_equal_single("b_", "--space nb101 --all --range 0:24 --threads 2 --batch-size 8", 4, 24);
    /* the arch column is the enumeration's canonical text, in its order */
    char cmd[PATH_MAX + 1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && head -3 b_merged.csv", dir);
    int code;
    char *o = eps_t_run(cmd, &code);
    assert_non_null(strstr(o, "\n0,\"{\"\"matrix\"\":[[0,1],[0,0]],\"\"ops\"\":[\"\"input\"\",\"\"output\"\"]}\","));
    assert_non_null(strstr(o, "\n1,\"{\"\"matrix\"\":[[0,1,0],[0,0,1],[0,0,0]],"));
    free(o);
}

static void expect2(const char *env, const char *args, const char *needle)
{
    char *msg;
    int code = run(env, args, &msg);
    if (code != 2 || !strstr(msg, needle))
        fail_msg("'%s' exited %d with '%s'; want 2 and '%s'", args, code, msg, needle);
    free(msg);
}

static void test_merge_errors(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 1024];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && %s enumerate --space nb201 --format requests | head -12 > m.txt", dir, bin);
    assert_int_equal(system(cmd), 0);
    for (int k = 0; k < 3; k++) {
        char args[256];
        snprintf(args, sizeof args, "sweep --space nb201 --archs m.txt --shard %d/3 --batch-size 8 --out m%d.csv", k, k);
        assert_int_equal(run(NULL, args, NULL), 0);
    }
    assert_int_equal(run(NULL, "merge --out ok.csv m0.csv m1.csv m2.csv", NULL), 0);
    /* shard 1 missing: indices 1, 4, 7, 10 */
    expect2(NULL, "merge --out bad.csv m0.csv m2.csv", "4 missing indices: 1, 4, 7, 10");
    /* a shard given twice */
    expect2(NULL, "merge --out bad.csv m0.csv m1.csv m2.csv m2.csv", "4 duplicate indices: 2, 5, 8, 11");
    /* trailing shard rows missing are found with --count */
    expect2(NULL, "merge --out bad.csv --count 14 m0.csv m1.csv m2.csv", "2 missing indices: 12, 13");
    expect2(NULL, "merge --out bad.csv --count 5 m0.csv m1.csv m2.csv", "beyond --count 5");
    expect2(NULL, "merge --out bad.csv m.txt", "not an epsinas sweep CSV");
    expect2(NULL, "merge --out bad.csv nonexistent.csv", "cannot open");
    expect2(NULL, "merge m0.csv", "missing --out");
    expect2(NULL, "merge --out bad.csv", "no shard CSVs");
    /* a torn last line (interrupted shard) is refused, not merged */
    snprintf(cmd, sizeof cmd, "cd '%s' && cp m1.csv torn.csv && printf '99,x' >> torn.csv", dir);
    assert_int_equal(system(cmd), 0);
    expect2(NULL, "merge --out bad.csv m0.csv torn.csv m2.csv", "incomplete last line");
    /* a failed merge leaves no output */
    snprintf(cmd, sizeof cmd, "test ! -e '%s/bad.csv' && test ! -e '%s/bad.csv.tmp'", dir, dir);
    assert_int_equal(system(cmd), 0);
    /* many missing: the list is bounded */
    char *msg;
    assert_int_equal(run(NULL, "merge --out bad.csv --count 100000 m0.csv m1.csv m2.csv", &msg), 2);
    assert_non_null(strstr(msg, "99988 missing indices: 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, ..."));
    assert_true(strlen(msg) < 400);
    free(msg);
}

static void test_shard_errors(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s enumerate --space nb201 --format requests | head -3 > e.txt", dir, bin);
    assert_int_equal(system(cmd), 0);
    static const struct {
        const char *env, *opts, *want; /* opts follow the base sweep of e.txt */
    } cases[] = {
        {NULL, "--shard 3/3", "--shard"},
        {NULL, "--shard 1", "expected K/N"},
        {NULL, "--shard 0/0", "--shard"},
        {NULL, "--shards 2", "JOB_COMPLETION_INDEX"},
        {"JOB_COMPLETION_INDEX=1", "", "give --shards N"},
        {"JOB_COMPLETION_INDEX=2", "--shards 2", "JOB_COMPLETION_INDEX"},
        {NULL, "--shard 0/2 --shards 2", "not both"},
        {NULL, "--range 5:2", "empty"},
        {NULL, "--range x", "expected A:B"},
        {NULL, "--shard 7/9", "no architecture in the selected range/shard"}, /* no row of its own */
    };
    char args[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "sweep --space nb201 --archs e.txt --out e.csv %s", cases[i].opts);
        expect2(cases[i].env, args, cases[i].want);
    }
    expect2(NULL, "sweep --space graph --all --out g.csv", "--all enumerates nb201 or nb101 only");
}

EPS_T_MAIN(setup, teardown,
        cmocka_unit_test(test_nb201_archs_shards),
        cmocka_unit_test(test_nb101_all_range_shards),
        cmocka_unit_test(test_merge_errors),
        cmocka_unit_test(test_shard_errors))
