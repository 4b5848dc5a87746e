/* util.h — helpers shared by the C test suites (tests/util_common.c). */
#ifndef EPS_TEST_UTIL_H
#define EPS_TEST_UTIL_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

/* Path of the shared data directory (env EPS_SHARED, else ../shared from
 * the repo root when it exists), or NULL when absent: callers then skip
 * with a printed reason. Static string. */
const char *eps_t_shared(void);
/* buf = the shared directory + "/" + rel; when the directory is absent,
 * prints "SKIP: <why>" and skips the running test (cmocka). */
void eps_t_shared_file(char *buf, size_t n, const char *rel, const char *why);
/* The JSON file rel of the shared directory (caller decrefs); skips the
 * running test, printing why, when the directory is absent; fails it when
 * the file does not load. */
json_t *eps_t_shared_json(const char *rel, const char *why);
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
/* Writes a float32 NCHW .npy v1 file of n images c x h x w at path; value
 * i/8 + (k % 7)/100 at position k of image i (a file batch of any shape). */
void eps_t_write_npy(const char *path, int n, int c, int h, int w);
/* A response body that grows as libcurl delivers it: pass eps_t_body_write
 * as CURLOPT_WRITEFUNCTION and a zeroed eps_t_body as its data. Kept
 * NUL-terminated; refuses (ends the transfer) past 16 MiB. Caller frees
 * .data. */
typedef struct {
    char *data;
    size_t len;
} eps_t_body;
size_t eps_t_body_write(char *p, size_t sz, size_t n, void *body);

/* ---- the server under test and an HTTP client (tests/util_server.c) ---- */

/* A temp dir /tmp/epsinas-test-NAME-XXXXXX (with resp/ for saved
 * responses), libcurl initialised, SIGPIPE ignored, the binary present.
 * For a suite's setup; 0 or -1. */
int eps_t_server_setup(const char *name);
/* Kills servers still running (a failed assertion skipped their stop),
 * removes the temp dir unless EPS_KEEP_TMP is set. For teardown. */
int eps_t_server_teardown(void);
/* The temp dir (static string); responses saved so far. */
const char *eps_t_dir(void);
int eps_t_saved(void);

typedef struct {
    pid_t pid;
    int port;
    int out_fd;
    char base[64]; /* "http://127.0.0.1:PORT" */
    char log[300]; /* the server's stderr */
} eps_t_srv;

/* Starts `epsinas serve --listen 127.0.0.1 --port 0 ARGS` (ARGS split on
 * spaces) with extra environment entries env[] ("K=V", NULL-terminated, or
 * NULL) and waits (bounded) for its "listening on" line. 0 or -1. */
int eps_t_srv_start_env(eps_t_srv *s, const char *args, const char *const *env);
int eps_t_srv_start(eps_t_srv *s, const char *args);
/* Waits (bounded) for the process to exit; returns its exit code, or -1
 * after killing it when it did not exit within timeout_ms. */
int eps_t_srv_wait(eps_t_srv *s, int timeout_ms);
/* SIGTERM and wait (30 s); SIGKILL and wait. */
int eps_t_srv_stop(eps_t_srv *s);
void eps_t_srv_kill9(eps_t_srv *s);

typedef struct {
    long status;
    int curl_rc;
    char *body; /* NUL-terminated, at most 16 MiB */
    size_t len;
    char ctype[128], rid[160], allow[128], retry_after[32], acao[256], www_auth[128], location[160];
    json_t *json; /* parsed body when JSON, else NULL */
} eps_t_hresp;

/* One request. handle: a reused CURL * (keep-alive) or NULL for a fresh
 * one. hdrs: NULL-terminated extra header lines. body_len < 0: strlen(body).
 * Saves the response for eps_t_validate_saved unless nosave. The caller
 * frees r (eps_t_hresp_free). */
void eps_t_hreq_x(void *handle, const eps_t_srv *s, const char *method, const char *path, const char *ctype,
                  const char *body, long body_len, const char *const *hdrs, int nosave, eps_t_hresp *r);
void eps_t_hreq(const eps_t_srv *s, const char *method, const char *path, const char *ctype, const char *body,
                const char *const *hdrs, eps_t_hresp *r);
void eps_t_post_json(const eps_t_srv *s, const char *path, const char *body, eps_t_hresp *r);
void eps_t_hresp_free(eps_t_hresp *r);
/* Saves {method, path, status, content_type, body} for the OpenAPI check
 * (path without the query: the validator matches path templates). */
void eps_t_save_response(const char *method, const char *path, const eps_t_hresp *r);
/* String member k of j, or NULL. */
const char *eps_t_jstr(const json_t *j, const char *k);
/* Asserts the error shape {error, code[, field]} with this status (and
 * code and field when not NULL); returns the code. */
const char *eps_t_expect_error(const eps_t_hresp *r, long status, const char *code, const char *field);
/* NB201 cell `index` in our enumeration order (op (i / 5^e) % 5 on edge e). */
void eps_t_nb201_arch(int index, char *buf);

/* A test file's main(): its cmocka tests, run as one group with setup and
 * teardown (NULL for none). Include <cmocka.h> first. */
#define EPS_T_MAIN(setup, teardown, ...)                                                       \
    int main(void)                                                                             \
    {                                                                                          \
        const struct CMUnitTest eps_t_tests_[] = {__VA_ARGS__};                                \
        return cmocka_run_group_tests(eps_t_tests_, setup, teardown);                          \
    }

/* A fresh directory /tmp/epsinas-test-TAG-XXXXXX, its path in buf; 0 or -1. */
int eps_t_tmpdir(char *buf, size_t n, const char *tag);
/* Removes dir and everything below it (kept when EPS_KEEP_TMP is set, to
 * look at after a failure); 0 or -1. */
int eps_t_rmtree(const char *dir);

/* The data-driven rejection tables (tests/data/<space>/invalid.json and
 * the like): {"cases": [{"name", "request", "code" (an eps_error_code_name,
 * default "invalid_input"), "field", "error"}]} with at least min_cases
 * cases. Each request must be refused by eps_arch_from_json (after the
 * common-field check when EPS_T_COMMON_FIELDS) with that code and field,
 * one line of message holding each "error" substring (a string or an
 * array; the whole message when EPS_T_EXACT), and nothing left allocated
 * in the arch. */
enum { EPS_T_COMMON_FIELDS = 1, EPS_T_EXACT = 2 };
void eps_t_rejects(const char *relpath, size_t min_cases, int flags);
/* openapi.yaml is valid OpenAPI 3.1 and every saved response matches it
 * (tests/node/validate.sh); more than min_saved were saved. Skips with a
 * printed reason when node is not installed. */
void eps_t_validate_saved(int min_saved);

#endif
