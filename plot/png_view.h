/* A small RGB canvas for tinyqat's pictures: rectangles, lines, text in a built-in 5x7 bitmap
 * font, grayscale digits, and a PNG writer over libpng (atomic: temp file + rename).
 * Without libpng (TQ_WITH_PNG=OFF or not installed) everything draws but tq_image_save_png
 * returns TQ_E_ARG with a message saying so. Colors are 0xRRGGBB. */
#ifndef TQ_PNG_VIEW_H
#define TQ_PNG_VIEW_H

#include <stdint.h>

#include "src/status.h"

typedef struct {
    int w, h;
    uint8_t *rgb; /* w*h*3, owned */
} tq_image;

tq_status tq_image_init(tq_image *im, int w, int h, uint32_t background);
void tq_image_free(tq_image *im);
void tq_image_pixel(tq_image *im, int x, int y, uint32_t color);      /* clipped to the canvas */
void tq_image_rect(tq_image *im, int x0, int y0, int x1, int y1, uint32_t color); /* filled, inclusive */
void tq_image_line(tq_image *im, int x0, int y0, int x1, int y1, uint32_t color); /* Bresenham */
/* Text with its top-left corner at (x, y); each font pixel becomes scale x scale. Lowercase is
 * drawn as uppercase; unknown characters as '?'. */
void tq_image_text(tq_image *im, int x, int y, const char *s, uint32_t color, int scale);
int tq_image_text_width(const char *s, int scale);
/* A grayscale picture (0 = black ... 255 = white by default; invert = 1 draws ink dark on white). */
void tq_image_gray(tq_image *im, int x, int y, const uint8_t *px, int w, int h, int scale, int invert);

int tq_png_supported(void);
tq_status tq_image_save_png(const tq_image *im, const char *path);

#endif
