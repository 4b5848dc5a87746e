/* json_exact.h — JSON text whose numbers read back exactly (src/service/
 * eps_json_exact.c). Every answer of the service is written through it, so
 * a score round-trips (sweep --server writes the same CSV as a local sweep)
 * and 1e-07 is printed as 1e-07, not 9.9999999999999995e-08. */
#ifndef EPSINAS_SERVICE_JSON_EXACT_H
#define EPSINAS_SERVICE_JSON_EXACT_H

#include <stddef.h>
#include <jansson.h>

/* The service's JSON flags: compact, ASCII; 17 digits, so doubles that do
 * not go through eps_json_dumps_exact still round-trip. */
#define EPS_JSON_FLAGS (JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(17))

/* The shortest decimal text (15..17 significant digits) that reads back as
 * exactly v, into buf (n bytes; 40 is always enough); always a JSON real
 * ("1.0", not "1"). */
void eps_json_exact_real(char *buf, size_t n, double v);
/* json_dumps(o, EPS_JSON_FLAGS) with every real in eps_json_exact_real form.
 * o's reals are replaced by placeholders on the way (the caller still owns
 * o and decrefs it; it is not for reuse). A string or key that holds the
 * placeholder byte 0x01 makes it fall back to plain json_dumps. Returns
 * malloc'd text (caller frees), or NULL on allocation failure. */
char *eps_json_dumps_exact(json_t *o);

#endif
