/* util.h — helpers shared by the C test suites (tests/util_common.c). */
#ifndef EPS_TEST_UTIL_H
#define EPS_TEST_UTIL_H

#include <jansson.h>

/* Path of the shared data directory (env EPS_SHARED, else ../shared from
 * the repo root when it exists), or NULL when absent: callers then skip
 * with a printed reason. Static string. */
const char *eps_t_shared(void);
/* buf = the shared directory + "/" + rel; when the directory is absent,
 * prints "SKIP: <why>" and skips the running test (cmocka). */
void eps_t_shared_file(char *buf, size_t n, const char *rel, const char *why);
/* Repo root (env EPS_ROOT, else "."). Static string. */
const char *eps_t_root(void);
/* Returns a malloc'd copy of s with every "$SHARED" replaced by the shared
 * directory (caller frees), or NULL when s needs it and it is absent. */
char *eps_t_subst_shared(const char *s);
/* Loads a JSON file relative to the repo root; aborts the test on error.
 * Caller owns the returned reference (json_decref). */
json_t *eps_t_load_json(const char *relpath);
/* |ours - ref| <= rtol*|ref| + atol; NaN matches only NaN. */
int eps_t_close(double ours, double ref, double rtol, double atol);
/* JSON number or null (-> NaN). */
double eps_t_num(const json_t *v);
/* Path of the epsinas binary under test (env EPS_BIN, else build/epsinas). */
const char *eps_t_bin(void);
/* Runs a shell command, captures stdout (malloc'd, caller frees) and exit code. */
char *eps_t_run(const char *cmd, int *exit_code);
/* The whole file as a NUL-terminated malloc'd string (caller frees), or
 * NULL when it cannot be opened. */
char *eps_t_read_file(const char *path);
/* True when running under ASan (env EPS_ASAN set): heavy loops shrink. */
int eps_t_asan(void);
/* A response body that grows as libcurl delivers it: pass eps_t_body_write
 * as CURLOPT_WRITEFUNCTION and a zeroed eps_t_body as its data. Kept
 * NUL-terminated; refuses (ends the transfer) past 16 MiB. Caller frees
 * .data. */
typedef struct {
    char *data;
    size_t len;
} eps_t_body;
size_t eps_t_body_write(char *p, size_t sz, size_t n, void *body);

#endif
