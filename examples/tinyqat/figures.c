#include "figures.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plot/plot.h"
#include "src/alloc.h"
#include "src/quant.h"

#define CLIP_RED 0xC0392Bu

static tq_status new_canvas(tq_canvas **c, const char *path, int w, int h) {
    if (!tq_canvas_supported())
        TQ_FAIL(TQ_E_ARG, "%s: this tinyqat was built without cairo and cannot draw: install libcairo2-dev and rebuild", path);
    if (!(*c = tq_canvas_new(w, h))) TQ_FAIL(TQ_E_NOMEM, "%s: out of memory", path);
    return TQ_OK;
}

static tq_status save(tq_canvas *c, const char *path) {
    tq_status st = tq_canvas_save(c, path);
    tq_canvas_free(c);
    return st;
}

/* ---- accuracy against bit width ---- */

/* One panel of the bits figure: the widths at evenly spaced positions (8 left), y from lo to hi;
 * a point below lo is drawn on the bottom edge with its value. */
static void bits_panel(tq_canvas *c, double top, double h, double lo, double hi, const char *title, const double *widths, int nt,
                       double fp_mean, double fp_std, const fig_series *s, int n_series, int act_bits) {
    char labels[9][16];
    const char *lp[9];
    double pos[9];
    for (int i = 0; i < nt; i++) snprintf(labels[i], sizeof labels[i], "%g", widths[i]), lp[i] = labels[i], pos[i] = i;
    tq_plot p;
    tq_plot_init(&p, c, &(tq_plot_spec){.left = 0, .top = top, .w = 900, .h = h, .xmin = -0.5, .xmax = nt - 0.5, .ymin = lo, .ymax = hi,
                                        .title = title, .xlabel = act_bits == 16 ? "weight bits (activations 16-bit)" : "weight bits (activations 8-bit)", .ylabel = "test accuracy (%)",
                                        .xticks = pos, .n_xticks = nt, .xtick_labels = lp, .tick_room = 30});
    tq_plot_rect(&p, p.xmin, p.xmax, fp_mean - fp_std, fp_mean + fp_std, 0xEDEDEDu);
    tq_plot_hline(&p, fp_mean, TQ_GRAY, 2, 1);
    char lab[128];
    snprintf(lab, sizeof lab, "FP32: %.2f%% (band: \xC2\xB1 std)", fp_mean);
    tq_plot_legend(&p, lab, TQ_GRAY, TQ_KEY_DASHED);
    int below[9] = {0}; /* off-axis notes at each width so far: they stack upwards */
    for (int k = 0; k < n_series; k++) {
        double x[9], y[9], dx = (k - (n_series - 1) / 2.0) * 0.05;
        int n = 0, at[9];
        for (int i = 0; i < s[k].n && n < 9; i++)
            for (int t = 0; t < nt; t++)
                if (widths[t] == s[k].bits[i]) x[n] = t + dx, y[n] = s[k].mean[i], at[n] = t, n++;
        tq_plot_line(&p, x, y, n, s[k].color, 2, 0);
        for (int i = 0; i < n; i++) {
            double sd = isfinite(s[k].std[i]) ? s[k].std[i] : 0;
            if (y[i] < lo) { /* off the axis: a marker on the edge with its value */
                char v[32];
                snprintf(v, sizeof v, "\xE2\x96\xBC %.1f", y[i]); /* U+25BC, a down-pointing triangle */
                tq_plot_note(&p, at[i], lo + (hi - lo) * 0.03 + 17 * below[at[i]]++ * (hi - lo) / (p.y1 - p.y0), v, s[k].color,
                             TQ_ANCHOR_MIDDLE);
                continue;
            }
            if (sd > 0) tq_plot_errorbar(&p, x[i], y[i] - sd, y[i] + sd, s[k].color);
            tq_plot_points(&p, &x[i], &y[i], 1, s[k].color, 4);
        }
        tq_plot_legend(&p, s[k].label, s[k].color, TQ_KEY_MARKER);
    }
    tq_plot_finish(&p);
}

tq_status fig_bits(const char *path, const char *title, double fp_mean, double fp_std, const fig_series *s, int n_series, int act_bits) {
    /* the widths shown, high to low */
    double widths[9];
    int nt = 0;
    for (int b = 8; b >= 2; b--) {
        int used = 0;
        for (int k = 0; k < n_series; k++)
            for (int i = 0; i < s[k].n; i++) used |= s[k].bits[i] == b;
        if (used) widths[nt++] = b;
    }
    if (!nt) widths[nt++] = 8;
    /* above: every point (down to a multiple of 10); below: a zoom on the top point and a half, where
     * the methods that keep FP32's accuracy part */
    double lo_all = fp_mean - fp_std, hi = fp_mean + fp_std;
    for (int k = 0; k < n_series; k++)
        for (int i = 0; i < s[k].n; i++) {
            double sd = isfinite(s[k].std[i]) ? s[k].std[i] : 0;
            lo_all = fmin(lo_all, s[k].mean[i] - sd), hi = fmax(hi, s[k].mean[i] + sd);
        }
    tq_canvas *c;
    TQ_TRY(new_canvas(&c, path, 900, 760));
    tq_canvas_text(c, 450, 22, title, 15, TQ_INK, TQ_ANCHOR_MIDDLE, 0, 1);
    double lo = fmax(0, floor((lo_all - 1) / 10) * 10), top = fmin(100, ceil((hi + 0.5) / 5) * 5);
    bits_panel(c, 30, 340, lo, top, "every method", widths, nt, fp_mean, fp_std, s, n_series, act_bits);
    double zlo = floor((fp_mean - 1.25) * 4) / 4, zhi = ceil((fmax(hi, fp_mean + 0.25) + 0.05) * 10) / 10;
    char zt[96];
    snprintf(zt, sizeof zt, "zoomed: from %.2f%% to %.2f%%", zlo, zhi);
    bits_panel(c, 380, 380, zlo, zhi, zt, widths, nt, fp_mean, fp_std, s, n_series, act_bits);
    return save(c, path);
}

/* ---- accuracy against model bytes ---- */

tq_status fig_bytes(const char *path, const char *title, double fp_mean, double fp_std, const fig_bytes_series *s, int n_series,
                    const double *budgets, int n_budgets) {
    double xlo = INFINITY, xhi = 0, lo = fp_mean - fp_std, hi = fp_mean + fp_std;
    for (int k = 0; k < n_series; k++)
        for (int i = 0; i < s[k].n; i++) {
            double sd = isfinite(s[k].std[i]) ? s[k].std[i] : 0;
            xlo = fmin(xlo, s[k].bytes[i] / 1000), xhi = fmax(xhi, s[k].bytes[i] / 1000);
            lo = fmin(lo, s[k].mean[i] - sd), hi = fmax(hi, s[k].mean[i] + sd);
        }
    for (int b = 0; b < n_budgets; b++) xlo = fmin(xlo, budgets[b] / 1000), xhi = fmax(xhi, budgets[b] / 1000);
    if (!(xhi > xlo)) xlo = 0, xhi = xhi > 0 ? 2 * xhi : 1;
    double pad = (xhi - xlo) * 0.08;
    lo = floor((lo - 0.05) * 10) / 10, hi = ceil((hi + 0.05) * 10) / 10;
    tq_canvas *c;
    TQ_TRY(new_canvas(&c, path, 900, 520));
    tq_plot p;
    tq_plot_init(&p, c, &(tq_plot_spec){.left = 0, .top = 0, .w = 900, .h = 520, .xmin = fmax(0, xlo - pad), .xmax = xhi + pad,
                                        .ymin = lo, .ymax = hi, .title = title, .xlabel = "integer model bytes (thousands)",
                                        .ylabel = "test accuracy (%)"});
    tq_plot_rect(&p, p.xmin, p.xmax, fp_mean - fp_std, fp_mean + fp_std, 0xEDEDEDu);
    tq_plot_hline(&p, fp_mean, TQ_GRAY, 2, 1);
    char lab[128];
    snprintf(lab, sizeof lab, "FP32: %.2f%% (band: \xC2\xB1 std)", fp_mean);
    tq_plot_legend(&p, lab, TQ_GRAY, TQ_KEY_DASHED);
    for (int b = 0; b < n_budgets; b++) tq_plot_vline(&p, budgets[b] / 1000, TQ_GREEN, 1, 1);
    if (n_budgets) tq_plot_legend(&p, "a flash budget", TQ_GREEN, TQ_KEY_DASHED);
    for (int k = 0; k < n_series; k++) {
        double x[16], y[16];
        int n = s[k].n < 16 ? s[k].n : 16;
        for (int i = 0; i < n; i++) x[i] = s[k].bytes[i] / 1000, y[i] = s[k].mean[i];
        tq_plot_line(&p, x, y, n, s[k].color, 2, 0);
        for (int i = 0; i < n; i++) {
            double sd = isfinite(s[k].std[i]) ? s[k].std[i] : 0;
            if (sd > 0) tq_plot_errorbar(&p, x[i], y[i] - sd, y[i] + sd, s[k].color);
            tq_plot_points(&p, &x[i], &y[i], 1, s[k].color, 4);
            /* above and below in turn, so that neighbours' labels do not overlap */
            if (s[k].notes && s[k].notes[i])
                tq_plot_note(&p, x[i], y[i] + (i % 2 ? -1 : 1) * (sd + 0.04 * (hi - lo)), s[k].notes[i], s[k].color, TQ_ANCHOR_MIDDLE);
        }
        tq_plot_legend(&p, s[k].label, s[k].color, TQ_KEY_MARKER);
    }
    tq_plot_finish(&p);
    return save(c, path);
}

/* ---- the STE ---- */

tq_status fig_staircase(const char *path) {
    enum { N = 1201 };
    static double x[N], y[N], idn[N], plain[N], clip[N], lsq[N];
    const tq_qparams qp = {0.5f, 0, -4, 3};
    const double lo = (qp.qmin - 0.5) * qp.scale, hi = (qp.qmax + 0.5) * qp.scale;
    for (int i = 0; i < N; i++) {
        x[i] = -3.0 + 6.0 * i / (N - 1);
        y[i] = tq_fake_quant_ref((float)x[i], &qp);
        idn[i] = x[i];
        double v = x[i] / qp.scale, u = nearbyint(v);
        int inside = u >= qp.qmin && u <= qp.qmax;
        plain[i] = 1;
        clip[i] = inside;
        lsq[i] = inside ? u - v : u < qp.qmin ? qp.qmin : qp.qmax;
    }
    tq_canvas *c;
    TQ_TRY(new_canvas(&c, path, 900, 860));
    tq_plot a;
    tq_plot_init(&a, c, &(tq_plot_spec){0, 0, 900, 340, -3, 3, -3, 3, "Fake quantization, 3 bits: q(x) = s clamp(round(x/s), -4, 3), s = 0.5",
                                        "x", "q(x)", NULL, 0, NULL, 24});
    tq_plot_line(&a, x, idn, N, TQ_GRAY, 1.5, 1);
    tq_plot_line(&a, x, y, N, TQ_BLUE, 2.5, 0);
    tq_plot_vline(&a, lo, CLIP_RED, 1.5, 1);
    tq_plot_vline(&a, hi, CLIP_RED, 1.5, 1);
    tq_plot_legend(&a, "q(x): the forward pass", TQ_BLUE, TQ_KEY_LINE);
    tq_plot_legend(&a, "x (identity)", TQ_GRAY, TQ_KEY_DASHED);
    tq_plot_legend(&a, "clipping range [-2.25, 1.75]", CLIP_RED, TQ_KEY_DASHED);
    tq_plot_finish(&a);
    struct {
        const char *title, *ylabel;
        const double *g;
        double ymin, ymax;
        uint32_t color;
    } panel[3] = {
        {"Plain STE: \xE2\x88\x82q/\xE2\x88\x82x taken as 1 everywhere (the true derivative is 0 between steps)", "\xE2\x88\x82q/\xE2\x88\x82x", plain, -0.25, 1.25, TQ_ORANGE},
        {"Clipped STE (tinyqat's default, and LSQ's): 1 inside [(qmin - 1/2) s, (qmax + 1/2) s], 0 outside", "\xE2\x88\x82q/\xE2\x88\x82x", clip, -0.25, 1.25, TQ_BLUE},
        {"LSQ's scale gradient \xE2\x88\x82q/\xE2\x88\x82s: round(x/s) - x/s inside, qmin or qmax outside", "\xE2\x88\x82q/\xE2\x88\x82s", lsq, -4.5, 3.5, TQ_GREEN},
    };
    for (int k = 0; k < 3; k++) {
        tq_plot b;
        tq_plot_init(&b, c, &(tq_plot_spec){0, 340 + 170 * k, 900, 170 + (k == 2 ? 10 : 0), -3, 3, panel[k].ymin, panel[k].ymax,
                                            panel[k].title, k == 2 ? "x" : "", panel[k].ylabel, NULL, 0, NULL, 24});
        tq_plot_vline(&b, lo, CLIP_RED, 1.5, 1);
        tq_plot_vline(&b, hi, CLIP_RED, 1.5, 1);
        tq_plot_line(&b, x, panel[k].g, N, panel[k].color, 2.5, 0);
    }
    return save(c, path);
}

/* ---- rounding: where weights sit, and how many flip ---- */

/* The default quantizer's grid for row o of layer l: s = max|w| / qmax over the row. */
static float row_scale(const float *w, int n, int32_t qmax) {
    float a = 0;
    for (int i = 0; i < n; i++) a = fmaxf(a, fabsf(w[i]));
    return a > 0 ? a / (float)qmax : 1.0f;
}

void fig_frac_hist(const tq_model *m, int bits, double *hist) {
    int32_t qmin, qmax;
    tq_qrange(bits, 1, &qmin, &qmax);
    double total = 0;
    for (int k = 0; k < FIG_FRAC_BINS; k++) hist[k] = 0;
    for (int l = 0; l < m->n_layers; l++)
        for (int o = 0, in = TQ_DENSE(m, l).conv.C; o < TQ_DENSE(m, l).conv.OC; o++) {
            const float *w = TQ_DENSE(m, l).W + (size_t)o * in;
            float s = row_scale(w, in, qmax);
            for (int i = 0; i < in; i++) {
                double v = w[i] / s, f = v - nearbyint(v); /* in [-0.5, 0.5] */
                int k = (int)floor((f + 0.5) * FIG_FRAC_BINS);
                hist[k < 0 ? 0 : k >= FIG_FRAC_BINS ? FIG_FRAC_BINS - 1 : k]++;
                total++;
            }
        }
    for (int k = 0; k < FIG_FRAC_BINS && total > 0; k++) hist[k] /= total;
}

/* Every dense weight's integer value on the default grid, into codes; how many differ from before. */
static size_t codes_of(const tq_model *m, int bits, int8_t *codes) {
    int32_t qmin, qmax;
    tq_qrange(bits, 1, &qmin, &qmax);
    size_t j = 0, changed = 0;
    for (int l = 0; l < m->n_layers; l++)
        for (int o = 0, in = TQ_DENSE(m, l).conv.C; o < TQ_DENSE(m, l).conv.OC; o++) {
            const float *w = TQ_DENSE(m, l).W + (size_t)o * in;
            float s = row_scale(w, in, qmax);
            for (int i = 0; i < in; i++, j++) {
                float u = nearbyintf(w[i] / s);
                int8_t q = (int8_t)(u < (float)qmin ? qmin : u > (float)qmax ? qmax : u);
                changed += codes[j] != q;
                codes[j] = q;
            }
        }
    return changed;
}

tq_status fig_flips_init(fig_flip_counter *f, const tq_model *m, int bits, int max_steps) {
    memset(f, 0, sizeof *f);
    for (int l = 0; l < m->n_layers; l++) f->n += tq_unit_weights(&TQ_DENSE(m, l));
    f->m = m, f->bits = bits, f->cap = max_steps;
    f->codes = tq_calloc(f->n ? f->n : 1, 1);
    f->flips = tq_calloc(max_steps > 0 ? (size_t)max_steps : 1, sizeof(float));
    if (!f->codes || !f->flips) {
        fig_flips_free(f);
        TQ_FAIL(TQ_E_NOMEM, "weight flip counter: out of memory");
    }
    codes_of(m, bits, f->codes);
    return TQ_OK;
}

void fig_flips_step(fig_flip_counter *f) {
    if (!f->codes || f->steps >= f->cap) return;
    size_t changed = codes_of(f->m, f->bits, f->codes);
    f->flips[f->steps++] = f->n ? (float)changed / (float)f->n : 0.0f;
}

void fig_flips_free(fig_flip_counter *f) {
    tq_free(f->codes);
    tq_free(f->flips);
    memset(f, 0, sizeof *f);
}

tq_status fig_rounding(const char *path, const fig_rounding_data *d, int n) {
    const int ph = 290, wa = 400, wb = 500; /* 900 pixels: the README's width */
    tq_canvas *c;
    TQ_TRY(new_canvas(&c, path, wa + wb, ph * (n ? n : 1)));
    for (int r = 0; r < n; r++) {
        double edges[FIG_FRAC_BINS + 1], xb[2 * FIG_FRAC_BINS], yb[2 * FIG_FRAC_BINS], ya[2 * FIG_FRAC_BINS], top = 0;
        for (int k = 0; k <= FIG_FRAC_BINS; k++) edges[k] = -0.5 + (double)k / FIG_FRAC_BINS;
        /* the histograms as steps (percent of the weights per bin), so both read through each other */
        for (int k = 0; k < FIG_FRAC_BINS; k++) {
            xb[2 * k] = edges[k], xb[2 * k + 1] = edges[k + 1];
            yb[2 * k] = yb[2 * k + 1] = 100 * d[r].before[k];
            ya[2 * k] = ya[2 * k + 1] = 100 * d[r].after[k];
            top = fmax(top, fmax(yb[2 * k], ya[2 * k]));
        }
        char t[128];
        snprintf(t, sizeof t, "%d bits: where the dense weights sit", d[r].bits);
        tq_plot a;
        tq_plot_init(&a, c, &(tq_plot_spec){0, ph * r, wa, ph, -0.5, 0.5, 0, top * 1.35 + 0.1, t, "w/s - round(w/s)",
                                            "weights per bin (%)", NULL, 0});
        tq_plot_vline(&a, 0, 0xBBBBBBu, 1, 1);
        tq_plot_line(&a, xb, yb, 2 * FIG_FRAC_BINS, TQ_GRAY, 2, 0);
        tq_plot_line(&a, xb, ya, 2 * FIG_FRAC_BINS, TQ_BLUE, 2.5, 0);
        tq_plot_legend(&a, "FP32 weights", TQ_GRAY, TQ_KEY_LINE);
        snprintf(t, sizeof t, "after %d-bit QAT", d[r].bits);
        tq_plot_legend(&a, t, TQ_BLUE, TQ_KEY_LINE);
        tq_plot_finish(&a);
        /* flips per step, and their running mean over 50 steps */
        int ns = d[r].steps;
        double *sx = tq_malloc((size_t)(ns ? ns : 1) * sizeof(double)), *sy = tq_malloc((size_t)(ns ? ns : 1) * sizeof(double)),
               *sm = tq_malloc((size_t)(ns ? ns : 1) * sizeof(double)), fmax_ = 0, run = 0;
        if (!sx || !sy || !sm) {
            tq_free(sx), tq_free(sy), tq_free(sm);
            tq_canvas_free(c);
            TQ_FAIL(TQ_E_NOMEM, "%s: out of memory", path);
        }
        for (int i = 0; i < ns; i++) {
            sx[i] = i + 1, sy[i] = 100.0 * d[r].flips[i];
            run += sy[i] - (i >= 50 ? sy[i - 50] : 0);
            sm[i] = run / (i + 1 < 50 ? i + 1 : 50);
            fmax_ = fmax(fmax_, sy[i]);
        }
        snprintf(t, sizeof t, "%d-bit QAT: weights changing their integer value", d[r].bits);
        tq_plot b;
        tq_plot_init(&b, c, &(tq_plot_spec){wa, ph * r, wb, ph, 0, ns > 1 ? ns : 1, 0, fmax_ * 1.25 + 1e-3, t, "QAT step",
                                            "weights changed (%)", NULL, 0});
        tq_plot_line(&b, sx, sy, ns, 0xAEC7E8u, 1, 0);
        tq_plot_line(&b, sx, sm, ns, TQ_BLUE, 2.5, 0);
        tq_plot_legend(&b, "each step", 0xAEC7E8u, TQ_KEY_LINE);
        tq_plot_legend(&b, "mean of the last 50 steps", TQ_BLUE, TQ_KEY_LINE);
        tq_plot_finish(&b);
        tq_free(sx), tq_free(sy), tq_free(sm);
    }
    return save(c, path);
}

/* ---- quantization noise per layer ---- */

tq_status fig_sqnr(const char *path, const int *bits, int nb, const char *const *layer_names, int n_layers,
                   const fig_series *s, int n_series, const double *db) {
    const int cols = nb < 3 ? nb : 3, rows = (nb + cols - 1) / cols, pw = 300, ph = 300; /* at most 900 wide */
    double top = 10;
    for (int i = 0; i < nb * n_series * n_layers; i++)
        if (isfinite(db[i])) top = fmax(top, db[i]);
    top = ceil((top + 6) / 10) * 10;
    tq_canvas *c;
    const int head = 62;
    TQ_TRY(new_canvas(&c, path, pw * cols, head + ph * rows));
    tq_canvas_text(c, pw * cols / 2.0, 22, "Quantization error per layer: SQNR of each layer's output against the FP32 model's",
                   15, TQ_INK, TQ_ANCHOR_MIDDLE, 0, 1);
    /* one legend for every panel, in a row under the title */
    double lw = 0;
    for (int k = 0; k < n_series; k++) lw += 26 + tq_canvas_text_width(c, s[k].label, 12, 0) + 18;
    double lx = (pw * cols - lw) / 2;
    for (int k = 0; k < n_series; k++) {
        tq_canvas_rect(c, lx, 38, 18, 12, s[k].color);
        tq_canvas_text(c, lx + 24, 48.5, s[k].label, 12, TQ_INK, TQ_ANCHOR_START, 0, 0);
        lx += 26 + tq_canvas_text_width(c, s[k].label, 12, 0) + 18;
    }
    double pos[TQ_MAX_UNITS];
    for (int l = 0; l < n_layers; l++) pos[l] = l;
    for (int b = 0; b < nb; b++) {
        char t[64];
        snprintf(t, sizeof t, "%d-bit weights", bits[b]);
        tq_plot p;
        tq_plot_init(&p, c, &(tq_plot_spec){.left = pw * (b % cols), .top = head + ph * (b / cols), .w = pw, .h = ph, .xmin = -0.5,
                                            .xmax = n_layers - 0.5, .ymin = 0, .ymax = top, .title = t, .xlabel = "layer (output)",
                                            .ylabel = "SQNR (dB)", .xticks = pos, .n_xticks = n_layers, .xtick_labels = layer_names});
        double w = 0.8 / n_series;
        for (int k = 0; k < n_series; k++) {
            for (int l = 0; l < n_layers; l++) {
                double v = db[((size_t)b * n_series + k) * n_layers + l], x = l - 0.4 + w * k;
                if (!isfinite(v)) v = top; /* no error at all: a full bar */
                tq_plot_rect(&p, x + 0.05 * w, x + 0.95 * w, 0, v, s[k].color);
            }
        }
    }
    return save(c, path);
}

/* ---- training curves ---- */

tq_status fig_curves(const char *path, const tq_train_result *fp, const tq_train_result *qat, const char *qat_label) {
    tq_canvas *c;
    TQ_TRY(new_canvas(&c, path, 900, 360));
    int nf = fp->epochs, nq = qat ? qat->epochs : 0;
    double ex[2 * TQ_MAX_EPOCHS], loss[2 * TQ_MAX_EPOCHS], acc[2 * TQ_MAX_EPOCHS];
    double lmax = 0, amin = 100, amax = 0;
    for (int e = 0; e < nf + nq; e++) {
        const tq_train_result *r = e < nf ? fp : qat;
        int k = e < nf ? e : e - nf;
        ex[e] = e + 1;
        loss[e] = r->train_loss[k];
        acc[e] = r->test_acc[k];
        lmax = fmax(lmax, loss[e]);
        amin = fmin(amin, acc[e]);
        amax = fmax(amax, acc[e]);
    }
    /* one tick per epoch up to 20 epochs, round numbers past that */
    int nt = nf + nq <= 20 ? nf + nq : 0;
    tq_plot a, b;
    tq_plot_init(&a, c, &(tq_plot_spec){0, 0, 450, 360, 0.5, nf + nq + 0.5, 0, lmax * 1.1, "Training loss", "epoch", "loss", nt ? ex : NULL, nt});
    tq_plot_init(&b, c, &(tq_plot_spec){450, 0, 450, 360, 0.5, nf + nq + 0.5, floor(amin * 2) / 2 - 0.5, fmin(100, ceil(amax * 2) / 2 + 0.25),
                                        "Test accuracy", "epoch", "accuracy (%)", nt ? ex : NULL, nt});
    tq_plot_line(&a, ex, loss, nf, TQ_BLUE, 2.5, 0);
    tq_plot_line(&b, ex, acc, nf, TQ_BLUE, 2.5, 0);
    tq_plot_points(&a, ex, loss, nf, TQ_BLUE, 3);
    tq_plot_points(&b, ex, acc, nf, TQ_BLUE, 3);
    if (nq) {
        tq_plot_line(&a, ex + nf - 1, loss + nf - 1, nq + 1, TQ_ORANGE, 2.5, 0);
        tq_plot_line(&b, ex + nf - 1, acc + nf - 1, nq + 1, TQ_ORANGE, 2.5, 0);
        tq_plot_points(&a, ex + nf, loss + nf, nq, TQ_ORANGE, 3);
        tq_plot_points(&b, ex + nf, acc + nf, nq, TQ_ORANGE, 3);
    }
    tq_plot_legend(&a, "FP32", TQ_BLUE, TQ_KEY_MARKER);
    tq_plot_legend(&b, "FP32", TQ_BLUE, TQ_KEY_MARKER);
    if (nq) {
        tq_plot_legend(&a, qat_label, TQ_ORANGE, TQ_KEY_MARKER);
        tq_plot_legend(&b, qat_label, TQ_ORANGE, TQ_KEY_MARKER);
    }
    tq_plot_finish(&a);
    tq_plot_finish(&b);
    return save(c, path);
}

/* ---- confusion matrices ---- */

tq_status fig_confusion(const char *path, const int64_t *const *conf, const char *const *titles, int panels, int classes) {
    if (classes < 1 || classes > 100) TQ_FAIL(TQ_E_ARG, "%s: %d classes are too many to draw a confusion matrix", path, classes);
    /* three 10-class matrices in 900 pixels, the README's width */
    const double cell = classes <= 10 ? 22 : 220.0 / classes, side = cell * classes, pw = side + 76;
    tq_canvas *c;
    TQ_TRY(new_canvas(&c, path, (int)(pw * panels + 10), (int)(side + 96)));
    char buf[32];
    for (int p = 0; p < panels; p++) {
        double x0 = 10 + p * pw + 50, y0 = 48;
        int64_t right = 0, all = 0;
        for (int t = 0; t < classes; t++)
            for (int q = 0; q < classes; q++) all += conf[p][t * classes + q], right += t == q ? conf[p][t * classes + q] : 0;
        snprintf(buf, sizeof buf, " (%.2f%%)", all ? 100.0 * (double)right / (double)all : 0.0);
        char title[160];
        snprintf(title, sizeof title, "%s%s", titles[p], buf);
        tq_canvas_text(c, x0 + side / 2, 22, title, 13.5, TQ_INK, TQ_ANCHOR_MIDDLE, 0, 1);
        for (int t = 0; t < classes; t++) {
            int64_t row = 0;
            for (int q = 0; q < classes; q++) row += conf[p][t * classes + q];
            for (int q = 0; q < classes; q++) {
                int64_t v = conf[p][t * classes + q];
                double share = row ? (double)v / (double)row : 0;
                /* the diagonal in blue by its share; mistakes in red, saturating at 2% of the row */
                double k = t == q ? share : fmin(1, share / 0.02);
                uint32_t base = t == q ? TQ_BLUE : TQ_RED;
                uint32_t col = 0;
                for (int sh = 0; sh < 24; sh += 8) {
                    double ch = (base >> sh) & 255;
                    col |= (uint32_t)lround(255 - (255 - ch) * (t == q ? 0.15 + 0.85 * k : k)) << sh;
                }
                if (v == 0) col = 0xFFFFFFu;
                tq_canvas_rect(c, x0 + q * cell, y0 + t * cell, cell, cell, col);
                if (v && classes <= 10 && (t != q || cell >= 30)) { /* the mistakes' counts; the diagonal's when they fit */
                    snprintf(buf, sizeof buf, "%lld", (long long)v);
                    uint32_t ink = (t == q ? 0.15 + 0.85 * k : k) > 0.55 ? 0xFFFFFFu : TQ_INK;
                    tq_canvas_text(c, x0 + (q + 0.5) * cell, y0 + (t + 0.5) * cell + 3.5, buf, t == q ? 7.5 : 9.5, ink, TQ_ANCHOR_MIDDLE, 0, 0);
                }
            }
            if (classes <= 10) {
                snprintf(buf, sizeof buf, "%d", t);
                tq_canvas_text(c, x0 - 6, y0 + (t + 0.5) * cell + 4, buf, 11, TQ_INK, TQ_ANCHOR_END, 0, 0);
                tq_canvas_text(c, x0 + (t + 0.5) * cell, y0 + side + 15, buf, 11, TQ_INK, TQ_ANCHOR_MIDDLE, 0, 0);
            }
        }
        tq_canvas_rect_outline(c, x0, y0, side, side, TQ_INK, 1);
        tq_canvas_text(c, x0 + side / 2, y0 + side + 34, "predicted class", 12, TQ_INK, TQ_ANCHOR_MIDDLE, 0, 0);
        tq_canvas_text(c, x0 - 26, y0 + side / 2, "true class", 12, TQ_INK, TQ_ANCHOR_MIDDLE, 90, 0);
    }
    return save(c, path);
}

/* ---- digits ---- */

tq_status fig_digits(const char *path, const tq_dataset *ds, const uint32_t *const *idx, const int *n,
                     const uint8_t *const *pred, const char *const *titles, int panels) {
    const int H = (int)ds->h, W = (int)ds->w, C = (int)ds->c, side = H > W ? H : W;
    if (H > 512 || W > 512) TQ_FAIL(TQ_E_ARG, "%s: images of %dx%d are too large to draw in a grid", path, H, W);
    /* up to 900 pixels wide (the README's width): fewer columns per panel as panels are added */
    const int cols = panels <= 1 ? 8 : panels <= 3 ? 4 : 3, sc = side < 56 ? 56 / side : 1, cell_w = W * sc + 12, cell_h = H * sc + 24, head = 34;
    int rows = 1;
    for (int p = 0; p < panels; p++) rows = (n[p] + cols - 1) / cols > rows ? (n[p] + cols - 1) / cols : rows;
    const int pw = cols * cell_w + 16;
    tq_canvas *c;
    TQ_TRY(new_canvas(&c, path, pw * panels, head + rows * cell_h + 8));
    uint8_t *gray = tq_malloc((size_t)H * W); /* the channels' mean, for images with more than one */
    if (!gray) {
        tq_canvas_free(c);
        TQ_FAIL(TQ_E_NOMEM, "%s: out of memory", path);
    }
    for (int p = 0; p < panels; p++) {
        int x0 = p * pw + 8;
        tq_canvas_text(c, x0, 22, titles[p], 15, TQ_INK, TQ_ANCHOR_START, 0, 1);
        for (int i = 0; i < n[p]; i++) {
            uint32_t k = idx[p][i];
            int x = x0 + (i % cols) * cell_w, y = head + (i / cols) * cell_h;
            const uint8_t *img = ds->images + (size_t)k * tq_dataset_pixels(ds);
            for (int i2 = 0; i2 < H * W; i2++) {
                int sum = 0;
                for (int ch = 0; ch < C; ch++) sum += img[(size_t)i2 * C + ch];
                gray[i2] = (uint8_t)(sum / C);
            }
            tq_canvas_gray(c, x, y, gray, W, H, sc, 1);
            char lab[16];
            if (pred && pred[p]) snprintf(lab, sizeof lab, "%u/%u", pred[p][k], ds->labels[k]);
            else snprintf(lab, sizeof lab, "%u", ds->labels[k]);
            tq_canvas_text(c, x + W * sc / 2.0, y + H * sc + 15, lab, 12, pred && pred[p] ? TQ_RED : TQ_INK, TQ_ANCHOR_MIDDLE, 0, 0);
        }
        if (n[p] == 0) tq_canvas_text(c, x0, head + 24, "none", 14, TQ_GRAY, TQ_ANCHOR_START, 0, 0);
    }
    tq_free(gray);
    return save(c, path);
}
