/* test_cli.c — the CLI's one exit-code mapping (src/cli/eps_cli_common.c,
 * README "Exit status"): every EPS_E* code, both error printers returning
 * it, and the binary's exit status for each class of failure. And the
 * README's example, so it cannot drift: its first `score` command is run as
 * written, the output it shows must be what the product prints, and the
 * printed epsilon must match the PyTorch reference (tests/golden/nb201.json). */
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

/* The one option parser, as every command sees it: the same rules and the
 * same one-line messages (exit 2), and the forms it accepts. */
static void test_option_parser(void **state)
{
    (void)state;
    static const struct {
        const char *args;
        int exit;
        const char *want; /* in stderr (exit 2) or stdout (exit 0) */
    } cases[] = {
        {"score --space nb201 --bogus 1", 2, "epsinas score: unknown option '--bogus' (try --help)"},
        {"sweep --bogus", 2, "epsinas sweep: unknown option '--bogus' (try --help)"},
        {"enumerate --bogus", 2, "epsinas enumerate: unknown option '--bogus' (try --help)"},
        {"merge --bogus", 2, "epsinas merge: unknown option '--bogus' (try --help)"},
        {"eval --bogus", 2, "epsinas eval: unknown option '--bogus' (try --help)"},
        {"score --spac nb201", 2, "unknown option '--spac'"},     /* no abbreviations */
        {"score --space", 2, "epsinas score: option --space needs a value"},
        {"score --json=yes", 2, "option --json takes no value"},
        {"sweep --space nb201 stray", 2, "epsinas sweep: unexpected argument 'stray'"},
        {"enumerate --space nb201 -- x", 2, "unexpected argument 'x'"},
        {"sweep --threads 0 --space nb201 --all --out x.csv", 2, "epsinas sweep: --threads: '0' is not an integer in [1, 256]"},
        {"score --space nb201 --engine slow", 2, "epsinas score: --engine: expected 'fast' or 'dense', got 'slow'"},
        {"merge --out x.csv", 2, "epsinas merge: no shard CSVs given"},
        {"merge --count 1 --out /nonexistent/x.csv -- --odd-name.csv", 2, "--odd-name.csv"}, /* after --: a file */
        {"score --space=nb201 '--arch=|none~0|+|none~0|none~1|+|none~0|none~1|none~2|' --batch-size=2", 0, "epsilon     nan"},
        {"score --space nb201 --space nb201 --arch '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|' --batch-size 2", 0, "epsilon     nan"},
        {"sweep -h", 0, "usage: epsinas sweep"},
        {"merge --help", 0, "usage: epsinas merge"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "cd %s && %s %s %s", eps_t_root(), eps_t_bin(), cases[i].args,
                 cases[i].exit ? "2>&1 >/dev/null" : "2>/dev/null");
        int code = -1;
        char *out = eps_t_run(cmd, &code);
        int lines = 0;
        for (const char *p = out ? out : ""; *p; p++) lines += *p == '\n';
        if (code != cases[i].exit || !out || !strstr(out, cases[i].want) || (cases[i].exit && lines != 1))
            fail_msg("'%s': exit %d, output '%s'; want exit %d and '%s'", cases[i].args, code, out ? out : "",
                     cases[i].exit, cases[i].want);
        free(out);
    }
}

/* The text of README.md after `key` up to the end of that line (malloc'd),
 * or NULL. */
static char *readme_line_after(const char *readme, const char *key)
{
    const char *p = strstr(readme, key);
    if (!p) return NULL;
    const char *e = strchr(p, '\n');
    return strndup(p, e ? (size_t)(e - p) : strlen(p));
}

static void test_readme_example(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/README.md", eps_t_root());
    char *readme = eps_t_read_file(path);
    assert_non_null(readme);
    /* The command, as the README writes it (first nb201 score example). */
    char *cmdline = readme_line_after(readme, "build/epsinas score --space nb201 --arch '");
    assert_non_null(cmdline);
    char *arch0 = strchr(cmdline, '\''), *arch1 = arch0 ? strchr(arch0 + 1, '\'') : NULL;
    assert_non_null(arch1);
    arch1[1] = 0; /* drop a trailing comment */
    char arch[256];
    snprintf(arch, sizeof arch, "%.*s", (int)(arch1 - arch0 - 1), arch0 + 1);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s", eps_t_root(), eps_t_bin(), cmdline + strlen("build/epsinas "));
    int code = -1;
    char *out = eps_t_run(cmd, &code);
    assert_int_equal(code, 0);
    assert_non_null(out);
    /* Every line of the README's output block but the time is printed as shown. */
    static const char *const keys[] = {"    epsilon ", "    params ", "    macs ", "    weights ", "    batch ",
                                       "    engine ", "    hash "};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        char *shown = readme_line_after(readme, keys[k]);
        if (!shown) fail_msg("README.md shows no '%s' line", keys[k] + 4);
        if (!strstr(out, shown + 4)) fail_msg("README.md shows '%s', the product prints:\n%s", shown + 4, out);
        free(shown);
    }
    double printed = NAN;
    const char *ep = strstr(out, "epsilon");
    assert_non_null(ep);
    assert_int_equal(sscanf(ep, "epsilon %lf", &printed), 1);
    /* The service example in the README (same cell, batch, engine) agrees
     * with the command line to the digits the command line prints. */
    char *json = readme_line_after(readme, "\"epsilon\":");
    assert_non_null(json);
    double shown_json = strtod(json + strlen("\"epsilon\":"), NULL);
    if (!eps_t_close(shown_json, printed, 1e-8, 0))
        fail_msg("README.md's service example shows epsilon %.17g, the command line prints %.9g", shown_json, printed);
    /* The reference: the golden case for this cell on ramp/256 at (1e-7, 1). */
    json_t *g = eps_t_load_json("tests/golden/nb201.json");
    json_t *cases = json_object_get(g, "cases"), *c;
    size_t i;
    double ref = NAN;
    json_array_foreach(cases, i, c)
    {
        json_t *w = json_object_get(c, "weights");
        if (!strcmp(json_string_value(json_object_get(c, "arch")), arch) &&
            !strcmp(json_string_value(json_object_get(c, "batch")), "ramp") &&
            json_integer_value(json_object_get(c, "batch_size")) == 256 &&
            eps_t_num(json_array_get(w, 0)) == 1e-7 && eps_t_num(json_array_get(w, 1)) == 1.0) {
            ref = eps_t_num(json_object_get(c, "epsilon"));
            break;
        }
    }
    if (isnan(ref)) fail_msg("tests/golden/nb201.json has no ramp/256 case for the README's cell %s", arch);
    /* The golden runner's epsilon tolerance (tests/util_golden.c). */
    if (!eps_t_close(printed, ref, 1e-4, 1e-5))
        fail_msg("the README's example prints epsilon %.9g, the PyTorch reference is %.9g", printed, ref);
    json_decref(g);
    free(json);
    free(out);
    free(cmdline);
    free(readme);
}

EPS_T_MAIN(NULL, NULL,
        cmocka_unit_test(test_exit_code_table),
        cmocka_unit_test(test_printers_agree),
        cmocka_unit_test(test_binary_exit_status),
        cmocka_unit_test(test_option_parser),
        cmocka_unit_test(test_readme_example))
