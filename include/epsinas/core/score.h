/* score.h — epsilon from the two output vectors (spec §1 steps 1-3). */
#ifndef EPSINAS_SCORE_H
#define EPSINAS_SCORE_H

typedef struct eps_score {
    double epsilon;          /* NaN when undefined */
    char nan_reason[160];    /* "" when epsilon is a number */
    double weights[2];       /* w1, w2 used */
    long n;                  /* outputs per pass */
    float ymin[2], ymax[2];  /* raw output range per pass (NaN-aware) */
    double ymean[2];         /* raw output mean per pass (NaN if any NaN) */
} eps_score;

/* Computes epsilon from y1 (pass at w[0]) and y2 (pass at w[1]), each n
 * values, and fills every field of *out (NaN reasons name the weight).
 * Never fails. */
void eps_score_epsilon(const float *y1, const float *y2, long n, const double w[2], eps_score *out);

#endif
