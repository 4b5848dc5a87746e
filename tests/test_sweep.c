/* test_sweep.c — `epsinas sweep`: CSV contract, agreement with `score`,
 * resume after a torn line, clean interruption, and input errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "epsinas/spaces/nb201.h"
#include "util.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    return eps_t_tmpdir(dir, sizeof dir, "sweep");
}

static int teardown(void **state)
{
    (void)state;
    return eps_t_rmtree(dir);
}

/* Writes n NB201 cells (a fixed stride through the space) to dir/name. */
static void write_archs(const char *name, int n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < n; i++) {
        eps_nb201_cell c;
        char buf[EPS_NB201_STR_MAX];
        eps_nb201_from_index((i * 7919) % EPS_NB201_COUNT, &c);
        eps_nb201_format(&c, buf);
        fprintf(f, "%s\n", buf);
    }
    fclose(f);
}

/* Checks the CSV: header, complete lines, each index in [0,n) exactly once
 * when complete (or at most once otherwise). Returns the row count. */
static int check_csv(const char *name, int n, int complete)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "index,arch,epsilon,nan_reason,params,macs\n");
    int *seen = calloc((size_t)n, sizeof(int)), rows = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        assert_true(len > 0 && line[len - 1] == '\n');
        int idx = atoi(line);
        assert_true(idx >= 0 && idx < n);
        seen[idx]++;
        assert_int_equal(seen[idx], 1);
        int commas = 0;
        for (char *p = line; *p; p++) commas += *p == ',';
        assert_int_equal(commas, 5);
        rows++;
    }
    fclose(f);
    if (complete) assert_int_equal(rows, n);
    free(seen);
    return rows;
}

static int run(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s %s 2>/dev/null", dir, eps_t_bin(), args);
    int code;
    free(eps_t_run(cmd, &code));
    return code;
}

static void test_sweep_matches_score(void **state)
{
    (void)state;
    write_archs("a.txt", 24);
    assert_int_equal(run("sweep --space nb201 --archs a.txt --out a.csv --threads 2 --batch-size 16"), 0);
    check_csv("a.csv", 24, 1);
    /* row 5 agrees with `epsinas score` */
    char path[512], line[4096];
    snprintf(path, sizeof path, "%s/a.csv", dir);
    FILE *f = fopen(path, "r");
    char arch[256] = "", eps[64] = "";
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "5,", 2)) sscanf(line, "5,%255[^,],%63[^,]", arch, eps);
    fclose(f);
    assert_true(arch[0] && eps[0]);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s score --space nb201 --batch-size 16 --json --arch '%s'", eps_t_bin(), arch);
    int code;
    char *out = eps_t_run(cmd, &code);
    assert_int_equal(code, 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    double want = json_is_null(json_object_get(j, "epsilon")) ? NAN : json_real_value(json_object_get(j, "epsilon"));
    double got = strcmp(eps, "nan") ? atof(eps) : NAN;
    assert_true(eps_t_close(got, want, 1e-12, 0));
    json_decref(j);
    free(out);
}

static void test_resume_after_torn_line(void **state)
{
    (void)state;
    write_archs("b.txt", 30);
    assert_int_equal(run("sweep --space nb201 --archs b.txt --out b.csv --batch-size 16"), 0);
    /* keep the header + 10 rows + half of the 11th, as a killed run leaves it */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && head -n 11 b.csv > t.csv && sed -n 12p b.csv | head -c 20 >> t.csv && mv t.csv b.csv", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(run("sweep --space nb201 --archs b.txt --out b.csv --batch-size 16"), 0);
    check_csv("b.csv", 30, 1);
}

static long file_size(const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

static void test_interrupt_then_resume(void **state)
{
    (void)state;
    int n = eps_t_asan() ? 120 : 400;
    write_archs("c.txt", n);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(99);
        execl(eps_t_bin(), "epsinas", "sweep", "--space", "nb201", "--archs", "c.txt", "--out", "c.csv", "--threads", "1",
              "--batch-size", "64", (char *)NULL);
        _exit(98);
    }
    /* wait (bounded) until some rows are written, then interrupt */
    const long header = 42;
    int polls = 0;
    while (file_size("c.csv") <= header + 200 && polls++ < 6000) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGINT);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    int rows = check_csv("c.csv", n, 0);
    print_message("interrupted with %d of %d rows (exit %d)\n", rows, n, WEXITSTATUS(st));
    if (rows < n) assert_int_equal(WEXITSTATUS(st), 130);
    assert_int_equal(run("sweep --space nb201 --archs c.txt --out c.csv --batch-size 64"), 0);
    check_csv("c.csv", n, 1);
}

static void expect2(const char *args, const char *needle)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s %s 2>&1", dir, eps_t_bin(), args);
    int code;
    char *out = eps_t_run(cmd, &code);
    if (code != 2 || !strstr(out, needle)) {
        print_error("%s -> exit %d: %s (wanted %s)\n", args, code, out, needle);
        fail();
    }
    free(out);
}

static void test_errors(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd '%s' && printf '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\\n|bad~0|\\n' > bad.txt", dir);
    assert_int_equal(system(cmd), 0);
    expect2("sweep --space nb201 --archs bad.txt --out x.csv", "bad.txt:2: position 2: unknown op 'bad'");
    expect2("sweep --space graph --all --out x.csv", "--all enumerates nb201 or nb101 only");
    expect2("sweep --space nb201 --all", "missing --out");
    expect2("sweep --space nb201 --archs nonexistent.txt --out x.csv", "cannot open 'nonexistent.txt'");
    snprintf(cmd, sizeof cmd, "cd '%s' && echo 'not,a,sweep' > other.csv", dir);
    assert_int_equal(system(cmd), 0);
    write_archs("d.txt", 2);
    expect2("sweep --space nb201 --archs d.txt --out other.csv", "not an epsinas sweep CSV");
}

EPS_T_MAIN(setup, teardown,
        cmocka_unit_test(test_sweep_matches_score),
        cmocka_unit_test(test_resume_after_torn_line),
        cmocka_unit_test(test_interrupt_then_resume),
        cmocka_unit_test(test_errors))
