/* fuzz_nb101.c — NB101 specs: {"matrix": ..., "ops": ...} -> parse, prune,
 * hash, canonical text, network build.
 * Invariants: the canonical text parses back to the same pruned spec and
 * hash (pruning is idempotent). */
#include <jansson.h>

#include "epsinas/spaces/nb101.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *req = json_loadb((const char *)data, size, 0, &je);
    if (!req) return 0;
    eps_nb101_spec s, s2;
    eps_error err;
    eps_error_clear(&err);
    if (eps_nb101_from_json(json_object_get(req, "matrix"), json_object_get(req, "ops"), &s, &err) == 0) {
        char h[33], h2[33];
        eps_nb101_hash(&s, h);
        char *canon = eps_nb101_canonical(&s);
        FUZZ_CHECK(canon, "no canonical text");
        json_t *c = json_loads(canon, 0, &je);
        FUZZ_CHECK(c, "canonical text is not JSON: %s", canon);
        FUZZ_CHECK(eps_nb101_from_json(json_object_get(c, "matrix"), json_object_get(c, "ops"), &s2, &err) == 0,
                   "canonical spec rejected: %s (%s)", canon, err.msg);
        eps_nb101_hash(&s2, h2);
        char *canon2 = eps_nb101_canonical(&s2);
        FUZZ_CHECK(canon2 && !strcmp(canon, canon2) && !strcmp(h, h2), "prune not idempotent: %s", canon);
        free(canon2);
        json_decref(c);
        free(canon);
        int ch[EPS_NB101_MAX_VERTICES];
        eps_nb101_vertex_channels(&s, 128, 256, ch);
        eps_graph g;
        if (eps_nb101_build(&s, &g, &err) == 0) eps_graph_free(&g);
    } else {
        FUZZ_CHECK(err.msg[0], "error without a message");
    }
    json_decref(req);
    return 0;
}
