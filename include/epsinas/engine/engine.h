/* engine.h — the two forward engines over the graph IR.
 *
 * dense: NCHW float32 tensors, conv as im2col + cblas_sgemm (OpenBLAS);
 *        the slow, obvious implementation, checked against PyTorch.
 * fast:  the exact single-plane engine (spec §8): a tensor is a list of
 *        (channel count, B x H x W plane) groups, because with one constant
 *        weight every channel of a group is identical. Checked op by op
 *        against dense (tests/test_engine_equiv.c).
 * Both run with gradual underflow in float32, BN with batch statistics. */
#ifndef EPSINAS_ENGINE_H
#define EPSINAS_ENGINE_H

#include <stdatomic.h>
#include "epsinas/core/batch.h"
#include "epsinas/core/error.h"
#include "epsinas/core/graph.h"

typedef enum { EPS_ENGINE_FAST = 0, EPS_ENGINE_DENSE = 1 } eps_engine_kind;

/* Optional per-node observer (tests): called with the node's output
 * expanded to dense NCHW (n x c x h x w floats, valid only during the call). */
typedef void (*eps_trace_fn)(void *ctx, int node, const float *nchw, int n, int c, int h, int w);

typedef struct eps_run_opts {
    eps_engine_kind engine;
    const atomic_int *cancel;   /* checked between nodes; non-zero -> EPS_ECANCELED (set by
                                   another thread: an atomic, not volatile) */
    eps_trace_fn trace;         /* NULL: no tracing */
    void *trace_ctx;
    int stop_early;             /* eps_arch_score: skip the w2 pass when the w1 pass already
                                   makes epsilon NaN (its output stats are then NaN) */
} eps_run_opts;

/* Parses "fast" / "dense". Returns 0 or EPS_EINVAL. */
int eps_engine_parse(const char *s, eps_engine_kind *out);
const char *eps_engine_name(eps_engine_kind k);

/* Stops OpenBLAS's idle worker threads, which otherwise spin in
 * sched_yield on the other cores for the life of the process; a later
 * multi-threaded BLAS call starts them again. For processes that run only
 * the fast engine (or single-threaded BLAS). */
void eps_engine_blas_quiet(void);

/* Runs g on the image batch b with every weight = w, every bias = 0.
 * y (caller-allocated) receives b->n * eps_graph_output_size(g) floats,
 * image-major. opts may be NULL (fast engine, no cancel). */
int eps_engine_forward(const eps_graph *g, const eps_batch *b, float w,
                       const eps_run_opts *opts, float *y, eps_error *err);

int eps_engine_dense_forward(const eps_graph *g, const eps_batch *b, float w,
                             const eps_run_opts *opts, float *y, eps_error *err);
int eps_engine_fast_forward(const eps_graph *g, const eps_batch *b, float w,
                            const eps_run_opts *opts, float *y, eps_error *err);

/* The fast engine keeps a per-thread pool of planes so that a run allocates
 * nothing once warm; a thread that scored calls this before it exits. */
void eps_engine_fast_release_thread_cache(void);
/* Bytes of plane memory the calling thread's pool holds. A run that starts
 * with more than 256 MB releases the pool first, so a worker that sees many
 * batch sizes or networks stays bounded. */
size_t eps_engine_fast_thread_cache_bytes(void);

/* Tuning: a tensor read by a later phase (past a BatchNorm) is normally
 * stored for the whole batch; with max_cost > 0 it is kept in a chunk
 * buffer and its producing jobs are re-run in the later phase when that
 * takes at most max_cost jobs per chunk. Results are bit-identical either
 * way; on this project's 2-core VM re-running measured slower, so the
 * default is 0. Applies to runs that start afterwards, on every thread. */
void eps_engine_fast_set_recompute(int max_cost);

#endif
