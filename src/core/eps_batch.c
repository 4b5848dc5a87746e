/* eps_batch.c — loads the fixed input batches (include/epsinas/core/batch.h):
 * the embedded ramp, CIFAR-10 binary files, .npy files, a documented
 * Gaussian generator that tests/reference/epsref.py reproduces exactly, the
 * prefix-stable synthetic generators (smooth, pink, leaves, levels) the
 * per-space defaults were chosen from (docs/batches.md), "a spec at another
 * size" for the service's batch_size, and named batches (lookup, default
 * pick, size-hash memo). */
#include "epsinas/core/batch.h"
#include "epsinas/core/util.h"

#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* CIFAR-10's image shape: the records of cifar10: files, and the shape of
 * eps_batch_load (every other shape goes through eps_batch_load_shape). */
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

static int alloc_images(eps_batch *b, int n, eps_image_shape sh, eps_error *err)
{
    b->kind = EPS_BATCH_IMAGES;
    b->n = n, b->c = sh.c, b->h = sh.h, b->w = sh.w;
    b->data = malloc(sizeof(float) * (size_t)n * (size_t)sh.c * (size_t)sh.h * (size_t)sh.w);
    if (!b->data) return eps_error_set(err, EPS_ENOMEM, "batch", "out of memory for %d images", n);
    return 0;
}

static size_t pixels(eps_image_shape sh) { return (size_t)sh.c * (size_t)sh.h * (size_t)sh.w; }

static int same_shape(eps_image_shape a, eps_image_shape b) { return a.c == b.c && a.h == b.h && a.w == b.w; }

/* uint8 pixel -> [0,1] -> per-channel normalised, in float32 like torchvision. */
static float normalise(unsigned char v, int c)
{
    float x = (float)v / 255.0f;
    return (x - (float)cifar_mean[c]) / (float)cifar_std[c];
}

static int load_ramp(eps_batch *b, int n, eps_image_shape sh, eps_error *err)
{
    int rc = alloc_images(b, n, sh, err);
    if (rc) return rc;
    const size_t pix = pixels(sh);
    for (int i = 0; i < n; i++) {
        float v = (float)i / (float)n;
        for (size_t k = 0; k < pix; k++) b->data[(size_t)i * pix + k] = v;
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
 * (r cos 2πu2, r sin 2πu2) fills consecutive NCHW positions (an odd total
 * drops the last sine). */
static int load_gaussian(eps_batch *b, int n, eps_image_shape sh, const char *arg, eps_error *err)
{
    char *end;
    errno = 0;
    if (!*arg || *arg == '-') return eps_error_set(err, EPS_EINVAL, "batch", "gaussian:SEED needs a non-negative integer seed");
    unsigned long long seed = strtoull(arg, &end, 10);
    if (errno || *end) return eps_error_set(err, EPS_EINVAL, "batch", "gaussian seed '%.40s' is not a non-negative integer", arg);
    int rc = alloc_images(b, n, sh, err);
    if (rc) return rc;
    uint64_t st = seed;
    size_t total = (size_t)n * pixels(sh);
    for (size_t k = 0; k < total; k += 2) {
        double u1 = 1.0 - uniform01(&st);
        double u2 = uniform01(&st);
        double r = sqrt(-2.0 * log(u1));
        b->data[k] = (float)(r * cos(2.0 * M_PI * u2));
        if (k + 1 < total) b->data[k + 1] = (float)(r * sin(2.0 * M_PI * u2));
    }
    return 0;
}


/* ---- prefix-stable synthetic generators --------------------------------
 * Image i of smooth/pink/leaves/levels depends only on (seed, i), never on
 * the batch size, so "the first N images" and "the batch generated at N"
 * are the same batch (the service's batch_size relies on it). Image i draws
 * from its own splitmix64 stream whose state starts at
 * seed ^ (0xD1B54A32D192ED03 * (i + 1)) (mod 2^64). All arithmetic is in
 * double; only the final value is rounded to float. */

static uint64_t image_state(uint64_t seed, int i) { return seed ^ (0xD1B54A32D192ED03ULL * (uint64_t)(i + 1)); }

/* One standard normal by Box-Muller (the cosine branch only: one value per
 * pair of uniforms, simpler to mirror than gaussian's pairing). */
static double normal01(uint64_t *st)
{
    double u1 = 1.0 - uniform01(st);
    double u2 = uniform01(st);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* Shifts and scales one H x W plane to mean 0, std 1 (population std; a
 * constant plane stays 0). */
static void standardise(double *p, int n)
{
    double m = 0, v = 0;
    for (int k = 0; k < n; k++) m += p[k];
    m /= n;
    for (int k = 0; k < n; k++) v += (p[k] - m) * (p[k] - m);
    v = sqrt(v / n);
    for (int k = 0; k < n; k++) p[k] = v > 0 ? (p[k] - m) / v : 0.0;
}

#define SMOOTH_SIGMA 2.0
#define SMOOTH_R 6

/* What a generator draws one image into: the image shape, the image (c x h
 * x w floats) and double scratch of gen_scratch(shape) values. */
typedef struct gen_ctx {
    eps_image_shape sh;
    float *img;
    double *scratch;
} gen_ctx;

/* Scratch a generator needs: two planes (smooth), a plane plus the largest
 * octave grid (pink), every channel's plane (leaves). */
static size_t gen_scratch(eps_image_shape sh)
{
    size_t hw = (size_t)sh.h * sh.w, g = (size_t)(sh.h > sh.w ? sh.h : sh.w);
    size_t need = 2 * hw;
    if (hw + g * g > need) need = hw + g * g;
    if ((size_t)sh.c * hw > need) need = (size_t)sh.c * hw;
    return need;
}

/* smooth: white normal noise per plane, blurred by a separable Gaussian
 * (sigma 2 px, radius 6, weights summing to 1, wrapping around the edges),
 * then standardised per plane. */
static void gen_smooth(uint64_t *st, const gen_ctx *g)
{
    const int H = g->sh.h, W = g->sh.w;
    double k[2 * SMOOTH_R + 1], ks = 0;
    for (int d = -SMOOTH_R; d <= SMOOTH_R; d++) ks += k[d + SMOOTH_R] = exp(-(d * d) / (2 * SMOOTH_SIGMA * SMOOTH_SIGMA));
    for (int d = 0; d <= 2 * SMOOTH_R; d++) k[d] /= ks;
    double *a = g->scratch, *t = g->scratch + (size_t)H * W;
    for (int c = 0; c < g->sh.c; c++) {
        for (int q = 0; q < H * W; q++) a[q] = normal01(st);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double s = 0;
                /* ((x + d) mod W + W) mod W: the radius may exceed a small W */
                for (int d = -SMOOTH_R; d <= SMOOTH_R; d++) s += k[d + SMOOTH_R] * a[y * W + ((x + d) % W + W) % W];
                t[y * W + x] = s;
            }
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double s = 0;
                for (int d = -SMOOTH_R; d <= SMOOTH_R; d++) s += k[d + SMOOTH_R] * t[(((y + d) % H + H) % H) * W + x];
                a[y * W + x] = s;
            }
        standardise(a, H * W);
        for (int q = 0; q < H * W; q++) g->img[(size_t)c * H * W + q] = (float)a[q];
    }
}

/* pink: 1/f noise by octaves: for g = 2, 4, 8, ... up to the larger image
 * side (32 for CIFAR), a g x g grid of normals (row-major) is bilinearly
 * interpolated (wrapping) to H x W at grid coordinates (x * g / W,
 * y * g / H) and added with amplitude 1/g (amplitude proportional to
 * wavelength); the sum is standardised per plane. */
static void gen_pink(uint64_t *st, const gen_ctx *gc)
{
    const int H = gc->sh.h, W = gc->sh.w, side = H > W ? H : W;
    double *a = gc->scratch, *grid = gc->scratch + (size_t)H * W;
    for (int c = 0; c < gc->sh.c; c++) {
        for (int q = 0; q < H * W; q++) a[q] = 0;
        for (int g = 2; g <= side; g *= 2) {
            for (int q = 0; q < g * g; q++) grid[q] = normal01(st);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    double gy = (double)y * g / H, gx = (double)x * g / W;
                    int y0 = (int)gy, x0 = (int)gx, y1 = (y0 + 1) % g, x1 = (x0 + 1) % g;
                    double fy = gy - y0, fx = gx - x0;
                    double v = (1 - fy) * ((1 - fx) * grid[y0 * g + x0] + fx * grid[y0 * g + x1]) +
                               fy * ((1 - fx) * grid[y1 * g + x0] + fx * grid[y1 * g + x1]);
                    a[y * W + x] += v / g;
                }
        }
        standardise(a, H * W);
        for (int q = 0; q < H * W; q++) gc->img[(size_t)c * H * W + q] = (float)a[q];
    }
}

#define LEAVES_N 128
#define LEAVES_RMIN 1.0
#define LEAVES_RMAX 16.0

/* leaves: dead-leaves image: a uniform random RGB background, then 128
 * discs painted in order (later ones on top), each with centre uniform in
 * [0,W) x [0,H), radius r with density proportional to r^-3 on [1, 16]
 * (inverse CDF: r = (1 - u (1 - 16^-2))^(-1/2)) and a uniform RGB colour;
 * pixel (x, y) is covered when the wrapped distance from (x + 0.5, y + 0.5)
 * to the centre is below r. Draw order per disc: cx, cy, u, R, G, B. Pixels
 * in [0,1] are then normalised with the CIFAR-10 mean and std (in double).
 * RGB only: three channels (checked by the loader). */
static void gen_leaves(uint64_t *st, const gen_ctx *g)
{
    const int H = g->sh.h, W = g->sh.w;
    double *px[IMG_C] = {g->scratch, g->scratch + (size_t)H * W, g->scratch + 2 * (size_t)H * W};
    double bg[IMG_C];
    for (int c = 0; c < IMG_C; c++) bg[c] = uniform01(st);
    for (int c = 0; c < IMG_C; c++)
        for (int q = 0; q < H * W; q++) px[c][q] = bg[c];
    const double a = 1.0 / (LEAVES_RMIN * LEAVES_RMIN), b = 1.0 / (LEAVES_RMAX * LEAVES_RMAX);
    for (int d = 0; d < LEAVES_N; d++) {
        double cx = uniform01(st) * W, cy = uniform01(st) * H, u = uniform01(st);
        double col[IMG_C];
        for (int c = 0; c < IMG_C; c++) col[c] = uniform01(st);
        double r = 1.0 / sqrt(a - u * (a - b));
        for (int y = 0; y < H; y++) {
            double dy = fabs(y + 0.5 - cy);
            if (dy > H / 2.0) dy = H - dy;
            if (dy >= r) continue;
            for (int x = 0; x < W; x++) {
                double dx = fabs(x + 0.5 - cx);
                if (dx > W / 2.0) dx = W - dx;
                if (dx * dx + dy * dy < r * r)
                    for (int c = 0; c < IMG_C; c++) px[c][y * W + x] = col[c];
            }
        }
    }
    for (int c = 0; c < IMG_C; c++)
        for (int q = 0; q < H * W; q++)
            g->img[(size_t)c * H * W + q] = (float)((px[c][q] - cifar_mean[c]) / cifar_std[c]);
}

/* levels: image i is one grey level u (a single uniform from its stream)
 * in every pixel of every channel, not normalised: a ramp in random order
 * that does not depend on the batch size. */
static void gen_levels(uint64_t *st, const gen_ctx *g)
{
    float v = (float)uniform01(st);
    for (size_t k = 0; k < pixels(g->sh); k++) g->img[k] = v;
}

typedef void (*image_gen)(uint64_t *st, const gen_ctx *g);

static int parse_seed(const char *gen, const char *arg, uint64_t *seed, eps_error *err)
{
    char *end;
    errno = 0;
    if (!*arg || *arg == '-' || *arg == '+' || *arg == ' ')
        return eps_error_set(err, EPS_EINVAL, "batch", "%s:SEED needs a non-negative integer seed", gen);
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno || *end)
        return eps_error_set(err, EPS_EINVAL, "batch", "%s seed '%.40s' is not a non-negative integer below 2^64", gen, arg);
    *seed = v;
    return 0;
}

static int load_generated(eps_batch *b, int n, eps_image_shape sh, const char *gen, const char *arg, image_gen fn,
                          eps_error *err)
{
    uint64_t seed = 0;
    int rc = parse_seed(gen, arg, &seed, err);
    if (rc) return rc;
    if (fn == gen_leaves && sh.c != IMG_C)
        return eps_error_set(err, EPS_EINVAL, "batch",
                             "leaves:SEED makes RGB images (3 channels); the network needs %dx%dx%d", sh.c, sh.h, sh.w);
    double *scratch = malloc(sizeof(double) * gen_scratch(sh));
    if (!scratch) return eps_error_set(err, EPS_ENOMEM, "batch", "out of memory for a %dx%d image", sh.h, sh.w);
    if ((rc = alloc_images(b, n, sh, err))) {
        free(scratch);
        return rc;
    }
    for (int i = 0; i < n; i++) {
        uint64_t st = image_state(seed, i);
        gen_ctx g = {sh, b->data + (size_t)i * pixels(sh), scratch};
        fn(&st, &g);
    }
    free(scratch);
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

/* A file's images have the shape they have: one the network does not take
 * is an error naming the batch and both shapes. */
static int shape_mismatch(const char *prefix, const char *path, int c, int h, int w, eps_image_shape want,
                          eps_error *err)
{
    return eps_error_set(err, EPS_EINVAL, "batch", "batch '%s%.300s' holds %dx%dx%d images; the network needs %dx%dx%d",
                         prefix, path, c, h, w, want.c, want.h, want.w);
}

static int load_cifar(eps_batch *b, int n, eps_image_shape sh, const char *path, eps_error *err)
{
    if (!same_shape(sh, (eps_image_shape){IMG_C, IMG_H, IMG_W}))
        return shape_mismatch("cifar10:", path, IMG_C, IMG_H, IMG_W, sh, err); /* CIFAR-10 records are 3x32x32 */
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
    rc = alloc_images(b, n, sh, err);
    if (rc == 0)
        for (int i = 0; i < n; i++) {
            const unsigned char *r = buf + (size_t)i * rec + 1;
            for (int k = 0; k < IMG_PIX; k++) b->data[(size_t)i * IMG_PIX + k] = normalise(r[k], k / (IMG_H * IMG_W));
        }
    free(buf);
    return rc;
}

/* Minimal .npy (v1/v2/v3) reader: '<f4' NCHW (n,C,H,W) or '|u1' NHWC
 * (n,H,W,3), C order, at the shape the network needs. */
static int load_npy(eps_batch *b, int n, eps_image_shape sh, const char *path, eps_error *err)
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
    /* the image shape the file holds, as C x H x W */
    long fc = is_f4 ? d[1] : d[3], fh = is_f4 ? d[2] : d[1], fw = is_f4 ? d[3] : d[2];
    if (sh.c == 0 && fc >= 1 && fh >= 1 && fw >= 1 && fc <= EPS_BATCH_MAX_SIDE && fh <= EPS_BATCH_MAX_SIDE &&
        fw <= EPS_BATCH_MAX_SIDE) /* any shape: the file's (a service's named batch) */
        sh = (eps_image_shape){(int)fc, (int)fh, (int)fw};
    if (fc != sh.c || fh != sh.h || fw != sh.w) {
        if (sh.c > 0 && fc > 0 && fh > 0 && fw > 0 && fc <= 65536 && fh <= 65536 && fw <= 65536)
            shape_mismatch("npy:", path, (int)fc, (int)fh, (int)fw, sh, err);
        else
            eps_error_set(err, rc, "batch", "'%.300s': shape (%ld, %ld, %ld, %ld) is not %s (sides 1..%d)", path, d[0],
                          d[1], d[2], d[3], is_f4 ? "(N, C, H, W) float32 NCHW" : "(N, H, W, 3) uint8 NHWC",
                          EPS_BATCH_MAX_SIDE);
        goto out;
    }
    if (!is_f4 && sh.c != IMG_C) {
        eps_error_set(err, rc, "batch", "'%.300s': uint8 images are RGB (N, H, W, 3); the network needs %d channels",
                      path, sh.c);
        goto out;
    }
    if (d[0] < n) {
        eps_error_set(err, rc, "batch", "'%.300s' holds %ld images, batch size is %d", path, d[0], n);
        goto out;
    }
    if ((double)n * (double)pixels(sh) > (double)EPS_BATCH_MAX_VALUES) {
        rc = eps_error_set(err, EPS_ELIMIT, "batch", "'%.300s': %d images of %dx%dx%d exceed the limit of %ld values",
                           path, n, sh.c, sh.h, sh.w, (long)EPS_BATCH_MAX_VALUES);
        goto out;
    }
    /* The header's count is checked against the bytes really there by
     * division: d[0] * bytes-per-image could overflow for a lying header. */
    const long pix = (long)pixels(sh), per_image = pix * (is_f4 ? 4 : 1), data_len = len - off - hlen;
    if (d[0] > data_len / per_image) {
        eps_error_set(err, rc, "batch", "'%.300s' is truncated: its header says %ld images, its %ld data bytes hold %ld",
                      path, d[0], data_len, data_len / per_image);
        goto out;
    }
    rc = alloc_images(b, n, sh, err);
    if (rc) goto out;
    const unsigned char *p = buf + off + hlen;
    if (is_f4) {
        memcpy(b->data, p, sizeof(float) * (size_t)n * (size_t)pix);
    } else {
        const int H = sh.h, W = sh.w;
        for (int i = 0; i < n; i++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    for (int c = 0; c < IMG_C; c++)
                        b->data[(((size_t)i * IMG_C + c) * H + y) * W + x] =
                            normalise(p[(((size_t)i * H + y) * W + x) * IMG_C + c], c);
    }
out:
    free(buf);
    return rc;
}

/* Loads spec at n >= 1 images of shape sh (the public entry points ask
 * n >= 2; the service's batch_size may narrow to 1). */
static int load_spec(const char *spec, int n, eps_image_shape sh, eps_batch *out, eps_error *err)
{
    memset(out, 0, sizeof *out);
    int rc;
    int any = sh.c == 0 && sh.h == 0 && sh.w == 0;
    if (any && strncmp(spec, "npy:", 4)) sh = (eps_image_shape){IMG_C, IMG_H, IMG_W}; /* only an npy file has its own */
    if (!any && (sh.c < 1 || sh.h < 1 || sh.w < 1 || sh.c > EPS_BATCH_MAX_SIDE || sh.h > EPS_BATCH_MAX_SIDE ||
                 sh.w > EPS_BATCH_MAX_SIDE || (double)n * pixels(sh) > (double)EPS_BATCH_MAX_VALUES))
        return eps_error_set(err, EPS_ELIMIT, "batch",
                             "a batch of %d images of %dx%dx%d exceeds the limit of %ld values (each side at most %d)", n,
                             sh.c, sh.h, sh.w, (long)EPS_BATCH_MAX_VALUES, EPS_BATCH_MAX_SIDE);
    if (!strcmp(spec, "ramp")) rc = load_ramp(out, n, sh, err);
    else if (!strncmp(spec, "gaussian:", 9)) rc = load_gaussian(out, n, sh, spec + 9, err);
    else if (!strncmp(spec, "smooth:", 7)) rc = load_generated(out, n, sh, "smooth", spec + 7, gen_smooth, err);
    else if (!strncmp(spec, "pink:", 5)) rc = load_generated(out, n, sh, "pink", spec + 5, gen_pink, err);
    else if (!strncmp(spec, "leaves:", 7)) rc = load_generated(out, n, sh, "leaves", spec + 7, gen_leaves, err);
    else if (!strncmp(spec, "levels:", 7)) rc = load_generated(out, n, sh, "levels", spec + 7, gen_levels, err);
    else if (!strncmp(spec, "cifar10:", 8)) rc = load_cifar(out, n, sh, spec + 8, err);
    else if (!strncmp(spec, "npy:", 4)) rc = load_npy(out, n, sh, spec + 4, err);
    else if (!strncmp(spec, "tokens:", 7) || !strncmp(spec, "tokens-file:", 12))
        rc = eps_tokens_load(spec, n, out, err);
    else
        rc = eps_error_set(err, EPS_EINVAL, "batch",
                           "unknown batch spec '%.60s' (expected ramp, gaussian:SEED, smooth:SEED, pink:SEED, leaves:SEED, "
                           "levels:SEED, cifar10:PATH, npy:PATH, "
                           "tokens:SEED or tokens-file:PATH)", spec);
    if (rc) {
        eps_batch_free(out);
        return rc;
    }
    snprintf(out->source, sizeof out->source, "%s", spec);
    eps_batch_set_hash(out);
    return 0;
}

int eps_batch_load_shape(const char *spec, int n, eps_image_shape shape, eps_batch *out, eps_error *err)
{
    memset(out, 0, sizeof *out);
    if (!spec || !*spec) return eps_error_set(err, EPS_EINVAL, "batch", "empty batch spec");
    if (n < 2 || n > EPS_BATCH_MAX)
        return eps_error_set(err, EPS_EINVAL, "batch_size", "batch size %d is out of range [2, %d]", n, EPS_BATCH_MAX);
    return load_spec(spec, n, shape, out, err);
}

int eps_batch_load(const char *spec, int n, eps_batch *out, eps_error *err)
{
    return eps_batch_load_shape(spec, n, EPS_IMAGE_SHAPE_CIFAR, out, err);
}

static const eps_batch_generator generators[] = {
    {"ramp", "ramp", "image i of B is one grey level i/B in every pixel and channel (not normalised; the paper's "
                     "synthetic batch)"},
    {"gaussian:", "gaussian:SEED", "independent standard normal values, one splitmix64 stream in NCHW order "
                                   "(Box-Muller pairs)"},
    {"smooth:", "smooth:SEED", "per image and channel, white normal noise blurred by a wrapping Gaussian of sigma 2 "
                               "px, standardised to mean 0 and std 1"},
    {"pink:", "pink:SEED", "per image and channel, 1/f noise: normal grids of 2, 4, ... 32 cells bilinearly "
                           "upsampled with amplitude 1/cells, summed and standardised"},
    {"leaves:", "leaves:SEED", "dead-leaves images: 128 random-colour discs with radii ~ r^-3 in [1, 16] px over a "
                               "random background, CIFAR-10-normalised"},
    {"levels:", "levels:SEED", "image i is one random grey level in [0, 1) (a ramp in random order that does not "
                               "depend on B; not normalised)"},
    {"cifar10:", "cifar10:PATH", "the first B records of a CIFAR-10 binary file, CIFAR-10-normalised"},
    {"npy:", "npy:PATH", "the first B images of a .npy file (float32 NCHW as is, uint8 NHWC CIFAR-10-normalised)"},
    {"tokens:", "tokens:SEED", "NLP: synthetic token streams, 70 steps (see nlp.h)"},
    {"tokens-file:", "tokens-file:PATH", "NLP: a whitespace-tokenised text file cut into B streams of 70 steps"},
    {NULL, NULL, NULL},
};

const eps_batch_generator *eps_batch_generators(void) { return generators; }

const char *eps_batch_describe(const char *spec)
{
    if (!spec) return NULL;
    for (const eps_batch_generator *g = generators; g->prefix; g++) {
        size_t n = strlen(g->prefix);
        if (g->prefix[n - 1] == ':' ? !strncmp(spec, g->prefix, n) : !strcmp(spec, g->prefix)) return g->sentence;
    }
    return NULL;
}

int eps_batch_prefix_stable(const eps_batch *b)
{
    /* ramp's levels are i/B and token files are cut into B streams: both
     * change with B; every other image source makes image i from i alone. */
    return b->kind == EPS_BATCH_IMAGES && strcmp(b->source, "ramp") != 0;
}

int eps_batch_at_size(const eps_batch *b, int n, eps_batch *out, int *owned, eps_error *err)
{
    *owned = 0;
    if (n < 1 || n > b->n)
        return eps_error_set(err, EPS_EINVAL, "batch_size", "batch size %d is out of range [1, %d]", n, b->n);
    if (n == b->n || eps_batch_prefix_stable(b)) {
        *out = *b;
        out->n = n; /* NCHW: the first n images are a prefix */
        if (n != b->n) eps_batch_set_hash(out);
        return 0;
    }
    if (!strncmp(b->source, "tokens-file:", 12))
        return eps_error_set(err, EPS_EINVAL, "batch_size",
                             "a tokens-file batch is scored at the size it was loaded with (%d streams); load it at "
                             "%d streams instead", b->n, n);
    int rc = load_spec(b->source, n, (eps_image_shape){b->c, b->h, b->w}, out, err);
    if (rc == 0) *owned = 1;
    return rc;
}

int eps_batch_is_file(const eps_batch *b)
{
    return !strncmp(b->source, "cifar10:", 8) || !strncmp(b->source, "npy:", 4) ||
           !strncmp(b->source, "tokens-file:", 12);
}

int eps_batch_at(const eps_batch *b, int n, eps_image_shape shape, eps_batch *out, int *owned, eps_error *err)
{
    *owned = 0;
    if (b->kind != EPS_BATCH_IMAGES || same_shape(shape, (eps_image_shape){b->c, b->h, b->w}))
        return eps_batch_at_size(b, n, out, owned, err);
    if (n < 1 || n > b->n)
        return eps_error_set(err, EPS_EINVAL, "batch_size", "batch size %d is out of range [1, %d]", n, b->n);
    if (eps_batch_is_file(b)) return shape_mismatch("", b->source, b->c, b->h, b->w, shape, err);
    /* a generator: the same spec drawn at the network's shape */
    int rc = load_spec(b->source, n, shape, out, err);
    if (rc == 0) *owned = 1;
    return rc;
}

static pthread_mutex_t memo_mu = PTHREAD_MUTEX_INITIALIZER;

int eps_named_batch_hash(const eps_named_batch *nb, int n, char out[17], eps_error *err)
{
    if (n == nb->batch.n) {
        memcpy(out, nb->batch.hash, 17);
        return 0;
    }
    if (nb->size_hash && n >= 1 && n <= nb->batch.n) {
        pthread_mutex_lock(&memo_mu);
        int have = nb->size_hash[n][0] != 0;
        if (have) memcpy(out, nb->size_hash[n], 17);
        pthread_mutex_unlock(&memo_mu);
        if (have) return 0;
    }
    eps_batch v;
    int owned;
    int rc = eps_batch_at_size(&nb->batch, n, &v, &owned, err);
    if (rc) return rc;
    memcpy(out, v.hash, 17);
    if (owned) eps_batch_free(&v);
    if (nb->size_hash) {
        pthread_mutex_lock(&memo_mu);
        memcpy(nb->size_hash[n], out, 17);
        pthread_mutex_unlock(&memo_mu);
    }
    return 0;
}

/* Content hashes of named batches at shapes other than their own (a
 * network with another input, e.g. nb201 imagenet16-120): a small table,
 * overwritten round-robin, so a busy service does not regenerate a batch
 * per request just to name it in a cache key. Keyed by what determines the
 * content (the generator spec and the batch's own hash), not by address. */
#define SHAPE_MEMO 64
static struct {
    char source[sizeof ((eps_batch *)0)->source];
    char own_hash[17];
    int n;
    eps_image_shape sh;
    char hash[17];
} shape_memo[SHAPE_MEMO];
static int shape_memo_next;

int eps_named_batch_hash_at(const eps_named_batch *nb, int n, eps_image_shape shape, char out[17], eps_error *err)
{
    const eps_batch *b = &nb->batch;
    if (b->kind != EPS_BATCH_IMAGES || same_shape(shape, (eps_image_shape){b->c, b->h, b->w}))
        return eps_named_batch_hash(nb, n, out, err);
    int have = 0;
    pthread_mutex_lock(&memo_mu);
    for (int i = 0; i < SHAPE_MEMO && !have; i++)
        if (shape_memo[i].n == n && same_shape(shape_memo[i].sh, shape) && !strcmp(shape_memo[i].own_hash, b->hash) &&
            !strcmp(shape_memo[i].source, b->source)) {
            memcpy(out, shape_memo[i].hash, 17);
            have = 1;
        }
    pthread_mutex_unlock(&memo_mu);
    if (have) return 0;
    eps_batch v;
    int owned;
    int rc = eps_batch_at(b, n, shape, &v, &owned, err);
    if (rc) return rc;
    memcpy(out, v.hash, 17);
    if (owned) eps_batch_free(&v);
    pthread_mutex_lock(&memo_mu);
    int k = shape_memo_next++ % SHAPE_MEMO;
    memcpy(shape_memo[k].source, b->source, sizeof b->source);
    memcpy(shape_memo[k].own_hash, b->hash, 17);
    shape_memo[k].n = n, shape_memo[k].sh = shape;
    memcpy(shape_memo[k].hash, out, 17);
    pthread_mutex_unlock(&memo_mu);
    return 0;
}

const eps_named_batch *eps_named_batch_find(const eps_named_batch *b, int n, const char *name)
{
    for (int i = 0; name && i < n; i++)
        if (!strcmp(b[i].name, name)) return &b[i];
    return NULL;
}

const eps_named_batch *eps_named_batch_pick(const eps_named_batch *b, int n, const char *requested,
                                            const char *space_default, eps_batch_kind kind)
{
    if (requested) return eps_named_batch_find(b, n, requested);
    /* an operator's own "default" / "tokens" still wins, as before per-space defaults */
    const eps_named_batch *o = eps_named_batch_find(b, n, kind == EPS_BATCH_TOKENS ? "tokens" : "default");
    if (o && !o->builtin) return o;
    return eps_named_batch_find(b, n, space_default);
}

void eps_batch_free(eps_batch *b)
{
    if (!b) return;
    free(b->data);
    free(b->tokens);
    memset(b, 0, sizeof *b);
}
