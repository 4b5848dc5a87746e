/* fuzz_graph.c — generic layer graphs (space "graph", eps_gspace_parse).
 * Invariant: the canonical text is a request that parses to itself
 * (defaults filled in once stay the same). */
#include <jansson.h>

#include "epsinas/spaces/gspace.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *req = fuzz_request_json(data, size);
    if (!req) return 0;
    eps_graph g;
    eps_error err;
    eps_error_clear(&err);
    char *canon = NULL;
    if (eps_gspace_parse(req, &g, &canon, &err) == 0) {
        FUZZ_CHECK(canon, "no canonical text");
        (void)eps_graph_params(&g);
        (void)eps_graph_macs(&g);
        eps_graph_free(&g);
        json_t *c = json_loads(canon, JSON_REJECT_DUPLICATES, NULL);
        FUZZ_CHECK(c, "canonical text is not JSON: %s", canon);
        char *canon2 = NULL;
        FUZZ_CHECK(eps_gspace_parse(c, &g, &canon2, &err) == 0, "canonical graph rejected: %s", err.msg);
        FUZZ_CHECK(!strcmp(canon, canon2), "canonical not a fixed point:\n%s\n%s", canon, canon2);
        eps_graph_free(&g);
        free(canon2);
        json_decref(c);
        free(canon);
    } else {
        FUZZ_CHECK(err.msg[0], "error without a message");
    }
    json_decref(req);
    return 0;
}
