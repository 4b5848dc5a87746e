/* eps_fast_plan.c — what the fast engine will compute, before it runs:
 * merging identical nodes and finding views (one plane under two channel
 * counts), the stem cache, the ops that only rearrange groups (BatchNorm
 * left lazy, concat, slice, flatten), one job per distinct output group
 * for convolutions, maps, adds and linear layers, and the fusion of adds
 * into the box sums next to them. */
#include "epsinas/engine/engine.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "eps_engine_common.h"
#include "eps_fast.h"

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
        p->maxabs = eps_fast_plane_maxabs(p);
        p->maxabs_known = 1;
    }
    return p->maxabs * fabsf(alpha) == 0.0f;
}

/* BatchNorm with batch statistics, left lazy: the output groups share the
 * input planes with (alpha, beta), and readers apply them. When
 * fl(max|x| * |alpha|) is 0 every output is an exact zero (rounding is
 * monotone and |beta| <= that bound), so the group becomes a zero plane:
 * this is where the tiny first initialisation underflows. */
int eps_fast_op_bn(run *R, const ftensor *x, ftensor *y)
{
    y->ng = x->ng;
    y->g = eps_fast_arena_alloc(R->fp, sizeof(grp) * (size_t)x->ng);
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
        if (!xp->has_stats) eps_fast_plane_stats(xp);
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

int eps_fast_has_nonfinite(const ftensor *x)
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
int eps_fast_op_share_prefix(run *R, const ftensor *x, int c, ftensor *y)
{
    y->g = eps_fast_arena_alloc(R->fp, sizeof(grp) * (size_t)x->ng);
    if (!y->g) return EPS_ENOMEM;
    y->ng = segments_of(x, 0, c, y->g);
    for (int i = 0; i < y->ng; i++)
        if (y->g[i].p) y->g[i].p->refs++;
    return 0;
}

int eps_fast_op_concat(run *R, const eps_node *nd, ftensor *const *xs, ftensor *y)
{
    int total = 0;
    for (int k = 0; k < nd->n_in; k++) total += xs[k]->ng;
    y->g = eps_fast_arena_alloc(R->fp, sizeof(grp) * (size_t)total);
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
int eps_fast_op_flatten(run *R, const eps_node *xn, const ftensor *x, ftensor *y)
{
    int hw = xn->h * xn->w;
    if (hw == 1) return eps_fast_op_share_prefix(R, x, xn->c, y);
    size_t total = 0;
    for (int i = 0; i < x->ng; i++) total += (size_t)x->g[i].count * hw;
    y->g = eps_fast_arena_alloc(R->fp, sizeof(grp) * total);
    plane **pos = eps_fast_arena_alloc(R->fp, sizeof(plane *) * (size_t)hw);
    if (!y->g || !pos) return EPS_ENOMEM;
    y->ng = 0;
    for (int i = 0; i < x->ng; i++) {
        for (int q = 0; q < hw; q++) {
            pos[q] = NULL;
            if (!x->g[i].p) continue;
            pos[q] = eps_fast_plane_get(R->fp, (size_t)R->n, 1, 0);
            if (!pos[q]) return EPS_ENOMEM;
            for (int b = 0; b < R->n; b++) pos[q]->data[b] = x->g[i].p->data[(size_t)b * hw + q];
        }
        for (int c = 0; c < x->g[i].count; c++)
            for (int q = 0; q < hw; q++) {
                y->g[y->ng++] = (grp){.count = 1, .p = pos[q]};
                if (pos[q]) pos[q]->refs++;
            }
        for (int q = 0; q < hw; q++) eps_fast_plane_put(R->fp, pos[q]);
    }
    return 0;
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
void eps_fast_merge_nodes(const eps_graph *g, int *rep)
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

void eps_fast_find_views(const eps_graph *g, const int *rep, int *view)
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
int eps_fast_make_view(fpool *fp, const eps_node *nd, const ftensor *src, ftensor *y)
{
    if (!src->valid || src->ng != 1) return 0;
    y->g = eps_fast_arena_alloc(fp, sizeof(grp));
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
int eps_fast_stem_lookup(fpool *fp, const eps_node *nd, float w, ftensor *y)
{
    for (int e = 0; e < 2; e++) {
        if (!fp->stem[e].valid || fp->stem[e].w != w || !same_conv(&fp->stem[e].node, nd)) continue;
        y->g = eps_fast_arena_alloc(fp, sizeof(grp) * (size_t)fp->stem[e].ng);
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

void eps_fast_stem_store(fpool *fp, const eps_node *nd, float w, const ftensor *y)
{
    if (y->ng > 4) return;
    int e = fp->stem_next;
    fp->stem_next ^= 1;
    for (int k = 0; fp->stem[e].valid && k < fp->stem[e].ng; k++) eps_fast_plane_put(fp, fp->stem[e].g[k].p);
    fp->stem[e].valid = 1;
    fp->stem[e].node = *nd;
    fp->stem[e].w = w;
    fp->stem[e].ng = y->ng;
    for (int k = 0; k < y->ng; k++) {
        fp->stem[e].g[k] = y->g[k];
        if (y->g[k].p) y->g[k].p->refs++;
    }
}

void eps_fast_job_drop_inputs(fpool *fp, job *j)
{
    if (!j->owns) return;
    j->owns = 0;
    for (int k = 0; k < j->nin; k++) eps_fast_plane_put(fp, j->in[k].p);
}

/* When re-running a few cheap jobs per chunk costs less than writing a
 * whole-batch plane and reading it back in a later phase (see
 * eps_engine_fast_set_recompute; 0: always store). */
static _Atomic int recompute_max_cost = 0;

int eps_fast_recompute_max(void) { return atomic_load(&recompute_max_cost); }

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
    return eps_fast_plane_get(P->R->fp, whole ? (size_t)P->R->n : (size_t)P->cbcap, isz, !whole);
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
    job *c = eps_fast_arena_alloc(P->R->fp, sizeof *c);
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

job *eps_fast_add_job(planner *P, int kind, int node, int gi, const eps_node *nd, const eps_node *xn, plane *out,
                    int nin, const grp *in)
{
    job *j = eps_fast_arena_alloc(P->R->fp, sizeof *j);
    grp *cp = eps_fast_arena_alloc(P->R->fp, sizeof(grp) * (size_t)(nin ? nin : 1));
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
    j->st = eps_fast_arena_alloc(P->R->fp, sizeof(statacc));
    if (!j->st) return EPS_ENOMEM;
    j->st->track_max = j->out->virt;
    return 0;
}

int eps_fast_plan_conv(planner *P, int i, const eps_node *nd, const eps_node *xn, const ftensor *x, ftensor *y)
{
    fpool *fp = P->R->fp;
    int G = nd->groups, cig = xn->c / G, cog = nd->out_c / G;
    size_t ohw = (size_t)nd->h * nd->w;
    y->g = eps_fast_arena_alloc(fp, sizeof(grp) * (size_t)G);
    grp *seg = eps_fast_arena_alloc(fp, sizeof(grp) * (size_t)(x->ng + 1));
    grp *prev = eps_fast_arena_alloc(fp, sizeof(grp) * (size_t)(x->ng + 1));
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
            job *j = eps_fast_add_job(P, J_CONV, i, y->ng, nd, xn, o, nz, seg);
            if (!j) {
                eps_fast_plane_put(fp, o);
                return EPS_ENOMEM;
            }
            j->relu = x->relu;
            if (!is_box3_same(nd->kernel, nd->stride, nd->pad, nd->dilation) &&
                !(nd->kernel == 1 && nd->stride == 1 && nd->pad == 0) &&
                !(j->wt = eps_fast_wtab_make(fp, xn->h, xn->w, nd->h, nd->w, nd->kernel, nd->stride, nd->pad, nd->dilation)))
                return EPS_ENOMEM;
            if ((!o->virt || P->bn_in[i]) && want_stats(P, j, ohw)) return EPS_ENOMEM;
        }
        y->g[y->ng++] = (grp){.count = cog, .p = o};
    }
    return 0;
}

/* relu / avg pool / max pool / global average pool over each distinct group. */
int eps_fast_plan_map(planner *P, int i, const eps_node *nd, const eps_node *xn, const ftensor *x, ftensor *y)
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
        div = eps_fast_arena_alloc(fp, sizeof(float) * ohw);
        rdiv = eps_fast_arena_alloc(fp, sizeof(float) * ohw);
        if (!div || !rdiv) return EPS_ENOMEM;
        for (int oy = 0; oy < nd->h; oy++) {
            int cy = eps_fast_window_count(oy, s, p, k, xn->h);
            for (int ox = 0; ox < nd->w; ox++)
                div[oy * nd->w + ox] = (float)(nd->count_include_pad ? k * k : cy * eps_fast_window_count(ox, s, p, k, xn->w));
        }
        for (size_t q = 0; q < ohw; q++) rdiv[q] = 1.0f / div[q];
    }
    y->ng = x->ng;
    y->g = eps_fast_arena_alloc(fp, sizeof(grp) * (size_t)x->ng);
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
        job *j = eps_fast_add_job(P, J_MAP, i, gi, nd, xn, o, 1, &x->g[gi]);
        if (!j) {
            eps_fast_plane_put(fp, o);
            return EPS_ENOMEM;
        }
        j->map_op = nd->op, j->relu = x->relu, j->div = div, j->rdiv = rdiv;
        if (nd->op == EPS_OP_AVGPOOL && !is_box3_same(nd->kernel, nd->stride, nd->pad, 1) &&
            !(j->wt = eps_fast_wtab_make(fp, xn->h, xn->w, nd->h, nd->w, nd->kernel, nd->stride, nd->pad, 1)))
            return EPS_ENOMEM;
        y->g[gi].p = o;
    }
    return 0;
}

int eps_fast_plan_linear(planner *P, int i, const eps_node *nd, const eps_node *xn, const ftensor *x, ftensor *y)
{
    fpool *fp = P->R->fp;
    y->ng = 1;
    y->g = eps_fast_arena_alloc(fp, sizeof(grp));
    grp *in = eps_fast_arena_alloc(fp, sizeof(grp) * (size_t)x->ng);
    if (!y->g || !in) return EPS_ENOMEM;
    int nz = 0;
    for (int k = 0; k < x->ng; k++)
        if (x->g[k].p) in[nz++] = x->g[k];
    y->g[0] = (grp){.count = nd->out_c};
    if (!nz) return 0; /* w * 0 + 0 */
    plane *o = out_plane(P, i, 1, 1 + tensor_cost(x));
    if (!o) return EPS_ENOMEM;
    job *j = eps_fast_add_job(P, J_LINEAR, i, 0, nd, xn, o, nz, in);
    if (!j) {
        eps_fast_plane_put(fp, o);
        return EPS_ENOMEM;
    }
    j->relu = x->relu;
    y->g[0].p = o;
    return 0;
}

/* Sums aligned channel segments of several inputs (in input order, as the
 * reference adds them). */
int eps_fast_plan_add(planner *P, int i, const eps_node *nd, ftensor *const *xs, ftensor *y)
{
    fpool *fp = P->R->fp;
    int nin = nd->n_in, C = nd->c;
    size_t ohw = (size_t)nd->h * nd->w;
    int maxg = 0;
    for (int k = 0; k < nin; k++) maxg += xs[k]->ng;
    y->g = eps_fast_arena_alloc(fp, sizeof(grp) * (size_t)maxg);
    int *gi = eps_fast_arena_alloc(fp, sizeof(int) * (size_t)nin), *left = eps_fast_arena_alloc(fp, sizeof(int) * (size_t)nin);
    grp *prev = eps_fast_arena_alloc(fp, sizeof(grp) * (size_t)nin), *cur = eps_fast_arena_alloc(fp, sizeof(grp) * (size_t)nin);
    grp *terms = eps_fast_arena_alloc(fp, sizeof(grp) * (size_t)nin);
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
                job *j = eps_fast_add_job(P, J_ADD, i, y->ng, nd, nd, o, nz, terms);
                if (!j) {
                    eps_fast_plane_put(fp, o);
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
int eps_fast_materialise_shared(planner *P, int i, const eps_node *nd, ftensor *y)
{
    if (i != P->out && !P->trace) return 0; /* later phases re-run the producers of shared chunk buffers */
    grp *orig = eps_fast_arena_alloc(P->R->fp, sizeof(grp) * (size_t)(y->ng ? y->ng : 1));
    if (!orig) return EPS_ENOMEM;
    memcpy(orig, y->g, sizeof(grp) * (size_t)y->ng);
    for (int gi = 0; gi < y->ng; gi++) {
        grp *g = &y->g[gi];
        if (!g->p || !g->p->virt) continue;
        int dup = -1;
        for (int k = 0; k < gi && dup < 0; k++)
            if (same_grp(&orig[k], &orig[gi])) dup = k;
        plane *o = dup >= 0 ? y->g[dup].p : eps_fast_plane_get(P->R->fp, (size_t)P->R->n, g->p->istride, 0);
        if (!o) return EPS_ENOMEM;
        if (dup >= 0) {
            o->refs++;
        } else if (!eps_fast_add_job(P, J_ADD, i, gi, nd, nd, o, 1, g)) {
            eps_fast_plane_put(P->R->fp, o);
            return EPS_ENOMEM;
        }
        eps_fast_plane_put(P->R->fp, g->p);
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
void eps_fast_fuse_phase(planner *P)
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
        box_mode mode = pool ? BOX_RECIP : BOX_SCALE;
        int xf = pool ? 0 : XF_SCALE | XF_RELU;
        plane *p = m->in[0].p;
        job *a = p->virt ? p->producer : NULL;
        if (a && a->kind == J_ADD && !a->skip && a->nin == 2 && !a->st && !a->stats_whole &&
            eps_fast_box3_fusable(m->xn->h, m->xn->w, mode, xf, 0) && plane_readers(P, p) == 1) {
            m->fin[0] = a->in[0], m->fin[1] = a->in[1];
            m->fused_in = 1;
            a->skip = 1;
        }
        if (!pool || !m->out->virt || plane_readers(P, m->out) != 1) continue;
        job *b = NULL;
        for (job *j = m->next; j && !b; j = j->next)
            if (!j->skip && j->kind == J_ADD && j->nin >= 2 && j->in[j->nin - 1].p == m->out) b = j;
        if (!b || b->nin > 3 || b->in[b->nin - 1].affine || !eps_fast_box3_fusable(m->xn->h, m->xn->w, BOX_RECIP, 0, 1))
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
