/* eps_engine_dense.c — the slow, obvious engine: every tensor stored in full
 * (NCHW float32), convolution as im2col + cblas_sgemm with every weight = w.
 * It exists to be checked against the PyTorch reference and to check the
 * single-plane engine op by op; clarity wins over speed here. */
#include "epsinas/engine/engine.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eps_engine_common.h"

/* Convolution as im2col + one sgemm per chunk of images and per group:
 * columns are (image, output position), so each sgemm is large enough for
 * OpenBLAS to run efficiently. col must hold K * chunk * OH * OW floats and
 * tmp cog * chunk * OH * OW. */
#define DENSE_COL_FLOATS (1L << 22)
/* Output channels per sgemm call: each row is computed alone (every weight
 * is w), so splitting rows changes no result, only how soon a cancel lands. */
#define DENSE_ROW_BLOCK 128

static int conv_chunk(const eps_node *nd, const eps_node *xn)
{
    long K = (long)(xn->c / nd->groups) * nd->kernel * nd->kernel, P = (long)nd->h * nd->w;
    long c = DENSE_COL_FLOATS / (K * P > (nd->out_c / nd->groups) * P ? K * P : (nd->out_c / nd->groups) * P);
    return c < 1 ? 1 : (int)c;
}

/* Returns 0, or -1 when *cancel was set: one layer can take seconds, so
 * the deadline is checked per chunk of images and group, not only between
 * nodes. */
static int conv2d(const eps_node *nd, const eps_node *xn, const float *x, float *y, int n, float w, float *col,
                  float *tmp, float *wmat, const atomic_int *cancel)
{
    int cin = xn->c, H = xn->h, W = xn->w, k = nd->kernel, s = nd->stride, p = nd->pad, d = nd->dilation;
    int G = nd->groups, cig = cin / G, cog = nd->out_c / G, OH = nd->h, OW = nd->w;
    int K = cig * k * k, P = OH * OW, chunk = conv_chunk(nd, xn);
    for (int i = 0; i < cog * K; i++) wmat[i] = w;
    for (int b0 = 0; b0 < n; b0 += chunk) {
        int nb = n - b0 < chunk ? n - b0 : chunk;
        long NP = (long)nb * P;
        for (int g = 0; g < G; g++) {
            if (cancel && atomic_load(cancel)) return -1;
            for (int c = 0; c < cig; c++)
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        float *row = col + ((long)(c * k + ky) * k + kx) * NP;
                        for (int b = 0; b < nb; b++) {
                            const float *xc = x + (((size_t)(b0 + b) * cin + (size_t)g * cig + c) * H) * W;
                            float *r = row + (long)b * P;
                            for (int oy = 0; oy < OH; oy++) {
                                int iy = oy * s - p + ky * d;
                                for (int ox = 0; ox < OW; ox++) {
                                    int ix = ox * s - p + kx * d;
                                    r[oy * OW + ox] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? xc[iy * W + ix] : 0.0f;
                                }
                            }
                        }
                    }
            /* in blocks of output channels, so a cancel is seen within one block */
            for (int c0 = 0; c0 < cog; c0 += DENSE_ROW_BLOCK) {
                if (cancel && atomic_load(cancel)) return -1;
                int cb = cog - c0 < DENSE_ROW_BLOCK ? cog - c0 : DENSE_ROW_BLOCK;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cb, (int)NP, K, 1.0f, wmat, K, col, (int)NP,
                            0.0f, tmp + (long)c0 * NP, (int)NP);
            }
            for (int b = 0; b < nb; b++)
                for (int co = 0; co < cog; co++)
                    memcpy(y + (((size_t)(b0 + b) * nd->out_c) + (size_t)g * cog + co) * P, tmp + (long)co * NP + (long)b * P,
                           sizeof(float) * P);
        }
    }
    return 0;
}

static void batchnorm(const float *x, float *y, int n, int c, int hw, float gamma)
{
    long count = (long)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double sum = 0;
        for (int b = 0; b < n; b++) {
            const float *p = x + ((size_t)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) sum += p[i];
        }
        double mean = sum / (double)count, ss = 0;
        for (int b = 0; b < n; b++) {
            const float *p = x + ((size_t)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) ss += ((double)p[i] - mean) * ((double)p[i] - mean);
        }
        float alpha, beta;
        eps_bn_coeffs(sum, ss, count, gamma, &alpha, &beta);
        for (int b = 0; b < n; b++) {
            const float *p = x + ((size_t)b * c + ch) * hw;
            float *q = y + ((size_t)b * c + ch) * hw;
            for (int i = 0; i < hw; i++) q[i] = p[i] * alpha + beta;
        }
    }
}

static void pool(const eps_node *nd, const eps_node *xn, const float *x, float *y, int n)
{
    int C = xn->c, H = xn->h, W = xn->w, k = nd->kernel, s = nd->stride, p = nd->pad;
    int OH = nd->h, OW = nd->w;
    for (long bc = 0; bc < (long)n * C; bc++) {
        const float *xp = x + (size_t)bc * H * W;
        float *yp = y + (size_t)bc * OH * OW;
        if (nd->op == EPS_OP_MAXPOOL) {
            eps_maxpool_plane(xp, yp, H, W, OH, OW, k, s, p);
            continue;
        }
        /* average: the in-bounds taps [y0, y1) x [x0, x1), summed row by row */
        for (int oy = 0; oy < OH; oy++) {
            int y0 = oy * s - p, y1 = y0 + k;
            y0 = y0 < 0 ? 0 : y0, y1 = y1 > H ? H : y1;
            for (int ox = 0; ox < OW; ox++) {
                int x0 = ox * s - p, x1 = x0 + k;
                x0 = x0 < 0 ? 0 : x0, x1 = x1 > W ? W : x1;
                float acc = 0.0f;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) acc += xp[iy * W + ix];
                int taps = (y1 > y0 ? y1 - y0 : 0) * (x1 > x0 ? x1 - x0 : 0);
                yp[oy * OW + ox] = acc / (float)(nd->count_include_pad ? k * k : taps);
            }
        }
    }
}

int eps_engine_dense_forward(const eps_graph *g, const eps_batch *b, float w, const eps_run_opts *opts, float *y,
                             eps_error *err)
{
    const eps_node *in = &g->nodes[0];
    if (b->kind != EPS_BATCH_IMAGES || b->c != in->c || b->h != in->h || b->w != in->w)
        return eps_error_set(err, EPS_EINVAL, "batch", "batch '%s' has shape %dx%dx%d, the network expects %dx%dx%d",
                             b->source, b->c, b->h, b->w, in->c, in->h, in->w);
    int n = b->n, rc = 0;
    int *last_use = eps_engine_last_use(g);
    float **t = calloc((size_t)g->n, sizeof *t);
    size_t col_max = 1, tmp_max = 1, wmax = 1;
    for (int i = 1; i < g->n; i++) {
        const eps_node *nd = &g->nodes[i];
        if (nd->op != EPS_OP_CONV2D) continue;
        const eps_node *xn = &g->nodes[nd->in[0]];
        size_t K = (size_t)(xn->c / nd->groups) * nd->kernel * nd->kernel, cog = (size_t)(nd->out_c / nd->groups);
        size_t cols = (size_t)conv_chunk(nd, xn) * nd->h * nd->w;
        if (K * cols > col_max) col_max = K * cols;
        if (cog * cols > tmp_max) tmp_max = cog * cols;
        if (K * cog > wmax) wmax = K * cog;
    }
    float *col = malloc(sizeof(float) * col_max), *wmat = malloc(sizeof(float) * wmax);
    float *ctmp = malloc(sizeof(float) * tmp_max);
    if (!last_use || !t || !col || !wmat || !ctmp) {
        rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory");
        goto out;
    }
    t[0] = b->data;
    for (int i = 1; i < g->n; i++) {
        if (last_use[i] < 0 && i != g->output) continue; /* dead node */
        if (opts && opts->cancel && *opts->cancel) {
            rc = eps_error_set(err, EPS_ECANCELED, "", "canceled");
            goto out;
        }
        const eps_node *nd = &g->nodes[i], *xn = &g->nodes[nd->in[0]];
        size_t osz = (size_t)n * nd->c * nd->h * nd->w, isz = (size_t)n * xn->c * xn->h * xn->w;
        float *o = malloc(sizeof(float) * (osz ? osz : 1));
        if (!o) {
            rc = eps_error_set(err, EPS_ENOMEM, "", "out of memory for node %d", i);
            goto out;
        }
        t[i] = o;
        const float *x = t[nd->in[0]];
        switch (nd->op) {
        case EPS_OP_CONV2D:
            if (conv2d(nd, xn, x, o, n, w, col, ctmp, wmat, opts ? opts->cancel : NULL)) {
                rc = eps_error_set(err, EPS_ECANCELED, "", "canceled");
                goto out;
            }
            break;
        case EPS_OP_BATCHNORM: batchnorm(x, o, n, nd->c, nd->h * nd->w, w); break;
        case EPS_OP_RELU:
            for (size_t k = 0; k < osz; k++) o[k] = x[k] < 0.0f ? 0.0f : x[k];
            break;
        case EPS_OP_AVGPOOL:
        case EPS_OP_MAXPOOL: pool(nd, xn, x, o, n); break;
        case EPS_OP_GLOBAL_AVGPOOL: {
            int hw = xn->h * xn->w;
            for (long bc = 0; bc < (long)n * nd->c; bc++) {
                double s = 0.0; /* as the fast engine: closest to the reference's rounding */
                for (int k = 0; k < hw; k++) s += x[(size_t)bc * hw + k];
                o[bc] = (float)(s / hw);
            }
            break;
        }
        case EPS_OP_LINEAR: {
            int fin = xn->c;
            for (int bi = 0; bi < n; bi++)
                for (int f = 0; f < nd->out_c; f++) {
                    float s = 0.0f;
                    for (int k = 0; k < fin; k++) s += w * x[(size_t)bi * fin + k];
                    o[(size_t)bi * nd->out_c + f] = s + 0.0f;
                }
            break;
        }
        case EPS_OP_ADD:
            memcpy(o, x, sizeof(float) * osz);
            for (int k = 1; k < nd->n_in; k++) {
                const float *z = t[nd->in[k]];
                for (size_t q = 0; q < osz; q++) o[q] += z[q];
            }
            break;
        case EPS_OP_CONCAT: {
            int hw = nd->h * nd->w, c0 = 0;
            for (int k = 0; k < nd->n_in; k++) {
                const eps_node *zn = &g->nodes[nd->in[k]];
                for (int bi = 0; bi < n; bi++)
                    memcpy(o + ((size_t)bi * nd->c + c0) * hw, t[nd->in[k]] + (size_t)bi * zn->c * hw,
                           sizeof(float) * (size_t)zn->c * hw);
                c0 += zn->c;
            }
            break;
        }
        case EPS_OP_SLICE: {
            size_t per = (size_t)nd->c * nd->h * nd->w;
            for (int bi = 0; bi < n; bi++) memcpy(o + bi * per, x + (size_t)bi * xn->c * xn->h * xn->w, sizeof(float) * per);
            break;
        }
        case EPS_OP_IDENTITY:
        case EPS_OP_FLATTEN: memcpy(o, x, sizeof(float) * isz); break;
        case EPS_OP_ZERO:
            for (size_t k = 0; k < osz; k++) o[k] = x[k] * 0.0f;
            break;
        default:
            rc = eps_error_set(err, EPS_EINTERNAL, "", "dense engine: unsupported op %s", eps_op_name(nd->op));
            goto out;
        }
        if (opts && opts->trace) opts->trace(opts->trace_ctx, i, o, n, nd->c, nd->h, nd->w);
        for (int k = 0; k < nd->n_in; k++) {
            int src = nd->in[k];
            if (src > 0 && last_use[src] == i && src != g->output) {
                free(t[src]);
                t[src] = NULL;
            }
        }
    }
    memcpy(y, t[g->output], sizeof(float) * (size_t)n * eps_graph_output_size(g));
out:
    if (t)
        for (int i = 1; i < g->n; i++) free(t[i]);
    free(t);
    free(last_use);
    free(col);
    free(ctmp);
    free(wmat);
    return rc;
}
