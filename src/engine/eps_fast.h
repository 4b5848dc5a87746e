/* eps_fast.h — the single-plane engine's shared types (private to engine/).
 *
 * With every weight equal to one constant w, the channels of a tensor come
 * in runs of identical channels (spec §8). A tensor is therefore a list of
 * groups (channel count, one B x H x W plane); a plane pointer of NULL is an
 * exact zero plane. A convolution collapses its input groups into one plane:
 *     out = sum_g count_g * window_sum(w * plane_g)
 * (w is applied before summing so tiny values underflow as in the
 * reference, where each product w*x is rounded); BN, ReLU, pooling act per
 * group; concat appends groups; slice keeps a prefix; add sums aligned
 * segments. The engine is five modules:
 *   eps_fast_pool.c            per-thread plane pool, huge-page slabs, bump arena,
 *                              the cached input batch
 *   eps_fast_kernels.c         the portable per-image kernels (box and window
 *                              sums, loads, 1x1/3x3 convolutions, max pools,
 *                              BatchNorm statistics, adds)
 *   eps_fast_kernels_avx512.c  the AVX-512 instances of the hot ones, the same
 *                              sums in the same order
 *   eps_fast_plan.c            graph analysis (merging, views), the lazy ops
 *                              (BN, concat, slice, flatten), jobs per phase and
 *                              the fusion of adds into box sums
 *   eps_fast_exec.c            running jobs chunk by chunk, the phase loop and
 *                              eps_engine_fast_forward
 * Checked op by op against eps_engine_dense.c (tests/test_engine_equiv.c). */
#ifndef EPS_FAST_H
#define EPS_FAST_H

#include <stddef.h>

#include "epsinas/core/graph.h"

#define AINL static inline __attribute__((always_inline))

#if defined(__AVX512F__)
#define BOX3_AVX512 1
#endif

/* ---- planes, groups, tensors ---- */

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

static inline int same_grp(const grp *a, const grp *b)
{
    return a->p == b->p && a->affine == b->affine &&
           (!a->affine || (a->alpha == b->alpha && a->beta == b->beta));
}

/* Image b of plane p; a chunk buffer (virt) holds images b0.. of the
 * current chunk only. */
static inline float *img(const plane *p, int b, int b0)
{
    return p->data + (size_t)(p->virt ? b - b0 : b) * p->istride;
}

/* ---- the per-thread pool (eps_fast_pool.c) ---- */

#define INPUT_CACHE_MAX_C 8

typedef struct fpool {
    plane *free_list;
    struct slab *slabs;
    size_t bytes;        /* plane and slab memory held (see POOL_TRIM_BYTES) */
    struct arena_chunk *chunks; /* first chunk is reused; others appended as needed */
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

/* Past this many bytes held, a run starts with an empty pool. */
#define POOL_TRIM_BYTES ((size_t)256 << 20)

fpool *eps_fast_thread_pool(void);
/* Run-lifetime memory, 16-byte aligned; freed all at once by arena_reset. */
void *eps_fast_arena_alloc(fpool *fp, size_t n);
void eps_fast_arena_reset(fpool *fp);
/* A plane of nimg images of isz floats each (refs = 1); virt: a chunk buffer. */
plane *eps_fast_plane_get(fpool *fp, size_t nimg, size_t isz, int virt);
plane *eps_fast_plane_get_sized(fpool *fp, size_t size);
/* Drops one reference; the last returns the plane to the pool (NULL: no-op). */
void eps_fast_plane_put(fpool *fp, plane *p);
void eps_fast_tensor_release(fpool *fp, ftensor *t);
void eps_fast_input_cache_drop(fpool *fp);

/* ---- jobs, phases, the planner ---- */

/* Statistics accumulate in double with NACC independent partial sums: a
 * fixed order we choose (no fast-math reassociation), wide enough to
 * vectorise. */
#define NACC 32

typedef struct statacc {
    double K, a1[NACC], a2[NACC];
    float mx[NACC];
    int track_max; /* the plane is a chunk buffer: max|x| cannot be read later */
} statacc;

/* Where each output column/row's in-bounds taps start and how many there
 * are: computed once per job, not per image. */
typedef struct wtab { int *cx0, *cxn, *cy0, *cyn; } wtab;

enum { J_CONV, J_MAP, J_ADD, J_LINEAR };

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

typedef struct run {
    fpool *fp;
    const eps_graph *g;
    int n;
    float w;
    float *in_buf, *scaled, *tmp, *ws, *zeros; /* one image each */
    int seq;              /* phases planned so far */
} run;

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

/* ---- kernels (eps_fast_kernels.c): one image, or a chunk of them ---- */

/* What a 3x3 box sum does with each window sum v (see eps_fast_box3_img). */
typedef enum {
    BOX_SUM = 0,    /* y = v */
    BOX_SCALE = 1,  /* y = cnt * v (a convolution over cnt identical channels) */
    BOX_ACCUM = 2,  /* y += cnt * v (the next group of a convolution) */
    BOX_DIV = 3,    /* y = v / div (average pooling) */
    BOX_RECIP = 4,  /* the same quotient by reciprocal and one correction */
} box_mode;

static inline int is_box3_same(int k, int s, int p, int d) { return k == 3 && s == 1 && p == 1 && d == 1; }

unsigned eps_fast_box3_img(const float *restrict a, float *restrict t, float *restrict y, int H, int W, float cnt,
                           box_mode mode, const float *restrict div, const float *restrict rdiv);
wtab *eps_fast_wtab_make(fpool *fp, int H, int W, int OH, int OW, int k, int s, int p, int d);
void eps_fast_window_sum(const float *restrict x, float *restrict y, float *restrict tmp, int H, int W, int OH,
                         int OW, int k, int s, int p, int d, const wtab *wt);
int eps_fast_window_count(int o, int s, int p, int k, int n);
void eps_fast_load_row(float *restrict dst, const float *restrict src, size_t n, const grp *g, int relu);
void eps_fast_load_scaled(float *restrict dst, const float *restrict src, size_t n, const grp *g, int relu, float w);
void eps_fast_conv3_image(const float *restrict x, float *restrict y, float *restrict tmp, float *restrict scaled,
                          int H, int W, float w, float cnt, int acc, int relu, const grp *g);
void eps_fast_conv1_image(const float *restrict x, float *restrict o, size_t n, const grp *g, int relu, float w,
                          float cnt, int acc);
void eps_fast_maxpool_img(const float *restrict x, float *restrict y, float *restrict t, int H, int W, int OH,
                          int OW, int k, int s, int p);
float eps_fast_plane_maxabs(const plane *p);
void eps_fast_stats_image(statacc *s, const float *restrict x, size_t n, int first);
void eps_fast_stats_loop_scalar(statacc *s, const float *restrict x, size_t n, int track_max);
int eps_fast_stats_finish(statacc *s, plane *p, size_t n);
int eps_fast_plane_stats(plane *p);
void eps_fast_add_pair(float *restrict q, const float *restrict x, const float *restrict y, const grp *b, size_t n);
void eps_fast_add_group(float *restrict q, const float *restrict a, const grp *g, size_t n, int first);

/* ---- AVX-512 instances (eps_fast_kernels_avx512.c) ---- */
#ifdef BOX3_AVX512
/* The input transform of a vector box sum: affine, then ReLU, then times w. */
typedef struct xform { int affine, relu, scale; float al, be, w; } xform;
/* The same as compile-time flags, so each kernel instance carries only the
 * operations it needs. */
enum { XF_AFF = 1, XF_RELU = 2, XF_SCALE = 4 };

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

int eps_fast_box3_fusable(int H, int W, box_mode mode, int xf, int epi);
int eps_fast_box3_avx512(const float *restrict a, float *restrict y, int nimg, int H, int W, const xform *f,
                         box_mode mode, float cnt, const float *restrict div, const float *restrict rdiv,
                         const b3io *io);
int eps_fast_wsum_s2_avx512(const float *restrict a, float *restrict ws, int H, int W, int OH, int OW, int k, int s,
                            int p, int d, const xform *f);
void eps_fast_stats_loop_avx512(statacc *s, const float *restrict x, size_t n, int track_max);
#endif
/* Calls of the calling thread into an AVX-512 kernel that did the work
 * (0 forever in a build without them): how a test proves the vector path ran. */
unsigned long eps_fast_avx512_calls(void);

/* ---- planning (eps_fast_plan.c) ---- */

void eps_fast_merge_nodes(const eps_graph *g, int *rep);
void eps_fast_find_views(const eps_graph *g, const int *rep, int *view);
int eps_fast_make_view(fpool *fp, const eps_node *nd, const ftensor *src, ftensor *y);
int eps_fast_stem_lookup(fpool *fp, const eps_node *nd, float w, ftensor *y);
void eps_fast_stem_store(fpool *fp, const eps_node *nd, float w, const ftensor *y);
int eps_fast_op_bn(run *R, const ftensor *x, ftensor *y);
int eps_fast_has_nonfinite(const ftensor *x);
int eps_fast_op_share_prefix(run *R, const ftensor *x, int c, ftensor *y);
int eps_fast_op_concat(run *R, const eps_node *nd, ftensor *const *xs, ftensor *y);
int eps_fast_op_flatten(run *R, const eps_node *xn, const ftensor *x, ftensor *y);
int eps_fast_recompute_max(void);
job *eps_fast_add_job(planner *P, int kind, int node, int gi, const eps_node *nd, const eps_node *xn, plane *out,
                      int nin, const grp *in);
int eps_fast_plan_conv(planner *P, int i, const eps_node *nd, const eps_node *xn, const ftensor *x, ftensor *y);
int eps_fast_plan_map(planner *P, int i, const eps_node *nd, const eps_node *xn, const ftensor *x, ftensor *y);
int eps_fast_plan_linear(planner *P, int i, const eps_node *nd, const eps_node *xn, const ftensor *x, ftensor *y);
int eps_fast_plan_add(planner *P, int i, const eps_node *nd, ftensor *const *xs, ftensor *y);
int eps_fast_materialise_shared(planner *P, int i, const eps_node *nd, ftensor *y);
void eps_fast_fuse_phase(planner *P);
/* A job that filled whole-batch planes lets go of its inputs. */
void eps_fast_job_drop_inputs(fpool *fp, job *j);

/* ---- running (eps_fast_exec.c) ---- */

void eps_fast_job_run(run *R, job *j, int b0, int b1);
void eps_fast_run_phase(run *R, planner *P);
void eps_fast_phase_release(run *R, planner *P);

#endif
