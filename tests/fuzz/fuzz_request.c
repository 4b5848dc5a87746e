/* fuzz_request.c — a score request body, as the service parses it: JSON text
 * -> eps_arch_from_json (every space) -> eps_cache_key_make.
 * Invariants checked: the canonical text and hash do not depend on how the
 * request is spelled (the same object re-serialised with sorted keys and no
 * whitespace gives the same arch), and the cache key is deterministic. */
#include <jansson.h>

#include "epsinas/service/cache.h"
#include "epsinas/spaces/space.h"
#include "fuzz.h"

static int arch_of(const json_t *req, eps_arch *a, eps_error *err)
{
    eps_error_clear(err);
    int rc = eps_arch_from_json(req, a, err);
    if (rc < 0) FUZZ_CHECK(err->msg[0], "error %d without a message", rc);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *req = fuzz_request_json(data, size);
    if (!req) return 0;
    eps_arch a;
    eps_error err;
    if (arch_of(req, &a, &err) == 0) {
        FUZZ_CHECK(a.canonical && strlen(a.hash) == 32, "arch without canonical text or hash");
        /* the same request spelled differently must give the same arch */
        char *again = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        json_t *req2 = again ? json_loads(again, JSON_REJECT_DUPLICATES, NULL) : NULL;
        if (req2) {
            eps_arch b;
            FUZZ_CHECK(arch_of(req2, &b, &err) == 0, "re-serialised request rejected: %s", err.msg);
            FUZZ_CHECK(!strcmp(a.canonical, b.canonical), "canonical differs:\n%s\n%s", a.canonical, b.canonical);
            FUZZ_CHECK(!strcmp(a.hash, b.hash), "hash differs");
            eps_arch_free(&b);
            json_decref(req2);
        }
        free(again);
        const double w[2] = {a.space->w1, a.space->w2};
        eps_cache_key k1, k2;
        if (eps_cache_key_make(&k1, a.space->name, a.canonical, a.hash, w, "0123456789abcdef", 64, "fast",
                               "fuzz") == 0) {
            if (eps_cache_key_make(&k2, a.space->name, a.canonical, a.hash, w, "0123456789abcdef", 64, "fast",
                                   "fuzz") == 0) {
                FUZZ_CHECK(!strcmp(k1.text, k2.text) && k1.h == k2.h && !strcmp(k1.id, k2.id),
                           "cache key not deterministic");
                eps_cache_key_free(&k2);
            }
            eps_cache_key_free(&k1);
        }
        eps_arch_free(&a);
    }
    json_decref(req);
    return 0;
}
