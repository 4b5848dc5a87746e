/* fuzz_loader.c — the batch file loaders (npy, CIFAR-10 binary, token text)
 * on a real file of the input's exact size, so a header that claims more
 * data than the file holds is exercised (issue 17, defect 5).
 * Input: byte 0 picks the loader (% 3: npy, cifar10, tokens-file),
 * byte 1 the batch size (2 + byte % 15), the rest is the file.
 * Invariants: a loaded batch has the requested size, every image value can
 * be read, and every token is an id below the vocabulary. */
#include "epsinas/core/batch.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    static const char *const kinds[] = {"npy", "cifar10", "tokens-file"};
    const char *kind = kinds[data[0] % 3];
    int n = 2 + data[1] % 15;
    char path[64], spec[96];
    int fd = fuzz_memfile(data + 2, size - 2, path, sizeof path);
    if (fd < 0) return 0;
    snprintf(spec, sizeof spec, "%s:%s", kind, path);
    eps_batch b;
    eps_error err;
    eps_error_clear(&err);
    if (eps_batch_load(spec, n, &b, &err) == 0) {
        FUZZ_CHECK(b.n == n, "asked for %d, got %d", n, b.n);
        if (b.kind == EPS_BATCH_IMAGES) {
            long long vals = (long long)b.n * b.c * b.h * b.w;
            FUZZ_CHECK(b.data && vals > 0, "empty image batch");
            /* npy float32 may hold NaN/inf as given: touch every value so ASan
             * checks the allocation, without judging it */
            volatile float sink = 0;
            for (long long i = 0; i < vals; i++) sink += b.data[i];
            (void)sink;
        } else {
            FUZZ_CHECK(b.tokens && b.steps > 0 && b.vocab > 0, "empty token batch");
            for (long long i = 0; i < (long long)b.n * b.steps; i++)
                FUZZ_CHECK(b.tokens[i] >= 0 && b.tokens[i] < b.vocab, "token %d outside vocab %d", b.tokens[i],
                           b.vocab);
        }
        eps_batch_free(&b);
    } else {
        FUZZ_CHECK(err.msg[0], "error without a message");
    }
    close(fd);
    return 0;
}
