/* http_jobs.h — the HTTP handlers of /v1/jobs (see openapi.yaml): submit,
 * get, list, cancel, results (CSV or NDJSON, streamed from the job store
 * page by page) and progress events (Server-Sent Events). eps_http.c
 * routes /v1/jobs* here after auth and body reading, and queues the
 * response this module builds. */
#ifndef EPSINAS_HTTP_JOBS_H
#define EPSINAS_HTTP_JOBS_H
#include <microhttpd.h>
#include <stddef.h>
#include "epsinas/service/jobs.h"

typedef struct eps_http_jobs eps_http_jobs;

int eps_http_jobs_new(eps_jobs *J, eps_http_jobs **out);
/* Ends every open event stream (their next read sends "end"); call when
 * the server starts draining, before the daemon stops. */
void eps_http_jobs_drain(eps_http_jobs *H);
void eps_http_jobs_free(eps_http_jobs *H);
/* Appends the job metrics to a rendered /metrics text m (malloc'd, *n its
 * length); returns the new text (m is consumed), NULL when out of memory. */
char *eps_http_jobs_metrics(eps_jobs *J, char *m, size_t *n);

/* Handles one /v1/jobs* request. Returns the response (caller queues and
 * destroys it) with *status set; NULL only when out of memory. body is the
 * request body of a POST (may be NULL). */
struct MHD_Response *eps_http_jobs_handle(eps_http_jobs *H, struct MHD_Connection *c, const char *method,
                                          const char *url, const char *body, size_t len, int *status);
#endif
