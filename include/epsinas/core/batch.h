/* batch.h — the fixed unlabelled input batches epsinas scores on.
 *
 * Spec strings (CLI --batch, service --batch NAME=SPEC):
 *   ramp               image i of B: every pixel of every channel = i/B
 *                      (not normalised; NB201's default)
 *   cifar10:PATH       CIFAR-10 binary records (1 label byte + 3072 bytes),
 *                      first B images, scaled to [0,1] and normalised per
 *                      channel with mean (125.3,123.0,113.9)/255 and std
 *                      (63.0,62.1,66.7)/255
 *   npy:PATH           .npy, float32 NCHW (B,3,32,32) used as is, or uint8
 *                      NHWC (B,32,32,3) normalised like cifar10
 *   gaussian:SEED      standard normal, from the generator documented in
 *                      eps_batch.c (splitmix64 + Box-Muller, NCHW order)
 *   smooth:SEED        blurred normal noise, pink:SEED 1/f noise,
 *   leaves:SEED        dead-leaves images, levels:SEED random grey levels:
 *                      see eps_batch_generators() and docs/batches.md
 *   tokens:SEED        NLP: streams x steps token ids (see nlp.h)
 *   tokens-file:PATH   NLP: whitespace-tokenised text file
 * The first B images are used; a file with fewer than B is an error.
 * Shapes: every generator draws its images at the shape the network takes
 * (eps_batch_load_shape; e.g. 3x16x16 for nb201 imagenet16-120, where the
 * 32-pixel constants above read "the image side"); a file holds the shape
 * it holds, and another one is an error naming `batch` and both shapes.
 * "The spec at size B" is one batch everywhere (CLI --batch-size, the
 * service's batch_size): for every source but ramp and token files image i
 * does not depend on B, so it is also the first B images of a larger one. */
#ifndef EPSINAS_BATCH_H
#define EPSINAS_BATCH_H

#include <stdint.h>
#include "epsinas/core/error.h"

#define EPS_BATCH_MAX 4096          /* images / streams */
#define EPS_BATCH_FILE_MAX (1L << 30)
#define EPS_BATCH_MAX_VALUES (1L << 25)  /* n * c * h * w of a generated batch (128 MB of float) */
#define EPS_BATCH_MAX_SIDE 4096          /* any of c, h, w */

/* The shape of one image (channels, height, width). */
typedef struct eps_image_shape {
    int c, h, w;
} eps_image_shape;
#define EPS_IMAGE_SHAPE_CIFAR ((eps_image_shape){3, 32, 32})
/* "Whatever the source holds": an npy file's own shape, 3x32x32 for every
 * other source (the service loads its named batches so; eps_batch_at then
 * draws generators at each network's shape). */
#define EPS_IMAGE_SHAPE_ANY ((eps_image_shape){0, 0, 0})

typedef enum { EPS_BATCH_IMAGES = 0, EPS_BATCH_TOKENS = 1 } eps_batch_kind;

typedef struct eps_batch {
    eps_batch_kind kind;
    /* images: n x c x h x w float32, NCHW (owned) */
    float *data;
    int n, c, h, w;
    /* tokens: n streams x steps, row-major [step][stream] (owned) */
    int32_t *tokens;
    int steps;
    int vocab;                  /* tokens: number of distinct ids in use */
    char source[512];           /* the spec it was loaded from */
    char hash[17];              /* content hash, 16 hex chars (FNV-1a 64 of shape + data) */
} eps_batch;

/* Loads spec with batch size n into *out (caller frees with eps_batch_free),
 * images at shape (generators) or checked to have it (files: EPS_EINVAL,
 * field "batch", naming both shapes). Token specs ignore shape.
 * eps_batch_load is the 3x32x32 (CIFAR) shape. */
int eps_batch_load_shape(const char *spec, int n, eps_image_shape shape, eps_batch *out, eps_error *err);
int eps_batch_load(const char *spec, int n, eps_batch *out, eps_error *err);
void eps_batch_free(eps_batch *b);
/* Sets b->hash from its shape and content (loaders call it last). */
void eps_batch_set_hash(eps_batch *b);

/* A generator (or file format) of batch specs: prefix ("gaussian:"; "ramp"
 * has no argument), usage ("gaussian:SEED") and the one-sentence definition
 * shown by --help, GET /v1/batches and docs/batches.md. */
typedef struct eps_batch_generator {
    const char *prefix, *usage, *sentence;
} eps_batch_generator;
/* Every generator, terminated by a {NULL} entry. Static. */
const eps_batch_generator *eps_batch_generators(void);
/* The sentence of spec's generator, or NULL when spec is not a known form. */
const char *eps_batch_describe(const char *spec);
/* 1 when image i of b does not depend on the batch size (all image sources
 * but ramp), so its first n images equal its spec loaded at n. */
int eps_batch_prefix_stable(const eps_batch *b);
/* *out = b's spec at size n (1 <= n <= b->n): for prefix-stable batches a
 * view of b's first n images sharing b's data (*owned = 0, do not free);
 * otherwise (ramp, tokens:SEED) generated anew (*owned = 1, caller frees
 * with eps_batch_free). A tokens-file batch cannot be narrowed (EPS_EINVAL,
 * field batch_size): re-reading the file per request is not done. */
int eps_batch_at_size(const eps_batch *b, int n, eps_batch *out, int *owned, eps_error *err);
/* 1 when b was read from a file (cifar10:, npy:, tokens-file:): it cannot be
 * drawn at another shape. */
int eps_batch_is_file(const eps_batch *b);
/* eps_batch_at_size at image shape `shape`: b's own shape -> the same;
 * another shape -> a generator's spec drawn anew at n images of that shape
 * (*owned = 1), a file's -> EPS_EINVAL naming `batch` and both shapes.
 * Token batches ignore shape. */
int eps_batch_at(const eps_batch *b, int n, eps_image_shape shape, eps_batch *out, int *owned, eps_error *err);

/* A batch under the name requests use for it: a built-in (the spec of a
 * space's default, e.g. "ramp", or the aliases "default" and "tokens") or a
 * name given with `serve --batch NAME=SPEC`. */
typedef struct eps_named_batch {
    char name[65];
    eps_batch batch;   /* owned by whoever owns the array */
    int builtin;       /* loaded by the service itself, not named by the operator */
    /* memo of content hashes at sizes 1..batch.n (batch.n + 1 entries of
     * 17 chars, "" = not yet computed), or NULL; owned with the array */
    char (*size_hash)[17];
} eps_named_batch;

/* The content hash of nb's batch at size n (eps_batch_at_size), remembered
 * in nb->size_hash when there is one (thread-safe). out: 17 chars. */
int eps_named_batch_hash(const eps_named_batch *nb, int n, char out[17], eps_error *err);
/* The same for nb's batch at image shape `shape` (eps_batch_at; a file's
 * batch at another shape is its EPS_EINVAL), remembered in a small
 * thread-safe table. */
int eps_named_batch_hash_at(const eps_named_batch *nb, int n, eps_image_shape shape, char out[17], eps_error *err);
/* The batch named name in b[0..n), or NULL. */
const eps_named_batch *eps_named_batch_find(const eps_named_batch *b, int n, const char *name);
/* The batch a request uses: the one it names (requested != NULL; NULL when
 * unknown); else an operator's own "default" (images) / "tokens" (tokens)
 * when one was configured; else the batch named by the space's default
 * spec. */
const eps_named_batch *eps_named_batch_pick(const eps_named_batch *b, int n, const char *requested,
                                            const char *space_default, eps_batch_kind kind);

/* ---- token batches, for language-model spaces (src/core/eps_tokens.c) ---- */

/* The largest vocabulary a token batch or an NLP model may have. */
#define EPS_TOKENS_VOCAB_MAX 1000000
/* Every token batch has this many steps (the NLP space's sequence length). */
#define EPS_TOKENS_STEPS 70

/* ---- token batches (src/core/eps_tokens.c) ----
 *   tokens:SEED       synthetic: token (step t, stream s) =
 *                     mix(SEED + (s*70 + t + 1) * 0x9E3779B97F4A7C15) % 10000
 *                     (mix = the splitmix64 finaliser, as in spaces/nlp.h; arithmetic
 *                     mod 2^64; SEED a decimal in [0, 2^64));
 *                     b->vocab = 10000. A stream does not depend on how many
 *                     streams are loaded.
 *   tokens-file:PATH  whitespace-tokenised text (ASCII space, \t, \r, \v, \f
 *                     separate words, lines end at \n; every line, also an
 *                     empty or unterminated last one, gets "<eos>" appended);
 *                     ids in first-seen order over the whole file (like the
 *                     PTB/WikiText corpus loader); batchify: N tokens ->
 *                     nbatch = N / streams, stream s = tokens
 *                     [s*nbatch, (s+1)*nbatch) (tail dropped); the first 70
 *                     steps are used; b->vocab = the file's vocabulary size.
 *                     Limits: file <= EPS_TOKENS_FILE_MAX bytes, vocabulary
 *                     <= EPS_TOKENS_VOCAB_MAX words, word <= EPS_TOKENS_WORD_MAX
 *                     bytes, vocabulary text <= EPS_TOKENS_VOCAB_BYTES;
 *                     nbatch < 70 is an error.
 * out->tokens is [step][stream] int32, out->n = streams, out->steps = 70,
 * hash = FNV-1a 64 of (kind, n, steps, 0, 0) and the tokens (as eps_batch.c).
 * Caller frees with eps_batch_free. */
#define EPS_TOKENS_SYNTH_VOCAB 10000
#define EPS_TOKENS_FILE_MAX (1LL << 30)
#define EPS_TOKENS_WORD_MAX 1024
#define EPS_TOKENS_VOCAB_BYTES (64LL << 20)

int eps_tokens_load(const char *spec, int streams, eps_batch *out, eps_error *err);

#endif
