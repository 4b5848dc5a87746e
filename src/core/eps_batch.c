/* eps_batch.c — loads the fixed input batches (include/epsinas/core/batch.h):
 * the embedded ramp, CIFAR-10 binary files, .npy files and a documented
 * Gaussian generator that tests/reference/epsref.py reproduces exactly. */
#include "epsinas/core/batch.h"
#include "epsinas/core/util.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define IMG_C 3
#define IMG_H 32
#define IMG_W 32
#define IMG_PIX (IMG_C * IMG_H * IMG_W)

/* CIFAR-10 channel statistics (spec §2), as the doubles m/255 rounded to float. */
static const double cifar_mean[3] = {125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0};
static const double cifar_std[3] = {63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0};


void eps_batch_set_hash(eps_batch *b)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    int shape[5] = {(int)b->kind, b->n, b->c, b->h, b->w};
    if (b->kind == EPS_BATCH_TOKENS) shape[2] = b->steps, shape[3] = 0, shape[4] = 0;
    h = eps_fnv1a(h, shape, sizeof shape);
    if (b->data) h = eps_fnv1a(h, b->data, sizeof(float) * (size_t)b->n * b->c * b->h * b->w);
    if (b->tokens) h = eps_fnv1a(h, b->tokens, sizeof(int32_t) * (size_t)b->n * b->steps);
    snprintf(b->hash, sizeof b->hash, "%016" PRIx64, h);
}

static int alloc_images(eps_batch *b, int n, eps_error *err)
{
    b->kind = EPS_BATCH_IMAGES;
    b->n = n, b->c = IMG_C, b->h = IMG_H, b->w = IMG_W;
    b->data = malloc(sizeof(float) * (size_t)n * IMG_PIX);
    if (!b->data) return eps_error_set(err, EPS_ENOMEM, "batch", "out of memory for %d images", n);
    return 0;
}

/* uint8 pixel -> [0,1] -> per-channel normalised, in float32 like torchvision. */
static float normalise(unsigned char v, int c)
{
    float x = (float)v / 255.0f;
    return (x - (float)cifar_mean[c]) / (float)cifar_std[c];
}

static int load_ramp(eps_batch *b, int n, eps_error *err)
{
    int rc = alloc_images(b, n, err);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        float v = (float)i / (float)n;
        for (int k = 0; k < IMG_PIX; k++) b->data[(size_t)i * IMG_PIX + k] = v;
    }
    return 0;
}

/* splitmix64: the documented generator shared with the Python reference. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *state) { return (double)(splitmix64(state) >> 11) * 0x1.0p-53; }

/* Standard normal by Box-Muller in double: u1 = 1 - U, u2 = U; the pair
 * (r cos 2πu2, r sin 2πu2) fills consecutive NCHW positions. */
static int load_gaussian(eps_batch *b, int n, const char *arg, eps_error *err)
{
    char *end;
    errno = 0;
    if (!*arg || *arg == '-') return eps_error_set(err, EPS_EINVAL, "batch", "gaussian:SEED needs a non-negative integer seed");
    unsigned long long seed = strtoull(arg, &end, 10);
    if (errno || *end) return eps_error_set(err, EPS_EINVAL, "batch", "gaussian seed '%.40s' is not a non-negative integer", arg);
    int rc = alloc_images(b, n, err);
    if (rc) return rc;
    uint64_t st = seed;
    size_t total = (size_t)n * IMG_PIX;
    for (size_t k = 0; k < total; k += 2) {
        double u1 = 1.0 - uniform01(&st);
        double u2 = uniform01(&st);
        double r = sqrt(-2.0 * log(u1));
        b->data[k] = (float)(r * cos(2.0 * M_PI * u2));
        b->data[k + 1] = (float)(r * sin(2.0 * M_PI * u2));
    }
    return 0;
}

/* Reads at most `max` bytes of path into a malloc'd buffer (caller frees). */
static int read_file(const char *path, long max, unsigned char **out, long *len, eps_error *err)
{
    char *buf;
    size_t n;
    int rc = eps_read_file(path, (size_t)max, "batch", &buf, &n, err);
    if (rc) return rc;
    *out = (unsigned char *)buf;
    *len = (long)n;
    return 0;
}

static int load_cifar(eps_batch *b, int n, const char *path, eps_error *err)
{
    unsigned char *buf;
    long len;
    int rc = read_file(path, EPS_BATCH_FILE_MAX, &buf, &len, err);
    if (rc) return rc;
    const long rec = 1 + IMG_PIX;
    if (len % rec != 0) {
        free(buf);
        return eps_error_set(err, EPS_EINVAL, "batch",
                             "'%.300s' is %ld bytes, not a whole number of %ld-byte CIFAR-10 records", path, len, rec);
    }
    if (len / rec < n) {
        free(buf);
        return eps_error_set(err, EPS_EINVAL, "batch", "'%.300s' holds %ld images, batch size is %d", path, len / rec, n);
    }
    rc = alloc_images(b, n, err);
    if (rc == 0)
        for (int i = 0; i < n; i++) {
            const unsigned char *r = buf + (size_t)i * rec + 1;
            for (int k = 0; k < IMG_PIX; k++) b->data[(size_t)i * IMG_PIX + k] = normalise(r[k], k / (IMG_H * IMG_W));
        }
    free(buf);
    return rc;
}

/* Minimal .npy (v1/v2/v3) reader: '<f4' NCHW (n,3,32,32) or '|u1' NHWC (n,32,32,3), C order. */
static int load_npy(eps_batch *b, int n, const char *path, eps_error *err)
{
    unsigned char *buf;
    long len;
    int rc = read_file(path, EPS_BATCH_FILE_MAX, &buf, &len, err);
    if (rc) return rc;
    rc = EPS_EINVAL;
    long hlen, off;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        eps_error_set(err, rc, "batch", "'%.300s' is not a .npy file (bad magic)", path);
        goto out;
    }
    if (buf[6] == 1) hlen = buf[8] | (buf[9] << 8), off = 10;
    else if (len >= 12) hlen = buf[8] | (buf[9] << 8) | ((long)buf[10] << 16) | ((long)buf[11] << 24), off = 12;
    else { eps_error_set(err, rc, "batch", "'%.300s': truncated .npy header", path); goto out; }
    if (hlen <= 0 || hlen > 65536 || off + hlen > len) {
        eps_error_set(err, rc, "batch", "'%.300s': bad .npy header length", path);
        goto out;
    }
    char hdr[65537];
    memcpy(hdr, buf + off, (size_t)hlen);
    hdr[hlen] = 0;
    int is_f4 = strstr(hdr, "'<f4'") != NULL, is_u1 = strstr(hdr, "'|u1'") != NULL || strstr(hdr, "'<u1'") != NULL;
    if (!is_f4 && !is_u1) {
        eps_error_set(err, rc, "batch", "'%.300s': dtype must be float32 ('<f4') or uint8 ('|u1')", path);
        goto out;
    }
    if (strstr(hdr, "'fortran_order': True")) {
        eps_error_set(err, rc, "batch", "'%.300s': Fortran-ordered arrays are not supported", path);
        goto out;
    }
    const char *sp = strstr(hdr, "'shape':");
    long d[4];
    if (!sp || sscanf(sp, "'shape': (%ld, %ld, %ld, %ld)", &d[0], &d[1], &d[2], &d[3]) != 4) {
        eps_error_set(err, rc, "batch", "'%.300s': shape must have 4 dimensions", path);
        goto out;
    }
    if (is_f4 ? (d[1] != 3 || d[2] != 32 || d[3] != 32) : (d[1] != 32 || d[2] != 32 || d[3] != 3)) {
        eps_error_set(err, rc, "batch", "'%.300s': shape (%ld, %ld, %ld, %ld) is not %s", path, d[0], d[1], d[2], d[3],
                      is_f4 ? "(N, 3, 32, 32) float32 NCHW" : "(N, 32, 32, 3) uint8 NHWC");
        goto out;
    }
    if (d[0] < n) {
        eps_error_set(err, rc, "batch", "'%.300s' holds %ld images, batch size is %d", path, d[0], n);
        goto out;
    }
    /* The header's count is checked against the bytes really there by
     * division: d[0] * bytes-per-image could overflow for a lying header. */
    const long per_image = (long)IMG_PIX * (is_f4 ? 4 : 1), data_len = len - off - hlen;
    if (d[0] > data_len / per_image) {
        eps_error_set(err, rc, "batch", "'%.300s' is truncated: its header says %ld images, its %ld data bytes hold %ld",
                      path, d[0], data_len, data_len / per_image);
        goto out;
    }
    rc = alloc_images(b, n, err);
    if (rc) goto out;
    const unsigned char *p = buf + off + hlen;
    if (is_f4) {
        memcpy(b->data, p, sizeof(float) * (size_t)n * IMG_PIX);
    } else {
        for (int i = 0; i < n; i++)
            for (int y = 0; y < IMG_H; y++)
                for (int x = 0; x < IMG_W; x++)
                    for (int c = 0; c < IMG_C; c++)
                        b->data[(((size_t)i * IMG_C + c) * IMG_H + y) * IMG_W + x] =
                            normalise(p[(((size_t)i * IMG_H + y) * IMG_W + x) * IMG_C + c], c);
    }
out:
    free(buf);
    return rc;
}

int eps_batch_load(const char *spec, int n, eps_batch *out, eps_error *err)
{
    memset(out, 0, sizeof *out);
    if (!spec || !*spec) return eps_error_set(err, EPS_EINVAL, "batch", "empty batch spec");
    if (n < 2 || n > EPS_BATCH_MAX)
        return eps_error_set(err, EPS_EINVAL, "batch_size", "batch size %d is out of range [2, %d]", n, EPS_BATCH_MAX);
    int rc;
    if (!strcmp(spec, "ramp")) rc = load_ramp(out, n, err);
    else if (!strncmp(spec, "gaussian:", 9)) rc = load_gaussian(out, n, spec + 9, err);
    else if (!strncmp(spec, "cifar10:", 8)) rc = load_cifar(out, n, spec + 8, err);
    else if (!strncmp(spec, "npy:", 4)) rc = load_npy(out, n, spec + 4, err);
    else if (!strncmp(spec, "tokens:", 7) || !strncmp(spec, "tokens-file:", 12))
        rc = eps_tokens_load(spec, n, out, err);
    else
        rc = eps_error_set(err, EPS_EINVAL, "batch",
                           "unknown batch spec '%.60s' (expected ramp, gaussian:SEED, cifar10:PATH, npy:PATH, "
                           "tokens:SEED or tokens-file:PATH)", spec);
    if (rc) {
        eps_batch_free(out);
        return rc;
    }
    snprintf(out->source, sizeof out->source, "%s", spec);
    eps_batch_set_hash(out);
    return 0;
}

void eps_batch_free(eps_batch *b)
{
    if (!b) return;
    free(b->data);
    free(b->tokens);
    memset(b, 0, sizeof *b);
}
