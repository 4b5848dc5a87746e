/* error.h — the one error convention used everywhere in epsinas.
 *
 * Every fallible function returns 0 on success or a negative EPS_E* code,
 * and (when the caller passes a non-NULL eps_error) fills in a one-line
 * human message, plus the offending field and position when known.
 * The caller owns the eps_error (usually on its stack). */
#ifndef EPSINAS_ERROR_H
#define EPSINAS_ERROR_H

#include <stddef.h>

enum {
    EPS_OK = 0,
    EPS_EINVAL = -1,    /* bad input: the user can fix it (CLI exit 2, HTTP 400) */
    EPS_ENOMEM = -2,    /* allocation failed */
    EPS_EIO = -3,       /* file could not be read/written */
    EPS_ELIMIT = -4,    /* input exceeds a configured size limit (HTTP 413/400) */
    EPS_EINTERNAL = -5, /* bug or unexpected state (CLI exit 1, HTTP 500) */
    EPS_ECANCELED = -6, /* job cancelled (deadline, shutdown) */
};

typedef struct eps_error {
    int code;        /* one of EPS_E*, 0 when clear */
    char field[64];  /* JSON field / CLI flag the problem is in, "" if none */
    long line;       /* 1-based position when meaningful (JSON text), else 0 */
    long column;     /* 1-based column / character offset, else 0 */
    char msg[512];   /* one line, no trailing newline */
} eps_error;

/* Sets err (if non-NULL) and returns code, so callers can write
 * `return eps_error_set(err, EPS_EINVAL, "arch", "...")`. */
int eps_error_set(eps_error *err, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void eps_error_clear(eps_error *err);
/* Stable machine-readable name of a code ("invalid_input", "too_large", ...).
 * Returns a static string. */
const char *eps_error_code_name(int code);

#endif
