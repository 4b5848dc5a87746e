/* fuzz_nb201.c — NB201 cell strings (eps_nb201_parse).
 * Invariants: a parsed cell formats to a string that parses back to the same
 * cell; canonicalising is idempotent; the canonical cell builds. */
#include "epsinas/spaces/nb201.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eps_nb201_cell c, c2, k, k2;
    eps_error err;
    eps_error_clear(&err);
    char *s = fuzz_cstr(data, size);
    int rc = eps_nb201_parse(s, size, &c, &err);
    free(s);
    if (rc < 0) {
        FUZZ_CHECK(err.msg[0], "error without a message");
        return 0;
    }
    char buf[EPS_NB201_STR_MAX];
    eps_nb201_format(&c, buf);
    FUZZ_CHECK(eps_nb201_parse(buf, strlen(buf), &c2, &err) == 0, "formatted cell does not parse: %s", buf);
    FUZZ_CHECK(!memcmp(&c, &c2, sizeof c), "format/parse round trip changed the cell: %s", buf);
    eps_nb201_canonical(&c, &k);
    eps_nb201_canonical(&k, &k2);
    FUZZ_CHECK(!memcmp(&k, &k2, sizeof k), "canonical is not idempotent: %s", buf);
    eps_graph g;
    if (eps_nb201_build(&k, &g, &err) == 0) eps_graph_free(&g);
    return 0;
}
