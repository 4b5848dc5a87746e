/* util_server.c — the real server under test and an HTTP client for it,
 * shared by the service suites (test_http.c, test_jobs.c; see tests/util.h):
 * a temp dir for logs and saved responses, `epsinas serve` started on a
 * loopback port 0 (bounded wait for its "listening on" line) and reaped,
 * libcurl requests with the headers the suites check, the error-shape
 * assertion, and the OpenAPI validation of every saved response. */
#include "util.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_LIVE 32
#define MAX_BODY (16u << 20)

static char g_dir[256];    /* temp dir: saved responses + server logs */
static atomic_int g_saved; /* save() runs on the tests' client threads too */
/* Servers started and not yet reaped: a failed assertion longjmps past
 * eps_t_srv_stop, so eps_t_server_teardown kills what is left. */
static pid_t g_live[MAX_LIVE];
static int g_n_live;

const char *eps_t_dir(void) { return g_dir; }
int eps_t_saved(void) { return atomic_load(&g_saved); }

int eps_t_server_setup(const char *name)
{
    if (eps_t_tmpdir(g_dir, sizeof g_dir, name)) return -1;
    char d[300];
    snprintf(d, sizeof d, "%s/resp", g_dir);
    mkdir(d, 0755);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    if (access(eps_t_bin(), X_OK) != 0) {
        fprintf(stderr, "epsinas binary not found at %s (set EPS_BIN)\n", eps_t_bin());
        return -1;
    }
    return 0;
}

int eps_t_server_teardown(void)
{
    while (g_n_live > 0) {
        pid_t pid = g_live[--g_n_live];
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (eps_t_rmtree(g_dir)) return -1;
    curl_global_cleanup();
    return 0;
}

/* ------------------------------------------------------------ server process */

static void forget_pid(pid_t pid)
{
    for (int i = 0; i < g_n_live; i++)
        if (g_live[i] == pid) g_live[i] = g_live[--g_n_live];
}

/* Reads the server's first stdout line (up to 60 s: ASan builds load
 * batches slowly); 0 and s->port/base when it is "listening on HOST:PORT". */
static int await_listening(eps_t_srv *s)
{
    char line[256];
    size_t n = 0;
    for (int tries = 0; tries < 600 && n < sizeof line - 1; tries++) {
        struct pollfd pf = {s->out_fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t k = read(s->out_fd, line + n, 1);
        if (k <= 0) break;
        if (line[n] == '\n') {
            line[n] = 0;
            char *colon = strrchr(line, ':');
            if (strncmp(line, "listening on ", 13) || !colon) break;
            s->port = atoi(colon + 1);
            snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
            return 0;
        }
        n++;
    }
    return -1;
}

int eps_t_srv_start_env(eps_t_srv *s, const char *args, const char *const *env)
{
    memset(s, 0, sizeof *s);
    static atomic_int n_srv;
    snprintf(s->log, sizeof s->log, "%s/server%d.log", g_dir, atomic_fetch_add(&n_srv, 1) + 1);
    char *copy = strdup(args ? args : "");
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)eps_t_bin();
    argv[argc++] = "serve";
    argv[argc++] = "--listen";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--port";
    argv[argc++] = "0";
    for (char *save = NULL, *t = strtok_r(copy, " ", &save); t && argc < 62; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    argv[argc] = NULL;
    int p[2];
    if (pipe(p) != 0) {
        free(copy);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        dup2(p[1], 1);
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) dup2(fd, 2);
        close(p[0]);
        for (int i = 0; env && env[i]; i++) putenv((char *)env[i]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    free(copy);
    s->pid = pid;
    if (g_n_live < MAX_LIVE) g_live[g_n_live++] = pid;
    s->out_fd = p[0];
    if (await_listening(s) == 0) return 0;
    print_message("server did not start; log %s\n", s->log);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    forget_pid(pid);
    close(s->out_fd);
    return -1;
}

int eps_t_srv_start(eps_t_srv *s, const char *args) { return eps_t_srv_start_env(s, args, NULL); }

int eps_t_srv_wait(eps_t_srv *s, int timeout_ms)
{
    int st;
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            forget_pid(s->pid);
            close(s->out_fd);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        }
        poll(NULL, 0, 20);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    forget_pid(s->pid);
    close(s->out_fd);
    return -1;
}

int eps_t_srv_stop(eps_t_srv *s)
{
    kill(s->pid, SIGTERM);
    return eps_t_srv_wait(s, 30000);
}

void eps_t_srv_kill9(eps_t_srv *s)
{
    kill(s->pid, SIGKILL);
    eps_t_srv_wait(s, 10000);
}

/* ------------------------------------------------------------ HTTP client */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    eps_t_hresp *r = ud;
    size_t k = sz * n;
    if (r->len + k > MAX_BODY) return 0; /* bounded */
    char *nb = realloc(r->body, r->len + k + 1);
    if (!nb) return 0;
    memcpy(nb + r->len, p, k);
    r->len += k;
    nb[r->len] = 0;
    r->body = nb;
    return k;
}

static void grab(const char *line, size_t n, const char *name, char *dst, size_t dn)
{
    size_t ln = strlen(name);
    if (n <= ln + 1 || strncasecmp(line, name, ln) || line[ln] != ':') return;
    const char *v = line + ln + 1;
    size_t vn = n - ln - 1;
    while (vn && (*v == ' ')) v++, vn--;
    while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n')) vn--;
    snprintf(dst, dn, "%.*s", (int)vn, v);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    eps_t_hresp *r = ud;
    size_t k = sz * n;
    grab(p, k, "Content-Type", r->ctype, sizeof r->ctype);
    grab(p, k, "X-Request-Id", r->rid, sizeof r->rid);
    grab(p, k, "Allow", r->allow, sizeof r->allow);
    grab(p, k, "Retry-After", r->retry_after, sizeof r->retry_after);
    grab(p, k, "Access-Control-Allow-Origin", r->acao, sizeof r->acao);
    grab(p, k, "WWW-Authenticate", r->www_auth, sizeof r->www_auth);
    grab(p, k, "Location", r->location, sizeof r->location);
    return k;
}

void eps_t_hresp_free(eps_t_hresp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

void eps_t_save_response(const char *method, const char *path, const eps_t_hresp *r)
{
    char p[256];
    snprintf(p, sizeof p, "%.*s", (int)strcspn(path, "?"), path);
    json_t *body = r->json ? json_incref(r->json) : r->len ? json_string(r->body) : json_null();
    if (!body) body = json_string("<non-UTF-8 body>");
    json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:o}", "method", method, "path", p, "status", (int)r->status,
                          "content_type", r->ctype, "body", body);
    char fn[512];
    snprintf(fn, sizeof fn, "%s/resp/%04d.json", g_dir, atomic_fetch_add(&g_saved, 1));
    json_dump_file(o, fn, JSON_COMPACT);
    json_decref(o);
}

void eps_t_hreq_x(void *handle, const eps_t_srv *s, const char *method, const char *path, const char *ctype,
                  const char *body, long body_len, const char *const *hdrs, int nosave, eps_t_hresp *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = handle ? handle : curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    struct curl_slist *hl = NULL;
    char ct[160];
    if (ctype) {
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        hl = curl_slist_append(hl, ct);
    }
    hl = curl_slist_append(hl, "Expect:");
    for (int i = 0; hdrs && hdrs[i]; i++) hl = curl_slist_append(hl, hdrs[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body_len < 0 ? (long)strlen(body) : body_len));
    }
    r->curl_rc = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    if (!handle) curl_easy_cleanup(c);
    if (r->body && !strncmp(r->ctype, "application/json", 16)) r->json = json_loadb(r->body, r->len, 0, NULL);
    if (!nosave && r->curl_rc == 0) eps_t_save_response(method, path, r);
}

void eps_t_hreq(const eps_t_srv *s, const char *method, const char *path, const char *ctype, const char *body,
                const char *const *hdrs, eps_t_hresp *r)
{
    eps_t_hreq_x(NULL, s, method, path, ctype, body, -1, hdrs, 0, r);
}

void eps_t_post_json(const eps_t_srv *s, const char *path, const char *body, eps_t_hresp *r)
{
    eps_t_hreq(s, "POST", path, "application/json", body, NULL, r);
}

const char *eps_t_jstr(const json_t *j, const char *k) { return json_string_value(json_object_get(j, k)); }

const char *eps_t_expect_error(const eps_t_hresp *r, long status, const char *code, const char *field)
{
    const char *got = eps_t_jstr(r->json, "code");
    if (r->status != status || !r->json || (code && (!got || strcmp(got, code))))
        print_message("expected %ld %s, got %ld body=%s\n", status, code ? code : "", r->status,
                      r->body ? r->body : "(none)");
    assert_int_equal(r->status, status);
    assert_non_null(r->json);
    assert_non_null(eps_t_jstr(r->json, "error"));
    assert_non_null(got);
    if (code) assert_string_equal(got, code);
    if (field) {
        assert_non_null(eps_t_jstr(r->json, "field"));
        assert_string_equal(eps_t_jstr(r->json, "field"), field);
    }
    return got;
}

void eps_t_nb201_arch(int index, char *buf)
{
    static const char *const ops[] = {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"};
    int o[6];
    for (int e = 0; e < 6; e++, index /= 5) o[e] = index % 5;
    sprintf(buf, "|%s~0|+|%s~0|%s~1|+|%s~0|%s~1|%s~2|", ops[o[0]], ops[o[1]], ops[o[2]], ops[o[3]], ops[o[4]], ops[o[5]]);
}

void eps_t_validate_saved(int min_saved)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/node/validate.sh' '%s/resp' 2>&1", eps_t_root(), g_dir);
    int rc;
    char *out = eps_t_run(cmd, &rc);
    print_message("%s", out);
    if (rc == 77) {
        free(out);
        print_message("SKIP: node/npm not installed: cannot validate openapi.yaml\n");
        skip();
    }
    assert_non_null(strstr(out, "is a valid OpenAPI 3.1"));
    assert_non_null(strstr(out, " 0 invalid"));
    assert_true(eps_t_saved() > min_saved);
    assert_int_equal(rc, 0);
    free(out);
}
