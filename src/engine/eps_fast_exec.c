/* eps_fast_exec.c — running the fast engine (spec §8): eps_engine_fast_forward
 * analyses the graph, loads the input batch as channel planes, then plans
 * and runs it phase by phase.
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
#include "epsinas/engine/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eps_fast.h"

/* Expands groups to dense NCHW (n x c x h x w). */
static void expand(const ftensor *t, int n, int c, int h, int w, float *out)
{
    size_t hw = (size_t)h * w;
    for (int b = 0; b < n; b++) {
        int ch = 0;
        for (int i = 0; i < t->ng; i++)
            for (int k = 0; k < t->g[i].count; k++, ch++) {
                float *dst = out + ((size_t)b * c + ch) * hw;
                if (t->g[i].p) eps_fast_load_row(dst, t->g[i].p->data + (size_t)b * hw, hw, &t->g[i], t->relu);
                else memset(dst, 0, sizeof(float) * hw);
            }
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
        eps_fast_add_pair(q, img(t[0].p, b, b0), img(t[1].p, b, b0), &t[1], n);
        k = 2;
    } else {
        eps_fast_add_group(q, img(t[0].p, b, b0), &t[0], n, 1);
    }
    for (; k < nt; k++) eps_fast_add_group(q, img(t[k].p, b, b0), &t[k], n, 0);
}

/* The add fused into job j's output, for one image: q = the add's value
 * with a (this job's value) as its last term, as the J_ADD job computes it. */
static void epilogue_image(const job *j, int b, int b0, float *restrict q, const float *restrict a, size_t n)
{
    const grp plain = {.count = 1};
    if (j->nfout == 1 && !j->fout[0].affine) {
        eps_fast_add_pair(q, img(j->fout[0].p, b, b0), a, &plain, n);
        return;
    }
    sum_terms(q, j->fout, j->nfout, b, b0, n);
    eps_fast_add_group(q, a, &plain, n, 0);
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
        if (eps_fast_box3_avx512(img(j->fin[0].p, b0, b0), o0, nb, H, W, &f, BOX_SCALE, cnt, NULL, NULL,
                                 job_io(j, b0, &io)) >= 0)
            return;
#endif
        const grp plain = {.count = j->in[0].count};
        for (int b = 0; b < nb; b++) {
            sum_terms(R->in_buf, j->fin, 2, b0 + b, b0, ihw);
            eps_fast_conv3_image(R->in_buf, o0 + b * ohw, R->tmp, R->scaled, H, W, w, cnt, 0, j->relu, &plain);
        }
        return;
    }
    for (int gi = 0; gi < j->nin; gi++) {
        const grp *sg = &j->in[gi];
        const float *x0 = img(sg->p, b0, b0);
        float cnt = (float)sg->count;
        int acc = gi > 0;
        if (k == 1 && s == 1 && p == 0) {
            eps_fast_conv1_image(x0, o0, (size_t)nb * ihw, sg, j->relu, w, cnt, acc);
            continue;
        }
        if (is_box3_same(k, s, p, d)) {
#ifdef BOX3_AVX512
            xform f = {.affine = sg->affine, .relu = j->relu, .scale = 1, .al = sg->alpha, .be = sg->beta, .w = w};
            if (eps_fast_box3_avx512(x0, o0, nb, H, W, &f, acc ? BOX_ACCUM : BOX_SCALE, cnt, NULL, NULL, NULL) >= 0)
                continue;
#endif
            for (int b = 0; b < nb; b++)
                eps_fast_conv3_image(x0 + b * ihw, o0 + b * ohw, R->tmp, R->scaled, H, W, w, cnt, acc, j->relu, sg);
            continue;
        }
        for (int b = 0; b < nb; b++) {
            const float *x = x0 + b * ihw;
            float *o = o0 + b * ohw;
            int done = -1;
#ifdef BOX3_AVX512
            xform f = {.affine = sg->affine, .relu = j->relu, .scale = 1, .al = sg->alpha, .be = sg->beta, .w = w};
            done = eps_fast_wsum_s2_avx512(x, R->ws, H, W, OH, OW, k, s, p, d, &f);
#endif
            if (done < 0) {
                eps_fast_load_scaled(R->scaled, x, ihw, sg, j->relu, w);
                eps_fast_window_sum(R->scaled, R->ws, R->tmp, H, W, OH, OW, k, s, p, d, j->wt);
            }
            for (size_t q = 0; q < ohw; q++) o[q] = acc ? o[q] + cnt * R->ws[q] : cnt * R->ws[q];
        }
    }
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
            if (eps_fast_box3_img(x, R->tmp, y, H, W, 1.0f, BOX_RECIP, j->div, j->rdiv))
                eps_fast_box3_img(x, R->tmp, y, H, W, 1.0f, BOX_DIV, j->div, NULL);
        } else {
            int done = -1;
#ifdef BOX3_AVX512
            xform f = {0};
            done = eps_fast_wsum_s2_avx512(x, y, H, W, OH, OW, k, s, p, 1, &f);
#endif
            if (done < 0) eps_fast_window_sum(x, y, R->tmp, H, W, OH, OW, k, s, p, 1, j->wt);
            for (size_t q = 0; q < ohw; q++) y[q] /= j->div[q];
        }
        break;
    case EPS_OP_MAXPOOL: eps_fast_maxpool_img(x, y, R->tmp, H, W, OH, OW, k, s, p); break;
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
void eps_fast_job_run(run *R, job *j, int b0, int b1)
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
            if (eps_fast_box3_avx512(img(g->p, b0, b0), o0, (int)nb, j->xn->h, j->xn->w, &f, BOX_RECIP, 1.0f, j->div, j->rdiv,
                            job_io(j, b0, &io)) == 0)
                break;
        }
#endif
        if (g->p && j->map_op == EPS_OP_RELU && !j->fused_in && !j->nfout) {
            /* a materialised ReLU (read by a max pool, an add, a concat):
             * the load's own ReLU, x < 0 ? 0 : x after the lazy affine, is
             * the op itself (and ReLU of a ReLU is the ReLU), so one pass
             * over the chunk instead of a load and a map */
            eps_fast_load_row(o0, img(g->p, b0, b0), nb * ihw, g, 1);
            break;
        }
        for (int b = b0; b < b1; b++) {
            const float *x = g->p ? img(g->p, b, b0) : R->zeros;
            if (j->fused_in) { /* no ReLU: see fuse_phase */
                sum_terms(R->in_buf, j->fin, 2, b, b0, ihw);
                x = R->in_buf;
            } else if (g->affine || j->relu) {
                eps_fast_load_row(R->in_buf, x, ihw, g, j->relu);
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
    if (j->st) eps_fast_stats_image(j->st, o0, nb * ohw, b0 == 0);
}

/* Jobs that filled whole-batch planes will not run again: they let go of
 * their inputs. (A pooling that wrote an add's plane keeps them while its
 * own chunk buffer lives: a later phase may re-run it.) */
void eps_fast_phase_release(run *R, planner *P)
{
    for (job *j = P->head; j; j = j->next)
        if (!(j->nfout ? j->out_orig : j->out)->virt) eps_fast_job_drop_inputs(R->fp, j);
    P->head = NULL;
    P->tail = &P->head;
}

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
    out->g = eps_fast_arena_alloc(R->fp, sizeof(grp) * (size_t)x->ng);
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
        plane *o = eps_fast_plane_get(R->fp, (size_t)R->n, g->p->istride, 0);
        if (!o) {
            rc = EPS_ENOMEM;
            break;
        }
        out->g[i].p = o;
        if (!g->p->virt) {
            eps_fast_load_row(o->data, g->p->data, g->p->size, g, x->relu);
            continue;
        }
        job *j = eps_fast_add_job(&Z, x->relu ? J_MAP : J_ADD, -1, 0, xn, xn, o, 1, g);
        if (!j) rc = EPS_ENOMEM;
        else j->map_op = EPS_OP_RELU, j->relu = x->relu;
    }
    if (!rc && Z.head) eps_fast_run_phase(R, &Z);
    eps_fast_phase_release(R, &Z);
    return rc;
}

/* Runs the jobs of one phase chunk by chunk, then finishes their
 * statistics; an all-zero BatchNorm input becomes an exact zero group. */
void eps_fast_run_phase(run *R, planner *P)
{
    if (!P->head) return;
    for (int b0 = 0; b0 < R->n; b0 += P->cb) {
        int b1 = b0 + P->cb < R->n ? b0 + P->cb : R->n;
        for (job *j = P->head; j; j = j->next) eps_fast_job_run(R, j, b0, b1);
    }
    for (job *j = P->head; j; j = j->next) {
        if (!j->st && !j->stats_whole) continue;
        int nz = j->st ? eps_fast_stats_finish(j->st, j->out, (size_t)R->n * j->out->istride) : eps_fast_plane_stats(j->out);
        if (!nz && j->kind == J_CONV) {
            grp *g = &P->t[j->node].g[j->gi];
            if (g->p == j->out) {
                eps_fast_plane_put(R->fp, g->p);
                g->p = NULL;
            }
        }
    }
}

#define CHUNK_FLOATS 1024

/* What eps_engine_fast_forward decides about a graph before anything runs
 * (all arrays per node, in the run's arena). */
typedef struct analysis {
    int N, out, maxph, cbcap, trace;
    int *rep;           /* the node whose tensor a node shares (merge_nodes) */
    int *view;          /* the node whose plane a node shows under its own channel count, or -1 */
    int *phase;         /* BatchNorm, flatten and zero start a new phase */
    int *lastph;        /* the last phase that reads the node, or -1 */
    int *cbph;          /* images per chunk, per phase */
    char *live, *need, *conv_only, *bn_in, *recomputable;
} analysis;

/* Which nodes run, in which phase, and which of them need whole-batch
 * planes: from the graph alone. */
static void analyse_phases(const eps_graph *g, analysis *A)
{
    int N = A->N, out = A->out, *rep = A->rep, *view = A->view, *phase = A->phase, *lastph = A->lastph;
    char *live = A->live, *need = A->need, *conv_only = A->conv_only, *bn_in = A->bn_in;
    memset(live, 0, (size_t)N);
    live[out] = 1;
    for (int i = N - 1; i > 0; i--)
        if (live[i] && rep[i] == i) {
            for (int k = 0; k < g->nodes[i].n_in; k++) live[rep[g->nodes[i].in[k]]] = 1;
            if (view[i] >= 0) live[view[i]] = 1;
        }
    A->maxph = 0;
    phase[0] = 0;
    for (int i = 1; i < N; i++) {
        const eps_node *nd = &g->nodes[i];
        phase[i] = 0;
        if (!live[i] || rep[i] != i) continue;
        for (int k = 0; k < nd->n_in; k++)
            if (phase[rep[nd->in[k]]] > phase[i]) phase[i] = phase[rep[nd->in[k]]];
        if (nd->op == EPS_OP_BATCHNORM || nd->op == EPS_OP_FLATTEN || nd->op == EPS_OP_ZERO) phase[i]++;
        if (phase[i] > A->maxph) A->maxph = phase[i];
    }
    for (int i = 0; i < N; i++) {
        need[i] = A->trace || i == out;
        lastph[i] = -1;
        bn_in[i] = 0;
    }
    for (int i = 0; i < N; i++) conv_only[i] = 1;
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
}

/* Ops whose chunk buffers later phases may refill by re-running them;
 * flatten and zero read whole tensors, so their inputs are stored. And the
 * chunk size per phase: a few images of the largest plane in it. */
static void analyse_chunks(const eps_graph *g, int n, analysis *A)
{
    int N = A->N;
    for (int i = 0; i < N; i++) {
        int op = g->nodes[i].op;
        A->recomputable[i] = i > 0 && !A->trace && i != A->out &&
                             (op == EPS_OP_CONV2D || op == EPS_OP_AVGPOOL || op == EPS_OP_MAXPOOL ||
                              op == EPS_OP_GLOBAL_AVGPOOL || op == EPS_OP_RELU || op == EPS_OP_ADD || op == EPS_OP_LINEAR);
    }
    for (int i = 1; i < N; i++)
        if (A->live[i] && A->rep[i] == i && (g->nodes[i].op == EPS_OP_FLATTEN || g->nodes[i].op == EPS_OP_ZERO))
            A->recomputable[A->rep[g->nodes[i].in[0]]] = 0;
    A->cbcap = 1;
    for (int ph = 0; ph <= A->maxph; ph++) {
        size_t biggest = 1;
        for (int i = 1; i < N; i++) {
            const eps_node *nd = &g->nodes[i];
            if (!A->live[i] || A->rep[i] != i || A->phase[i] != ph) continue;
            if ((size_t)nd->h * nd->w > biggest) biggest = (size_t)nd->h * nd->w;
            for (int k = 0; k < nd->n_in; k++) {
                const eps_node *xn = &g->nodes[nd->in[k]];
                if ((size_t)xn->h * xn->w > biggest) biggest = (size_t)xn->h * xn->w;
            }
        }
        A->cbph[ph] = biggest >= CHUNK_FLOATS ? 1 : (int)(CHUNK_FLOATS / biggest);
        if (A->cbph[ph] > n) A->cbph[ph] = n > 0 ? n : 1;
        if (A->cbph[ph] > A->cbcap) A->cbcap = A->cbph[ph];
    }
}

/* The analysis of g for a run on n images; EPS_ENOMEM. */
static int analyse(fpool *fp, const eps_graph *g, int n, int trace, analysis *A)
{
    size_t N = (size_t)g->n;
    A->N = g->n, A->trace = trace;
    A->rep = eps_fast_arena_alloc(fp, sizeof(int) * N), A->view = eps_fast_arena_alloc(fp, sizeof(int) * N);
    A->phase = eps_fast_arena_alloc(fp, sizeof(int) * N), A->lastph = eps_fast_arena_alloc(fp, sizeof(int) * N);
    A->live = eps_fast_arena_alloc(fp, N), A->need = eps_fast_arena_alloc(fp, N);
    A->conv_only = eps_fast_arena_alloc(fp, N), A->bn_in = eps_fast_arena_alloc(fp, N);
    A->recomputable = eps_fast_arena_alloc(fp, N);
    if (!A->rep || !A->view || !A->phase || !A->lastph || !A->live || !A->need || !A->conv_only || !A->bn_in ||
        !A->recomputable)
        return EPS_ENOMEM;
    eps_fast_merge_nodes(g, A->rep);
    eps_fast_find_views(g, A->rep, A->view);
    A->out = A->rep[g->output];
    analyse_phases(g, A);
    A->cbph = eps_fast_arena_alloc(fp, sizeof(int) * (size_t)(A->maxph + 1));
    if (!A->cbph) return EPS_ENOMEM;
    analyse_chunks(g, n, A);
    return 0;
}

/* The run's one-image scratch buffers: one image of any input or output,
 * and the H x OW row sums between. */
static int run_buffers(run *R, const eps_graph *g)
{
    const eps_node *in = &g->nodes[0];
    size_t maxplane = (size_t)in->h * in->w;
    for (int i = 1; i < g->n; i++) {
        const eps_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_in; k++) {
            const eps_node *xn = &g->nodes[nd->in[k]];
            size_t s = (size_t)(xn->h > nd->h ? xn->h : nd->h) * (size_t)(xn->w > nd->w ? xn->w : nd->w);
            if (s > maxplane) maxplane = s;
        }
    }
    float *imgs = eps_fast_arena_alloc(R->fp, sizeof(float) * (6 * maxplane + 64));
    if (!imgs) return EPS_ENOMEM;
    R->in_buf = imgs, R->scaled = imgs + maxplane, R->tmp = imgs + 2 * maxplane, R->ws = imgs + 4 * maxplane;
    R->zeros = imgs + 5 * maxplane;
    memset(R->zeros, 0, sizeof(float) * maxplane);
    return 0;
}

/* The input tensor: one group per channel (channels of a real image
 * differ), from the thread's cache when it holds this batch. *cacheable:
 * the batch can be cached (and so can the stem convolution). */
static int load_input(run *R, const eps_graph *g, const eps_batch *b, ftensor *t0, int *cacheable)
{
    fpool *fp = R->fp;
    const eps_node *in = &g->nodes[0];
    int n = R->n;
    size_t ihw = (size_t)in->h * in->w;
    t0->ng = in->c;
    t0->g = eps_fast_arena_alloc(fp, sizeof(grp) * (size_t)in->c);
    if (!t0->g) return EPS_ENOMEM;
    memset(t0->g, 0, sizeof(grp) * (size_t)in->c);
    t0->valid = 1;
    *cacheable = in->c <= INPUT_CACHE_MAX_C && b->hash[0];
    int cached = *cacheable && fp->in_data == b->data && fp->in_n == n && fp->in_c == in->c && fp->in_h == in->h &&
                 fp->in_w == in->w && !strcmp(fp->in_hash, b->hash);
    if (*cacheable && !cached) {
        eps_fast_input_cache_drop(fp);
        fp->in_data = b->data, fp->in_n = n, fp->in_c = in->c, fp->in_h = in->h, fp->in_w = in->w;
        memcpy(fp->in_hash, b->hash, sizeof fp->in_hash);
    }
    for (int c = 0; c < in->c; c++) {
        plane *p = cached ? fp->in_planes[c] : eps_fast_plane_get(fp, (size_t)n, ihw, 0);
        if (!p) {
            if (*cacheable) eps_fast_input_cache_drop(fp);
            return EPS_ENOMEM;
        }
        if (cached) {
            p->refs++;
        } else {
            for (int bi = 0; bi < n; bi++)
                memcpy(p->data + (size_t)bi * ihw, b->data + ((size_t)bi * in->c + c) * ihw, sizeof(float) * ihw);
            if (*cacheable) {
                fp->in_planes[c] = p; /* the cache's reference */
                p->refs++;
            }
        }
        t0->g[c] = (grp){.count = 1, .p = p};
    }
    return 0;
}

/* Zero of x: exact zeros, or, when x holds an infinity or NaN (0 * inf =
 * NaN), computed now over the whole batch. */
static int plan_zero(planner *P, analysis *A, int i, const eps_node *nd, const eps_node *xn, const ftensor *plain,
                     ftensor *yt)
{
    run *R = P->R;
    int rc = 0;
    if (eps_fast_has_nonfinite(plain)) {
        planner Z = *P;
        Z.head = NULL, Z.tail = &Z.head;
        char keep = A->need[i];
        A->need[i] = 1;
        rc = eps_fast_plan_map(&Z, i, nd, xn, plain, yt);
        A->need[i] = keep;
        for (job *j = Z.head; j && !rc; j = j->next) j->map_op = EPS_OP_ZERO, eps_fast_job_run(R, j, 0, R->n);
        eps_fast_phase_release(R, &Z);
        return rc;
    }
    yt->ng = 1;
    yt->g = eps_fast_arena_alloc(R->fp, sizeof(grp));
    if (!yt->g) return EPS_ENOMEM;
    yt->g[0] = (grp){.count = nd->c};
    return 0;
}

/* Plans node i (its jobs join the phase, or it is computed right away when
 * it only rearranges groups). *stem_node: set when i is a stem convolution
 * to remember after the phase. */
static int plan_node(planner *P, analysis *A, int i, int cacheable, int *stem_node)
{
    run *R = P->R;
    const eps_graph *g = R->g;
    ftensor *t = P->t;
    const eps_node *nd = &g->nodes[i];
    const eps_node *xn = &g->nodes[nd->in[0]];
    ftensor *x = &t[A->rep[nd->in[0]]], *yt = &t[i];
    ftensor *xs[EPS_GRAPH_MAX_INPUTS];
    for (int k = 0; k < nd->n_in; k++) xs[k] = &t[A->rep[nd->in[k]]];
    ftensor plain;
    int owned = 0, rc = 0;
    int stem = cacheable && nd->op == EPS_OP_CONV2D && nd->in[0] == 0;
    if (A->view[i] >= 0 && eps_fast_make_view(R->fp, nd, &t[A->view[i]], yt)) return 0;
    switch (nd->op) {
    case EPS_OP_CONV2D:
        if (stem && eps_fast_stem_lookup(R->fp, nd, R->w, yt)) break;
        if (stem) {
            A->need[i] = 1; /* the stem cache keeps whole planes */
            A->recomputable[i] = 0;
            *stem_node = i;
        }
        rc = eps_fast_plan_conv(P, i, nd, xn, x, yt);
        break;
    case EPS_OP_BATCHNORM: /* whole-batch work on a finished input */
        if (!(rc = ensure_plain(R, P, xn, x, &plain, &owned, 1))) rc = eps_fast_op_bn(R, &plain, yt);
        break;
    case EPS_OP_FLATTEN:
        if (!(rc = ensure_plain(R, P, xn, x, &plain, &owned, 0))) rc = eps_fast_op_flatten(R, xn, &plain, yt);
        break;
    case EPS_OP_ZERO:
        if (!(rc = ensure_plain(R, P, xn, x, &plain, &owned, 0))) rc = plan_zero(P, A, i, nd, xn, &plain, yt);
        break;
    case EPS_OP_RELU:
        if (A->conv_only[i] && !A->trace) { /* applied by the convolutions that read it */
            rc = eps_fast_op_share_prefix(R, x, nd->c, yt);
            yt->relu = 1;
        } else {
            rc = eps_fast_plan_map(P, i, nd, xn, x, yt);
        }
        break;
    case EPS_OP_AVGPOOL:
    case EPS_OP_MAXPOOL:
    case EPS_OP_GLOBAL_AVGPOOL: rc = eps_fast_plan_map(P, i, nd, xn, x, yt); break;
    case EPS_OP_LINEAR: rc = eps_fast_plan_linear(P, i, nd, xn, x, yt); break;
    case EPS_OP_ADD:
        if (!(rc = eps_fast_plan_add(P, i, nd, xs, yt))) rc = eps_fast_materialise_shared(P, i, nd, yt);
        break;
    case EPS_OP_CONCAT:
        if (!(rc = eps_fast_op_concat(R, nd, xs, yt))) rc = eps_fast_materialise_shared(P, i, nd, yt);
        break;
    case EPS_OP_SLICE:
        if (!(rc = eps_fast_op_share_prefix(R, x, nd->out_c, yt))) rc = eps_fast_materialise_shared(P, i, nd, yt);
        break;
    default: rc = EPS_EINTERNAL; break;
    }
    if (owned) eps_fast_tensor_release(R->fp, &plain);
    return rc;
}

/* Plans and runs every phase in turn; a tensor no later phase reads is
 * released after its last one. */
static int run_phases(planner *P, analysis *A, int cacheable, const eps_run_opts *opts, eps_error *err)
{
    run *R = P->R;
    const eps_graph *g = R->g;
    for (int ph = 0; ph <= A->maxph; ph++) {
        if (opts && opts->cancel && *opts->cancel) return eps_error_set(err, EPS_ECANCELED, "", "canceled");
        P->cb = A->cbph[ph];
        P->seq = ++R->seq;
        int stem_node = -1;
        for (int i = 1; i < A->N; i++) {
            if (!A->live[i] || A->rep[i] != i || A->phase[i] != ph) continue;
            int rc = plan_node(P, A, i, cacheable, &stem_node);
            P->t[i].valid = 1;
            if (rc == EPS_ENOMEM) return eps_error_set(err, rc, "", "out of memory at node %d", i);
            if (rc)
                return eps_error_set(err, rc, "", "fast engine: unsupported op %s", eps_op_name(g->nodes[i].op));
        }
        eps_fast_fuse_phase(P);
        eps_fast_run_phase(R, P);
        eps_fast_phase_release(R, P);
        if (stem_node >= 0) eps_fast_stem_store(R->fp, &g->nodes[stem_node], R->w, &P->t[stem_node]);
        /* tracing reports every node at the end, so it keeps every tensor */
        for (int i = 1; i < A->N && !A->trace; i++)
            if (A->lastph[i] == ph && i != A->out) eps_fast_tensor_release(R->fp, &P->t[i]);
    }
    return 0;
}

/* Every traced node as a dense NCHW tensor, to opts->trace. */
static int report_trace(run *R, const analysis *A, const ftensor *t, const eps_run_opts *opts)
{
    float *dense = NULL;
    for (int i = 1; i < A->N; i++) {
        const eps_node *nd = &R->g->nodes[i];
        if (!A->live[A->rep[i]] || !t[A->rep[i]].valid) continue;
        size_t sz = (size_t)R->n * nd->c * nd->h * nd->w;
        float *d = realloc(dense, sizeof(float) * sz);
        if (!d) {
            free(dense);
            return EPS_ENOMEM;
        }
        dense = d;
        expand(&t[A->rep[i]], R->n, nd->c, nd->h, nd->w, dense);
        opts->trace(opts->trace_ctx, i, dense, R->n, nd->c, nd->h, nd->w);
    }
    free(dense);
    return 0;
}

/* The output node's values for every image, dense, into y. */
static int write_output(planner *P, const analysis *A, float *y)
{
    run *R = P->R;
    const eps_node *on = &R->g->nodes[R->g->output];
    ftensor fin;
    int owned = 0;
    P->seq = ++R->seq;
    int rc = ensure_plain(R, P, &R->g->nodes[A->out], &P->t[A->out], &fin, &owned, 0);
    if (rc) return rc;
    expand(&fin, R->n, on->c, on->h, on->w, y);
    if (owned) eps_fast_tensor_release(R->fp, &fin);
    return 0;
}

int eps_engine_fast_forward(const eps_graph *g, const eps_batch *b, float w, const eps_run_opts *opts, float *y,
                            eps_error *err)
{
    const eps_node *in = &g->nodes[0];
    if (b->kind != EPS_BATCH_IMAGES || b->c != in->c || b->h != in->h || b->w != in->w)
        return eps_error_set(err, EPS_EINVAL, "batch", "batch '%s' has shape %dx%dx%d, the network expects %dx%dx%d",
                             b->source, b->c, b->h, b->w, in->c, in->h, in->w);
    fpool *fp = eps_fast_thread_pool();
    /* The pool keeps planes by exact size, so a worker that sees many batch
     * sizes or networks would keep growing: past the bound, start afresh
     * (between runs nothing else holds a plane). */
    if (fp->bytes > POOL_TRIM_BYTES) eps_engine_fast_release_thread_cache();
    eps_fast_arena_reset(fp);
    int trace = opts && opts->trace, cacheable = 0;
    run R = {.fp = fp, .g = g, .n = b->n, .w = w};
    analysis A = {0};
    ftensor *t = eps_fast_arena_alloc(fp, sizeof(ftensor) * (size_t)g->n);
    if (!t || analyse(fp, g, b->n, trace, &A) || run_buffers(&R, g))
        return eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    memset(t, 0, sizeof(ftensor) * (size_t)g->n);
    planner P = {.R = &R, .t = t, .need = A.need, .bn_in = A.bn_in, .recomputable = A.recomputable,
                 .cbcap = A.cbcap, .out = A.out, .trace = trace, .recompute_max = eps_fast_recompute_max()};
    P.tail = &P.head;
    int rc = load_input(&R, g, b, &t[0], &cacheable);
    if (rc) rc = eps_error_set(err, rc, "", "out of memory");
    if (!rc) rc = run_phases(&P, &A, cacheable, opts, err);
    if (!rc && trace && report_trace(&R, &A, t, opts)) rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    if (!rc && write_output(&P, &A, y)) rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory");
    eps_fast_phase_release(&R, &P);
    for (int i = 0; i < g->n; i++) eps_fast_tensor_release(fp, &t[i]);
    return rc;
}
