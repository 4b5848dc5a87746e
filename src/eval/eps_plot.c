/* eps_plot.c — the SVG plots of the evaluation commands: the score-vs-target
 * scatter of `eval --plot` and the best-so-far curves with quartile bands of
 * `search --plot`. Hand-written SVG (no dependency), text escaped. */
#include "epsinas/eval/plot.h"
#include "epsinas/eval/table.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void svg_text_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20) fputc(*s, f);
        }
    }
}

/* "Nice" tick step (1, 2 or 5 x 10^k) giving about `want` ticks over span. */
static double nice_step(double span, int want)
{
    if (!(span > 0)) return 1;
    double raw = span / want;
    double p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

typedef struct {
    double x0, x1, y0, y1;       /* data range */
    double left, top, w, h;      /* plot area in px */
} svg_frame;

static double fx(const svg_frame *fr, double x) { return fr->left + (x - fr->x0) / (fr->x1 - fr->x0) * fr->w; }
static double fy(const svg_frame *fr, double y) { return fr->top + fr->h - (y - fr->y0) / (fr->y1 - fr->y0) * fr->h; }

static void svg_begin(FILE *f, int width, int height, const char *title, const char *subtitle)
{
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"13\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">",
            width, height, width, height, width / 2);
    svg_text_escaped(f, title);
    fprintf(f, "</text>\n");
    if (subtitle && *subtitle) {
        fprintf(f, "<text x=\"%d\" y=\"44\" text-anchor=\"middle\" fill=\"#444\">", width / 2);
        svg_text_escaped(f, subtitle);
        fprintf(f, "</text>\n");
    }
}

/* Expands [lo, hi] to whole tick steps and fixes degenerate ranges. */
static void nice_range(double *lo, double *hi, int want, double *step)
{
    if (!isfinite(*lo) || !isfinite(*hi)) *lo = 0, *hi = 1;
    if (*hi <= *lo) {
        double c = *lo, d = fabs(c) > 0 ? fabs(c) * 0.05 : 0.5;
        *lo = c - d;
        *hi = c + d;
    }
    *step = nice_step(*hi - *lo, want);
    *lo = floor(*lo / *step) * *step;
    *hi = ceil(*hi / *step) * *step;
}

static void fmt_tick(char *buf, size_t n, double v, double step)
{
    if (fabs(v) < step * 1e-9) v = 0;
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6 || fabs(v) >= 1e6) snprintf(buf, n, "%.3g", v);
    else snprintf(buf, n, "%.*f", dec, v);
}

/* Axes with ticks. xlog 0: linear x, ticks every xstep. xlog 1: x holds
 * log10 of the data, ticks every xstep decades labelled "1eK". xlog 2: x
 * holds log10 of the data over less than ~1.5 decades: ticks at multiples
 * of the LINEAR step xstep, placed at their log10 and labelled plainly. */
static void svg_axes(FILE *f, const svg_frame *fr, double xstep, double ystep, int xlog, const char *xlabel,
                     const char *ylabel)
{
    double xpos[64];
    char xlab[64][32];
    int nx = 0;
    if (xlog == 2) {
        double lo = pow(10, fr->x0), hi = pow(10, fr->x1);
        for (double v = ceil(lo / xstep - 1e-9) * xstep; v <= hi * (1 + 1e-12) && nx < 64; v += xstep) {
            xpos[nx] = log10(v);
            fmt_tick(xlab[nx], sizeof xlab[nx], v, xstep);
            nx++;
        }
    } else {
        for (double v = fr->x0; v <= fr->x1 + xstep * 1e-6 && nx < 64; v += xstep) {
            xpos[nx] = v;
            if (xlog) snprintf(xlab[nx], sizeof xlab[nx], "1e%d", (int)round(v));
            else fmt_tick(xlab[nx], sizeof xlab[nx], v, xstep);
            nx++;
        }
    }
    fprintf(f, "<g stroke=\"#ddd\" stroke-width=\"1\">\n");
    for (double v = fr->y0; v <= fr->y1 + ystep * 1e-6; v += ystep)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", fr->left, fy(fr, v), fr->left + fr->w,
                fy(fr, v));
    for (int k = 0; k < nx; k++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", fx(fr, xpos[k]), fr->top,
                fx(fr, xpos[k]), fr->top + fr->h);
    fprintf(f, "</g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n",
            fr->left, fr->top, fr->w, fr->h);
    char buf[64];
    fprintf(f, "<g fill=\"#222\">\n");
    for (double v = fr->y0; v <= fr->y1 + ystep * 1e-6; v += ystep) {
        fmt_tick(buf, sizeof buf, v, ystep);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                fr->left - 5, fy(fr, v), fr->left, fy(fr, v), fr->left - 8, fy(fr, v) + 4, buf);
    }
    for (int k = 0; k < nx; k++)
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                fx(fr, xpos[k]), fr->top + fr->h, fx(fr, xpos[k]), fr->top + fr->h + 5, fx(fr, xpos[k]),
                fr->top + fr->h + 20, xlab[k]);
    fprintf(f, "</g>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", fr->left + fr->w / 2, fr->top + fr->h + 42);
    svg_text_escaped(f, xlabel);
    fprintf(f, "</text>\n<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\">",
            fr->left - 58, fr->top + fr->h / 2);
    svg_text_escaped(f, ylabel);
    fprintf(f, "</text>\n");
}

int eps_plot_scatter(const char *path, const double *score, const double *target, long n, const char *target_name,
                     const eps_eval_table *t, eps_error *err)
{
    long n_nan = 0, n_nonpos = 0, n_tnan = 0, m = 0;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (long i = 0; i < n; i++) {
        double s = score[i], v = target[i];
        if (isnan(s)) { n_nan++; continue; }
        if (isnan(v)) { n_tnan++; continue; }
        if (!(s > 0) || !isfinite(s)) { n_nonpos++; continue; }
        double lx = log10(s);
        if (lx < x0) x0 = lx;
        if (lx > x1) x1 = lx;
        if (v < y0) y0 = v;
        if (v > y1) y1 = v;
        m++;
    }
    FILE *f = eps_table_open_out(path, err);
    if (!f) return err ? err->code : EPS_EIO;
    char title[256], sub[256];
    snprintf(title, sizeof title, "epsinas score vs %s: %ld shown, %ld NaN score%s not shown", target_name, m, n_nan,
             n_nan == 1 ? "" : "s");
    if (n_nonpos)
        snprintf(sub, sizeof sub, "Spearman rho %.3f, Kendall tau %.3f (n = %ld); %ld scores <= 0 not shown", t->rho,
                 t->tau, t->n, n_nonpos);
    else
        snprintf(sub, sizeof sub, "Spearman rho %.3f, Kendall tau %.3f (n = %ld)", t->rho, t->tau, t->n);
    svg_begin(f, 760, 560, title, sub);
    svg_frame fr = {0, 1, 0, 1, 90, 60, 640, 420};
    double xs, ys;
    if (m == 0) x0 = -1, x1 = 0, y0 = 0, y1 = 1;
    double span = x1 - x0;
    int xmode = 1;
    if (span >= 1.5) {
        x0 = floor(x0);
        x1 = ceil(x1);
        xs = span > 10 ? ceil((x1 - x0) / 8) : 1;
    } else {
        /* Less than 1.5 decades: "nice" linear values on the log axis. */
        double lo = pow(10, x0), hi = pow(10, x1);
        nice_range(&lo, &hi, 5, &xs);
        if (lo <= 0) lo = xs;
        x0 = log10(lo);
        x1 = log10(hi);
        xmode = 2;
    }
    nice_range(&y0, &y1, 6, &ys);
    fr.x0 = x0, fr.x1 = x1, fr.y0 = y0, fr.y1 = y1;
    svg_axes(f, &fr, xs, ys, xmode, "epsinas score (log scale)", target_name);
    fprintf(f, "<g fill=\"#1f77b4\" fill-opacity=\"0.45\">\n");
    for (long i = 0; i < n; i++) {
        double s = score[i], v = target[i];
        if (isnan(s) || isnan(v) || !(s > 0) || !isfinite(s)) continue;
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\"/>\n", fx(&fr, log10(s)), fy(&fr, v));
    }
    fprintf(f, "</g>\n</svg>\n");
    return eps_table_close_out(f, path, err);
}

static const char *const curve_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

int eps_plot_curves(const char *path, const eps_plot_band *cfg, int ncfg, long budget, int runs, const char *target,
                    int minimize, eps_error *err)
{
    FILE *f = eps_table_open_out(path, err);
    if (!f) return err ? err->code : EPS_EIO;
    /* The first few look-ups are far from the rest: the y range is taken
     * from step 10 on, where the curves are informative (clipped before). */
    long from = budget > 20 ? 9 : 0;
    double y0 = INFINITY, y1 = -INFINITY;
    for (int c = 0; c < ncfg; c++)
        for (long s = from; s < budget; s++) {
            y0 = fmin(y0, fmin(cfg[c].q25[s], cfg[c].q75[s]));
            y1 = fmax(y1, fmax(cfg[c].q25[s], cfg[c].q75[s]));
        }
    char title[192], sub[192];
    snprintf(title, sizeof title, "Best %s found vs look-ups (%s is better)", target, minimize ? "lower" : "higher");
    snprintf(sub, sizeof sub, "median over %d runs, band = 25%%-75%%", runs);
    svg_begin(f, 760, 560, title, sub);
    double xs, ys, x0 = 0, x1 = (double)budget;
    nice_range(&x0, &x1, 6, &xs);
    nice_range(&y0, &y1, 6, &ys);
    svg_frame fr = {x0, x1, y0, y1, 90, 60, 640, 420};
    svg_axes(f, &fr, xs, ys, 0, "architectures looked up (trained)", target);
    fprintf(f, "<defs><clipPath id=\"area\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath></defs>\n",
            fr.left, fr.top, fr.w, fr.h);
    fprintf(f, "<g clip-path=\"url(#area)\">\n");
    for (int c = 0; c < ncfg; c++) {
        const char *col = curve_colors[c % 6];
        fprintf(f, "<path fill=\"%s\" fill-opacity=\"0.18\" stroke=\"none\" d=\"", col);
        for (long s = 0; s < budget; s++) fprintf(f, "%c%.1f %.1f", s ? 'L' : 'M', fx(&fr, s + 1), fy(&fr, cfg[c].q75[s]));
        for (long s = budget - 1; s >= 0; s--) fprintf(f, "L%.1f %.1f", fx(&fr, s + 1), fy(&fr, cfg[c].q25[s]));
        fprintf(f, "Z\"/>\n<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (long s = 0; s < budget; s++) fprintf(f, "%.1f,%.1f ", fx(&fr, s + 1), fy(&fr, cfg[c].med[s]));
        fprintf(f, "\"/>\n");
    }
    fprintf(f, "</g>\n");
    /* legend, bottom right inside the plot */
    double lx = fr.left + fr.w - 230, ly = fr.top + fr.h - 14 - 20.0 * ncfg;
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"220\" height=\"%.1f\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#999\"/>\n",
            lx, ly, 20.0 * ncfg + 8);
    for (int c = 0; c < ncfg; c++) {
        double yy = ly + 16 + 20.0 * c;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>", lx + 8,
                yy - 4, lx + 36, yy - 4, curve_colors[c % 6]);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", lx + 44, yy);
        svg_text_escaped(f, cfg[c].label);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</svg>\n");
    return eps_table_close_out(f, path, err);
}
