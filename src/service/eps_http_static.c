/* eps_http_static.c — serves the embedded dashboard (include/epsinas/service/
 * http_static.h): file lookup, conditional GET by ETag, cache headers.
 * The bytes themselves are generated at build time (scripts/web-embed.sh). */
#include "epsinas/service/http_static.h"

#include <string.h>

#define ASSETS "/assets/"

int eps_http_static_owns(const char *url)
{
    if (!url) return 0;
    if (!strcmp(url, "/") || !strncmp(url, ASSETS, strlen(ASSETS))) return 1;
    return eps_http_static_find(url) != NULL;
}

const eps_static_file *eps_http_static_find(const char *url)
{
    if (!url) return NULL;
    if (!strcmp(url, "/")) url = "/index.html";
    for (const eps_static_file *f = eps_static_files; f->path; f++)
        if (!strcmp(f->path, url)) return f;
    return NULL;
}

/* If-None-Match is "*" or a comma-separated list of entity tags, each
 * possibly weak (W/"x"); the weak comparison applies (RFC 9110 13.1.2). */
static int etag_listed(const char *list, const char *etag)
{
    if (!list) return 0;
    size_t n = strlen(etag);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        if (*p == '*') return 1;
        if (!strncmp(p, "W/", 2)) p += 2;
        const char *end = p;
        while (*end && *end != ',') end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t')) last--;
        if ((size_t)(last - p) == n && !memcmp(p, etag, n)) return 1;
        p = end;
    }
    return 0;
}

/* Vite names every bundle after its content hash, so a URL under /assets/
 * never changes meaning: browsers may keep it for a year. index.html names
 * the current bundles and must be revalidated each time. */
static const char *cache_control(const eps_static_file *f)
{
    return eps_static_built && !strncmp(f->path, ASSETS, strlen(ASSETS)) ? "public, max-age=31536000, immutable"
                                                                         : "no-cache";
}

/* The API may sit on another origin (the dashboard's base URL setting), so
 * connect-src stays open; everything else comes from this origin. */
#define CSP "default-src 'self'; connect-src *; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'"

static int add_headers(struct MHD_Response *resp, const eps_static_file *f, int with_type)
{
    int ok = MHD_add_response_header(resp, "ETag", f->etag) == MHD_YES &&
             MHD_add_response_header(resp, "Cache-Control", cache_control(f)) == MHD_YES &&
             MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") == MHD_YES;
    if (ok && with_type) ok = MHD_add_response_header(resp, "Content-Type", f->ctype) == MHD_YES;
    if (ok && with_type && strstr(f->ctype, "text/html"))
        ok = MHD_add_response_header(resp, "Content-Security-Policy", CSP) == MHD_YES;
    return ok;
}

struct MHD_Response *eps_http_static_handle(const char *method, const char *url, const char *if_none_match,
                                            int *status)
{
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        *status = 405;
        return NULL;
    }
    const eps_static_file *f = eps_http_static_find(url);
    if (!f) {
        *status = 404;
        return NULL;
    }
    int not_modified = etag_listed(if_none_match, f->etag);
    struct MHD_Response *resp = not_modified
        ? MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT)
        : MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
    if (!resp || !add_headers(resp, f, !not_modified)) {
        if (resp) MHD_destroy_response(resp);
        *status = 500;
        return NULL;
    }
    *status = not_modified ? 304 : 200;
    return resp;
}
