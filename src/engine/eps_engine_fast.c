/* eps_engine_fast.c — the exact single-plane engine (spec §8).
 *
 * With every weight equal to one constant w, the channels of a tensor come
 * in runs of identical channels. A tensor is therefore a list of groups
 * (channel count, one B x H x W plane); a plane pointer of NULL is an exact
 * zero plane. A convolution collapses its input groups into one plane:
 *     out = sum_g count_g * window_sum(w * plane_g)
 * (w is applied before summing so tiny values underflow as in the
 * reference, where each product w*x is rounded); BN, ReLU, pooling act per
 * group; concat appends groups; slice keeps a prefix; add sums aligned
 * segments. Before running, identical nodes (same op, parameters and
 * inputs) are merged: with shared constant weights they compute the same
 * tensor. BatchNorm's whole-batch statistics cut the graph into phases;
 * inside a phase the ops run as jobs, chunk by chunk of images, so only
 * tensors read by a later phase get whole-batch planes (see "the
 * phase-fused executor" below). Planes come from a per-thread pool (large
 * ones on huge-page slabs), so a run allocates nothing once the pool is
 * warm. Hot kernels have AVX-512 versions next to the generic loops, with
 * the same sums in the same order (only BatchNorm's sum of squares uses
 * FMA there). Checked op by op against eps_engine_dense.c. */
#include "epsinas/engine/engine.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "eps_engine_common.h"

#define AINL static inline __attribute__((always_inline))

/* ---- per-thread plane pool and bump arena ---- */

typedef struct plane {
    float *data;
    size_t size;         /* floats */
    int refs;
    int has_stats;       /* sum / ssc below are valid (set by the producer) */
    double sum, ssc;     /* sum and centred sum of squares, for BatchNorm */
    float maxabs;        /* largest |value| (NaN-unaware), when maxabs_known */
    int maxabs_known;    /* else read off the plane when a BatchNorm needs it */
    long nvals;          /* values the stats cover (the whole batch) */
    size_t istride;      /* floats per image */
    int virt;            /* holds only the current chunk of images (see img) */
    struct job *producer; /* virt: the job that fills it, re-run by any later
                             phase that reads it (it holds its inputs) */
    int in_slab;         /* data lives in a huge-page slab (not freed alone) */
    struct plane *next;  /* free list */
} plane;

/* A run of `count` identical channels. p == NULL: exact zeros. affine: the
 * values are p*alpha + beta (a BatchNorm output the reader computes on the
 * fly, with the same float operations, so it saves a pass over memory). */
typedef struct { int count; plane *p; float alpha, beta; int affine; } grp;
/* relu: the values are max(plane, 0), applied by the reader. A ReLU whose
 * only readers are convolutions is not materialised (the conv applies it
 * while loading each row). */
typedef struct { int ng; grp *g; int valid; int relu; } ftensor;

static inline float lazy_value(const grp *g, float x) { return g->affine ? x * g->alpha + g->beta : x; }

static int same_grp(const grp *a, const grp *b)
{
    return a->p == b->p && a->affine == b->affine &&
           (!a->affine || (a->alpha == b->alpha && a->beta == b->beta));
}

typedef struct arena_chunk { struct arena_chunk *next; size_t cap, used; } arena_chunk;

/* Whole-batch planes (1 MB each for NB201's first stage) are read and
 * written as long streams; on 4 KB pages the hardware prefetchers stop at
 * every page (every image), on 2 MB pages they do not. Large planes are
 * therefore carved from 2 MB-aligned slabs advised for transparent huge
 * pages; they return to the plane pool, never to the slab. */
#define SLAB_BYTES ((size_t)32 << 20)
#define POOL_TRIM_BYTES ((size_t)256 << 20)
#define SLAB_MIN_PLANE_BYTES ((size_t)64 << 10)
typedef struct slab { struct slab *next; void *map; size_t map_len; char *base; size_t used; } slab;

#define INPUT_CACHE_MAX_C 8

typedef struct fpool {
    plane *free_list;
    slab *slabs;
    size_t bytes;        /* plane and slab memory held (see POOL_TRIM_BYTES) */
    arena_chunk *chunks;  /* first chunk is reused; others appended as needed */
    /* the input batch split into channel planes, kept across runs (both
     * passes, and every architecture of a sweep, read the same batch) */
    plane *in_planes[INPUT_CACHE_MAX_C];
    int in_n, in_c, in_h, in_w;
    const float *in_data;
    char in_hash[17];
    /* the first convolution of the input (a stem) for the two weights last
     * seen: identical for every architecture scored on this batch */
    struct { int valid; eps_node node; float w; int ng; grp g[4]; } stem[2];
    int stem_next;
} fpool;

static _Thread_local fpool tl_pool;

static int plane_stats(plane *p);
static void job_drop_inputs(struct fpool *fp, struct job *j);
static plane *plane_get_sized(fpool *fp, size_t size);

static void *arena_alloc(fpool *fp, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    for (arena_chunk *c = fp->chunks; c; c = c->next)
        if (c->cap - c->used >= n) {
            void *p = (char *)(c + 1) + c->used;
            c->used += n;
            return p;
        }
    size_t cap = n > (1u << 16) ? n : (1u << 16);
    arena_chunk *c = malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->cap = cap;
    c->used = n;
    c->next = fp->chunks;
    fp->chunks = c;
    return c + 1;
}

static void arena_reset(fpool *fp)
{
    for (arena_chunk *c = fp->chunks; c; c = c->next) c->used = 0;
}

/* A plane of nimg images of isz floats each; virt: a chunk buffer. */
static plane *plane_get(fpool *fp, size_t nimg, size_t isz, int virt)
{
    size_t size = nimg * isz;
    plane *p = plane_get_sized(fp, size);
    if (p) p->istride = isz, p->virt = virt;
    return p;
}

static void *slab_alloc(fpool *fp, size_t bytes)
{
    bytes = (bytes + 4095) & ~(size_t)4095;
    if (bytes > SLAB_BYTES) return NULL;
    slab *sb = fp->slabs;
    if (!sb || SLAB_BYTES - sb->used < bytes) {
        size_t huge = (size_t)2 << 20, len = SLAB_BYTES + huge;
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        sb = malloc(sizeof *sb);
        if (!sb) {
            munmap(m, len);
            return NULL;
        }
        sb->map = m, sb->map_len = len, sb->used = 0;
        sb->base = (char *)(((uintptr_t)m + huge - 1) & ~(uintptr_t)(huge - 1));
        (void)madvise(sb->base, SLAB_BYTES, MADV_HUGEPAGE); /* advice only: 4 KB pages also work */
        sb->next = fp->slabs;
        fp->slabs = sb;
        fp->bytes += len;
    }
    void *p = sb->base + sb->used;
    sb->used += bytes;
    return p;
}

static plane *plane_get_sized(fpool *fp, size_t size)
{
    for (plane **pp = &fp->free_list; *pp; pp = &(*pp)->next)
        if ((*pp)->size == size) {
            plane *p = *pp;
            *pp = p->next;
            p->refs = 1;
            p->has_stats = 0, p->maxabs_known = 0;
            p->producer = NULL;
            p->next = NULL;
            return p;
        }
    plane *p = malloc(sizeof *p);
    if (!p) return NULL;
    size_t bytes = size * sizeof(float);
    p->data = bytes >= SLAB_MIN_PLANE_BYTES ? slab_alloc(fp, bytes) : NULL;
    p->in_slab = p->data != NULL;
    if (!p->data) {
        p->data = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        fp->bytes += bytes;
    }
    if (!p->data) {
        free(p);
        return NULL;
    }
    p->size = size;
    p->refs = 1;
    p->has_stats = 0, p->maxabs_known = 0;
    p->producer = NULL;
    p->next = NULL;
    return p;
}

static void plane_put(fpool *fp, plane *p)
{
    if (!p || --p->refs > 0) return;
    struct job *j = p->producer;
    p->producer = NULL;
    p->next = fp->free_list;
    fp->free_list = p;
    if (j) job_drop_inputs(fp, j);
}

static void tensor_release(fpool *fp, ftensor *t)
{
    if (!t->valid) return;
    for (int i = 0; i < t->ng; i++) plane_put(fp, t->g[i].p);
    t->valid = 0;
}

static void input_cache_drop(fpool *fp)
{
    for (int e = 0; e < 2; e++) {
        for (int k = 0; fp->stem[e].valid && k < fp->stem[e].ng; k++) plane_put(fp, fp->stem[e].g[k].p);
        fp->stem[e].valid = 0;
    }
    for (int c = 0; c < INPUT_CACHE_MAX_C; c++) {
        plane_put(fp, fp->in_planes[c]);
        fp->in_planes[c] = NULL;
    }
    fp->in_data = NULL;
    fp->in_hash[0] = 0;
}

void eps_engine_fast_release_thread_cache(void)
{
    fpool *fp = &tl_pool;
    input_cache_drop(fp);
    while (fp->free_list) {
        plane *p = fp->free_list;
        fp->free_list = p->next;
        if (!p->in_slab) free(p->data);
        free(p);
    }
    while (fp->chunks) {
        arena_chunk *c = fp->chunks;
        fp->chunks = c->next;
        free(c);
    }
    while (fp->slabs) {
        slab *sb = fp->slabs;
        fp->slabs = sb->next;
        munmap(sb->map, sb->map_len);
        free(sb);
    }
    fp->bytes = 0;
}

size_t eps_engine_fast_thread_cache_bytes(void) { return tl_pool.bytes; }

/* ---- plane kernels (B images of H x W each) ---- */

/* 3x3, stride 1, pad 1 box sum of one H x W image a (zero padding), in the
 * order (left + centre) + right, then (up + centre) + down. The loops run
 * flat over the image (long, vectorisable) and then recompute the border
 * columns and rows exactly. mode 0: y = v; 1: y = cnt*v; 2: y += cnt*v;
 * 3: y = v / div (average pooling); 4: the same quotient without a
 * division: q = v * r with r = RN(1/div), then one exact remainder
 * e = fma(-q, div, v) and q' = fma(e, r, q), which is the correctly
 * rounded v / div (Markstein's theorem) for finite v away from the
 * subnormal range; checked bit for bit against v / div on all 2^32 floats
 * for every divisor of 3x3, 5x5 and 7x7 windows. Mode 4 returns non-zero
 * when some v is non-finite or 0 < |v| < 2^-100, and the caller redoes the
 * image in mode 3. vdivps costs several times more.
 * t: H*W scratch. */
static unsigned box3_img(const float *restrict a, float *restrict t, float *restrict y, int H, int W, float cnt,
                         int mode, const float *restrict div, const float *restrict rdiv)
{
    unsigned tiny = 0;
    size_t hw = (size_t)H * W;
    if (W == 1) {
        memcpy(t, a, sizeof(float) * hw);
    } else {
        for (size_t q = 1; q + 1 < hw; q++) t[q] = a[q - 1] + a[q] + a[q + 1];
        for (int r = 0; r < H; r++) {
            size_t q0 = (size_t)r * W, q1 = q0 + W - 1;
            t[q0] = a[q0] + a[q0 + 1];
            t[q1] = a[q1 - 1] + a[q1];
        }
    }
    if (H == 1) {
        for (size_t q = 0; q < hw; q++)
            y[q] = mode == 0 ? t[q] : mode == 1 ? cnt * t[q] : mode == 2 ? y[q] + cnt * t[q] : t[q] / div[q];
        return 0;
    }
    size_t lo = (size_t)W, hi = hw - W;
    if (mode == 0)
        for (size_t q = lo; q < hi; q++) y[q] = t[q - W] + t[q] + t[q + W];
    else if (mode == 3)
        for (size_t q = lo; q < hi; q++) y[q] = (t[q - W] + t[q] + t[q + W]) / div[q];
    else if (mode == 4)
        for (size_t q = lo; q < hi; q++) {
            float v = t[q - W] + t[q] + t[q + W];
            float q0 = v * rdiv[q];
            y[q] = fmaf(fmaf(-q0, div[q], v), rdiv[q], q0);
            tiny |= ((fabsf(v) < 0x1p-100f) & (v != 0.0f)) | !(fabsf(v) <= FLT_MAX);
        }
    else if (mode == 1)
        for (size_t q = lo; q < hi; q++) y[q] = cnt * (t[q - W] + t[q] + t[q + W]);
    else
        for (size_t q = lo; q < hi; q++) y[q] = y[q] + cnt * (t[q - W] + t[q] + t[q + W]);
    for (size_t q = 0; q < (size_t)W; q++) {
        float top = t[q] + t[q + W], bot = t[hi - W + q] + t[hi + q];
        if (mode == 0) y[q] = top, y[hi + q] = bot;
        else if (mode >= 3) y[q] = top / div[q], y[hi + q] = bot / div[hi + q];
        else if (mode == 1) y[q] = cnt * top, y[hi + q] = cnt * bot;
        else y[q] = y[q] + cnt * top, y[hi + q] = y[hi + q] + cnt * bot;
    }
    return tiny;
}

/* ---- 3x3 box sums with AVX-512 (the hot kernel of NB201-like cells) ----
 *
 * The same sums in the same order as box3_img, with the input transform of
 * load_row_impl fused in: each row is loaded once, aligned, and its left
 * and right neighbours come from valignd with zeros shifted in (x + 0 == x
 * and 0 + x == x, so the borders need no separate fix-up; only the sign of
 * an exact zero can differ, which no later operation can observe), and the
 * horizontal sums of three rows stay in registers for the vertical sum.
 * Rows of W = 16 * NV floats. */
#if defined(__AVX512F__)
#include <immintrin.h>
#define BOX3_AVX512 1

typedef struct xform { int affine, relu, scale; float al, be, w; } xform;


static inline __m512 shift_in_left(__m512 cur, __m512 prev) /* [prev[15], cur[0..14]] */
{
    return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(cur), _mm512_castps_si512(prev), 15));
}

static inline __m512 shift_in_right(__m512 next, __m512 cur) /* [cur[1..15], next[0]] */
{
    return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(next), _mm512_castps_si512(cur), 1));
}


/* The input transform as compile-time flags, so each kernel instance
 * carries only the operations it needs. */
enum { XF_AFF = 1, XF_RELU = 2, XF_SCALE = 4 };
typedef struct { __m512 al, be, w, w0; } xfv; /* box3_load's c2: w, w0 = the first term's alpha, beta */

AINL __m512 xf_v(__m512 v, int xf, const xfv *c)
{
    if (xf & XF_AFF) v = _mm512_add_ps(_mm512_mul_ps(v, c->al), c->be);
    if (xf & XF_RELU) v = _mm512_max_ps(_mm512_setzero_ps(), v); /* 0 > v ? 0 : v == (v < 0 ? 0 : v), -0 and NaN kept */
    if (xf & XF_SCALE) v = _mm512_mul_ps(c->w, v);
    return v;
}

static inline int xf_flags(const xform *f)
{
    return (f->affine ? XF_AFF : 0) | (f->relu ? XF_RELU : 0) | (f->scale ? XF_SCALE : 0);
}

static inline xfv xf_consts(const xform *f)
{
    return (xfv){_mm512_set1_ps(f->al), _mm512_set1_ps(f->be), _mm512_set1_ps(f->w), _mm512_setzero_ps()};
}

/* Mode 4's range check without mask registers: t = bits(|v|) - 1 as int32
 * (an exact zero gives -1); the quotient may be inexact only when some
 * unsigned t < bits(2^-100) - 1 (0 < |v| < 2^-100) or some signed
 * t > bits(FLT_MAX) - 1 (inf, NaN). */
typedef struct { __m512i lo, hi; } tinyacc;
#define TINY_LO 0x0D7FFFFF /* bits(0x1p-100f) - 1 */
#define TINY_HI 0x7F7FFFFE /* bits(FLT_MAX) - 1 */

/* Adds fused into a box sum (see fuse_phase): a second summand of its input
 * (the box sum is the only reader of that add), and the other terms of the
 * add that its output is the last term of (average pooling only). The
 * values are exactly those of the separate add jobs: in = a + lazy(a2),
 * out = (e0 + lazy(e1)) + q, or e0 + q. */
typedef struct b3io {
    const float *a2;      /* NULL: no fused input add */
    int aff0, aff2;       /* the input a, a2 is lazy: a * al0 + be0, a2 * al2 + be2 */
    float al0, be0, al2, be2;
    const float *e0, *e1; /* e0 NULL: no fused output add; e1 NULL: two terms */
    int affe0, affe;      /* e0, e1 is lazy */
    float ale0, bee0, ale, bee;
} b3io;
/* The kinds with a lazy first term (_AA, _ONE_A) apply the identity (x*1 +
 * 0) to a plain second term: the same value, except that -0 becomes +0,
 * which no later operation can observe. */
enum { IN2_NONE, IN2_PLAIN, IN2_AFF, IN2_AA };
enum { EPI_NONE, EPI_ONE, EPI_PLAIN, EPI_AFF, EPI_ONE_A, EPI_AA };

/* One output vector v (16 values at y + o) in the given mode. */
AINL void box3_out(__m512 v, float *restrict y, size_t o, int mode, __m512 c, const float *restrict div,
                   const float *restrict rdiv, tinyacc *t, int epi, const float *restrict e0,
                   const float *restrict e1, const xfv *ce, const xfv *ce0)
{
    float *yo = y + o;
    if (mode == 1) {
        _mm512_storeu_ps(yo, _mm512_mul_ps(c, v));
    } else if (mode == 2) {
        _mm512_storeu_ps(yo, _mm512_add_ps(_mm512_loadu_ps(yo), _mm512_mul_ps(c, v)));
    } else {
        __m512 r = _mm512_loadu_ps(rdiv + o), d = _mm512_loadu_ps(div + o); /* per position, not per image */
        __m512 q0 = _mm512_mul_ps(v, r);
        __m512 e = _mm512_fnmadd_ps(q0, d, v); /* v - q0*d, exact */
        __m512 q = _mm512_fmadd_ps(e, r, q0);
        if (epi == EPI_ONE) {
            q = _mm512_add_ps(_mm512_loadu_ps(e0 + o), q);
        } else if (epi == EPI_PLAIN) {
            q = _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(e0 + o), _mm512_loadu_ps(e1 + o)), q);
        } else if (epi == EPI_AFF) {
            __m512 l = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(e1 + o), ce->al), ce->be);
            q = _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(e0 + o), l), q);
        } else if (epi == EPI_ONE_A) {
            q = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(e0 + o), ce0->al), ce0->be), q);
        } else if (epi == EPI_AA) {
            __m512 l0 = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(e0 + o), ce0->al), ce0->be);
            __m512 l1 = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(e1 + o), ce->al), ce->be);
            q = _mm512_add_ps(_mm512_add_ps(l0, l1), q);
        }
        _mm512_storeu_ps(yo, q);
        __m512i b = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)),
                                     _mm512_set1_epi32(1));
        t->lo = _mm512_min_epu32(t->lo, b);
        t->hi = _mm512_max_epi32(t->hi, b);
    }
}

/* 16 input values at a + o, with the fused second summand. */
AINL __m512 box3_load(const float *restrict a, const float *restrict a2, size_t o, int in2, const xfv *c2)
{
    __m512 v = _mm512_loadu_ps(a + o);
    if (in2 == IN2_AA) v = _mm512_add_ps(_mm512_mul_ps(v, c2->w), c2->w0); /* the first term's affine */
    if (in2 == IN2_PLAIN) v = _mm512_add_ps(v, _mm512_loadu_ps(a2 + o));
    else if (in2 >= IN2_AFF) v = _mm512_add_ps(v, _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(a2 + o), c2->al), c2->be));
    return v;
}

AINL void box3_hrow(const float *restrict a, const float *restrict a2, size_t o, int in2, const xfv *c2, int xf,
                    const xfv *c, __m512 *h, int nv)
{
    __m512 v[4], z = _mm512_setzero_ps();
    for (int k = 0; k < nv; k++) v[k] = xf_v(box3_load(a, a2, o + 16 * k, in2, c2), xf, c);
    for (int k = 0; k < nv; k++) {
        __m512 l = shift_in_left(v[k], k > 0 ? v[k - 1] : z);
        __m512 r = shift_in_right(k + 1 < nv ? v[k + 1] : z, v[k]);
        h[k] = _mm512_add_ps(_mm512_add_ps(l, v[k]), r);
    }
}

typedef struct b3call {
    const float *a;
    float *y;
    int nimg, H;
    const xform *f;
    float cnt;
    const float *div, *rdiv;
    const b3io *io;
} b3call;

#define B3_SETUP                                                                                   \
    const xfv c = xf_consts(k->f);                                                                 \
    const b3io *io = k->io;                                                                        \
    const xfv c2 = {_mm512_set1_ps(io->al2), _mm512_set1_ps(io->be2), _mm512_set1_ps(io->al0), _mm512_set1_ps(io->be0)}; \
    const xfv ce = {_mm512_set1_ps(io->ale), _mm512_set1_ps(io->bee), _mm512_setzero_ps(), _mm512_setzero_ps()}; \
    const xfv ce0 = {_mm512_set1_ps(io->ale0), _mm512_set1_ps(io->bee0), _mm512_setzero_ps(), _mm512_setzero_ps()}; \
    const __m512 cv = _mm512_set1_ps(k->cnt), z = _mm512_setzero_ps();                             \
    tinyacc t = {_mm512_set1_epi32(-1), _mm512_set1_epi32(-1)};                                    \
    const int H = k->H;                                                                            \
    (void)z

/* nimg consecutive H x (16*nv) images. up/mid/down are named per row (no
 * rotating pointers), so they stay in registers. */
AINL unsigned box3_rows(const b3call *k, int nv, int xf, int mode, int in2, int epi)
{
    B3_SETUP;
    const int W = 16 * nv;
    const size_t hw = (size_t)H * W;
    for (int b = 0; b < k->nimg; b++) {
        const float *ai = k->a + b * hw, *a2 = in2 ? io->a2 + b * hw : NULL;
        const float *e0 = epi ? io->e0 + b * hw : NULL;
        const float *e1 = epi == EPI_PLAIN || epi == EPI_AFF || epi == EPI_AA ? io->e1 + b * hw : NULL;
        float *yi = k->y + b * hw;
        __m512 up[4], mid[4], dn[4];
        for (int q = 0; q < nv; q++) up[q] = z;
        box3_hrow(ai, a2, 0, in2, &c2, xf, &c, mid, nv);
        for (int r = 0; r < H; r++) {
            if (r + 1 < H) box3_hrow(ai, a2, (size_t)(r + 1) * W, in2, &c2, xf, &c, dn, nv);
            else for (int q = 0; q < nv; q++) dn[q] = z;
            size_t o = (size_t)r * W;
            for (int q = 0; q < nv; q++)
                box3_out(_mm512_add_ps(_mm512_add_ps(up[q], mid[q]), dn[q]), yi, o + 16 * q, mode, cv, k->div, k->rdiv,
                         &t, epi, e0, e1, &ce, &ce0);
            for (int q = 0; q < nv; q++) up[q] = mid[q], mid[q] = dn[q];
        }
    }
    if (mode != 4) return 0;
    return (unsigned)_mm512_reduce_min_epu32(t.lo) < TINY_LO || _mm512_reduce_max_epi32(t.hi) > TINY_HI;
}

/* Rows of 8 floats (NB201's last stage), two rows per vector: the row
 * neighbours come from valignd with a zeroing mask at each row's ends, the
 * rows above and below from shifting by 8 across adjacent vectors. H even. */
AINL __m512 box3_hpair8(const float *restrict a, const float *restrict a2, size_t o, int in2, const xfv *c2, int xf,
                        const xfv *c)
{
    __m512 v = xf_v(box3_load(a, a2, o, in2, c2), xf, c);
    __m512i vi = _mm512_castps_si512(v), zi = _mm512_setzero_si512();
    __m512 l = _mm512_castsi512_ps(_mm512_maskz_alignr_epi32(0xFEFE, vi, zi, 15)); /* [0, v0..v6, 0, v8..v14] */
    __m512 r = _mm512_castsi512_ps(_mm512_maskz_alignr_epi32(0x7F7F, zi, vi, 1));  /* [v1..v7, 0, v9..v15, 0] */
    return _mm512_add_ps(_mm512_add_ps(l, v), r);
}

static inline __m512 shift8(__m512 hi, __m512 lo) /* [lo[8..15], hi[0..7]] */
{
    return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(hi), _mm512_castps_si512(lo), 8));
}

AINL unsigned box3_rows8(const b3call *k, int xf, int mode, int in2, int epi)
{
    B3_SETUP;
    const size_t hw = (size_t)H * 8;
    const int np = H / 2;
    for (int b = 0; b < k->nimg; b++) {
        const float *ai = k->a + b * hw, *a2 = in2 ? io->a2 + b * hw : NULL;
        const float *e0 = epi ? io->e0 + b * hw : NULL;
        const float *e1 = epi == EPI_PLAIN || epi == EPI_AFF || epi == EPI_AA ? io->e1 + b * hw : NULL;
        float *yi = k->y + b * hw;
        __m512 prev = z, cur = box3_hpair8(ai, a2, 0, in2, &c2, xf, &c);
        for (int j = 0; j < np; j++) {
            __m512 next = j + 1 < np ? box3_hpair8(ai, a2, (size_t)16 * (j + 1), in2, &c2, xf, &c) : z;
            __m512 v = _mm512_add_ps(_mm512_add_ps(shift8(cur, prev), cur), shift8(next, cur));
            box3_out(v, yi, (size_t)16 * j, mode, cv, k->div, k->rdiv, &t, epi, e0, e1, &ce, &ce0);
            prev = cur;
            cur = next;
        }
    }
    if (mode != 4) return 0;
    return (unsigned)_mm512_reduce_min_epu32(t.lo) < TINY_LO || _mm512_reduce_max_epi32(t.hi) > TINY_HI;
}

/* One instance per (width, mode, transform, fused adds). */
#define BOX3_K(NV, MODE, XF, IN2, EPI) \
    return (int)((NV) ? box3_rows(k, (NV), (XF), (MODE), (IN2), (EPI)) : box3_rows8(k, (XF), (MODE), (IN2), (EPI)))
#define BOX3_XF4(NV, MODE, S)                                                                      \
    switch (xf & 3) {                                                                              \
    case 0: BOX3_K(NV, MODE, (S), 0, 0);                                                           \
    case 1: BOX3_K(NV, MODE, (S) | XF_AFF, 0, 0);                                                  \
    case 2: BOX3_K(NV, MODE, (S) | XF_RELU, 0, 0);                                                 \
    default: BOX3_K(NV, MODE, (S) | XF_AFF | XF_RELU, 0, 0);                                       \
    }
#define BOX3_EPI(NV, IN2)                                                                          \
    switch (epi) {                                                                                 \
    case EPI_NONE: BOX3_K(NV, 4, 0, IN2, EPI_NONE);                                                \
    case EPI_ONE: BOX3_K(NV, 4, 0, IN2, EPI_ONE);                                                  \
    case EPI_PLAIN: BOX3_K(NV, 4, 0, IN2, EPI_PLAIN);                                              \
    case EPI_AFF: BOX3_K(NV, 4, 0, IN2, EPI_AFF);                                                  \
    case EPI_ONE_A: BOX3_K(NV, 4, 0, IN2, EPI_ONE_A);                                              \
    default: BOX3_K(NV, 4, 0, IN2, EPI_AA);                                                        \
    }
#define BOX3_WIDTH(NV)                                                                             \
    if (in2 || epi) {                                                                              \
        if (mode == 4 && xf == 0) {                                                                \
            if (in2 == IN2_NONE) BOX3_EPI(NV, IN2_NONE)                                            \
            if (in2 == IN2_PLAIN) BOX3_EPI(NV, IN2_PLAIN)                                          \
            if (in2 == IN2_AFF) BOX3_EPI(NV, IN2_AFF)                                              \
            BOX3_EPI(NV, IN2_AA)                                                                   \
        }                                                                                          \
        if (mode == 1 && xf == (XF_SCALE | XF_RELU) && !epi) {                                     \
            if (in2 == IN2_PLAIN) BOX3_K(NV, 1, XF_SCALE | XF_RELU, IN2_PLAIN, 0);                 \
            if (in2 == IN2_AFF) BOX3_K(NV, 1, XF_SCALE | XF_RELU, IN2_AFF, 0);                     \
            BOX3_K(NV, 1, XF_SCALE | XF_RELU, IN2_AA, 0);                                          \
        }                                                                                          \
        return -1;                                                                                 \
    }                                                                                              \
    if (mode == 1 && (xf & XF_SCALE)) BOX3_XF4(NV, 1, XF_SCALE)                                    \
    if (mode == 2 && (xf & XF_SCALE)) BOX3_XF4(NV, 2, XF_SCALE)                                    \
    if (mode == 4 && !(xf & XF_SCALE)) BOX3_XF4(NV, 4, 0)                                          \
    return -1;

/* Which fused-add kernels exist: see BOX3_WIDTH. */
static int box3_fusable(int H, int W, int mode, int xf, int epi)
{
    if (!(W == 16 || W == 32 || W == 64 || (W == 8 && !(H & 1)))) return 0;
    return (mode == 4 && xf == 0) || (mode == 1 && xf == (XF_SCALE | XF_RELU) && !epi);
}

/* Stride-2 window sums of rows of 32 or 16 floats (the reductions between
 * NB201's stages): 3 taps with padding 1, or 2 taps without, in both
 * directions. Even and odd columns come from two permutes; the same sums in
 * the same order as window_sum, written to ws (H/2 rows of W/2). Returns -1
 * when the shape is not one of these. */
static int wsum_s2_avx512(const float *restrict a, float *restrict ws, int H, int W, int OH, int OW, int k, int s,
                          int p, int d, const xform *f)
{
    if (!((W == 32 && OW == 16) || (W == 16 && OW == 8)) || s != 2 || d != 1 || (H & 1) || OH != H / 2 ||
        !((k == 3 && p == 1) || (k == 2 && p == 0)))
        return -1;
    const int xf = xf_flags(f);
    const xfv c = xf_consts(f);
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 z = _mm512_setzero_ps();
    if (W == 16) { /* rows 2o and 2o+1 in one permute: lanes 0-7 and 8-15 */
        __m256 prev8 = _mm256_setzero_ps(); /* row 2o-1 */
        for (int o = 0; o < OH; o++) {
            const float *row = a + (size_t)(2 * o) * 16;
            __m512 v0 = xf_v(_mm512_loadu_ps(row), xf, &c), v1 = xf_v(_mm512_loadu_ps(row + 16), xf, &c);
            __m512 e = _mm512_permutex2var_ps(v0, ie, v1), od = _mm512_permutex2var_ps(v0, io, v1), t;
            if (k == 3) { /* [0, a1, a3, .., a13] per row */
                __m512 op = _mm512_castsi512_ps(
                    _mm512_maskz_alignr_epi32(0xFEFE, _mm512_castps_si512(od), _mm512_setzero_si512(), 15));
                t = _mm512_add_ps(_mm512_add_ps(op, e), od);
            } else {
                t = _mm512_add_ps(e, od);
            }
            __m256 t0 = _mm512_castps512_ps256(t), t1 = _mm512_extractf32x8_ps(t, 1);
            __m256 y = k == 3 ? _mm256_add_ps(_mm256_add_ps(prev8, t0), t1) : _mm256_add_ps(t0, t1);
            _mm256_storeu_ps(ws + (size_t)o * 8, y);
            prev8 = t1;
        }
        return 0;
    }
    __m512 prev = z; /* row 2o-1 */
    for (int o = 0; o < OH; o++) {
        __m512 t[2];
        for (int h = 0; h < 2; h++) {
            const float *row = a + (size_t)(2 * o + h) * 32;
            __m512 v0 = xf_v(_mm512_loadu_ps(row), xf, &c), v1 = xf_v(_mm512_loadu_ps(row + 16), xf, &c);
            __m512 e = _mm512_permutex2var_ps(v0, ie, v1), od = _mm512_permutex2var_ps(v0, io, v1);
            if (k == 3) {
                __m512 op = shift_in_left(od, z); /* [0, a1, a3, ...] */
                t[h] = _mm512_add_ps(_mm512_add_ps(op, e), od);
            } else {
                t[h] = _mm512_add_ps(e, od);
            }
        }
        __m512 y = k == 3 ? _mm512_add_ps(_mm512_add_ps(prev, t[0]), t[1]) : _mm512_add_ps(t[0], t[1]);
        _mm512_storeu_ps(ws + (size_t)o * 16, y);
        prev = t[1];
    }
    return 0;
}

/* nimg consecutive H x W images: modes 1 and 2 (a convolution: the
 * transform scales by w) and 4 (average pooling, see box3_img), with fused
 * adds when io is not NULL (box3_fusable). Returns -1 for other shapes and
 * modes (use box3_img), 1 when mode 4 met a value it cannot divide exactly
 * by multiplication (redo those images in mode 3). */
static int box3_avx512(const float *restrict a, float *restrict y, int nimg, int H, int W, const xform *f, int mode,
                       float cnt, const float *restrict div, const float *restrict rdiv, const b3io *io)
{
    int xf = xf_flags(f);
    static const b3io none = {0};
    const b3call call = {a, y, nimg, H, f, cnt, div, rdiv, io ? io : &none}, *k = &call;
    int in2 = !io || !io->a2 ? IN2_NONE : io->aff0 ? IN2_AA : io->aff2 ? IN2_AFF : IN2_PLAIN;
    int epi = !io || !io->e0 ? EPI_NONE
              : io->affe0    ? (io->e1 ? EPI_AA : EPI_ONE_A)
              : !io->e1      ? EPI_ONE
              : io->affe     ? EPI_AFF
                             : EPI_PLAIN;
    switch (W) {
    case 8:
        if (H & 1) return -1;
        BOX3_WIDTH(0)
    case 16: BOX3_WIDTH(1)
    case 32: BOX3_WIDTH(2)
    case 64: BOX3_WIDTH(4)
    default: return -1;
    }
}
#endif

/* General window sum: kernel k, stride s, pad p, dilation d (zero padding),
 * summing the in-bounds taps in order. The first in-bounds tap and the tap
 * count of each output column/row are computed once per call, so the inner
 * loops have no bounds checks. tmp: H*OW scratch. */
/* Where each output column/row's in-bounds taps start and how many there
 * are: computed once per job, not per image. */
typedef struct wtab { int *cx0, *cxn, *cy0, *cyn; } wtab;

static void wtab_fill(int *cx0, int *cxn, int *cy0, int *cyn, int H, int W, int OH, int OW, int k, int s, int p, int d)
{
    for (int o = 0; o < OW; o++) {
        cx0[o] = -1, cxn[o] = 0;
        for (int kk = 0; kk < k; kk++) {
            int i = o * s - p + kk * d;
            if (i < 0 || i >= W) continue;
            if (cx0[o] < 0) cx0[o] = i;
            cxn[o]++;
        }
    }
    for (int o = 0; o < OH; o++) {
        cy0[o] = -1, cyn[o] = 0;
        for (int kk = 0; kk < k; kk++) {
            int i = o * s - p + kk * d;
            if (i < 0 || i >= H) continue;
            if (cy0[o] < 0) cy0[o] = i;
            cyn[o]++;
        }
    }
}

static wtab *wtab_make(fpool *fp, int H, int W, int OH, int OW, int k, int s, int p, int d)
{
    wtab *t = arena_alloc(fp, sizeof *t);
    int *v = arena_alloc(fp, sizeof(int) * 2 * ((size_t)OW + (size_t)OH));
    if (!t || !v) return NULL;
    t->cx0 = v, t->cxn = v + OW, t->cy0 = v + 2 * OW, t->cyn = v + 2 * OW + OH;
    wtab_fill(t->cx0, t->cxn, t->cy0, t->cyn, H, W, OH, OW, k, s, p, d);
    return t;
}

/* wt: the job's tables, or NULL to compute them here. */
static void window_sum(const float *restrict x, float *restrict y, float *restrict tmp, int H, int W, int OH, int OW,
                       int k, int s, int p, int d, const wtab *wt)
{
    int vx0[wt ? 1 : OW], vxn[wt ? 1 : OW], vy0[wt ? 1 : OH], vyn[wt ? 1 : OH];
    const int *cx0 = vx0, *cxn = vxn, *cy0 = vy0, *cyn = vyn;
    if (wt) cx0 = wt->cx0, cxn = wt->cxn, cy0 = wt->cy0, cyn = wt->cyn;
    else wtab_fill(vx0, vxn, vy0, vyn, H, W, OH, OW, k, s, p, d);
    /* columns whose whole window is in bounds; stride-2 windows of 2 or 3
     * taps (reduction blocks) get loops the compiler vectorises */
    int olo = 0, ohi = OW;
    while (olo < OW && olo * s - p < 0) olo++;
    while (ohi > olo && (ohi - 1) * s - p + (k - 1) * d > W - 1) ohi--;
    int fast2 = s == 2 && d == 1 && (k == 2 || k == 3);
    for (int r = 0; r < H; r++) {
        const float *a = x + (size_t)r * W;
        float *t = tmp + (size_t)r * OW;
        for (int o = 0; o < OW; o++) {
            if (fast2 && o == olo && ohi > olo) {
                const float *restrict q = a + 2 * olo - p;
                int m = ohi - olo;
                if (k == 3)
                    for (int c = 0; c < m; c++) t[olo + c] = q[2 * c] + q[2 * c + 1] + q[2 * c + 2];
                else
                    for (int c = 0; c < m; c++) t[olo + c] = q[2 * c] + q[2 * c + 1];
                o = ohi - 1;
                continue;
            }
            if (!cxn[o]) { t[o] = 0.0f; continue; }
            const float *q = a + cx0[o];
            float acc = q[0];
            for (int j = 1; j < cxn[o]; j++) acc += q[j * d];
            t[o] = acc;
        }
    }
    for (int o = 0; o < OH; o++) {
        float *yo = y + (size_t)o * OW;
        if (!cyn[o]) {
            for (int c = 0; c < OW; c++) yo[c] = 0.0f;
            continue;
        }
        const float *t0 = tmp + (size_t)cy0[o] * OW;
        for (int c = 0; c < OW; c++) yo[c] = t0[c];
        for (int j = 1; j < cyn[o]; j++) {
            const float *tj = t0 + (size_t)j * d * OW;
            for (int c = 0; c < OW; c++) yo[c] += tj[c];
        }
    }
}

static int is_box3_same(int k, int s, int p, int d) { return k == 3 && s == 1 && p == 1 && d == 1; }

/* Number of in-bounds taps of a pooling window (for count_include_pad = 0). */
static int window_count(int o, int s, int p, int k, int n)
{
    int lo = o * s - p, hi = lo + k - 1;
    if (lo < 0) lo = 0;
    if (hi > n - 1) hi = n - 1;
    return hi >= lo ? hi - lo + 1 : 0;
}

typedef struct run {
    fpool *fp;
    const eps_graph *g;
    int n;
    float w;
    float *in_buf, *scaled, *tmp, *ws, *zeros; /* one image each */
    int seq;              /* phases planned so far */
} run;

/* Image b of plane p; a chunk buffer (virt) holds images b0.. of the
 * current chunk only. */
static inline float *img(const plane *p, int b, int b0)
{
    return p->data + (size_t)(p->virt ? b - b0 : b) * p->istride;
}

/* Reads n values of group g (affine and ReLU applied) into dst, times w
 * when scale is set (each value rounded as the reference rounds w*x). */
static inline void load_row_impl(float *restrict dst, const float *restrict src, size_t n, const grp *g, int relu,
                                 int scale, float w)
{
    if (g->affine) {
        float al = g->alpha, be = g->beta;
        if (relu)
            for (size_t c = 0; c < n; c++) {
                float v = src[c] * al + be;
                v = v < 0.0f ? 0.0f : v;
                dst[c] = scale ? w * v : v;
            }
        else
            for (size_t c = 0; c < n; c++) dst[c] = scale ? w * (src[c] * al + be) : src[c] * al + be;
    } else if (relu) {
        for (size_t c = 0; c < n; c++) {
            float v = src[c] < 0.0f ? 0.0f : src[c];
            dst[c] = scale ? w * v : v;
        }
    } else if (scale) {
        for (size_t c = 0; c < n; c++) dst[c] = w * src[c];
    } else {
        memcpy(dst, src, sizeof(float) * n);
    }
}

static void load_row(float *restrict dst, const float *restrict src, size_t n, const grp *g, int relu)
{
    load_row_impl(dst, src, n, g, relu, 0, 0.0f);
}

static void load_scaled(float *restrict dst, const float *restrict src, size_t n, const grp *g, int relu, float w)
{
    load_row_impl(dst, src, n, g, relu, 1, w);
}

/* 3x3 / stride 1 / pad 1 window sum of w*x for one image, times cnt,
 * written to (acc = 0) or added to (acc = 1) y. The scaled row lives in
 * L1; w is applied to each value before summing, as the reference rounds
 * each product w*x. */
static void conv3_image(const float *restrict x, float *restrict y, float *restrict tmp, float *restrict scaled,
                        int H, int W, float w, float cnt, int acc, int relu, const grp *g)
{
    load_scaled(scaled, x, (size_t)H * W, g, relu, w);
    box3_img(scaled, tmp, y, H, W, cnt, acc ? 2 : 1, NULL, NULL);
}

/* 1x1 / stride 1 convolution of one image: o (+)= cnt * (w * v) with v the
 * loaded value (affine, ReLU), in one pass; the same roundings as loading
 * a scaled row first. */
static void conv1_image(const float *restrict x, float *restrict o, size_t n, const grp *g, int relu, float w,
                        float cnt, int acc)
{
    int affine = g->affine;
    float al = g->alpha, be = g->beta;
    for (size_t q = 0; q < n; q++) {
        float v = x[q];
        if (affine) v = v * al + be;
        if (relu) v = v < 0.0f ? 0.0f : v;
        float t = cnt * (w * v);
        o[q] = acc ? o[q] + t : t;
    }
}

/* Collects the input segments covering channels [c0, c0+len). */
static int segments_of(const ftensor *x, int c0, int len, grp *seg)
{
    int ns = 0, pos = 0;
    for (int i = 0; i < x->ng && len > 0; i++) {
        int a = pos, b = pos + x->g[i].count;
        pos = b;
        if (b <= c0) continue;
        int lo = a > c0 ? a : c0, hi = b < c0 + len ? b : c0 + len;
        if (hi > lo) {
            seg[ns] = x->g[i];
            seg[ns++].count = hi - lo;
        }
        if (b >= c0 + len) break;
    }
    return ns;
}

static int same_segments(int na, const grp *a, int nb, const grp *b)
{
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a[i].count != b[i].count || !same_grp(&a[i], &b[i])) return 0;
    return 1;
}


/* Statistics accumulate in double with 32 independent partial sums: a fixed
 * order we choose (no fast-math reassociation), wide enough to vectorise
 * (stats_image, stats_finish, plane_stats). */
#define NACC 32
static double fold(double *acc)
{
    for (int w = NACC / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    return acc[0];
}

/* Largest |x| over a whole-batch plane (NaN-unaware, as the statistics track it). */
static float plane_maxabs(const plane *p)
{
    float m = 0.0f;
    for (size_t i = 0; i < p->size; i++) {
        float a = fabsf(p->data[i]);
        m = a > m ? a : m;
    }
    return m;
}

/* Whether every x * alpha of the plane rounds to zero. max|x| >= the root
 * mean square sqrt(ssc/n + mean^2), so when that times |alpha| reaches the
 * smallest subnormal the answer is no; only otherwise (an all-zero plane,
 * or the tiny initialisation at the edge of underflow) is max|x| read off
 * the plane. Keeps the running max out of the statistics loop. */
static int bn_underflows(plane *p, float alpha)
{
    if (!p->maxabs_known) {
        double n = (double)p->nvals, mean = p->sum / n;
        double rms = sqrt(p->ssc / n + mean * mean);
        if (rms * fabs((double)alpha) * 0.999 >= 0x1p-149) return 0;
        if (p->virt) return 0; /* not reached: chunk buffers track their max */
        p->maxabs = plane_maxabs(p);
        p->maxabs_known = 1;
    }
    return p->maxabs * fabsf(alpha) == 0.0f;
}

/* BatchNorm with batch statistics, left lazy: the output groups share the
 * input planes with (alpha, beta), and readers apply them. When
 * fl(max|x| * |alpha|) is 0 every output is an exact zero (rounding is
 * monotone and |beta| <= that bound), so the group becomes a zero plane:
 * this is where the tiny first initialisation underflows. */
static int op_bn(run *R, const ftensor *x, ftensor *y)
{
    y->ng = x->ng;
    y->g = arena_alloc(R->fp, sizeof(grp) * (size_t)x->ng);
    if (!y->g) return EPS_ENOMEM;
    for (int i = 0; i < x->ng; i++) {
        y->g[i] = (grp){.count = x->g[i].count};
        plane *xp = x->g[i].p;
        if (!xp) continue; /* BN of zeros: mean 0, var 0, beta = -0*alpha -> zeros */
        int dup = -1;
        for (int j = 0; j < i && dup < 0; j++)
            if (x->g[j].p == xp) dup = j;
        if (dup >= 0) {
            y->g[i] = y->g[dup];
            y->g[i].count = x->g[i].count;
            if (y->g[i].p) y->g[i].p->refs++;
            continue;
        }
        if (!xp->has_stats) plane_stats(xp);
        float alpha, beta;
        eps_bn_coeffs(xp->sum, xp->ssc, xp->nvals, R->w, &alpha, &beta);
        if (bn_underflows(xp, alpha)) continue;
        y->g[i].p = xp;
        y->g[i].alpha = alpha;
        y->g[i].beta = beta;
        y->g[i].affine = 1;
        xp->refs++;
    }
    return 0;
}

static int has_nonfinite(const ftensor *x)
{
    for (int i = 0; i < x->ng; i++) {
        if (!x->g[i].p) continue;
        const float *d = x->g[i].p->data;
        unsigned bad = 0;
        for (size_t k = 0; k < x->g[i].p->size; k++) bad |= !(fabsf(d[k]) <= FLT_MAX); /* vectorises */
        if (bad) return 1;
    }
    return 0;
}

/* y shares x's planes for channels [0, c). */
static int op_share_prefix(run *R, const ftensor *x, int c, ftensor *y)
{
    y->g = arena_alloc(R->fp, sizeof(grp) * (size_t)x->ng);
    if (!y->g) return EPS_ENOMEM;
    y->ng = segments_of(x, 0, c, y->g);
    for (int i = 0; i < y->ng; i++)
        if (y->g[i].p) y->g[i].p->refs++;
    return 0;
}

static int op_concat(run *R, const eps_node *nd, ftensor *const *xs, ftensor *y)
{
    int total = 0;
    for (int k = 0; k < nd->n_in; k++) total += xs[k]->ng;
    y->g = arena_alloc(R->fp, sizeof(grp) * (size_t)total);
    if (!y->g) return EPS_ENOMEM;
    y->ng = 0;
    for (int k = 0; k < nd->n_in; k++)
        for (int i = 0; i < xs[k]->ng; i++) {
            y->g[y->ng] = xs[k]->g[i];
            if (y->g[y->ng].p) y->g[y->ng].p->refs++;
            y->ng++;
        }
    return 0;
}

/* C x H x W -> (C*H*W) x 1 x 1: each spatial position becomes its own feature. */
static int op_flatten(run *R, const eps_node *xn, const ftensor *x, ftensor *y)
{
    int hw = xn->h * xn->w;
    if (hw == 1) return op_share_prefix(R, x, xn->c, y);
    size_t total = 0;
    for (int i = 0; i < x->ng; i++) total += (size_t)x->g[i].count * hw;
    y->g = arena_alloc(R->fp, sizeof(grp) * total);
    plane **pos = arena_alloc(R->fp, sizeof(plane *) * (size_t)hw);
    if (!y->g || !pos) return EPS_ENOMEM;
    y->ng = 0;
    for (int i = 0; i < x->ng; i++) {
        for (int q = 0; q < hw; q++) {
            pos[q] = NULL;
            if (!x->g[i].p) continue;
            pos[q] = plane_get(R->fp, (size_t)R->n, 1, 0);
            if (!pos[q]) return EPS_ENOMEM;
            for (int b = 0; b < R->n; b++) pos[q]->data[b] = x->g[i].p->data[(size_t)b * hw + q];
        }
        for (int c = 0; c < x->g[i].count; c++)
            for (int q = 0; q < hw; q++) {
                y->g[y->ng++] = (grp){.count = 1, .p = pos[q]};
                if (pos[q]) pos[q]->refs++;
            }
        for (int q = 0; q < hw; q++) plane_put(R->fp, pos[q]);
    }
    return 0;
}

/* Expands groups to dense NCHW (n x c x h x w). */
static void expand(const ftensor *t, int n, int c, int h, int w, float *out)
{
    size_t hw = (size_t)h * w;
    for (int b = 0; b < n; b++) {
        int ch = 0;
        for (int i = 0; i < t->ng; i++)
            for (int k = 0; k < t->g[i].count; k++, ch++) {
                float *dst = out + ((size_t)b * c + ch) * hw;
                if (t->g[i].p) load_row(dst, t->g[i].p->data + (size_t)b * hw, hw, &t->g[i], t->relu);
                else memset(dst, 0, sizeof(float) * hw);
            }
    }
}

/* ---- graph-level merging of identical nodes ---- */

static int same_node(const eps_node *a, const eps_node *b, const int *rep)
{
    if (a->op != b->op || a->n_in != b->n_in || a->out_c != b->out_c || a->kernel != b->kernel ||
        a->stride != b->stride || a->pad != b->pad || a->dilation != b->dilation || a->groups != b->groups ||
        a->count_include_pad != b->count_include_pad)
        return 0;
    for (int k = 0; k < a->n_in; k++)
        if (rep[a->in[k]] != rep[b->in[k]]) return 0;
    return 1;
}

/* rep[i]: the node whose tensor node i shares (itself if computed). */
static void merge_nodes(const eps_graph *g, int *rep)
{
    rep[0] = 0;
    for (int i = 1; i < g->n; i++) {
        const eps_node *nd = &g->nodes[i];
        rep[i] = i;
        const eps_node *xn = &g->nodes[nd->in[0]];
        if (nd->op == EPS_OP_IDENTITY || (nd->op == EPS_OP_ADD && nd->n_in == 1) ||
            (nd->op == EPS_OP_CONCAT && nd->n_in == 1) || (nd->op == EPS_OP_SLICE && nd->out_c == xn->c) ||
            (nd->op == EPS_OP_FLATTEN && xn->h == 1 && xn->w == 1)) {
            rep[i] = rep[nd->in[0]];
            continue;
        }
        for (int j = 1; j < i; j++)
            if (rep[j] == j && same_node(nd, &g->nodes[j], rep)) {
                rep[i] = j;
                break;
            }
    }
}

/* Views: nodes whose single plane equals an earlier node's although their
 * channel counts differ. With one constant weight the plane of a
 * convolution with one group does not depend on its output channel count
 * (each output channel is the same window sum over all input channels),
 * and BatchNorm and ReLU act on each plane alone; so NB101's projections
 * of one cell input to each vertex's width (and their BatchNorm and ReLU)
 * are one plane, computed once and shared with the count of the view.
 * view[i]: that earlier node (never a view itself), or -1. */
static int view_op(const eps_node *nd)
{
    return (nd->op == EPS_OP_CONV2D && nd->groups == 1) || nd->op == EPS_OP_BATCHNORM || nd->op == EPS_OP_RELU;
}

static void find_views(const eps_graph *g, const int *rep, int *view)
{
    view[0] = -1;
    for (int i = 1; i < g->n; i++) {
        const eps_node *a = &g->nodes[i];
        view[i] = -1;
        if (rep[i] != i || !view_op(a)) continue;
        int x = rep[a->in[0]];
        for (int j = 1; j < i && view[i] < 0; j++) {
            const eps_node *b = &g->nodes[j];
            if (rep[j] != j || view[j] >= 0 || b->op != a->op || b->n_in != 1) continue;
            int y = rep[b->in[0]];
            if (a->op == EPS_OP_CONV2D) {
                /* the input itself, channel counts included, must be the same */
                if (x != y || !view_op(b) || a->kernel != b->kernel || a->stride != b->stride || a->pad != b->pad ||
                    a->dilation != b->dilation)
                    continue;
            } else if ((view[x] >= 0 ? view[x] : x) != (view[y] >= 0 ? view[y] : y)) {
                continue;
            }
            view[i] = j;
        }
    }
}

/* Node nd's tensor as a view of src's one group (see find_views); 0 when
 * src is not one group (then nd is computed as usual). */
static int make_view(fpool *fp, const eps_node *nd, const ftensor *src, ftensor *y)
{
    if (!src->valid || src->ng != 1) return 0;
    y->g = arena_alloc(fp, sizeof(grp));
    if (!y->g) return 0;
    y->ng = 1;
    y->g[0] = src->g[0];
    y->g[0].count = nd->c;
    y->relu = src->relu;
    if (y->g[0].p) y->g[0].p->refs++;
    return 1;
}

static int same_conv(const eps_node *a, const eps_node *b)
{
    return a->out_c == b->out_c && a->kernel == b->kernel && a->stride == b->stride && a->pad == b->pad &&
           a->dilation == b->dilation && a->groups == b->groups;
}

/* A convolution of the (cached) input batch seen before with the same w:
 * share its output. Returns 1 on a hit. */
static int stem_lookup(fpool *fp, const eps_node *nd, float w, ftensor *y)
{
    for (int e = 0; e < 2; e++) {
        if (!fp->stem[e].valid || fp->stem[e].w != w || !same_conv(&fp->stem[e].node, nd)) continue;
        y->g = arena_alloc(fp, sizeof(grp) * (size_t)fp->stem[e].ng);
        if (!y->g) return 0;
        y->ng = fp->stem[e].ng;
        for (int k = 0; k < y->ng; k++) {
            y->g[k] = fp->stem[e].g[k];
            if (y->g[k].p) y->g[k].p->refs++;
        }
        return 1;
    }
    return 0;
}

static void stem_store(fpool *fp, const eps_node *nd, float w, const ftensor *y)
{
    if (y->ng > 4) return;
    int e = fp->stem_next;
    fp->stem_next ^= 1;
    for (int k = 0; fp->stem[e].valid && k < fp->stem[e].ng; k++) plane_put(fp, fp->stem[e].g[k].p);
    fp->stem[e].valid = 1;
    fp->stem[e].node = *nd;
    fp->stem[e].w = w;
    fp->stem[e].ng = y->ng;
    for (int k = 0; k < y->ng; k++) {
        fp->stem[e].g[k] = y->g[k];
        if (y->g[k].p) y->g[k].p->refs++;
    }
}

/* ---- the phase-fused executor ----
 *
 * BatchNorm needs statistics over the whole batch, so it splits the graph
 * into phases: a node's phase is the largest phase of its inputs, plus one
 * for ops that need their whole input first (BatchNorm, flatten, zero).
 * Everything else in a phase runs image by image (in chunks of a few
 * images): each node's output for the chunk is computed while its inputs
 * are still in L1/L2, and only tensors read by a later phase (or the
 * output, or a BatchNorm) get whole-batch planes; the rest live in
 * chunk-sized buffers. Each value is computed with exactly the same float
 * operations as node by node, so results do not depend on the chunking;
 * statistics accumulate per chunk in the same order as plane_stats. Before
 * a phase runs, fuse_phase folds adds into the 3x3 box sums next to them
 * (same operations, fewer passes over memory). */

enum { J_CONV, J_MAP, J_ADD, J_LINEAR };

typedef struct statacc {
    double K, a1[NACC], a2[NACC];
    float mx[NACC];
    int track_max; /* the plane is a chunk buffer: max|x| cannot be read later */
} statacc;

typedef struct job {
    int kind, map_op, relu;
    const eps_node *nd, *xn;
    plane *out;
    int nin;
    grp *in;         /* conv: non-zero segments; add: non-zero terms in order; map: one input (p may be NULL) */
    float *div;      /* avg-pool divisors, one per output position */
    float *rdiv;     /* their reciprocals, RN(1/div) */
    const struct wtab *wt; /* window tables for window_sum, or NULL */
    statacc *st;     /* BatchNorm statistics accumulated per chunk, or NULL */
    int stats_whole; /* compute plane_stats after the phase instead */
    int node, gi;    /* the output group this job fills */
    int seq;         /* the phase that last ran it */
    int cost;        /* jobs to re-run to refill out: this and its virtual inputs' */
    int owns;        /* holds a reference on each input plane */
    int skip;        /* fused into another job (fuse_phase): does not run */
    int fused_in;    /* reads fin[0] + lazy(fin[1]) (an add it alone reads) instead of in[0]'s plane */
    grp fin[2];
    int nfout;       /* writes (fout[0] + lazy(fout[1])) + value, or fout[0] + value: the add it was the last term of */
    grp fout[2];
    plane *out_orig; /* with nfout: its own output, which a re-run (recompute) fills */
    struct job *next;
} job;

static void job_drop_inputs(fpool *fp, job *j)
{
    if (!j->owns) return;
    j->owns = 0;
    for (int k = 0; k < j->nin; k++) plane_put(fp, j->in[k].p);
}

AINL void stats_loop(statacc *s, const float *restrict x, size_t n, int track_max)
{
#ifdef __AVX512F__
    /* the loop below, spelled out (lane j of a1/a2 is a1[8k + l]), except
     * that d*d is added with one rounding (FMA) instead of two: a
     * variance's last bits may differ from a build without AVX-512 */
    __m512d K = _mm512_set1_pd(s->K), a1[4], a2[4];
    __m512 mx0 = _mm512_loadu_ps(s->mx), mx1 = _mm512_loadu_ps(s->mx + 16);
    for (int k = 0; k < 4; k++) a1[k] = _mm512_loadu_pd(s->a1 + 8 * k), a2[k] = _mm512_loadu_pd(s->a2 + 8 * k);
    for (size_t i = 0; i + NACC <= n; i += NACC) {
        for (int k = 0; k < 4; k++) {
            __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8 * k)), K);
            a1[k] = _mm512_add_pd(a1[k], d);
            a2[k] = _mm512_fmadd_pd(d, d, a2[k]);
        }
        if (track_max) { /* max(ax, mx) keeps mx when ax is NaN, as ax > mx ? ax : mx does */
            mx0 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), mx0);
            mx1 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i + 16)), mx1);
        }
    }
    for (int k = 0; k < 4; k++) _mm512_storeu_pd(s->a1 + 8 * k, a1[k]), _mm512_storeu_pd(s->a2 + 8 * k, a2[k]);
    _mm512_storeu_ps(s->mx, mx0);
    _mm512_storeu_ps(s->mx + 16, mx1);
#else
    /* local copies stay in registers (s might alias anything) */
    double K = s->K, a1[NACC], a2[NACC];
    float mx[NACC];
    memcpy(a1, s->a1, sizeof a1);
    memcpy(a2, s->a2, sizeof a2);
    memcpy(mx, s->mx, sizeof mx);
    for (size_t i = 0; i + NACC <= n; i += NACC)
        for (int j = 0; j < NACC; j++) {
            double d = (double)x[i + j] - K;
            a1[j] += d;
            a2[j] += d * d;
            if (track_max) {
                float ax = fabsf(x[i + j]);
                mx[j] = ax > mx[j] ? ax : mx[j];
            }
        }
    memcpy(s->a1, a1, sizeof a1);
    memcpy(s->a2, a2, sizeof a2);
    memcpy(s->mx, mx, sizeof mx);
#endif
}

static void stats_image(statacc *s, const float *restrict x, size_t n, int first)
{
    if (first) {
        int track = s->track_max;
        memset(s, 0, sizeof *s);
        s->K = x[0], s->track_max = track;
    }
    if (s->track_max) stats_loop(s, x, n, 1);
    else stats_loop(s, x, n, 0);
}

/* The plane's statistics from n accumulated values; whether some value is
 * non-zero. The sums are shifted by the first value K, so that
 * sum (x-K)^2 - (sum (x-K))^2 / n loses nothing to cancellation (a constant
 * plane gives exactly 0). */
static int stats_finish(statacc *s, plane *p, size_t n)
{
    p->maxabs = 0;
    for (int j = 0; j < NACC; j++) p->maxabs = s->mx[j] > p->maxabs ? s->mx[j] : p->maxabs;
    p->maxabs_known = s->track_max;
    double s1 = fold(s->a1), s2 = fold(s->a2);
    p->sum = s->K * (double)n + s1;
    p->ssc = s2 - s1 * s1 / (double)n;
    if (p->ssc < 0) p->ssc = 0;
    p->nvals = (long)n;
    p->has_stats = 1;
    /* some x != 0 iff x_0 = K != 0 or some (x - K)^2 > 0, or the sums are NaN */
    return s->K != 0.0 || s2 != 0.0 || isnan(s1) || isnan(s2);
}

/* One pass over a freshly computed whole plane, accumulated as chunks are
 * (images need not be NACC-aligned here: the values past the last full
 * block go to lane 0). Saves BatchNorm its own two passes. */
static int plane_stats(plane *p)
{
    const float *x = p->data;
    size_t n = p->size, body = n - n % NACC;
    statacc s = {.track_max = 1};
    stats_image(&s, x, body, 1);
    for (size_t i = body; i < n; i++) {
        double d = (double)x[i] - s.K;
        s.a1[0] += d;
        s.a2[0] += d * d;
        float ax = fabsf(x[i]);
        s.mx[0] = ax > s.mx[0] ? ax : s.mx[0];
    }
    return stats_finish(&s, p, n);
}

/* q = a + lazy(b): the first two terms of a sum in one pass (a plain). */
static void add_pair(float *restrict q, const float *restrict x, const float *restrict y, const grp *b, size_t n)
{
    if (b->affine) {
        float al = b->alpha, be = b->beta;
        for (size_t i = 0; i < n; i++) q[i] = x[i] + (y[i] * al + be);
    } else {
        for (size_t i = 0; i < n; i++) q[i] = x[i] + y[i];
    }
}

/* q (+)= lazy(a) over n floats. */
static void add_group(float *restrict q, const float *restrict a, const grp *g, size_t n, int first)
{
    if (g->affine) {
        float al = g->alpha, be = g->beta;
        if (first) for (size_t i = 0; i < n; i++) q[i] = a[i] * al + be;
        else for (size_t i = 0; i < n; i++) q[i] += a[i] * al + be;
    } else {
        if (first) memcpy(q, a, sizeof(float) * n);
        else for (size_t i = 0; i < n; i++) q[i] += a[i];
    }
}

#ifdef BOX3_AVX512
/* The fused adds of job j for the chunk starting at image b0, or NULL. A
 * plain term carries the identity (1, 0) for the kinds that treat both as
 * lazy. */
static const b3io *job_io(const job *j, int b0, b3io *io)
{
    if (!j->fused_in && !j->nfout) return NULL;
    memset(io, 0, sizeof *io);
    if (j->fused_in) {
        const grp *g0 = &j->fin[0], *g = &j->fin[1];
        io->a2 = img(g->p, b0, b0), io->aff2 = g->affine;
        io->al2 = g->affine ? g->alpha : 1.0f, io->be2 = g->affine ? g->beta : 0.0f;
        io->aff0 = g0->affine, io->al0 = g0->affine ? g0->alpha : 1.0f, io->be0 = g0->affine ? g0->beta : 0.0f;
    }
    if (j->nfout) {
        const grp *g0 = &j->fout[0];
        io->e0 = img(g0->p, b0, b0);
        io->affe0 = g0->affine, io->ale0 = g0->affine ? g0->alpha : 1.0f, io->bee0 = g0->affine ? g0->beta : 0.0f;
        if (j->nfout == 2) {
            const grp *g = &j->fout[1];
            io->e1 = img(g->p, b0, b0), io->affe = g->affine;
            io->ale = g->affine ? g->alpha : 1.0f, io->bee = g->affine ? g->beta : 0.0f;
        }
    }
    return io;
}
#endif

/* The sum of n terms (first plain: x + lazy(y), else lazy(x)), then the
 * rest added in order: what a J_ADD job computes. */
static void sum_terms(float *restrict q, const grp *t, int nt, int b, int b0, size_t n)
{
    int k = 1;
    if (nt >= 2 && !t[0].affine) {
        add_pair(q, img(t[0].p, b, b0), img(t[1].p, b, b0), &t[1], n);
        k = 2;
    } else {
        add_group(q, img(t[0].p, b, b0), &t[0], n, 1);
    }
    for (; k < nt; k++) add_group(q, img(t[k].p, b, b0), &t[k], n, 0);
}

/* The add fused into job j's output, for one image: q = the add's value
 * with a (this job's value) as its last term, as the J_ADD job computes it. */
static void epilogue_image(const job *j, int b, int b0, float *restrict q, const float *restrict a, size_t n)
{
    const grp plain = {.count = 1};
    if (j->nfout == 1 && !j->fout[0].affine) {
        add_pair(q, img(j->fout[0].p, b, b0), a, &plain, n);
        return;
    }
    sum_terms(q, j->fout, j->nfout, b, b0, n);
    add_group(q, a, &plain, n, 0);
}

/* A convolution job on the images [b0, b1) of a chunk (contiguous in every
 * plane): input group by input group, so each output value still adds the
 * groups in order. */
static void conv_chunk(run *R, const job *j, int b0, int b1)
{
    const eps_node *nd = j->nd, *xn = j->xn;
    int H = xn->h, W = xn->w, OH = nd->h, OW = nd->w, nb = b1 - b0;
    int k = nd->kernel, s = nd->stride, p = nd->pad, d = nd->dilation;
    size_t ihw = (size_t)H * W, ohw = (size_t)OH * OW;
    float w = R->w, *o0 = img(j->out, b0, b0);
    if (j->fused_in) { /* one group, 3x3 box, ReLU: see fuse_phase */
        float cnt = (float)j->in[0].count;
#ifdef BOX3_AVX512
        xform f = {.relu = j->relu, .scale = 1, .w = w};
        b3io io;
        if (box3_avx512(img(j->fin[0].p, b0, b0), o0, nb, H, W, &f, 1, cnt, NULL, NULL, job_io(j, b0, &io)) >= 0)
            return;
#endif
        const grp plain = {.count = j->in[0].count};
        for (int b = 0; b < nb; b++) {
            sum_terms(R->in_buf, j->fin, 2, b0 + b, b0, ihw);
            conv3_image(R->in_buf, o0 + b * ohw, R->tmp, R->scaled, H, W, w, cnt, 0, j->relu, &plain);
        }
        return;
    }
    for (int gi = 0; gi < j->nin; gi++) {
        const grp *sg = &j->in[gi];
        const float *x0 = img(sg->p, b0, b0);
        float cnt = (float)sg->count;
        int acc = gi > 0;
        if (k == 1 && s == 1 && p == 0) {
            conv1_image(x0, o0, (size_t)nb * ihw, sg, j->relu, w, cnt, acc);
            continue;
        }
        if (is_box3_same(k, s, p, d)) {
#ifdef BOX3_AVX512
            xform f = {.affine = sg->affine, .relu = j->relu, .scale = 1, .al = sg->alpha, .be = sg->beta, .w = w};
            if (box3_avx512(x0, o0, nb, H, W, &f, acc ? 2 : 1, cnt, NULL, NULL, NULL) >= 0) continue;
#endif
            for (int b = 0; b < nb; b++)
                conv3_image(x0 + b * ihw, o0 + b * ohw, R->tmp, R->scaled, H, W, w, cnt, acc, j->relu, sg);
            continue;
        }
        for (int b = 0; b < nb; b++) {
            const float *x = x0 + b * ihw;
            float *o = o0 + b * ohw;
            int done = -1;
#ifdef BOX3_AVX512
            xform f = {.affine = sg->affine, .relu = j->relu, .scale = 1, .al = sg->alpha, .be = sg->beta, .w = w};
            done = wsum_s2_avx512(x, R->ws, H, W, OH, OW, k, s, p, d, &f);
#endif
            if (done < 0) {
                load_scaled(R->scaled, x, ihw, sg, j->relu, w);
                window_sum(R->scaled, R->ws, R->tmp, H, W, OH, OW, k, s, p, d, j->wt);
            }
            for (size_t q = 0; q < ohw; q++) o[q] = acc ? o[q] + cnt * R->ws[q] : cnt * R->ws[q];
        }
    }
}

/* ---- max pooling ----
 *
 * The reference (eps_engine_dense.c's pool) scans each window row by row
 * from acc = -inf and takes v when v > acc or v is NaN: the result is the
 * first value of the window, in that order, that no later value exceeds,
 * or its last NaN. Without NaNs this is a separable max, row maxima first
 * and then their column maximum, each taking a later value only when it is
 * strictly greater: the first row holding the maximum wins and, in it, its
 * first such value, which is the reference's pick, down to the sign of a
 * zero. Out-of-bounds taps are skipped (the -inf padding of PyTorch never
 * wins either). An image holding a NaN is redone by the reference loop,
 * so NaNs propagate exactly as there. keep_first(a, b) compiles to maxps
 * (which returns its second operand unless the first is greater). */
static inline float keep_first(float acc, float v) { return v > acc ? v : acc; }

static void maxpool_ref(const float *restrict x, float *restrict y, int H, int W, int OH, int OW, int k, int s, int p)
{
    for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
            float m = -INFINITY;
            for (int ky = 0; ky < k; ky++) {
                int iy = oy * s - p + ky;
                if (iy < 0 || iy >= H) continue;
                for (int kx = 0; kx < k; kx++) {
                    int ix = ox * s - p + kx;
                    if (ix < 0 || ix >= W) continue;
                    float v = x[iy * W + ix];
                    if (v > m || isnan(v)) m = v;
                }
            }
            y[oy * OW + ox] = m;
        }
}

static int has_nan(const float *restrict x, size_t n)
{
    int bad = 0;
    for (size_t q = 0; q < n; q++) bad |= x[q] != x[q];
    return bad;
}

/* 3x3, stride 1, pad 1; the same flat-then-fix-the-borders layout as
 * box3_img. t: H*W scratch. */
static void maxpool3_img(const float *restrict a, float *restrict t, float *restrict y, int H, int W)
{
    size_t hw = (size_t)H * W;
    if (W == 1) {
        memcpy(t, a, sizeof(float) * hw);
    } else {
        for (size_t q = 1; q + 1 < hw; q++) t[q] = keep_first(keep_first(a[q - 1], a[q]), a[q + 1]);
        for (int r = 0; r < H; r++) {
            size_t q0 = (size_t)r * W, q1 = q0 + W - 1;
            t[q0] = keep_first(a[q0], a[q0 + 1]);
            t[q1] = keep_first(a[q1 - 1], a[q1]);
        }
    }
    if (H == 1) {
        memcpy(y, t, sizeof(float) * hw);
        return;
    }
    size_t lo = (size_t)W, hi = hw - W;
    for (size_t q = lo; q < hi; q++) y[q] = keep_first(keep_first(t[q - W], t[q]), t[q + W]);
    for (size_t q = 0; q < (size_t)W; q++) {
        y[q] = keep_first(t[q], t[q + W]);
        y[hi + q] = keep_first(t[hi - W + q], t[hi + q]);
    }
}

/* 2x2, stride 2, no padding (NB101's downsampling), windows in bounds. */
static void maxpool2s2_img(const float *restrict a, float *restrict y, int W, int OH, int OW)
{
    for (int oy = 0; oy < OH; oy++) {
        const float *r0 = a + (size_t)2 * oy * W, *r1 = r0 + W;
        float *yo = y + (size_t)oy * OW;
        for (int ox = 0; ox < OW; ox++)
            yo[ox] = keep_first(keep_first(keep_first(r0[2 * ox], r0[2 * ox + 1]), r1[2 * ox]), r1[2 * ox + 1]);
    }
}

/* One image; t: H*W scratch. */
static void maxpool_img(const float *restrict x, float *restrict y, float *restrict t, int H, int W, int OH, int OW,
                        int k, int s, int p)
{
    int box3 = is_box3_same(k, s, p, 1) && OH == H && OW == W;
    int s2 = k == 2 && s == 2 && p == 0 && 2 * OH <= H && 2 * OW <= W;
    if ((box3 || s2) && !has_nan(x, (size_t)H * W)) {
        if (box3) maxpool3_img(x, t, y, H, W);
        else maxpool2s2_img(x, y, W, OH, OW);
        return;
    }
    maxpool_ref(x, y, H, W, OH, OW, k, s, p);
}

static void map_image(run *R, const job *j, const float *restrict x, float *restrict y)
{
    const eps_node *nd = j->nd, *xn = j->xn;
    int H = xn->h, W = xn->w, OH = nd->h, OW = nd->w, k = nd->kernel, s = nd->stride, p = nd->pad;
    size_t ohw = (size_t)OH * OW;
    switch (j->map_op) {
    case EPS_OP_RELU:
        for (size_t q = 0; q < ohw; q++) y[q] = x[q] < 0.0f ? 0.0f : x[q];
        break;
    case EPS_OP_ZERO:
        for (size_t q = 0; q < ohw; q++) y[q] = x[q] * 0.0f;
        break;
    case EPS_OP_AVGPOOL:
        if (is_box3_same(k, s, p, 1)) {
            if (box3_img(x, R->tmp, y, H, W, 1.0f, 4, j->div, j->rdiv)) box3_img(x, R->tmp, y, H, W, 1.0f, 3, j->div, NULL);
        } else {
            int done = -1;
#ifdef BOX3_AVX512
            xform f = {0};
            done = wsum_s2_avx512(x, y, H, W, OH, OW, k, s, p, 1, &f);
#endif
            if (done < 0) window_sum(x, y, R->tmp, H, W, OH, OW, k, s, p, 1, j->wt);
            for (size_t q = 0; q < ohw; q++) y[q] /= j->div[q];
        }
        break;
    case EPS_OP_MAXPOOL: maxpool_img(x, y, R->tmp, H, W, OH, OW, k, s, p); break;
    case EPS_OP_GLOBAL_AVGPOOL: {
        /* double accumulation: a float running sum over a BN output loses
         * ~1e-5 relative, more than the reference's vectorised sums do */
        int hw = H * W;
        double sum = 0.0;
        for (int q = 0; q < hw; q++) sum += x[q];
        y[0] = (float)(sum / hw);
        break;
    }
    default: break;
    }
}

/* Runs job j on images [b0, b1). A chunk's images are contiguous in every
 * plane it touches, so element-wise work runs over the whole chunk at once. */
static void job_run(run *R, job *j, int b0, int b1)
{
    size_t ohw = (size_t)j->nd->h * j->nd->w, ihw = (size_t)j->xn->h * j->xn->w, nb = (size_t)(b1 - b0);
    float *o0 = img(j->out, b0, b0);
    if (j->skip) return;
    switch (j->kind) {
    case J_CONV: conv_chunk(R, j, b0, b1); break;
    case J_MAP: {
        const grp *g = j->fused_in ? &j->fin[0] : &j->in[0];
#ifdef BOX3_AVX512
        if (g->p && j->map_op == EPS_OP_AVGPOOL && is_box3_same(j->nd->kernel, j->nd->stride, j->nd->pad, 1)) {
            /* with a fused input the first term's affine is the kernel's (IN2_AA) */
            xform f = {.affine = g->affine && !j->fused_in, .relu = j->relu, .al = g->alpha, .be = g->beta};
            b3io io;
            if (box3_avx512(img(g->p, b0, b0), o0, (int)nb, j->xn->h, j->xn->w, &f, 4, 1.0f, j->div, j->rdiv,
                            job_io(j, b0, &io)) == 0)
                break;
        }
#endif
        if (g->p && j->map_op == EPS_OP_RELU && !j->fused_in && !j->nfout) {
            /* a materialised ReLU (read by a max pool, an add, a concat):
             * the load's own ReLU, x < 0 ? 0 : x after the lazy affine, is
             * the op itself (and ReLU of a ReLU is the ReLU), so one pass
             * over the chunk instead of a load and a map */
            load_row(o0, img(g->p, b0, b0), nb * ihw, g, 1);
            break;
        }
        for (int b = b0; b < b1; b++) {
            const float *x = g->p ? img(g->p, b, b0) : R->zeros;
            if (j->fused_in) { /* no ReLU: see fuse_phase */
                sum_terms(R->in_buf, j->fin, 2, b, b0, ihw);
                x = R->in_buf;
            } else if (g->affine || j->relu) {
                load_row(R->in_buf, x, ihw, g, j->relu);
                x = R->in_buf;
            }
            float *o = img(j->out, b, b0);
            map_image(R, j, x, j->nfout ? R->scaled : o);
            if (j->nfout) epilogue_image(j, b, b0, o, R->scaled, ohw);
        }
        break;
    }
    case J_ADD: sum_terms(o0, j->in, j->nin, b0, b0, nb * ohw); break;
    case J_LINEAR:
        for (int b = b0; b < b1; b++) {
            float v = 0.0f;
            for (int k = 0; k < j->nin; k++) {
                float x = img(j->in[k].p, b, b0)[0];
                x = lazy_value(&j->in[k], x);
                if (j->relu) x = x < 0.0f ? 0.0f : x;
                v += (float)j->in[k].count * (R->w * x);
            }
            img(j->out, b, b0)[0] = v + 0.0f; /* bias */
        }
        break;
    }
    /* per image or per chunk: the same values reach the same lanes in the
     * same order (stats need ohw % NACC == 0) */
    if (j->st) stats_image(j->st, o0, nb * ohw, b0 == 0);
}

typedef struct planner {
    run *R;
    ftensor *t;
    const char *need;   /* the node's planes must hold the whole batch */
    const char *bn_in;  /* the node is read by a BatchNorm */
    const char *recomputable; /* may be re-run by later phases instead of stored */
    int cb;             /* images per chunk in this phase */
    int cbcap;          /* images a chunk buffer holds (the largest cb of any phase) */
    int out, trace;
    int recompute_max;  /* see eps_engine_fast_set_recompute */
    int seq;            /* distinct per phase */
    job *head, **tail;  /* the jobs of this phase, in order */
} planner;

/* When re-running a few cheap jobs per chunk costs less than writing a
 * whole-batch plane and reading it back in a later phase (see
 * eps_engine_fast_set_recompute; 0: always store). */
static _Atomic int recompute_max_cost = 0;

void eps_engine_fast_set_recompute(int max_cost) { atomic_store(&recompute_max_cost, max_cost < 0 ? 0 : max_cost); }

/* The cost of refilling the chunk buffers x reads. */
static int tensor_cost(const ftensor *x)
{
    int c = 0;
    for (int i = 0; i < x->ng; i++)
        if (x->g[i].p && x->g[i].p->virt && x->g[i].p->producer) c += x->g[i].p->producer->cost;
    return c;
}

/* A new output plane for node i: whole-batch, or a chunk buffer when no
 * later phase reads it or re-running its jobs there is cheap. */
static plane *out_plane(planner *P, int i, size_t isz, int cost)
{
    int whole = P->need[i] && !(P->recomputable[i] && cost <= P->recompute_max && !(P->bn_in[i] && isz % NACC));
    return plane_get(P->R->fp, whole ? (size_t)P->R->n : (size_t)P->cbcap, isz, !whole);
}

/* Appends a re-run of j0 (after its own virtual inputs) to this phase. */
static int recompute(planner *P, job *j0)
{
    if (j0->seq == P->seq) return 0;
    for (int k = 0; k < j0->nin; k++) {
        plane *p = j0->in[k].p;
        if (p && p->virt && p->producer && p->producer->seq != P->seq) {
            int rc = recompute(P, p->producer);
            if (rc) return rc;
        }
    }
    job *c = arena_alloc(P->R->fp, sizeof *c);
    if (!c) return EPS_ENOMEM;
    *c = *j0;
    c->st = NULL, c->stats_whole = 0, c->owns = 0, c->next = NULL;
    /* a re-run fills the job's own output: an add fused into another job
     * runs, a pooling that wrote an add's value writes its own (fuse_phase) */
    c->skip = 0;
    if (c->nfout) c->out = c->out_orig, c->nfout = 0;
    *P->tail = c;
    P->tail = &c->next;
    j0->seq = P->seq;
    return 0;
}

static job *add_job(planner *P, int kind, int node, int gi, const eps_node *nd, const eps_node *xn, plane *out,
                    int nin, const grp *in)
{
    job *j = arena_alloc(P->R->fp, sizeof *j);
    grp *cp = arena_alloc(P->R->fp, sizeof(grp) * (size_t)(nin ? nin : 1));
    if (!j || !cp) return NULL;
    memset(j, 0, sizeof *j);
    memcpy(cp, in, sizeof(grp) * (size_t)nin);
    j->kind = kind, j->node = node, j->gi = gi, j->nd = nd, j->xn = xn, j->out = out, j->nin = nin, j->in = cp;
    j->seq = P->seq, j->cost = 1;
    for (int k = 0; k < nin; k++) {
        plane *p = cp[k].p;
        if (!p) continue;
        if (p->virt && p->producer) {
            if (p->producer->seq != P->seq && recompute(P, p->producer)) return NULL;
            j->cost += p->producer->cost;
        }
        p->refs++;
    }
    j->owns = 1;
    if (out->virt) out->producer = j;
    *P->tail = j;
    P->tail = &j->next;
    return j;
}

/* Whole-batch statistics for a BatchNorm input, accumulated as the chunks
 * are produced (or after the phase when images are not NACC-aligned). */
static int want_stats(planner *P, job *j, size_t isz)
{
    if (isz % NACC) {
        j->stats_whole = 1;
        return 0;
    }
    j->st = arena_alloc(P->R->fp, sizeof(statacc));
    if (!j->st) return EPS_ENOMEM;
    j->st->track_max = j->out->virt;
    return 0;
}

static int plan_conv(planner *P, int i, const eps_node *nd, const eps_node *xn, const ftensor *x, ftensor *y)
{
    fpool *fp = P->R->fp;
    int G = nd->groups, cig = xn->c / G, cog = nd->out_c / G;
    size_t ohw = (size_t)nd->h * nd->w;
    y->g = arena_alloc(fp, sizeof(grp) * (size_t)G);
    grp *seg = arena_alloc(fp, sizeof(grp) * (size_t)(x->ng + 1));
    grp *prev = arena_alloc(fp, sizeof(grp) * (size_t)(x->ng + 1));
    if (!y->g || !seg || !prev) return EPS_ENOMEM;
    int nprev = -1;
    y->ng = 0;
    for (int jg = 0; jg < G; jg++) {
        int ns = segments_of(x, jg * cig, cig, seg);
        if (nprev >= 0 && same_segments(ns, seg, nprev, prev)) {
            y->g[y->ng - 1].count += cog; /* identical inputs: identical outputs */
            continue;
        }
        memcpy(prev, seg, sizeof(grp) * (size_t)ns);
        nprev = ns;
        int nz = 0;
        for (int k = 0; k < ns; k++)
            if (seg[k].p) seg[nz++] = seg[k];
        plane *o = NULL;
        if (nz) {
            if (!(o = out_plane(P, i, ohw, 1 + tensor_cost(x)))) return EPS_ENOMEM;
            job *j = add_job(P, J_CONV, i, y->ng, nd, xn, o, nz, seg);
            if (!j) {
                plane_put(fp, o);
                return EPS_ENOMEM;
            }
            j->relu = x->relu;
            if (!is_box3_same(nd->kernel, nd->stride, nd->pad, nd->dilation) &&
                !(nd->kernel == 1 && nd->stride == 1 && nd->pad == 0) &&
                !(j->wt = wtab_make(fp, xn->h, xn->w, nd->h, nd->w, nd->kernel, nd->stride, nd->pad, nd->dilation)))
                return EPS_ENOMEM;
            if ((!o->virt || P->bn_in[i]) && want_stats(P, j, ohw)) return EPS_ENOMEM;
        }
        y->g[y->ng++] = (grp){.count = cog, .p = o};
    }
    return 0;
}

/* relu / avg pool / max pool / global average pool over each distinct group. */
static int plan_map(planner *P, int i, const eps_node *nd, const eps_node *xn, const ftensor *x, ftensor *y)
{
    fpool *fp = P->R->fp;
    size_t ohw = (size_t)nd->h * nd->w;
    int zero_to_zero = nd->op != EPS_OP_MAXPOOL;
    float *div = NULL;
    float *rdiv = NULL;
    if (nd->op == EPS_OP_AVGPOOL) {
        /* the divisor of each output position: the window size, or only its
         * in-bounds taps when padding is not counted (as PyTorch divides) */
        int k = nd->kernel, s = nd->stride, p = nd->pad;
        div = arena_alloc(fp, sizeof(float) * ohw);
        rdiv = arena_alloc(fp, sizeof(float) * ohw);
        if (!div || !rdiv) return EPS_ENOMEM;
        for (int oy = 0; oy < nd->h; oy++) {
            int cy = window_count(oy, s, p, k, xn->h);
            for (int ox = 0; ox < nd->w; ox++)
                div[oy * nd->w + ox] = (float)(nd->count_include_pad ? k * k : cy * window_count(ox, s, p, k, xn->w));
        }
        for (size_t q = 0; q < ohw; q++) rdiv[q] = 1.0f / div[q];
    }
    y->ng = x->ng;
    y->g = arena_alloc(fp, sizeof(grp) * (size_t)x->ng);
    if (!y->g) return EPS_ENOMEM;
    for (int gi = 0; gi < x->ng; gi++) {
        y->g[gi] = (grp){.count = x->g[gi].count};
        if (!x->g[gi].p && zero_to_zero) continue;
        int dup = -1;
        for (int k = 0; k < gi && dup < 0; k++)
            if (same_grp(&x->g[k], &x->g[gi])) dup = k;
        if (dup >= 0) {
            y->g[gi].p = y->g[dup].p;
            if (y->g[gi].p) y->g[gi].p->refs++;
            continue;
        }
        plane *o = out_plane(P, i, ohw, 1 + tensor_cost(x));
        if (!o) return EPS_ENOMEM;
        job *j = add_job(P, J_MAP, i, gi, nd, xn, o, 1, &x->g[gi]);
        if (!j) {
            plane_put(fp, o);
            return EPS_ENOMEM;
        }
        j->map_op = nd->op, j->relu = x->relu, j->div = div, j->rdiv = rdiv;
        if (nd->op == EPS_OP_AVGPOOL && !is_box3_same(nd->kernel, nd->stride, nd->pad, 1) &&
            !(j->wt = wtab_make(fp, xn->h, xn->w, nd->h, nd->w, nd->kernel, nd->stride, nd->pad, 1)))
            return EPS_ENOMEM;
        y->g[gi].p = o;
    }
    return 0;
}

static int plan_linear(planner *P, int i, const eps_node *nd, const eps_node *xn, const ftensor *x, ftensor *y)
{
    fpool *fp = P->R->fp;
    y->ng = 1;
    y->g = arena_alloc(fp, sizeof(grp));
    grp *in = arena_alloc(fp, sizeof(grp) * (size_t)x->ng);
    if (!y->g || !in) return EPS_ENOMEM;
    int nz = 0;
    for (int k = 0; k < x->ng; k++)
        if (x->g[k].p) in[nz++] = x->g[k];
    y->g[0] = (grp){.count = nd->out_c};
    if (!nz) return 0; /* w * 0 + 0 */
    plane *o = out_plane(P, i, 1, 1 + tensor_cost(x));
    if (!o) return EPS_ENOMEM;
    job *j = add_job(P, J_LINEAR, i, 0, nd, xn, o, nz, in);
    if (!j) {
        plane_put(fp, o);
        return EPS_ENOMEM;
    }
    j->relu = x->relu;
    y->g[0].p = o;
    return 0;
}

/* Sums aligned channel segments of several inputs (in input order, as the
 * reference adds them). */
static int plan_add(planner *P, int i, const eps_node *nd, ftensor *const *xs, ftensor *y)
{
    fpool *fp = P->R->fp;
    int nin = nd->n_in, C = nd->c;
    size_t ohw = (size_t)nd->h * nd->w;
    int maxg = 0;
    for (int k = 0; k < nin; k++) maxg += xs[k]->ng;
    y->g = arena_alloc(fp, sizeof(grp) * (size_t)maxg);
    int *gi = arena_alloc(fp, sizeof(int) * (size_t)nin), *left = arena_alloc(fp, sizeof(int) * (size_t)nin);
    grp *prev = arena_alloc(fp, sizeof(grp) * (size_t)nin), *cur = arena_alloc(fp, sizeof(grp) * (size_t)nin);
    grp *terms = arena_alloc(fp, sizeof(grp) * (size_t)nin);
    if (!y->g || !gi || !left || !prev || !cur || !terms) return EPS_ENOMEM;
    y->ng = 0;
    for (int k = 0; k < nin; k++) gi[k] = 0, left[k] = xs[k]->g[0].count;
    int done = 0, have_prev = 0;
    while (done < C) {
        int len = C - done;
        for (int k = 0; k < nin; k++) {
            if (left[k] < len) len = left[k];
            cur[k] = xs[k]->g[gi[k]];
        }
        int same = have_prev;
        for (int k = 0; k < nin && same; k++) same = same_grp(&prev[k], &cur[k]);
        if (same) {
            y->g[y->ng - 1].count += len;
        } else {
            int nz = 0;
            for (int k = 0; k < nin; k++)
                if (cur[k].p) terms[nz++] = cur[k];
            grp out = {.count = len};
            if (nz == 1) { /* x + exact zeros == x: share it, lazy or not */
                out = terms[0];
                out.count = len;
                out.p->refs++;
            } else if (nz > 1) {
                int cost = 1;
                for (int k = 0; k < nz; k++)
                    if (terms[k].p->virt && terms[k].p->producer) cost += terms[k].p->producer->cost;
                plane *o = out_plane(P, i, ohw, cost);
                if (!o) return EPS_ENOMEM;
                job *j = add_job(P, J_ADD, i, y->ng, nd, nd, o, nz, terms);
                if (!j) {
                    plane_put(fp, o);
                    return EPS_ENOMEM;
                }
                if (P->bn_in[i] && (P->need[i] || o->virt) && want_stats(P, j, ohw)) return EPS_ENOMEM;
                out.p = o;
            }
            y->g[y->ng++] = out;
            memcpy(prev, cur, sizeof(grp) * (size_t)nin);
            have_prev = 1;
        }
        done += len;
        for (int k = 0; k < nin; k++) {
            left[k] -= len;
            if (left[k] == 0 && done < C) left[k] = xs[k]->g[++gi[k]].count;
        }
    }
    return 0;
}

/* The output node, when it shares chunk buffers of its inputs (add of one
 * non-zero term, concat, slice), gets a whole-batch copy of each (the copy
 * applies a pending affine). */
static int materialise_shared(planner *P, int i, const eps_node *nd, ftensor *y)
{
    if (i != P->out && !P->trace) return 0; /* later phases re-run the producers of shared chunk buffers */
    grp *orig = arena_alloc(P->R->fp, sizeof(grp) * (size_t)(y->ng ? y->ng : 1));
    if (!orig) return EPS_ENOMEM;
    memcpy(orig, y->g, sizeof(grp) * (size_t)y->ng);
    for (int gi = 0; gi < y->ng; gi++) {
        grp *g = &y->g[gi];
        if (!g->p || !g->p->virt) continue;
        int dup = -1;
        for (int k = 0; k < gi && dup < 0; k++)
            if (same_grp(&orig[k], &orig[gi])) dup = k;
        plane *o = dup >= 0 ? y->g[dup].p : plane_get(P->R->fp, (size_t)P->R->n, g->p->istride, 0);
        if (!o) return EPS_ENOMEM;
        if (dup >= 0) {
            o->refs++;
        } else if (!add_job(P, J_ADD, i, gi, nd, nd, o, 1, g)) {
            plane_put(P->R->fp, o);
            return EPS_ENOMEM;
        }
        plane_put(P->R->fp, g->p);
        *g = (grp){.count = g->count, .p = o};
    }
    return 0;
}

#ifdef BOX3_AVX512
/* How many jobs of this phase read plane p. */
static int plane_readers(const planner *P, const plane *p)
{
    int n = 0;
    for (const job *j = P->head; j; j = j->next) {
        if (j->skip) continue;
        for (int k = j->fused_in ? 1 : 0; k < j->nin; k++) n += j->in[k].p == p;
        if (j->fused_in) n += (j->fin[0].p == p) + (j->fin[1].p == p);
        for (int k = 0; k < j->nfout; k++) n += j->fout[k].p == p;
    }
    return n;
}
#endif

/* Folds adds into the 3x3 box sums next to them, where the add's value is
 * a chunk buffer only that box sum reads: "x + y -> avg pool or ReLU-conv"
 * becomes one kernel that sums while loading rows, and "avg pool -> last
 * term of an add" one that adds the other terms while storing. The adds'
 * chunk buffers are then never written, their memory streams overlap the
 * box sums' arithmetic, and every value is computed exactly as before.
 * Only kernels that exist (box3_fusable) are used, and only for chunk
 * buffers no other job of the phase reads; a later phase that reads one
 * re-runs its producers, and such a re-run computes the job's own output
 * (see recompute). */
static void fuse_phase(planner *P)
{
#ifdef BOX3_AVX512
    if (P->recompute_max || P->trace) return;
    for (job *m = P->head; m; m = m->next) {
        if (m->skip || m->nin != 1 || m->in[0].affine || !m->in[0].p || m->st || m->stats_whole) continue;
        const eps_node *nd = m->nd;
        int pool = m->kind == J_MAP && m->map_op == EPS_OP_AVGPOOL && is_box3_same(nd->kernel, nd->stride, nd->pad, 1) &&
                   !m->relu;
        int conv = m->kind == J_CONV && is_box3_same(nd->kernel, nd->stride, nd->pad, nd->dilation) && m->relu;
        if (!pool && !conv) continue;
        int mode = pool ? 4 : 1, xf = pool ? 0 : XF_SCALE | XF_RELU;
        plane *p = m->in[0].p;
        job *a = p->virt ? p->producer : NULL;
        if (a && a->kind == J_ADD && !a->skip && a->nin == 2 && !a->st && !a->stats_whole &&
            box3_fusable(m->xn->h, m->xn->w, mode, xf, 0) && plane_readers(P, p) == 1) {
            m->fin[0] = a->in[0], m->fin[1] = a->in[1];
            m->fused_in = 1;
            a->skip = 1;
        }
        if (!pool || !m->out->virt || plane_readers(P, m->out) != 1) continue;
        job *b = NULL;
        for (job *j = m->next; j && !b; j = j->next)
            if (!j->skip && j->kind == J_ADD && j->nin >= 2 && j->in[j->nin - 1].p == m->out) b = j;
        if (!b || b->nin > 3 || b->in[b->nin - 1].affine || !box3_fusable(m->xn->h, m->xn->w, 4, 0, 1))
            continue;
        /* m runs where it is: the add's other terms must be ready by then */
        int late = 0;
        for (job *j = m->next; j != b; j = j->next)
            for (int k = 0; k < b->nin - 1; k++) late |= j->out == b->in[k].p;
        if (late) continue;
        m->fout[0] = b->in[0];
        if (b->nin == 3) m->fout[1] = b->in[1];
        m->nfout = b->nin - 1;
        m->out_orig = m->out;
        m->out = b->out;
        m->st = b->st, m->stats_whole = b->stats_whole;
        b->st = NULL, b->stats_whole = 0;
        b->skip = 1;
    }
#else
    (void)P;
#endif
}

/* Jobs that filled whole-batch planes will not run again: they let go of
 * their inputs. (A pooling that wrote an add's plane keeps them while its
 * own chunk buffer lives: a later phase may re-run it.) */
static void phase_release(run *R, planner *P)
{
    for (job *j = P->head; j; j = j->next)
        if (!(j->nfout ? j->out_orig : j->out)->virt) job_drop_inputs(R->fp, j);
    P->head = NULL;
    P->tail = &P->head;
}

static void run_phase(run *R, planner *P);

/* x with plain planes (no pending affine or ReLU) that hold the whole
 * batch: x itself when it has them, or a copy (*owned set: the caller
 * releases it) that applies the pending affine and ReLU and refills chunk
 * buffers over the whole batch by re-running their producers. stats_only:
 * the reader needs only the statistics of a plane (BatchNorm), so chunk
 * buffers that have them do as they are. */
static int ensure_plain(run *R, const planner *P, const eps_node *xn, const ftensor *x, ftensor *out, int *owned,
                        int stats_only)
{
    int lazy = x->relu, virt = 0;
    for (int i = 0; i < x->ng; i++) {
        const plane *p = x->g[i].p;
        lazy |= x->g[i].affine;
        virt |= p && p->virt && !(stats_only && p->has_stats);
    }
    *owned = 0;
    *out = *x;
    if (!lazy && !virt) return 0;
    planner Z = *P;
    Z.seq = ++R->seq;
    Z.head = NULL, Z.tail = &Z.head;
    out->g = arena_alloc(R->fp, sizeof(grp) * (size_t)x->ng);
    if (!out->g) return EPS_ENOMEM;
    memset(out->g, 0, sizeof(grp) * (size_t)x->ng); /* releasable at any point */
    out->ng = x->ng, out->relu = 0, out->valid = 1;
    *owned = 1;
    int rc = 0;
    for (int i = 0; i < x->ng && !rc; i++) {
        const grp *g = &x->g[i];
        out->g[i] = (grp){.count = g->count};
        if (!g->p) continue;
        int dup = -1;
        for (int j = 0; j < i && dup < 0; j++)
            if (same_grp(&x->g[j], g)) dup = j;
        if (dup >= 0) {
            out->g[i].p = out->g[dup].p;
            out->g[i].p->refs++;
            continue;
        }
        plane *o = plane_get(R->fp, (size_t)R->n, g->p->istride, 0);
        if (!o) {
            rc = EPS_ENOMEM;
            break;
        }
        out->g[i].p = o;
        if (!g->p->virt) {
            load_row(o->data, g->p->data, g->p->size, g, x->relu);
            continue;
        }
        job *j = add_job(&Z, x->relu ? J_MAP : J_ADD, -1, 0, xn, xn, o, 1, g);
        if (!j) rc = EPS_ENOMEM;
        else j->map_op = EPS_OP_RELU, j->relu = x->relu;
    }
    if (!rc && Z.head) run_phase(R, &Z);
    phase_release(R, &Z);
    return rc;
}

/* Runs the jobs of one phase chunk by chunk, then finishes their
 * statistics; an all-zero BatchNorm input becomes an exact zero group. */
static void run_phase(run *R, planner *P)
{
    if (!P->head) return;
    for (int b0 = 0; b0 < R->n; b0 += P->cb) {
        int b1 = b0 + P->cb < R->n ? b0 + P->cb : R->n;
        for (job *j = P->head; j; j = j->next) job_run(R, j, b0, b1);
    }
    for (job *j = P->head; j; j = j->next) {
        if (!j->st && !j->stats_whole) continue;
        int nz = j->st ? stats_finish(j->st, j->out, (size_t)R->n * j->out->istride) : plane_stats(j->out);
        if (!nz && j->kind == J_CONV) {
            grp *g = &P->t[j->node].g[j->gi];
            if (g->p == j->out) {
                plane_put(R->fp, g->p);
                g->p = NULL;
            }
        }
    }
}

#define CHUNK_FLOATS 1024

int eps_engine_fast_forward(const eps_graph *g, const eps_batch *b, float w, const eps_run_opts *opts, float *y,
                            eps_error *err)
{
    const eps_node *in = &g->nodes[0];
    if (b->kind != EPS_BATCH_IMAGES || b->c != in->c || b->h != in->h || b->w != in->w)
        return eps_error_set(err, EPS_EINVAL, "batch", "batch '%s' has shape %dx%dx%d, the network expects %dx%dx%d",
                             b->source, b->c, b->h, b->w, in->c, in->h, in->w);
    fpool *fp = &tl_pool;
    float *dense = NULL;
    /* The pool keeps planes by exact size, so a worker that sees many batch
     * sizes or networks would keep growing: past the bound, start afresh
     * (between runs nothing else holds a plane). */
    if (fp->bytes > POOL_TRIM_BYTES) eps_engine_fast_release_thread_cache();
    arena_reset(fp);
    int n = b->n, rc = 0, N = g->n, trace = opts && opts->trace;
    run R = {.fp = fp, .g = g, .n = n, .w = w};
    int *rep = arena_alloc(fp, sizeof(int) * (size_t)N), *phase = arena_alloc(fp, sizeof(int) * (size_t)N);
    int *lastph = arena_alloc(fp, sizeof(int) * (size_t)N), *view = arena_alloc(fp, sizeof(int) * (size_t)N);
    char *live = arena_alloc(fp, (size_t)N), *need = arena_alloc(fp, (size_t)N), *conv_only = arena_alloc(fp, (size_t)N);
    char *bn_in = arena_alloc(fp, (size_t)N), *recomputable = arena_alloc(fp, (size_t)N);
    ftensor *t = arena_alloc(fp, sizeof(ftensor) * (size_t)N);
    /* one image of any input or output, and the H x OW row sums between */
    size_t maxplane = (size_t)in->h * in->w;
    for (int i = 1; i < N; i++) {
        const eps_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_in; k++) {
            const eps_node *xn = &g->nodes[nd->in[k]];
            size_t s = (size_t)(xn->h > nd->h ? xn->h : nd->h) * (size_t)(xn->w > nd->w ? xn->w : nd->w);
            if (s > maxplane) maxplane = s;
        }
    }
    float *imgs = arena_alloc(fp, sizeof(float) * (6 * maxplane + 64));
    if (!rep || !phase || !lastph || !view || !live || !need || !conv_only || !bn_in || !recomputable || !t || !imgs)
        return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    R.in_buf = imgs, R.scaled = imgs + maxplane, R.tmp = imgs + 2 * maxplane, R.ws = imgs + 4 * maxplane;
    R.zeros = imgs + 5 * maxplane;
    memset(R.zeros, 0, sizeof(float) * maxplane);
    merge_nodes(g, rep);
    find_views(g, rep, view);
    memset(live, 0, (size_t)N);
    memset(t, 0, sizeof(ftensor) * (size_t)N);
    int out = rep[g->output];
    live[out] = 1;
    for (int i = N - 1; i > 0; i--)
        if (live[i] && rep[i] == i) {
            for (int k = 0; k < g->nodes[i].n_in; k++) live[rep[g->nodes[i].in[k]]] = 1;
            if (view[i] >= 0) live[view[i]] = 1;
        }
    /* phases, and which nodes need whole-batch planes */
    int maxph = 0;
    phase[0] = 0;
    for (int i = 1; i < N; i++) {
        const eps_node *nd = &g->nodes[i];
        phase[i] = 0;
        if (!live[i] || rep[i] != i) continue;
        for (int k = 0; k < nd->n_in; k++)
            if (phase[rep[nd->in[k]]] > phase[i]) phase[i] = phase[rep[nd->in[k]]];
        if (nd->op == EPS_OP_BATCHNORM || nd->op == EPS_OP_FLATTEN || nd->op == EPS_OP_ZERO) phase[i]++;
        if (phase[i] > maxph) maxph = phase[i];
    }
    for (int i = 0; i < N; i++) {
        need[i] = trace || i == out;
        lastph[i] = -1;
        bn_in[i] = 0;
    }
    memset(conv_only, 1, (size_t)N);
    conv_only[out] = 0;
    for (int i = 1; i < N; i++) {
        const eps_node *nd = &g->nodes[i];
        if (!live[i] || rep[i] != i) continue;
        for (int k = 0; k < nd->n_in; k++) {
            int s = rep[nd->in[k]];
            if (phase[i] > phase[s]) need[s] = 1;
            if (phase[i] > lastph[s]) lastph[s] = phase[i];
            if (nd->op != EPS_OP_CONV2D) conv_only[s] = 0;
            if (nd->op == EPS_OP_BATCHNORM) bn_in[s] = 1;
        }
    }
    /* a view's readers read its source's planes (same phase: same inputs) */
    for (int i = N - 1; i > 0; i--) {
        int j = view[i];
        if (j < 0 || !live[i]) continue;
        need[j] |= need[i];
        bn_in[j] |= bn_in[i];
        conv_only[j] &= conv_only[i];
        if (lastph[i] > lastph[j]) lastph[j] = lastph[i];
        if (phase[i] > lastph[j]) lastph[j] = phase[i];
    }
    /* ops whose chunk buffers later phases may refill by re-running them;
     * flatten and zero read whole tensors, so their inputs are stored */
    for (int i = 0; i < N; i++) {
        int op = g->nodes[i].op;
        recomputable[i] = i > 0 && !trace && i != out &&
                          (op == EPS_OP_CONV2D || op == EPS_OP_AVGPOOL || op == EPS_OP_MAXPOOL ||
                           op == EPS_OP_GLOBAL_AVGPOOL || op == EPS_OP_RELU || op == EPS_OP_ADD || op == EPS_OP_LINEAR);
    }
    for (int i = 1; i < N; i++)
        if (live[i] && rep[i] == i && (g->nodes[i].op == EPS_OP_FLATTEN || g->nodes[i].op == EPS_OP_ZERO))
            recomputable[rep[g->nodes[i].in[0]]] = 0;
    /* chunk size per phase: a few images of the largest plane in it */
    int *cbph = arena_alloc(fp, sizeof(int) * (size_t)(maxph + 1)), cbcap = 1;
    if (!cbph) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    for (int ph = 0; ph <= maxph; ph++) {
        size_t biggest = 1;
        for (int i = 1; i < N; i++) {
            const eps_node *nd = &g->nodes[i];
            if (!live[i] || rep[i] != i || phase[i] != ph) continue;
            if ((size_t)nd->h * nd->w > biggest) biggest = (size_t)nd->h * nd->w;
            for (int k = 0; k < nd->n_in; k++) {
                const eps_node *xn = &g->nodes[nd->in[k]];
                if ((size_t)xn->h * xn->w > biggest) biggest = (size_t)xn->h * xn->w;
            }
        }
        cbph[ph] = biggest >= CHUNK_FLOATS ? 1 : (int)(CHUNK_FLOATS / biggest);
        if (cbph[ph] > n) cbph[ph] = n > 0 ? n : 1;
        if (cbph[ph] > cbcap) cbcap = cbph[ph];
    }
    planner P = {.R = &R, .t = t, .need = need, .bn_in = bn_in, .recomputable = recomputable, .cbcap = cbcap,
                 .out = out, .trace = trace, .recompute_max = atomic_load(&recompute_max_cost)};
    P.tail = &P.head;

    /* input: one group per channel (channels of a real image differ) */
    size_t ihw = (size_t)in->h * in->w;
    t[0].ng = in->c;
    t[0].g = arena_alloc(fp, sizeof(grp) * (size_t)in->c);
    if (!t[0].g) return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    t[0].valid = 1;
    int cacheable = in->c <= INPUT_CACHE_MAX_C && b->hash[0];
    int cached = cacheable && fp->in_data == b->data && fp->in_n == n && fp->in_c == in->c && fp->in_h == in->h &&
                 fp->in_w == in->w && !strcmp(fp->in_hash, b->hash);
    if (cacheable && !cached) {
        input_cache_drop(fp);
        fp->in_data = b->data, fp->in_n = n, fp->in_c = in->c, fp->in_h = in->h, fp->in_w = in->w;
        memcpy(fp->in_hash, b->hash, sizeof fp->in_hash);
    }
    for (int c = 0; c < in->c; c++) {
        plane *p = cached ? fp->in_planes[c] : plane_get(fp, (size_t)n, ihw, 0);
        if (!p) {
            if (cacheable) input_cache_drop(fp);
            rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory");
            goto done;
        }
        if (cached) {
            p->refs++;
        } else {
            for (int bi = 0; bi < n; bi++)
                memcpy(p->data + (size_t)bi * ihw, b->data + ((size_t)bi * in->c + c) * ihw, sizeof(float) * ihw);
            if (cacheable) {
                fp->in_planes[c] = p; /* the cache's reference */
                p->refs++;
            }
        }
        t[0].g[c] = (grp){.count = 1, .p = p};
    }
    for (int ph = 0; ph <= maxph; ph++) {
        if (opts && opts->cancel && *opts->cancel) {
            rc = eps_error_set(err, EPS_ECANCELED, "", "canceled");
            goto done;
        }
        P.cb = cbph[ph];
        P.seq = ++R.seq;
        int stem_node = -1;
        for (int i = 1; i < N; i++) {
            const eps_node *nd = &g->nodes[i];
            if (!live[i] || rep[i] != i || phase[i] != ph) continue;
            const eps_node *xn = &g->nodes[nd->in[0]];
            ftensor *x = &t[rep[nd->in[0]]], *yt = &t[i];
            ftensor *xs[EPS_GRAPH_MAX_INPUTS];
            for (int k = 0; k < nd->n_in; k++) xs[k] = &t[rep[nd->in[k]]];
            ftensor plain;
            int owned = 0;
            int stem = cacheable && nd->op == EPS_OP_CONV2D && nd->in[0] == 0;
            if (view[i] >= 0 && make_view(fp, nd, &t[view[i]], yt)) {
                yt->valid = 1;
                continue;
            }
            switch (nd->op) {
            case EPS_OP_CONV2D:
                if (stem && stem_lookup(fp, nd, w, yt)) break;
                if (stem) {
                    need[i] = 1; /* the stem cache keeps whole planes */
                    recomputable[i] = 0;
                    stem_node = i;
                }
                rc = plan_conv(&P, i, nd, xn, x, yt);
                break;
            case EPS_OP_BATCHNORM: { /* whole-batch work on a finished input */
                if (!(rc = ensure_plain(&R, &P, xn, x, &plain, &owned, 1))) rc = op_bn(&R, &plain, yt);
                break;
            }
            case EPS_OP_FLATTEN:
                if (!(rc = ensure_plain(&R, &P, xn, x, &plain, &owned, 0))) rc = op_flatten(&R, xn, &plain, yt);
                break;
            case EPS_OP_ZERO:
                if ((rc = ensure_plain(&R, &P, xn, x, &plain, &owned, 0))) break;
                if (has_nonfinite(&plain)) { /* 0 * inf = NaN: compute it now, over the whole batch */
                    planner Z = P;
                    Z.head = NULL, Z.tail = &Z.head;
                    int keep = need[i];
                    need[i] = 1;
                    rc = plan_map(&Z, i, nd, xn, &plain, yt);
                    need[i] = (char)keep;
                    for (job *j = Z.head; j && !rc; j = j->next) j->map_op = EPS_OP_ZERO, job_run(&R, j, 0, n);
                    phase_release(&R, &Z);
                } else {
                    yt->ng = 1;
                    yt->g = arena_alloc(fp, sizeof(grp));
                    if (yt->g) yt->g[0] = (grp){.count = nd->c};
                    else rc = EPS_ENOMEM;
                }
                break;
            case EPS_OP_RELU:
                if (conv_only[i] && !trace) { /* applied by the convolutions that read it */
                    rc = op_share_prefix(&R, x, nd->c, yt);
                    yt->relu = 1;
                } else {
                    rc = plan_map(&P, i, nd, xn, x, yt);
                }
                break;
            case EPS_OP_AVGPOOL:
            case EPS_OP_MAXPOOL:
            case EPS_OP_GLOBAL_AVGPOOL: rc = plan_map(&P, i, nd, xn, x, yt); break;
            case EPS_OP_LINEAR: rc = plan_linear(&P, i, nd, xn, x, yt); break;
            case EPS_OP_ADD:
                if (!(rc = plan_add(&P, i, nd, xs, yt))) rc = materialise_shared(&P, i, nd, yt);
                break;
            case EPS_OP_CONCAT:
                if (!(rc = op_concat(&R, nd, xs, yt))) rc = materialise_shared(&P, i, nd, yt);
                break;
            case EPS_OP_SLICE:
                if (!(rc = op_share_prefix(&R, x, nd->out_c, yt))) rc = materialise_shared(&P, i, nd, yt);
                break;
            default: rc = EPS_EINTERNAL; break;
            }
            if (owned) tensor_release(fp, &plain);
            yt->valid = 1;
            if (rc) {
                rc = rc == EPS_ENOMEM ? eps_error_set(err, rc, "", "out of memory at node %d", i)
                                      : eps_error_set(err, rc, "", "fast engine: unsupported op %s", eps_op_name(nd->op));
                goto done;
            }
        }
        fuse_phase(&P);
        run_phase(&R, &P);
        phase_release(&R, &P);
        if (stem_node >= 0) stem_store(fp, &g->nodes[stem_node], w, &t[stem_node]);
        /* tracing reports every node at the end, so it keeps every tensor */
        for (int i = 1; i < N && !trace; i++)
            if (lastph[i] == ph && i != out) tensor_release(fp, &t[i]);
    }
    for (int i = 1; trace && i < N; i++) {
        const eps_node *nd = &g->nodes[i];
        if (!live[rep[i]] || !t[rep[i]].valid) continue;
        size_t sz = (size_t)n * nd->c * nd->h * nd->w;
        float *d = realloc(dense, sizeof(float) * sz);
        if (!d) {
            rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory");
            goto done;
        }
        dense = d;
        expand(&t[rep[i]], n, nd->c, nd->h, nd->w, dense);
        opts->trace(opts->trace_ctx, i, dense, n, nd->c, nd->h, nd->w);
    }
    {
        const eps_node *on = &g->nodes[g->output];
        ftensor fin;
        int owned = 0;
        P.seq = ++R.seq;
        if ((rc = ensure_plain(&R, &P, &g->nodes[out], &t[out], &fin, &owned, 0))) {
            rc = eps_error_set(err, rc, "", "out of memory");
            goto done;
        }
        expand(&fin, n, on->c, on->h, on->w, y);
        if (owned) tensor_release(fp, &fin);
    }
done:
    phase_release(&R, &P);
    free(dense);
    for (int i = 0; i < N; i++) tensor_release(fp, &t[i]);
    return rc;
}
