/* batch.h — the fixed unlabelled input batches epsinas scores on.
 *
 * Spec strings (CLI --batch, service --batch NAME=SPEC):
 *   ramp               image i of B: every pixel of every channel = i/B
 *                      (not normalised; the embedded default)
 *   cifar10:PATH       CIFAR-10 binary records (1 label byte + 3072 bytes),
 *                      first B images, scaled to [0,1] and normalised per
 *                      channel with mean (125.3,123.0,113.9)/255 and std
 *                      (63.0,62.1,66.7)/255
 *   npy:PATH           .npy, float32 NCHW (B,3,32,32) used as is, or uint8
 *                      NHWC (B,32,32,3) normalised like cifar10
 *   gaussian:SEED      standard normal, from the generator documented in
 *                      eps_batch.c (splitmix64 + Box-Muller, NCHW order)
 *   tokens:SEED        NLP: streams x steps token ids (see nlp.h)
 *   tokens-file:PATH   NLP: whitespace-tokenised text file
 * The first B images are used; a file with fewer than B is an error. */
#ifndef EPSINAS_BATCH_H
#define EPSINAS_BATCH_H

#include <stdint.h>
#include "epsinas/error.h"

#define EPS_BATCH_MAX 4096          /* images / streams */
#define EPS_BATCH_FILE_MAX (1L << 30)

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

/* Loads spec with batch size n into *out (caller frees with eps_batch_free). */
int eps_batch_load(const char *spec, int n, eps_batch *out, eps_error *err);
void eps_batch_free(eps_batch *b);
/* Sets b->hash from its shape and content (loaders call it last). */
void eps_batch_set_hash(eps_batch *b);

#endif
