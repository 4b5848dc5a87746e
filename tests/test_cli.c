/* test_cli.c — the CLI's one exit-code mapping (src/cli/eps_cli_common.c,
 * README "Exit status"): every EPS_E* code, both error printers returning
 * it, and the binary's exit status for each class of failure. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/eps_cli_common.h"
#include "util.h"

static const struct {
    int code;
    int exit;
} exit_table[] = {
    {EPS_OK, 0},          {EPS_EINVAL, 2},    {EPS_ELIMIT, 2},     {EPS_EIO, 2},
    {EPS_ECANCELED, 130}, {EPS_ENOMEM, 1},    {EPS_EINTERNAL, 1},  {-99, 1},
};

static void test_exit_code_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof exit_table / sizeof exit_table[0]; i++) {
        if (eps_cli_exit_code(exit_table[i].code) != exit_table[i].exit)
            fail_msg("code %d: exit %d, want %d", exit_table[i].code, eps_cli_exit_code(exit_table[i].code),
                     exit_table[i].exit);
    }
}

/* Both printers (eps_cli_fail for score/sweep/merge/enumerate, eps_cli_report
 * for eval/select/search) agree with the table, and print one line each. */
static void test_printers_agree(void **state)
{
    (void)state;
    char path[] = "/tmp/eps_cli_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fd, 2) == 2);
    size_t n = sizeof exit_table / sizeof exit_table[0];
    for (size_t i = 1; i < n; i++) { /* EPS_OK is not an error */
        eps_error e;
        eps_error_set(&e, exit_table[i].code, i % 2 ? "--flag" : "", "message %zu", i);
        assert_int_equal(eps_cli_fail("test", &e), exit_table[i].exit);
        assert_int_equal(eps_cli_report_err("test", &e), exit_table[i].exit);
        assert_int_equal(eps_cli_report("test", exit_table[i].code, "message\nwith a newline"), exit_table[i].exit);
    }
    fflush(stderr);
    assert_true(dup2(saved, 2) == 2);
    close(saved);
    char *text = eps_t_read_file(path);
    unlink(path);
    close(fd);
    assert_non_null(text);
    int lines = 0;
    for (char *p = text; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 3 * (int)(n - 1)); /* the newline in a message became a space */
    assert_non_null(strstr(text, "epsinas test: --flag: message 1\n"));
    assert_non_null(strstr(text, "epsinas test: message with a newline\n"));
    free(text);
}

/* The binary: bad input and an unwritable file exit 2 whatever the command. */
static void test_binary_exit_status(void **state)
{
    (void)state;
    static const struct {
        const char *args;
        int exit;
    } cases[] = {
        {"score --space nb201 --arch nonsense", 2},
        {"score --space nb201 --batch-size 0", 2},
        {"eval --scores tests/data/eval/scores_small.csv --truth tests/data/eval/truth_small.csv --plot "
         "/nonexistent/dir/x.svg",
         2},
        {"search-weights --sample 0", 2},
        {"merge --out /nonexistent/dir/x.csv --count 1 tests/data/eval/scores_small.csv", 2},
        {"no-such-command", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "cd %s && %s %s 2>/dev/null", eps_t_root(), eps_t_bin(), cases[i].args);
        int code = -1;
        free(eps_t_run(cmd, &code));
        if (code != cases[i].exit) fail_msg("'%s': exit %d, want %d", cases[i].args, code, cases[i].exit);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_code_table),
        cmocka_unit_test(test_printers_agree),
        cmocka_unit_test(test_binary_exit_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
