/* fuzz_nlp.c — NLP recipes (eps_nlp_parse). The input is the recipe JSON
 * (an object, or a string holding one). Invariant: the canonical text parses
 * to the same canonical text, parameters and MACs. */
#include <jansson.h>

#include "epsinas/spaces/nlp.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *recipe = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!recipe) return 0;
    eps_nlp_model m, m2;
    eps_error err;
    eps_error_clear(&err);
    char *canon = NULL;
    long long vocab = 1 + (long long)(size * 7919) % EPS_NLP_VOCAB_MAX;
    if (eps_nlp_parse(recipe, vocab, &m, &canon, &err) == 0) {
        FUZZ_CHECK(canon, "no canonical text");
        long long p = eps_nlp_params(&m), mac = eps_nlp_macs(&m);
        FUZZ_CHECK(p > 0 && mac >= 0, "params %lld macs %lld", p, mac);
        json_t *c = json_loads(canon, JSON_REJECT_DUPLICATES, &je);
        FUZZ_CHECK(c, "canonical text is not JSON: %s", canon);
        char *canon2 = NULL;
        FUZZ_CHECK(eps_nlp_parse(c, vocab, &m2, &canon2, &err) == 0, "canonical recipe rejected: %s", err.msg);
        FUZZ_CHECK(!strcmp(canon, canon2) && eps_nlp_params(&m2) == p && eps_nlp_macs(&m2) == mac,
                   "canonical not a fixed point: %s", canon);
        eps_nlp_model_free(&m2);
        free(canon2);
        json_decref(c);
        eps_nlp_model_free(&m);
        free(canon);
    } else {
        FUZZ_CHECK(err.msg[0], "error without a message");
    }
    json_decref(recipe);
    return 0;
}
