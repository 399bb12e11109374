#include "plot/plot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define GRID 0xE6E6E6u
#define TITLE_SIZE 15
#define LABEL_SIZE 13
#define TICK_SIZE 11.5
#define LEGEND_SIZE 12

double tq_plot_px(const tq_plot *p, double x) { return p->x0 + (x - p->xmin) / (p->xmax - p->xmin) * (p->x1 - p->x0); }
double tq_plot_py(const tq_plot *p, double y) { return p->y1 - (y - p->ymin) / (p->ymax - p->ymin) * (p->y1 - p->y0); }

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

/* Mark the cells a pixel rectangle covers as holding data. */
static void mark(tq_plot *p, double xa, double ya, double xb, double yb) {
    double cw = (p->x1 - p->x0) / TQ_PLOT_CELLS, ch = (p->y1 - p->y0) / TQ_PLOT_CELLS;
    int i0 = (int)floor((fmin(xa, xb) - p->x0) / cw), i1 = (int)floor((fmax(xa, xb) - p->x0) / cw);
    int j0 = (int)floor((fmin(ya, yb) - p->y0) / ch), j1 = (int)floor((fmax(ya, yb) - p->y0) / ch);
    i0 = i0 < 0 ? 0 : i0, j0 = j0 < 0 ? 0 : j0;
    i1 = i1 >= TQ_PLOT_CELLS ? TQ_PLOT_CELLS - 1 : i1, j1 = j1 >= TQ_PLOT_CELLS ? TQ_PLOT_CELLS - 1 : j1;
    for (int j = j0; j <= j1; j++)
        for (int i = i0; i <= i1; i++) p->busy[j][i] = 1;
}

/* Mark a segment, sampled every two pixels. */
static void mark_segment(tq_plot *p, double xa, double ya, double xb, double yb) {
    int steps = (int)(fmax(fabs(xb - xa), fabs(yb - ya)) / 2) + 1;
    if (steps > 4096) steps = 4096;
    for (int k = 0; k <= steps; k++) {
        double t = (double)k / steps, x = xa + t * (xb - xa), y = ya + t * (yb - ya);
        if (x >= p->x0 && x <= p->x1 && y >= p->y0 && y <= p->y1) mark(p, x, y, x, y);
    }
}

void tq_plot_init(tq_plot *p, tq_canvas *c, const tq_plot_spec *s) {
    memset(p, 0, sizeof *p);
    p->c = c;
    p->xmin = s->xmin, p->xmax = s->xmax, p->ymin = s->ymin, p->ymax = s->ymax;
    if (p->xmax == p->xmin || !isfinite(p->xmax - p->xmin)) p->xmax = p->xmin + 1;
    if (!(p->ymax > p->ymin)) p->ymax = p->ymin + 1;
    /* room for the tick labels (the widest of them) and the rotated y label on the left */
    double sy = nice_step(p->ymax - p->ymin, 5), tick_w = 0;
    char buf[32];
    for (double v = ceil(p->ymin / sy) * sy; v <= p->ymax + sy * 1e-9; v += sy) {
        fmt_tick(buf, sizeof buf, v, sy);
        tick_w = fmax(tick_w, tq_canvas_text_width(c, buf, TICK_SIZE, 0));
    }
    if (s->tick_room > 0) tick_w = s->tick_room;
    p->x0 = s->left + tick_w + 32, p->x1 = s->left + s->w - 14;
    p->y0 = s->top + (s->title && *s->title ? 32 : 12), p->y1 = s->top + s->h - (s->xlabel && *s->xlabel ? 46 : 28);
    if (s->title && *s->title)
        tq_canvas_text(c, (p->x0 + p->x1) / 2, s->top + 20, s->title, TITLE_SIZE, TQ_INK, TQ_ANCHOR_MIDDLE, 0, 1);
    /* grid and ticks */
    double lo = fmin(p->xmin, p->xmax), hi = fmax(p->xmin, p->xmax), sx = nice_step(hi - lo, 6);
    int n_auto = s->xticks ? s->n_xticks : (int)floor(hi / sx + 1e-9) - (int)ceil(lo / sx - 1e-9) + 1;
    for (int k = 0; k < n_auto && k < 200; k++) {
        double v = s->xticks ? s->xticks[k] : (ceil(lo / sx - 1e-9) + k) * sx;
        double x = tq_plot_px(p, v);
        if (x < p->x0 - 0.5 || x > p->x1 + 0.5) continue;
        tq_canvas_segment(c, x, p->y0, x, p->y1, GRID, 1);
        tq_canvas_segment(c, x, p->y1, x, p->y1 + 5, TQ_INK, 1);
        if (s->xticks && s->xtick_labels) snprintf(buf, sizeof buf, "%s", s->xtick_labels[k]);
        else if (s->xticks) snprintf(buf, sizeof buf, "%g", v);
        else fmt_tick(buf, sizeof buf, v, sx);
        tq_canvas_text(c, x, p->y1 + 19, buf, TICK_SIZE, TQ_INK, TQ_ANCHOR_MIDDLE, 0, 0);
    }
    for (double v = ceil(p->ymin / sy - 1e-9) * sy; v <= p->ymax + sy * 1e-9; v += sy) {
        double y = tq_plot_py(p, v);
        tq_canvas_segment(c, p->x0, y, p->x1, y, GRID, 1);
        tq_canvas_segment(c, p->x0 - 5, y, p->x0, y, TQ_INK, 1);
        fmt_tick(buf, sizeof buf, v, sy);
        tq_canvas_text(c, p->x0 - 8, y + 4, buf, TICK_SIZE, TQ_INK, TQ_ANCHOR_END, 0, 0);
    }
    tq_canvas_rect_outline(c, p->x0, p->y0, p->x1 - p->x0, p->y1 - p->y0, TQ_INK, 1);
    if (s->xlabel && *s->xlabel)
        tq_canvas_text(c, (p->x0 + p->x1) / 2, p->y1 + 38, s->xlabel, LABEL_SIZE, TQ_INK, TQ_ANCHOR_MIDDLE, 0, 0);
    if (s->ylabel && *s->ylabel)
        tq_canvas_text(c, s->left + 16, (p->y0 + p->y1) / 2, s->ylabel, LABEL_SIZE, TQ_INK, TQ_ANCHOR_MIDDLE, 90, 0);
}

void tq_plot_line(tq_plot *p, const double *x, const double *y, int n, uint32_t color, double width, int dashed) {
    enum { CHUNK = 1024 };
    double px[CHUNK], py[CHUNK];
    tq_canvas_clip(p->c, p->x0, p->y0, p->x1 - p->x0, p->y1 - p->y0);
    if (n == 1) {
        px[0] = tq_plot_px(p, x[0]), py[0] = tq_plot_py(p, y[0]);
        tq_canvas_circle(p->c, px[0], py[0], width + 1, color);
        mark(p, px[0], py[0], px[0], py[0]);
    }
    /* in pieces of at most CHUNK points, each starting where the last ended */
    for (int start = 0; start < n - 1; start += CHUNK - 1) {
        int m = n - start < CHUNK ? n - start : CHUNK;
        for (int i = 0; i < m; i++) px[i] = tq_plot_px(p, x[start + i]), py[i] = tq_plot_py(p, y[start + i]);
        for (int i = 0; i + 1 < m; i++) mark_segment(p, px[i], py[i], px[i + 1], py[i + 1]);
        tq_canvas_line(p->c, px, py, m, color, width, dashed);
    }
    tq_canvas_unclip(p->c);
}

void tq_plot_points(tq_plot *p, const double *x, const double *y, int n, uint32_t color, double radius) {
    tq_canvas_clip(p->c, p->x0, p->y0, p->x1 - p->x0, p->y1 - p->y0);
    for (int i = 0; i < n; i++) {
        double px = tq_plot_px(p, x[i]), py = tq_plot_py(p, y[i]);
        tq_canvas_circle(p->c, px, py, radius, color);
        mark(p, px - radius, py - radius, px + radius, py + radius);
    }
    tq_canvas_unclip(p->c);
}

void tq_plot_errorbar(tq_plot *p, double x, double lo, double hi, uint32_t color) {
    double px = tq_plot_px(p, x), ya = tq_plot_py(p, lo), yb = tq_plot_py(p, hi);
    tq_canvas_clip(p->c, p->x0, p->y0, p->x1 - p->x0, p->y1 - p->y0);
    tq_canvas_segment(p->c, px, ya, px, yb, color, 1.5);
    tq_canvas_segment(p->c, px - 4, ya, px + 4, ya, color, 1.5);
    tq_canvas_segment(p->c, px - 4, yb, px + 4, yb, color, 1.5);
    tq_canvas_unclip(p->c);
    mark(p, px - 4, ya, px + 4, yb);
}

void tq_plot_rect(tq_plot *p, double xa, double xb, double ya, double yb, uint32_t color) {
    double pa = tq_plot_px(p, xa), pb = tq_plot_px(p, xb), qa = tq_plot_py(p, ya), qb = tq_plot_py(p, yb);
    tq_canvas_clip(p->c, p->x0, p->y0, p->x1 - p->x0, p->y1 - p->y0);
    tq_canvas_rect(p->c, fmin(pa, pb), fmin(qa, qb), fabs(pb - pa), fabs(qb - qa), color);
    tq_canvas_unclip(p->c);
    mark(p, pa, qa, pb, qb);
}

void tq_plot_vline(tq_plot *p, double x, uint32_t color, double width, int dashed) {
    double px = tq_plot_px(p, x), ys[2] = {p->y0, p->y1}, xs[2] = {px, px};
    if (px < p->x0 || px > p->x1) return;
    tq_canvas_line(p->c, xs, ys, 2, color, width, dashed);
    mark(p, px, p->y0, px, p->y1);
}

void tq_plot_hline(tq_plot *p, double y, uint32_t color, double width, int dashed) {
    double py = tq_plot_py(p, y), xs[2] = {p->x0, p->x1}, ys[2] = {py, py};
    if (py < p->y0 || py > p->y1) return;
    tq_canvas_line(p->c, xs, ys, 2, color, width, dashed);
    mark(p, p->x0, py, p->x1, py);
}

void tq_plot_note(tq_plot *p, double x, double y, const char *s, uint32_t color, tq_anchor anchor) {
    double px = tq_plot_px(p, x), py = tq_plot_py(p, y), w = tq_canvas_text_width(p->c, s, LEGEND_SIZE, 0);
    tq_canvas_text(p->c, px, py, s, LEGEND_SIZE, color, anchor, 0, 0);
    double xa = px - w * (int)anchor / 2;
    mark(p, xa, py - LEGEND_SIZE, xa + w, py + 3);
}

void tq_plot_legend(tq_plot *p, const char *label, uint32_t color, tq_key key) {
    if (p->n_legend == TQ_PLOT_LEGEND_MAX) return;
    snprintf(p->legend[p->n_legend].label, sizeof p->legend[0].label, "%s", label);
    p->legend[p->n_legend].color = color;
    p->legend[p->n_legend].key = key;
    p->n_legend++;
}

/* The legend goes where it hides the fewest cells holding data: every position on a grid of
 * cells over the data area is tried; among the best, the one nearest a corner (top right first). */
void tq_plot_finish(tq_plot *p) {
    if (!p->n_legend) return;
    const double row = LEGEND_SIZE + 7, swatch = 26, pad = 7, margin = 6;
    double tw = 0;
    for (int i = 0; i < p->n_legend; i++) tw = fmax(tw, tq_canvas_text_width(p->c, p->legend[i].label, LEGEND_SIZE, 0));
    double bw = pad + swatch + 6 + tw + pad, bh = pad + row * p->n_legend - 4 + pad;
    double cw = (p->x1 - p->x0) / TQ_PLOT_CELLS, ch = (p->y1 - p->y0) / TQ_PLOT_CELLS;
    double xa = p->x0 + margin, xb = p->x1 - margin - bw, ya = p->y0 + margin, yb = p->y1 - margin - bh;
    double bx = xb, by = ya, best_cost = 1e300;
    for (int j = 0; j <= TQ_PLOT_CELLS; j++)
        for (int i = TQ_PLOT_CELLS; i >= 0; i--) {
            double x = xa + (xb - xa) * i / TQ_PLOT_CELLS, y = ya + (yb - ya) * j / TQ_PLOT_CELLS;
            if (xb < xa) x = xa;
            if (yb < ya) y = ya;
            int hits = 0;
            for (int cj = (int)((y - p->y0) / ch); cj < TQ_PLOT_CELLS && p->y0 + cj * ch < y + bh; cj++)
                for (int ci = (int)((x - p->x0) / cw); ci < TQ_PLOT_CELLS && p->x0 + ci * cw < x + bw; ci++) hits += p->busy[cj][ci];
            /* distance to the nearest corner, in cells; the top right corner preferred by a little */
            double dx = fmin(x - xa, xb - x) / cw, dy = fmin(y - ya, yb - y) / ch;
            double cost = hits * 1e6 + dx + dy + (x - xa < xb - x ? 0.5 : 0) + (y - ya > yb - y ? 0.25 : 0);
            if (cost < best_cost) best_cost = cost, bx = x, by = y;
        }
    double x = bx, y = by;
    p->legend_box[0] = x, p->legend_box[1] = y, p->legend_box[2] = bw, p->legend_box[3] = bh;
    tq_canvas_rect(p->c, x, y, bw, bh, 0xFFFFFFu);
    tq_canvas_rect_outline(p->c, x, y, bw, bh, 0xBBBBBBu, 1);
    for (int i = 0; i < p->n_legend; i++) {
        double cy = y + pad + row * i + row / 2 - 2, sx = x + pad;
        uint32_t col = p->legend[i].color;
        switch (p->legend[i].key) {
        case TQ_KEY_LINE: tq_canvas_segment(p->c, sx, cy, sx + swatch, cy, col, 2.5); break;
        case TQ_KEY_DASHED: {
            double xs[2] = {sx, sx + swatch}, ys[2] = {cy, cy};
            tq_canvas_line(p->c, xs, ys, 2, col, 2, 1);
            break;
        }
        case TQ_KEY_MARKER:
            tq_canvas_segment(p->c, sx, cy, sx + swatch, cy, col, 2);
            tq_canvas_circle(p->c, sx + swatch / 2, cy, 4, col);
            break;
        }
        tq_canvas_text(p->c, sx + swatch + 6, cy + 4.5, p->legend[i].label, LEGEND_SIZE, TQ_INK, TQ_ANCHOR_START, 0, 0);
    }
}
