/* eps_error.c — the shared error convention (see include/epsinas/core/error.h). */
#include "epsinas/core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int eps_error_set(eps_error *err, int code, const char *field, const char *fmt, ...)
{
    if (!err) return code;
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    err->line = 0;
    err->column = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void eps_error_clear(eps_error *err)
{
    if (err) memset(err, 0, sizeof *err);
}

const char *eps_error_code_name(int code)
{
    switch (code) {
    case EPS_OK: return "ok";
    case EPS_EINVAL: return "invalid_input";
    case EPS_ENOMEM: return "out_of_memory";
    case EPS_EIO: return "io_error";
    case EPS_ELIMIT: return "too_large";
    case EPS_ECANCELED: return "canceled";
    default: return "internal_error";
    }
}
