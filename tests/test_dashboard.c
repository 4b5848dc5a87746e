/* test_dashboard.c — the embedded dashboard through the real server on
 * loopback (`epsinas serve --port 0`, libcurl): every embedded file served
 * byte for byte with its Content-Type and ETag, If-None-Match answering
 * 304 (strong, weak, lists, "*"), HEAD, Cache-Control (hashed assets
 * immutable, index no-cache), JSON 404/405 for what is not a file, the
 * API's own 404 untouched, and Vary: Origin under --cors-origins. The
 * table of files is read from the library (eps_static_files), so the test
 * follows whatever web/dist held at build time; with the placeholder page
 * (npm missing at build time) the asset checks skip saying so. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

#include "epsinas/service/http_static.h"
#include "util.h"

typedef struct {
    FILE *out;   /* the server's stdout (popen) */
    long pid;
    char base[64];
} server;

/* `sh -c 'echo $$; exec epsinas serve ...'`: the first line is the server's
 * pid (exec keeps it), the next its "listening on HOST:PORT". */
static int server_start(server *s, const char *extra)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sh -c 'echo $$; exec \"%s\" serve --listen 127.0.0.1 --port 0 --workers 1 %s 2>/dev/null'",
             eps_t_bin(), extra);
    s->out = popen(cmd, "r");
    if (!s->out) return -1;
    char line[256];
    if (!fgets(line, sizeof line, s->out)) return -1;
    s->pid = atol(line);
    /* The server prints its line once bound; fgets blocks until then or EOF. */
    if (!fgets(line, sizeof line, s->out) || strncmp(line, "listening on ", 13)) return -1;
    const char *colon = strrchr(line, ':');
    if (!colon) return -1;
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", atoi(colon + 1));
    return 0;
}

static void server_stop(server *s)
{
    if (s->pid > 0) kill((pid_t)s->pid, SIGTERM);
    if (s->out) pclose(s->out);
    memset(s, 0, sizeof *s);
}

typedef struct {
    long status;
    eps_t_body b;
    char head[8192];  /* every response header line, as received */
    size_t hlen;
} reply;

static size_t on_head(char *p, size_t sz, size_t n, void *ud)
{
    reply *r = ud;
    size_t k = sz * n;
    if (r->hlen + k < sizeof r->head) {
        memcpy(r->head + r->hlen, p, k);
        r->hlen += k;
        r->head[r->hlen] = 0;
    }
    return k;
}

/* The value of header name in r (static buffer), or NULL. */
static const char *header(const reply *r, const char *name)
{
    static char v[512];
    size_t n = strlen(name);
    for (const char *l = r->head; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
        if (strncasecmp(l, name, n) || l[n] != ':') continue;
        const char *b = l + n + 1;
        while (*b == ' ') b++;
        size_t m = strcspn(b, "\r\n");
        snprintf(v, sizeof v, "%.*s", (int)m, b);
        return v;
    }
    return NULL;
}

/* method path with one optional extra request header ("Name: value"). */
static void fetch(const server *s, const char *method, const char *path, const char *hdr, reply *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[512];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    struct curl_slist *hl = hdr ? curl_slist_append(NULL, hdr) : NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, eps_t_body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_head);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L); /* send "../" as written */
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
}

static void reply_free(reply *r)
{
    free(r->b.data);
    r->b.data = NULL;
}

static server g_srv;

static int setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return server_start(&g_srv, "--cors-origins http://127.0.0.1:1");
}

static int teardown(void **state)
{
    (void)state;
    server_stop(&g_srv);
    curl_global_cleanup();
    return 0;
}

/* Every embedded file, byte for byte, with its type, ETag and caching. */
static void test_every_file_served_as_embedded(void **state)
{
    (void)state;
    int n = 0;
    for (const eps_static_file *f = eps_static_files; f->path; f++, n++) {
        reply r;
        fetch(&g_srv, "GET", f->path, NULL, &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.b.len, f->len);
        assert_memory_equal(r.b.data, f->data, f->len);
        assert_string_equal(header(&r, "Content-Type"), f->ctype);
        assert_string_equal(header(&r, "ETag"), f->etag);
        const char *cc = header(&r, "Cache-Control");
        assert_non_null(cc);
        if (!strncmp(f->path, "/assets/", 8)) assert_non_null(strstr(cc, "immutable"));
        else assert_string_equal(cc, "no-cache");
        assert_string_equal(header(&r, "X-Content-Type-Options"), "nosniff");
        assert_string_equal(header(&r, "Vary"), "Origin");
        reply_free(&r);
    }
    assert_true(n >= 1);
    if (!eps_static_built) print_message("# note: this build embeds the 'dashboard not built' page (npm missing)\n");
}

static void test_root_is_index_and_head_has_no_body(void **state)
{
    (void)state;
    const eps_static_file *idx = eps_http_static_find("/index.html");
    assert_non_null(idx);
    reply r;
    fetch(&g_srv, "GET", "/", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.b.len, idx->len);
    assert_string_equal(header(&r, "ETag"), idx->etag);
    assert_non_null(strstr(header(&r, "Content-Type"), "text/html"));
    assert_non_null(header(&r, "Content-Security-Policy"));
    assert_true(r.b.len > 15 && !strncasecmp(r.b.data, "<!doctype html>", 15));
    reply_free(&r);
    fetch(&g_srv, "HEAD", "/", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.b.len, 0);
    char want[32];
    snprintf(want, sizeof want, "%zu", idx->len);
    assert_string_equal(header(&r, "Content-Length"), want);
    assert_string_equal(header(&r, "ETag"), idx->etag);
    reply_free(&r);
}

/* If-None-Match forms (RFC 9110 13.1.2, weak comparison): 304 when listed. */
static void test_if_none_match(void **state)
{
    (void)state;
    const char *etag = eps_http_static_find("/")->etag;
    char h[256];
    const struct {
        const char *fmt;
        long status;
    } cases[] = {
        {"If-None-Match: %s", 304},
        {"If-None-Match: W/%s", 304},
        {"If-None-Match: \"other\", %s", 304},
        {"If-None-Match: \"other\" ,  %s  ", 304},
        {"If-None-Match: *", 304},
        {"If-None-Match: \"other\"", 200},
        {"If-None-Match: \"\"", 200},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(h, sizeof h, cases[i].fmt, etag);
        reply r;
        fetch(&g_srv, "GET", "/", h, &r);
        if (r.status != cases[i].status) print_message("case %zu: %s\n", i, h);
        assert_int_equal(r.status, cases[i].status);
        assert_string_equal(header(&r, "ETag"), etag);
        if (r.status == 304) assert_int_equal(r.b.len, 0);
        reply_free(&r);
    }
    /* A prefix of the tag is another tag. */
    snprintf(h, sizeof h, "If-None-Match: %.*s\"", (int)strlen(etag) - 2, etag);
    reply r;
    fetch(&g_srv, "GET", "/", h, &r);
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

/* What is not a file: JSON errors in the API's shape. */
static void test_errors(void **state)
{
    (void)state;
    const struct {
        const char *method, *path;
        long status;
        const char *code;
    } cases[] = {
        {"GET", "/assets/no-such-file.js", 404, "not_found"},
        {"GET", "/assets/", 404, "not_found"},
        {"GET", "/assets/../index.html", 404, "not_found"},
        {"POST", "/", 405, "method_not_allowed"},
        {"DELETE", "/index.html", 405, "method_not_allowed"},
        {"GET", "/no-such-page", 404, "not_found"},   /* the API's own 404 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reply r;
        fetch(&g_srv, cases[i].method, cases[i].path, NULL, &r);
        if (r.status != cases[i].status) print_message("case %s %s\n", cases[i].method, cases[i].path);
        assert_int_equal(r.status, cases[i].status);
        assert_string_equal(header(&r, "Content-Type"), "application/json");
        json_error_t e;
        json_t *j = json_loadb(r.b.data, r.b.len, 0, &e);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "code")), cases[i].code);
        if (cases[i].status == 405) assert_string_equal(header(&r, "Allow"), "GET, HEAD");
        json_decref(j);
        reply_free(&r);
    }
}

/* The API next to the dashboard is unchanged (a /v1 route still answers). */
static void test_api_still_routed(void **state)
{
    (void)state;
    reply r;
    fetch(&g_srv, "GET", "/v1/spaces", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.b.data, "\"nb201\""));
    reply_free(&r);
}

/* The built dashboard (not the placeholder): index names its bundles. */
static void test_built_index_names_its_assets(void **state)
{
    (void)state;
    if (!eps_static_built) {
        print_message("SKIP: this build embeds the placeholder page (npm was missing at build time)\n");
        skip();
    }
    const eps_static_file *idx = eps_http_static_find("/");
    int assets = 0;
    for (const eps_static_file *f = eps_static_files; f->path; f++) {
        if (strncmp(f->path, "/assets/", 8)) continue;
        assets++;
        /* vite writes every bundle into index.html as an absolute path */
        assert_non_null(memmem(idx->data, idx->len, f->path, strlen(f->path)));
    }
    assert_true(assets >= 2); /* the script and the stylesheet */
}

EPS_T_MAIN(setup, teardown,
        cmocka_unit_test(test_every_file_served_as_embedded),
        cmocka_unit_test(test_root_is_index_and_head_has_no_body),
        cmocka_unit_test(test_if_none_match),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_api_still_routed),
        cmocka_unit_test(test_built_index_names_its_assets))
