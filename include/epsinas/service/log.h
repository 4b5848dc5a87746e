/* log.h — the process-wide logger of the service (src/service/eps_log.c):
 * stderr, one line per call, text (control characters escaped) or JSON. */
#ifndef EPSINAS_SERVICE_LOG_H
#define EPSINAS_SERVICE_LOG_H

#include <jansson.h>

typedef enum { EPS_LOG_ERROR = 0, EPS_LOG_WARN, EPS_LOG_INFO, EPS_LOG_DEBUG } eps_log_level;

/* format "text" or "json"; level "error", "warn", "info" (default) or "debug". */
void eps_log_setup(const char *format, const char *level);
void eps_log(eps_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether a line at lvl would be written. */
int eps_log_enabled(eps_log_level lvl);
int eps_log_is_json(void);
/* Writes msg at lvl; in JSON mode the members of extra (borrowed, may be
 * NULL) are merged into the line's object. No level check: callers ask
 * eps_log_enabled first. */
void eps_log_emit(eps_log_level lvl, const char *msg, json_t *extra);

#endif
