/* http_static.h — the dashboard's files, embedded in the binary: GET/HEAD of
 * `/` (index.html) and `/assets/...` (vite's content-hashed bundles) with
 * Content-Type, a build-time ETag (If-None-Match answers 304) and
 * Cache-Control (hashed assets immutable, everything else no-cache).
 * The table of files is generated at build time from web/dist by
 * scripts/web-embed.sh (BUILD/gen/eps_web_assets.c); when the dashboard
 * could not be built it holds one "dashboard not built" page.
 * eps_http.c routes these paths here before its own routes. */
#ifndef EPSINAS_HTTP_STATIC_H
#define EPSINAS_HTTP_STATIC_H
#include <microhttpd.h>
#include <stddef.h>

typedef struct {
    const char *path;            /* "/index.html", "/assets/index-3f2a.js" */
    const char *ctype;           /* Content-Type */
    const unsigned char *data;   /* static, never freed */
    size_t len;
    const char *etag;            /* quoted strong ETag of the content */
} eps_static_file;

/* Generated: every file, ended by an entry whose path is NULL. */
extern const eps_static_file eps_static_files[];
/* Generated: 1 when the table holds the built dashboard, 0 for the
 * "not built" page. */
extern const int eps_static_built;

/* 1 when url belongs to the dashboard (`/`, `/index.html`, `/assets/...`
 * or any embedded file), 0 when the API router should handle it. */
int eps_http_static_owns(const char *url);

/* The file url names, or NULL. `/` names /index.html. */
const eps_static_file *eps_http_static_find(const char *url);

/* Builds the answer to method on url (one eps_http_static_owns accepts):
 * 200 with the file (HEAD: headers only), or 304 when if_none_match lists
 * its ETag. Returns the response (caller queues and destroys it) with
 * *status set; NULL with *status 404 (no such file), 405 (not GET/HEAD) or
 * 500 (out of memory): the caller answers those with its JSON error. */
struct MHD_Response *eps_http_static_handle(const char *method, const char *url, const char *if_none_match,
                                            int *status);
#endif
