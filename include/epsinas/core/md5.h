/* md5.h — MD5 (RFC 1321), for content hashes of architectures.
 *
 * Not for security: NAS-Bench-101's dataset keys are MD5 fingerprints, and
 * the other spaces reuse the same digest so every arch hash is 32 hex chars.
 * Streaming (init/update/final) and one-shot forms. */
#ifndef EPSINAS_MD5_H
#define EPSINAS_MD5_H

#include <stddef.h>
#include <stdint.h>

typedef struct eps_md5_ctx {
    uint32_t state[4];
    uint64_t bytes;             /* total message length so far */
    unsigned char buf[64];      /* pending partial block */
} eps_md5_ctx;

void eps_md5_init(eps_md5_ctx *c);
void eps_md5_update(eps_md5_ctx *c, const void *data, size_t n);
void eps_md5_final(eps_md5_ctx *c, unsigned char out[16]);

/* Digest of data[0..n) into out (caller's buffer). */
void eps_md5(const void *data, size_t n, unsigned char out[16]);
/* Same, as 32 lowercase hex chars + NUL into out (caller's buffer). */
void eps_md5_hex(const void *data, size_t n, char out[33]);
/* Formats a 16-byte digest as lowercase hex (out: 33 bytes). */
void eps_md5_to_hex(const unsigned char d[16], char out[33]);

#endif
