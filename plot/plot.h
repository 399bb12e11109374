/* Plots on a tq_canvas: a frame with ticks at round numbers (or where the caller says), a title,
 * axis labels (the y label rotated), curves, markers, error bars, rectangles (bar charts),
 * reference lines and a legend placed in the data area where it covers the least data.
 *
 *     tq_plot p;
 *     tq_plot_init(&p, canvas, &(tq_plot_spec){.left = 0, .top = 0, .w = 560, .h = 360,
 *                  .xmin = 0, .xmax = 10, .ymin = 0, .ymax = 1, .title = "loss", .xlabel = "epoch", .ylabel = "loss"});
 *     tq_plot_line(&p, x, y, n, TQ_BLUE, 2, 0);
 *     tq_plot_legend(&p, "FP32", TQ_BLUE, TQ_KEY_LINE);
 *     tq_plot_finish(&p);                     // draws the legend */
#ifndef TQ_PLOT_H
#define TQ_PLOT_H

#include "plot/canvas.h"

/* Colors: matplotlib's first four, which readers know, and the inks. */
#define TQ_BLUE 0x1F77B4u
#define TQ_ORANGE 0xFF7F0Eu
#define TQ_GREEN 0x2CA02Cu
#define TQ_RED 0xD62728u
#define TQ_GRAY 0x8C8C8Cu
#define TQ_INK 0x222222u

typedef struct {
    double left, top, w, h;        /* the outer box on the canvas, labels included */
    double xmin, xmax, ymin, ymax; /* what the data area shows; xmin > xmax runs x right to left */
    const char *title, *xlabel, *ylabel;
    const double *xticks;          /* ticks at these x values, or NULL for round numbers */
    int n_xticks;
    const char *const *xtick_labels; /* the ticks' labels, or NULL for %g of their values */
    double tick_room;              /* pixels for the y tick labels (0: the widest label's), to align stacked plots */
} tq_plot_spec;

typedef enum { TQ_KEY_LINE = 0, TQ_KEY_DASHED = 1, TQ_KEY_MARKER = 2 } tq_key;

#define TQ_PLOT_LEGEND_MAX 8
#define TQ_PLOT_CELLS 32

typedef struct {
    tq_canvas *c;
    double x0, y0, x1, y1;         /* the data area in pixels */
    double xmin, xmax, ymin, ymax;
    int n_legend;
    struct {
        char label[96];
        uint32_t color;
        tq_key key;
    } legend[TQ_PLOT_LEGEND_MAX];
    double legend_box[4];          /* where tq_plot_finish put the legend: x, y, w, h (pixels) */
    /* which cells of a TQ_PLOT_CELLS x TQ_PLOT_CELLS grid over the data area hold data */
    unsigned char busy[TQ_PLOT_CELLS][TQ_PLOT_CELLS];
} tq_plot;

void tq_plot_init(tq_plot *p, tq_canvas *c, const tq_plot_spec *spec);
double tq_plot_px(const tq_plot *p, double x); /* data -> pixel */
double tq_plot_py(const tq_plot *p, double y);

/* Data, clipped to the data area. */
void tq_plot_line(tq_plot *p, const double *x, const double *y, int n, uint32_t color, double width, int dashed);
void tq_plot_points(tq_plot *p, const double *x, const double *y, int n, uint32_t color, double radius);
void tq_plot_errorbar(tq_plot *p, double x, double lo, double hi, uint32_t color); /* a vertical bar with caps */
void tq_plot_rect(tq_plot *p, double xa, double xb, double ya, double yb, uint32_t color);
void tq_plot_vline(tq_plot *p, double x, uint32_t color, double width, int dashed);
void tq_plot_hline(tq_plot *p, double y, uint32_t color, double width, int dashed);
/* A note at a data point (anchored by its start, middle or end), counted as data for the legend. */
void tq_plot_note(tq_plot *p, double x, double y, const char *s, uint32_t color, tq_anchor anchor);

/* Legend entries, drawn by tq_plot_finish. */
void tq_plot_legend(tq_plot *p, const char *label, uint32_t color, tq_key key);
void tq_plot_finish(tq_plot *p);

#endif
