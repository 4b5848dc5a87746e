/* eps_tokens.c — token batches (include/epsinas/core/batch.h), used by the NLP space:
 * the synthetic `tokens:SEED` generator and the `tokens-file:PATH` loader
 * (whitespace tokens, first-seen vocabulary, <eos> per line, batchify).
 * tests/reference/nlp_ref.py reimplements both exactly. */
#include "epsinas/core/batch.h"
#include "epsinas/core/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define GOLDEN 0x9E3779B97F4A7C15ULL

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}


static int alloc_tokens(eps_batch *b, int streams, eps_error *err)
{
    b->kind = EPS_BATCH_TOKENS;
    b->n = streams;
    b->steps = EPS_TOKENS_STEPS;
    b->tokens = malloc(sizeof(int32_t) * (size_t)streams * EPS_TOKENS_STEPS);
    if (!b->tokens) return eps_error_set(err, EPS_ENOMEM, "batch", "out of memory for %d token streams", streams);
    return 0;
}

static int load_synthetic(eps_batch *b, int streams, const char *arg, eps_error *err)
{
    if (!*arg || strspn(arg, "0123456789") != strlen(arg) || strlen(arg) > 20)
        return eps_error_set(err, EPS_EINVAL, "batch", "tokens:SEED needs a non-negative decimal seed, got '%.40s'",
                             arg);
    errno = 0;
    unsigned long long seed = strtoull(arg, NULL, 10);
    if (errno == ERANGE)
        return eps_error_set(err, EPS_EINVAL, "batch", "tokens:SEED: seed '%.40s' is not below 2^64", arg);
    int rc = alloc_tokens(b, streams, err);
    if (rc) return rc;
    for (int t = 0; t < EPS_TOKENS_STEPS; t++)
        for (int s = 0; s < streams; s++) {
            uint64_t k = (uint64_t)s * EPS_TOKENS_STEPS + (uint64_t)t + 1;
            b->tokens[(size_t)t * streams + s] =
                (int32_t)(mix64((uint64_t)seed + k * GOLDEN) % EPS_TOKENS_SYNTH_VOCAB);
        }
    b->vocab = EPS_TOKENS_SYNTH_VOCAB;
    return 0;
}

/* ---- tokens-file ---- */

/* First-seen vocabulary: open addressing over ids, words in one arena. */
typedef struct vocab {
    char *arena;
    size_t arena_len, arena_cap;
    size_t *off;                /* per id: word offset in arena */
    int *len;                   /* per id: word length */
    int count, id_cap;
    int32_t *slot;              /* -1 empty, else id */
    size_t slot_cap;            /* power of two */
} vocab;

static void vocab_free(vocab *v)
{
    free(v->arena);
    free(v->off);
    free(v->len);
    free(v->slot);
    memset(v, 0, sizeof *v);
}

static int vocab_rehash(vocab *v, size_t cap)
{
    int32_t *slot = malloc(sizeof(int32_t) * cap);
    if (!slot) return -1;
    for (size_t i = 0; i < cap; i++) slot[i] = -1;
    for (int id = 0; id < v->count; id++) {
        size_t i = eps_fnv1a(EPS_FNV1A_OFFSET, v->arena + v->off[id], (size_t)v->len[id]) & (cap - 1);
        while (slot[i] >= 0) i = (i + 1) & (cap - 1);
        slot[i] = id;
    }
    free(v->slot);
    v->slot = slot;
    v->slot_cap = cap;
    return 0;
}

/* Returns the word's id (adding it), or a negative EPS_E* code. */
static int vocab_id(vocab *v, const char *w, int n, const char *path, eps_error *err)
{
    if (!v->slot && vocab_rehash(v, 1024) < 0) goto oom;
    size_t i = eps_fnv1a(EPS_FNV1A_OFFSET, w, (size_t)n) & (v->slot_cap - 1);
    while (v->slot[i] >= 0) {
        int id = v->slot[i];
        if (v->len[id] == n && !memcmp(v->arena + v->off[id], w, (size_t)n)) return id;
        i = (i + 1) & (v->slot_cap - 1);
    }
    if (v->count >= EPS_TOKENS_VOCAB_MAX)
        return eps_error_set(err, EPS_ELIMIT, "batch", "tokens-file %.200s: more than %d distinct words", path,
                             EPS_TOKENS_VOCAB_MAX);
    if ((long long)(v->arena_len + (size_t)n) > EPS_TOKENS_VOCAB_BYTES)
        return eps_error_set(err, EPS_ELIMIT, "batch", "tokens-file %.200s: vocabulary text exceeds %lld bytes", path,
                             (long long)EPS_TOKENS_VOCAB_BYTES);
    if (v->arena_len + (size_t)n > v->arena_cap) {
        size_t cap = v->arena_cap ? v->arena_cap * 2 : 65536;
        while (cap < v->arena_len + (size_t)n) cap *= 2;
        char *a = realloc(v->arena, cap);
        if (!a) goto oom;
        v->arena = a, v->arena_cap = cap;
    }
    if (v->count == v->id_cap) {
        int cap = v->id_cap ? v->id_cap * 2 : 4096;
        size_t *off = realloc(v->off, sizeof(size_t) * (size_t)cap);
        if (!off) goto oom;
        v->off = off;
        int *len = realloc(v->len, sizeof(int) * (size_t)cap);
        if (!len) goto oom;
        v->len = len;
        v->id_cap = cap;
    }
    int id = v->count++;
    memcpy(v->arena + v->arena_len, w, (size_t)n);
    v->off[id] = v->arena_len;
    v->len[id] = n;
    v->arena_len += (size_t)n;
    v->slot[i] = id;
    if ((size_t)v->count * 2 > v->slot_cap && vocab_rehash(v, v->slot_cap * 2) < 0) goto oom;
    return id;
oom:
    return eps_error_set(err, EPS_ENOMEM, "batch", "out of memory for the vocabulary of %.200s", path);
}

static int is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Position p of the flat token sequence -> where it goes in the batch. */
typedef struct scan {
    long long nbatch;           /* 0 in the counting pass */
    int streams;
    int32_t *tokens;
    int filled;
} scan;

static void place(scan *sc, long long pos, int id)
{
    if (!sc->nbatch) return;
    long long s = pos / sc->nbatch, t = pos % sc->nbatch;
    if (s < sc->streams && t < EPS_TOKENS_STEPS) {
        sc->tokens[t * sc->streams + s] = id;
        sc->filled++;
    }
}

/* One pass over f: counts tokens (*ntok) and, when voc is non-NULL, assigns
 * ids and places the batch's tokens. */
static int tokenise(FILE *f, const char *path, vocab *voc, scan *sc, long long *ntok, eps_error *err)
{
    static const char eos[] = "<eos>";
    char word[EPS_TOKENS_WORD_MAX];
    int wlen = 0, line_open = 0;
    long long line = 1, pos = 0;
    unsigned char buf[65536];
    size_t got;
    int rc;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < got; i++) {
            int c = buf[i];
            if (!is_space(c)) {
                if (wlen == EPS_TOKENS_WORD_MAX)
                    return eps_error_set(err, EPS_ELIMIT, "batch", "tokens-file %.200s line %lld: word longer than %d bytes",
                                         path, line, EPS_TOKENS_WORD_MAX);
                word[wlen++] = (char)c;
                line_open = 1;
                continue;
            }
            line_open = 1;
            if (wlen) {
                if (voc) {
                    if ((rc = vocab_id(voc, word, wlen, path, err)) < 0) return rc;
                    place(sc, pos, rc);
                }
                pos++;
                wlen = 0;
            }
            if (c == '\n') {
                if (voc) {
                    if ((rc = vocab_id(voc, eos, 5, path, err)) < 0) return rc;
                    place(sc, pos, rc);
                }
                pos++;
                line++;
                line_open = 0;
            }
        }
    }
    if (ferror(f)) return eps_error_set(err, EPS_EIO, "batch", "tokens-file %.200s: read error", path);
    if (wlen) {
        if (voc) {
            if ((rc = vocab_id(voc, word, wlen, path, err)) < 0) return rc;
            place(sc, pos, rc);
        }
        pos++;
    }
    if (line_open) { /* an unterminated last line still ends with <eos> */
        if (voc) {
            if ((rc = vocab_id(voc, eos, 5, path, err)) < 0) return rc;
            place(sc, pos, rc);
        }
        pos++;
    }
    *ntok = pos;
    return 0;
}

static int load_file(eps_batch *b, int streams, const char *path, eps_error *err)
{
    if (!*path) return eps_error_set(err, EPS_EINVAL, "batch", "tokens-file:PATH needs a path");
    FILE *f = fopen(path, "rb");
    if (!f) return eps_error_set(err, EPS_EIO, "batch", "cannot open tokens-file %.300s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    vocab voc = {0};
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = eps_error_set(err, EPS_EINVAL, "batch", "tokens-file %.300s is not a regular file", path);
        goto out;
    }
    if ((long long)st.st_size > EPS_TOKENS_FILE_MAX) {
        rc = eps_error_set(err, EPS_ELIMIT, "batch", "tokens-file %.300s has %lld bytes (limit %lld)", path,
                           (long long)st.st_size, (long long)EPS_TOKENS_FILE_MAX);
        goto out;
    }
    /* Pass 1 counts tokens: batchify's stream length depends on the total. */
    long long n1 = 0, n2 = 0;
    scan sc = {0};
    if ((rc = tokenise(f, path, NULL, &sc, &n1, err)) < 0) goto out;
    long long need = (long long)streams * EPS_TOKENS_STEPS;
    if (n1 / streams < EPS_TOKENS_STEPS) {
        rc = eps_error_set(err, EPS_EINVAL, "batch",
                           "tokens-file %.300s has %lld tokens (with <eos>); %d streams x %d steps need at least %lld",
                           path, n1, streams, EPS_TOKENS_STEPS, need);
        goto out;
    }
    if ((rc = alloc_tokens(b, streams, err)) < 0) goto out;
    sc.nbatch = n1 / streams;
    sc.streams = streams;
    sc.tokens = b->tokens;
    rewind(f);
    if ((rc = tokenise(f, path, &voc, &sc, &n2, err)) < 0) goto out;
    if (n2 != n1 || sc.filled != need) {
        rc = eps_error_set(err, EPS_EIO, "batch", "tokens-file %.300s changed while it was read", path);
        goto out;
    }
    b->vocab = voc.count;
out:
    vocab_free(&voc);
    fclose(f);
    return rc;
}

int eps_tokens_load(const char *spec, int streams, eps_batch *out, eps_error *err)
{
    memset(out, 0, sizeof *out);
    if (!spec) return eps_error_set(err, EPS_EINVAL, "batch", "empty batch spec");
    if (streams < 1 || streams > EPS_BATCH_MAX)
        return eps_error_set(err, EPS_EINVAL, "batch_size", "%d streams is out of range [1, %d]", streams,
                             EPS_BATCH_MAX);
    int rc;
    if (!strncmp(spec, "tokens:", 7)) rc = load_synthetic(out, streams, spec + 7, err);
    else if (!strncmp(spec, "tokens-file:", 12)) rc = load_file(out, streams, spec + 12, err);
    else
        rc = eps_error_set(err, EPS_EINVAL, "batch", "'%.60s' is not a token batch (tokens:SEED or tokens-file:PATH)",
                           spec);
    if (rc < 0) {
        free(out->tokens);
        memset(out, 0, sizeof *out);
        return rc;
    }
    snprintf(out->source, sizeof out->source, "%s", spec);
    eps_batch_set_hash(out);
    return 0;
}
