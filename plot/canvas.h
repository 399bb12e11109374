/* A canvas for tinyqat's pictures: the figure code draws once, into a list of shapes, and the
 * list is written as PNG (rendered by cairo: anti-aliased, DejaVu Sans) or as SVG (written here:
 * lines, rectangles, circles and <text> elements, so the text stays text). Coordinates are pixels
 * of the PNG, y down; colors 0xRRGGBB.
 *
 * Drawing never fails: a shape that cannot be stored (out of memory) marks the canvas, and
 * tq_canvas_save reports it. Without cairo (TQ_WITH_CAIRO=OFF or libcairo2-dev missing) the
 * shapes are still recorded, text is measured approximately, and tq_canvas_save returns TQ_E_ARG
 * saying the build cannot draw. */
#ifndef TQ_CANVAS_H
#define TQ_CANVAS_H

#include <stdint.h>

#include "src/status.h"

typedef struct tq_canvas tq_canvas;

typedef enum { TQ_ANCHOR_START = 0, TQ_ANCHOR_MIDDLE = 1, TQ_ANCHOR_END = 2 } tq_anchor;

/* 1 when this build can write pictures (it has cairo). */
int tq_canvas_supported(void);

/* A w x h canvas, white. NULL when out of memory. */
tq_canvas *tq_canvas_new(int w, int h);

/* Release cairo's font cache and fontconfig's configuration, which stay until the process ends
 * otherwise: for a program about to exit that wants a leak checker to find nothing (the tinyqat
 * program calls it at exit). Never while any thread draws, nor when the program itself uses
 * fontconfig afterwards. */
void tq_canvas_release_fonts(void);
void tq_canvas_free(tq_canvas *c); /* NULL-safe */

/* Shapes are clipped to this rectangle until tq_canvas_unclip (one level). */
void tq_canvas_clip(tq_canvas *c, double x, double y, double w, double h);
void tq_canvas_unclip(tq_canvas *c);

/* A polyline through n points, `width` pixels wide; dashed: 6-on, 4-off dashes. */
void tq_canvas_line(tq_canvas *c, const double *x, const double *y, int n, uint32_t color, double width, int dashed);
void tq_canvas_segment(tq_canvas *c, double x0, double y0, double x1, double y1, uint32_t color, double width);
void tq_canvas_rect(tq_canvas *c, double x, double y, double w, double h, uint32_t fill);
void tq_canvas_rect_outline(tq_canvas *c, double x, double y, double w, double h, uint32_t color, double width);
void tq_canvas_circle(tq_canvas *c, double x, double y, double r, uint32_t fill);

/* Text of `size` pixels with its baseline at y, anchored at x by its start, middle or end;
 * rotated by `degrees` counterclockwise about (x, y) (90: reads upwards, a y-axis label). */
void tq_canvas_text(tq_canvas *c, double x, double y, const char *s, double size, uint32_t color, tq_anchor anchor,
                    double degrees, int bold);
/* The advance width of s at `size` (cairo's measure of DejaVu Sans; an estimate without cairo). */
double tq_canvas_text_width(const tq_canvas *c, const char *s, double size, int bold);

/* A grayscale picture (w x h bytes, 0 black .. 255 white; invert: 255 draws black), each pixel a
 * scale x scale square with its top-left corner at (x, y). */
void tq_canvas_gray(tq_canvas *c, double x, double y, const uint8_t *px, int w, int h, int scale, int invert);

/* The format a file name asks for: by its extension, .png or .svg in either case. */
typedef enum { TQ_CANVAS_UNKNOWN = 0, TQ_CANVAS_PNG = 1, TQ_CANVAS_SVG = 2 } tq_canvas_format;
tq_canvas_format tq_canvas_format_of(const char *path);

/* Write the picture: SVG when path ends in ".svg", PNG when in ".png" (either case), atomically
 * (temp + rename); any other name is TQ_E_ARG. */
tq_status tq_canvas_save(const tq_canvas *c, const char *path);

#endif
