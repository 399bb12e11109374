#include "plot/plot.h"

#include <math.h>
#include <stdio.h>

#define INK 0x222222u
#define GRID 0xE4E4E4u

int tq_plot_px(const tq_plot *p, double x) {
    return p->x0 + (int)lround((x - p->xmin) / (p->xmax - p->xmin) * (p->x1 - p->x0));
}
int tq_plot_py(const tq_plot *p, double y) {
    return p->y1 - (int)lround((y - p->ymin) / (p->ymax - p->ymin) * (p->y1 - p->y0));
}

/* The tick step: 1, 2 or 5 times a power of ten, giving about `want` ticks over the span. */
static double nice_step(double span, int want) {
    double raw = span / want, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void fmt_tick(char *buf, size_t cap, double v, double step) {
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < step * 1e-6) v = 0;
    snprintf(buf, cap, "%.*f", decimals, v);
}

void tq_plot_init(tq_plot *p, tq_image *im, int left, int top, int w, int h, double xmin, double xmax, double ymin,
                  double ymax, const char *title, const char *xlabel, const char *ylabel) {
    if (!(xmax > xmin)) xmax = xmin + 1;
    if (!(ymax > ymin)) ymax = ymin + 1;
    *p = (tq_plot){im, left + 70, top + 28, left + w - 16, top + h - 44, xmin, xmax, ymin, ymax, 0};
    tq_image_text(im, left + (w - tq_image_text_width(title, 2)) / 2, top + 4, title, INK, 2);
    double sx = nice_step(xmax - xmin, 6), sy = nice_step(ymax - ymin, 5);
    char buf[32];
    for (double v = ceil(xmin / sx) * sx; v <= xmax + sx * 1e-9; v += sx) {
        int x = tq_plot_px(p, v);
        tq_image_line(im, x, p->y0, x, p->y1, GRID);
        tq_image_line(im, x, p->y1, x, p->y1 + 5, INK);
        fmt_tick(buf, sizeof buf, v, sx);
        tq_image_text(im, x - tq_image_text_width(buf, 1) / 2, p->y1 + 9, buf, INK, 1);
    }
    for (double v = ceil(ymin / sy) * sy; v <= ymax + sy * 1e-9; v += sy) {
        int y = tq_plot_py(p, v);
        tq_image_line(im, p->x0, y, p->x1, y, GRID);
        tq_image_line(im, p->x0 - 5, y, p->x0, y, INK);
        fmt_tick(buf, sizeof buf, v, sy);
        tq_image_text(im, p->x0 - 9 - tq_image_text_width(buf, 1), y - 3, buf, INK, 1);
    }
    tq_image_line(im, p->x0, p->y0, p->x0, p->y1, INK);
    tq_image_line(im, p->x0, p->y1, p->x1, p->y1, INK);
    tq_image_line(im, p->x1, p->y0, p->x1, p->y1, INK);
    tq_image_line(im, p->x0, p->y0, p->x1, p->y0, INK);
    tq_image_text(im, (p->x0 + p->x1 - tq_image_text_width(xlabel, 1)) / 2, p->y1 + 24, xlabel, INK, 1);
    /* the y label, written vertically one character per line (the font has no rotation) */
    int n = 0;
    for (const char *c = ylabel; *c; c++) n++;
    int y = (p->y0 + p->y1) / 2 - n * 5;
    for (const char *c = ylabel; *c; c++, y += 10) {
        char one[2] = {*c, 0};
        tq_image_text(im, left + 6, y, one, INK, 1);
    }
}

static void clip_line(tq_plot *p, int x0, int y0, int x1, int y1, uint32_t c) {
    /* points outside the data area are clamped to its border, which is enough for our curves */
    x0 = x0 < p->x0 ? p->x0 : x0 > p->x1 ? p->x1 : x0;
    x1 = x1 < p->x0 ? p->x0 : x1 > p->x1 ? p->x1 : x1;
    y0 = y0 < p->y0 ? p->y0 : y0 > p->y1 ? p->y1 : y0;
    y1 = y1 < p->y0 ? p->y0 : y1 > p->y1 ? p->y1 : y1;
    tq_image_line(p->im, x0, y0, x1, y1, c);
}

void tq_plot_line(tq_plot *p, const double *x, const double *y, int n, uint32_t color, int thick) {
    for (int i = 0; i + 1 < n; i++)
        for (int t = 0; t < thick; t++)
            clip_line(p, tq_plot_px(p, x[i]), tq_plot_py(p, y[i]) + t, tq_plot_px(p, x[i + 1]), tq_plot_py(p, y[i + 1]) + t, color);
    if (n == 1) tq_image_rect(p->im, tq_plot_px(p, x[0]) - 2, tq_plot_py(p, y[0]) - 2, tq_plot_px(p, x[0]) + 2, tq_plot_py(p, y[0]) + 2, color);
}

void tq_plot_bars(tq_plot *p, const double *edges, const double *h, int n, uint32_t color) {
    for (int i = 0; i < n; i++) {
        if (h[i] <= p->ymin) continue;
        int xa = tq_plot_px(p, edges[i]), xb = tq_plot_px(p, edges[i + 1]) - 1, yt = tq_plot_py(p, h[i]);
        if (xb < xa) xb = xa;
        tq_image_rect(p->im, xa < p->x0 ? p->x0 : xa, yt < p->y0 ? p->y0 : yt, xb > p->x1 ? p->x1 : xb, p->y1 - 1, color);
    }
}

void tq_plot_vline(tq_plot *p, double x, uint32_t color) {
    int px = tq_plot_px(p, x);
    if (px > p->x0 && px < p->x1) tq_image_line(p->im, px, p->y0 + 1, px, p->y1 - 1, color);
}

void tq_plot_hline(tq_plot *p, double y, uint32_t color) {
    int py = tq_plot_py(p, y);
    if (py > p->y0 && py < p->y1) tq_image_line(p->im, p->x0 + 1, py, p->x1 - 1, py, color);
}

void tq_plot_legend(tq_plot *p, const char *label, uint32_t color) {
    int y = p->y0 + 8 + 14 * p->legend_rows++, x = p->x1 - 14 - tq_image_text_width(label, 1) - 22;
    tq_image_rect(p->im, x - 4, y - 4, p->x1 - 8, y + 10, 0xFFFFFFu);
    tq_image_rect(p->im, x, y + 2, x + 14, y + 4, color);
    tq_image_text(p->im, x + 20, y, label, INK, 1);
}
