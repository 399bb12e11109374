/* Plots on a tq_image: a frame with ticks at round numbers, labels, lines, bars and legends. */
#ifndef TQ_PLOT_H
#define TQ_PLOT_H

#include "plot/png_view.h"

typedef struct {
    tq_image *im;
    int x0, y0, x1, y1;            /* the data area in pixels */
    double xmin, xmax, ymin, ymax; /* what it shows */
    int legend_rows;
} tq_plot;

/* Draw the frame of a plot whose outer box is (left, top, w, h) on im: title above, tick labels
 * and axis labels around a data area, ticks at 1, 2 or 5 times a power of ten. */
void tq_plot_init(tq_plot *p, tq_image *im, int left, int top, int w, int h, double xmin, double xmax, double ymin,
                  double ymax, const char *title, const char *xlabel, const char *ylabel);
int tq_plot_px(const tq_plot *p, double x); /* data -> pixel */
int tq_plot_py(const tq_plot *p, double y);
void tq_plot_line(tq_plot *p, const double *x, const double *y, int n, uint32_t color, int thick);
void tq_plot_bars(tq_plot *p, const double *edges, const double *h, int n, uint32_t color); /* n bars, n+1 edges */
void tq_plot_vline(tq_plot *p, double x, uint32_t color);
void tq_plot_hline(tq_plot *p, double y, uint32_t color);
void tq_plot_legend(tq_plot *p, const char *label, uint32_t color); /* stacked top-right */

#endif
