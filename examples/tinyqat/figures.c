#include "figures.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plot/plot.h"
#include "src/alloc.h"
#include "src/quant.h"

#define BLUE 0x1F77B4u
#define ORANGE 0xFF7F0Eu
#define GREEN 0x2CA02Cu
#define RED 0xD62728u
#define GRAY 0x999999u
#define WHITE 0xFFFFFFu

tq_status fig_staircase(const char *path) {
    tq_image im;
    TQ_TRY(tq_image_init(&im, 720, 640, WHITE));
    tq_plot a, b;
    enum { N = 1201 };
    static double x[N], y[N], idn[N], clip[N], plain[N];
    for (int i = 0; i < N; i++) {
        x[i] = -3.0 + 6.0 * i / (N - 1);
        tq_qparams p = {0.5f, 0, -4, 3};
        y[i] = tq_fake_quant_ref((float)x[i], &p);
        idn[i] = x[i];
        double u = nearbyint(x[i] / 0.5);
        clip[i] = (u >= -4 && u <= 3) ? 1.0 : 0.0;
        plain[i] = 1.0;
    }
    tq_plot_init(&a, &im, 0, 0, 720, 380, -3, 3, -3, 3, "fake quant, 3 bits, s = 0.5, z = 0", "x", "x^");
    tq_plot_line(&a, x, idn, N, GRAY, 1);
    tq_plot_line(&a, x, y, N, BLUE, 2);
    tq_plot_legend(&a, "x^ = (clamp(round(x/s), -4, 3)) s", BLUE);
    tq_plot_legend(&a, "identity", GRAY);
    tq_plot_init(&b, &im, 0, 380, 720, 260, -3, 3, -0.2, 1.3, "the gradient each STE passes", "x", "dx^/dx");
    tq_plot_line(&b, x, plain, N, ORANGE, 2);
    tq_plot_line(&b, x, clip, N, BLUE, 2);
    tq_plot_vline(&b, -2.25, RED);
    tq_plot_vline(&b, 1.75, RED);
    tq_plot_legend(&b, "clipped STE: 1 on [-2.25, 1.75]", BLUE);
    tq_plot_legend(&b, "plain STE: 1 everywhere", ORANGE);
    tq_plot_legend(&b, "true derivative: 0 between steps", GRAY);
    tq_status st = tq_image_save_png(&im, path);
    tq_image_free(&im);
    return st;
}

static void weight_panel(tq_image *im, int left, int top, int w, int h, const float *wv, int n, int bits, double a,
                         const char *title) {
    enum { BINS = 120 };
    double edges[BINS + 1], cnt[BINS] = {0}, cmax = 0;
    for (int i = 0; i <= BINS; i++) edges[i] = -a + 2 * a * i / BINS;
    float amax = 0;
    for (int i = 0; i < n; i++) {
        int k = (int)((wv[i] + a) / (2 * a) * BINS);
        k = k < 0 ? 0 : k >= BINS ? BINS - 1 : k;
        cnt[k]++;
        amax = fmaxf(amax, fabsf(wv[i]));
    }
    for (int i = 0; i < BINS; i++) cmax = fmax(cmax, cnt[i]);
    tq_plot p;
    tq_plot_init(&p, im, left, top, w, h, -a, a, 0, cmax * 1.15, title, "weight value", "count");
    /* the grid this channel's weights are rounded to: k s, s = max|w| / qmax */
    int32_t qmin, qmax;
    tq_qrange(bits, 1, &qmin, &qmax);
    double s = amax / qmax;
    for (int k = -qmax; k <= qmax; k++) tq_plot_vline(&p, k * s, 0xF4B183u);
    tq_plot_bars(&p, edges, cnt, BINS, BLUE);
    char lg[64];
    snprintf(lg, sizeof lg, "%d-bit grid: %d levels, s = %.4f", bits, 2 * qmax + 1, s);
    tq_plot_legend(&p, lg, 0xF4B183u);
}

tq_status fig_weights(const char *path, const float *w_fp, const float *const *w_qat, const int *bits, int n_bits, int n) {
    tq_image im;
    int pw = 560, ph = 300;
    TQ_TRY(tq_image_init(&im, 2 * pw, ph * n_bits, WHITE));
    double a = 0;
    for (int i = 0; i < n; i++) a = fmax(a, fabs(w_fp[i]));
    for (int b = 0; b < n_bits; b++)
        for (int i = 0; i < n; i++) a = fmax(a, fabs(w_qat[b][i]));
    a *= 1.05;
    for (int b = 0; b < n_bits; b++) {
        char t[80];
        snprintf(t, sizeof t, "FP32 weights, %d-bit grid", bits[b]);
        weight_panel(&im, 0, b * ph, pw, ph, w_fp, n, bits[b], a, t);
        snprintf(t, sizeof t, "after %d-bit QAT", bits[b]);
        weight_panel(&im, pw, b * ph, pw, ph, w_qat[b], n, bits[b], a, t);
    }
    tq_status st = tq_image_save_png(&im, path);
    tq_image_free(&im);
    return st;
}

tq_status fig_curves(const char *path, const tq_train_result *fp, const tq_train_result *qat, const char *qat_label) {
    tq_image im;
    TQ_TRY(tq_image_init(&im, 1120, 360, WHITE));
    int nf = fp->epochs, nq = qat ? qat->epochs : 0;
    double ex[2 * TQ_MAX_EPOCHS], loss[2 * TQ_MAX_EPOCHS], acc[2 * TQ_MAX_EPOCHS];
    double lmax = 0, amin = 100;
    for (int e = 0; e < nf + nq; e++) {
        const tq_train_result *r = e < nf ? fp : qat;
        int k = e < nf ? e : e - nf;
        ex[e] = e + 1;
        loss[e] = r->train_loss[k];
        acc[e] = r->test_acc[k];
        lmax = fmax(lmax, loss[e]);
        amin = fmin(amin, acc[e]);
    }
    tq_plot a, b;
    tq_plot_init(&a, &im, 0, 0, 560, 360, 0.5, nf + nq + 0.5, 0, lmax * 1.1, "training loss", "epoch", "loss");
    tq_plot_init(&b, &im, 560, 0, 560, 360, 0.5, nf + nq + 0.5, floor(amin) - 0.2, 100, "test accuracy", "epoch", "percent");
    tq_plot_line(&a, ex, loss, nf, BLUE, 2);
    tq_plot_line(&b, ex, acc, nf, BLUE, 2);
    if (nq) {
        tq_plot_line(&a, ex + nf - 1, loss + nf - 1, nq + 1, ORANGE, 2);
        tq_plot_line(&b, ex + nf - 1, acc + nf - 1, nq + 1, ORANGE, 2);
    }
    tq_plot_legend(&a, "FP32", BLUE);
    tq_plot_legend(&b, "FP32", BLUE);
    if (nq) {
        tq_plot_legend(&a, qat_label, ORANGE);
        tq_plot_legend(&b, qat_label, ORANGE);
    }
    tq_status st = tq_image_save_png(&im, path);
    tq_image_free(&im);
    return st;
}

tq_status fig_digits(const char *path, const tq_dataset *ds, const uint32_t *const *idx, const int *n,
                     const uint8_t *const *pred, const char *const *titles, int panels) {
    const int H = (int)ds->h, W = (int)ds->w, C = (int)ds->c, side = H > W ? H : W;
    const int cols = 8, sc = side < 56 ? 56 / side : 1, cell_w = W * sc + 12, cell_h = H * sc + 22, head = 30;
    if (H > 512 || W > 512) TQ_FAIL(TQ_E_ARG, "%s: images of %dx%d are too large to draw in a grid", path, H, W);
    uint8_t *gray = tq_malloc((size_t)H * W); /* the channels' mean, for images with more than one */
    if (!gray) TQ_FAIL(TQ_E_NOMEM, "%s: out of memory", path);
    int rows = 1;
    for (int p = 0; p < panels; p++) rows = n[p] / cols + (n[p] % cols != 0) > rows ? n[p] / cols + (n[p] % cols != 0) : rows;
    int pw = cols * cell_w + 16;
    tq_image im;
    tq_status st = tq_image_init(&im, pw * panels, head + rows * cell_h + 8, WHITE);
    if (st != TQ_OK) {
        tq_free(gray);
        return st;
    }
    for (int p = 0; p < panels; p++) {
        int x0 = p * pw + 8;
        tq_image_text(&im, x0, 8, titles[p], 0x222222u, 2);
        for (int i = 0; i < n[p]; i++) {
            uint32_t k = idx[p][i];
            int x = x0 + (i % cols) * cell_w, y = head + (i / cols) * cell_h;
            const uint8_t *img = ds->images + (size_t)k * tq_dataset_pixels(ds);
            for (int i2 = 0; i2 < H * W; i2++) {
                int sum = 0;
                for (int c = 0; c < C; c++) sum += img[(size_t)i2 * C + c];
                gray[i2] = (uint8_t)(sum / C);
            }
            tq_image_gray(&im, x, y, gray, W, H, sc, 1);
            char lab[16];
            if (pred && pred[p]) snprintf(lab, sizeof lab, "%u/%u", pred[p][k], ds->labels[k]);
            else snprintf(lab, sizeof lab, "%u", ds->labels[k]);
            tq_image_text(&im, x + 2, y + H * sc + 5, lab, pred && pred[p] ? RED : 0x222222u, 1);
        }
        if (n[p] == 0) tq_image_text(&im, x0, head + 10, "none", GRAY, 2);
    }
    st = tq_image_save_png(&im, path);
    tq_image_free(&im);
    tq_free(gray);
    return st;
}
