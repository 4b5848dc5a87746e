/* http.h — the HTTP front of `epsinas serve` (libmicrohttpd).
 *
 * Parses and validates requests on the HTTP threads, answers cache hits at
 * once, and suspends a connection whose request needs compute until its
 * job (or the identical in-flight one) finishes. Endpoints and error shapes
 * are documented in openapi.yaml. */
#ifndef EPSINAS_HTTP_H
#define EPSINAS_HTTP_H

#include "epsinas/core/batch.h"
#include "epsinas/service/config.h"
#include "epsinas/core/error.h"
#include "epsinas/service/log.h"

typedef struct eps_server eps_server;

/* Binds cfg->listen:cfg->port and starts the daemon, the job queue and the
 * cache. batches (n >= 1) must outlive the server. *out is owned by the
 * caller (eps_server_stop). */
int eps_server_start(const eps_config *cfg, const eps_named_batch *batches, int n, eps_server **out,
                     eps_error *err);
/* The bound port (useful with --port 0). */
int eps_server_port(const eps_server *s);
/* Readiness turns 503, new compute is refused with 503, and the listening
 * socket is closed (existing keep-alive connections are still served). */
void eps_server_begin_drain(eps_server *s);
/* Waits up to timeout_ms for in-flight requests to finish; then cancels
 * the remaining jobs (their requests get 503) and waits a little more.
 * Returns the number of requests that were still in flight at the timeout. */
long eps_server_drain(eps_server *s, long timeout_ms);
/* Stops the daemon and frees everything. Returns -1 (and frees nothing)
 * when a job ignored its cancel flag and still holds a connection: the
 * caller should then exit without freeing the batches. */
int eps_server_stop(eps_server *s);

#endif
