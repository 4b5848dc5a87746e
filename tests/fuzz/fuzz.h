/* fuzz.h — shared helpers of the libFuzzer harnesses in tests/fuzz/.
 *
 * Every harness defines LLVMFuzzerTestOneInput (and may define
 * LLVMFuzzerInitialize). It is linked either with libFuzzer (`make fuzz`) or
 * with replay.c (`make fuzz-smoke` replays tests/fuzz/regressions/ and the
 * corpora without the fuzzer). A harness aborts (FUZZ_CHECK) when a parser
 * breaks one of its own documented invariants, so libFuzzer records the
 * input like any crash. */
#ifndef EPS_FUZZ_H
#define EPS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

/* libFuzzer's entry points, declared once so every harness compiles under
 * -Wmissing-prototypes; LLVMFuzzerInitialize is optional (weak in replay.c). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                   \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s: ", __FILE__,   \
                    __LINE__, #cond);                                           \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* Writes data to an anonymous in-memory file and puts its path
 * ("/proc/self/fd/N") in path: the loaders see a real file of exactly
 * that size (what a header may lie about) without touching the disk.
 * Returns the fd (caller closes) or -1. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t cap)
{
    int fd = memfd_create("fuzz", 0);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t k = write(fd, data + off, size - off);
        if (k <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)k;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* A NUL-terminated copy of the input (caller frees). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

/* The input as a request object, as the service reads a body (duplicate
 * keys refused), or NULL when it is not JSON (caller decrefs). */
static inline json_t *fuzz_request_json(const uint8_t *data, size_t size)
{
    json_error_t je;
    return json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
}

#endif
