/* eps_score.c — epsilon from the two output vectors, with the reference's
 * NaN rules (spec §1): float32 min-max normalisation, exact zeros -> NaN,
 * epsilon = nanmean(|p1 - p2|) / nanmean([p1; p2]). */
#include "epsinas/core/score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Normalises y into p (float32 arithmetic, as the reference); returns 0, or
 * writes a reason and returns -1 when the whole row is undefined. */
static int normalise(const float *y, long n, float *p, double w, eps_score *out, int pass)
{
    float lo = NAN, hi = NAN;
    double sum = 0;
    for (long i = 0; i < n; i++) {
        float v = y[i];
        sum += v;
        if (isnan(v)) continue;
        if (isnan(lo) || v < lo) lo = v;
        if (isnan(hi) || v > hi) hi = v;
    }
    out->ymin[pass] = lo;
    out->ymax[pass] = hi;
    out->ymean[pass] = sum / (double)n;
    if (isnan(lo)) {
        snprintf(out->nan_reason, sizeof out->nan_reason, "output is all NaN at w=%g", w);
        return -1;
    }
    float range = hi - lo;
    if (range == 0.0f) {
        snprintf(out->nan_reason, sizeof out->nan_reason, "constant output at w=%g", w);
        return -1;
    }
    for (long i = 0; i < n; i++) {
        float v = (y[i] - lo) / range;
        p[i] = v == 0.0f ? NAN : v; /* exact zeros (at least the arg-min) are dropped */
    }
    return 0;
}

void eps_score_epsilon(const float *y1, const float *y2, long n, const double w[2], eps_score *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    out->weights[0] = w[0];
    out->weights[1] = w[1];
    out->epsilon = NAN;
    float *p = malloc(sizeof(float) * (size_t)n * 2);
    if (!p) {
        snprintf(out->nan_reason, sizeof out->nan_reason, "out of memory");
        return;
    }
    char first_reason[sizeof out->nan_reason] = "";
    int bad1 = normalise(y1, n, p, w[0], out, 0);
    if (bad1) memcpy(first_reason, out->nan_reason, sizeof first_reason);
    int bad2 = normalise(y2, n, p + n, w[1], out, 1);
    if (bad1) memcpy(out->nan_reason, first_reason, sizeof first_reason);
    if (bad1 || bad2) {
        free(p);
        return;
    }
    double num = 0, den = 0;
    long nn = 0, nd = 0;
    for (long i = 0; i < n; i++) {
        float a = p[i], b = p[n + i];
        if (!isnan(a)) den += a, nd++;
        if (!isnan(b)) den += b, nd++;
        if (!isnan(a) && !isnan(b)) num += fabsf(a - b), nn++;
    }
    free(p);
    if (nn == 0 || nd == 0) {
        snprintf(out->nan_reason, sizeof out->nan_reason, "no image is defined in both passes");
        return;
    }
    double e = (num / (double)nn) / (den / (double)nd);
    if (isnan(e)) {
        snprintf(out->nan_reason, sizeof out->nan_reason, "non-finite outputs (w=%g, %g)", w[0], w[1]);
        return;
    }
    out->nan_reason[0] = 0;
    out->epsilon = e;
}
